"""Transposed convolution of ``dask.array`` inputs, block by block, bit for bit.

:func:`conv_transpose` returns a lazy dask array equal, bit for bit, to
``tconv.conv_transpose`` of the whole array in memory, but never holds more than one output
block and the input region it needs.  Requires ``pip install "tconv[dask]"``.

How a block is computed.  Per spatial dim the transposed convolution sends input index ``i``
through tap ``k`` to output index ``o = i*s - p + k*d`` (``p`` the low-side padding).  The
output block ``[o0, o1)`` therefore receives contributions only from inputs

    i0 = max(0, floor((o0 + p - (K-1)*d) / s))   <=   i   <   i1 = min(n, floor((o1 - 1 + p) / s) + 1)

(the *halo* around the block's own inputs is ``ceil((K-1)*d / s)`` on the low side).  The
block is the scatter kernel run on the sub-input ``x[..., i0:i1]`` with output size
``o1 - o0`` and low padding ``p' = p + o0 - i0*s >= 0``, since then
``o - o0 = (i - i0)*s - p' + k*d``: the same identity, shifted.  Inputs of the region that
contribute nothing to the block are skipped by the kernel like any out-of-range tap.

Why bit for bit.  Each output element is ``bias[f]`` plus one product per (input channel,
tap) that lands on it, added in the kernel's fixed (channel, tap) order.  The sub-problem
presents the same products for every element of the block (the same input values, weights,
channels and taps), so the kernel adds the same numbers in the same order.  This relies on
the kernel's per-element summation order not depending on the extent of the problem, which
``tests/test_dask.py`` checks with ``assert_array_equal`` over uneven chunks and every
parameter.

Chunking.  The output has the input's batch chunks and one chunk over channels (the input is
rechunked to one channel chunk: every output channel needs every input channel of its
group).  Spatial output chunks default to the input's, scaled by the stride (output block
``j`` starts where input chunk ``j`` starts scattering, ``a_j*s - p``); pass
``chunks=`` to choose them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from tconv import _core, _extend
from tconv._args import (
    FloatArray,
    Geometry,
    IntOrTuple,
    PaddingArg,
    as_float_array,
    check_bias,
    check_float_dtype,
    check_same_dtype,
    resolve_output_size,
    transposed_geometry,
)

__all__ = ["conv_transpose"]


def _default_bounds(input_chunks: Sequence[int], stride: int, pad_lo: int, size: int) -> tuple[int, ...]:
    """Output chunk sizes whose block ``j`` starts where input chunk ``j`` starts scattering."""
    starts = np.cumsum((0, *input_chunks[:-1]))[1:]
    bounds = sorted({0, size, *(min(max(int(a) * stride - pad_lo, 0), size) for a in starts)})
    return tuple(hi - lo for lo, hi in zip(bounds[:-1], bounds[1:]))


def _input_range(o0: int, o1: int, n: int, kernel: int, stride: int, pad_lo: int,
                 dilation: int) -> tuple[int, int, int]:
    """Input range ``[i0, i1)`` that scatters into output ``[o0, o1)``, and the sub-problem's
    low padding ``p' = p + o0 - i0*s`` (``>= 0`` because ``i0*s <= o0 + p``)."""
    i0 = min(max(0, (o0 + pad_lo - (kernel - 1) * dilation) // stride), n)
    i1 = max(min(n, (o1 - 1 + pad_lo) // stride + 1), i0)
    return i0, i1, pad_lo + o0 - i0 * stride


def _block(
    pieces: Any,
    offsets: tuple[int, ...],
    region: tuple[int, ...],
    out_shape: tuple[int, ...],
    weight: FloatArray,
    bias: FloatArray | None,
    stride: list[int],
    pad: list[int],
    dilation: list[int],
    groups: int,
) -> FloatArray:
    """One output block: stitch the input chunks, cut the region, run the scatter kernel."""
    out = np.empty(out_shape, dtype=weight.dtype)
    if out.size == 0:
        return out
    if any(r == 0 for r in region):  # no input reaches this block: bias (or zero) only
        out[...] = 0 if bias is None else bias.reshape((-1,) + (1,) * len(region))
        return out
    nd = len(region)
    stitched = np.block(pieces) if nd > 0 and isinstance(pieces, list) else pieces
    window = (slice(None), slice(None)) + tuple(
        slice(off, off + r) for off, r in zip(offsets, region)
    )
    sub = np.ascontiguousarray(stitched[window])
    _core.scatter(sub, weight, bias, out, stride, pad, dilation, groups)
    return out


def _block_source(
    geom: Geometry, block: tuple[int, ...], in_starts: list[Any], out_starts: list[Any]
) -> tuple[list[range], list[int], list[int], list[int]]:
    """Where output block ``block`` (its chunk index per spatial dim) reads, per dim: the
    input chunks it spans, its region's offset into the first of them and length, and the
    low padding of its sub-problem (``_input_range``); ``*_starts``: the chunks' start
    indices."""
    chunk_ranges, offsets, region, pads = [], [], [], []
    for i, j in enumerate(block):
        o0, o1 = int(out_starts[i][j]), int(out_starts[i][j + 1])
        i0, i1, p = _input_range(o0, o1, geom.coarse[i], geom.kernel[i], geom.stride[i],
                                 geom.pad_lo[i], geom.dilation[i])
        starts = in_starts[i]
        first = max(int(np.searchsorted(starts, i0, side="right")) - 1, 0)
        last = max(int(np.searchsorted(starts, i1, side="left")), first + 1)
        chunk_ranges.append(range(first, last))
        offsets.append(i0 - int(starts[first]))
        region.append(i1 - i0)
        pads.append(p)
    return chunk_ranges, offsets, region, pads


def conv_transpose(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    *,
    output_size: Sequence[int] | None = None,
    chunks: Any = None,
) -> da.Array:
    """Lazy, chunked transposed convolution ``y = C^T x`` of a dask array.

    Same arguments and result (bit for bit) as :func:`tconv.conv_transpose`; each output
    block is computed from only the input region that scatters into it.

    Parameters
    ----------
    input : dask.array.Array or array_like, shape (N, C_in, *i), float32 or float64
        Chunked over batch and spatial dims (channels are rechunked into one chunk).
    weight : array_like, shape (C_in, C_out/groups, *k)
        Held in memory and shared by every block.
    bias : array_like, shape (C_out,), optional
    stride, padding, output_padding, groups, dilation
        As :func:`tconv.conv_transpose`; per dim
        ``o = (i - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    output_size : sequence of int, optional
        Picks ``output_padding`` as in :func:`tconv.conv_transpose`.
    chunks : int, tuple or tuple of tuples, optional
        Spatial output chunks (anything ``dask.array.core.normalize_chunks`` accepts for the
        spatial output shape).  Default: the input's spatial chunks times the stride.

    Returns
    -------
    dask.array.Array, shape (N, C_out, *o), the input's dtype
        Chunks: the input's batch chunks, one channel chunk, the spatial chunks above.
    """
    x = input if isinstance(input, da.Array) else da.asarray(input)  # type: ignore[no-untyped-call]
    if any(math.isnan(s) for s in x.shape):
        raise ValueError(f"input must have known chunk sizes, got shape {x.shape} "
                         "(call input.compute_chunk_sizes() first)")
    check_float_dtype(x.dtype, "input")
    w = np.ascontiguousarray(as_float_array(weight, "weight"))
    b = None if bias is None else np.ascontiguousarray(as_float_array(bias, "bias"))
    check_same_dtype(x, "input", weight=w, bias=b)
    shape = tuple(int(s) for s in x.shape)
    if output_size is not None:  # the in-memory rule, for numeric and "same"/"valid" padding
        padding, output_padding = resolve_output_size(
            shape, w.shape, output_size, stride, padding, output_padding, groups, dilation)
    negative = _extend.negative_pairs(padding, len(shape) - 2)
    if negative is not None:
        return _extended(x, w, b, stride, negative, output_padding, groups, dilation, chunks)
    geom = transposed_geometry(shape, w.shape, stride, padding, output_padding, groups,
                               dilation)
    check_bias(b, geom.fine_channels)
    nd = geom.ndim
    x = x.rechunk({1: -1})
    pad_lo = geom.pad_lo

    if chunks is None:
        spatial_chunks = tuple(
            _default_bounds(x.chunks[2 + i], geom.stride[i], pad_lo[i], geom.fine[i])
            for i in range(nd)
        )
    else:
        spatial_chunks = da.core.normalize_chunks(  # type: ignore[no-untyped-call]
            chunks, shape=geom.fine, dtype=x.dtype)
    out_chunks = (x.chunks[0], (geom.fine_channels,), *spatial_chunks)

    token = tokenize(x, w, b, geom, spatial_chunks)
    name = f"tconv-conv-transpose-{token}"
    weight_key = f"tconv-weight-{token}"
    bias_key = f"tconv-bias-{token}"
    graph: dict[Any, Any] = {weight_key: w}
    if b is not None:
        graph[bias_key] = b

    in_starts = [np.cumsum((0, *x.chunks[2 + i])) for i in range(nd)]
    out_starts = [np.cumsum((0, *spatial_chunks[i])) for i in range(nd)]
    for nb, batch in enumerate(x.chunks[0]):
        for block in product(*(range(len(c)) for c in spatial_chunks)):
            chunk_ranges, offsets, region, pads = _block_source(geom, block, in_starts,
                                                                out_starts)
            pieces: Any = _nested_keys(x.name, nb, chunk_ranges) if all(region) else []
            out_shape = (batch, geom.fine_channels,
                         *(int(spatial_chunks[i][j]) for i, j in enumerate(block)))
            graph[(name, nb, 0, *block)] = (
                _block, pieces, tuple(offsets), tuple(region), out_shape, weight_key,
                bias_key if b is not None else None, list(geom.stride), pads,
                list(geom.dilation), geom.groups,
            )
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=[x])
    result: da.Array = da.Array(  # type: ignore[no-untyped-call]
        hlg, name, chunks=out_chunks, dtype=x.dtype, meta=np.empty((0,) * (nd + 2), dtype=x.dtype))
    return result


def _extended(x: da.Array, w: FloatArray, b: FloatArray | None, stride: IntOrTuple,
              pairs: tuple[tuple[int, int], ...], output_padding: IntOrTuple, groups: int,
              dilation: IntOrTuple, chunks: Any) -> da.Array:
    """Negative padding: the blocks of the part that meets data, zeros around it, then the
    bias (the order of :func:`tconv.conv_transpose`, so the result is bitwise the same)."""
    shape = tuple(int(s) for s in x.shape)
    win = _extend.transposed_window(shape, w.shape, stride, pairs, output_padding, groups,
                                    dilation)
    check_bias(b, win.shape[1])
    if win.geom is None:
        y = da.zeros(win.shape, dtype=x.dtype)
    else:
        kept = conv_transpose(x, w, None, stride, win.geom.padding, 0, groups, dilation)
        widths = [(0, 0), (0, 0)] + [(sl.start, n - sl.stop)
                                     for sl, n in zip(win.where, win.shape[2:])]
        y = da.pad(kept, widths, mode="constant")
    if b is not None:
        y = y + b.reshape(-1, *([1] * (len(shape) - 2)))
    if chunks is not None:
        spatial = da.core.normalize_chunks(  # type: ignore[no-untyped-call]
            chunks, shape=win.shape[2:], dtype=x.dtype)
        y = y.rechunk((x.chunks[0], (win.shape[1],), *spatial))
    result: da.Array = y
    return result


def _nested_keys(name: str, nb: int, ranges: list[range]) -> Any:
    """Nested lists (one level per spatial dim) of the input chunk keys, for ``np.block``."""
    def level(prefix: tuple[int, ...], depth: int) -> Any:
        if depth == len(ranges):
            return (name, nb, 0, *prefix)
        return [level(prefix + (j,), depth + 1) for j in ranges[depth]]

    return level((), 0)
