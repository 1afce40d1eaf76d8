"""The pictures behind ``python -m tconv demo`` and ``python -m tconv checkerboard``.

matplotlib is optional (``pip install .[plot]``).  Figures are drawn with matplotlib's
object-oriented API onto an Agg canvas (no pyplot, no global state, no display needed) and
written as PNG files.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from .checkerboard import icnr, overlap, project, score
from .functional import conv_transpose
from .resize import resize_conv

__all__ = [
    "PLOT_HINT",
    "have_matplotlib",
    "phase_diagram",
    "overlap_heatmap",
    "artifact_comparison",
    "emulation_diagram",
    "matrix_picture",
]

PLOT_HINT = (
    "matplotlib is not installed, so no figures were written.  To get them:\n"
    "    pip install .[plot]        (from a tconv checkout)\n"
    '    pip install "tconv[plot]"  (or just: pip install matplotlib)'
)

_DPI = 110


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path


# --------------------------------------------------------------------------------------------
# 1. The notes' 1-D diagram: which inputs feed each output, k = 3 vs k = 4 at s = 2.
# --------------------------------------------------------------------------------------------

def _draw_scatter_1d(ax: Any, kernel: int, stride: int, n_in: int) -> None:
    from matplotlib.patches import FancyArrowPatch

    n_out = (n_in - 1) * stride + kernel
    counts = np.zeros(n_out, dtype=int)
    tap_colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    y_in, y_out = 1.0, 0.0
    for i in range(n_in):
        for t in range(kernel):
            o = i * stride + t
            counts[o] += 1
            ax.add_patch(FancyArrowPatch((i * stride + (kernel - 1) / 2, y_in - 0.09),
                                         (o, y_out + 0.12), arrowstyle="-|>", mutation_scale=9,
                                         color=tap_colors[t % len(tap_colors)], lw=1.3,
                                         alpha=0.85))
    centres = [i * stride + (kernel - 1) / 2 for i in range(n_in)]
    ax.scatter(centres, [y_in] * n_in, s=380, color="#444444", zorder=3)
    for i, c in enumerate(centres):
        ax.text(c, y_in, f"x{i}", color="white", ha="center", va="center", fontsize=9,
                fontweight="bold", zorder=4)
    per_phase = overlap(kernel, stride).tolist()
    # steady state: every tap of the output's phase has a source sample (not a border)
    interior = np.array([counts[o] == per_phase[o % stride] for o in range(n_out)])
    for o in range(n_out):
        face = "#fdd49e" if counts[o] == counts[interior].min() else "#fc8d59"
        if counts[interior].min() == counts[interior].max():
            face = "#a6d96a"
        if not interior[o]:
            face = "#eeeeee"
        ax.add_patch(_square(o, y_out, face))
        ax.text(o, y_out, str(counts[o]), ha="center", va="center", fontsize=11,
                fontweight="bold")
        ax.text(o, y_out - 0.33, f"y{o}", ha="center", va="center", fontsize=8, color="#555555")
    verdict = ("uneven: the output alternates -> checkerboard" if len(set(per_phase)) > 1
               else "even: every output gets the same number")
    ax.set_title(f"kernel {kernel}, stride {stride}:  taps per output phase = {per_phase}\n"
                 f"{verdict}", fontsize=11)
    ax.set_xlim(-0.8, n_out - 0.2)
    ax.set_ylim(-0.75, 1.35)
    ax.axis("off")
    ax.text(-0.75, y_in + 0.25, "input x: each sample scatters x * w[t] into k outputs",
            fontsize=9, color="#444444")
    ax.text(-0.75, y_out - 0.6, "output y: the number in each box = how many inputs reach it",
            fontsize=9, color="#444444")
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=tap_colors[t % len(tap_colors)], lw=2, label=f"tap w[{t}]")
               for t in range(kernel)]
    ax.legend(handles=handles, loc="lower right", fontsize=8.5, ncol=kernel, frameon=False,
              bbox_to_anchor=(1.0, -0.04))


def _square(x: float, y: float, face: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.42, y - 0.18), 0.84, 0.36, facecolor=face, edgecolor="#333333",
                     lw=0.8, zorder=2)


def phase_diagram(path: str, stride: int = 2, kernels: tuple[int, int] = (3, 4),
                  n_in: int = 5) -> str:
    """The notes' 1-D picture: a transposed convolution with stride ``s`` scatters each input
    into ``k`` outputs; printed under each output is how many inputs reach it."""
    fig = _figure(10.5, 6.2)
    axes = fig.subplots(len(kernels), 1)
    for ax, k in zip(np.atleast_1d(axes), kernels):
        _draw_scatter_1d(ax, k, stride, n_in)
    fig.suptitle("Why checkerboards appear: transposed convolution, 1-D, stride "
                 f"{stride} (arrow colour = kernel tap; grey = border)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 2. 2-D overlap heat map.
# --------------------------------------------------------------------------------------------

def overlap_heatmap(path: str, kernel: int, stride: int, n_in: int = 5) -> str:
    """Number of kernel taps landing on each output pixel of a 2-D transposed convolution:
    literally ``conv_transpose(ones, ones)``, next to the per-phase table :func:`overlap`."""
    ones_x = np.ones((1, 1, n_in, n_in))
    ones_w = np.ones((1, 1, kernel, kernel))
    counts = conv_transpose(ones_x, ones_w, stride=stride)[0, 0]
    table = overlap((kernel, kernel), stride)
    fig = _figure(11.0, 5.4)
    ax_map, ax_tab = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.7, 1]})
    im = ax_map.imshow(counts, cmap="viridis", vmin=0, vmax=max(1.0, float(counts.max())))
    if counts.shape[0] <= 24:
        for (r, c), v in np.ndenumerate(counts):
            ax_map.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 * counts.max() else "black")
    ax_map.set_title(f"taps landing on each output pixel\n{n_in}x{n_in} input, "
                     f"{kernel}x{kernel} kernel, stride {stride}", fontsize=11)
    ax_map.set_xlabel("output column")
    ax_map.set_ylabel("output row")
    fig.colorbar(im, ax=ax_map, fraction=0.046, pad=0.04, label="contributing taps",
                 ticks=range(int(counts.max()) + 1))
    ax_tab.imshow(table, cmap="viridis", vmin=0, vmax=max(1, int(table.max())))
    for (r, c), v in np.ndenumerate(table):
        ax_tab.text(c, r, str(int(v)), ha="center", va="center", fontsize=16,
                    color="white" if v < 0.6 * table.max() else "black", fontweight="bold")
    ax_tab.set_xticks(range(stride))
    ax_tab.set_yticks(range(stride))
    ax_tab.set_xlabel("column phase (o mod s)")
    ax_tab.set_ylabel("row phase (o mod s)")
    even = len(set(table.ravel().tolist())) == 1
    ax_tab.set_title("per phase (tconv.checkerboard.overlap)\n"
                     + ("all equal: even coverage" if even
                        else "zeros: holes that are never written (k < s)" if table.min() == 0
                        else "unequal: checkerboard"),
                     fontsize=11)
    fig.suptitle(f"Overlap of a {kernel}x{kernel} stride-{stride} transposed convolution "
                 "(interior repeats the phase table)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 3. A real artifact and three fixes, each titled with its score.
# --------------------------------------------------------------------------------------------

def smooth_image(size: int = 24) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A smooth image: two soft blobs and a gentle gradient, values in about [0.2, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    blob1 = np.exp(-((xx - 0.35) ** 2 + (yy - 0.4) ** 2) / 0.03)
    blob2 = 0.6 * np.exp(-((xx - 0.7) ** 2 + (yy - 0.65) ** 2) / 0.05)
    img: np.ndarray[Any, np.dtype[np.float64]] = 0.2 + 0.2 * xx + 0.6 * (blob1 + blob2)
    return img


def artifact_comparison(path: str, kernel: int = 3, stride: int = 2, seed: int = 0,
                        size: int = 24) -> dict[str, float]:
    """One smooth image upsampled ×``stride`` four ways; returns the scores it shows."""
    rng = np.random.default_rng(seed)
    img = smooth_image(size)[None, None]
    # A positive random kernel: its uneven phase sums show up as a clear brightness pattern.
    w = rng.uniform(0.2, 1.0, (1, 1, kernel, kernel))
    pad = max(0, (kernel - stride + 1) // 2)
    total = (size - 1) * stride - 2 * pad + kernel
    op = min(max(0, size * stride - total), stride - 1)

    def tconv_up(weight: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out: np.ndarray[Any, Any] = conv_transpose(img, weight, stride=stride, padding=pad,
                                                   output_padding=op)
        return out

    margin = kernel
    panels: list[tuple[str, np.ndarray[Any, Any] | None, str]] = []
    panels.append(("random kernel", tconv_up(w), "transposed conv"))
    holes = bool(np.any(overlap((kernel, kernel), stride) == 0))
    panels.append(("projected kernel", tconv_up(project(w, stride)),
                   "all zero: k < s leaves holes" if holes else "checkerboard.project(w)"))
    if kernel >= stride:
        panels.append(("ICNR init", tconv_up(icnr((1, 1, kernel, kernel), stride, rng=seed)),
                       "checkerboard.icnr"))
    else:
        panels.append(("ICNR init", None, f"impossible: kernel {kernel} < stride {stride}"))
    conv_w = rng.uniform(0.2, 1.0, (1, 1, kernel, kernel))
    panels.append(("resize-conv", resize_conv(img, conv_w, stride, "nearest"),
                   f"nearest x{stride}, then {kernel}x{kernel} conv"))

    scores: dict[str, float] = {}
    fig = _figure(15.0, 7.6)
    axes = fig.subplots(2, 5, gridspec_kw={"height_ratios": [1, 1]})
    axes[0, 0].imshow(img[0, 0], cmap="gray")
    axes[0, 0].set_title(f"input ({size}x{size})\nsmooth test image", fontsize=10.5)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.0, 0.5,
                    "score = RMS of the stride-periodic\n"
                    "pattern / RMS of the image\n"
                    "(checkerboard.score; 0 = smooth,\n"
                    " ~1 = pure checkerboard)\n\n"
                    f"outputs shown without their\n{margin}-pixel borders (zero padding\n"
                    "is not part of the pattern)\n\n"
                    "bottom row: centre, zoomed",
                    fontsize=9.5, va="center")
    for col, (name, out, how) in enumerate(panels, start=1):
        ax_full, ax_zoom = axes[0, col], axes[1, col]
        if out is None:
            for ax in (ax_full, ax_zoom):
                ax.axis("off")
            ax_full.set_title(f"{name}\n{how}", fontsize=10.5)
            continue
        value = float(score(out, stride, margin=margin))
        scores[name] = value
        field = out[0, 0, margin:-margin, margin:-margin]  # the region the score measures
        ax_full.imshow(field, cmap="gray")
        ax_full.set_title(f"{name}: score {value:.3f}\n{how}", fontsize=10.5,
                          color="#b2182b" if value > 0.02 else "#1a7837")
        h, wd = field.shape
        zoom = field[h // 2 - 6: h // 2 + 6, wd // 2 - 6: wd // 2 + 6]
        ax_zoom.imshow(zoom, cmap="gray", interpolation="nearest")
        ax_zoom.set_title("centre 12x12", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"A {kernel}x{kernel} stride-{stride} upsampling of a smooth image: the "
                 "artifact and three fixes", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    _save(fig, path)
    return scores


# --------------------------------------------------------------------------------------------
# demo figures: the matrix C, and the emulation by a direct convolution.
# --------------------------------------------------------------------------------------------

def matrix_picture(path: str, c: np.ndarray[Any, Any], labels: Callable[[float], str]) -> str:
    """The notes' matrix C (4 x 16) and its transpose, as labelled grids."""
    fig = _figure(13.0, 5.8)
    ax_c, ax_t = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3.2, 1]})
    side_in = round(float(np.sqrt(c.shape[1])))
    side_out = round(float(np.sqrt(c.shape[0])))
    x_names = [f"x{r + 1}{q + 1}" for r in range(side_in) for q in range(side_in)]
    y_names = [f"y{r + 1}{q + 1}" for r in range(side_out) for q in range(side_out)]
    for ax, mat, title, cols, rows in (
        (ax_c, c, "C (4 x 16):  conv(x) = C x", x_names, y_names),
        (ax_t, c.T, "C^T (16 x 4):\nconv_transpose(y) = C^T y", y_names, x_names),
    ):
        ax.imshow(mat != 0, cmap="Blues", vmin=0, vmax=2.5, aspect="equal")
        for (r, col), v in np.ndenumerate(mat):
            if v != 0:
                ax.text(col, r, labels(float(v)), ha="center", va="center", fontsize=8)
        ax.set_title(title, fontsize=11)
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols, fontsize=7, rotation=90)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows, fontsize=7)
    fig.suptitle("A 3x3 convolution of a 4x4 image is a matrix product y = C x; the transposed "
                 "convolution multiplies by C^T", fontsize=12)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return _save(fig, path)


