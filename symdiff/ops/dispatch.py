"""NumPy dispatch: ``np.tanh(x)``, ``np.dot(W, x)``, ``W0 @ x`` on expressions build symdiff nodes.

``Expr.__array_ufunc__`` and ``Expr.__array_function__`` (graph.py, the operator hook) call
:func:`array_ufunc` and :func:`array_function` here (NEP 13 and NEP 18). The table from NumPy
names to builders is *derived*, never kept by hand: a NumPy function or ufunc maps to the public
function of this package with the same name (``np.tanh`` -> ``tanh``, ``np.sum`` -> ``sum``),
plus the aliases an op declares on itself (``numpy_names = ("absolute",)`` on ``abs``,
``("linalg.inv",)`` on ``inv``). An op whose public function takes NumPy's arguments in another
form declares ``numpy_call`` (a function with NumPy's signature). So an op added later gets
dispatch by defining itself, when its name is NumPy's. Last, a NumPy function named after one
of Expr's ndarray-style methods calls the method (``np.var(x)`` is ``x.var()``, the variance).

Anything else raises SymdiffError naming the NumPy function (never an object array of nodes):
a function symdiff lacks (``numpy.fft.fft``), a ufunc method other than a call
(``np.add.reduce``), NumPy-only keywords (``out=``, ``where=``, ``dtype=``).
"""
from __future__ import annotations

import inspect
import threading

from ..errors import SymdiffError
from .base import REGISTRY

_lock = threading.Lock()
_table: dict | None = None
_table_size = -1  # registry size the table was built for (a later op rebuilds it)


def _builders(package) -> dict:
    """NumPy name (``"tanh"``, ``"linalg.inv"``) -> builder, derived from the public functions
    of ``package`` (the ops package, passed in by graph.py's hook: importing it here would be a
    cycle) and the ops' own ``numpy_names`` / ``numpy_call`` facts."""
    global _table, _table_size
    if _table is not None and _table_size == len(REGISTRY):
        return _table
    with _lock:
        public = {name: value for name, value in vars(package).items()
                  if not name.startswith("_") and callable(value)
                  and not isinstance(value, type)}
        table = {}
        for name, builder in public.items():
            cls = REGISTRY.get(name)
            table[name] = getattr(cls, "numpy_call", None) or builder
        for name, cls in REGISTRY.items():
            builder = getattr(cls, "numpy_call", None) or public.get(name)
            for alias in getattr(cls, "numpy_names", ()):
                found = builder or _module_function(package, alias)
                if found is not None:
                    table.setdefault(alias, found)
        _table, _table_size = table, len(REGISTRY)
    return table


def _module_function(package, dotted: str):
    """The function ``a.b`` of a subpackage of ops (``linalg.inv``), or None."""
    target = package
    for part in dotted.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target if callable(target) else None


def numpy_name(func) -> str:
    """``numpy.linalg.inv`` -> ``"linalg.inv"``; ``numpy.sum`` -> ``"sum"``."""
    module = getattr(func, "__module__", None) or "numpy"
    name = getattr(func, "__name__", repr(func))
    if module == "numpy" or not module.startswith("numpy."):
        return name
    return f"{module[len('numpy.'):]}.{name}"


def builder_for(numpy_function_name: str, package):
    """The symdiff builder NumPy's function of this name dispatches to, or None."""
    table = _builders(package)
    if numpy_function_name in table:
        return table[numpy_function_name]
    # np.linalg.inv may be found as ops.linalg.inv when the linalg family exports it
    if "." in numpy_function_name:
        return _module_function(package, numpy_function_name)
    return None


def _method_of(name: str, args):
    """``np.var(x, ...)`` as ``x.var(...)``: a NumPy function named after one of Expr's
    ndarray-style methods calls that method on its first argument (as NumPy itself does for
    array-likes), so ``np.var`` means variance although ``sd.var`` makes variables."""
    from ..graph import Expr
    method = Expr.__dict__.get(name) if "." not in name and not name.startswith("_") else None
    if not args or not isinstance(args[0], Expr) or not inspect.isfunction(method):
        return None
    return lambda *call_args, **kwargs: method(*call_args, **kwargs)


def _call(qualified: str, builder, args, kwargs):
    try:
        return builder(*args, **kwargs)
    except TypeError as error:
        raise SymdiffError(f"{qualified}: these arguments are not supported by symdiff "
                           f"({error})") from None


def array_function(func, args, kwargs, package):
    """``Expr.__array_function__``: ``np.f(..., x, ...)`` -> symdiff's ``f`` (``package``: the
    ops package)."""
    name = numpy_name(func)
    qualified = f"numpy.{name}"
    builder = builder_for(name, package) or _method_of(name, args)
    if builder is None:
        raise SymdiffError(f"{qualified} is not supported by symdiff (no symdiff function of "
                           f"that name); write the expression with symdiff's functions")
    return _call(qualified, builder, args, kwargs)


def array_ufunc(ufunc, method: str, inputs, kwargs, package):
    """``Expr.__array_ufunc__``: ``np.tanh(x)``, ``ndarray * x``, ``W0 @ x`` -> symdiff nodes."""
    qualified = f"numpy.{ufunc.__name__}"
    if method != "__call__":
        raise SymdiffError(f"{qualified}.{method} is not supported by symdiff on expressions; "
                           f"call symdiff's reduction (e.g. sd.sum) instead")
    if kwargs:
        raise SymdiffError(f"{qualified}: the keyword(s) {sorted(kwargs)} are not supported "
                           f"by symdiff on expressions")
    builder = builder_for(ufunc.__name__, package)
    if builder is None:
        raise SymdiffError(f"{qualified} is not supported by symdiff")
    return _call(qualified, builder, inputs, {})
