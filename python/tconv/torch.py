"""PyTorch bridge: tconv's kernels as autograd functions and ``nn.Module`` layers.

``import tconv`` never imports PyTorch; ``import tconv.torch`` does (absolute imports only, so
this module's name does not shadow the real ``torch`` package).

Functions (the signatures of :func:`torch.nn.functional.conv_transpose1d` / ``2d`` / ``3d``)::

    y = tconv.torch.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)

    x: (N, C_in, H, W) or unbatched (C_in, H, W)     w: (C_in, C_out/groups, kH, kW)
    y: (N, C_out, H_out, W_out),  H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1)
                                          + output_padding + 1

Layers :class:`ConvTranspose1d`, :class:`ConvTranspose2d`, :class:`ConvTranspose3d` take the
constructor arguments of ``torch.nn.ConvTranspose*d``, hold the same ``weight``/``bias``
parameters (same shapes, same initialisation, same ``state_dict`` keys) and accept
``forward(input, output_size=None)``; a state dict saved from a PyTorch layer loads unchanged.

The tensors are handed to tconv as NumPy views without copying (``Tensor.numpy()`` /
``torch.from_numpy``; a non-contiguous tensor is copied once).  Backward calls
:func:`tconv.conv_transpose_backward`, computing only the gradients autograd asks for.
Supported: CPU, strided, float32 or float64 tensors, all of one dtype, ``padding_mode="zeros"``.
Anything else raises ``TypeError`` / ``ValueError``.  Double backward is not supported
(``once_differentiable``): asking for it raises a ``RuntimeError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from tconv import functional
from tconv._args import FloatArray, as_int, int_tuple

__all__ = [
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]

IntOrTuple = Union[int, Sequence[int]]
_SUPPORTED = (torch.float32, torch.float64)


def _check_tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise TypeError(
            f"{name} is on device {t.device}; tconv.torch runs on CPU tensors only "
            f"(move it with .cpu(), or use torch.nn.functional on {t.device.type})"
        )
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    if t.dtype not in _SUPPORTED:
        raise TypeError(
            f"{name} must have dtype torch.float32 or torch.float64, got {t.dtype} "
            f"(convert explicitly, e.g. {name}.float())"
        )
    return t


def _to_numpy(t: torch.Tensor) -> FloatArray:
    """A NumPy view of the tensor's memory (no copy for any strided CPU tensor)."""
    array: FloatArray = t.detach().resolve_conj().resolve_neg().numpy()
    return array


def _params(
    nd: int,
    stride: IntOrTuple,
    padding: IntOrTuple,
    output_padding: IntOrTuple,
    dilation: IntOrTuple,
) -> tuple[tuple[int, ...], ...]:
    def per_dim(value: IntOrTuple, name: str) -> tuple[int, ...]:
        # ints only (never int(1.5) == 1); the ranges are checked by tconv.functional
        return int_tuple(value, nd, name, minimum=-(2**62))

    return (per_dim(stride, "stride"), per_dim(padding, "padding"),
            per_dim(output_padding, "output_padding"), per_dim(dilation, "dilation"))


