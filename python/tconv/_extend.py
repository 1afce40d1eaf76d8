"""Per-side padding pairs that may be negative, around the C++ kernels.

The kernels take padding ``>= 0``.  A negative side generalises it the way XLA's padding does:

* ``conv_transpose``: the output is the window ``[lo, full - hi + output_padding)`` of the full
  (unpadded) transposed conv, zeros outside ``[0, full)``; a negative ``lo``/``hi`` extends the
  output with zeros on that side (``lo > 0`` still crops).
* ``conv``: the input padded by ``lo``/``hi`` where a negative amount crops the input instead,
  i.e. ``padded[j] = y[j - lo]`` (zero outside ``y``) for ``j`` in ``[0, n + lo + hi)``.

With the same pairs the two are each other's adjoint.  Here each runs the kernel only on the
part that meets real data (a window cropped to ``[0, full)``, or the input cropped to what
the padding keeps) and writes zeros around it, so the kernels never see a negative padding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from . import _core
from ._args import (
    FloatArray,
    Geometry,
    check_element_count,
    check_index_range,
    contiguous,
    conv_geometry,
    conv_sizes,
    int_tuple,
    padding_pairs,
    padding_string,
    transposed_geometry,
    transposed_sizes,
)

Pairs = tuple[tuple[int, int], ...]


def negative_pairs(padding: object, nd: int) -> Pairs | None:
    """The padding pairs when some side is negative; None otherwise (the ordinary path, which
    also reports any malformed padding)."""
    if padding_string(padding) is not None:
        return None
    try:
        pairs = padding_pairs(padding, nd, allow_negative=True)
    except (TypeError, ValueError):
        return None
    return pairs if any(lo < 0 or hi < 0 for lo, hi in pairs) else None


def _refuse_mode(mode: str) -> None:
    if mode != "zeros":
        raise ValueError(
            f"negative padding (zero extension / cropping) needs padding_mode='zeros', got "
            f"{mode!r}"
        )


@dataclasses.dataclass(frozen=True)
class Window:
    """Where the kernel's result sits in the whole result.

    ``geom`` is the kernel's geometry on the part that meets data (None when nothing does);
    ``shape`` is the whole result's shape (the transposed conv's output, or the conv's
    input); ``where`` the spatial slices of ``shape`` that ``geom``'s fine side covers."""

    geom: Geometry | None
    shape: tuple[int, ...]
    where: tuple[slice, ...]
    out_shape: tuple[int, ...]  # the op's output shape (== shape for conv_transpose)

    @property
    def index(self) -> tuple[slice, ...]:
        return (slice(None), slice(None), *self.where)


def transposed_window(x_shape: Sequence[int], w_shape: Sequence[int], stride: object,
                      pairs: Pairs, output_padding: object, groups: object,
                      dilation: object) -> Window:
    full_geom = transposed_geometry(x_shape, w_shape, stride, 0, 0, groups, dilation)
    op = int_tuple(output_padding, full_geom.ndim, "output_padding", 0)
    sizes = transposed_sizes(full_geom.coarse, full_geom.kernel, full_geom.stride, pairs,
                             full_geom.dilation, op)
    kept, where, pads = [], [], []
    for (lo, _), size, full in zip(pairs, sizes, full_geom.fine):
        a0, a1 = max(lo, 0), min(lo + size, full)
        kept.append(a1 - a0)
        where.append(slice(a0 - lo, a1 - lo))
        pads.append((a0, full - a1))
    shape = (full_geom.batch, full_geom.fine_channels, *sizes)
    check_element_count(shape, "output")
    geom = None
    if min(kept) > 0:
        geom = dataclasses.replace(full_geom, fine=tuple(kept), padding=tuple(pads))
        check_index_range(geom)
    return Window(geom, shape, tuple(where), shape)


