"""A few Inf/NaN in a large call: the fast kernels run, and only the outputs they leave Inf or
NaN are recomputed by the loop nest (csrc/direct.cpp, tconv/nonfinite.hpp).

Oracles: ``reference.conv_transpose_structural`` / ``conv_structural`` (the float64 sum of
exactly the products each output's window touches) for where NaN, +Inf and -Inf land and for
the finite values; and the same call with the non-finite value replaced by 0 for the outputs
the value does not reach, which must be bitwise those of the fast kernel.  Every ISA this CPU
runs; the values sit at corners, edges and the middle of x, W, the bias and grad_output, in
1-D, 2-D and 3-D problems with padding, stride, dilation and groups, on the sub-convolution,
few-output-channel (columns) and x-phase paths.  The speed (no cliff) is measured by
``python -m tconv bench`` (its NaN row), not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import tconv
from _cases import Case
from conftest import assert_matches_oracle
from tconv import reference
from test_numerics import assert_same_specials

pytestmark = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning",
                                        "ignore:overflow:RuntimeWarning")

CASES = [
    # sub-convolutions, k4 s2 p1 (each output phase has its own taps), bias
    Case(2, 1, 10, 12, (9, 11), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),
    # few output channels per group: GEMM + col2im (columns.cpp)
    Case(8, 1, 16, 3, (5, 7), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),
    # 3-D, groups, output_padding
    Case(1, 2, 3, 5, (4, 3, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), True),
    # 1-D, dilation, stride 1, long rows
    Case(2, 1, 6, 7, (70,), (3,), (1,), (2,), (0,), (2,), False),
    # x stride 4: x phases stored together; large padding
    Case(1, 1, 5, 9, (4, 13), (8, 8), (4, 4), (3, 5), (0, 0), (1, 1), True),
    # grouped, dilation > stride, op >= stride
    Case(2, 2, 4, 3, (6, 7), (3, 3), (1, 2), (1, 2), (1, 2), (2, 3), True),
]

SPECIALS = (np.nan, np.inf, -np.inf)


def _positions(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """First and last element, the middle, and an edge of the last spatial axis."""
    last = tuple(n - 1 for n in shape)
    mid = tuple(n // 2 for n in shape)
    edge = (*mid[:-1], shape[-1] - 1)
    return [tuple(0 for _ in shape), last, mid, edge]


def _abs(a):
    return None if a is None else np.abs(np.asarray(a, dtype=np.float64))


def _check_forward(case: Case, x, w, b, label: str) -> None:
    p = case.params()
    y = tconv.conv_transpose(x, w, b, **p)
    expected = reference.conv_transpose_structural(x, w, b, **p)
    assert_same_specials(y, expected, f"forward {label}")
    fin = np.isfinite(expected)
    bound = reference.conv_transpose_structural(_abs(x), _abs(w), _abs(b), **p)
    taps = int(np.prod(case.kernel))
    assert_matches_oracle(np.where(fin, y, 0), np.where(fin, expected, 0),
                          np.where(fin, bound, 0), case.c_in_per_group * taps + 1,
                          f"forward finite part {label}")


def _check_backward(case: Case, g, x, w, label: str) -> None:
    p = case.params()
    cp = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation,
          "groups": case.groups}
    gi, gw, _ = tconv.conv_transpose_backward(g, x, w, **p)
    crop = (..., *[slice(0, n) for n in x.shape[2:]])
    expected = reference.conv_structural(g, w, **cp)[crop]
    assert_same_specials(gi, expected, f"grad_input {label}")
    fin = np.isfinite(expected)
    bound = reference.conv_structural(_abs(g), _abs(w), **cp)[crop]
    assert_matches_oracle(np.where(fin, gi, 0), np.where(fin, expected, 0),
                          np.where(fin, bound, 0), case.c_out_per_group * int(np.prod(case.kernel)),
                          f"grad_input finite part {label}")
    _, ref_gw, _ = reference.conv_transpose_backward(g, x, w, **p)
    assert_same_specials(gw, ref_gw, f"grad_weight {label}")
    fin = np.isfinite(ref_gw)
    _, bound_gw, _ = reference.conv_transpose_backward(_abs(g), _abs(x), _abs(w), **p)
    terms = case.batch * int(np.prod(x.shape[2:]))
    assert_matches_oracle(np.where(fin, gw, 0), np.where(fin, ref_gw, 0),
                          np.where(fin, bound_gw, 0), terms, f"grad_weight finite part {label}")
    c = tconv.conv(g, w, **cp)
    assert_same_specials(c, reference.conv_structural(g, w, **cp), f"conv {label}")
    _, cw, _ = tconv.conv_backward(c, g, w, **cp)
    _, ref_cw, _ = reference.conv_backward(c, g, w, **cp)
    assert_same_specials(cw, ref_cw, f"conv grad_weight {label}")


@pytest.fixture(params=tconv.supported_isas())
def isa(request):
    """Each ISA this CPU runs, restored afterwards (as in test_isa)."""
    saved = tconv.isa()
    try:
        tconv.set_isa(request.param)
        yield request.param
    finally:
        tconv.set_isa(saved)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c.spatial)}d-c{c.c_in}x{c.c_out}")
def test_specials_at_corners_edges_and_middle(isa, case, dtype):
    x, w, b = case.arrays(dtype, seed=7)
    g = np.random.default_rng(8).standard_normal(
        (case.batch, case.c_out, *case.output_spatial())).astype(dtype)
    i = 0
    for name in ("x", "w", "b", "g"):
        base = {"x": x, "w": w, "b": b, "g": g}[name]
        if base is None:
            continue
        for pos in _positions(base.shape):
            a = base.copy()
            a[pos] = SPECIALS[i % 3]
            i += 1
            label = f"{isa} {name}{pos}={a[pos]} {case}"
            xx, ww, bb, gg = (a if name == n else v for n, v in
                              (("x", x), ("w", w), ("b", b), ("g", g)))
            _check_forward(case, xx, ww, bb, label)
            if name != "b":
                _check_backward(case, gg, xx, ww, label)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c.spatial)}d-c{c.c_in}x{c.c_out}")
def test_outputs_a_nan_does_not_reach_keep_the_fast_result(isa, case):
    """Outputs outside a NaN input's window are bitwise those of the same call with a 0 there:
    the fast kernel computed them and nothing recomputed them."""
    x, w, b = case.arrays(np.float32, seed=3)
    p = case.params()
    pos = _positions(x.shape)[2]
    xn, x0 = x.copy(), x.copy()
    xn[pos], x0[pos] = np.nan, 0.0
    y, y0 = tconv.conv_transpose(xn, w, b, **p), tconv.conv_transpose(x0, w, b, **p)
    reached = np.isnan(reference.conv_transpose_structural(xn, w, b, **p))
    assert reached.any()
    assert np.isnan(y[reached]).all()
    assert np.array_equal(y[~reached].view(np.uint32), y0[~reached].view(np.uint32))
    # the gather (conv) of a grad_output with one NaN, likewise
    cp = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation,
          "groups": case.groups}
    g = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    gpos = _positions(g.shape)[2]
    gn, g0 = g.copy(), g.copy()
    gn[gpos], g0[gpos] = np.nan, 0.0
    c, c0 = tconv.conv(gn, w, **cp), tconv.conv(g0, w, **cp)
    reached = np.isnan(reference.conv_structural(gn, w, **cp))
    assert np.isnan(c[reached]).all()
    assert np.array_equal(c[~reached].view(np.uint32), c0[~reached].view(np.uint32))


def test_repaired_results_do_not_depend_on_the_thread_count(isa):
    """Large enough for the repair to run in parallel: NaN/Inf in x, W and grad_output."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 24, 20, 18)).astype(np.float32)
    w = rng.standard_normal((24, 16, 4, 4)).astype(np.float32)
    x[1, 5, 0, 0] = np.nan
    x[2, 7, 10, 17] = np.inf
    w[3, 2, 1, 3] = -np.inf  # a whole output plane per sample: repaired plane by plane
    p = {"stride": 2, "padding": 1}
    g = rng.standard_normal((3, 16, 40, 36)).astype(np.float32)
    g[0, 4, 39, 0] = np.nan

    def run():
        y = tconv.conv_transpose(x, w, **p)
        return (y, *tconv.conv_transpose_backward(g, x, w, **p), tconv.conv(g, w, **p))

    saved = tconv.get_num_threads()
    try:
        tconv.set_num_threads(1)
        one = run()
        tconv.set_num_threads(2)
        two = run()
    finally:
        tconv.set_num_threads(saved)
    for a, b in zip(one, two):
        if a is not None:
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    assert np.isnan(one[0]).any() and np.isfinite(one[0]).any()


