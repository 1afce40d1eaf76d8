"""Large-geometry fuzz: sizes far beyond test_fuzz's, across the kernels' internal limits.

Hypothesis draws lengths up to a few thousand in 1-D, hundreds in 2-D and tens in 3-D;
paddings and crops up to the whole size (symmetric or per-side (low, high) pairs, so a conv
may pad hundreds of points around a short input); strides and dilations up to 16; kernels,
channels, groups, batch and output_padding.  Every example runs in a child process
(tests/_isolate.py: one worker per ISA, re-started after a crash), so a segfault is a test
failure with its example rather than a dead pytest.  The child computes conv_transpose, its
three gradients and conv in float32 on a drawn ISA; the parent compares them with a float64
oracle: PyTorch when installed (per-side padding by explicit padding and cropping), else the
structural reference of tconv.reference (entry by entry; never a dense matrix).

Examples per run: ``TCONV_LARGE_FUZZ_EXAMPLES`` (default 240, split 1-D/2-D/3-D as 3:2:1);
the long run is ``TCONV_LARGE_FUZZ_EXAMPLES=5000``.  The module is marked slow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import tconv
from _isolate import Worker
from _structural import grad_weight as grad_weight_structural
from conftest import assert_matches_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tconv import reference

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("TCONV_LARGE_FUZZ_EXAMPLES", "240"))
SHARE = {1: 3, 2: 2, 3: 1}
ISAS = tconv.supported_isas()

# Per rank: largest input extent, kernel, and the cap on output points (keeps one example's
# oracle and data small enough for a few hundred examples to run in a minute or two).
CAPS = {1: {"size": 4000, "kernel": 16, "points": 40000},
        2: {"size": 400, "kernel": 6, "points": 250000},
        3: {"size": 40, "kernel": 4, "points": 120000}}


@dataclass(frozen=True)
class Big:
    isa: str
    batch: int
    groups: int
    cin_pg: int
    cout_pg: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    threads: int

    @property
    def fine(self) -> tuple[int, ...]:
        return tuple((i - 1) * s - lo - hi + d * (k - 1) + op + 1
                     for i, k, s, (lo, hi), op, d in zip(self.spatial, self.kernel, self.stride,
                                                         self.padding, self.output_padding,
                                                         self.dilation))

    def tparams(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding,
                "output_padding": self.output_padding, "groups": self.groups,
                "dilation": self.dilation}

    def cparams(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}


def _edge(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.just(lo), st.just(hi), st.integers(lo, hi))


@st.composite
def bigs(draw: st.DrawFn, nd: int) -> Big:
    cap = CAPS[nd]
    per_axis = round(cap["points"] ** (1 / nd))
    spatial, kernel, stride, dilation, op, padding = [], [], [], [], [], []
    for _ in range(nd):
        s = draw(_edge(1, 16))
        d = draw(_edge(1, 16))
        k = draw(_edge(1, cap["kernel"]))
        reach = d * (k - 1) + 1
        # input extent: up to the cap, and small enough that the full output fits per_axis
        # points (unless the padding crops it: drawn below)
        i_max = max(1, min(cap["size"], (per_axis * 4 - reach) // s + 1))
        i = draw(_edge(1, i_max))
        o = draw(_edge(0, max(s, d) - 1))
        full = (i - 1) * s + reach + o
        # total padding: at least what brings the output under the cap, at most full - 1
        need = max(0, full - per_axis)
        total = draw(_edge(need, full - 1))
        if draw(st.booleans()):
            lo = draw(_edge(0, total))
            padding.append((lo, total - lo))
        else:
            padding.append((total // 2, total - total // 2))
        spatial.append(i); kernel.append(k); stride.append(s); dilation.append(d); op.append(o)
    groups = draw(st.sampled_from((1, 1, 2)))
    return Big(
        isa=draw(st.sampled_from(ISAS)), batch=draw(st.sampled_from((1, 1, 2))), groups=groups,
        cin_pg=draw(st.integers(1, 3)), cout_pg=draw(st.integers(1, 3)),
        spatial=tuple(spatial), kernel=tuple(kernel), stride=tuple(stride),
        padding=tuple(padding), output_padding=tuple(op), dilation=tuple(dilation),
        threads=draw(st.sampled_from((1, 2, 2))),
    )


def run_tconv(pb: Big, x, w, b, g, u, wc) -> dict[str, np.ndarray]:
    """In the child: every operation of one example on its ISA and thread count."""
    tconv.set_num_threads(pb.threads)
    y = tconv.conv_transpose(x, w, b, **pb.tparams())
    gi, gw, gb = tconv.conv_transpose_backward(g, x, w, **pb.tparams())
    c = tconv.conv(u, wc, None, **pb.cparams())
    return {"forward": y, "grad_input": gi, "grad_weight": gw, "grad_bias": gb, "conv": c}


def _oracle_torch(pb: Big, x, w, b, g, u, wc) -> dict[str, np.ndarray]:
    import torch
    F = torch.nn.functional
    nd = len(pb.spatial)
    ct = getattr(F, f"conv_transpose{nd}d")
    cv = getattr(F, f"conv{nd}d")
    t = lambda a: torch.from_numpy(np.asarray(a, np.float64))
    xt, wt, bt = t(x).requires_grad_(True), t(w).requires_grad_(True), t(b)
    full = ct(xt, wt, None, stride=pb.stride, dilation=pb.dilation, groups=pb.groups)
    # output_padding extends the high side; the padding then crops (lo, hi)
    extra = [(0, o) for o in reversed(pb.output_padding)]
    full = F.pad(full, [v for pair in extra for v in pair])
    idx = (slice(None), slice(None)) + tuple(
        slice(lo, lo + f) for (lo, _), f in zip(pb.padding, pb.fine))
    y = full[idx] + bt.reshape(1, -1, *([1] * nd))
    y.backward(t(g))
    pads = [v for lo_hi in reversed(pb.padding) for v in lo_hi]
    c = cv(F.pad(t(u), pads), t(wc), None, stride=pb.stride, dilation=pb.dilation,
           groups=pb.groups)
    return {"forward": y.detach().numpy(), "grad_input": xt.grad.numpy(),
            "grad_weight": wt.grad.numpy(), "grad_bias": np.asarray(g, np.float64).sum(
                axis=(0, *range(2, g.ndim))), "conv": c.numpy()}


def _oracle_structural(pb: Big, x, w, b, g, u, wc) -> dict[str, np.ndarray]:
    tp, cp = pb.tparams(), pb.cparams()
    return {"forward": reference.conv_transpose_structural(x, w, b, **tp),
            "grad_input": reference.conv_structural(g, w, None, **cp),
            "grad_weight": grad_weight_structural(g, x, w.shape, pb.stride, pb.padding,
                                                  pb.dilation, pb.groups),
            "grad_bias": np.asarray(g, np.float64).sum(axis=(0, *range(2, g.ndim))),
            "conv": reference.conv_structural(u, wc, None, **cp)}


def _oracle(pb: Big, *arrays: np.ndarray) -> dict[str, np.ndarray]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return _oracle_structural(pb, *arrays)
    return _oracle_torch(pb, *arrays)


_WORKERS: dict[str, Worker] = {}


def _worker(isa: str) -> Worker:
    if isa not in _WORKERS:
        _WORKERS[isa] = Worker(timeout=300, env={"TCONV_ISA": isa})
    return _WORKERS[isa]


@pytest.fixture(scope="module", autouse=True)
def _close_workers():
    yield
    for w in _WORKERS.values():
        w.close()
    _WORKERS.clear()


def check_big(pb: Big, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    taps = int(np.prod(pb.kernel))
    c_in, c_out = pb.cin_pg * pb.groups, pb.cout_pg * pb.groups
    x = rng.standard_normal((pb.batch, c_in, *pb.spatial)).astype(np.float32)
    w = rng.standard_normal((c_in, pb.cout_pg, *pb.kernel)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    g = rng.standard_normal((pb.batch, c_out, *pb.fine)).astype(np.float32)
    u = rng.standard_normal((pb.batch, c_out, *pb.fine)).astype(np.float32)
    wc = rng.standard_normal((c_in, pb.cout_pg, *pb.kernel)).astype(np.float32)
    arrays = (x, w, b, g, u, wc)
    got = _worker(pb.isa).call("test_fuzz_large:run_tconv", pb, *arrays)
    want = _oracle(pb, *arrays)
    scale = _oracle(pb, *(np.abs(a) for a in arrays))
    terms = {"forward": pb.cin_pg * taps + 1, "grad_input": pb.cout_pg * taps,
             "grad_weight": pb.batch * int(np.prod(pb.spatial)),
             "grad_bias": pb.batch * int(np.prod(pb.fine)), "conv": pb.cout_pg * taps}
    for op, value in got.items():
        assert_matches_oracle(value, want[op], scale[op], terms[op], f"{op} of {pb}")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_large_geometry_fuzz(nd: int) -> None:
    examples = max(1, EXAMPLES * SHARE[nd] // sum(SHARE.values()))

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(pb=bigs(nd))
    def run(pb: Big) -> None:
        check_big(pb)

    run()
