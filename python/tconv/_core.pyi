"""Type stub for tconv's C++ extension (csrc/bindings.cpp).

Every array must already be C-contiguous, of one dtype (float32 or float64, chosen by the
overload) and of the shapes documented in csrc/tconv/kernels.hpp; nothing is converted.
``pad`` is the LOW-side padding per spatial dim; the high side is implied by the fine size.
"""

from typing import Optional, Sequence, overload

import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]

@overload
def scatter(x: _F32, w: _F32, bias: Optional[_F32], y: _F32, stride: Sequence[int],
            pad: Sequence[int], dilation: Sequence[int], groups: int) -> None: ...
@overload
def scatter(x: _F64, w: _F64, bias: Optional[_F64], y: _F64, stride: Sequence[int],
            pad: Sequence[int], dilation: Sequence[int], groups: int) -> None: ...
@overload
def gather(y: _F32, w: _F32, bias: Optional[_F32], x: _F32, stride: Sequence[int],
           pad: Sequence[int], dilation: Sequence[int], groups: int) -> None: ...
@overload
def gather(y: _F64, w: _F64, bias: Optional[_F64], x: _F64, stride: Sequence[int],
           pad: Sequence[int], dilation: Sequence[int], groups: int) -> None: ...
@overload
def weight_grad(coarse: _F32, fine: _F32, dw: _F32, stride: Sequence[int], pad: Sequence[int],
                dilation: Sequence[int], groups: int) -> None: ...
@overload
def weight_grad(coarse: _F64, fine: _F64, dw: _F64, stride: Sequence[int], pad: Sequence[int],
                dilation: Sequence[int], groups: int) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
@overload
def upsample(x: _F32, y: _F32, scale: Sequence[int], mode: str) -> None: ...
@overload
def upsample(x: _F64, y: _F64, scale: Sequence[int], mode: str) -> None: ...
@overload
def upsample_adjoint(gy: _F32, gx: _F32, scale: Sequence[int], mode: str) -> None: ...
@overload
def upsample_adjoint(gy: _F64, gx: _F64, scale: Sequence[int], mode: str) -> None: ...
