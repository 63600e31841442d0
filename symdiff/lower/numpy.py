"""The NumPy printer: a graph becomes straight-line Python/NumPy source.

One statement per node in topological order, printed from the op's lowering form (see
:mod:`symdiff.ops.lowering`) against the array namespace ``xp`` (NumPy plus the kernels of
:mod:`symdiff.ops.kernels`, or the array-API adapter). Inputs are bound by position to
parameters ``in_0, in_1, ...``; user names appear only in comments. Values reach the source
only through :class:`~.quote.Quoter` (literals or bound constants).

Two plans are made on the forms, not on text: a fresh temporary that dies at a node of the
same shape and dtype is overwritten in place (``t += u`` for an arithmetic operator,
``xp.f(..., out=t)`` for a NumPy ufunc call), and a temporary is deleted right after its last
use, so peak memory stays near the live set. The compile driver (``symdiff.compiler``)
compiles the source and registers it with ``linecache`` so it shows in tracebacks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import NonFiniteError, SymdiffError, fmt_shape
from ..graph import Expr, toposort
from ..ops.lowering import Arg, Attr, Call, Infix, Prefix, Subscript, Tuple
from ..printing import bounded_infix, infix_short
from .plan import dead_fresh_inputs, outputs_to_copy
from .quote import Quoter, comment, is_literal

COMMENT_LIMIT = 20_000  # graphs larger than this get shape-only comments (infix is unreadable)
_AUGMENTABLE = ("+", "-", "*", "/")  # Python operators with an augmented assignment

_DTYPE_NAMES = {np.dtype(d): str(np.dtype(d)) for d in ("float64", "float32", "int64", "int32",
                                                         "bool")}


def lowering_form(node: Expr, array_api: bool = False):
    """The form of ``node``'s op over ``Arg``s carrying the input dtypes."""
    args = [Arg(k, i.dtype) for k, i in enumerate(node.inputs)]
    return node.op.lower_standard(*args) if array_api else node.op.lower(*args)


class FormPrinter:
    """Prints a form with ``args[k]`` standing for ``Arg(k)``; ``prefix`` is the namespace
    (``"xp."``). Recursive over the form's few levels (an op's own definition)."""

    def __init__(self, quoter: Quoter, prefix: str = "xp."):
        self.quoter = quoter
        self.prefix = prefix

    def print(self, form, args: Sequence[str], operand: bool = False, out: str = "") -> str:
        """``form`` as source; ``out``: a buffer name a top-level call writes into."""
        if isinstance(form, Arg):
            return args[form.index]
        if isinstance(form, Call):
            parts = [self.print(a, args) for a in form.args]
            parts += [f"{k}={self.quoter.value(v)}" for k, v in form.params]
            parts += [f"out={out}"] if out else []
            if callable(form.fn):  # a user op's forward: bound as a constant, as a value is
                return f"{self.quoter.bind(form.fn)}({', '.join(parts)})"
            return f"{self.prefix}{form.fn}({', '.join(parts)})"
        if isinstance(form, Infix):
            text = (f"{self.print(form.left, args, operand=True)} {form.symbol} "
                    f"{self.print(form.right, args, operand=True)}")
            return f"({text})" if operand else text
        if isinstance(form, Prefix):
            text = f"{form.symbol}{self.print(form.operand, args, operand=True)}"
            return f"({text})" if operand else text
        if isinstance(form, Attr):
            return f"{self.print(form.obj, args, operand=True)}.{form.name}"
        if isinstance(form, Subscript):
            return f"{self.print(form.obj, args, operand=True)}[{self.quoter.bind(form.key)}]"
        if isinstance(form, Tuple):
            return "(" + ", ".join(self.print(a, args) for a in form.items) + ",)"
        return self.quoter.value(form, operand=operand)


def describe(node: Expr, text: str, label: str | None = None) -> str:
    """The comment after a statement: what the node computes, shape and dtype, and for a
    gradient result which derivative it is (``dJ/dW1 = ...``)."""
    head = f"{label} = {text}" if label else text
    return comment(f"{head}  {node.shape} {_DTYPE_NAMES.get(node.dtype, node.dtype)}")


def _is_ufunc_call(form) -> bool:
    """A call of a NumPy ufunc on the inputs and values, without keyword params."""
    return (isinstance(form, Call) and not form.params
            and isinstance(form.fn, str) and isinstance(getattr(np, form.fn, None), np.ufunc)
            and not any(isinstance(a, (Call, Infix, Prefix, Attr, Subscript, Tuple))
                        for a in form.args))


def _in_place(node: Expr, form, args: list[str], positions, printer: FormPrinter):
    """(buffer name, statement) that computes ``node`` into a dead input's buffer, or None:
    ``t += u`` for arithmetic, ``xp.f(..., out=t)`` for a NumPy ufunc call."""
    if not positions:
        return None
    if isinstance(form, Infix) and form.symbol in _AUGMENTABLE:
        if not (isinstance(form.left, Arg) and isinstance(form.right, Arg)):
            return None
        left, right = form.left.index, form.right.index
        if left in positions:
            return args[left], f"{args[left]} {form.symbol}= {args[right]}"
        if node.op.commutative and right in positions:
            return args[right], f"{args[right]} {form.symbol}= {args[left]}"
        return None
    if node.ndim and _is_ufunc_call(form):
        target = args[positions[0]]
        return target, printer.print(form, args, out=target)
    return None


