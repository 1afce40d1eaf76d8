"""Convolution arithmetic: output sizes both ways, the ``output_size`` ambiguity, and the direct
convolution that a transposed convolution equals (Dumoulin & Visin, *A guide to convolution
arithmetic for deep learning*, 2016).

Per spatial dim, with input size ``i``, kernel ``k``, stride ``s``, padding ``p`` (``p_lo``,
``p_hi`` when asymmetric), dilation ``d`` and output padding ``a``:

* convolution:             ``o = floor((i + p_lo + p_hi - d*(k - 1) - 1) / s) + 1``
* transposed convolution:  ``o = (i - 1)*s - p_lo - p_hi + d*(k - 1) + a + 1``

A padding side may be negative: it crops the convolution's input and extends the transposed
convolution's output with zeros (see docs/conventions.md).

The floor makes the convolution many-to-one: for ``s > 1`` up to ``s`` input sizes give the
same output size, so the transposed convolution, which goes the other way, has to be told which
one to produce.  That is what ``output_padding`` (``a``) is, and :func:`output_padding_for`
picks it from a wanted ``output_size`` as PyTorch does.

Dumoulin & Visin's relationship: a transposed convolution equals a *direct* convolution with
stride 1 over the input with ``s - 1`` zeros inserted between samples, padded by
``d*(k - 1) - p_lo`` on the low side and ``d*(k - 1) - p_hi + a`` on the high side, with the
kernel flipped in every spatial dim and its two channel axes swapped (per group).  A negative
padding means cropping.  :func:`equivalent_conv` returns those parameters;
:mod:`tconv.emulate` runs them.

Every size is an int or a tuple with one int per spatial dim; results are tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._args import (
    FloatArray,
    IntOrTuple,
    PaddingArg,
    as_float_array,
    as_groups,
    conv_sizes,
    int_tuple,
    output_padding_for_size,
    padding_pairs,
    size_args,
    spatial_ndim,
    spatial_output_size,
    transposed_sizes,
)

# Framework conventions (TF/Keras/JAX/ONNX/MXNet/torch): their home is _conventions.
from ._conventions import CONVENTIONS, Solution, convert, solve  # noqa: E402

__all__ = [
    "CONVENTIONS",
    "Solution",
    "convert",
    "solve",
    "conv_output_size",
    "conv_transpose_output_size",
    "output_padding_for",
    "EquivalentConv",
    "equivalent_conv",
    "flip_kernel",
    "WEIGHT_LAYOUTS",
    "convert_weight",
]


def conv_output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    """Spatial output size of a convolution: ``floor((i + p_lo + p_hi - d*(k-1) - 1)/s) + 1``.

    Raises ``ValueError`` when the padded input is smaller than the dilated kernel.

    Examples
    --------
    >>> conv_output_size(5, 3, stride=2, padding=1)
    (3,)
    """
    nd, i, k, s, d = size_args(input_size, kernel_size, stride, dilation, padding)
    return conv_sizes(i, k, s, padding_pairs(padding, nd, allow_negative=True), d)


def conv_transpose_output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    """Spatial output size of a transposed convolution:
    ``(i - 1)*s - p_lo - p_hi + d*(k - 1) + output_padding + 1``.

    ``0 <= output_padding < max(stride, dilation)`` as in PyTorch.

    Examples
    --------
    >>> conv_transpose_output_size(3, 3, stride=2, padding=1)    # 5 and 6 both conv to 3 ...
    (5,)
    >>> conv_transpose_output_size(3, 3, stride=2, padding=1, output_padding=1)   # ... pick 6
    (6,)
    """
    nd, i, k, s, d = size_args(input_size, kernel_size, stride, dilation, padding,
                               output_padding)
    op = int_tuple(output_padding, nd, "output_padding", 0)
    return transposed_sizes(i, k, s, padding_pairs(padding, nd, allow_negative=True), d, op)


def output_padding_for(
    output_size: Sequence[int],
    input_shape: Sequence[int],
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    dilation: IntOrTuple = 1,
) -> tuple[int, ...]:
    """The ``output_padding`` that makes a transposed convolution produce ``output_size``.

    PyTorch's rule for ``ConvTranspose*d(..., output_size=...)``: per dim the smallest output is
    ``m = (i - 1)*s - p_lo - p_hi + d*(k - 1) + 1`` and the answer is ``output_size - m``.
    PyTorch accepts ``m <= output_size < m + s``; tconv also accepts the extra sizes that
    ``output_padding < dilation`` allows when ``dilation > stride``, so the reachable range is
    ``m <= output_size < m + max(s, d)`` (identical to PyTorch's wherever PyTorch's is defined).

    Parameters
    ----------
    output_size : sequence of int
        The wanted spatial size (``nd`` entries) or the full output shape (``nd + 2`` entries).
    input_shape : sequence of int
        The transposed convolution's input shape ``(N, C_in, *spatial)``.
    kernel_size, stride, padding, dilation : int or tuple
        As for :func:`tconv.conv_transpose` (``padding`` may be ``(low, high)`` pairs).

    Returns
    -------
    tuple of int, one per spatial dim.

    Examples
    --------
    >>> output_padding_for((6, 6), (1, 8, 3, 3), 3, stride=2, padding=1)
    (1, 1)
    """
    shape = tuple(int(v) for v in input_shape)
    nd = spatial_ndim(shape, "input_shape")
    size = spatial_output_size(output_size, nd)
    k = int_tuple(kernel_size, nd, "kernel_size", 1)
    s = int_tuple(stride, nd, "stride", 1)
    d = int_tuple(dilation, nd, "dilation", 1)
    pads = padding_pairs(padding, nd, allow_negative=True)
    return output_padding_for_size(size, shape[2:], k, s, pads, d)


@dataclass(frozen=True)
class EquivalentConv:
    """The direct convolution equal to a transposed convolution (Dumoulin & Visin, sec. 4).

    Run it as: insert ``inserted_zeros[d]`` zeros between neighbouring input samples in every
    spatial dim (size becomes ``stretched_size``), pad each dim by ``padding[d] = (low, high)``
    (a negative amount crops), then convolve with stride 1, dilation ``dilation`` and the
    kernel flipped in every spatial dim with its channel axes swapped per group
    (:func:`flip_kernel`).  The result has spatial size ``output_size``.
    """

    inserted_zeros: tuple[int, ...]
    stretched_size: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    output_size: tuple[int, ...]
    flip_kernel: bool = True


def equivalent_conv(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> EquivalentConv:
    """Direct-convolution parameters equal to a transposed convolution.

    Per dim: ``s - 1`` inserted zeros (stretched size ``(i - 1)*s + 1``), padding
    ``(d*(k-1) - p_lo, d*(k-1) - p_hi + output_padding)``, stride 1, the same dilation, the
    flipped kernel.  Check: ``(i-1)*s + 1 + 2*d*(k-1) - p_lo - p_hi + a - d*(k-1)`` is the
    transposed convolution's output size.

    Examples
    --------
    >>> e = equivalent_conv(3, 3, stride=2, padding=1, output_padding=1)
    >>> e.inserted_zeros, e.stretched_size, e.padding, e.output_size
    ((1,), (5,), ((1, 2),), (6,))
    """
    out = conv_transpose_output_size(input_size, kernel_size, stride, padding, output_padding,
                                     dilation)
    nd, i, k, s, d = size_args(input_size, kernel_size, stride, dilation, padding,
                               output_padding)
    op = int_tuple(output_padding, nd, "output_padding", 0)
    pads = padding_pairs(padding, nd, allow_negative=True)
    reach = [d[dim] * (k[dim] - 1) for dim in range(nd)]
    return EquivalentConv(
        inserted_zeros=tuple(v - 1 for v in s),
        stretched_size=tuple((i[dim] - 1) * s[dim] + 1 for dim in range(nd)),
        padding=tuple(
            (reach[dim] - pads[dim][0], reach[dim] - pads[dim][1] + op[dim]) for dim in range(nd)
        ),
        kernel_size=k,
        stride=(1,) * nd,
        dilation=d,
        output_size=out,
    )


def flip_kernel(weight: object, groups: int = 1) -> FloatArray:
    """The direct-convolution weight of a transposed convolution's weight.

    ``weight`` has PyTorch's transposed layout ``(C_in, C_out/groups, *k)``; the result has the
    convolution layout ``(C_out, C_in/groups, *k)`` with
    ``result[g*C_out/groups + f, c, *t] = weight[g*C_in/groups + c, f, *(k - 1 - t)]``:
    channel axes swapped within each group, every spatial axis reversed.
    """
    w = as_float_array(weight, "weight")
    if w.ndim not in (3, 4, 5):
        raise ValueError(f"weight must be 3-D to 5-D (C_in, C_out/groups, *k), got shape {w.shape}")
    g = as_groups(groups)
    if w.shape[0] % g != 0:
        raise ValueError(f"groups={g} must divide weight.shape[0] ({w.shape[0]})")
    c_in, c_out_g, kernel = w.shape[0], w.shape[1], w.shape[2:]
    per_group = w.reshape(g, c_in // g, c_out_g, *kernel).swapaxes(1, 2)
    spatial_axes = tuple(range(3, 3 + len(kernel)))
    flipped = np.flip(per_group, axis=spatial_axes)
    return np.ascontiguousarray(flipped.reshape(g * c_out_g, c_in // g, *kernel))


#: Frameworks whose transposed-conv kernel layout :func:`convert_weight` knows.
WEIGHT_LAYOUTS = ("tconv", "torch", "onnx", "mxnet", "keras", "tf", "jax")


def _check_layout(name: object, arg: str) -> str:
    if not isinstance(name, str) or name.lower() not in WEIGHT_LAYOUTS:
        raise ValueError(f"{arg} must be one of {', '.join(WEIGHT_LAYOUTS)}; got {name!r}")
    return name.lower()


def _jax_perm(spec: str | None, ndim: int) -> tuple[int, ...]:
    """Axes of a JAX kernel (its ``dimension_numbers`` rhs spec) in the order (O, I, *spatial),
    spatial in the order the spec lists them (JAX orders the lhs/out spatial dims by it too)."""
    nd = ndim - 2
    if spec is None:  # lax.conv_transpose's default: TensorFlow's HIO / HWIO / HWDIO
        spec = "HWD"[:nd] + "IO"
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as 'HWIO' or 'OIHW', got {spec!r}")
    letters = spec.upper()
    if len(letters) != ndim or sorted(letters) != sorted(set(letters)) or not {"O", "I"} <= set(
            letters):
        raise ValueError(
            f"spec must name each of the weight's {ndim} axes once, with 'O' and 'I' among "
            f"them (e.g. {'HWD'[:nd] + 'IO'!r} or {'OI' + 'HWD'[:nd]!r}); got {spec!r}"
        )
    spatial = tuple(a for a, c in enumerate(letters) if c not in "OI")
    return (letters.index("O"), letters.index("I"), *spatial)


def _to_tconv(w: FloatArray, layout: str, groups: int, spec: str | None,
              transpose_kernel: bool) -> FloatArray:
    nd = w.ndim - 2
    if layout in ("tconv", "torch", "onnx", "mxnet"):
        return w
    if layout in ("keras", "tf"):  # (*k, C_out/groups, C_in) -> (C_in, C_out/groups, *k)
        return np.ascontiguousarray(np.transpose(w, (nd + 1, nd, *range(nd))))
    oi = np.transpose(w, _jax_perm(spec, w.ndim))  # (O, I, *k) as the spec labels them
    if transpose_kernel:
        # lax.conv_transpose flips the spatial axes and swaps O and I before correlating, so the
        # axis labelled O holds tconv's C_in: the gradient layout, no flip left to undo.
        return np.ascontiguousarray(oi)
    # transpose_kernel=False correlates the stride-dilated input with the kernel as given:
    # a direct-conv kernel (C_out, C_in/groups, *k); flip_kernel is its own inverse.
    return flip_kernel(oi, groups=groups)


def _from_tconv(t: FloatArray, layout: str, groups: int, spec: str | None,
                transpose_kernel: bool) -> FloatArray:
    nd = t.ndim - 2
    if layout in ("tconv", "torch", "onnx", "mxnet"):
        return t
    if layout in ("keras", "tf"):
        return np.ascontiguousarray(np.transpose(t, (*range(2, 2 + nd), 1, 0)))
    oi = t if transpose_kernel else flip_kernel(t, groups=groups)
    inverse = np.argsort(_jax_perm(spec, t.ndim))
    return np.ascontiguousarray(np.transpose(oi, tuple(int(a) for a in inverse)))


def convert_weight(
    weight: object,
    *,
    from_: str,
    to: str,
    groups: int = 1,
    spec: str | None = None,
    transpose_kernel: bool = False,
    in_channels: int | None = None,
    out_channels: int | None = None,
    kernel_size: IntOrTuple | None = None,
) -> FloatArray:
    """Bring a transposed-convolution kernel from one framework's layout to another's.

    ==============================  ===========================================================
    layout                          kernel of the transposed conv (``C_in`` = its input channels)
    ==============================  ===========================================================
    tconv, torch, onnx, mxnet       ``(C_in, C_out/groups, *k)``
    keras, tf                       ``(*k, C_out/groups, C_in)`` (``Conv*DTranspose.kernel``,
                                    ``tf.nn.conv_transpose`` ``filters``)
    jax, ``transpose_kernel=True``  ``(C_in, C_out, *k)`` labelled O, I, spatial by ``spec``
    jax, ``transpose_kernel=False`` a direct-conv kernel: ``(C_out, C_in/groups, *k)``
                                    labelled O, I, spatial by ``spec``, spatially flipped
    ==============================  ===========================================================

    Parameters
    ----------
    weight : array_like, 3-D to 5-D
    from_, to : str
        One of :data:`WEIGHT_LAYOUTS`.
    groups : int
        Channel groups (JAX's ``lax.conv_transpose`` has none: ``groups > 1`` with "jax" means
        ``lax.conv_general_dilated(..., lhs_dilation=strides, feature_group_count=groups)``,
        which needs ``transpose_kernel=False``).
    spec : str, optional
        For "jax": the rhs entry of ``dimension_numbers`` (default ``lax.conv_transpose``'s
        "HIO"/"HWIO"/"HWDIO"; e.g. "OIHW" with ``('NCHW', 'OIHW', 'NCHW')``).  Spatial axes
        come out in the order the spec lists them.
    transpose_kernel : bool
        For "jax": the ``transpose_kernel`` argument of ``lax.conv_transpose`` (default False,
        as in JAX).
    in_channels, out_channels, kernel_size : optional
        What the transposed conv should have.  A square kernel such as Keras' ``(4, 4, 4, 4)``
        is a valid shape in every layout, so a wrong ``from_`` cannot be seen in the shape;
        with these hints a mismatch raises and names the layouts the shape does fit.

    Returns
    -------
    ndarray (float32 stays float32), contiguous.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.zeros((3, 3, 16, 8))            # Keras Conv2DTranspose(16, 3) on 8 channels
    >>> convert_weight(k, from_="keras", to="torch").shape
    (8, 16, 3, 3)
    """
    src, dst = _check_layout(from_, "from_"), _check_layout(to, "to")
    w = as_float_array(weight, "weight")
    if w.ndim not in (3, 4, 5):
        raise ValueError(f"weight must be 3-D to 5-D, got shape {w.shape}")
    g = as_groups(groups)
    if not isinstance(transpose_kernel, (bool, np.bool_)):
        raise TypeError(f"transpose_kernel must be a bool, got {transpose_kernel!r}")
    if src == dst == "jax":
        raise ValueError("from_ and to are both 'jax' with one spec/transpose_kernel; convert "
                         "to 'tconv' first, then to 'jax' with the other settings")
    if "jax" in (src, dst) and transpose_kernel and g > 1:
        raise ValueError("lax.conv_transpose has no groups: transpose_kernel=True needs "
                         "groups=1 (grouped JAX kernels are conv_general_dilated kernels, "
                         "transpose_kernel=False)")
    t = _to_tconv(w, src, g, spec, bool(transpose_kernel))
    if t.shape[0] % g != 0:
        raise ValueError(f"groups={g} must divide the input channels ({t.shape[0]}) of this "
                         f"{src} weight of shape {w.shape}")
    _check_hints(w, t, src, g, spec, bool(transpose_kernel), in_channels, out_channels,
                 kernel_size)
    return _from_tconv(t, dst, g, spec, bool(transpose_kernel))


def _check_hints(w: FloatArray, t: FloatArray, src: str, groups: int, spec: str | None,
                 transpose_kernel: bool, in_channels: int | None, out_channels: int | None,
                 kernel_size: IntOrTuple | None) -> None:
    nd = w.ndim - 2
    want: dict[int, int] = {}
    if in_channels is not None:
        want[0] = int_tuple(in_channels, 1, "in_channels", 1)[0]
    if out_channels is not None:
        c_out = int_tuple(out_channels, 1, "out_channels", 1)[0]
        if c_out % groups != 0:
            raise ValueError(f"groups={groups} must divide out_channels ({c_out})")
        want[1] = c_out // groups
    if kernel_size is not None:
        for a, k in enumerate(int_tuple(kernel_size, nd, "kernel_size", 1)):
            want[2 + a] = k
    def matches(shape: tuple[int, ...]) -> bool:
        return all(shape[a] == n for a, n in want.items())

    if matches(t.shape):
        return
    fits = []
    for other in WEIGHT_LAYOUTS:
        for tk in ((False, True) if other == "jax" else (transpose_kernel,)):
            try:
                if matches(_to_tconv(w, other, groups, spec, tk).shape):
                    fits.append(other + (f" (transpose_kernel={tk})" if other == "jax" else ""))
            except ValueError:
                continue
    hint = (f"; that shape does fit the layout of {', '.join(dict.fromkeys(fits))}"
            if fits else "")
    raise ValueError(
        f"a {src} weight of shape {w.shape} means in_channels={t.shape[0]}, "
        f"out_channels={t.shape[1] * groups}, kernel_size={t.shape[2:]}, not the "
        f"in_channels/out_channels/kernel_size given{hint}"
    )
