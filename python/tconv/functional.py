"""Transposed convolution and its adjoint, computed by tconv's C++ kernels.

Shapes (``*s`` = 1, 2 or 3 spatial dims, taken from ``input.ndim - 2``):

==================  =====================================  ======================================
op                  input / weight                         output
==================  =====================================  ======================================
conv_transpose      x (N, C_in, *i), w (C_in, C_out/g, *k)  (N, C_out, *o), o = (i-1)s - 2p + d(k-1) + op + 1
conv                y (N, C_in, *i), w (C_out, C_in/g, *k)  (N, C_out, *o), o = floor((i + 2p - d(k-1) - 1)/s) + 1
==================  =====================================  ======================================

As matrices (see :mod:`tconv.reference`): ``conv(y) = C y`` and ``conv_transpose(x) = C^T x``
for the same weight, so each is the other's adjoint and the other's gradient.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _core
from ._args import (
    FloatArray,
    Geometry,
    IntOrTuple,
    PaddingArg,
    as_float_array,
    check_bias,
    check_same_dtype,
    check_shape,
    contiguous,
    conv_geometry,
    int_tuple,
    output_array,
    spatial_ndim,
    transposed_geometry,
)

__all__ = [
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv",
    "conv_transpose_backward",
    "conv_backward",
    "output_shape",
]


def _arrays(
    input: object, weight: object, bias: object
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    x = as_float_array(input, "input")
    w = as_float_array(weight, "weight")
    b = None if bias is None else as_float_array(bias, "bias")
    check_same_dtype(x, "input", weight=w, bias=b)
    return x, w, b


def _output_padding_for_size(
    input: FloatArray,
    weight: FloatArray,
    output_size: Sequence[int],
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
) -> tuple[int, ...]:
    """output_padding that makes conv_transpose produce ``output_size`` (PyTorch's rule)."""
    nd = spatial_ndim(input.shape, "input")
    if not isinstance(output_size, (list, tuple, np.ndarray)):
        raise TypeError(f"output_size must be a sequence of ints, got {output_size!r}")
    size = list(int_tuple(output_size, len(output_size), "output_size", 1))
    if len(size) == nd + 2:
        size = size[2:]
    if len(size) != nd:
        raise ValueError(
            f"output_size must have {nd} (or {nd + 2}) entries for {nd}-D input, got {output_size}"
        )
    base = transposed_geometry(input.shape, weight.shape, stride, padding, 0, groups, dilation)
    op = tuple(want - got for want, got in zip(size, base.fine))
    for i, extra in enumerate(op):
        limit = max(base.stride[i], base.dilation[i])
        if not 0 <= extra < limit:
            lo, hi = base.fine[i], base.fine[i] + limit - 1
            raise ValueError(
                f"output_size {tuple(size)} is not reachable: spatial dim {i} must lie in "
                f"[{lo}, {hi}] for this input, stride, padding and dilation"
            )
    return op


def conv_transpose(
    input: object,
    weight: object,
    bias: object = None,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    *,
    output_size: Sequence[int] | None = None,
    out: FloatArray | None = None,
) -> FloatArray:
    """Transposed convolution ``y = C^T x`` (scatter-add), 1-D, 2-D or 3-D.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *i)
        float32 or float64.
    weight : array_like, shape (C_in, C_out/groups, *k)
        PyTorch's ConvTranspose layout.
    bias : array_like, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of one int per spatial dim
        Output size per dim: ``(i - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
        ``padding`` may also be one ``(low, high)`` pair per dim.
        ``0 <= output_padding < max(stride, dilation)``.
    groups : int
        Divides both C_in and C_out.
    output_size : sequence of int, optional
        Desired spatial (or full) output size; picks ``output_padding`` as PyTorch does.
    out : ndarray, optional
        C-contiguous array of the output shape and dtype to write into.

    Returns
    -------
    ndarray, shape (N, C_out, *o), the input's dtype.
    """
    x, w, b = _arrays(input, weight, bias)
    if output_size is not None:
        output_padding = _output_padding_for_size(x, w, output_size, stride, padding, dilation, groups)
    geom = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups, dilation)
    check_bias(b, geom.fine_channels)
    y = output_array(out, geom.fine_shape, x.dtype, [a for a in (x, w, b) if a is not None])
    _core.scatter(contiguous(x), contiguous(w), None if b is None else contiguous(b), y,
                  *geom.kernel_args())
    return y


def _conv_transpose_nd(nd: int):  # type: ignore[no-untyped-def]
    def op(
        input: object,
        weight: object,
        bias: object = None,
        stride: IntOrTuple = 1,
        padding: PaddingArg = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        dilation: IntOrTuple = 1,
        *,
        output_size: Sequence[int] | None = None,
        out: FloatArray | None = None,
    ) -> FloatArray:
        spatial_ndim(np.shape(as_float_array(input, "input")), "input", nd)
        return conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                              dilation, output_size=output_size, out=out)

    op.__name__ = op.__qualname__ = f"conv_transpose{nd}d"
    op.__doc__ = f"{nd}-D :func:`conv_transpose`: input must be {nd + 2}-D (N, C_in, *{nd} dims)."
    return op


conv_transpose1d = _conv_transpose_nd(1)
conv_transpose2d = _conv_transpose_nd(2)
conv_transpose3d = _conv_transpose_nd(3)


