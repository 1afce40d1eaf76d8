"""Benchmarks that are also tests: tconv vs torch vs the NumPy reference on every layer.

Run ``pytest bench/ --benchmark-only`` for timings (``--benchmark-columns=min,median,ops``
and ``--benchmark-group-by=group`` are the defaults' useful subset), or
``pytest bench/ --benchmark-disable`` for a quick correctness pass (see ``conftest.py``).

Each item times one implementation (``tconv``, a peer -- ``torch``, ``onnxruntime``,
``openvino``, see :mod:`tconv._peers` -- or ``reference``) of one pass
(``fwd``, ``grad_input``, ``grad_weight``) of one case of :mod:`tconv.bench_cases`, at its real
size (``full``) or scaled down (``small``, :meth:`BenchCase.quick`); items that should be
compared share a ``benchmark.group`` named ``<case> <pass> <dtype> <size>``.  The dense NumPy
reference only runs at the small size (its matrix at full size would need gigabytes).

Every item then asserts its result against an oracle, so a fast but wrong kernel fails:
the float64 dense-matrix reference at the small size, PyTorch in float64 at full size (torch's
own full-size timings are not asserted: torch is the oracle there; the reference itself is
checked against torch, or against tconv in float64 when torch is absent).  The
tolerance is the recursive-summation bound ``3 * terms * eps * sum|products|`` per element,
``terms`` being the pass's reduction length and ``sum|products|`` the oracle run on ``|inputs|``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from cases import CASES, PASSES, BenchCase
from tconv._peers import PEERS
from tconv.bench import Workload, as_numpy

SIZES = ("full", "small")
#: The peers timed beside tconv (each skipped when not installed or without the pass).
PEER_IMPLS = ("torch", "onnxruntime", "openvino")


def _params() -> list[Any]:
    params = []
    for case in CASES:
        for pass_ in PASSES:
            for size in SIZES:
                peers = PEER_IMPLS if pass_ == "fwd" else ("torch",)  # the others: inference only
                impls = ("tconv", *peers) + (("reference",) if size == "small" else ())
                for impl in impls:
                    marks = [getattr(pytest.mark, size)]
                    params.append(pytest.param(case, pass_, size, impl, marks=marks,
                                               id=f"{case.name}-{pass_}-{size}-{impl}"))
    return params


def _torch_or_none() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


@lru_cache(maxsize=4)
def _workload(case: BenchCase, size: str, dtype: str) -> Workload:
    return Workload(case if size == "full" else case.quick(), np.dtype(dtype))


def _oracle_name(size: str, impl: str) -> str | None:
    """The dense-matrix reference at the small size, torch in float64 at full size; an
    implementation never serves as its own oracle (the reference is checked against torch, or
    without torch against tconv in float64).  None: no oracle available."""
    torch_ok = _torch_or_none() is not None
    if size == "small" and impl != "reference":
        return "reference"
    if torch_ok and impl != "torch":
        return "torch"
    if size == "small":
        return "tconv"
    return None


@lru_cache(maxsize=2)  # items run case by case, pass by pass: only the latest oracle is reused
def _oracle(case: BenchCase, size: str, dtype: str, pass_: str,
            name: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(float64 expected result, float64 result on |inputs|) computed by oracle ``name``."""
    work = _workload(case, size, dtype)
    exact, scale = work.converted(np.float64), work.converted(np.float64, absolute=True)
    expected = as_numpy(getattr(exact, name)(pass_)()).astype(np.float64)
    magnitude = as_numpy(getattr(scale, name)(pass_)()).astype(np.float64)
    return expected, magnitude


def _assert_close(actual: Any, case: BenchCase, size: str, dtype: str, pass_: str,
                  impl: str) -> None:
    if impl == "torch" and size == "full":
        return  # torch (in float64) is the full-size oracle: there is nothing to check it by
    name = _oracle_name(size, impl)
    if name is None:
        pytest.skip("the full-size result can only be checked against torch, which is absent")
    expected, magnitude = _oracle(case, size, dtype, pass_, name)
    result = as_numpy(actual)
    assert result.shape == expected.shape, (impl, result.shape, expected.shape)
    terms = _workload(case, size, dtype).reduction_length(pass_)
    eps = np.finfo(result.dtype).eps
    bound = 3.0 * terms * eps * magnitude + np.finfo(result.dtype).tiny
    err = np.abs(result.astype(np.float64) - expected)
    worst = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    assert np.all(err <= bound), (
        f"{impl} {case.name} {pass_} {size} {dtype} differs from {name} (float64): error {err[worst]:.3g} "
        f"> bound {bound[worst]:.3g} at {worst}")


@pytest.mark.parametrize(("case", "pass_", "size", "impl"), _params())
def test_layer(benchmark: Any, case: BenchCase, pass_: str, size: str, impl: str,
               dtype: str) -> None:
    work = _workload(case, size, dtype)
    if impl in PEERS:
        if not PEERS[impl].available():
            pytest.skip(f"{impl} is not installed")
        import tconv

        peer_run = PEERS[impl].thunk(work, pass_, tconv.get_num_threads())
        if peer_run is None:
            pytest.skip(f"{impl} has no {pass_} in {dtype}")
        run = peer_run
    else:
        run = getattr(work, impl)(pass_)
    benchmark.group = f"{case.name} {pass_} {dtype} {size}"
    benchmark.extra_info.update(
        geometry=work.case.describe(), flops=work.case.flops, impl=impl,
        computes_in="float64" if impl == "reference" else dtype)
    result = benchmark(run)
    _assert_close(result, case, size, dtype, pass_, impl)
