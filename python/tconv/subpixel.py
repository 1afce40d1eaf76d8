"""The sub-pixel form of a transposed convolution: a stride-1 convolution in the *coarse* space
followed by a pixel shuffle (Shi et al. 2016, "Is the deconvolution layer the same as a
convolutional layer?").

Per spatial dim, ignore the padding for a moment (it only decides which window of the result
is kept).  Tap ``t`` of a transposed convolution writes ``x[n]*w[t]`` into position
``q = n*s + t*d``.  With ``t*d = a_t*s + r_t`` (``0 <= r_t < s``) that is phase ``r_t`` of
coarse position ``m = n + a_t``, so each phase is an ordinary stride-1 correlation of the input
with its own sub-kernel:

    y_full[m*s + r] = sum_{t : r_t = r} w[t] * x[m - a_t].

Stacking the ``s`` sub-kernels (``prod(s)`` in N-D) along the output channels gives one
convolution weight ``V`` (:func:`to_subpixel`) of length ``A = floor(d*(k-1)/s) + 1`` per dim,
``V[f*prod(s) + r, c, a_max - a_t] = w[c, f, t]``.  :func:`pixel_shuffle` interleaves the
phases back into space, and cutting out the window ``[p, p + o)`` (:func:`subpixel_geometry`;
whole multiples of ``s`` of it are folded into the conv's padding) finishes the job
(:func:`conv_transpose_subpixel`).  No multiply touches an inserted zero when ``s`` divides
``d*(k-1) + 1`` (e.g. k=4, s=2) — this is how fast deconvolution implementations (e.g.
XNNPACK's subconvolutions) work.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._args import (
    FloatArray,
    IntOrTuple,
    PaddingArg,
    as_float_array,
    as_groups,
    check_bias,
    float_arrays,
    int_tuple,
    padding_pairs,
    size_args,
    spatial_ndim,
    transposed_geometry,
)
from .emulate import place
from .functional import conv

__all__ = [
    "pixel_shuffle",
    "pixel_unshuffle",
    "to_subpixel",
    "SubpixelGeometry",
    "subpixel_geometry",
    "conv_transpose_subpixel",
]


def pixel_shuffle(input: object, upscale_factor: IntOrTuple) -> FloatArray:
    """Rearrange ``(N, C*prod(r), *i)`` into ``(N, C, *(i*r))``.

    Channel ``c*prod(r) + flat(phase)`` (phases in C order, e.g. ``ph_h*r_w + ph_w`` in 2-D)
    at position ``i`` goes to ``out[c, i*r + phase]``.  For 4-D input and an int factor this is
    exactly :func:`torch.nn.functional.pixel_shuffle`; 3-D and 5-D inputs are its 1-D and
    3-D analogues (``(N, C, *spatial)`` as everywhere in tconv).
    """
    x = as_float_array(input, "input")
    nd = spatial_ndim(x.shape, "input")
    r = int_tuple(upscale_factor, nd, "upscale_factor", 1)
    block = int(np.prod(r))
    if x.shape[1] % block != 0:
        raise ValueError(
            f"input channels ({x.shape[1]}) must be divisible by prod(upscale_factor) ({block})"
        )
    n, c, spatial = x.shape[0], x.shape[1] // block, x.shape[2:]
    split = x.reshape(n, c, *r, *spatial)
    # (N, C, r1..rk, i1..ik) -> (N, C, i1, r1, ..., ik, rk)
    order = [0, 1] + [axis for d in range(nd) for axis in (2 + nd + d, 2 + d)]
    out = split.transpose(order).reshape(n, c, *(i * f for i, f in zip(spatial, r)))
    return np.ascontiguousarray(out)


def pixel_unshuffle(input: object, downscale_factor: IntOrTuple) -> FloatArray:
    """The inverse of :func:`pixel_shuffle`: ``(N, C, *(i*r))`` into ``(N, C*prod(r), *i)``.

    For 4-D input and an int factor this is :func:`torch.nn.functional.pixel_unshuffle`.
    """
    x = as_float_array(input, "input")
    nd = spatial_ndim(x.shape, "input")
    r = int_tuple(downscale_factor, nd, "downscale_factor", 1)
    for dim, (size, f) in enumerate(zip(x.shape[2:], r)):
        if size % f != 0:
            raise ValueError(
                f"input spatial dim {dim} ({size}) must be divisible by downscale_factor ({f})"
            )
    n, c = x.shape[:2]
    coarse = [size // f for size, f in zip(x.shape[2:], r)]
    split = x.reshape(n, c, *(v for pair in zip(coarse, r) for v in pair))
    # (N, C, i1, r1, ..., ik, rk) -> (N, C, r1..rk, i1..ik)
    order = [0, 1] + [3 + 2 * d for d in range(nd)] + [2 + 2 * d for d in range(nd)]
    out = split.transpose(order).reshape(n, c * int(np.prod(r)), *coarse)
    return np.ascontiguousarray(out)


def _tap_offsets(kernel: int, stride: int, dilation: int) -> tuple[list[int], list[int]]:
    """Per tap: (phase r_t, coarse offset a_t) with ``t*d = a_t*s + r_t``."""
    return [t * dilation % stride for t in range(kernel)], [t * dilation // stride
                                                             for t in range(kernel)]


def to_subpixel(
    weight: object,
    stride: IntOrTuple,
    padding: PaddingArg = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> FloatArray:
    """The stride-1 convolution weight of a transposed convolution's sub-pixel form.

    Parameters
    ----------
    weight : array_like, shape (C_in, C_out/groups, *k)
        A transposed-convolution weight (PyTorch layout).
    stride, groups, dilation : as for :func:`tconv.conv_transpose`
    padding : as for :func:`tconv.conv_transpose`
        Validated but it does not change ``V``: padding only moves the window that is cut out
        of the shuffled result (:func:`subpixel_geometry`).  Phases are counted from the
        unpadded origin, which gives the shortest sub-kernels, ``A = floor(d*(k-1)/s) + 1``.

    Returns
    -------
    ndarray ``V`` of shape ``(C_out*prod(s), C_in/groups, *A)``, a :func:`tconv.conv` weight:
    ``V[g*C_out/g*P + f*P + flat(r), c, a_max - a_t] = weight[g*C_in/g + c, f, t]`` for every
    tap ``t`` with ``t*d = a_t*s + r_t`` (``P = prod(s)``).  With ``geo =
    subpixel_geometry(...)``,
    ``pixel_shuffle(conv(x, V, padding=geo.padding, groups=groups), s)`` cropped to
    ``[geo.crop_start, geo.crop_start + geo.output_size)`` per dim equals
    ``conv_transpose(x, weight, ...)``.
    """
    w = as_float_array(weight, "weight")
    if w.ndim not in (3, 4, 5):
        raise ValueError(
            f"weight must be 3-D to 5-D (C_in, C_out/groups, *kernel), got shape {w.shape}"
        )
    nd = w.ndim - 2
    s = int_tuple(stride, nd, "stride", 1)
    d = int_tuple(dilation, nd, "dilation", 1)
    padding_pairs(padding, nd)
    g = as_groups(groups)
    if w.shape[0] % g != 0:
        raise ValueError(f"groups={g} must divide weight.shape[0] ({w.shape[0]})")
    out = w
    lengths = []
    for dim in range(nd):
        k = w.shape[2 + dim]
        phase, offset = _tap_offsets(k, s[dim], d[dim])
        a_max = max(offset)
        # scatter[t, r, j] = 1 when tap t goes to phase r, sub-kernel position j = a_max - a_t
        scatter = np.zeros((k, s[dim], a_max + 1), dtype=w.dtype)
        scatter[np.arange(k), phase, [a_max - a for a in offset]] = 1
        out = np.tensordot(out, scatter.reshape(k, -1), axes=([2], [0]))
        lengths.append(a_max + 1)
    c_in_g, c_out_g = w.shape[0] // g, w.shape[1]
    split = out.reshape(g, c_in_g, c_out_g, *(v for pair in zip(s, lengths) for v in pair))
    # -> (g, C_out/g, s1..sk, C_in/g, A1..Ak)
    order = ([0, 2] + [3 + 2 * dim for dim in range(nd)] + [1]
             + [4 + 2 * dim for dim in range(nd)])
    conv_w = split.transpose(order).reshape(g * c_out_g * int(np.prod(s)), c_in_g, *lengths)
    return np.ascontiguousarray(conv_w)


class SubpixelGeometry(NamedTuple):
    """Where the sub-pixel convolution runs and what to keep of its shuffled output.

    ``padding``: ``(low, high)`` per dim for the stride-1 conv (negative = crop the input);
    ``crop_start``, ``output_size``: per dim, the window of the shuffled result to keep.
    """

    padding: tuple[tuple[int, int], ...]
    crop_start: tuple[int, ...]
    output_size: tuple[int, ...]


def subpixel_geometry(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> SubpixelGeometry:
    """Padding and crop of the sub-pixel form, per dim.

    Write the low padding as ``p = alpha*s + beta`` (``0 <= beta < s``).  Output ``o`` is the
    unpadded position ``o + p``, i.e. coarse position ``m + alpha`` and phase ``r`` where
    ``o + beta = m*s + r``.  So the conv computes ``M = ceil((o_size + beta)/s)`` coarse
    positions starting at ``alpha``: padding ``low = a_max - alpha``,
    ``high = M - i + alpha``; the shuffled result is cropped to ``[beta, beta + o_size)``.
    """
    from .arithmetic import conv_transpose_output_size

    out = conv_transpose_output_size(input_size, kernel_size, stride, padding, output_padding,
                                     dilation)
    nd, i, k, s, d = size_args(input_size, kernel_size, stride, dilation, padding,
                               output_padding)
    pads = padding_pairs(padding, nd)
    conv_pads, crops = [], []
    for dim in range(nd):
        alpha, beta = divmod(pads[dim][0], s[dim])
        a_max = d[dim] * (k[dim] - 1) // s[dim]
        coarse_needed = -(-(out[dim] + beta) // s[dim])
        conv_pads.append((a_max - alpha, coarse_needed - i[dim] + alpha))
        crops.append(beta)
    return SubpixelGeometry(tuple(conv_pads), tuple(crops), out)


def conv_transpose_subpixel(
    input: object,
    weight: object,
    bias: object = None,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> FloatArray:
    """:func:`tconv.conv_transpose` computed in sub-pixel form: stride-1 :func:`tconv.conv`
    with :func:`to_subpixel`'s weight, :func:`pixel_shuffle`, crop.  Same arguments and result.

    Examples
    --------
    >>> import tconv
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 3, 4, 4))
    >>> bool(np.allclose(conv_transpose_subpixel(x, w, stride=2, padding=1),
    ...                  tconv.conv_transpose(x, w, stride=2, padding=1)))
    True
    """
    x, w, b = float_arrays(input, weight, bias)
    geom = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, groups,
                               dilation)
    check_bias(b, geom.fine_channels)
    geo = subpixel_geometry(geom.coarse, geom.kernel, geom.stride, geom.padding,
                            geom.output_padding, geom.dilation)
    pads = geo.padding
    v = to_subpixel(w, geom.stride, geom.padding, geom.groups, geom.dilation)
    phases = int(np.prod(geom.stride))
    b_rep = None if b is None else np.repeat(b, phases)
    if all(lo >= 0 and hi >= 0 for lo, hi in pads):
        coarse_out = conv(x, v, b_rep, stride=1, padding=pads, groups=geom.groups)
    else:  # crop (and pad) the input explicitly: conv's padding is non-negative
        size = [n + lo + hi for n, (lo, hi) in zip(geom.coarse, pads)]
        window = place(x, [lo for lo, _ in pads], [1] * geom.ndim, size)
        coarse_out = conv(window, v, b_rep, stride=1, padding=0, groups=geom.groups)
    fine = pixel_shuffle(coarse_out, geom.stride)
    crop = (slice(None), slice(None),
            *(slice(b, b + n) for b, n in zip(geo.crop_start, geo.output_size)))
    return np.ascontiguousarray(fine[crop])

