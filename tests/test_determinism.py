"""Oracle: the kernel itself.  Every kernel -- forward scatter, conv gather, grad_input,
grad_weight, grad_bias, and conv_backward's scatter and weight gradient -- returns bitwise
identical results for 1, 2 and 3 OpenMP threads and from call to call, on every ISA path this
build and CPU support (``_core.supported_isas()``/``set_isa()`` when the build has dispatch)."""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from tconv import _core

from _cases import FIXED, GROUPED_GW, OUTER_GW, TAIL_ROWS, X_PHASES, Case
from _isas import isa_params

# Large enough that every thread gets several output planes (and weight slices), with shapes
# that miss any power-of-two tile.
BIG = [
    Case(3, 2, 3, 5, (9, 10), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), True),
    Case(4, 1, 7, 6, (37,), (5,), (3,), (2,), (2,), (2,), True),
    Case(2, 1, 5, 4, (4, 5, 3), (3, 2, 3), (2, 1, 2), (1, 0, 1), (1, 0, 0), (1, 2, 1), True),
    Case(2, 6, 1, 1, (13, 11), (3, 3), (2, 2), (1, 1), (0, 1), (1, 1), False),  # depthwise
]
CASES = FIXED + BIG + OUTER_GW + TAIL_ROWS + GROUPED_GW + X_PHASES


def _isas() -> list[object]:
    if hasattr(_core, "supported_isas") and hasattr(_core, "set_isa"):
        return isa_params(list(_core.supported_isas()))
    return [None]  # a build without ISA dispatch has one path


def _all_results(case: Case, dtype) -> list[np.ndarray]:
    x, w, b = case.arrays(dtype)
    rng = np.random.default_rng(9)
    g = rng.standard_normal((case.batch, case.c_out, *case.output_spatial())).astype(dtype)
    p = case.params()
    cp = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
              groups=case.groups)
    y = tconv.conv_transpose(x, w, b, **p)
    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, **p)
    c = tconv.conv(g, w, None if b is None else np.resize(b, case.c_in), **cp)
    gc = rng.standard_normal(c.shape).astype(dtype)
    ci, cw, cb = tconv.conv_backward(gc, g, w, **cp)
    return [y, gi, gw, gb, c, ci, cw, cb]


NAMES = ["forward", "grad_input", "grad_weight", "grad_bias", "conv", "conv grad_input",
         "conv grad_weight", "conv grad_bias"]


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_threads_and_repeats(isa, dtype):
    saved_threads = tconv.get_num_threads()
    saved_isa = _core.isa() if isa is not None and hasattr(_core, "isa") else None
    failures = []
    try:
        if isa is not None:
            _core.set_isa(isa)
        for case in CASES:
            runs = []
            for threads in (2, 1, 3, 2):  # 2 twice: repeated calls
                tconv.set_num_threads(threads)
                runs.append((threads, _all_results(case, dtype)))
            first = runs[0][1]
            for threads, results in runs[1:]:
                for name, a, b in zip(NAMES, first, results):
                    if a.shape != b.shape or a.tobytes() != b.tobytes():
                        failures.append(f"{name} differs at {threads} threads: {case}")
    finally:
        tconv.set_num_threads(saved_threads)
        if saved_isa is not None:
            _core.set_isa(saved_isa)
    assert not failures, "\n".join(failures[:20])


def test_thread_count_is_process_wide():
    """set_num_threads applies to kernels called from any Python thread (OpenMP's own count
    is per thread)."""
    import threading

    saved = tconv.get_num_threads()
    seen = []
    try:
        tconv.set_num_threads(1)
        t = threading.Thread(target=lambda: seen.append(tconv.get_num_threads()))
        t.start()
        t.join()
    finally:
        tconv.set_num_threads(saved)
    assert seen == [1]
