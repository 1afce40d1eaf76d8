"""Oracle: mathematical identities (adjointness, linearity), the notes' worked example, and
bitwise determinism across thread counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import tconv
from tconv import reference

from _cases import FIXED, cases

# The notes' matrix C for a 4x4 input and a 3x3 kernel, stride 1 (seed notes, transcribed).
NOTES_C = """
w11 w12 w13 0 w21 w22 w23 0 w31 w32 w33 0 0 0 0 0
0 w11 w12 w13 0 w21 w22 w23 0 w31 w32 w33 0 0 0 0
0 0 0 0 w11 w12 w13 0 w21 w22 w23 0 w31 w32 w33 0
0 0 0 0 0 w11 w12 w13 0 w21 w22 w23 0 w31 w32 w33
"""


def test_notes_matrix_c():
    codes = np.array([[11, 12, 13], [21, 22, 23], [31, 32, 33]], dtype=np.float64)
    mat = reference.conv_matrix(codes[None, None], (1, 4, 4))
    names = {float(v): f"w{int(v)}" for v in codes.ravel()}
    printed = reference.format_matrix(mat, names)
    assert [line.split() for line in printed.splitlines()] == [
        line.split() for line in NOTES_C.strip().splitlines()
    ]


def test_notes_conv_is_c_times_x(rng):
    w = rng.standard_normal((1, 1, 3, 3))
    x = rng.standard_normal((1, 1, 4, 4))
    mat = reference.conv_matrix(w, (1, 4, 4))
    np.testing.assert_allclose(tconv.conv(x, w).ravel(), mat @ x.ravel(), rtol=1e-13)
    y = rng.standard_normal((1, 1, 2, 2))
    np.testing.assert_allclose(tconv.conv_transpose(y, w).ravel(), mat.T @ y.ravel(), rtol=1e-13)


def _conv_params(case):
    return dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
                groups=case.groups)


@settings(max_examples=80, deadline=None)
@given(case=cases(max_size=8))
def test_adjoint(case):
    """<conv(y), x> == <y, conv_transpose(x)> for the same weight."""
    x, w, _ = case.arrays(np.float64, seed=11)
    y = np.random.default_rng(12).standard_normal((case.batch, case.c_out, *case.output_spatial()))
    # When output_padding >= stride (allowed if dilation > stride) the conv of y has a few more
    # positions than x; C^T only involves the first x.shape ones.
    cy = tconv.conv(y, w, **_conv_params(case))
    lhs = np.vdot(cy[(..., *[slice(0, n) for n in x.shape[2:]])], x)
    rhs = np.vdot(y, tconv.conv_transpose(x, w, **case.params()))
    taps = int(np.prod(case.kernel)) * case.c_out_per_group
    scale = np.abs(x).sum() * np.max(np.abs(w), initial=0) * np.max(np.abs(y), initial=0) * taps
    scale += 1e-300
    assert abs(lhs - rhs) <= 1e-12 * scale


@settings(max_examples=40, deadline=None)
@given(case=cases(max_size=6))
def test_linearity(case):
    x1, w, _ = case.arrays(np.float64, seed=1)
    x2, _, _ = case.arrays(np.float64, seed=2)
    a, b = 1.75, -0.5
    p = case.params()
    lhs = tconv.conv_transpose(a * x1 + b * x2, w, **p)
    rhs = a * tconv.conv_transpose(x1, w, **p) + b * tconv.conv_transpose(x2, w, **p)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_gradient_is_adjoint_of_forward(rng):
    """grad_input of conv_transpose equals conv of the gradient (notes: backward multiplies by C)."""
    case = FIXED[1]
    x, w, b = case.arrays(np.float64)
    g = rng.standard_normal((case.batch, case.c_out, *case.output_spatial()))
    gi, _, _ = tconv.conv_transpose_backward(g, x, w, **case.params())
    np.testing.assert_array_equal(gi, tconv.conv(g, w, stride=case.stride, padding=case.padding,
                                                 dilation=case.dilation, groups=case.groups))
    assert gi.shape == x.shape


@pytest.mark.parametrize("case", FIXED, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_for_any_thread_count(case, dtype):
    x, w, b = case.arrays(dtype)
    g = np.random.default_rng(4).standard_normal(
        (case.batch, case.c_out, *case.output_spatial())).astype(dtype)
    saved = tconv.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 1):
            tconv.set_num_threads(threads)
            results.append((tconv.conv_transpose(x, w, b, **case.params()),
                            *tconv.conv_transpose_backward(g, x, w, **case.params())))
    finally:
        tconv.set_num_threads(saved)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_noncontiguous_and_readonly_inputs(rng):
    x = rng.standard_normal((2, 3, 10, 12))[:, :, ::2, 1::2]
    w = np.asfortranarray(rng.standard_normal((3, 2, 3, 3)))
    w.setflags(write=False)
    assert not x.flags.c_contiguous
    expected = reference.conv_transpose(np.ascontiguousarray(x), w, stride=2)
    np.testing.assert_allclose(tconv.conv_transpose(x, w, stride=2), expected, rtol=1e-12)


def test_output_shape_formula():
    assert tconv.output_shape((8, 512, 4, 4), (512, 256, 4, 4), 2, 1) == (8, 256, 8, 8)
    assert tconv.output_shape((1, 4, 7), (4, 3, 5), 3, 2, 1, 2, groups=2) == (1, 6, (7 - 1) * 3 - 4 + 8 + 1 + 1)
    assert tconv.output_shape((2, 1, 3, 3, 3), (1, 1, 3, 3, 3), 2, 1, 1) == (2, 1, 6, 6, 6)