def test_a_finite_overflow_is_kept_whichever_side_is_scanned(isa):
    """Finite operands whose sums overflow: the fast kernel's Inf/NaN is the result both when
    the operands are scanned first and when the result is tested after the fast kernel (the
    side scanned depends only on the sizes and the algorithm: the forward's sub-convolutions
    always test after, so here the forward checks that side and the gather both).  Padding
    crops the output of a stride-1 layer
    without changing the sums of the outputs left, so the cropped call (small result: tested
    after) must equal the middle of the uncropped one (large result: operands scanned)."""
    rng = np.random.default_rng(21)
    overflowed = 0
    for _ in range(60):
        c_in, c_out, k = int(rng.integers(1, 5)), int(rng.integers(1, 40)), int(rng.integers(2, 4))
        x = rng.uniform(-3e38, 3e38, (1, c_in, 6, 6)).astype(np.float32)
        w = rng.choice([-2.0, -1.0, 1.0, 2.0], size=(c_in, c_out, k, k)).astype(np.float32)
        p = k - 1
        full = tconv.conv_transpose(x, w)
        cropped = tconv.conv_transpose(x, w, padding=p)
        mid = full[:, :, p:-p, p:-p]
        assert np.array_equal(mid.view(np.uint32), cropped.view(np.uint32))
        overflowed += int(np.isinf(cropped).sum())
        # the gather: conv with padding p adds border outputs around the unpadded ones
        wc = w.transpose(1, 0, 2, 3).copy()  # conv weight (c_out, c_in, k, k) for input x
        small = tconv.conv(x, wc)
        padded = tconv.conv(x, wc, padding=p)
        assert np.array_equal(padded[:, :, p:-p, p:-p].view(np.uint32), small.view(np.uint32))
        overflowed += int(np.isinf(small).sum())
    assert overflowed > 0  # the draws do overflow


