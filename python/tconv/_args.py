"""Normalise and validate user arguments into one :class:`Geometry`, in one place.

Every public entry point funnels its arguments through here, so each check (and each shape
formula) exists exactly once.  Errors name the argument and the value received:
``TypeError`` for a wrong kind or dtype, ``ValueError`` for a wrong shape or parameter.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np
import numpy.typing as npt

from ._conventions import placement_to_tconv, same_conv, same_transposed, valid_transposed

IntOrTuple = Union[int, Sequence[int]]
#: ``padding`` accepts an int, one int per spatial dim, one ``(low, high)`` pair per dim, or
#: ``"same"`` / ``"valid"``.
PaddingArg = Union[int, str, Sequence[int], Sequence[Sequence[int]]]
FloatArray = npt.NDArray[np.floating[Any]]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_MAX_ELEMENTS = 2**62  # element counts beyond this overflow the kernels' int64 byte offsets
_MAX_INDEX = 2**62  # bound on every per-dim index the kernels form (o = i*s - p + k*d)


@dataclass(frozen=True)
class Geometry:
    """One validated problem, in the kernels' terms.

    ``coarse`` is the transposed convolution's input (the ordinary convolution's output),
    ``fine`` its output.  Per spatial dim: ``fine = coarse * stride - pad_lo + tap * dilation``.
    """

    batch: int
    groups: int
    coarse_channels: int
    fine_channels: int
    coarse: tuple[int, ...]
    fine: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.kernel)

    @property
    def pad_lo(self) -> list[int]:
        return [lo for lo, _ in self.padding]

    @property
    def coarse_shape(self) -> tuple[int, ...]:
        return (self.batch, self.coarse_channels, *self.coarse)

    @property
    def fine_shape(self) -> tuple[int, ...]:
        return (self.batch, self.fine_channels, *self.fine)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.coarse_channels, self.fine_channels // self.groups, *self.kernel)

    def kernel_args(self) -> tuple[list[int], list[int], list[int], int]:
        """(stride, pad_lo, dilation, groups) as the C++ kernels take them."""
        return list(self.stride), self.pad_lo, list(self.dilation), self.groups


def _fmt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse_grad_tensor(value: object, name: str) -> None:
    """A torch tensor that requires grad: the NumPy API would drop the graph (and torch refuses
    the conversion with its own message); point to the autograd API instead."""
    if type(value).__module__.startswith("torch") and getattr(value, "requires_grad", False) is True:
        raise TypeError(
            f"{name} is a torch.Tensor that requires grad, but tconv's NumPy functions do not "
            f"track gradients: use tconv.torch (conv_transpose1d/2d/3d, ConvTranspose1d/2d/3d: "
            f"autograd-aware), or pass {name}.detach() if no gradient is needed"
        )


def as_float_array(value: object, name: str) -> FloatArray:
    """``np.asarray`` the value and check it is a real float32/float64 array."""
    if value is None:
        raise TypeError(f"{name} must be an array of float32 or float64, got None")
    _refuse_grad_tensor(value, name)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{name} must have dtype float32 or float64, got dtype {arr.dtype} "
            f"(convert explicitly, e.g. {name}.astype(np.float32))"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def contiguous(arr: FloatArray) -> FloatArray:
    """C-contiguous, aligned view of ``arr``; copies only when needed (the kernels may use
    aligned vector loads, and misaligned scalar access is undefined behaviour in C++)."""
    return np.require(arr, requirements=["C", "A"])


def check_same_dtype(reference: FloatArray, ref_name: str, **others: FloatArray | None) -> None:
    for name, arr in others.items():
        if arr is not None and arr.dtype != reference.dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but {ref_name} has dtype {reference.dtype}; "
                "all arrays must share one dtype"
            )


def _as_int(value: object, name: str, whole: object = None) -> int:
    """``value`` as an int (Python and NumPy integers, 0-d integer arrays; never a bool or a
    float).  ``whole``: the sequence ``value`` is an entry of, for the message."""
    where = "" if whole is None else f" (in {name}={_fmt(whole)})"
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, np.ndarray)
                                               and value.dtype == np.bool_):
        raise TypeError(f"{name} must be an int, not a bool, got {_fmt(value)}{where}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        kind = "" if value is None else f" of type {type(value).__name__}"
        raise TypeError(
            f"{name} must be an int or a tuple of ints, got {_fmt(value)}{kind}{where}"
        ) from None


def as_int(value: object, name: str) -> int:
    """One int argument (``groups``, a channel count): Python and NumPy integers and 0-d
    integer arrays; a bool, float or anything else is a TypeError naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, not a bool, got {_fmt(value)}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        kind = "" if value is None else f" of type {type(value).__name__}"
        raise TypeError(f"{name} must be an int, got {_fmt(value)}{kind}") from None


