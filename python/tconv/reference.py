"""Pure-NumPy reference: the dense matrix ``C`` of a convolution, the oracle of every test.

A convolution is a matrix product.  Flatten one sample of the conv's input (channels, then
spatial dims, C order) into a vector ``v``; then ``conv(v) = C v`` with ``C`` of shape
``(C_out * prod(out), C_in * prod(in))``.  Row ``(c, i)`` holds ``W[c, f, k]`` in column
``(f, i*s - p + k*d)`` for every tap ``k`` whose position falls inside the input; taps that
fall in the zero padding contribute nothing.  The transposed convolution multiplies by
``C^T``.  Everything here is computed in float64 and is deliberately simple: it shares no
code with the C++ kernels or with :mod:`tconv._args`.

``padding_mode`` other than ``"zeros"``: the padded conv is ``C_m = C_0 P`` where ``P`` is the
0/1 matrix of the padding operator (:func:`padding_matrix`) and ``C_0`` the conv with padding 0
on the padded grid; the transposed conv with that mode is ``C_m^T``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "conv_matrix",
    "conv_transpose_matrix",
    "conv",
    "conv_transpose",
    "conv_transpose_backward",
    "conv_backward",
    "conv_structural",
    "conv_transpose_structural",
    "format_matrix",
    "padding_matrix",
]

Array = npt.NDArray[Any]


def _per_dim(value: Any, nd: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        assert len(value) == nd, f"expected {nd} entries, got {value!r}"
        return list(value)
    return [value] * nd


def _pairs(padding: Any, nd: int) -> list[tuple[int, int]]:
    """Padding as (low, high) per dim: accepts int, tuple of ints or tuple of pairs."""
    return [(p[0], p[1]) if isinstance(p, (list, tuple)) else (p, p)
            for p in _per_dim(padding, nd)]


def _entries(
    weight_shape: Sequence[int],
    coarse: Sequence[int],
    fine: Sequence[int],
    stride: Any,
    pad_lo: Sequence[int],
    dilation: Any,
    groups: int,
) -> tuple[Array, Array, Array]:
    """The non-structural-zero entries of C as (row, column, flat weight index) triples.

    Rows run over the coarse side (C_coarse, *coarse), columns over the fine side
    (C_fine, *fine); the weight is (C_coarse, C_fine/groups, *k).  Entry (c, i), (f, o) holds
    W[c, f mod fpg, k] exactly when o = i*s - p + k*d lies inside the fine grid.
    """
    nd = len(weight_shape) - 2
    s, d = np.array(_per_dim(stride, nd)), np.array(_per_dim(dilation, nd))
    c_coarse, fpg = int(weight_shape[0]), int(weight_shape[1])
    kernel = [int(v) for v in weight_shape[2:]]
    cpg = c_coarse // groups
    n_coarse, n_fine, n_taps = int(np.prod(coarse)), int(np.prod(fine)), int(np.prod(kernel))
    i_pos = np.indices(coarse).reshape(nd, -1).T  # (n_coarse, nd)
    taps = np.indices(kernel).reshape(nd, -1).T  # (n_taps, nd)
    o_pos = i_pos[:, None, :] * s - np.array(pad_lo) + taps[None, :, :] * d
    inside = np.all((o_pos >= 0) & (o_pos < np.array(fine)), axis=-1)
    i_idx, t_idx = np.nonzero(inside)
    o_flat = np.ravel_multi_index(tuple(o_pos[i_idx, t_idx].T), tuple(fine)) if i_idx.size else i_idx
    c = np.arange(c_coarse)[:, None, None]
    f_local = np.arange(fpg)[None, :, None]
    f = (c // cpg) * fpg + f_local
    rows = c * n_coarse + i_idx[None, None, :] + 0 * f_local
    cols = f * n_fine + o_flat[None, None, :]
    widx = (c * fpg + f_local) * n_taps + t_idx[None, None, :]
    return rows.ravel(), cols.ravel(), widx.ravel()


def _matrix(
    weight: Array,
    coarse: Sequence[int],
    fine: Sequence[int],
    stride: Any,
    pad_lo: Sequence[int],
    dilation: Any,
    groups: int,
) -> Array:
    """Dense C: C[(c, i), (f, i*s - p + k*d)] = W[c, f, k]; shape (C_coarse*prod(coarse), C_fine*prod(fine))."""
    w = np.asarray(weight, dtype=np.float64)
    rows, cols, widx = _entries(w.shape, coarse, fine, stride, pad_lo, dilation, groups)
    c_fine = w.shape[1] * groups
    mat = np.zeros((w.shape[0] * int(np.prod(coarse)), c_fine * int(np.prod(fine))))
    np.add.at(mat, (rows, cols), w.ravel()[widx])
    return mat


def _pad_source(j: int, n: int, mode: str) -> int | None:
    """Which of the ``n`` elements padded position ``j`` copies (None: a zero)."""
    if 0 <= j < n:
        return j
    if mode == "zeros":
        return None
    if mode == "circular":
        return j % n
    if mode == "replicate":
        return 0 if j < 0 else n - 1
    if mode == "reflect":
        return -j if j < 0 else 2 * (n - 1) - j
    raise ValueError(f"unknown padding_mode {mode!r}")


def padding_matrix(input_shape: Sequence[int], padding: Any, padding_mode: str) -> Array:
    """Dense 0/1 matrix ``P`` of padding one sample ``(C, *spatial)`` by ``padding`` (int, ints
    or (lo, hi) pairs) with ``padding_mode``: ``pad(x).ravel() == P @ x.ravel()``."""
    channels, spatial = int(input_shape[0]), [int(v) for v in input_shape[1:]]
    mat: Array = np.eye(channels)
    for n, (lo, hi) in zip(spatial, _pairs(padding, len(spatial))):
        one = np.zeros((n + lo + hi, n))
        for j in range(-lo, n + hi):
            src = _pad_source(j, n, padding_mode)
            if src is not None:
                one[j + lo, src] = 1.0
        mat = np.kron(mat, one)
    return mat


def _conv_out(size: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _tconv_out(size: int, k: int, s: int, lo: int, hi: int, d: int, op: int) -> int:
    return (size - 1) * s - lo - hi + d * (k - 1) + op + 1


def _check(
    w: Array,
    input_shape: Sequence[int],
    channels: int,
    s: list[Any],
    pads: list[tuple[int, int]],
    d: list[Any],
    groups: int,
    op: list[Any] | None = None,
    padding_mode: str = "zeros",
) -> None:
    """Refuse what is not a convolution, so that the oracle never computes garbage quietly.

    Deliberately written out again here rather than shared with :mod:`tconv._args`.  With
    ``padding_mode="zeros"`` a negative padding side is allowed: the matrix entries
    ``o = i*s - p + k*d`` that fall outside the grid are dropped either way, which for the conv
    crops its input and for the transposed conv extends its output with zeros.
    """
    nd = w.ndim - 2
    if not (isinstance(groups, (int, np.integer)) and groups >= 1 and w.shape[0] % groups == 0):
        raise ValueError(f"reference: groups={groups!r} must be >= 1 and divide {w.shape[0]}")
    if int(input_shape[0]) != channels:
        raise ValueError(f"reference: input has {input_shape[0]} channels, the weight "
                         f"{w.shape} (groups={groups}) needs {channels}")
    for a in range(nd):
        negative = min(pads[a]) < 0 and padding_mode != "zeros"
        if s[a] < 1 or d[a] < 1 or negative or w.shape[2 + a] < 1 or input_shape[1 + a] < 1:
            raise ValueError(f"reference: need stride >= 1, dilation >= 1, padding >= 0 and "
                             f"sizes >= 1, got stride {s}, dilation {d}, padding {pads}, "
                             f"weight {w.shape}, input_shape {tuple(input_shape)}")
        if op is not None and not 0 <= op[a] < max(s[a], d[a]):
            raise ValueError(f"reference: need 0 <= output_padding < max(stride, dilation), "
                             f"got output_padding {op}")


def _rank(w: Array, input_shape: Sequence[int]) -> int:
    nd = w.ndim - 2
    if nd not in (1, 2, 3) or len(input_shape) != nd + 1:
        raise ValueError(f"reference: weight {w.shape} and input_shape {tuple(input_shape)} "
                         "must be (C, C, *k) and (C, *spatial) with 1 to 3 spatial dims")
    return nd


def _check_out(out: list[int]) -> list[int]:
    if min(out) < 1:
        raise ValueError(f"reference: output size {out} is not positive")
    return out


def _real(x: Any, name: str) -> Array:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"reference: {name} must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def conv_matrix(
    weight: Array,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Array:
    """Dense ``C`` of ``conv`` with ``weight`` (C_out, C_in/groups, *k) on ``input_shape``
    ``(C_in, *spatial)``: ``conv(x)[n].ravel() == C @ x[n].ravel()``."""
    w = np.asarray(weight, dtype=np.float64)
    nd = _rank(w, input_shape)
    fine = list(input_shape[1:])
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    _check(w, input_shape, w.shape[1] * groups, s, pads, d, groups, padding_mode=padding_mode)
    coarse = _check_out([_conv_out(fine[a], w.shape[2 + a], s[a], *pads[a], d[a]) for a in range(nd)])
    if padding_mode != "zeros":
        padded = [fine[a] + pads[a][0] + pads[a][1] for a in range(nd)]
        c0 = _matrix(w, coarse, padded, s, [0] * nd, d, groups)
        return c0 @ padding_matrix(input_shape, pads, padding_mode)
    return _matrix(w, coarse, fine, s, [p[0] for p in pads], d, groups)


def conv_transpose_matrix(
    weight: Array,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Array:
    """Dense ``C^T`` of ``conv_transpose`` with ``weight`` (C_in, C_out/groups, *k) on
    ``input_shape`` ``(C_in, *spatial)``: ``conv_transpose(x)[n].ravel() == M @ x[n].ravel()``.

    It is the transpose of the matrix of the convolution with the same weight that maps the
    output size back to the input size."""
    w = np.asarray(weight, dtype=np.float64)
    nd = _rank(w, input_shape)
    coarse = list(input_shape[1:])
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    op = _per_dim(output_padding, nd)
    _check(w, input_shape, w.shape[0], s, pads, d, groups, op, padding_mode)
    fine = _check_out([_tconv_out(coarse[a], w.shape[2 + a], s[a], *pads[a], d[a], op[a])
                       for a in range(nd)])
    if padding_mode != "zeros":
        padded = [fine[a] + pads[a][0] + pads[a][1] for a in range(nd)]
        c0 = _matrix(w, coarse, padded, s, [0] * nd, d, groups)
        c_fine = w.shape[1] * groups
        return (c0 @ padding_matrix((c_fine, *fine), pads, padding_mode)).T
    return _matrix(w, coarse, fine, s, [p[0] for p in pads], d, groups).T


def _apply(mat: Array, x: Array, out_channels: int, bias: Array | None) -> Array:
    x64 = np.asarray(x, dtype=np.float64)
    flat = x64.reshape(x64.shape[0], mat.shape[1]) @ mat.T
    y = flat.reshape(x64.shape[0], out_channels, mat.shape[0] // max(out_channels, 1))
    return _add_bias(y, bias)


def _add_bias(y: Array, bias: Array | None) -> Array:
    """``y`` of shape (N, C, P) plus one bias value per channel C."""
    if bias is None:
        return y
    b = _real(bias, "bias")
    if b.shape != (y.shape[1],):
        raise ValueError(f"reference: bias must have shape ({y.shape[1]},), got {b.shape}")
    return y + b[None, :, None]


def conv(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Array:
    """``conv`` as ``C @ x`` per sample, in float64."""
    x = _real(input, "input")
    w = _real(weight, "weight")
    nd = w.ndim - 2
    mat = conv_matrix(w, x.shape[1:], stride, padding, dilation, groups, padding_mode)
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    out = [_conv_out(x.shape[2 + a], w.shape[2 + a], s[a], *pads[a], d[a]) for a in range(nd)]
    return _apply(mat, x, w.shape[0], bias).reshape(x.shape[0], w.shape[0], *out)


def conv_transpose(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    padding_mode: str = "zeros",
) -> Array:
    """``conv_transpose`` as ``C^T @ x`` per sample, in float64."""
    x = _real(input, "input")
    w = _real(weight, "weight")
    nd = w.ndim - 2
    mat = conv_transpose_matrix(w, x.shape[1:], stride, padding, output_padding, dilation, groups,
                                padding_mode)
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    op = _per_dim(output_padding, nd)
    out = [_tconv_out(x.shape[2 + a], w.shape[2 + a], s[a], *pads[a], d[a], op[a]) for a in range(nd)]
    c_out = w.shape[1] * groups
    return _apply(mat, x, c_out, bias).reshape(x.shape[0], c_out, *out)


def conv_transpose_backward(
    grad_output: Array,
    input: Array,
    weight: Array,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    padding_mode: str = "zeros",
) -> tuple[Array, Array, Array]:
    """Gradients of ``conv_transpose`` through its matrix, in float64.

    With ``y[n] = M x[n]`` (``M = C^T``): ``grad_input[n] = M^T g[n] = C g[n]``; each weight
    entry's gradient is ``sum_n g[n] . (dM/dW) x[n]``, obtained column by column from the
    matrix of a unit weight; ``grad_bias`` sums ``g`` over batch and space.  With a
    ``padding_mode``, ``M = P^T C_0^T``, so the weight gradient sees ``P g`` with padding 0.
    """
    x = _real(input, "input")
    g = _real(grad_output, "grad_output")
    w = _real(weight, "weight")
    n = x.shape[0]
    args = (stride, padding, output_padding, dilation, groups, padding_mode)
    mat = conv_transpose_matrix(w, x.shape[1:], *args)
    g_flat = g.reshape(n, mat.shape[0])
    x_flat = x.reshape(n, mat.shape[1])
    grad_input = (g_flat @ mat).reshape(x.shape)
    # M = sum_j W_j E_j with E_j the 0/1 pattern of weight entry j, so
    # dL/dW_j = sum_n g[n] . E_j x[n] = sum over the entries (r, c) of E_j of sum_n g[n, r] x[n, c].
    nd = w.ndim - 2
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    fine = g.shape[2:]
    pad_lo = [p[0] for p in pads]
    if padding_mode != "zeros":
        g_flat = g_flat @ padding_matrix(g.shape[1:], pads, padding_mode).T
        fine = tuple(f + lo + hi for f, (lo, hi) in zip(fine, pads))
        pad_lo = [0] * nd
    rows, cols, widx = _entries(w.shape, x.shape[2:], fine, s, pad_lo, d, groups)
    # in M = C^T the coarse side is the column: entry ((f, o), (c, i)) of M is row (c, i) of C
    products = np.einsum("nr,nr->r", g_flat[:, cols], x_flat[:, rows]) if n else np.zeros(rows.size)
    flat_weight = np.zeros(w.size)
    np.add.at(flat_weight, widx, products)
    grad_weight: Array = flat_weight.reshape(w.shape)
    grad_bias = g.sum(axis=(0, *range(2, g.ndim)))
    return grad_input, grad_weight, grad_bias


def conv_backward(
    grad_output: Array,
    input: Array,
    weight: Array,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> tuple[Array, Array, Array]:
    """Gradients of ``conv`` through its matrix, in float64.

    With ``y[n] = C x[n]``: ``grad_input[n] = C^T g[n]``; ``dL/dW_j = sum_n g[n] . E_j x[n]``
    summed over the entries of ``C`` that hold weight ``j``; ``grad_bias`` sums ``g``.
    """
    x = _real(input, "input")
    g = _real(grad_output, "grad_output")
    w = _real(weight, "weight")
    n = x.shape[0]
    mat = conv_matrix(w, x.shape[1:], stride, padding, dilation, groups)
    g_flat = g.reshape(n, mat.shape[0])
    x_flat = x.reshape(n, mat.shape[1])
    grad_input = (g_flat @ mat).reshape(x.shape)
    nd = w.ndim - 2
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    rows, cols, widx = _entries(w.shape, g.shape[2:], x.shape[2:], s, [p[0] for p in pads], d, groups)
    products = np.einsum("nr,nr->r", g_flat[:, rows], x_flat[:, cols]) if n else np.zeros(rows.size)
    grad_weight = np.zeros(w.size)
    np.add.at(grad_weight, widx, products)
    grad_bias = g.sum(axis=(0, *range(2, g.ndim)))
    return grad_input, grad_weight.reshape(w.shape), grad_bias


def _structural(
    x: Array,
    w: Array,
    coarse: Sequence[int],
    fine: Sequence[int],
    stride: Any,
    pad_lo: Sequence[int],
    dilation: Any,
    groups: int,
    transposed: bool,
) -> Array:
    """Apply C (coarse <- fine) or C^T (fine <- coarse) entry by entry, shape (N, C_out, P)."""
    rows, cols, widx = _entries(w.shape, coarse, fine, stride, pad_lo, dilation, groups)
    src, dst = (rows, cols) if transposed else (cols, rows)
    out_channels = w.shape[1] * groups if transposed else w.shape[0]
    out_pixels = int(np.prod(fine if transposed else coarse))
    n = x.shape[0]
    out = np.zeros((n, out_channels * out_pixels))
    if n and src.size:
        products = x.reshape(n, -1)[:, src] * w.ravel()[widx]
        np.add.at(out.T, dst, products.T)  # out.T is a view: rows of out.T = output entries
    return out.reshape(n, out_channels, out_pixels)


def conv_structural(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Array:
    """:func:`conv` computed from the entries of ``C`` alone, never through a dense product.

    Each output is the float64 sum of exactly the products ``W * x`` its kernel window
    touches, so NaN and Inf propagate as through the real operator (and the C++ kernels): a
    dense ``C @ x`` would also spread a NaN through every structural zero (``0 * NaN = NaN``).
    """
    x, w = _real(input, "input"), _real(weight, "weight")
    nd = _rank(w, x.shape[1:])
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    _check(w, x.shape[1:], w.shape[1] * groups, s, pads, d, groups)
    fine = list(x.shape[2:])
    coarse = _check_out([_conv_out(fine[a], w.shape[2 + a], s[a], *pads[a], d[a])
                         for a in range(nd)])
    y = _structural(x, w, coarse, fine, s, [p[0] for p in pads], d, groups, transposed=False)
    return _add_bias(y, bias).reshape(x.shape[0], w.shape[0], *coarse)


def conv_transpose_structural(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Array:
    """:func:`conv_transpose` from the entries of ``C`` alone; NaN/Inf-exact as
    :func:`conv_structural`."""
    x, w = _real(input, "input"), _real(weight, "weight")
    nd = _rank(w, x.shape[1:])
    s, d, pads = _per_dim(stride, nd), _per_dim(dilation, nd), _pairs(padding, nd)
    op = _per_dim(output_padding, nd)
    _check(w, x.shape[1:], w.shape[0], s, pads, d, groups, op)
    coarse = list(x.shape[2:])
    fine = _check_out([_tconv_out(coarse[a], w.shape[2 + a], s[a], *pads[a], d[a], op[a])
                       for a in range(nd)])
    y = _structural(x, w, coarse, fine, s, [p[0] for p in pads], d, groups, transposed=True)
    c_out = w.shape[1] * groups
    return _add_bias(y, bias).reshape(x.shape[0], c_out, *fine)


def format_matrix(mat: Array, names: dict[float, str] | None = None, width: int = 4) -> str:
    """Render a (small) matrix as text; values found in ``names`` print as their symbol.

    With a weight whose entries are the codes 11, 12, ..., 33 and
    ``names = {11.0: "w11", ...}`` this prints the notes' symbolic matrix ``C``.
    """
    lookup = names or {}
    rows = []
    for row in np.asarray(mat):
        cells = []
        for v in row:
            label = lookup.get(float(v))
            cells.append((label if label is not None else ("0" if v == 0 else f"{v:g}")).rjust(width))
        rows.append(" ".join(cells))
    return "\n".join(rows)
