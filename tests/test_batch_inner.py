"""Batch-inner sub-convolutions (csrc/batch_inner.cpp): many small images whose terms often
read padding run as the problem one dimension up with the batch innermost, so that the direct
path's tiles (one pixel of up to nr images) skip the taps that read padding.

The choice depends on the batch and the image size, so it must never change a bit: every test
here compares a batch-inner call with the same images run one at a time (batch 1 never runs
batch-inner), bit for bit, on every ISA; and the rule against an independent count of the
terms."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import tconv
from tconv import reference

ISAS = tconv.supported_isas()
MIN_BATCH, MAX_PIXELS, WASTE = 32, 256, 1 / 6  # kMinBatch, kMaxPixels, 1 / kWasteDiv


def _terms(coarse: int, fine: int, k: int, s: int, p: int, d: int,
           transposed: bool) -> tuple[int, int]:
    """(all, inside) of one axis: the (destination, tap) pairs the sub-convolutions multiply
    and those whose source lies inside, counted from the definition (forward: output o gets
    tap k when o + p - k d is a multiple of s; gather: output i reads i s - p + k d)."""
    total = inside = 0
    for t in range(k):
        if transposed:
            for o in range(fine):
                num = o + p - t * d
                if num % s == 0:
                    total += 1
                    inside += 0 <= num // s < coarse
        else:
            for i in range(coarse):
                total += 1
                inside += 0 <= i * s - p + t * d < fine
    return total, inside


def _expect(batch: int, c_out: int, spatial: tuple[int, ...], kernel: tuple[int, ...],
            stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
            transposed: bool) -> bool:
    fine = tuple((i - 1) * s - 2 * p + d * (k - 1) + 1
                 for i, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))
    if len(spatial) == 3 and (spatial[0], kernel[0], padding[0], fine[0]) != (1, 1, 0, 1):
        return False  # 3-D (one plane of depth, kernel 1 and no padding on it is 2-D)
    if batch < MIN_BATCH:
        return False
    if max(np.prod(spatial), np.prod(fine)) > MAX_PIXELS:
        return False
    if transposed and c_out <= 4:  # the columns path
        return False
    total = inside = 1
    for a in range(len(spatial)):
        t, i = _terms(spatial[a], fine[a], kernel[a], stride[a], padding[a], dilation[a],
                      transposed)
        total, inside = total * t, inside * i
    return total > 0 and (total - inside) >= WASTE * total


CASES = [  # batch, c_in, c_out, spatial, kernel, stride, padding, dilation
    (64, 16, 8, (4, 4), (4, 4), (2, 2), (1, 1), (1, 1)),     # DCGAN 512->256's shape
    (32, 8, 6, (2, 3), (4, 4), (2, 2), (1, 1), (1, 1)),
    (31, 8, 6, (2, 3), (4, 4), (2, 2), (1, 1), (1, 1)),     # one image short
    (40, 8, 6, (8, 8), (4, 4), (2, 2), (1, 1), (1, 1)),     # 12 % padding terms: not chosen
    (33, 3, 5, (3,), (4,), (2,), (1,), (1,)),                # 1-D, exactly 1/6
    (33, 3, 5, (4,), (4,), (2,), (1,), (1,)),                # 1/8
    (48, 4, 7, (5, 5), (3, 3), (1, 1), (1, 1), (1, 1)),      # stride 1 "same"
    (35, 2, 5, (16, 16), (3, 3), (1, 1), (1, 1), (1, 1)),    # 256 pixels, 1/8
    (32, 2, 5, (16,), (3,), (1,), (8,), (8,)),               # dilated "same"
    (32, 2, 5, (257,), (3,), (1,), (128,), (128,)),          # past the pixel limit
    (36, 9, 5, (3, 2), (5, 3), (3, 2), (2, 1), (1, 2)),      # mixed strides and dilations
    (32, 10, 3, (4, 4), (4, 4), (2, 2), (1, 1), (1, 1)),     # 3 outputs: forward on columns
    (32, 4, 6, (1, 2, 2), (1, 4, 4), (2, 2, 2), (0, 1, 1), (1, 1, 1)),  # 3-D, one plane: 2-D
    (32, 4, 6, (2, 2, 2), (2, 4, 4), (2, 2, 2), (0, 1, 1), (1, 1, 1)),  # 3-D
    # the gather's weights (40 x 48 x 16) outgrow its output (32 x 40 x 4): one slab still
    (32, 40, 48, (2, 2), (4, 4), (2, 2), (1, 1), (1, 1)),
]


def _ids(case: tuple[Any, ...]) -> str:
    return "n{}-{}-{}".format(case[0], "x".join(map(str, case[3])), "k" + "x".join(
        map(str, case[4])))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_rule_counts_the_padding_terms(case: tuple[Any, ...]) -> None:
    n, ci, co, sp, k, s, p, d = case
    kw = dict(stride=s, padding=p, dilation=d)
    for op, transposed in (("conv_transpose", True), ("grad_input", False)):
        plan = tconv.plan(op, (n, ci, *sp), (ci, co, *k), **kw)
        got = plan.input.startswith("batch_inner")
        assert got == _expect(n, co, sp, k, s, p, d, transposed), (op, plan)
        if got:  # the copies of the source and the destination count in the workspace
            one = tconv.plan(op, (1, ci, *sp), (ci, co, *k), **kw)
            assert not one.input.startswith("batch_inner")
            fine = [(i - 1) * a - 2 * b + c * (e - 1) + 1 for i, a, b, c, e in zip(sp, s, p, d, k)]
            copies = n * (ci * int(np.prod(sp)) + co * int(np.prod(fine))) * 4
            assert plan.workspace_bytes >= copies
            if not transposed:  # and the gather's whole packed weight, in one slab
                assert plan.blocks["slabs"] == 1, plan
                assert plan.workspace_bytes >= copies + ci * co * int(np.prod(k)) * 4


def _per_image(f: Any, *arrays: np.ndarray) -> np.ndarray:
    return np.concatenate([f(*(a[i:i + 1] for a in arrays)) for i in range(len(arrays[0]))])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_same_bits_as_one_image_at_a_time(case: tuple[Any, ...], dtype: Any, isa: str) -> None:
    """Forward (with bias), conv (the gather, with bias) and grad_input, batch-inner or not:
    bit for bit the per-image results, and close to the float64 structural reference."""
    n, ci, co, sp, k, s, p, d = case
    kw = dict(stride=s, padding=p, dilation=d)
    rng = np.random.default_rng(n * 7 + len(sp))
    x = rng.standard_normal((n, ci, *sp)).astype(dtype)
    w = rng.standard_normal((ci, co, *k)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    wc = rng.standard_normal((ci, co, *k)).astype(dtype)
    bc = rng.standard_normal(ci).astype(dtype)
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        y = tconv.conv_transpose(x, w, b, **kw)
        g = rng.standard_normal(y.shape).astype(dtype)
        assert np.array_equal(y, _per_image(lambda a: tconv.conv_transpose(a, w, b, **kw), x))
        c = tconv.conv(g, wc, bc, **kw)
        assert np.array_equal(c, _per_image(lambda a: tconv.conv(a, wc, bc, **kw), g))
        gi = tconv.conv_transpose_backward(g, x, w, **kw, output_mask=(True, False, False))[0]
        gi1 = _per_image(lambda a, b_: tconv.conv_transpose_backward(
            a, b_, w, **kw, output_mask=(True, False, False))[0], g, x)
        assert np.array_equal(gi, gi1)
    finally:
        tconv.set_isa(before)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    want = reference.conv_transpose_structural(x.astype(np.float64), w.astype(np.float64),
                                               b.astype(np.float64), **kw)
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol * ci * int(np.prod(k)))
    want = reference.conv_structural(g.astype(np.float64), wc.astype(np.float64),
                                     bc.astype(np.float64), **kw)
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol * co * int(np.prod(k)))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count_same_bits(threads: int) -> None:
    n, ci, co, sp, k, s, p, d = CASES[0]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, ci, *sp)).astype(np.float32)
    w = rng.standard_normal((ci, co, *k)).astype(np.float32)
    base = tconv.conv_transpose(x, w, stride=s, padding=p)
    with tconv.threads(threads):
        assert np.array_equal(tconv.conv_transpose(x, w, stride=s, padding=p), base)


def test_infinite_weights_as_one_image_at_a_time() -> None:
    """An Inf weight that multiplies only padding for some outputs: batch-inner skips those
    terms, the per-image path finds the NaN it made and repairs it; both give the structural
    reference's Inf/NaN pattern and values."""
    n, ci, co, sp, k, s, p, d = CASES[0]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((n, ci, *sp))
    w = rng.standard_normal((ci, co, *k))
    w[1, 2, 0, 0] = np.inf
    for dtype in (np.float32, np.float64):
        xs, ws = x.astype(dtype), w.astype(dtype)
        y = tconv.conv_transpose(xs, ws, stride=s, padding=p)
        y1 = _per_image(lambda a, w_=ws: tconv.conv_transpose(a, w_, stride=s, padding=p), xs)
        want = reference.conv_transpose_structural(x, w, None, stride=s, padding=p)
        assert np.array_equal(np.isnan(y), np.isnan(want))
        assert np.array_equal(np.isnan(y1), np.isnan(want))
        assert np.array_equal(np.isinf(y), np.isinf(want))
        fin = np.isfinite(want)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(y[fin], want[fin], rtol=tol, atol=tol * 50)


def test_cases_cover_both_sides() -> None:
    chosen = [_expect(c[0], c[2], c[3], c[4], c[5], c[6], c[7], t)
              for c, t in itertools.product(CASES, (True, False))]
    assert any(chosen) and not all(chosen)
