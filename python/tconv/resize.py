"""Resize-convolution: upsample by an integer factor, then convolve with stride 1 — the notes'
fix for checkerboard artifacts (Odena et al., "Deconvolution and Checkerboard Artifacts",
Distill 2016).

Upsampling ``U`` runs in C++ (``csrc/resize.cpp``).  Per spatial dim with integer factor ``s``
it follows :func:`torch.nn.functional.interpolate` with ``align_corners=False``:

* ``"nearest"``: ``out[o] = in[floor(o / s)]`` (every sample repeated ``s`` times);
* ``"linear"`` (also spelled ``"bilinear"``/``"trilinear"``; multilinear in as many dims as
  the input has): the output sample ``o`` sits at input coordinate
  ``c = max((o + 0.5)/s - 0.5, 0)``; with ``i0 = floor(c)``, ``i1 = min(i0 + 1, in - 1)`` and
  ``l = c - i0``, ``out[o] = (1 - l)*in[i0] + l*in[i1]``.

Every output sample of a constant input is that constant, and each input sample feeds outputs
of every phase alike, so the stride-1 convolution that follows cannot create a phase pattern.
The backward of ``U`` is its adjoint ``U^T`` (also C++: a gather over the transposed per-dim
lists, race-free and deterministic), and ``resize_conv``'s backward chains it with
:func:`tconv.conv_backward`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _core
from ._args import (
    FloatArray,
    IntOrTuple,
    PaddingArg,
    as_float_array,
    check_element_count,
    check_same_dtype,
    check_shape,
    contiguous,
    float_arrays,
    int_tuple,
    output_mask_triple,
    spatial_ndim,
)
from .functional import conv, conv_backward

__all__ = ["upsample", "upsample_backward", "resize_conv", "resize_conv_backward"]

_MODES = {"nearest": "nearest", "linear": "linear", "bilinear": "linear", "trilinear": "linear"}


def _mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(
            f"mode must be one of {sorted(_MODES)} ('linear', 'bilinear' and 'trilinear' all "
            f"mean multilinear in the input's spatial dims), got {mode!r}"
        )
    return _MODES[mode]


def _scale(x_shape: Sequence[int], scale: object) -> tuple[int, ...]:
    nd = spatial_ndim(x_shape, "input")
    if isinstance(scale, float) and not scale.is_integer():
        raise ValueError(f"scale must be a positive integer (or one per dim), got {scale!r}")
    if isinstance(scale, float):
        scale = int(scale)
    s = int_tuple(scale, nd, "scale", 1)
    if any(n < 1 for n in x_shape[2:]):
        raise ValueError(f"input spatial sizes must be >= 1 to upsample, got shape {tuple(x_shape)}")
    return s


def upsample(input: object, scale: IntOrTuple, mode: str = "nearest") -> FloatArray:
    """``y = U x``: upsample every spatial dim by an integer factor (C++ kernel).

    Parameters
    ----------
    input : array_like, shape (N, C, *i), float32 or float64
    scale : int or tuple of int (>= 1)
    mode : "nearest" or "linear" ("bilinear", "trilinear")
        See the module docstring for the exact index formulas (PyTorch's
        ``interpolate(..., scale_factor=scale, align_corners=False)``).

    Returns
    -------
    ndarray, shape (N, C, *(i * scale)), the input's dtype.
    """
    x = as_float_array(input, "input")
    md = _mode(mode)
    s = _scale(x.shape, scale)
    shape = (*x.shape[:2], *(n * f for n, f in zip(x.shape[2:], s)))
    check_element_count(shape, "output")
    y = np.empty(shape, dtype=x.dtype)
    _core.upsample(contiguous(x), y, list(s), md)
    return y


def upsample_backward(grad_output: object, input_shape: Sequence[int], scale: IntOrTuple,
                      mode: str = "nearest") -> FloatArray:
    """``U^T g``: the gradient of :func:`upsample` with respect to its input.

    ``grad_output`` has shape ``(N, C, *(i * scale))``; the result has ``input_shape``
    ``(N, C, *i)``.  It satisfies ``<upsample(x), g> == <x, upsample_backward(g, ...)>``.
    """
    g = as_float_array(grad_output, "grad_output")
    md = _mode(mode)
    shape = tuple(int(v) for v in input_shape)
    s = _scale(shape, scale)
    check_shape(g, (*shape[:2], *(n * f for n, f in zip(shape[2:], s))), "grad_output")
    grad_input = np.empty(shape, dtype=g.dtype)
    _core.upsample_adjoint(contiguous(g), grad_input, list(s), md)
    return grad_input


def _operands(input: object, weight: object, bias: object = None
              ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """The arrays, checked before the upsampling so that a wrong weight is reported in terms of
    the caller's input, not the upsampled one."""
    x, w, b = float_arrays(input, weight, bias)
    if w.ndim != x.ndim:
        raise ValueError(
            f"weight must be {x.ndim}-D to match input of shape {x.shape}, got shape {w.shape}"
        )
    return x, w, b


