"""Per-side padding pairs that may be negative (zero extension for conv_transpose, cropping for
conv), against oracles that never see a negative padding: the full (unpadded) reference
transposed conv windowed with numpy, and the reference conv of the input padded/cropped with
numpy.  Plus the dense matrices themselves, adjointness, both backwards and the dask path."""

from __future__ import annotations

import numpy as np
import pytest
import tconv
from hypothesis import given, settings
from hypothesis import strategies as st
from tconv import reference


@st.composite
def problems(draw, max_nd=3):
    nd = draw(st.integers(1, max_nd))
    small = nd == 3
    i = tuple(draw(st.integers(1, 3 if small else 5)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    op = tuple(draw(st.integers(0, max(a, b) - 1)) for a, b in zip(s, d))
    pads = tuple((draw(st.integers(-4, 3)), draw(st.integers(-4, 3))) for _ in range(nd))
    groups = draw(st.sampled_from([1, 2]))
    return i, k, s, d, op, pads, groups


def window_oracle(x, w, s, d, op, pads, groups, bias=None):
    """The window [lo, full - hi + op) of the full transposed conv, zeros outside it."""
    full = reference.conv_transpose(x, w, stride=s, dilation=d, groups=groups)
    y = full
    for a, (lo, hi) in enumerate(pads):
        n = y.shape[2 + a]
        size = n - lo - hi + op[a]
        widths = [(0, 0)] * y.ndim
        widths[2 + a] = (max(-lo, 0), max(lo + size - n, 0))
        y = np.pad(y, widths)
        start = max(lo, 0)
        y = np.take(y, np.arange(start, start + size), axis=2 + a)
    if bias is not None:
        y = y + bias.reshape(-1, *([1] * len(pads)))
    return y


def sizes_ok(i, k, s, d, op, pads):
    return all((ii - 1) * ss + dd * (kk - 1) + 1 - lo - hi + o >= 1
               for ii, kk, ss, dd, o, (lo, hi) in zip(i, k, s, d, op, pads))


def arrays(i, k, groups, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2 * groups, *i))
    w = rng.standard_normal((2 * groups, 2, *k))
    b = rng.standard_normal(2 * groups)
    return x, w, b


@settings(max_examples=150, deadline=None)
@given(problems())
def test_conv_transpose_negative_padding(problem):
    i, k, s, d, op, pads, groups = problem
    x, w, b = arrays(i, k, groups)
    if not sizes_ok(i, k, s, d, op, pads):
        with pytest.raises(ValueError, match="output size"):
            tconv.conv_transpose(x, w, b, s, pads, op, groups, d)
        return
    want = window_oracle(x, w, s, d, op, pads, groups, b)
    y = tconv.conv_transpose(x, w, b, s, pads, op, groups, d)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    # the dense matrix accepts the same pairs and agrees
    np.testing.assert_allclose(reference.conv_transpose(x, w, b, s, pads, op, groups, d), want,
                               rtol=1e-10, atol=1e-12)
    assert tconv.output_shape(x.shape, w.shape, s, pads, op, d, groups) == want.shape
    y32 = tconv.conv_transpose(x.astype(np.float32), w.astype(np.float32),
                               b.astype(np.float32), s, pads, op, groups, d)
    np.testing.assert_allclose(y32, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=150, deadline=None)
@given(problems())
def test_conv_negative_padding_crops(problem):
    i, k, s, d, _, pads, groups = problem
    rng = np.random.default_rng(1)
    n = tuple(v * 2 + 1 for v in i)
    y = rng.standard_normal((2, 2 * groups, *n))
    w = rng.standard_normal((4, 2, *k))
    b = rng.standard_normal(4)
    padded = y
    for a, (lo, hi) in enumerate(pads):  # padded[j] = y[j - lo], zero outside y
        m = padded.shape[2 + a]
        idx = np.arange(-lo, m + hi)
        inside = (idx >= 0) & (idx < m)
        taken = np.take(padded, np.clip(idx, 0, m - 1), axis=2 + a)
        shape = [1] * padded.ndim
        shape[2 + a] = idx.size
        padded = taken * inside.reshape(shape)
    if any(padded.shape[2 + a] < d[a] * (k[a] - 1) + 1 for a in range(len(n))):
        with pytest.raises(ValueError, match="output size"):
            tconv.conv(y, w, b, s, pads, d, groups)
        return
    want = reference.conv(padded, w, b, s, 0, d, groups)
    np.testing.assert_allclose(tconv.conv(y, w, b, s, pads, d, groups), want, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(reference.conv(y, w, b, s, pads, d, groups), want, rtol=1e-10,
                               atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(problems(max_nd=2))
def test_adjoint_and_backwards(problem):
    i, k, s, d, op, pads, groups = problem
    if not sizes_ok(i, k, s, d, op, pads):
        return
    x, w, _ = arrays(i, k, groups, seed=2)
    y = tconv.conv_transpose(x, w, None, s, pads, op, groups, d)
    g = np.random.default_rng(3).standard_normal(y.shape)
    # <C^T x, g> == <x, C g>: conv with the same pairs is the adjoint (it crops where the
    # transposed conv extends); conv's weight is the same array read as (C_out, C_in/g, *k)
    cg = tconv.conv(g, w, None, s, pads, d, groups)
    # (output_padding >= stride, possible when dilation > stride, gives the conv extra outputs
    # past the transposed conv's input: the adjoint is their first i)
    cg = cg[(Ellipsis, *(slice(0, n) for n in x.shape[2:]))]
    assert cg.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, cg), rtol=1e-10)
    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, s, pads, op, groups, d)
    ri, rw, rb = reference.conv_transpose_backward(g, x, w, s, pads, op, groups, d)
    np.testing.assert_allclose(gi, cg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gi, ri, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-12)
    only = tconv.conv_transpose_backward(g, x, w, s, pads, op, groups, d,
                                         output_mask=(False, True, False))
    assert only[0] is None and only[2] is None
    np.testing.assert_array_equal(only[1], gw)
    # conv_backward on the same problem: conv(g) with pairs -> grads wrt g and w
    xx = np.zeros(cg_full_shape(g, w, s, pads, d, groups), dtype=x.dtype)
    xx[(Ellipsis, *(slice(0, n) for n in x.shape[2:]))] = x
    ci, cw, cb = tconv.conv_backward(xx, g, w, s, pads, d, groups)
    ri, rw, rb = reference.conv_backward(xx, g, w, s, pads, d, groups)
    np.testing.assert_allclose(ci, y, rtol=1e-10, atol=1e-12)  # C^T x again
    np.testing.assert_allclose(ci, ri, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cw, rw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cb, rb, rtol=1e-10, atol=1e-12)


