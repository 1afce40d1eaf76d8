"""Fuzzing against the oracle: tconv.reference (float64 dense matrices).

Hypothesis draws 1-D, 2-D and 3-D problems biased towards the edges -- kernel 1, stride larger
than the kernel, dilation larger than the input, the largest padding that leaves a positive
output, the largest output_padding, asymmetric (low, high) padding, depthwise groups, batch 0,
zero channels, length-1 spatial dims -- and checks all eight results (conv_transpose, its three
gradients, conv, its three gradients) in float32 and float64 against the oracle, within the
summation error bound of ``conftest.assert_matches_oracle``.

Examples per run: ``TCONV_FUZZ_EXAMPLES`` (default 300, split over the three ranks), or
``pytest --fuzz-long`` for 10 002.  The worst float32 error seen is printed in the terminal
summary and written to ``$TCONV_FUZZ_REPORT`` (default ``<tmp>/tconv-fuzz-report.json``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from tconv import reference

from conftest import assert_matches_oracle

EXAMPLES = int(os.environ.get("TCONV_FUZZ_EXAMPLES", "300"))
PER_RANK = max(1, -(-EXAMPLES // 3))
EPS32 = float(np.finfo(np.float32).eps)

# Per-rank caps keep the dense oracle matrices small (at most a few million entries).
CAPS = {1: dict(size=12, kernel=5, stride=6, dilation=4),
        2: dict(size=5, kernel=4, stride=3, dilation=3),
        3: dict(size=3, kernel=3, stride=2, dilation=2)}


@dataclass(frozen=True)
class Problem:
    batch: int
    groups: int
    cin_pg: int   # conv_transpose input channels per group
    cout_pg: int  # conv_transpose output channels per group
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any  # tuple of ints, or tuple of (low, high) pairs
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    bias: bool

    @property
    def c_in(self) -> int:
        return self.cin_pg * self.groups

    @property
    def c_out(self) -> int:
        return self.cout_pg * self.groups

    def pairs(self) -> list[tuple[int, int]]:
        return [p if isinstance(p, tuple) else (p, p) for p in self.padding]

    @property
    def fine(self) -> tuple[int, ...]:
        return tuple((i - 1) * s - lo - hi + d * (k - 1) + op + 1
                     for i, k, s, (lo, hi), op, d in zip(self.spatial, self.kernel, self.stride,
                                                         self.pairs(), self.output_padding,
                                                         self.dilation))

    def tparams(self) -> dict[str, Any]:
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)

    def cparams(self) -> dict[str, Any]:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)


def _edge(lo: int, hi: int) -> st.SearchStrategy[int]:
    """The ends of [lo, hi] as often as the inside."""
    return st.one_of(st.just(lo), st.just(hi), st.integers(lo, hi))


@st.composite
def problems(draw: st.DrawFn, nd: int) -> Problem:
    cap = CAPS[nd]
    spatial, kernel, stride, dilation, op, padding = [], [], [], [], [], []
    symmetric = draw(st.booleans())
    for _ in range(nd):
        i = draw(_edge(1, cap["size"]))
        k = draw(_edge(1, cap["kernel"]))
        s = draw(_edge(1, cap["stride"]))
        d = draw(_edge(1, cap["dilation"]))
        o = draw(_edge(0, max(s, d) - 1))
        full = (i - 1) * s + d * (k - 1) + o + 1  # output size before padding
        total = draw(_edge(0, full - 1))          # low + high padding; the output stays >= 1
        if symmetric:
            padding.append(total // 2)
        else:
            lo = draw(_edge(0, total))
            padding.append((lo, total - lo))
        spatial.append(i); kernel.append(k); stride.append(s); dilation.append(d); op.append(o)
    groups = draw(_edge(1, 4))
    depthwise = draw(st.booleans())
    per_group = st.sampled_from((0, 1, 2, 3, 1, 2, 3, 1, 2, 3))  # zero channels 1 in 10
    return Problem(
        batch=draw(st.sampled_from((0, 1, 2, 3, 1, 2))),
        groups=groups,
        cin_pg=1 if depthwise else draw(per_group),
        cout_pg=draw(per_group),
        spatial=tuple(spatial), kernel=tuple(kernel), stride=tuple(stride),
        padding=tuple(padding), output_padding=tuple(op), dilation=tuple(dilation),
        bias=draw(st.booleans()),
    )


# ---- statistics over the session ------------------------------------------------------------

STATS: dict[str, Any] = {"examples": 0, "comparisons": 0, "worst_rel": 0.0, "worst_rel_at": "",
                         "worst_eps_per_term": 0.0, "worst_eps_per_term_at": ""}


@pytest.fixture(scope="session")
def fuzz_report(request: pytest.FixtureRequest):
    yield STATS
    if not STATS["examples"]:
        return
    path = os.environ.get("TCONV_FUZZ_REPORT",
                          os.path.join(tempfile.gettempdir(), "tconv-fuzz-report.json"))
    with open(path, "w") as f:
        json.dump(STATS, f, indent=1)
    request.config._tconv_fuzz_summary = [
        (f"examples: {STATS['examples']} (TCONV_FUZZ_EXAMPLES={EXAMPLES}), "
         f"float32 comparisons: {STATS['comparisons']}"),
        (f"worst float32 error / sum|terms|: {STATS['worst_rel']:.3g} "
         f"= {STATS['worst_rel'] / EPS32:.3g} eps ({STATS['worst_rel_at']})"),
        (f"worst float32 error in units of eps * terms * sum|terms|: "
         f"{STATS['worst_eps_per_term']:.3g} (bound 2; {STATS['worst_eps_per_term_at']})"),
        f"report: {path}",
    ]


def _compare(actual, expected, abs_expected, terms: int, label: str) -> None:
    assert_matches_oracle(actual, expected, abs_expected, terms, label)
    if actual.dtype != np.float32 or actual.size == 0:
        return
    err = np.abs(actual.astype(np.float64) - expected)
    scale = np.where(abs_expected > 0, abs_expected, np.inf)
    rel = float(np.max(err / scale))
    STATS["comparisons"] += 1
    if rel > STATS["worst_rel"]:
        STATS["worst_rel"], STATS["worst_rel_at"] = rel, label
    per_term = rel / (EPS32 * max(terms, 1))
    if per_term > STATS["worst_eps_per_term"]:
        STATS["worst_eps_per_term"], STATS["worst_eps_per_term_at"] = per_term, label


def _abs(a):
    return None if a is None else np.abs(np.asarray(a, dtype=np.float64))


def check_problem(pb: Problem, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    taps = int(np.prod(pb.kernel))
    coarse_shape = (pb.batch, pb.c_in, *pb.spatial)
    fine_shape = (pb.batch, pb.c_out, *pb.fine)
    w_shape = (pb.c_in, pb.cout_pg, *pb.kernel)
    # float32 data; the float64 run uses the same values, so one oracle serves both dtypes
    x = rng.standard_normal(coarse_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(pb.c_out).astype(np.float32) if pb.bias else None
    g = rng.standard_normal(fine_shape).astype(np.float32)      # grad of conv_transpose
    yin = rng.standard_normal(fine_shape).astype(np.float32)    # input of conv
    bc = rng.standard_normal(pb.c_in).astype(np.float32) if pb.bias else None
    tp, cp = pb.tparams(), pb.cparams()

    assert tconv.output_shape(coarse_shape, w_shape, pb.stride, pb.padding, pb.output_padding,
                              pb.dilation, pb.groups) == fine_shape

    # the oracle, in float64
    e_y = reference.conv_transpose(x, w, b, **tp)
    a_y = reference.conv_transpose_structural(_abs(x), _abs(w), _abs(b), **tp)
    e_gi, e_gw, e_gb = reference.conv_transpose_backward(g, x, w, **tp)
    a_gi, a_gw, _ = reference.conv_transpose_backward(_abs(g), _abs(x), _abs(w), **tp)
    a_gb = _abs(g).sum(axis=(0, *range(2, g.ndim)))
    e_c = reference.conv(yin, w, bc, **cp)
    a_c = reference.conv_structural(_abs(yin), _abs(w), _abs(bc), **cp)
    gc = rng.standard_normal(e_c.shape).astype(np.float32)      # grad of conv
    e_ci, e_cw, e_cb = reference.conv_backward(gc, yin, w, **cp)
    a_ci, a_cw, _ = reference.conv_backward(_abs(gc), _abs(yin), _abs(w), **cp)
    a_cb = _abs(gc).sum(axis=(0, *range(2, gc.ndim)))
    assert e_y.shape == fine_shape and e_c.shape[:2] == (pb.batch, pb.c_in)
    # the two oracles (dense product, entry-by-entry sum) agree
    s_y = reference.conv_transpose_structural(x, w, b, **tp)
    np.testing.assert_allclose(s_y, e_y, rtol=0, atol=1e-12 * (1 + np.max(a_y, initial=0)))

    conv_pixels = int(np.prod(e_c.shape[2:]))
    for dtype in (np.float32, np.float64):
        cast = [None if a is None else a.astype(dtype) for a in (x, w, b, g, yin, bc, gc)]
        xd, wd, bd, gd, yd, bcd, gcd = cast
        tag = f"{dtype.__name__} {pb}"
        y = tconv.conv_transpose(xd, wd, bd, **tp)
        assert y.dtype == dtype and y.flags.c_contiguous
        _compare(y, e_y, a_y, pb.cin_pg * taps + 1, f"conv_transpose {tag}")
        gi, gw, gb = tconv.conv_transpose_backward(gd, xd, wd, **tp)
        _compare(gi, e_gi, a_gi, pb.cout_pg * taps, f"grad_input {tag}")
        _compare(gw, e_gw, a_gw, pb.batch * int(np.prod(pb.spatial)), f"grad_weight {tag}")
        _compare(gb, e_gb, a_gb, pb.batch * int(np.prod(pb.fine)), f"grad_bias {tag}")
        c = tconv.conv(yd, wd, bcd, **cp)
        _compare(c, e_c, a_c, pb.cout_pg * taps + 1, f"conv {tag}")
        ci, cw, cb = tconv.conv_backward(gcd, yd, wd, **cp)
        _compare(ci, e_ci, a_ci, pb.cin_pg * taps, f"conv grad_input {tag}")
        _compare(cw, e_cw, a_cw, pb.batch * conv_pixels, f"conv grad_weight {tag}")
        _compare(cb, e_cb, a_cb, pb.batch * conv_pixels, f"conv grad_bias {tag}")
    STATS["examples"] += 1


@pytest.mark.parametrize("nd", [1, 2, 3])
@settings(max_examples=PER_RANK, deadline=None)
@given(data=st.data())
def test_fuzz_against_oracle(nd: int, data: st.DataObject, fuzz_report: dict) -> None:
    # Mostly one thread: on a loaded machine each OpenMP fork-join of a tiny problem can cost
    # milliseconds.  test_determinism shows the results are bitwise the same for any count.
    threads = data.draw(st.sampled_from((1, 1, 1, 2)), label="threads")
    saved = tconv.get_num_threads()
    tconv.set_num_threads(threads)
    try:
        check_problem(data.draw(problems(nd), label="problem"))
    finally:
        tconv.set_num_threads(saved)


# ---- empty arrays: correctly shaped, as PyTorch returns them --------------------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
def test_batch_zero_matches_torch(nd: int) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.zeros((0, 4, *(3,) * nd), np.float32)
    w = np.ones((4, 3, *(2,) * nd), np.float32)
    b = np.ones(6, np.float32)
    p = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    y = tconv.conv_transpose(x, w, b, **p)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = getattr(F, f"conv_transpose{nd}d")(xt, wt, bt, **p)
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    yt.backward(torch.ones_like(yt))
    gi, gw, gb = tconv.conv_transpose_backward(np.ones(y.shape, np.float32), x, w, **p)
    np.testing.assert_array_equal(gi, xt.grad.numpy())
    np.testing.assert_array_equal(gw, wt.grad.numpy())
    np.testing.assert_array_equal(gb, bt.grad.numpy())
    c = tconv.conv(y, w, None, stride=2, padding=1, groups=2)
    ct = getattr(F, f"conv{nd}d")(torch.tensor(y), wt.detach(), None, stride=2, padding=1, groups=2)
    assert c.shape == tuple(ct.shape)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_zero_channels(nd: int) -> None:
    """Zero channels (PyTorch refuses most of these): the empty sum is 0, so the result is the
    bias on the correctly shaped output, and the gradients are zero or empty."""
    rng = np.random.default_rng(0)
    sp, k = (3,) * nd, (2,) * nd
    b = rng.standard_normal(2)
    # no input channels: output = bias everywhere
    y = tconv.conv_transpose(np.zeros((2, 0, *sp)), np.zeros((0, 2, *k)), b, stride=2)
    assert y.shape == (2, 2, *(6,) * nd)
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, -1, *(1,) * nd), y.shape))
    gi, gw, gb = tconv.conv_transpose_backward(np.ones(y.shape), np.zeros((2, 0, *sp)),
                                               np.zeros((0, 2, *k)), stride=2)
    assert gi.shape == (2, 0, *sp) and gw.shape == (0, 2, *k)
    np.testing.assert_array_equal(gb, np.full(2, 2 * 6**nd))
    # no output channels: an empty output and zero input gradient
    x = rng.standard_normal((2, 3, *sp))
    y = tconv.conv_transpose(x, np.zeros((3, 0, *k)), stride=2)
    assert y.shape == (2, 0, *(6,) * nd)
    gi, gw, gb = tconv.conv_transpose_backward(y, x, np.zeros((3, 0, *k)), stride=2)
    np.testing.assert_array_equal(gi, np.zeros_like(x))
    assert gw.shape == (3, 0, *k) and gb.shape == (0,)
    # conv with no output channels, and with no input channels
    assert tconv.conv(x, np.zeros((0, 3, *k))).shape == (2, 0, *(2,) * nd)
    c = tconv.conv(np.zeros((2, 0, *sp)), np.zeros((2, 0, *k)), b)
    np.testing.assert_array_equal(c, np.broadcast_to(b.reshape(1, -1, *(1,) * nd), (2, 2, *(2,) * nd)))
