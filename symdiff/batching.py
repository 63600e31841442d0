"""Batching: ``vmap`` adds a batch axis to a graph-building function, as one graph.

``vmap(fn)`` traces ``fn`` once on unbatched stand-in variables, then rebuilds the traced graph
in topological order with the real (batched) arguments: a node none of whose inputs carries the
batch axis is kept as it is; any other node is rebuilt by its op's batching rule
(``Op.batch(inputs, batched)``, one per op, as JAX's ``primitive_batchers``), which returns the
node for the whole batch with the batch axis first. Most rules are a line: elementwise ops
broadcast, reductions and softmax shift their axes by one, matmul is a broadcasting matmul. An
op without a rule raises SymdiffError naming it; nothing ever loops over the batch at run time.

Batched derivatives (``grad.jacobian``, ``grad.hessian``) stand on this: the Jacobian is the
vjp mapped over the rows of the identity, one reverse pass for all output entries.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

from .errors import ShapeError, SymdiffError, fmt_shape
from .graph import Expr, _make_var, as_expr, paused_gc, toposort
from . import ops

# stand-in variables get fresh names: nested vmaps never share one
_stand_in_names = itertools.count()


def batch_graph(outputs: Sequence[Expr], batched: dict[int, Expr]) -> list[Expr]:
    """``outputs`` rebuilt with a batch axis: ``batched`` maps id(variable) -> its batched
    replacement (batch axis first). Every returned node has the batch axis first (outputs that
    do not depend on a batched variable are broadcast over it). Iterative, in topological
    order."""
    if not batched:
        raise SymdiffError("vmap: no argument is batched (every in_axes entry is None)")
    size = next(iter(batched.values())).shape[0]
    new: dict[int, Expr] = {}
    is_batched: dict[int, bool] = {}
    with paused_gc():
        for node in toposort(list(outputs)):
            if node.op is None:
                replacement = batched.get(id(node))
                new[id(node)] = node if replacement is None else replacement
                is_batched[id(node)] = replacement is not None
                continue
            flags = tuple(is_batched[id(i)] for i in node.inputs)
            if not any(flags):
                new[id(node)], is_batched[id(node)] = node, False
                continue
            result = node.op.batch(tuple(new[id(i)] for i in node.inputs), flags)
            if result.shape != (size,) + node.shape:
                raise SymdiffError(f"internal: the batching rule of '{node.op.name}' gave "
                                   f"shape {fmt_shape(result.shape)}, expected "
                                   f"{fmt_shape((size,) + node.shape)}")
            new[id(node)], is_batched[id(node)] = result, True
    return [new[id(o)] if is_batched[id(o)] else ops.broadcast_to(o, (size,) + o.shape)
            for o in outputs]


def _move_to_front(x: Expr, axis: int, position: int) -> Expr:
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"vmap: in_axes[{position}] = {axis} is out of range for argument "
                         f"{position} of shape {fmt_shape(x.shape)}")
    axis %= x.ndim
    if axis == 0:
        return x
    order = list(range(x.ndim))
    order.insert(0, order.pop(axis))
    return ops.transpose(x, tuple(order))


def vmap(fn: Callable, in_axes=0) -> Callable:
    """``fn`` mapped over a batch axis, as one batched graph (no Python loop at run time).

    ``fn`` builds a graph from Exprs and returns an Expr or a tuple/list of them. ``in_axes``
    is an int (the batch axis of every argument) or a tuple with one entry per argument: an
    int, or None for an argument used unbatched. The result's batch axis is axis 0.

    Raises ShapeError when batched arguments disagree on the batch size or an axis is out of
    range, SymdiffError when an op in ``fn`` has no batching rule.

    >>> import numpy as np, symdiff as sd
    >>> W = sd.var("W", (3, 2)); xs = sd.var("xs", (5, 2))
    >>> ys = sd.vmap(lambda x: sd.tanh(W @ x))(xs)
    >>> ys.shape
    (5, 3)
    >>> per_row = sd.vmap(lambda x, w: sd.sum(x * w), in_axes=(0, None))(xs, sd.var("w", (2,)))
    >>> per_row.shape
    (5,)
    """
    if not callable(fn):
        raise SymdiffError(f"vmap: fn must be callable, got {fn!r}")

    def mapped(*args):
        args = [as_expr(a) for a in args]
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise SymdiffError(f"vmap: in_axes has {len(axes)} entries for {len(args)} "
                               f"arguments")
        stand_ins, batched, size = [], {}, None
        for position, (arg, axis) in enumerate(zip(args, axes)):
            if axis is None:
                stand_ins.append(arg)
                continue
            if isinstance(axis, bool) or not isinstance(axis, int):
                raise SymdiffError(f"vmap: in_axes entries must be ints or None, got "
                                   f"{axis!r}")
            if arg.ndim == 0:
                raise ShapeError(f"vmap: argument {position} is a scalar; it has no axis "
                                 f"{axis} to map over")
            moved = _move_to_front(arg, axis, position)
            if size is not None and moved.shape[0] != size:
                raise ShapeError(f"vmap: batch sizes differ: argument {position} has "
                                 f"{moved.shape[0]} along axis {axis}, earlier ones {size}")
            size = moved.shape[0]
            stand_in = _make_var(f"vmap'{next(_stand_in_names)}", moved.shape[1:], moved.dtype)
            stand_ins.append(stand_in)
            batched[id(stand_in)] = moved
        result = fn(*stand_ins)
        single = not isinstance(result, (tuple, list))
        outputs = [as_expr(r) for r in ([result] if single else result)]
        rebuilt = batch_graph(outputs, batched)
        return rebuilt[0] if single else type(result)(rebuilt)

    return mapped