def resize_conv(
    input: object,
    weight: object,
    scale: IntOrTuple,
    mode: str = "nearest",
    bias: object = None,
    padding: PaddingArg | str = "same",
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> FloatArray:
    """Upsample by ``scale`` (C++ :func:`upsample`), then :func:`tconv.conv` with stride 1.

    Parameters
    ----------
    input : array_like, shape (N, C_in, *i)
    weight : array_like, shape (C_out, C_in/groups, *k)
        An ordinary *convolution* weight (not the transposed layout).
    scale : int or tuple
        Integer upsampling factor per dim (the "stride" of the layer it replaces).
    mode : "nearest" or "bilinear" (= "linear", "trilinear")
    bias : array_like, shape (C_out,), optional
    padding : "same" (default), "valid", int, tuple or (low, high) pairs
        "same" keeps the upsampled size ``i * scale`` (PyTorch's rule: ``d*(k-1)`` in total,
        the extra one on the high side for even kernels).
    dilation, groups : as for :func:`tconv.conv`

    Returns
    -------
    ndarray, shape (N, C_out, *o) with ``o = i*scale`` for "same".

    Examples
    --------
    >>> x = np.ones((1, 1, 4, 4)); w = np.full((1, 1, 3, 3), 1 / 9)
    >>> resize_conv(x, w, 2).shape
    (1, 1, 8, 8)
    """
    x, w, b = _operands(input, weight, bias)
    up = upsample(x, scale, mode)
    return conv(up, w, b, stride=1, padding=padding, dilation=dilation, groups=groups)


def resize_conv_backward(
    grad_output: object,
    input: object,
    weight: object,
    scale: IntOrTuple,
    mode: str = "nearest",
    padding: PaddingArg | str = "same",
    dilation: IntOrTuple = 1,
    groups: int = 1,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of :func:`resize_conv`: ``(grad_input, grad_weight, grad_bias)``.

    With ``u = U x``: ``grad_weight``, ``grad_bias`` are those of :func:`tconv.conv` at ``u``,
    and ``grad_input = U^T (C^T g)``: the conv's input gradient pulled back through the
    upsampling's adjoint (:func:`upsample_backward`).  ``None`` where ``output_mask`` is False.
    """
    x, w, _ = _operands(input, weight)
    g = as_float_array(grad_output, "grad_output")
    check_same_dtype(x, "input", grad_output=g)
    mask = output_mask_triple(output_mask)
    up = upsample(x, scale, mode)
    grad_up, grad_weight, grad_bias = conv_backward(
        g, up, w, stride=1, padding=padding, dilation=dilation, groups=groups, output_mask=mask)
    grad_input = None
    if grad_up is not None:
        grad_input = upsample_backward(grad_up, x.shape, scale, mode)
    return grad_input, grad_weight, grad_bias
