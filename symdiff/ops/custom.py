"""User-defined ops: ``sd.define_op(name, forward, bprop, shape=None, jvp=None)``.

A user op is an :class:`~.base.Op` subclass made at run time, with the user's functions as its
rules: ``forward(*arrays)`` is its NumPy lowering (a ``Call`` form whose function is the
callable itself, bound as a constant of the generated code, never printed as text or
evaluated), ``bprop(inputs, out, g)`` its reverse rule built from symdiff ops (so it can be
differentiated again), ``shape(*input_shapes)`` its shape rule (default: the first input's
shape) and ``jvp(inputs, out, tangents)`` an optional forward rule (default: grad.py's transpose
of the bprop, as for every op). The dtype follows the first input.

Design choices: user ops are kept in :data:`USER_OPS`, apart from the built-in
:data:`~.base.REGISTRY`, so the parser, the SymPy bridge and the graph-file loader never see
them; ``sd.save`` refuses a graph holding one (a graph file holds no Python functions). A name
is defined once: a different definition under a used name (or a built-in op's name) raises
SymdiffError; defining the same functions again (a notebook cell run twice) returns the same op.
Outside NumPy there is no forward: the array-API backend raises SymdiffError naming the op; the
scalar fast path leaves graphs holding one to NumPy.
"""
from __future__ import annotations

import inspect
import keyword
import threading
from typing import Callable

import numpy as np

from ..errors import ShapeError, SymdiffError, fmt_shape
from ..graph import Expr, apply, as_expr
from .base import REGISTRY, Op
from .lowering import Call

USER_OPS: dict[str, type] = {}
_lock = threading.Lock()


class UserOp(Op):
    """Base of the ops made by :func:`define_op` (not registered: see the module docstring)."""

    user_defined = True
    forward: Callable = None   # type: ignore[assignment]
    rule: Callable = None      # type: ignore[assignment]  # bprop(inputs, out, g)
    shape_rule: Callable | None = None
    arity: int | None = None   # number of inputs, when the forward's signature tells

    def infer(self, *inputs):
        if self.shape_rule is None:
            return inputs[0].shape, inputs[0].dtype
        try:
            shape = type(self).shape_rule(*[i.shape for i in inputs])
            shape = tuple(int(n) for n in shape)
        except SymdiffError:
            raise
        except Exception as exc:
            shown = ", ".join(fmt_shape(i.shape) for i in inputs)
            raise ShapeError(f"{self.name}: its shape rule failed for inputs of shapes {shown} "
                             f"({type(exc).__name__}: {exc})") from None
        return shape, inputs[0].dtype

    def lower(self, *args):
        return Call(type(self).forward, args)

    def lower_standard(self, *args):
        raise SymdiffError(f"{self.name}: a user-defined op has only a NumPy forward; compile "
                           f"with the default NumPy backend")

    def bprop(self, inputs, out, g):
        grads = type(self).rule(tuple(inputs), out, g)
        if isinstance(grads, Expr) or grads is None:
            grads = [grads]
        if not isinstance(grads, (list, tuple)) or len(grads) != len(inputs):
            raise SymdiffError(f"{self.name}: bprop must return one Expr (or None) per input "
                               f"({len(inputs)}), got {grads!r}")
        checked = []
        for k, (inp, grad_k) in enumerate(zip(inputs, grads)):
            if grad_k is None:
                checked.append(None)
                continue
            if not isinstance(grad_k, (Expr, int, float, np.ndarray)):
                raise SymdiffError(f"{self.name}: bprop's gradient for input {k} must be an "
                                   f"Expr or None, got {type(grad_k).__name__}")
            grad_k = as_expr(grad_k)
            try:
                np.broadcast_shapes(grad_k.shape, inp.shape)
            except ValueError:
                raise ShapeError(f"{self.name}: bprop's gradient for input {k} has shape "
                                 f"{fmt_shape(grad_k.shape)}, input {k} has shape "
                                 f"{fmt_shape(inp.shape)}") from None
            checked.append(grad_k)
        return checked


