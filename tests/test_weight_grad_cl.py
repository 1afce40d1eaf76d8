"""grad_weight's channels-last form (csrc/weight_grad.cpp, weight_grad_channels_last).

The variant of the outer form for fine channels per group in whole nr blocks and taps >= 3 x
the strides' product (any number of rows): per K block the fine pixels the block reads
(intervals of rows of each fine plane) are transposed once into rows of nr channels, and per tap
kgemm sums the listed terms that read inside.  It runs the outer form's K blocks and terms in the
same order, so:

* every geometry here is checked against the float64 structural oracle, on every ISA;
* the same call with one more fine channel per group (which the outer form runs) gives the
  same bits on the channels both have;
* the plan says ``channels_last`` (or, for the other side of each rule, not), so that a change
  of the rule cannot move these tests off the path silently.

The channels-last form on the phase view of x (test_weight_grad_phase.py), which would take some
of the one-more-channel problems the outer form runs here, is off in this file.
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


@pytest.fixture(autouse=True)
def no_phase_view() -> Iterator[None]:
    _core._set_phase_view(0)
    yield
    _core._set_phase_view(-1)


CASES = [
    # K blocks across images (35-pixel planes), x and y padding
    Case("k4s2p1-2d-small-planes", (5, 7), 48, 32, (4, 4), (2, 2), (1, 1), batch=7),
    # 1-D: each K block is part of the one row, its band only the x it reaches
    Case("k7s2p3-1d", (700,), 64, 32, (7,), (2,), (3,)),
    # 3-D, K blocks across z planes, output padding
    Case("k3s2p1op1-3d", (5, 6, 7), 48, 32, (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1)),
    # stride 1, dilation 2: every term of a row reads one band row apart per tap
    Case("k3s1d2-2d", (9, 11), 56, 32, (3, 3), (1, 1), (2, 2), dilation=(2, 2)),
    # padding wider than the kernel's reach: rows (and K blocks' first segments) that read
    # only padding, so an image of a block can be missing from its band
    Case("k3s1p5y-2d-dead-rows", (12, 3), 48, 32, (3, 3), (1, 1), (5, 0), batch=9),
    # 1-D with padding 300: whole K blocks (and images' parts) read only padding, so a block
    # can have no band at all
    Case("k7s1p300-1d-blocks-of-padding", (700,), 48, 32, (7,), (1,), (300,), batch=2),
    # two groups, two nr blocks of fine channels in each (on the narrower ISAs)
    Case("k4s2p1-2d-groups", (6, 6), 96, 32, (4, 4), (2, 2), (1, 1), groups=2),
    # the reduction in two chunks (K = 1152 >= two 1024-point blocks)
    Case("k4s2p1-2d-two-chunks", (24, 24), 48, 32, (4, 4), (2, 2), (1, 1)),
    # more rows than the outer form takes (its dot form before): two row blocks of <= 512
    Case("k4s2p1-2d-520-rows", (4, 5), 520, 32, (4, 4), (2, 2), (1, 1), batch=3),
    # a taller fine channel count: several nr blocks per task
    Case("k3s1p1-2d-wide", (10, 10), 64, 64, (3, 3), (1, 1), (1, 1)),
]


def _dtypes(isa: str) -> list[str]:
    """float32 everywhere; float64 where its outer form runs (nr >= 16: AVX-512's table)."""
    tconv.set_isa(isa)
    return ["float32"] + (["float64"] if wg.nr("float64") >= 16 else [])



@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_the_oracle_and_the_outer_form(on_isa: str, case: Case) -> None:
    for dtype in _dtypes(on_isa):
        tconv.set_isa(on_isa)
        assert case.fpg % wg.nr(dtype) == 0
        plan = wg.plan(case, dtype)
        assert plan.algorithm == "channels_last", (dtype, plan)
        x, w, g = wg.data(case, np.dtype(dtype))
        dw = wg.grad_weight(case, g, x, w)
        wg.assert_matches_oracle(case, g, x, w, dw)

        # One more fine channel per group: the outer form, with the same K blocks and chunks,
        # must give the same bits on the channels both have (where it takes the rows).
        if case.c_in // case.groups > 256:
            assert plan.blocks["mc"] < case.c_in  # row blocks
            continue
        wide = case.fpg + 1
        other = wg.plan(case, dtype, wide)
        assert other.algorithm == "outer_product", other
        assert other.blocks["kc"] == plan.blocks["kc"]
        assert other.blocks["slabs"] == plan.blocks["slabs"], "chunks differ: pick other sizes"
        x2, w2, g2 = wg.data(case, np.dtype(dtype), wide)
        g2 = g2.reshape(case.batch, case.groups, wide, -1)
        g2[:, :, : case.fpg] = g.reshape(case.batch, case.groups, case.fpg, -1)
        g2 = g2.reshape((case.batch, case.groups * wide) + g.shape[2:])
        dw2 = wg.grad_weight(case, g2, x, w2)
        assert dw2[:, : case.fpg].tobytes() == dw.tobytes(), dtype


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
def test_two_chunks_and_threads(on_isa: str) -> None:
    """The two-chunk case is what its name says, and 1, 2, 3 threads give the same bits."""
    case = next(c for c in CASES if c.name == "k4s2p1-2d-two-chunks")
    assert wg.plan(case, "float32").blocks["slabs"] == 2
    x, w, g = wg.data(case, np.dtype("float32"))
    assert_bitwise_across_threads(on_isa, lambda: [wg.grad_weight(case, g, x, w)])


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
@pytest.mark.parametrize("tiles", [1, 2, 3, 4, 5, 8])
def test_tasks_span_at_least_two_tiles(on_isa: str, tiles: int) -> None:
    """kMinTaskTiles: every task transposes its rows of A for itself, so the column ranges
    that give the threads work span at least two nr blocks of fine channels (one range when
    there are fewer than four): on 2 threads, one chunk and one row block, tasks <=
    max(1, tiles // 2), and more than one once four tiles allow it.  Split or not, 1, 2 and 3
    threads give the same bits, all matching the oracle."""
    nr = wg.nr("float32")
    case = Case(f"k4s2p1-2d-{tiles}-tiles", (6, 6), 48, tiles * nr, (4, 4), (2, 2), (1, 1))
    with tconv.threads(2):
        plan = wg.plan(case, "float32")
    assert plan.algorithm == "channels_last", plan
    assert plan.blocks["slabs"] == 1 and plan.blocks["mc"] >= case.c_in, plan
    assert 1 <= plan.tasks <= max(1, tiles // 2), (tiles, plan)
    if tiles >= 4:
        assert plan.tasks > 1, plan
    x, w, g = wg.data(case, np.dtype("float32"))
    assert_bitwise_across_threads(on_isa, lambda: [wg.grad_weight(case, g, x, w)])
    wg.assert_matches_oracle(case, g, x, w, wg.grad_weight(case, g, x, w))


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
def test_rule_both_sides(on_isa: str) -> None:
    """channels-last iff the outer form's dtype, M >= 48 and N >= 128 hold, fine channels per
    group are whole nr blocks and taps >= kClReuse (3) x the product of the strides (both
    sides of each); any number of rows."""
    base = Case("rule", (8, 8), 48, 32, (4, 4), (2, 2), (1, 1))
    nr = wg.nr("float32")
    for fpg in (nr - 1, nr, nr + 1, 2 * nr, 2 * nr + 3):
        want = ("channels_last" if fpg % nr == 0 else
                "outer_product" if fpg * 16 >= 128 else "dot")
        assert wg.plan(replace(base, fpg=fpg), "float32").algorithm == want, fpg
    for k, s, want in [((11,), (4,), "outer_product"), ((12,), (4,), "channels_last"),
                       ((13,), (4,), "channels_last"), ((2, 5), (1, 4), "outer_product"),
                       ((3, 4), (1, 4), "channels_last"), ((2, 2), (2, 2), "outer_product"),
                       ((3, 3), (2, 2), "outer_product"), ((2, 2), (1, 1), "channels_last")]:
        case = replace(base, coarse=(20,) * len(k), kernel=k, stride=s, padding=(0,) * len(k),
                       fpg=max(32, -(-128 // int(np.prod(k))) // nr * nr + nr))
        assert wg.plan(case, "float32").algorithm == want, (k, s)
    assert wg.plan(replace(base, c_in=47), "float32").algorithm == "dot"   # M < 48
    assert wg.plan(replace(base, c_in=600), "float32").algorithm == "channels_last"
    assert wg.plan(replace(base, fpg=nr, kernel=(3, 3), stride=(1, 1)), "float32").algorithm == (
        "channels_last" if nr * 9 >= 128 else "dot")                      # N = 9 nr


@pytest.mark.parametrize("on_isa", ISAS, indirect=True)
def test_nan_reaches_exactly_the_oracle_entries(on_isa: str) -> None:
    case = CASES[0]
    x, w, g = wg.data(case, np.dtype("float32"))
    g[1, 3, 0, 5] = np.nan
    x[4, 7, 2, 2] = np.inf
    dw = wg.grad_weight(case, g, x, w)
    want = grad_weight_oracle(g, x, w.shape, case.stride, case.padding, (1, 1), case.groups)
    assert np.array_equal(np.isnan(dw), np.isnan(want))
    finite = np.isfinite(want)
    assert np.allclose(dw[finite], want[finite], rtol=1e-4, atol=1e-3)


def test_workspace_counts_the_bands_and_the_rearranged_result() -> None:
    """The plan's workspace: per thread the A panels and a band, and the result once per chunk;
    the bands (of kc coarse points) do not grow with the batch."""
    case = Case("ws", (16, 16), 64, 32, (4, 4), (2, 2), (1, 1), batch=4)
    small = wg.plan(case, "float32")
    large = wg.plan(replace(case, batch=64), "float32")
    assert small.algorithm == large.algorithm == "channels_last"
    dw_bytes = 64 * 32 * 16 * 4
    for p in (small, large):
        assert p.workspace_bytes >= p.blocks["slabs"] * dw_bytes

    def per_thread(p: tconv.Plan) -> float:
        return (p.workspace_bytes - p.blocks["slabs"] * dw_bytes) / p.threads

    assert per_thread(large) <= per_thread(small)


def test_band_is_rows_of_planes_not_planes() -> None:
    """3-D: a K block that ends one coarse plane and starts the next reads the last and the
    first rows of the fine plane between them; the band keeps those apart, so a thread's
    workspace stays well below one fine plane of its channels (128 x 128 x 32 floats, 2 MiB)."""
    sizes = {}
    for side in (16, 64):
        p = tconv.plan("grad_weight", (2, 64, side, side, side), (64, 32, 3, 3, 3), stride=2,
                       padding=1, output_padding=1)
        assert p.algorithm == "channels_last"
        dw = 64 * 32 * 27 * 4
        sizes[side] = (p.workspace_bytes - p.blocks["slabs"] * dw) / p.threads
    assert sizes[64] < 2 * sizes[16]
    assert sizes[64] < 128 * 128 * 32 * 4
