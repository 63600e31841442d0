"""Constant folding: every op node whose inputs are all constants is evaluated once, by the
same lowering the compiled code uses, and replaced by a constant. A node whose value would be
larger than its largest input (a broadcast) is left symbolic, so folding never inflates memory.
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr, apply, const, toposort


def fold_constants(outputs: list[Expr]) -> list[Expr]:
    """``outputs`` with constant sub-graphs replaced by their values."""
    from ..lower.numpy import CompiledFunction
    order = toposort(outputs)
    constant: set[int] = set()
    foldable: list[Expr] = []
    for node in order:
        if node.is_const:
            constant.add(id(node))
        elif node.op is not None and all(id(i) in constant for i in node.inputs):
            biggest = max((i.size for i in node.inputs), default=1)
            if node.size <= max(biggest, 1):
                constant.add(id(node))
                foldable.append(node)
    if not foldable:
        return list(outputs)
    values = CompiledFunction(foldable, [], optimize=False)()
    new: dict[int, Expr] = {id(n): const(np.asarray(v, dtype=n.dtype).reshape(n.shape))
                            for n, v in zip(foldable, values)}
    for node in order:
        if id(node) in new or node.op is None:
            continue
        args = tuple(new.get(id(i), i) for i in node.inputs)
        if any(a is not b for a, b in zip(args, node.inputs)):
            new[id(node)] = apply(node.op, args)
    return [new.get(id(o), o) for o in outputs]
