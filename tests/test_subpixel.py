"""tconv.subpixel against definitions: pixel_shuffle by its index rule and vs PyTorch; the
sub-pixel form of a transposed convolution vs the dense-matrix oracle on random configs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings

import tconv
from tconv import reference
from tconv.subpixel import (
    conv_transpose_subpixel,
    pixel_shuffle,
    pixel_unshuffle,
    subpixel_geometry,
    to_subpixel,
)

from _cases import FIXED, Case, cases


@pytest.mark.parametrize("r", [(2,), (3, 2), (2, 1, 3)], ids=str)
def test_pixel_shuffle_index_rule(rng, r):
    nd = len(r)
    c = 2
    spatial = (3, 2, 2)[:nd]
    x = rng.standard_normal((2, c * int(np.prod(r)), *spatial))
    y = pixel_shuffle(x, r)
    assert y.shape == (2, c, *(i * f for i, f in zip(spatial, r)))
    for ch in range(c):
        for flat, phase in enumerate(itertools.product(*(range(f) for f in r))):
            for pos in itertools.product(*(range(i) for i in spatial)):
                out = tuple(p * f + ph for p, f, ph in zip(pos, r, phase))
                assert y[(slice(None), ch, *out)].tolist() == x[(slice(None), ch * int(np.prod(r)) + flat, *pos)].tolist()
    np.testing.assert_array_equal(pixel_unshuffle(y, r), x)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_pixel_shuffle_vs_torch(rng, r):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3 * r * r, 4, 5))
    np.testing.assert_array_equal(pixel_shuffle(x, r),
                                  torch.nn.functional.pixel_shuffle(torch.from_numpy(x), r).numpy())
    y = rng.standard_normal((2, 3, 4 * r, 2 * r))
    np.testing.assert_array_equal(pixel_unshuffle(y, r),
                                  torch.nn.functional.pixel_unshuffle(torch.from_numpy(y), r).numpy())


def _check(case: Case, dtype=np.float64):
    x, w, b = case.arrays(dtype, seed=5)
    p = case.params()
    got = conv_transpose_subpixel(x, w, b, **p)
    want = reference.conv_transpose(x.astype(np.float64), w.astype(np.float64),
                                    None if b is None else b.astype(np.float64), **p)
    assert got.shape == want.shape and got.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * (1 + np.abs(want).max(initial=0)))


EXTRA = [
    Case(2, 1, 2, 3, (5,), (3,), (2,), (3,), (1,), (1,), True),                # p > k - 1
    Case(1, 1, 2, 2, (3,), (1,), (3,), (0,), (2,), (1,), True),                # holes: k < s
    Case(1, 2, 2, 2, (4, 6), (2, 3), (3, 2), (4, 3), (0, 1), (1, 1), True),
]


@pytest.mark.parametrize("case", FIXED + EXTRA, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}-p{c.padding}")
def test_subpixel_fixed(case):
    _check(case)
    _check(case, np.float32)


@settings(max_examples=60, deadline=None)
@given(case=cases(max_size=6))
def test_subpixel_random(case):
    _check(case)


def test_to_subpixel_manual_pipeline(rng):
    """The documented recipe: conv with V and subpixel_padding, shuffle, crop."""
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((3, 2, 4, 3))
    s, p, op = (2, 3), (1, 1), (1, 2)
    v = to_subpixel(w, s, p)
    assert v.shape == (2 * 6, 3, 2, 1)   # k=4,s=2 -> 2 taps per phase; k=3,s=3 -> 1
    geo = subpixel_geometry(x.shape[2:], w.shape[2:], s, p, op)
    assert all(lo >= 0 and hi >= 0 for lo, hi in geo.padding)
    y = pixel_shuffle(tconv.conv(x, v, padding=geo.padding), s)
    want = tconv.conv_transpose(x, w, stride=s, padding=p, output_padding=op)
    assert geo.output_size == want.shape[2:]
    (b0, b1), (n0, n1) = geo.crop_start, geo.output_size
    np.testing.assert_allclose(y[:, :, b0:b0 + n0, b1:b1 + n1], want, atol=1e-12)


def test_to_subpixel_k4s2_has_no_zero_taps(rng):
    """k = 4, s = 2: every sub-kernel is 2 long and fully used (no multiply of a zero)."""
    w = rng.standard_normal((1, 1, 4))
    v = to_subpixel(w, 2, 1)
    assert v.shape == (2, 1, 2) and np.count_nonzero(v) == 4
    assert sorted(v.ravel().tolist()) == sorted(w.ravel().tolist())


def test_subpixel_errors():
    with pytest.raises(ValueError, match="divisible"):
        pixel_shuffle(np.zeros((1, 3, 2, 2)), 2)
    with pytest.raises(ValueError, match="divisible"):
        pixel_unshuffle(np.zeros((1, 1, 3, 2)), 2)
    with pytest.raises(ValueError, match="groups"):
        to_subpixel(np.zeros((3, 1, 3)), 2, groups=2)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose_subpixel(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), stride=2, output_padding=2)
