"""A register-machine tape for very large graphs.

CPython compiles a straight-line function at roughly 12 microseconds per statement, so a
100,000-node gradient would spend seconds in ``compile()`` alone. Above ``TAPE_THRESHOLD``
statements, lowering therefore builds a tape instead: each distinct op (with its input dtypes)
turns its lowering form into a function once (:func:`symdiff.ops.lowering.evaluator`: the
namespace's own function, e.g. ``xp.sin``, or a ``functools.partial`` of it; no text, no eval),
and a loop runs ``(function, input slots, output slot)`` steps over a register list. Slots are
reused as soon as a value is dead, so memory stays near the live set. The tape runs the same
lowering forms as the straight-line code; only the dispatch differs.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Sequence

import numpy as np

from ..errors import SymdiffError
from ..graph import Expr, toposort
from ..ops.lowering import Arg, evaluator
from .plan import outputs_to_copy

TAPE_THRESHOLD = 10_000  # op statements; above this, lower to a tape


def _root_ids(order: Sequence[Expr]) -> dict[int, int]:
    """id(node) -> id of the node whose value it is (aliases such as stop_gradient share)."""
    root: dict[int, int] = {}
    for node in order:
        alias = node.op is not None and node.op.alias
        root[id(node)] = root[id(node.inputs[0])] if alias else id(node)
    return root


class Tape:
    """The compiled tape of ``outputs`` from ``inputs``: call it with the input arrays."""

    def __init__(self, outputs: Sequence[Expr], inputs: Sequence[Expr], xp, layout: str,
                 check=None, order=None, array_api: bool = False):
        order = toposort(outputs) if order is None else order
        convert = getattr(xp, "constant", None) if array_api else None
        root = _root_ids(order)
        last_use: dict[int, int] = {}
        for position, node in enumerate(order):
            for inp in node.inputs:
                last_use[root[id(inp)]] = position
        pinned = {root[id(o)] for o in outputs}

        slot: dict[int, int] = {id(v): k for k, v in enumerate(inputs)}
        initial: list = [None] * len(inputs)
        free: list[int] = []
        functions: dict[tuple, object] = {}  # (op, input dtypes) -> its function
        steps = []
        for position, node in enumerate(order):
            if id(node) in slot:
                continue
            if node.is_const:
                slot[id(node)] = len(initial)
                initial.append(node.value if convert is None else convert(node.value))
                pinned.add(id(node))
                continue
            if node.op is None:
                raise SymdiffError(f"compile: the outputs depend on variable {node.name!r}, "
                                   f"which is not among the inputs")
            if root[id(node)] != id(node):
                slot[id(node)] = slot[root[id(node)]]
                continue
            args = tuple(slot[id(i)] for i in node.inputs)
            key = (node.op, tuple(i.dtype for i in node.inputs))
            fn = functions.get(key)
            if fn is None:
                forms = [Arg(k, i.dtype) for k, i in enumerate(node.inputs)]
                form = node.op.lower_standard(*forms) if array_api else node.op.lower(*forms)
                fn = functions[key] = evaluator(form, xp, convert)
            for inp in dict.fromkeys(root[id(i)] for i in node.inputs):
                if last_use.get(inp) == position and inp not in pinned and inp in slot:
                    free.append(slot[inp])
            if free:
                out = free.pop()
            else:
                out = len(initial)
                initial.append(None)
            slot[id(node)] = out
            single = len(args) == 1
            steps.append((fn, itemgetter(*args) if args else None, single, out,
                          position if check else None))
        self._initial = initial
        self._steps = steps
        self._n_inputs = len(inputs)
        self._outputs = [slot[id(o)] for o in outputs]
        # NumPy: the caller owns every returned array (other libraries' arrays are returned
        # as computed, as the generated code does)
        self._copies = set() if array_api else outputs_to_copy(order, outputs)
        self._layout = layout
        self._check = check
        self.n_templates = len(functions)
        self.n_slots = len(initial)

    def __call__(self, *values):
        regs = list(self._initial)
        regs[:self._n_inputs] = values
        check = self._check
        for fn, get, single, out, position in self._steps:
            if get is None:
                regs[out] = fn()
            elif single:
                regs[out] = fn(get(regs))
            else:
                regs[out] = fn(*get(regs))
            if check is not None:
                check(regs[out], position)
        results = tuple(np.array(regs[s], copy=True) if k in self._copies else regs[s]
                        for k, s in enumerate(self._outputs))
        return arrange(results, self._layout)


def arrange(results: tuple, layout: str):
    """``results`` as the layout asks: ``single``, ``tuple`` or ``value_grads``."""
    if layout == "single":
        return results[0]
    if layout == "value_grads":
        return results[0], results[1:]
    return results