# The operand scan (all_finite, csrc/direct.cpp) splits more than 2^18 values over the
# threads; each share is scanned by the active ISA's clone (a vector body, then a scalar tail).
_SCAN_SPLIT = 1 << 18


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_operand_scan_finds_one_special_anywhere(isa, threads, dtype):
    """One NaN, +Inf or -Inf at each thread share's first and last values, inside a vector
    body and in a scalar tail, of arrays below, at and past the split: the scan reports it; the
    same arrays all finite (with the largest finite values and subnormals) pass."""
    from tconv import _core

    rng = np.random.default_rng(37)
    saved = tconv.get_num_threads()
    try:
        tconv.set_num_threads(threads)
        for size in (1, 17, _SCAN_SPLIT - 1, _SCAN_SPLIT, _SCAN_SPLIT + 1, 3 * _SCAN_SPLIT + 37):
            a = rng.standard_normal(size).astype(dtype)
            a[::7] = np.finfo(dtype).max
            a[3::11] = -np.finfo(dtype).tiny / 2
            assert _core._all_finite(a), f"{isa} {size} finite"
            parts = threads if size > _SCAN_SPLIT else 1
            cuts = [size * t // parts for t in range(parts + 1)]
            spots = {0, size - 1, size // 2}
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                spots |= {lo, lo + 1, lo + 16, hi - 1, hi - 2, hi - 9, hi - 17}
            for i, special in enumerate(sorted(s for s in spots if 0 <= s < size)):
                b = a.copy()
                b[special] = SPECIALS[i % 3]
                assert not _core._all_finite(b), f"{isa} {size} {b[special]} at {special}"
    finally:
        tconv.set_num_threads(saved)
