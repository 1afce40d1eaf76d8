"""Oracle: tconv.reference (the dense matrix C, float64).  Every kernel result, forward and all
three gradients, for fp32 and fp64, must match it within the summation error bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import tconv
from tconv import reference

from _cases import FIXED, Case, cases
from conftest import assert_matches_oracle

DTYPES = [np.float32, np.float64]


def _abs(a):
    return None if a is None else np.abs(a.astype(np.float64))


def check_case(case: Case, dtype, seed=0):
    x, w, b = case.arrays(dtype, seed)
    p = case.params()
    taps = int(np.prod(case.kernel))

    y = tconv.conv_transpose(x, w, b, **p)
    assert y.dtype == dtype and y.flags.c_contiguous
    assert y.shape == (case.batch, case.c_out, *case.output_spatial())
    expected = reference.conv_transpose(x, w, b, **p)
    bound = reference.conv_transpose(_abs(x), _abs(w), _abs(b), **p)
    assert_matches_oracle(y, expected, bound, case.c_in_per_group * taps + 1, f"forward {case}")

    g = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, **p)
    ri, rw, rb = reference.conv_transpose_backward(g, x, w, **p)
    ai, aw, _ = reference.conv_transpose_backward(_abs(g), _abs(x), _abs(w), **p)
    assert gi.dtype == gw.dtype == gb.dtype == dtype
    assert_matches_oracle(gi, ri, ai, case.c_out_per_group * taps, f"grad_input {case}")
    pixels = case.batch * int(np.prod(case.spatial))
    assert_matches_oracle(gw, rw, aw, pixels, f"grad_weight {case}")
    ob = case.batch * int(np.prod(y.shape[2:]))
    assert_matches_oracle(gb, rb, np.abs(g.astype(np.float64)).sum(axis=(0, *range(2, g.ndim))),
                          ob, f"grad_bias {case}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FIXED, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_fixed_cases(case, dtype):
    check_case(case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_random_cases(case, dtype):
    check_case(case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_conv_matches_oracle(case, dtype):
    """conv (the gather) against C @ y; the conv's input is the transposed conv's output side."""
    rng = np.random.default_rng(7)
    fine = case.output_spatial()
    y = rng.standard_normal((case.batch, case.c_out, *fine)).astype(dtype)
    w = rng.standard_normal((case.c_in, case.c_out_per_group, *case.kernel)).astype(dtype)
    b = rng.standard_normal(case.c_in).astype(dtype) if case.bias else None
    p = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    x = tconv.conv(y, w, b, **p)
    expected = reference.conv(y, w, b, **p)
    bound = reference.conv(_abs(y), _abs(w), _abs(b), **p)
    assert_matches_oracle(x, expected, bound, case.c_out_per_group * int(np.prod(case.kernel)) + 1,
                          f"conv {case}")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(case=cases(max_size=5))
def test_conv_backward_matches_oracle(case, dtype):
    """conv_backward: grad_input = C^T g, grad_weight through the matrix (via the transposed
    conv's oracle with the roles of input and gradient swapped)."""
    rng = np.random.default_rng(3)
    fine = case.output_spatial()
    p = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)
    y = rng.standard_normal((case.batch, case.c_out, *fine)).astype(dtype)
    w = rng.standard_normal((case.c_in, case.c_out_per_group, *case.kernel)).astype(dtype)
    coarse_shape = tconv.conv(y, w, **p).shape
    g = rng.standard_normal(coarse_shape).astype(dtype)
    gi, gw, gb = tconv.conv_backward(g, y, w, **p)
    # y -> C y, so grad_input = C^T g: a conv_transpose of g sized back to y.
    mat = reference.conv_matrix(w, y.shape[1:], **p)
    expect_gi = (g.reshape(case.batch, mat.shape[0]).astype(np.float64) @ mat).reshape(y.shape)
    abs_gi = (np.abs(g.reshape(case.batch, mat.shape[0]).astype(np.float64)) @ np.abs(mat)).reshape(y.shape)
    assert_matches_oracle(gi, expect_gi, abs_gi, case.c_in_per_group * int(np.prod(case.kernel)),
                          "conv grad_input")
    # dL/dW_j = sum_n g[n] . E_j y[n]: finite structure, checked entry by entry.
    expect_gw = np.zeros(w.shape)
    for idx in np.ndindex(*w.shape):
        unit = np.zeros(w.shape)
        unit[idx] = 1.0
        e = reference.conv_matrix(unit, y.shape[1:], **p)
        expect_gw[idx] = np.sum(g.reshape(case.batch, mat.shape[0]) * (y.reshape(case.batch, mat.shape[1]) @ e.T))
    np.testing.assert_allclose(gw, expect_gw, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-3 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(gb, g.astype(np.float64).sum(axis=(0, *range(2, g.ndim))),
                               rtol=1e-5, atol=1e-4)


def test_conv_transpose_matrix_is_transpose_of_conv_matrix(rng):
    w = rng.standard_normal((3, 2, 3, 2))
    # conv_transpose of a (3, 4, 5) input with stride 2, padding 1 has output (2, 7, 8)
    mt = reference.conv_transpose_matrix(w, (3, 4, 5), stride=2, padding=1)
    mc = reference.conv_matrix(w, (2, 7, 8), stride=2, padding=1)
    assert mt.shape == (2 * 7 * 8, 3 * 4 * 5)
    np.testing.assert_array_equal(mt, mc.T)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_oracle_agrees_with_direct_loops(nd, rng):
    """Guard the oracle itself with a literal translation of the definition (scatter loops)."""
    x = rng.standard_normal((2, 3, *([4] * nd)))
    w = rng.standard_normal((3, 2, *([3] * nd)))
    s, p, d = 2, 1, 1
    out = [(4 - 1) * s - 2 * p + d * 2 + 1] * nd
    y = np.zeros((2, 2, *out))
    for n, c, f in np.ndindex(2, 3, 2):
        for i in np.ndindex(*([4] * nd)):
            for k in np.ndindex(*([3] * nd)):
                o = tuple(ii * s - p + kk * d for ii, kk in zip(i, k))
                if all(0 <= oo < out[0] for oo in o):
                    y[(n, f, *o)] += x[(n, c, *i)] * w[(c, f, *k)]
    np.testing.assert_allclose(reference.conv_transpose(x, w, stride=s, padding=p), y,
                               rtol=1e-12, atol=1e-12)
