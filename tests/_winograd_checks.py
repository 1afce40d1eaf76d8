"""Checks shared by the Winograd forward (test_winograd.py) and gather (test_winograd_gather.py)
suites: ``call(data, w, bias, algorithm)`` runs the operation under test (2-D, padding 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Call = Callable[[np.ndarray, np.ndarray, Any, str], np.ndarray]


def assert_nonfinite_as_direct(call: Call, data: np.ndarray, w: np.ndarray, b: np.ndarray,
                               where: str, value: float, algorithm: str) -> None:
    """One Inf/NaN in the data, weight or bias (its element 3): Inf/NaN exactly where the direct
    path has them.  A non-finite operand would spread across a tile in the transform domain,
    so such calls run direct (bit for bit); a non-finite bias reaches only its channel (3),
    which the loop nest repairs, the other channels keep the Winograd result."""
    {"data": data, "w": w, "bias": b}[where].flat[3] = value
    out = call(data, w, b, algorithm)
    direct = call(data, w, b, "direct")
    np.testing.assert_array_equal(np.isnan(out), np.isnan(direct))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(direct))
    if where != "bias":
        np.testing.assert_array_equal(out, direct)
        return
    b[3] = 0
    finite_bias = call(data, w, b, algorithm)
    np.testing.assert_array_equal(out[:, 3], direct[:, 3])
    others = [c for c in range(out.shape[1]) if c != 3]
    np.testing.assert_array_equal(out[:, others], finite_bias[:, others])


def assert_overflow_repaired(call: Call, oracle: Callable[[np.ndarray, np.ndarray], np.ndarray],
                             algorithm: str) -> None:
    """Finite float32 operands whose transforms overflow (the direct sums do not): the Inf/NaN
    left in the result are recomputed by the loop nest, so no representable output is lost."""
    rng = np.random.default_rng(9)
    data = (rng.standard_normal((1, 2, 8, 8)) * 3e37).astype(np.float32)
    data[0, 0, 3, 3] = 3.0e38
    w = rng.uniform(0.5, 1.0, (2, 2, 3, 3)).astype(np.float32) * 0.01
    out = call(data, w, None, algorithm)
    exact = oracle(data, w)
    representable = np.abs(exact) < np.finfo(np.float32).max
    assert np.isfinite(out[representable]).all()
    np.testing.assert_allclose(out[representable], exact[representable], rtol=1e-4)
