"""PyTorch bridge: tconv's kernels as PyTorch custom operators and ``nn.ConvTranspose*d`` layers.

``import tconv`` never imports PyTorch; ``import tconv.torch`` does (absolute imports only, so
this module's name does not shadow the real ``torch`` package) and registers four operators
with :mod:`torch.library` (pure Python registration; the C++ extension knows nothing of
libtorch).  With ``C`` the convolution matrix of a weight ``w`` (see :mod:`tconv.reference`):

==========================  ========================================  ==========================
operator                    computes                                  kernel
==========================  ========================================  ==========================
``tconv::conv_transpose``   ``y = C(w)^T x (+ bias)``, size from x's   transposed conv (scatter)
``tconv::scatter``          ``y = C(w)^T x (+ bias)`` to a given size  transposed conv (scatter)
``tconv::gather``           ``x = C(w) y``                            conv / grad_input (gather)
``tconv::weight_grad``      ``dw``: ``<dw, v> = <C(v)^T x, y>``       weight gradient
==========================  ========================================  ==========================

All are bilinear, and each one's derivative with respect to either operand is another member of
the family (the gradient of a scatter is a gather and a weight_grad, the gradient of a gather is
a scatter and a weight_grad, the gradient of a weight_grad is a gather and a scatter), so
autograd of any order is exact.  Each operator has a fake (meta) implementation, so
``torch.compile``, ``torch.export`` and ``torch.jit.trace`` see it as one graph node, and a
batching rule for ``torch.func.vmap``; eager calls go through autograd.Functions with the same
formulas plus setup_context and jvp rules, which ``torch.func`` needs.

Functions (the signatures of :func:`torch.nn.functional.conv_transpose1d` / ``2d`` / ``3d``,
plus ``padding_mode``)::

    y = tconv.torch.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)

    x: (N, C_in, H, W) or unbatched (C_in, H, W)     w: (C_in, C_out/groups, kH, kW)
    y: (N, C_out, H_out, W_out),  H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1)
                                          + output_padding + 1

Layers :class:`ConvTranspose1d`, :class:`ConvTranspose2d`, :class:`ConvTranspose3d` subclass
``torch.nn.ConvTranspose*d`` (same constructor, parameters, initialisation, ``state_dict`` and
repr) and override only the computation; :func:`convert` swaps them into an existing model.
They and the functions take ``algorithm=`` (keyword; as :func:`tconv.conv_transpose`'s, default
"direct"): the forward runs by it and the backward's grad_input (a gather) too, grad_weight
always direct (``docs/winograd.md``).  A converted layer, and a layer compiled by
``torch.jit.script``, run "direct".

Dtypes: float32 and float64 are computed in their own precision; float16 and bfloat16 are
computed with float32 accumulation and rounded once to the input dtype.  Under CPU autocast the
eligible tensors are cast to the autocast dtype first, as PyTorch does for its convolutions.
Channels-last input (or weight) gives a channels-last output, as in PyTorch.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Concatenate, Literal, Optional, ParamSpec, Union, cast

import numpy as np
import torch

from tconv import _core, _padmode
from tconv.functional import _check_algorithm
from tconv._args import (
    FloatArray,
    Geometry,
    as_groups,
    as_int,
    check_same_dtype,
    int_tuple,
    transposed_geometry,
    transposed_size,
)

__all__ = [
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convert",
    "export_onnx",
    "onnx_translation_table",
    "revert",
]

IntOrTuple = Union[int, Sequence[int]]
_EXACT = (torch.float32, torch.float64)
#: computed in float32 and rounded once to the input dtype
_HALF = (torch.float16, torch.bfloat16)
_SUPPORTED = _EXACT + _HALF


# ----------------------------------------------------------------------------------------------
# The operator family
# ----------------------------------------------------------------------------------------------

def _operand_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """The dtype the kernels compute in, after checking the operands share a supported dtype
    (the operators can be called directly, past the functions' checks)."""
    dtype = tensors[0].dtype if tensors[0] is not None else torch.float32
    for t in tensors:
        if t is not None and (t.dtype != dtype or t.dtype not in _SUPPORTED):
            raise TypeError("tconv operators take tensors of one dtype, float32, float64, "
                            f"float16 or bfloat16; got {[u.dtype for u in tensors if u is not None]}")
    return dtype if dtype in _EXACT else torch.float32


def _to_numpy(t: torch.Tensor, dtype: torch.dtype | None = None) -> FloatArray:
    """A C-contiguous NumPy view of ``t`` (converted to ``dtype``); no copy when ``t`` already
    is a contiguous tensor of that dtype."""
    t = t.detach()
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    array: FloatArray = t.resolve_conj().resolve_neg().contiguous().numpy()
    return array


def _memory_format(*tensors: torch.Tensor) -> torch.memory_format:
    """PyTorch's rule for convolutions: channels-last out if any operand is channels-last."""
    for t in tensors:
        if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(
                memory_format=torch.channels_last):
            return torch.channels_last
        if t.dim() == 5 and not t.is_contiguous() and t.is_contiguous(
                memory_format=torch.channels_last_3d):
            return torch.channels_last_3d
    return torch.contiguous_format


def _empty(shape: Sequence[Any], like: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device, memory_format=fmt)


def _result(array: FloatArray, dtype: torch.dtype, fmt: torch.memory_format) -> torch.Tensor:
    out = torch.from_numpy(array)
    if out.dtype != dtype:
        out = out.to(dtype)
    return out.contiguous(memory_format=fmt) if fmt != torch.contiguous_format else out


# ``algorithm`` (tconv.conv_transpose's) rides with the geometry through every formula of the
# family, so a backward runs its gather (grad_input) by the algorithm the forward was asked for;
# weight_grad ignores it (always direct) and the kernels fall back to direct where it does not
# apply.
_GEOMETRY = 'int[] stride, int[] pad, int[] dilation, int groups, str algorithm="direct"'


def _scatter_impl(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor],
             size: Sequence[int], stride: Sequence[int], pad: Sequence[int],
             dilation: Sequence[int], groups: int, algorithm: str = "direct") -> torch.Tensor:
    """``y = C(w)^T x + bias``: x (N, C_c, *coarse), w (C_c, C_f/g, *k), y (N, C_f, *size);
    ``pad`` is the low-side padding (the high side is implied by ``size``)."""
    dt = _operand_dtype(x, w, bias)
    y = np.empty((x.shape[0], w.shape[1] * groups, *size), dtype=np.dtype(str(dt)[6:]))
    _core.scatter(_to_numpy(x, dt), _to_numpy(w, dt),
                  None if bias is None else _to_numpy(bias, dt), y,
                  list(stride), list(pad), list(dilation), groups, algorithm)
    return _result(y, x.dtype, _memory_format(x, w))


