"""The Winograd forward (algorithm="winograd" / "winograd4"): oracle within the derived bound.

Oracle: conv_transpose in float64 (torch, else tconv.reference), through
tools/winograd_error.py, which derives the transforms from their interpolation points alone
(Toom-Cook in exact fractions, independent of csrc/) and from them the error bound of
docs/winograd.md.  Also: the plan (which geometries take the path, the rest bitwise equal to
the direct path), every ISA, bitwise determinism across thread counts, Inf/NaN handled as the
direct path does, and the argument's validation.
"""

from __future__ import annotations

import numpy as np
import pytest
import tconv
from _winograd_checks import (ALGOS, DTYPES, PLAN_CASES, assert_nonfinite_as_direct,
                              assert_overflow_repaired, assert_plan_runs, load_tool,
                              nonfinite_cases)
from _isas import assert_bitwise_across_threads, isa_params
from tconv import _core

werr = load_tool("winograd_error")


@pytest.fixture
def isa(request):
    saved = tconv.isa()
    tconv.set_isa(request.param)
    yield request.param
    tconv.set_isa(saved)


def _plan(x, w, geo, algorithm):
    """The forward method tconv.plan reports: winograd, winograd4 or direct."""
    p = tconv.plan("conv_transpose", x.shape, w.shape, dtype=x.dtype, algorithm=algorithm,
                   **geo)
    return p.algorithm if p.algorithm.startswith("winograd") else "direct"


def test_transforms_derived_here_satisfy_the_correlation_identity():
    # the test's own derivation (the bound rests on it): A^T (G h . B^T d) = correlation
    for (m, r) in werr.POINTS:
        at, g, bt = werr.transform(m, r)
        alpha = m + r - 1
        for i in range(m):
            for q in range(r):
                for p in range(alpha):
                    v = sum(at[i][x] * g[x][q] * bt[x][p] for x in range(alpha))
                    assert v == (1 if p == i + q else 0), (m, r, i, q, p)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fuzz_within_derived_bound(isa, algorithm, dtype):
    rng = np.random.default_rng(hash((algorithm, np.dtype(dtype).name)) % 2**32)
    for _ in range(12):
        x, w, b, geo = werr.random_problem(rng, dtype)
        assert _plan(x, w, geo, algorithm) == algorithm, geo
        y = tconv.conv_transpose(x, w, b, algorithm=algorithm, **geo)
        r_wino, _ = werr.ratios(y, x, w, b, geo, werr.TILE[algorithm])
        assert r_wino <= 1.0, (geo, r_wino)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fuzz_within_derived_bound_long(algorithm, dtype):
    rng = np.random.default_rng(7 + hash(algorithm) % 1000)
    for _ in range(400):
        x, w, b, geo = werr.random_problem(rng, dtype)
        y = tconv.conv_transpose(x, w, b, algorithm=algorithm, **geo)
        r_wino, _ = werr.ratios(y, x, w, b, geo, werr.TILE[algorithm])
        assert r_wino <= 1.0, (geo, r_wino)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_in,c_out,size", [
    (1, 13, (3, 70)),     # one tile row longer than any panel: runs split across panels
    (300, 5, (5, 5)),     # K blocks of k_block<T>() channels (256 / 128), one panel
    (2, 40, (33, 41)),    # several slabs of output channels, up to 8 panels per block
    (700, 30, (9, 9)),    # tile block shrunk to 1 panel by kWinoVBytes, several slabs
])
def test_tile_block_and_slab_boundaries(isa, algorithm, dtype, c_in, c_out, size):
    rng = np.random.default_rng(3)
    for kernel, stride, padding in (((3, 3), 1, 1), ((4, 4), 2, 1)):
        x = rng.standard_normal((2, c_in, *size)).astype(dtype)
        w = rng.standard_normal((c_in, c_out, *kernel)).astype(dtype)
        b = rng.standard_normal(c_out).astype(dtype)
        geo = {"stride": (stride,) * 2, "padding": (padding,) * 2, "output_padding": (0, 0),
               "groups": 1}
        y = tconv.conv_transpose(x, w, b, algorithm=algorithm, **geo)
        r_wino, _ = werr.ratios(y, x, w, b, geo, werr.TILE[algorithm])
        assert r_wino <= 1.0, (kernel, r_wino)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_stride2_phase_store_widths(isa, dtype):
    # store_stride2 (winograd_tasks.inc) writes 8 (float) / 4 (double) phase outputs per
    # AVX-512 masked store and the rest one by one: phase rows of 1 to 19 outputs cross both
    # widths twice; the other phase's elements must keep their own values
    rng = np.random.default_rng(12)
    for width in range(1, 20):
        x = rng.standard_normal((1, 3, 3, width)).astype(dtype)
        w = rng.standard_normal((3, 2, 4, 4)).astype(dtype)
        b = rng.standard_normal(2).astype(dtype)
        geo = {"stride": (2, 2), "padding": (1, 1), "output_padding": (0, 0), "groups": 1}
        for algorithm in ALGOS:
            y = tconv.conv_transpose(x, w, b, algorithm=algorithm, **geo)
            r_wino, _ = werr.ratios(y, x, w, b, geo, werr.TILE[algorithm])
            assert r_wino <= 1.0, (width, algorithm, r_wino)


