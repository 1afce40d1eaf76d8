"""The ISA paths the kernel suites run on, as pytest parameters.

``tconv.supported_isas()`` lists the real paths this CPU runs (best first, ending in
"generic"), then the emulated ones ("avx512-emulated": the AVX-512 table's tile logic over
portable lanes, on any CPU).  An emulated path is the only test of its ISA's tile logic on a CPU
without that ISA, so it runs in the default suite there; where the real ISA runs too, the
emulation is bitwise equal to it (test_isa_emulated.py, default suite) and the heavy suites run
it under ``-m slow`` only, which keeps the default run's time that of three paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

import tconv

EMULATED_SUFFIX = "-emulated"


def real_of(name: str) -> str | None:
    """The real ISA an emulated path emulates ("avx512-emulated" -> "avx512"), else None."""
    return name[: -len(EMULATED_SUFFIX)] if name.endswith(EMULATED_SUFFIX) else None


def isa_params(isas: list[str] | None = None) -> list[object]:
    """``isas`` (default: ``tconv.supported_isas()``) as parameters; an emulated ISA whose real
    ISA is also in the list is marked slow."""
    isas = tconv.supported_isas() if isas is None else isas
    return [pytest.param(name, marks=pytest.mark.slow) if real_of(name) in isas else name
            for name in isas]


def assert_bitwise_across_threads(isa: str, results: Callable[[], Sequence[np.ndarray]]) -> None:
    """``results()`` on ``isa`` with 1, 2 and 3 threads: every array bitwise the same."""
    saved = tconv.get_num_threads()
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        runs = {}
        for n in (1, 2, 3):
            with tconv.threads(n):
                runs[n] = results()
        for n in (2, 3):
            for a, b in zip(runs[1], runs[n], strict=True):
                assert a.tobytes() == b.tobytes(), f"{isa}: {n} threads differ from 1"
    finally:
        tconv.set_isa(before)
        tconv.set_num_threads(saved)