def _gather_impl(y: torch.Tensor, w: torch.Tensor, size: Sequence[int], stride: Sequence[int],
            pad: Sequence[int], dilation: Sequence[int], groups: int,
            algorithm: str = "direct") -> torch.Tensor:
    """``x = C(w) y``: y (N, C_f, *fine), w (C_c, C_f/g, *k), x (N, C_c, *size)."""
    dt = _operand_dtype(y, w)
    x = np.empty((y.shape[0], w.shape[0], *size), dtype=np.dtype(str(dt)[6:]))
    _core.gather(_to_numpy(y, dt), _to_numpy(w, dt), None, x,
                 list(stride), list(pad), list(dilation), groups, algorithm)
    return _result(x, y.dtype, _memory_format(y, w))


def _weight_grad_impl(coarse: torch.Tensor, fine: torch.Tensor, kernel: Sequence[int],
                 stride: Sequence[int], pad: Sequence[int], dilation: Sequence[int],
                 groups: int, algorithm: str = "direct") -> torch.Tensor:
    """``dw[c, f, k] = sum_{n,i} coarse[n, c, i] fine[n, f, i*s - pad + k*d]`` (always direct:
    ``algorithm`` is only carried along)."""
    dt = _operand_dtype(coarse, fine)
    dw = np.empty((coarse.shape[1], fine.shape[1] // groups, *kernel),
                  dtype=np.dtype(str(dt)[6:]))
    _core.weight_grad(_to_numpy(coarse, dt), _to_numpy(fine, dt), dw,
                      list(stride), list(pad), list(dilation), groups)
    return _result(dw, coarse.dtype, _memory_format(coarse, fine))


def _output_size(x: torch.Tensor, w: torch.Tensor, stride: Sequence[int], padding: Sequence[int],
                 output_padding: Sequence[int], dilation: Sequence[int]) -> list[Any]:
    return [transposed_size(x.shape[2 + i], w.shape[2 + i], s, p, p, d, op)
            for i, (s, p, op, d) in enumerate(zip(stride, padding, output_padding, dilation))]


def _conv_transpose_impl(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor],
                         stride: Sequence[int], padding: Sequence[int],
                         output_padding: Sequence[int], dilation: Sequence[int],
                         groups: int, algorithm: str = "direct") -> torch.Tensor:
    """The entry point (``torch.nn.functional.conv_transpose*d``'s arguments): a scatter whose
    output size follows from the input's, so a traced graph stays valid for other sizes and
    maps one-to-one onto ONNX ``ConvTranspose``."""
    geom = transposed_geometry(tuple(x.shape), tuple(w.shape), list(stride), list(padding),
                               list(output_padding), groups, list(dilation))
    return _scatter_impl(x, w, bias, geom.fine, *geom.kernel_args(), algorithm)


