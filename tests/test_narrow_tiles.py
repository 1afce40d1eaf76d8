"""The narrow register tiles (csrc/subconv/plan.cpp: narrow_tiles).

An ISA whose table has narrow kernels (avx512: 12 x 16 float32, 12 x 8 float64; the same rows
as its full 12 x 32 / 12 x 16 tile) runs a sub-convolution call with them when every grid row
is too short to fill 0.6 of the full tile's columns but fills 0.6 of the narrow one's (float32
rows of 10 to 16 points, float64 of 5 to 8): those rows then take the direct path, read in
place from the task's band, instead of packing B.  The tile's width never changes a sum, so:

* the plan names the narrow tile exactly on those widths, and the full one on either side;
* the result has the bits of the same problem widened with zeros until its rows fill the full
  tile (the zero columns add exact zero terms to the points kept, in the same order), then
  cropped; a forward and a gather, 1-D and 2-D, on each such ISA (the emulated one included);
* the result matches the float64 oracle and is the same for 1, 2 and 3 threads;
* with them off (the default except on AMD family 19h, tconv/plan.hpp) the same calls plan the
  full tile and give the same bits; TCONV_NARROW_TILES=0 / 1 sets the default.

The tests above run with the narrow tiles forced on (_core._set_narrow_tiles).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import tconv
from _isas import assert_bitwise_across_threads
from conftest import assert_matches_oracle
from tconv import _core, reference

DTYPES = {"float32": "f32", "float64": "f64"}


@pytest.fixture(autouse=True)
def _narrow_tiles_on():
    """The narrow tiles on, whatever this CPU's default (tconv/plan.hpp: they are the default
    on AMD family 19h only)."""
    _core._set_narrow_tiles(1)
    yield
    _core._set_narrow_tiles(-1)
FILL = 0.6  # kDirectMinFill


def _narrow_isas() -> list[str]:
    return [isa for isa in tconv.supported_isas()
            if _core._ukernel_tiles(isa, "f32")["narrow_nr"]]


NARROW_ISAS = _narrow_isas()
pytestmark = pytest.mark.skipif(not NARROW_ISAS, reason="no ISA of this build has narrow tiles")


def _tiles(isa: str, dtype: str) -> tuple[int, int, int]:
    t = _core._ukernel_tiles(isa, DTYPES[dtype])
    return int(t["mr"]), int(t["nr"]), int(t["narrow_nr"])


def _fills(width: int, cols: int) -> bool:
    return width >= FILL * (-(-width // cols) * cols)


def _widths(isa: str, dtype: str) -> list[int]:
    """Both edges of the narrow range and of the full tile's."""
    _, nr, narrow = _tiles(isa, dtype)
    lo = next(w for w in range(1, narrow + 1) if _fills(w, narrow))
    full = next(w for w in range(narrow + 1, nr + 1) if _fills(w, nr))
    return sorted({lo - 1, lo, lo + 1, narrow - 1, narrow, narrow + 1, full - 1, full})


def _params() -> list[Any]:
    return [pytest.param(isa, dt, w, id=f"{isa}-{dt}-w{w}") for isa in NARROW_ISAS
            for dt in DTYPES for w in _widths(isa, dt)]


def _problem(width: int, dims: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         dict[str, Any]]:
    """A forward with 2-point phase grids of `width` columns (k3 s2 p1 op1, 14 -> 15 channels:
    more rows than the wide kernels take), its weight and an output gradient."""
    rng = np.random.default_rng(width * 10 + dims)
    coarse = (3,) * (dims - 1) + (width,)
    x = rng.standard_normal((2, 14, *coarse)).astype(dtype)
    w = rng.standard_normal((14, 15, *(3,) * dims)).astype(dtype)
    kw = {"stride": 2, "padding": 1, "output_padding": 1}
    g = rng.standard_normal(tconv.output_shape(x.shape, w.shape, **kw)).astype(dtype)
    return x, w, g, kw


def _plan_tile(op: str, x: np.ndarray, w: np.ndarray, kw: dict[str, Any]) -> tuple[int, int]:
    p = tconv.plan(op, x.shape, w.shape, dtype=x.dtype.name, **kw)
    return tuple(p.tile)  # type: ignore[return-value]


@pytest.mark.parametrize("isa,dtype,width", _params())
def test_plan_takes_the_narrow_tile_on_its_widths(isa: str, dtype: str, width: int) -> None:
    mr, nr, narrow = _tiles(isa, dtype)
    want = (mr, narrow) if not _fills(width, nr) and _fills(width, narrow) else (mr, nr)
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        for dims in (1, 2):
            x, w, g, kw = _problem(width, dims, dtype)
            assert _plan_tile("conv_transpose", x, w, kw) == want, (dims, "forward")
            # the gather reads the fine grid with step 2: its grid is the coarse one
            assert _plan_tile("grad_input", x, w, kw) == want, (dims, "grad_input")
    finally:
        tconv.set_isa(before)


def _widened(width: int, nr: int) -> int:
    """The least width past `width` whose rows fill the full tile."""
    return next(v for v in range(width + 1, width + 2 * nr) if _fills(v, nr))


