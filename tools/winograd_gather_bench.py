"""grad_input of benchmark layers by direct, winograd and winograd4, float32, timed interleaved
in one process (the order rotates each repetition; medians):

    PYTHONPATH=python python tools/winograd_gather_bench.py dcgan-512-256,stride1-k3p1 15 2

arguments: case names (tconv.bench_cases), repetitions, threads.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import tconv
from tconv.bench_cases import CASES

ALGOS = ["direct", "winograd", "winograd4"]


def main() -> None:
    names, reps, threads = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
    tconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for c in (c for c in CASES if c.name in names):
        x = rng.standard_normal((c.batch, c.c_in, *c.spatial)).astype(np.float32)
        w = rng.standard_normal((c.c_in, c.c_out // c.groups, *c.kernel)).astype(np.float32)
        geo = {"stride": c.stride, "padding": c.padding, "output_padding": c.output_padding}
        g = rng.standard_normal(tconv.output_shape(x.shape, w.shape, **geo)).astype(np.float32)

        def run(algo: str, g: np.ndarray = g, x: np.ndarray = x, w: np.ndarray = w,
                geo: dict = geo) -> None:
            tconv.conv_transpose_backward(g, x, w, output_mask=(True, False, False),
                                          algorithm=algo, **geo)

        for algo in ALGOS:
            run(algo)
        times: dict[str, list[float]] = {a: [] for a in ALGOS}
        for r in range(reps):
            for algo in ALGOS[r % 3:] + ALGOS[:r % 3]:
                t = time.perf_counter()
                run(algo)
                times[algo].append(time.perf_counter() - t)
        med = {a: float(np.median(times[a])) for a in ALGOS}
        plans = {a: tconv.plan("grad_input", x.shape, w.shape, algorithm=a, **geo) for a in ALGOS}
        print(f"{c.name} grad_input threads={threads} reps={reps}: direct "
              f"{med['direct'] * 1e3:.2f} ms ({plans['direct'].algorithm})"
              + "".join(f"; {a} {med[a] * 1e3:.2f} ms = {med['direct'] / med[a]:.2f}x direct "
                        f"speed ({plans[a].input})" for a in ALGOS[1:]), flush=True)


if __name__ == "__main__":
    main()
