"""NaN and Inf propagate exactly as through the real operator, and float32 stays within the
documented error bound.

Oracle: ``reference.conv_transpose_structural`` / ``conv_structural`` -- the float64 sum of
exactly the products ``W * x`` each output's kernel window touches.  The dense ``C @ x`` oracle
cannot serve here: it would also multiply every NaN by the structural zeros of ``C``
(``0 * NaN = NaN``) and so spread it to outputs the operator never touches.  In IEEE arithmetic
whether a finite-valued sum is NaN, +Inf or -Inf does not depend on the summation order, so the
kernels must agree with the oracle on every such element exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from tconv import reference

from _cases import COLUMNS, FIXED, OUTER_GW, WHOLE_TILES, X_PHASES, Case, cases
from conftest import assert_matches_oracle

pytestmark = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning",
                                        "ignore:overflow:RuntimeWarning")

SPECIALS = (np.nan, np.inf, -np.inf)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many tiny calls: skip OpenMP fork-joins (test_determinism covers thread counts)."""
    saved = tconv.get_num_threads()
    tconv.set_num_threads(1)
    yield
    tconv.set_num_threads(saved)


def _sprinkle(a: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """A copy of ``a`` with ``count`` entries replaced by NaN, +Inf or -Inf."""
    a = a.copy()
    if a.size:
        for _ in range(count):
            a.flat[rng.integers(a.size)] = SPECIALS[rng.integers(3)]
    return a


def assert_same_specials(actual: np.ndarray, expected: np.ndarray, label: str) -> None:
    """NaN, +Inf and -Inf exactly where the oracle has them; finite values elsewhere."""
    assert actual.shape == expected.shape, label
    for name, pred in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        got, want = pred(actual), pred(expected)
        if not np.array_equal(got, want):
            extra, missing = np.argwhere(got & ~want), np.argwhere(want & ~got)
            raise AssertionError(f"{label}: {name} at {extra[:5].tolist()} not expected, "
                                 f"missing at {missing[:5].tolist()}")


def _abs(a):
    return None if a is None else np.abs(np.asarray(a, dtype=np.float64))


def check_specials(case: Case, dtype, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w, b = case.arrays(dtype, seed)
    x = _sprinkle(x, rng, int(rng.integers(0, 3)))
    w = _sprinkle(w, rng, int(rng.integers(0, 2)))
    if b is not None:
        b = _sprinkle(b, rng, int(rng.integers(0, 2)))
    g = _sprinkle(rng.standard_normal((case.batch, case.c_out, *case.output_spatial()))
                  .astype(dtype), rng, int(rng.integers(0, 3)))
    p = case.params()
    cp = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
              groups=case.groups)
    taps = int(np.prod(case.kernel))

    y = tconv.conv_transpose(x, w, b, **p)
    expected = reference.conv_transpose_structural(x, w, b, **p)
    assert_same_specials(y, expected, f"forward {case}")
    finite = np.isfinite(expected)
    bound = reference.conv_transpose_structural(_abs(x), _abs(w), _abs(b), **p)
    assert_matches_oracle(np.where(finite, y, 0), np.where(finite, expected, 0),
                          np.where(finite, bound, 0), case.c_in_per_group * taps + 1,
                          f"forward finite part {case}")

    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, **p)
    # C g, cropped: with output_padding >= stride (allowed when dilation > stride) the conv
    # of g has a few more positions than x, which grad_input does not include
    crop = (..., *[slice(0, n) for n in x.shape[2:]])
    assert_same_specials(gi, reference.conv_structural(g, w, **cp)[crop], f"grad_input {case}")
    _, ref_gw, ref_gb = reference.conv_transpose_backward(g, x, w, **p)  # entry by entry
    assert_same_specials(gw, ref_gw, f"grad_weight {case}")
    assert_same_specials(gb, ref_gb, f"grad_bias {case}")

    c = tconv.conv(g, w, None if b is None else np.resize(b, case.c_in), **cp)
    assert_same_specials(c, reference.conv_structural(g, w, None if b is None else
                                                      np.resize(b, case.c_in), **cp),
                         f"conv {case}")
    gc = _sprinkle(rng.standard_normal(c.shape).astype(dtype), rng, 1)
    ci, cw, cb = tconv.conv_backward(gc, g, w, **cp)
    if c.shape == x.shape:  # conv maps the fine size back to exactly the coarse size
        assert_same_specials(ci, reference.conv_transpose_structural(gc, w, **p),
                             f"conv grad_input {case}")
    _, ref_cw, ref_cb = reference.conv_backward(gc, g, w, **cp)
    assert_same_specials(cw, ref_cw, f"conv grad_weight {case}")
    assert_same_specials(cb, ref_cb, f"conv grad_bias {case}")


