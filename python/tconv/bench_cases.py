"""The benchmark layers: THE one list, used by ``python -m tconv bench`` and ``bench/``.

Each :class:`BenchCase` is one transposed-convolution layer from a real network, with the
sizes of issue 3.  Its work is counted the conventional way (every input element times every
tap, the multiply-adds of the scatter form),

    FLOPs = 2 * N * C_in * (C_out / groups) * prod(input spatial) * prod(kernel),

and the same count is used for all three passes: the forward (``y = C^T x``), ``grad_input``
(``C g``, a strided convolution of the output gradient) and ``grad_weight`` all perform
exactly these multiply-adds (minus the taps that padding crops off the border).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .functional import output_shape

__all__ = ["ALL_CASES", "CASES", "GEMM_CASES", "NONFINITE_CASES", "PASSES", "QUICK_DENSE_LIMIT",
           "BenchCase", "select_cases"]

#: The three timed passes, in table order.
PASSES: tuple[str, ...] = ("fwd", "grad_input", "grad_weight")

#: A ``quick()`` case is shrunk until the dense oracle matrix ``C`` has at most this many
#: entries (8 bytes each), so :mod:`tconv.reference` can check it in well under a second.
QUICK_DENSE_LIMIT = 2**21


@dataclass(frozen=True)
class BenchCase:
    """One benchmark layer.

    ``spatial`` is the transposed convolution's *input* size (the coarse side); the output is
    ``(i - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1`` per dim.  All size
    tuples have one entry per spatial dim (1, 2 or 3 of them).
    """

    name: str
    batch: int
    c_in: int
    c_out: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    note: str = ""
    #: One NaN in the middle of x: bench times the call next to the same call on finite data
    #: and reports the ratio (a few Inf/NaN must not send the call down a slow path).
    nan_input: bool = False

    @property
    def dims(self) -> int:
        """Number of spatial dims: 1, 2 or 3."""
        return len(self.spatial)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(N, C_in, *spatial)``."""
        return (self.batch, self.c_in, *self.spatial)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch's ConvTranspose layout ``(C_in, C_out/groups, *kernel)``."""
        return (self.c_in, self.c_out // self.groups, *self.kernel)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(N, C_out, *out)``, from :func:`tconv.output_shape` (the one shape formula)."""
        return output_shape(self.input_shape, self.weight_shape, **self.params(), groups=self.groups)

    def params(self) -> dict[str, tuple[int, ...]]:
        """stride, padding, output_padding and dilation as keyword arguments."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "dilation": self.dilation,
        }

    @property
    def flops(self) -> int:
        """``2 * N * C_in * (C_out/groups) * prod(input spatial) * prod(kernel)``."""
        return (2 * self.batch * self.c_in * (self.c_out // self.groups)
                * math.prod(self.spatial) * math.prod(self.kernel))

    @property
    def inside_share(self) -> float:
        """Share of the counted terms whose tap lands inside the output.

        A term pairs input point ``i`` with tap ``k`` (per axis, output index
        ``i * stride - padding + k * dilation``); where that index falls outside the output,
        padding crops the term off, and an implementation may skip it.  The FLOP count keeps
        every term, so a peer that skips them can show more GF/s than the machine's peak
        (DCGAN 512->256: 0.766 of its terms lie inside).
        """
        share = 1.0
        for i, k, s, p, d, o in zip(self.spatial, self.kernel, self.stride, self.padding,
                                    self.dilation, self.output_shape[2:], strict=True):
            inside = sum(1 for a in range(i) for b in range(k) if 0 <= a * s - p + b * d < o)
            share *= inside / (i * k)
        return share

    @property
    def dense_entries(self) -> int:
        """Entries of the dense per-sample matrix ``C`` the NumPy oracle would build."""
        return (self.c_in * math.prod(self.spatial)) * math.prod(self.output_shape[1:])

    def describe(self) -> str:
        """Short human-readable geometry, e.g. ``N64 512->256 4x4 k4 s2 p1``."""
        def one(t: tuple[int, ...]) -> str:  # a uniform parameter prints as one number
            return str(t[0]) if len(set(t)) == 1 else "x".join(map(str, t))

        text = (f"N{self.batch} {self.c_in}->{self.c_out} {'x'.join(map(str, self.spatial))} "
                f"k{one(self.kernel)} s{one(self.stride)} p{one(self.padding)}")
        if any(self.output_padding):
            text += f" op{one(self.output_padding)}"
        if any(d != 1 for d in self.dilation):
            text += f" d{one(self.dilation)}"
        if self.groups != 1:
            text += f" g{self.groups}"
        return text

    def quick(self) -> BenchCase:
        """A scaled-down copy with the same kernel, stride, padding and dilation.

        Batch 2, at most 8 channels each side (groups permitting), spatial size at most 8
        (2-D), 4 (3-D) or 64 (1-D), then halved until the dense oracle matrix has at most
        :data:`QUICK_DENSE_LIMIT` entries.  For smoke tests and correctness checks.
        """
        cap = {1: 64, 2: 8, 3: 4}[self.dims]
        groups = self.groups
        c_in = max(groups, min(self.c_in, 8) // groups * groups)
        c_out = max(groups, min(self.c_out, 8) // groups * groups)
        small = replace(self, name=self.name, batch=min(self.batch, 2), c_in=c_in, c_out=c_out,
                        spatial=tuple(min(s, cap) for s in self.spatial))
        while small.dense_entries > QUICK_DENSE_LIMIT and max(small.spatial) > 2:
            small = replace(small, spatial=tuple(max(2, s // 2) for s in small.spatial))
        return small


def _case(name: str, batch: int, c_in: int, c_out: int, spatial: tuple[int, ...], k: int, s: int,
          p: int = 0, op: int = 0, groups: int = 1, note: str = "") -> BenchCase:
    nd = len(spatial)
    return BenchCase(name=name, batch=batch, c_in=c_in, c_out=c_out, spatial=spatial,
                     kernel=(k,) * nd, stride=(s,) * nd, padding=(p,) * nd,
                     output_padding=(op,) * nd, dilation=(1,) * nd, groups=groups, note=note)


#: The public benchmark suite, in table order.
CASES: tuple[BenchCase, ...] = (
    # DCGAN generator (batch 64, k4 s2 p1): each layer doubles the spatial size.
    _case("dcgan-512-256", 64, 512, 256, (4, 4), 4, 2, 1, note="DCGAN generator layer"),
    _case("dcgan-256-128", 64, 256, 128, (8, 8), 4, 2, 1, note="DCGAN generator layer"),
    _case("dcgan-128-64", 64, 128, 64, (16, 16), 4, 2, 1, note="DCGAN generator layer"),
    _case("dcgan-64-3", 64, 64, 3, (32, 32), 4, 2, 1, note="DCGAN generator output layer"),
    # U-Net decoder up-sampling: k2 s2, no overlap between windows.
    _case("unet-k2s2", 8, 256, 128, (64, 64), 2, 2, note="U-Net up-convolution"),
    # k3 s2 p1 op1: exact 2x up-sampling with an odd kernel (output_padding needed).
    _case("k3s2p1op1", 8, 128, 64, (64, 64), 3, 2, 1, 1, note="odd-kernel 2x up-sampling"),
    # FCN-8s bilinear-initialised 8x up-sampling of 21 class scores.
    _case("fcn8s-k16s8", 4, 21, 21, (64, 64), 16, 8, 4, note="FCN-8s 8x up-sampling"),
    # stride 1: the issue says "k3"; we pick padding 1 so the output keeps the input size.
    _case("stride1-k3p1", 8, 64, 64, (64, 64), 3, 1, 1, note="stride 1, padding 1 (size-preserving)"),
    # HiFi-GAN vocoder 1-D up-sampling blocks.
    _case("hifigan-k16s8", 8, 512, 256, (256,), 16, 8, 4, note="HiFi-GAN 1-D up-sampling"),
    _case("hifigan-k4s2", 8, 128, 64, (4096,), 4, 2, 1, note="HiFi-GAN 1-D up-sampling"),
    # Volumetric decoders.
    _case("vnet3d-k2s2", 2, 128, 64, (16, 16, 16), 2, 2, note="V-Net 3-D up-convolution"),
    _case("unet3d-k3s2op1", 2, 64, 32, (16, 16, 16), 3, 2, 1, 1, note="3-D U-Net up-sampling"),
    # Depthwise (groups = channels) learned-bilinear 2x up-sampling of mobile/FCN decoders.
    _case("depthwise-k4s2", 8, 64, 64, (128, 128), 4, 2, 1, groups=64,
          note="depthwise 2x up-sampling"),
)

#: 1x1 transposed convolutions that are plain matrix products ``Y = W^T X`` (M = C_out,
#: K = C_in, N = pixels): the GEMM engine measured against NumPy's BLAS on the same M, K, N.
GEMM_CASES: tuple[BenchCase, ...] = (
    _case("gemm-128x256x32768", 1, 256, 128, (32768,), 1, 1, note="GEMM M128 K256 N32768"),
    _case("gemm-512x512x1024", 1, 512, 512, (1024,), 1, 1, note="GEMM M512 K512 N1024"),
    _case("gemm-64x64x32768", 1, 64, 64, (32768,), 1, 1, note="GEMM M64 K64 N32768"),
    _case("gemm-32x1024x4096", 1, 1024, 32, (4096,), 1, 1, note="GEMM M32 K1024 N4096"),
)


#: Rows timing non-finite data (not layers of issue 3; kept out of the tconv/torch geomeans).
NONFINITE_CASES: tuple[BenchCase, ...] = (
    replace(_case("nan-input-k4s2", 8, 128, 64, (32, 32), 4, 2, 1,
                  note="one NaN in x, timed against the finite call"),
            nan_input=True),
)

#: What ``python -m tconv bench`` runs by default.
ALL_CASES: tuple[BenchCase, ...] = CASES + NONFINITE_CASES


def select_cases(patterns: str | None,
                 cases: tuple[BenchCase, ...] = ALL_CASES) -> list[BenchCase]:
    """Cases whose name contains any of the comma-separated ``patterns`` (all if None/empty).

    Raises ``ValueError`` if a pattern matches nothing, listing the valid names.
    """
    if not patterns:
        return list(cases)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in cases if any(p in c.name for p in wanted)]
    unmatched = [p for p in wanted if not any(p in c.name for c in cases)]
    if unmatched:
        names = ", ".join(c.name for c in cases)
        raise ValueError(f"--cases {', '.join(unmatched)!s} matches no case; known cases: {names}")
    return chosen
