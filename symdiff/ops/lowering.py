"""Lowering as data: what an op's ``lower`` returns, and how to run it without printing it.

An op's ``lower(*args)`` gets one :class:`Arg` per input and returns a small tree of *forms*:
``Call("exp", (x,))`` is ``xp.exp(x)``, ``Infix("+", a, b)`` is ``a + b``, ``Attr(x, "T")`` is
``x.T``, ``Subscript(x, key)`` is ``x[key]``, ``Tuple((a, b))`` is ``(a, b,)``. Anything else in a
form (an axis, a shape tuple, an index, a bound) is a plain Python *value*. A function name in
a ``Call`` is a name in the array namespace ``xp`` (NumPy plus :mod:`.kernels` for NumPy, the
array-API adapter for that backend).

Each target reads the same forms (SymPy's printers work this way, one class per target):
``lower/numpy.py`` prints NumPy source and plans in-place statements on the forms,
``lower/scalar.py`` prints math-module source, and the tape and constant folding run a form
through :func:`evaluator`, which calls the namespace's functions directly (no text, no eval).
The forms are tiny trees of bounded depth (an op's own definition), so walking them by
recursion is safe.
"""
from __future__ import annotations

import functools
import operator

import numpy as np


class _Form:
    """Base of the forms: immutable, fields named by ``__slots__``, printed as their call."""

    __slots__ = ()

    def __init__(self, *values):
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, key, value):
        raise AttributeError("lowering forms are immutable")

    def __repr__(self):
        fields = ", ".join(repr(getattr(self, name)) for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Arg(_Form):
    """The ``index``-th input of the node being lowered (``dtype``: its dtype)."""
    __slots__ = ("index", "dtype")

    def __init__(self, index: int, dtype=np.dtype(np.float64)):
        super().__init__(index, np.dtype(dtype))


class Call(_Form):
    """``xp.fn(*args, **dict(params))``; ``fn`` is a name in ``xp``, or a Python callable (a
    user op's NumPy forward, :func:`symdiff.ops.custom.define_op`), which the printers bind as
    a constant of the generated code (never printed as text)."""
    __slots__ = ("fn", "args", "params")

    def __init__(self, fn: str, args: tuple, params: tuple = ()):
        super().__init__(fn, tuple(args), tuple(params))


class Infix(_Form):
    """``left symbol right`` for a Python binary operator (``+ - * / ** @ < <= > >= == !=``)."""
    __slots__ = ("symbol", "left", "right")


class Prefix(_Form):
    """``symbol operand`` for a Python unary operator (``-``)."""
    __slots__ = ("symbol", "operand")


class Attr(_Form):
    """``obj.name`` (``x.T``)."""
    __slots__ = ("obj", "name")


class Subscript(_Form):
    """``obj[key]``, ``key`` a constant index value."""
    __slots__ = ("obj", "key")


class Tuple(_Form):
    """``(item, ...)``, a tuple of forms (concatenate's and stack's operands)."""
    __slots__ = ("items",)

    def __init__(self, items):
        super().__init__(tuple(items))


FORMS = (Arg, Call, Infix, Prefix, Attr, Subscript, Tuple)

#: the Python operator behind each infix and prefix symbol
BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "**": operator.pow, "@": operator.matmul, "<": operator.lt, "<=": operator.le,
          ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
UNARY = {"-": operator.neg}


def evaluator(form, xp, convert=None):
    """A function of the input values computing ``form`` with the namespace ``xp``.

    ``convert`` (the array-API adapter's ``constant``) is applied once to every NumPy array
    value in the form, as the printers do for the constants they bind. The common shapes (a
    call or an operator on the inputs in order) become the namespace function itself or a
    ``functools.partial`` of it, so a tape step costs one Python call.
    """
    n = _in_order(form)
    if n is not None and isinstance(form, Call):
        fn = function_of(form, xp)
        return functools.partial(fn, **dict(form.params)) if form.params else fn
    if n is not None and isinstance(form, Infix):
        return BINARY[form.symbol]
    if n is not None and isinstance(form, Prefix):
        return UNARY[form.symbol]
    run = _compile(form, xp, convert)
    return lambda *values: run(values)


def function_of(call: Call, xp):
    """The function a ``Call`` form calls: its callable itself, or ``xp``'s function of its
    name."""
    return call.fn if callable(call.fn) else getattr(xp, call.fn)


def _in_order(form):
    """The arity when ``form`` applies one function to ``Arg(0), Arg(1), ...`` exactly."""
    if isinstance(form, Call):
        items = form.args
    elif isinstance(form, Infix):
        items = (form.left, form.right)
    elif isinstance(form, Prefix):
        items = (form.operand,)
    else:
        return None
    if all(isinstance(a, Arg) and a.index == k for k, a in enumerate(items)):
        return len(items)
    return None


def _compile(form, xp, convert):
    """``values -> value`` for one form (recursive over the form's few levels)."""
    if isinstance(form, Arg):
        return operator.itemgetter(form.index)
    if isinstance(form, Call):
        fn, kwargs = function_of(form, xp), dict(form.params)
        parts = [_compile(a, xp, convert) for a in form.args]
        return lambda values: fn(*[p(values) for p in parts], **kwargs)
    if isinstance(form, Infix):
        op, left, right = (BINARY[form.symbol], _compile(form.left, xp, convert),
                           _compile(form.right, xp, convert))
        return lambda values: op(left(values), right(values))
    if isinstance(form, Prefix):
        op, operand = UNARY[form.symbol], _compile(form.operand, xp, convert)
        return lambda values: op(operand(values))
    if isinstance(form, Attr):
        obj, name = _compile(form.obj, xp, convert), form.name
        return lambda values: getattr(obj(values), name)
    if isinstance(form, Subscript):
        obj, key = _compile(form.obj, xp, convert), _value(form.key, convert)
        return lambda values: obj(values)[key]
    if isinstance(form, Tuple):
        parts = [_compile(a, xp, convert) for a in form.items]
        return lambda values: tuple(p(values) for p in parts)
    value = _value(form, convert)
    return lambda values: value


def _value(value, convert):
    if convert is not None and isinstance(value, np.ndarray):
        return convert(value)
    return value