_scatter = torch.library.custom_op(
    "tconv::scatter", mutates_args=(),
    schema=f"(Tensor x, Tensor w, Tensor? bias, SymInt[] size, {_GEOMETRY}) -> Tensor",
)(_scatter_impl)
_gather = torch.library.custom_op(
    "tconv::gather", mutates_args=(),
    schema=f"(Tensor y, Tensor w, SymInt[] size, {_GEOMETRY}) -> Tensor",
)(_gather_impl)
_weight_grad = torch.library.custom_op(
    "tconv::weight_grad", mutates_args=(),
    schema=f"(Tensor coarse, Tensor fine, SymInt[] kernel, {_GEOMETRY}) -> Tensor",
)(_weight_grad_impl)
_conv_transpose_op = torch.library.custom_op(
    "tconv::conv_transpose", mutates_args=(),
    schema="(Tensor x, Tensor w, Tensor? bias, int[] stride, int[] padding, "
           'int[] output_padding, int[] dilation, int groups, str algorithm="direct") -> Tensor',
)(_conv_transpose_impl)


@_conv_transpose_op.register_fake
def _conv_transpose_fake(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor],
                         stride: Sequence[int], padding: Sequence[int],
                         output_padding: Sequence[int], dilation: Sequence[int],
                         groups: int, algorithm: str = "direct") -> torch.Tensor:
    size = _output_size(x, w, stride, padding, output_padding, dilation)
    return _empty((x.shape[0], w.shape[1] * groups, *size), x, _memory_format(x, w))


@_scatter.register_fake
def _scatter_fake(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor],
                  size: Sequence[Any], stride: Sequence[int], pad: Sequence[int],
                  dilation: Sequence[int], groups: int, algorithm: str = "direct"
                  ) -> torch.Tensor:
    return _empty((x.shape[0], w.shape[1] * groups, *size), x, _memory_format(x, w))


@_gather.register_fake
def _gather_fake(y: torch.Tensor, w: torch.Tensor, size: Sequence[Any], stride: Sequence[int],
                 pad: Sequence[int], dilation: Sequence[int], groups: int,
                 algorithm: str = "direct") -> torch.Tensor:
    return _empty((y.shape[0], w.shape[0], *size), y, _memory_format(y, w))


@_weight_grad.register_fake
def _weight_grad_fake(coarse: torch.Tensor, fine: torch.Tensor, kernel: Sequence[Any],
                      stride: Sequence[int], pad: Sequence[int], dilation: Sequence[int],
                      groups: int, algorithm: str = "direct") -> torch.Tensor:
    return _empty((coarse.shape[1], fine.shape[1] // groups, *kernel), coarse,
                  _memory_format(coarse, fine))


# Autograd: every formula is written in the family itself, so it is differentiable again.  The
# formulas are registered on the operators (for graphs that call them directly, e.g. a loaded
# TorchScript trace) and wrapped in autograd.Functions with setup_context, which torch.func's
# transforms need (the functions' vmap rules come from the operators' batching rules).

def _forward_ad_setup(ctx: Any, inputs: tuple[Any, ...], first_arg: int,
                      output: torch.Tensor) -> None:
    """What the jvp rules need: the two operands and the non-tensor arguments."""
    if hasattr(ctx, "save_for_forward"):  # autograd.Function contexts (not the ops' own)
        ctx.save_for_forward(inputs[0], inputs[1])
    ctx.arguments = inputs[first_arg:]
    ctx.output_shape = output.shape


def _bilinear_jvp(call: Callable[..., torch.Tensor], ctx: Any, a_t: Optional[torch.Tensor],
                  b_t: Optional[torch.Tensor], bias_t: Optional[torch.Tensor] = None
                  ) -> torch.Tensor:
    """Forward-mode rule of a bilinear op ``f(a, b) (+ bias)``: ``f(a', b) + f(a, b') + bias'``,
    written with the family's own (differentiable) operators."""
    a, b = ctx.saved_tensors
    out: Optional[torch.Tensor] = None
    for term in ((a_t, b), (a, b_t)):
        if term[0] is not None and term[1] is not None:
            part = call(term[0], term[1], *ctx.arguments)
            out = part if out is None else out + part
    if bias_t is not None:
        nd = len(ctx.output_shape) - 2
        part = bias_t.reshape(-1, *([1] * nd)).expand(ctx.output_shape)
        out = part if out is None else out + part
    assert out is not None
    return out


def _with_algorithm(geometry: Sequence[Any]) -> list[Any]:
    """stride, pad, dilation, groups and the algorithm ("direct" when the call left it out)."""
    return [*geometry, "direct"] if len(geometry) == 4 else list(geometry)


def _grads(ctx: Any, *grads: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], ...]:
    """``grads`` then None for each further input (the non-tensor arguments)."""
    return (*grads, *([None] * (len(ctx.needs_input_grad) - len(grads))))


def _scatter_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, w, bias, _, *geometry = inputs
    ctx.save_for_backward(x, w)
    ctx.geometry = _with_algorithm(geometry)
    ctx.has_bias = bias is not None
    _forward_ad_setup(ctx, inputs, 3, output)


