"""Every named micro-kernel of every ISA table, called directly (``_core._run_ukernel``).

Oracle: the kernels' contract (csrc/tconv/ukernels.hpp): each output is one accumulator that
sums ``a * b`` over increasing k, one rounding per step (an FMA on the SIMD ISAs, a product then
a sum on the scalar one), and ``accumulate`` adds the block sum to ``c`` with one rounding; the
dot kernels keep one such accumulator per vector lane (k = l mod dot_kw) and add the lanes in
their documented order.  The expected bits are computed here in float64 with error-free
transformations (an exact emulation of FMA), and every result is also held to a float64
product within ``2 (kc + 1) eps sum |terms|``.  Sizes are tied to the tile: kc in {1, 2,
kw - 1, kw, kw + 1, 2 nr + 3, 257}, every row count 1..mr (the remainder-row kernels), C rows
longer than the tile (ldc > nr) whose extra columns must stay untouched, and NaN wherever a
kernel must not read.
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tconv
from tconv import _core

UKERNELS = Path(__file__).resolve().parent.parent / "csrc" / "ukernels"
ISAS = tconv.supported_isas()

# The ISA part of the kernel names; avx512-emulated runs the avx512 list (same names, namespace
# tconv::ukernels::emulated).
SUFFIX = {"avx512": "avx512f", "avx512-emulated": "avx512f", "avx2": "avx2_fma",
          "generic": "scalar"}
KIND = {"fn": "gemm", "ifn": "igemm", "ofn": "ogemm", "kfn": "kgemm", "rfn": "rgemm", "wfn": "gemm",
        "wifn": "igemm", "wofn": "ogemm", "nfn": "gemm", "nifn": "igemm", "nofn": "ogemm",
        "nkfn": "kgemm", "dot": "dot", "transpose": "transpose"}
WIDE = ("wfn", "wifn", "wofn")
NARROW = ("nfn", "nifn", "nofn", "nkfn")
WIDE_MR = 3  # kWideMR
DTYPES = {"f32": np.float32, "f64": np.float64}
# Whether a step is one FMA (SIMD ISAs) or a rounded product and a rounded sum (the scalar
# kernels compiled without FMA, as on x86-64; elsewhere the compiler may fuse, see below).
FUSED = {"avx512": True, "avx512-emulated": True, "avx2": True, "generic": False}
EXACT_GENERIC = platform.machine().lower() in ("x86_64", "amd64")


def tiles(isa: str, dt: str) -> dict[str, Any]:
    return dict(_core._ukernel_tiles(isa, dt))


def names(isa: str) -> list[tuple[str, str, str, int]]:
    return [tuple(n) for n in _core._ukernel_names(isa)]


def cols_of(t: dict[str, Any], slot: str) -> int:
    if slot == "dot":
        return int(t["dot_nc"])
    return int(t["wide_nr" if slot in WIDE else "narrow_nr" if slot in NARROW else "nr"])


def base_of(slot: str) -> str:
    """The slot whose arrays a wide (w*) or narrow (n*) slot takes: fn, ifn, ofn or kfn."""
    return slot[1:] if slot in WIDE + NARROW else slot


# ---- the names -------------------------------------------------------------------------------

@pytest.mark.parametrize("isa", ISAS)
def test_names_say_dtype_kind_tile_and_isa(isa: str) -> None:
    listed = names(isa)
    assert len({n[0] for n in listed}) == len(listed), "a name used twice"
    for name, dt, slot, rows in listed:
        t = tiles(isa, dt)
        cols = cols_of(t, slot)
        if slot == "transpose":
            want = f"{dt}_transpose_{cols}__{SUFFIX[isa]}"
        elif slot == "dot":
            want = f"{dt}_dot_{rows}x{cols}c{t['dot_kw']}__{SUFFIX[isa]}"
        else:
            want = f"{dt}_{KIND[slot]}_{rows}x{cols}__{SUFFIX[isa]}"
        assert name == want, (slot, rows)


@pytest.mark.parametrize("isa", ISAS)
def test_every_reachable_slot_is_named(isa: str) -> None:
    """The operators index fn/ifn/ofn/kfn/rfn by 1..mr, the wide slots by 1..kWideMR, dot by
    1..dot_mr, and call transpose: each of those entries holds a kernel, and the filled entries
    (read from the table's pointers) are exactly the named ones."""
    listed = names(isa)
    for dt in DTYPES:
        t = tiles(isa, dt)
        mr, dot_mr = int(t["mr"]), int(t["dot_mr"])
        reach = {("fn", r) for r in range(1, mr + 1)} | {("ifn", r) for r in range(1, mr + 1)}
        reach |= {("ofn", r) for r in range(1, mr + 1)} | {("rfn", r) for r in range(1, mr + 1)}
        reach |= {("kfn", r) for r in range(1, mr + 1)}
        if t["wide_nr"]:
            reach |= {(s, r) for s in WIDE for r in range(1, WIDE_MR + 1)}
        if t["narrow_nr"]:  # the same rows as fn
            reach |= {(s, r) for s in NARROW for r in range(1, mr + 1)}
        reach |= {("dot", r) for r in range(1, dot_mr + 1)} | {("transpose", 0)}
        filled = {(s, r) for s in KIND for r in t[s]}
        named = {(slot, rows) for _, d, slot, rows in listed if d == dt}
        assert reach <= filled, sorted(reach - filled)
        assert filled == named, (sorted(filled ^ named))


def _sources() -> str:
    return "".join(p.read_text() for p in sorted(UKERNELS.glob("*.[ch]pp")))


@pytest.mark.parametrize("isa", ISAS)
def test_names_are_greppable(isa: str) -> None:
    """Each name is spelled out once in csrc/ukernels, on the line that defines it."""
    text = _sources()
    for name, *_ in names(isa):
        hits = re.findall(rf"\bX\(\w+, \w+, {name}, ", text)
        assert len(hits) == 1, name


def test_emulated_runs_the_avx512_list() -> None:
    if "avx512-emulated" not in ISAS or "avx512" not in ISAS:
        pytest.skip("needs both avx512 and avx512-emulated")
    assert names("avx512-emulated") == names("avx512")
    for dt in DTYPES:
        assert tiles("avx512-emulated", dt) == tiles("avx512", dt)


# ---- exact expected results --------------------------------------------------------------------
# Error-free transformations in float64: two_sum and two_prod give the exact rounding error of
# a sum and of a product, round_odd_sum rounds x + y to odd (which a later rounding to fewer
# bits, or to the same precision as below, cannot double-round: Boldo and Melquiond, "Emulation
# of FMA and correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008).

def _two_sum(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = x + y
    bb = s - x
    return s, (x - (s - bb)) + (y - bb)


def _two_prod(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = x * y
    cx, cy = 134217729.0 * x, 134217729.0 * y  # Veltkamp split, 2^27 + 1
    xh, yh = cx - (cx - x), cy - (cy - y)
    xl, yl = x - xh, y - yh
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _round_odd_sum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    s, e = _two_sum(x, y)
    fix = (e != 0) & ((s.view(np.int64) & 1) == 0)
    return np.where(fix, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c with one rounding to the arrays' dtype."""
    if a.dtype == np.float32:
        wide = [v.astype(np.float64) for v in (a, b, c)]
        return _round_odd_sum(wide[0] * wide[1], wide[2]).astype(np.float32)  # exact product
    uh, ul = _two_prod(a, b)
    th, tl = _two_sum(c, uh)
    out: np.ndarray = th + _round_odd_sum(tl, ul)
    return out


def step(a: np.ndarray, b: np.ndarray, acc: np.ndarray, fused: bool) -> np.ndarray:
    return fma(a, b, acc) if fused else a * b + acc


def _inputs(dt: str, rows: int, kc: int, cols: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = DTYPES[dt]
    return (rng.standard_normal((rows, kc)).astype(t), rng.standard_normal((kc, cols)).astype(t),
            rng.standard_normal((rows, cols)).astype(t))


def _seed(dt: str, kc: int, cols: int) -> int:
    return kc * 1000 + cols * 10 + (dt == "f64")


@functools.lru_cache(maxsize=None)
def gemm_expected(dt: str, rows: int, kc: int, cols: int, fused: bool) -> np.ndarray:
    """The block sum of the gemm kinds: one accumulator, increasing k."""
    a, b, _ = _inputs(dt, rows, kc, cols, _seed(dt, kc, cols))
    acc = np.zeros((rows, cols), DTYPES[dt])
    for k in range(kc):
        acc = step(np.repeat(a[:, k:k + 1], cols, 1), np.repeat(b[k:k + 1], rows, 0), acc, fused)
    return acc


def _reduce(lanes: list[np.ndarray], order: Any) -> np.ndarray:
    if isinstance(order, int):
        return lanes[order]
    left, right = (_reduce(lanes, o) for o in order)
    out: np.ndarray = left + right
    return out


def _sequential(width: int) -> Any:
    order: Any = 0
    for lane in range(1, width):
        order = (order, lane)
    return order


# The documented lane order of each ISA's dot reduction (Ops::reduce): AVX2 a pairwise tree,
# AVX-512 ((l0 + l1) + l2) + ..., scalar one lane.
DOT_ORDER = {
    ("avx2", "f32"): (((0, 4), (2, 6)), ((1, 5), (3, 7))),
    ("avx2", "f64"): ((0, 2), (1, 3)),
    ("avx512", "f32"): _sequential(16), ("avx512", "f64"): _sequential(8),
    ("avx512-emulated", "f32"): _sequential(16), ("avx512-emulated", "f64"): _sequential(8),
    ("generic", "f32"): 0, ("generic", "f64"): 0,
}


@functools.lru_cache(maxsize=None)
def dot_expected(isa: str, dt: str, rows: int, kc: int, cols: int, kw: int) -> np.ndarray:
    a, b, _ = _inputs(dt, rows, kc, cols, _seed(dt, kc, cols))
    fused = FUSED[isa]
    lanes = []
    for lane in range(kw):
        acc = np.zeros((rows, cols), DTYPES[dt])
        for k in range(lane, kc, kw):
            acc = step(np.repeat(a[:, k:k + 1], cols, 1), np.repeat(b[k:k + 1], rows, 0), acc,
                       fused)
        lanes.append(acc)
    return _reduce(lanes, DOT_ORDER[(isa, dt)])


# ---- running one kernel --------------------------------------------------------------------

def run(isa: str, dt: str, slot: str, rows: int, kc: int, cols: int, mr: int,
        accumulate: int, **epilogue: Any) -> Any:
    """Lay the inputs out as `slot` reads them, with NaN wherever it must not read, and call it.
    Returns (C computed, A, B, C before); with ``epilogue`` (bias, check, c_fix: places of C
    set before the call, partial_from_c: C before moved into the epilogue's partial array and
    C's tile set to NaN), through the kernel's epilogue: (C computed, the flag it reported)."""
    t = DTYPES[dt]
    a_all, b, c_all = _inputs(dt, mr, kc, cols, _seed(dt, kc, cols))
    a, c0 = a_all[:rows], c_all[:rows]
    nan = t(np.nan)
    index = None
    kind = base_of(slot)
    if kind in ("rfn", "dot"):
        a_in = np.full((rows, kc + 3), nan, t)
        a_in[:, :kc] = a
    else:  # packed panel a[k * rows + i], then a tail the kernel must not read
        a_in = np.concatenate([a.T.ravel(), np.full(5, nan, t)])
    if kind in ("fn", "rfn"):
        b_in = np.concatenate([b.ravel(), np.full(7, nan, t)])
    elif kind == "ifn":  # row k of B in row perm[k] of a wider, NaN-filled array
        perm = np.random.default_rng(kc).permutation(kc + 4)[:kc]
        b_in = np.full((kc + 4, cols + 3), nan, t)
        b_in[perm, :cols] = b
        index = perm.astype(np.int64)
    elif kind == "ofn":  # row k at offset off[k], rows in reverse order with gaps
        gap = cols + 3
        off = (kc - 1 - np.arange(kc)) * gap + 1
        b_in = np.full(kc * gap + 2, nan, t)
        for k in range(kc):
            b_in[off[k]:off[k] + cols] = b[k]
        index = off.astype(np.int64)
    elif kind == "kfn":  # term k: A panel row 2k + 1 (the other rows NaN), B at offset off[k]
        ks = 2 * np.arange(kc, dtype=np.int64) + 1
        a_in = np.full((2 * kc + 2) * rows + 5, nan, t)
        for k in range(kc):
            a_in[ks[k] * rows:(ks[k] + 1) * rows] = a[:, k]
        gap = cols + 3  # B rows in reverse order with gaps, as for ofn
        off = (kc - 1 - np.arange(kc)) * gap + 1
        b_in = np.full(kc * gap + 2, nan, t)
        for k in range(kc):
            b_in[off[k]:off[k] + cols] = b[k]
        index = np.stack([ks, off.astype(np.int64)])
    else:  # dot: b[j * ldb + k] = B[k][j]
        b_in = np.full((cols, kc + 5), nan, t)
        b_in[:, :kc] = b.T
    ldc = cols + 5
    sentinel = t(-7.25)
    c = np.full((rows, ldc), sentinel, t)
    c[:, :cols] = c0
    if epilogue:
        for (i, j), v in (epilogue.pop("c_fix") or {}).items():
            c[i, j] = v
        if epilogue.pop("partial_from_c", False):
            partial = np.full((rows, cols + 3), nan, t)
            partial[:, :cols] = c[:, :cols]
            c[:, :cols] = nan
            epilogue["partial"] = partial
        bad = _core._run_ukernel(isa, slot, rows, kc, a_in, b_in, c, accumulate, index,
                                 **epilogue)
        assert np.all(c[:, cols:] == sentinel), "wrote past the tile's columns"
        return c[:, :cols], bad
    assert not _core._run_ukernel(isa, slot, rows, kc, a_in, b_in, c, accumulate, index)
    assert np.all(c[:, cols:] == sentinel), "wrote past the tile's columns"
    return c[:, :cols], a, b, c0


def kc_values(t: dict[str, Any], slot: str, cols: int) -> list[int]:
    kw = int(t["dot_kw"])
    if slot == "dot":  # a multiple of the vector width
        return sorted({kw * m for m in (1, 2, 3, -(-(2 * cols + 3) // kw), -(-257 // kw))})
    return sorted({v for v in (1, 2, kw - 1, kw, kw + 1, 2 * cols + 3, 257) if v >= 1})


def _params() -> list[Any]:
    out = []
    for isa in ISAS:
        slots = sorted({(dt, slot) for _, dt, slot, _ in names(isa) if slot != "transpose"})
        out += [pytest.param(isa, dt, slot, id=f"{isa}-{dt}-{slot}") for dt, slot in slots]
    return out


@pytest.mark.parametrize("isa,dt,slot", _params())
def test_kernel_exact(isa: str, dt: str, slot: str) -> None:
    t = tiles(isa, dt)
    cols = cols_of(t, slot)
    mr = int(t["dot_mr"] if slot == "dot" else WIDE_MR if slot in WIDE else t["mr"])
    eps = float(np.finfo(DTYPES[dt]).eps)
    exact = FUSED[isa] or EXACT_GENERIC
    for kc in kc_values(t, slot, cols):
        if slot == "dot":
            block = dot_expected(isa, dt, mr, kc, cols, int(t["dot_kw"]))
        else:
            block = gemm_expected(dt, mr, kc, cols, FUSED[isa])
        for rows in range(1, mr + 1):
            for accumulate in (0, 1):
                got, a, b, c0 = run(isa, dt, slot, rows, kc, cols, mr, accumulate)
                where = f"{slot}[{rows}] kc={kc} accumulate={accumulate}"
                # float64 oracle, bounded error
                a64, b64, c64 = a.astype(np.float64), b.astype(np.float64), c0.astype(np.float64)
                ref = a64 @ b64 + (c64 if accumulate else 0)
                size = np.abs(a64) @ np.abs(b64) + (np.abs(c64) if accumulate else 0)
                err = np.abs(got.astype(np.float64) - ref)
                assert np.all(err <= 2 * (kc + 1) * eps * size), where
                # exact bits of the contract's summation order
                want = block[:rows] + c0 if accumulate else block[:rows]
                if exact:
                    assert np.array_equal(got, want), where


EPILOGUE_SLOTS = ("fn", "wfn", "nfn", "ifn", "wifn", "nifn", "ofn", "wofn", "nofn", "kfn", "nkfn")


def _epilogue_params() -> list[Any]:
    out = []
    for isa in ISAS:
        slots = sorted({(dt, slot) for _, dt, slot, _ in names(isa) if slot in EPILOGUE_SLOTS})
        out += [pytest.param(isa, dt, slot, id=f"{isa}-{dt}-{slot}") for dt, slot in slots]
    return out


def _epilogue_tile(isa: str, dt: str, slot: str) -> tuple[Any, int, int]:
    """The slot's element type, its tile's columns and rows."""
    t = tiles(isa, dt)
    return DTYPES[dt], cols_of(t, slot), WIDE_MR if slot in WIDE else int(t["mr"])


def _epilogue_calls(cols: int, mr: int) -> Iterator[tuple[int, int, int]]:
    """(kc, rows, accumulate) of the epilogue tests: 1, 3 and past two tiles' columns."""
    for kc in (1, 3, 2 * cols + 3):
        for rows in range(1, mr + 1):
            for accumulate in (0, 1):
                yield kc, rows, accumulate


@pytest.mark.parametrize("isa,dt,slot", _epilogue_params())
def test_kernel_epilogue(isa: str, dt: str, slot: str) -> None:
    """The last K block's epilogue (Epilogue in csrc/tconv/ukernels.hpp): row i stores
    (c + block_sum) + bias[i], the bits of the plain store followed by ``v + bias``, and the
    call reports an Inf or NaN in any stored place (every row, every column: each vector and
    lane of the tile), from the sum, from c or from the bias, and only then; without a bias
    the values are the plain store's."""
    ty, cols, mr = _epilogue_tile(isa, dt, slot)
    rng = np.random.default_rng(5)
    for kc, rows, accumulate in _epilogue_calls(cols, mr):
        plain, *_ = run(isa, dt, slot, rows, kc, cols, mr, accumulate)
        bias = np.concatenate([rng.standard_normal(rows).astype(ty), [ty(np.nan)]])
        where = f"{slot}[{rows}] kc={kc} accumulate={accumulate}"
        got, bad = run_epilogue(isa, dt, slot, rows, kc, cols, mr, accumulate, bias)
        assert np.array_equal(got, plain + bias[:rows, None]) and not bad, where
        got, bad = run_epilogue(isa, dt, slot, rows, kc, cols, mr, accumulate, None)
        assert np.array_equal(got, plain) and not bad, where
    # Inf / NaN in one place at a time: through c (accumulate), then through the bias
    kc = 3
    for rows in (1, mr):
        for i in range(rows):
            for j in range(cols):
                for value in (np.inf, -np.inf, np.nan):
                    c_fix = {(i, j): ty(value)}
                    got, bad = run_epilogue(isa, dt, slot, rows, kc, cols, mr, 1, None, c_fix)
                    assert bad and _same(got[i, j], ty(value)), (rows, i, j, value)
                    _, bad = run_epilogue(isa, dt, slot, rows, kc, cols, mr, 1, None, c_fix,
                                          check=False)
                    assert not bad
        for i in range(rows):
            bias = np.zeros(rows, ty)
            bias[i] = np.inf
            got, bad = run_epilogue(isa, dt, slot, rows, kc, cols, mr, 0, bias)
            assert bad and np.all(got[i] == np.inf), (rows, i)
    # a finite sum plus a finite bias that overflows
    big = np.finfo(ty).max
    c_fix = {(0, cols - 1): ty(big)}
    got, bad = run_epilogue(isa, dt, slot, 1, kc, cols, mr, 1, np.full(1, big, ty), c_fix)
    assert bad and got[0, cols - 1] == np.inf


@pytest.mark.parametrize("isa,dt,slot", _epilogue_params())
def test_kernel_epilogue_partial(isa: str, dt: str, slot: str) -> None:
    """Epilogue.partial: with accumulate the earlier K blocks' sums are read from there and
    never from C (NaN here), and the stored values are the plain store's (+ bias); without
    accumulate neither is read (the partial holds finite values that would change the sum).
    An Inf or NaN among the partial sums is reported."""
    ty, cols, mr = _epilogue_tile(isa, dt, slot)
    rng = np.random.default_rng(6)
    for kc, rows, accumulate in _epilogue_calls(cols, mr):
        plain, *_ = run(isa, dt, slot, rows, kc, cols, mr, accumulate)
        where = f"{slot}[{rows}] kc={kc} accumulate={accumulate}"
        for bias in (None, rng.standard_normal(rows).astype(ty)):
            got, bad = run(isa, dt, slot, rows, kc, cols, mr, accumulate, bias=bias, check=True,
                           c_fix=None, partial_from_c=True)
            want = plain if bias is None else plain + bias[:, None]
            assert np.array_equal(got, want) and not bad, where
    for i, j in ((0, 0), (mr - 1, cols - 1)):
        got, bad = run(isa, dt, slot, mr, 3, cols, mr, 1, bias=None, check=True,
                       c_fix={(i, j): ty(np.inf)}, partial_from_c=True)
        assert bad and got[i, j] == np.inf, (i, j)


def test_epilogue_only_where_a_kernel_has_one() -> None:
    """rgemm, dot and transpose take no epilogue: the test hook refuses bias, check and
    partial."""
    isa = ISAS[0]
    t = tiles(isa, "f32")
    a = np.zeros((1, 16), np.float32)
    b = np.zeros((int(t["dot_nc"]), 16), np.float32)
    c = np.zeros((1, int(t["dot_nc"])), np.float32)
    for kwargs in ({"check": True}, {"bias": np.zeros(1, np.float32)},
                   {"partial": np.zeros((1, int(t["dot_nc"])), np.float32)}):
        with pytest.raises(ValueError, match="has no epilogue"):
            _core._run_ukernel(isa, "dot", 1, int(t["dot_kw"]), a, b, c, 0, None, **kwargs)


def _same(x: Any, y: Any) -> bool:
    return bool(x == y or (np.isnan(x) and np.isnan(y)))


def run_epilogue(isa: str, dt: str, slot: str, rows: int, kc: int, cols: int, mr: int,
                 accumulate: int, bias: np.ndarray | None,
                 c_fix: dict[tuple[int, int], Any] | None = None,
                 check: bool = True) -> tuple[np.ndarray, bool]:
    """``run`` through the epilogue (bias, Inf/NaN test): C computed and the reported flag;
    c_fix sets places of C before the call."""
    return run(isa, dt, slot, rows, kc, cols, mr, accumulate, bias=bias, check=check,
               c_fix=c_fix)


def _kgemm_params() -> list[Any]:
    return [pytest.param(isa, dt, slot, id=f"{isa}-{dt}-{slot}") for isa in ISAS
            for dt, slot in sorted({(dt, slot) for _, dt, slot, _ in names(isa)
                                    if slot in ("kfn", "nkfn")})]


@pytest.mark.parametrize("isa,dt,slot", _kgemm_params())
def test_kgemm_of_no_rows(isa: str, dt: str, slot: str) -> None:
    """kn = 0 (a tile whose listed rows are all skipped): zero sums, so accumulate = 0 stores
    +0 and accumulate = 1 leaves C as it was, without reading A or B (then the epilogue's bias
    is added to that; with a partial, C takes the partial's values)."""
    t = tiles(isa, dt)
    cols = cols_of(t, slot)
    ty = DTYPES[dt]
    nan = np.full(4, np.nan, ty)
    for rows in range(1, int(t["mr"]) + 1):
        for accumulate in (0, 1):
            c = np.full((rows, cols + 2), -3.5, ty)
            _core._run_ukernel(isa, slot, rows, 0, nan, nan, c, accumulate,
                               np.zeros((2, 0), np.int64))
            want = -3.5 if accumulate else 0.0
            assert np.all(c[:, :cols] == want) and np.all(c[:, cols:] == -3.5)
            assert not np.any(np.signbit(c[:, :cols])) or accumulate
            # through the epilogue: the bias after the (empty) sum
            bias = np.arange(rows, dtype=ty) + ty(0.25)
            c = np.full((rows, cols + 2), -3.5, ty)
            bad = _core._run_ukernel(isa, slot, rows, 0, nan, nan, c, accumulate,
                                     np.zeros((2, 0), np.int64), bias=bias, check=True)
            assert not bad and np.all(c[:, :cols] == want + bias[:, None])
            assert np.all(c[:, cols:] == -3.5)
            # the earlier sums from the epilogue's partial instead (C then only written)
            c = np.full((rows, cols + 2), np.nan, ty)
            partial = np.full((rows, cols), 1.5, ty)
            _core._run_ukernel(isa, slot, rows, 0, nan, nan, c, accumulate,
                               np.zeros((2, 0), np.int64), partial=partial)
            assert np.all(c[:, :cols] == (1.5 if accumulate else 0.0))
            assert np.all(np.isnan(c[:, cols:]))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dt", list(DTYPES))
def test_transpose(isa: str, dt: str) -> None:
    t = tiles(isa, dt)
    nr = int(t["nr"])
    rng = np.random.default_rng(3)
    # the avx2 f32 transpose moves 8 x 8 blocks, then the kc % 8 rest
    for kc in sorted({1, 2, 7, 8, 9, 15, 16, 17, 2 * nr + 3, 257}):
        rows_in = rng.standard_normal((nr, kc + 3)).astype(DTYPES[dt])
        panel = np.full((kc, nr), np.nan, DTYPES[dt])
        _core._run_ukernel(isa, "transpose", 0, kc, rows_in, np.zeros(1, DTYPES[dt]), panel, 0)
        assert np.array_equal(panel, rows_in[:, :kc].T), kc


def test_fma_emulation_against_exact_rationals() -> None:
    """The expected-value machinery itself, on products and sums near rounding ties."""
    from fractions import Fraction

    rng = np.random.default_rng(11)
    for t in (np.float32, np.float64):
        a = rng.standard_normal(400).astype(t)
        b = rng.standard_normal(400).astype(t)
        c = rng.standard_normal(400).astype(t)
        # c = -RN(a * b) + tiny: the sum cancels to the product's rounding error
        c[::4] = -(a[::4] * b[::4])
        got = fma(a, b, c)
        for x, y, z, g in zip(a, b, c, got):
            exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
            assert g == _round_fraction(exact, t), (x, y, z)


def _round_fraction(x: Any, t: Any) -> Any:
    """x rounded to nearest (ties to even) in dtype t."""
    from fractions import Fraction

    if x == 0:
        return t(0)
    bits = 24 if t == np.float32 else 53
    sign, x = (-1, -x) if x < 0 else (1, x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    scaled = x / Fraction(2) ** (e - bits + 1)  # in [2^(bits-1), 2^bits)
    n, rest = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rest
    if twice > scaled.denominator or (twice == scaled.denominator and n % 2 == 1):
        n += 1
    return t(sign * float(Fraction(n) * Fraction(2) ** (e - bits + 1)))


def test_broken_precondition_stops_a_checking_build() -> None:
    """Debug and sanitizer builds (TCONV_ASSERT) stop at a call that breaks a kernel's
    contract, naming the kernel and the condition."""
    if not _core._asserts():
        pytest.skip("this build compiles TCONV_ASSERT out (release); Debug/sanitize.sh check it")
    import subprocess
    import sys

    isa = ISAS[-1]
    name = next(n for n, dt, slot, rows in names(isa) if (dt, slot, rows) == ("f32", "fn", 1))
    nr = int(tiles(isa, "f32")["nr"])
    code = (
        "import numpy as np; from tconv import _core\n"
        f"a = np.ones(4, np.float32); b = np.ones(4 * {nr}, np.float32)\n"
        f"c = np.zeros((1, {nr}), np.float32)\n"
        f"_core._run_ukernel({isa!r}, 'fn', 1, 4, a, b, c, 2)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "assertion failed: accumulate == 0 || accumulate == 1" in proc.stderr, proc.stderr
    assert name in proc.stderr, proc.stderr
