"""Normalise and validate user arguments into one :class:`Geometry`, in one place.

Every public entry point funnels its arguments through here, so each check (and each shape
formula) exists exactly once.  Errors name the argument and the value received:
``TypeError`` for a wrong kind or dtype, ``ValueError`` for a wrong shape or parameter.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, TypeVar, Union

import numpy as np
import numpy.typing as npt

from . import _pool

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
    ``fine`` its output.  Index map per spatial dim: ``fine = coarse * stride - pad_lo + tap *
    dilation``; sizes: ``fine = (coarse - 1)*stride - lo - hi + dilation*(kernel - 1) + 1 +
    output_padding``.  For a convolution ``output_padding`` is the part of its input that the
    last window does not reach (what its adjoint needs to restore the input's size).
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
    output_padding: tuple[int, ...]

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


# ---------------------------------------------------------------------------------------------
# Arrays and dtypes
# ---------------------------------------------------------------------------------------------


class HasDtype(Protocol):
    """A NumPy array, a dask array or a torch tensor: anything whose dtype can be compared."""

    @property
    def dtype(self) -> Any: ...


def _refuse_grad_tensor(value: object, name: str) -> None:
    """A torch tensor that requires grad: the NumPy API would drop the graph (and torch refuses
    the conversion with its own message); point to the autograd API instead."""
    if type(value).__module__.startswith("torch") and getattr(value, "requires_grad", False) is True:
        raise TypeError(
            f"{name} is a torch.Tensor that requires grad, but tconv's NumPy functions do not "
            f"track gradients: use tconv.torch (conv_transpose1d/2d/3d, ConvTranspose1d/2d/3d: "
            f"autograd-aware), or pass {name}.detach() if no gradient is needed"
        )


def check_float_dtype(dtype: np.dtype[Any], name: str) -> None:
    """The kernels compute in float32 and float64 only; anything else is a TypeError (no
    silent casting)."""
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{name} must have dtype float32 or float64, got dtype {dtype} "
            f"(convert explicitly, e.g. {name}.astype(np.float32))"
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
    check_float_dtype(arr.dtype, name)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_same_dtype(reference: HasDtype, ref_name: str, *, what: str = "arrays",
                     **others: HasDtype | None) -> None:
    """Every one of ``others`` (None skipped) has ``reference``'s dtype."""
    for name, arr in others.items():
        if arr is not None and arr.dtype != reference.dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but {ref_name} has dtype {reference.dtype}; "
                f"all {what} must share one dtype"
            )


def float_arrays(
    input: object, weight: object, bias: object = None
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """``(input, weight, bias)`` of a convolution-like call as float arrays of one dtype."""
    x = as_float_array(input, "input")
    w = as_float_array(weight, "weight")
    b = None if bias is None else as_float_array(bias, "bias")
    check_same_dtype(x, "input", weight=w, bias=b)
    return x, w, b


def contiguous(arr: FloatArray) -> FloatArray:
    """C-contiguous, aligned view of ``arr``; copies only when needed (the kernels may use
    aligned vector loads, and misaligned scalar access is undefined behaviour in C++)."""
    return np.require(arr, requirements=["C", "A"])


# ---------------------------------------------------------------------------------------------
# Ints and int-or-tuple arguments
# ---------------------------------------------------------------------------------------------


def _as_int(value: object, name: str, whole: object = None,
            expected: str = "an int or a tuple of ints") -> int:
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
        raise TypeError(f"{name} must be {expected}, got {_fmt(value)}{kind}{where}") from None


def as_int(value: object, name: str) -> int:
    """One int argument (a channel count): Python and NumPy integers and 0-d integer arrays; a
    bool, float or anything else is a TypeError naming ``name``."""
    return _as_int(value, name, expected="an int")


def as_groups(value: object) -> int:
    """``groups``: an int >= 1."""
    g = as_int(value, "groups")
    if g < 1:
        raise ValueError(f"groups must be a positive integer, got {g}")
    return g


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


def implied_ndim(*values: object) -> int:
    """Spatial dims implied by int-or-tuple size arguments (1 when all are plain ints)."""
    lengths = {len(v) for v in values if isinstance(v, (list, tuple, np.ndarray))}
    if len(lengths) > 1:
        raise ValueError(
            f"size arguments disagree on the number of spatial dims: got lengths {sorted(lengths)}"
        )
    nd = lengths.pop() if lengths else 1
    if nd not in (1, 2, 3):
        raise ValueError(f"tconv supports 1, 2 or 3 spatial dims, got {nd}")
    return nd


def size_args(input_size: object, kernel_size: object, stride: object, dilation: object,
              *others: object) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...],
                                        tuple[int, ...]]:
    """``(nd, input_size, kernel_size, stride, dilation)`` of the shape-only functions, each an
    int or one int per spatial dim (``others``, e.g. padding, only count towards ``nd``)."""
    nd = implied_ndim(input_size, kernel_size, stride, dilation, *others)
    return (nd, int_tuple(input_size, nd, "input_size", 1),
            int_tuple(kernel_size, nd, "kernel_size", 1), int_tuple(stride, nd, "stride", 1),
            int_tuple(dilation, nd, "dilation", 1))


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


