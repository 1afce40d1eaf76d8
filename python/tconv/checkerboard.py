"""Checkerboard artifacts of strided transposed convolutions: why they appear, how to measure
them, and three ways to avoid them.

Why (the notes' 1-D picture).  With stride ``s`` the output positions fall into ``s`` *phases*
(``o mod s``), and tap ``t`` of the kernel only ever writes into phase ``(t*d) mod s``.  Fed a
constant input, every output of phase ``r`` therefore equals the sum of the taps of that phase,
the *phase sum*.  If the phase sums differ, a flat input comes out striped: with ``k = 3,
s = 2`` phase 0 gets taps ``w1 + w3`` and phase 1 only ``w2`` (:func:`overlap` counts
``[2, 1]``), so the output alternates unless ``w2 = w1 + w3``; with ``k = 4`` both phases get
two taps (``[2, 2]``) and the counts at least agree.  In N-D the phases are tuples and the
counts are the outer product of the 1-D counts: a checkerboard.

Fixes.  (1) :func:`project`: the nearest kernel (least squares) whose phase sums are equal,
(2) :func:`icnr`: an initialisation that starts artifact-free, (3) resize-convolution
(:func:`tconv.resize_conv`): upsample first, then convolve with stride 1.

Measure.  :func:`score` gives the size of the phase-periodic pattern in any signal.

Weights use PyTorch's transposed layout ``(C_in, C_out/groups, *k)`` throughout; the phase of
tap ``t`` is ``(t*d) mod s`` (with padding ``p`` the labels rotate by ``p``, which changes
nothing here).
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from ._args import FloatArray, IntOrTuple, as_float_array, implied_ndim, int_tuple, spatial_ndim

__all__ = ["overlap", "phase_sums", "is_artifact_free", "project", "icnr", "score"]

SeedLike = Union[None, int, np.random.Generator]


def _phase_matrix(kernel: int, stride: int, dilation: int) -> FloatArray:
    """``P[t, r] = 1`` when tap ``t`` writes into output phase ``r = (t*d) mod s``."""
    mat = np.zeros((kernel, stride))
    mat[np.arange(kernel), (np.arange(kernel) * dilation) % stride] = 1.0
    return mat


def _contract_spatial(arr: FloatArray, mats: Sequence[FloatArray]) -> FloatArray:
    """Apply ``mats[d]`` (shape (old_d, new_d)) along spatial axis ``d`` of ``(A, B, *sp)``."""
    out = arr
    for mat in mats:  # tensordot consumes axis 2 and appends the new one: order is kept
        out = np.tensordot(out, mat, axes=([2], [0]))
    return out


def _weight_and_stride(
    weight: object, stride: IntOrTuple, dilation: IntOrTuple
) -> tuple[FloatArray, tuple[int, ...], tuple[int, ...]]:
    w = as_float_array(weight, "weight")
    if w.ndim not in (3, 4, 5):
        raise ValueError(
            f"weight must be 3-D to 5-D (C_in, C_out/groups, *kernel), got shape {w.shape}"
        )
    nd = w.ndim - 2
    return w, int_tuple(stride, nd, "stride", 1), int_tuple(dilation, nd, "dilation", 1)


def overlap(
    kernel_size: IntOrTuple, stride: IntOrTuple, dilation: IntOrTuple = 1
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """How many kernel taps write into each output phase.

    Returns an int array of shape ``stride`` (a tuple, one entry per phase): in 1-D
    ``count[r] = #{t < k : (t*d) mod s = r}``; in N-D the outer product of the 1-D counts.
    Unequal counts are the notes' reason for checkerboards; a zero count means that phase is
    never written (holes, when ``k < s``).

    Examples
    --------
    >>> overlap(3, 2), overlap(4, 2)
    (array([2, 1]), array([2, 2]))
    >>> overlap((3, 3), 2)
    array([[4, 2],
           [2, 1]])
    """
    nd = implied_ndim(kernel_size, stride, dilation)
    k = int_tuple(kernel_size, nd, "kernel_size", 1)
    s = int_tuple(stride, nd, "stride", 1)
    d = int_tuple(dilation, nd, "dilation", 1)
    counts = np.ones((), dtype=np.int64)
    for kd, sd, dd in zip(k, s, d):
        per_dim = _phase_matrix(kd, sd, dd).sum(axis=0).astype(np.int64)
        counts = np.multiply.outer(counts, per_dim)
    return counts


def phase_sums(weight: object, stride: IntOrTuple, dilation: IntOrTuple = 1) -> FloatArray:
    """Per ``(c_in, c_out, phase)`` sum of the kernel taps that write into that phase.

    ``result[c, f, *r] = sum_{t : (t*d) mod s = r} weight[c, f, *t]``, shape
    ``(C_in, C_out/groups, *stride)``: the steady-state output of phase ``r`` in channel ``f``
    when input channel ``c`` is the constant 1 and the others are 0.

    Examples
    --------
    >>> phase_sums(np.array([[[1.0, 2.0, 3.0]]]), 2)   # phase 0: w1 + w3, phase 1: w2
    array([[[4., 2.]]])
    """
    w, s, d = _weight_and_stride(weight, stride, dilation)
    mats = [_phase_matrix(k, st, dl) for k, st, dl in zip(w.shape[2:], s, d)]
    return _contract_spatial(w.astype(np.float64), mats).astype(w.dtype)


def is_artifact_free(
    weight: object, stride: IntOrTuple, rtol: float = 1e-6, dilation: IntOrTuple = 1
) -> bool:
    """True when, for every ``(c_in, c_out)`` pair, all phase sums are equal.

    Then a constant input gives a constant output (away from the borders): the notes' condition
    ``w2 = w1 + w3`` for ``k = 3, s = 2``.  Equality is tested as
    ``max_r S_r - min_r S_r <= rtol * sum_t |w_t|`` per pair.
    """
    w, s, d = _weight_and_stride(weight, stride, dilation)
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    sums = phase_sums(w.astype(np.float64), s, d).reshape(w.shape[0], w.shape[1], -1)
    spread = sums.max(axis=2) - sums.min(axis=2)
    scale = np.abs(w.astype(np.float64)).reshape(w.shape[0], w.shape[1], -1).sum(axis=2)
    return bool(np.all(spread <= rtol * scale))


def project(weight: object, stride: IntOrTuple, dilation: IntOrTuple = 1) -> FloatArray:
    """The nearest artifact-free kernel: orthogonal (least-squares) projection of ``weight``
    onto the kernels whose phase sums are all equal.

    Derivation, for one ``(c_in, c_out)`` pair.  Let phase ``r`` hold ``n_r`` taps with sum
    ``S_r``.  The artifact-free kernels are the linear subspace ``{v : S_r(v) = S_0(v) for all
    r}``; we want ``argmin ||v - w||^2`` over it.  Fix the common sum ``T``: each phase's
    constraint ``sum_{t in r} v_t = T`` touches only its own taps, and the cheapest way to
    change a sum by ``T - S_r`` is to spread it evenly, ``v_t = w_t + (T - S_r)/n_r``, at cost
    ``(T - S_r)^2 / n_r``.  Minimising ``sum_r (T - S_r)^2 / n_r`` over ``T`` gives the
    weighted mean ``T = (sum_r S_r/n_r) / (sum_r 1/n_r)``.  If some phase has no taps
    (``n_r = 0``, when ``k < s``) its sum is 0, so ``T = 0``.

    Returns an array of the weight's shape and dtype; applying it twice changes nothing.

    Examples
    --------
    >>> project(np.array([[[1.0, 1.0, 1.0]]]), 2)   # S = [2, 1], n = [2, 1] -> T = 4/3
    array([[[0.66666667, 1.33333333, 0.66666667]]])
    """
    w, s, d = _weight_and_stride(weight, stride, dilation)
    mats = [_phase_matrix(k, st, dl) for k, st, dl in zip(w.shape[2:], s, d)]
    w64 = w.astype(np.float64)
    sums = _contract_spatial(w64, mats)  # (C_in, C_out/g, *s)
    counts = overlap(tuple(w.shape[2:]), s, d).astype(np.float64)
    lead = (slice(None), slice(None))
    if np.any(counts == 0):
        target = np.zeros(w.shape[:2])
        safe = np.where(counts == 0, 1.0, counts)
    else:
        safe = counts
        target = (sums / counts).reshape(*w.shape[:2], -1).sum(axis=2) / np.sum(1.0 / counts)
    shift = (target[(*lead, *([None] * len(s)))] - sums) / safe
    shift = np.where(counts == 0, 0.0, shift)
    per_tap = _contract_spatial(shift, [m.T for m in mats])  # each tap gets its phase's shift
    return np.ascontiguousarray((w64 + per_tap).astype(w.dtype))


def icnr(
    weight_shape: Sequence[int],
    stride: IntOrTuple,
    rng: SeedLike = None,
    dtype: Any = np.float64,
) -> FloatArray:
    """ICNR initialisation (Aitken et al. 2017, "Checkerboard artifact free sub-pixel
    convolution") for a transposed-convolution weight: artifact-free from the start.

    ICNR makes every output phase start with the *same* sub-kernel, so the layer starts as
    nearest-neighbour upsampling followed by a convolution.  For a transposed convolution
    (dilation 1) that is the kernel ``w = v * box_s``: a random kernel ``v`` of size
    ``k - s + 1`` convolved in each dim with ``s`` ones.  Then
    ``conv_transpose(x, w) = conv(nearest_upsample(x, s), v)`` (flipped ``v``), and every
    phase sum equals ``sum(v)``.  Needs ``k >= s`` in every dim (for ``k < s`` a phase gets no
    taps, and only the zero kernel is artifact-free).

    ``v`` is drawn i.i.d. normal with variance ``1 / (C_in * prod(k - s + 1))``, so each output
    starts with roughly the variance of the input.

    Parameters
    ----------
    weight_shape : (C_in, C_out/groups, *k)
    stride : int or tuple
    rng : None, int or numpy.random.Generator
    dtype : float32 or float64

    Returns
    -------
    ndarray of ``weight_shape``.
    """
    shape = tuple(int(v) for v in weight_shape)
    if len(shape) not in (3, 4, 5) or min(shape) < 1:
        raise ValueError(
            f"weight_shape must be (C_in, C_out/groups, *kernel) with 1 to 3 spatial dims and "
            f"positive sizes, got {shape}"
        )
    out_dtype = np.dtype(dtype)
    if out_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {out_dtype}")
    nd = len(shape) - 2
    s = int_tuple(stride, nd, "stride", 1)
    kernel = shape[2:]
    if any(k < st for k, st in zip(kernel, s)):
        raise ValueError(
            f"ICNR needs kernel_size >= stride in every dim (otherwise a phase gets no taps), "
            f"got kernel {kernel} and stride {s}"
        )
    if not (rng is None or isinstance(rng, (int, np.integer, np.random.Generator))):
        raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {rng!r}")
    gen = np.random.default_rng(rng)
    sub = tuple(k - st + 1 for k, st in zip(kernel, s))
    std = 1.0 / np.sqrt(shape[0] * int(np.prod(sub)))
    v = gen.standard_normal((*shape[:2], *sub)) * std
    # box[t, u] = 1 when 0 <= t - u < s: the full convolution of v with s ones.
    boxes = [
        ((np.arange(k)[:, None] - np.arange(n)[None, :] >= 0)
         & (np.arange(k)[:, None] - np.arange(n)[None, :] < st)).astype(np.float64)
        for k, n, st in zip(kernel, sub, s)
    ]
    return np.ascontiguousarray(_contract_spatial(v, [b.T for b in boxes]).astype(out_dtype))


def _smoothing_kernel(stride: int) -> FloatArray:
    """A centred average that sees every phase equally: ``s`` ones for odd ``s``; for even
    ``s``, ``s + 1`` taps with halves at both ends (the two ends share a phase)."""
    if stride % 2:
        return np.full(stride, 1.0 / stride)
    taps = np.full(stride + 1, 1.0 / stride)
    taps[0] = taps[-1] = 0.5 / stride
    return taps


def score(
    signal: object,
    stride: IntOrTuple,
    margin: IntOrTuple = 0,
    per_sample: bool = False,
) -> Any:
    """How strongly a signal carries a stride-periodic (checkerboard) pattern.

    Definition, per spatial dim with stride ``s > 1``:

    1. drop ``margin`` samples at both ends (borders of zero-padded layers are not
       checkerboards; pass the layer's kernel size to ignore them);
    2. smooth with the centred average ``B`` that weights all ``s`` phases equally
       (``s`` taps of ``1/s``; for even ``s``, ``s + 1`` taps with halves at the ends), over
       the positions where it fits, and take the residual ``r = x - B x``.  Any phase pattern
       survives in ``r`` unchanged, while ``r = 0`` for constant and linear signals;
    3. average ``r`` over each phase (positions ``o`` with the same ``o mod s`` in every dim),
       giving ``mu[n, c, phase]``, and remove its mean over the phases;

    ``score = RMS(mu - mean_phase(mu)) / RMS(x)`` over the same positions, taken over the whole
    batch (or per sample).  So it is 0 for any signal whose phases look alike (constant,
    linear, or smooth signals up to terms of third order), invariant to scaling the signal,
    and about ``a / RMS(x)`` for a planted pattern of RMS amplitude ``a``: 1 for a pure
    checkerboard.  Dims with stride 1 are not examined.

    Parameters
    ----------
    signal : array_like, shape (N, C, *spatial), 1 to 3 spatial dims
    stride : int or tuple
        The upsampling stride whose phases to compare.
    margin : int or tuple, default 0
        Samples dropped at each end of each spatial dim before measuring.
    per_sample : bool
        Return one score per sample (shape (N,)) instead of one float.

    Returns
    -------
    float, or ndarray of shape (N,) when ``per_sample``.  0 for an all-zero signal.
    """
    x = as_float_array(signal, "signal").astype(np.float64)
    nd = spatial_ndim(x.shape, "signal")
    s = int_tuple(stride, nd, "stride", 1)
    m = int_tuple(margin, nd, "margin", 0)
    region: list[slice] = [slice(None), slice(None)]
    for dim in range(nd):
        n = x.shape[2 + dim] - 2 * m[dim]
        need = s[dim] + 1 if s[dim] > 1 else 1
        if n < need:
            raise ValueError(
                f"signal spatial dim {dim} has {x.shape[2 + dim]} samples; after dropping "
                f"margin {m[dim]} at each end at least {need} must remain for stride {s[dim]}"
            )
        region.append(slice(m[dim], x.shape[2 + dim] - m[dim]))
    x = x[tuple(region)]
    smooth, centre = x, x
    for dim in range(nd):
        if s[dim] == 1:
            continue
        taps = _smoothing_kernel(s[dim])
        width, half = len(taps), len(taps) // 2
        length = x.shape[2 + dim] - width + 1
        axis = 2 + dim
        smooth = sum(
            (taps[j] * np.take(smooth, np.arange(j, j + length), axis=axis)
             for j in range(width)),
            start=np.zeros(()),
        )
        centre = np.take(centre, np.arange(half, half + length), axis=axis)
    residual = centre - smooth
    batch, channels = x.shape[:2]
    means = np.empty((batch, channels, int(np.prod(s))))
    for index, phase in enumerate(np.ndindex(*s)):
        part = residual[(slice(None), slice(None), *(slice(p, None, st) for p, st in zip(phase, s)))]
        means[:, :, index] = part.reshape(batch, channels, -1).mean(axis=2)
    pattern = means - means.mean(axis=2, keepdims=True)
    axes_pattern = (1, 2)
    axes_signal = tuple(range(1, centre.ndim))
    num = np.sqrt(np.mean(pattern**2, axis=axes_pattern)) if batch else np.zeros(0)
    den = np.sqrt(np.mean(centre**2, axis=axes_signal)) if batch else np.zeros(0)
    if per_sample:
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    if batch == 0:
        return 0.0
    total_num = float(np.sqrt(np.mean(pattern**2)))
    total_den = float(np.sqrt(np.mean(centre**2)))
    return total_num / total_den if total_den > 0 else 0.0
