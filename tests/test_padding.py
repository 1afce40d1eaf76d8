"""padding strings ("same"/"valid"), per-side pairs and padding_mode, each against an oracle.

Oracles: the dense-matrix reference (``reference.conv_matrix``/``conv_transpose_matrix`` with
``padding_mode``: ``C_0 @ P`` built from the padding operator's 0/1 matrix), TensorFlow's
documented SAME/VALID rule transcribed below (tensorflow/core/framework/kernel_shape_util.cc
``GetWindowedOutputSizeVerbose``: out = ceil(n/s) for SAME, ceil((n - k_dil + 1)/s) for VALID,
pad_total = max((out - 1)*s + k_dil - n, 0), pad_before = pad_total // 2), the adjoint
identity, and PyTorch (``F.pad`` + conv, ``nn.Conv*d(padding_mode=...)``, ``padding="same"``,
autograd) where installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tconv
import tconv.arithmetic
from conftest import assert_matches_oracle
from hypothesis import given, settings
from hypothesis import strategies as st
from tconv import reference

MODES = ["zeros", "circular", "reflect", "replicate"]
TORCH_MODE = {"circular": "circular", "reflect": "reflect", "replicate": "replicate",
              "zeros": "constant"}


def tf_conv_padding(n, k, s, d, mode):
    """(conv output size, (before, after)) of a TF conv with padding SAME/VALID on n elements."""
    kd = d * (k - 1) + 1
    out = math.ceil(n / s) if mode == "SAME" else math.ceil((n - kd + 1) / s)
    if mode == "VALID":
        return out, (0, 0)
    total = max((out - 1) * s + kd - n, 0)
    return out, (total // 2, total - total // 2)


def tf_conv_transpose(x, w, stride, dilation, out_size, mode):
    """tf.nn.conv_transpose(output_shape=out_size, padding=mode) as the adjoint of TF's conv
    on an ``out_size`` input: ``C^T x`` with C the dense matrix of that padded conv."""
    nd = x.ndim - 2
    pads = []
    for a in range(nd):
        out, pair = tf_conv_padding(out_size[a], w.shape[2 + a], stride[a], dilation[a], mode)
        assert out == x.shape[2 + a], "TF would reject this output_shape"
        pads.append(pair)
    c_fine = w.shape[1]
    mat = reference.conv_matrix(w, (c_fine, *out_size), stride, pads, dilation)
    y = x.reshape(x.shape[0], -1).astype(np.float64) @ mat
    return y.reshape(x.shape[0], c_fine, *out_size)


@st.composite
def transposed_problem(draw, max_nd=3):
    nd = draw(st.integers(1, max_nd))
    cap = {1: 7, 2: 5, 3: 3}[nd]
    i = tuple(draw(st.integers(1, cap)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    return i, k, s, d


def _arrays(rng, i, k, c_in=2, c_out=3, batch=2, dtype=np.float64):
    x = rng.standard_normal((batch, c_in, *i)).astype(dtype)
    w = rng.standard_normal((c_in, c_out, *k)).astype(dtype)
    return x, w


# --- padding="same" / "valid" for conv_transpose: TensorFlow's conv2d_transpose --------------


@settings(max_examples=60, deadline=None)
@given(problem=transposed_problem(), mode=st.sampled_from(["same", "valid"]))
def test_string_padding_matches_tf_rule(problem, mode):
    i, k, s, d = problem
    x, w = _arrays(np.random.default_rng(0), i, k)
    y = tconv.conv_transpose(x, w, stride=s, padding=mode, dilation=d)
    kd = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    # Keras deconv_output_length / JAX: same -> i*s, valid -> i*s + max(k_dil - s, 0)
    size = [ii * ss + (0 if mode == "same" else max(kk - ss, 0)) for ii, ss, kk in zip(i, s, kd)]
    assert y.shape[2:] == tuple(size)
    expected = tf_conv_transpose(x, w, s, d, size, mode.upper())
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(problem=transposed_problem(max_nd=2), data=st.data())
def test_same_with_output_size_matches_tf(problem, data):
    i, k, s, d = problem
    size = tuple(data.draw(st.integers((ii - 1) * ss + 1, ii * ss)) for ii, ss in zip(i, s))
    x, w = _arrays(np.random.default_rng(1), i, k)
    y = tconv.conv_transpose(x, w, stride=s, padding="SAME", dilation=d, output_size=size)
    np.testing.assert_allclose(y, tf_conv_transpose(x, w, s, d, size, "SAME"), rtol=1e-10,
                               atol=1e-10)
    # the backward infers the size from grad_output; compare with the explicit pairs' oracle
    sol = tconv.arithmetic.solve(i, k, s, d, output_size=size, padding="same", convention="tconv")
    g = np.random.default_rng(2).standard_normal(y.shape)
    got = tconv.conv_transpose_backward(g, x, w, stride=s, padding="same", dilation=d)
    want = reference.conv_transpose_backward(g, x, w, stride=s, dilation=d, **sol.kwargs())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_same_odd_total_extra_goes_to_end():
    # k=4, s=1: total crop 3 -> 1 at the start, 2 at the end (TF/Keras/JAX); a delta input
    # shows where the kernel lands.
    x = np.zeros((1, 1, 5))
    x[0, 0, 0] = 1.0
    w = np.arange(1.0, 5.0).reshape(1, 1, 4)
    y = tconv.conv_transpose(x, w, padding="same")
    np.testing.assert_array_equal(y[0, 0], [2.0, 3.0, 4.0, 0.0, 0.0])


@settings(max_examples=30, deadline=None)
@given(problem=transposed_problem(), mode=st.sampled_from(["same", "valid"]))
def test_string_padding_backward_matches_oracle(problem, mode):
    i, k, s, d = problem
    rng = np.random.default_rng(2)
    x, w = _arrays(rng, i, k)
    y = tconv.conv_transpose(x, w, stride=s, padding=mode, dilation=d)
    sol = tconv.arithmetic.solve(i, k, s, d, padding=mode, convention="tconv")
    g = rng.standard_normal(y.shape)
    got = tconv.conv_transpose_backward(g, x, w, stride=s, padding=mode, dilation=d)
    want = reference.conv_transpose_backward(g, x, w, stride=s, dilation=d, **sol.kwargs())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# --- padding="same" / "valid" for conv ------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(problem=transposed_problem(), mode=st.sampled_from(["same", "valid"]))
def test_conv_string_padding_matches_tf_rule(problem, mode):
    n, k, s, d = problem
    kd = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    if mode == "valid" and any(nn < kk for nn, kk in zip(n, kd)):
        return
    rng = np.random.default_rng(3)
    y = rng.standard_normal((2, 2, *n))
    w = rng.standard_normal((3, 2, *k))
    pads = [tf_conv_padding(nn, kk, ss, dd, mode.upper())[1] for nn, kk, ss, dd in zip(n, k, s, d)]
    got = tconv.conv(y, w, stride=s, padding=mode, dilation=d)
    assert got.shape[2:] == tuple(tf_conv_padding(nn, kk, ss, dd, mode.upper())[0]
                                  for nn, kk, ss, dd in zip(n, k, s, d))
    want = reference.conv(y, w, stride=s, padding=pads, dilation=d)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    gi, gw, gb = tconv.conv_backward(np.ones_like(got), y, w, stride=s, padding=mode, dilation=d)
    assert gi.shape == y.shape and gw.shape == w.shape


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (2, 3), (5, 2)])
def test_conv_same_matches_torch_at_stride_1(nd, k, d):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    y = rng.standard_normal((2, 3, *[6, 5, 4][:nd]))
    w = rng.standard_normal((2, 3, *[k] * nd))
    fn = getattr(torch.nn.functional, f"conv{nd}d")
    want = fn(torch.tensor(y), torch.tensor(w), padding="same", dilation=d).numpy()
    np.testing.assert_allclose(tconv.conv(y, w, padding="same", dilation=d), want, rtol=1e-10,
                               atol=1e-10)


# --- asymmetric (lo, hi) pairs end to end -----------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(problem=transposed_problem(), data=st.data())
def test_asymmetric_pairs_match_oracle(problem, data):
    i, k, s, d = problem
    pairs = []
    for ii, kk, ss, dd in zip(i, k, s, d):
        full = (ii - 1) * ss + dd * (kk - 1) + 1
        lo = data.draw(st.integers(0, full - 1))
        hi = data.draw(st.integers(0, full - 1 - lo))
        pairs.append((lo, hi))
    rng = np.random.default_rng(5)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x, w = _arrays(rng, i, k, dtype=dtype)
    b = rng.standard_normal(3).astype(dtype)
    y = tconv.conv_transpose(x, w, b, stride=s, padding=pairs, dilation=d)
    want = reference.conv_transpose(x, w, b, stride=s, padding=pairs, dilation=d)
    abs_want = reference.conv_transpose(np.abs(x), np.abs(w), np.abs(b), stride=s, padding=pairs,
                                        dilation=d)
    assert_matches_oracle(y, want, abs_want, terms=2 * int(np.prod(k)) + 1, label="pairs fwd")
    g = rng.standard_normal(y.shape).astype(dtype)
    got = tconv.conv_transpose_backward(g, x, w, stride=s, padding=pairs, dilation=d)
    ref = reference.conv_transpose_backward(g, x, w, stride=s, padding=pairs, dilation=d)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol * 10 * max(1.0, np.abs(r).max()))


# --- padding_mode -------------------------------------------------------------------------------


@st.composite
def mode_problem(draw, max_nd=3):
    """A conv on an n-element grid (the transposed conv's output) with per-side padding that the
    mode allows; ``coarse`` is the conv output size (the transposed conv's input)."""
    nd = draw(st.integers(1, max_nd))
    mode = draw(st.sampled_from(MODES))
    cap = {1: 7, 2: 5, 3: 4}[nd]
    n, k, s, d, pads = [], [], [], [], []
    for _ in range(nd):
        nn = draw(st.integers(1, cap))
        limit = {"reflect": nn - 1, "circular": nn}.get(mode, 3)
        lo, hi = draw(st.integers(0, min(limit, 3))), draw(st.integers(0, min(limit, 3)))
        dd = draw(st.integers(1, 2))
        kmax = (nn + lo + hi - 1) // dd + 1
        kk = draw(st.integers(1, max(1, min(4, kmax))))
        n.append(nn); k.append(kk); s.append(draw(st.integers(1, 3))); d.append(dd)
        pads.append((lo, hi))
    groups = draw(st.integers(1, 2))
    return mode, tuple(n), tuple(k), tuple(s), tuple(d), tuple(pads), groups


def _mode_arrays(problem, seed, dtype=np.float64):
    mode, n, k, s, d, pads, groups = problem
    rng = np.random.default_rng(seed)
    fine = rng.standard_normal((2, 2 * groups, *n)).astype(dtype)  # conv input
    w = rng.standard_normal((2 * groups, 2, *k)).astype(dtype)  # conv: (C_out, C_in/g, *k)
    b = rng.standard_normal(2 * groups).astype(dtype)
    return fine, w, b


@settings(max_examples=50, deadline=None)
@given(problem=mode_problem())
def test_padding_mode_matches_dense_oracle_and_adjoint(problem):
    mode, n, k, s, d, pads, groups = problem
    fine, w, b = _mode_arrays(problem, 6)
    kw = dict(stride=s, padding=pads, dilation=d, groups=groups)
    coarse = tconv.conv(fine, w, b, padding_mode=mode, **kw)
    want = reference.conv(fine, w, b, padding_mode=mode, **kw)
    np.testing.assert_allclose(coarse, want, rtol=1e-10, atol=1e-10)
    # transposed conv back onto exactly n elements: the weight (C_coarse, C_fine/g, *k) layout
    # of conv_transpose is the conv weight's, so this is C_m^T.
    x = np.random.default_rng(7).standard_normal(coarse.shape)
    y = tconv.conv_transpose(x, w, b, output_size=n, padding_mode=mode, **kw)
    assert y.shape == fine.shape
    op = [yy - ((c - 1) * ss - lo - hi + dd * (kk - 1) + 1)
          for yy, c, ss, (lo, hi), dd, kk in zip(n, coarse.shape[2:], s, pads, d, k)]
    y_ref = reference.conv_transpose(x, w, b, stride=s, padding=pads, output_padding=op,
                                     groups=groups, dilation=d, padding_mode=mode)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    # the oracle's transposed matrix is the conv matrix transposed (C_m^T = P^T C_0^T)
    mat = reference.conv_matrix(w, fine.shape[1:], s, pads, d, groups, padding_mode=mode)
    tmat = reference.conv_transpose_matrix(w, x.shape[1:], s, pads, op, d, groups,
                                           padding_mode=mode)
    np.testing.assert_array_equal(mat.T, tmat)
    # adjoint identity <C_m f, x> == <f, C_m^T x> (no bias)
    cf = tconv.conv(fine, w, padding_mode=mode, **kw)
    ctx = tconv.conv_transpose(x, w, output_size=n, padding_mode=mode, **kw)
    lhs, rhs = np.vdot(cf, x), np.vdot(fine, ctx)
    assert abs(lhs - rhs) <= 1e-9 * (np.abs(cf).sum() * np.abs(x).max() + 1)
    # backward of conv_transpose
    g = np.random.default_rng(8).standard_normal(y.shape)
    got = tconv.conv_transpose_backward(g, x, w, stride=s, padding=pads, output_padding=op,
                                        groups=groups, dilation=d, padding_mode=mode)
    ref = reference.conv_transpose_backward(g, x, w, stride=s, padding=pads, output_padding=op,
                                            groups=groups, dilation=d, padding_mode=mode)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)
    # backward of conv: grad_input = C_m^T g, grad_weight through the padded input
    gc = np.random.default_rng(9).standard_normal(coarse.shape)
    gi, gw, gb = tconv.conv_backward(gc, fine, w, padding_mode=mode, **kw)
    np.testing.assert_allclose(
        gi.reshape(2, -1), gc.reshape(2, -1) @ mat, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, gc.sum(axis=(0, *range(2, gc.ndim))), rtol=1e-12)
    assert gw.shape == w.shape


@settings(max_examples=40, deadline=None)
@given(problem=mode_problem(), dtype=st.sampled_from([np.float32, np.float64]))
def test_padding_mode_float32_and_out(problem, dtype):
    mode, n, k, s, d, pads, groups = problem
    fine, w, b = _mode_arrays(problem, 10, dtype)
    kw = dict(stride=s, padding=pads, dilation=d, groups=groups)
    coarse_shape = reference.conv(fine[:0], w, None, **kw).shape
    x = np.random.default_rng(11).standard_normal((2, *coarse_shape[1:])).astype(dtype)
    out = np.empty(fine.shape, dtype)
    y = tconv.conv_transpose(x, w, b, output_size=n, padding_mode=mode, out=out, **kw)
    assert y is out and y.dtype == dtype
    op = [yy - ((c - 1) * ss - lo - hi + dd * (kk - 1) + 1)
          for yy, c, ss, (lo, hi), dd, kk in zip(n, x.shape[2:], s, pads, d, k)]
    rkw = dict(stride=s, padding=pads, output_padding=op, groups=groups, dilation=d,
               padding_mode=mode)
    want = reference.conv_transpose(x, w, b, **rkw)
    abs_want = reference.conv_transpose(np.abs(x), np.abs(w), np.abs(b), **rkw)
    # folding adds at most (1 + lo + hi)-fold copies per dim: widen the term count accordingly
    terms = (2 * int(np.prod(k)) + 1) * int(np.prod([1 + lo + hi for lo, hi in pads]))
    assert_matches_oracle(y, want, abs_want, terms, label=f"{mode} fwd")


def _torch_pad(pads):
    flat = []
    for lo, hi in reversed(pads):
        flat += [lo, hi]
    return flat


@settings(max_examples=40, deadline=None)
@given(problem=mode_problem())
def test_padding_mode_vs_torch(problem):
    """conv: F.conv(F.pad(x, mode)); conv_transpose: its vector-Jacobian product in autograd
    (torch's ConvTranspose itself only supports zeros)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    mode, n, k, s, d, pads, groups = problem
    if mode == "reflect" and any(lo >= nn or hi >= nn for nn, (lo, hi) in zip(n, pads)):
        return
    fine, w, b = _mode_arrays(problem, 12)
    nd = len(n)
    conv_fn = getattr(F, f"conv{nd}d")
    ft = torch.tensor(fine, requires_grad=True)
    padded = F.pad(ft, _torch_pad(pads), mode=TORCH_MODE[mode])
    yt = conv_fn(padded, torch.tensor(w), torch.tensor(b), stride=s, dilation=d, groups=groups)
    kw = dict(stride=s, padding=pads, dilation=d, groups=groups)
    got = tconv.conv(fine, w, b, padding_mode=mode, **kw)
    np.testing.assert_allclose(got, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    x = np.random.default_rng(13).standard_normal(got.shape)
    (vjp,) = torch.autograd.grad(yt, ft, torch.tensor(x))
    y = tconv.conv_transpose(x, w, output_size=n, padding_mode=mode, **kw)
    np.testing.assert_allclose(y, vjp.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding_mode_matches_torch_module(mode, nd):
    """Symmetric padding through torch.nn.Conv*d(padding_mode=...) itself, with gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    size = [7, 6, 5][:nd]
    conv = getattr(torch.nn, f"Conv{nd}d")(4, 6, 3, stride=2, padding=2, dilation=1, groups=2,
                                            padding_mode=mode).double()
    fine = rng.standard_normal((2, 4, *size))
    ft = torch.tensor(fine, requires_grad=True)
    yt = conv(ft)
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    got = tconv.conv(fine, w, b, stride=2, padding=2, groups=2, padding_mode=mode)
    np.testing.assert_allclose(got, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(got.shape)
    yt.backward(torch.tensor(g))
    gi, gw, gb = tconv.conv_backward(g, fine, w, stride=2, padding=2, groups=2, padding_mode=mode)
    np.testing.assert_allclose(gi, ft.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, conv.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, conv.bias.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_circular_is_periodic_wrap_of_scatter():
    # 1-D, stride 2, k=3, padding 1: the full scatter has 2*i + 1 elements; circular folds the
    # first one onto the last output element and the last one onto the first.
    x = np.arange(1.0, 5.0).reshape(1, 1, 4)
    w = np.array([1.0, 10.0, 100.0]).reshape(1, 1, 3)
    full = tconv.conv_transpose(x, w, stride=2)[0, 0]  # 9 elements
    y = tconv.conv_transpose(x, w, stride=2, padding=1, output_padding=1,
                             padding_mode="circular")[0, 0]
    want = full[1:9].copy()
    want[-1] += full[0]  # position -1 wraps to n - 1
    np.testing.assert_array_equal(y, want)


# --- validation -------------------------------------------------------------------------------

X = np.zeros((1, 2, 5), np.float64)
W = np.zeros((2, 3, 3), np.float64)

ERRORS = [
    ("bad padding string", lambda: tconv.conv_transpose(X, W, padding="full"), ValueError,
     "padding"),
    ("bad conv padding string", lambda: tconv.conv(X, W.transpose(1, 0, 2), padding="causal"),
     ValueError, "padding"),
    ("same + output_padding", lambda: tconv.conv_transpose(X, W, stride=2, padding="same",
                                                           output_padding=1), ValueError,
     "output_padding"),
    ("same unreachable size", lambda: tconv.conv_transpose(X, W, stride=2, padding="same",
                                                           output_size=(12,)), ValueError,
     "padding='same'"),
    ("valid unreachable size", lambda: tconv.conv_transpose(X, W, stride=2, padding="valid",
                                                            output_size=(10,)), ValueError,
     "padding='valid'"),
    ("pair of wrong length", lambda: tconv.conv_transpose(X, W, padding=((1, 2, 3),)), ValueError,
     "pair"),
    ("pairs for wrong ndim", lambda: tconv.conv_transpose(X, W, padding=((1, 1), (1, 1))),
     ValueError, "pair"),
    # a negative side is zero extension, which only padding_mode="zeros" defines
    ("negative pair with a padding_mode", lambda: tconv.conv_transpose(
        X, W, padding=((-1, 1),), padding_mode="circular"), ValueError, "padding_mode"),
    ("float in pair", lambda: tconv.conv_transpose(X, W, padding=((1.5, 1),)), TypeError,
     "padding"),
    ("unknown padding_mode", lambda: tconv.conv_transpose(X, W, padding_mode="mirror"),
     ValueError, "padding_mode"),
    ("unknown conv padding_mode", lambda: tconv.conv(X, W.transpose(1, 0, 2),
                                                     padding_mode="wrap"), ValueError,
     "padding_mode"),
    ("reflect too wide", lambda: tconv.conv(X, W.transpose(1, 0, 2), padding=5,
                                            padding_mode="reflect"), ValueError, "reflect"),
    ("circular too wide", lambda: tconv.conv_transpose(np.zeros((1, 2, 3)), W, stride=1,
                                                       padding=((3, 0),),
                                                       padding_mode="circular"), ValueError,
     "circular"),
    ("backward unknown mode", lambda: tconv.conv_transpose_backward(
        np.zeros((1, 3, 7)), X, W, padding_mode="bogus"), ValueError, "padding_mode"),
]


@pytest.mark.parametrize("desc,call,exc,fragment", ERRORS, ids=[e[0] for e in ERRORS])
def test_padding_errors(desc, call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), str(info.value)
