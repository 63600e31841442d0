"""Memory plans made on the graph before printing: which values share a buffer (views), which
inputs a node may overwrite in place, and which outputs must be copied so that the caller owns
every array it gets back. Shared by the NumPy printer and the tape.
"""
from __future__ import annotations

from typing import Sequence

from ..graph import Expr


def buffer_owners(order: Sequence[Expr]) -> dict[int, int]:
    """id(node) -> id of the node whose buffer holds its value (views and aliases share their
    input's buffer)."""
    owner: dict[int, int] = {}
    for node in order:
        view = node.op is not None and node.op.view
        owner[id(node)] = owner[id(node.inputs[0])] if view else id(node)
    return owner


def dead_fresh_inputs(order: Sequence[Expr], outputs: Sequence[Expr]) -> dict[int, list[int]]:
    """id(node) -> positions of its inputs whose buffers it may overwrite: the input is a
    fresh array computed here (not a variable, constant or view), has the node's shape and
    dtype, is not an output, and neither it nor any view of it is used after the node."""
    owner = buffer_owners(order)
    last: dict[int, int] = {}
    for position, node in enumerate(order):
        for inp in node.inputs:
            last[owner[id(inp)]] = position
    for o in outputs:
        last[owner[id(o)]] = len(order)
    result: dict[int, list[int]] = {}
    for position, node in enumerate(order):
        for k, inp in enumerate(node.inputs):
            if (inp.op is not None and not inp.op.view
                    and owner[id(inp)] == id(inp) and last[id(inp)] == position
                    and inp.shape == node.shape and inp.dtype == node.dtype):
                result.setdefault(id(node), []).append(k)
    return result


def outputs_to_copy(order: Sequence[Expr], outputs: Sequence[Expr]) -> set[int]:
    """Positions of the outputs to return as copies: an output whose buffer is an input's or
    a constant's (``sum(W * X)``: the gradient for W is X itself), one computed by a read-only
    view (``broadcast_to``), and a repeat of an earlier output's buffer. Fresh temporaries,
    the common case, are returned as they are (no copy on the hot path)."""
    owner = buffer_owners(order)
    by_id = {id(node): node for node in order}
    copies: set[int] = set()
    seen: set[int] = set()
    for k, o in enumerate(outputs):
        root = by_id[owner[id(o)]]
        if (root.op is None or owner[id(o)] in seen
                or (o.op is not None and o.op.view and not o.op.writable_view)):
            copies.add(k)
        seen.add(owner[id(o)])
    return copies
