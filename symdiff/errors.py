"""Every error symdiff raises on bad user input, plus the helpers that format culprits.

All of them derive from :class:`SymdiffError`, so ``except sd.SymdiffError`` catches any user
mistake while a genuine library bug still surfaces as an ordinary exception.
"""
from __future__ import annotations


class SymdiffError(Exception):
    """Base class of every error caused by user input."""


class ParseError(SymdiffError, ValueError):
    """Text that is not an accepted expression; ``.position`` is the 0-based character offset."""

    def __init__(self, message: str, position: int = 0, text: str | None = None):
        self.position = int(position)
        self.text = text
        detail = f"{message} (at position {self.position})"
        if text is not None and "\n" not in text and len(text) <= 200:
            detail += f"\n  {text}\n  {' ' * self.position}^"
        super().__init__(detail)


class ShapeError(SymdiffError, ValueError):
    """Shapes (or dtypes) that do not fit an op; the message names both."""


class DTypeError(SymdiffError, TypeError):
    """A dtype symdiff cannot use where it was given (e.g. a gradient w.r.t. an integer)."""


class UndefinedGradientError(SymdiffError):
    """A requested gradient flows through an op that has none (argmax, floor, comparisons...)."""


class DisconnectedInputError(SymdiffError):
    """``grad(..., disconnected="raise")`` and the output does not depend on a variable."""


class InputError(SymdiffError, ValueError):
    """A compiled function was called with a missing, extra, misshapen or mistyped input."""


class NonFiniteError(SymdiffError, FloatingPointError):
    """``compile(..., check_finite=True)``: a value went nan or inf; names the first node."""


class SymdiffWarning(UserWarning):
    """A likely mistake that still has a defined meaning (e.g. a ``parse`` shapes key that names
    no variable of the text, whose variables then fall back to scalars)."""


def fmt_shape(shape) -> str:
    """``(3, 4)`` for a tuple shape, ``()`` for a scalar."""
    return str(tuple(shape))
