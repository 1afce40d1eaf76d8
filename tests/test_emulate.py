"""tconv.emulate against its definition: the emulation must equal the transposed convolution
(oracle: the dense matrix of tconv.reference, and tconv.conv_transpose) for every parameter
combination, and emulation_cost must count what the dense matrices contain."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import tconv
from tconv import reference
from tconv.emulate import conv_transpose_via_conv, emulation_cost, zero_insert

from _cases import FIXED, Case, cases

# Beyond FIXED: padding larger than d*(k-1) (the emulation must crop), asymmetric padding pairs.
EXTRA = [
    Case(2, 1, 2, 3, (5,), (3,), (2,), (3,), (1,), (1,), True),                 # p > d(k-1)
    Case(1, 2, 2, 2, (4, 6), (2, 3), (3, 2), (4, 3), (0, 1), (1, 1), True),      # crop both dims
    Case(1, 1, 1, 2, (3, 3, 2), (2, 1, 3), (2, 3, 1), (2, 1, 1), (1, 2, 0), (1, 1, 2), False),
]


def _check(case: Case, dtype=np.float64):
    x, w, b = case.arrays(dtype, seed=3)
    p = case.params()
    got = conv_transpose_via_conv(x, w, b, **p)
    want = reference.conv_transpose(x.astype(np.float64), w.astype(np.float64),
                                    None if b is None else b.astype(np.float64), **p)
    assert got.shape == want.shape and got.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    scale = 1 + np.abs(want).max(initial=0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(got, tconv.conv_transpose(x, w, b, **p), rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("case", FIXED + EXTRA, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}-p{c.padding}")
def test_emulation_fixed(case):
    _check(case)
    _check(case, np.float32)


@settings(max_examples=60, deadline=None)
@given(case=cases(max_size=6))
def test_emulation_random(case):
    _check(case)


def test_emulation_padding_pairs(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((3, 2, 3, 2))
    pads = ((4, 0), (0, 3))
    np.testing.assert_allclose(conv_transpose_via_conv(x, w, stride=2, padding=pads),
                               reference.conv_transpose(x, w, stride=2, padding=pads), atol=1e-12)


def test_zero_insert_definition(rng):
    x = rng.standard_normal((2, 3, 4, 3))
    z = zero_insert(x, (3, 2))
    assert z.shape == (2, 3, 10, 5)
    np.testing.assert_array_equal(z[:, :, ::3, ::2], x)
    mask = np.ones(z.shape, bool)
    mask[:, :, ::3, ::2] = False
    assert np.all(z[mask] == 0)
    np.testing.assert_array_equal(zero_insert(x, 1), x)


def test_zero_insert_notes_1d():
    assert zero_insert(np.array([[[1.0, 2.0, 3.0]]]), 2).tolist() == [[[1.0, 0.0, 2.0, 0.0, 3.0]]]


@pytest.mark.parametrize("case", FIXED + EXTRA, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_emulation_cost_counts_dense_matrix(case):
    """direct MACs = non-zeros of the dense C^T of an all-ones kernel (one per product)."""
    if case.batch == 0:
        return
    input_shape = (case.batch, case.c_in, *case.spatial)
    weight_shape = (case.c_in, case.c_out_per_group, *case.kernel)
    cost = emulation_cost(input_shape, weight_shape, **case.params())
    mat = reference.conv_transpose_matrix(np.ones(weight_shape), input_shape[1:], **{
        k: v for k, v in case.params().items()})
    assert cost.direct_macs == case.batch * np.count_nonzero(mat)
    out = case.output_spatial()
    assert cost.emulation_macs == (case.batch * case.c_out * int(np.prod(out))
                                   * case.c_in_per_group * int(np.prod(case.kernel)))
    assert cost.zero_fraction == pytest.approx(1 - cost.direct_macs / cost.emulation_macs)


def test_emulation_cost_stride2_is_mostly_zeros():
    cost = emulation_cost((1, 8, 64, 64), (8, 8, 4, 4), stride=2, padding=1)
    assert 0.74 < cost.zero_fraction < 0.76  # 3 of every 4 stretched positions are zeros
    assert emulation_cost((1, 8, 16), (8, 8, 3), stride=1, padding=1).zero_fraction < 0.1


def test_emulation_errors():
    x = np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match="stride"):
        zero_insert(x, 0)
    with pytest.raises(TypeError, match="x"):
        zero_insert(np.zeros((1, 2, 4), np.int32), 2)
    with pytest.raises(ValueError, match="weight"):
        conv_transpose_via_conv(x, np.zeros((3, 1, 2)))