def _scatter_backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
    x, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    gx = _call_gather(grad, w, x.shape[2:], *ctx.geometry) if need[0] else None
    if gx is not None:  # grad_input takes the forward's memory format, as in torch
        gx = gx.contiguous(memory_format=_memory_format(x, w))
    gw = _call_weight_grad(x, grad, w.shape[2:], *ctx.geometry) if need[1] else None
    gb = None
    if ctx.has_bias and need[2]:
        gb = grad.sum(dim=[0, *range(2, grad.dim())])
    return _grads(ctx, gx, gw, gb)


def _conv_transpose_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, w, bias, stride, padding, _, dilation, groups, *algorithm = inputs
    ctx.save_for_backward(x, w)
    ctx.geometry = _with_algorithm((stride, padding, dilation, groups, *algorithm))
    ctx.has_bias = bias is not None
    _forward_ad_setup(ctx, inputs, 3, output)


def _gather_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    y, w, _, *geometry = inputs
    ctx.save_for_backward(y, w)
    ctx.geometry = _with_algorithm(geometry)
    _forward_ad_setup(ctx, inputs, 2, output)


def _gather_backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
    y, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    gy = _call_scatter(grad, w, None, y.shape[2:], *ctx.geometry) if need[0] else None
    gw = _call_weight_grad(grad, y, w.shape[2:], *ctx.geometry) if need[1] else None
    return _grads(ctx, gy, gw)


def _weight_grad_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    coarse, fine, _, *geometry = inputs
    ctx.save_for_backward(coarse, fine)
    ctx.geometry = _with_algorithm(geometry)
    _forward_ad_setup(ctx, inputs, 2, output)


def _weight_grad_backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
    coarse, fine = ctx.saved_tensors
    need = ctx.needs_input_grad
    gc = _call_gather(fine, grad, coarse.shape[2:], *ctx.geometry) if need[0] else None
    gf = _call_scatter(coarse, grad, None, fine.shape[2:], *ctx.geometry) if need[1] else None
    return _grads(ctx, gc, gf)


def _plain(*args: Any) -> bool:
    """Ordinary eager tensors (no functorch wrapper, no subclass): the implementation can run
    directly, skipping the dispatcher's per-call cost."""
    return all(type(a) in (torch.Tensor, torch.nn.Parameter)
               and not torch._C._functorch.is_functorch_wrapped_tensor(a)
               for a in args if isinstance(a, torch.Tensor))


def _conv_transpose_direct(*args: Any) -> torch.Tensor:
    x, w, bias, stride, padding, output_padding, dilation, groups, *algorithm = args
    # the functions have checked the arguments: straight to the kernel
    size = _output_size(x, w, stride, padding, output_padding, dilation)
    return _scatter_impl(x, w, bias, size, stride, padding, dilation, groups, *algorithm)


def _autograd_function(name: str, impl: Callable[..., torch.Tensor],
                       setup: Callable[..., None], backward: Callable[..., Any],
                       vmap_rule: Callable[..., tuple[torch.Tensor, int]],
                       has_bias: bool) -> Any:
    """The autograd.Function of operator ``tconv::name``: the same formulas as the operator's
    registration, plus setup_context, a vmap rule and a jvp rule, which torch.func needs."""
    op = getattr(torch.ops.tconv, name)

    def forward(*args: Any) -> torch.Tensor:
        out: torch.Tensor = impl(*args) if _plain(*args) else op(*args)
        return out

    def call(a: torch.Tensor, b: torch.Tensor, *rest: Any) -> torch.Tensor:
        return _call(name, a, b, None, *rest) if has_bias else _call(name, a, b, *rest)

    def jvp(ctx: Any, a_t: Optional[torch.Tensor], b_t: Optional[torch.Tensor],
            *rest: Any) -> torch.Tensor:
        return _bilinear_jvp(call, ctx, a_t, b_t, rest[0] if has_bias else None)

    namespace: dict[str, Callable[..., Any]] = {
        "forward": forward, "setup_context": setup, "backward": backward, "vmap": vmap_rule,
        "jvp": jvp}
    return type(name, (torch.autograd.Function,),
                {key: staticmethod(fn) for key, fn in namespace.items()})


def _tracing() -> bool:
    """Under torch.compile / torch.export / torch.jit.trace the operator itself must be the graph
    node (with its registered autograd formula); eagerly the autograd.Function (same formulas)
    also serves torch.func's transforms."""
    return torch.compiler.is_compiling() or bool(torch.jit.is_tracing())  # type: ignore[attr-defined, no-untyped-call]


def _call(name: str, *args: Any) -> torch.Tensor:
    """Operator ``tconv::name`` with autograd: the graph node when tracing, else its Function."""
    out = getattr(torch.ops.tconv, name)(*args) if _tracing() else _AUTOGRAD[name].apply(*args)
    assert isinstance(out, torch.Tensor)
    return out


def _call_scatter(*args: Any) -> torch.Tensor:
    return _call("scatter", *args)


def _call_conv_transpose(*args: Any) -> torch.Tensor:
    return _call("conv_transpose", *args)


def _call_gather(*args: Any) -> torch.Tensor:
    return _call("gather", *args)


def _call_weight_grad(*args: Any) -> torch.Tensor:
    return _call("weight_grad", *args)


