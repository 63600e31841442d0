"""W3 nested: z = f(f(...f(w))) with f(u) = u sin(u) + exp(-u^2), depth 5, 10, 20, 40.

Per depth:
- symdiff: forward node count, gradient-graph node count and their ratio; build + grad + compile
  time (median over a few builds); evaluation time of the compiled value+grad against the
  hand-written plain-Python (``math``) derivative.
- sympy: ``sympy.diff`` time, ``sympy.count_ops`` of the derivative, ``lambdify`` (math module)
  time and the lambdified function's per-call time, in a subprocess killed after
  ``cfg.sympy_timeout`` seconds ("timeout"); deeper depths are not tried once one times out.
- JAX: the first call of ``jit(grad(f))`` (trace + compile + run), then its per-call time.
- PyTensor: ``grad`` + ``function`` time, per-call time. CasADi: SX build + gradient + Function.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

import symdiff as sd

from . import handwritten as hw
from . import sdutil
from .common import Config, Results, Row, error_row, measure_many, median_of, missing_row, peer

W0 = 0.7


def depths(cfg: Config) -> list[int]:
    return [5, 10] if cfg.quick else [5, 10, 20, 40]


def build(depth: int):
    w = sd.var("w")
    u = w
    for _ in range(depth):
        u = u * sd.sin(u) + sd.exp(-u ** 2)
    return u, w


# sympy runs in a child process so that a derivative that swells past the time cap is killed
_SYMPY_SCRIPT = r"""
import json, sys, time, math
import sympy as sp
depth, w0 = int(sys.argv[1]), float(sys.argv[2])
def say(**kw):
    print(json.dumps(kw), flush=True)
w = sp.Symbol("w")
u = w
for _ in range(depth):
    u = u * sp.sin(u) + sp.exp(-u**2)
t = time.perf_counter(); g = sp.diff(u, w); say(diff_s=time.perf_counter() - t)
t = time.perf_counter(); n = sp.count_ops(g)
say(count_ops=int(n), count_ops_s=time.perf_counter() - t)
t = time.perf_counter(); f = sp.lambdify(w, (u, g), "math"); say(lambdify_s=time.perf_counter() - t)
value, deriv = f(w0)
say(value=float(value), deriv=float(deriv))
n_calls, t0 = 0, time.perf_counter()
while True:
    f(w0); n_calls += 1
    dt = time.perf_counter() - t0
    if dt > 0.2 or n_calls >= 20000:
        break
