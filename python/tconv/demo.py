"""``python -m tconv demo``: the notes' worked example, computed and checked."""

from __future__ import annotations

import argparse

import numpy as np

from . import reference
from .functional import conv, conv_transpose

HELP = "Print the notes' matrix C for a 4x4 input and 3x3 kernel and check conv == C x, conv_transpose == C^T y."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed for the numeric check")


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
    ok = err_fwd < 1e-12 and err_t < 1e-12
    print("\nall checks passed" if ok else "\nCHECK FAILED")
    return 0 if ok else 1
