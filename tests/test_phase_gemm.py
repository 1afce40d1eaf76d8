"""The phase GEMM (csrc/gemm/engine.hpp: phase_gemm_suits, run_phase_gemm): transposed
convolutions whose kernel equals the stride on every axis, without padding or dilation, run as
one GEMM per image and group with (output channel, phase) rows, stored with the phases
interleaved; their gather (conv with kernel = stride, grad_input) as one GEMM with
(channel, phase) K rows packed from the strided pixels.

Oracles: the float64 dense oracle (tconv.reference) within the recursive-summation bound, and
torch where installed; bitwise equality across thread counts; the planner's choice on both
sides of the rule (kernel = stride vs stride +- 1, padding, dilation, depthwise, 1x1).
Sizes cross the engine's tiles (mr 4/6/12, nr 8/16/32, wide <= 3 rows), the K block kc (256 f32
/ 128 f64) and the column block nc = 512; channel counts are not multiples of the tiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tconv
from _isas import assert_bitwise_across_threads, isa_params
from conftest import assert_matches_oracle, torch_or_skip
from tconv import reference

ISAS = tconv.supported_isas()
KC = {np.float32: 256, np.float64: 128}


def _plan(op: str, batch: int, c_in: int, c_out: int, spatial: tuple[int, ...],
          kernel: tuple[int, ...], **kw: Any) -> tconv.Plan:
    return tconv.plan(op, (batch, c_in, *spatial), (c_in, c_out // kw.get("groups", 1), *kernel),
                      **kw)


def _is_phase(p: tconv.Plan) -> bool:
    # "phases", or "phases+pipelined" where B is large (tests/test_gemm_pipeline.py)
    return p.algorithm == "gemm" and p.input.split("+")[0] == "phases"


@pytest.mark.parametrize("op", ["conv_transpose", "grad_input", "conv"])
def test_planner_picks_it_exactly_for_kernel_equal_stride(op: str) -> None:
    def plan(kernel, stride, **kw):
        nd = len(kernel)
        if op == "conv":  # conv's own shapes: input (fine), weight (C_out, C_in, *k)
            return tconv.plan("conv", (1, 8, *([24] * nd)),
                              (6, 8 // kw.get("groups", 1), *kernel), stride=stride, **kw)
        return _plan(op, 1, 8, 6, (12,) * nd, kernel, stride=stride, **kw)

    yes = [((2,), 2, {}), ((4,), 4, {}), ((2, 2), 2, {}), ((2, 3), (2, 3), {}),
           ((2, 2, 2), 2, {}), ((1, 2), (1, 2), {}), ((8,), 8, {}),
           ((2, 2), 2, {"groups": 2}), ((3, 3), 3, {"dilation": (1, 1)})]
    if op == "conv_transpose":
        yes.append(((2, 2), 2, {"output_padding": 1}))
    no = [((3,), 2, {}), ((2,), 1, {}), ((2,), 3, {}), ((2, 2), 2, {"padding": 1}),
          ((2, 2), (2, 1), {}), ((2,), 2, {"dilation": 2}), ((4, 4), 2, {})]
    for kernel, stride, kw in yes:
        assert _is_phase(plan(kernel, stride, **kw)), (kernel, stride, kw)
    for kernel, stride, kw in no:
        p = plan(kernel, stride, **kw)
        assert not _is_phase(p) and p.algorithm != "gemm", (kernel, stride, kw)
    # 1x1 stride 1 stays the plain GEMM; one channel per group stays depthwise
    p = plan((1, 1), 1)
    assert p.algorithm == "gemm" and p.input == ""
    dw = _plan("conv_transpose", 1, 4, 4, (9, 9), (2, 2), stride=2, groups=4)
    assert dw.algorithm == "depthwise"


def test_plan_reports_the_one_gemm() -> None:
    with tconv.threads(2):
        p = tconv.plan("conv_transpose", (8, 256, 64, 64), (256, 128, 2, 2), stride=2)
        g = tconv.plan("grad_input", (2, 128, 16, 16, 16), (128, 64, 2, 2, 2), stride=2)
    assert _is_phase(p) and p.kernel == "scatter"
    assert p.flops == 2.0 * 8 * 128 * 4 * 256 * 64 * 64
    # its x (32 MiB) pipelines from 24 L2s down (tests/test_gemm_pipeline.py)
    piped = 8 * 256 * 64 * 64 * 4 >= 24 * tconv._core.l2_cache_bytes()
    assert f"gemm/phases{'+pipelined' if piped else ''} (scatter)" in str(p)
    assert _is_phase(g) and g.kernel == "gather"
    assert g.flops == 2.0 * 2 * 128 * 64 * 8 * 16 ** 3
    assert p.parallel and p.threads == 2 and p.tasks >= 8


def _arrays(rng: np.random.Generator, dtype: Any, batch: int, c_in: int, c_out: int,
            spatial: tuple[int, ...], kernel: tuple[int, ...], groups: int,
            output_padding: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    x = rng.standard_normal((batch, c_in, *spatial)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    fine = tuple(i * k + o for i, k, o in zip(spatial, kernel, output_padding))
    g = rng.standard_normal((batch, c_out, *fine)).astype(dtype)
    return x, w, b, g


def _check(isa: str, dtype: Any, batch: int, c_in: int, c_out: int, spatial: tuple[int, ...],
           kernel: tuple[int, ...], groups: int = 1, output_padding: tuple[int, ...] | None = None,
           bias: bool = True) -> None:
    op = output_padding or (0,) * len(kernel)
    rng = np.random.default_rng(c_in * 1000 + c_out * 7 + int(np.prod(spatial)) + sum(kernel))
    x, w, b, g = _arrays(rng, dtype, batch, c_in, c_out, spatial, kernel, groups, op)
    bb = b if bias else None
    taps = int(np.prod(kernel))
    kw: dict[str, Any] = {"stride": kernel, "groups": groups}
    label = f"{isa} {dtype.__name__} N{batch} {c_in}->{c_out} {spatial} k{kernel} g{groups} op{op}"
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        assert _is_phase(_plan("conv_transpose", batch, c_in, c_out, spatial, kernel,
                               output_padding=op, **kw)), label
        y = tconv.conv_transpose(x, w, bb, output_padding=op, **kw)
        want = reference.conv_transpose(x.astype(np.float64), w.astype(np.float64),
                                        None if bb is None else bb.astype(np.float64),
                                        output_padding=op, **kw)
        mag = reference.conv_transpose(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                                       None if bb is None else np.abs(bb).astype(np.float64),
                                       output_padding=op, **kw)
        assert_matches_oracle(y, want, mag, c_in // groups + 1, "forward " + label)
        # the gather: conv_transpose's grad_input (the output_padding border is not read)
        gi = tconv.conv_transpose_backward(g, x, w, output_padding=op,
                                           output_mask=(True, False, False), **kw)[0]
        want = reference.conv(g.astype(np.float64), w.astype(np.float64), None, **kw)
        mag = reference.conv(np.abs(g).astype(np.float64), np.abs(w).astype(np.float64), None,
                             **kw)
        assert_matches_oracle(gi, want, mag, c_out // groups * taps, "grad_input " + label)
        # conv with kernel = stride, a bias of its own
        xc = tconv.conv(g, w, bb[:c_in] if bias and c_out >= c_in else None, **kw)
        cb = None if not (bias and c_out >= c_in) else bb[:c_in].astype(np.float64)
        want = reference.conv(g.astype(np.float64), w.astype(np.float64), cb, **kw)
        mag = reference.conv(np.abs(g).astype(np.float64), np.abs(w).astype(np.float64),
                             None if cb is None else np.abs(cb), **kw)
        assert_matches_oracle(xc, want, mag, c_out // groups * taps + 1, "conv " + label)
    finally:
        tconv.set_isa(before)


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dims_groups_output_padding_and_batch(isa: str, dtype: Any) -> None:
    _check(isa, dtype, 2, 5, 7, (9,), (2,))
    _check(isa, dtype, 1, 3, 4, (13,), (4,), output_padding=(3,))
    _check(isa, dtype, 3, 6, 9, (5, 7), (2, 2), groups=3, output_padding=(1, 0))
    _check(isa, dtype, 2, 16, 8, (6, 5), (2, 3), groups=2, output_padding=(0, 2), bias=False)
    _check(isa, dtype, 2, 8, 6, (3, 4, 5), (2, 2, 2), groups=2, output_padding=(1, 0, 1))
    _check(isa, dtype, 1, 12, 40, (4, 4, 4), (2, 1, 2))
    _check(isa, dtype, 1, 4, 3, (17, 3), (3, 2), output_padding=(2, 1))  # few outputs
    _check(isa, dtype, 2, 3, 1, (11,), (8,), output_padding=(5,))
    _check(isa, dtype, 0, 4, 6, (5, 5), (2, 2))
    _check(isa, dtype, 1, 1, 2, (1,), (2,))
    _check(isa, dtype, 1, 2, 3, (1, 1, 1), (2, 2, 2))


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pixel_planes_interleave_rows_of_two_channels(isa: str, dtype: Any) -> None:
    """A coarse extent of one pixel: each output channel is one run of `stride` values, so a
    tile that starts at an odd row interleaves the last phase of one channel with the first
    of the next, whose biases differ (M = 26 / 52 rows start tiles at odd rows on every tile
    height: 12, 6 and 4)."""
    _check(isa, dtype, 2, 5, 13, (1,), (2,))
    _check(isa, dtype, 2, 5, 13, (1,), (4,))
    _check(isa, dtype, 1, 3, 13, (1, 1), (1, 2))


@pytest.mark.parametrize("isa", isa_params())
def test_rows_cross_mr_and_pixels_cross_nr_and_nc(isa: str) -> None:
    # forward M = C_out x taps around 3 (wide), 4, 6, 12, 13, 24, 25; gather M = C_in
    for m in (1, 2, 3, 5, 6, 7, 12, 13, 25):
        _check(isa, np.float32, 1, 3, m, (19,), (2,))
        _check(isa, np.float32, 1, m, 3, (19,), (2,))
    for p in (7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 511, 512, 513, 1027):
        _check(isa, np.float32, 1, 5, 7, (p,), (2,), output_padding=(1,))


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depth_crosses_kc(isa: str, dtype: Any) -> None:
    kc = KC[dtype]
    for k in (kc - 1, kc, kc + 1, 2 * kc + 3):
        _check(isa, dtype, 1, k, 6, (21,), (2,))            # forward K = C_in
        _check(isa, dtype, 1, 4, (k + 1) // 2, (21,), (2,))  # gather K = C_out x 2 taps
    _check(isa, dtype, 1, 3, 1, (9,), (kc // 8,))           # gather K = kc // 8 taps


def _thread_results(dtype: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    out = []
    for batch, c_in, c_out, spatial, kernel, groups in [
            (2, 300, 50, (30, 20), (2, 2), 1), (3, 40, 27, (9, 61), (2, 2), 1),
            (2, 64, 48, (6, 7, 8), (2, 2, 2), 2), (1, 8, 200, (70,), (4,), 1)]:
        op = (1,) * len(kernel)
        x, w, b, g = _arrays(rng, dtype, batch, c_in, c_out, spatial, kernel, groups, op)
        kw: dict[str, Any] = {"stride": kernel, "groups": groups, "output_padding": op}
        out.append(tconv.conv_transpose(x, w, b, **kw))
        out.append(tconv.conv_transpose_backward(g, x, w, output_mask=(True, False, False),
                                                 **kw)[0])
    return out


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_across_threads(isa: str, dtype: Any) -> None:
    assert_bitwise_across_threads(isa, lambda: _thread_results(dtype))


def test_non_finite_reach_exactly_their_outputs() -> None:
    """A NaN in x reaches only its pixel's 2x2 outputs, an Inf weight its channel's phase, an
    Inf bias its channel including the output_padding border; a NaN in grad_output only the
    input pixel whose window holds it."""
    rng = np.random.default_rng(5)
    x, w, b, g = _arrays(rng, np.float32, 1, 300, 20, (9, 10), (2, 2), 1, (1, 1))
    x[0, 7, 3, 4] = np.nan
    y = tconv.conv_transpose(x, w, b, stride=2, output_padding=1)
    bad = ~np.isfinite(y)
    assert bad[0, :, 6:8, 8:10].all() and bad.sum() == 20 * 4
    x[0, 7, 3, 4] = 1.0
    w[5, 3, 1, 0] = np.inf
    b[11] = -np.inf
    y = tconv.conv_transpose(x, w, b, stride=2, output_padding=1)
    want = reference.conv_transpose_structural(x.astype(np.float64), w.astype(np.float64),
                                    b.astype(np.float64), stride=2, output_padding=1)
    np.testing.assert_array_equal(~np.isfinite(y), ~np.isfinite(want))
    assert bad.shape == y.shape and np.isneginf(y[0, 11, -1, :]).all()
    g[0, 4, 5, 6] = np.nan
    gi = tconv.conv(g, w, None, stride=2)
    want = reference.conv_structural(g.astype(np.float64), w.astype(np.float64), None, stride=2)
    np.testing.assert_array_equal(~np.isfinite(gi), ~np.isfinite(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(gi[finite], want[finite], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(dtype: Any) -> None:
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    tol = {np.float32: 1e-4, np.float64: 1e-10}[dtype]
    for batch, c_in, c_out, spatial, kernel, groups, op in [
            (2, 6, 8, (7, 5), (2, 2), 2, (1, 0)), (1, 5, 3, (4, 3, 5), (2, 2, 2), 1, (0, 1, 1)),
            (3, 4, 6, (13,), (4,), 1, (2,)), (2, 10, 4, (6, 6), (3, 3), 2, (0, 0))]:
        x, w, b, g = _arrays(rng, dtype, batch, c_in, c_out, spatial, kernel, groups, op)
        kw: dict[str, Any] = {"stride": kernel, "groups": groups}
        nd = len(kernel)
        ct = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
              3: torch.nn.functional.conv_transpose3d}[nd]
        cv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
              3: torch.nn.functional.conv3d}[nd]
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        tx.requires_grad_(True)
        ty = ct(tx, tw, tb, output_padding=op, **kw)
        ty.backward(torch.from_numpy(g))
        y = tconv.conv_transpose(x, w, b, output_padding=op, **kw)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
        gi = tconv.conv_transpose_backward(g, x, w, output_padding=op,
                                           output_mask=(True, False, False), **kw)[0]
        assert tx.grad is not None
        np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=tol, atol=tol)
        xc = tconv.conv(g, w, b[:c_in] if c_out >= c_in else None, **kw)
        txc = cv(torch.from_numpy(g), tw, tb[:c_in] if c_out >= c_in else None, **kw)
        np.testing.assert_allclose(xc, txc.numpy(), rtol=tol, atol=tol)
