"""Boundary sweep: every constant in csrc/ that switches the kernels' behaviour, straddled.

TABLE lists each constant (tile sizes per ISA, row chunks, K blocks, L1/L2 block and band
sizes, flop thresholds between serial and parallel runs, the few-output-channel (columns) and
outer-product grad_weight cut-offs, ...) with where it lives and the geometry family that
drives it.  For every value c of a row the sweep runs the family's geometries at c - 1, c,
c + 1 and 2c + 3, and the same sizes as a low/high/one-sided padding and as a crop
(family "pad"), through every operation -- the forward conv_transpose, the gather (conv and
grad_input), grad_weight and resize_conv -- on every ISA of ``tconv.supported_isas()``,
against the float64 structural oracle (tests/_structural.py, tconv.reference).

test_table_covers_csrc fails when csrc/ gains a named constant (``constexpr ... kName``), a
tile-table instantiation or a numeric literal (>= 3, per file) that no row claims: add a row
(and, if it switches behaviour, a family that straddles it).  Rows whose values are 0 are
inert (a constant that never changes which code runs, e.g. a prefetch distance or an
alignment); their ``why`` says so.  The scan works per file and per literal value, so a new
threshold that reuses a value already claimed in the same file is not caught.

Geometries whose cost is large are marked slow (CI runs them with ``-m slow``).
``TCONV_BOUNDARY_QUICK=1`` keeps only the values c - 1, c, c + 1 of the cheaper geometries,
with padding/crop probes only for the rows whose family is "pad" (tools/sanitize.sh uses it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tconv
from _structural import grad_weight as grad_weight_oracle
from conftest import assert_matches_oracle, gemm_block_columns
from tconv import _core, reference

ISAS = tconv.supported_isas()
CSRC = Path(__file__).resolve().parent.parent / "csrc"
QUICK = os.environ.get("TCONV_BOUNDARY_QUICK", "") not in ("", "0")


# ---- one problem, every operation --------------------------------------------------------


@dataclass(frozen=True)
class Geo:
    """A conv_transpose problem (coarse -> fine); conv and grad_input run the same geometry
    as a gather (fine -> coarse), grad_weight its weight gradient."""

    coarse: tuple[int, ...]
    c_in: int = 2
    c_out: int = 3
    kernel: tuple[int, ...] = (3,)
    stride: tuple[int, ...] = (1,)
    padding: tuple[tuple[int, int], ...] = ((0, 0),)
    dilation: tuple[int, ...] = (1,)
    output_padding: tuple[int, ...] = (0,)
    groups: int = 1
    batch: int = 1
    ops: tuple[str, ...] = ("forward", "grad_input", "grad_weight", "conv", "resize_conv")

    @property
    def fine(self) -> tuple[int, ...]:
        return tuple((i - 1) * s - lo - hi + d * (k - 1) + op + 1
                     for i, k, s, (lo, hi), d, op in zip(self.coarse, self.kernel, self.stride,
                                                         self.padding, self.dilation,
                                                         self.output_padding))

    def valid(self) -> bool:
        return min(self.fine) >= 1 and min(self.coarse) >= 1

    def cost(self) -> float:
        """Rough count of the oracle's products (the sweep's dominant cost)."""
        taps = int(np.prod(self.kernel))
        return float(self.batch * self.c_in * (self.c_out // self.groups) * taps
                     * np.prod(self.coarse))

    def kw(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}


def _check_all(geo: Geo, dtype: Any) -> None:
    rng = np.random.default_rng(abs(hash(geo)) % 2**32)
    nd = len(geo.coarse)
    x = rng.standard_normal((geo.batch, geo.c_in, *geo.coarse)).astype(dtype)
    w = rng.standard_normal((geo.c_in, geo.c_out // geo.groups, *geo.kernel)).astype(dtype)
    b = rng.standard_normal(geo.c_out).astype(dtype)
    g = rng.standard_normal((geo.batch, geo.c_out, *geo.fine)).astype(dtype)
    taps = int(np.prod(geo.kernel))
    kw, tkw = geo.kw(), dict(geo.kw(), output_padding=geo.output_padding)
    expected: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    if "forward" in geo.ops:
        expected["forward"] = (
            reference.conv_transpose_structural(x, w, b, **tkw),
            reference.conv_transpose_structural(np.abs(x), np.abs(w), np.abs(b), **tkw),
            geo.c_in // geo.groups * taps + 1)
    # the gather (conv of g with the same weight) is conv_transpose's grad_input
    if "grad_input" in geo.ops:
        expected["grad_input"] = (reference.conv_structural(g, w, None, **kw),
                                  reference.conv_structural(np.abs(g), np.abs(w), None, **kw),
                                  geo.c_out // geo.groups * taps)
    if "grad_weight" in geo.ops:
        expected["grad_weight"] = (
            grad_weight_oracle(g, x, w.shape, geo.stride, geo.padding, geo.dilation, geo.groups),
            grad_weight_oracle(np.abs(g), np.abs(x), w.shape, geo.stride, geo.padding,
                               geo.dilation, geo.groups),
            geo.batch * int(np.prod(geo.coarse)))
    # conv: a conv weight (C_out, C_in/groups, *k) of its own, on the fine-shaped tensor g
    wconv = rng.standard_normal((geo.c_in, geo.c_out // geo.groups, *geo.kernel)).astype(dtype)
    bconv = rng.standard_normal(geo.c_in).astype(dtype)
    if "conv" in geo.ops:
        expected["conv"] = (reference.conv_structural(g, wconv, bconv, **kw),
                            reference.conv_structural(np.abs(g), np.abs(wconv), np.abs(bconv),
                                                      **kw),
                            geo.c_out // geo.groups * taps + 1)
    # resize_conv: nearest x2 upsampling then a stride-1 conv with the geometry's padding
    small = g[(...,) + tuple(slice(0, (f + 1) // 2) for f in geo.fine)]
    up = small
    for a in range(nd):
        up = np.repeat(up, 2, axis=2 + a)
    rkw = {"padding": geo.padding, "dilation": geo.dilation, "groups": geo.groups}
    resize_ok = "resize_conv" in geo.ops and all(
        u + lo + hi >= d * (k - 1) + 1 for u, (lo, hi), d, k in
        zip(up.shape[2:], geo.padding, geo.dilation, geo.kernel))
    if resize_ok:
        expected["resize_conv"] = (
            reference.conv_structural(up, wconv, None, **rkw),
            reference.conv_structural(np.abs(up), np.abs(wconv), None, **rkw),
            geo.c_out // geo.groups * taps)
    before = tconv.isa()
    try:
        for isa in ISAS:
            tconv.set_isa(isa)
            got: dict[str, np.ndarray] = {}
            if "forward" in expected:
                got["forward"] = tconv.conv_transpose(x, w, b, **tkw)
            if "grad_input" in expected or "grad_weight" in expected:
                gi, gw, _ = tconv.conv_transpose_backward(
                    g, x, w, output_mask=(True, True, False), **tkw)
                got["grad_input"], got["grad_weight"] = gi, gw
            if "conv" in expected:
                got["conv"] = tconv.conv(g, wconv, bconv, **kw)
            if "resize_conv" in expected:
                got["resize_conv"] = tconv.resize_conv(small, wconv, 2, **rkw)
            for op, (want, scale, terms) in expected.items():
                assert_matches_oracle(got[op], want, scale, terms,
                                      f"{op} on {isa} ({np.dtype(dtype).name}) for {geo}")
    finally:
        tconv.set_isa(before)


# ---- geometry families: sizes that put one internal quantity at v ------------------------

def _1d(coarse: int, **kw: Any) -> Geo:
    return Geo((coarse,), **kw)


def fam_width(v: int) -> list[Geo]:
    """Grid-row width v: the gather's output width, the forward's phase width (stride 1 and
    2), grad_weight's coarse rows; 1-D and 2-D."""
    return [_1d(v, kernel=(3,), padding=((1, 1),)),
            _1d(v, kernel=(4,), stride=(2,), padding=((1, 1),)),
            Geo((2, v), kernel=(3, 3), stride=(1, 2), padding=((1, 1), (1, 1)),
                dilation=(1, 1), output_padding=(0, 1))]


def fam_narrow_width(v: int) -> list[Geo]:
    """Grid rows v wide under more than kWideMR output rows (the wide kernels take <= 3): the
    direct path's full and narrow tiles (avx512: 12 x 16 f32, 12 x 8 f64, for rows too short
    for nr columns); forward stride 1 and 2, the gather, 1-D and 2-D."""
    return [_1d(v, c_in=4, c_out=5, kernel=(3,), padding=((1, 1),)),
            _1d(v, c_in=5, c_out=4, kernel=(4,), stride=(2,), padding=((1, 1),)),
            Geo((2, v), c_in=4, c_out=5, kernel=(3, 3), stride=(2, 2),
                padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(1, 1))]


def fam_pad(v: int) -> list[Geo]:
    """v as padding (gather) and crop (forward): symmetric, low only, high only, strided,
    a length-1 input with a 1-tap kernel (issue 19's call), and 2-D."""
    return [_1d(2 * v + 3, kernel=(3,), padding=((v, v),)),
            _1d(v + 3, kernel=(3,), padding=((v, 0),)),
            _1d(v + 3, kernel=(3,), padding=((0, v),)),
            _1d(v + 2, kernel=(4,), stride=(2,), padding=((v, v),)),
            _1d(2 * v + 1, c_in=1, c_out=1, kernel=(1,), padding=((v, v),)),
            Geo((3, 2 * v + 3), kernel=(3, 3), stride=(1, 1), padding=((1, 1), (v, v)),
                dilation=(1, 1), output_padding=(0, 0))]


def fam_out_channels(v: int) -> list[Geo]:
    """M = v output channels of each GEMM: the forward's (C_out) and the gather's (C_in),
    grad_weight's rows (C_in)."""
    return [_1d(6, c_in=2, c_out=v, kernel=(3,), stride=(2,), padding=((1, 1),)),
            _1d(6, c_in=v, c_out=2, kernel=(3,), stride=(2,), padding=((1, 1),)),
            Geo((3, 4), c_in=v, c_out=2, kernel=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)),
                dilation=(1, 1), output_padding=(0, 0))]


def fam_reduction(v: int) -> list[Geo]:
    """K = v terms per output: channels x 1 tap, and one channel x v taps."""
    return [_1d(5, c_in=v, c_out=2, kernel=(1,)),
            _1d(5, c_in=2, c_out=v, kernel=(1,)),
            _1d(3, c_in=1, c_out=1, kernel=(v,))]


