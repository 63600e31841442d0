"""symdiff helpers for the harness: compiled variants (with and without graph rewrites, when the
installed symdiff has an ``optimize`` option) and node counts.

Only the public API (``sd.compile``, ``sd.compile_grad``, ``sd.grad``, ``Expr.op``/``.inputs``)
is used, so the harness keeps working while symdiff's internals change.
"""
from __future__ import annotations

import inspect

import symdiff as sd
from symdiff.graph import toposort


def supports_optimize() -> bool:
    """True when ``sd.compile`` takes ``optimize=``."""
    try:
        params = inspect.signature(sd.compile).parameters
    except (TypeError, ValueError):
        return False
    return "optimize" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def variants() -> list[tuple[str, dict]]:
    """(implementation name, extra compile keywords): the default compile, and the raw graph
    (``optimize=False``) when symdiff supports it."""
    out = [("symdiff", {})]
    if supports_optimize():
        out.append(("symdiff optimize=False", {"optimize": False}))
    return out


class ValueGrad:
    """``compile_grad``'s calling convention on top of ``sd.compile`` of [loss, *grads]."""

    def __init__(self, fn):
        self.fn = fn
        self.source = getattr(fn, "source", "")

    def __call__(self, *args, **kwargs):
        value, *grads = self.fn(*args, **kwargs)
        return value, tuple(grads)


def compile_grad(loss, wrt, inputs=None, **kw):
    """``sd.compile_grad(loss, wrt, inputs, **kw)``; if ``compile_grad`` does not take the
    keywords but ``compile`` does, compile [loss, *grads] with them."""
    if not kw:
        return sd.compile_grad(loss, wrt, inputs)
    try:
        return sd.compile_grad(loss, wrt, inputs, **kw)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc) and "positional" not in str(exc):
            raise
    grads = sd.grad(loss, list(wrt))
    return ValueGrad(sd.compile([loss, *grads], inputs, **kw))


def compile_fn(outputs, inputs=None, **kw):
    return sd.compile(outputs, inputs, **kw) if kw else sd.compile(outputs, inputs)


def walk(*exprs) -> list:
    """Every node reachable from ``exprs`` (each once)."""
    return toposort(exprs)


def count_ops(*exprs) -> int:
    """Operation nodes (not variables or constants) reachable from ``exprs``."""
    return sum(1 for n in walk(*exprs) if n.op is not None)


def count_all(*exprs) -> int:
    return len(walk(*exprs))


def graph_sizes(loss, grads) -> dict:
    """Node counts of the forward graph, the gradient graph and both together (op nodes).

    ``grad_graph`` is everything needed to compute the gradients (forward nodes they reuse
    included), ``grad_new`` only the nodes build_grad added, ``ratio`` = grad_graph / forward."""
    grads = list(grads)
    fwd = count_ops(loss)
    g = count_ops(*grads)
    both = count_ops(loss, *grads)
    return {"forward_nodes": fwd, "grad_graph_nodes": g, "grad_new_nodes": both - fwd,
            "value_and_grad_nodes": both, "grad_over_forward": g / fwd if fwd else None,
            "forward_nodes_all": count_all(loss), "grad_graph_nodes_all": count_all(*grads)}


def source_lines(fn) -> int:
    src = getattr(fn, "source", "") or ""
    return sum(1 for line in src.splitlines()
               if line.strip() and not line.strip().startswith(("#", "del ", "def ")))
