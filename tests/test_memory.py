"""No memory growth over thousands of calls (resident set size, /proc/self/statm).

Each call below returns ~100 KiB of arrays, so leaking a single result per call would add
hundreds of MiB; the threshold (24 MiB) leaves room for allocator noise and one-off caches
(OpenMP thread stacks, per-thread scratch).  tools/memcheck.sh runs valgrind for small leaks.
"""

from __future__ import annotations

import gc
import os
import sys
import threading

import numpy as np
import pytest

import tconv
from tconv import _core

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")

LIMIT = 24 * 2**20


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _workload(rng: np.random.Generator):
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)

    def once() -> None:
        y = tconv.conv_transpose(x, w, b, stride=2, padding=1)         # (2, 4, 24, 24)
        tconv.conv_transpose_backward(y, x, w, stride=2, padding=1)
        c = tconv.conv(y.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
        tconv.conv_backward(c, y.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
        for bad in (lambda: tconv.conv_transpose(x, w, stride=0),        # Python-side error
                    lambda: _core.scatter(x, w, None, y[:, :3].copy(),   # C++-side error
                                          [2, 2], [1, 1], [1, 1], 1)):
            try:
                bad()
            except (ValueError, TypeError):
                pass
    return once


def test_no_growth_over_thousands_of_calls():
    once = _workload(np.random.default_rng(0))
    saved = tconv.get_num_threads()
    try:
        for threads in (1, 2):  # warm up both team sizes: thread stacks, scratch buffers
            tconv.set_num_threads(threads)
            for _ in range(20):
                once()
        before = rss()
        # 1200 x (4 entry points, 2 errors) = 7200 calls; mostly one thread, since a 2-thread
        # fork-join costs milliseconds on a loaded machine
        for i in range(1200):
            tconv.set_num_threads(2 if i % 50 == 0 else 1)
            once()
        grown = rss() - before
    finally:
        tconv.set_num_threads(saved)
    assert grown < LIMIT, f"RSS grew by {grown / 2**20:.1f} MiB over 7200 calls"


def test_no_growth_from_short_lived_threads():
    """Thread pools create and retire threads: each new calling thread gets its own OpenMP
    team and scratch, which must be released when it exits."""
    once = _workload(np.random.default_rng(1))

    def run_in_threads(count: int) -> None:
        for _ in range(count):
            t = threading.Thread(target=once)
            t.start()
            t.join()

    run_in_threads(20)
    before, threads_before = rss(), os_threads()
    run_in_threads(200)
    grown = rss() - before
    assert grown < LIMIT, f"RSS grew by {grown / 2**20:.1f} MiB over 200 short-lived threads"
    # each calling thread's OpenMP team is retired with it, not kept alive
    assert os_threads() <= threads_before + 4, (threads_before, os_threads())


def os_threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def test_results_do_not_keep_inputs_alive():
    """Outputs are fresh arrays: they hold no reference to the inputs (nor the reverse)."""
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((2, 3, 3, 3), np.float32)
    refs = sys.getrefcount(x), sys.getrefcount(w)
    y = tconv.conv_transpose(x, w)
    tconv.conv_transpose_backward(y, x, w)
    assert (sys.getrefcount(x), sys.getrefcount(w)) == refs
    assert y.base is None or y.base is not x


_WORKSPACE_SCRIPT = r"""
import resource, sys
import numpy as np
import tconv

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

rng = np.random.default_rng(0)
# sized so that an im2col-style column buffer (C_out*k*k x input pixels, 16 MiB here) would
# exceed output + allowance (4 + 8 MiB)
x = rng.standard_normal((2, 64, 64, 64)).astype(np.float32)
w = rng.standard_normal((64, 32, 4, 4)).astype(np.float32)
y = np.zeros((2, 32, 128, 128), np.float32)                # conv_transpose(x, stride 2, pad 1)
c = np.zeros_like(x)
results = []
for name, call, out_bytes in [
    ("scatter", lambda: tconv.conv_transpose(x, w, stride=2, padding=1, out=y), 0),
    ("gather", lambda: tconv.conv(y, w, stride=2, padding=1, out=c), 0),
    ("weight_grad", lambda: tconv.conv_transpose_backward(
        y, x, w, stride=2, padding=1, output_mask=(False, True, False)), w.nbytes),
]:
    before = peak()
    call()
    results.append((name, peak() - before, out_bytes, y.nbytes if name == "scatter" else
                    c.nbytes if name == "gather" else w.nbytes))
print(repr(results))
"""


def test_workspace_never_exceeds_the_output():
    """Peak RSS during one call (in a fresh interpreter, outputs preallocated where the API
    allows ``out=``) grows by at most the output's size plus a fixed per-thread allowance
    (8 MiB: packing scratch, thread stacks) -- never by a problem-sized column buffer."""
    import ast
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _WORKSPACE_SCRIPT], capture_output=True,
                          text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    for name, grown, returned, output in ast.literal_eval(proc.stdout.strip().splitlines()[-1]):
        # returned: bytes of result arrays the call allocates itself; workspace <= output
        assert grown <= returned + output + 8 * 2**20, (name, grown, output)