def conv_window(y_shape: Sequence[int], w_shape: Sequence[int], stride: object, pairs: Pairs,
                dilation: object, groups: object) -> Window:
    y_shape = tuple(int(v) for v in y_shape)
    nd = len(y_shape) - 2
    # channels, groups, stride and dilation checked once on an input the kernel surely fits
    # (a malformed argument is reported by the same checks as without negative padding)
    try:
        dil = int_tuple(dilation, nd, "dilation", 1)
        fits = tuple(di * (int(k) - 1) + 1 for di, k in zip(dil, w_shape[2:]))
    except (TypeError, ValueError):
        fits = y_shape[2:]
    probe = conv_geometry((*y_shape[:2], *fits), w_shape, stride, 0, dilation, groups)
    out = conv_sizes(y_shape[2:], probe.kernel, probe.stride, pairs, probe.dilation)
    crop, pads = [], []
    for n, (lo, hi) in zip(y_shape[2:], pairs):
        c0, c1 = max(-lo, 0), min(n, n + hi)
        crop.append(slice(c0, max(c1, c0)))
        pads.append((max(lo, 0), max(hi, 0)))
    out_shape = (probe.batch, probe.coarse_channels, *out)
    check_element_count(out_shape, "output")
    geom = None
    kept = [sl.stop - sl.start for sl in crop]
    if min(kept) > 0:
        geom = conv_geometry((*y_shape[:2], *kept), w_shape, stride, tuple(pads), dilation,
                             groups)
        assert geom.coarse == out
    return Window(geom, y_shape, tuple(crop), out_shape)


def _add_bias(y: FloatArray, b: FloatArray | None) -> None:
    if b is not None:
        y += b.reshape(-1, *([1] * (y.ndim - 2)))


def conv_transpose(x: FloatArray, w: FloatArray, b: FloatArray | None, win: Window,
                   y: FloatArray) -> FloatArray:
    y.fill(0)
    if win.geom is not None:
        part = np.empty(win.geom.fine_shape, dtype=x.dtype)
        _core.scatter(contiguous(x), contiguous(w), None, part, *win.geom.kernel_args())
        y[win.index] = part
    _add_bias(y, b)
    return y


def conv(y: FloatArray, w: FloatArray, b: FloatArray | None, win: Window,
         x: FloatArray) -> FloatArray:
    if win.geom is None:
        x.fill(0)
        _add_bias(x, b)
        return x
    part = contiguous(np.ascontiguousarray(y[win.index]))
    _core.gather(part, contiguous(w), None if b is None else contiguous(b), x,
                 *win.geom.kernel_args())
    return x


def _grad_bias(grad: FloatArray) -> FloatArray:
    axes = (0,) + tuple(range(2, grad.ndim))
    return np.ascontiguousarray(grad.sum(axis=axes, dtype=grad.dtype))


Grads = tuple[FloatArray | None, FloatArray | None, FloatArray | None]


def backward(coarse: FloatArray, fine: FloatArray, w: FloatArray, win: Window,
             want: tuple[bool, bool, bool], fine_is_grad: bool) -> Grads:
    """Both backwards.  The fine side (the transposed conv's output, the conv's input) meets
    the kernels only through the window: the zero extension has no inputs, the cropped-away
    input gets zero gradient."""
    coarse, w = contiguous(coarse), contiguous(w)
    grad_input = None
    if want[0]:
        grad_input = np.zeros(coarse.shape if fine_is_grad else fine.shape, dtype=fine.dtype)
    grad_weight = np.zeros(w.shape, dtype=fine.dtype) if want[1] else None
    if win.geom is not None:
        args = win.geom.kernel_args()
        part = np.ascontiguousarray(fine[win.index])
        if grad_input is not None and fine_is_grad:  # conv_transpose: C g, onto the input
            _core.gather(part, w, None, grad_input, *args)
        elif grad_input is not None:  # conv: C^T g, onto the kept part of the input
            scattered = np.empty(win.geom.fine_shape, dtype=fine.dtype)
            _core.scatter(coarse, w, None, scattered, *args)
            grad_input[win.index] = scattered
        if grad_weight is not None:
            _core.weight_grad(coarse, part, grad_weight, *args)
    grad_bias = _grad_bias(fine if fine_is_grad else coarse) if want[2] else None
    return grad_input, grad_weight, grad_bias
