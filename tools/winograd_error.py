"""Measured error of tconv's Winograd forward against its derived bound and the direct bound.

    PYTHONPATH=python python tools/winograd_error.py --examples 10000

For each of ``--examples`` seeded random 2-D geometries that the Winograd path takes (every
phase 2 or 3 taps per axis: stride s in 1..3, kernel in [2s, 3s], padding, output_padding,
groups, batch, sizes up to 12), runs ``algorithm="winograd"`` and ``"winograd4"`` in float32
and float64 and reports, per (algorithm, dtype), the worst ratio of the error (against torch
or tconv.reference in float64) to

  * the Winograd bound derived in docs/winograd.md (must stay <= 1), and
  * the direct path's bound ``2 * T * eps * sum|products|`` (T = products per output),
    elementwise; "inf" when an output whose products are all zero (exact value: the bias)
    comes back with a rounding error, which Winograd's tile-wide transforms allow.

The transforms are derived here independently of csrc/ (Toom-Cook with exact fractions, from
the interpolation points alone); tests/test_winograd.py imports this file.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

Matrix = list[list[Fraction]]

#: Interpolation points of each F(m, r) shipped (None = the point at infinity).
POINTS: dict[tuple[int, int], list[Fraction | None]] = {
    (2, 2): [Fraction(0), Fraction(-1), None],
    (2, 3): [Fraction(0), Fraction(1), Fraction(-1), None],
    (4, 2): [Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), None],
    (4, 3): [Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-2), None],
}
TILE = {"winograd": 2, "winograd4": 4}


def _inverse(a: Matrix) -> Matrix:
    n = len(a)
    m = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        p = next(r for r in range(c, n) if m[r][c] != 0)
        m[c], m[p] = m[p], m[c]
        m[c] = [v / m[c][c] for v in m[c]]
        for r in range(n):
            if r != c and m[r][c] != 0:
                f = m[r][c]
                m[r] = [a_ - f * b_ for a_, b_ in zip(m[r], m[c])]
    return [row[n:] for row in m]


def _vandermonde(points: list[Fraction | None], cols: int) -> Matrix:
    return [[Fraction(int(j == cols - 1)) for j in range(cols)] if p is None
            else [p ** j for j in range(cols)] for p in points]


def transform(m: int, r: int) -> tuple[Matrix, Matrix, Matrix]:
    """(A^T, G, B^T) of F(m, r): the correlation y_i = sum_q h_q d_{i+q}, i < m, equals
    A^T [(G h) . (B^T d)].  Toom-Cook for the linear convolution s = h * e is
    s = V^-1 [(Vr h) . (Vm e)]; the correlation is its transpose in e."""
    points = POINTS[(m, r)]
    alpha = m + r - 1
    inv = _inverse(_vandermonde(points, alpha))
    g = _vandermonde(points, r)
    at = [list(col) for col in zip(*_vandermonde(points, m))]
    bt = [list(col) for col in zip(*inv)]
    return at, g, bt


def beta(m: int, r: int) -> Fraction:
    """max over output i and tap q of sum_{p, xi} |A^T_i,xi| |G_xi,q| |B^T_xi,p|."""
    at, g, bt = transform(m, r)
    alpha = m + r - 1
    return max(sum(abs(at[i][x]) * abs(g[x][q]) * abs(bt[x][p])
                   for x in range(alpha) for p in range(alpha))
               for i in range(m) for q in range(r))


def row_terms(mat: Matrix) -> int:
    """Most nonzero entries in a row: roundings of one stage of that transform."""
    return max(sum(1 for v in row if v != 0) for row in mat)


@dataclass(frozen=True)
class Constants:
    beta2: float   # beta_y * beta_x, worst over r in {2, 3}
    c_b: int       # roundings per stage of the input transform
    c_a: int       # ... of the output transform


def constants(m: int) -> Constants:
    b = max(beta(m, r) for r in (2, 3))
    c_b = max(row_terms(transform(m, r)[2]) for r in (2, 3))
    c_a = max(row_terms(transform(m, r)[0]) for r in (2, 3))
    return Constants(float(b * b), c_b, c_a)


def gamma(n: int, dtype: Any) -> float:
    u = float(np.finfo(dtype).eps) / 2
    return n * u / (1 - n * u)


def winograd_bound(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, groups: int,
                   m: int, dtype: Any) -> np.ndarray:
    """Per (n, f): gamma_n * (beta^2 * sum_c ||W[c, f]||_1 ||x[n, c]||_inf + |bias_f|),
    n = 2 + 2 c_B + 2 K_c + 2 c_A + 1 (docs/winograd.md)."""
    k = constants(m)
    kc = x.shape[1] // groups
    rounds = 2 + 2 * k.c_b + 2 * kc + 2 * k.c_a + 1
    s = _norm_sum(x, w, groups)
    bias = np.zeros(s.shape[1]) if b is None else np.abs(b.astype(np.float64))
    return gamma(rounds, dtype) * (k.beta2 * s + bias[None, :])


def _norm_sum(x: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """sum_c ||W[c, f]||_1 ||x[n, c]||_inf per (n, f), c over f's group."""
    xm = np.abs(x.astype(np.float64)).max(axis=(2, 3))          # (N, C_in)
    wn = np.abs(w.astype(np.float64)).sum(axis=(2, 3))          # (C_in, M)
    kc, mo = x.shape[1] // groups, w.shape[1]
    out = np.empty((x.shape[0], mo * groups))
    for g in range(groups):
        out[:, g * mo:(g + 1) * mo] = xm[:, g * kc:(g + 1) * kc] @ wn[g * kc:(g + 1) * kc]
    return out