say(eval_s=dt / n_calls)
"""


def sympy_depth(depth: int, timeout: float) -> dict:
    """What the sympy child reported before it finished or was killed."""
    proc = subprocess.Popen([sys.executable, "-c", _SYMPY_SCRIPT, str(depth), repr(W0)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    info: dict = {}
    for line in out.splitlines():
        try:
            info.update(json.loads(line))
        except ValueError:
            pass
    info["timed_out"] = timed_out
    if proc.returncode not in (0, None) and not timed_out:
        info["error"] = (err.strip().splitlines() or ["exit %s" % proc.returncode])[-1]
    return info


def _jax_first_call(depth: int):
    jax = peer("jax")
    import jax.numpy as jnp

    def f(w):  # a new function object per depth: nothing cached from an earlier depth
        u = w
        for _ in range(depth):
            u = u * jnp.sin(u) + jnp.exp(-u ** 2)
        return u
    g = jax.jit(jax.grad(f))
    t0 = time.perf_counter()
    out = jax.block_until_ready(g(W0))
    first = time.perf_counter() - t0
    return first, lambda: jax.block_until_ready(g(W0)), float(out)


def _pytensor(depth: int):
    import pytensor
    import pytensor.tensor as pt
    t0 = time.perf_counter()
    w = pt.dscalar("w")
    u = w
    for _ in range(depth):
        u = u * pt.sin(u) + pt.exp(-u ** 2)
    fn = pytensor.function([w], [u, pytensor.grad(u, w)])
    out = fn(W0)
    return time.perf_counter() - t0, lambda: fn(W0), [float(o) for o in out]


def _casadi(depth: int):
    ca = peer("casadi")
    t0 = time.perf_counter()
    w = ca.SX.sym("w")
    u = w
    for _ in range(depth):
        u = u * ca.sin(u) + ca.exp(-u ** 2)
    fn = ca.Function("f", [w], [u, ca.gradient(u, w)])
    setup = time.perf_counter() - t0
    out = fn(W0)
    return setup, lambda: fn(W0), [float(o) for o in out]


def _symdiff_build(results, case, name, kw, depth, repeats) -> Row:
    def full():
        t0 = time.perf_counter()
        z, w = build(depth)
        t1 = time.perf_counter()
        g = sd.grad(z, w)
        t2 = time.perf_counter()
        sdutil.compile_fn([z, g], [w], **kw)  # what compile_grad does, without a second grad
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2
    total, parts = median_of(full, repeats)
    z, w = build(depth)
    sizes = sdutil.graph_sizes(z, [sd.grad(z, w)])
    return Row("W3", case, name, extra={
        "build_grad_compile_s": total, "build_s": parts[0], "grad_s": parts[1],
        "compile_s": parts[2], **sizes})


def run(cfg: Config, results: Results) -> None:
    sympy_stopped_at = None
    build_repeats = 3 if cfg.quick else 5
    for depth in depths(cfg):
        case = f"depth={depth}"
        want = hw.nested_value_and_grad(W0, depth)
        ref_name = "hand-written Python (math)"
        calls = {ref_name: lambda depth=depth: hw.nested_value_and_grad(W0, depth)}
        rows: dict[str, Row] = {ref_name: Row("W3", case, ref_name)}

        # symdiff: build + grad + compile (timed while no earlier graph is alive, since nodes
        # are interned: a second build of a live graph would cost nothing), node counts
        for name, kw in sdutil.variants():
            try:
                rows[name] = _symdiff_build(results, case, name, kw, depth, build_repeats)
            except Exception as exc:  # noqa: BLE001
                rows[name] = error_row("W3", case, name, exc)
        # ... then the compiled functions to evaluate
        for name, kw in sdutil.variants():
            if rows[name].status.startswith("error"):
                continue
            z, w = build(depth)
            fn = sdutil.compile_grad(z, [w], [w], **kw)
            value, (deriv,) = fn(W0)
            rows[name].err = results.check("W3", case, name, [value, deriv], list(want), 1e-9)
            if not results.checks[-1].ok:
                rows[name].status = f"WRONG (max rel err {rows[name].err:.2e})"
            calls[name] = lambda fn=fn: fn(W0)
            if name == "symdiff":  # the same function called with a NumPy scalar
                np_name = "symdiff (np.float64 args)"
                rows[np_name] = Row("W3", case, np_name)
                w64 = np.float64(W0)
                value, (deriv,) = fn(w64)
                rows[np_name].err = results.check("W3", case, np_name, [value, deriv],
                                                  list(want), 1e-9)
                calls[np_name] = lambda fn=fn, w64=w64: fn(w64)
            del z, w, fn

        # sympy
        sname = "sympy.diff + lambdify(math)"
        if sympy_stopped_at is not None:
            rows[sname] = Row("W3", case, sname,
                              status=f"timeout (not run: depth {sympy_stopped_at} timed out)")
        else:
            info = sympy_depth(depth, cfg.sympy_timeout)
            row = Row("W3", case, sname, extra={k: v for k, v in info.items()
                                                 if k not in ("value", "deriv", "eval_s")})
            if info["timed_out"]:
                row.status = f"timeout (> {cfg.sympy_timeout:.0f} s)"
                sympy_stopped_at = depth
            elif "error" in info:
                row.status = "error: " + info["error"]
            if "deriv" in info:
                row.err = results.check("W3", case, sname, [info["value"], info["deriv"]],
                                        list(want), 1e-9)
            if "eval_s" in info:
                row.time = info["eval_s"]  # measured in the child
                row.extra["note"] = "eval timed in the sympy child process"
            if {"diff_s", "lambdify_s"} <= info.keys():
                row.extra["diff_lambdify_s"] = info["diff_s"] + info["lambdify_s"]
            rows[sname] = row

        # peers
        for pname, make in (("jax", _jax_first_call), ("pytensor", _pytensor),
                            ("casadi", _casadi)):
            mod = peer(pname)
            if not mod:
                rows[pname] = missing_row("W3", case, pname, mod)
                continue
            if pname == "pytensor" and cfg.quick and depth > 5:
                rows[pname] = Row("W3", case, pname, status="skipped: --quick")
                continue
            try:
                setup, call, out = make(depth)
            except Exception as exc:  # noqa: BLE001
                rows[pname] = error_row("W3", case, pname, exc)
                continue
            if pname == "jax":
                row = Row("W3", case, pname, extra={"first_call_s": setup,
                                                    "note": "jit(grad): derivative only"})
                row.err = results.check("W3", case, pname, out, want[1], 1e-9)
            else:
                row = Row("W3", case, pname, extra={"build_grad_compile_s": setup})
                row.err = results.check("W3", case, pname, out, list(want), 1e-9)
            rows[pname] = row
            calls[pname] = call

        stats: dict = {}
        times = measure_many(calls, cfg, stats)
        ref = times[ref_name]
        for name, t in times.items():
            rows[name].extra.update(stats[name])
            rows[name].extra["min_ratio"] = stats[name]["min_s"] / stats[ref_name]["min_s"]
            rows[name].time, rows[name].ratio, rows[name].ref = t, t / ref, ref_name
        if rows["sympy.diff + lambdify(math)"].time is not None:
            r = rows["sympy.diff + lambdify(math)"]
            r.ratio, r.ref = r.time / ref, "hand-written Python (math)"
        jax_first = rows.get("jax") and rows["jax"].extra.get("first_call_s")
        for name, _ in sdutil.variants():
            r = rows.get(name)
            if r is not None and "build_grad_compile_s" in r.extra and jax_first:
                r.extra["jax_first_call_over_this"] = jax_first / r.extra["build_grad_compile_s"]
        for r in rows.values():
            results.add(r)

