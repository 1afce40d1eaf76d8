"""Streamed (non-temporal) stores of interleaved phases: the sub-convolutions' x-phase runs
(csrc/subconv/store.cpp) and the phase GEMM's (csrc/gemm/engine.cpp: store_group), both through
tconv/copy.hpp interleave().

A forward whose x stride is 2, 4 or 8 stores the x phases of one grid block together as one
interleaved run; the phase GEMM (kernel = stride) stores the x phases of one output channel
so.  When the output has at least kStreamBytes (tconv/plan.hpp, 4 MiB), the whole 64-byte
lines of the runs that start 64-byte aligned go out with non-temporal stores, and the Inf/NaN
test of the stored values is made in registers.  Both sides of the threshold, every ISA, both
dtypes: the result into a fresh (aligned) output is bit for bit the result into an ``out=`` one
element off every 16-byte boundary (ordinary stores only), and both match a float64 oracle;
with an Inf weight the border outputs that the fast kernels make NaN (0 x Inf of the zero
padding) must be found by that test and repaired.
"""

from __future__ import annotations

import itertools
import numpy as np
import pytest

import tconv
from conftest import STREAM_BYTES, assert_matches_oracle, misaligned_like

ISAS = tconv.supported_isas()
C_IN, C_OUT = 8, 16


def _oracle(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
            pad: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Scatter definition in float64 (every axis: stride, padding): result, sum of |terms|,
    terms per output.  Products of an Inf weight stay where the definition puts them."""
    nd = x.ndim - 2
    k = w.shape[2:]
    out_sp = tuple((i - 1) * stride - 2 * pad + kk for i, kk in zip(x.shape[2:], k, strict=True))
    full = tuple((i - 1) * stride + kk for i, kk in zip(x.shape[2:], k, strict=True))
    y = np.zeros((x.shape[0], w.shape[1], *full))
    mag = np.zeros_like(y)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for tap in itertools.product(*(range(kk) for kk in k)):
        wt = w64[(slice(None), slice(None), *tap)]
        where = (slice(None), slice(None),
                 *(slice(t, t + stride * (i - 1) + 1, stride) for t, i in zip(tap, x.shape[2:],
                                                                               strict=True)))
        with np.errstate(invalid="ignore"):
            y[where] += np.einsum("nc...,co->no...", x64, wt)
            mag[where] += np.einsum("nc...,co->no...", np.abs(x64), np.abs(wt))
    crop = (slice(None), slice(None), *(slice(pad, pad + o) for o in out_sp))
    bb = b.astype(np.float64).reshape((1, -1) + (1,) * nd)
    terms = C_IN * int(np.prod([-(-kk // stride) for kk in k])) + 1
    return y[crop] + bb, mag[crop] + np.abs(bb), terms


def _check(isa: str, x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int,
           label: str) -> None:
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        y = tconv.conv_transpose(x, w, b, stride=stride, padding=pad)
        other = misaligned_like(y.shape, y.dtype)
        tconv.conv_transpose(x, w, b, stride=stride, padding=pad, out=other)
    finally:
        tconv.set_isa(before)
    if y.nbytes >= STREAM_BYTES:
        assert y.__array_interface__["data"][0] % 16 == 0  # its aligned runs stream
    assert y.tobytes() == other.tobytes(), label
    want, mag, terms = _oracle(x, w, b, stride, pad)
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(y), finite), label
    assert np.array_equal(y[~finite], want[~finite]), label  # the same infinities
    assert_matches_oracle(np.where(finite, y, 0), np.where(finite, want, 0),
                          np.where(finite, mag, 0), terms, label)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [2, 4, 8])
@pytest.mark.parametrize("side", ["below", "at", "above", "twice"])
def test_streamed_x_phases_match_ordinary_stores(isa, dtype, stride, side):
    """1-D, kernel 2 x stride, padding stride / 2: the output is C_OUT x (stride x length),
    one stride of points below kStreamBytes, at it, one above and twice it."""
    item = np.dtype(dtype).itemsize
    length = STREAM_BYTES // (C_OUT * item * stride)
    length = {"below": length - 1, "at": length, "above": length + 1, "twice": 2 * length}[side]
    rng = np.random.default_rng(1000 * stride + length)
    x = rng.standard_normal((1, C_IN, length)).astype(dtype)
    w = rng.standard_normal((C_IN, C_OUT, 2 * stride)).astype(dtype)
    b = rng.standard_normal(C_OUT).astype(dtype)
    pad = stride // 2
    label = f"{isa} {np.dtype(dtype).name} stride {stride} {side}"
    _check(isa, x, w, b, stride, pad, label)
    if side in ("at", "twice"):  # an Inf weight: the border outputs need the repair
        w[3, 5, 0] = np.inf
        _check(isa, x, w, b, stride, pad, label + " inf weight")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ["odd_width", "tiny_rows"])
def test_streamed_2d(isa, dtype, shape):
    """k4 s2 p1 at or above kStreamBytes.  odd_width: output rows of 2 x 129 values, so the
    runs of every other row start off 64-byte alignment (ordinary stores) and the rest stream;
    tiny_rows: 4 x 4 inputs (DCGAN 512->256), runs of 8 values, under one 64-byte line in
    float32 (never streamed) and exactly one in float64."""
    item = np.dtype(dtype).itemsize
    if shape == "odd_width":
        batch, c_out, spatial = 1, C_OUT, (STREAM_BYTES // (C_OUT * item * 4 * 129) + 1, 129)
    else:
        batch, c_out, spatial = 64, STREAM_BYTES // (64 * item * 64), (4, 4)
    rng = np.random.default_rng(spatial[0])
    x = rng.standard_normal((batch, C_IN, *spatial)).astype(dtype)
    w = rng.standard_normal((C_IN, c_out, 4, 4)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    _check(isa, x, w, b, 2, 1, f"{isa} {np.dtype(dtype).name} 2-D {shape}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [(2, 2), (4,)])
@pytest.mark.parametrize("side", ["below", "at", "twice"])
def test_streamed_phase_gemm(isa, dtype, kernel, side):
    """The phase GEMM (kernel = stride, no padding): U-Net's k2 s2 and a 1-D k4 s4, output
    one grid row below kStreamBytes, at it and twice it; with an Inf weight at the top."""
    item = np.dtype(dtype).itemsize
    if kernel == (2, 2):
        rows = STREAM_BYTES // (C_OUT * item * 4 * 64)
        rows = {"below": rows - 1, "at": rows, "twice": 2 * rows}[side]
        spatial: tuple[int, ...] = (rows, 64)
    else:
        length = STREAM_BYTES // (C_OUT * item * 4)
        spatial = ({"below": length - 1, "at": length, "twice": 2 * length}[side],)
    rng = np.random.default_rng(sum(spatial))
    x = rng.standard_normal((1, C_IN, *spatial)).astype(dtype)
    w = rng.standard_normal((C_IN, C_OUT, *kernel)).astype(dtype)
    b = rng.standard_normal(C_OUT).astype(dtype)
    plan = tconv.plan("conv_transpose", x.shape, w.shape, stride=kernel[0], dtype=dtype)
    assert (plan.algorithm, plan.input) == ("gemm", "phases")
    label = f"{isa} {np.dtype(dtype).name} phase GEMM k{kernel} {side}"
    _check(isa, x, w, b, kernel[0], 0, label)
    if side == "twice":
        w[3, 5, 0] = np.inf
        _check(isa, x, w, b, kernel[0], 0, label + " inf weight")