def oracle(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: dict[str, Any]) -> np.ndarray:
    """conv_transpose in float64: torch when installed, else tconv.reference."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    try:
        import torch
    except ImportError:
        from tconv import reference
        return reference.conv_transpose(x64, w64, b64, **geo)
    return torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x64), torch.from_numpy(w64), None if b64 is None else torch.from_numpy(b64),
        **geo).numpy()


def random_problem(rng: np.random.Generator, dtype: Any
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """A 2-D geometry whose every phase has 2 or 3 taps per axis, with random data."""
    while True:
        stride = tuple(int(rng.integers(1, 4)) for _ in range(2))
        kernel = tuple(int(rng.integers(2 * s, 3 * s + 1)) for s in stride)
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        output_padding = tuple(int(rng.integers(0, s)) for s in stride)
        spatial = tuple(int(rng.integers(1, 13)) for _ in range(2))
        out = [(i - 1) * s - 2 * p + k + op
               for i, s, p, k, op in zip(spatial, stride, padding, kernel, output_padding)]
        if min(out) >= 1:
            break
    groups = int(rng.integers(1, 4))
    c_in, c_out = groups * int(rng.integers(1, 7)), groups * int(rng.integers(1, 7))
    batch = int(rng.integers(1, 4))
    x = rng.standard_normal((batch, c_in, *spatial)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if rng.integers(0, 2) else None
    geo = {"stride": stride, "padding": padding, "output_padding": output_padding,
           "groups": groups}
    return x, w, b, geo


def ratios(y: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
           geo: dict[str, Any], m: int) -> tuple[float, float]:
    """(worst error / Winograd bound, worst error / direct bound) of one result y."""
    dtype = y.dtype
    exact = oracle(x, w, b, geo)
    err = np.abs(y.astype(np.float64) - exact)
    groups = geo["groups"]
    kc = x.shape[1] // groups
    bound = winograd_bound(x, w, b, groups, m, dtype)[:, :, None, None]
    taps = kc * math.prod(-(-k // s) for k, s in zip(w.shape[2:], geo["stride"]))
    if dtype == np.float64:  # the float64 oracle's own error
        bound = bound + gamma(taps + 1, np.float64) * (
            _norm_sum(x, w, groups)[:, :, None, None]
            + (0 if b is None else np.abs(b)[None, :, None, None]))
    abs_products = oracle(np.abs(x), np.abs(w), None if b is None else np.abs(b), geo)
    direct = 2 * (taps + (b is not None)) * float(np.finfo(dtype).eps) * abs_products
    with np.errstate(divide="ignore", invalid="ignore"):
        to_direct = np.where(err == 0, 0.0, err / direct)
    return float((err / bound).max()), float(to_direct.max())


def transforms_used(w_shape: tuple[int, ...], stride: tuple[int, ...], m: int) -> str:
    """The 2-D transforms a geometry's phases run, e.g. ``F(2x2 2x2)`` (every phase 2x2 taps)
    or ``F(2x2 {2,3}x{2,3})`` (mixed): per axis, the taps of phase j are the kernel indices
    congruent to j modulo the stride."""
    rs = [sorted({len(range(j, k, s)) for j in range(s)}) for k, s in zip(w_shape[2:], stride)]
    if all(r == rs[0] for r in rs) and len(rs[0]) == 1:
        return f"F({m}x{m} {rs[0][0]}x{rs[0][0]})"
    name = "x".join(str(r[0]) if len(r) == 1 else "{" + ",".join(map(str, r)) + "}" for r in rs)
    return f"F({m}x{m} {name})"


def measure(examples: int, seed: int = 0, report: Any = None, by_transform: bool = False
            ) -> dict[tuple[str, ...], tuple[float, float, int, int]]:
    """(algorithm, dtype) -> (worst ratio to the Winograd bound, worst ratio to the direct
    bound, examples whose ratio to the direct bound exceeded 1, examples); with ``by_transform`` also
    (algorithm, dtype, transforms) -> the same over the examples whose phases ran exactly
    those transforms (:func:`transforms_used`)."""
    import tconv

    def call(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, algo: str,
             geo: dict[str, Any]) -> np.ndarray:
        return tconv.conv_transpose(x, w, b, algorithm=algo, **geo)

    return measure_loop(examples, seed, report, random_problem, call, ratios,
                        transforms_used if by_transform else None)


def measure_loop(examples: int, seed: int, report: Any, problem: Any, call: Any, ratios: Any,
                 transforms: Any = None) -> dict[tuple[str, ...], tuple[float, float, int, int]]:
    """The measurement of :func:`measure` (and tools/winograd_gather_error.py's): per example
    and dtype, ``problem(rng, dtype)`` gives ``(data, w, b, geo)``, ``call(data, w, b,
    algorithm, geo)`` the result of each algorithm, ``ratios(result, data, w, b, geo, m)`` its
    two ratios; ``transforms(w.shape, stride, m)``, when given, names the per-transform key;
    ``report(done, worst)`` every 1000 examples."""
    rng = np.random.default_rng(seed)
    worst: dict[tuple[str, ...], tuple[float, float, int, int]] = {}
    for done in range(examples):
        if report is not None and done and done % 1000 == 0:
            report(done, worst)
        for dtype in (np.float32, np.float64):
            data, w, b, geo = problem(rng, dtype)
            for algo, m in TILE.items():
                result = call(data, w, b, algo, geo)
                r_wino, r_direct = ratios(result, data, w, b, geo, m)
                keys: list[tuple[str, ...]] = [(algo, np.dtype(dtype).name)]
                if transforms is not None:
                    keys.append((*keys[0], transforms(w.shape, geo["stride"], m)))
                for key in keys:
                    old = worst.get(key, (0.0, 0.0, 0, 0))
                    worst[key] = (max(old[0], r_wino), max(old[1], r_direct),
                                  old[2] + (r_direct > 1), old[3] + 1)
    return worst


def main(doc: str | None = None, run: Any = None, what: str = "geometries") -> None:
    """The command line; ``run(examples, seed, report)`` measures (default: :func:`measure` by
    transform), ``doc`` and ``what`` name it (tools/winograd_gather_error.py reuses this)."""
    parser = argparse.ArgumentParser(description=(doc or __doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="tconv and torch threads (small problems: 1 is fastest)")
    args = parser.parse_args()
    import tconv

    tconv.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    def show(done: int, worst: dict[tuple[str, ...], tuple[float, float, int, int]]) -> None:
        print(f"{done} random {what} per dtype, seed {args.seed}", flush=True)
        for key, (r_wino, r_direct, over, count) in sorted(worst.items()):
            name = " ".join(f"{k:10s}" for k in key)
            print(f"  {name} worst err/winograd-bound {r_wino:.3g}  "
                  f"worst err/direct-bound {r_direct:.3g}  over the direct bound "
                  f"{over} of {count}", flush=True)

    if run is None:
        def run(examples: int, seed: int, report: Any) -> Any:
            return measure(examples, seed, report, by_transform=True)
    show(args.examples, run(args.examples, args.seed, show))


if __name__ == "__main__":
    main()
