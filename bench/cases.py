"""The benchmark layers of issue 3 (re-exported from the package so the CLI can use them).

The one list lives in :mod:`tconv.bench_cases`; see there for each layer and the FLOP count.
"""

from tconv.bench_cases import CASES, PASSES, QUICK_DENSE_LIMIT, BenchCase, select_cases

__all__ = ["CASES", "PASSES", "QUICK_DENSE_LIMIT", "BenchCase", "select_cases"]
