"""Every framework's transposed-convolution padding convention, in tconv's terms.

One spatial dim of a transposed convolution with input size ``i``, kernel ``k``, stride ``s``
and dilation ``d`` has the *full* output (no padding at all) of length

    full = (i - 1)*s + k_dil,      k_dil = d*(k - 1) + 1.

Every framework's result is a *window* of that full output: it starts ``lo`` elements in
(``lo >= 0`` is cropped from the low side) and has ``size`` elements; positions beyond ``full``
are zeros (an output_padding).  This module calls ``(lo, size)`` the *placement*.  In tconv's
terms a placement is ``padding=(lo, hi)`` with ``hi = full - lo - size``, where a negative side
extends the output with zeros (an extension at the end smaller than ``max(stride, dilation)``
is written as ``output_padding`` instead, as PyTorch would).

Each convention is one ``_forward_*`` function (the framework's documented rule, framework
parameters -> placement, with the source it transcribes); :func:`solve` and :func:`convert`
only search those rules, so each formula exists once.  The ``"same"``/``"valid"`` rules that
:func:`tconv.conv_transpose` and :func:`tconv.conv` accept as ``padding`` strings
(:func:`same_transposed`, :func:`valid_transposed`, :func:`same_conv`) live in
:mod:`tconv._args` with the other argument rules; the ``"tconv"`` convention uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._args import (
    Placement,
    ceil_div,
    dilated_extent,
    full_size,
    int_tuple,
    placement_to_tconv,
    same_conv,
    same_transposed,
    size_args,
    valid_transposed,
)

__all__ = [
    "CONVENTIONS",
    "Solution",
    "convert",
    "same_conv",
    "same_transposed",
    "solve",
    "valid_transposed",
]

#: Conventions :func:`solve` and :func:`convert` understand ("tconv" is tconv's own terms).
CONVENTIONS = (
    "torch", "keras", "tf", "jax", "jax-consistent", "onnx", "onnx-valid", "onnx-same-upper",
    "onnx-same-lower", "mxnet", "tconv",
)

Params = dict[str, Any]  # one framework's own parameters for one spatial dim


# ---------------------------------------------------------------------------------------------
# One forward rule per convention: the framework's own parameters (one dim) -> placement.
# Each raises ValueError where the framework itself would refuse the parameters.
# ---------------------------------------------------------------------------------------------


def _forward_torch(i: int, k: int, s: int, d: int, p: Params) -> Placement:
    # torch.nn.ConvTranspose*d docs: out = (i-1)s - 2*padding + d(k-1) + output_padding + 1,
    # output_padding < max(stride, dilation), added on the high side.
    pad, op = p["padding"], p["output_padding"]
    if pad < 0 or not 0 <= op < max(s, d):
        raise ValueError(f"torch needs padding >= 0 and 0 <= output_padding < max(s, d): {p}")
    return pad, full_size(i, k, s, d) - 2 * pad + op


def _forward_tf(i: int, k: int, s: int, d: int, p: Params) -> Placement:
    # tf.nn.conv2d_transpose(output_shape=..., padding=...): the gradient of conv2d.
    mode = str(p["padding"]).upper()
    if mode == "SAME":
        return same_transposed(i, k, s, d, p["output_shape"])
    if mode == "VALID":
        return valid_transposed(i, k, s, d, p["output_shape"])
    raise ValueError(f"tf padding must be 'SAME' or 'VALID', got {p['padding']!r}")


def _keras_length(i: int, k: int, s: int, d: int, mode: str, op: int | None) -> int:
    # keras deconv_output_length (keras/src/utils/conv_utils.py, tf.keras utils/conv_utils.py).
    kd = dilated_extent(k, d)
    if op is None:
        return i * s if mode == "same" else i * s + max(kd - s, 0)
    pad = kd // 2 if mode == "same" else 0
    return (i - 1) * s + kd - 2 * pad + op


def _forward_keras(i: int, k: int, s: int, d: int, p: Params) -> Placement:
    # Keras Conv*DTranspose: output length from deconv_output_length, then TF's rule for that
    # output_shape (Keras 3's JAX/torch backends reproduce the same placement:
    # keras/src/backend/common/backend_utils.py _convert_conv_transpose_padding_args_*).
    mode, op = str(p["padding"]).lower(), p["output_padding"]
    if mode not in ("same", "valid"):
        raise ValueError(f"keras padding must be 'same' or 'valid', got {p['padding']!r}")
    if op is not None and not 0 <= op < s:
        raise ValueError(f"keras needs 0 <= output_padding < stride, got {op} (stride {s})")
    size = _keras_length(i, k, s, d, mode, op)
    return _forward_tf(i, k, s, d, {"padding": mode, "output_shape": size})


def _forward_jax(i: int, k: int, s: int, d: int, p: Params) -> Placement:
    # jax.lax.conv_transpose: a stride-1 conv over the input dilated by s (lhs_dilation), padded
    # by (a, b), with the kernel as given (transpose_kernel=False).  _conv_transpose_padding in
    # jax/_src/lax/convolution.py gives (a, b) for the strings.  An unpadded full transposed conv
    # is a = b = k_dil - 1, so tconv's lo = k_dil - 1 - a; the output has (i-1)s + 1 + a + b -
    # k_dil + 1 elements.
    kd = dilated_extent(k, d)
    pad = p["padding"]
    if isinstance(pad, str):
        mode = pad.upper()
        if mode == "SAME":
            pad_len = kd + s - 2
            a = kd - 1 if s > kd - 1 else ceil_div(pad_len, 2)
        elif mode == "VALID":
            pad_len = kd + s - 2 + max(kd - s, 0)
            a = kd - 1
        else:
            raise ValueError(f"jax padding must be 'SAME', 'VALID' or (lo, hi) pairs, got {pad!r}")
        b = pad_len - a
    else:
        a, b = pad
        if p.get("consistent"):
            # use_consistent_padding=True: (a, b) is the forward conv's padding, and JAX pads the
            # stride-dilated input by k_dil - 1 - a and k_dil - 1 - b (_conv_transpose_padding)
            a, b = kd - 1 - a, kd - 1 - b
    size = (i - 1) * s + 1 + a + b - kd + 1
    if size < 1:
        raise ValueError(f"jax padding {pad} leaves no output (size {size})")
    return kd - 1 - a, size


def _forward_onnx(auto_pad: str) -> Callable[[int, int, int, int, Params], Placement]:
    # ONNX ConvTranspose (onnx/defs/nn/defs.cc, Operators.md) as ONNX Runtime 1.32's CPU kernel
    # runs it (its behaviour where the spec is silent or reads otherwise was established on
    # random one-node models; tests/test_onnx_jax_live.py keeps checking it):
    # * output_shape given (any auto_pad; pads are then ignored):
    #     total = max(s*(i-1) + output_padding + k_dil - output_shape, 0),
    #     SAME_UPPER: pads_start = total/2 (odd element at the END); otherwise (NOTSET,
    #     SAME_LOWER, VALID) pads_start = total - total/2 (odd element at the START).  A negative
    #     total keeps the output from the full output's start and appends zeros (the spec would
    #     split the negative total, which for NOTSET/SAME_LOWER puts a zero at the start).
    # * SAME_UPPER/LOWER without output_shape: the same split of max(full + op - i*s, 0), the
    #   output full + op - total (i*s unless k_dil + op < s, where the spec says i*s).
    # * NOTSET: pads (begin, end) >= 0, output full + op - begin - end; VALID: pads 0.
    # ORT refuses output_padding >= max(s, d) and every result whose conv would not give back
    # the input size: floor((output + begin + end - k_dil)/s) + 1 == i (so output_padding < s).
    def rule(i: int, k: int, s: int, d: int, p: Params) -> Placement:
        size, op = p.get("output_shape"), p["output_padding"]
        kd, full = dilated_extent(k, d), full_size(i, k, s, d)
        if not 0 <= op < max(s, d):
            raise ValueError(f"onnx needs 0 <= output_padding < max(stride, dilation): {p}")
        if size is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            total = max(full + op - (i * s if size is None else size), 0)
            head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            tail = total - head
            if size is None:
                size = full + op - total
        else:
            head, tail = p.get("pads", (0, 0)) if auto_pad == "NOTSET" else (0, 0)
            if head < 0 or tail < 0:
                raise ValueError(f"onnx pads must be >= 0, got {(head, tail)}")
            size = full + op - head - tail
        if size < 1 or (size + head + tail - kd) // s + 1 != i:
            raise ValueError(
                f"ONNX Runtime refuses this ConvTranspose: output size {size} with pads "
                f"{(head, tail)} is not consistent with input size {i} (stride {s}, k_dil {kd}, "
                f"output_padding {op})"
            )
        return head, size

    return rule


def _forward_mxnet(i: int, k: int, s: int, d: int, p: Params) -> Placement:
    # mxnet Deconvolution (src/operator/nn/deconvolution-inl.h, InferPad): with target_shape,
    #   total = s*(i-1) + k_dil - target (must be >= 0), adj = total % 2, pad = (total + 1)/2,
    # i.e. the odd element is cropped at the START; otherwise out = full - 2*pad + adj.
    target = p.get("target_shape")
    full = full_size(i, k, s, d)
    if target is not None:
        total = full - target
        if total < 0:
            raise ValueError(f"mxnet target_shape {target} is larger than the full output {full}")
        return (total + 1) // 2, target
    pad, adj = p["pad"], p["adj"]
    if pad < 0 or adj < 0:
        raise ValueError(f"mxnet needs pad >= 0 and adj >= 0: {p}")
    return pad, full - 2 * pad + adj


def _forward_tconv(i: int, k: int, s: int, d: int, p: Params) -> Placement:
    op = p["output_padding"]
    if isinstance(p["padding"], str):  # tconv.conv_transpose's own padding strings
        mode = p["padding"].lower()
        if mode not in ("same", "valid") or op:
            raise ValueError(f"tconv padding strings are 'same'/'valid' with output_padding 0, "
                             f"got {p}")
        return (same_transposed if mode == "same" else valid_transposed)(i, k, s, d)
    lo, hi = p["padding"]
    if not 0 <= op < max(s, d):
        raise ValueError(f"tconv needs 0 <= output_padding < max(s, d): {p}")
    size = full_size(i, k, s, d) - lo - hi + op
    if size < 1:
        raise ValueError(f"tconv padding {p['padding']} leaves no output (size {size})")
    return lo, size


_FORWARD: dict[str, Callable[[int, int, int, int, Params], Placement]] = {
    "torch": _forward_torch,
    "tf": _forward_tf,
    "keras": _forward_keras,
    "jax": _forward_jax,
    "jax-consistent": lambda i, k, s, d, p: _forward_jax(i, k, s, d, {**p, "consistent": True}),
    "onnx": _forward_onnx("NOTSET"),
    "onnx-valid": _forward_onnx("VALID"),
    "onnx-same-upper": _forward_onnx("SAME_UPPER"),
    "onnx-same-lower": _forward_onnx("SAME_LOWER"),
    "mxnet": _forward_mxnet,
    "tconv": _forward_tconv,
}


def _candidates(conv: str, i: int, k: int, s: int, d: int, lo: int, size: int) -> Iterator[Params]:
    """Parameter sets of ``conv`` that might produce the placement ``(lo, size)``, in order of
    preference; :func:`_inverse` keeps the first one whose forward rule really does."""
    kd, full = dilated_extent(k, d), full_size(i, k, s, d)
    if conv == "torch":
        yield {"padding": lo, "output_padding": size - (full - 2 * lo)}
    elif conv == "tf":
        for mode in ("SAME", "VALID"):
            yield {"padding": mode, "output_shape": size}
    elif conv == "keras":
        for op in (None, *range(s)):
            for mode in ("same", "valid"):
                yield {"padding": mode, "output_padding": op}
    elif conv == "jax":
        yield {"padding": "SAME"}
        yield {"padding": "VALID"}
        a = kd - 1 - lo
        yield {"padding": (a, size - ((i - 1) * s + 2 - kd) - a)}
    elif conv == "jax-consistent":
        yield {"padding": "SAME"}
        yield {"padding": "VALID"}
        yield {"padding": (lo, full - lo - size)}
    elif conv == "onnx":
        for op in range(max(s, d)):
            yield {"pads": (lo, full + op - lo - size), "output_padding": op, "output_shape": None}
        for op in range(max(s, d)):
            yield {"pads": (0, 0), "output_padding": op, "output_shape": size}
    elif conv.startswith("onnx"):
        for op in range(max(s, d)):
            yield {"output_shape": None, "output_padding": op}
        for op in range(max(s, d)):
            yield {"output_shape": size, "output_padding": op}
    elif conv == "mxnet":
        yield {"pad": lo, "adj": size - (full - 2 * lo)}
        yield {"target_shape": size}
    elif conv == "tconv":
        (pad, op) = placement_to_tconv(i, k, s, d, (lo, size))
        yield {"padding": pad, "output_padding": op}


def _placement(conv: str, i: int, k: int, s: int, d: int, p: Params) -> Placement:
    return _FORWARD[conv](i, k, s, d, p)


def _inverse_all(conv: str, i: int, k: int, s: int, d: int, target: Placement) -> list[Params]:
    found: list[Params] = []
    try:
        candidates = list(_candidates(conv, i, k, s, d, *target))
    except ValueError:  # e.g. a placement tconv cannot express (lo < 0)
        return found
    for cand in candidates:
        try:
            if _placement(conv, i, k, s, d, cand) == target:
                found.append(cand)
        except ValueError:
            continue
    return found


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Solution:
    """How to reproduce one framework's transposed conv with :func:`tconv.conv_transpose`.

    Attributes
    ----------
    padding : tuple of (lo, hi) per spatial dim
        tconv's per-side padding.
    output_padding : tuple of int per spatial dim
    output_size : tuple of int per spatial dim
        The framework's (and tconv's) output size.
    params : dict
        The framework's own arguments that give this output (per-dim values as tuples).
    """

    padding: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    output_size: tuple[int, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """``padding`` and ``output_padding`` ready for ``tconv.conv_transpose(**...)``."""
        return {"padding": self.padding, "output_padding": self.output_padding}


def _check_convention(name: object, arg: str = "convention") -> str:
    if not isinstance(name, str) or name.lower() not in CONVENTIONS:
        raise ValueError(f"{arg} must be one of {', '.join(CONVENTIONS)}; got {name!r}")
    return name.lower()


def _geometry(
    input_size: object, kernel_size: object, stride: object, dilation: object
) -> tuple[int, list[tuple[int, int, int, int]]]:
    nd, i, k, s, d = size_args(input_size, kernel_size, stride, dilation)
    return nd, list(zip(i, k, s, d))


def _merge(per_dim: Sequence[Params]) -> dict[str, Any]:
    """Per-dim parameter dicts -> one dict: strings must agree, numbers become tuples."""
    merged: dict[str, Any] = {}
    for key in per_dim[0]:
        values = [p[key] for p in per_dim]
        if isinstance(values[0], str) or values[0] is None:
            merged[key] = values[0]
        else:
            merged[key] = tuple(values)
    return merged


def _split(params: Mapping[str, Any], nd: int, conv: str) -> list[Params]:
    """One dict per dim from user parameters (int or per-dim tuple; strings shared)."""
    per_dim: list[Params] = [{} for _ in range(nd)]
    for key, value in params.items():
        if key in ("input_size", "kernel_size", "stride", "dilation"):
            continue
        pairs_key = (conv in ("jax", "jax-consistent", "tconv") and key == "padding") or (
            conv == "onnx" and key == "pads")
        if (conv == "onnx" and key == "pads" and isinstance(value, (list, tuple))
                and len(value) == 2 * nd and not any(isinstance(v, (list, tuple)) for v in value)):
            # ONNX's own flat order: all begins, then all ends
            value = tuple(zip(value[:nd], value[nd:]))
        if isinstance(value, str) or value is None:
            values: list[Any] = [value] * nd
        elif pairs_key:
            if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
                if len(value) != nd or any(len(v) != 2 for v in value):
                    raise ValueError(f"{key} must hold one (lo, hi) pair per dim, got {value!r}")
                values = [tuple(int_tuple(v, 2, key, -(2**62))) for v in value]
            elif conv == "tconv":
                values = [(p, p) for p in int_tuple(value, nd, key, 0)]
            else:
                raise ValueError(f"{conv} {key} must be 'SAME', 'VALID' or (lo, hi) pairs per "
                                 f"dim, got {value!r}")
        else:
            values = list(int_tuple(value, nd, key, -(2**62)))
        for p, v in zip(per_dim, values):
            p[key] = v
    return per_dim


_REQUIRED = {
    "torch": ("padding", "output_padding"),
    "tf": ("padding", "output_shape"),
    "keras": ("padding", "output_padding"),
    "jax": ("padding",),
    "jax-consistent": ("padding",),
    "onnx": ("output_padding",),
    "onnx-valid": ("output_padding",),
    "onnx-same-upper": ("output_padding",),
    "onnx-same-lower": ("output_padding",),
    "mxnet": (),
    "tconv": ("padding", "output_padding"),
}


def _defaults(conv: str, i: int, k: int, s: int, d: int, p: Params) -> Params:
    """Fill the parameters a framework lets you omit, with that framework's defaults."""
    p = dict(p)
    if conv == "torch":
        p.setdefault("padding", 0)
        p.setdefault("output_padding", 0)
    elif conv == "keras":
        p.setdefault("output_padding", None)
    elif conv == "tf" and p.get("output_shape") is None:
        mode = str(p.get("padding", "")).lower()
        p["output_shape"] = _keras_length(i, k, s, d, mode, None) if mode else None
    elif conv.startswith("onnx"):
        p.setdefault("output_shape", None)
        p.setdefault("output_padding", 0)
        if conv == "onnx":
            p.setdefault("pads", (0, 0))
    elif conv == "mxnet" and p.get("target_shape") is None:
        p.pop("target_shape", None)
        p.setdefault("pad", 0)
        p.setdefault("adj", 0)
    elif conv == "tconv":
        p.setdefault("padding", (0, 0))
        p.setdefault("output_padding", 0)
    missing = [key for key in _REQUIRED[conv] if key not in p]
    if missing:
        raise ValueError(f"{conv} parameters are missing {', '.join(missing)}")
    return p


