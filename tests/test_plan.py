"""tconv.plan() and verbose mode: the plan agrees with what runs.

The flop counts and the algorithm rules are recomputed here from the operator definitions
(csrc/tconv/kernels.hpp, csrc/columns.cpp's documented rule), not read from the planner.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tconv

PARALLEL_FLOPS = 2e5  # csrc/tconv/plan.hpp: kParallelFlops
PYTHON_DIR = str(Path(tconv.__file__).resolve().parent.parent)


def _columns_rule(c_in: int, c_out: int, taps: int, groups: int = 1) -> bool:
    """The documented rule of the few-output-channel forward (kernels.hpp, columns.cpp)."""
    m, kc = c_out // groups, c_in // groups
    return m <= 4 and 12 <= m * taps <= 512 and kc >= 8


@pytest.mark.parametrize("c_out", [1, 3, 4, 5, 8])
@pytest.mark.parametrize("groups", [1, 2])
def test_forward_algorithm_follows_the_columns_rule(c_out: int, groups: int) -> None:
    c_in = 16
    c_out *= groups
    p = tconv.plan("conv_transpose", (1, c_in, 6, 6), (c_in, c_out // groups, 3, 3), stride=2,
                   groups=groups)
    want = "columns" if _columns_rule(c_in, c_out, 9, groups) else "subconv"
    assert p.algorithm == want
    assert p.kernel == "scatter"
    # the gathers and grad_weight never take the columns path
    assert tconv.plan("grad_input", (1, c_in, 6, 6), (c_in, c_out // groups, 3, 3),
                      stride=2, groups=groups).algorithm == "subconv"


def test_plan_isa_and_dtype_follow_the_process() -> None:
    before = tconv.isa()
    try:
        for name in tconv.supported_isas():
            tconv.set_isa(name)
            for dt in ("float32", "float64"):
                p = tconv.plan("conv", (1, 8, 12, 12), (16, 8, 3, 3), padding=1, dtype=dt)
                assert p.isa == name and p.dtype == dt
                assert p.tile[0] >= 1 and p.tile[1] >= 1
    finally:
        tconv.set_isa(before)
    assert tconv.plan("conv", (1, 8, 12, 12), (16, 8, 3, 3), dtype=np.float64).dtype == "float64"


@pytest.mark.parametrize("c_out, parallel", [(27, False), (28, True)])
def test_parallel_threshold_gather(c_out: int, parallel: bool) -> None:
    # conv 4 -> c_out, 3x3, padding 1 on 10x10: 2 * c_out * 100 pixels * 36 products
    flops = 2.0 * c_out * 100 * 4 * 9
    assert (flops > PARALLEL_FLOPS) == parallel
    with tconv.threads(2):
        p = tconv.plan("conv", (1, 4, 10, 10), (c_out, 4, 3, 3), padding=1)
    assert p.flops == flops
    assert p.parallel == parallel
    assert p.threads == (2 if parallel else 1)
    assert p.tasks > 1


@pytest.mark.parametrize("n, parallel", [(43, False), (44, True)])
def test_parallel_threshold_grad_weight(n: int, parallel: bool) -> None:
    # dW (8 x 4*9) summed over batch 1 x n*8 input pixels: 2 * 8 * 36 * (8n) flops
    flops = 2.0 * 8 * 4 * 9 * (8 * n)
    assert (flops > PARALLEL_FLOPS) == parallel
    with tconv.threads(2):
        p = tconv.plan("grad_weight", (1, 8, 8, n), (8, 4, 3, 3))
    assert p.flops == flops
    assert p.parallel == parallel
    assert p.algorithm in ("dot", "outer_product", "channels_last", "phase_channels")


@pytest.mark.parametrize("side, parallel", [(21, False), (22, True)])
def test_parallel_threshold_columns(side: int, parallel: bool) -> None:
    # the columns forward: 2 * C_in * (M * taps) products per input pixel
    c_in, m, taps = 8, 3, 9
    flops = 2.0 * c_in * m * taps * side * side
    assert (flops > PARALLEL_FLOPS) == parallel
    with tconv.threads(2):
        p = tconv.plan("conv_transpose", (1, c_in, side, side), (c_in, m, 3, 3), stride=2)
    assert p.algorithm == "columns"
    assert p.flops == flops
    assert p.parallel == parallel


def test_one_thread_never_parallel() -> None:
    with tconv.threads(1):
        p = tconv.plan("conv", (4, 64, 32, 32), (64, 64, 3, 3), padding=1)
    assert p.flops > PARALLEL_FLOPS and not p.parallel and p.threads == 1


@pytest.mark.parametrize("op", ["conv_transpose", "conv", "grad_input", "grad_weight"])
@pytest.mark.parametrize("c_out", [3, 16])
def test_workspace_bound(op: str, c_out: int) -> None:
    """kernels.hpp: problem-sized buffers are each <= the output (a second dW for a split
    grad_weight, packed W <= output + mr - 1 channels of W); the rest is per thread and does
    not grow with the batch (bands <= 2 MiB, the rest a few hundred KiB)."""
    weight = (c_out, 32, 4, 4) if op == "conv" else (32, c_out, 4, 4)
    shapes = {b: ((b, 32, 12, 12), weight) for b in (64, 128)}
    with tconv.threads(2):
        plans = {b: tconv.plan(op, *shapes[b], stride=2, padding=1) for b in shapes}
    w_bytes = 32 * c_out * 16 * 4
    for b, p in plans.items():
        assert p.workspace_bytes >= 0
        out = {"conv_transpose": b * c_out * 24 * 24, "conv": b * c_out * 6 * 6,
               "grad_input": b * 32 * 12 * 12, "grad_weight": 32 * c_out * 16}[op] * 4
        assert p.workspace_bytes <= out + w_bytes + p.threads * (4 << 20)
        if op == "grad_weight" and p.blocks["slabs"] == 2:
            assert p.workspace_bytes >= w_bytes  # the second partial dW
    if op != "grad_weight":  # per-thread scratch and packed W independent of the batch
        assert plans[64].workspace_bytes == plans[128].workspace_bytes


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 6, 8, 16])
@pytest.mark.parametrize("isa", tconv.supported_isas())
def test_packed_pixel_blocks_deal_evenly(isa: str, threads: int) -> None:
    """subconv/plan.cpp balanced_columns: DCGAN 512->256's phases at batch 31 (one image short
    of batch-inner; 496 grid points each, the packed path) take, of the pixel blocks 192,
    192 - nr, ..., nr (multiples of the ISA's tile width nr), the one whose rounds, each
    counted as a full block, dealt to the threads end soonest (the largest on a tie): on
    avx512 (nr = 32) 128 at 1 and 2 threads (4 rounds instead of 3 with a short last one),
    192 at 3."""
    before = tconv.isa()
    try:
        tconv.set_isa(isa)
        with tconv.threads(threads):
            p = tconv.plan("conv_transpose", (31, 512, 4, 4), (512, 256, 4, 4), stride=2,
                           padding=1)
    finally:
        tconv.set_isa(before)
    nr = p.tile[1]
    points = 31 * 4 * 4
    top = 192 // nr * nr
    spans = {c: math.ceil(math.ceil(points / c) / threads) * c for c in range(top, 0, -nr)}
    best = min(spans.values())
    assert p.input in ("packed", "packed_sorted") and p.threads == threads
    assert p.blocks["nc"] == max(c for c, span in spans.items() if span == best)
    if nr == 32:
        assert p.blocks["nc"] == {1: 128, 2: 128, 3: 192}.get(threads, p.blocks["nc"])


def test_empty_problem_plans_nothing() -> None:
    p = tconv.plan("conv_transpose", (0, 8, 5, 5), (8, 8, 3, 3))
    assert p.tasks == 0 and p.workspace_bytes == 0 and p.flops == 0 and not p.parallel


def test_plan_is_frozen_and_readable() -> None:
    p = tconv.plan("conv_transpose", (1, 16, 8, 8), (16, 8, 3, 3), stride=2)
    with pytest.raises(AttributeError):
        p.op = "conv"  # type: ignore[misc]
    text = str(p)
    assert text.startswith("conv_transpose: subconv")
    assert p.isa in text and "tasks" in text
    assert set(p.blocks) == {"kc", "mc", "nc", "slabs"}


@pytest.mark.parametrize(
    "args, match",
    [
        (("deconv", (1, 4, 5, 5), (4, 4, 3, 3)), "op must be one of"),
        ((None, (1, 4, 5, 5), (4, 4, 3, 3)), "op must be one of"),
        (("conv_transpose", (1, 4, 5, 5), (5, 4, 3, 3)), "input channels"),
        (("conv", (1, 4, 5, 5), (4, 3, 3, 3)), "weight.shape"),
        (("conv", (1, 4, 2, 2), (4, 4, 3, 3)), "not positive"),
        (("conv_transpose", (1, 4, 5), (4, 4, 3, 3)), "to match input"),
    ],
)
def test_bad_arguments(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tconv.plan(*args)  # type: ignore[arg-type]


def test_bad_dtype_and_conv_output_padding() -> None:
    with pytest.raises(ValueError, match="float32 or float64"):
        tconv.plan("conv", (1, 4, 5, 5), (4, 4, 3, 3), dtype="int8")
    with pytest.raises(ValueError, match="float32 or float64"):
        tconv.plan("conv", (1, 4, 5, 5), (4, 4, 3, 3), dtype="no such type")
    with pytest.raises(ValueError, match="output_padding"):
        tconv.plan("conv", (1, 4, 5, 5), (4, 4, 3, 3), output_padding=1)


def test_core_plan_rejects_bad_op_and_dtype() -> None:
    from tconv import _core

    args = ([1, 4, 5, 5], [1, 4, 7, 7], [4, 4, 3, 3], [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="op must be"):
        _core.plan("scatter", "float32", *args)
    with pytest.raises(ValueError, match="dtype must be"):
        _core.plan("conv", "float16", *args)
    with pytest.raises(ValueError, match="sizes must be"):
        _core.plan("conv", "float32", [1, 4, -5, 5], *args[1:])


_VERBOSE_SCRIPT = textwrap.dedent("""
    import numpy as np, sys, tconv
    if sys.argv[1] == "call":
        tconv.set_verbose(True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((8, 5, 3, 3)).astype(np.float32)
    y = tconv.conv_transpose(x, w, stride=2)              # 1 scatter
    tconv.conv(y, w, stride=2)                            # 1 gather
    tconv.conv_transpose_backward(y, x, w, stride=2)      # 1 gather + 1 weight_grad
    tconv.set_verbose(False)
    tconv.conv_transpose(x, w, stride=2)                  # silent
    print("done", tconv.get_verbose())
""")


@pytest.mark.parametrize("how", ["env", "call"])
def test_verbose_prints_one_line_per_kernel_call(how: str) -> None:
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    env.pop("TCONV_VERBOSE", None)
    if how == "env":
        env["TCONV_VERBOSE"] = "1"
    r = subprocess.run([sys.executable, "-c", _VERBOSE_SCRIPT, how], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.strip() == "done False"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("tconv_verbose,")]
    assert len(lines) == 4, r.stderr
    fields = [ln.split(",") for ln in lines]
    assert all(len(f) == 9 for f in fields)
    assert [f[1] for f in fields] == ["conv_transpose", "conv", "conv", "grad_weight"]
    isa = tconv.isa() if "TCONV_ISA" not in os.environ else fields[0][3]
    for f in fields:
        assert f[3] == isa and f[4] == "float32"
        assert f[5].startswith("coarse:2x8x6x6;fine:2x5x13x13;weight:8x5x3x3")
        assert float(f[8]) >= 0 and int(f[7]) >= 1
    assert fields[0][2].startswith("subconv")  # 5 output channels: more than 4


def test_verbose_off_prints_nothing() -> None:
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    env.pop("TCONV_VERBOSE", None)
    code = ("import numpy as np, tconv; "
            "tconv.conv_transpose(np.ones((1, 2, 3, 3)), np.ones((2, 2, 3, 3)))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, check=True)
    assert "tconv_verbose" not in r.stderr


def test_set_verbose_type() -> None:
    with pytest.raises(TypeError):
        tconv.set_verbose("yes")  # type: ignore[arg-type]
    assert tconv.get_verbose() is False
