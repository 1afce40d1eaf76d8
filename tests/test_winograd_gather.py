"""The Winograd gather (conv and conv_transpose's grad_input, algorithm="winograd"/"winograd4"):
oracle within the derived bound.

Oracle: conv in float64 (torch, else tconv.reference), through
tools/winograd_gather_error.py, whose bound (docs/winograd.md, "The gather") rests on the
transforms tools/winograd_error.py derives from the interpolation points alone.  Also: the plan
(which geometries take the path; the rest bitwise equal to the direct path), every ISA, the
tile/block/slab boundaries, bitwise determinism across thread counts, Inf/NaN handled as the
direct path does, padding modes, negative padding, and the argument's validation.
"""

from __future__ import annotations

import numpy as np
import pytest
import tconv
from _winograd_checks import (ALGOS, DTYPES, PLAN_CASES, assert_nonfinite_as_direct,
                              assert_overflow_repaired, assert_plan_runs, load_tool,
                              nonfinite_cases)
from _isas import assert_bitwise_across_threads, isa_params

werr = load_tool("winograd_error")
gerr = load_tool("winograd_gather_error")


@pytest.fixture
def isa(request):
    saved = tconv.isa()
    tconv.set_isa(request.param)
    yield request.param
    tconv.set_isa(saved)


def _plan(op, shape, w_shape, geo, dtype, algorithm):
    """The method tconv.plan reports for op: winograd, winograd4 or direct."""
    p = tconv.plan(op, shape, w_shape, dtype=dtype, algorithm=algorithm, **geo)
    assert p.kernel == "gather"
    return p.algorithm if p.algorithm.startswith("winograd") else "direct"


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("examples", [12, pytest.param(400, marks=pytest.mark.slow)])
def test_conv_fuzz_within_derived_bound(isa, algorithm, dtype, examples):
    rng = np.random.default_rng(hash(("gather", algorithm, np.dtype(dtype).name, examples))
                                % 2**32)
    for _ in range(examples):
        y, w, b, geo = gerr.random_problem(rng, dtype)
        assert _plan("conv", y.shape, w.shape, geo, dtype, algorithm) == algorithm, geo
        x = tconv.conv(y, w, b, algorithm=algorithm, **geo)
        r_wino, _ = gerr.ratios(x, y, w, b, geo, gerr.TILE[algorithm])
        assert r_wino <= 1.0, (geo, r_wino)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_input_fuzz_within_derived_bound(isa, algorithm, dtype):
    # conv_transpose's random geometries (output_padding too): grad_input = conv(g, w)
    rng = np.random.default_rng(hash(("grad_input", algorithm)) % 2**32)
    for _ in range(8):
        x, w, _, geo = werr.random_problem(rng, dtype)
        g = rng.standard_normal(tconv.output_shape(x.shape, w.shape, **geo)).astype(dtype)
        plan_geo = {k: geo[k] for k in ("stride", "padding", "output_padding", "groups")}
        assert _plan("grad_input", x.shape, w.shape, plan_geo, dtype, algorithm) == algorithm
        gx, gw, gb = tconv.conv_transpose_backward(g, x, w, algorithm=algorithm, **geo)
        gx_direct, gw_direct, gb_direct = tconv.conv_transpose_backward(g, x, w, **geo)
        assert gx is not None and gx.shape == x.shape
        conv_geo = {"stride": geo["stride"], "padding": geo["padding"], "groups": geo["groups"]}
        r_wino, _ = gerr.ratios(gx, g, w, None, conv_geo, gerr.TILE[algorithm])
        assert r_wino <= 1.0, (geo, r_wino)
        # grad_weight and grad_bias stay direct
        np.testing.assert_array_equal(gw, gw_direct)
        np.testing.assert_array_equal(gb, gb_direct)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_in,c_out,size", [
    (1, 13, (3, 150)),    # one tile row longer than any panel (nr <= 64): runs split
    (130, 5, (9, 9)),     # K = c_in x phases over k_block<T>() (256 / 128): several K blocks;
                          # V of one panel over kGatherVBytes: tasks of 1 panel
    (2, 40, (33, 41)),    # several slabs of output channels, up to 8 panels per block
])
def test_tile_block_and_slab_boundaries(isa, algorithm, dtype, c_in, c_out, size):
    rng = np.random.default_rng(3)
    for kernel, stride, padding in ((3, 1, 1), (4, 2, 1), (5, 2, 2)):
        # fine size so that the conv's output is `size`
        fine = tuple((n - 1) * stride - 2 * padding + kernel for n in size)
        y = rng.standard_normal((2, c_in, *fine)).astype(dtype)
        w = rng.standard_normal((c_out, c_in, kernel, kernel)).astype(dtype)
        b = rng.standard_normal(c_out).astype(dtype)
        geo = {"stride": (stride, stride), "padding": (padding, padding), "groups": 1}
        x = tconv.conv(y, w, b, algorithm=algorithm, **geo)
        assert x.shape == (2, c_out, *size)
        r_wino, _ = gerr.ratios(x, y, w, b, geo, gerr.TILE[algorithm])
        assert r_wino <= 1.0, (kernel, r_wino)