def solve(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    dilation: int | Sequence[int] = 1,
    *,
    output_size: int | Sequence[int] | None = None,
    padding: str = "same",
    convention: str = "torch",
    output_padding: int | Sequence[int] | None = None,
) -> Solution:
    """tconv's ``padding`` and ``output_padding`` for one framework's transposed conv.

    Parameters
    ----------
    input_size, kernel_size, stride, dilation : int or tuple of one int per spatial dim
    output_size : int or tuple, optional
        Wanted output size.  Default: ``input_size * stride`` for ``padding="same"``; for
        ``"valid"``, ``i*s + max(k_dil - s, 0)`` (TF/Keras/JAX/ONNX-valid) or the full
        ``(i - 1)*s + k_dil`` (torch, mxnet).
    padding : {"same", "valid"}
        The framework mode to reproduce.  Ignored by "torch" and "mxnet" beyond choosing the
        default output size (they have no such mode: their symmetric-padding parameters are
        solved for the size).  "onnx-same-*" are "same" only, "onnx-valid" is "valid" only;
        "onnx" (auto_pad NOTSET) gives "same" as ``output_shape`` (default ``i*s``) and
        "valid" as ``pads`` 0.
    convention : str
        One of :data:`CONVENTIONS` (see docs/conventions.md for each formula).
    output_padding : int or tuple, optional
        The framework's own ``output_padding`` where it is a free parameter: the ONNX
        conventions (default 0) and "keras" (default None: Keras' own default size).

    Returns
    -------
    Solution
        ``padding`` as ``(lo, hi)`` per dim, ``output_padding``, ``output_size`` and the
        framework's own ``params`` (e.g. ``{"padding": (1,), "output_padding": (1,)}`` for torch).
        ``tconv.conv_transpose(x, w, stride=..., dilation=..., **sol.kwargs())`` then returns the
        framework's output values, with the framework's kernel brought over by
        :func:`tconv.arithmetic.convert_weight` (for JAX's default ``transpose_kernel=False``
        that includes a flip of every spatial dim).

    Raises
    ------
    ValueError
        Unknown convention or mode, or a size that convention cannot produce (e.g. torch at
        stride 1 with an even kernel and "same": the odd padding cannot be split).
    """
    conv = _check_convention(convention)
    if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    mode = padding.lower()
    nd, dims = _geometry(input_size, kernel_size, stride, dilation)
    sizes: tuple[int | None, ...] = (
        (None,) * nd if output_size is None else int_tuple(output_size, nd, "output_size", 1)
    )
    ops: tuple[int | None, ...] = (None,) * nd
    if output_padding is not None:
        if not (conv.startswith("onnx") or conv == "keras"):
            raise ValueError(
                f"output_padding is a free parameter only for the ONNX conventions and keras; "
                f"{conv}'s is solved for the output size"
            )
        ops = int_tuple(output_padding, nd, "output_padding", 0)
    per_dim: list[Params] = []
    for (i, k, s, d), size, op in zip(dims, sizes, ops):
        per_dim.append(_solve_dim(conv, mode, i, k, s, d, size, op))
    placements = [_placement(conv, *dim, p) for dim, p in zip(dims, per_dim)]
    tconv_terms = [placement_to_tconv(*dim, pl) for dim, pl in zip(dims, placements)]
    return Solution(
        padding=tuple(t[0] for t in tconv_terms),
        output_padding=tuple(t[1] for t in tconv_terms),
        output_size=tuple(pl[1] for pl in placements),
        params=_merge(per_dim),
    )


