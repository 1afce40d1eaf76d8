"""Random problem configurations shared by the equivalence tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st


@dataclass(frozen=True)
class Case:
    batch: int
    groups: int
    c_in_per_group: int
    c_out_per_group: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    bias: bool

    @property
    def c_in(self) -> int:
        return self.c_in_per_group * self.groups

    @property
    def c_out(self) -> int:
        return self.c_out_per_group * self.groups

    def arrays(self, dtype, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, self.c_in, *self.spatial)).astype(dtype)
        w = rng.standard_normal((self.c_in, self.c_out_per_group, *self.kernel)).astype(dtype)
        b = rng.standard_normal(self.c_out).astype(dtype) if self.bias else None
        return x, w, b

    def params(self):
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)

    def output_spatial(self):
        return tuple(
            (i - 1) * s - 2 * p + d * (k - 1) + op + 1
            for i, k, s, p, op, d in zip(self.spatial, self.kernel, self.stride, self.padding,
                                         self.output_padding, self.dilation)
        )


@st.composite
def cases(draw, ndim=None, max_size=6):
    nd = draw(st.integers(1, 3)) if ndim is None else ndim
    size_cap = {1: max_size + 4, 2: max_size, 3: max(3, max_size - 2)}[nd]
    spatial, kernel, stride, padding, op, dilation = [], [], [], [], [], []
    for _ in range(nd):
        i = draw(st.integers(1, size_cap))
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 4))
        d = draw(st.integers(1, 3))
        o = draw(st.integers(0, max(s, d) - 1))
        full = (i - 1) * s + d * (k - 1) + o + 1
        p = draw(st.integers(0, (full - 1) // 2))
        spatial.append(i); kernel.append(k); stride.append(s); dilation.append(d)
        op.append(o); padding.append(p)
    groups = draw(st.integers(1, 3))
    return Case(
        batch=draw(st.integers(0, 3)),
        groups=groups,
        c_in_per_group=draw(st.integers(1, 3)),
        c_out_per_group=draw(st.integers(1, 3)),
        spatial=tuple(spatial), kernel=tuple(kernel), stride=tuple(stride),
        padding=tuple(padding), output_padding=tuple(op), dilation=tuple(dilation),
        bias=draw(st.booleans()),
    )


# Hand-picked cases: the layers users run, sizes that miss tiles, and edge cases.
FIXED = [
    Case(2, 1, 3, 4, (5, 5), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),      # DCGAN-like k4s2p1
    Case(2, 1, 4, 3, (6, 7), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), True),      # k3s2p1op1
    Case(1, 1, 3, 2, (4, 4), (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), False),     # U-Net k2s2
    Case(1, 1, 2, 2, (3, 4), (16, 16), (8, 8), (4, 4), (0, 0), (1, 1), True),    # FCN k16s8p4
    Case(2, 1, 3, 3, (11,), (16,), (8,), (4,), (0,), (1,), True),                # HiFi-GAN 1-D
    Case(1, 1, 2, 3, (3, 4, 3), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), True),
    Case(2, 2, 2, 3, (5, 4), (3, 2), (3, 1), (2, 0), (2, 0), (2, 1), True),      # groups + dilation
    Case(2, 4, 1, 1, (7,), (3,), (2,), (1,), (1,), (1,), False),                 # depthwise
    Case(1, 1, 2, 2, (1, 1), (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), True),      # 1x1
    Case(0, 1, 2, 3, (4,), (3,), (2,), (0,), (0,), (1,), True),                  # empty batch
    Case(1, 1, 2, 2, (3,), (2,), (5,), (0,), (4,), (1,), True),                  # stride > kernel
    Case(1, 1, 2, 2, (3, 2), (2, 3), (1, 2), (0, 1), (2, 1), (3, 2), False),     # op >= stride (d > s)
    Case(3, 1, 5, 3, (2 * 8 + 3,), (5,), (3,), (2,), (2,), (2,), True),          # misses a tile
]

# Cases of the forward's GEMM + col2im path (csrc/columns.cpp: <= 4 output channels and >= 8
# input channels per group, batch x groups >= 8, output channels x taps >= 12): pixel counts
# that end in a partial tile, reductions of several K blocks (300 channels), odd output
# widths, x strides 1, 2, 3 and 5 (phases without taps), groups, dilation, output_padding >=
# stride, 1-D, 2-D and 3-D.
COLUMNS = [
    Case(8, 1, 16, 3, (5, 7), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),     # RGB k4s2p1
    Case(8, 1, 12, 1, (37,), (16,), (8,), (4,), (0,), (1,), True),               # k16s8, 1 channel
    Case(8, 1, 8, 2, (3, 4, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), True),
    Case(2, 4, 10, 4, (4, 6), (3, 3), (2, 3), (2, 1), (1, 2), (2, 1), True),     # groups, dilation
    Case(8, 1, 300, 1, (9,), (12,), (4,), (0,), (0,), (1,), False),              # K blocks
    Case(8, 1, 8, 3, (6, 6), (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), True),      # stride 1
    Case(9, 1, 9, 2, (5, 9), (3, 3), (2, 2), (1, 1), (0, 0), (1, 1), False),     # odd width
    Case(8, 1, 8, 2, (3,), (7,), (5,), (0,), (4,), (1,), True),                  # stride > kernel
    Case(8, 1, 8, 2, (3, 2), (2, 3), (1, 2), (0, 1), (2, 1), (3, 2), False),     # op >= stride
    # batch 1: the output is cut into blocks along its outermost axis (z, y or x for 1-D)
    Case(1, 1, 16, 3, (9, 11), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), True),
    Case(1, 1, 12, 1, (37,), (16,), (8,), (4,), (0,), (1,), True),
    Case(1, 1, 8, 2, (3, 4, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), True),
    Case(1, 2, 9, 2, (2, 7), (5, 3), (3, 2), (3, 1), (2, 1), (2, 1), True),     # blocks w/o input
]

# Rows of whole micro-kernel tiles (16 points: 1 fp32 AVX2 tile, 2 of fp64 and of the portable
# kernels) without a bias: the gather's and the stride-1 forward's micro-kernels then write
# straight into the output when no Inf/NaN test is pending (a grad_input larger than its
# operands), and through the tile buffer otherwise.
WHOLE_TILES = [
    Case(2, 1, 12, 2, (8, 16), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), False),    # gi > g + w
    Case(1, 1, 3, 3, (4, 16), (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), False),     # stride 1
    Case(2, 1, 20, 1, (32,), (3,), (2,), (1,), (1,), (1,), False),                # 1-D, 2 tiles
    Case(1, 1, 300, 2, (2, 16), (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), False),
]

# Row counts (output channels of the forward, input channels of the gather) whose last
# register tile would have 1-3 rows: the last 7-9 rows (AVX2 float32, 6-row tiles) are cut
# into two near-halves instead, in the packed weights and in every sweep over them alike;
# 254 rows in one task cross the L2 row block (252 rows) inside such a cut.
TAIL_ROWS = [
    Case(2, 1, 9, 8, (20,), (4,), (2,), (1,), (0,), (1,), True),               # 5 + 4, 4 + 4
    Case(2, 1, 14, 13, (6, 7), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), False),  # 6+4+4, 6+4+3
    Case(2, 2, 7, 15, (3, 4, 3), (2, 2, 2), (2, 2, 2), (0, 0, 0), (0, 0, 0), (1, 1, 1), True),
    Case(8, 1, 3, 254, (40,), (4,), (2,), (1,), (0,), (1,), False),
    Case(8, 1, 254, 3, (40,), (4,), (2,), (1,), (0,), (1,), False),
]

# Forwards whose x phases (x stride 2, 4 or 8, every phase the same extent) are stored together
# as one interleaved run (csrc/subconv/store.cpp, store_tile): 8 phases of 2 taps with a bias, 8
# phases of 1 tap on the path that tests the stored values for Inf/NaN (output smaller than
# the operands), 3-D with groups, rows longer than one 192-point chunk, the packed path (rows
# too short for the direct one), and phases of unequal extent (each stored on its own).
X_PHASES = [
    Case(2, 1, 3, 6, (3, 12), (16, 16), (8, 8), (4, 4), (0, 0), (1, 1), True),
    Case(1, 1, 60, 5, (2, 9), (2, 8), (1, 8), (0, 0), (0, 0), (1, 1), True),
    Case(2, 2, 4, 7, (2, 3, 10), (2, 3, 4), (2, 1, 4), (0, 1, 0), (1, 0, 0), (1, 1, 1), False),
    Case(2, 1, 6, 9, (300,), (16,), (8,), (4,), (0,), (1,), True),
    Case(3, 1, 7, 8, (6, 5), (3, 4), (2, 4), (1, 0), (1, 0), (1, 1), True),
    Case(2, 1, 5, 7, (4, 33), (3, 8), (1, 4), (1, 2), (0, 1), (1, 1), True),
]

# grad_weight's packing of x strides of 4 and 8 (csrc/weight_grad.cpp, pack_group): runs of 4
# or 8 taps that differ in kx only are de-interleaved from each fine row at once -- whole grid
# rows where the reads stay inside the array, else the points valid for every tap of the run,
# the rest one by one; kernels that are not a multiple of the stride (runs cut by the end of
# the taps and by column blocks), reductions of several K blocks that start inside grid rows,
# groups, 3-D, dilation on another axis, the dot form (21 rows: 3-row tile cuts) and the
# outer form (50 rows).
GROUPED_GW = [
    Case(2, 1, 3, 2, (9, 70), (16, 16), (8, 8), (4, 4), (0, 0), (1, 1), False),
    Case(2, 1, 21, 3, (150,), (10,), (4,), (3,), (1,), (1,), False),
    Case(2, 2, 5, 2, (2, 3, 33), (2, 3, 9), (2, 1, 4), (0, 1, 5), (1, 0, 2), (2, 1, 1), False),
    Case(1, 1, 50, 6, (5, 41), (3, 8), (2, 4), (1, 2), (0, 3), (1, 1), False),
    Case(3, 1, 4, 3, (1, 7), (1, 13), (1, 8), (0, 12), (0, 0), (1, 1), False),
]

# grad_weight's outer-product form (csrc/weight_grad.cpp: float32 with 48-256 coarse channels
# and >= 128 columns, fine channels x taps, per group): row counts that end in a partial
# 6-row tile, columns that end in a partial 16-column panel, reductions of several K blocks
# (384 fp32 terms) whose last one is not a multiple of 8, blocks that cross batch items (A
# packed) or lie in one (A read in place), two reduction chunks, groups, dilation, 1-/2-/3-D,
# and the rule's boundaries (48 and 256 rows, 128 columns).
OUTER_GW = [
    Case(4, 1, 50, 15, (13, 11), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), False),
    Case(2, 1, 48, 9, (1100,), (16,), (8,), (4,), (0,), (1,), False),            # two chunks
    Case(2, 2, 49, 5, (5, 6, 7), (3, 3, 3), (1, 2, 1), (1, 1, 1), (0, 1, 0), (1, 1, 2), False),
    Case(3, 1, 48, 8, (9, 9), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), False),     # 48 x 128
    Case(2, 1, 256, 8, (5, 7), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), False),    # 256 x 128
]