def emulation_diagram(path: str, x: np.ndarray[Any, Any], stretched: np.ndarray[Any, Any],
                      kernel: np.ndarray[Any, Any], flipped: np.ndarray[Any, Any],
                      result: np.ndarray[Any, Any], stride: int, padding: tuple[int, int]) -> str:
    """The notes' "emulate with a direct convolution": zero-insert and pad the input, flip the
    kernel, slide it with stride 1."""
    fig = _figure(15.5, 4.8)
    widths = [x.shape[1], stretched.shape[1], kernel.shape[1], kernel.shape[1], result.shape[1]]
    axes = fig.subplots(1, 5, gridspec_kw={"width_ratios": widths})
    inserted = np.zeros(stretched.shape, dtype=bool)
    lo = padding[0]
    inserted[lo: lo + (x.shape[0] - 1) * stride + 1: stride,
             lo: lo + (x.shape[1] - 1) * stride + 1: stride] = True
    items = [
        (x, f"input x ({x.shape[0]}x{x.shape[1]})", None),
        (stretched, (f"{stride - 1} zero inserted between samples,\npadded by d(k-1)-p = {lo}: "
                     f"{stretched.shape[0]}x{stretched.shape[1]}"), inserted),
        (kernel, "kernel w", None),
        (flipped, "w flipped\n(rows and columns reversed)", None),
        (result, f"stride-1 conv of the two\n= conv_transpose(x, w, stride={stride})", None),
    ]
    for ax, (arr, title, real) in zip(axes, items):
        limit = float(np.abs(arr).max()) or 1.0
        shown = np.ma.masked_where(~real, arr) if real is not None else arr
        ax.set_facecolor("#e6e6e6")
        ax.imshow(shown, cmap="coolwarm", vmin=-limit, vmax=limit)
        for (r, col), v in np.ndenumerate(arr):
            inside = real is None or real[r, col]
            text = f"{v:.1f}".replace("-0.0", "0.0")
            ax.text(col, r, text if inside else "0", ha="center", va="center",
                    fontsize=7.5, color="black" if inside else "#9a9a9a")
        ax.set_xticks(np.arange(arr.shape[1] + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(arr.shape[0] + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1)
        ax.tick_params(which="both", length=0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"Emulating a stride-{stride} transposed convolution with a direct "
                 "convolution (tconv.emulate): most multiplies hit the grey zeros", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return _save(fig, path)