_scatter.register_autograd(_scatter_backward, setup_context=_scatter_setup)
_conv_transpose_op.register_autograd(_scatter_backward, setup_context=_conv_transpose_setup)
_gather.register_autograd(_gather_backward, setup_context=_gather_setup)
_weight_grad.register_autograd(_weight_grad_backward, setup_context=_weight_grad_setup)


# Batching rules (torch.func.vmap).  A batched data operand with an unbatched weight folds the
# vmapped dim into N (one kernel call); every other combination runs one call per vmapped slice.

def _fold(t: torch.Tensor, bdim: int) -> tuple[torch.Tensor, int]:
    t = t.movedim(bdim, 0)
    return t.reshape(t.shape[0] * t.shape[1], *t.shape[2:]), t.shape[0]


def _unfold(t: torch.Tensor, b: int) -> torch.Tensor:
    return t.reshape(b, t.shape[0] // b, *t.shape[1:])


def _per_slice(op: Callable[..., torch.Tensor], batch: int, tensors: Sequence[Any],
               dims: Sequence[Optional[int]], rest: Sequence[Any]) -> tuple[torch.Tensor, int]:
    outs = []
    for i in range(batch):
        args = [t if d is None or t is None else t.select(d, i) for t, d in zip(tensors, dims)]
        outs.append(op(*args, *rest))
    return torch.stack(outs), 0


def _batch_size(info: Any) -> int:
    return int(info.batch_size)


def _scatter_vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, w: torch.Tensor,
                  bias: Optional[torch.Tensor], size: Sequence[Any], *geometry: Any
                  ) -> tuple[torch.Tensor, int]:
    xd, wd, bd = in_dims[:3]
    if xd is not None and wd is None and bd is None:
        folded, b = _fold(x, xd)
        return _unfold(_call_scatter(folded, w, bias, size, *geometry), b), 0
    return _per_slice(_call_scatter, _batch_size(info), (x, w, bias), (xd, wd, bd),
                      (size, *geometry))


def _conv_transpose_vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, w: torch.Tensor,
                         bias: Optional[torch.Tensor], *geometry: Any
                         ) -> tuple[torch.Tensor, int]:
    xd, wd, bd = in_dims[:3]
    if xd is not None and wd is None and bd is None:
        folded, b = _fold(x, xd)
        return _unfold(_call_conv_transpose(folded, w, bias, *geometry), b), 0
    return _per_slice(_call_conv_transpose, _batch_size(info), (x, w, bias),
                      (xd, wd, bd), geometry)


def _gather_vmap(info: Any, in_dims: tuple[Any, ...], y: torch.Tensor, w: torch.Tensor,
                 size: Sequence[Any], *geometry: Any) -> tuple[torch.Tensor, int]:
    yd, wd = in_dims[:2]
    if yd is not None and wd is None:
        folded, b = _fold(y, yd)
        return _unfold(_call_gather(folded, w, size, *geometry), b), 0
    return _per_slice(_call_gather, _batch_size(info), (y, w), (yd, wd),
                      (size, *geometry))


def _weight_grad_vmap(info: Any, in_dims: tuple[Any, ...], coarse: torch.Tensor,
                      fine: torch.Tensor, kernel: Sequence[Any], *geometry: Any
                      ) -> tuple[torch.Tensor, int]:
    return _per_slice(_call_weight_grad, _batch_size(info), (coarse, fine),
                      in_dims[:2], (kernel, *geometry))


torch.library.register_vmap("tconv::scatter", _scatter_vmap)
torch.library.register_vmap("tconv::conv_transpose", _conv_transpose_vmap)
torch.library.register_vmap("tconv::gather", _gather_vmap)
torch.library.register_vmap("tconv::weight_grad", _weight_grad_vmap)

_AUTOGRAD = {
    "scatter": _autograd_function("scatter", _scatter_impl, _scatter_setup, _scatter_backward,
                                  _scatter_vmap, has_bias=True),
    "conv_transpose": _autograd_function("conv_transpose", _conv_transpose_direct,
                                         _conv_transpose_setup, _scatter_backward,
                                         _conv_transpose_vmap, has_bias=True),
    "gather": _autograd_function("gather", _gather_impl, _gather_setup, _gather_backward,
                                 _gather_vmap, has_bias=False),
    "weight_grad": _autograd_function("weight_grad", _weight_grad_impl, _weight_grad_setup,
                                      _weight_grad_backward, _weight_grad_vmap, has_bias=False),
}


# ----------------------------------------------------------------------------------------------
# Functions
# ----------------------------------------------------------------------------------------------

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
            f"{name} must have dtype torch.float32, float64, float16 or bfloat16, got {t.dtype} "
            f"(convert explicitly, e.g. {name}.float())"
        )
    return t


def _autocast(*tensors: Optional[torch.Tensor]) -> list[Optional[torch.Tensor]]:
    """CPU autocast's rule for convolutions: every floating tensor but float64 goes to the
    autocast dtype."""
    if not torch.is_autocast_enabled("cpu"):
        return list(tensors)
    dtype = torch.get_autocast_dtype("cpu")
    return [t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64
            else t for t in tensors]