# ---------------------------------------------------------------------------------------------
# Sizes, one spatial dim at a time: the shape formulas live here and nowhere else.
# ---------------------------------------------------------------------------------------------


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def dilated_extent(k: int, d: int) -> int:
    """Span of a kernel of ``k`` taps at dilation ``d``."""
    return d * (k - 1) + 1


def transposed_size(i: Any, k: Any, s: int, lo: int, hi: int, d: int, op: int) -> Any:
    """``(i - 1)*s - lo - hi + d*(k - 1) + 1 + op``: the transposed conv's output size (plain
    arithmetic, so that torch's symbolic sizes pass through unevaluated)."""
    return (i - 1) * s - lo - hi + d * (k - 1) + 1 + op


def check_output_padding(op: Sequence[int], stride: Sequence[int],
                         dilation: Sequence[int]) -> None:
    if any(o >= max(s, d) for o, s, d in zip(op, stride, dilation)):
        raise ValueError(
            f"output_padding must be smaller than either stride or dilation in every dim, "
            f"got output_padding={tuple(op)}, stride={tuple(stride)}, dilation={tuple(dilation)}"
        )


def transposed_sizes(coarse: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                     pads: Sequence[tuple[int, int]], dilation: Sequence[int],
                     output_padding: Sequence[int]) -> tuple[int, ...]:
    """Spatial output size of a transposed conv, checked: ``output_padding < max(s, d)`` and
    every size positive."""
    check_output_padding(output_padding, stride, dilation)
    sizes = []
    for dim, (i, k, s, (lo, hi), d, op) in enumerate(
            zip(coarse, kernel, stride, pads, dilation, output_padding)):
        size = transposed_size(i, k, s, lo, hi, d, op)
        if size < 1:
            raise ValueError(
                f"computed output size {size} in spatial dim {dim} is not positive "
                f"(input size {i}, kernel {k}, stride {s}, padding {(lo, hi)}, dilation {d}, "
                f"output_padding {op})"
            )
        sizes.append(size)
    return tuple(sizes)