def _same_function(a, b) -> bool:
    """``a`` and ``b`` are one function, or the same definition made twice (same code,
    defaults and captured values): re-running a notebook cell defines no new op."""
    if a is b:
        return True
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is None or code_b is None or code_a != code_b:
        return False
    cells_a = [c.cell_contents for c in (a.__closure__ or ())]
    cells_b = [c.cell_contents for c in (b.__closure__ or ())]
    return (a.__defaults__ == b.__defaults__ and len(cells_a) == len(cells_b)
            and all(x is y for x, y in zip(cells_a, cells_b)))


def _arity(forward) -> int | None:
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return sum(1 for p in params if p.default is p.empty
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def define_op(name: str, forward: Callable, bprop: Callable, shape: Callable | None = None,
              jvp: Callable | None = None) -> Callable[..., Expr]:
    """Define an op from a NumPy forward and a symbolic bprop; returns its builder.

    ``forward(*arrays)`` computes the op with NumPy (the generated code calls it); ``bprop(
    inputs, out, g)`` returns one Expr (or None: no gradient) per input, built from symdiff
    ops, so the op is differentiable twice when the bprop is; ``shape(*input_shapes)`` gives
    the output shape (default: the first input's); ``jvp(inputs, out, tangents)`` an optional
    forward-mode rule (default: the transpose of the bprop). The dtype follows the first input.
    The op works with grad, jvp/hvp, check_grad, printing and compile (NumPy backend). A graph
    holding it cannot be saved with ``sd.save`` (GraphFileError: a file holds no Python
    functions). SymdiffError for a bad name, a built-in op's name, or another definition under
    a name already used (the same definition again returns the same builder).

    >>> import numpy as np, symdiff as sd
    >>> softsign = sd.define_op("softsign_doc", lambda x: x / (1 + np.abs(x)),
    ...                         lambda inputs, out, g: [g / (1 + abs(inputs[0])) ** 2])
    >>> x = sd.var("x")
    >>> float(sd.compile(sd.grad(softsign(x), x))(1.0))
    0.25
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SymdiffError(f"define_op: name must be a Python identifier, got {name!r}")
    for what, value, optional in (("forward", forward, False), ("bprop", bprop, False),
                                  ("shape", shape, True), ("jvp", jvp, True)):
        if not (callable(value) or (optional and value is None)):
            raise SymdiffError(f"define_op: {what} must be a function, got "
                               f"{type(value).__name__}")
    if name in REGISTRY:
        raise SymdiffError(f"define_op: {name!r} is the name of a built-in op; choose another")
    with _lock:
        known = USER_OPS.get(name)
        if known is not None:
            pairs = ((known.forward, forward), (known.rule, bprop),
                     (known.shape_rule, shape), (known.user_jvp, jvp))
            if all((a is None and b is None) or (a is not None and b is not None
                                                 and _same_function(a, b)) for a, b in pairs):
                return known.builder
            raise SymdiffError(f"define_op: an op named {name!r} is already defined with other "
                               f"functions; give the new op another name")
        attrs = dict(name=name, user_defined=True, forward=staticmethod(forward),
                     rule=staticmethod(bprop),
                     shape_rule=staticmethod(shape) if shape else None,
                     user_jvp=staticmethod(jvp) if jvp else None,
                     arity=_arity(forward),
                     __doc__=f"User-defined op {name!r} (sd.define_op).")
        if jvp is not None:
            attrs["jvp"] = lambda self, inputs, out, tangents: jvp(tuple(inputs), out,
                                                                   tuple(tangents))
        cls = type("".join(p.capitalize() for p in name.split("_")) or name, (UserOp,), attrs)
        op = cls()

        def builder(*inputs) -> Expr:
            if not inputs:
                raise SymdiffError(f"{name}: expected at least one input")
            if cls.arity is not None and len(inputs) != cls.arity:
                raise SymdiffError(f"{name}: expected {cls.arity} input(s) (as its forward), "
                                   f"got {len(inputs)}")
            return apply(op, tuple(as_expr(i) for i in inputs))

        builder.__name__ = builder.__qualname__ = name
        builder.__doc__ = f"Apply the user-defined op {name!r}."
        cls.builder = staticmethod(builder)
        USER_OPS[name] = cls
        return builder