def _fold_border(y: torch.Tensor, padding: Sequence[int], mode: str) -> torch.Tensor:
    """``P_m^T y``: adds each border element of the unpadded output back onto the element the
    padding mode copies it from (see :mod:`tconv._padmode`), then crops the border.  Written with
    ``index_add`` so that autograd, compile and export see ordinary ops."""
    nd = len(padding)
    for axis, p in enumerate(padding):
        if p == 0:
            continue
        dim = y.dim() - nd + axis
        n = y.shape[dim] - 2 * p
        src = torch.from_numpy(_padmode.source_index(n, p, p, mode))
        out = y.new_zeros((*y.shape[:dim], n, *y.shape[dim + 1:]))
        y = out.index_add(dim, src, y)
    return y


def _conv_transpose(
    nd: int,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    padding_mode: str = "zeros",
    algorithm: str = "direct",
) -> torch.Tensor:
    """The one definition of :func:`conv_transpose1d`, ``2d`` and ``3d`` (``nd`` bound)."""
    algo = _check_algorithm(algorithm)
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    if bias is not None:
        _check_tensor(bias, "bias")
    cast_input, cast_weight, bias = _autocast(input, weight, bias)
    assert cast_input is not None and cast_weight is not None
    input, weight = cast_input, cast_weight
    check_same_dtype(input, "input", what="tensors", weight=weight, bias=bias)
    if input.dim() not in (nd + 1, nd + 2):
        raise ValueError(
            f"conv_transpose{nd}d: input must be {nd + 2}-D (N, C_in, *{nd} spatial dims) or "
            f"unbatched {nd + 1}-D (C_in, *{nd} spatial dims), got shape {tuple(input.shape)}"
        )
    mode = _padmode.check_padding_mode(padding_mode)
    s = int_tuple(stride, nd, "stride", 1)
    p = int_tuple(padding, nd, "padding", 0)
    op = int_tuple(output_padding, nd, "output_padding", 0)
    d = int_tuple(dilation, nd, "dilation", 1)
    g = as_groups(groups)
    unbatched = input.dim() == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    def check() -> Geometry:
        # The batch size is left out (it cannot make a geometry invalid), so that
        # torch.export / torch.compile keep a dynamic batch dimension symbolic.
        geom = transposed_geometry((1, *x.shape[1:]), tuple(weight.shape), s, p, op, g, d)
        if bias is not None and tuple(bias.shape) != (geom.fine_channels,):
            raise ValueError(f"bias must be 1-D with one entry per output channel "
                             f"({geom.fine_channels}), got shape {tuple(bias.shape)}")
        return geom

    if torch.jit.is_tracing():  # type: ignore[attr-defined, no-untyped-call]
        with warnings.catch_warnings():  # the checks read sizes; the traced op recomputes them
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            geom = check()
    else:
        geom = check()
    if mode == "zeros":
        y = _call_conv_transpose(x, weight, bias, list(s), list(p), list(op), list(d), g, algo)
    else:
        # C_m^T x = P_m^T (C_0^T x): the unpadded transposed conv, its border folded back (the
        # bias after, so that it is added once per output element).
        # Half dtypes go through float32 as a whole, so that the result is rounded once.
        _padmode.check_mode_padding(mode, geom.fine, geom.padding)
        dtype = x.dtype
        work = torch.float32 if dtype in _HALF else dtype
        y = _call_conv_transpose(x.to(work), weight.to(work), None, list(s), [0] * nd,
                                 list(op), list(d), g, algo)
        y = _fold_border(y, p, mode)
        if bias is not None:
            y = y + bias.to(work).reshape(-1, *([1] * nd))
        y = y.to(dtype)
    assert isinstance(y, torch.Tensor)
    return y.squeeze(0) if unbatched else y


_P = ParamSpec("_P")
_SHAPES = {1: ("L", "k"), 2: ("H, W", "kH, kW"), 3: ("D, H, W", "kD, kH, kW")}