def _finite_checker(descriptions: list[str]):
    """The ``check_finite`` hook: raise NonFiniteError naming the first non-finite value."""
    def check_finite(value, k):
        if not np.all(np.isfinite(value)):
            raise NonFiniteError(f"non-finite value (nan or inf) first appears at "
                                 f"{descriptions[k]}")
    return check_finite


def needs_array_constant(node: Expr, inp: Expr) -> bool:
    """True where a literal-eligible constant input must be bound as an array instead: when
    every input is a constant (Python would compute with its own number types) or when the
    constant promotes the result's dtype (NumPy treats a Python literal as weakly typed)."""
    if not inp.is_const or not is_literal(inp.value):
        return False
    if all(i.is_const for i in node.inputs):
        return True
    others = [i.dtype for i in node.inputs if not i.is_const]
    return np.result_type(*others) != np.result_type(*others, inp.dtype)


def return_text(results: list[str], layout: str) -> str:
    """The returned expression: ``single`` (one value), ``tuple`` (all values) or
    ``value_grads`` (``(value, (grad, ...))``, what compile_grad returns)."""
    if layout == "single":
        return results[0]
    if layout == "value_grads":
        return f"({results[0]}, (" + "".join(f"{r}, " for r in results[1:]) + "))"
    return "(" + ", ".join(results) + ",)"


def generate(outputs: Sequence[Expr], inputs: Sequence[Expr], name: str = "symdiff_fn",
             layout: str = "tuple", check_finite: bool = False, array_api: bool = False,
             labels: dict[int, str] | None = None):
    """Source text and constants of a function computing ``outputs`` from ``inputs``; it
    returns them as ``layout`` says (see :func:`return_text`). With ``check_finite`` every
    float input and statement result is checked for nan/inf. An output that would alias an
    input, a constant, a read-only view or another output is returned as a copy, so the
    caller owns every array it gets. ``labels`` (id(node) -> ``dJ/dW1``) name the gradients
    in comments and errors."""
    labels = labels or {}
    order = toposort(outputs)
    quoter = Quoter()
    printer = FormPrinter(quoter)
    names: dict[int, str] = {}
    params = []
    header = []
    for k, v in enumerate(inputs):
        names[id(v)] = f"in_{k}"
        params.append(f"in_{k}")
        header.append(comment(f"    # in_{k}: {v.name} {fmt_shape(v.shape)} {v.dtype}"))

    # statements (node, text); aliases (stop_gradient) share their input's name
    statements: list[tuple[Expr, str]] = []
    # in-place statements (t += u, xp.f(..., out=t)) need mutable NumPy buffers; the array-API
    # form also runs on immutable (JAX) and lazy (Dask) arrays
    reusable = {} if array_api else dead_fresh_inputs(order, outputs)
    temp = 0
    for node in order:
        if id(node) in names:
            continue
        if node.is_const:
            names[id(node)] = quoter.constant(node.value)
            continue
        if node.is_var:
            raise SymdiffError(f"compile: the outputs depend on variable {node.name!r}, which is "
                               f"not among the inputs")
        args = [quoter.constant(i.value, force_array=True) if needs_array_constant(node, i)
                else names[id(i)] for i in node.inputs]
        if node.op.alias:
            names[id(node)] = args[0]
            continue
        form = lowering_form(node, array_api)
        in_place = _in_place(node, form, args, reusable.get(id(node), ()), printer)
        if in_place:
            names[id(node)], text = in_place
            statements.append((node, text))
            continue
        target = f"t{temp}"
        temp += 1
        statements.append((node, f"{target} = {printer.print(form, args)}"))
        names[id(node)] = target

    # free temporaries after their last use (outputs are kept)
    keep = {names[id(o)] for o in outputs}
    last_use: dict[str, int] = {}
    for index, (node, _) in enumerate(statements):
        for inp in node.inputs:
            last_use[names[id(inp)]] = index
    dead_after: dict[int, list[str]] = {}
    for tname, index in last_use.items():
        if tname.startswith("t") and tname not in keep:
            dead_after.setdefault(index, []).append(tname)

    body = list(header)
    readable = bounded_infix(order, width=48) if len(order) <= COMMENT_LIMIT else {}
    checked: list[str] = []
    if check_finite:
        for k, v in enumerate(inputs):
            if v.dtype.kind == "f":
                body.append(f"    check_finite(in_{k}, {len(checked)})")
                checked.append(f"input {v.name!r}")
    for index, (node, text) in enumerate(statements):
        label = labels.get(id(node))
        body.append(f"    {text:<36}  # {describe(node, readable.get(id(node), ''), label)}")
        if check_finite and node.dtype.kind == "f":
            body.append(f"    check_finite({names[id(node)]}, {len(checked)})")
            what = f"'{node.op.name}' node {infix_short(node, 70)}"
            checked.append(f"{what} ({label})" if label else what)
        if index in dead_after:
            body.append(f"    del {', '.join(sorted(dead_after[index]))}")
    if check_finite:
        quoter.constants["check_finite"] = _finite_checker(checked)
    results = []
    fresh = outputs_to_copy(order, outputs)
    for k, o in enumerate(outputs):
        ref = names[id(o)]
        if k in fresh and not array_api:
            ref = f"xp.array({ref}, copy=True)"
        elif o.is_const:
            ref = f"xp.asarray({ref})"
        results.append(ref)
    body.append(f"    return {return_text(results, layout)}")
    source = f"def {name}({', '.join(params)}):\n" + "\n".join(body) + "\n"
    return source, quoter.constants
