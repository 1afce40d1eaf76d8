"""Depthwise layers (one input and one output channel per group: csrc/depthwise.cpp, vectorised
over the pixels of a row) and their neighbours across the cut-off (two or four channels per
group on either side, which stay on the sub-convolutions).

Oracles: the dense float64 oracle ``tconv.reference`` (forward, grad_input, grad_weight,
grad_bias, through test_reference.check_case, and conv), PyTorch when installed, the structural
oracle for Inf/NaN, and the kernel itself for bitwise determinism across thread counts.  Every
ISA of ``tconv.supported_isas()``.  Row widths sweep 1 .. 70, which crosses every vector block
(4/8 generic, 8/16 avx2, 16/32 avx512 floats; half as many doubles) and the overlapping last
vector, and strides 1-5 and 8 cross the interleaving store / de-interleaving load of steps 2
and 4 and the run-time step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from _cases import Case
from _isas import isa_params
from _structural import grad_weight as grad_weight_oracle
from conftest import assert_matches_oracle
from tconv import reference
from test_nonfinite import SPECIALS, _check_backward, _check_forward, _positions
from test_reference import check_case


@pytest.fixture(params=isa_params())
def isa(request):
    saved = tconv.isa()
    tconv.set_isa(request.param)
    yield request.param
    tconv.set_isa(saved)


def _dw(batch, groups, spatial, kernel, stride, padding, out_pad, dilation, bias=True, kc=1,
        m=1) -> Case:
    return Case(batch, groups, kc, m, tuple(spatial), tuple(kernel), tuple(stride),
                tuple(padding), tuple(out_pad), tuple(dilation), bias)


CASES = [
    # the benchmark layer's shape, scaled: 2-D k4 s2 p1 (learned bilinear 2x)
    _dw(2, 5, (9, 11), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1)),
    # 1-D: strides 1-4, kernels 1-7, dilation, output_padding, large padding
    _dw(2, 3, (37,), (1,), (1,), (0,), (0,), (1,)),
    _dw(1, 4, (40,), (7,), (1,), (3,), (0,), (1,), bias=False),
    _dw(2, 3, (33,), (5,), (3,), (2,), (2,), (2,)),
    _dw(1, 2, (29,), (7,), (4,), (9,), (3,), (1,)),
    _dw(1, 2, (25,), (3,), (2,), (12,), (1,), (3,)),
    _dw(1, 3, (6,), (6,), (4,), (0,), (0,), (1,)),
    # 2-D: anisotropic stride / dilation, stride 1 rows written straight, 1-wide rows
    _dw(1, 4, (7, 19), (3, 5), (1, 2), (1, 2), (0, 1), (2, 1)),
    _dw(2, 2, (5, 1), (3, 3), (2, 2), (1, 0), (1, 0), (1, 1), bias=False),
    _dw(1, 3, (6, 8), (2, 2), (3, 3), (0, 0), (2, 2), (1, 1)),
    # 3-D
    _dw(2, 3, (3, 4, 9), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
    _dw(1, 2, (4, 3, 6), (2, 3, 4), (1, 2, 3), (0, 1, 2), (0, 1, 1), (1, 1, 1), bias=False),
    # across the cut-off: 2 or 4 output channels per group, 2 input channels per group
    _dw(2, 3, (9, 11), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), m=2),
    _dw(1, 2, (31,), (5,), (3,), (2,), (1,), (1,), m=4),
    _dw(1, 3, (7, 10), (3, 3), (2, 1), (1, 1), (1, 0), (1, 1), kc=2),
    _dw(1, 2, (3, 4, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), kc=2, m=2),
]


def _id(c: Case) -> str:
    return (f"{len(c.spatial)}d-g{c.groups}-{c.c_in_per_group}x{c.c_out_per_group}"
            f"-k{c.kernel}-s{c.stride}-p{c.padding}")


def _conv_matches(case: Case, dtype) -> None:
    """conv (the gather with a bias) of a fine-shaped tensor against the oracle."""
    rng = np.random.default_rng(5)
    g = rng.standard_normal((case.batch, case.c_out, *case.output_spatial())).astype(dtype)
    _, w, _ = case.arrays(dtype)
    bias = rng.standard_normal(case.c_in).astype(dtype)
    cp = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation,
          "groups": case.groups}
    got = tconv.conv(g, w, bias, **cp)
    want = reference.conv(g, w, bias, **cp)
    scale = reference.conv(np.abs(g), np.abs(w), np.abs(bias), **cp)
    taps = int(np.prod(case.kernel))
    assert_matches_oracle(got, want, scale, case.c_out_per_group * taps + 1, f"conv {case}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_against_the_oracle_every_isa(isa, case, dtype):
    check_case(case, dtype)
    _conv_matches(case, dtype)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5, 8])
def test_row_widths_cross_every_vector_block(isa, stride, dtype):
    """Inputs 1 .. 70 wide: forward x phases and gather outputs of every width around the
    vector blocks, with borders on both sides (padding) and without (kernel 1)."""
    for width in range(1, 71):
        for kernel, pad in ((stride + 2, 1), (1, 0)):
            case = _dw(1, 2, (width,), (kernel,), (stride,), (pad,), (0,), (1,))
            if min(case.output_spatial()) < 1:
                continue
            x, w, b = case.arrays(dtype, seed=width)
            p = case.params()
            y = tconv.conv_transpose(x, w, b, **p)
            assert_matches_oracle(y, reference.conv_transpose(x, w, b, **p),
                                  reference.conv_transpose(np.abs(x), np.abs(w), np.abs(b), **p),
                                  kernel + 1, f"forward {case}")
            cp = {"stride": stride, "padding": pad, "groups": 2}
            gi = tconv.conv(y, w, **cp)
            want = reference.conv(y, w, **cp)
            assert_matches_oracle(gi, want, reference.conv(np.abs(y), np.abs(w), **cp),
                                  kernel, f"gather {case}")


@st.composite
def depthwise_cases(draw):
    nd = draw(st.integers(1, 3))
    cap = {1: 24, 2: 9, 3: 5}[nd]
    spatial, kernel, stride, padding, op, dilation = [], [], [], [], [], []
    for _ in range(nd):
        i, k = draw(st.integers(1, cap)), draw(st.integers(1, 7))
        s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        o = draw(st.integers(0, max(s, d) - 1))
        full = (i - 1) * s + d * (k - 1) + o + 1
        spatial.append(i); kernel.append(k); stride.append(s); dilation.append(d)
        op.append(o); padding.append(draw(st.integers(0, (full - 1) // 2)))
    return _dw(draw(st.integers(0, 2)), draw(st.integers(1, 4)), spatial, kernel, stride,
               padding, op, dilation, bias=draw(st.booleans()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", isa_params())
@settings(max_examples=25, deadline=None)
@given(case=depthwise_cases())
def test_random_depthwise_every_isa(name, case, dtype):
    saved = tconv.isa()
    tconv.set_isa(name)
    try:
        check_case(case, dtype)
    finally:
        tconv.set_isa(saved)


@pytest.mark.parametrize("case", [c for c in CASES if c.c_in_per_group == c.c_out_per_group == 1],
                         ids=_id)
def test_against_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b = case.arrays(np.float64, seed=2)
    nd = len(case.spatial)
    p = case.params()
    want = getattr(torch.nn.functional, f"conv_transpose{nd}d")(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b) if b is not None else None,
        **p).numpy()
    np.testing.assert_allclose(tconv.conv_transpose(x, w, b, **p), want, rtol=1e-12, atol=1e-12)
    cp = {k: p[k] for k in ("stride", "padding", "dilation", "groups")}
    want_c = getattr(torch.nn.functional, f"conv{nd}d")(torch.from_numpy(want),
                                                        torch.from_numpy(w), **cp).numpy()
    np.testing.assert_allclose(tconv.conv(want, w, **cp), want_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_for_any_thread_count(isa, dtype):
    """Many tasks (rows of 2 x 8 planes, 128 and 64 wide) in 1, 2 and 3 threads."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 64, 64)).astype(dtype)
    w = rng.standard_normal((8, 1, 4, 4)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    p = {"stride": 2, "padding": 1, "groups": 8}
    g = rng.standard_normal((2, 8, 128, 128)).astype(dtype)

    def run():
        return (tconv.conv_transpose(x, w, b, **p), tconv.conv(g, w, b, **p))

    saved = tconv.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            tconv.set_num_threads(n)
            results.append(run())
    finally:
        tconv.set_num_threads(saved)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert np.array_equal(a.view(np.uint8), c.view(np.uint8))


# the 1-D case in the default run, the others (seconds each on every ISA) in the slow pass
NONFINITE = [CASES[3], *(pytest.param(c, marks=pytest.mark.slow)
                         for c in (CASES[0], CASES[7], CASES[10]))]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning",
                            "ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("case", NONFINITE, ids=lambda c: _id(c) if isinstance(c, Case) else None)
def test_nan_and_inf_reach_exactly_their_window(isa, case):
    x, w, b = case.arrays(np.float32, seed=7)
    g = np.random.default_rng(8).standard_normal(
        (case.batch, case.c_out, *case.output_spatial())).astype(np.float32)
    i = 0
    for name, base in (("x", x), ("w", w), ("b", b), ("g", g)):
        if base is None:
            continue
        for pos in _positions(base.shape):
            a = base.copy()
            a[pos] = SPECIALS[i % 3]
            i += 1
            xx, ww, bb, gg = (a if name == n else v for n, v in
                              (("x", x), ("w", w), ("b", b), ("g", g)))
            label = f"{isa} {name}{pos}={a[pos]} {case}"
            _check_forward(case, xx, ww, bb, label)
            if name != "b":
                _check_backward(case, gg, xx, ww, label)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 8, 64, 64), (3, 2, 256, 256)], ids=["one-chunk", "chunks"])
