"""Which micro-kernels run: chosen once from the CPU's features, overridable.

The environment variable ``TCONV_ISA=avx512|avx2|generic`` forces a path at import (an
unsupported name warns and falls back to the best supported one).  ``avx512-emulated`` is the
AVX-512 kernels' tile logic over portable lanes, bitwise equal to ``avx512`` and runnable on any
CPU, for testing; it is slow and never chosen unless named (docs/isa.md).
"""

from __future__ import annotations

from . import _core


def isa() -> str:
    """Name of the micro-kernel path in use: ``"avx512"``, ``"avx2"``, ``"generic"`` (or
    ``"avx512-emulated"`` if asked for)."""
    return _core.isa()


def supported_isas() -> list[str]:
    """The paths this build can run on this CPU: the real instruction sets best first (the
    first is the default), then the emulated ones (``"avx512-emulated"``, any CPU, tests only)."""
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
