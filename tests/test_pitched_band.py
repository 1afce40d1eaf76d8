"""The pitched band (csrc/subconv/plan.cpp: pitched_rule, band.cpp: pitched_tiles).

A forward whose phase grids have rows too short to fill the register tile (float32 rows under
0.6 x 32 points on avx512) packed B, copying each source value once per tap.  With a pitched
band its tasks instead lay their grid rows end to end at the band's pitch (a row and the
hull's extra x taps), so that one tile of nr consecutive band values spans rows; the columns
past a row's end are computed and discarded.  The tile's columns never change a sum, so:

* forced on (``_core._set_pitched_band(1)``), every such forward has the bits of the packed
  path (forced off), on every ISA and dtype, 2-D and 3-D, with groups, a bias, Inf and NaN in x
  (read by the discarded columns too) and in w, a band too large for it (row tiles instead)
  and one filled per K block (a stride-1 forward of many channels); it matches the float64
  oracle and gives the same bits on 1, 2 and 3 threads;
* by the rule (the default), the plan takes it exactly when the discarded columns times the
  M rows that multiply them cost less than kPitchPackRows = 6 rows per grid point, with a
  plane's rows cut into tasks by pitched_rows (at most kPitchMaxChunks = 2 task chunks of
  points): both sides of the M threshold, and of the fill of row tiles (kDirectMinFill).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tconv
from _isas import assert_bitwise_across_threads, isa_params
from _winograd_checks import load_tool
from conftest import assert_matches_oracle
from tconv import _core, reference

PACK_ROWS = 6  # kPitchPackRows
FILL = 0.6  # kDirectMinFill


@pytest.fixture(autouse=True)
def _rule_and_full_tiles() -> Iterator[None]:
    """The full register tile (the narrow one, where it is the default, takes these widths
    first) and the pitched band back to its rule after each test."""
    _core._set_narrow_tiles(0)
    yield
    _core._set_pitched_band(-1)
    _core._set_narrow_tiles(-1)


def _nr(isa: str, dtype: str) -> int:
    return int(_core._ukernel_tiles(isa, {"float32": "f32", "float64": "f64"}[dtype])["nr"])


def _problem(coarse: tuple[int, ...], c_in: int, c_out: int, dtype: str, k: int = 3,
             stride: int = 2, padding: int = 1, output_padding: int = 1,
             groups: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      dict[str, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in, *coarse)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups, *(k,) * len(coarse))).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    kw = {"stride": stride, "padding": padding, "output_padding": output_padding,
          "groups": groups}
    return x, w, b, kw


def _input(x: np.ndarray, w: np.ndarray, kw: dict[str, Any]) -> str:
    return str(tconv.plan("conv_transpose", x.shape, w.shape, dtype=x.dtype.name, **kw).input)


def _both(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
          kw: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The forward pitched (forced on) and packed (forced off), each checked in its plan."""
    _core._set_pitched_band(1)
    assert _input(x, w, kw) == "pitched_band"
    on = tconv.conv_transpose(x, w, b, **kw)
    _core._set_pitched_band(0)
    assert "pitched" not in _input(x, w, kw)
    off = tconv.conv_transpose(x, w, b, **kw)
    return on, off


