"""Reuse of large result buffers between calls.

glibc's ``malloc`` serves blocks above 32 MiB with fresh ``mmap`` pages, so a result of that
size costs the kernel a page fault and a zeroed page per 4 KiB (or 2 MiB) on every call --
as much time as the arithmetic for a float64 or depthwise layer (a 33.5 MB float64 result
ran at 0.4 of the speed it had with the same pages reused).  Smaller blocks are already
reused by ``malloc`` itself.  So results of at least :data:`MIN_BYTES` come from here: each is
a view of a raw buffer that returns to a free list when the last array using its memory is
gone, and the next result of exactly that size takes it.

A buffer is handed out again only after every array that shares its memory (the result and
any view of it) has been destroyed: the result ``y`` is a view of a private 1-D array whose
``base`` is a ``memoryview``, so views of ``y`` keep that array alive and its finaliser runs
only after all of them.  Free buffers are kept up to ``TCONV_OUTPUT_POOL_BYTES`` bytes
(default 1 GiB; 0 turns reuse off), the least recently freed dropped first;
:func:`empty_cache` drops them all.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections import OrderedDict, deque
from typing import Any, Sequence

import numpy as np

from . import _core

__all__ = ["ALIGN_BYTES", "MIN_BYTES", "empty_cache", "new_array"]

#: Results smaller than this come from ``np.empty`` (``malloc`` reuses such blocks itself).
MIN_BYTES = 32 << 20
#: Results of at least this many bytes start on a 64-byte boundary: the GEMM engine streams
#: outputs that large to memory with non-temporal stores, which need whole cache lines
#: (``kStreamBytes`` in csrc/gemm/engine.cpp).
ALIGN_BYTES = 4 << 20
_ALIGN = 64
_DEFAULT_KEEP = 1 << 30


def _keep_limit() -> int:
    text = os.environ.get("TCONV_OUTPUT_POOL_BYTES", "")
    try:
        return max(0, int(text)) if text.strip() else _DEFAULT_KEEP
    except ValueError:
        return _DEFAULT_KEEP


_lock = threading.Lock()
# free raw buffers (1-D uint8 arrays that own their memory), least recently freed first
_free: OrderedDict[int, np.ndarray[Any, Any]] = OrderedDict()
_free_bytes = 0
# buffers whose last array is gone, not yet filed in _free: a finaliser may run inside any
# allocation (a garbage collection), even one made under _lock, so it only appends here
_returned: deque[np.ndarray[Any, Any]] = deque()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _file_returned(limit: int) -> None:
    """Move the returned buffers to the free list and trim it to ``limit`` bytes (under
    _lock)."""
    global _free_bytes
    while _returned:
        raw = _returned.popleft()  # in the order they were freed
        _free[id(raw)] = raw
        _free_bytes += raw.nbytes
    while _free_bytes > limit:
        _, old = _free.popitem(last=False)
        _free_bytes -= old.nbytes


def _take(nbytes: int, limit: int) -> np.ndarray[Any, Any] | None:
    global _free_bytes
    with _lock:
        _file_returned(limit)
        match = [key for key, raw in _free.items() if raw.nbytes == nbytes]
        if not match:
            return None
        raw = _free.pop(match[-1])  # the most recently freed
        _free_bytes -= nbytes
        return raw


def new_array(shape: Sequence[int], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """An uninitialised C-contiguous array, as ``np.empty(shape, dtype)``; of at least
    :data:`ALIGN_BYTES`, 64-byte aligned (a view of a slightly larger buffer); of at least
    :data:`MIN_BYTES`, its memory is reused from an earlier result of the same size."""
    shape = tuple(int(n) for n in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < ALIGN_BYTES:
        return np.empty(shape, dtype=dtype)
    limit = _keep_limit()
    pooled = MIN_BYTES <= nbytes <= limit
    raw = _take(nbytes + _ALIGN, limit) if pooled else None
    if raw is None:
        raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    offset = -int(raw.__array_interface__["data"][0]) % _ALIGN
    # base: a memoryview of raw, not raw, so that views of the result keep `flat` alive
    flat = np.frombuffer(raw.data, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
    if pooled:
        done = weakref.finalize(flat, _returned.append, raw)
        done.atexit = False
    return flat.reshape(shape)


def empty_cache() -> int:
    """Release the memory tconv keeps for reuse between calls; returns how many bytes that was.

    Two kinds are kept.  Results of at least 32 MiB reuse the memory of earlier results of
    the same size once those are gone (a fresh one costs a page fault per page); at most
    ``TCONV_OUTPUT_POOL_BYTES`` bytes (default 1 GiB, 0: no reuse) stay allocated for that.
    And each thread that ran a kernel keeps the scratch blocks (packed panels, partial sums)
    its calls freed, so the next call does not fault their pages in again: at most
    ``TCONV_SCRATCH_CACHE_BYTES`` bytes a thread (default 256 MiB, 0: none), in practice the
    workspace of the largest recent call.
    """
    global _free_bytes
    with _lock:
        _file_returned(_keep_limit())
        released = _free_bytes
        _free.clear()
        _free_bytes = 0
    return released + int(_core.scratch_free_kept())