def test_grad_weight_bitwise_identical_for_any_thread_count(isa, dtype, shape):
    """The depthwise grad_weight in 1, 2 and 3 threads: tasks of one channel x whole images
    (3 images of 2^16 pixels: three batch chunks per channel, added in a final pass), against
    the structural float64 oracle too."""
    rng = np.random.default_rng(3)
    n, c, h, w_ = shape
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((c, 1, 4, 4)).astype(dtype)
    g = rng.standard_normal((n, c, 2 * h, 2 * w_)).astype(dtype)
    p = {"stride": 2, "padding": 1, "groups": c}
    plan = tconv.plan("grad_weight", x.shape, w.shape, dtype=np.dtype(dtype).name, **p)
    assert plan.algorithm == "depthwise"
    assert plan.blocks["slabs"] == (1 if n * h * w_ <= 2**16 else n)  # slabs: the batch chunks

    def run():
        return tconv.conv_transpose_backward(g, x, w, output_mask=(False, True, False), **p)[1]

    saved = tconv.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            tconv.set_num_threads(threads)
            results.append(run())
    finally:
        tconv.set_num_threads(saved)
    for other in results[1:]:
        assert np.array_equal(results[0].view(np.uint8), other.view(np.uint8))
    want = grad_weight_oracle(g, x, w.shape, 2, 1, 1, c)
    scale = grad_weight_oracle(np.abs(g), np.abs(x), w.shape, 2, 1, 1, c)
    assert_matches_oracle(results[0], want, scale, n * h * w_, f"grad_weight {shape}")


def test_plan_reports_the_depthwise_grad_weight():
    """One channel per group on both sides: grad_weight runs here (conv_transpose's and conv's);
    two output channels per group go back to the GEMM forms."""
    kw = {"stride": 2, "padding": 1, "groups": 64}
    with tconv.threads(2):
        p = tconv.plan("grad_weight", (8, 64, 128, 128), (64, 1, 4, 4), **kw)
        assert (p.algorithm, p.kernel, p.threads, p.tasks) == ("depthwise", "weight_grad", 2,
                                                               64 * 2)
        assert p.flops == 2.0 * 8 * 64 * 128 * 128 * 16
        assert tconv.plan("grad_weight", (8, 64, 128, 128), (64, 2, 4, 4),
                          **kw).algorithm in ("dot", "outer_product", "channels_last", "phase_channels")
