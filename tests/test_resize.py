"""tconv.resize against definitions: upsampling vs a NumPy transcription of the index formulas
and vs torch.nn.functional.interpolate; its backward by the adjoint identity
<U x, y> = <x, U^T y>; resize_conv and its backward by linearity and vs PyTorch autograd."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from tconv.resize import resize_conv, resize_conv_backward, upsample, upsample_backward


def axis_matrix(n, s, mode):
    """Dense U_d (n*s, n) from the docstring's formulas (align_corners=False)."""
    mat = np.zeros((n * s, n))
    for o in range(n * s):
        if mode == "nearest" or s == 1:
            mat[o, o // s] = 1.0
            continue
        c = max((o + 0.5) / s - 0.5, 0.0)
        i0 = min(int(np.floor(c)), n - 1)
        i1 = min(i0 + 1, n - 1)
        lam = c - i0
        mat[o, i0] += 1 - lam
        mat[o, i1] += lam
    return mat


def numpy_upsample(x, scale, mode):
    out = x
    for dim, s in enumerate(scale):
        mat = axis_matrix(x.shape[2 + dim], s, mode)
        out = np.moveaxis(np.tensordot(mat, np.moveaxis(out, 2 + dim, 0), axes=(1, 0)), 0, 2 + dim)
    return out


shapes = st.integers(1, 3).flatmap(lambda nd: st.tuples(
    st.lists(st.integers(1, 5), min_size=nd, max_size=nd),
    st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from(["nearest", "linear"]), st.integers(0, 2), st.integers(1, 3))
def test_upsample_matches_numpy_definition_and_adjoint(dims, mode, batch, channels):
    spatial, scale = dims
    rng = np.random.default_rng(sum(spatial) + 7 * sum(scale))
    x = rng.standard_normal((batch, channels, *spatial))
    y = upsample(x, scale, mode)
    np.testing.assert_allclose(y, numpy_upsample(x, scale, mode), rtol=1e-13, atol=1e-13)
    g = rng.standard_normal(y.shape)
    gx = upsample_backward(g, x.shape, scale, mode)
    assert gx.shape == x.shape
    assert np.vdot(y, g) == pytest.approx(np.vdot(x, gx), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("nd,mode", [(1, "nearest"), (1, "linear"), (2, "nearest"),
                                     (2, "bilinear"), (3, "nearest"), (3, "trilinear")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upsample_vs_torch(nd, mode, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(nd)
    for spatial, scale in [((5, 3, 4)[:nd], (2, 3, 1)[:nd]), ((1, 6, 2)[:nd], (4, 2, 3)[:nd]),
                           ((7, 2, 3)[:nd], (3,) * nd)]:
        x = rng.standard_normal((2, 3, *spatial)).astype(dtype)
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.interpolate(xt, scale_factor=tuple(float(s) for s in scale),
                                             mode=mode, **kwargs)
        y = upsample(x, scale, mode)
        tol = 1e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
        g = rng.standard_normal(y.shape).astype(dtype)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(upsample_backward(g, x.shape, scale, mode), xt.grad.numpy(),
                                   rtol=tol * 10, atol=tol * 10)


def test_upsample_deterministic_across_threads(rng):
    x = rng.standard_normal((3, 5, 17, 13)).astype(np.float32)
    g = rng.standard_normal((3, 5, 51, 26)).astype(np.float32)
    before = tconv.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            tconv.set_num_threads(n)
            results.append((upsample(x, (3, 2), "linear"),
                            upsample_backward(g, x.shape, (3, 2), "linear")))
    finally:
        tconv.set_num_threads(before)
    for fwd, bwd in results[1:]:
        assert np.array_equal(fwd, results[0][0]) and np.array_equal(bwd, results[0][1])


def test_constant_stays_constant():
    for mode in ("nearest", "linear"):
        y = upsample(np.full((1, 1, 3, 4, 2), 1.5), (2, 3, 2), mode)
        assert np.allclose(y, 1.5, rtol=0, atol=1e-15)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_resize_conv_vs_torch(nd, mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(10 + nd)
    x = rng.standard_normal((2, 4, *(3, 4, 2)[:nd]))
    for k, groups in ((3, 1), (4, 2), (2, 4)):
        w = rng.standard_normal((6 if groups != 4 else 4, 4 // groups, *[k] * nd))
        b = rng.standard_normal(w.shape[0])
        y = resize_conv(x, w, 2, mode, b, groups=groups)
        tmode = {"nearest": "nearest", "bilinear": ("linear", "bilinear", "trilinear")[nd - 1]}[mode]
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        up = F.interpolate(xt, scale_factor=2.0, mode=tmode, **kwargs)
        yt = getattr(F, f"conv{nd}d")(up, wt, bt, padding="same", groups=groups)
        assert y.shape == tuple(yt.shape) == (2, w.shape[0], *[2 * n for n in x.shape[2:]])
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(g))
        gi, gw, gb = resize_conv_backward(g, x, w, 2, mode, groups=groups)
        np.testing.assert_allclose(gi, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("padding", ["same", "valid", 1, ((0, 2), (1, 0))])
def test_resize_conv_backward_by_linearity(rng, mode, padding):
    """resize_conv is linear in x (and in w): <f(x), g> = <x, grad_input>, <f(w), g> = <w, grad_w>."""
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((2, 3, 3, 2))
    y = resize_conv(x, w, (2, 3), mode, padding=padding, dilation=(1, 2))
    g = rng.standard_normal(y.shape)
    gi, gw, gb = resize_conv_backward(g, x, w, (2, 3), mode, padding=padding, dilation=(1, 2))
    assert np.vdot(y, g) == pytest.approx(np.vdot(x, gi), rel=1e-11)
    assert np.vdot(y, g) == pytest.approx(np.vdot(w, gw), rel=1e-11)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), rtol=1e-12)
    # finite differences along a random direction (exact for a linear map, up to rounding)
    dx = rng.standard_normal(x.shape)
    fd = np.vdot(resize_conv(x + dx, w, (2, 3), mode, padding=padding, dilation=(1, 2)) - y, g)
    assert fd == pytest.approx(np.vdot(dx, gi), rel=1e-9)
    none = resize_conv_backward(g, x, w, (2, 3), mode, padding=padding, dilation=(1, 2),
                                output_mask=(False, True, False))
    assert none[0] is None and none[2] is None and np.allclose(none[1], gw)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: upsample(np.zeros((1, 1, 3)), 2, "cubic"), ValueError, "mode"),
    (lambda: upsample(np.zeros((1, 1, 3)), 1.5), ValueError, "scale"),
    (lambda: upsample(np.zeros((1, 1, 3)), 0), ValueError, "scale"),
    (lambda: upsample(np.zeros((1, 1, 3)), (2, 2)), ValueError, "scale"),
    (lambda: upsample(np.zeros((1, 1, 3), np.int64), 2), TypeError, "input"),
    (lambda: upsample(np.zeros((3, 3)), 2), ValueError, "input"),
    (lambda: upsample_backward(np.zeros((1, 1, 5)), (1, 1, 3), 2), ValueError, "grad_output"),
    (lambda: resize_conv(np.zeros((1, 2, 3)), np.zeros((1, 2, 3, 3)), 2), ValueError, "weight"),
    (lambda: resize_conv(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), 2, padding="full"), ValueError, "padding"),
    (lambda: resize_conv(np.zeros((1, 2, 3)), np.zeros((1, 2, 3), np.float32), 2), TypeError, "dtype"),
])
def test_resize_errors(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def test_upsample_float_integer_scale_and_empty_batch():
    x = np.arange(3.0).reshape(1, 1, 3)
    np.testing.assert_array_equal(upsample(x, 2.0), upsample(x, 2))
    assert upsample(np.zeros((0, 2, 3, 3)), 2, "linear").shape == (0, 2, 6, 6)
    assert list(itertools.chain(*upsample(x, 2)[0])) == [0, 0, 1, 1, 2, 2]