class _ConvTransposeFunction(torch.autograd.Function):
    """Autograd node: forward = tconv scatter kernel, backward = gather + weight-grad kernels."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        output_padding: tuple[int, ...],
        groups: int,
        dilation: tuple[int, ...],
    ) -> torch.Tensor:
        y = functional.conv_transpose(
            _to_numpy(input), _to_numpy(weight), None if bias is None else _to_numpy(bias),
            stride, padding, output_padding, groups, dilation,
        )
        ctx.save_for_backward(input, weight)
        ctx.geometry = (stride, padding, output_padding, groups, dilation)  # type: ignore[attr-defined]
        ctx.has_bias = bias is not None  # type: ignore[attr-defined]
        return torch.from_numpy(y)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        stride, padding, output_padding, groups, dilation = ctx.geometry
        want = ctx.needs_input_grad
        mask = (bool(want[0]), bool(want[1]), bool(ctx.has_bias and want[2]))
        grads = functional.conv_transpose_backward(
            _to_numpy(grad_output.to(input.dtype)), _to_numpy(input), _to_numpy(weight),
            stride, padding, output_padding, groups, dilation, output_mask=mask,
        )
        tensors = tuple(None if g is None else torch.from_numpy(g) for g in grads)
        return (*tensors, None, None, None, None, None)


def _conv_transpose(
    nd: int,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrTuple,
    padding: IntOrTuple,
    output_padding: IntOrTuple,
    groups: int,
    dilation: IntOrTuple,
) -> torch.Tensor:
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    if bias is not None:
        _check_tensor(bias, "bias")
    for name, other in (("weight", weight), ("bias", bias)):
        if other is not None and other.dtype != input.dtype:
            raise TypeError(
                f"{name} has dtype {other.dtype} but input has dtype {input.dtype}; "
                "all tensors must share one dtype"
            )
    if input.dim() not in (nd + 1, nd + 2):
        raise ValueError(
            f"conv_transpose{nd}d: input must be {nd + 2}-D (N, C_in, *{nd} spatial dims) or "
            f"unbatched {nd + 1}-D (C_in, *{nd} spatial dims), got shape {tuple(input.shape)}"
        )
    unbatched = input.dim() == nd + 1
    batched = input.unsqueeze(0) if unbatched else input
    s, p, op, d = _params(nd, stride, padding, output_padding, dilation)
    out = _ConvTransposeFunction.apply(  # type: ignore[no-untyped-call]
        batched, weight, bias, s, p, op, as_int(groups, "groups"), d)
    assert isinstance(out, torch.Tensor)
    return out.squeeze(0) if unbatched else out


def conv_transpose1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> torch.Tensor:
    """1-D transposed convolution on CPU tensors by tconv, differentiable.

    Same signature and result as :func:`torch.nn.functional.conv_transpose1d`.

    Parameters
    ----------
    input : Tensor, shape (N, C_in, L) or (C_in, L)
    weight : Tensor, shape (C_in, C_out/groups, k)
    bias : Tensor, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of 1 int
    groups : int

    Returns
    -------
    Tensor, shape (N, C_out, L_out) or (C_out, L_out), with
    ``L_out = (L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> torch.Tensor:
    """2-D transposed convolution on CPU tensors by tconv, differentiable.

    Same signature and result as :func:`torch.nn.functional.conv_transpose2d`.

    Parameters
    ----------
    input : Tensor, shape (N, C_in, H, W) or (C_in, H, W)
    weight : Tensor, shape (C_in, C_out/groups, kH, kW)
    bias : Tensor, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of 2 ints
    groups : int

    Returns
    -------
    Tensor, shape (N, C_out, H_out, W_out) or unbatched, with per dim
    ``out = (in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> torch.Tensor:
    """3-D transposed convolution on CPU tensors by tconv, differentiable.

    Same signature and result as :func:`torch.nn.functional.conv_transpose3d`.

    Parameters
    ----------
    input : Tensor, shape (N, C_in, D, H, W) or (C_in, D, H, W)
    weight : Tensor, shape (C_in, C_out/groups, kD, kH, kW)
    bias : Tensor, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of 3 ints
    groups : int

    Returns
    -------
    Tensor, shape (N, C_out, D_out, H_out, W_out) or unbatched, with per dim
    ``out = (in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


class _ConvTransposeNd(torch.nn.Module):
    """Shared body of the layers; mirrors ``torch.nn.ConvTranspose*d`` attribute by attribute."""

    _nd = 0
    __constants__ = ["stride", "padding", "dilation", "groups", "padding_mode",
                     "output_padding", "in_channels", "out_channels", "kernel_size"]

    weight: torch.nn.Parameter
    bias: torch.nn.Parameter | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: IntOrTuple = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrTuple = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        nd = self._nd
        name = type(self).__name__
        in_channels, out_channels = as_int(in_channels, "in_channels"), as_int(out_channels,
                                                                             "out_channels")
        groups = as_int(groups, "groups")
        if in_channels < 0 or out_channels < 0:
            raise ValueError(f"{name}: in_channels and out_channels must be >= 0, got "
                             f"{in_channels} and {out_channels}")
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
        if in_channels % groups != 0:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups != 0:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(
                f'{name}: only padding_mode="zeros" is supported (as in torch.nn.{name}), '
                f"got padding_mode={padding_mode!r}"
            )
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a tuple of ints, got {padding!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride, self.padding, self.output_padding, self.dilation = _params(
            nd, stride, padding, output_padding, dilation)
        self.transposed = True
        self.groups = groups
        self.padding_mode = padding_mode
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(
            torch.empty((in_channels, out_channels // groups, *self.kernel_size), **factory))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: weight ~ kaiming_uniform(a=sqrt(5)),
        bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_out/groups * prod(k)."""
        with torch.no_grad():
            torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                torch.nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        nd = self._nd
        if self.padding != (0,) * nd:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text

    def _output_padding(self, input: torch.Tensor, output_size: Sequence[int]) -> tuple[int, ...]:
        """PyTorch's rule: the output_padding that yields ``output_size``, which must lie in
        ``[min, min + stride - 1]`` per dim, ``min`` being the size at output_padding 0."""
        nd = self._nd
        lead = input.dim() - nd
        size = [int(v) for v in output_size]
        if len(size) == lead + nd:
            size = size[lead:]
        if len(size) != nd:
            raise ValueError(
                f"{type(self).__name__}: for {input.dim()}-D input, output_size must have {nd} "
                f"or {lead + nd} elements, got {list(output_size)}"
            )
        spatial = input.shape[lead:]
        min_sizes = [
            (spatial[i] - 1) * self.stride[i] - 2 * self.padding[i]
            + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            for i in range(nd)
        ]
        max_sizes = [lo + self.stride[i] - 1 for i, lo in enumerate(min_sizes)]
        for want, lo, hi in zip(size, min_sizes, max_sizes):
            if not lo <= want <= hi:
                raise ValueError(
                    f"requested an output size of {size}, but valid sizes range from "
                    f"{min_sizes} to {max_sizes} (for an input of {list(spatial)})"
                )
        return tuple(want - lo for want, lo in zip(size, min_sizes))

    def forward(self, input: torch.Tensor, output_size: Sequence[int] | None = None
                ) -> torch.Tensor:
        """Transposed convolution of ``input`` (N, C_in, *spatial) or (C_in, *spatial).

        ``output_size`` (spatial, or with the leading dims) picks ``output_padding`` for the
        strided-size ambiguity, as in PyTorch.
        """
        if self.padding_mode != "zeros":
            raise ValueError(f'{type(self).__name__}: only padding_mode="zeros" is supported, '
                             f"got {self.padding_mode!r}")
        op = self.output_padding if output_size is None else self._output_padding(
            input, output_size)
        return _conv_transpose(self._nd, input, self.weight, self.bias, self.stride,
                               self.padding, op, self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose1d`` computed by tconv: input (N, C_in, L) or (C_in, L),
    weight (C_in, C_out/groups, k), output length
    ``(L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""

    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose2d`` computed by tconv: input (N, C_in, H, W) or (C_in, H, W),
    weight (C_in, C_out/groups, kH, kW), per dim output
    ``(in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""

    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose3d`` computed by tconv: input (N, C_in, D, H, W) or unbatched,
    weight (C_in, C_out/groups, kD, kH, kW), per dim output
    ``(in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""

    _nd = 3
