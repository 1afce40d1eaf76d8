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

import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, Sequence

import numpy as np

from . import _core, _extend, _padmode, _pool
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
    float_arrays,
    int_tuple,
    output_array,
    output_mask_triple,
    padding_string,
    resolve_output_size,
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


@contextmanager
def _no_partial_out(out: FloatArray | None) -> Iterator[None]:
    """A kernel interrupted by Ctrl-C (or any exception raised by a signal handler) leaves its
    output partly written: a user's ``out`` is then filled with NaN before the exception
    propagates, so that no partial result can pass for one."""
    try:
        yield
    except BaseException:
        if out is not None:
            out.fill(np.nan)
        raise


#: The algorithms of :func:`conv_transpose`, :func:`conv` and the grad_input of
#: :func:`conv_transpose_backward` (``algorithm=``; docs/winograd.md).
ALGORITHMS: tuple[str, ...] = ("direct", "winograd", "winograd4", "auto")


def _check_algorithm(algorithm: object) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, "
                         f"got {algorithm!r}")
    return algorithm


def _unpadded(geom: Geometry) -> Geometry:
    """The same problem on the padded fine grid with padding 0: ``C_0`` of ``C_m = C_0 P_m``."""
    return dataclasses.replace(
        geom,
        fine=tuple(n + lo + hi for n, (lo, hi) in zip(geom.fine, geom.padding)),
        padding=((0, 0),) * geom.ndim,
    )


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
    padding_mode: str = "zeros",
    algorithm: str = "direct",
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
        ``0 <= output_padding < max(stride, dilation)``.  ``padding`` may also be one
        ``(low, high)`` pair per dim (``lo + hi`` replaces ``2*padding``; a negative side
        extends the output with that many zeros, ``padding_mode="zeros"`` only), or a string as in
        TensorFlow/Keras/JAX: ``"same"`` gives ``o = i*stride``, cropping
        ``total = dilation*(k - 1) + 1 - stride`` elements as ``lo = total // 2`` at the start
        and the rest (the odd one) at the end; when ``total < 0`` nothing is cropped and
        ``-total`` zeros are appended.  ``"valid"`` crops nothing:
        ``o = i*stride + max(dilation*(k - 1) + 1 - stride, 0)``.  With a string, ``output_size``
        picks another size as ``tf.nn.conv_transpose(output_shape=...)`` does.
    groups : int
        Divides both C_in and C_out.
    output_size : sequence of int, optional
        Desired spatial (or full) output size; picks ``output_padding`` as PyTorch does.
    out : ndarray, optional
        C-contiguous array of the output shape and dtype to write into.  If the call is
        interrupted (Ctrl-C), it holds only NaN.
    padding_mode : {"zeros", "circular", "reflect", "replicate"}
        The adjoint of :func:`conv` with that ``padding_mode``: ``C_m^T = P_m^T C_0^T`` with
        ``P_m`` the padding operator (see ``docs/padding.md``): the unpadded transposed conv,
        whose border (the part ``padding`` would crop) is folded back -- wrapped periodically
        for "circular", mirrored for "reflect", added onto the edge for "replicate".
    algorithm : {"direct", "winograd", "winograd4", "auto"}
        How the forward multiplies (``docs/winograd.md``).  "direct" (the default) forms
        every product of the definition.  "winograd" runs Winograd F(2x2, r) tiles and
        "winograd4" F(4x4, r) tiles on each stride phase -- fewer multiplications, a larger
        (bounded) rounding error -- for 2-D problems with dilation 1 whose every phase has 2
        or 3 taps per axis (k3 s1, k4 s2, k5 s2, ...); any other problem, Inf/NaN data and
        negative padding run "direct".  "auto" is the planner's choice, "direct" for now:
        no Winograd transform met the error criterion for being chosen by default.
        ``tconv.plan("conv_transpose", ..., algorithm=...)`` reports what runs.

    Returns
    -------
    ndarray, shape (N, C_out, *o), the input's dtype.
    """
    algo = _check_algorithm(algorithm)
    x, w, b = float_arrays(input, weight, bias)
    mode = _padmode.check_padding_mode(padding_mode)
    if output_size is not None:
        padding, output_padding = resolve_output_size(
            x.shape, w.shape, output_size, stride, padding, output_padding, groups, dilation)
    negative = _extend.negative_pairs(padding, x.ndim - 2)
    if negative is not None:
        _extend._refuse_mode(mode)
        win = _extend.transposed_window(x.shape, w.shape, stride, negative, output_padding,
                                        groups, dilation)
        check_bias(b, win.shape[1])
        y = output_array(out, win.shape, x.dtype, [a for a in (x, w, b) if a is not None])
        return _extend.conv_transpose(x, w, b, win, y)
    geom = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups,
                               dilation)
    check_bias(b, geom.fine_channels)
    y = output_array(out, geom.fine_shape, x.dtype, [a for a in (x, w, b) if a is not None])
    if mode == "zeros":
        with _no_partial_out(None if out is None else y):
            _core.scatter(contiguous(x), contiguous(w), None if b is None else contiguous(b), y,
                          *geom.kernel_args(), algo)
        return y
    # C_m^T x = P_m^T (C_0^T x): the unpadded scatter, then the border folded back (bias after,
    # so that it is added once per output element).
    _padmode.check_mode_padding(mode, geom.fine, geom.padding)
    full = _unpadded(geom)
    y_full = np.empty(full.fine_shape, dtype=x.dtype)
    with _no_partial_out(None if out is None else y):
        _core.scatter(contiguous(x), contiguous(w), None, y_full, *full.kernel_args(), algo)
    np.copyto(y, _padmode.fold(y_full, geom.padding, mode))
    if b is not None:
        y += b.reshape(-1, *([1] * geom.ndim))
    return y


_P = ParamSpec("_P")


def _fixed_ndim(nd: int, impl: Callable[_P, FloatArray]) -> Callable[_P, FloatArray]:
    """``impl`` for ``nd`` spatial dims only: the same signature, taken from ``impl`` itself
    (for type checkers through the ParamSpec, at run time through ``__wrapped__``), so that the
    1-D/2-D/3-D wrappers cannot drift from it; the input's rank is checked first."""

    @functools.wraps(impl)
    def op(*args: _P.args, **kwargs: _P.kwargs) -> FloatArray:
        input = args[0] if args else kwargs.get("input")
        spatial_ndim(np.shape(as_float_array(input, "input")), "input", nd)
        return impl(*args, **kwargs)

    op.__name__ = op.__qualname__ = f"{impl.__name__}{nd}d"
    op.__doc__ = (f"{nd}-D :func:`{impl.__name__}`: input must be {nd + 2}-D "
                  f"(N, C_in, *{nd} dims); otherwise the same arguments.")
    return op


