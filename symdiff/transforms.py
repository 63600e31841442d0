"""Function transforms, JAX-style: ``value_and_grad`` and ``jit`` on plain Python functions.

A function written with ``np.`` calls (dispatched to symdiff, see :mod:`symdiff.ops.dispatch`)
or ``sd.`` calls is *traced*: called once on variables named after its parameters, with the
arguments' shapes and dtypes, giving a graph; the graph is compiled, and the compiled function
is kept per shape/dtype signature in a small LRU cache (a new shape traces and compiles again,
as ``jax.jit`` does). Python floats and ints are traced as scalar variables (as JAX traces
them), so changing their value does not recompile; every argument must be an array or a number.

Errors raised while tracing (a ShapeError inside the function, a Python ``if`` on an
expression) are re-raised as the same SymdiffError class with the function's name, the traced
arguments (name, shape, dtype) and the line of the user's function where it happened.
"""
from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from .compiler import compile as compile_graph
from .compiler import compile_grad
from .errors import SymdiffError
from .graph import Expr, as_expr, var

CACHE_SIZE = 8  # compiled signatures kept per transformed function


def _argument_names(fn: Callable, count: int) -> list[str]:
    """Variable names for ``count`` positional arguments: the parameter names of ``fn``
    (``*args`` entries as ``args_0``, ``args_1``...); ``arg0``... when there is no signature."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for param in params:
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            names.append(param.name)
        elif param.kind == param.VAR_POSITIONAL:
            names += [f"{param.name}_{k}" for k in range(count - len(names))]
            break
    names += [f"arg{k}" for k in range(len(names), count)]
    return names[:count]


def _as_array(value, name: str, who: str) -> np.ndarray:
    """An argument as an array: arrays, NumPy scalars and Python numbers only."""
    if isinstance(value, Expr):
        raise SymdiffError(f"{who}: argument {name!r} is a symbolic expression; call the "
                           f"transformed function on arrays or numbers (or call the original "
                           f"function to build a graph)")
    if not isinstance(value, (np.ndarray, np.generic, int, float)):
        raise SymdiffError(f"{who}: argument {name!r} must be a NumPy array or a number, got "
                           f"{type(value).__name__}")
    array = np.asarray(value)
    if isinstance(value, int) and not isinstance(value, bool):  # a Python bool stays a bool
        array = array.astype(np.int64)
    return array


def _signature(arrays) -> tuple:
    return tuple((a.shape, a.dtype.str) for a in arrays)


def _user_line(error: BaseException, fn: Callable) -> str | None:
    """``file:line `source``` of the deepest traceback frame in ``fn``'s file, or None."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return None
    where = None
    tb = error.__traceback__
    while tb is not None:
        frame_code = tb.tb_frame.f_code
        if frame_code.co_filename == code.co_filename:
            where = (frame_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if where is None:
        return None
    import linecache
    source = linecache.getline(*where).strip()
    return f"{where[0]}:{where[1]}" + (f" `{source}`" if source else "")


class _Traced:
    """The shared machinery: argument checks, tracing with located errors, the LRU cache."""

    def __init__(self, fn: Callable, who: str):
        if not callable(fn):
            raise SymdiffError(f"{who}: expected a function, got {type(fn).__name__}")
        self.fn = fn
        self.who = who
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def _arrays(self, args, kwargs):
        if kwargs:
            raise SymdiffError(f"{self.who}: pass the arguments positionally (got keyword "
                               f"arguments {sorted(kwargs)})")
        names = _argument_names(self.fn, len(args))
        return names, [_as_array(a, n, self.who) for a, n in zip(args, names)]

    def trace(self, names, arrays):
        """Call the function on variables shaped like ``arrays``: (variables, its result)."""
        variables = [var(n, a.shape, a.dtype) for n, a in zip(names, arrays)]
        try:
            return variables, self.fn(*variables)
        except SymdiffError as error:
            shown = ", ".join(f"{n}: {a.shape} {a.dtype}" for n, a in zip(names, arrays))
            line = _user_line(error, self.fn)
            where = f" at {line}" if line else ""
            fname = getattr(self.fn, "__name__", "function")
            raise type(error)(f"{self.who}: tracing {fname}({shown}){where}: "
                              f"{error}") from None

    def compiled(self, names, arrays):
        """The compiled function of this signature (traced and compiled on first use)."""
        key = _signature(arrays)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                return entry
        entry = self.build(names, arrays)
        with self._lock:
            self._cache[key] = entry
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return entry

    def cache_size(self) -> int:
        """How many signatures are compiled (a new shape or dtype adds one)."""
        return len(self._cache)


class _ValueAndGrad(_Traced):
    def __init__(self, fn, argnums):
        super().__init__(fn, "value_and_grad")
        if isinstance(argnums, (list, tuple)):
            self.argnums, self.single = tuple(argnums), False
        else:
            self.argnums, self.single = (argnums,), True
        for k in self.argnums:
            if isinstance(k, bool) or not isinstance(k, int):
                raise SymdiffError(f"value_and_grad: argnums must be an int or a tuple of "
                                   f"ints, got {argnums!r}")

    def build(self, names, arrays):
        count = len(arrays)
        for k in self.argnums:
            if not -count <= k < count:
                raise SymdiffError(f"value_and_grad: argnums {k} is out of range for "
                                   f"{count} argument(s)")
            if arrays[k].dtype.kind != "f":
                raise SymdiffError(f"value_and_grad: argument {names[k]!r} (argnums {k}) has "
                                   f"dtype {arrays[k].dtype}; gradients need float inputs "
                                   f"(pass 1.0, not 1)")
        variables, out = self.trace(names, arrays)
        if isinstance(out, (tuple, list)):
            raise SymdiffError("value_and_grad: the function must return one scalar, got a "
                               f"{type(out).__name__}")
        out = as_expr(out)
        if out.shape != ():
            raise SymdiffError(f"value_and_grad: the function must return a scalar, got shape "
                               f"{out.shape}")
        wrt = [variables[k] for k in self.argnums]
        return compile_grad(out, wrt, inputs=variables)

    def __call__(self, *args, **kwargs):
        names, arrays = self._arrays(args, kwargs)
        value, grads = self.compiled(names, arrays)(*arrays)
        return value, (grads[0] if self.single else tuple(grads))


class _Jit(_Traced):
    def __init__(self, fn):
        super().__init__(fn, "jit")

    def build(self, names, arrays):
        variables, out = self.trace(names, arrays)
        kind = type(out) if isinstance(out, (tuple, list)) else None
        outputs = [as_expr(o) for o in out] if kind else [as_expr(out)]
        return kind, compile_graph(outputs, inputs=variables)

    def __call__(self, *args, **kwargs):
        names, arrays = self._arrays(args, kwargs)
        kind, function = self.compiled(names, arrays)
        values = function(*arrays)
        return kind(values) if kind else values[0]


def value_and_grad(fn: Callable, argnums=0) -> Callable:
    """``fn`` and its gradient, JAX-style: a callable on arrays returning ``(value, grad)``.

    ``fn`` takes arrays and numbers and returns a scalar, written with ``np.`` calls (which
    dispatch to symdiff on traced arguments) or ``sd.`` calls. ``argnums``: an int (``grad`` is
    one array) or a tuple (``grad`` is a tuple). Traced and compiled once per shape/dtype
    signature. Raises SymdiffError for non-array arguments, a non-scalar result, or (naming the
    argument shapes and the line of ``fn``) an error while tracing.

    >>> import numpy as np, symdiff as sd
    >>> f = sd.value_and_grad(lambda w, x: np.sum(np.tanh(w * x)))
    >>> value, g = f(np.zeros(3), np.ones(3)); float(value), g.tolist()
    (0.0, [1.0, 1.0, 1.0])
    """
    return _ValueAndGrad(fn, argnums)


def jit(fn: Callable) -> Callable:
    """``fn`` traced and compiled once per shape/dtype signature: a callable on arrays giving
    ``fn``'s value(s) (a tuple or list of outputs keeps its type).

    >>> import numpy as np, symdiff as sd
    >>> f = sd.jit(lambda x: (np.exp(x), x.sum()))
    >>> [v.tolist() for v in f(np.zeros(2))]
    [[1.0, 1.0], 0.0]
    """
    return _Jit(fn)
