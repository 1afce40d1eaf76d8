"""Every micro-kernel ISA this machine supports, against the dense-matrix oracle
(tconv.reference, via test_reference.check_case), plus bitwise determinism for 1 vs 2 threads.

The extra BLOCKING cases are sized to cross the kernels' blocking: reductions longer than one
K block (256 fp32 / 128 fp64 terms), channel counts that are not multiples of the register tile
and exceed one channel block, more pixels than one pixel block, and a weight-gradient reduction
long enough to be split into two chunks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import tconv

from _cases import (
    COLUMNS, FIXED, GROUPED_GW, OUTER_GW, TAIL_ROWS, WHOLE_TILES, X_PHASES, Case, cases,
)
from _isas import isa_params, real_of
from conftest import assert_matches_oracle
from test_reference import check_case

ISAS = tconv.supported_isas()

BLOCKING = [
    # K = 140*4 per phase > one K block; gather M = 140 > one channel block, K = 20*16
    Case(2, 1, 140, 20, (3, 5), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),
    # weight-gradient reduction of 5*400 terms: two chunks
    Case(5, 1, 2, 3, (400,), (5,), (3,), (1,), (2,), (1,), True),
    # 3-D, odd channel counts, k3 s2 p1 op1
    Case(2, 1, 9, 7, (3, 4, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), True),
    # groups with more channels than one register tile, dilation > stride
    Case(1, 2, 13, 11, (6, 7), (3, 3), (2, 1), (2, 1), (2, 0), (3, 1), True),
    # rows longer than one direct-path row chunk (192 grid points), in 2-D and dilated 1-D
    Case(1, 1, 3, 2, (3, 230), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), True),
    Case(2, 1, 2, 3, (450,), (4,), (1,), (3,), (0,), (2,), True),
    # packed weights larger than the output: output channels in several slabs (with groups)
    Case(1, 1, 20, 40, (1, 2), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), True),
    Case(2, 2, 9, 14, (2,), (4,), (2,), (1,), (0,), (1,), True),
    # weight_grad rows of 8/16/32 points (fixed-length copies, step 1 and 2, edges zeroed)
    Case(2, 1, 3, 2, (3, 16), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),
    Case(2, 1, 2, 3, (2, 8), (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), True),
    Case(3, 1, 2, 2, (32,), (4,), (2,), (1,), (0,), (1,), True),
    # weight_grad stride-2 rows longer than 32 points (32-point pieces + a scalar tail)
    Case(2, 1, 2, 3, (100,), (4,), (2,), (1,), (0,), (1,), True),
    # ... and stride 4 and 8 (1-D, and 2-D rows of 70 points)
    Case(2, 1, 2, 3, (75,), (8,), (4,), (2,), (0,), (1,), True),
    Case(1, 1, 2, 2, (3, 70), (16, 16), (8, 8), (4, 4), (0, 0), (1, 1), True),
    # weight_grad with more than 512 input channels: two row blocks of A
    Case(1, 1, 520, 2, (3,), (3,), (2,), (1,), (0,), (1,), True),
]


@pytest.fixture(params=isa_params())
def isa(request):
    before = tconv.isa()
    tconv.set_isa(request.param)
    yield request.param
    tconv.set_isa(before)


def _id(c: Case) -> str:
    return f"{len(c.spatial)}d-c{c.c_in}x{c.c_out}-k{c.kernel}-s{c.stride}"


def _slow_if_large(case: Case):
    """Cases whose dense oracle matrix has more than 2**25 entries take 5-25 s each (building
    the matrix dominates), so they run in the slow pass; test_determinism still runs them on
    every ISA in the default pass."""
    entries = (case.groups * case.c_out_per_group * int(np.prod(case.output_spatial()))
               * case.c_in_per_group * int(np.prod(case.spatial)))
    return pytest.param(case, marks=pytest.mark.slow) if entries > 2**25 else case


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "case",
    [_slow_if_large(c)
     for c in FIXED + BLOCKING + COLUMNS + WHOLE_TILES + TAIL_ROWS + GROUPED_GW + X_PHASES],
    ids=_id,
)
def test_fixed_cases_every_isa(isa, case, dtype):
    assert tconv.isa() == isa
    check_case(case, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", isa_params())
@settings(max_examples=15, deadline=None)
@given(case=cases())
def test_random_cases_every_isa(name, case, dtype):
    before = tconv.isa()
    tconv.set_isa(name)
    try:
        check_case(case, dtype)
    finally:
        tconv.set_isa(before)


def _all_results(case: Case, dtype):
    x, w, b = case.arrays(dtype, seed=3)
    p = case.params()
    y = tconv.conv_transpose(x, w, b, **p)
    g = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, **p)
    return y, gi, gw, gb


def _gather_1d_oracle(g, w, stride, padding):
    """grad_input of a 1-D conv_transpose as the strided correlation it is, in float64:
    gi[n, c, j] = sum_f sum_k g[n, f, j*stride - padding + k] * w[c, f, k] (zeros outside g)."""
    k = w.shape[2]
    out = (g.shape[2] + 2 * padding - k) // stride + 1
    gp = np.pad(g.astype(np.float64), ((0, 0), (0, 0), (padding, padding + k)))
    win = np.lib.stride_tricks.sliding_window_view(gp, k, axis=2)[:, :, : out * stride : stride]
    return np.einsum("nfjk,cfk->ncj", win, w.astype(np.float64))


# grad_input sources whose de-interleaved band of all channels exceeds 256 KiB: the band is
# then filled per K block (its channels only), a channel straddling two blocks (12 taps).
@pytest.mark.parametrize(
    "dtype,fine,kernel,stride,padding",
    [(np.float32, 80, 16, 8, 4), (np.float64, 70, 12, 4, 4), (np.float32, 140, 12, 4, 2)],
)
def test_large_band_gather_every_isa(isa, dtype, fine, kernel, stride, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 200)).astype(dtype)
    w = rng.standard_normal((3, fine, kernel)).astype(dtype)
    y = tconv.conv_transpose(x, w, stride=stride, padding=padding)
    g = rng.standard_normal(y.shape).astype(dtype)
    gi, _, _ = tconv.conv_transpose_backward(g, x, w, stride=stride, padding=padding,
                                             output_mask=(True, False, False))
    expected = _gather_1d_oracle(g, w, stride, padding)
    bound = _gather_1d_oracle(np.abs(g), np.abs(w), stride, padding)
    assert_matches_oracle(gi, expected, bound, fine * kernel, "grad_input")


def _scatter_1d_oracle(x, w, stride, padding):
    """conv_transpose1d in float64 by its definition: y[n, f, i*stride - padding + k] +=
    x[n, c, i] * w[c, f, k] (outputs outside [0, out) dropped)."""
    n, _, length = x.shape
    k = w.shape[2]
    out = (length - 1) * stride - 2 * padding + k
    full = np.zeros((n, w.shape[1], (length - 1) * stride + k))
    prod = np.einsum("nci,cfk->nfik", x.astype(np.float64), w.astype(np.float64))
    for t in range(k):
        full[:, :, t:t + (length - 1) * stride + 1:stride] += prod[:, :, :, t]
    return full[:, :, padding:padding + out]


# A 1-D layer with one output channel whose GEMM result for the whole signal (16 taps x 20 000
# points) exceeds the 1 MiB a block may take: the output is cut into blocks along x.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_signal_few_channels_every_isa(isa, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 8, 20000)).astype(dtype)
    w = rng.standard_normal((8, 1, 16)).astype(dtype)
    b = rng.standard_normal(1).astype(dtype)
    y = tconv.conv_transpose(x, w, b, stride=8, padding=4)
    expected = _scatter_1d_oracle(x, w, 8, 4) + b.astype(np.float64)[None, :, None]
    bound = _scatter_1d_oracle(np.abs(x), np.abs(w), 8, 4) + abs(float(b[0]))
    assert_matches_oracle(y, expected, bound, 8 * 2 + 1, "forward")


# A stride-1 forward whose output is larger than its operands (so no Inf/NaN test is pending)
# with rows of whole tiles (544 = 34 x 16 points) and K = 30 x 9 > one K block: the
# micro-kernels write and then accumulate K block after K block straight into the output.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_written_in_place_over_k_blocks_every_isa(isa, dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 30, 544)).astype(dtype)
    w = rng.standard_normal((30, 60, 9)).astype(dtype)
    y = tconv.conv_transpose(x, w, padding=4)
    assert y.shape == (2, 60, 544)
    expected = _scatter_1d_oracle(x, w, 1, 4)
    assert_matches_oracle(y, expected, _scatter_1d_oracle(np.abs(x), np.abs(w), 1, 4), 30 * 9,
                          "forward")


DETERMINISM = [
    Case(1, 1, 33, 19, (9, 11), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),  # batch 1
    Case(3, 1, 300, 5, (7,), (16,), (8,), (4,), (0,), (1,), True),
    Case(6, 1, 3, 4, (30, 30), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), False),  # 2 chunks
    Case(2, 3, 8, 6, (5, 4, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), (0, 0, 0), (1, 1, 1), True),
    COLUMNS[0],  # the forward's GEMM + col2im path: one task per image
    COLUMNS[9],  # ... batch 1: blocks of the output, as many as the threads ask for
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", DETERMINISM, ids=_id)
def test_bitwise_identical_for_1_2_3_threads(isa, case, dtype):
    threads = tconv.get_num_threads()
    try:
        tconv.set_num_threads(1)
        one = _all_results(case, dtype)
        for n in (2, 3):  # 3 > cores here: a different task split, same bits
            tconv.set_num_threads(n)
            other = _all_results(case, dtype)
            for a, b in zip(one, other):
                assert a.tobytes() == b.tobytes()
    finally:
        tconv.set_num_threads(threads)


def test_isa_names():
    real = [name for name in ISAS if real_of(name) is None]
    emulated = [name for name in ISAS if real_of(name) is not None]
    # the real paths best first down to generic, then the emulations (never the default)
    assert ISAS == real + emulated and real[-1] == "generic" and tconv.isa() in ISAS
    assert "avx512-emulated" in emulated
    with pytest.raises(ValueError, match="ISA"):
        tconv.set_isa("sse9")


def _isa_in_subprocess(value: str):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TCONV_ISA=value)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", "import tconv; print(tconv.isa())"], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip(), out.stderr


def test_tconv_isa_environment_variable():
    assert _isa_in_subprocess("generic") == ("generic", "")
    assert _isa_in_subprocess("avx512-emulated") == ("avx512-emulated", "")
    name, err = _isa_in_subprocess("no-such-isa")
    assert name == ISAS[0] and "TCONV_ISA=no-such-isa" in err
    # the automatic choice is the best real path, never an emulation
    assert _isa_in_subprocess("") == (ISAS[0], "") and real_of(ISAS[0]) is None


def _grad_weight_oracle(x, g, case: Case):
    """grad_weight of conv_transpose in float64, tap by tap:
    gw[c, f, k] = sum_n sum_i x[n, c, i] * g[n, group(c) * fpg + f, i*s - p + k*d]
    (zero where that index falls outside g)."""
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    hi = [max(0, (i - 1) * s - p + (k - 1) * d + 1 - o)
          for i, k, s, p, d, o in zip(case.spatial, case.kernel, case.stride, case.padding,
                                      case.dilation, g.shape[2:])]
    gp = np.pad(g64, [(0, 0), (0, 0)] + [(p, h) for p, h in zip(case.padding, hi)])
    cpg, fpg = case.c_in_per_group, case.c_out_per_group
    out = np.zeros((case.c_in, fpg, *case.kernel))
    for tap in np.ndindex(*case.kernel):
        window = gp[(slice(None), slice(None)) + tuple(
            slice(k * d, k * d + (i - 1) * s + 1, s)
            for k, d, i, s in zip(tap, case.dilation, case.spatial, case.stride))]
        for grp in range(case.groups):
            xs = x64[:, grp * cpg:(grp + 1) * cpg].reshape(case.batch, cpg, -1)
            gs = window[:, grp * fpg:(grp + 1) * fpg].reshape(case.batch, fpg, -1)
            out[(slice(grp * cpg, (grp + 1) * cpg), slice(None)) + tap] = np.einsum(
                "ncp,nfp->cf", xs, gs)
    return out


# grad_weight's outer-product form (transposed B panels, several K blocks and chunks) against
# a tap-by-tap float64 oracle; the problems are too large for the dense matrix.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", OUTER_GW, ids=_id)
def test_grad_weight_outer_form_every_isa(isa, case, dtype):
    x, w, _ = case.arrays(dtype, seed=5)
    y = tconv.conv_transpose(x, w, **case.params())
    g = np.random.default_rng(6).standard_normal(y.shape).astype(dtype)
    _, gw, _ = tconv.conv_transpose_backward(g, x, w, **case.params(),
                                             output_mask=(False, True, False))
    expected = _grad_weight_oracle(x, g, case)
    bound = _grad_weight_oracle(np.abs(x), np.abs(g), case)
    assert_matches_oracle(gw, expected, bound, case.batch * int(np.prod(case.spatial)),
                          f"grad_weight {case}")
