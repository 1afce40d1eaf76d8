"""Which micro-kernels run: chosen once from the CPU's features, overridable.

The environment variable ``TCONV_ISA=avx512|avx2|generic`` forces a path at import (an
unsupported name warns and falls back to the best supported one).
"""

from __future__ import annotations

from . import _core


def isa() -> str:
    """Name of the micro-kernel instruction set in use: ``"avx512"``, ``"avx2"`` or ``"generic"``."""
    return _core.isa()


def supported_isas() -> list[str]:
    """The instruction sets this build can run on this CPU, best first."""
    return list(_core.supported_isas())


def set_isa(name: str) -> None:
    """Use the micro-kernels of ``name`` from now on, process-wide.

    Raises
    ------
    ValueError
        If ``name`` is unknown or this CPU cannot run it (see :func:`supported_isas`).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    _core.set_isa(name)
