"""The GEMM engine's pipelined B packing (csrc/gemm/engine.cpp: kPipelineL2s, PackAhead).

A call of the GEMM engine whose B operand (the 1x1 layer's input, the phase GEMM's coarse input
or, for its gather, the fine image) is at least kPipelineL2s = 24 L2 caches is read from memory:
each thread then packs its next B block a slice of rows at a time between the micro-kernel
calls of the block before (prefetching the slice after), instead of all at once.  Only when a
copy happens changes.  The plan says so ("pipelined" in ``Plan.input``) exactly from the gate
on, and the results are bitwise those of the same calls that do not pipeline (a process whose
L2 is set to 4 MiB, where the gate is 96 MiB), on every ISA, both dtypes and 1 / 2 / 3 threads,
and within the float64 oracle's bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tconv
from conftest import assert_matches_oracle

PIPELINE_L2S = 24  # csrc/gemm/engine.cpp: kPipelineL2s


def _pipelined(plan: tconv.Plan) -> bool:
    return "pipelined" in plan.input.split("+")


def _gate() -> int:
    return PIPELINE_L2S * int(tconv._core.l2_cache_bytes())


# (op, shapes of a call whose B operand has `values` elements): the 1x1 forward (B = x), the
# 1x1 gather (conv of the fine image: B = it), the phase GEMM's forward (k2 s2: B = x) and its
# gather (B = the fine image, twice as long as the coarse side).
def _shapes(kind: str, values: int) -> tuple[str, tuple[int, ...], tuple[int, ...], int]:
    if kind == "forward":
        return "conv_transpose", (1, 1, values), (1, 3, 1), 1
    if kind == "gather":
        return "conv", (1, 1, values), (3, 1, 1), 1
    if kind == "phase_forward":
        return "conv_transpose", (1, 1, values), (1, 3, 2), 2
    assert values % 2 == 0
    return "conv", (1, 1, values), (3, 1, 2), 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["forward", "gather", "phase_forward", "phase_gather"])
def test_plan_pipelines_from_the_gate_on(kind: str, dtype: Any) -> None:
    """Below the gate (by one and by two values), at it, above it and at twice it: the plan
    runs the GEMM engine and pipelines exactly when B has at least kPipelineL2s L2s of bytes,
    with a second B block in its workspace."""
    item = np.dtype(dtype).itemsize
    at = _gate() // item
    for values in (at - 2, at - 1, at, at + 2, 2 * at):
        values -= values % 2  # the phase gather's fine image is even
        op, x_shape, w_shape, stride = _shapes(kind, values)
        plan = tconv.plan(op, x_shape, w_shape, stride=stride, dtype=dtype)
        assert plan.algorithm == "gemm", (kind, plan)
        assert ("phases" in plan.input.split("+")) == kind.startswith("phase"), plan
        want = values * item >= _gate()
        assert _pipelined(plan) == want, (kind, values, values * item, _gate(), plan)
        blocks = (2 if want else 1) * plan.blocks["kc"] * plan.blocks["nc"] * item
        assert plan.workspace_bytes >= blocks, plan


# Calls whose B is at least 6 MiB (the gate with the smallest L2 the engine takes, 256 KiB):
# K over kc (the next block is the same task's) and under it, columns that end in a partial
# panel, several images (the next block is the next task's, across images), bias.
_PROBE = r"""
import hashlib, json, sys
import numpy as np
import tconv

def cases():
    rng = np.random.default_rng(11)
    f = lambda shape, dt: rng.standard_normal(shape).astype(dt)
    # name, op, dtype, input, weight, bias, stride
    yield "1x1 forward f32, K 300", "conv_transpose", f((3, 300, 2500), np.float32), \
        f((300, 29, 1), np.float32), f(29, np.float32), 1
    yield "1x1 forward f64, K 200", "conv_transpose", f((2, 200, 2100), np.float64), \
        f((200, 29, 1), np.float64), f(29, np.float64), 1
    yield "1x1 gather f32, K 330", "conv", f((2, 330, 2500), np.float32), \
        f((17, 330, 1), np.float32), None, 1
    yield "phase forward f32, K 300", "conv_transpose", f((2, 300, 48, 56), np.float32), \
        f((300, 6, 2, 2), np.float32), f(6, np.float32), 2
    yield "phase gather f32, K 448", "conv", f((2, 112, 96, 80), np.float32), \
        f((24, 112, 2, 2), np.float32), f(24, np.float32), 2
    yield "phase gather f64, K 120", "conv", f((2, 30, 192, 160), np.float64), \
        f((13, 30, 2, 2), np.float64), None, 2