conv_transpose1d = _fixed_ndim(1, conv_transpose)
conv_transpose2d = _fixed_ndim(2, conv_transpose)
conv_transpose3d = _fixed_ndim(3, conv_transpose)


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
    padding_mode: str = "zeros",
    algorithm: str = "direct",
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
        ``padding`` may also be ``(low, high)`` pairs (a negative side crops the input: the
        adjoint of :func:`conv_transpose`'s zero extension), ``"valid"`` (0) or ``"same"``:
        TensorFlow's rule, output ``ceil(i/stride)``, padding
        ``total = max((ceil(i/stride) - 1)*stride + dilation*(k - 1) + 1 - i, 0)`` split as
        ``total // 2`` before and the rest (the odd one) after -- PyTorch's ``"same"`` at stride
        1 (PyTorch refuses ``"same"`` for stride > 1).
    groups : int
    out : ndarray, optional
        As for :func:`conv_transpose` (only NaN after an interrupted call).
    padding_mode : {"zeros", "circular", "reflect", "replicate"}
        As ``torch.nn.Conv*d``: the conv (padding 0) of the input padded by that mode.
    algorithm : {"direct", "winograd", "winograd4", "auto"}
        As :func:`conv_transpose`'s (``docs/winograd.md``): "winograd"/"winograd4" run
        Winograd F(2x2, r)/F(4x4, r) tiles of the output, summing the stride's kernel phases
        in the transform domain, for 2-D problems with dilation 1 and a kernel of ``2*stride``
        to ``3*stride`` taps per axis (k2/k3 s1, k4..k6 s2, ...); any other problem, Inf/NaN
        data and negative padding run "direct".  Opt-in: a larger (bounded) rounding error.
        "auto" runs "direct" (no transform met the error criterion for being chosen).

    Returns
    -------
    ndarray, shape (N, C_out, *o)
    """
    algo = _check_algorithm(algorithm)
    y, w, b = float_arrays(input, weight, bias)
    mode = _padmode.check_padding_mode(padding_mode)
    negative = _extend.negative_pairs(padding, y.ndim - 2)
    if negative is not None:
        _extend._refuse_mode(mode)
        win = _extend.conv_window(y.shape, w.shape, stride, negative, dilation, groups)
        check_bias(b, win.out_shape[1])
        x = output_array(out, win.out_shape, y.dtype, [a for a in (y, w, b) if a is not None])
        return _extend.conv(y, w, b, win, x)
    geom = conv_geometry(y.shape, w.shape, stride, padding, dilation, groups)
    check_bias(b, geom.coarse_channels)
    x = output_array(out, geom.coarse_shape, y.dtype, [a for a in (y, w, b) if a is not None])
    if mode != "zeros":  # C_m y = C_0 (P_m y)
        _padmode.check_mode_padding(mode, geom.fine, geom.padding)
        y = _padmode.pad(y, geom.padding, mode)
        geom = _unpadded(geom)
    with _no_partial_out(None if out is None else x):
        _core.gather(contiguous(y), contiguous(w), None if b is None else contiguous(b), x,
                     *geom.kernel_args(), algo)
    return x


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
    *,
    padding_mode: str = "zeros",
    algorithm: str = "direct",
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of :func:`conv_transpose`.

    ``grad_input = C g`` is an ordinary strided convolution of ``grad_output`` (the gather
    kernel); ``grad_weight[c, f, k] = sum_{n,i} x[n,c,i] g[n,f,i*s - p + k*d]`` (the
    weight-gradient kernel); ``grad_bias = g.sum over (N, *spatial)``.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *o)
        Gradient of the loss with respect to ``conv_transpose``'s output.
    input : array_like, shape (N, C_in, *i)
        The forward pass's input.
    weight : array_like, shape (C_in, C_out/groups, *k)
    stride, padding, output_padding, groups, dilation
        As in the forward call.
    output_mask : sequence of 3 bool
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute.
    algorithm : {"direct", "winograd", "winograd4", "auto"}
        How grad_input (a :func:`conv` of ``grad_output``) multiplies, as :func:`conv`'s;
        grad_weight and grad_bias are always direct.

    Returns
    -------
    grad_input : ndarray, shape (N, C_in, *i), or None
    grad_weight : ndarray, shape (C_in, C_out/groups, *k), or None
    grad_bias : ndarray, shape (C_out,), or None

    Notes
    -----
    With a ``padding_mode`` other than "zeros"
    (``y = P_m^T C_0^T x``) both gradients use the padded ``P_m g`` with padding 0.
    """
    want_input, want_weight, want_bias = output_mask_triple(output_mask)
    algo = _check_algorithm(algorithm)
    mode = _padmode.check_padding_mode(padding_mode)
    x, w, _ = float_arrays(input, weight)
    g = as_float_array(grad_output, "grad_output")
    check_same_dtype(x, "input", grad_output=g)
    negative = _extend.negative_pairs(padding, x.ndim - 2)
    if negative is not None:
        _extend._refuse_mode(mode)
        win = _extend.transposed_window(x.shape, w.shape, stride, negative, output_padding,
                                        groups, dilation)
        check_shape(g, win.shape, "grad_output")
        return _extend.backward(x, g, w, win, (want_input, want_weight, want_bias),
                                fine_is_grad=True)
    if padding_string(padding) is not None and g.ndim == x.ndim:
        # "same"/"valid" forward may have used output_size=: grad_output's size says which
        padding, output_padding = resolve_output_size(
            x.shape, w.shape, g.shape[2:], stride, padding, output_padding, groups, dilation)
    geom = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups,
                               dilation)
    check_shape(g, geom.fine_shape, "grad_output")
    g = contiguous(g)
    if mode == "zeros":
        return _backward_pair(geom, fine=g, coarse=x, w=w, fine_is_grad=True,
                              want=(want_input, want_weight, want_bias), algorithm=algo)
    _padmode.check_mode_padding(mode, geom.fine, geom.padding)
    grad_input, grad_weight, _ = _backward_pair(
        _unpadded(geom), fine=_padmode.pad(g, geom.padding, mode), coarse=x, w=w,
        fine_is_grad=True, want=(want_input, want_weight, False), algorithm=algo)
    return grad_input, grad_weight, _grad_bias(g) if want_bias else None


