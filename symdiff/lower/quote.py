"""The one place where values reach generated source: literals, bound constants and comments.

Every value a printer writes (a constant node, an op's params such as an axis, a shape or a
bound, an index) goes through a :class:`Quoter`: a finite number, bool, None or a tuple of
ints is written as a Python literal (:meth:`Quoter.value`); anything else (arrays, slices,
index tuples, and non-finite floats, which have no literal) is bound by name in the function's
namespace (:meth:`Quoter.bind`). Names
the user chose (variables) and labels appear only in comments, through :func:`comment`, which
blanks every character that could end a comment. So nothing a user typed becomes code.
"""
from __future__ import annotations

import math
import re

import numpy as np

LITERAL_DTYPES = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(bool))

_NOT_IN_COMMENTS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")  # applied to comments only


def comment(text: str) -> str:
    """``text`` safe to follow ``#``: control and line-break characters become spaces."""
    return _NOT_IN_COMMENTS.sub(" ", text)


def _number_text(value) -> str | None:
    """Literal text of a finite Python/NumPy number, bool or None; None when it has none."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return repr(None if value is None else bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return repr(float(value))
    return None


class Quoter:
    """Literals for generated source, and the constants bound by name (``c0, c1, ...``).

    ``scalar=True`` (the math-module printer) binds 0-d arrays as Python numbers.
    """

    def __init__(self, scalar: bool = False):
        self.constants: dict[str, object] = {}
        self._scalar = scalar

    def bind(self, value) -> str:
        """A new name bound to ``value``."""
        if self._scalar and isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name

    def value(self, value, operand: bool = False) -> str:
        """Source text for ``value``: a literal where one exists, else a bound name.
        ``operand=True``: a negative number is parenthesized (``x ** (-1.0)``)."""
        if isinstance(value, tuple):
            items = [_number_text(v) for v in value]
            if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in value) and None not in items:
                return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
            return self.bind(value)
        text = _number_text(value)
        if text is None:
            return self.bind(value)
        negative = text.startswith("-")
        return f"({text})" if operand and negative else text

    def constant(self, value: np.ndarray, force_array: bool = False) -> str:
        """A constant node's value: a literal for a 0-d float64/int64/bool value (a Python
        literal keeps those dtypes), else bound as the array; ``force_array`` binds it anyway
        (see ``needs_array_constant`` in the NumPy printer)."""
        if force_array or not is_literal(value):
            return self.bind(value)
        return self.value(value.item(), operand=True)


def is_literal(value: np.ndarray) -> bool:
    """True when a constant node's value prints as a literal: 0-d, finite, of a dtype a
    Python literal keeps (float32 stays float32 even where it is the only array operand)."""
    if value.shape != () or value.dtype not in LITERAL_DTYPES:
        return False
    return _number_text(value.item()) is not None
