"""The emulated AVX-512 path ("avx512-emulated": the AVX-512 table's tiles, edge paths and lane
reduction order over portable 16 / 8-lane arrays) against the real one, bit for bit, on random
layers of every operation in float32 and float64.  Runs where the CPU has AVX-512 and the build
has both paths; skips otherwise (the oracle suites in test_isa.py, test_determinism.py still run
the emulation there).

Bitwise equality is the contract of the emulation: every lane operation is the instruction's
(one-rounding std::fma for vfmadd), so the emulated path stands in for the real one on CPUs
without AVX-512 only if nothing differs here.
"""

from __future__ import annotations

import numpy as np
import pytest

import tconv

from _cases import FIXED, GROUPED_GW, OUTER_GW, TAIL_ROWS, WHOLE_TILES, X_PHASES, Case

REAL, EMULATED = "avx512", "avx512-emulated"

pytestmark = pytest.mark.skipif(
    not {REAL, EMULATED} <= set(tconv.supported_isas()),
    reason=f"needs both {REAL} (CPU and build) and {EMULATED} in tconv.supported_isas()",
)


def _random_case(rng: np.random.Generator) -> Case:
    """A layer of 1-3 dims whose channel counts (up to 70) cross the 12-row and 32 / 16-column
    tiles and their edges, with every stride / dilation / padding phase pattern."""
    nd = int(rng.integers(1, 4))
    cap = {1: 60, 2: 14, 3: 6}[nd]
    spatial, kernel, stride, dilation, out_pad, padding = [], [], [], [], [], []
    for _ in range(nd):
        i, k = int(rng.integers(1, cap)), int(rng.integers(1, 6))
        s, d = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        o = int(rng.integers(0, max(s, d)))
        full = (i - 1) * s + d * (k - 1) + o + 1
        spatial.append(i); kernel.append(k); stride.append(s); dilation.append(d)
        out_pad.append(o); padding.append(int(rng.integers(0, (full - 1) // 2 + 1)))
    groups = int(rng.integers(1, 3))
    wide = rng.random() < 0.3  # few output channels: the wide 3-row tables
    return Case(
        batch=int(rng.integers(1, 3)), groups=groups,
        c_in_per_group=int(rng.integers(1, 71 // groups)),
        c_out_per_group=int(rng.integers(1, 4 if wide else 71 // groups)),
        spatial=tuple(spatial), kernel=tuple(kernel), stride=tuple(stride),
        padding=tuple(padding), output_padding=tuple(out_pad), dilation=tuple(dilation),
        bias=bool(rng.integers(2)),
    )


def _every_operation(case: Case, dtype, seed: int) -> dict[str, np.ndarray]:
    """forward, its three gradients, conv (gather) and its gradients, resize_conv and its
    gradients, all on the active ISA."""
    rng = np.random.default_rng(seed)
    x, w, b = case.arrays(dtype, seed=seed)
    p = case.params()
    out: dict[str, np.ndarray] = {}
    out["forward"] = y = tconv.conv_transpose(x, w, b, **p)
    g = rng.standard_normal(y.shape).astype(dtype)
    out["grad_input"], out["grad_weight"], out["grad_bias"] = tconv.conv_transpose_backward(
        g, x, w, **p)
    cp = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
              groups=case.groups)
    out["conv"] = c = tconv.conv(g, w, None if b is None else np.resize(b, case.c_in), **cp)
    gc = rng.standard_normal(c.shape).astype(dtype)
    out["conv grad_input"], out["conv grad_weight"], out["conv grad_bias"] = (
        tconv.conv_backward(gc, g, w, **cp))
    wr = rng.standard_normal(
        (case.c_out, case.c_in_per_group, *case.kernel)).astype(dtype)
    mode = "nearest" if seed % 2 else "bilinear"
    out["resize_conv"] = r = tconv.resize_conv(x, wr, case.stride, mode=mode, bias=b,
                                               dilation=case.dilation, groups=case.groups)
    gr = rng.standard_normal(r.shape).astype(dtype)
    out["resize grad_input"], out["resize grad_weight"], out["resize grad_bias"] = (
        tconv.resize_conv_backward(gr, x, wr, case.stride, mode=mode, dilation=case.dilation,
                                   groups=case.groups))
    return out


def _differences(cases: list[Case], dtype) -> tuple[list[str], int]:
    before = tconv.isa()
    failures, compared = [], 0
    try:
        for seed, case in enumerate(cases):
            tconv.set_isa(REAL)
            real = _every_operation(case, dtype, seed)
            tconv.set_isa(EMULATED)
            emulated = _every_operation(case, dtype, seed)
            for name, a in real.items():
                e = emulated[name]
                compared += 1
                if a.shape != e.shape or a.tobytes() != e.tobytes():
                    failures.append(f"{name} differs: {case}")
    finally:
        tconv.set_isa(before)
    return failures, compared


HAND_PICKED = FIXED + WHOLE_TILES + TAIL_ROWS + X_PHASES + GROUPED_GW + OUTER_GW


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulated_equals_real_bitwise_hand_picked(dtype):
    failures, compared = _differences(HAND_PICKED, dtype)
    assert not failures, "\n".join(failures[:20])
    assert compared == 12 * len(HAND_PICKED)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulated_equals_real_bitwise_random(dtype):
    rng = np.random.default_rng(2025)
    failures, compared = _differences([_random_case(rng) for _ in range(6)], dtype)
    assert compared == 12 * 6
    assert not failures, "\n".join(failures[:20])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulated_equals_real_bitwise_many_random(dtype):
    rng = np.random.default_rng(77)
    failures, _ = _differences([_random_case(rng) for _ in range(300)], dtype)
    assert not failures, "\n".join(failures[:20])
