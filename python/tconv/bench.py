"""``python -m tconv bench``: time tconv against its peers on the layers of :mod:`tconv.bench_cases`.

The peers (:mod:`tconv._peers`, each optional and skipped when not installed) are PyTorch,
ONNX Runtime, OpenVINO and, for the 1x1 layers of ``--suite gemm``, NumPy's BLAS.  For every
case, pass (``fwd``, ``grad_input``, ``grad_weight``) and dtype, tconv and every peer that has the
pass are timed in the same process, their repetitions interleaved (so a noisy neighbour or a
clock change hits all alike), after a warm-up; each reported time is the median of ``--repeat``
repetitions, and one repetition runs the call enough times to last ``--min-time`` seconds.
Before every repetition the process sleeps ``--idle`` seconds (0.2), so the thread pools of
the call timed before (OpenBLAS's spin about 0.1 s) are asleep and take no core from it.  All
use the same number of threads.  What torch runs is what a training step runs:

* ``fwd``: ``torch.nn.functional.conv_transpose{1,2,3}d`` under ``torch.no_grad()``;
* ``grad_input`` / ``grad_weight``: ``torch.ops.aten.convolution_backward(..., transposed=True,
  output_mask=...)``, the op autograd calls for the backward of ``conv_transpose``.

ONNX Runtime and OpenVINO run the forward of a one-node ``ConvTranspose`` model.  Every peer's
result is compared with tconv's; a mismatch marks the row ``FAIL`` and makes the command exit
with status 1, unless the two differ only in where they put NaN/Inf and tconv's places are the
definition's (the outputs with a term holding a non-finite factor): the row is then marked
``ok*`` and a note names the peer (torch's float64 kernels multiply a NaN by the zeros of
cropped padding).  ``tconv/<peer>`` is the peer's time over tconv's (above 1: tconv is faster)
and ``tconv/best`` the same for the fastest peer of the row.

A depthwise case (one input and one output channel per group) is also judged against the
memory roofline: the bytes a pass moves (its two activations and the weight) over the time of
copying that many bytes (``np.copyto``, split over the threads used), timed interleaved with
the others; the table's last lines give the pass's share of that copy bandwidth.

A case with ``nan_input`` (``nan-input-k4s2``) puts one NaN in the middle of x and times the
call next to the same call on finite data: the table's last lines give the NaN call's time as a
multiple of the finite one's (the non-finite repair must stay cheap).  Its ``grad_input`` does not
read x and is skipped; it is left out of the tconv/torch geomeans.

``--algorithms direct,winograd,winograd4`` (conv_transpose's ``algorithm=``, see
docs/winograd.md) also times tconv's forward and grad_input (the Winograd gather) by each
further algorithm, interleaved with the rest: per algorithm a column of GF/s (counted as the
direct method's FLOPs, so a speed-up shows as more GF/s), the plan that ran (``direct`` when
the geometry does not suit it) and its max error ``max|y - y64| / max|y64|`` against the
float64 direct result on the same inputs, beside the direct result's own (``direct err``);
the last lines give each algorithm's geomean speed over direct and over each peer, per pass
(grad_weight has one algorithm: direct).  ``tconv GF/s`` and the peer ratios stay the
direct's.

GF/s use the conventional count ``2 N C_in (C_out/g) prod(in) prod(k)`` for every pass.  That
count includes the terms whose tap padding crops off the output (zeros an implementation may
skip): a last line names each case where they exceed 1 % (``BenchCase.inside_share``), since a
peer that skips them can show more GF/s than the machine's peak.
"% peak" is relative to ``--peak-gflops`` if given, else to an *estimate*:
FLOP/cycle/core of the CPU's widest ISA (AVX-512 with two FMA pipes: 64 fp32; AVX2+FMA: 32;
generic SSE: 8) x cores used x the clock in ``/proc/cpuinfo``; float64 peak is half.  The estimate
ignores turbo, so a kernel can exceed "100 %" of it; measure the peak with an FMA loop and pass
``--peak-gflops`` for a firm number.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from . import reference as _reference
from ._peers import PEERS, available_peers, parse_peers
from .bench_cases import ALL_CASES, GEMM_CASES, PASSES, BenchCase, select_cases
from .functional import ALGORITHMS, conv_transpose, conv_transpose_backward

# (no percent sign: argparse %-formats help texts but prints descriptions verbatim)
HELP = ("Benchmark tconv against its peers (PyTorch, ONNX Runtime, OpenVINO, NumPy's BLAS) on "
        "real transposed-convolution layers: GF/s, ratios, share of the machine's peak; "
        "optional JSON + PNG.")

#: fp32 FLOP per cycle per core for each ISA family (2 FMA pipes x lanes x 2 FLOP per FMA).
FP32_FLOPS_PER_CYCLE: dict[str, int] = {"avx512": 64, "avx2": 32, "generic": 8}

DTYPES: dict[str, tuple[np.dtype[Any], ...]] = {
    "float32": (np.dtype(np.float32),),
    "float64": (np.dtype(np.float64),),
    "both": (np.dtype(np.float32), np.dtype(np.float64)),
}

#: Largest acceptable ``max|tconv - torch| / max|torch|``: a correct float32 kernel is ~1e-6
#: off; a wrong one is O(1) off.
MISMATCH_TOLERANCE: dict[str, float] = {"float32": 1e-3, "float64": 1e-10}
#: A peer's check when it puts NaN/Inf where the definition does not (tconv does not): a note,
#: not a failure.
OFF_DEFINITION = "peer off definition"


# --------------------------------------------------------------------------------------------
# the workload of one (case, pass, dtype): inputs and one callable per implementation


def _torch() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


@dataclass
class Workload:
    """Random inputs of one case in one dtype; ``call(impl, pass)`` returns a thunk.

    Arrays: ``x`` (N, C_in, *in), ``w`` (C_in, C_out/g, *k), ``g`` (N, C_out, *out), all
    standard normal from ``seed``.
    """

    case: BenchCase
    dtype: np.dtype[Any]
    seed: int = 0
    x: np.ndarray[Any, Any] = field(init=False)
    w: np.ndarray[Any, Any] = field(init=False)
    g: np.ndarray[Any, Any] = field(init=False)
    # the serialized one-node ONNX model of the layer, built once for every ONNX peer
    onnx_model: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        c = self.case
        self.x = rng.standard_normal(c.input_shape).astype(self.dtype)
        self.w = rng.standard_normal(c.weight_shape).astype(self.dtype)
        self.g = rng.standard_normal(c.output_shape).astype(self.dtype)
        if c.nan_input and self.x.size:
            self.x.flat[self.x.size // 2] = np.nan

    def converted(self, dtype: np.dtype[Any], absolute: bool = False) -> Workload:
        """The same inputs (exactly, if ``dtype`` is wider) in ``dtype``; ``|.|`` of them if
        ``absolute`` (an oracle run on those gives the error-bound scale ``sum |products|``)."""
        fix = np.abs if absolute else (lambda a: a)
        return self._with(dtype, *(fix(a).astype(dtype) for a in (self.x, self.w, self.g)))

    def _with(self, dtype: np.dtype[Any], x: np.ndarray[Any, Any], w: np.ndarray[Any, Any],
              g: np.ndarray[Any, Any]) -> Workload:
        """This case with other operands (already of ``dtype``)."""
        other = Workload.__new__(Workload)
        other.case, other.dtype, other.seed = self.case, np.dtype(dtype), self.seed
        other.onnx_model = None
        other.x, other.w, other.g = x, w, g
        return other

    def reduction_length(self, pass_: str) -> int:
        """Most products summed into one output element of ``pass_`` (for error bounds)."""
        c = self.case
        if pass_ == "fwd":
            return c.c_in // c.groups * math.prod(c.kernel)
        if pass_ == "grad_input":
            return c.c_out // c.groups * math.prod(c.kernel)
        return c.batch * math.prod(c.spatial)

    def _mask(self, pass_: str) -> tuple[bool, bool, bool]:
        if pass_ not in PASSES:
            raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")
        return pass_ == "grad_input", pass_ == "grad_weight", False

    def tconv(self, pass_: str, algorithm: str = "direct") -> Callable[[], np.ndarray[Any, Any]]:
        """Thunk running tconv's ``pass_`` and returning its result; ``algorithm`` is the
        forward's and grad_input's (``algorithm=`` of conv_transpose and
        conv_transpose_backward); grad_weight takes only ``"direct"``."""
        c, x, w, g = self.case, self.x, self.w, self.g
        geometry = (c.stride, c.padding, c.output_padding, c.groups, c.dilation)
        if pass_ == "fwd":
            return lambda: conv_transpose(x, w, None, *geometry, algorithm=algorithm)
        mask = self._mask(pass_)
        index = 0 if mask[0] else 1
        if pass_ == "grad_weight" and algorithm != "direct":
            raise ValueError(f"grad_weight runs direct only, got algorithm={algorithm!r}")

        def run() -> np.ndarray[Any, Any]:
            out = conv_transpose_backward(g, x, w, *geometry, output_mask=mask,
                                          algorithm=algorithm)
            result = out[index]
            assert result is not None
            return result

        return run

    def torch(self, pass_: str) -> Callable[[], Any]:
        """Thunk running what PyTorch runs for ``pass_`` (returns a tensor)."""
        torch = _torch()
        if torch is None:
            raise RuntimeError("torch is not importable")
        c = self.case
        x, w, g = (torch.from_numpy(a) for a in (self.x, self.w, self.g))
        p = {k: list(v) for k, v in c.params().items()}
        if pass_ == "fwd":
            fn = getattr(torch.nn.functional, f"conv_transpose{c.dims}d")

            def forward() -> Any:
                with torch.no_grad():
                    return fn(x, w, None, p["stride"], p["padding"], p["output_padding"],
                              c.groups, p["dilation"])

            return forward
        mask = list(self._mask(pass_))
        index = 0 if mask[0] else 1
        op = torch.ops.aten.convolution_backward

        def backward() -> Any:
            # the call autograd makes for ConvTranspose's backward (bias_sizes None: no bias)
            return op(g, x, w, None, p["stride"], p["padding"], p["dilation"], True,
                      p["output_padding"], c.groups, mask)[index]

        return backward

    def reference(self, pass_: str) -> Callable[[], np.ndarray[Any, Any]]:
        """Thunk running the float64 dense-matrix oracle (only sensible for small cases)."""
        c, x, w, g = self.case, self.x, self.w, self.g
        p = c.params()
        geometry = (p["stride"], p["padding"], p["output_padding"])
        if pass_ == "fwd":
            return lambda: _reference.conv_transpose(x, w, None, *geometry, c.groups, p["dilation"])
        index = 0 if self._mask(pass_)[0] else 1
        return lambda: _reference.conv_transpose_backward(g, x, w, *geometry, c.groups,
                                                          p["dilation"])[index]


def as_numpy(result: Any) -> np.ndarray[Any, Any]:
    """A NumPy view of a NumPy array or a (CPU) torch tensor."""
    if hasattr(result, "detach"):
        return np.asarray(result.detach().numpy())
    return np.asarray(result)


def relative_error(actual: Any, expected: Any) -> float:
    """``max|actual - expected| / max|expected|`` in float64 over the finite elements (``inf``
    on a shape mismatch or when NaN/+Inf/-Inf are not in the same places)."""
    a = as_numpy(actual).astype(np.float64)
    e = as_numpy(expected).astype(np.float64)
    if a.shape != e.shape:
        return math.inf
    nan, inf = np.isnan(e), np.isinf(e)
    if not (np.array_equal(np.isnan(a), nan) and np.array_equal(np.isinf(a), inf)
            and np.array_equal(a[inf], e[inf])):
        return math.inf
    a, e = a[~nan & ~inf], e[~nan & ~inf]
    if e.size == 0:
        return 0.0
    scale = float(np.max(np.abs(e))) or 1.0
    return float(np.max(np.abs(a - e))) / scale


def finite_error(actual: Any, expected: Any) -> float:
    """:func:`relative_error` over the elements finite in both (``inf`` on a shape mismatch)."""
    a = as_numpy(actual).astype(np.float64)
    e = as_numpy(expected).astype(np.float64)
    if a.shape != e.shape:
        return math.inf
    both = np.isfinite(a) & np.isfinite(e)
    return relative_error(a[both], e[both])


def definition_nonfinite(work: Workload, pass_: str) -> np.ndarray[Any, Any] | None:
    """Where the definition of ``pass_`` puts NaN or Inf for ``work``'s operands (None when
    they are all finite): the outputs with at least one term holding a non-finite factor
    (such a term is non-finite, and so is any sum of non-finite terms).  Counted exactly by
    tconv's finite path in float64 on 0/1 data: each operand's non-finite mask against the
    other operands all ones, the counts summed."""
    operands = (work.x, work.w, work.g)
    reads = {"fwd": (0, 1), "grad_input": (1, 2), "grad_weight": (0, 2)}[pass_]
    count: np.ndarray[Any, Any] | None = None
    for i in reads:
        if np.isfinite(operands[i]).all():
            continue  # a zero count
        masks = ((~np.isfinite(a) if j == i else np.ones(a.shape, bool)).astype(np.float64)
                 for j, a in enumerate(operands))
        part = np.asarray(work._with(np.dtype(np.float64), *masks).tconv(pass_)())
        count = part if count is None else count + part
    return None if count is None else count > 0


# --------------------------------------------------------------------------------------------
# timing


#: Default seconds of sleep before every timed repetition (``--idle``).  OpenBLAS's worker
#: threads spin for 2**28 cycles (about 0.1 s) after a call; a sample started inside that
#: window shares its cores with them (at 2 threads, timed under ``chrt -f 50``, tconv's
#: 512x512x1024 GEMM ran at 60 GF/s right after NumPy's samples and at 279 after its own;
#: with 0.13 s of sleep before each sample, 273-274 both ways: docs/perf-log.md, 2026-12-03).
IDLE_SECONDS = 0.2


def time_interleaved(
    fns: dict[str, Callable[[], Any]], repeat: int, min_time: float, idle: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds per call of each thunk, ``repeat`` samples each, repetitions interleaved; and
    each thunk's result (from its warm-up call, kept for the correctness check).

    Each thunk is run once to warm up (allocations, page faults, lazy init) and, unless that
    call already lasted ``min_time`` (then one call per sample it is), once more to calibrate
    ``number`` = calls per sample, so a sample lasts at least ``min_time``.  Then each round
    times every thunk once, alternating the order between rounds.  Before every sample the
    process sleeps ``idle`` seconds (not timed): the thread pools of the thunk that ran before
    (OpenBLAS's workers spin about 0.1 s after a call) go to sleep first, so no sample shares
    its cores with them and each starts from the same idle state.
    """
    numbers: dict[str, int] = {}
    results: dict[str, Any] = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        results[name] = fn()
        once = time.perf_counter() - start
        if once < min_time:  # a cold first call overestimates: calibrate on a warm one
            start = time.perf_counter()
            fn()
            once = time.perf_counter() - start
        numbers[name] = max(1, math.ceil(min_time / max(once, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            for name in names if r % 2 == 0 else names[::-1]:
                fn, number = fns[name], numbers[name]
                if idle > 0:
                    time.sleep(idle)
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[name].append((time.perf_counter() - start) / number)
    finally:
        if was_enabled:
            gc.enable()
    return samples, results


# --------------------------------------------------------------------------------------------
# machine description and peak


def _cpuinfo() -> dict[str, str]:
    """First processor's fields of /proc/cpuinfo (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_isa() -> tuple[str, str]:
    """(ISA family of this CPU for the peak table, the evidence), from /proc/cpuinfo flags.

    The machine's peak depends on what the CPU can do, not on which kernel path tconv picked
    (``TCONV_ISA=generic`` does not lower the peak), so this ignores ``tconv.isa()``.
    """
    flags = set(_cpuinfo().get("flags", "").split())
    if "avx512f" in flags:
        return "avx512", "CPU flags (avx512f)"
    if {"avx2", "fma"} <= flags:
        return "avx2", "CPU flags (avx2, fma)"
    return "generic", "CPU flags (no avx2+fma)"


def tconv_isa() -> str | None:
    """The kernel path tconv dispatched to, if this tconv reports it (``tconv.isa()``)."""
    import tconv

    isa_fn = getattr(tconv, "isa", None)
    return str(isa_fn()) if callable(isa_fn) else None


def clock_ghz() -> float | None:
    """Current clock of the first core from /proc/cpuinfo, in GHz (None if unknown)."""
    mhz = _cpuinfo().get("cpu MHz")
    try:
        return float(mhz) / 1000.0 if mhz else None
    except ValueError:
        return None


@dataclass
class Peak:
    """Machine peak in GF/s for float32 (float64 is half) and how it was obtained."""

    fp32_gflops: float | None
    source: str

    def for_dtype(self, dtype: np.dtype[Any]) -> float | None:
        if self.fp32_gflops is None:
            return None
        return self.fp32_gflops / (2.0 if dtype == np.float64 else 1.0)


def estimate_peak(threads: int, given: float | None) -> Peak:
    """``--peak-gflops`` if given, else FLOP/cycle(ISA) x threads x /proc/cpuinfo clock."""
    if given is not None:
        return Peak(given, f"--peak-gflops {given:g} (float32; float64 = half)")
    family, isa_source = cpu_isa()
    ghz = clock_ghz()
    if ghz is None:
        return Peak(None, "unknown (no clock in /proc/cpuinfo); pass --peak-gflops")
    per_cycle = FP32_FLOPS_PER_CYCLE[family]
    cores = min(threads, os.cpu_count() or threads)  # more threads than CPUs add no FLOPs
    peak = per_cycle * cores * ghz
    return Peak(peak, (
        f"ESTIMATE {peak:.1f} GF/s float32 = {per_cycle} FLOP/cycle/core ({family}, from "
        f"{isa_source}) x {cores} cores x {ghz:.3f} GHz (/proc/cpuinfo, no turbo); "
        "float64 = half; pass --peak-gflops for a measured value"))


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, ISA, library versions and the date, for the JSON record and the table header."""
    import tconv

    torch = _torch()
    family, isa_source = cpu_isa()
    cpu = _cpuinfo()
    return {
        "cpu_model": cpu.get("model name") or platform.processor() or "unknown",
        "cpu_family_model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "isa": family,
        "isa_source": isa_source,
        "tconv_isa": tconv_isa(),
        "clock_ghz": clock_ghz(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tconv": getattr(tconv, "__version__", "unknown"),
        "torch": None if torch is None else torch.__version__,
        "peer_versions": _peer_versions(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1min_before": _load_average(),
    }


def _peer_versions() -> dict[str, str]:
    """Version of each installed peer package."""
    import importlib.metadata

    versions = {}
    for name, peer in PEERS.items():
        if peer.available():
            try:
                versions[name] = importlib.metadata.version(peer.module)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = "unknown"
    return versions


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_warning(load: float | None) -> str | None:
    """A warning if other processes were already using the CPUs when the run started."""
    if load is None or load < 0.5:
        return None
    return (f"WARNING: load average {load:.2f} on {os.cpu_count()} CPUs before the run: other "
            "processes compete for the cores, absolute GF/s are unreliable (same-run ratios "
            "less so, but noisy too)")


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class PeerTiming:
    """One peer's time for a (case, pass, dtype), and how far its result is from tconv's."""

    seconds: float
    gflops: float
    ratio: float  # peer seconds / tconv seconds: > 1 means tconv is faster
    max_rel_error: float
    check: str
    samples: list[float] = field(default_factory=list)


@dataclass
class AlgorithmTiming:
    """tconv's forward or grad_input by one further ``algorithm=`` (--algorithms) on a row."""

    plan: str      # what tconv.plan says runs: winograd, winograd4 or a direct algorithm
    seconds: float
    gflops: float  # the direct method's FLOPs over these seconds
    speedup: float  # direct's seconds / these seconds
    max_error: float  # max|y - y64| / max|y64|, y64 the float64 direct result
    samples: list[float] = field(default_factory=list)


@dataclass
class Row:
    """One measured (case, pass, dtype): tconv and every peer that has this pass."""

    case: str
    geometry: str
    pass_: str
    dtype: str
    flops: int
    tconv_seconds: float
    tconv_gflops: float
    peers: dict[str, PeerTiming] = field(default_factory=dict)
    peak_percent: float | None = None
    check: str = "unchecked"
    #: nan_input cases: the same call on finite data, and the NaN call's time over its time
    finite_seconds: float | None = None
    nan_over_finite: float | None = None
    tconv_samples: list[float] = field(default_factory=list)
    #: depthwise cases: bytes moved, and copy seconds for as many bytes over tconv's seconds
    moved_bytes: int | None = None
    roofline: float | None = None
    #: --algorithms: the direct result's max error against float64, and each other algorithm
    direct_max_error: float | None = None
    algorithms: dict[str, AlgorithmTiming] = field(default_factory=dict)
    #: BenchCase.inside_share: the counted terms not cropped off by padding
    inside_share: float = 1.0

    @property
    def best_peer(self) -> str | None:
        """The fastest peer on this row (None without peers)."""
        return min(self.peers, key=lambda n: self.peers[n].seconds) if self.peers else None

    @property
    def best_ratio(self) -> float | None:
        """Fastest peer's seconds / tconv's seconds."""
        best = self.best_peer
        return None if best is None else self.peers[best].ratio


def is_depthwise(case: BenchCase) -> bool:
    """One input and one output channel per group."""
    return case.c_in == case.groups and case.c_out == case.groups


def moved_bytes(case: BenchCase, dtype: np.dtype[Any]) -> int:
    """Bytes every pass reads and writes at least once: both activations and the weight."""
    elements = sum(math.prod(s) for s in (case.input_shape, case.output_shape,
                                          case.weight_shape))
    return elements * dtype.itemsize


def parallel_copy(nbytes: int, threads: int) -> Callable[[], None]:
    """A copy of ``nbytes`` bytes between two arrays, split into one slice per thread
    (``np.copyto`` releases the GIL)."""
    src = np.ones(max(1, nbytes // 8), np.float64)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1).astype(int)
    parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def run() -> None:
        workers = [threading.Thread(target=np.copyto, args=part) for part in parts[1:]]
        for w in workers:
            w.start()
        np.copyto(*parts[0])
        for w in workers:
            w.join()

    return run


def run_benchmarks(
    cases: list[BenchCase],
    passes: list[str],
    dtypes: tuple[np.dtype[Any], ...],
    repeat: int,
    min_time: float,
    peak: Peak,
    peers: list[str] | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    algorithms: tuple[str, ...] = ("direct",),
    idle: float = 0.0,
) -> list[Row]:
    """Measure every (case, pass, dtype) against ``peers`` (installed ones, by name, see
    :mod:`tconv._peers`) and, for the forward and grad_input, tconv's further
    ``algorithms`` (besides ``direct``, which is always timed), sleeping ``idle`` seconds
    before every sample (see :func:`time_interleaved`); see the module docstring for the
    method."""
    threads = threads if threads is not None else _core.get_num_threads()
    peers = [] if peers is None else peers
    rows: list[Row] = []
    total = len(cases) * len(passes) * len(dtypes)
    started = time.perf_counter()
    for case in cases:
        for dtype in dtypes:
            work = Workload(case, dtype)
            finite = Workload(replace(case, nan_input=False), dtype) if case.nan_input else None
            for pass_ in passes:
                if finite is not None and pass_ == "grad_input":
                    continue  # reads no x: nothing non-finite
                if progress is not None:
                    progress(f"[{len(rows) + 1}/{total}] {case.name} {pass_} {dtype.name} "
                             f"({case.flops / 1e9:.3g} GFLOP), {time.perf_counter() - started:.0f} s elapsed")
                fns = _thunks(work, finite, pass_, peers, threads, algorithms)
                samples, results = time_interleaved(fns, repeat, min_time, idle)
                row = _row(work, pass_, peak, samples, results, algorithms)
                rows.append(row)
    return rows


#: The passes --algorithms times by each algorithm (grad_weight runs direct only).
ALGORITHM_PASSES = ("fwd", "grad_input")


def _extra_algorithms(pass_: str, algorithms: tuple[str, ...]) -> list[str]:
    """The algorithms besides direct that ``pass_`` is timed by."""
    return [a for a in algorithms if a != "direct"] if pass_ in ALGORITHM_PASSES else []


def _thunks(work: Workload, finite: Workload | None, pass_: str, peers: list[str],
            threads: int, algorithms: tuple[str, ...]) -> dict[str, Callable[[], Any]]:
    """What one row times, by name: tconv, each peer that has the pass, tconv by the other
    ``algorithms``, the finite twin of a NaN-input case and the copy of the depthwise case's
    bytes."""
    fns: dict[str, Callable[[], Any]] = {"tconv": work.tconv(pass_)}
    for name in peers:
        thunk = PEERS[name].thunk(work, pass_, threads)
        if thunk is not None:
            fns[name] = thunk
    for a in _extra_algorithms(pass_, algorithms):
        fns[f"tconv[{a}]"] = work.tconv(pass_, a)
    if finite is not None:
        fns["finite"] = finite.tconv(pass_)
    if is_depthwise(work.case):
        fns["copy"] = parallel_copy(moved_bytes(work.case, work.dtype), threads)
    return fns


def _peer_check(work: Workload, pass_: str, ours: Any, theirs: Any) -> tuple[str, float]:
    """The peer's check and the error it reports (:func:`relative_error`): "ok" within the
    tolerance; :data:`OFF_DEFINITION`, with the error over the entries finite in both, when
    tconv and the peer differ only in where they put NaN/Inf and tconv's places are the
    definition's (:func:`definition_nonfinite`; seen: torch's float64 kernels multiply a NaN
    by the zeros of cropped padding) while the peer's are not; else "FAIL"."""
    tolerance = MISMATCH_TOLERANCE[work.dtype.name]
    err = relative_error(ours, theirs)
    if err <= tolerance:
        return "ok", err
    finite = finite_error(ours, theirs)
    if finite <= tolerance:
        want = definition_nonfinite(work, pass_)
        if want is not None:
            ours_right = np.array_equal(~np.isfinite(as_numpy(ours)), want)
            theirs_right = np.array_equal(~np.isfinite(as_numpy(theirs)), want)
            if ours_right and not theirs_right:
                return OFF_DEFINITION, finite
    return "FAIL", err


def _row(work: Workload, pass_: str, peak: Peak, samples: dict[str, list[float]],
         results: dict[str, Any], algorithms: tuple[str, ...]) -> Row:
    """The row of one (case, pass, dtype) from its samples (medians) and results (each
    peer's checked against tconv's; the other algorithms' against the float64 direct
    result)."""
    case, dtype = work.case, work.dtype
    t_tconv = statistics.median(samples["tconv"])
    row = Row(case=case.name, geometry=case.describe(), pass_=pass_,
              dtype=dtype.name, flops=case.flops, tconv_seconds=t_tconv,
              tconv_gflops=case.flops / t_tconv / 1e9,
              tconv_samples=samples["tconv"], inside_share=case.inside_share)
    if "copy" in samples:
        row.moved_bytes = moved_bytes(case, dtype)
        row.roofline = statistics.median(samples["copy"]) / t_tconv
    if "finite" in samples:
        row.finite_seconds = statistics.median(samples["finite"])
        row.nan_over_finite = t_tconv / row.finite_seconds
    peak_dtype = peak.for_dtype(dtype)
    if peak_dtype:
        row.peak_percent = 100.0 * row.tconv_gflops / peak_dtype
    for name in (n for n in samples if n in PEERS):
        seconds = statistics.median(samples[name])
        check, err = _peer_check(work, pass_, results["tconv"], results[name])
        row.peers[name] = PeerTiming(
            seconds=seconds, gflops=case.flops / seconds / 1e9,
            ratio=seconds / t_tconv, max_rel_error=err, check=check, samples=samples[name])
    if row.peers:
        checks = {t.check for t in row.peers.values()}
        row.check = "FAIL" if "FAIL" in checks else "ok*" if OFF_DEFINITION in checks else "ok"
    extra = _extra_algorithms(pass_, algorithms)
    if extra:
        exact = work.converted(np.dtype(np.float64)).tconv(pass_)()
        row.direct_max_error = relative_error(results["tconv"], exact)
        for a in extra:
            seconds = statistics.median(samples[f"tconv[{a}]"])
            row.algorithms[a] = AlgorithmTiming(
                plan=_plan_algorithm(case, dtype, pass_, a), seconds=seconds,
                gflops=case.flops / seconds / 1e9, speedup=t_tconv / seconds,
                max_error=relative_error(results[f"tconv[{a}]"], exact),
                samples=samples[f"tconv[{a}]"])
    return row


def _plan_algorithm(case: BenchCase, dtype: np.dtype[Any], pass_: str, algorithm: str) -> str:
    """The algorithm tconv.plan reports for ``pass_`` (fwd or grad_input) of ``case`` with
    ``algorithm=``."""
    from .plan import plan

    op = "conv_transpose" if pass_ == "fwd" else "grad_input"
    return plan(op, case.input_shape, case.weight_shape, case.stride,
                case.padding, case.output_padding, case.groups, case.dilation, dtype,
                algorithm=algorithm).algorithm


def parse_algorithms(text: str) -> tuple[str, ...]:
    """``--algorithms``: comma-separated names of conv_transpose's ``algorithm=``;
    ValueError for an unknown one."""
    names = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    bad = [a for a in names if a not in ALGORITHMS]
    if bad or not names:
        raise ValueError(f"--algorithms must be a comma-separated subset of "
                         f"{','.join(ALGORITHMS)}, got {text!r}")
    return names


def geomean(values: list[float]) -> float:
    """Geometric mean of positive values (nan if empty)."""
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def _peer_names(rows: list[Row]) -> list[str]:
    """Peers that appear in any row, in :data:`PEERS` order."""
    seen = {name for r in rows for name in r.peers}
    return [name for name in PEERS if name in seen]


def summary(rows: list[Row]) -> dict[str, Any]:
    """Per peer (and ``best``, the fastest peer per row) and (pass, dtype): geomean and min
    of peer time / tconv time; and the float64/float32 GF/s geomean per pass."""
    out: dict[str, Any] = {"ratio": {}, "float64_over_float32": {}}
    for peer in [*_peer_names(rows), "best"]:
        for pass_ in PASSES:
            for dtype in ("float32", "float64"):
                sel = [r for r in rows if r.pass_ == pass_ and r.dtype == dtype
                       and r.nan_over_finite is None]  # the NaN rows time the repair
                if peer == "best":
                    ratios = [r.best_ratio for r in sel if r.best_ratio is not None]
                    if len({n for r in sel for n in r.peers}) < 2:
                        continue  # with a single peer "best" only repeats it
                else:
                    ratios = [r.peers[peer].ratio for r in sel if peer in r.peers]
                if ratios:
                    worst = min(ratios)
                    out["ratio"].setdefault(peer, {})[f"{pass_} {dtype}"] = {
                        "geomean": geomean(ratios), "min": worst, "cases": len(ratios),
                        "slower_cases": sum(r < 1.0 for r in ratios)}
    for pass_ in PASSES:
        by_key = {(r.case, r.dtype): r.tconv_gflops for r in rows
                  if r.pass_ == pass_ and r.nan_over_finite is None}
        pairs = [by_key[(c, "float64")] / g32 for (c, d), g32 in by_key.items()
                 if d == "float32" and (c, "float64") in by_key]
        if pairs:
            out["float64_over_float32"][pass_] = geomean(pairs)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _gflops(value: float | None) -> str:
    """GF/s with three significant digits below 100 (quick runs are well below 1 GF/s)."""
    return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.3g}"


#: Short column names of the peers in the table.
SHORT = {"torch": "torch", "onnxruntime": "ort", "openvino": "ov", "numpy": "blas"}


#: Cases with less than this share of their counted terms inside the output get a line in the
#: table's footer (BenchCase.inside_share).
PADDING_NOTE_BELOW = 0.99


def _table_head(peers: list[str], algos: list[str]) -> list[str]:
    """The table's column names."""
    head = ["case", "geometry", "pass", "dtype", "tconv GF/s"]
    if algos:
        head += ["direct err"]
    for a in algos:
        head += [f"{a} GF/s", f"{a} err"]
    for name in peers:
        head += [f"{SHORT[name]} GF/s", f"tconv/{SHORT[name]}"]
    if len(peers) > 1:
        head += ["tconv/best"]
    head += ["% peak"]
    if peers:
        head += ["check"]
    return head


def _table_line(r: Row, peers: list[str], algos: list[str]) -> list[str]:
    """The cells of row ``r`` under :func:`_table_head`'s columns."""
    line = [r.case, r.geometry, r.pass_, r.dtype, _gflops(r.tconv_gflops)]
    if algos:
        line += [_fmt(r.direct_max_error, ".1e")]
    for a in algos:
        at = r.algorithms.get(a)
        if at is None:
            line += ["-", "-"]
            continue
        ran = "" if at.plan == a else f" ({at.plan})"
        line += [f"{_gflops(at.gflops)} {at.speedup:.2f}x{ran}", f"{at.max_error:.1e}"]
    for name in peers:
        t = r.peers.get(name)
        line += [_gflops(t.gflops if t else None), f"{t.ratio:.2f}x" if t else "-"]
    if len(peers) > 1:
        best = r.best_peer
        line += ["-" if best is None else f"{r.best_ratio:.2f}x {SHORT[best]}"]
    line += [_fmt(r.peak_percent, ".1f")]
    if peers:
        worst = max((t.max_rel_error for t in r.peers.values()), default=None)
        line += [r.check if worst is None else f"{r.check} ({worst:.0e})"]
    return line


def _notes(rows: list[Row], peak: Peak) -> list[str]:
    """The lines under the geomeans: NaN-input cost, memory roofline, padding shares and
    what "% peak" is relative to."""
    lines = []
    for r in rows:
        if r.nan_over_finite is not None:
            lines.append(f"one NaN in x: {r.case} {r.pass_} {r.dtype} takes "
                         f"{r.nan_over_finite:.2f}x the time of the finite call")
    for r in rows:
        for name, t in r.peers.items():
            if t.check == OFF_DEFINITION:
                lines.append(f"ok*: {name} {r.case} {r.pass_} {r.dtype} puts NaN/Inf where no "
                             f"term has a non-finite factor, tconv only where the definition "
                             f"does; the error shown is over the entries finite in both")
    for r in rows:
        if r.roofline is not None and r.moved_bytes is not None:
            lines.append(f"memory roofline: {r.case} {r.pass_} {r.dtype} moves "
                         f"{r.moved_bytes / 1e6:.3g} MB at {r.roofline:.2f} of the copy "
                         f"bandwidth ({r.moved_bytes / r.tconv_seconds / 1e9:.1f} GB/s)")
    cropped: dict[str, float] = {}
    for r in rows:
        if r.inside_share < PADDING_NOTE_BELOW:
            cropped.setdefault(r.case, r.inside_share)
    for case, share in cropped.items():
        lines.append(f"padding: {case} counts {100 * (1 - share):.1f} % of its terms on taps that "
                     f"padding crops off; a peer that skips them can reach {1 / share:.2f}x the "
                     f"peak in these GF/s")
    lines.append(f"% peak relative to: {peak.source}")
    return lines


def format_table(rows: list[Row], peak: Peak) -> str:
    """The result table plus the geomean lines, as text."""
    peers = _peer_names(rows)
    algos = list(dict.fromkeys(a for r in rows for a in r.algorithms))
    head = _table_head(peers, algos)
    body = [_table_line(r, peers, algos) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    text_columns = {"case", "geometry", "pass", "dtype", "check"}

    def render(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if h in text_columns else c.rjust(w)
                         for c, w, h in zip(cells, widths, head)).rstrip()

    lines = [render(head), render(["-" * w for w in widths])] + [render(b) for b in body]
    stats = summary(rows)
    if stats["ratio"]:
        lines.append("")
        for peer, by_key in stats["ratio"].items():
            label = "best peer" if peer == "best" else SHORT[peer]
            for key, st in by_key.items():
                lines.append(f"geomean tconv/{label:9s} {key:20s} {st['geomean']:.2f}x "
                             f"(min {st['min']:.2f}x, slower on {st['slower_cases']} of "
                             f"{st['cases']} cases)")
    elif not peers:
        lines.append("\nno peer (none installed, or --peers none): tconv-only columns, "
                     "results unchecked")
    for a in algos:
        for pass_ in ALGORITHM_PASSES:
            for dtype in ("float32", "float64"):
                sel = [r for r in rows if a in r.algorithms and r.pass_ == pass_
                       and r.dtype == dtype and r.nan_over_finite is None]
                if sel:
                    lines += _algorithm_lines(sel, a, f"{pass_} {dtype}", peers)
    for pass_, ratio in stats["float64_over_float32"].items():
        lines.append(f"geomean float64/float32 GF/s {pass_:12s} {ratio:.2f}")
    return "\n".join(lines + _notes(rows, peak))


def _algorithm_lines(sel: list[Row], a: str, key: str, peers: list[str]) -> list[str]:
    """Geomean lines of algorithm ``a`` on the rows ``sel`` (one pass and dtype, ``key``):
    speed over direct, then over each peer timed on them."""
    n_ran = sum(r.algorithms[a].plan == a for r in sel)
    lines = [f"geomean tconv[{a}]/direct {key} "
             f"{geomean([r.algorithms[a].speedup for r in sel]):.2f}x (ran {a} on {n_ran} of "
             f"{len(sel)} cases; max error {max(r.algorithms[a].max_error for r in sel):.1e})"]
    for peer in peers:
        ratios = [r.peers[peer].seconds / r.algorithms[a].seconds for r in sel
                  if peer in r.peers]
        if ratios:
            lines.append(f"geomean tconv[{a}]/{SHORT[peer]:5s} {key} {geomean(ratios):.2f}x")
    return lines


def write_json(path: Path, rows: list[Row], machine: dict[str, Any], peak: Peak,
               options: dict[str, Any]) -> None:
    """Everything measured (all samples included) plus machine and options."""
    record = {
        "machine": machine,
        "peak": {"fp32_gflops": peak.fp32_gflops, "source": peak.source},
        "options": options,
        "flops_formula": "2 * N * C_in * (C_out/groups) * prod(input spatial) * prod(kernel)",
        "summary": summary(rows),
        "results": [{("pass" if k == "pass_" else k): v for k, v in asdict(r).items()}
                    for r in rows],
    }
    path.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")


def write_png(path: Path, rows: list[Row], machine: dict[str, Any], peak: Peak) -> bool:
    """Grouped bar chart (tconv and each peer's GF/s per case), one panel per pass x dtype.

    Returns False (and writes nothing) if matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [(p, d) for p in PASSES for d in ("float32", "float64")
              if any(r.pass_ == p and r.dtype == d for r in rows)]
    cases = list(dict.fromkeys(r.case for r in rows))
    series = ["tconv", *_peer_names(rows)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.9 * len(cases) + 2), 3.2 * len(panels)),
                             squeeze=False)
    width = 0.8 / len(series)
    for ax, (pass_, dtype) in zip(axes[:, 0], panels):
        sel = {r.case: r for r in rows if r.pass_ == pass_ and r.dtype == dtype}
        xs = np.arange(len(cases))
        tallest = [0.0] * len(cases)
        for i, name in enumerate(series):
            values = []
            for j, c in enumerate(cases):
                r = sel.get(c)
                v = (r.tconv_gflops if name == "tconv" else
                     (r.peers[name].gflops if name in r.peers else 0.0)) if r else 0.0
                values.append(v)
                tallest[j] = max(tallest[j], v)
            ax.bar(xs + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        for x, c in zip(xs, cases):  # the same-run ratio to the fastest peer above each group
            r = sel.get(c)
            if r is not None and r.best_ratio:
                ax.annotate(f"{r.best_ratio:.2f}x", (x, tallest[x]), ha="center", va="bottom",
                            fontsize=7)
        title = f"{pass_}, {dtype}"
        limit = peak.for_dtype(np.dtype(dtype))
        if limit:
            title += f" (peak {limit:.0f} GF/s)"
            if max(tallest) >= 0.25 * limit:  # otherwise the line squashes the bars
                ax.axhline(limit, color="grey", linestyle="--", linewidth=1, label="peak")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("GF/s")
        ax.set_xticks(xs)
        ax.set_xticklabels(cases, rotation=30, ha="right", fontsize=8)
        ax.margins(y=0.15)
        ax.legend(fontsize=8)
    fig.suptitle(f"tconv {machine['tconv']} vs {', '.join(series[1:]) or 'no peer'} - "
                 f"{machine['cpu_model']}, {machine['threads']} threads, "
                 f"{machine['date_utc'][:10]}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", default=None,
                        help="comma-separated substrings of case names (default: all); "
                             "--list shows them")
    parser.add_argument("--passes", default=",".join(PASSES),
                        help=f"comma-separated subset of {','.join(PASSES)} (default: all)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed repetitions per implementation; the median is reported")
    parser.add_argument("--min-time", type=float, default=None,
                        help="minimum seconds per repetition (default 0.05, --quick 0.002)")
    parser.add_argument("--idle", type=float, default=None,
                        help="seconds slept before every timed repetition, so the thread "
                             "pools of the call timed before are asleep (default "
                             f"{IDLE_SECONDS}, --quick 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for tconv and torch alike (default: tconv's current count)")
    parser.add_argument("--quick", action="store_true",
                        help="scaled-down shapes (batch 2, <= 8 channels): a smoke test, "
                             "not a measurement")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="machine float32 peak for the threads used, in GF/s "
                             "(default: an estimate, printed)")
    parser.add_argument("--peers", default="all",
                        help="comma-separated peers to time against: "
                             f"{','.join(PEERS)} (default: all, each skipped when not "
                             "installed; none: tconv only)")
    parser.add_argument("--suite", choices=("layers", "gemm", "all"), default="layers",
                        help="layers: the network layers; gemm: 1x1 layers that are plain "
                             "matrix products, against NumPy's BLAS (default: layers)")
    parser.add_argument("--no-torch", action="store_true", help="leave torch out of the peers")
    parser.add_argument("--algorithms", default="direct",
                        help="comma-separated algorithms of tconv's forward and grad_input to "
                             "time (direct, winograd, winograd4, auto): a GF/s and a max-error "
                             "column each")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for bench.json and bench.png")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")


def _progress(message: str) -> None:
    """One status line on stderr: rewritten in place on a terminal, appended otherwise."""
    if sys.stderr.isatty():
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)
    else:
        print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    suite = {"layers": ALL_CASES, "gemm": GEMM_CASES, "all": ALL_CASES + GEMM_CASES}[args.suite]
    try:
        cases = select_cases(args.cases, suite)
        peer_names = parse_peers(args.peers)
        algorithms = parse_algorithms(args.algorithms)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.quick:
        cases = [c.quick() for c in cases]
    if args.list:
        for c in cases:
            print(f"{c.name:16s} {c.describe():36s} {c.flops / 1e9:8.3f} GFLOP  {c.note}")
        return 0
    passes = [p.strip() for p in args.passes.split(",") if p.strip()]
    bad = [p for p in passes if p not in PASSES]
    if bad or not passes:
        print(f"error: --passes must be a subset of {','.join(PASSES)}, got {args.passes!r}",
              file=sys.stderr)
        return 2
    if args.repeat < 1:
        print(f"error: --repeat must be >= 1, got {args.repeat}", file=sys.stderr)
        return 2
    min_time = args.min_time if args.min_time is not None else (0.002 if args.quick else 0.05)
    idle = args.idle if args.idle is not None else (0.0 if args.quick else IDLE_SECONDS)
    if idle < 0:
        print(f"error: --idle must be >= 0, got {idle}", file=sys.stderr)
        return 2

    threads = args.threads if args.threads is not None else _core.get_num_threads()
    if threads < 1:
        print(f"error: --threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    _core.set_num_threads(threads)
    if args.no_torch:
        peer_names = [n for n in peer_names if n != "torch"]
    peer_names, missing = available_peers(peer_names)

    peak = estimate_peak(threads, args.peak_gflops)
    machine = machine_info(threads)
    print(f"tconv {machine['tconv']}, peers: {', '.join(peer_names) or 'none'}"
          + (f" (not installed: {', '.join(missing)})" if missing else "") + ", "
          f"{machine['cpu_model']} ({machine['logical_cpus']} logical CPUs, {machine['isa']}), "
          f"tconv kernels: {machine['tconv_isa'] or 'not reported'}, "
          f"{threads} threads, {machine['date_utc']}")
    if args.quick:
        print("--quick: scaled-down shapes, for smoke tests only (not representative speeds)")
    warning = busy_warning(machine["load_average_1min_before"])
    if warning:
        print(warning)
    rows = run_benchmarks(cases, passes, DTYPES[args.dtype], args.repeat, min_time, peak,
                          peers=peer_names, threads=threads, progress=_progress,
                          algorithms=algorithms, idle=idle)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(format_table(rows, peak))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        options = {"cases": [c.name for c in cases], "passes": passes, "dtype": args.dtype,
                   "repeat": args.repeat, "min_time": min_time, "idle": idle, "quick": args.quick,
                   "threads": threads, "peers": peer_names, "algorithms": list(algorithms)}
        write_json(args.out / "bench.json", rows, machine, peak, options)
        print(f"wrote {args.out / 'bench.json'}")
        if write_png(args.out / "bench.png", rows, machine, peak):
            print(f"wrote {args.out / 'bench.png'}")
        else:
            print("matplotlib is not installed, no bench.png: pip install '.[plot]' "
                  "(or pip install matplotlib)")
    failed = [r for r in rows if r.check == "FAIL"]
    if failed:
        print(f"\nFAIL: {len(failed)} result(s) differ from a peer's beyond tolerance "
              f"{MISMATCH_TOLERANCE}", file=sys.stderr)
        return 1
    return 0
