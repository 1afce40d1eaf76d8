"""Several Python threads calling the kernels at once get exactly the results of sequential
calls (oracle: the same kernels called one at a time, which test_reference checks against the
dense matrix), and the kernels release the GIL while they run."""

from __future__ import annotations

import threading
import time

import numpy as np

import tconv

from _cases import FIXED, Case

PROBLEMS = FIXED[:6] + [
    Case(2, 2, 3, 2, (8, 7), (3, 3), (2, 2), (1, 1), (1, 0), (1, 1), True),
    Case(3, 1, 4, 4, (25,), (4,), (2,), (1,), (0,), (2,), True),
]


def _run(case: Case, dtype):
    x, w, b = case.arrays(dtype)
    g = np.random.default_rng(1).standard_normal(
        (case.batch, case.c_out, *case.output_spatial())).astype(dtype)
    p = case.params()
    y = tconv.conv_transpose(x, w, b, **p)
    grads = tconv.conv_transpose_backward(g, x, w, **p)
    c = tconv.conv(g, w, stride=case.stride, padding=case.padding, dilation=case.dilation,
                   groups=case.groups)
    return (y, *grads, c)


def test_threads_get_sequential_results():
    jobs = [(case, dtype) for case in PROBLEMS for dtype in (np.float32, np.float64)]
    expected = [_run(case, dtype) for case, dtype in jobs]
    failures: list[str] = []
    barrier = threading.Barrier(4)

    def worker(offset: int) -> None:
        barrier.wait()  # start together
        for rep in range(6):
            for k in range(len(jobs)):
                j = (k + offset + rep) % len(jobs)  # threads work on different problems
                got = _run(*jobs[j])
                for a, b in zip(got, expected[j]):
                    if a.shape != b.shape or a.tobytes() != b.tobytes():
                        failures.append(f"thread {offset}: {jobs[j]}")

    threads = [threading.Thread(target=worker, args=(i * 3,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]


def _python_runs_during(fn) -> bool:
    """Does this thread run Python while another thread is inside ``fn()``?

    This thread records the time of each pass of a loop while the other makes the call; the
    answer is whether some pass fell between 10 % and 50 % of the call's span.  The start is
    left out because the call takes the GIL there; the second half because the span's end is
    read after ``fn`` returns, and on a busy machine this thread may hold the GIL (and run
    passes) for tens of milliseconds between that return and the reading.  If ``fn`` holds
    the GIL, no pass can fall in the window."""
    inside = threading.Event()
    span: list[float] = []

    def call() -> None:
        inside.set()
        t0 = time.perf_counter()
        fn()
        span.extend((t0, time.perf_counter()))

    t = threading.Thread(target=call)
    t.start()
    inside.wait()
    passes: list[float] = []
    while not span:
        passes.append(time.perf_counter())
    t.join()
    t0, t1 = span
    lo, hi = t0 + 0.1 * (t1 - t0), t0 + 0.5 * (t1 - t0)
    return any(lo < s < hi for s in passes)


def _retry(fn, expect: bool, attempts: int = 3) -> bool:
    """A busy machine may deschedule either thread: ask up to ``attempts`` times."""
    return any(_python_runs_during(fn) == expect for _ in range(attempts))


def test_kernels_release_the_gil():
    rng = np.random.default_rng(0)
    # about 10-20 ms per call on one thread: long against a busy machine's scheduling delays
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    w = rng.standard_normal((64, 64, 5, 5)).astype(np.float32)
    g = rng.standard_normal((8, 64, 67, 67)).astype(np.float32)
    saved = tconv.get_num_threads()
    tconv.set_num_threads(1)
    try:
        assert _retry(lambda: tconv.conv_transpose(x, w, stride=2), True), "scatter"
        assert _retry(lambda: tconv.conv(g, w, stride=2), True), "gather"
        assert _retry(lambda: tconv.conv_transpose_backward(g, x, w, stride=2,
                                                            output_mask=(False, True, False)),
                      True), "weight_grad"
    finally:
        tconv.set_num_threads(saved)


def test_gil_detector_detects_a_held_gil():
    """Negative control: a C call made through ctypes.PyDLL keeps the GIL."""
    import ctypes

    try:
        usleep = ctypes.PyDLL(None).usleep
    except (OSError, AttributeError):
        import pytest

        pytest.skip("no libc usleep")
    assert _retry(lambda: usleep(300_000), False)