def _solve_dim(conv: str, mode: str, i: int, k: int, s: int, d: int, size: int | None,
               op: int | None = None) -> Params:
    full = full_size(i, k, s, d)
    if conv == "tconv":
        rule = same_transposed if mode == "same" else valid_transposed
        pad, op = placement_to_tconv(i, k, s, d, rule(i, k, s, d, size))
        return {"padding": pad, "output_padding": op}
    if conv in ("torch", "mxnet"):
        want = size if size is not None else (i * s if mode == "same" else full)
        total = full - want
        if conv == "mxnet":
            if total < 0:
                raise ValueError(f"mxnet cannot produce output size {want} > full output {full}")
            return {"target_shape": want}
        lo = max(ceil_div(total, 2), 0)
        found = _inverse_all(conv, i, k, s, d, (lo, want))
        if not found:
            raise ValueError(
                f"{conv} cannot produce output size {want} (input {i}, kernel {k}, stride {s}, "
                f"dilation {d}): torch's symmetric padding needs output_padding "
                f"{2 * lo - total} < max(stride, dilation); use tconv padding pairs instead"
            )
        return found[0]
    if conv.startswith("onnx"):
        valid_only = conv == "onnx-valid"
        if conv.startswith("onnx-same") and mode != "same":
            raise ValueError(f"{conv} is a 'same' convention, got padding={mode!r}")
        if valid_only and mode != "valid":
            raise ValueError(f"{conv} is a 'valid' convention, got padding={mode!r}")
        if conv == "onnx" and mode == "same" and size is None:
            size = i * s  # NOTSET has no 'same': the spec's SAME output size, as output_shape
        given: Params = {"output_shape": size, "output_padding": op or 0}
        p = _defaults(conv, i, k, s, d, given)
        _placement(conv, i, k, s, d, p)
        return p
    if conv == "tf":
        p = _defaults(conv, i, k, s, d, {"padding": mode.upper(), "output_shape": size})
        _placement(conv, i, k, s, d, p)
        return p
    if conv == "keras":
        if size is None:
            p = {"padding": mode, "output_padding": op}
            _placement(conv, i, k, s, d, p)
            return p
        base = _keras_length(i, k, s, d, mode, 0)
        p = {"padding": mode, "output_padding": size - base}
        _placement(conv, i, k, s, d, p)
        return p
    # jax / jax-consistent: the padding string fixes the size
    p = {"padding": mode.upper()}
    got = _placement(conv, i, k, s, d, p)[1]
    if size is not None and size != got:
        raise ValueError(
            f"jax padding={mode.upper()!r} always gives output size {got} here, not {size}; "
            "use explicit (lo, hi) padding pairs (tconv.arithmetic.convert to='jax')"
        )
    return p