def test_nan_stays_in_its_window():
    """Hand-checked: one NaN input of a stride-2, kernel-3 transposed conv reaches exactly the
    three outputs 2*i + k; the dense product would smear it over all of them."""
    x = np.array([[[1.0, np.nan, 1.0, 1.0]]])
    w = np.array([[[1.0, 2.0, 0.0]]])  # a zero weight still carries the NaN (0 * NaN)
    y = tconv.conv_transpose(x, w, stride=2)
    assert np.isnan(y[0, 0]).tolist() == [False, False, True, True, True, False, False, False, False]
    assert np.isnan(reference.conv_transpose(x, w, stride=2)).all()  # why the dense oracle won't do
    assert_same_specials(y, reference.conv_transpose_structural(x, w, stride=2), "hand example")


def test_inf_signs_and_inf_minus_inf():
    x = np.array([[[np.inf, 1.0, -np.inf]]], np.float32)
    w = np.array([[[1.0, 1.0, 1.0]]], np.float32)
    y = tconv.conv_transpose(x, w)   # y[k] = sum of x[i] with i + tap = k
    assert_same_specials(y, reference.conv_transpose_structural(x, w), "signs")
    assert np.isposinf(y[0, 0, :2]).all() and np.isnan(y[0, 0, 2]) and np.isneginf(y[0, 0, 3:]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_weight_of_the_odd_phase_only(dtype):
    """k4 s2 p1: output 2i + 1 takes taps 0 and 2 (odd phase), and tap 0 of the last one reads
    past the input.  An Inf in tap 0 makes every odd output but that last one Inf; the fast
    kernel's padded zero there gives 0 * Inf = NaN, which only the exact fallback removes.  All
    of it lies in odd positions, stored interleaved with the even phase (two x phases in one
    run): the stores' Inf/NaN test must see odd positions too."""
    rng = np.random.default_rng(3)
    x = (rng.random((1, 4, 8)) + 0.5).astype(dtype)
    w = rng.standard_normal((4, 4, 4)).astype(dtype)
    w[1, 2, 0] = np.inf
    y = tconv.conv_transpose(x, w, stride=2, padding=1)
    expected = reference.conv_transpose_structural(x, w, stride=2, padding=1)
    assert np.isposinf(expected[0, 2, 1:-1:2]).all() and np.isfinite(expected[0, 2, -1])
    assert_same_specials(y, expected, "odd-phase Inf")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", FIXED, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_specials_fixed(case, dtype):
    for seed in range(2):
        check_specials(case, dtype, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", COLUMNS, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_specials_columns_path(case, dtype):
    for seed in range(3):
        check_specials(case, dtype, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", WHOLE_TILES, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_specials_whole_tile_rows(case, dtype):
    for seed in range(6):
        check_specials(case, dtype, seed)


# x phases stored together: the Inf/NaN test of the interleaved run, and bias
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", X_PHASES, ids=lambda c: f"{len(c.spatial)}d-k{c.kernel}-s{c.stride}")
def test_specials_x_phase_groups(case, dtype):
    for seed in range(3):
        check_specials(case, dtype, seed)


# grad_weight's outer-product form (the two smallest of its cases)
@pytest.mark.parametrize("case", OUTER_GW[3:], ids=lambda c: f"{len(c.spatial)}d-c{c.c_in}")
def test_specials_grad_weight_outer_form(case):
    for seed in range(2):
        check_specials(case, np.float32, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None)
@given(case=cases(max_size=5), seed=st.integers(0, 2**16))
def test_specials_random(case, dtype, seed):
    check_specials(case, dtype, seed)


def test_float32_error_bound_on_a_long_reduction():
    """A 64-channel 5x5 layer: 1600-term sums.  The documented bound is
    |y32 - y| <= 2 * terms * eps32 * sum|terms|; the observed error is far below it."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 64, 6, 6)).astype(np.float32)
    w = rng.standard_normal((64, 8, 5, 5)).astype(np.float32)
    p = dict(stride=2, padding=1)
    y = tconv.conv_transpose(x, w, **p)
    exact = reference.conv_transpose_structural(x, w, **p)
    scale = reference.conv_transpose_structural(np.abs(x), np.abs(w), **p)
    assert_matches_oracle(y, exact, scale, 64 * 25, "long reduction")
    rel = np.max(np.abs(y - exact) / scale)
    assert rel < 64 * 25 * np.finfo(np.float32).eps / 8, rel  # and well inside it
