"""Thread control and thread safety: the count is process-wide, honours OMP_NUM_THREADS,
the context manager restores it, and kernels release the GIL (checked by observing the main
Python thread run while a kernel is in flight, and by bitwise agreement under a thread pool)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tconv

PYTHON_DIR = str(Path(tconv.__file__).resolve().parent.parent)


@pytest.fixture(autouse=True)
def _restore_threads():
    before = tconv.get_num_threads()
    yield
    tconv.set_num_threads(before)


def test_set_and_get():
    tconv.set_num_threads(1)
    assert tconv.get_num_threads() == 1
    tconv.set_num_threads(3)
    assert tconv.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -2])
def test_set_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="n must be >= 1"):
        tconv.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", True, None])
def test_set_rejects_non_int(bad):
    with pytest.raises(TypeError, match="n must be an int"):
        tconv.set_num_threads(bad)


def test_context_manager_restores_even_on_error():
    tconv.set_num_threads(2)
    with tconv.threads(1) as n:
        assert n == 1 and tconv.get_num_threads() == 1
        with tconv.threads(3):
            assert tconv.get_num_threads() == 3
        assert tconv.get_num_threads() == 1
    assert tconv.get_num_threads() == 2
    with pytest.raises(RuntimeError), tconv.threads(1):
        raise RuntimeError("boom")
    assert tconv.get_num_threads() == 2
    with pytest.raises(ValueError), tconv.threads(0):
        pass
    assert tconv.get_num_threads() == 2


def test_count_is_process_wide():
    """OpenMP's own setting is per calling thread; tconv's must reach other Python threads."""
    tconv.set_num_threads(1)
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(tconv.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [1]


@pytest.mark.parametrize("env", ["1", "3"])
def test_honours_omp_num_threads(env):
    code = "import tconv; print(tconv.get_num_threads())"
    environ = dict(os.environ, OMP_NUM_THREADS=env)
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (PYTHON_DIR, environ.get("PYTHONPATH")) if p
    )
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                            text=True, check=True, timeout=120)
    assert result.stdout.strip() == env


def _problems(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    params = dict(stride=(2, 3), padding=(1, 0), groups=2, dilation=(1, 2))
    return x, w, b, params


def _run_all(seed):
    x, w, b, params = _problems(seed)
    y = tconv.conv_transpose(x, w, b, **params)
    back = tconv.conv(y, w, None, params["stride"], params["padding"], params["dilation"],
                      params["groups"])
    grads = tconv.conv_transpose_backward(y, x, w, **params)
    return [y, back, *grads]


def test_kernels_correct_under_thread_pool():
    """Many kernels in flight from Python threads give the bitwise results of serial runs."""
    seeds = list(range(12))
    serial = [_run_all(s) for s in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(_run_all, seeds))
    for want, got in zip(serial, concurrent):
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)


def test_kernels_release_the_gil():
    """While one Python thread is inside a kernel, the main thread keeps running Python."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 48, 48)).astype(np.float32)
    w = rng.standard_normal((16, 16, 5, 5)).astype(np.float32)
    tconv.set_num_threads(1)
    start = time.perf_counter()
    tconv.conv_transpose(x, w, stride=2)
    single = time.perf_counter() - start

    # One call lasting ~0.3 s: were the GIL held, the main thread could not tick inside it.
    big = np.repeat(x, max(1, int(np.ceil(0.3 / max(single, 1e-4)))), axis=0)
    window: list[float] = []

    def kernel() -> None:
        window.append(time.perf_counter())
        tconv.conv_transpose(big, w, stride=2)
        window.append(time.perf_counter())

    ticks: list[float] = []
    worker = threading.Thread(target=kernel)
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    t0, t1 = window
    margin = 0.1 * (t1 - t0)
    inside = [t for t in ticks if t0 + margin < t < t1 - margin]
    assert inside, f"main thread made no progress during {t1 - t0:.3f} s of kernels"