def convert(
    params: Mapping[str, Any], *, from_: str, to: str
) -> dict[str, Any]:
    """Translate one framework's transposed-conv parameters into another's.

    Parameters
    ----------
    params : mapping
        ``input_size``, ``kernel_size``, ``stride`` and optionally ``dilation`` (int or tuple
        per dim) plus ``from_``'s own parameters (ints or per-dim tuples; strings shared by all
        dims):

        ==================  ======================================================
        torch               padding, output_padding
        tf                  padding ("SAME"/"VALID"), output_shape (spatial)
        keras               padding ("same"/"valid"), output_padding (or None)
        jax                 padding ("SAME"/"VALID" or ((lo, hi), ...) pairs of the
                            stride-dilated input, any ints)
        jax-consistent      padding ("SAME"/"VALID" or the forward conv's pairs:
                            ``use_consistent_padding=True``)
        onnx                auto_pad NOTSET: pads ((begin, end) per dim, or ONNX's flat
                            list), output_padding, output_shape (optional; wins over pads)
        onnx-valid          output_padding, output_shape (optional)
        onnx-same-upper     output_shape (optional), output_padding (default 0)
        onnx-same-lower     output_shape, output_padding
        mxnet               pad, adj  -- or target_shape
        tconv               padding (int, (lo, hi) pairs that may be negative, or
                            "same"/"valid"), output_padding
        ==================  ======================================================

        The ONNX conventions are ONNX Runtime's reading of the spec (docs/conventions.md).
    from_, to : str
        Conventions, see :data:`CONVENTIONS`.

    Returns
    -------
    dict
        The geometry keys plus ``to``'s parameters giving the same output size and values.

    Raises
    ------
    ValueError
        When ``from_`` itself refuses the parameters (as the framework would), or ``to`` cannot
        express that output (e.g. torch cannot crop one more element at the end than at the
        start with output_padding 0 at stride 1).  ``to="tconv"`` expresses every output.
    """
    src, dst = _check_convention(from_, "from_"), _check_convention(to, "to")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of parameter names, got {type(params).__name__}")
    for key in ("input_size", "kernel_size", "stride"):
        if key not in params:
            raise ValueError(f"params must contain {key!r}")
    nd, dims = _geometry(params["input_size"], params["kernel_size"], params["stride"],
                         params.get("dilation", 1))
    per_dim_src = _split(params, nd, src)
    placements = [_placement(src, *dim, _defaults(src, *dim, p))
                  for dim, p in zip(dims, per_dim_src)]
    options = [_inverse_all(dst, *dim, pl) for dim, pl in zip(dims, placements)]
    chosen = _consistent(options)
    if chosen is None:
        raise ValueError(
            f"{dst} cannot express this {src} transposed conv: it keeps, per dim, the window "
            f"(start, size) = {placements} of the full (unpadded) output, and no {dst} "
            "parameters give that window (a same-size result would be shifted)"
        )
    result = {key: params[key] for key in ("input_size", "kernel_size", "stride") if key in params}
    result["dilation"] = params.get("dilation", 1)
    result.update(_merge(chosen))
    return result


def _consistent(options: Sequence[Sequence[Params]]) -> list[Params] | None:
    """One candidate per dim such that string (and None) values agree across dims."""
    if any(not opts for opts in options):
        return None

    def shared(p: Params) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted((key, v) for key, v in p.items() if isinstance(v, str) or v is None))

    for first in options[0]:
        key = shared(first)
        picks = [first]
        for opts in options[1:]:
            match = next((p for p in opts if shared(p) == key and p.keys() == first.keys()), None)
            if match is None:
                break
            picks.append(match)
        else:
            return picks
    return None
