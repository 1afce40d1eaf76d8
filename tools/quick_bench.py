"""Private quick timing of tconv vs torch on issue 3's layers (not the benchmark suite).

    PYTHONPATH=python python tools/quick_bench.py [--dtype float64] [--only NAME] [--ops fwd,gi,gw]

Both libraries use 2 threads, run in the same process with interleaved repetitions; the
median time is reported.  FLOPs = 2 * N * C_in * (C_out / groups) * prod(input) * prod(kernel).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import tconv

# name: (batch, c_in, c_out, spatial, kernel, stride, padding, output_padding)
CASES = {
    "dcgan-512-256": (64, 512, 256, (4, 4), 4, 2, 1, 0),
    "dcgan-256-128": (64, 256, 128, (8, 8), 4, 2, 1, 0),
    "dcgan-128-64": (64, 128, 64, (16, 16), 4, 2, 1, 0),
    "dcgan-64-3": (64, 64, 3, (32, 32), 4, 2, 1, 0),
    "unet-k2s2": (8, 256, 128, (64, 64), 2, 2, 0, 0),
    "k3s2p1op1": (8, 128, 64, (64, 64), 3, 2, 1, 1),
    "fcn-k16s8": (4, 21, 21, (64, 64), 16, 8, 4, 0),
    "stride1-k3": (8, 64, 64, (64, 64), 3, 1, 1, 0),
    "hifigan-k16s8": (8, 512, 256, (256,), 16, 8, 4, 0),
    "hifigan-k4s2": (8, 128, 64, (4096,), 4, 2, 1, 0),
    "vnet-k2s2": (2, 128, 64, (16, 16, 16), 2, 2, 0, 0),
    "unet3d-k3s2": (2, 64, 32, (16, 16, 16), 3, 2, 1, 1),
}


def run(name, dtype, ops, reps):
    n, ci, co, sp, k, s, p, op = CASES[name]
    nd = len(sp)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, ci, *sp)).astype(dtype)
    w = rng.standard_normal((ci, co, *(k,) * nd)).astype(dtype) * 0.1
    b = rng.standard_normal(co).astype(dtype)
    kw = dict(stride=s, padding=p, output_padding=op)
    y = tconv.conv_transpose(x, w, b, **kw)
    g = rng.standard_normal(y.shape).astype(dtype)
    xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
    tf = getattr(torch.nn.functional, f"conv_transpose{nd}d")
    flops = 2.0 * n * ci * co * np.prod(sp) * k**nd

    def t_bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(
            gt, xt, wt, [co], [s] * nd, [p] * nd, [1] * nd, True, [op] * nd, 1, mask)

    fns = {
        "fwd": (lambda: tconv.conv_transpose(x, w, b, **kw), lambda: tf(xt, wt, bt, s, p, op)),
        "gi": (lambda: tconv.conv_transpose_backward(g, x, w, **kw, output_mask=(True, False, False)),
               t_bwd([True, False, False])),
        "gw": (lambda: tconv.conv_transpose_backward(g, x, w, **kw, output_mask=(False, True, False)),
               t_bwd([False, True, False])),
    }
    out = {}
    for opname in ops:
        a, bfn = fns[opname]
        a(); bfn()
        ta, tb = [], []
        for _ in range(reps):
            t0 = time.perf_counter(); a(); ta.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); bfn(); tb.append(time.perf_counter() - t0)
        ga = flops / statistics.median(ta) / 1e9
        gb = flops / statistics.median(tb) / 1e9
        out[opname] = (ga, gb)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--only", default="", help="comma-separated substrings of case names")
    ap.add_argument("--ops", default="fwd,gi,gw")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    tconv.set_num_threads(2)
    dtype = np.dtype(args.dtype)
    ops = args.ops.split(",")
    ratios = {o: [] for o in ops}
    print(f"isa={tconv.isa()} dtype={dtype}  GF/s tconv / torch (ratio)")
    for name in CASES:
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        res = run(name, dtype, ops, args.reps)
        cells = []
        for o in ops:
            ga, gb = res[o]
            ratios[o].append(ga / gb)
            cells.append(f"{o}: {ga:6.1f} / {gb:6.1f} ({ga / gb:4.2f}x)")
        print(f"{name:15s} " + "   ".join(cells), flush=True)
    for o in ops:
        r = ratios[o]
        if r:
            print(f"geomean {o}: {np.exp(np.mean(np.log(r))):.2f}x  min {min(r):.2f}x")


if __name__ == "__main__":
    main()
