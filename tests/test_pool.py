"""Large results reuse the memory of earlier ones (python/tconv/_pool.py): only once every
array sharing it is gone, never for a live one, within the byte limit, and with every value
of the new result written."""

from __future__ import annotations

import gc
import os
import sys
import threading

import numpy as np
import pytest

import tconv
from tconv import _pool

BIG = _pool.MIN_BYTES


def address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


@pytest.fixture(autouse=True)
def clean_pool(monkeypatch):
    monkeypatch.delenv("TCONV_OUTPUT_POOL_BYTES", raising=False)
    gc.collect()
    tconv.empty_cache()
    yield
    gc.collect()
    tconv.empty_cache()


def big_layer(dtype=np.float32):
    """A conv_transpose whose result is just above the pooling size."""
    rng = np.random.default_rng(0)
    n = BIG // (4 * 64 * 64 * np.dtype(dtype).itemsize) + 1
    x = rng.standard_normal((n, 4, 32, 32)).astype(dtype)
    w = rng.standard_normal((4, 4, 4, 4)).astype(dtype)
    return x, w, dict(stride=2, padding=1)


def test_small_results_are_plain_arrays():
    a = _pool.new_array((_pool.ALIGN_BYTES // 4 - 1,), np.dtype(np.float32))
    assert a.flags.owndata
    assert tconv.empty_cache() == 0


@pytest.mark.parametrize("nbytes", [_pool.ALIGN_BYTES, _pool.ALIGN_BYTES + 8, BIG - 8, BIG,
                                    2 * BIG + 24])
def test_large_results_are_64_byte_aligned(nbytes):
    for _ in range(3):  # fresh and reused buffers alike
        a = _pool.new_array((nbytes // 8,), np.dtype(np.float64))
        assert address(a) % 64 == 0 and a.nbytes == nbytes and a.flags.c_contiguous
        assert a.flags.writeable and a.flags.aligned
        a[-1] = 1.0  # the whole extent is ours
        del a


def test_reused_only_after_every_view_is_gone():
    a = _pool.new_array((BIG // 8,), np.dtype(np.float64))
    at = address(a)
    views = [a[1:], a.reshape(2, -1).T, a.view(np.uint8)]
    del a
    while views:  # any one view still keeps the memory in use
        b = _pool.new_array((BIG // 8,), np.dtype(np.float64))
        assert address(b) != at
        del b
        views.pop()
    gc.collect()
    c = _pool.new_array((BIG // 8,), np.dtype(np.float64))
    assert address(c) == at


def test_only_the_same_size_is_reused():
    a = _pool.new_array((BIG,), np.dtype(np.uint8))
    at = address(a)
    del a
    b = _pool.new_array((BIG + 64,), np.dtype(np.uint8))
    assert address(b) != at
    c = _pool.new_array((BIG // 4,), np.dtype(np.float32))  # same bytes, other dtype: reused
    assert address(c) == at and c.dtype == np.float32 and c.flags.c_contiguous


def test_reused_memory_is_fully_overwritten():
    x, w, kw = big_layer()
    expected = np.full(tconv.output_shape(x.shape, w.shape, **kw), np.nan, np.float32)
    tconv.conv_transpose(x, w, out=expected, **kw)
    first = tconv.conv_transpose(np.full_like(x, np.nan), w, **kw)  # leaves NaN behind
    at = address(first)
    del first
    again = tconv.conv_transpose(x, w, **kw)
    assert address(again) == at
    np.testing.assert_array_equal(again, expected)


def test_gradients_are_pooled_and_correct():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BIG // (4 * 32 * 32 * 8) + 1, 4, 32, 32))  # just above BIG
    w = rng.standard_normal((4, 4, 4, 4))
    kw = dict(stride=2, padding=1)
    g = np.random.default_rng(1).standard_normal(tconv.output_shape(x.shape, w.shape, **kw))
    gx_expected = tconv.conv(g, w, **kw)  # grad_input of conv_transpose is the gather
    gx = tconv.conv_transpose_backward(g, x, w, **kw, output_mask=(True, False, False))[0]
    assert not gx.flags.owndata  # from the pool
    np.testing.assert_array_equal(gx, gx_expected)


def test_limit_zero_turns_reuse_off(monkeypatch):
    monkeypatch.setenv("TCONV_OUTPUT_POOL_BYTES", "0")
    a = _pool.new_array((BIG,), np.dtype(np.uint8))
    del a
    assert tconv.empty_cache() == 0  # nothing was kept
    assert tconv.empty_cache() == 0


def test_free_buffers_are_trimmed_to_the_limit(monkeypatch):
    monkeypatch.setenv("TCONV_OUTPUT_POOL_BYTES", str(BIG + BIG // 2))  # room for one
    a = _pool.new_array((BIG,), np.dtype(np.uint8))
    b = _pool.new_array((BIG,), np.dtype(np.uint8))
    at_b = address(b)
    del a, b  # two freed, room for one: the least recently freed (a) is dropped
    c = _pool.new_array((BIG,), np.dtype(np.uint8))
    assert address(c) == at_b
    del c
    assert tconv.empty_cache() == BIG + 64  # one buffer (64 bytes of alignment slack)
    assert tconv.empty_cache() == 0
    monkeypatch.setenv("TCONV_OUTPUT_POOL_BYTES", str(BIG - 1))  # a result above the limit
    d = _pool.new_array((BIG,), np.dtype(np.uint8))
    del d
    assert tconv.empty_cache() == 0


def test_threads_never_share_a_live_buffer():
    live: list[list[np.ndarray]] = []  # every worker's last arrays, kept alive to the end
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            mine = []
            for i in range(6):
                a = _pool.new_array((BIG // 4,), np.dtype(np.float32))
                a[::4096] = k * 100 + i  # touch a line per page
                mine.append(a)
                if i % 2:
                    mine.pop(0)
            for a in mine:
                assert np.all(a[::4096] == a[0])
            live.append(mine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    held = [address(a) for group in live for a in group]
    assert len(held) == len(set(held))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_child_of_a_fork_allocates():
    a = _pool.new_array((BIG,), np.dtype(np.uint8))
    del a
    pid = os.fork()
    if pid == 0:  # child: the pool (and its lock) work
        try:
            b = _pool.new_array((BIG,), np.dtype(np.uint8))
            b[:] = 1
            os._exit(0 if int(b[-1]) == 1 else 1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
