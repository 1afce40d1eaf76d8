"""Shared test helpers: the oracle comparison and optional-dependency handling."""

from __future__ import annotations

import numpy as np
import pytest


def assert_matches_oracle(actual, expected, abs_expected, terms, label=""):
    """Compare a kernel result with the float64 oracle.

    A sum of ``terms`` products computed in precision ``eps`` is off by at most about
    ``terms * eps * sum|products|`` (the classic recursive-summation bound); ``abs_expected``
    is that ``sum|products|``, computed by the oracle on ``|x|`` and ``|w|``.  float64 must also
    meet the brief's 1e-10 relative bound.
    """
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (label, actual.shape, expected.shape)
    eps = np.finfo(actual.dtype).eps
    bound = 2.0 * max(terms, 1) * eps * abs_expected + np.finfo(actual.dtype).tiny
    if actual.dtype == np.float64:
        bound = np.minimum(bound, 1e-10 * abs_expected) + 1e-300
    err = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"{label}: error {err[worst]} > bound {bound[worst]} at {worst}" if worst else label
    )


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def torch_or_skip():
    return pytest.importorskip("torch")
