"""tconv: fast, exact CPU transposed convolution.

A convolution is a matrix product ``y = C x``; a transposed convolution multiplies by ``C^T``
(every input pixel scatters ``x * w`` into a kernel-sized output window at stride ``s``), and
its gradient multiplies by ``C`` again (a gather: an ordinary strided convolution).
"""

import sys as _sys

from . import arithmetic, checkerboard, emulate, reference, resize, subpixel
from ._isa import isa, set_isa, supported_isas
from ._pool import empty_cache
from ._threads import get_num_threads, set_num_threads, threads
from .plan import Plan, get_verbose, plan, set_verbose
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
from .resize import resize_conv, resize_conv_backward

__version__ = "0.1.0"

# Optional bridges, imported on first use so that ``import tconv`` needs neither PyTorch nor
# Dask: ``tconv.torch`` (autograd functions, ConvTranspose*d layers), ``tconv.dask``.
_LAZY_SUBMODULES = ("torch", "dask")


if "torch" in _sys.modules:
    # PyTorch is already loaded: register tconv's operators now, so that a model saved with
    # torch.jit.save loads after a plain ``import tconv``.  A PyTorch tconv.torch cannot use
    # must not break the NumPy API: ``import tconv.torch`` reports that error itself.
    try:
        from . import torch as torch  # noqa: F401
    except Exception:  # noqa: BLE001, S110
        pass


def __getattr__(name: str) -> object:
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
    "threads",
    "isa",
    "set_isa",
    "supported_isas",
    "reference",
    "arithmetic",
    "checkerboard",
    "emulate",
    "resize",
    "subpixel",
    "resize_conv",
    "resize_conv_backward",
    "Plan",
    "plan",
    "set_verbose",
    "get_verbose",
    "empty_cache",
]
