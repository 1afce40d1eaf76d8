"""pytest configuration for the benchmark suite (``pytest bench/``).

* ``pytest bench/ --benchmark-only``: times tconv, torch and the NumPy reference (small shapes
  only) on every case of :mod:`tconv.bench_cases`, at full size and scaled down.
* ``pytest bench/ --benchmark-disable``: a fast correctness check (each benchmark body runs
  once and asserts its result); the full-size items are deselected so it takes seconds.
* ``--bench-dtype float32|float64|both`` (default float32); ``-m small`` / ``-m full`` pick
  one size.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-dtype", choices=("float32", "float64", "both"), default="float32",
                     help="dtype(s) of the tconv benchmarks (default float32)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full: a benchmark at the layer's real size")
    config.addinivalue_line("markers", "small: a benchmark at the scaled-down (quick) size")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dtype" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--bench-dtype")
        dtypes = ["float32", "float64"] if choice == "both" else [choice]
        metafunc.parametrize("dtype", dtypes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # With benchmarks disabled the suite is a correctness check: the scaled-down items check
    # every case and pass against the oracle in seconds; the full-size ones would only repeat
    # that check slowly, so they are deselected (and reported as such).
    if not config.getoption("benchmark_disable", default=False):
        return
    keep = [item for item in items if item.get_closest_marker("full") is None]
    dropped = [item for item in items if item.get_closest_marker("full") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def _same_threads() -> None:
    """Give torch the same thread count as tconv, so the comparison is fair."""
    import tconv

    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(tconv.get_num_threads())
