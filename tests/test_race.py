"""Regression: the direct path's per-thread band cache (run_subconvs).

A task whose whole-call source band fits kBandL2Bytes keeps it in its thread's band buffer,
keyed by its grid block, and a later task with the same key (same pixels, other output rows:
an m split or the next slab) reuses it.  Wider tasks of the same call fill that buffer per K
block instead; the key was not cleared then, so a later task with the old key multiplied a
stale band (another grid block's or another K block's channels): a whole tile of the output
was wrong.  With 2 threads this hit the last row chunk of 1x1 convolutions (512 -> 512
channels, 1024 pixels: rows 264..511 x pixels 960..1023 in ~1 % of the calls); with two slabs
it hit every call, 1 thread too.

Each case is checked against a float64 matmul and bitwise against the 1-thread result.
"""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from tconv import _core

# (input channels, output channels, pixels) of a 1x1, stride-1, 1-D transposed convolution.
# Two slabs: stale on every call, at any thread count, on every ISA's tiles.
EVERY_CALL = [(500, 512, 400), (600, 512, 400)]
# Two threads, an m split: stale when one thread takes both row halves of the last chunk.
RACY = [(512, 512, 1024), (512, 256, 1024), (400, 512, 1000)]


def _isas() -> list[str]:
    return list(_core.supported_isas()) if hasattr(_core, "supported_isas") else [None]


def _arrays(c_in: int, c_out: int, n: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, c_in, n)).astype(np.float32)
    w = rng.standard_normal((c_in, c_out, 1)).astype(np.float32)
    ref = w[:, :, 0].T.astype(np.float64) @ x[0].astype(np.float64)
    return x, w, ref


def _check(geoms, isa: str | None, calls: int) -> list[str]:
    saved_threads = tconv.get_num_threads()
    saved_isa = _core.isa() if isa is not None else None
    failures: list[str] = []
    try:
        if isa is not None:
            _core.set_isa(isa)
        for c_in, c_out, n in geoms:
            x, w, ref = _arrays(c_in, c_out, n)
            scale = np.abs(ref).max()
            tconv.set_num_threads(1)
            one = tconv.conv_transpose(x, w)
            tconv.set_num_threads(2)
            runs = [(1, 0, one)] + [(2, i, tconv.conv_transpose(x, w)) for i in range(calls)]
            for threads, i, y in runs:
                err = np.abs(y[0] - ref).max() / scale
                if err > 1e-4:
                    bad = np.argwhere(np.abs(y[0] - ref) > 1e-3 * scale)
                    failures.append(f"{isa} {c_in}->{c_out} x {n}, {threads} threads, call {i}: "
                                    f"relative error {err:.3g}, {len(bad)} elements from "
                                    f"{bad[0].tolist()}")
                elif threads == 2 and y.tobytes() != one.tobytes():
                    failures.append(f"{isa} {c_in}->{c_out} x {n}, call {i}: differs from the "
                                    "1-thread result")
    finally:
        tconv.set_num_threads(saved_threads)
        if saved_isa is not None:
            _core.set_isa(saved_isa)
    return failures


@pytest.mark.parametrize("isa", _isas())
def test_band_cache_every_call(isa):
    failures = _check(EVERY_CALL, isa, calls=2)
    assert not failures, "\n".join(failures[:10])


@pytest.mark.parametrize("isa", _isas())
def test_band_cache_two_threads_repeated(isa):
    # ~150 calls per case where a call takes milliseconds; the emulated path (the avx512
    # table over portable lanes, ~0.3 s a call) shares the tiling, so a few calls suffice.
    calls = 3 if isa is not None and isa.endswith("-emulated") else 100
    failures = _check(RACY, isa, calls)
    assert not failures, f"{len(failures)} bad:\n" + "\n".join(failures[:10])
