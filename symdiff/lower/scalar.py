"""The math-module printer: a graph of float64 scalars becomes Python code over floats.

NumPy calls on 0-d values cost about a microsecond each, so a graph whose every node is a
0-d float64 (or a comparison's bool) also gets this lowering: each op's ``scalar`` form (a
function of Python floats, :attr:`Op.scalar`, e.g. ``math.exp``), or its operator form printed
as Python float arithmetic. Plain floats pass straight through; NumPy scalars of any bool/int/float
dtype, Python ints and 0-d arrays are converted by :func:`to_float` exactly as the NumPy path
would cast them, and anything else goes back to NumPy by raising :class:`Fallback`; domain errors and overflow raise too (``math.log(-1.0)``, ``math.pow(-4.0,
0.5)``), and the compiled function then computes the call with NumPy, so both paths give one
result (nan and inf included). Nodes of other dtypes (integer arithmetic, bool arithmetic,
which Python would do on ints) keep the whole graph on the NumPy path.
"""
from __future__ import annotations

import builtins
import functools
from typing import Sequence

import numpy as np

from ..graph import Expr
from ..ops.lowering import Arg, Infix, Prefix
from .numpy import FormPrinter, return_text
from .quote import LITERAL_DTYPES, Quoter

FLOAT64 = np.dtype(np.float64)


class Fallback(Exception):
    """Raised by the scalar function for arguments it leaves to the NumPy path."""


# the argument types the NumPy path casts to float64 (``same_kind``): Python bool/int, NumPy
# bool, integer and float scalars; ``float(x)`` rounds exactly as ``astype(float64)`` does
_TO_FLOAT = frozenset([float, bool, int, np.bool_, *(np.dtype(c).type for c in
                                              np.typecodes["AllInteger"] + "efdg")])
_EXACT = _TO_FLOAT - {int}  # converted inline by the guard
_INT_RANGE = (-2 ** 63, 2 ** 64 - 1)  # Python ints NumPy turns into int64/uint64


def to_float(x) -> float:
    """``x`` as the Python float the NumPy path would compute with (``check_input``: an array
    cast to float64 under ``same_kind``), or :class:`Fallback` for anything else (complex,
    strings, arrays of other shapes, ints beyond 64 bits), which the NumPy path then accepts
    or refuses with its InputError."""
    t = type(x)
    if t in _TO_FLOAT:
        if t is int and not _INT_RANGE[0] <= x <= _INT_RANGE[1]:
            raise Fallback
        return float(x)
    if t is np.ndarray and x.shape == () and x.dtype.kind in "biuf":
        return float(x)
    raise Fallback


def _eligible(node: Expr) -> bool:
    """float64 results, or bool from non-bool inputs (a comparison); constants of a literal
    dtype. Python's int and bool arithmetic differ from NumPy's, so they stay with NumPy."""
    if node.shape != () or node.dtype not in LITERAL_DTYPES:
        return False
    if node.op is None:
        return True
    if node.dtype == FLOAT64:
        return True
    return node.dtype == bool and not any(i.dtype == bool for i in node.inputs)


def _operator_form(node: Expr):
    """The op's form when it is one Python operator on the inputs (printed as float
    arithmetic), else None."""
    form = node.op.lower(*[Arg(k, i.dtype) for k, i in enumerate(node.inputs)])
    if isinstance(form, Infix) and form.symbol != "@":
        leaves = (form.left, form.right)
    elif isinstance(form, Prefix):
        leaves = (form.operand,)
    else:
        return None
    return form if all(isinstance(a, Arg) for a in leaves) else None


def scalar_function(order: Sequence[Expr], outputs: Sequence[Expr], inputs: Sequence[Expr],
                    layout: str, name: str = "symdiff_fn"):
    """The math-module function of the graph, or None when some node has no scalar form."""
    if any(v.dtype != FLOAT64 or v.shape != () for v in inputs):
        return None
    if not all(_eligible(n) for n in order):
        return None
    quoter = Quoter(scalar=True)
    printer = FormPrinter(quoter, prefix="")
    functions: dict[object, str] = {}
    namespace: dict[str, object] = {"to_float": to_float, "EXACT": _EXACT,
                                    "asarray": np.asarray}
    names = {id(v): f"in_{k}" for k, v in enumerate(inputs)}
    body = []
    for node in order:
        if id(node) in names:
            continue
        if node.is_const:
            names[id(node)] = quoter.constant(node.value)
            continue
        if node.is_var:
            return None
        args = [names[id(i)] for i in node.inputs]
        if node.op.alias:
            names[id(node)] = args[0]
            continue
        if node.op.scalar is not None:
            fn = functions.get(node.op)
            if fn is None:
                fn = functions[node.op] = f"{node.op.name}_{len(functions)}"
                params = node.op.scalar_params()
                scalar = node.op.scalar
                namespace[fn] = functools.partial(scalar, **params) if params else scalar
            text = f"{fn}({', '.join(args)})"
        else:
            form = _operator_form(node)
            if form is None:
                return None
            text = printer.print(form, args)
        names[id(node)] = f"t{len(body)}"
        body.append(f"    t{len(body)} = {text}")
    results = [names[id(o)] if not o.is_const else f"asarray({names[id(o)]})" for o in outputs]
    params = [f"in_{k}" for k in range(len(inputs))]
    guard = [f"    if type({p}) is not float: {p} = float({p}) if type({p}) in EXACT else "
             f"to_float({p})" for p in params]
    source = "\n".join([f"def {name}({', '.join(params)}):", *guard, *body,
                        f"    return {return_text(results, layout)}"]) + "\n"
    namespace.update(quoter.constants)
    exec(builtins.compile(source, "<symdiff-scalar>", "exec"), namespace)  # our own source
    return namespace[name]
