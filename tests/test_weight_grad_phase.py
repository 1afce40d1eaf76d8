"""grad_weight's channels-last form on the phase view of x (csrc/weight_grad.cpp: phase_form).

With an x stride sx > 1, fine x = bx * sx + r - pad_x of channel f is read as channel f * sx + r
at x = bx of a view whose x has stride 1, no padding and ceil(kernel_x / sx) taps; the
channels-last form runs on the view (its lanes: fine channels and x phases) and the result is
rearranged back, the sums of the view's taps past kernel_x dropped.  So:

* every geometry here, the view forced on (``_core._set_phase_view(1)``), is checked against the
  float64 structural oracle on every ISA, including x strides whose view drops sums, padding
  wider than the stride and the kernel, partial lane blocks, groups, two chunks and row blocks;
* with the view off, the outer form (the same K blocks and terms in the same order, where it
  takes the rows) gives the same bits;
* 1, 2 and 3 threads give the same bits;
* the plan says ``phase_channels`` on exactly its rule's side of each condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import tconv
from _isas import assert_bitwise_across_threads, isa_params
from _structural import grad_weight as grad_weight_oracle
import _wg_cases as wg
from _wg_cases import Case
from tconv import _core

ISAS = isa_params()


CASES = [
    # fcn-8s's shape, small: 21 rows, 168 lanes (partial last block), 2-D
    Case("k16s8p4-2d-fcn", (5, 6), 21, 21, (16, 16), (8, 8), (4, 4)),
    # 1-D, K blocks across images (300 points, kc 192 or less)
    Case("k8s4p2-1d", (300,), 48, 16, (8,), (4,), (2,), batch=3),
    # kernel x not a multiple of the stride: the view's tap 3 (x = 6, 7) is dropped
    Case("k7s2p3-1d-dropped-taps", (150,), 48, 20, (7,), (2,), (3,)),
    # padding wider than the stride and the kernel: whole view points read zeros
    Case("k8s4p9-1d-wide-padding", (40,), 16, 8, (8,), (4,), (9,)),
    # 3-D, few lanes (3 channels x 2 phases), K blocks across z planes
    Case("k4s2p1-3d", (4, 5, 6), 16, 3, (4, 4, 4), (2, 2, 2), (1, 1, 1)),
    # output padding and x / y strides that differ
    Case("k6s3p2op1-2d", (6, 7), 48, 10, (4, 6), (2, 3), (1, 2), (1, 1)),
    # groups: each group's lanes end in a partial block
    Case("k4s4-2d-groups", (6, 5), 32, 5, (4, 4), (4, 4), (0, 0), groups=2),
    # the reduction in two chunks (K = 2400 >= two 1024-point blocks)
    Case("k4s2p1-2d-two-chunks", (40, 30), 16, 4, (4, 4), (2, 2), (1, 1)),
    # more rows than one block (<= 512)
    Case("k4s2-1d-520-rows", (12,), 520, 4, (4,), (2,), (1,)),
    # several lane blocks per task (128 lanes), tasks split between threads
    Case("k2s2-2d-wide", (8, 8), 48, 64, (4, 2), (2, 2), (1, 0)),
    # x stride 16: the band's copy of any stride (on tables with nr >= 16)
    Case("k16s16-1d", (30,), 16, 4, (16,), (16,), (0,)),
]


def _plan(case: Case, dtype: str = "float32") -> tconv.Plan:
    return wg.plan(case, dtype)


def _runs(dtype: str, sx: int) -> bool:
    """Whether the view can run: nr a multiple of sx, float32 or nr >= 16."""
    nr = wg.nr(dtype)
    return nr % sx == 0 and (dtype == "float32" or nr >= 16)


@pytest.fixture
def on_isa(request: pytest.FixtureRequest) -> Iterator[str]:
    before = tconv.isa()
    tconv.set_isa(request.param)
    yield request.param
    tconv.set_isa(before)
    _core._set_phase_view(-1)


def _set(mode: int) -> None:
    _core._set_phase_view(mode)


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_the_oracle_and_the_outer_form(on_isa: str, case: Case) -> None:
    for dtype in ("float32", "float64"):
        _set(1)
        plan = _plan(case, dtype)
        if not _runs(dtype, case.stride[-1]):
            assert plan.algorithm != "phase_channels", (dtype, plan)
            continue
        assert plan.algorithm == "phase_channels", (dtype, plan)
        x, w, g = wg.data(case, np.dtype(dtype))
        dw = wg.grad_weight(case, g, x, w)
        wg.assert_matches_oracle(case, g, x, w, dw)

        # The view off: where the outer form runs with the same K blocks and chunks, the
        # same bits (its terms in the same order; a term the view reads as a zero is the
        # outer form's packed zero).
        _set(0)
        other = _plan(case, dtype)
        if (other.algorithm == "outer_product" and other.blocks["kc"] == plan.blocks["kc"]
                and other.blocks["slabs"] == plan.blocks["slabs"]):
            assert wg.grad_weight(case, g, x, w).tobytes() == dw.tobytes(), dtype


def test_the_outer_form_comparison_runs() -> None:
    """At least three of the cases compare bits with the outer form on this CPU's best ISA
    (so that the comparison above cannot lapse unseen)."""
    compared = 0
    try:
        for case in CASES:
            _set(1)
            plan = _plan(case)
            _set(0)
            other = _plan(case)
            compared += (plan.algorithm == "phase_channels" and other.algorithm == "outer_product"
                         and other.blocks["kc"] == plan.blocks["kc"]
                         and other.blocks["slabs"] == plan.blocks["slabs"])
    finally:
        _set(-1)
    assert compared >= 3, compared


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
@pytest.mark.parametrize("name", ["k4s2p1-2d-two-chunks", "k2s2-2d-wide", "k16s8p4-2d-fcn"])
def test_threads_give_the_same_bits(on_isa: str, name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    _set(1)
    plan = _plan(case)
    assert plan.algorithm == "phase_channels", plan
    if name == "k4s2p1-2d-two-chunks":
        assert plan.blocks["slabs"] == 2, plan
    if name == "k2s2-2d-wide":
        with tconv.threads(2):
            assert _plan(case).tasks >= 2
    x, w, g = wg.data(case, np.dtype("float32"))
    assert_bitwise_across_threads(on_isa, lambda: [wg.grad_weight(case, g, x, w)])


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
def test_nan_and_inf_reach_exactly_the_oracle_entries(on_isa: str) -> None:
    case = CASES[0]
    _set(1)
    x, w, g = wg.data(case, np.dtype("float32"))
    g[1, 3, 7, 5] = np.nan
    g[0, 4, 0, 0] = np.inf
    x[1, 7, 2, 2] = np.inf
    dw = wg.grad_weight(case, g, x, w)
    want = grad_weight_oracle(g, x, w.shape, case.stride, case.padding, (1, 1), case.groups)
    assert np.array_equal(np.isnan(dw), np.isnan(want))
    assert np.array_equal(np.isinf(dw), np.isinf(want))
    finite = np.isfinite(want)
    assert np.allclose(dw[finite], want[finite], rtol=1e-4, atol=1e-3)


def test_rule_both_sides() -> None:
    """By default the view runs iff the channels-last form does not take the problem, x has a
    stride sx > 1 dividing kernel x (undilated, nr a multiple of sx), the view's taps >= 3 x
    the product of its strides, M >= 16, and the view's lanes fill >= 3/4 of their nr blocks."""
    _set(-1)
    nr = wg.nr("float32")
    base = Case("rule", (8, 8), 21, 21, (16, 16), (8, 8), (4, 4))

    def algo(case: Case) -> str:
        return _plan(case).algorithm

    assert algo(base) == ("phase_channels" if 4 * 168 >= 3 * -(-168 // nr) * nr else "dot")
    assert algo(replace(base, c_in=16)) == algo(base)
    assert algo(replace(base, c_in=15)) != "phase_channels"              # M < 16
    for fpg in (1, 2, 3, 4, 5, 6):                                       # lane fill
        lanes = 8 * fpg
        want = 4 * lanes >= 3 * (-(-lanes // nr) * nr)
        assert (algo(replace(base, fpg=fpg)) == "phase_channels") == want, fpg
    assert algo(replace(base, kernel=(16, 12))) != "phase_channels"      # 8 does not divide 12
    assert algo(replace(base, dilation=(1, 2), padding=(4, 0))) != "phase_channels"
    assert algo(replace(base, coarse=(8,), kernel=(16,), stride=(8,), padding=(4,))) != (
        "phase_channels")                                                # 2 taps < 3 x 1
    at = replace(base, kernel=(6, 8), stride=(2, 8), padding=(0, 0))     # 6 taps = 3 x 2
    assert algo(at) == "phase_channels"
    assert algo(replace(at, kernel=(5, 8))) != "phase_channels"          # 5 taps < 3 x 2
    assert algo(replace(base, stride=(8, 1), kernel=(16, 3))) != "phase_channels"  # x stride 1
    dcgan = Case("cl", (8, 8), 64, nr, (4, 4), (2, 2), (1, 1))
    assert algo(dcgan) == "channels_last"                                # channels-last first
    if nr % 16 != 0:
        assert algo(replace(base, kernel=(16, 16), stride=(16, 16))) != "phase_channels"


def test_forced_view_off_and_on_only_where_it_runs() -> None:
    try:
        case = CASES[0]
        _set(0)
        assert _plan(case).algorithm != "phase_channels"
        _set(1)
        assert _plan(case).algorithm == "phase_channels"
        x_unstrided = replace(case, stride=(8, 1), kernel=(16, 2), padding=(4, 0))
        assert _plan(x_unstrided).algorithm != "phase_channels"
        assert _plan(replace(case, dilation=(1, 2))).algorithm != "phase_channels"
    finally:
        _set(-1)


def test_workspace_counts_the_view_result() -> None:
    """The result in the view's (tap, row, lane) order, once per chunk: taps' x M x lanes
    rounded up to whole nr blocks.  fcn-8s's shape with 24 and 25 fine channels (192 and 200
    lanes) differ only there: by one nr block of lanes, 32 taps' x 21 rows x nr values a
    chunk (dW itself grows by 256 taps x 21 rows)."""
    case = CASES[0]
    try:
        _set(1)
        with tconv.threads(2):
            plans = [_plan(replace(case, fpg=f)) for f in (24, 25)]
    finally:
        _set(-1)
    assert all(p.algorithm == "phase_channels" for p in plans), plans
    nr = plans[0].tile[1]
    grown = -(-25 * 8 // nr) * nr - -(-24 * 8 // nr) * nr   # lanes the padding adds
    assert grown > 0
    assert plans[0].threads == plans[1].threads and plans[0].blocks == plans[1].blocks
    assert (plans[1].workspace_bytes - plans[0].workspace_bytes
            == plans[0].blocks["slabs"] * 16 * 2 * 21 * grown * 4), plans


def _random_case(rng: np.random.Generator, i: int) -> Case:
    """A random geometry the view can run: 1-3 dims, x stride 2, 4 or 8 (any kernel x, so
    some views drop sums), padding up to past the kernel, output padding, y/z dilation,
    groups; few channels (partial lane blocks)."""
    nd = int(rng.integers(1, 4))
    sx = int(rng.choice([2, 4, 8]))
    kx = int(rng.integers(1, 3 * sx))
    kernel = tuple(int(rng.integers(1, 6)) for _ in range(nd - 1)) + (kx,)
    stride = tuple(int(rng.integers(1, 4)) for _ in range(nd - 1)) + (sx,)
    dilation = tuple(int(rng.integers(1, 3)) for _ in range(nd - 1)) + (1,)
    padding = tuple(int(rng.integers(0, d * (k - 1) + 3)) for k, d in zip(kernel, dilation))
    output_padding = tuple(int(rng.integers(0, s)) for s in stride)
    coarse = tuple(int(rng.integers(1, 7)) for _ in range(nd - 1)) + (int(rng.integers(1, 40)),)
    groups = int(rng.integers(1, 3))
    return Case(f"random-{i}", coarse, groups * int(rng.integers(1, 20)), int(rng.integers(1, 9)),
                kernel, stride, padding, output_padding, dilation, groups,
                batch=int(rng.integers(1, 4)))


@pytest.mark.parametrize("seed", range(4))
def test_random_geometries_forced_on_match_the_oracle(seed: int) -> None:
    """The view forced on, 12 random geometries a seed on this CPU's best ISA, float32 and
    float64 where the table runs the view, against the float64 structural oracle (outputs
    whose size the parameters make non-positive are redrawn)."""
    rng = np.random.default_rng(1000 + seed)
    checked = 0
    try:
        _set(1)
        while checked < 12:
            case = _random_case(rng, checked)
            try:
                x, w, g = wg.data(case, np.dtype("float32"))
            except ValueError:  # an output size <= 0
                continue
            for dtype in ("float32", "float64"):
                if not _runs(dtype, case.stride[-1]):
                    continue
                assert _plan(case, dtype).algorithm == "phase_channels", case
                xd, wd, gd = (a.astype(dtype) for a in (x, w, g))
                wg.assert_matches_oracle(case, gd, xd, wd, wg.grad_weight(case, gd, xd, wd))
            checked += 1
    finally:
        _set(-1)
