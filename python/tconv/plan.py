"""How tconv will run a call: :func:`plan` returns the C++ planner's decision, and verbose mode
(``TCONV_VERBOSE=1`` or :func:`set_verbose`) prints one line per kernel call to stderr.

The plan is the one the kernel computes for itself (csrc/plan.cpp): the same functions choose
the algorithm, tiles, blocks and tasks, with the current ISA (:func:`tconv.isa`) and thread
count (:func:`tconv.get_num_threads`).  Only the Inf/NaN repair is not planned: it depends on
the data and runs after any algorithm (docs/guarantees.md).
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import _core
from ._args import IntOrTuple, PaddingArg, conv_geometry, int_tuple, transposed_geometry
from .functional import _check_algorithm

__all__ = ["Plan", "plan", "set_verbose", "get_verbose"]

OPS = ("conv_transpose", "conv", "grad_input", "grad_weight")


@dataclass(frozen=True)
class Plan:
    """One call's plan.

    ``algorithm``: ``gemm`` (1x1 stride-1 layers a plain GEMM; with ``input`` ``phases``,
    kernel = stride without padding: one GEMM with (channel, phase) rows, or for the gathers
    (channel, phase) K rows), ``depthwise`` (one channel per group on both sides: rows
    vectorised over pixels, the forward, the gathers and grad_weight), ``subconv`` (one
    implicit GEMM per output phase, the forward and the gathers), ``columns`` (the forward with
    few output channels per group: one GEMM with channel x tap rows and a col2im),
    ``winograd`` or ``winograd4`` (Winograd F(2x2, r) or F(4x4, r) tiles: the forward's on
    each output phase, the gathers' (conv, grad_input) on the output with the kernel phases
    summed in the transform domain; when ``algorithm=`` asked for it and the geometry suits
    it: docs/winograd.md), ``channels_last``, ``phase_channels`` (channels-last on a view of x
    whose channels are its stride's phases), ``outer_product`` or ``dot`` (grad_weight's
    forms).
    ``input``: for ``subconv``, how its tasks read the source (``packed``, ``packed_sorted``
    -- packed, its columns border-sorted so that panels skip the taps that read padding --,
    ``indirect``, ``band``, ``band_per_block``, ``pitched_band`` and ``pitched_band_per_block``
    -- a band whose short rows a tile spans, docs/kernels.md --; ``+``-joined when tasks
    differ), after ``batch_inner+`` when many small images run with the batch as the
    innermost axis (docs/kernels.md,
    workspace: a copy of the input and of the output); ``phases`` for the kernel =
    stride GEMM; ``pipelined`` (after ``phases+`` there) when the GEMM engine packs each next
    block of a B operand too large for the L3 while the kernels run; for ``winograd*``, the
    2-D transforms the phases run (e.g. ``F(2x2 3x3)``,
    ``+``-joined; the gathers: one, ``r`` the most taps per phase).  ``tile``: the register tile (mr, nr).  ``blocks``: kc (K block), mc and nc
    (rows and columns of the largest task; winograd: output channels per slab and tiles per
    task), slabs (subconv: output-channel slabs; columns: output blocks per image;
    grad_weight: reduction chunks; for the depthwise grad_weight nc is the images per task,
    slabs the batch chunks).  ``threads`` is 1 when the call runs serially.
    ``workspace_bytes``: the scratch the call allocates beyond its output (bound in
    csrc/tconv/kernels.hpp; winograd: docs/winograd.md).  ``flops``: the direct method's
    count (2 per product of the definition), whatever runs.
    """

    op: str
    kernel: str
    algorithm: str
    input: str
    isa: str
    dtype: str
    tile: tuple[int, int]
    blocks: Mapping[str, int]
    tasks: int
    threads: int
    parallel: bool
    workspace_bytes: int
    flops: float

    def __str__(self) -> str:
        algo = self.algorithm + (f"/{self.input}" if self.input else "")
        blocks = " ".join(f"{k}={v}" for k, v in self.blocks.items())
        return (f"{self.op}: {algo} ({self.kernel}) on {self.isa} {self.dtype}, "
                f"tile {self.tile[0]}x{self.tile[1]}, {blocks}, {self.tasks} tasks on "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, workspace "
                f"{self.workspace_bytes} B, {self.flops:.3g} flops")


def _dtype_name(dtype: object) -> str:
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except TypeError as e:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from e
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return str(name)


def plan(
    op: str,
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: IntOrTuple = 1,
    padding: PaddingArg = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    dtype: object = "float32",
    algorithm: str = "direct",
) -> Plan:
    """The plan of one call of ``op`` with these shapes, on this ISA and thread count.

    ``op``: ``"conv_transpose"`` and ``"conv"`` take their own input and weight shapes (as
    :func:`tconv.conv_transpose` and :func:`tconv.conv`); ``"grad_input"`` and
    ``"grad_weight"`` are the backward kernels of the ``conv_transpose`` with these shapes
    (a conv's grad_input is the ``conv_transpose`` of the same weight, its grad_weight that
    transposed geometry's ``"grad_weight"``).  ``padding`` takes non-negative ints, pairs or
    ``"same"``/``"valid"``.  ``algorithm``: as :func:`tconv.conv_transpose`'s (``"direct"``,
    ``"winograd"``, ``"winograd4"``, ``"auto"``) for ``"conv_transpose"``, ``"conv"`` and
    ``"grad_input"`` (the Winograd gather); ``"grad_weight"`` runs direct and takes
    ``"direct"`` or ``"auto"`` only.  A Winograd request that the geometry does not suit plans
    (and runs) the direct path.
    """
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}; got {op!r}")
    algo = _check_algorithm(algorithm)
    if op == "grad_weight" and algo not in ("direct", "auto"):
        raise ValueError(f"algorithm {algo!r} does not apply to op 'grad_weight' (no Winograd "
                         f"weight gradient); it takes 'direct' or 'auto'")
    dt = _dtype_name(dtype)
    if op == "conv":
        nd = len(tuple(input_shape)) - 2
        if any(int_tuple(output_padding, max(nd, 1), "output_padding", 0)):
            raise ValueError("output_padding applies to conv_transpose, not conv")
        geom = conv_geometry(input_shape, weight_shape, stride, padding, dilation, groups)
    else:
        geom = transposed_geometry(input_shape, weight_shape, stride, padding, output_padding,
                                   groups, dilation)
    d = _core.plan(op, dt, list(geom.coarse_shape), list(geom.fine_shape),
                   list(geom.weight_shape), *geom.kernel_args(),
                   algo if op != "grad_weight" else "direct")
    blocks = types.MappingProxyType({k: int(d[k]) for k in ("kc", "mc", "nc", "slabs")})
    return Plan(op=str(d["op"]), kernel=str(d["kernel"]), algorithm=str(d["algorithm"]),
                input=str(d["input"]), isa=str(d["isa"]), dtype=str(d["dtype"]),
                tile=(int(d["mr"]), int(d["nr"])), blocks=blocks, tasks=int(d["tasks"]),
                threads=int(d["threads"]), parallel=bool(d["parallel"]),
                workspace_bytes=int(d["workspace_bytes"]), flops=float(d["flops"]))


def set_verbose(on: bool) -> None:
    """Print (or stop printing) one line per kernel call to stderr, as oneDNN's verbose mode:
    ``tconv_verbose,<op>,<algorithm>[/<input>],<isa>,<dtype>,<shapes>,<tile/blocks>,<threads>,
    <time ms>``.  ``<op>`` names the kernel's operation: ``conv_transpose`` (the scatter, also
    a conv's grad_input), ``conv`` (the gather, also a conv_transpose's grad_input) or
    ``grad_weight``.  Off, a call pays one atomic load; ``TCONV_VERBOSE=1`` turns it on at
    import."""
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"set_verbose takes a bool, got {type(on).__name__}")
    _core.set_verbose(bool(on))


def get_verbose() -> bool:
    """Whether kernel calls print ``tconv_verbose`` lines."""
    return bool(_core.get_verbose())


if os.environ.get("TCONV_VERBOSE", "") not in ("", "0"):
    set_verbose(True)