def conv_backward(
    grad_output: object,
    input: object,
    weight: object,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    output_mask: Sequence[bool] = (True, True, True),
    *,
    padding_mode: str = "zeros",
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of :func:`conv`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_input = C^T g`` is a transposed convolution of ``grad_output`` (the scatter kernel)
    cropped to the input's size; ``grad_weight[c, f, k] = sum_{n,i} g[n,c,i] y[n,f,i*s-p+k*d]``.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *o)
    input : array_like, shape (N, C_in, *i)
    weight : array_like, shape (C_out, C_in/groups, *k)
    stride, padding, dilation, groups
        As in the forward call.
    output_mask : sequence of 3 bool
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute.

    Returns
    -------
    grad_input : ndarray, shape (N, C_in, *i), or None
    grad_weight : ndarray, shape (C_out, C_in/groups, *k), or None
    grad_bias : ndarray, shape (C_out,), or None

    Notes
    -----
    With a ``padding_mode`` other than "zeros" (``C_m = C_0 P_m``): ``grad_input = P_m^T C_0^T g``
    and ``grad_weight`` uses the padded input.
    """
    want_input, want_weight, want_bias = output_mask_triple(output_mask)
    mode = _padmode.check_padding_mode(padding_mode)
    y, w, _ = float_arrays(input, weight)
    g = as_float_array(grad_output, "grad_output")
    check_same_dtype(y, "input", grad_output=g)
    negative = _extend.negative_pairs(padding, y.ndim - 2)
    if negative is not None:
        _extend._refuse_mode(mode)
        win = _extend.conv_window(y.shape, w.shape, stride, negative, dilation, groups)
        check_shape(g, win.out_shape, "grad_output")
        return _extend.backward(g, y, w, win, (want_input, want_weight, want_bias),
                                fine_is_grad=False)
    geom = conv_geometry(y.shape, w.shape, stride, padding, dilation, groups)
    check_shape(g, geom.coarse_shape, "grad_output")
    if mode == "zeros":
        return _backward_pair(geom, fine=y, coarse=g, w=w, fine_is_grad=False,
                              want=(want_input, want_weight, want_bias))
    _padmode.check_mode_padding(mode, geom.fine, geom.padding)
    grad_input, grad_weight, grad_bias = _backward_pair(
        _unpadded(geom), fine=_padmode.pad(y, geom.padding, mode), coarse=g, w=w,
        fine_is_grad=False, want=(want_input, want_weight, want_bias))
    if grad_input is not None:
        grad_input = np.ascontiguousarray(_padmode.fold(grad_input, geom.padding, mode))
    return grad_input, grad_weight, grad_bias


def _backward_pair(
    geom: Geometry,
    fine: FloatArray,
    coarse: FloatArray,
    w: FloatArray,
    fine_is_grad: bool,
    want: tuple[bool, bool, bool],
    algorithm: str = "direct",
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Shared body of both backwards: one side is the gradient, the other the saved input;
    ``algorithm`` applies to conv_transpose's grad_input (the gather)."""
    fine, coarse, w = contiguous(fine), contiguous(coarse), contiguous(w)
    args = geom.kernel_args()
    grad_input = grad_weight = grad_bias = None
    if want[0]:
        if fine_is_grad:  # conv_transpose: grad_input = C g, a gather onto the coarse side
            grad_input = _pool.new_array(geom.coarse_shape, fine.dtype)
            _core.gather(fine, w, None, grad_input, *args, algorithm)
        else:  # conv: grad_input = C^T g, a scatter onto the fine side
            grad_input = _pool.new_array(geom.fine_shape, fine.dtype)
            _core.scatter(coarse, w, None, grad_input, *args)
    if want[1]:
        grad_weight = _pool.new_array(geom.weight_shape, fine.dtype)
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
        if not isinstance(shape, (list, tuple, np.ndarray)) or (
                isinstance(shape, np.ndarray) and shape.ndim != 1):
            raise TypeError(f"{name} must be a sequence of ints, got {shape!r}")
    shape_in = int_tuple(tuple(input_shape), len(input_shape), "input_shape", 0)
    shape_w = int_tuple(tuple(weight_shape), len(weight_shape), "weight_shape", 0)
    negative = _extend.negative_pairs(padding, len(shape_in) - 2)
    if negative is not None:
        return _extend.transposed_window(shape_in, shape_w, stride, negative, output_padding,
                                         groups, dilation).shape
    return transposed_geometry(shape_in, shape_w, stride, padding, output_padding, groups,
                               dilation).fine_shape
