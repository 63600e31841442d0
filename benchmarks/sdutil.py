"""symdiff helpers for the harness: compiled variants (with and without graph rewrites, when the
installed symdiff has an ``optimize`` option) and node counts.

Only the public API (``sd.compile``, ``sd.compile_grad``, ``sd.grad``, ``Expr.op``/``.inputs``)
is used, so the harness keeps working while symdiff's internals change.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

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


def backend_variants() -> list[tuple[str, dict]]:
    """:func:`variants` plus one row per backend the installed symdiff has (the default is
    ``auto``): ``backend="numpy"``, and ``backend="numba"`` when Numba is installed."""
    out = variants()
    try:
        params = inspect.signature(sd.compile).parameters
    except (TypeError, ValueError):
        return out
    if "backend" not in params or params["backend"].default != "auto":
        return out
    out.append(("symdiff backend=numpy", {"backend": "numpy"}))
    try:
        import numba  # noqa: F401
    except ImportError:
        return out
    out.append(("symdiff backend=numba", {"backend": "numba"}))
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


_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import symdiff as sd
import benchmarks.{module} as m
{setup}
t2 = time.perf_counter()
{compile}
t3 = time.perf_counter()
print(json.dumps({{"import_numba_s": t1 - t0, "compile_first_call_s": t3 - t2}}))
"""


def cached_compile_in_new_process(module: str, setup: str, compile_: str) -> dict:
    """A fresh interpreter compiles (and calls once) a graph whose Numba kernel this process
    has put in the disk cache: {"import_numba_s", "compile_first_call_s"} (the second is
    build + grad + compile + first call, the time a user waits on a warm cache), or
    {"error": ...}."""
    code = _CHILD.format(module=module, setup=setup, compile=compile_)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=600, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