def fam_x_taps(v: int) -> list[Geo]:
    """v taps along x (1-D kernel v at stride 1, half of it padding each side; 16 channels, so
    the direct path's tiles and the packed path's panels list the taps their points read
    inside), with 40 and 7 grid points a row, and 2-D with kernel (2, v)."""
    half = v // 2
    return [_1d(40, c_in=16, c_out=16, kernel=(v,), padding=((half, half),)),
            _1d(7, c_in=16, c_out=16, kernel=(v,), padding=((half, v - 1 - half),), batch=5),
            Geo((3, 9), c_in=16, c_out=8, kernel=(2, v), stride=(1, 1),
                padding=((1, 1), (half, half)), dilation=(1, 1), output_padding=(0, 0))]


def fam_wg_pixels(v: int) -> list[Geo]:
    """grad_weight's reduction K = batch x coarse pixels = v (1 and 3 images)."""
    out = [_1d(v, kernel=(3,), padding=((1, 1),))]
    if v % 3 == 0:
        out.append(_1d(v // 3, kernel=(3,), padding=((1, 1),), batch=3))
    else:
        out.append(Geo((1, v), kernel=(1, 3), stride=(1, 2), padding=((0, 0), (1, 1)),
                       dilation=(1, 1), output_padding=(0, 0)))
    return out


def fam_outer(v: int, what: str) -> list[Geo]:
    """grad_weight's outer form (48 <= M <= 256, N = C_out x taps >= 128; float32, and float64
    on AVX-512) with M, N or K = v, the other two at the form's smallest."""
    m, n, k = 48, 128, 64
    if what == "M":
        m = v
    elif what == "N":
        n = v
    else:
        k = v
    return [_1d(k, c_in=m, c_out=n, kernel=(1,), ops=("grad_weight",))]


def fam_panel_taps(v: int) -> list[Geo]:
    """grad_weight's outer form (48 rows, N >= 128) with kernel x = v: its panel packed
    straight from `fine` for v >= kPanelMinTaps (avx512), in runs of at most one vector of
    taps (16 f32 / 8 f64); x padding and reads past both ends of the fine rows, zero y rows,
    K blocks across images, a partial last column block."""
    c_out = -(-128 // (2 * v)) + 1
    return [Geo((3, 5), c_in=48, c_out=c_out, kernel=(2, v), stride=(2, 2),
                padding=((1, 1), (v // 2, v // 2)), dilation=(1, 1), output_padding=(0, 1),
                ops=("grad_weight",)),
            _1d(70, c_in=48, c_out=c_out * 2, kernel=(v,), stride=(3,), padding=((1, 0),),
                output_padding=(2,), batch=3, ops=("grad_weight",))]


def fam_cl(v: int, what: str) -> list[Geo]:
    """grad_weight's channels-last form (48 rows, fine channels per group in whole nr blocks,
    taps >= 3 x the strides' product) with, for ``what``:
    * "reuse": taps / strides' product = v (1-D kernel 2v, stride 2; 2-D kernel (v, 4),
      strides (1, 4)), 32 fine channels;
    * "channels": v fine channels per group (2-D k4 s2 p1), either side of each ISA's nr;
    * "piece": transposes of v points (1-D runs of v coarse points at stride 1, bands of about
      v fine points at stride 2) either side of kPieceK, over two images."""
    if what == "reuse":
        return [_1d(8, c_in=48, c_out=32, kernel=(2 * v,), stride=(2,), padding=((1, 1),),
                    ops=("grad_weight",)),
                Geo((2, 5), c_in=48, c_out=32, kernel=(v, 4), stride=(1, 4),
                    padding=((0, 0), (1, 1)), dilation=(1, 1), output_padding=(0, 0),
                    ops=("grad_weight",))]
    if what == "channels":
        return [Geo((3, 4), c_in=48, c_out=v, kernel=(4, 4), stride=(2, 2),
                    padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(0, 0),
                    ops=("grad_weight",))]
    return [_1d(v, c_in=48, c_out=32, kernel=(4,), padding=((1, 1),), batch=2,
                ops=("grad_weight",)),
            _1d(max(1, v // 2), c_in=48, c_out=32, kernel=(6,), stride=(2,), padding=((2, 2),),
                batch=2, ops=("grad_weight",))]


def fam_view(v: int, what: str) -> list[Geo]:
    """grad_weight's channels-last form on the phase view of x (weight_grad.cpp: phase_form)
    with, for ``what``:
    * "rows": v rows (coarse channels) of fcn-8s's kernel (k16 s8 p4), 3 fine channels (24
      lanes);
    * "fill": v fine channels of 2-D kernel (6, 8), strides (2, 4) (4v lanes; the view's 12 taps
      = 3 x 2x2 ... 6 x 2), 16 rows: the lanes fill 3/4 of their nr blocks at v = 3 (nr 16)
      and 6 (nr 32)."""
    if what == "rows":
        return [Geo((3, 4), c_in=v, c_out=3, kernel=(16, 16), stride=(8, 8),
                    padding=((4, 4), (4, 4)), dilation=(1, 1), output_padding=(0, 0),
                    ops=("grad_weight",))]
    return [Geo((3, 5), c_in=16, c_out=v, kernel=(6, 8), stride=(2, 4),
                padding=((1, 1), (2, 2)), dilation=(1, 1), output_padding=(0, 0),
                ops=("grad_weight",))]


def fam_stride(v: int) -> list[Geo]:
    """Stride v along x (forward x phases, gather source step, grad_weight's de-interleave),
    kernel v + 1 and 2v."""
    return [_1d(9, kernel=(v + 1,), stride=(v,), padding=((1, 1),)),
            Geo((2, 5), kernel=(2, 2 * v), stride=(1, v), padding=((0, 0), (v // 2, v // 2)),
                dilation=(1, 1), output_padding=(0, 0))]


def fam_columns(v: int, what: str) -> list[Geo]:
    """The forward's few-output-channel path: C_out/groups (M) <= 4, M x taps in [12, 512],
    C_in/groups >= 8; one of them = v, the others inside the range."""
    if what == "M":
        return [Geo((4, 5), c_in=8, c_out=v, kernel=(4, 4), stride=(2, 2),
                    padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(0, 0))]
    if what == "rows":  # M = 1, taps = v
        return [_1d(4, c_in=8, c_out=1, kernel=(v,), stride=(2,))]
    if what == "rows3":  # M = 3 x taps ~ v
        return [_1d(4, c_in=8, c_out=3, kernel=(max(1, v // 3),), stride=(2,))]
    if what == "Kc":
        return [Geo((3, 4), c_in=v, c_out=3, kernel=(2, 2), stride=(2, 2),
                    padding=((0, 0), (0, 0)), dilation=(1, 1), output_padding=(0, 0))]
    if what == "group":  # P = v pixels of one block (4 images: one block each on <= 4
        # threads) and 64 channels: the B panels packed at once
        return [_1d(v, c_in=64, c_out=3, kernel=(4,), stride=(2,), padding=((1, 1),), batch=4)]
    # coarse pixels P = v on the columns path (Z blocks)
    return [_1d(v, c_in=8, c_out=3, kernel=(4,), stride=(2,), padding=((1, 1),))]


def fam_batch_inner(v: int, what: str) -> list[Geo]:
    """Batch-inner sub-convolutions (batch_inner.cpp): at least kMinBatch = 32 images of at
    most kMaxPixels = 256 pixels whose sub-convolution terms read padding at least 1 /
    kWasteDiv = 1/6 of the time; 5 output channels (fewer take the columns path).
    "batch": 2x2 images, k4 s2 p1 (44 % padding terms), batch v.
    "pixels": 1-D length v, k3 stride 1 dilated by v // 2 and padded by as much ("same",
    a third of the terms read padding), batch 32.
    "length": 1-D length v, k4 s2 p1 (a share 1 / (2v) of padding terms: 1/6 at v = 3), 32.
    "cols": v input channels of one pixel (the transposes' blocks of kCols = 64 columns)."""
    if what == "batch":
        return [Geo((2, 2), c_in=8, c_out=5, kernel=(4, 4), stride=(2, 2),
                    padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(0, 0), batch=v)]
    if what == "pixels":
        d = max(1, v // 2)
        return [_1d(v, c_in=2, c_out=5, kernel=(3,), dilation=(d,), padding=((d, d),),
                    batch=32)]
    if what == "length":
        return [_1d(v, c_in=3, c_out=5, kernel=(4,), stride=(2,), padding=((1, 1),), batch=32)]
    return [_1d(1, c_in=v, c_out=5, kernel=(4,), stride=(2,), padding=((1, 1),), batch=33)]


def fam_band(v: int) -> list[Geo]:
    """A gather whose source band holds v float32 values per channel: 64 output points (a
    multiple of every tile width) of a 2-tap kernel dilated by v - 64 (band = 64 + span)."""
    d = max(1, v - 64)
    return [Geo((64,), c_in=1, c_out=1, kernel=(2,), dilation=(d,),
                ops=("grad_input", "conv"))]


def fam_pitch(v: int, what: str) -> list[Geo]:
    """3-D k3 s2 p1 op1 forwards whose 16-point phase rows take a pitched band (pitch 17).
    "M": v output channels on 16 x 16 planes (a plane's pitched tasks discard 32 of 288 tile
    columns on avx512 float32: pitched while 32 v < kPitchPackRows x 256); "rows": v rows of
    a plane with K = 256 (task_columns' chunk 192, so kPitchMaxChunks x 192 = 384 points: up to
    24 rows a task)."""
    k3 = {"kernel": (3, 3, 3), "stride": (2, 2, 2), "padding": ((1, 1),) * 3,
          "dilation": (1, 1, 1), "output_padding": (1, 1, 1), "ops": ("forward",)}
    if what == "M":
        return [Geo((2, 16, 16), c_in=2, c_out=v, **k3)]
    return [Geo((1, v, 16), c_in=32, c_out=8, **k3)]


def fam_task_span(v: int) -> list[Geo]:
    """v channels on the reduction side of a stride-1 k3 forward and gather (K = 3v) with 5 on
    the other: rows of 194 points (one task's chunk, or two, around K = kc) and of 760 (one
    chunk at the 4 x kMaxRowChunk cap, or two) -- task_columns."""
    return [geo for width in (194, 760) for geo in (
        _1d(width, c_in=v, c_out=5, kernel=(3,), padding=((1, 1),),
            ops=("forward", "resize_conv")),
        _1d(width, c_in=5, c_out=v, kernel=(3,), padding=((1, 1),),
            ops=("grad_input", "conv")))]


def fam_band_channels(v: int) -> list[Geo]:
    """v input channels of a gather (the band's channel count: prefetch distance, per-K-block
    bands) with 200-point rows."""
    return [_1d(200, c_in=2, c_out=v, kernel=(3,), padding=((1, 1),),
                ops=("grad_input", "conv"))]


def fam_groups(v: int) -> list[Geo]:
    """v groups (one channel each) with grad_weight's reduction over two K blocks."""
    return [_1d(1100, c_in=v, c_out=v, groups=v, kernel=(3,), padding=((1, 1),))]


def fam_flops(v: int) -> list[Geo]:
    """About v flops (serial vs parallel run): a 1-channel 1-tap gather/forward of v/2 points
    and a columns-path forward."""
    return [_1d(max(1, v // 2), c_in=1, c_out=1, kernel=(1,)),
            _1d(max(1, v // 192), c_in=8, c_out=3, kernel=(4,), stride=(2,),
                ops=("forward",))]


def fam_elements(v: int) -> list[Geo]:
    """An operand of v values (all_finite's parallel threshold)."""
    return [_1d(v, c_in=1, c_out=2, kernel=(3,), padding=((1, 1),))]


def fam_checked(v: int) -> list[Geo]:
    """Output size against input + weight size (run_checked tests the result after the fast
    kernel, or both operands before): C_out 2, 1 tap, length v."""
    return [_1d(v, c_in=1, c_out=2, kernel=(1,))]


def fam_gemm_pixels(v: int) -> list[Geo]:
    """v pixels of a 1x1 stride-1 problem (the GEMM engine, csrc/gemm/engine.cpp): 13 rows
    (two tiles on avx512) and 2 rows (the wide kernels), 1-D and 2-D."""
    return [_1d(v, c_in=3, c_out=13, kernel=(1,)), _1d(v, c_in=5, c_out=2, kernel=(1,)),
            Geo((2, v), c_in=2, c_out=5, kernel=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)),
                dilation=(1, 1), output_padding=(0, 0))]


def fam_gemm_rows(v: int) -> list[Geo]:
    """M = v rows of the GEMM engine: the forward's C_out and the gather's C_in."""
    return [_1d(37, c_in=3, c_out=v, kernel=(1,)), _1d(37, c_in=v, c_out=3, kernel=(1,))]


def fam_gemm_depth(v: int) -> list[Geo]:
    """K = v terms of the GEMM engine: the forward's C_in and the gather's C_out."""
    return [_1d(21, c_in=v, c_out=7, kernel=(1,)), _1d(21, c_in=7, c_out=v, kernel=(1,))]


def fam_phase_rows(v: int) -> list[Geo]:
    """The phase GEMM (kernel = stride, padding 0; csrc/gemm/engine.cpp: run_phase_gemm):
    M = v rows of (channel, phase) -- one output channel with v phases, v channels with 2 --
    and the gather's M = C_in = v."""
    return [_1d(9, c_in=3, c_out=1, kernel=(v,), stride=(v,), output_padding=(v // 2,)),
            _1d(7, c_in=3, c_out=v, kernel=(2,), stride=(2,), output_padding=(1,)),
            _1d(7, c_in=v, c_out=3, kernel=(2,), stride=(2,))]


def fam_phase_depth(v: int) -> list[Geo]:
    """K = v terms of the phase GEMM: the forward's C_in; the gather's C_out x taps (v output
    channels of 2 phases, one of v phases)."""
    return [_1d(11, c_in=v, c_out=5, kernel=(2,), stride=(2,)),
            _1d(11, c_in=4, c_out=v, kernel=(2,), stride=(2,)),
            _1d(5, c_in=3, c_out=1, kernel=(v,), stride=(v,))]


def fam_phase_pixels(v: int) -> list[Geo]:
    """N = v input pixels of the phase GEMM (1-D, 2-D with output_padding, 3-D)."""
    return [_1d(v, c_in=3, c_out=7, kernel=(2,), stride=(2,)),
            Geo((2, v), c_in=2, c_out=5, kernel=(2, 3), stride=(2, 3),
                padding=((0, 0), (0, 0)), dilation=(1, 1), output_padding=(1, 2)),
            Geo((1, 1, v), c_in=4, c_out=3, kernel=(1, 2, 2), stride=(1, 2, 2),
                padding=((0, 0),) * 3, dilation=(1, 1, 1), output_padding=(0, 1, 0), groups=1)]


def fam_depthwise(v: int, what: str) -> list[Geo]:
    """The depthwise path (one channel per group on both sides, two groups): rows v wide
    (forward stride 1 and 2, gather, 2-D), strides v, or v channels per group on one side
    (the cut-off; v = 1 depthwise, v >= 2 the sub-convolutions)."""
    dw = {"c_in": 2, "c_out": 2, "groups": 2}
    if what == "width":
        return [_1d(v, kernel=(3,), padding=((1, 1),), **dw),
                _1d(v, kernel=(4,), stride=(2,), padding=((1, 1),), **dw),
                Geo((2, v), kernel=(3, 3), stride=(2, 1), padding=((1, 1), (1, 1)),
                    dilation=(1, 1), output_padding=(1, 0), **dw)]
    if what == "stride":
        return [_1d(9, kernel=(v + 1,), stride=(v,), padding=((1, 1),), **dw),
                Geo((2, 5), kernel=(2, 2 * v), stride=(1, v), padding=((0, 0), (v // 2, v // 2)),
                    dilation=(1, 1), output_padding=(0, 0), **dw)]
    return [_1d(7, c_in=2 * v, c_out=2, groups=2, kernel=(4,), stride=(2,), padding=((1, 1),)),
            _1d(7, c_in=2, c_out=2 * v, groups=2, kernel=(4,), stride=(2,), padding=((1, 1),))]


def fam_dw_wg_values(v: int) -> list[Geo]:
    """The depthwise grad_weight's tasks: 3 images of ceil(v / 2) pixels, so that 2 images
    hold about v input values (v <= 2^16: two images per task, two chunks; past: one each,
    three chunks)."""
    return [_1d((v + 1) // 2, c_in=2, c_out=2, groups=2, kernel=(4,), stride=(2,),
                padding=((1, 1),), batch=3, ops=("grad_weight",))]


def fam_plane_grid(v: int) -> list[Geo]:
    """A grid of v points whose source plane is small (the avx512 float32 packed path packs
    whole grid planes of 16 points read from <= 64 values by permutes): the gather's coarse
    grid (stride 2, 1-D and 2-D, K blocks starting mid-channel) and the forward's phase
    grids."""
    out = [_1d(v, c_in=20, c_out=3, kernel=(3,), stride=(2,), padding=((1, 1),),
               output_padding=(1,))]
    for h in (4, 3, 2, 1):  # 2-D: h rows of v / h points (DCGAN's 4x4 at v = 16)
        if v % h == 0:
            out.append(Geo((h, v // h), c_in=20, c_out=3, kernel=(4, 4), stride=(2, 2),
                           padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(0, 0),
                           batch=3))
            break
    return out


def fam_plane_source(v: int) -> list[Geo]:
    """A gather whose grid has 16 points and whose source plane has v values: 1-D stride 2,
    kernel v - 30; 2-D 4x4 stride 2 when v = (6 + ky)(6 + kx), kernel not 2x2 (= the
    stride: the phase GEMM)."""
    out = [_1d(16, c_in=3, c_out=20, kernel=(v - 30,), stride=(2,), batch=2,
               ops=("grad_input", "conv"))] if v > 30 else []
    for ky in range(1, 8):
        if v % (6 + ky) == 0 and v // (6 + ky) > 6 and (ky, v // (6 + ky) - 6) != (2, 2):
            out.append(Geo((4, 4), c_in=3, c_out=20, kernel=(ky, v // (6 + ky) - 6),
                           stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1),
                           output_padding=(0, 0), batch=2, ops=("grad_input", "conv")))
            break
    return out


def fam_shift_grid(v: int) -> list[Geo]:
    """Forward phase grids of v points that are their source planes (the avx512 float32
    packed path packs them kShiftLanes = 16 columns per masked load when the grid is a
    multiple of 16 points): k4 s2 p1 in 1-D, 2-D and 3-D, batch 3 (runs crossing images);
    k5 s2 p2 op1 with 9/6/6/4 taps per phase and 30 channels (two K blocks, the second
    starting mid-channel); k3 s2 p1 without output_padding (one phase's grid is narrower
    than its source: that phase packs by rows).  16 output channels (fewer would take the
    columns path)."""
    out = []
    for h in (4, 2, 1, 5, 7):  # h rows of v / h points, packed (narrow) rows
        if v % h == 0 and v // h < 20:
            out += [Geo((h, v // h), c_in=20, c_out=16, kernel=(4, 4), stride=(2, 2),
                        padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(0, 0),
                        batch=3, ops=("forward",)),
                    Geo((h, v // h), c_in=30, c_out=16, kernel=(5, 5), stride=(2, 2),
                        padding=((2, 2), (2, 2)), dilation=(1, 1), output_padding=(1, 1),
                        batch=2, ops=("forward",)),
                    Geo((h, v // h), c_in=20, c_out=16, kernel=(3, 3), stride=(2, 2),
                        padding=((1, 1), (1, 1)), dilation=(1, 1), output_padding=(0, 0),
                        batch=3, ops=("forward",))]
            break
    out.append(_1d(v, c_in=20, c_out=16, kernel=(4,), stride=(2,), padding=((1, 1),), batch=3,
                   ops=("forward",)))
    if v % 4 == 0:
        out.append(Geo((2, 2, v // 4), c_in=10, c_out=16, kernel=(4, 4, 4), stride=(2, 2, 2),
                       padding=((1, 1), (1, 1), (1, 1)), dilation=(1, 1, 1),
                       output_padding=(0, 0, 0), batch=2, ops=("forward",)))
    return out


def fam_sort_share(v: int) -> list[Geo]:
    """Packed rows of 4 points, k4 s2 p1 along y only, v rows: 1 / (2v) of the terms read
    padding (border-sorted columns from 1 / kSortBorderDiv = 1/32: v <= 16)."""
    return [Geo((v, 4), c_in=6, c_out=5, kernel=(4, 1), stride=(2, 1),
                padding=((1, 1), (0, 0)), dilation=(1, 1), output_padding=(0, 0), batch=3)]


def fam_pack_channels(v: int) -> list[Geo]:
    """v channels packed per piece (kPackChannels = 8 at a time when channel planes are a
    multiple of kAliasBytes = 4 KiB apart): a forward from 128x8 planes (4 KiB in float32,
    8 KiB in float64) and 127x8 ones (not a multiple), and a gather of v channels from 128x16
    planes; packed rows of 8 points."""
    k4 = dict(kernel=(4, 4), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1),
              output_padding=(0, 0))
    return [Geo((128, 8), c_in=v, c_out=5, ops=("forward",), **k4),  # type: ignore[arg-type]
            Geo((127, 8), c_in=v, c_out=5, ops=("forward",), **k4),  # type: ignore[arg-type]
            Geo((64, 8), c_in=5, c_out=v, ops=("grad_input",), **k4)]  # type: ignore[arg-type]


FAMILIES: dict[str, Callable[[int], list[Geo]]] = {
    "dw_width": lambda v: fam_depthwise(v, "width"),
    "dw_stride": lambda v: fam_depthwise(v, "stride"),
    "dw_channels": lambda v: fam_depthwise(v, "channels"),
    "dw_wg_values": fam_dw_wg_values,
    "width": fam_width, "narrow_width": fam_narrow_width, "pad": fam_pad,
    "out_channels": fam_out_channels,
    "reduction": fam_reduction, "wg_pixels": fam_wg_pixels,
    "outer_M": lambda v: fam_outer(v, "M"), "outer_N": lambda v: fam_outer(v, "N"),
    "outer_K": lambda v: fam_outer(v, "K"), "stride": fam_stride,
    "panel_taps": fam_panel_taps,
    "cl_reuse": lambda v: fam_cl(v, "reuse"), "cl_channels": lambda v: fam_cl(v, "channels"),
    "cl_piece": lambda v: fam_cl(v, "piece"),
    "view_rows": lambda v: fam_view(v, "rows"), "view_fill": lambda v: fam_view(v, "fill"),
    "col_M": lambda v: fam_columns(v, "M"), "col_rows": lambda v: fam_columns(v, "rows"),
    "col_rows3": lambda v: fam_columns(v, "rows3"), "col_Kc": lambda v: fam_columns(v, "Kc"),
    "col_P": lambda v: fam_columns(v, "P"), "col_group": lambda v: fam_columns(v, "group"),
    "band": fam_band,
    "pitch_M": lambda v: fam_pitch(v, "M"), "pitch_rows": lambda v: fam_pitch(v, "rows"),
    "task_span": fam_task_span, "band_channels": fam_band_channels, "groups": fam_groups,
    "flops": fam_flops,
    "elements": fam_elements, "checked": fam_checked, "gemm_pixels": fam_gemm_pixels,
    "gemm_rows": fam_gemm_rows, "gemm_depth": fam_gemm_depth,
    "phase_rows": fam_phase_rows, "phase_depth": fam_phase_depth,
    "phase_pixels": fam_phase_pixels,
    "plane_grid": fam_plane_grid, "plane_source": fam_plane_source,
    "shift_grid": fam_shift_grid,
    "sort_share": fam_sort_share,
    "pack_channels": fam_pack_channels,
    "x_taps": fam_x_taps,
    "bi_batch": lambda v: fam_batch_inner(v, "batch"),
    "bi_pixels": lambda v: fam_batch_inner(v, "pixels"),
    "bi_length": lambda v: fam_batch_inner(v, "length"),
    "bi_cols": lambda v: fam_batch_inner(v, "cols"),
}


# ---- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    where: str                        # file: constant or expression
    values: tuple[int, ...]           # boundaries in the family's units (empty: inert)
    families: tuple[str, ...]
    literals: tuple[str, ...] = ()    # numeric literals of `where`'s file this row claims
    names: tuple[str, ...] = ()       # named constants (kXxx) of that file it claims
    why: str = ""
    dtypes: tuple[str, ...] = ("float32",)
    extra: dict[str, Any] = field(default_factory=dict)


GEMM_NC = gemm_block_columns()  # the GEMM engine's B block columns on this machine

# Per-ISA register tiles (csrc/ukernels/*.cpp: the X(kind, slot, name, Ops, rows, n) entries of
# TCONV_<ISA>_UKERNELS, one named kernel each; nr = n x the Ops' kWidth, dot columns = n).
TILE_MR = (4, 6, 12)                  # generic, avx2, avx512 GEMM rows
TILE_NR = (8, 16, 32)                 # GEMM columns: f32 8/16/32, f64 8/8/16
WIDE_NR = (16, 32, 64)                # wide kernels (<= kWideMR rows): f32 16/32/64
PANEL_K = (768, 384, 192)             # outer grad_weight K block = kPanelBytes / (nr x 4)

TABLE: list[Row] = [
    # -- csrc/ukernels/*.cpp: the register tiles --------------------------------------------
    Row("GEMM tile rows mr", "ukernels/{generic,avx2,avx512}.cpp: TCONV_*_UKERNELS rows 4|6|12",
        TILE_MR, ("out_channels",), literals=("4", "6", "12", "5", "7", "9", "10", "11"),
        why="output-channel tails of 1 .. mr - 1 rows (a named kernel per row count)"),
    Row("GEMM tile columns nr (NV x kWidth)",
        "ukernels/*.cpp: TCONV_*_UKERNELS n 2|8, kWidth 1/4/8/16", TILE_NR + (4,),
        ("width", "wg_pixels"), literals=("8", "16", "4", "2", "32"),
        names=("kWidth",), dtypes=("float32", "float64"),
        why="pixel tails; nr >= 0.6 x round_up(width, nr) picks the direct path"),
    Row("wide tile columns (<= kWideMR rows)", "ukernels/*.cpp: wfn entries, n 4|16",
        WIDE_NR, ("width",), literals=("16", "4")),
    Row("narrow tile columns (avx512: f32 16, f64 8): rows of 0.6 x narrow_nr .. narrow_nr "
        "points take the direct path with them instead of packing B (subconv/plan.cpp: "
        "narrow_tiles)", "ukernels/avx512_table.hpp: nfn entries, n 1",
        (5, 8, 10, 16, 20), ("narrow_width",), dtypes=("float32", "float64"),
        why="both edges of the narrow range of each dtype (5-8 f64, 10-16 f32) and the full "
            "tile's (20 f32)"),
    Row("narrow tiles by default on AMD family 19h only (CPUID leaf 0 vendor \"AuthenticAMD\", "
        "leaf 1 family: base 0xf plus the extended field, bits 20-27, = 0x19)",
        "plan.cpp: amd_family_19h", (), (),
        literals=("0x19", "0x444d4163", "0x68747541", "0x69746e65", "0xf", "0xff", "20", "8"),
        why="a CPU property, not a size; both settings of every narrow width run on any CPU "
            "(test_narrow_tiles: forced on, forced off with the same bits, the default "
            "against /proc/cpuinfo and TCONV_NARROW_TILES; test_boundary runs the narrow_width "
            "family with them on as well)"),
    Row("dot tile (grad_weight) rows 4 (avx512: 6), columns 3/4",
        "ukernels/*.cpp: dot entries, n 3|4", (3, 4, 6), ("out_channels", "outer_N"),
        literals=("3", "4"), dtypes=("float32", "float64")),
    Row("avx2 f32 panel transpose, 8 rows at a time", "ukernels/avx2.cpp: k + 8 <= kc",
        (8, 16), ("outer_K",),
        literals=("5", "7", "32", "48", "64", "80", "96", "112", "0x44", "0xEE", "0x20", "0x31"),
        why="the rest are shuffle immediates and panel offsets of the 8 x 16 transpose"),
    Row("16 x 16 lane transposes (avx512 f32): the panel transpose in blocks of 16 k, the "
        "last kc % 16 by the scalar loop; the dot kernels' lane sums, 16 accumulators at a "
        "time (24 for the 6 x 4 tile: a group of 16 and one of 8)",
        "ukernels/gemm_template.hpp: k + 16 <= kc, accumulators in groups of 16",
        (16,), ("outer_K", "out_channels"), literals=("16", "15", "64"), names=("kAcc", "kBlockLanes"),
        why="K blocks of 15, 16, 17 and 35 (kc % 16 tails); 15: rounding up to groups of "
            "16; 64: alignment of a buffer"),
    Row("8 x 8 lane transposes (avx512 f64): the panel transpose in blocks of 8 k, the last "
        "kc % 8 by the scalar loop; the dot kernels' lane sums, 8 accumulators at a time (24 "
        "for the 6 x 4 tile: three groups)",
        "ukernels/gemm_template.hpp: k + 8 <= kc, accumulators in groups of 8", (8,),
        ("outer_K", "out_channels"), literals=("8", "7"), dtypes=("float64",),
        why="7: rounding up to groups of 8"),
    Row("avx512 f32 transpose16: shuffle immediates and all-lane masks",
        "ukernels/avx512.cpp: transpose16", (), (), literals=("0x88", "0xDD", "0xFF", "0xFFFF"),
        why="inert: instruction operands, not sizes (the 16 lanes are kWidth's)"),
    Row("avx512 lane buffer", "ukernels/avx512_table.hpp: alignas(64) lanes", (),
        (), literals=("64",), why="inert: alignment of a reduction buffer"),
    Row("emulated lanes", "ukernels/emulated_vec.hpp: kEmulated", (), (), names=("kEmulated",),
        why="inert: a flag, not a size (the epilogue's steps run as a loop on emulated lanes: "
            "the same bits, tests/test_ukernels.py on avx512-emulated)"),
    # -- csrc/tconv/ukernels.hpp ------------------------------------------------------------
    Row("kMaxMR: largest mr", "tconv/ukernels.hpp: kMaxMR", (12,), ("out_channels",),
        literals=("12",), names=("kMaxMR",)),
    Row("kWideMR: wide kernels for M <= 3", "tconv/ukernels.hpp: kWideMR", (3,),
        ("out_channels",), literals=("3",), names=("kWideMR",)),
    Row("tile_rows / block_rows: split of mr + 1 .. mr + 3 rows (mr >= 6)",
        "tconv/ukernels.hpp: mr >= 6 && left <= mr + 3", (7, 9, 13, 15),
        ("out_channels",), literals=("6", "3")),
    Row("dot_rows: 5, 6, 9 rows as 3-row tiles (mr = 4)", "tconv/ukernels.hpp: dot_rows",
        (5, 6, 9), ("out_channels",), literals=("4", "5", "6", "9")),
    # -- csrc/tconv/workspace.hpp -------------------------------------------------------------
    Row("kKBlockBytes: K block kc = 256 (f32) / 128 (f64)", "tconv/workspace.hpp: kKBlockBytes",
        (256, 128), ("reduction",), literals=("1024",), names=("kKBlockBytes",),
        dtypes=("float32", "float64")),
    Row("Scratch alignment", "tconv/workspace.hpp: 64-byte aligned_alloc", (), (),
        literals=("63", "64"), why="inert: allocation rounding"),
    # -- csrc/tconv/geometry.hpp, nonfinite.hpp, copy.hpp -------------------------------------
    Row("kMaxDims", "tconv/geometry.hpp: kMaxDims = 3", (), (), literals=("3",),
        names=("kMaxDims",), why="inert: rank; 1-D, 2-D and 3-D run everywhere"),
    Row("run_checked: result size vs operand sizes", "tconv/nonfinite.hpp: result_size < a + b",
        (2, 3), ("checked",), literals=("4", "0x7f800000", "0x7ff0000000000000"),
        why="4 = sizeof(float); the masks are the IEEE exponents"),
    Row("fixed-length copies (SSE groups of 4, residues 4/8, panels 8/16/32)",
        "tconv/copy.hpp: copy_fixed, copy_panel, (de)interleave", (4, 8, 16, 32),
        ("width", "stride"), literals=("3", "4", "8", "16", "32")),
    # -- csrc/subconv/*.cpp (forward, gather = conv / grad_input, resize_conv) ----------------
    Row("kMaxRowChunk: direct-path row chunk", "subconv/plan.cpp: kMaxRowChunk = 192", (192,),
        ("width", "pad"), literals=("192",), names=("kMaxRowChunk",),
        dtypes=("float32", "float64")),
    Row("rows per task 192 / width; packed-path pixel block 192",
        "subconv/plan.cpp: kMaxRowChunk / round_up(width, nr), min(n_total, kMaxRowChunk)",
        (96, 64, 48),
        ("width",), literals=("192",)),
    Row("kMaxChunkGrowth: a task's columns grow below K = kc, up to 4 x kMaxRowChunk (f32)",
        "subconv/plan.cpp: task_columns, kMaxChunkGrowth = 4", (85, 22), ("task_span",),
        names=("kMaxChunkGrowth",)),
    Row("kMaxChunkGrowth: the same for float64 (kc = 128)", "subconv/plan.cpp: task_columns",
        (43, 11), ("task_span",), dtypes=("float64",)),
    Row("kPitchPackRows: pitched band while M x discarded columns < 6 x points",
        "subconv/plan.cpp: pitched_rule, kPitchPackRows = 6", (48,), ("pitch_M",),
        literals=("6",), names=("kPitchPackRows",)),
    Row("whole_band's key: 9 fields of the band's shape", "subconv/run.cpp: std::array<int64_t, 9>",
        (), (), literals=("9",), why="inert: a key's length, never which code runs"),
    Row("kPitchMaxChunks: a pitched task's rows up to 2 x task_columns' chunk of points",
        "subconv/plan.cpp: pitched_rows, kPitchMaxChunks = 2", (24,), ("pitch_rows",),
        names=("kPitchMaxChunks",)),
    Row("kMaxInPlaceRows: A panels read B rows from the band", "subconv/run.cpp: kMaxInPlaceRows",
        (144,), ("out_channels",), literals=("144",), names=("kMaxInPlaceRows",)),
    Row("kMaxBandBytes: largest band (2 MiB = 524288 f32)", "subconv/plan.cpp: kMaxBandBytes",
        (524288,), ("band",), literals=("20",), names=("kMaxBandBytes",)),
    Row("kBandL2Bytes: band filled per K block above 256 KiB (65536 f32)",
        "subconv/plan.cpp: kBandL2Bytes", (65536,), ("band",), literals=("256", "10"),
        names=("kBandL2Bytes",)),
    Row("kBandPrefetch: channels ahead of the band fill", "subconv/band.cpp: kBandPrefetch", (2,),
        ("band_channels",), names=("kBandPrefetch",)),
    Row("pack_a_panels prefetch: 4 channels ahead", "subconv/pack.cpp: kAhead = 4", (4,),
        ("band_channels", "out_channels"), literals=("4",), names=("kAhead",)),
    Row("kMaxXPhases / xs in {2, 4, 8}: interleaved x-phase stores",
        "subconv/*: kMaxXPhases, xs != 2 && xs != 4 && xs != 8", (2, 4, 8), ("stride",),
        literals=("8", "4"), names=("kMaxXPhases",)),
    Row("pack_piece lengths 4/8/16, steps 1/2 (packed path; float step 2 on the avx512 table: "
        "masked loads and a permute of <= 16 values)", "subconv/pack.cpp: pack_b",
        (4, 8, 16), ("width", "stride"), literals=("4", "8", "16")),
    Row("whole grid planes packed by permutes (avx512 f32): grid of kPlaneGrid = 16 points",
        "subconv/pack.cpp: kPlaneGrid (plane in 4 registers: 16/32/48)", (16,), ("plane_grid",),
        literals=("3", "32", "48"),
        names=("kPlaneGrid",), dtypes=("float32", "float64")),
    Row("whole grid planes packed by permutes: source plane <= kPlaneSourceMax = 64 values",
        "subconv/pack.cpp: kPlaneSourceMax", (64,), ("plane_source",),
        names=("kPlaneSourceMax",), dtypes=("float32", "float64")),
    Row("grids that are their source planes packed by masked loads (avx512 f32): grid a "
        "multiple of kShiftLanes = 16 points",
        "subconv/pack.cpp: kShiftLanes (one mask of 16 lanes: 0xffff)", (16, 32),
        ("shift_grid",), literals=("0xffff",), names=("kShiftLanes",),
        dtypes=("float32", "float64")),
    Row("border-sorted packed columns when >= 1 / kSortBorderDiv = 1/32 of the packed "
        "terms read padding", "subconv/plan.cpp: kSortBorderDiv", (16,), ("sort_share",),
        literals=("32",), names=("kSortBorderDiv",), why="k4 s2 p1 along y: a share 1 / (2 rows)",
        dtypes=("float32", "float64")),
    Row("packing kPackChannels = 8 channels at a time when channel planes are a multiple of "
        "kAliasBytes = 4 KiB apart", "subconv/pack.cpp: kPackChannels, kAliasBytes", (8,),
        ("pack_channels",), literals=("4096",), names=("kPackChannels", "kAliasBytes"),
        dtypes=("float32", "float64")),
    Row("weight packing prefetch: the run kAheadRows rows on (64-byte lines)",
        "subconv/pack.cpp: pack_a_panels, kLine", (), (), literals=("64",), names=("kLine",),
        why="inert: prefetch hints never change which values are packed"),
    Row("band de-interleave of steps 2/4/8", "subconv/band.cpp: fill_band step == 2|4|8",
        (2, 4, 8), ("stride",), literals=("8", "4")),
    Row("direct vs packed: width >= 0.6 x round_up(width, nr)",
        "tconv/plan.hpp: kDirectMinFill = 0.6", (5, 10, 20), ("width",), literals=("0.6",),
        names=("kDirectMinFill",)),
    Row("mcb: A rows per L2 block (256 KiB / kc)", "tconv/plan.hpp: kL2ABytes / (kc x size)",
        (252, 256), ("out_channels",), literals=("256", "10"), names=("kL2ABytes",)),
    Row("L2 size the blocks are sized from: TCONV_L2_BYTES or sysconf, clamped to 256 KiB - "
        "4 MiB, else 1 MiB", "tconv/plan.hpp: l2_cache_bytes", (), (), literals=("20",),
        names=("kL2DefaultBytes", "kL2MinBytes", "kL2MaxBytes"),
        why="inert here: read once per process; test_gemm_engine checks the env and clamp, "
            "and that results do not depend on it; the gemm engine row straddles its block"),
    Row("TCONV_L2_BYTES parsed in base 10", "plan.cpp: strtoll(env, &end, 10)", (), (),
        literals=("10",), why="inert: a number base"),
    Row("tasks wanted: 4 x threads", "tconv/plan.hpp: kTasksPerThread", (), (),
        literals=("4",), names=("kTasksPerThread",), why="thread-count-dependent splitting never changes a sum "
        "(test_determinism); straddled by every family through the task counts"),
    Row("gemm engine tasks wanted: 2 x threads", "gemm/engine.cpp: kGemmTasksPerThread", (), (),
        names=("kGemmTasksPerThread",), why="thread-count-dependent splitting never changes "
        "a sum (test_gemm_engine's 1/2/3-thread bitwise check); straddled by the gemm "
        "families through the task counts"),
    Row("gemm engine streams outputs of >= kStreamBytes with non-temporal stores",
        "gemm/engine.cpp: stream_tile_for", (), (),
        literals=("64", "0x7f800000", "0x7ff0000000000000"),
        names=("kWidth",), why="same values either way; straddled (below, at, above, 2x) on "
        "every ISA and dtype by test_gemm_engine.test_streamed_output_matches_ordinary_stores, "
        "with the 64-byte alignment it needs and without; the hex values are the float32 / "
        "float64 exponent masks of the Inf/NaN test, kWidth the clones' values per vector "
        "(Avx512Vec, Avx2Vec)"),
    Row("gemm engine: a B operand of >= kPipelineL2s (24) L2 caches is packed a slice of rows "
        "at a time between the micro-kernel calls of the block before (PackAhead), each slice "
        "prefetched one call ahead", "gemm/engine.cpp: kPipelineL2s, prefetch_b_rows", (), (),
        literals=("24", "3"), names=("kPipelineL2s",),
        why="same values either way; straddled (two values and one value below, at, above, 2x) "
        "in the plans of the 1x1 and phase GEMMs' forward and gather, both dtypes, and run "
        "pipelined and not (bitwise equal on every ISA and 1 / 2 / 3 threads, and the oracle) "
        "by tests/test_gemm_pipeline.py; 3 is the prefetch's locality hint (into L1)"),
    Row("outputs of >= kStreamBytes (4 MiB) are stored non-temporally (the engine's tiles; the "
        "sub-convolutions' and the phase GEMM's interleaved x phases: their whole 64-byte lines)",
        "tconv/plan.hpp / copy.hpp: kStreamBytes, interleave", (), (),
        literals=("4", "20", "16", "64", "0x7f800000", "0x7ff00000"),
        names=("kStreamBytes", "kLinePoints", "kStep", "kUnit"),
        why="same values either way; straddled (below, at, above, 2x) by test_gemm_engine."
        "test_streamed_output_matches_ordinary_stores and test_stream_stores (sub-convolution "
        "x strides 2, 4, 8 and the phase GEMM's k2 s2 / k4 s4, both dtypes, every ISA, aligned "
        "and not, runs from under one line to many); kLinePoints / kStep / kUnit: the points of "
        "one 64-byte line, of one vector step and the streamed unit (both); the hex values are "
        "the float32 exponent mask and float64's in its high word"),
    Row("serial below 2e5 flops (every operator: subconv, columns, weight_grad)",
        "tconv/plan.hpp: kParallelFlops", (200000,), ("flops",), literals=("2e5",),
        names=("kParallelFlops",)),
    Row("band fill prefetch per 64-byte line", "subconv/band.cpp: q += 64", (), (),
        literals=("64",), why="inert: prefetch stride"),
    Row("band key (8 values)", "subconv/*: std::array<int64_t, 8>", (), (), literals=("8",),
        why="inert: array sizes (key fields, residues <= 8)"),
    Row("A-packing unit tuple", "subconv/internal.hpp: std::array<int64_t, 3>", (), (), literals=("3",),
        why="inert: a (group, K block, panel) triple"),
    Row("pack_piece unroll", "subconv/pack.cpp / copy.hpp: #pragma GCC unroll", (), (),
        why="pragma lines are not scanned"),
    # -- csrc/columns.cpp (forward with few output channels) ----------------------------------
    Row("kMaxM: columns path for C_out/groups <= 4", "columns.cpp: kMaxM", (4,), ("col_M",),
        literals=("4",), names=("kMaxM",)),
    Row("kMinRows: M x taps >= 12", "columns.cpp: kMinRows", (12,), ("col_rows", "col_rows3"),
        literals=("12",), names=("kMinRows",)),
    Row("kMinChannels: C_in/groups >= 8", "columns.cpp: kMinChannels", (8,), ("col_Kc",),
        literals=("8",), names=("kMinChannels",)),
    Row("kMaxRows: M x taps <= 512", "columns.cpp: kMaxRows", (512,), ("col_rows",),
        literals=("512",), names=("kMaxRows",)),
    Row("kZBytes / kZPad: Z block <= 1 MiB (P + 64) x R x size", "columns.cpp: kZBytes, kZPad",
        (21781,), ("col_P",), literals=("20", "64"), names=("kZBytes", "kZPad"),
        why="R = 12, float32: (P + 64) x 48 bytes = 1 MiB at P = 21781.3"),
    Row("columns B panels packed at once: kPanelBytes = 128 KiB",
        "columns.cpp: kPanelBytes", (256, 512), ("col_group",), literals=("128", "10"),
        names=("kPanelBytes",), dtypes=("float32", "float64"),
        why="64 channels: 128 KiB / (64 x 4 bytes) = 512 pixels (float32), 256 (float64)"),
    Row("phase buffer slack", "columns.cpp: ceil_div(fx, sx) + 16", (), (), literals=("16",),
        why="inert: buffer length"),


    Row("columns serial below 2e5 flops", "columns.cpp: flops > 2e5", (200000,), ("flops",),
        literals=("2e5",)),
    Row("kMaxXTaps: a tile's x taps classified on the stack up to 64, beyond in a vector",
        "subconv/tables.cpp: kMaxXTaps", (64,), ("x_taps",), literals=("64",),
        names=("kMaxXTaps",)),
    # -- csrc/batch_inner.cpp (small images, many of them) ------------------------------------
    Row("kMinBatch: batch-inner from 32 images", "batch_inner.cpp: kMinBatch", (32,),
        ("bi_batch",), literals=("32",), names=("kMinBatch",), dtypes=("float32", "float64")),
    Row("kMaxPixels: batch-inner for images of <= 256 pixels", "batch_inner.cpp: kMaxPixels",
        (256,), ("bi_pixels",), literals=("256",), names=("kMaxPixels",)),
    Row("kWasteDiv: batch-inner when >= 1/6 of the terms read padding",
        "batch_inner.cpp: kWasteDiv", (3,), ("bi_length",), literals=("6",),
        names=("kWasteDiv",), why="1-D k4 s2 p1: a share 1 / (2 L) of padding terms",
        dtypes=("float32", "float64")),
    Row("kCols: the transposes' blocks of 64 columns (nr <= 64 rows)",
        "batch_inner.cpp: kCols", (64,), ("bi_cols",), literals=("64",), names=("kCols",),
        dtypes=("float32", "float64")),
    # -- csrc/depthwise.cpp and ukernels/depthwise_*.cpp (one channel per group) --------------
    Row("kMaxChannelsPerGroup: depthwise path for C_in/groups = C_out/groups = 1",
        "depthwise.cpp: kMaxChannelsPerGroup", (1,), ("dw_channels",),
        names=("kMaxChannelsPerGroup",)),
    Row("kTaskOutputs: tasks of max(1, 2^15 / width) rows", "depthwise.cpp: kTaskOutputs",
        (32768,), ("dw_width",), literals=("15",), names=("kTaskOutputs",),
        why="at widths past 2^15 a task is one row"),
    Row("kWeightGradTaskValues: depthwise grad_weight tasks of max(1, 2^16 / pixels) images",
        "depthwise.cpp: kWeightGradTaskValues", (65536,), ("dw_wg_values",), literals=("16",),
        names=("kWeightGradTaskValues",),
        why="batch chunks per channel, their sums added in a final pass"),
    Row("kDwDotLanes: the depthwise grad_weight's 32 lanes per tap (one vector, head, tail)",
        "tconv/depthwise.hpp: kDwDotLanes", (32,), ("dw_width",), literals=("32",),
        names=("kDwDotLanes",), dtypes=("float32", "float64")),
    Row("depthwise vector blocks: 16/32/64-byte vectors, two per block, one overlapping last",
        "ukernels/depthwise_*.cpp: dw_table<16|32|64>", (4, 8, 16, 32), ("dw_width",),
        literals=("16", "32", "64"), dtypes=("float32", "float64"),
        why="f32 outputs per vector / block: generic 4/8, avx2 8/16, avx512 16/32"),
    Row("depthwise interleave / de-interleave of steps 2 and 4 (others: run-time step); the "
        "forward of x stride 2 writes both phases from registers (row2)",
        "ukernels/depthwise_template.hpp: case 2, case 4", (2, 4), ("dw_stride",),
        literals=("4",)),
    # -- csrc/weight_grad.cpp -----------------------------------------------------------------
    Row("outer form: 48 <= M <= 256, N >= 128 (float32; float64 where nr >= 16: avx512)",
        "weight_grad.cpp: outer_form", (48, 256), ("outer_M",), literals=("48", "256", "16"),
        dtypes=("float32", "float64")),
    Row("outer form: N >= 128", "weight_grad.cpp: outer_form", (128,), ("outer_N",),
        literals=("128",), dtypes=("float32", "float64")),
    Row("kPanelBytes: outer K block 24 KiB / (nr x sizeof): f32 768/384/192, f64 (avx512) 192",
        "weight_grad.cpp: kPanelBytes", PANEL_K, ("outer_K",), literals=("24", "1024"),
        names=("kPanelBytes",), dtypes=("float32", "float64")),
    Row("kMaxNR: edge tile buffer kMaxMR x kMaxNR", "weight_grad.cpp: kMaxNR", (32,),
        ("outer_N",), literals=("32",), names=("kMaxNR",),
        why="partial column tiles of the widest (avx512 f32) outer tile"),
    Row("dot K block 4 x kc = 1024 (f32) / 512 (f64); two chunks from 2 blocks",
        "weight_grad.cpp: 4 * k_block<T>()", (1024, 512), ("wg_pixels",), literals=("4",),
        dtypes=("float32", "float64")),
    Row("two chunks only while groups x m_blocks x ceil(N / 8nr) < 16",
        "weight_grad.cpp: chunks", (16,), ("groups",), literals=("8", "16")),
    Row("row blocks of <= 512 rows of A", "weight_grad.cpp: min(M, 512)", (512,),
        ("out_channels",), literals=("512",)),
    Row("dot column block min(N, 48)", "weight_grad.cpp: min(N, 48)", (48,),
        ("out_channels",), literals=("48",)),
    Row("fixed-length row copies 4/8/16/32, 32-point pieces, steps 2/4/8",
        "weight_grad.cpp: copy_run, copy_pieces, pack_group", (4, 8, 16, 32),
        ("wg_pixels", "stride"), literals=("4", "8", "16", "32")),
    Row("panel packed from `fine` for kernel x >= kPanelMinTaps (avx512), runs of <= one "
        "vector of taps (64 bytes: 16 f32 / 8 f64), each moved on the narrowest 16 / 32 / "
        "64-byte vector holding it (runs of 4 / 8 / 16 f32 taps and one past each)",
        "weight_grad.cpp: kPanelMinTaps, 64 / sizeof, masked_move<kBytes>", (4, 8, 16),
        ("panel_taps",), literals=("16", "32"), names=("kPanelMinTaps",),
        dtypes=("float32", "float64")),
    Row("channels-last form: taps >= kClReuse (3) x the strides' product",
        "weight_grad.cpp: kClReuse", (3,), ("cl_reuse",), literals=("3",), names=("kClReuse",),
        dtypes=("float32", "float64")),
    Row("channels-last form: fine channels per group in whole nr blocks (8/16/32)",
        "weight_grad.cpp: channels_last_form", TILE_NR, ("cl_channels",),
        dtypes=("float32", "float64")),
    Row("grad_weight column ranges of >= kMinTaskTiles (2) GEMM tiles: channels-last fine "
        "channels at 2 and 4 nr blocks (one range, then two on 2 threads)",
        "weight_grad.cpp: kMinTaskTiles", tuple(sorted({f * n for n in TILE_NR for f in (2, 4)})),
        ("cl_channels",), names=("kMinTaskTiles",), dtypes=("float32", "float64")),
    Row("channels-last form on the phase view of x: M >= kPhaseMinRows (16)",
        "weight_grad.cpp: kPhaseMinRows", (16,), ("view_rows",), names=("kPhaseMinRows",),
        dtypes=("float32", "float64")),
    Row("channels-last form on the phase view of x: its lanes fill >= kPhaseFill / 4 (3/4) of "
        "their nr blocks", "weight_grad.cpp: kPhaseFill", (3, 6), ("view_fill",),
        names=("kPhaseFill",), dtypes=("float32", "float64")),
    Row("channels-last transposes in pieces of kPieceK = 256 points (+ one cache line)",
        "weight_grad.cpp: kPieceK", (256,), ("cl_piece",), names=("kPieceK",),
        dtypes=("float32", "float64")),
    Row("grad_weight outer form: the next column block's source lines prefetched between the "
        "tiles of the current one", "weight_grad.cpp: BlockLines", (), (),
        why="same values either way (prefetches only); column ranges of several blocks, 1-D "
        "to 3-D, strided, padded and dilated, on every ISA: "
        "test_isa.test_grad_weight_outer_form_every_isa"),
    Row("prefetch_bytes / LineQueue: every kCacheLine = 64-byte line of a range prefetched "
        "(locality hint 3: every level)", "tconv/prefetch.hpp: kCacheLine", (), (),
        literals=("64", "3"), names=("kCacheLine",),
        why="prefetches only: the same values with or without them; the grad_weight outer "
        "form's next column block (test_isa.test_grad_weight_outer_form_every_isa), the "
        "band-per-block gathers' next channels (test_band_prefetch.py), the bands' next "
        "channels, the phase view's next rows and the GEMM engine's next B slice"),
    Row("B rows one cache line longer", "weight_grad.cpp: kcp + 64 / size", (), (),
        literals=("64",), why="inert: leading dimension padding"),
    # -- csrc/gemm/engine.cpp (1x1 stride-1 forward and gather) -------------------------------
    Row("gemm engine: B block l2_cache_bytes() / kBBlockL2Share -> nc = that / 1 KiB columns "
        "(f32 kc 256, f64 kc 128; 128 with a 1 MiB L2)",
        "gemm/engine.cpp: b_block_bytes", (GEMM_NC,), ("gemm_pixels",),
        names=("kBBlockL2Share",), dtypes=("float32", "float64")),
    Row("gemm engine: pack_b per nr 8/16/32/64 (pixel tails of every tile and wide tile)",
        "gemm/engine.cpp: pack_b_for", (8, 16, 32, 64), ("gemm_pixels",),
        literals=("8", "16", "32", "64"), dtypes=("float32", "float64")),
    Row("gemm engine: pack_b copies a full nr panel row in kChunk = 16/32/64-byte moves (the "
        "baseline / avx2 / avx512 clone's vector width: 4/8/16 f32 pixels), a tail panel "
        "element by element", "gemm/engine.cpp: copy_chunks, pack_b_body", (4, 8, 16),
        ("gemm_pixels",), names=("kChunk",), dtypes=("float32", "float64")),
    Row("gemm engine: tile rows mr, wide kernels for M <= 3, row blocks of whole panels",
        "gemm/engine.cpp: tile_rows, block_rows", TILE_MR + (3,), ("gemm_rows",)),
    Row("gemm engine: K block kc, prefetch kPackAhead = 4 rows ahead (64-byte lines), A packed "
        "kAPackDepth = 16 values of k at a time",
        "gemm/engine.cpp: kPackAhead, k + kPackAhead < kc, kAPackDepth", (4, 16, 128, 256),
        ("gemm_depth",), literals=("4", "64", "16"),
        names=("kPackAhead", "kAPackDepth"), dtypes=("float32", "float64")),
    Row("gemm engine: tasks wanted 4 x threads", "gemm/engine.cpp: 4.0 * threads", (), (),
        literals=("4.0",), why="thread-count-dependent splitting never changes a sum "
        "(tests/test_gemm_engine.py: 1, 2, 3 threads bitwise)"),
    Row("gemm engine: serial below 2e5 flops", "gemm/engine.cpp: flops > 2e5", (200000,),
        ("flops",), literals=("2e5",)),
    Row("gemm engine, phase GEMM (kernel = stride): (channel, phase) rows cross mr",
        "gemm/engine.cpp: run_phase_gemm", TILE_MR + (3,), ("phase_rows",)),
    Row("gemm engine, phase GEMM: K (C_in; the gather's C_out x taps) crosses kc",
        "gemm/engine.cpp: run_phase_gemm", (128, 256), ("phase_depth",),
        dtypes=("float32", "float64")),
    Row("gemm engine, phase GEMM: mapped pack and store across nr, wide nr and nc",
        "gemm/engine.cpp: pack_b_mapped, finish_tile_mapped", TILE_NR + (64, 512),
        ("phase_pixels",), dtypes=("float32", "float64")),
    # -- csrc/direct.cpp, resize.cpp ----------------------------------------------------------
    Row("all_finite parallel above 2^18 values", "direct.cpp: n > (1 << 18)", (262144,),
        ("elements",), literals=("18",)),
    Row("bilinear sample centres", "resize.cpp: (o + 0.5) / s - 0.5", (), (),
        literals=("0.5",), why="inert: the formula, not a switch"),
    Row("resize runs of kRunValues values between cancellation checks", "resize.cpp: kRunValues",
        (2048, 4096), ("elements",), literals=("4096",), names=("kRunValues",),
        why="resize_conv upsamples the length-v input to 2v values"),
    Row("non-finite repair on threads above 2^20 multiply-adds",
        "direct.cpp: kParallelRepairWork", (), (), literals=("20",),
        names=("kParallelRepairWork",),
        why="inert for results: threads only; tests/test_nonfinite.py checks 1 vs 2 threads "
            "bitwise"),
    Row("non-finite repair: whole plane above 1/8 Inf/NaN, scan blocks of 256, 8 lanes",
        "direct.cpp: elements * 8 > size, e0 += 256, kLanes", (), (), literals=("8", "256"),
        names=("kLanes",),
        why="inert for results: both repair forms sum each output in one order; "
            "tests/test_nonfinite.py drives both (a NaN in x, a NaN weight)"),
    # -- csrc/plan.cpp ---------------------------------------------------------------------------
    Row("planner summary: 4 input modes, B rows + 64 bytes", "plan.cpp: seen[4], + 64", (), (),
        literals=("4", "64"), why="inert: reports the plan, never chooses it "
        "(the choices are the rows above; tests/test_plan.py checks the report)"),
    # -- csrc/workspace.cpp ---------------------------------------------------------------------
    Row("scratch kept per thread: 16 blocks, 256 MiB (TCONV_SCRATCH_CACHE_BYTES), a block "
        "serves >= 1/4 of its size, 64-byte / 4 KiB granules from 64 KiB",
        "workspace.cpp: kKeepBlocks, kDefaultKeepBytes, kMaxSlack, kLine, kPage, kPageFrom",
        (), (), literals=("16", "256", "20", "4", "64", "4096", "1024"),
        names=("kKeepBlocks", "kDefaultKeepBytes", "kMaxSlack", "kLine", "kPage", "kPageFrom"),
        why="inert for results (no call reads scratch it did not write: test_scratch fills "
            "kept blocks with NaN bytes); test_scratch straddles each count, size and limit"),
    # -- csrc/bindings.cpp ----------------------------------------------------------------------
    Row("Ctrl-C poll interval 20 ms", "bindings.cpp: kPollInterval{20}", (), (),
        literals=("20",), why="inert: when Python's signal handlers run, never what is computed"),
    Row("verbose line: time field buffer", "bindings.cpp: char time[32]", (), (),
        literals=("32",), why="inert: formats the TCONV_VERBOSE time, never what is computed"),
    # -- csrc/winograd.cpp, csrc/tconv/winograd_tasks.hpp (algorithm="winograd"/"winograd4") --
    Row("Winograd tile block: V <= kWinoVBytes, 1 .. kWinoMaxPanels panels",
        "winograd.cpp: kWinoVBytes = 768 << 10, kWinoMaxPanels = 8", (), (),
        literals=("768", "10", "8"), names=("kWinoVBytes", "kWinoMaxPanels"),
        why="inert for results (each output's sum does not depend on the tile block); "
            "tests/test_winograd.py::test_tile_block_and_slab_boundaries runs 1 and 8 panels "
            "and blocks that end mid tile row"),
    Row("Winograd weight-transform job: <= kWeightBlockBytes of weights, >= 4 jobs a thread",
        "winograd.cpp: kWeightBlockBytes = 256 << 10, ceil(C_in/g / (4 threads))", (), (),
        literals=("256", "4"), names=("kWeightBlockBytes",),
        why="inert for results (each element of U is computed alike in any job); "
            "tests/test_winograd.py::test_bitwise_deterministic_across_threads cuts its 20 "
            "channels into blocks of 5, 3 and 2 (1, 2, 3 threads; last block short) and "
            "compares the bits; test_tile_block_and_slab_boundaries runs 300 and 700 channels"),
    Row("Winograd output tile m = 2 or 4 per axis, r = 2 or 3 taps",
        "winograd.cpp: m == 4, taps 2|3", (), (), literals=("4", "3"),
        why="the plan (winograd_suits): tests/test_winograd.py::test_plan straddles the taps "
            "(1, 2, 3, 4 per phase) and runs both tiles"),
    Row("Winograd slab of output channels: Z <= kWinoZBytes; transform scratch kWinoMaxNR",
        "tconv/winograd_tasks.hpp: kWinoZBytes = 256 << 10, kWinoMaxNR = 64", (), (),
        literals=("256", "10", "64"), names=("kWinoZBytes", "kWinoMaxNR"),
        why="inert for results (slabs never split a sum); test_tile_block_and_slab_boundaries "
            "runs 1 and several slabs; kWinoMaxNR >= every table's nr (32)"),
    # -- csrc/winograd_gather.cpp (conv / grad_input, algorithm="winograd"/"winograd4") ------
    Row("Winograd gather tile block: V <= kGatherVBytes, 1 .. kGatherMaxPanels panels",
        "winograd_gather.cpp: kGatherVBytes = 512 << 10, kGatherMaxPanels = 8", (), (),
        literals=("512", "10", "8"), names=("kGatherVBytes", "kGatherMaxPanels"),
        why="inert for results (each output's sum does not depend on the tile block); "
            "tests/test_winograd_gather.py::test_tile_block_and_slab_boundaries runs 1 and 8 "
            "panels (test_block_constants_are_crossed checks the plan) and blocks that end mid "
            "tile row"),
    Row("Winograd gather: kernel 2s .. 3s per axis (2 or 3 taps per phase), tile m = 2 or 4",
        "winograd_gather.cpp: k > 3 * s, m == 4", (), (), literals=("3", "4"),
        why="the plan (winograd_gather_suits): tests/test_winograd_gather.py::test_plan "
            "straddles the kernel (1 to 4 taps per phase) and runs both tiles"),
    Row("Winograd transform coefficients (interpolation points 0, +-1, 1/2, -2, inf)",
        "tconv/winograd_tasks.hpp: Wino<m, r>", (), (),
        literals=("0.125", "0.25", "0.5", "3", "4", "5", "6", "8", "15", "16", "30"),
        why="inert: matrix entries, not thresholds; tests/test_winograd.py checks each "
            "transform against the oracle within the bound derived from them"),
]

# Files of each row (the part of `where` before the colon, relative to csrc/).
_AVX512_FILES = ("ukernels/avx512.cpp", "ukernels/avx512_table.hpp",
                 "ukernels/avx512_emulated.cpp", "ukernels/emulated_vec.hpp")
_ROW_FILES = {
    "ukernels/{generic,avx2,avx512}.cpp": ("ukernels/generic.cpp", "ukernels/avx2.cpp",
                                           *_AVX512_FILES),
    "ukernels/*.cpp": ("ukernels/generic.cpp", "ukernels/avx2.cpp", *_AVX512_FILES),
    "subconv/pack.cpp / copy.hpp": ("subconv/pack.cpp", "tconv/copy.hpp"),
    "tconv/plan.hpp / copy.hpp": ("tconv/plan.hpp", "tconv/copy.hpp"),
    "subconv/*": tuple(p.relative_to(CSRC).as_posix()
                       for p in sorted((CSRC / "subconv").glob("*.[ch]pp"))),


    "subconv.cpp / copy.hpp": ("subconv.cpp", "tconv/copy.hpp"),
    "ukernels/depthwise_*.cpp": ("ukernels/depthwise_generic.cpp", "ukernels/depthwise_avx2.cpp",
                                 "ukernels/depthwise_avx512.cpp",
                                 "ukernels/depthwise_avx512_emulated.cpp"),
}


def _row_files(row: Row) -> tuple[str, ...]:
    f = row.where.split(":")[0].strip()
    return _ROW_FILES.get(f, (f,))


# ---- the scan of csrc/ -------------------------------------------------------------------

_NUM = re.compile(r"(?<![\w.])(0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)[uUlLfF]*(?![\w.])")
_NAMED = re.compile(r"\bconstexpr\s+[\w:<>]+\s+(k[A-Z]\w*)\s*=")
_INERT_NAMES = {"kZero", "kBorder"}  # sentinel codes of indirect_rows, not sizes


def _code(text: str) -> str:
    """Source without comments, string literals and non-OpenMP pragmas / includes."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"^\s*#\s*(include|pragma\s+(?!omp)|define|if|endif|else|elif)[^\n]*", "",
                  text, flags=re.MULTILINE)


def scan_csrc() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(file, literal) with a value >= 3 or non-integer, and (file, kName) of csrc/."""
    literals, names = set(), set()
    for path in sorted(CSRC.rglob("*")):
        if path.suffix not in (".cpp", ".hpp"):
            continue
        rel = path.relative_to(CSRC).as_posix()
        code = _code(path.read_text())
        for m in _NUM.finditer(code):
            text = m.group(1)
            value = int(text, 16) if text.lower().startswith("0x") else float(text)
            if value not in (0, 1, 2):
                literals.add((rel, text))
        for m in _NAMED.finditer(code):
            if m.group(1) not in _INERT_NAMES:
                names.add((rel, m.group(1)))
    return literals, names


def test_table_covers_csrc():
    literals, names = scan_csrc()
    claimed_lits = {(f, lit) for row in TABLE for f in _row_files(row) for lit in row.literals}
    claimed_names = {(f, n) for row in TABLE for f in _row_files(row) for n in row.names}
    missing = sorted(literals - claimed_lits)
    assert not missing, (
        "csrc/ has numeric literals that no TABLE row of tests/test_boundaries.py claims "
        f"(add a row, with a family that straddles it if it switches behaviour): {missing}")
    missing_names = sorted(names - claimed_names)
    assert not missing_names, f"csrc/ constants without a TABLE row: {missing_names}"
    # a row spanning several files (the per-ISA sources) needs its name in one of them
    stale = sorted((row.where, n) for row in TABLE for n in row.names
                   if not any((f, n) in names for f in _row_files(row)))
    assert not stale, f"TABLE rows name constants that csrc/ no longer has: {stale}"


def test_table_rows_are_complete():
    for row in TABLE:
        assert row.values or row.why, f"inert row without a reason: {row.name}"
        for fam in row.families:
            assert fam in FAMILIES, (row.name, fam)


# ---- the sweep ---------------------------------------------------------------------------

SLOW_COST = 3e5    # oracle products above which a geometry runs only with -m slow
QUICK_COST = 2e4   # ... and above which TCONV_BOUNDARY_QUICK leaves it out


def _sweep_params() -> list[Any]:
    """One parameter per distinct (geometry, dtype), naming the rows that asked for it; the
    2c + 3 values and the costly geometries are slow."""
    seen: dict[tuple[Geo, str], list[str]] = {}
    slow: dict[tuple[Geo, str], bool] = {}

    def add(geo: Geo, dt: str, label: str, far: bool) -> None:
        if not geo.valid() or (QUICK and (far or geo.cost() > QUICK_COST)):
            return
        key = (geo, dt)
        seen.setdefault(key, []).append(label)
        slow[key] = slow.get(key, True) and (far or geo.cost() > SLOW_COST)

    for row in TABLE:
        for c in row.values:
            for v in (c - 1, c, c + 1, 2 * c + 3):
                if v < 1:
                    continue
                far = v == 2 * c + 3
                for fam in row.families:
                    for geo in FAMILIES[fam](v):
                        for dt in row.dtypes:
                            add(geo, dt, f"{row.name} (c={c}, v={v})", far)
                if "pad" not in row.families and v <= 4096 and not QUICK:
                    for geo in fam_pad(v):
                        add(geo, "float32", f"{row.name}: padding/crop {v}", far)
    return [pytest.param(geo, dt, rows, marks=[pytest.mark.slow] if slow[(geo, dt)] else [],
                         id=f"{dt}-{'x'.join(map(str, geo.coarse))}-{i}")
            for i, ((geo, dt), rows) in enumerate(seen.items())]


@pytest.mark.parametrize("dtype,c", [("float32", 85), ("float32", 22), ("float64", 43),
                                     ("float64", 11)])
def test_task_span_family_straddles_task_columns(dtype, c):
    """The rows of task_columns sweep channels around where a task's chunk changes: on each
    side of c the family's row (194 points above K = kc, 760 at the cap) is cut differently,
    in the forward and in the gather alike."""
    width = 194 if c > 30 else 760
    cuts = []
    for v in (c - 1, c, c + 1):
        fwd = tconv.plan("conv_transpose", (1, v, width), (v, 5, 3), padding=1, dtype=dtype)
        gat = tconv.plan("grad_input", (1, 5, width), (5, v, 3), padding=1, dtype=dtype)
        assert fwd.blocks["nc"] == gat.blocks["nc"], (v, fwd, gat)
        cuts.append(gat.blocks["nc"])
    assert cuts[0] == width and cuts[1] == cuts[2] < width, cuts


@pytest.mark.parametrize("geo,dtype,rows", _sweep_params())
def test_boundary(geo, dtype, rows):
    _check_all(geo, np.dtype(dtype))
    if any(r.startswith("narrow tile columns") for r in rows):  # off by default on most CPUs
        try:
            _core._set_narrow_tiles(1)
            _check_all(geo, np.dtype(dtype))
        finally:
            _core._set_narrow_tiles(-1)


# ---- regressions ---------------------------------------------------------------------------

ONE_CHANNEL_GATHERS = [
    Geo((4,), c_in=1, c_out=3, kernel=(4,), stride=(2,), padding=((1, 1),), batch=16,
        ops=("grad_input", "conv")),
    Geo((6,), c_in=1, c_out=3, kernel=(4,), stride=(2,), padding=((1, 1),), batch=32,
        ops=("grad_input", "conv")),
    Geo((2, 2), c_in=1, c_out=3, kernel=(4, 4), stride=(2, 2), padding=((1, 1), (1, 1)),
        dilation=(1, 1), output_padding=(0, 0), batch=16, ops=("grad_input", "conv")),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geo", ONE_CHANNEL_GATHERS, ids=lambda g: "x".join(map(str, g.coarse)))
def test_one_channel_gather_with_planes_shorter_than_a_tile(geo, dtype):
    """c429342: a gather with one output channel whose grid plane holds fewer points than a
    tile's nr: the packed path's tiles run on into the next images' planes, consecutive in
    dst, so kernels writing them straight into dst would be called with ldc = plane < nr
    (csrc/subconv/run.cpp stores_in_kernels; the values were right, but the kernels'
    TCONV_ASSERT precondition failed: the assert build of tools/sanitize.sh aborted).  The
    batch makes the grid points a multiple of every ISA's nr, so that whole nr-column tiles
    cross the images; the plan check keeps the geometry on that path."""
    plane = int(np.prod(geo.coarse))
    before = tconv.isa()
    try:
        for isa in ISAS:
            tconv.set_isa(isa)
            p = tconv.plan("grad_input", (geo.batch, geo.c_in, *geo.coarse),
                           (geo.c_in, geo.c_out, *geo.kernel), stride=geo.stride,
                           padding=geo.padding, dtype=dtype)
            nr = p.tile[1]
            assert (p.algorithm, p.input) == ("subconv", "packed"), (isa, str(p))
            assert plane < nr and (geo.batch * plane) % nr == 0, (isa, str(p))
            assert p.blocks["nc"] % nr == 0, (isa, str(p))
    finally:
        tconv.set_isa(before)
    _check_all(geo, np.dtype(dtype))
