"""``python -m tconv checkerboard``: see where checkerboard artifacts come from, and their fixes."""

from __future__ import annotations

import argparse
import os

from . import figures
from .checkerboard import overlap

HELP = ("Write three PNGs about checkerboard artifacts: the notes' 1-D diagram (k=3 vs k=4 at "
        "s=2), the 2-D overlap heat map for --kernel/--stride, and a smooth image through a "
        "random transposed conv vs the projected kernel vs ICNR vs resize-conv.")

DEFAULT_OUT = "tconv-figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernel", type=int, default=3, metavar="K",
                        help="kernel size (square), default 3")
    parser.add_argument("--stride", type=int, default=2, metavar="S",
                        help="stride (upsampling factor), default 2")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the PNGs, default ./{DEFAULT_OUT}")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random kernels")


def write_figures(out: str, kernel: int, stride: int, seed: int) -> list[str]:
    """Draw the three checkerboard figures into ``out``; returns their paths."""
    paths = [
        figures.phase_diagram(os.path.join(out, "checkerboard_1d.png")),
        figures.overlap_heatmap(os.path.join(out, f"overlap_k{kernel}_s{stride}.png"), kernel,
                                stride),
    ]
    artifact = os.path.join(out, f"artifacts_k{kernel}_s{stride}.png")
    scores = figures.artifact_comparison(artifact, kernel, stride, seed)
    paths.append(artifact)
    for name, value in scores.items():
        print(f"  score of {name + ':':18s} {value:.4f}")
    return paths


def run(args: argparse.Namespace) -> int:
    if args.kernel < 1 or args.stride < 1:
        print(f"error: --kernel and --stride must be >= 1, got {args.kernel} and {args.stride}")
        return 2
    counts = overlap((args.kernel, args.kernel), args.stride)
    print(f"kernel {args.kernel}x{args.kernel}, stride {args.stride}: taps per output phase "
          f"(tconv.checkerboard.overlap):")
    for row in counts.tolist():
        print("   " + " ".join(f"{v:3d}" for v in row))
    uneven = len(set(counts.ravel().tolist())) > 1
    print("unequal counts: a random kernel of this shape makes checkerboard artifacts" if uneven
          else "equal counts: no structural checkerboard (a kernel can still have unequal "
               "phase sums; see tconv.checkerboard.is_artifact_free)")
    if not figures.have_matplotlib():
        print()
        print(figures.PLOT_HINT)
        return 1
    paths = write_figures(args.out, args.kernel, args.stride, args.seed)
    print(f"\nwrote {len(paths)} figures to {os.path.abspath(args.out)}:")
    for path in paths:
        print(f"  {path}")
    return 0
