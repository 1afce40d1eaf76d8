"""Checks shared by the Winograd forward (test_winograd.py) and gather (test_winograd_gather.py)
suites: ``call(data, w, bias, algorithm)`` runs the operation under test (2-D, padding 1)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_TOOLS = Path(__file__).resolve().parent.parent / "tools"

ALGOS = ("winograd", "winograd4")
DTYPES = (np.float32, np.float64)


def load_tool(name: str) -> Any:
    """tools/<name>.py as the module ``name`` (once: the gather's tool imports the forward's)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# (data shape, kernel, geometry, what the plan runs) for both operations: every phase of 2 or
# 3 taps per axis takes the path, the rest runs direct by plan.  The data is large enough that
# the gather (conv, data = its input) has an output too.
PLAN_CASES = [
    ((1, 2, 7, 7), (3, 3), {"stride": 1, "padding": 1}, "winograd"),
    ((1, 2, 7, 7), (2, 2), {"stride": 1}, "winograd"),
    ((1, 2, 8, 8), (4, 4), {"stride": 2, "padding": 1}, "winograd"),
    ((1, 2, 9, 9), (5, 5), {"stride": 2, "padding": 2}, "winograd"),     # 3 and 2 taps
    ((1, 2, 9, 9), (6, 4), {"stride": (2, 2)}, "winograd"),
    ((1, 2, 13, 13), (9, 6), {"stride": (3, 2)}, "winograd"),
    ((1, 2, 7, 7), (3, 3), {"stride": 2, "padding": 1}, "direct"),       # 2 and 1 taps
    ((1, 2, 7, 7), (1, 1), {}, "direct"),
    ((1, 2, 7, 7), (4, 4), {"stride": 1}, "direct"),                     # 4 taps
    ((1, 2, 9, 9), (7, 7), {"stride": 2}, "direct"),                     # 4 and 3 taps
    ((1, 2, 9, 9), (3, 3), {"dilation": 2}, "direct"),
    ((1, 2, 9), (3,), {"padding": 1}, "direct"),                         # 1-D
    ((1, 2, 4, 4, 4), (3, 3, 3), {"padding": 1}, "direct"),              # 3-D
]

Call = Callable[[np.ndarray, np.ndarray, Any, str], np.ndarray]


def assert_plan_runs(plan_of: Callable[[str], str], run: Callable[[str], np.ndarray],
                     expected: str, algorithm: str) -> None:
    """A PLAN_CASES row: ``plan_of(algo)`` (the method tconv.plan reports: winograd, winograd4
    or direct) is ``algorithm`` where the row expects Winograd, else direct; "auto" and
    "direct" plan direct; ``run(algo)`` by the fallback is the direct path bit for bit, by
    Winograd close to it."""
    want = algorithm if expected == "winograd" else "direct"
    assert plan_of(algorithm) == want
    assert plan_of("auto") == "direct"
    assert plan_of("direct") == "direct"
    out, direct = run(algorithm), run("direct")
    assert run("auto").tobytes() == direct.tobytes()
    if want == "direct":
        np.testing.assert_array_equal(out, direct)
    else:
        np.testing.assert_allclose(out, direct, rtol=1e-12, atol=1e-12)


def nonfinite_cases(test: Any) -> Any:
    """Parametrizes ``test(algorithm, dtype, where, value)`` for assert_nonfinite_as_direct."""
    for name, values in (("algorithm", list(ALGOS)), ("dtype", list(DTYPES)),
                         ("where", ["data", "w", "bias"]), ("value", [np.nan, np.inf])):
        test = pytest.mark.parametrize(name, values)(test)
    return test


def assert_nonfinite_as_direct(call: Call, w_shape: tuple[int, ...], dtype: Any, where: str,
                               value: float, algorithm: str) -> None:
    """One Inf/NaN in the data (2 x 4 x 9 x 9), weight (``w_shape``) or bias (its element 3):
    Inf/NaN exactly where the direct path has them.  A non-finite operand would spread across
    a tile in the transform domain, so such calls run direct (bit for bit); a non-finite bias
    reaches only its channel (3), which the loop nest repairs, the other channels keep the
    Winograd result."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((2, 4, 9, 9)).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
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
