"""tconv: fast, exact CPU transposed convolution.

A convolution is a matrix product ``y = C x``; a transposed convolution multiplies by ``C^T``
(every input pixel scatters ``x * w`` into a kernel-sized output window at stride ``s``), and
its gradient multiplies by ``C`` again (a gather: an ordinary strided convolution).
"""

from . import reference
from ._core import get_num_threads, isa, set_isa, set_num_threads, supported_isas
from .functional import (
    conv,
    conv_backward,
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    conv_transpose_backward,
    output_shape,
)

__version__ = "0.1.0"

__all__ = [
    "conv",
    "conv_backward",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose_backward",
    "output_shape",
    "get_num_threads",
    "set_num_threads",
    "isa",
    "set_isa",
    "supported_isas",
    "reference",
]
