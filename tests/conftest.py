"""Shared test helpers: the oracle comparison and optional-dependency handling."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tconv
from _isas import isa_params


def gemm_block_columns() -> int:
    """Columns nc of the GEMM engine's B block on this machine (csrc/gemm/engine.cpp:
    b_block_bytes(), an eighth of the L2 the planner reads, kBBlockL2Share) over kc x sizeof =
    1 KiB, the same for float32 (kc 256) and float64 (kc 128)."""
    return tconv._core.l2_cache_bytes() // 8 // 1024


@pytest.fixture(params=isa_params())
def on_isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each ISA path this CPU runs (tests/_isas.py), active for the test and restored after;
    a module may parametrize it itself (indirect=True) or define its own."""
    before = tconv.isa()
    tconv.set_isa(request.param)
    yield request.param
    tconv.set_isa(before)


# Outputs of at least this many bytes (kStreamBytes, csrc/tconv/plan.hpp) are written with
# non-temporal stores where aligned (the GEMM engine's tiles, the interleaved phase stores).
STREAM_BYTES = 4 << 20


def misaligned_like(shape: tuple[int, ...], dtype: object) -> np.ndarray:
    """An empty array of this shape starting one element past a 64-byte boundary (so on no
    16- or 64-byte boundary): an ``out=`` that the non-temporal stores of large outputs skip."""
    size = int(np.prod(shape))
    raw = np.empty(size + 64, dtype=dtype)
    at = raw.__array_interface__["data"][0]
    skip = ((-at) % 64) // raw.itemsize + 1
    return raw[skip:skip + size].reshape(shape)


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


# ---- fuzzing (tests/test_fuzz.py) -----------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-long", action="store_true", default=False,
        help="run the long fuzz: >= 10000 hypothesis examples against the oracle "
             "(or set TCONV_FUZZ_EXAMPLES=N for N examples)",
    )


def pytest_configure(config):
    # test_fuzz reads the example count when it is imported, after this hook runs.
    import os

    if config.getoption("--fuzz-long") and "TCONV_FUZZ_EXAMPLES" not in os.environ:
        os.environ["TCONV_FUZZ_EXAMPLES"] = "10002"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = getattr(config, "_tconv_fuzz_summary", None)
    if lines:
        terminalreporter.section("tconv fuzz")
        for line in lines:
            terminalreporter.write_line(line)