def _fixed_ndim(nd: int, impl: Callable[Concatenate[int, _P], torch.Tensor]
                ) -> Callable[_P, torch.Tensor]:
    """``impl`` with its first argument (the number of spatial dims) bound to ``nd``, keeping
    the rest of its signature for type checkers (the ParamSpec) and ``inspect`` alike."""

    def op(*args: _P.args, **kwargs: _P.kwargs) -> torch.Tensor:
        return impl(nd, *args, **kwargs)

    signature = inspect.signature(impl)
    op.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:])
    op.__name__ = op.__qualname__ = f"conv_transpose{nd}d"
    spatial, kernel = _SHAPES[nd]
    op.__doc__ = f"""{nd}-D transposed convolution on CPU tensors by tconv, differentiable to any
    order.

    Same signature and result as :func:`torch.nn.functional.conv_transpose{nd}d`, plus
    ``padding_mode`` ("zeros", "circular", "reflect", "replicate"; see ``docs/padding.md``)
    and ``algorithm`` (as :func:`tconv.conv_transpose`'s: "direct", "winograd", "winograd4",
    "auto"; the backward runs grad_input by the same algorithm, grad_weight direct;
    ``docs/winograd.md``).

    Parameters
    ----------
    input : Tensor, shape (N, C_in, {spatial}) or unbatched (C_in, {spatial})
    weight : Tensor, shape (C_in, C_out/groups, {kernel})
    bias : Tensor, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of {nd} int{"s" if nd > 1 else ""}
    groups : int
    padding_mode : str
    algorithm : str

    Returns
    -------
    Tensor, shape (N, C_out, *out) or unbatched (C_out, *out), with per dim
    ``out = (in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return op


conv_transpose1d = _fixed_ndim(1, _conv_transpose)
conv_transpose2d = _fixed_ndim(2, _conv_transpose)
conv_transpose3d = _fixed_ndim(3, _conv_transpose)
_FUNCTIONS = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------

class _TconvLayer(torch.nn.Module):
    """The computation of tconv's layers; the rest (constructor, parameters, initialisation,
    ``state_dict``, repr) is PyTorch's ``nn.ConvTranspose*d``, the next class in the MRO."""

    _nd = 0
    if TYPE_CHECKING:  # for mypy only: TorchScript would read class annotations as attr types
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"]
        stride: tuple[int, ...]
        padding: str | tuple[int, ...]
        output_padding: tuple[int, ...]
        dilation: tuple[int, ...]
        kernel_size: tuple[int, ...]
        groups: int
        weight: torch.Tensor
        bias: Optional[torch.Tensor]

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
        dtype: Optional[torch.dtype] = None,
        *,
        algorithm: str = "direct",
    ) -> None:
        nd = self._nd
        name = type(self).__name__
        try:
            channels = [as_int(value, arg) for value, arg in
                        ((in_channels, "in_channels"), (out_channels, "out_channels"))]
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a tuple of ints, got {padding!r}")
        # normalised to Python ints here, so torch's constructor never sees a NumPy integer
        geometry = (int_tuple(kernel_size, nd, "kernel_size", 1),
                    int_tuple(stride, nd, "stride", 1), int_tuple(padding, nd, "padding", 0),
                    int_tuple(output_padding, nd, "output_padding", 0))
        d = int_tuple(dilation, nd, "dilation", 1)
        g = as_groups(groups)
        mode = _padmode.check_padding_mode(padding_mode)
        # torch's constructor accepts only "zeros"; the other modes are tconv's addition.
        super().__init__(*channels, *geometry, g, bias, d, "zeros", device, dtype)
        self.padding_mode = cast(Literal["zeros", "reflect", "replicate", "circular"], mode)
        self.algorithm = _check_algorithm(algorithm)

    def forward(self, input: torch.Tensor, output_size: Optional[list[int]] = None
                ) -> torch.Tensor:
        """Transposed convolution of ``input`` (N, C_in, *spatial) or (C_in, *spatial);
        ``output_size`` picks ``output_padding`` as in PyTorch."""
        if torch.jit.is_scripting():  # type: ignore[attr-defined]
            return self._scripted_forward(input, output_size)
        op = self.output_padding
        if output_size is not None:
            op = tuple(self._output_padding(  # type: ignore[operator]
                input, output_size, self.stride, self.padding, self.kernel_size, self._nd,
                self.dilation))
        # a layer converted from torch's (tconv.torch.convert) has no algorithm: direct
        return _FUNCTIONS[self._nd](input, self.weight, self.bias, self.stride,
                                    cast(tuple[int, ...], self.padding), op, self.groups,
                                    self.dilation, self.padding_mode,
                                    getattr(self, "algorithm", "direct"))

    @torch.jit.export
    def _scripted_forward(self, input: torch.Tensor, output_size: Optional[list[int]] = None
                          ) -> torch.Tensor:
        """The forward TorchScript compiles (torch.jit.script): the operator called directly;
        the eager path's Python argument checks are the operator's own here."""
        if self.padding_mode != "zeros":
            raise ValueError("tconv.torch: a scripted layer supports only padding_mode='zeros' "
                             "(use torch.jit.trace or torch.compile for the other modes)")
        nd = self.weight.dim() - 2
        op = self._output_padding(  # type: ignore[operator]
            input, output_size, self.stride, self.padding, self.kernel_size, nd,
            self.dilation)
        unbatched = input.dim() == nd + 1
        x = input.unsqueeze(0) if unbatched else input
        y: torch.Tensor = torch.ops.tconv.conv_transpose(
            x, self.weight, self.bias, self.stride, self.padding, op, self.dilation, self.groups)
        return y.squeeze(0) if unbatched else y


