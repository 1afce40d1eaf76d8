"""Transposed-convolution size arithmetic.

``solve`` and ``convert`` translate between frameworks' padding conventions (see
:mod:`tconv._conventions` and docs/conventions.md).
"""

from ._conventions import CONVENTIONS, Solution, convert, solve

__all__ = ["CONVENTIONS", "Solution", "convert", "solve"]
