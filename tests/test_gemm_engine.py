"""The dense GEMM engine (csrc/gemm/engine.cpp): 1x1, stride-1, unpadded transposed
convolutions and convolutions, which are plain matrix products per image and group.

Oracles: the float64 dense oracle (tconv.reference) and float64 NumPy matmul, within the
recursive-summation bound (conftest.assert_matches_oracle); bitwise equality across thread
counts and repeats.  Sizes straddle every blocking constant of the engine and the tiles of
every ISA: the micro-kernel tile mr x nr (4/6/12 x 8/16/32 f32, wide <= 3 rows), the K block
kc (256 f32 / 128 f64), the row blocks (whole mr panels) and the column block nc (an eighth
of the L2 the planner reads, over kc x sizeof = 1 KiB: 128 columns with a 1 MiB L2), whose
size follows the machine (or TCONV_L2_BYTES) and changes no bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import tconv
from _isas import assert_bitwise_across_threads, isa_params
from conftest import STREAM_BYTES, assert_matches_oracle, gemm_block_columns, misaligned_like
from tconv import reference

ISAS = tconv.supported_isas()

KC = {np.float32: 256, np.float64: 128}
NC = gemm_block_columns()
MR = (4, 6, 12)
NR = (8, 16, 32)


def _around(c: int) -> list[int]:
    return [c - 1, c, c + 1, 2 * c + 3]


def _matmul_oracle(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, groups: int,
                   transposed: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Result, sum of |products| (+|bias|) and the number of terms per output, in float64."""
    n, c_src = x.shape[:2]
    spatial = x.shape[2:]
    xs = x.reshape(n, groups, c_src // groups, -1).astype(np.float64)
    if transposed:  # w: (C_in, C_out/groups): y[n][g] = W_g^T x[n][g]
        wg = w.reshape(groups, c_src // groups, -1).astype(np.float64).transpose(0, 2, 1)
    else:  # w: (C_out, C_in/groups): x[n][g] = W_g y[n][g]
        wg = w.reshape(groups, -1, c_src // groups).astype(np.float64)
    out = np.einsum("gmk,ngkp->ngmp", wg, xs)
    mag = np.einsum("gmk,ngkp->ngmp", np.abs(wg), np.abs(xs))
    m_total = groups * wg.shape[1]
    out = out.reshape(n, m_total, *spatial)
    mag = mag.reshape(n, m_total, *spatial)
    if b is not None:
        bb = b.astype(np.float64).reshape((1, -1) + (1,) * len(spatial))
        out = out + bb
        mag = mag + np.abs(bb)
    return out, mag, c_src // groups + (b is not None)


def _arrays(rng: np.random.Generator, dtype: Any, batch: int, c_in: int, c_out: int,
            spatial: tuple[int, ...], groups: int) -> tuple[np.ndarray, ...]:
    ones = (1,) * len(spatial)
    x = rng.standard_normal((batch, c_in, *spatial)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups, *ones)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


def _check_forward_and_conv(isa: str, dtype: Any, batch: int, c_in: int, c_out: int,
                            spatial: tuple[int, ...], groups: int = 1, bias: bool = True) -> None:
    rng = np.random.default_rng(c_in * 1000 + c_out * 7 + int(np.prod(spatial)))
    x, w, b = _arrays(rng, dtype, batch, c_in, c_out, spatial, groups)
    bb = b if bias else None
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        y = tconv.conv_transpose(x, w, bb, groups=groups)
        want, mag, terms = _matmul_oracle(x, w, bb, groups, transposed=True)
        assert_matches_oracle(y, want, mag, terms, f"forward {isa} {dtype.__name__} "
                              f"{batch}x{c_in}->{c_out} {spatial} g{groups}")
        # the gather: a conv of the output back to c_in channels with the same weight layout
        # (C_out = c_in, C_in/groups = c_out/groups), i.e. conv_transpose's grad_input
        wc = rng.standard_normal((c_in, c_out // groups, *((1,) * len(spatial)))).astype(dtype)
        bc = rng.standard_normal(c_in).astype(dtype) if bias else None
        xc = tconv.conv(y, wc, bc, groups=groups)
        want, mag, terms = _matmul_oracle(y, wc, bc, groups, transposed=False)
        assert_matches_oracle(xc, want, mag, terms, f"conv {isa} {dtype.__name__} "
                              f"{batch}x{c_out}->{c_in} {spatial} g{groups}")
    finally:
        tconv.set_isa(before)


# Pixels crossing every nr (and the wide kernels' 2 nr) and the column block nc.
PIXELS = sorted({p for c in NR + (64, NC) for p in _around(c)} | {1, 2, 3})


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixels_cross_nr_and_nc(isa, dtype):
    for p in PIXELS:
        _check_forward_and_conv(isa, dtype, 1, 5, 13, (p,))  # 13 rows: 12 + 1 on avx512
        _check_forward_and_conv(isa, dtype, 1, 4, 2, (p,))   # the wide kernels (<= 3 rows)


# Output rows crossing every mr, the wide-kernel limit 3 and the tile_rows split mr + 1..3.
ROWS = sorted({m for c in MR + (3,) for m in _around(c)} | {1, 2, 7, 8, 9, 13, 14, 15})


@pytest.mark.parametrize("isa", ISAS)
def test_rows_cross_mr(isa):
    for m in ROWS:
        _check_forward_and_conv(isa, np.float32, 2, 3, m, (37,))
        _check_forward_and_conv(isa, np.float32, 1, m, 3, (19,))  # the gather's M = m


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depth_crosses_kc(isa, dtype):
    kc = KC[dtype]
    for k in _around(kc) + [3, 4, 5, 3 * kc + 1]:
        _check_forward_and_conv(isa, dtype, 1, k, 14, (45,))


@pytest.mark.parametrize("isa", ISAS)
def test_groups_batch_and_spatial_dims(isa):
    _check_forward_and_conv(isa, np.float32, 3, 6, 9, (5, 7), groups=3)
    _check_forward_and_conv(isa, np.float64, 2, 26, 28, (3, 4, 5), groups=2)
    _check_forward_and_conv(isa, np.float32, 2, 520, 30, (33,), groups=2, bias=False)
    _check_forward_and_conv(isa, np.float32, 1, 1, 1, (1,))


def test_matches_dense_reference():
    """The dense oracle of the operator's definition (not a matmul) on a small problem."""
    rng = np.random.default_rng(3)
    x, w, b = _arrays(rng, np.float64, 2, 6, 4, (3, 5), 2)
    for isa in ISAS:
        tconv.set_isa(isa)
        try:
            y = tconv.conv_transpose(x, w, b, groups=2)
        finally:
            tconv.set_isa(ISAS[0])
        want = reference.conv_transpose(x, w, b, groups=2)
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISAS)
def test_large_rows_and_columns(isa):
    """Many row blocks and column blocks at once (2 nc + 3 columns, rows past 2 x 12 + 3)."""
    _check_forward_and_conv(isa, np.float32, 2, 300, 61, (2 * NC + 3,))
    _check_forward_and_conv(isa, np.float64, 1, 270, 40, (31, 37))


def _thread_results(dtype: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    out = []
    for batch, c_in, c_out, spatial, groups in [(1, 300, 50, (600,), 1), (3, 40, 27, (9, 61), 1),
                                                (2, 300, 64, (100,), 2), (1, 8, 200, (70,), 1)]:
        x, w, b = _arrays(rng, dtype, batch, c_in, c_out, spatial, groups)
        out.append(tconv.conv_transpose(x, w, b, groups=groups))
        out.append(tconv.conv(out[-1], w, None, groups=groups))
        g = rng.standard_normal(out[-2].shape).astype(dtype)
        out.append(tconv.conv_transpose_backward(g, x, w, groups=groups,
                                                 output_mask=(True, False, False))[0])
    return out


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_across_threads(isa, dtype):
    assert_bitwise_across_threads(isa, lambda: _thread_results(dtype))


def test_non_finite_inputs_reach_exactly_their_outputs():
    """A NaN in x reaches only its pixel's outputs; an Inf weight only its output channel."""
    rng = np.random.default_rng(5)
    x, w, b = _arrays(rng, np.float32, 1, 300, 20, (70,), 1)
    x[0, 7, 33] = np.nan
    y = tconv.conv_transpose(x, w, b)
    bad = ~np.isfinite(y)
    assert bad[0, :, 33].all() and bad.sum() == 20
    x[0, 7, 33] = 1.0
    w[5, 3, 0] = np.inf
    y = tconv.conv_transpose(x, w, b)
    want = reference.conv_transpose(x.astype(np.float64), w.astype(np.float64),
                                    b.astype(np.float64))
    np.testing.assert_array_equal(~np.isfinite(y), ~np.isfinite(want))


# Outputs of at least STREAM_BYTES (conftest: kStreamBytes) are written with non-temporal
# stores when 64-byte aligned (results that large are: tconv._pool); the same call into an
# out= one element off that alignment takes the ordinary stores.


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pixels_delta", [-64, 0, 64, STREAM_BYTES // 16])
def test_streamed_output_matches_ordinary_stores(isa, dtype, pixels_delta):
    """Both sides of kStreamBytes, with bias, an Inf/NaN output and a partial column tile:
    the streamed result is bit-for-bit the ordinary one, and within the oracle's bound."""
    item = np.dtype(dtype).itemsize
    c_out = 16
    # rows of whole cache lines (streamed rows must be), + one line: a partial last tile
    pixels = STREAM_BYTES // (c_out * item) + pixels_delta + 64 // item
    rng = np.random.default_rng(pixels)
    x, w, b = _arrays(rng, dtype, 1, 40, c_out, (pixels,), 1)
    x[0, 3, 7] = np.inf  # reaches every output of pixel 7: the check must see it
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        y = tconv.conv_transpose(x, w, b)
        if y.nbytes >= STREAM_BYTES:
            assert y.__array_interface__["data"][0] % 64 == 0
        other = misaligned_like(y.shape, dtype)
        tconv.conv_transpose(x, w, b, out=other)
        np.testing.assert_array_equal(y.view(np.uint8), other.view(np.uint8))
        x[0, 3, 7] = 0
        y = tconv.conv_transpose(x, w, b)
        want, mag, terms = _matmul_oracle(x, w, b, 1, transposed=True)
        assert_matches_oracle(y, want, mag, terms, f"streamed {isa} {dtype.__name__} {pixels}")
    finally:
        tconv.set_isa(before)


# On the avx512 table the engine copies the forward's A panels with masked AVX-512 moves
# (copy_rows_avx512: 1..12 values of one k, one or two 64-byte masks) and the gather's with the
# scalar loop.  Oracle: the same calls on avx512-emulated (the baseline copies over the same
# table's arithmetic, bitwise the avx512 table's: test_isa_emulated.py), for every panel
# height, one and two K blocks.
@pytest.mark.skipif(not {"avx512", "avx512-emulated"} <= set(ISAS),
                    reason="needs the avx512 table and its emulation")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx512_engine_copies_match_the_emulation(dtype):
    kc = KC[dtype]
    rng = np.random.default_rng(23)
    before = tconv.isa()
    try:
        for rows in [*range(1, 15), 23, 24, 25]:  # every tile height, wide (<= 3) included
            for depth in (5, kc, kc + 1):
                x, w, b = _arrays(rng, dtype, 1, depth, rows, (2 * 32 + 5,), 1)
                wc = rng.standard_normal((rows, depth, 1)).astype(dtype)  # gather: M = rows
                got = []
                for isa in ("avx512", "avx512-emulated"):
                    tconv.set_isa(isa)
                    got.append([tconv.conv_transpose(x, w, b), tconv.conv_transpose(x, w, None),
                                tconv.conv(x, wc, None)])
                for a, e in zip(got[0], got[1], strict=True):
                    assert a.tobytes() == e.tobytes(), (rows, depth)
    finally:
        tconv.set_isa(before)


# ---- the L2 size the blocks follow -----------------------------------------------------------

_L2_PROBE = """
import hashlib, sys
import numpy as np
import tconv
rng = np.random.default_rng(7)
out = [str(tconv._core.l2_cache_bytes())]
for dtype in (np.float32, np.float64):
    x = rng.standard_normal((2, 300, 1100)).astype(dtype)
    w = rng.standard_normal((300, 29, 1)).astype(dtype)
    b = rng.standard_normal(29).astype(dtype)
    plan = tconv.plan("conv_transpose", x.shape, w.shape, dtype=dtype)
    y = tconv.conv_transpose(x, w, b)
    g = tconv.conv(y, w)
    out += [str(plan.blocks["nc"]), hashlib.sha256(y.tobytes() + g.tobytes()).hexdigest()]
print(" ".join(out))
"""


def _l2_probe(env_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TCONV_L2_BYTES"}
    if env_value is not None:
        env["TCONV_L2_BYTES"] = env_value
    proc = subprocess.run([sys.executable, "-c", _L2_PROBE], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_l2_size_env_and_clamp():
    """TCONV_L2_BYTES sets the L2 size the blocks follow, clamped to 256 KiB - 4 MiB; a value
    that is not a positive integer is ignored (the OS's figure, as without it)."""
    default = _l2_probe(None)[0]
    assert 256 << 10 <= int(default) <= 4 << 20
    assert _l2_probe(str(2 << 20))[0] == str(2 << 20)
    assert _l2_probe("100")[0] == str(256 << 10)
    assert _l2_probe(str(1 << 40))[0] == str(4 << 20)
    for bad in ("", "abc", "-5", "0", "1e6", "12 "):
        assert _l2_probe(bad)[0] == default, bad


def test_results_do_not_depend_on_the_l2_size():
    """The B block (nc columns) follows the L2 size; the sums do not: the smallest and largest
    L2 give nc = 32 and 512 (or the thread split's cut of it) and the same bits (forward and
    gather, two K blocks in float32, three in float64, columns past several blocks, bias)."""
    small, large = _l2_probe(str(256 << 10)), _l2_probe(str(4 << 20))
    assert small[1] == small[3] == "32"
    assert 320 <= int(large[1]) <= 512 and 320 <= int(large[3]) <= 512
    assert small[2] == large[2] and small[4] == large[4]
    assert _l2_probe(None)[2::2] == small[2::2]