# (coarse spatial shape, c_in, c_out, groups): rows of 1 to 19 points (under 0.6 x 32), a
# plane of fewer points than a tile, odd row counts, 3-D, groups
SHAPES = [((5, 7), 14, 15, 1), ((9, 1), 6, 13, 1), ((3, 16), 20, 24, 1), ((6, 19), 8, 16, 2),
          ((7, 4), 12, 10, 1), ((2, 5, 12), 10, 7, 1), ((4, 4, 16), 16, 32, 1),
          ((3, 2, 2), 9, 14, 1), ((2, 6, 3), 8, 12, 2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("coarse,c_in,c_out,groups", SHAPES)
def test_same_bits_as_packed(on_isa: str, dtype: str, coarse: tuple[int, ...], c_in: int,
                             c_out: int, groups: int) -> None:
    x, w, b, kw = _problem(coarse, c_in, c_out, dtype, groups=groups, seed=len(coarse) + c_in)
    nr = _nr(on_isa, dtype)
    if coarse[-1] >= FILL * (-(-coarse[-1] // nr) * nr):  # rows fill this ISA's row tiles
        _core._set_pitched_band(1)
        assert "pitched" not in _input(x, w, kw)
        return
    for bias in (b, None):
        on, off = _both(x, w, bias, kw)
        assert on.tobytes() == off.tobytes(), (coarse, bias is None)
    taps = 3 ** len(coarse)
    assert_matches_oracle(on, reference.conv_transpose_structural(x, w, None, **kw),
                          reference.conv_transpose_structural(np.abs(x), np.abs(w), None, **kw),
                          c_in // groups * taps, f"{coarse} on {on_isa}")


# (x shape, w shape, stride, padding, output_padding, groups): x strides of 8 and 4 whose
# phases include some without taps (stored with the others as one x-phase group), the first
# seen in tools/result_hash.py's random geometries (its tap-less phases once took row tiles
# while the others were pitched: NaN in the group's store)
NO_TAP_PHASES = [((3, 22, 8, 1), (22, 8, 5, 4), (1, 8), (1, 0), (0, 4), 2),
                 ((2, 6, 5, 3), (6, 7, 3, 2), (2, 4), (1, 0), (1, 2), 1),
                 ((2, 4, 3, 2, 2), (4, 9, 2, 3, 3), (1, 2, 8), (0, 1, 1), (0, 1, 7), 1)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", NO_TAP_PHASES, ids=lambda c: "x".join(map(str, c[0])))
def test_phases_without_taps(on_isa: str, dtype: str, case: tuple[Any, ...]) -> None:
    xs, ws, stride, padding, output_padding, groups = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[1] * groups).astype(dtype)
    kw = {"stride": stride, "padding": padding, "output_padding": output_padding,
          "groups": groups}
    on, off = _both(x, w, b, kw)
    assert on.tobytes() == off.tobytes()
    taps = int(np.prod(ws[2:]))
    assert_matches_oracle(on, reference.conv_transpose_structural(x, w, b, **kw),
                          reference.conv_transpose_structural(np.abs(x), np.abs(w), np.abs(b),
                                                              **kw),
                          ws[0] // groups * taps + 1, f"{case} on {on_isa}")


@pytest.mark.parametrize("isa", isa_params())
def test_threads(isa: str) -> None:
    x, w, b, kw = _problem((4, 9, 4), 16, 24, "float32", seed=3)  # rows short for every ISA
    _core._set_pitched_band(1)
    assert _input(x, w, kw) == "pitched_band"
    assert_bitwise_across_threads(isa, lambda: [tconv.conv_transpose(x, w, b, **kw)])


def test_inf_and_nan_where_the_discarded_columns_read(on_isa: str) -> None:
    """A NaN or Inf at a row's first or last point is read by the discarded columns of the row
    before (or after) it; in w, by every column.  Each lands where the packed path puts it."""
    x0, w0, b, kw = _problem((5, 4), 12, 16, "float32", seed=5)  # rows short for every ISA
    for where in [(0, 3, 2, 0), (1, 7, 4, 3), (0, 0, 0, 0), (1, 11, 4, 3), (0, 5, 2, 3)]:
        for bad in (np.nan, np.inf, -np.inf):
            x = x0.copy()
            x[where] = bad
            on, off = _both(x, w0, b, kw)
            assert on.tobytes() == off.tobytes(), (where, bad)
            assert np.isnan(on).any() or np.isinf(on).any()
    w = w0.copy()
    w[3, 5, 1, 2] = np.inf  # a tap of the x phase 1
    on, off = _both(x0, w, b, kw)
    assert on.tobytes() == off.tobytes()


def test_band_too_large_takes_row_tiles_with_the_same_bits() -> None:
    """1024 input channels x 2 z taps x 17 rows x 17 points of float32 exceed the 2 MiB band
    (kMaxBandBytes): the tasks read row tiles instead (indirect rows into the source)."""
    x, w, b, kw = _problem((2, 16, 16), 1024, 8, "float32", seed=7)
    _core._set_pitched_band(1)
    assert _input(x, w, kw) == "indirect"
    on = tconv.conv_transpose(x, w, b, **kw)
    _core._set_pitched_band(0)
    off = tconv.conv_transpose(x, w, b, **kw)
    assert on.tobytes() == off.tobytes()


def test_band_per_k_block() -> None:
    """A stride-1 forward (one sub-convolution: no phase shares its band) whose band of all
    channels outgrows 256 KiB fills it per K block; pitched, the same bits."""
    x, w, b, kw = _problem((3, 12, 13), 300, 20, "float32", stride=1, output_padding=0, seed=9)
    _core._set_pitched_band(1)
    assert "pitched_band_per_block" in _input(x, w, kw).split("+")
    on = tconv.conv_transpose(x, w, b, **kw)
    _core._set_pitched_band(0)
    assert _input(x, w, kw) == "packed_sorted"
    off = tconv.conv_transpose(x, w, b, **kw)
    assert on.tobytes() == off.tobytes()


def _pitched_cols(width: int, pitch: int, rows: int, nr: int, max_points: int) -> int:
    """pitched_rows' fewest tile columns of a plane (the rule as documented there)."""
    def span(r: int) -> int:
        return 0 if r == 0 else -(-((r - 1) * pitch + width) // nr) * nr
    best = None
    for r in range(1, rows + 1):
        if r > 1 and r * width > max_points:
            break
        cols = rows // r * span(r) + span(rows % r)
        best = cols if best is None else min(best, cols)
    assert best is not None
    return best


@pytest.mark.parametrize("width,m", [(16, 47), (16, 48), (16, 5), (12, 35), (12, 36),
                                     (19, 32), (20, 16)])
def test_rule(width: int, m: int) -> None:
    """By its rule on avx512 float32 (nr = 32), 3-D k3 s2 p1 op1 (hull: x taps 0 and 1, a pitch
    of width + 1) on a 16-row plane: pitched exactly when M x discarded < 6 x points.  Width
    16: 271 columns -> 288, 32 discarded, so M < 48; width 12: 15 rows x 13 + 12 = 207 -> 224,
    32 discarded of 192, so M < 36; width 20 fills row tiles (the band path).  Every task
    chunk here (task_columns: at least 192 points) lets a task take a whole plane."""
    if "avx512" not in tconv.supported_isas():
        pytest.skip("the avx512 tile")
    before = tconv.isa()
    try:
        tconv.set_isa("avx512")
        x, w, _, kw = _problem((2, 16, width), 8, m, "float32")
        cols = _pitched_cols(width, width + 1, 16, 32, 2 * 192)
        points = 16 * width
        want = width < FILL * 32 and m * (cols - points) < PACK_ROWS * points
        got = _input(x, w, kw)
        assert (got == "pitched_band") == want, (width, m, got, cols)
        if width in (12, 16):
            assert cols == {12: 224, 16: 288}[width]
            assert want == (m < {12: 36, 16: 48}[width])
    finally:
        tconv.set_isa(before)


def test_random_forwards_same_bits(on_isa: str) -> None:
    """400 random forwards (tools/result_hash.py's draws) with the pitched band forced on
    wherever it can run and off: the same bits (and at least 15 of them pitched on every ISA, so
    that the sweep means something)."""
    random_forward = load_tool("result_hash").random_forward
    rng = np.random.default_rng(2026)
    pitched = 0
    for i in range(400):
        x, w, b, kw = random_forward(rng)
        _core._set_pitched_band(1)
        pitched += "pitched" in _input(x, w, kw)
        on = tconv.conv_transpose(x, w, b, **kw)
        _core._set_pitched_band(0)
        off = tconv.conv_transpose(x, w, b, **kw)
        assert on.tobytes() == off.tobytes(), (i, x.shape, w.shape, kw)
    assert pitched >= 15, pitched
