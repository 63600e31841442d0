"""Constant folding: every op node whose inputs are all constants is evaluated once, by the
op's own NumPy kernel (:meth:`Op.compute`, the same lowering form the compiled code runs), and
replaced by a constant. A node whose value would be larger than its largest input (a
broadcast) is left symbolic, so folding never inflates memory.
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr, apply, const, toposort
from ..printing import infix_short
from .rules import RewriteStep


def fold_constants(outputs: list[Expr], trace: list | None = None) -> list[Expr]:
    """``outputs`` with constant sub-graphs replaced by their values. ``trace``, a list,
    receives a step (``RewriteStep``) for each largest folded sub-graph."""
    order = toposort(outputs)
    values: dict[int, np.ndarray] = {}
    new: dict[int, Expr] = {}
    for node in order:
        if node.is_const:
            values[id(node)] = node.value
        elif node.op is not None and all(id(i) in values for i in node.inputs):
            biggest = max((i.size for i in node.inputs), default=1)
            if node.size <= max(biggest, 1):
                value = node.op.compute(*[values[id(i)] for i in node.inputs])
                value = np.array(value, dtype=node.dtype).reshape(node.shape)
                values[id(node)] = value
                new[id(node)] = const(value)
    if not new:
        return list(outputs)
    if trace is not None:
        inside = {id(i) for n in order if id(n) in new for i in n.inputs}
        trace += [RewriteStep("fold_constants", infix_short(n), infix_short(new[id(n)]))
                  for n in order if id(n) in new and id(n) not in inside]
    for node in order:
        if id(node) in new or node.op is None:
            continue
        args = tuple(new.get(id(i), i) for i in node.inputs)
        if any(a is not b for a, b in zip(args, node.inputs)):
            new[id(node)] = apply(node.op, args)
    return [new.get(id(o), o) for o in outputs]