def test_block_constants_are_crossed():
    # the cases above cross what they claim: the plan's tiles per task and K
    p = tconv.plan("conv", (2, 130, 18, 18), (5, 130, 4, 4), stride=2, padding=1,
                   algorithm="winograd")
    assert p.blocks["nc"] == p.tile[1] and p.tasks >= 2      # tasks of one panel
    assert 130 * 4 > p.blocks["kc"]                          # K blocks
    p = tconv.plan("conv", (2, 2, 33, 41), (40, 2, 3, 3), padding=1, algorithm="winograd")
    assert p.blocks["mc"] < 40 and p.blocks["nc"] > p.tile[1]       # slabs; several panels
    assert 75 > p.tile[1]  # (3, 150) with m = 2: 75 tiles in a row, more than a panel


@pytest.mark.parametrize("shape,kernel,geo,expected", PLAN_CASES)
@pytest.mark.parametrize("algorithm", ALGOS)
def test_plan(shape, kernel, geo, expected, algorithm):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], *kernel))
    assert_plan_runs(lambda a: _plan("conv", y.shape, w.shape, geo, "float64", a),
                     lambda a: tconv.conv(y, w, algorithm=a, **geo), expected, algorithm)


@pytest.mark.parametrize("isa", isa_params(), indirect=True)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_deterministic_across_threads(isa, algorithm, dtype):
    rng = np.random.default_rng(11)
    y = rng.standard_normal((3, 14, 34, 46)).astype(dtype)
    w = rng.standard_normal((20, 14, 4, 4)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    x = rng.standard_normal((3, 20, 17, 23)).astype(dtype)

    def results():
        return [tconv.conv(y, w, b, stride=2, padding=1, algorithm=algorithm),
                tconv.conv(y, w, b, padding=1, algorithm=algorithm)[..., :3, :],
                tconv.conv_transpose_backward(y, x, w, stride=2, padding=1,
                                              output_mask=(True, False, False),
                                              algorithm=algorithm)[0]]

    assert_bitwise_across_threads(isa, results)


def _conv(data, w, b, algorithm):
    return tconv.conv(data, w, b, padding=1, algorithm=algorithm)


@nonfinite_cases
def test_nonfinite_as_direct(algorithm, dtype, where, value):
    assert_nonfinite_as_direct(_conv, (5, 4, 3, 3), dtype, where, value, algorithm)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_overflow_inside_a_transform_is_repaired(algorithm):
    assert_overflow_repaired(_conv, lambda y, w: gerr.oracle(y, w, None, (1, 1), ((1, 1), (1, 1)), 1), algorithm)


@pytest.mark.parametrize("bad", ["fast", "Winograd", "", 3, None])
def test_algorithm_is_validated(bad):
    y = np.zeros((1, 1, 3, 3))
    w = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tconv.conv(y, w, algorithm=bad)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tconv.conv_transpose_backward(np.zeros((1, 1, 5, 5)), y, w, algorithm=bad)


def test_plan_validation_and_grad_weight():
    shapes = ((1, 2, 5, 5), (2, 3, 3, 3))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tconv.plan("conv", (1, 3, 5, 5), shapes[1], algorithm="fast")
    with pytest.raises(ValueError, match="grad_weight"):
        tconv.plan("grad_weight", *shapes, algorithm="winograd")
    assert tconv.plan("grad_weight", *shapes, algorithm="auto") == tconv.plan("grad_weight",
                                                                             *shapes)


def test_padding_modes_out_and_negative_padding():
    rng = np.random.default_rng(2)
    y = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    for mode in ("zeros", "circular", "reflect", "replicate"):
        direct = tconv.conv(y, w, padding=1, padding_mode=mode)
        out = np.empty_like(direct)
        x = tconv.conv(y, w, padding=1, padding_mode=mode, algorithm="winograd", out=out)
        assert x is out
        np.testing.assert_allclose(x, direct, rtol=1e-12, atol=1e-12)
        x_t = rng.standard_normal((2, 4, 8, 8))
        # conv_transpose of x_t (4 channels) by w (4, 3, k, k): grad_output y, 3 channels
        gx = tconv.conv_transpose_backward(y, x_t, w, padding=1, padding_mode=mode,
                                           algorithm="winograd")[0]
        gx_direct = tconv.conv_transpose_backward(y, x_t, w, padding=1, padding_mode=mode)[0]
        np.testing.assert_allclose(gx, gx_direct, rtol=1e-12, atol=1e-12)
    # negative padding runs the direct path (never an error), bit for bit
    neg = ((-1, 1), (1, -1))
    np.testing.assert_array_equal(tconv.conv(y, w, padding=neg, algorithm="winograd"),
                                  tconv.conv(y, w, padding=neg))


@pytest.mark.parametrize("op", ["conv", "grad_input"])
@pytest.mark.parametrize("algorithm,kernel,stride,transforms", [
    ("winograd", (4, 4), 2, "F(2x2 2x2)"),
    ("winograd", (3, 3), 1, "F(2x2 3x3)"),
    ("winograd4", (3, 3), 1, "F(4x4 3x3)"),
    ("winograd", (5, 4), 2, "F(2x2 3x2)"),   # phases of 3 and 2 taps padded to 3
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_plan_reports_transforms_and_workspace(op, algorithm, kernel, stride, transforms, dtype):
    c_coarse, c_fine, n, size = 6, 5, 2, 9
    shape = (n, c_fine, size, size) if op == "conv" else (n, c_coarse, size, size)
    w_shape = (c_coarse, c_fine, *kernel)
    p = tconv.plan(op, shape, w_shape, stride=stride, padding=1, dtype=dtype,
                   algorithm=algorithm)
    assert p.algorithm == algorithm and p.kernel == "gather" and p.input == transforms
    direct = tconv.plan(op, shape, w_shape, stride=stride, padding=1, dtype=dtype)
    assert p.flops == direct.flops  # counted as the direct method's
    itemsize = np.dtype(dtype).itemsize
    assert p.workspace_bytes > c_coarse * c_fine * kernel[0] * kernel[1] * itemsize
    assert p.tasks >= 1 and p.blocks["nc"] >= 1 and p.blocks["mc"] >= p.tile[0]
    assert str(p).startswith(f"{op}: {algorithm}/F(")


def test_verbose_line_names_the_winograd_plan(capfd):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    tconv.set_verbose(True)
    try:
        tconv.conv(y, w, stride=2, padding=1, algorithm="winograd")
        tconv.conv(y, w, stride=2, padding=1, algorithm="auto")
    finally:
        tconv.set_verbose(False)
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("tconv_verbose")]
    assert len(lines) == 2
    assert lines[0].split(",")[1:3] == ["conv", "winograd/F(2x2 2x2)"]
    assert not lines[1].split(",")[2].startswith("winograd")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_torch_layer_and_backward_take_the_algorithm(algorithm):
    torch = pytest.importorskip("torch")
    import tconv.torch as tt

    rng = np.random.default_rng(4)
    x_np = rng.standard_normal((2, 6, 7, 9))
    g_np = rng.standard_normal((2, 5, 14, 18))
    layer = tt.ConvTranspose2d(6, 5, 4, stride=2, padding=1, algorithm=algorithm).double()
    w_np = layer.weight.detach().numpy().copy()
    b_np = layer.bias.detach().numpy().copy()
    x = torch.from_numpy(x_np.copy()).requires_grad_(True)
    y = layer(x)
    y.backward(torch.from_numpy(g_np))
    want_y = tconv.conv_transpose(x_np, w_np, b_np, stride=2, padding=1, algorithm=algorithm)
    want_gx, want_gw, _ = tconv.conv_transpose_backward(g_np, x_np, w_np, stride=2, padding=1,
                                                        algorithm=algorithm)
    direct_gx = tconv.conv_transpose_backward(g_np, x_np, w_np, stride=2, padding=1)[0]
    assert y.detach().numpy().tobytes() == want_y.tobytes()
    assert x.grad is not None and layer.weight.grad is not None
    assert x.grad.numpy().tobytes() == want_gx.tobytes()        # grad_input by the algorithm
    assert not np.array_equal(want_gx, direct_gx)               # ... which is not the direct one
    assert layer.weight.grad.numpy().tobytes() == want_gw.tobytes()  # grad_weight direct
    # the functional form, and an unknown name
    y2 = tt.conv_transpose2d(torch.from_numpy(x_np), layer.weight.detach(), stride=2, padding=1,
                             algorithm=algorithm)
    assert y2.numpy().tobytes() == tconv.conv_transpose(x_np, w_np, stride=2, padding=1,
                                                         algorithm=algorithm).tobytes()
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tt.conv_transpose2d(torch.from_numpy(x_np), layer.weight.detach(), algorithm="fast")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tt.ConvTranspose2d(6, 5, 4, algorithm="fast")


def test_torch_converted_layer_runs_direct():
    torch = pytest.importorskip("torch")
    import tconv.torch as tt

    layer = tt.convert(torch.nn.ConvTranspose2d(3, 4, 3, padding=1).double())
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    want = tconv.conv_transpose(x.numpy(), layer.weight.detach().numpy(),
                                layer.bias.detach().numpy(), padding=1)
    assert layer(x).detach().numpy().tobytes() == want.tobytes()