@pytest.mark.parametrize("shape,kernel,geo,expected", PLAN_CASES)
@pytest.mark.parametrize("algorithm", ALGOS)
def test_plan(shape, kernel, geo, expected, algorithm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1], 3, *kernel))
    assert_plan_runs(lambda a: _plan(x, w, geo, a),
                     lambda a: tconv.conv_transpose(x, w, algorithm=a, **geo), expected, algorithm)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_deterministic_across_threads(isa, algorithm, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 20, 17, 23)).astype(dtype)
    w = rng.standard_normal((20, 14, 4, 4)).astype(dtype)
    b = rng.standard_normal(14).astype(dtype)
    assert_bitwise_across_threads(isa, lambda: [
        tconv.conv_transpose(x, w, b, stride=2, padding=1, algorithm=algorithm)])


def _conv_transpose(data, w, b, algorithm):
    return tconv.conv_transpose(data, w, b, padding=1, algorithm=algorithm)


@nonfinite_cases
def test_nonfinite_as_direct(algorithm, dtype, where, value):
    assert_nonfinite_as_direct(_conv_transpose, (4, 5, 3, 3), dtype, where, value, algorithm)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_overflow_inside_a_transform_is_repaired(algorithm):
    assert_overflow_repaired(_conv_transpose, lambda x, w: werr.oracle(x, w, None, {"padding": 1}), algorithm)


@pytest.mark.parametrize("bad", ["fast", "Winograd", "", 3, None])
def test_algorithm_is_validated(bad):
    x = np.zeros((1, 1, 3, 3))
    w = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tconv.conv_transpose(x, w, algorithm=bad)


def test_padding_mode_and_out_take_the_algorithm():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((3, 4, 3, 3))
    for mode in ("zeros", "circular", "reflect"):
        direct = tconv.conv_transpose(x, w, padding=1, padding_mode=mode)
        out = np.empty_like(direct)
        y = tconv.conv_transpose(x, w, padding=1, padding_mode=mode, algorithm="winograd",
                                 out=out)
        assert y is out
        np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("algorithm,kernel,stride,transforms", [
    ("winograd", (4, 4), 2, "F(2x2 2x2)"),
    ("winograd", (3, 3), 1, "F(2x2 3x3)"),
    ("winograd4", (3, 3), 1, "F(4x4 3x3)"),
    ("winograd", (5, 5), 2, {"F(2x2 3x3)", "F(2x2 3x2)", "F(2x2 2x3)", "F(2x2 2x2)"}),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_plan_reports_transforms_and_workspace(algorithm, kernel, stride, transforms, dtype):
    c_in, c_out, n, size = 6, 5, 2, 9
    p = tconv.plan("conv_transpose", (n, c_in, size, size), (c_in, c_out, *kernel),
                   stride=stride, padding=1, dtype=dtype, algorithm=algorithm)
    assert p.algorithm == algorithm and p.kernel == "scatter"
    want = transforms if isinstance(transforms, set) else {transforms}
    assert set(p.input.split("+")) == want
    direct = tconv.plan("conv_transpose", (n, c_in, size, size), (c_in, c_out, *kernel),
                        stride=stride, padding=1, dtype=dtype)
    assert direct.algorithm == "subconv"
    assert p.flops == direct.flops  # counted as the direct method's
    # U: alpha_y alpha_x / (r_y r_x) times the weight per phase, at least the weight itself
    itemsize = np.dtype(dtype).itemsize
    assert p.workspace_bytes > c_in * c_out * kernel[0] * kernel[1] * itemsize
    assert p.tasks >= 1 and p.blocks["nc"] >= 1 and p.blocks["mc"] >= p.tile[0]
    assert str(p).startswith(f"conv_transpose: {algorithm}/F(")


def test_plan_algorithm_is_validated():
    shapes = ((1, 2, 5, 5), (2, 3, 3, 3))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tconv.plan("conv_transpose", *shapes, algorithm="fast")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tconv.plan("conv_transpose", *shapes, algorithm=None)  # type: ignore[arg-type]
    for op in ("conv", "grad_input", "grad_weight"):
        op_shapes = ((1, 3, 5, 5), shapes[1]) if op == "conv" else shapes
        if op == "grad_weight":  # the gathers take Winograd too (test_winograd_gather.py)
            with pytest.raises(ValueError, match="grad_weight"):
                tconv.plan(op, *op_shapes, algorithm="winograd")
        assert tconv.plan(op, *op_shapes, algorithm="auto") == tconv.plan(op, *op_shapes)
    with pytest.raises(ValueError, match="algorithm must be"):
        _core.plan("conv_transpose", "float32", [1, 2, 5, 5], [1, 3, 7, 7], [2, 3, 3, 3],
                   [1, 1], [0, 0], [1, 1], 1, "fast")


def test_verbose_line_names_the_winograd_plan(capfd):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    tconv.set_verbose(True)
    try:
        tconv.conv_transpose(x, w, stride=2, padding=1, algorithm="winograd")
        tconv.conv_transpose(x, w, stride=2, padding=1, algorithm="auto")
    finally:
        tconv.set_verbose(False)
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("tconv_verbose")]
    assert len(lines) == 2
    assert lines[0].split(",")[2] == "winograd/F(2x2 2x2)"
    assert not lines[1].split(",")[2].startswith("winograd")
