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


class NoBatchingRuleError(SymdiffError):
    """``vmap`` met an op (or an op's params) that has no batching rule: it cannot be mapped
    over a batch axis without a loop at run time."""


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


# ---------------------------------------------------------------------------------------------
# argument checks at the public entry points: one SymdiffError naming the function and argument
# ---------------------------------------------------------------------------------------------
def describe(value) -> str:
    """A short description of a wrong argument: its type and a bounded repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def argument_error(function: str, argument: str, wanted: str, value) -> SymdiffError:
    """``function: argument must be <wanted>, got <type> <repr>``."""
    return SymdiffError(f"{function}: {argument} must be {wanted}, got {describe(value)}")


def expect_bool(value, argument: str, function: str) -> bool:
    """``value`` as a bool: True, False or a NumPy bool scalar (not 0/1, arrays or strings)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise argument_error(function, argument, "True or False", value)


def expect_int(value, argument: str, function: str, minimum: int | None = None) -> int:
    """``value`` as an int (a Python or NumPy integer, not a bool), at least ``minimum``."""
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise argument_error(function, argument, "an int", value)
    if minimum is not None and value < minimum:
        raise argument_error(function, argument, f"an int >= {minimum}", value)
    return int(value)


def expect_number(value, argument: str, function: str, positive: bool = False) -> float:
    """``value`` as a finite float (a real Python or NumPy number, not a bool)."""
    import math
    import numbers
    wanted = "a positive finite number" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise argument_error(function, argument, wanted, value)
    try:
        number = float(value)
    except OverflowError:
        raise argument_error(function, argument, wanted, value) from None
    if not math.isfinite(number) or (positive and number <= 0):
        raise argument_error(function, argument, wanted, value)
    return number


def expect_choice(value, argument: str, function: str, choices: tuple):
    """``value`` if it is one of ``choices`` (compared only with values of the same type)."""
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return value
    raise argument_error(function, argument, "one of " + ", ".join(map(repr, choices)), value)


def expect_mapping(value, argument: str, function: str, keys: str = "names"):
    """``value`` if it is a mapping (a dict) whose keys are all strings."""
    from collections.abc import Mapping
    if not isinstance(value, Mapping):
        raise argument_error(function, argument, f"a dict {keys} -> values", value)
    for key in value:
        if not isinstance(key, str):
            raise argument_error(function, f"a key of {argument}", "a str (a variable name)",
                                 key)
    return value


def expect_path(value, argument: str, function: str):
    """``value`` if it is a file path: a str or an ``os.PathLike`` (``pathlib.Path``)."""
    import os
    if isinstance(value, str) or isinstance(value, os.PathLike):
        return value
    raise argument_error(function, argument, "a file path (str or pathlib.Path)", value)
