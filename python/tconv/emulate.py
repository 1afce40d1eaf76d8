"""A transposed convolution computed as an ordinary convolution ("always emulate with a direct
convolution", as the notes say).

Per spatial dim (input size ``i``, kernel ``k``, stride ``s``, padding ``p``, dilation ``d``,
output padding ``a``) the transposed convolution

    y[o] = sum_{n, t : o = n*s - p + t*d} x[n] * w[t]

equals a stride-1 convolution (cross-correlation) of the *zero-inserted* input
``z[n*s] = x[n]`` (``s - 1`` zeros between samples), padded by ``d*(k-1) - p`` on the low side
and ``d*(k-1) - p + a`` on the high side, with the kernel flipped, ``w'[t] = w[k-1-t]``:

    y[o] = sum_t z[o + p - d*(k-1) + t*d] * w'[t].

Substituting ``t -> k-1-t`` recovers the first sum.  A negative padding (``p > d*(k-1)``)
crops instead.  With channels, the flipped kernel also swaps its ``C_in`` and ``C_out`` axes
within each group (:func:`tconv.arithmetic.flip_kernel`); the parameters themselves come from
:func:`tconv.arithmetic.equivalent_conv`.

The cost: the convolution multiplies every kernel tap with every padded position, but only one
position in ``s`` per dim (``1/prod(s)`` of them) holds a real sample, so most multiply-adds
are spent on inserted zeros; :func:`emulation_cost` counts them.  The direct scatter kernel of
:func:`tconv.conv_transpose` performs only the non-zero products.
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
    float_arrays,
    int_tuple,
    spatial_ndim,
    transposed_geometry,
)
from .arithmetic import equivalent_conv, flip_kernel
from .functional import conv

__all__ = ["zero_insert", "conv_transpose_via_conv", "EmulationCost", "emulation_cost"]


def place(
    x: FloatArray,
    start: Sequence[int],
    step: Sequence[int],
    size: Sequence[int],
) -> FloatArray:
    """A zero array of spatial ``size`` with ``x[..., n] `` written at ``start + n*step``.

    Per spatial dim, sample ``n`` of ``x`` lands at position ``start[d] + n*step[d]`` when
    that lies in ``[0, size[d])``; samples that fall outside are dropped.  This one helper
    performs zero insertion (``step = s``), padding (``start > 0`` or a larger ``size``) and
    cropping (``start < 0`` or a smaller ``size``) at once, with one allocation.
    """
    out = np.zeros((*x.shape[:2], *size), dtype=x.dtype)
    src: list[slice] = [slice(None), slice(None)]
    dst: list[slice] = [slice(None), slice(None)]
    for dim, (lo, st, n_out) in enumerate(zip(start, step, size)):
        n_in = x.shape[2 + dim]
        first = 0 if lo >= 0 else (-lo + st - 1) // st  # first n with lo + n*st >= 0
        last = min(n_in, (n_out - 1 - lo) // st + 1)  # one past the last n inside
        if last <= first:
            return out  # nothing of x lands inside
        src.append(slice(first, last))
        dst.append(slice(lo + first * st, lo + (last - 1) * st + 1, st))
    out[tuple(dst)] = x[tuple(src)]
    return out


def zero_insert(x: object, stride: IntOrTuple) -> FloatArray:
    """Insert ``stride - 1`` zeros between neighbouring samples along each spatial dim.

    Parameters
    ----------
    x : array_like, shape (N, C, *i)
    stride : int or tuple

    Returns
    -------
    ndarray, shape (N, C, *((i - 1)*stride + 1)), with ``out[..., n*stride] = x[..., n]``
    and zeros elsewhere.

    Examples
    --------
    >>> zero_insert(np.array([[[1.0, 2.0, 3.0]]]), 2)
    array([[[1., 0., 2., 0., 3.]]])
    """
    arr = as_float_array(x, "x")
    nd = spatial_ndim(arr.shape, "x")
    s = int_tuple(stride, nd, "stride", 1)
    if any(n < 1 for n in arr.shape[2:]):
        raise ValueError(f"x must have spatial sizes >= 1, got shape {arr.shape}")
    size = [(n - 1) * st + 1 for n, st in zip(arr.shape[2:], s)]
    return place(arr, [0] * nd, s, size)


def conv_transpose_via_conv(
    input: object,
    weight: object,
    bias: object = None,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> FloatArray:
    """:func:`tconv.conv_transpose` computed as a stride-1 :func:`tconv.conv` of the
    zero-inserted, padded input with the flipped, channel-swapped kernel.

    Same arguments, shapes and result as :func:`tconv.conv_transpose` (``padding`` may be
    ``(low, high)`` pairs); slower, because most of its multiply-adds hit inserted zeros
    (see :func:`emulation_cost`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 4, 3, 3))
    >>> import tconv
    >>> bool(np.allclose(conv_transpose_via_conv(x, w, stride=2, padding=1),
    ...                  tconv.conv_transpose(x, w, stride=2, padding=1)))
    True
    """
    x, w, b = float_arrays(input, weight, bias)
    geom = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups,
                               dilation)
    eq = equivalent_conv(geom.coarse, geom.kernel, geom.stride, geom.padding,
                         geom.output_padding, geom.dilation)
    # The stretched input, padded (or cropped) by eq.padding, in one allocation.
    start = [lo for lo, _ in eq.padding]
    size = [n + lo + hi for n, (lo, hi) in zip(eq.stretched_size, eq.padding)]
    stretched = place(x, start, geom.stride, size)
    return conv(stretched, flip_kernel(w, geom.groups), b, stride=1, padding=0,
                dilation=geom.dilation, groups=geom.groups)


@dataclass(frozen=True)
class EmulationCost:
    """Multiply-adds of the emulation and of the direct scatter kernel.

    ``zero_fraction = 1 - direct_macs / emulation_macs`` is the share of the emulation's work
    spent multiplying inserted (or padded) zeros.
    """

    emulation_macs: int
    direct_macs: int
    zero_fraction: float


def _taps_landing(coarse: int, fine: int, kernel: int, stride: int, pad_lo: int,
                  dilation: int) -> int:
    """Number of (input position, tap) pairs with ``0 <= n*s - p + t*d < fine``."""
    count = 0
    for t in range(kernel):
        shift = pad_lo - t * dilation  # fine position = n*s - shift
        lo = max(0, -((-shift) // stride))  # ceil(shift / s)
        hi = min(coarse, (fine - 1 + shift) // stride + 1)
        count += max(0, hi - lo)
    return count


def emulation_cost(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> EmulationCost:
    """Count the multiply-adds of :func:`conv_transpose_via_conv` and of the direct kernel.

    * emulation: every output element of every output channel takes
      ``C_in/groups * prod(k)`` products: ``N * C_out * prod(o) * C_in/groups * prod(k)``;
    * direct (scatter, :func:`tconv.conv_transpose`): one product per input element, output
      channel of its group, and tap that lands inside the output:
      ``N * C_in * C_out/groups * prod_d #{(n, t): 0 <= n*s - p + t*d < o}``.

    Every non-zero product of the emulation is one of the direct kernel's, so the rest,
    ``zero_fraction``, multiplies zeros.  For a 2-D stride-2 layer it is about 3/4.

    Examples
    --------
    >>> c = emulation_cost((1, 64, 32, 32), (64, 32, 4, 4), stride=2, padding=1)
    >>> round(c.zero_fraction, 3)
    0.758
    """
    shape_in = tuple(int(v) for v in input_shape)
    shape_w = tuple(int(v) for v in weight_shape)
    geom = transposed_geometry(shape_in, shape_w, stride, padding, output_padding, groups,
                               dilation)
    c_in_g = geom.coarse_channels // geom.groups
    c_out_g = geom.fine_channels // geom.groups
    emul = geom.batch * geom.fine_channels * int(np.prod(geom.fine)) * c_in_g * int(
        np.prod(geom.kernel))
    pairs = 1
    for dim in range(geom.ndim):
        pairs *= _taps_landing(geom.coarse[dim], geom.fine[dim], geom.kernel[dim],
                               geom.stride[dim], geom.padding[dim][0], geom.dilation[dim])
    direct = geom.batch * geom.coarse_channels * c_out_g * pairs
    fraction = 1.0 - direct / emul if emul else 0.0
    return EmulationCost(emulation_macs=emul, direct_macs=direct, zero_fraction=fraction)
