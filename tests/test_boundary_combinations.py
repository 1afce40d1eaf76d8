"""Boundary combinations: several internal limits crossed in one call, at several thread counts.

tests/test_boundaries.py straddles each constant of csrc/ on its own.  Some faults live only
where limits meet: a bug in the band cache showed only when the output channels were split
into weight slabs, the band was filled per K block and the two threads split the rows in a
particular way (tests/test_race.py holds that one case).  This module draws geometries from
the product of those axes instead of one at a time:

* output channels around the register tiles (mr = 4, 6, 12 plus one) and far past them, with
  images small enough that the weights exceed the output (several packed-weight slabs);
* reduction channels that keep the gather's source band below 256 KiB, above it (filled per
  K block) and above 2 MiB (no band);
* row widths below, at and above the 192-point row chunk;
* thread counts 1, 2 and 3 (the task split changes with each);

on every operation and ISA: two threads against the float64 structural oracle, and one and
three threads bitwise equal to two.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import tconv
from test_boundaries import Geo, _check_all

OUT_CHANNELS = (5, 7, 13, 96)       # mr + 1 of generic/avx2/avx512, and many slabs
IN_CHANNELS = (3, 64, 300, 1100)    # band < 256 KiB, ~ 256 KiB, per K block, > 2 MiB
WIDTHS = (5, 191, 192, 193, 400)    # around kMaxRowChunk and the 192-point pixel block
LAYERS = (  # (kernel, stride, padding, output_padding): k4 s2 (4 phases), k3 s1, k3 s2 op1
    ((4, 4), (2, 2), ((1, 1), (1, 1)), (0, 0)),
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (0, 0)),
    ((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
)
THREADS = (1, 2, 3)
DEFAULT_COST = 1e5   # oracle products per geometry in the default run
SLOW_COST = 1e7      # and in the slow run


def _geometries() -> list[Any]:
    rng = np.random.default_rng(2026_12_03)
    params = []
    for c_out, c_in, width, layer in itertools.product(OUT_CHANNELS, IN_CHANNELS, WIDTHS,
                                                       LAYERS):
        kernel, stride, padding, output_padding = layer
        rows = int(rng.integers(1, 4))
        batch = int(rng.integers(1, 3))
        geo = Geo((rows, width), c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                  padding=padding, dilation=(1, 1), output_padding=output_padding, batch=batch,
                  ops=("forward", "grad_input", "grad_weight", "conv"))
        if not geo.valid() or geo.cost() > SLOW_COST:
            continue
        marks = [] if geo.cost() <= DEFAULT_COST else [pytest.mark.slow]
        params.append(pytest.param(geo, marks=marks,
                                   id=f"o{c_out}-i{c_in}-w{width}-r{rows}-n{batch}-"
                                      f"k{kernel[0]}s{stride[0]}"))
    return params


def _results(geo: Geo) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((geo.batch, geo.c_in, *geo.coarse)).astype(np.float32)
    w = rng.standard_normal((geo.c_in, geo.c_out, *geo.kernel)).astype(np.float32)
    g = rng.standard_normal((geo.batch, geo.c_out, *geo.fine)).astype(np.float32)
    kw = dict(geo.kw(), output_padding=geo.output_padding)
    y = tconv.conv_transpose(x, w, **kw)
    gi, gw, _ = tconv.conv_transpose_backward(g, x, w, output_mask=(True, True, False), **kw)
    return [y, gi, gw]


@pytest.mark.parametrize("geo", _geometries())
def test_combination(geo):
    with tconv.threads(2):
        _check_all(geo, np.dtype(np.float32))  # every op and ISA against the oracle
    before = tconv.isa()
    try:
        for isa in tconv.supported_isas():
            tconv.set_isa(isa)
            runs = {}
            for threads in THREADS:
                with tconv.threads(threads):
                    runs[threads] = [r.tobytes() for r in _results(geo)]
            for threads in THREADS:  # equal to the 2-thread run, which met the oracle
                assert runs[threads] == runs[2], f"{threads} threads on {isa} differ: {geo}"
    finally:
        tconv.set_isa(before)


def test_axes_reach_their_limits():
    """The drawn geometries really cross each limit in both runs (default and slow)."""
    drawn = [p.values[0] for p in _geometries()]
    default = [g for g, p in zip(drawn, _geometries()) if not p.marks]
    for pool in (drawn, default):
        assert {g.c_out for g in pool} >= {5, 7, 13}
        assert {g.coarse[1] for g in pool} >= {191, 192, 193}
    assert {g.c_in for g in drawn} >= set(IN_CHANNELS)
    # at least one draw has more weight values than output values: slabs
    assert any(g.c_in * g.c_out * 9 > g.batch * g.c_out * np.prod(g.fine) for g in drawn)
