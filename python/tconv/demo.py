"""``python -m tconv demo``: the notes' worked example, computed and checked, then the
emulation by a direct convolution, then the figures (when matplotlib is installed)."""

from __future__ import annotations

import argparse
import os

import numpy as np

from . import figures, reference
from .arithmetic import equivalent_conv, flip_kernel
from .checkerboard_cmd import DEFAULT_OUT, write_figures
from .emulate import conv_transpose_via_conv, emulation_cost, place, zero_insert
from .functional import conv, conv_transpose

HELP = ("Print the notes' matrix C for a 4x4 input and 3x3 kernel, check conv == C x, "
        "conv_transpose == C^T y and the emulation by a direct convolution, and write the "
        "figures to a folder (--out).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed for the numeric check")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the figures, default ./{DEFAULT_OUT}")


def run(args: argparse.Namespace) -> int:
    codes = np.array([[11, 12, 13], [21, 22, 23], [31, 32, 33]], dtype=np.float64)
    names = {float(v): f"w{int(v)}" for v in codes.ravel()}
    mat = reference.conv_matrix(codes[None, None], (1, 4, 4))
    print("A 3x3 convolution of a 4x4 input is y = C x, with C (4 x 16):\n")
    print(reference.format_matrix(mat, names))

    rng = np.random.default_rng(args.seed)
    w = rng.standard_normal((1, 1, 3, 3))
    x = rng.standard_normal((1, 1, 4, 4))
    c = reference.conv_matrix(w, (1, 4, 4))
    y = conv(x, w)
    err_fwd = float(np.max(np.abs(y.ravel() - c @ x.ravel())))
    print(f"\nconv(x) (C++ gather kernel) vs C @ x:            max |diff| = {err_fwd:.2e}")
    g = rng.standard_normal((1, 1, 2, 2))
    up = conv_transpose(g, w)
    err_t = float(np.max(np.abs(up.ravel() - c.T @ g.ravel())))
    print(f"conv_transpose(y) (C++ scatter kernel) vs C^T y: max |diff| = {err_t:.2e}")
    print("\nThe transposed convolution maps the 2x2 map back to 4x4: it upsamples with learned")
    print("weights; it does not invert the convolution (C^T C is not the identity).")
    err_emul = _emulation(rng)
    ok = err_fwd < 1e-12 and err_t < 1e-12 and err_emul < 1e-12
    print("\nall checks passed" if ok else "\nCHECK FAILED")
    _figures(args.out, mat, names, args.seed)
    return 0 if ok else 1


def _emulation(rng: np.random.Generator) -> float:
    """The notes: a transposed convolution can always be emulated by a direct convolution."""
    print("\nEmulation with a direct convolution (tconv.emulate): insert (stride - 1) zeros between")
    print("input samples, pad by d*(k-1) - p, flip the kernel, convolve with stride 1.")
    x1 = np.array([[[1.0, 2.0, 3.0]]])
    print(f"  1-D: zero_insert([1, 2, 3], stride=2) = {zero_insert(x1, 2)[0, 0].tolist()}")
    eq = equivalent_conv(3, 3, stride=2, padding=1)
    print(f"  k=3, s=2, p=1 on 3 samples: stretched to {eq.stretched_size[0]}, padded by "
          f"{eq.padding[0]}, stride-1 conv -> {eq.output_size[0]} samples")
    x = rng.standard_normal((1, 2, 3, 3))
    w = rng.standard_normal((2, 3, 3, 3))
    direct = conv_transpose(x, w, stride=2, padding=1)
    emulated = conv_transpose_via_conv(x, w, stride=2, padding=1)
    err = float(np.max(np.abs(direct - emulated)))
    print(f"  2-D, k=3, s=2, p=1: conv_transpose vs emulation:  max |diff| = {err:.2e}")
    cost = emulation_cost((1, 64, 32, 32), (64, 32, 4, 4), stride=2, padding=1)
    print(f"  cost for a 64->32 channel, 32x32, k=4 s=2 p=1 layer: emulation "
          f"{cost.emulation_macs / 1e6:.0f} M multiply-adds, direct scatter "
          f"{cost.direct_macs / 1e6:.0f} M;")
    print(f"  {100 * cost.zero_fraction:.0f}% of the emulation's work multiplies inserted zeros.")
    return err


def _figures(out: str, mat: np.ndarray, names: dict[float, str], seed: int) -> None:
    print()
    if not figures.have_matplotlib():
        print(figures.PLOT_HINT)
        return
    paths = [figures.matrix_picture(os.path.join(out, "matrix_C.png"), mat,
                                    lambda v: names.get(v, f"{v:g}"))]
    # The emulation figure: a 3x3 input, k=3, s=2, p=0 (small enough to print every number).
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-2, 2, (1, 1, 3, 3)), 1)
    w = np.round(rng.uniform(-1, 1, (1, 1, 3, 3)), 1)
    eq = equivalent_conv((3, 3), (3, 3), stride=2)
    lo, hi = eq.padding[0]
    size = [n + lo + hi for n in eq.stretched_size]
    stretched = place(x, [lo, lo], [2, 2], size)
    paths.append(figures.emulation_diagram(
        os.path.join(out, "emulation.png"), x[0, 0], stretched[0, 0], w[0, 0], flip_kernel(w)[0, 0],
        conv_transpose_via_conv(x, w, stride=2)[0, 0], 2, (lo, hi)))
    print("Checkerboard figures (python -m tconv checkerboard):")
    paths += write_figures(out, 3, 2, seed)
    print(f"\nwrote {len(paths)} figures to {os.path.abspath(out)}:")
    for path in paths:
        print(f"  {path}")
