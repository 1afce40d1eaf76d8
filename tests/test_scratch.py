"""Scratch memory kept between calls (csrc/workspace.cpp): the blocks a call frees are reused by
the next, within the per-thread block count and byte limit; `empty_cache` frees them; and no
call reads scratch it did not write (kept blocks are filled with NaN bytes before each call)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tconv
from tconv import _core

KB = 1024


@pytest.fixture(autouse=True)
def no_kept_blocks():
    tconv.empty_cache()
    yield
    tconv.empty_cache()


def granule(nbytes: int) -> int:
    step = 4096 if nbytes >= 64 * KB else 64
    return max(step, -(-nbytes // step) * step)


@pytest.mark.parametrize("nbytes", [1, 63, 64, 65, 64 * KB - 65, 64 * KB - 64, 64 * KB - 1,
                                    64 * KB, 64 * KB + 1, 64 * KB + 4096, 3 * 1024 * KB + 7])
def test_block_sizes(nbytes):
    capacities, kept, kept_then = _core._scratch_cycle([nbytes], [nbytes])
    assert capacities == [granule(nbytes)]
    assert kept == granule(nbytes) and kept_then == 0  # kept, then taken again
    assert _core.scratch_kept_bytes() == granule(nbytes)


@pytest.mark.parametrize("count", [1, 15, 16, 17, 40])
def test_a_thread_keeps_at_most_16_blocks(count):
    _, kept, kept_then = _core._scratch_cycle([4096] * count, [4096])
    assert kept == 4096 * min(count, 16)
    assert kept_then == kept - 4096


@pytest.mark.parametrize("big,small,fits", [
    (4 * 4096, 4096, True),            # exactly 4x: taken
    (4 * 4096, 4096 - 64, False),      # just over 4x: a new block
    (4 * 4096, 4 * 4096, True),
    (4 * 4096, 4 * 4096 + 1, False),   # larger than the block
    (64 * KB, 16 * KB, True),
    (64 * KB, 16 * KB - 64, False),
])
def test_a_small_request_never_takes_a_much_larger_block(big, small, fits):
    _, kept, kept_then = _core._scratch_cycle([big], [small])
    assert kept == big and kept_then == (0 if fits else big)


def test_the_smallest_fitting_block_is_taken():
    _, kept, kept_then = _core._scratch_cycle([4 * 4096, 2 * 4096], [2 * 4096])
    assert kept == 6 * 4096 and kept_then == 4 * 4096
    _, kept, kept_then = _core._scratch_cycle([2 * 4096, 4 * 4096], [4096])
    assert kept == 6 * 4096 and kept_then == 4 * 4096


LIMIT_SCRIPT = """
from tconv import _core
cases = [([8192], [8192]), ([8193], [8193]), ([4096] * 3, [4096] * 3), ([64], [64])]
for first, second in cases:
    _core.scratch_free_kept()
    _, kept, kept_then = _core._scratch_cycle(first, second)
    print(kept, kept_then)
