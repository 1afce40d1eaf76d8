"""Oracles for shapes too large for the dense matrix: every result computed entry by entry
from the structure of ``C`` (tconv.reference's own entry list), in float64.

``conv_transpose_results`` gives what the boundary sweep and the large-geometry fuzz compare:
the forward, grad_input (= conv of grad_output) and grad_weight of one conv_transpose problem,
each with the sum of |products| that bounds its float rounding (conftest.assert_matches_oracle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tconv import reference


def _pairs(padding: Any, nd: int) -> list[tuple[int, int]]:
    if isinstance(padding, int):
        return [(padding, padding)] * nd
    return [(p[0], p[1]) if isinstance(p, (tuple, list)) else (p, p) for p in padding]


def grad_weight(g: np.ndarray, x: np.ndarray, w_shape: tuple[int, ...], stride: Any,
                padding: Any, dilation: Any, groups: int) -> np.ndarray:
    """dW[c, f, k] = sum_{n, i} x[n, c, i] * g[n, group(c) f, i*s - p + k*d] of conv_transpose
    (input x, grad_output g), summed over the structural entries only."""
    nd = len(w_shape) - 2
    pads = _pairs(padding, nd)
    s = list(stride) if isinstance(stride, (tuple, list)) else [stride] * nd
    d = list(dilation) if isinstance(dilation, (tuple, list)) else [dilation] * nd
    rows, cols, widx = reference._entries(w_shape, x.shape[2:], g.shape[2:], s,
                                          [p[0] for p in pads], d, groups)
    n = x.shape[0]
    out = np.zeros(int(np.prod(w_shape)))
    if n and rows.size:
        xf = x.reshape(n, -1).astype(np.float64)
        gf = g.reshape(n, -1).astype(np.float64)
        np.add.at(out, widx, np.einsum("nr,nr->r", gf[:, cols], xf[:, rows]))
    return out.reshape(w_shape)
