"""Non-zero padding modes and their adjoints (the "fold").

``pad_m`` extends every spatial dim of an array by ``(lo, hi)`` elements whose values are
copies of interior elements, chosen by the mode ``m``; with ``n`` elements along the dim, the
padded position ``j`` in ``[-lo, n + hi)`` reads element

=============  ============================================  =================================
mode           source of position j (outside [0, n))         allowed padding
=============  ============================================  =================================
``circular``   ``j mod n``  (periodic)                        ``lo, hi <= n``  (as PyTorch)
``reflect``    ``-j`` below, ``2(n-1) - j`` above (no edge    ``lo, hi <= n - 1``
               repeat, like ``numpy.pad(mode="reflect")``)
``replicate``  ``clamp(j, 0, n-1)``  (edge value)             any
=============  ============================================  =================================

``pad_m`` is linear, a 0/1 matrix ``P_m`` of shape ``(n + lo + hi, n)`` per dim.  Its adjoint
``P_m^T`` -- :func:`fold` -- keeps the interior and adds each border element back onto the
element it was copied from.  tconv's padded convolution is ``C_m = C_0 P_m`` (``C_0`` = the
convolution with padding 0 on the padded grid), so the transposed convolution with that mode is
``C_m^T = P_m^T C_0^T``: the full, unpadded transposed conv folded back onto the output grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")

Array = npt.NDArray[Any]


def check_padding_mode(mode: object) -> str:
    """The mode, validated (``ValueError`` naming ``padding_mode`` otherwise)."""
    if not isinstance(mode, str) or mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}; got {mode!r}")
    return mode


def check_mode_padding(
    mode: str, sizes: Sequence[int], padding: Sequence[tuple[int, int]]
) -> None:
    """Check each dim's (lo, hi) padding is allowed for ``mode`` on an ``n``-element dim."""
    for axis, (n, (lo, hi)) in enumerate(zip(sizes, padding)):
        if mode == "reflect" and max(lo, hi) > n - 1:
            raise ValueError(
                f"padding_mode='reflect' needs padding < size in every dim; spatial dim {axis} "
                f"has size {n} and padding {(lo, hi)}"
            )
        if mode == "circular" and max(lo, hi) > n:
            raise ValueError(
                f"padding_mode='circular' wraps at most once: padding must be <= size in every "
                f"dim; spatial dim {axis} has size {n} and padding {(lo, hi)}"
            )


def source_index(n: int, lo: int, hi: int, mode: str) -> npt.NDArray[np.intp]:
    """For each of the ``n + lo + hi`` padded positions, the element it copies (mode != zeros)."""
    j = np.arange(-lo, n + hi)
    if mode == "circular":
        return np.mod(j, n)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "reflect":
        return np.where(j < 0, -j, np.where(j >= n, 2 * (n - 1) - j, j))
    raise ValueError(f"no source index for padding_mode {mode!r}")


def pad(x: Array, padding: Sequence[tuple[int, int]], mode: str) -> Array:
    """``pad_m(x)`` over the trailing ``len(padding)`` (spatial) axes; a new C-contiguous array."""
    nd = len(padding)
    out = x
    for axis, (lo, hi) in enumerate(padding):
        if lo or hi:
            ax = x.ndim - nd + axis
            out = np.take(out, source_index(out.shape[ax], lo, hi, mode), axis=ax)
    return np.ascontiguousarray(out)


def fold(y: Array, padding: Sequence[tuple[int, int]], mode: str) -> Array:
    """``P_m^T y``: the adjoint of :func:`pad`, from the padded grid back to the unpadded one.

    Per axis, every border slice is added onto the interior slice it copies (in position order,
    so the result is deterministic), then the view narrows to the interior.  Works IN PLACE:
    ``y`` (a temporary of the caller's) is consumed and the result is a strided view into it.
    Border slices never alias interior ones (a source index lies in ``[0, n)``), so the in-place
    adds are exact.
    """
    nd = len(padding)
    view = y
    for axis, (lo, hi) in enumerate(padding):
        if not (lo or hi):
            continue
        ax = y.ndim - nd + axis
        moved = np.moveaxis(view, ax, 0)
        n = moved.shape[0] - lo - hi
        src = source_index(n, lo, hi, mode)
        for j in (*range(lo), *range(lo + n, lo + n + hi)):
            moved[lo + src[j]] += moved[j]
        view = np.moveaxis(moved[lo:lo + n], 0, ax)
    return view
