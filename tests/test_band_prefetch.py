"""The gathers' band filled once per K block (csrc/subconv: kBandPerBlock) and the prefetch of
the next block's channels while the current block's tiles run (run.cpp: next_block_lines).

A task's band for all channels larger than kBandL2Bytes (and not shared by phases) is filled
per K block with only that block's channels; while its tiles read it in place, the source
lines of the channels after the block are prefetched a share at a time (tconv/prefetch.hpp).
Prefetches move no values, so the results must be the oracle's for blocks of one channel
(taps >= kc: k16 s8), of several channels, channels split between blocks, the last block (no
channels after it), groups and several images; and the same bits on 1, 2 and 3 threads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest
import tconv
from _isas import assert_bitwise_across_threads
from conftest import assert_matches_oracle
from tconv import reference

@dataclass(frozen=True)
class Gather:
    name: str
    fine: tuple[int, ...]      # the gather's input (conv_transpose's output) spatial size
    c_fine: int                # its channels (conv's input channels)
    c_coarse: int              # the gather's output channels
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    groups: int = 1
    batch: int = 1

    def kw(self) -> dict[str, object]:
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups}

    def w_shape(self) -> tuple[int, ...]:
        return (self.c_coarse, self.c_fine // self.groups) + self.kernel

    def g_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c_fine) + self.fine


CASES = [
    # fcn-8s's k16 s8 in small: K blocks of one channel's 256 taps
    Gather("k16s8-one-channel-blocks", (192, 256), 12, 16, (16, 16), (8, 8), (4, 4)),
    # two images (tasks of each), 10 channels
    Gather("k16s8-two-images", (160, 192), 10, 12, (16, 16), (8, 8), (4, 4), batch=2),
    # k4 s2: 16 taps, blocks of 16 channels (the band holds kc / taps + 2 of them)
    Gather("k4s2-several-channels", (48, 64), 128, 16, (4, 4), (2, 2), (1, 1), batch=2),
    # 1-D, 300 fine channels, 16 taps: blocks of 16 channels, the last one partial
    Gather("k16s8-1d", (2400,), 300, 8, (16,), (8,), (4,)),
    # k3 s2: 9 taps, blocks that end inside a channel
    Gather("k3s2-split-channels", (96, 96), 128, 12, (3, 3), (2, 2), (1, 1)),
    # two groups
    Gather("k16s8-groups", (256, 256), 16, 16, (16, 16), (8, 8), (4, 4), groups=2),
]


def _data(case: Gather, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(case.g_shape()).astype(dtype),
            rng.standard_normal(case.w_shape()).astype(dtype))


@functools.lru_cache(maxsize=None)
def _oracle(case: Gather, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """The float64 oracle of _data(case, dtype) and its sum of |terms| (once per case)."""
    g, w = _data(case, dtype)
    return (reference.conv_structural(g, w, None, **case.kw()),
            reference.conv_structural(np.abs(g), np.abs(w), None, **case.kw()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_band_per_block_matches_the_oracle(on_isa: str, case: Gather, dtype: type) -> None:
    g, w = _data(case, dtype)
    plan = tconv.plan("conv", g.shape, w.shape, dtype=np.dtype(dtype).name, **case.kw())
    assert "band_per_block" in plan.input, plan
    gi = tconv.conv(g, w, **case.kw())
    taps = int(np.prod(case.kernel))
    want, scale = _oracle(case, dtype)
    assert_matches_oracle(gi, want, scale, case.c_fine // case.groups * taps,
                          f"{case.name} {on_isa}")


@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: c.name)
def test_band_per_block_threads(case: Gather) -> None:
    g, w = _data(case, np.float32)
    for isa in tconv.supported_isas():
        assert_bitwise_across_threads(isa, lambda: [tconv.conv(g, w, **case.kw())])