def conv_sizes(fine: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
               pads: Sequence[tuple[int, int]], dilation: Sequence[int]) -> tuple[int, ...]:
    """Spatial output size of a convolution, ``floor((n + lo + hi - d*(k - 1) - 1)/s) + 1``,
    checked to be positive."""
    sizes = []
    for dim, (n, k, s, (lo, hi), d) in enumerate(zip(fine, kernel, stride, pads, dilation)):
        span = n + lo + hi - dilated_extent(k, d)
        if span < 0:
            raise ValueError(
                f"computed output size in spatial dim {dim} is not positive: padded input "
                f"{n + lo + hi} is smaller than the dilated kernel {dilated_extent(k, d)}"
            )
        sizes.append(span // s + 1)
    return tuple(sizes)


# ---------------------------------------------------------------------------------------------
# "same" / "valid": the rules behind tconv's padding strings (TensorFlow's, which Keras and JAX
# share for the transposed conv).  A placement is ``(lo, size)``: the output is the window of
# ``size`` elements starting ``lo`` elements into the full (unpadded) output; see
# tconv._conventions, which expresses every framework's convention as one.
# ---------------------------------------------------------------------------------------------

Placement = tuple[int, int]


def full_size(i: int, k: int, s: int, d: int) -> int:
    """Output size of an unpadded transposed conv, ``(i - 1)*s + d*(k - 1) + 1``."""
    return int(transposed_size(i, k, s, 0, 0, d, 0))


def same_transposed(i: int, k: int, s: int, d: int, size: int | None = None) -> Placement:
    """Placement of a ``padding="same"`` transposed conv: TensorFlow's ``conv2d_transpose``.

    TF computes the transposed conv as the input gradient of a ``SAME`` conv whose input has
    ``size`` elements (default ``i*s``) and whose output has ``i = ceil(size/s)`` elements; that
    conv pads ``total = max((i - 1)*s + k_dil - size, 0)`` split as ``lo = total // 2`` before
    and ``total - lo`` after (the odd element goes to the END), so the transposed output is the
    full output cropped by ``lo`` at the start.  JAX's ``conv_transpose(padding="SAME")`` and
    Keras' ``Conv*DTranspose(padding="same")`` give the same placement for ``size = i*s``.
    (tensorflow/core/framework/kernel_shape_util.cc GetWindowedOutputSizeVerbose.)
    """
    size = i * s if size is None else size
    if ceil_div(size, s) != i:
        raise ValueError(
            f"padding='same' with output size {size} needs ceil({size}/stride {s}) == input "
            f"size {i}; choose an output size in [{(i - 1) * s + 1}, {i * s}]"
        )
    return max(full_size(i, k, s, d) - size, 0) // 2, size


def valid_transposed(i: int, k: int, s: int, d: int, size: int | None = None) -> Placement:
    """Placement of a ``padding="valid"`` transposed conv (TF/Keras/JAX): no cropping.

    Default size ``i*s + max(k_dil - s, 0)`` (Keras ``deconv_output_length``, JAX ``VALID``):
    the full output, extended with zeros up to ``i*s`` when ``k_dil < s``.  An explicit ``size``
    must satisfy TF's ``ceil((size - k_dil + 1)/s) == i``.
    """
    kd = dilated_extent(k, d)
    size = i * s + max(kd - s, 0) if size is None else size
    if ceil_div(size - kd + 1, s) != i:
        lo_size, hi_size = (i - 1) * s + kd, i * s + kd - 1
        raise ValueError(
            f"padding='valid' with output size {size} needs ceil((size - {kd} + 1)/stride {s}) "
            f"== input size {i}; choose an output size in [{lo_size}, {hi_size}]"
        )
    return 0, size


def same_conv(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """(lo, hi) padding of a ``padding="same"`` convolution of an ``n``-element input (TF rule).

    Output ``ceil(n/s)``; ``total = max((ceil(n/s) - 1)*s + k_dil - n, 0)``, ``lo = total // 2``,
    the odd element at the END.  At stride 1 this is exactly PyTorch's ``padding="same"``
    (which PyTorch rejects for stride > 1).
    """
    total = max((ceil_div(n, s) - 1) * s + dilated_extent(k, d) - n, 0)
    return total // 2, total - total // 2


def placement_to_tconv(i: int, k: int, s: int, d: int, placement: Placement) -> tuple[
        tuple[int, int], int]:
    """``((lo, hi), output_padding)`` in tconv's terms for one dim's placement: ``lo < 0``
    (the output starts before the full output) and ``hi < 0`` (zeros appended beyond
    ``output_padding``'s reach) are tconv's negative padding, i.e. zero extension."""
    lo, size = placement
    if size < 1:
        raise ValueError(f"computed output size {size} is not positive")
    rest = full_size(i, k, s, d) - lo - size
    if rest >= 0:
        return (lo, rest), 0
    if -rest < max(s, d):
        return (lo, 0), -rest
    return (lo, rest), 0


def transposed_string_padding(
    mode: str,
    coarse: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    output_size: Sequence[int] | None = None,
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """(padding pairs, output_padding) of a transposed conv with ``padding="same"|"valid"``
    for the default or given output size."""
    rule = same_transposed if mode == "same" else valid_transposed
    sizes: Sequence[int | None] = [None] * len(coarse) if output_size is None else output_size
    pads, ops = [], []
    for i, k, s, d, size in zip(coarse, kernel, stride, dilation, sizes):
        pair, op = placement_to_tconv(i, k, s, d, rule(i, k, s, d, size))
        pads.append(pair)
        ops.append(op)
    return tuple(pads), tuple(ops)


def _refuse_output_padding_with_string(op: Sequence[int], padding: object) -> None:
    if any(op):
        raise ValueError(
            f"output_padding={tuple(op)} cannot be combined with padding={padding!r}, which "
            "fixes the output size; pass output_size= instead"
        )


# ---------------------------------------------------------------------------------------------
# output_size: the output_padding (or, for "same"/"valid", the padding) that gives a size
# ---------------------------------------------------------------------------------------------


def spatial_output_size(output_size: object, nd: int) -> tuple[int, ...]:
    """``output_size`` as ``nd`` spatial sizes: a sequence of ``nd`` ints, or of ``nd + 2``
    (a full output shape, whose batch and channel entries are ignored)."""
    if not isinstance(output_size, (list, tuple, np.ndarray)) or (
            isinstance(output_size, np.ndarray) and output_size.ndim != 1):
        raise TypeError(f"output_size must be a sequence of ints, got {_fmt(output_size)}")
    size = int_tuple(output_size, len(output_size), "output_size", 0)
    if len(size) == nd + 2:
        size = size[2:]
    if len(size) != nd:
        raise ValueError(
            f"output_size must have {nd} (or {nd + 2}) entries for {nd}-D input, "
            f"got {_fmt(output_size)}"
        )
    return size


def output_padding_for_size(
    size: Sequence[int],
    coarse: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """PyTorch's ``output_size`` rule: per dim the smallest output is ``m`` (output_padding 0)
    and ``output_padding = size - m``, reachable for ``m <= size < m + max(s, d)`` (PyTorch's
    ``m + s`` wherever PyTorch's is defined; ``output_padding < dilation`` adds the rest)."""
    op = []
    for dim, (want, i, k, s, (lo, hi), d) in enumerate(
            zip(size, coarse, kernel, stride, pads, dilation)):
        smallest = transposed_size(i, k, s, lo, hi, d, 0)
        first, last = max(smallest, 1), smallest + max(s, d) - 1
        if not first <= want <= last:
            raise ValueError(
                f"output_size {tuple(size)} is not reachable: spatial dim {dim} must lie in "
                f"[{first}, {last}] for input size {tuple(coarse)}, kernel {tuple(kernel)}, "
                f"stride {tuple(stride)}, padding {tuple(pads)} and dilation {tuple(dilation)}"
            )
        op.append(want - smallest)
    return tuple(op)


def resolve_output_size(
    input: Sequence[int],
    weight: Sequence[int],
    output_size: object,
    stride: object,
    padding: object,
    output_padding: object,
    groups: object,
    dilation: object,
) -> tuple[Any, tuple[int, ...]]:
    """``(padding, output_padding)`` for which ``conv_transpose`` produces ``output_size``:
    PyTorch's rule (an ``output_padding``, which replaces the one given) for numeric padding,
    which may have negative sides; TensorFlow's (``conv2d_transpose(output_shape=...)``, new
    padding pairs) for ``"same"``/``"valid"``."""
    full = transposed_geometry(input, weight, stride, 0, 0, groups, dilation)
    size = spatial_output_size(output_size, full.ndim)
    mode = padding_string(padding)
    if mode is not None:
        _refuse_output_padding_with_string(
            int_tuple(output_padding, full.ndim, "output_padding", 0), padding)
        return transposed_string_padding(mode, full.coarse, full.kernel, full.stride,
                                         full.dilation, size)
    pads = padding_pairs(padding, full.ndim, allow_negative=True)
    return padding, output_padding_for_size(size, full.coarse, full.kernel, full.stride, pads,
                                            full.dilation)


# ---------------------------------------------------------------------------------------------
# Shapes and the Geometry
# ---------------------------------------------------------------------------------------------


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
    g = as_groups(groups)
    if len(weight) != len(input):
        raise ValueError(
            f"weight must be {len(input)}-D to match input of shape {tuple(input)}, "
            f"got weight of shape {tuple(weight)}"
        )
    channels = int(input[1])
    if channels % g != 0:
        raise ValueError(f"groups={g} must divide the input channels ({channels})")
    return g, channels


# ---------------------------------------------------------------------------------------------
# Geometry memo
# ---------------------------------------------------------------------------------------------

_GeometryFn = TypeVar("_GeometryFn", bound=Callable[..., Any])
#: Argument combinations remembered per geometry function (all dropped when it is full).
_MEMO_SIZE = 256


def _memo_key(value: object) -> object:
    """A hashable key equal only for arguments that validate identically: every value keeps
    its type (``True``, ``1.0`` and ``1`` differ; ``[1, 2]`` and ``(1, 2)`` differ)."""
    if isinstance(value, (tuple, list)):
        return type(value), tuple(_memo_key(v) for v in value)
    return type(value), value


def _memoized(fn: _GeometryFn) -> _GeometryFn:
    """``fn`` (a pure function of hashable arguments returning a frozen Geometry) with the
    results of recent successful calls kept: validating a layer's arguments costs about as
    much as a small layer's arithmetic, and a model repeats the same few.  Failures are not
    kept (they raise again); unhashable arguments are validated every time.  No lock: each
    step is one dict operation, atomic for threads, and torch.compile traces this code (it
    refuses a lock); two threads missing at once both compute the same frozen value."""
    memo: dict[object, Any] = {}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            return fn(*args, **kwargs)
        try:
            key = tuple(_memo_key(a) for a in args)
            hit = memo.get(key)
        except TypeError:  # an unhashable argument
            return fn(*args)
        if hit is not None:
            return hit
        result = fn(*args)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = result
        return result

    wrapper.cache_clear = memo.clear  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@_memoized
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
    coarse, kernel = input[2:], weight[2:]
    mode = padding_string(padding)
    if mode is None:
        pads = padding_pairs(padding, nd)
    else:
        _refuse_output_padding_with_string(op, padding)
        pads, op = transposed_string_padding(mode, coarse, kernel, s, d)
    geom = Geometry(
        batch=input[0],
        groups=g,
        coarse_channels=c_in,
        fine_channels=weight[1] * g,
        coarse=coarse,
        fine=transposed_sizes(coarse, kernel, s, pads, d, op),
        kernel=kernel,
        stride=s,
        padding=pads,
        dilation=d,
        output_padding=op,
    )
    check_element_count(geom.fine_shape, "output")
    check_index_range(geom)
    return geom


@_memoized
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
    fine, kernel = input[2:], weight[2:]
    mode = padding_string(padding)
    if mode == "same":  # TF's rule (ceil(i/s) outputs); PyTorch's at stride 1
        pads = tuple(same_conv(n, k, si, di) for n, k, si, di in zip(fine, kernel, s, d))
    else:
        pads = padding_pairs(0 if mode == "valid" else padding, nd)
    coarse = conv_sizes(fine, kernel, s, pads, d)
    geom = Geometry(
        batch=input[0],
        groups=g,
        coarse_channels=weight[0],
        fine_channels=c_in,
        coarse=coarse,
        fine=fine,
        kernel=kernel,
        stride=s,
        padding=pads,
        dilation=d,
        output_padding=tuple(
            n - transposed_size(c, k, si, lo, hi, di, 0)
            for n, c, k, si, (lo, hi), di in zip(fine, coarse, kernel, s, pads, d)),
    )
    check_element_count(geom.coarse_shape, "output")
    check_index_range(geom)
    return geom


def output_mask_triple(output_mask: object) -> tuple[bool, bool, bool]:
    """A backward's ``output_mask``: three bools (or 0/1), which gradients to compute."""
    if not isinstance(output_mask, (list, tuple, np.ndarray)) or not all(
        isinstance(m, (bool, np.bool_)) or (isinstance(m, (int, np.integer)) and m in (0, 1))
        for m in output_mask
    ):
        raise TypeError(f"output_mask must be a sequence of 3 bools, got {output_mask!r}")
    mask = tuple(bool(m) for m in output_mask)
    if len(mask) != 3:
        raise ValueError(f"output_mask must have 3 entries, got {output_mask!r}")
    return mask[0], mask[1], mask[2]


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
        return _pool.new_array(shape, dtype)
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