def conv(
    input: object,
    weight: object,
    bias: object = None,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    *,
    out: FloatArray | None = None,
) -> FloatArray:
    """Ordinary (cross-correlation) convolution ``y = C x`` as a gather; the adjoint of
    :func:`conv_transpose` for the same weight.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *i)
    weight : array_like, shape (C_out, C_in/groups, *k)
    bias : array_like, shape (C_out,), optional
    stride, padding, dilation : int or tuple
        Output size per dim: ``floor((i + 2*padding - dilation*(k - 1) - 1) / stride) + 1``.
    groups : int
    out : ndarray, optional

    Returns
    -------
    ndarray, shape (N, C_out, *o)
    """
    y, w, b = _arrays(input, weight, bias)
    geom = conv_geometry(y.shape, w.shape, stride, padding, dilation, groups)
    check_bias(b, geom.coarse_channels)
    x = output_array(out, geom.coarse_shape, y.dtype, [a for a in (y, w, b) if a is not None])
    _core.gather(contiguous(y), contiguous(w), None if b is None else contiguous(b), x,
                 *geom.kernel_args())
    return x


def _mask(output_mask: Sequence[bool]) -> tuple[bool, bool, bool]:
    if not isinstance(output_mask, (list, tuple, np.ndarray)) or not all(
        isinstance(m, (bool, np.bool_)) or (isinstance(m, (int, np.integer)) and m in (0, 1))
        for m in output_mask
    ):
        raise TypeError(f"output_mask must be a sequence of 3 bools, got {output_mask!r}")
    mask = tuple(bool(m) for m in output_mask)
    if len(mask) != 3:
        raise ValueError(f"output_mask must have 3 entries, got {output_mask!r}")
    return mask[0], mask[1], mask[2]


def _grad_bias(grad: FloatArray) -> FloatArray:
    axes = (0,) + tuple(range(2, grad.ndim))
    return np.ascontiguousarray(grad.sum(axis=axes, dtype=grad.dtype))


def conv_transpose_backward(
    grad_output: object,
    input: object,
    weight: object,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of :func:`conv_transpose`.

    Returns ``(grad_input, grad_weight, grad_bias)`` with ``None`` where ``output_mask`` is
    False.  ``grad_input = C g`` is an ordinary strided convolution of ``grad_output`` (the
    gather kernel); ``grad_weight[c, f, k] = sum_{n,i} x[n,c,i] g[n,f,i*s - p + k*d]``;
    ``grad_bias = g.sum over (N, *spatial)``.
    """
    want_input, want_weight, want_bias = _mask(output_mask)
    x, w, _ = _arrays(input, weight, None)
    g = as_float_array(grad_output, "grad_output")
    check_same_dtype(x, "input", grad_output=g)
    geom = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups, dilation)
    check_shape(g, geom.fine_shape, "grad_output")
    g = contiguous(g)
    return _backward_pair(geom, fine=g, coarse=x, w=w, fine_is_grad=True,
                          want=(want_input, want_weight, want_bias))


def conv_backward(
    grad_output: object,
    input: object,
    weight: object,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of :func:`conv`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_input = C^T g`` is a transposed convolution of ``grad_output`` (the scatter kernel)
    cropped to the input's size; ``grad_weight[c, f, k] = sum_{n,i} g[n,c,i] y[n,f,i*s-p+k*d]``.
    """
    want_input, want_weight, want_bias = _mask(output_mask)
    y, w, _ = _arrays(input, weight, None)
    g = as_float_array(grad_output, "grad_output")
    check_same_dtype(y, "input", grad_output=g)
    geom = conv_geometry(y.shape, w.shape, stride, padding, dilation, groups)
    check_shape(g, geom.coarse_shape, "grad_output")
    return _backward_pair(geom, fine=y, coarse=g, w=w, fine_is_grad=False,
                          want=(want_input, want_weight, want_bias))


def _backward_pair(
    geom: Geometry,
    fine: FloatArray,
    coarse: FloatArray,
    w: FloatArray,
    fine_is_grad: bool,
    want: tuple[bool, bool, bool],
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Shared body of both backwards: one side is the gradient, the other the saved input."""
    fine, coarse, w = contiguous(fine), contiguous(coarse), contiguous(w)
    args = geom.kernel_args()
    grad_input = grad_weight = grad_bias = None
    if want[0]:
        if fine_is_grad:  # conv_transpose: grad_input = C g, a gather onto the coarse side
            grad_input = np.empty(geom.coarse_shape, dtype=fine.dtype)
            _core.gather(fine, w, None, grad_input, *args)
        else:  # conv: grad_input = C^T g, a scatter onto the fine side
            grad_input = np.empty(geom.fine_shape, dtype=fine.dtype)
            _core.scatter(coarse, w, None, grad_input, *args)
    if want[1]:
        grad_weight = np.empty(geom.weight_shape, dtype=fine.dtype)
        _core.weight_grad(coarse, fine, grad_weight, *args)
    if want[2]:
        grad_bias = _grad_bias(fine if fine_is_grad else coarse)
    return grad_input, grad_weight, grad_bias


def output_shape(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> tuple[int, ...]:
    """Full output shape ``(N, C_out, *o)`` of :func:`conv_transpose`, with per dim
    ``o = (i - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.

    ``weight_shape`` is (C_in, C_out/groups, *k); ``groups`` scales C_out.
    """
    for name, shape in (("input_shape", input_shape), ("weight_shape", weight_shape)):
        if not isinstance(shape, (list, tuple, np.ndarray)):
            raise TypeError(f"{name} must be a sequence of ints, got {shape!r}")
    shape_in = int_tuple(tuple(input_shape), len(input_shape), "input_shape", 0)
    shape_w = int_tuple(tuple(weight_shape), len(weight_shape), "weight_shape", 0)
    return transposed_geometry(shape_in, shape_w, stride, padding, output_padding, groups,
                               dilation).fine_shape
