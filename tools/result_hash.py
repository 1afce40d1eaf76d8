"""Hash tconv's results on fixed inputs, to prove a change bitwise neutral.

Run it before and after a change (same machine, same build type) and compare the digests:

    PYTHONPATH=python python tools/result_hash.py            # every ISA the CPU has
    PYTHONPATH=python python tools/result_hash.py --quick    # scaled-down layers, seconds

Two groups, each hashed per ISA (``tconv.set_isa``):

- ``bench``: every benchmark layer (``tconv.bench_cases.CASES``), forward, grad_input and
  grad_weight, float32 and float64, on the benchmark's own seeded inputs (``bench.Workload``);
- ``random``: ``--random N`` seeded random geometries (1-3 spatial dims, strides 1-8, dilation,
  groups, padding, output_padding, bias), forward, all three gradients and ``conv``.

Identical digests mean identical bits in every output. The results do not depend on the thread
count, so any ``OMP_NUM_THREADS`` gives the same digests; they do depend on the ISA, which is
why each ISA is hashed separately.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

import tconv
from tconv.bench import Workload
from tconv.bench_cases import CASES, PASSES


def bench_results(quick: bool) -> Iterator[tuple[str, np.ndarray]]:
    for case in CASES:
        case = case.quick() if quick else case
        for dtype in (np.float32, np.float64):
            work = Workload(case, np.dtype(dtype), seed=0)
            for pass_ in PASSES:
                yield f"{case.name}/{pass_}/{np.dtype(dtype).name}", work.tconv(pass_)()


def random_forward(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     dict[str, Any]]:
    """A random forward problem (1-3-D, strides 1-8, kernels 1-5, dilation, padding, groups,
    either dtype): x, w, bias and the keyword geometry; the draws random_results digests."""
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in = groups * int(rng.integers(1, 9 if nd == 3 else 17))
    c_out = groups * int(rng.integers(1, 9 if nd == 3 else 17))
    k = [int(v) for v in rng.integers(1, 6, nd)]
    s = [int(rng.choice([1, 2, 3, 4, 8])) for _ in range(nd)]
    d = [int(rng.choice([1, 1, 2])) for _ in range(nd)]
    p = [int(rng.integers(0, dd * (kk - 1) // 2 + 1)) for kk, dd in zip(k, d)]
    op = [int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d)]
    size = {1: 40, 2: 12, 3: 6}[nd]
    spatial = [int(v) for v in rng.integers(1, size + 1, nd)]
    dtype = np.float32 if rng.random() < 0.7 else np.float64
    x = rng.standard_normal((int(rng.integers(1, 4)), c_in, *spatial)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups, *k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b, dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)


def random_results(count: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    for index in range(count):
        x, w, b, geometry = random_forward(rng)
        y = tconv.conv_transpose(x, w, b, **geometry)
        g = rng.standard_normal(y.shape).astype(x.dtype)
        grads = tconv.conv_transpose_backward(g, x, w, **geometry)
        name = f"random{index}"
        yield f"{name}/fwd", y
        for label, grad in zip(("grad_input", "grad_weight", "grad_bias"), grads):
            assert grad is not None
            yield f"{name}/{label}", grad
        conv = {key: geometry[key] for key in ("stride", "padding", "dilation", "groups")}
        yield f"{name}/conv", tconv.conv(y, w, **conv)


def digest(results: Iterator[tuple[str, np.ndarray]], verbose: bool) -> str:
    total = hashlib.sha256()
    for name, array in results:
        array = np.ascontiguousarray(array)
        one = hashlib.sha256(array.tobytes()).hexdigest()
        total.update(f"{name} {array.dtype} {array.shape} {one}\n".encode())
        if verbose:
            print(f"    {name:40s} {one[:16]}")
    return total.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", help="comma-separated ISAs (default: every supported one)")
    parser.add_argument("--quick", action="store_true", help="scaled-down benchmark layers")
    parser.add_argument("--random", type=int, default=200, metavar="N",
                        help="random geometries (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random geometries")
    parser.add_argument("--verbose", action="store_true", help="one digest per result")
    args = parser.parse_args(argv)
    isas = args.isa.split(",") if args.isa else list(tconv.supported_isas())
    for isa in isas:
        tconv.set_isa(isa)
        print(f"{isa:8s} bench  {digest(bench_results(args.quick), args.verbose)}"
              f"{'  (--quick)' if args.quick else ''}")
        print(f"{isa:8s} random {digest(random_results(args.random, args.seed), args.verbose)}"
              f"  ({args.random} geometries, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