class ConvTranspose1d(_TconvLayer, torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` computed by tconv: input (N, C_in, L) or (C_in, L),
    weight (C_in, C_out/groups, k), output length
    ``(L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""

    _nd = 1


class ConvTranspose2d(_TconvLayer, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` computed by tconv: input (N, C_in, H, W) or (C_in, H, W),
    weight (C_in, C_out/groups, kH, kW), per dim output
    ``(in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""

    _nd = 2


class ConvTranspose3d(_TconvLayer, torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` computed by tconv: input (N, C_in, D, H, W) or unbatched,
    weight (C_in, C_out/groups, kD, kH, kW), per dim output
    ``(in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``."""

    _nd = 3


# ----------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------

def onnx_translation_table() -> dict[Any, Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``: maps
    ``tconv::conv_transpose`` onto the standard ONNX ``ConvTranspose`` (needs ``onnxscript``).

    Only the forward operator is translated (ONNX graphs are inference graphs); a layer with
    ``padding_mode`` other than "zeros" exports as ``ConvTranspose`` plus the ops of its fold.
    """
    import importlib

    try:
        op = importlib.import_module("onnxscript").opset18
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "ONNX export of tconv layers needs onnxscript (torch.onnx's exporter writes the "
            "graph with it): pip install 'tconv[onnx]'", name="onnxscript") from e

    def conv_transpose(x: Any, w: Any, bias: Any = None, stride: Sequence[int] = (1,),
                       padding: Sequence[int] = (0,), output_padding: Sequence[int] = (0,),
                       dilation: Sequence[int] = (1,), groups: int = 1,
                       algorithm: str = "direct") -> Any:
        attrs = {"strides": list(stride), "pads": [*padding, *padding],
                 "output_padding": list(output_padding), "dilations": list(dilation),
                 "group": groups}
        inputs = (x, w) if bias is None else (x, w, bias)
        return op.ConvTranspose(*inputs, **attrs)

    return {torch.ops.tconv.conv_transpose.default: conv_transpose}


def export_onnx(model: torch.nn.Module, args: tuple[Any, ...], f: Any = None,
                **kwargs: Any) -> Any:
    """``torch.onnx.export(model, args, f, dynamo=True, ...)`` with tconv's layers written as
    ONNX ``ConvTranspose`` nodes (so the file runs in any ONNX runtime, without tconv); other
    keyword arguments go to :func:`torch.onnx.export`.  Returns its ``ONNXProgram``."""
    table = {**onnx_translation_table(), **kwargs.pop("custom_translation_table", {})}
    return torch.onnx.export(model, args, f, dynamo=True, custom_translation_table=table,
                             **kwargs)


_TO_TCONV: dict[type[torch.nn.Module], type[torch.nn.Module]] = {
    torch.nn.ConvTranspose1d: ConvTranspose1d,
    torch.nn.ConvTranspose2d: ConvTranspose2d,
    torch.nn.ConvTranspose3d: ConvTranspose3d,
}
_TO_TORCH = {v: k for k, v in _TO_TCONV.items()}


def _swap_class(module: torch.nn.Module, table: dict[type[torch.nn.Module], type[torch.nn.Module]]
                ) -> bool:
    """Re-class ``module`` in place when its class (or, for a parametrized module, the class it
    parametrizes) is a key of ``table``; parameters, buffers, hooks and parametrizations are
    the instance's own state and stay as they are."""
    cls = type(module)
    if cls in table:
        module.__class__ = table[cls]
        return True
    base = cls.__bases__[0] if torch.nn.utils.parametrize.is_parametrized(module) else None
    if base in table:
        # torch.nn.utils.parametrize made ``cls`` as a subclass of the layer's class with the
        # parametrized tensors as properties; rebuild it over the other base.
        namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        module.__class__ = type(cls.__name__.replace(base.__name__, table[base].__name__),
                                (table[base],), namespace)
        return True
    return False


def _convert(module: torch.nn.Module, inplace: bool,
             table: dict[type[torch.nn.Module], type[torch.nn.Module]]) -> torch.nn.Module:
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not inplace:
        module = copy.deepcopy(module)
    for m in module.modules():
        if table is _TO_TORCH and isinstance(m, _TconvLayer) and m.padding_mode != "zeros":
            raise ValueError(f"{type(m).__name__} with padding_mode={m.padding_mode!r} has no "
                             "torch.nn equivalent (torch supports only 'zeros')")
    for m in module.modules():
        _swap_class(m, table)
    return module


def convert(module: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """``module`` with every ``torch.nn.ConvTranspose1d/2d/3d`` computed by tconv.

    Each layer (the module itself too) becomes the tconv subclass of its class, keeping its
    parameters, buffers, hooks and parametrizations; subclasses of torch's layers other than
    the three are left alone.  ``inplace=False`` (the default) converts a deep copy.
    """
    return _convert(module, inplace, _TO_TCONV)


def revert(module: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """The inverse of :func:`convert`: tconv's layers become ``torch.nn.ConvTranspose*d`` again
    (``ValueError`` for a layer using a padding mode other than "zeros", which torch lacks)."""
    return _convert(module, inplace, _TO_TORCH)