def run(op, x, w, b, stride):
    fn = tconv.conv_transpose if op == "conv_transpose" else tconv.conv
    return fn(x, w, b, stride=stride)

out, save = {}, sys.argv[1] if len(sys.argv) > 1 else None
for i, (name, op, x, w, b, stride) in enumerate(cases()):
    plan = tconv.plan(op, x.shape, w.shape, stride=stride, dtype=x.dtype)
    for isa in tconv.supported_isas():
        tconv.set_isa(isa)
        digests = set()
        for threads in (1, 2, 3):
            with tconv.threads(threads):
                y = run(op, x, w, b, stride)
            digests.add(hashlib.sha256(y.tobytes()).hexdigest())
        out[f"{name} {isa}"] = [plan.algorithm, plan.input, sorted(digests)]
        if save and isa == tconv.supported_isas()[0]:
            np.savez(f"{save}/case{i}.npz", x=x, w=w, b=b if b is not None else np.zeros(0),
                     y=y, stride=stride, op=op)
print(json.dumps(out))
"""


def _probe(l2_bytes: int, save: Path | None = None) -> dict[str, list[Any]]:
    env = dict(os.environ, TCONV_L2_BYTES=str(l2_bytes))
    args = [sys.executable, "-c", _PROBE] + ([str(save)] if save else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _oracle(op: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
            stride: int) -> tuple[np.ndarray, np.ndarray, int]:
    """float64 result, sum of |products| (+|bias|) and terms per output of a 1x1 or k = s
    call, from the phase-separated matrix products."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    n, dims = x.shape[0], x.ndim - 2
    if op == "conv_transpose":  # y[n, o, i*s + a] += x[n, c, i] w[c, o, a]
        taps = "ab"[:dims]
        sub = f"nc{'ij'[:dims]},co{taps}->no{''.join(p for q in zip('ij'[:dims], taps) for p in q)}"
        out_ = np.einsum(sub, x64, w64)
        mag = np.einsum(sub, np.abs(x64), np.abs(w64))
        shape = (n, w.shape[1]) + tuple(s * stride for s in x.shape[2:])
        terms = x.shape[1]
    else:  # y[n, o, i] = sum x[n, c, i*s + a] w[o, c, a]
        split = x64.reshape((n, x.shape[1]) + sum(((s // stride, stride)
                                                   for s in x.shape[2:]), ()))
        taps, idx = "ab"[:dims], "ij"[:dims]
        sub = f"nc{''.join(p for q in zip(idx, taps) for p in q)},oc{taps}->no{idx}"
        out_ = np.einsum(sub, split, w64)
        mag = np.einsum(sub, np.abs(split), np.abs(w64))
        shape = out_.shape
        terms = x.shape[1] * stride ** dims
    out_, mag = out_.reshape(shape), mag.reshape(shape)
    if b is not None:
        bb = b.astype(np.float64).reshape((1, -1) + (1,) * dims)
        out_, mag = out_ + bb, mag + np.abs(bb)
    return out_, mag, terms + (b is not None)


def test_pipelined_results_are_the_unpipelined_bits(tmp_path: Path) -> None:
    """Each call pipelined (L2 256 KiB: gate 6 MiB) and not (L2 4 MiB: gate 96 MiB): the same
    bits on every ISA and 1 / 2 / 3 threads, and within the float64 oracle's bound."""
    piped = _probe(256 << 10, tmp_path)
    plain = _probe(4 << 20)
    assert piped.keys() == plain.keys() and piped
    for key, (algorithm, given, digests) in piped.items():
        assert algorithm == "gemm" and "pipelined" in given.split("+"), (key, given)
        assert len(digests) == 1, f"{key}: thread counts differ"
        p_algorithm, p_given, p_digests = plain[key]
        assert "pipelined" not in p_given.split("+"), (key, p_given)
        assert digests == p_digests, f"{key}: pipelined bits differ from unpipelined"
    for path in sorted(tmp_path.glob("case*.npz")):
        d = np.load(path)
        b = d["b"] if d["b"].size else None
        want, mag, terms = _oracle(str(d["op"]), d["x"], d["w"], b, int(d["stride"]))
        assert_matches_oracle(d["y"], want, mag, terms, path.name)