@pytest.mark.parametrize("isa,dtype,width", _params())
def test_same_bits_as_the_full_tile(isa: str, dtype: str, width: int) -> None:
    _, nr, _ = _tiles(isa, dtype)
    wide = _widened(width, nr)
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        for dims in (1, 2):
            x, w, g, kw = _problem(width, dims, dtype)
            y = tconv.conv_transpose(x, w, **kw)
            gi = tconv.conv_transpose_backward(g, x, w, output_mask=(True, False, False), **kw)[0]
            pad = [(0, 0)] * (x.ndim - 1) + [(0, wide - width)]
            xw = np.pad(x, pad)
            assert _plan_tile("conv_transpose", xw, w, kw)[1] == nr
            yw = tconv.conv_transpose(xw, w, **kw)
            assert y.tobytes() == np.ascontiguousarray(yw[..., : y.shape[-1]]).tobytes(), dims
            # the gather: g widened by 2 columns per coarse column, the result cropped
            gw = np.pad(g, [(0, 0)] * (g.ndim - 1) + [(0, 2 * (wide - width))])
            giw = tconv.conv_transpose_backward(gw, xw, w, output_mask=(True, False, False),
                                                **kw)[0]
            assert gi.tobytes() == np.ascontiguousarray(giw[..., :width]).tobytes(), dims
    finally:
        tconv.set_isa(before)


def _forward_and_gather(x: np.ndarray, w: np.ndarray, g: np.ndarray,
                        kw: dict[str, Any]) -> list[np.ndarray]:
    y = tconv.conv_transpose(x, w, **kw)
    gi = tconv.conv_transpose_backward(g, x, w, output_mask=(True, False, False), **kw)[0]
    return [y, gi]


@pytest.mark.parametrize("isa,dtype,width", _params())
def test_oracle_and_threads(isa: str, dtype: str, width: int) -> None:
    for dims in (1, 2):
        x, w, g, kw = _problem(width, dims, dtype)
        taps = 3**dims
        before = tconv.isa()
        try:
            tconv.set_isa(isa)
            y, gi = _forward_and_gather(x, w, g, kw)
        finally:
            tconv.set_isa(before)
        assert_matches_oracle(y, reference.conv_transpose_structural(x, w, None, **kw),
                              reference.conv_transpose_structural(np.abs(x), np.abs(w), None,
                                                                  **kw),
                              14 * taps, f"forward w={width} {dims}-D on {isa}")
        ckw = {"stride": 2, "padding": 1}
        assert_matches_oracle(gi, reference.conv_structural(g, w, None, **ckw),
                              reference.conv_structural(np.abs(g), np.abs(w), None, **ckw),
                              15 * taps, f"grad_input w={width} {dims}-D on {isa}")
        assert_bitwise_across_threads(
            isa, lambda x=x, w=w, g=g, kw=kw: _forward_and_gather(x, w, g, kw))


@pytest.mark.parametrize("isa,dtype,width", _params())
def test_off_takes_the_full_tile_with_the_same_bits(isa: str, dtype: str, width: int) -> None:
    """With the narrow tiles off (the default except on AMD family 19h) every width plans the full
    tile, and the forward and gather have the bits the narrow tiles give."""
    mr, nr, _ = _tiles(isa, dtype)
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        for dims in (1, 2):
            x, w, g, kw = _problem(width, dims, dtype)
            narrow = _forward_and_gather(x, w, g, kw)
            _core._set_narrow_tiles(0)
            assert _plan_tile("conv_transpose", x, w, kw) == (mr, nr), dims
            assert _plan_tile("grad_input", x, w, kw) == (mr, nr), dims
            full = _forward_and_gather(x, w, g, kw)
            _core._set_narrow_tiles(1)
            for a, b in zip(narrow, full, strict=True):
                assert a.tobytes() == b.tobytes(), (dims, width)
    finally:
        tconv.set_isa(before)


def _amd_family_19h() -> bool:
    """AMD family 19h, from /proc/cpuinfo (what tconv reads with CPUID)."""
    try:
        info = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    fields = dict(line.split(":", 1) for line in info.split("\n\n")[0].splitlines()
                  if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"


_DEFAULT_PROBE = "from tconv import _core; print(_core.narrow_tiles_enabled())"


@pytest.mark.parametrize("env,want", [(None, None), ("0", False), ("1", True), ("2", None),
                                      ("", None)])
def test_default_follows_the_cpu_and_the_environment(env: str | None,
                                                     want: bool | None) -> None:
    """TCONV_NARROW_TILES=0 / 1 sets the default; unset or any other value leaves the CPU's
    answer (on for AMD family 19h only); _set_narrow_tiles(-1) returns to it."""
    environ = {k: v for k, v in os.environ.items() if k != "TCONV_NARROW_TILES"}
    if env is not None:
        environ["TCONV_NARROW_TILES"] = env
    proc = subprocess.run([sys.executable, "-c", _DEFAULT_PROBE], capture_output=True,
                          text=True, env=environ, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    expected = _amd_family_19h() if want is None else want
    assert proc.stdout.split() == [str(expected)], (env, proc.stdout)
    _core._set_narrow_tiles(-1)
    assert _core.narrow_tiles_enabled() == (os.environ.get("TCONV_NARROW_TILES") == "1" or (
        os.environ.get("TCONV_NARROW_TILES") != "0" and _amd_family_19h()))
