"""Measured error of tconv's Winograd gather (conv, conv_transpose's grad_input) against its
derived bound and the direct bound.

    PYTHONPATH=python python tools/winograd_gather_error.py --examples 10000

As tools/winograd_error.py (whose transforms, derived from the interpolation points alone, and
constants it reuses) for ``tconv.conv(..., algorithm=...)``: seeded random 2-D conv geometries
that the Winograd gather takes (stride s in 1..3 per axis, kernel in [2s, 3s], low and high
padding in [0, k), groups 1..3, batch 1..3, input sizes up to 24), run by ``"winograd"`` and
``"winograd4"`` in float32 and float64, against the float64 conv (torch, else
tconv.reference).  The bound (docs/winograd.md, "The gather") is the forward's with the GEMM's
K = channels per group x phases:

    |x_wino - x| <= gamma_n * (beta^2 * sum_f ||W[c, f]||_1 ||y[n, f]||_inf + |bias_c|),
    n = 2 + 2 c_B + 2 K + 2 c_A + 1,   K = (C_in / groups) * s_y * s_x.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
if "winograd_error" in sys.modules:
    werr = sys.modules["winograd_error"]
else:
    _spec = importlib.util.spec_from_file_location("winograd_error", _HERE / "winograd_error.py")
    assert _spec is not None and _spec.loader is not None
    werr = importlib.util.module_from_spec(_spec)
    sys.modules["winograd_error"] = werr
    _spec.loader.exec_module(werr)

TILE = werr.TILE
Pads = tuple[tuple[int, int], ...]


def oracle(y: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, ...],
           padding: Pads, groups: int) -> np.ndarray:
    """conv in float64 of y zero-padded by ``padding`` (low, high) per axis: torch when
    installed, else tconv.reference."""
    y64 = np.pad(y.astype(np.float64), ((0, 0), (0, 0), *padding))
    w64 = w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    try:
        import torch
    except ImportError:
        from tconv import reference
        return reference.conv(y64, w64, b64, stride=stride, groups=groups)
    return torch.nn.functional.conv2d(
        torch.from_numpy(y64), torch.from_numpy(w64),
        None if b64 is None else torch.from_numpy(b64), stride=stride, groups=groups).numpy()


def random_problem(rng: np.random.Generator, dtype: Any
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """A 2-D conv whose kernel has 2 or 3 taps per phase and axis, with random data."""
    while True:
        stride = tuple(int(rng.integers(1, 4)) for _ in range(2))
        kernel = tuple(int(rng.integers(2 * s, 3 * s + 1)) for s in stride)
        padding = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in kernel)
        spatial = tuple(int(rng.integers(1, 25)) for _ in range(2))
        out = [(i + lo + hi - k) // s + 1
               for i, s, (lo, hi), k in zip(spatial, stride, padding, kernel)]
        if min(out) >= 1:
            break
    groups = int(rng.integers(1, 4))
    c_in, c_out = groups * int(rng.integers(1, 7)), groups * int(rng.integers(1, 7))
    batch = int(rng.integers(1, 4))
    y = rng.standard_normal((batch, c_in, *spatial)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if rng.integers(0, 2) else None
    return y, w, b, {"stride": stride, "padding": padding, "groups": groups}


def _norm_sum(y: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """sum_f ||W[c, f]||_1 ||y[n, f]||_inf per (n, c), f over c's group."""
    ym = np.abs(y.astype(np.float64)).max(axis=(2, 3))          # (N, C_in)
    wn = np.abs(w.astype(np.float64)).sum(axis=(2, 3))          # (C_out, C_in/g)
    f, mo = y.shape[1] // groups, w.shape[0] // groups
    out = np.empty((y.shape[0], w.shape[0]))
    for g in range(groups):
        out[:, g * mo:(g + 1) * mo] = ym[:, g * f:(g + 1) * f] @ wn[g * mo:(g + 1) * mo].T
    return out


def winograd_bound(y: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, ...],
                   groups: int, m: int, dtype: Any) -> np.ndarray:
    """Per (n, c): the bound of the module docstring."""
    k = werr.constants(m)
    gemm_k = (y.shape[1] // groups) * math.prod(stride)
    rounds = 2 + 2 * k.c_b + 2 * gemm_k + 2 * k.c_a + 1
    s = _norm_sum(y, w, groups)
    bias = np.zeros(s.shape[1]) if b is None else np.abs(b.astype(np.float64))
    return werr.gamma(rounds, dtype) * (k.beta2 * s + bias[None, :])


def pairs(padding: Any) -> Pads:
    """(low, high) per axis of conv's ``padding`` (an int, ints or pairs)."""
    if isinstance(padding, int):
        return ((padding, padding),) * 2
    return tuple((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in padding)


def ratios(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray | None,
           geo: dict[str, Any], m: int) -> tuple[float, float]:
    """(worst error / Winograd bound, worst error / direct bound) of one result x."""
    dtype = x.dtype
    stride, groups, padding = tuple(geo["stride"]), geo["groups"], pairs(geo["padding"])
    exact = oracle(y, w, b, stride, padding, groups)
    err = np.abs(x.astype(np.float64) - exact)
    bound = winograd_bound(y, w, b, stride, groups, m, dtype)[:, :, None, None]
    taps = (y.shape[1] // groups) * math.prod(w.shape[2:])
    if dtype == np.float64:  # the float64 oracle's own error
        bound = bound + werr.gamma(taps + 1, np.float64) * (
            _norm_sum(y, w, groups)[:, :, None, None]
            + (0 if b is None else np.abs(b)[None, :, None, None]))
    abs_products = oracle(np.abs(y), np.abs(w), None if b is None else np.abs(b), stride,
                          padding, groups)
    direct = 2 * (taps + (b is not None)) * float(np.finfo(dtype).eps) * abs_products
    with np.errstate(divide="ignore", invalid="ignore"):
        to_direct = np.where(err == 0, 0.0, err / direct)
    return float((err / bound).max()), float(to_direct.max())


def transforms_used(w_shape: tuple[int, ...], stride: tuple[int, ...], m: int) -> str:
    """The gather's transform, e.g. ``F(2x2 2x3)``, and ``+pad`` when some phase's sub-kernel
    was padded with zero taps (r = ceil(k / s) per axis)."""
    rs = [-(-k // s) for k, s in zip(w_shape[2:], stride)]
    padded = any(k % s for k, s in zip(w_shape[2:], stride))
    return f"F({m}x{m} {rs[0]}x{rs[1]})" + ("+pad" if padded else "")


def measure(examples: int, seed: int = 0, report: Any = None
            ) -> dict[tuple[str, ...], tuple[float, float, int, int]]:
    """As winograd_error.measure (by transform too), for tconv.conv."""
    import tconv

    def call(y: np.ndarray, w: np.ndarray, b: np.ndarray | None, algo: str,
             geo: dict[str, Any]) -> np.ndarray:
        return tconv.conv(y, w, b, algorithm=algo, **geo)

    return werr.measure_loop(examples, seed, report, random_problem, call, ratios,
                             transforms_used)


def main() -> None:
    werr.main(__doc__, measure, "conv geometries")


if __name__ == "__main__":
    main()