def cg_full_shape(g, w, s, pads, d, groups):
    return tconv.conv(g, w, None, s, pads, d, groups).shape


def test_window_entirely_outside_the_data():
    x, w, b = arrays((2,), (2,), 1)
    # full output 3 elements; keep [5, 7): all zeros (+ bias)
    y = tconv.conv_transpose(x, w, b, 1, ((5, -4),))
    np.testing.assert_array_equal(y, np.broadcast_to(b[:, None], (2, 2, 2)))
    gi, gw, gb = tconv.conv_transpose_backward(np.ones_like(y), x, w, 1, ((5, -4),))
    assert not gi.any() and not gw.any()
    np.testing.assert_array_equal(gb, [4.0, 4.0])
    # conv whose padding crops all of the input away: zeros (+ bias)
    np.testing.assert_array_equal(tconv.conv(x, w, b, 1, ((-7, 8),)),
                                  np.broadcast_to(b[:, None], (2, 2, 2)))


def test_output_size_and_out_with_negative_padding():
    x, w, _ = arrays((4,), (3,), 1, seed=4)
    want = window_oracle(x, w, (3,), (1,), (2,), ((-2, 1),), 1)
    np.testing.assert_allclose(tconv.conv_transpose(x, w, None, 3, ((-2, 1),),
                                                    output_size=want.shape[2:]), want, rtol=1e-12)
    out = np.full(want.shape, np.nan)
    tconv.conv_transpose(x, w, None, 3, ((-2, 1),), 2, out=out)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    with pytest.raises(ValueError, match="not reachable"):
        tconv.conv_transpose(x, w, None, 3, ((-2, 1),), output_size=(want.shape[2] + 3,))
    with pytest.raises(ValueError, match="padding_mode"):
        tconv.conv_transpose(x, w, None, 3, ((-2, 1),), padding_mode="circular")
    with pytest.raises(ValueError, match="padding_mode"):
        tconv.conv(x, w, None, 1, -1, padding_mode="reflect")


@pytest.mark.parametrize("isa", tconv.supported_isas())
def test_negative_padding_every_isa(isa):
    before = tconv.isa()
    tconv.set_isa(isa)
    try:
        rng = np.random.default_rng(5)
        x = rng.standard_normal((2, 8, 6, 5)).astype(np.float32)
        w = rng.standard_normal((8, 16, 3, 4)).astype(np.float32)
        pads, op = ((-3, 2), (1, -5)), (1, 0)
        want = window_oracle(x.astype(np.float64), w.astype(np.float64), (2, 2), (1, 1), op,
                             pads, 1)
        got = tconv.conv_transpose(x, w, None, 2, pads, op)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    finally:
        tconv.set_isa(before)


def test_dask_negative_padding_bitwise():
    da = pytest.importorskip("dask.array")
    from tconv import dask as tdask

    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 9, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(3)
    for pads, op in [(((-3, 2), (1, -5)), (1, 0)), (((12, -30), (0, 0)), (0, 0)),
                     (((-1, -1), (-2, 0)), (0, 1))]:
        want = tconv.conv_transpose(x, w, b, 2, pads, op)
        got = tdask.conv_transpose(da.from_array(x, chunks=(1, 4, 4, 3)), w, b, 2, pads, op)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.compute(), want)
        got = tdask.conv_transpose(da.from_array(x, chunks=(1, 4, 4, 3)), w, b, 2, pads,
                                   output_size=want.shape[2:], chunks=5)
        np.testing.assert_array_equal(got.compute(), want)