def int_tuple(value: object, ndim: int, name: str, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of ``ndim`` ints, each ``>= minimum``."""
    if isinstance(value, np.ndarray) and value.ndim > 1:
        raise ValueError(
            f"{name} must be an int or a tuple of {ndim} ints, got an array of shape {value.shape}"
        )
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        items = [_as_int(v, name, value) for v in value]
        if len(items) != ndim:
            raise ValueError(
                f"{name} must be an int or a tuple of {ndim} ints for {ndim}-D input, "
                f"got {_fmt(value)}"
            )
        result = tuple(items)
    else:
        result = (_as_int(value, name),) * ndim
    for v in result:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum} in every dim, got {_fmt(value)}")
    return result


def padding_pairs(value: object, ndim: int, name: str = "padding",
                  allow_negative: bool = False) -> tuple[tuple[int, int], ...]:
    """Padding as one ``(low, high)`` pair per spatial dim, each side ``>= 0`` (any int with
    ``allow_negative``)."""
    if isinstance(value, np.ndarray) and value.ndim == 2:  # one (low, high) row per dim
        value = [tuple(row) for row in value.tolist()]
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in value):
        if len(value) != ndim or not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
            raise ValueError(
                f"{name} given as pairs must hold one (low, high) pair per spatial dim "
                f"({ndim}), got {_fmt(value)}"
            )
        pairs = tuple((_as_int(lo, name, value), _as_int(hi, name, value)) for lo, hi in value)
    else:
        pairs = tuple((p, p) for p in int_tuple(value, ndim, name, minimum=-(2**62)))
    for lo, hi in pairs:
        if not allow_negative and (lo < 0 or hi < 0):
            raise ValueError(f"{name} must be >= 0, got {_fmt(value)}")
    return pairs


def padding_string(value: object, name: str = "padding") -> str | None:
    """``"same"`` or ``"valid"`` (case-insensitive) for a string ``padding``; None otherwise."""
    if not isinstance(value, str):
        return None
    mode = value.lower()
    if mode not in ("same", "valid"):
        raise ValueError(
            f"{name} must be an int, a tuple of ints, one (low, high) pair per dim, 'same' or "
            f"'valid'; got {value!r}"
        )
    return mode


def transposed_string_padding(
    mode: str,
    coarse: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    output_size: Sequence[int] | None = None,
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """(padding pairs, output_padding) of a transposed conv with ``padding="same"|"valid"``
    (TensorFlow's rules, see :mod:`tconv._conventions`), for the default or given output size."""
    rule = same_transposed if mode == "same" else valid_transposed
    sizes: Sequence[int | None] = [None] * len(coarse) if output_size is None else output_size
    pads, ops = [], []
    for i, k, s, d, size in zip(coarse, kernel, stride, dilation, sizes):
        pair, op = placement_to_tconv(i, k, s, d, rule(i, k, s, d, size))
        pads.append(pair)
        ops.append(op)
    return tuple(pads), tuple(ops)


def spatial_ndim(shape: Sequence[int], name: str, ndim: int | None = None) -> int:
    """Number of spatial dims, ``len(shape) - 2``, checked to be 1, 2 or 3 (or ``ndim``)."""
    nd = len(shape) - 2
    if ndim is not None and nd != ndim:
        raise ValueError(
            f"{name} must be {ndim + 2}-D (N, C, *{ndim} spatial dims) for a {ndim}-D op, "
            f"got {len(shape)}-D shape {tuple(shape)}"
        )
    if nd not in (1, 2, 3):
        raise ValueError(
            f"{name} must be 3-D, 4-D or 5-D (N, C, *spatial), got {len(shape)}-D shape "
            f"{tuple(shape)}"
        )
    return nd


def check_element_count(shape: Sequence[int], name: str) -> None:
    count = 1
    for s in shape:
        count *= int(s)
    if count >= _MAX_ELEMENTS:
        raise ValueError(f"{name} of shape {tuple(shape)} has too many elements ({count})")


def check_extents(input: Sequence[int], weight: Sequence[int]) -> None:
    """Input spatial sizes and kernel sizes must be >= 1 (as in PyTorch; batch and channels may
    be 0)."""
    if any(v < 1 for v in input[2:]):
        raise ValueError(
            f"input spatial dims must be >= 1 (only batch and channels may be 0), "
            f"got input of shape {tuple(input)}"
        )
    if any(v < 1 for v in weight[2:]):
        raise ValueError(
            f"weight spatial dims (the kernel size) must be >= 1, got weight of shape {tuple(weight)}"
        )


def check_index_range(geom: Geometry) -> None:
    """The kernels form ``i*stride - pad_lo + k*dilation`` in int64: keep every term bounded."""
    for i in range(geom.ndim):
        extent = (geom.coarse[i] * geom.stride[i] + geom.kernel[i] * geom.dilation[i]
                  + sum(geom.padding[i]) + geom.fine[i])
        if extent >= _MAX_INDEX:
            raise ValueError(
                f"sizes, stride, padding and dilation are too large in spatial dim {i} "
                f"(spatial sizes {geom.coarse[i]} and {geom.fine[i]}, kernel "
                f"{geom.kernel[i]}, stride {geom.stride[i]}, padding {geom.padding[i]}, "
                f"dilation {geom.dilation[i]}): index arithmetic would overflow 64-bit integers"
            )


def _weight_and_groups(
    input: Sequence[int], weight: Sequence[int], groups: object
) -> tuple[int, int]:
    """Validate weight against input channels; return (groups, other side's channel count)."""
    if isinstance(groups, (bool, np.bool_)) or not (
            isinstance(groups, (int, np.integer))
            or (isinstance(groups, np.ndarray) and groups.ndim == 0 and groups.dtype.kind in "iu")):
        kind = "" if groups is None else f" of type {type(groups).__name__}"
        raise TypeError(f"groups must be an int, got {_fmt(groups)}{kind}")
    g = int(groups)
    if g < 1:
        raise ValueError(f"groups must be >= 1, got {g}")
    if len(weight) != len(input):
        raise ValueError(
            f"weight must be {len(input)}-D to match input of shape {tuple(input)}, "
            f"got weight of shape {tuple(weight)}"
        )
    channels = int(input[1])
    if channels % g != 0:
        raise ValueError(f"groups={g} must divide the input channels ({channels})")
    return g, channels


def transposed_geometry(
    input: Sequence[int],
    weight: Sequence[int],
    stride: object,
    padding: object,
    output_padding: object,
    groups: object,
    dilation: object,
) -> Geometry:
    """Geometry of ``conv_transpose``, from the input and weight shapes; weight is
    (C_in, C_out/groups, *k)."""
    input, weight = tuple(int(v) for v in input), tuple(int(v) for v in weight)
    nd = spatial_ndim(input, "input")
    g, c_in = _weight_and_groups(input, weight, groups)
    check_extents(input, weight)
    if weight[0] != c_in:
        hint = (" (it looks like Keras/TF's (*kernel, C_out, C_in): "
                "tconv.arithmetic.convert_weight(w, from_='keras', to='tconv') converts it)"
                if weight[-1] == c_in else "")
        raise ValueError(
            f"weight.shape[0] ({weight[0]}) must equal the input channels ({c_in}); "
            f"conv_transpose weights are laid out (C_in, C_out/groups, *kernel), "
            f"got weight of shape {weight}{hint}"
        )
    s = int_tuple(stride, nd, "stride", 1)
    d = int_tuple(dilation, nd, "dilation", 1)
    op = int_tuple(output_padding, nd, "output_padding", 0)
    mode = padding_string(padding)
    if mode is None:
        pads = padding_pairs(padding, nd)
    else:
        if any(op):
            raise ValueError(
                f"output_padding={op} cannot be combined with padding={padding!r}, which fixes "
                "the output size; pass output_size= instead"
            )
        pads, op = transposed_string_padding(mode, input[2:], weight[2:], s, d)
    for i in range(nd):
        if op[i] >= max(s[i], d[i]):
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation in every dim, "
                f"got output_padding={op}, stride={s}, dilation={d}"
            )
    kernel = weight[2:]
    fine = []
    for i in range(nd):
        size = (input[2 + i] - 1) * s[i] - sum(pads[i]) + d[i] * (kernel[i] - 1) + op[i] + 1
        if size < 1:
            raise ValueError(
                f"computed output size {size} in spatial dim {i} is not positive "
                f"(input size {input[2 + i]}, kernel {kernel[i]}, stride {s[i]}, "
                f"padding {pads[i]}, dilation {d[i]}, output_padding {op[i]})"
            )
        fine.append(size)
    geom = Geometry(
        batch=int(input[0]),
        groups=g,
        coarse_channels=c_in,
        fine_channels=int(weight[1]) * g,
        coarse=tuple(int(v) for v in input[2:]),
        fine=tuple(fine),
        kernel=kernel,
        stride=s,
        padding=pads,
        dilation=d,
    )
    check_element_count(geom.fine_shape, "output")
    check_index_range(geom)
    return geom


def conv_geometry(
    input: Sequence[int],
    weight: Sequence[int],
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
) -> Geometry:
    """Geometry of ``conv``, from the input and weight shapes; weight is (C_out, C_in/groups, *k).

    The conv's input is the fine side, its output the coarse side.
    """
    input, weight = tuple(int(v) for v in input), tuple(int(v) for v in weight)
    nd = spatial_ndim(input, "input")
    g, c_in = _weight_and_groups(input, weight, groups)
    check_extents(input, weight)
    if weight[1] * g != c_in:
        raise ValueError(
            f"weight.shape[1] * groups ({weight[1]} * {g}) must equal the input channels "
            f"({c_in}); conv weights are laid out (C_out, C_in/groups, *kernel), "
            f"got weight of shape {weight}"
        )
    if weight[0] % g != 0:
        raise ValueError(f"groups={g} must divide the output channels ({weight[0]})")
    s = int_tuple(stride, nd, "stride", 1)
    d = int_tuple(dilation, nd, "dilation", 1)
    kernel = weight[2:]
    mode = padding_string(padding)
    if mode == "same":  # TF's rule (ceil(i/s) outputs); PyTorch's at stride 1
        pads = tuple(same_conv(n, k, si, di) for n, k, si, di in zip(input[2:], kernel, s, d))
    else:
        pads = padding_pairs(0 if mode == "valid" else padding, nd)
    coarse = []
    for i in range(nd):
        span = input[2 + i] + sum(pads[i]) - d[i] * (kernel[i] - 1) - 1
        if span < 0:
            raise ValueError(
                f"computed output size in spatial dim {i} is not positive: padded input "
                f"{input[2 + i] + sum(pads[i])} is smaller than the dilated kernel "
                f"{d[i] * (kernel[i] - 1) + 1}"
            )
        coarse.append(span // s[i] + 1)
    geom = Geometry(
        batch=int(input[0]),
        groups=g,
        coarse_channels=int(weight[0]),
        fine_channels=c_in,
        coarse=tuple(coarse),
        fine=tuple(int(v) for v in input[2:]),
        kernel=kernel,
        stride=s,
        padding=pads,
        dilation=d,
    )
    check_element_count(geom.coarse_shape, "output")
    check_index_range(geom)
    return geom


def check_bias(bias: FloatArray | None, channels: int) -> None:
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != channels):
        raise ValueError(
            f"bias must be 1-D with one entry per output channel ({channels}), "
            f"got shape {bias.shape}"
        )


def check_shape(arr: FloatArray, expected: Sequence[int], name: str) -> None:
    if tuple(arr.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(arr.shape)}")


def output_array(
    out: object, shape: Sequence[int], dtype: np.dtype[Any], inputs: Sequence[FloatArray]
) -> FloatArray:
    """A fresh C-contiguous result, or the validated user-provided ``out``."""
    if out is None:
        return np.empty(tuple(shape), dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    check_shape(out, shape, "out")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.aligned:
        raise ValueError("out must be aligned to its dtype")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    for arr in inputs:
        if np.shares_memory(out, arr):
            raise ValueError("out must not overlap any input array")
    return out
