"""Defence in depth: the C++ kernels, called straight through ``tconv._core``, are correct (and,
under tools/sanitize.sh, memory-safe) for *any* geometry the binding accepts -- including fine
and coarse sizes that no stride/padding formula relates (the binding checks channels, batch,
stride >= 1, dilation >= 1, padding >= 0, not the size formula).

Oracle: the index identity ``fine = coarse*stride - pad + tap*dilation`` with every tap that
lands outside ``[0, fine)`` dropped, as enumerated by ``tconv.reference`` (its entry list of C),
summed entry by entry in float64.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tconv import _core, reference

from conftest import assert_matches_oracle


@st.composite
def geometries(draw):
    nd = draw(st.integers(1, 3))
    cap = {1: 9, 2: 5, 3: 3}[nd]
    coarse = tuple(draw(st.integers(1, cap)) for _ in range(nd))
    fine = tuple(draw(st.integers(1, 2 * cap)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = [draw(st.integers(1, 4)) for _ in range(nd)]
    pad = [draw(st.integers(0, 5)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 3)) for _ in range(nd)]
    groups = draw(st.integers(1, 3))
    cpg, fpg = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    batch = draw(st.integers(0, 2))
    return nd, batch, groups, cpg, fpg, coarse, fine, kernel, stride, pad, dilation


def _expected(x, w, coarse, fine, stride, pad, dilation, groups, transposed):
    rows, cols, widx = reference._entries(w.shape, coarse, fine, stride, pad, dilation, groups)
    src, dst = (rows, cols) if transposed else (cols, rows)
    n = x.shape[0]
    n_out = (w.shape[1] * groups * int(np.prod(fine))) if transposed else (
        w.shape[0] * int(np.prod(coarse)))
    out = np.zeros((n, n_out))
    if n and src.size:
        np.add.at(out.T, dst, (x.reshape(n, -1)[:, src] * w.ravel()[widx]).T)
    return out, rows, cols, widx


@settings(max_examples=150, deadline=None)
@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]))
def test_core_kernels_for_any_accepted_geometry(geom, dtype):
    nd, batch, groups, cpg, fpg, coarse, fine, kernel, stride, pad, dilation = geom
    rng = np.random.default_rng(0)
    cc, fc = cpg * groups, fpg * groups
    x = rng.standard_normal((batch, cc, *coarse)).astype(dtype)
    y = rng.standard_normal((batch, fc, *fine)).astype(dtype)
    w = rng.standard_normal((cc, fpg, *kernel)).astype(dtype)
    args = (stride, pad, dilation, groups)
    terms = max(cpg, fpg, 1) * int(np.prod(kernel)) + 1

    out = np.full((batch, fc, *fine), np.nan, dtype)  # every element must be written
    _core.scatter(x, w, None, out, *args)
    exp, rows, cols, widx = _expected(x, w, coarse, fine, *args, transposed=True)
    absx = _expected(np.abs(x), np.abs(w), coarse, fine, *args, transposed=True)[0]
    assert_matches_oracle(out, exp.reshape(out.shape), absx.reshape(out.shape), terms, f"scatter {geom}")

    out = np.full((batch, cc, *coarse), np.nan, dtype)
    _core.gather(y, w, None, out, *args)
    exp = _expected(y, w, coarse, fine, *args, transposed=False)[0]
    absy = _expected(np.abs(y), np.abs(w), coarse, fine, *args, transposed=False)[0]
    assert_matches_oracle(out, exp.reshape(out.shape), absy.reshape(out.shape), terms, f"gather {geom}")

    dw = np.full(w.shape, np.nan, dtype)
    _core.weight_grad(x, y, dw, *args)
    xf = x.reshape(batch, x[0:1].size).astype(np.float64) if batch else None
    yf = y.reshape(batch, y[0:1].size).astype(np.float64) if batch else None
    exp = np.zeros(w.size)
    absw = np.zeros(w.size)
    if batch and rows.size:
        np.add.at(exp, widx, np.einsum("nr,nr->r", xf[:, rows], yf[:, cols]))
        np.add.at(absw, widx, np.einsum("nr,nr->r", np.abs(xf[:, rows]), np.abs(yf[:, cols])))
    assert_matches_oracle(dw, exp.reshape(w.shape), absw.reshape(w.shape),
                          batch * int(np.prod(coarse)), f"weight_grad {geom}")