"""


@pytest.mark.parametrize("limit,expected", [
    ("8192", ["8192 0", "0 0", "8192 0", "64 0"]),   # at the limit, just over, oldest dropped
    ("8191", ["0 0", "0 0", "4096 0", "64 0"]),
    ("0", ["0 0", "0 0", "0 0", "0 0"]),              # nothing kept
    ("junk", ["8192 0", "8256 0", "12288 0", "64 0"]),  # unreadable: the 256 MiB default
])
def test_byte_limit_per_thread(limit, expected):
    env = dict(os.environ, TCONV_SCRATCH_CACHE_BYTES=limit)
    out = subprocess.run([sys.executable, "-c", LIMIT_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split("\n")
    assert out[:4] == expected


def layers():
    """One call of every algorithm family, float32 and float64 (the planner's choices)."""
    rng = np.random.default_rng(7)
    shapes = [
        ((2, 8, 9, 9), (8, 6, 4, 4), dict(stride=2, padding=1)),              # sub-convolutions
        ((40, 16, 4, 4), (16, 8, 4, 4), dict(stride=2, padding=1)),           # batch-inner
        ((2, 24, 16, 16), (24, 20, 1, 1), dict()),                            # GEMM engine
        ((2, 8, 10, 10), (8, 12, 2, 2), dict(stride=2)),                      # phase GEMM
        ((2, 16, 12, 12), (16, 1, 4, 4), dict(stride=2, padding=1, groups=16)),  # depthwise
        ((2, 8, 11, 11), (8, 8, 3, 3), dict(padding=1)),                      # stride 1
    ]
    for dtype in (np.float32, np.float64):
        for xs, ws, kw in shapes:
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            yield x, w, kw


def every_pass(x, w, kw):
    y = tconv.conv_transpose(x, w, **kw)
    g = np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape)
    return [y, *tconv.conv_transpose_backward(g, x, w, **kw, output_mask=(True, True, True))]


@pytest.mark.parametrize("threads", [1, 2])
def test_no_call_reads_scratch_it_did_not_write(threads):
    with tconv.threads(threads):
        for x, w, kw in layers():
            fresh = every_pass(x, w, kw)          # blocks freshly allocated (or kept: any)
            assert _core.scratch_kept_bytes() > 0
            _core._scratch_fill_kept(0xFF)        # NaN in every float32 / float64 slot
            again = every_pass(x, w, kw)          # reads only what it wrote
            for a, b in zip(fresh, again):
                np.testing.assert_array_equal(a, b)
                assert not np.isnan(b).any()


def test_empty_cache_frees_every_threads_blocks():
    x, w, kw = next(layers())
    with tconv.threads(2):
        every_pass(x, w, kw)
    kept = _core.scratch_kept_bytes()
    assert kept > 0
    assert tconv.empty_cache() >= kept
    assert _core.scratch_kept_bytes() == 0
    assert tconv.empty_cache() == 0


def test_results_do_not_depend_on_keeping():
    script = ("import numpy as np, tconv, hashlib\n"
              "from test_scratch import layers, every_pass\n"
              "h = hashlib.sha256()\n"
              "with tconv.threads(2):\n"
              "    for x, w, kw in layers():\n"
              "        for _ in range(2):\n"
              "            for a in every_pass(x, w, kw): h.update(a.tobytes())\n"
              "print(h.hexdigest())\n")
    digests = set()
    for limit in ("0", "268435456"):
        env = dict(os.environ, TCONV_SCRATCH_CACHE_BYTES=limit,
                   PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                               os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_calls_and_empty_cache_from_many_threads():
    items = list(layers())[:6]
    expected = [every_pass(x, w, kw) for x, w, kw in items]
    errors: list[BaseException] = []
    done = threading.Event()

    def caller(k: int) -> None:
        try:
            for r in range(4):
                i = (k + r) % len(items)
                for a, b in zip(expected[i], every_pass(*items[i])):
                    np.testing.assert_array_equal(a, b)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def emptier() -> None:
        while not done.is_set():
            tconv.empty_cache()
            _core._scratch_fill_kept(0xFF)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    sweeper = threading.Thread(target=emptier)
    sweeper.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    done.set()
    sweeper.join(timeout=60)
    assert not errors, errors[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_another_thread_uses_scratch():
    x, w, kw = next(layers())
    expected = tconv.conv_transpose(x, w, **kw)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            _core._scratch_cycle([4096] * 20, [4096] * 20)
            tconv.empty_cache()

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:  # child: its locks must all be free
                code = 1
                try:
                    tconv.empty_cache()
                    ok = np.array_equal(tconv.conv_transpose(x, w, **kw), expected)
                    code = 0 if ok else 2
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 120
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    pytest.fail("a child forked beside a scratch user hung")
                time.sleep(0.01)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        t.join()
