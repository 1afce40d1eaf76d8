"""Oracle: PyTorch 2.13 (torch.nn.functional) when importable; skipped cleanly otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import tconv

from _cases import FIXED, Case, cases

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_results(case: Case, x, w, b, g):
    nd = len(case.spatial)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    fn = getattr(F, f"conv_transpose{nd}d")
    yt = fn(xt, wt, bt, case.stride, case.padding, case.output_padding, case.groups, case.dilation)
    if case.batch == 0:
        return yt.detach().numpy(), None
    yt.backward(torch.tensor(g))
    grads = (xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy() if bt is not None else None)
    return yt.detach().numpy(), grads


def check_against_torch(case: Case, dtype):
    x, w, b = case.arrays(dtype)
    p = case.params()
    y = tconv.conv_transpose(x, w, b, **p)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    yt, grads = torch_results(case, x, w, b, g)
    rtol, atol = (1e-4, 1e-4) if dtype == np.float32 else (1e-10, 1e-10)
    assert y.shape == yt.shape
    np.testing.assert_allclose(y, yt, rtol=rtol, atol=atol)
    if grads is None:
        return
    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, **p)
    np.testing.assert_allclose(gi, grads[0], rtol=rtol, atol=atol)
    np.testing.assert_allclose(gw, grads[1], rtol=rtol, atol=atol * max(1, case.batch) * 10)
    if grads[2] is not None:
        np.testing.assert_allclose(gb, grads[2], rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", FIXED, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_fixed_vs_torch(case, dtype):
    check_against_torch(case, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=60, deadline=None)
@given(case=cases(max_size=8))
def test_random_vs_torch(case, dtype):
    check_against_torch(case, dtype)


@settings(max_examples=40, deadline=None)
@given(case=cases(max_size=8))
def test_conv_vs_torch(case):
    rng = np.random.default_rng(5)
    nd = len(case.spatial)
    y = rng.standard_normal((max(case.batch, 1), case.c_out, *case.output_spatial()))
    w = rng.standard_normal((case.c_in, case.c_out_per_group, *case.kernel))
    b = rng.standard_normal(case.c_in)
    p = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    expected = getattr(F, f"conv{nd}d")(torch.tensor(y), torch.tensor(w), torch.tensor(b), **p)
    np.testing.assert_allclose(tconv.conv(y, w, b, **p), expected.numpy(), rtol=1e-10, atol=1e-10)
