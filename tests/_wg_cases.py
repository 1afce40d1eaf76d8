"""Weight-gradient problems for the grad_weight form suites (test_weight_grad_cl.py,
test_weight_grad_phase.py): a case, its data, the call, the plan and the float64 oracle check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tconv
from _structural import grad_weight as oracle


@dataclass(frozen=True)
class Case:
    name: str
    coarse: tuple[int, ...]
    c_in: int                  # rows (coarse channels), all groups
    fpg: int                   # fine channels per group
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    batch: int = 2

    def kw(self) -> dict[str, object]:
        nd = len(self.coarse)
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding or (0,) * nd,
                    dilation=self.dilation or (1,) * nd, groups=self.groups)

    def weight_shape(self, fpg: int | None = None) -> tuple[int, ...]:
        return (self.c_in, self.fpg if fpg is None else fpg) + self.kernel

    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c_in) + self.coarse


def data(case: Case, dtype: np.dtype, fpg: int | None = None,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, w and grad_output of ``case`` (with ``fpg`` fine channels per group)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape()).astype(dtype)
    w = rng.standard_normal(case.weight_shape(fpg)).astype(dtype)
    y_shape = tconv.conv_transpose(x, w, **case.kw()).shape
    g = rng.standard_normal(y_shape).astype(dtype)
    return x, w, g


def grad_weight(case: Case, g: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    dw = tconv.conv_transpose_backward(g, x, w, **case.kw(), output_mask=(False, True, False))[1]
    assert dw is not None
    return dw


def assert_matches_oracle(case: Case, g: np.ndarray, x: np.ndarray, w: np.ndarray,
                           dw: np.ndarray) -> None:
    """dw within 4 eps x the sum of |terms| of the float64 structural oracle."""
    want = oracle(g, x, w.shape, case.stride, case.padding, case.kw()["dilation"],
                              case.groups)
    scale = oracle(np.abs(g), np.abs(x), w.shape, case.stride, case.padding,
                               case.kw()["dilation"], case.groups)
    dtype = dw.dtype
    assert np.all(np.abs(dw - want) <= 4 * np.finfo(dtype).eps * scale + np.finfo(dtype).tiny), dtype


def plan(case: Case, dtype: str, fpg: int | None = None) -> tconv.Plan:
    return tconv.plan("grad_weight", case.x_shape(), case.weight_shape(fpg), dtype=dtype,
                      **case.kw())


def nr(dtype: str) -> int:
    """The active ISA's GEMM tile width for ``dtype`` (the outer form's nr)."""
    return tconv.plan("conv_transpose", (1, 64, 8, 8), (64, 64, 1, 1), dtype=dtype).tile[1]
