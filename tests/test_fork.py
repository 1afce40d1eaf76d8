"""Fork safety: a child forked after tconv ran multi-threaded computes correctly.

libgomp's worker threads do not survive fork(), so a child that opened a parallel region of
two or more threads would wait forever for them.  tconv runs such a child on one thread.
Each scenario runs in a fresh interpreter (so what the parent did before the fork is exactly
what the script does) under a timeout, so a regression fails instead of hanging; the script
itself bounds every wait on a child.  Children's results must equal the parent's bit for bit
(results do not depend on the thread count) and the parent's must match the dense oracle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tconv

PYTHON_DIR = str(Path(tconv.__file__).resolve().parent.parent)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Defines work() (every kernel: forward, gather, both gradients, resize) and check_parent().
COMMON = """
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import tconv
from tconv import reference, resize

rng = np.random.default_rng(7)
# Big enough that every kernel opens a parallel region of two threads.
x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
w = rng.standard_normal((16, 8, 4, 4)).astype(np.float32)
P = dict(stride=2, padding=1)


def work(_=None):
    y = tconv.conv_transpose(x, w, **P)
    back = tconv.conv(y, w, **P)
    gi, gw, gb = tconv.conv_transpose_backward(y, x, w, **P)
    up = resize.upsample(x, 2, "linear")
    rc = tconv.resize_conv(x[:, :8], w[:8, :8], 2)
    arrays = [y, back, gi, gw, gb, up, rc]
    return tconv.get_num_threads(), b"".join(a.tobytes() for a in arrays)


def check_parent():
    y = tconv.conv_transpose(x, w, **P)
    want = reference.conv_transpose(x.astype(np.float64), w.astype(np.float64), **P)
    assert np.allclose(y, want, rtol=1e-4, atol=1e-4), "parent result differs from oracle"


def wait_child(pid, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise SystemExit("child hung")


tconv.set_num_threads(2)
"""


def run_script(body: str, timeout: float = 120) -> str:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (PYTHON_DIR, environ.get("PYTHONPATH")) if p
    )
    code = COMMON + textwrap.dedent(body)
    # Own process group: on a hang, the pool workers it forked are killed with it.
    proc = subprocess.Popen([sys.executable, "-c", code], env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"fork scenario hung (> {timeout} s)")
    assert proc.returncode == 0, out + err
    return out


def test_os_fork_after_multithreaded_use():
    out = run_script("""
        check_parent()
        threads, want = work()
        assert threads == 2
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                n, got = work()
                ok = n == 1 and got == want
                try:
                    tconv.set_num_threads(2)
                    ok = False  # must refuse: two threads would hang here
                except RuntimeError as exc:
                    ok = ok and "fork" in str(exc)
                tconv.set_num_threads(1)
                with tconv.threads(1):
                    ok = ok and work() == (1, want)
                os.write(write, b"ok" if ok else b"bad")
            finally:
                os._exit(0)
        os.close(write)
        assert wait_child(pid) == 0
        print(os.read(read, 16).decode())
    """)
    assert out.strip() == "ok"


def test_grandchild_and_parent_after_fork():
    """The child's own fork works too, and the parent keeps its thread count."""
    out = run_script("""
        threads, want = work()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                work()
                pid2 = os.fork()
                if pid2 == 0:
                    os._exit(0 if work() == (1, want) else 1)
                code = wait_child(pid2)
            finally:
                os._exit(code)
        assert wait_child(pid) == 0
        assert work() == (2, want)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_fork_before_any_multithreaded_use_keeps_threads():
    """A child forked before any kernel ran (no thread pool yet) keeps the thread count."""
    out = run_script("""
        pid = os.fork()
        if pid == 0:
            n, got = work()
            with tconv.threads(1):
                one = work()
            os._exit(0 if n == 2 and one == (1, got) else 1)
        assert wait_child(pid) == 0
        print("ok")
    """)
    assert out.strip() == "ok"


# A fork-context pool of two workers mapping work() over four items into `results`.
POOLS = {
    "multiprocessing.Pool": """
with multiprocessing.get_context("fork").Pool(2) as pool:
    results = pool.map_async(work, range(4)).get(timeout=60)
""",
    "ProcessPoolExecutor": """
with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
    results = list(pool.map(work, range(4), timeout=60))
""",
}


@pytest.mark.parametrize("pool", list(POOLS))
def test_fork_pool(pool):
    out = run_script("check_parent()\nthreads, want = work()\n" + POOLS[pool] + """
assert all(n == 1 and got == want for n, got in results), [n for n, _ in results]
print("ok")
""")
    assert out.strip() == "ok"


@pytest.mark.slow
def test_torch_dataloader_fork_workers():
    """PyTorch DataLoader workers (fork on Linux) calling tconv in __getitem__."""
    pytest.importorskip("torch")
    out = run_script("""
import torch

class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        n, got = work()
        return torch.tensor([n, int(got == want)])

threads, want = work()
loader = torch.utils.data.DataLoader(Data(), batch_size=1, num_workers=2,
                                     multiprocessing_context="fork", timeout=60)
rows = torch.cat(list(loader)).tolist()
assert rows == [[1, 1]] * 4, rows
print("ok")
""")
    assert out.strip() == "ok"
