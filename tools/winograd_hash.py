"""Hash tconv's Winograd results (forward, conv, grad_input) to prove a change bitwise neutral.

    PYTHONPATH=python python tools/winograd_hash.py --random 300

tools/result_hash.py covers the direct path; this covers ``algorithm="winograd"`` and
``"winograd4"``: ``--random N`` seeded geometries the Winograd path takes (the random problems
of tools/winograd_error.py and tools/winograd_gather_error.py, float32 and float64, plus a few
larger ones that cross the tile block, K block and slab boundaries, and the DCGAN k4 s2
layers), hashed per ISA.  Identical digests mean identical bits in every output; the results
do not depend on the thread count, they do on the ISA.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import winograd_gather_error as gerr  # noqa: E402  (its tools/ neighbour, not a package)

werr = gerr.werr


# (batch, c_in, c_out, size, kernel, stride, padding): blocks, slabs and the DCGAN layers
LARGE = [
    (2, 300, 5, 5, 4, 2, 1), (2, 2, 40, 33, 3, 1, 1), (2, 700, 30, 9, 3, 1, 1),
    (1, 1, 13, 70, 3, 1, 1), (2, 512, 256, 4, 4, 2, 1), (2, 256, 128, 8, 4, 2, 1),
    (2, 128, 64, 16, 4, 2, 1), (1, 64, 64, 40, 3, 1, 1), (2, 30, 20, 13, 5, 2, 2),
]


def results(count: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    import tconv

    rng = np.random.default_rng(seed)
    for i in range(count):
        dtype = np.float32 if i % 2 == 0 else np.float64
        x, w, b, geo = werr.random_problem(rng, dtype)
        y, wg, bg, ggeo = gerr.random_problem(rng, dtype)
        for algo in werr.TILE:
            yield f"fwd/{i}/{algo}", tconv.conv_transpose(x, w, b, algorithm=algo, **geo)
            yield f"conv/{i}/{algo}", tconv.conv(y, wg, bg, algorithm=algo, **ggeo)
    for i, (n, c_in, c_out, size, k, s, p) in enumerate(LARGE):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((n, c_in, size, size)).astype(dtype)
            w = rng.standard_normal((c_in, c_out, k, k)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype)
            out = tconv.output_shape(x.shape, w.shape, stride=s, padding=p)
            g = rng.standard_normal(out).astype(dtype)
            for algo in werr.TILE:
                yield f"large/{i}/{algo}", tconv.conv_transpose(x, w, b, stride=s, padding=p,
                                                                algorithm=algo)
                yield f"large-gi/{i}/{algo}", tconv.conv_transpose_backward(
                    g, x, w, stride=s, padding=p, output_mask=(True, False, False),
                    algorithm=algo)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--isa", default="", help="comma-separated ISAs (default: every one)")
    parser.add_argument("--random", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import tconv

    isas = args.isa.split(",") if args.isa else tconv.supported_isas()
    saved = tconv.isa()
    try:
        for isa in isas:
            tconv.set_isa(isa)
            digest = hashlib.sha256()
            for name, arr in results(args.random, args.seed):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(arr).tobytes())
            print(f"{isa:16s} {digest.hexdigest()[:16]}", flush=True)
    finally:
        tconv.set_isa(saved)


if __name__ == "__main__":
    main()
