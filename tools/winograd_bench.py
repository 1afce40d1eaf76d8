"""Forward GF/s and error of algorithm="direct" / "winograd" / "winograd4", interleaved.

    PYTHONPATH=python python tools/winograd_bench.py [--cases a,b] [--dtype float32] [--repeat 7]

Per benchmark layer (tconv.bench_cases): which algorithm the plan runs, GF/s counted as the
direct method's FLOPs (2 N C_in C_out/g prod(in) prod(k), the bench's count, so a Winograd
speed-up shows as higher GF/s), the median over --repeat rounds that alternate the
algorithms within one process, the speed ratio to direct, the max |error| relative to
max |y| against the float64 direct result, and the multiplications per output of the
transform-domain GEMMs against the direct path's (the reduction Winograd should give).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import tconv
from tconv import _core
from tconv._args import transposed_geometry
from tconv.bench_cases import ALL_CASES

ALGOS = ("direct", "winograd", "winograd4")
DEFAULT = "stride1-k3p1,dcgan-512-256,dcgan-256-128,dcgan-128-64,k3s2p1op1,hifigan-k4s2"


def mult_ratio(case, m: int) -> float:
    """(transform-domain products) / (direct products) for tile m, summed over the phases."""
    direct = wino = 0
    # per axis: phases rho < s, each with r taps and extent J (output points of the phase)
    out = case.output_shape[2:]
    per_axis = []
    for k, s, p, n in zip(case.kernel, case.stride, case.padding, out):
        phases = []
        for rho in range(min(s, n)):
            r = sum(1 for t in range(k) if (rho + p - t) % s == 0)
            extent = (n - rho + s - 1) // s
            phases.append((r, extent))
        per_axis.append(phases)
    for ry, jy in per_axis[0]:
        for rx, jx in per_axis[1]:
            direct += ry * rx * jy * jx
            wino += (m + ry - 1) * (m + rx - 1) * math.ceil(jy / m) * math.ceil(jx / m)
    return wino / direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=DEFAULT)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2)
    args = parser.parse_args()
    cases = {c.name: c for c in ALL_CASES}
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"{args.dtype}, {tconv.get_num_threads()} threads, ISA {tconv.isa()}, "
          f"median of {args.repeat} interleaved rounds")
    for name in args.cases.split(","):
        case = cases[name]
        x = rng.standard_normal(case.input_shape).astype(dtype)
        w = rng.standard_normal(case.weight_shape).astype(dtype)
        geom = transposed_geometry(x.shape, w.shape, case.stride, case.padding,
                                   case.output_padding, case.groups, case.dilation)
        y = np.empty(geom.fine_shape, dtype)
        exact = np.empty(geom.fine_shape, np.float64)
        _core.scatter(x.astype(np.float64), w.astype(np.float64), None, exact,
                      *geom.kernel_args(), "direct")
        scale = float(np.abs(exact).max())
        plan, err = {}, {}
        for a in ALGOS:
            plan[a] = tconv.plan("conv_transpose", x.shape, w.shape, case.stride, case.padding,
                                 case.output_padding, case.groups, case.dilation, dtype,
                                 algorithm=a).algorithm
            _core.scatter(x, w, None, y, *geom.kernel_args(), a)
            err[a] = float(np.abs(y - exact).max()) / scale
        times: dict[str, list[float]] = {a: [] for a in ALGOS}
        for _ in range(args.repeat):
            for a in ALGOS:
                start, calls = time.perf_counter(), 0
                while True:
                    _core.scatter(x, w, None, y, *geom.kernel_args(), a)
                    calls += 1
                    if time.perf_counter() - start > args.min_time:
                        break
                times[a].append((time.perf_counter() - start) / calls)
        med = {a: float(np.median(times[a])) for a in ALGOS}
        cells = []
        for a in ALGOS:
            cell = f"{a}[{plan[a]}] {case.flops / med[a] / 1e9:6.1f} GF/s err {err[a]:.1e}"
            if a != "direct":
                cell += f" x{med['direct'] / med[a]:.2f}"
                if plan[a].startswith("winograd"):
                    cell += f" mults {mult_ratio(case, 2 if a == 'winograd' else 4):.2f}"
            cells.append(cell)
        print(f"{name:16s} {case.describe():30s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
