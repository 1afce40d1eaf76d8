"""The packed path's border-sorted columns and blocked channel packing (csrc/subconv/).

When at least 1 / kSortBorderDiv (1/32) of the packed sub-convolutions' terms read padding,
their grid points are numbered box by box (border_boxes: along z and y the first and last
points that read outside one by one, the middle together; x stays whole rows), so that a B
panel of border rows skips (kgemm) the taps that read padding for all of its columns.  A
packed panel whose columns are consecutive places of dst is summed straight into dst, each
panel on its own (the others go through the accumulator).  Packing copies kPackChannels (8)
channels' rows at a time when channel planes are a multiple of 4 KiB apart.

Skipped products are exact zeros and packing only moves values, so:

* every geometry is checked against the float64 structural oracle on every ISA;
* a gather with padding p gives the bits of the same gather with padding 0 over the
  zero-padded input (no term reads padding there, so nothing is sorted or skipped), and a
  forward's the crop of its padding-0 result (same K rows in the same order);
* the plan says ``packed_sorted`` where the rule holds and ``packed`` on the other side.

The pitched band (test_pitched_band.py), which reads some of these forwards in place of the
packed path (few output channels on short rows), is off here, so that they test the packing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import tconv
from _isas import assert_bitwise_across_threads
from conftest import assert_matches_oracle
from tconv import _core, reference


@pytest.fixture(autouse=True)
def _no_pitched_band() -> Iterator[None]:
    _core._set_pitched_band(0)
    yield
    _core._set_pitched_band(-1)

@dataclass(frozen=True)
class Case:
    name: str
    coarse: tuple[int, ...]
    c_in: int
    c_out: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    batch: int = 3

    def kw(self, padding: tuple[int, ...] | None = None) -> dict[str, object]:
        nd = len(self.coarse)
        return {"stride": self.stride, "padding": self.padding if padding is None else padding,
                "dilation": self.dilation or (1,) * nd, "groups": self.groups}

    def tkw(self, padding: tuple[int, ...] | None = None) -> dict[str, object]:
        return dict(self.kw(padding), output_padding=self.output_padding or (0,) * len(self.coarse))


CASES = [
    # DCGAN 256->128 in small: 8x8 rows of 8 (packed), y borders of one point
    Case("dcgan", (8, 8), 24, 16, (4, 4), (2, 2), (1, 1), batch=5),
    # 3-D U-Net's k3 s2 p1 op1: a low border only, along z and y
    Case("unet3d", (6, 6, 6), 12, 10, (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), batch=2),
    # padding 5 with k4 s2: whole boxes whose taps all read padding (panels of no terms)
    Case("pad5", (7, 7), 10, 9, (4, 4), (2, 2), (5, 5), batch=4),
    # borders of several points, stride 3, kernel 6, groups
    Case("k6s3", (9, 5), 12, 12, (6, 6), (3, 3), (4, 2), (1, 0), groups=3),
    # 1-D: sorting along y and z does nothing, the rule still holds
    Case("1d", (9,), 16, 16, (16,), (8,), (4,), batch=4),
    # dilation 2: borders two points wide
    Case("dilated", (10, 6), 8, 12, (3, 3), (1, 1), (2, 2), dilation=(2, 2), batch=4),
    # stride 3 > kernel 2: phases that no tap reaches (bias only), padding 1
    Case("gaps", (6, 5), 8, 6, (2, 2), (3, 3), (1, 1), (1, 2), batch=4),
    # 40 channels: two K blocks, the second starting mid-channel; 16 KiB planes (blocked copy)
    Case("channels", (16, 16), 40, 8, (3, 3), (2, 2), (1, 1), (1, 1), batch=1),
]

# Forward phase grids that are their source planes, a multiple of 16 points (the avx512
# float32 packer of shifted runs, kShiftLanes = 16 columns a group): in the border boxes a
# group holds one grid row of each of 16 / width images, so 2, 4, 8 and 16 runs of lanes;
# batch 3 and 5 put a box's end inside a group.
SHIFTED = [
    Case("shift-w8", (8, 8), 24, 16, (4, 4), (2, 2), (1, 1), batch=3),
    Case("shift-w4", (8, 4), 20, 16, (4, 4), (2, 2), (1, 1), batch=5),
    Case("shift-w2", (8, 2), 20, 16, (4, 4), (2, 2), (1, 1), batch=3),
    Case("shift-w1", (16, 1), 12, 16, (4, 4), (2, 2), (1, 1), batch=3),
    Case("shift-3d", (2, 2, 4), 10, 16, (4, 4, 4), (2, 2, 2), (1, 1, 1), batch=3),
]
CASES += SHIFTED


def _data(case: Case, dtype: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(abs(hash(case.name)) % 2**32)
    x = rng.standard_normal((case.batch, case.c_in, *case.coarse)).astype(dtype)
    w = rng.standard_normal((case.c_in, case.c_out // case.groups, *case.kernel)).astype(dtype)
    fine = tconv.output_shape(x.shape, w.shape, **case.tkw())
    g = rng.standard_normal(fine).astype(dtype)
    return x, w, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_oracle(on_isa: str, case: Case, dtype: object) -> None:
    x, w, g = _data(case, dtype)
    taps = int(np.prod(case.kernel))
    y = tconv.conv_transpose(x, w, **case.tkw())
    assert_matches_oracle(y, reference.conv_transpose_structural(x, w, None, **case.tkw()),
                          reference.conv_transpose_structural(np.abs(x), np.abs(w), None,
                                                              **case.tkw()),
                          case.c_in // case.groups * taps, f"{case.name} forward")
    gi = tconv.conv(g, w, **case.kw())
    assert_matches_oracle(gi, reference.conv_structural(g, w, None, **case.kw()),
                          reference.conv_structural(np.abs(g), np.abs(w), None, **case.kw()),
                          case.c_out // case.groups * taps, f"{case.name} grad_input")


def _padded(g: np.ndarray, pads: tuple[int, ...]) -> np.ndarray:
    return np.pad(g, [(0, 0), (0, 0), *[(p, p) for p in pads]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_bits_as_explicit_zero_padding(on_isa: str, case: Case, dtype: object) -> None:
    """The skipped terms are exact zeros: the gather over an explicitly zero-padded input
    (padding 0: no padding terms, the grid's own order) has the same bits, and so has the crop
    of the forward with padding 0."""
    x, w, g = _data(case, dtype)
    zero = (0,) * len(case.coarse)
    gi = tconv.conv(g, w, **case.kw())
    gi0 = tconv.conv(_padded(g, case.padding), w, **case.kw(zero))
    assert gi.tobytes() == gi0.tobytes(), case.name
    y = tconv.conv_transpose(x, w, **case.tkw())
    y0 = tconv.conv_transpose(x, w, **case.tkw(zero))
    crop = (slice(None), slice(None), *[slice(p, p + n) for p, n in zip(case.padding, y.shape[2:])])
    assert y.tobytes() == np.ascontiguousarray(y0[crop]).tobytes(), case.name


@pytest.mark.parametrize("case", CASES[:3] + SHIFTED[:2], ids=lambda c: c.name)
def test_threads_bitwise(case: Case) -> None:
    x, w, g = _data(case, np.float32)
    for isa in tconv.supported_isas():
        assert_bitwise_across_threads(
            isa, lambda: [tconv.conv_transpose(x, w, **case.tkw()), tconv.conv(g, w, **case.kw())])


def test_nonfinite_placement(on_isa: str) -> None:
    """An Inf weight times a padding zero is no term of the definition: the sorted panels skip
    it, and a NaN in the input reaches exactly the outputs whose terms read it."""
    case = CASES[0]
    x, w, g = _data(case, np.float32)
    w[1, 2, 0, 0] = np.inf
    g[0, 3, 0, 5] = np.nan
    gi = tconv.conv(g, w, **case.kw())
    expected = reference.conv_structural(g.astype(np.float64), w.astype(np.float64), None,
                                         **case.kw())
    assert np.array_equal(np.isnan(gi), np.isnan(expected))
    assert np.array_equal(np.isinf(gi), np.isinf(expected))


def _plan_input(op: str, case: Case) -> str:
    shape = (case.batch, case.c_in, *case.coarse)
    wshape = (case.c_in, case.c_out // case.groups, *case.kernel)
    return tconv.plan(op, shape, wshape, **case.tkw()).input


@pytest.mark.parametrize("length", [15, 16, 17, 35])
def test_rule_share_of_padding_terms(on_isa: str, length: int) -> None:
    """Rows of 4 points (packed), k4 s2 p1 along y only: 1 / (2 length) of the gather's terms
    read padding, so lengths up to 16 are sorted, longer ones keep the grid's order."""
    case = Case("rule", (length, 4), 6, 5, (4, 1), (2, 1), (1, 0))
    want = "packed_sorted" if 2 * length <= 32 else "packed"
    assert _plan_input("grad_input", case) == want
    x, w, g = _data(case, np.float32)
    gi = tconv.conv(g, w, **case.kw())
    gi0 = tconv.conv(_padded(g, case.padding), w, **case.kw((0, 0)))
    assert gi.tobytes() == gi0.tobytes()


def test_plans_say_sorted() -> None:
    """The suite's DCGAN 256->128 grad_input and forward are sorted wherever they take the
    packed path (the forward's grids are their source planes: on avx512 float32 they pack by
    shifted runs in the sorted order too)."""
    case = Case("dcgan-256-128", (8, 8), 256, 128, (4, 4), (2, 2), (1, 1), batch=64)
    before = tconv.isa()
    try:
        for isa in tconv.supported_isas():
            tconv.set_isa(isa)
            for op in ("grad_input", "conv_transpose"):
                got = _plan_input(op, case)
                assert got in ("packed_sorted", "band"), (isa, op, got)
                if tconv.plan(op, (64, 256, 8, 8), (256, 128, 4, 4), stride=2,
                              padding=1).tile[1] >= 16:
                    assert got == "packed_sorted", (isa, op)
    finally:
        tconv.set_isa(before)


@pytest.mark.parametrize("case", SHIFTED, ids=lambda c: c.name)
def test_shifted_grids_sorted(on_isa: str, case: Case) -> None:
    """The shifted-run cases are packed and border-sorted on every ISA and dtype where their
    rows are narrower than the tile (else they take the band path)."""
    for dtype in ("float32", "float64"):
        shape = (case.batch, case.c_in, *case.coarse)
        wshape = (case.c_in, case.c_out, *case.kernel)
        p = tconv.plan("conv_transpose", shape, wshape, dtype=dtype, **case.tkw())
        want = "packed_sorted" if case.coarse[-1] < p.tile[1] else "band"
        assert p.input == want, (case.name, dtype, p.tile)


@pytest.mark.parametrize("width", [2, 3, 5, 7, 9, 12, 15, 16, 17])
def test_row_lengths(on_isa: str, width: int) -> None:
    """Packed rows of every length up to 16 (and one past), read at step 1 (forward phases) and
    2 (gather) with a border on both sides (padding 2 of k4 s2, k5 s2: the rows of run-time
    length whose pieces read inside only in their middle; on the avx512 float table one or two
    masked loads each): the oracle, and the bits of the explicitly zero-padded gather."""
    for kernel, pad in (((4, 4), (2, 2)), ((5, 5), (2, 3))):
        case = Case(f"w{width}", (3, width), 6, 5, kernel, (2, 2), pad, batch=4)
        x, w, g = _data(case, np.float32)
        taps = int(np.prod(case.kernel))
        y = tconv.conv_transpose(x, w, **case.tkw())
        assert_matches_oracle(y, reference.conv_transpose_structural(x, w, None, **case.tkw()),
                              reference.conv_transpose_structural(np.abs(x), np.abs(w), None,
                                                                  **case.tkw()),
                              case.c_in * taps, f"{case.name} forward")
        gi = tconv.conv(g, w, **case.kw())
        assert_matches_oracle(gi, reference.conv_structural(g, w, None, **case.kw()),
                              reference.conv_structural(np.abs(g), np.abs(w), None, **case.kw()),
                              case.c_out * taps, f"{case.name} grad_input")
        gi0 = tconv.conv(_padded(g, pad), w, **case.kw((0, 0)))
        assert gi.tobytes() == gi0.tobytes(), case.name
