"""How many OpenMP threads tconv's kernels use.

The count is process-wide: a value set from any Python thread applies to kernels started
from every Python thread (the extension re-applies it on the calling thread before each
kernel, because OpenMP's own setting is per calling thread).  Until it is set, the count is
OpenMP's default, which honours the ``OMP_NUM_THREADS`` environment variable.  Results are
bitwise identical for every thread count; only speed changes.

After ``fork()``: OpenMP's thread pool does not survive it, so a process forked after a
kernel ran on several threads (a fork ``multiprocessing`` pool, ``ProcessPoolExecutor``,
PyTorch ``DataLoader`` workers) runs every kernel on one thread: ``get_num_threads()`` is 1
there and ``set_num_threads(n)`` with ``n > 1`` raises ``RuntimeError``.  Start workers with
the "spawn" or "forkserver" method to give them several threads.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from . import _core

__all__ = ["get_num_threads", "set_num_threads", "threads"]

_lock = threading.Lock()


def get_num_threads() -> int:
    """Number of threads each kernel call uses (``>= 1``)."""
    return int(_core.get_num_threads())


def _check_count(n: object) -> int:
    if isinstance(n, bool):
        raise TypeError(f"n must be an int, got {n!r}")
    try:
        count = operator.index(n)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"n must be an int, got {n!r}") from None
    if count < 1:
        raise ValueError(f"n must be >= 1, got {count}")
    return count


def set_num_threads(n: int) -> None:
    """Set the number of threads every later kernel call uses, process-wide.

    Parameters
    ----------
    n : int
        Thread count, ``>= 1``.  Values above the core count oversubscribe the machine.

    Raises
    ------
    RuntimeError
        If ``n > 1`` in a process forked after tconv ran on several threads (see above).
    """
    _core.set_num_threads(_check_count(n))


@contextmanager
def threads(n: int) -> Iterator[int]:
    """Context manager: kernels use ``n`` threads inside the block, the previous count after.

    >>> with tconv.threads(1):          # doctest: +SKIP
    ...     y = tconv.conv_transpose(x, w)

    The setting is process-wide, so overlapping ``threads`` blocks in several Python threads
    interleave: the last one entered wins until it exits.

    Yields
    ------
    int
        The count in force inside the block.
    """
    count = _check_count(n)
    with _lock:
        previous = get_num_threads()
        _core.set_num_threads(count)
    try:
        yield count
    finally:
        _core.set_num_threads(previous)
