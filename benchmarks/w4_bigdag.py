"""W4 big graph: seeded random scalar DAGs of 1,000 / 10,000 / 50,000 nodes.

The generator (``make_dag``): 8 scalar inputs; each new node applies an op drawn uniformly from
{+, *, sin, exp-of-small, tanh} to one or two earlier nodes. The first operand is one of the 3
nodes just before (so the graph is deep: a long chain with side branches), the second is any
earlier node (long skip connections). To keep every value finite at 50,000 nodes, ``+`` is the
average ``(a + b) * 0.5`` and exp-of-small is ``exp(0.1 a)``. The output is the sum of the last 8
nodes. Every implementation replays the same instruction list.

Measured: symdiff build + grad + compile (separately and in total) and its growth from one size
to the next; CasADi (SX graph, ``gradient``, ``Function``) on the same DAG; JAX (first call of
``jit(grad)``) and PyTensor (``grad`` + ``function``) only at the smallest size (they take
seconds to minutes). Correctness: every gradient is compared with a hand-written reverse sweep
over the instruction list in plain Python.
"""
from __future__ import annotations

import gc
import math
import time

import numpy as np

import symdiff as sd

from . import sdutil
from .common import Config, Results, Row, error_row, measure_many, missing_row, peer

N_INPUTS = 8
N_OUT = 8
ADD, MUL, SIN, EXP, TANH = range(5)
OP_NAMES = {ADD: "avg", MUL: "mul", SIN: "sin", EXP: "exp(0.1*)", TANH: "tanh"}


def sizes(cfg: Config) -> list[int]:
    return [200, 2000] if cfg.quick else [1000, 10000, 50000]


def peer_size(cfg: Config) -> int:
    return 200 if cfg.quick else 1000


def make_dag(n: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """Instructions (op, i, j) for nodes N_INPUTS .. n-1; j is unused by unary ops."""
    rng = np.random.default_rng(seed)
    ops = rng.integers(0, 5, n)
    back = rng.integers(1, 4, n)
    frac = rng.random(n)
    return [(int(ops[k]), k - int(back[k]) if k >= 3 else 0, int(frac[k] * k))
            for k in range(N_INPUTS, n)]


def inputs_values(seed: int = 0) -> list[float]:
    return [float(v) for v in np.random.default_rng(seed + 1).uniform(-1.0, 1.0, N_INPUTS)]


def replay(dag, xs, add, mul, sin, exp_small, tanh):
    """The DAG's output built from the inputs ``xs`` with the given operations."""
    nodes = list(xs)
    append = nodes.append
    for op, i, j in dag:
        a = nodes[i]
        if op == ADD:
            append(add(a, nodes[j]))
        elif op == MUL:
            append(mul(a, nodes[j]))
        elif op == SIN:
            append(sin(a))
        elif op == EXP:
            append(exp_small(a))
        else:
            append(tanh(a))
    out = nodes[-N_OUT]
    for v in nodes[-N_OUT + 1:]:
        out = out + v
    return out


def reference(dag, xs):
    """Value and gradient by a hand-written reverse sweep (plain Python floats)."""
    vals = list(xs)
    for op, i, j in dag:
        a = vals[i]
        if op == ADD:
            vals.append((a + vals[j]) * 0.5)
        elif op == MUL:
            vals.append(a * vals[j])
        elif op == SIN:
            vals.append(math.sin(a))
        elif op == EXP:
            vals.append(math.exp(0.1 * a))
        else:
            vals.append(math.tanh(a))
    n = len(vals)
    value = sum(vals[-N_OUT:])  # same summation order as replay: ((v0 + v1) + v2) ...
    adj = [0.0] * n
    for k in range(n - N_OUT, n):
        adj[k] = 1.0
    for k in range(n - 1, N_INPUTS - 1, -1):
        g = adj[k]
        if g == 0.0:
            continue
        op, i, j = dag[k - N_INPUTS]
        a = vals[i]
        if op == ADD:
            adj[i] += 0.5 * g
            adj[j] += 0.5 * g
        elif op == MUL:
            adj[i] += g * vals[j]
            adj[j] += g * a
        elif op == SIN:
            adj[i] += g * math.cos(a)
        elif op == EXP:
            adj[i] += g * 0.1 * vals[k]
        else:
            adj[i] += g * (1.0 - vals[k] * vals[k])
    return value, adj[:N_INPUTS]


# ---------------------------------------------------------------------------------------------
# the implementations: each returns (stage times, callable returning (value, grad vector))
# ---------------------------------------------------------------------------------------------
def _symdiff(dag, kw):
    t0 = time.perf_counter()
    xs = [sd.var(f"x{k}") for k in range(N_INPUTS)]
    out = replay(dag, xs, lambda a, b: (a + b) * 0.5, lambda a, b: a * b, sd.sin,
                 lambda a: sd.exp(a * 0.1), sd.tanh)
    t1 = time.perf_counter()
    grads = sd.grad(out, xs)
    t2 = time.perf_counter()
    fn = sdutil.ValueGrad(sdutil.compile_fn([out, *grads], xs, **kw))  # = compile_grad, minus
    t3 = time.perf_counter()                                            # its second grad
    info = {"build_s": t1 - t0, "grad_s": t2 - t1, "compile_s": t3 - t2}
    return info, fn, out, grads


def _casadi(dag):
    ca = peer("casadi")
    t0 = time.perf_counter()
    x = ca.SX.sym("x", N_INPUTS)
    xs = [x[k] for k in range(N_INPUTS)]
    out = replay(dag, xs, lambda a, b: (a + b) * 0.5, lambda a, b: a * b, ca.sin,
                 lambda a: ca.exp(a * 0.1), ca.tanh)
    t1 = time.perf_counter()
    g = ca.gradient(out, x)
    t2 = time.perf_counter()
    fn = ca.Function("f", [x], [out, g])
    t3 = time.perf_counter()
    info = {"build_s": t1 - t0, "grad_s": t2 - t1, "compile_s": t3 - t2}
    return info, fn


def _jax(dag, xv):
    jax = peer("jax")
    import jax.numpy as jnp

    def f(x):
        xs = [x[k] for k in range(N_INPUTS)]
        return replay(dag, xs, lambda a, b: (a + b) * 0.5, lambda a, b: a * b, jnp.sin,
                      lambda a: jnp.exp(a * 0.1), jnp.tanh)
    vg = jax.jit(jax.value_and_grad(f))
    xj = jnp.asarray(xv)
    t0 = time.perf_counter()
    out = jax.block_until_ready(vg(xj))
    return {"first_call_s": time.perf_counter() - t0}, out


def _pytensor(dag, xv):
    import pytensor
    import pytensor.tensor as pt
    t0 = time.perf_counter()
    x = pt.dvector("x")
    xs = [x[k] for k in range(N_INPUTS)]
    out = replay(dag, xs, lambda a, b: (a + b) * 0.5, lambda a, b: a * b, pt.sin,
                 lambda a: pt.exp(a * 0.1), pt.tanh)
    t1 = time.perf_counter()
    g = pytensor.grad(out, x)
    t2 = time.perf_counter()
    fn = pytensor.function([x], [out, g])
    t3 = time.perf_counter()
    res = fn(np.asarray(xv))
    return {"build_s": t1 - t0, "grad_s": t2 - t1, "compile_s": t3 - t2,
            "first_call_s": time.perf_counter() - t3}, res


_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from benchmarks import w4_bigdag as w
from benchmarks.common import peer
pname, n, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
peer(pname)
dag = w.make_dag(n, seed)
info, (v, g) = (w._jax if pname == "jax" else w._pytensor)(dag, w.inputs_values(seed))
import numpy as np
print(json.dumps({"info": info, "value": float(v), "grad": [float(t) for t in np.ravel(g)]}))
"""


def _peer_in_child(results, case, pname, n, cfg, want) -> Row:
    """JAX / PyTensor on the DAG in a child process, killed after the cap (they can take
    minutes, or recurse too deep)."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cap = cfg.peer_timeout
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, root, pname, str(n), str(cfg.seed)],
                              capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return Row("W4", case, pname, status=f"timeout (> {cap:.0f} s)")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return Row("W4", case, pname, status="error: " + last[:150],
                   extra={"traceback": proc.stderr[-2000:]})
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    info = data["info"]
    total = sum(info.get(k, 0.0) for k in ("build_s", "grad_s", "compile_s", "first_call_s"))
    row = Row("W4", case, pname, time=total, extra=info)
    row.err = results.check("W4", case, pname, [data["value"], data["grad"]], want, 1e-9)
    return row


def run(cfg: Config, results: Results) -> None:
    xv = inputs_values(cfg.seed)
    prev: dict[str, tuple[int, float]] = {}
    for n in sizes(cfg):
        case = f"{n} nodes"
        dag = make_dag(n, cfg.seed)
        repeats = 1 if cfg.quick or n > 10_000 else 3  # a 50,000-node build is timed once
        want_v, want_g = reference(dag, xv)
        want = [want_v, want_g]
        calls = {}
        rows: dict[str, Row] = {}

        for name, kw in sdutil.variants():
            try:
                totals, infos = [], []
                for _ in range(repeats):
                    gc.collect()
                    t0 = time.perf_counter()
                    info, fn, out, grads = _symdiff(dag, kw)
                    totals.append(time.perf_counter() - t0)
                    infos.append(info)
                    if _ != repeats - 1:
                        del fn, out, grads
                k = int(np.argsort(totals)[len(totals) // 2])
                row = Row("W4", case, name, time=totals[k],
                          extra={**infos[k], "dag_nodes": n,
                                 **sdutil.graph_sizes(out, grads)})
                value, g = fn(*xv)
                row.err = results.check("W4", case, name, [value, list(g)], want, 1e-9)
                if not results.checks[-1].ok:
                    row.status = f"WRONG (max rel err {row.err:.2e})"
                if name in prev:
                    pn, pt_ = prev[name]
                    row.extra["growth_vs_prev"] = totals[k] / pt_
                    row.extra["prev_nodes"] = pn
                prev[name] = (n, totals[k])
                calls[name] = lambda fn=fn: fn(*xv)
                del fn, out, grads
            except RecursionError as exc:
                row = error_row("W4", case, name, exc)
            except Exception as exc:  # noqa: BLE001
                row = error_row("W4", case, name, exc)
            rows[name] = row

        mod = peer("casadi")
        if not mod:
            rows["casadi"] = missing_row("W4", case, "casadi", mod)
        else:
            try:
                totals, infos = [], []
                for _ in range(repeats):
                    gc.collect()
                    t0 = time.perf_counter()
                    info, fn = _casadi(dag)
                    totals.append(time.perf_counter() - t0)
                    infos.append(info)
                k = int(np.argsort(totals)[len(totals) // 2])
                row = Row("W4", case, "casadi", time=totals[k], extra=dict(infos[k]))
                v, g = fn(np.asarray(xv))
                row.err = results.check("W4", case, "casadi",
                                        [float(v), list(np.asarray(g).ravel())], want, 1e-9)
                if "casadi" in prev:
                    row.extra["growth_vs_prev"] = totals[k] / prev["casadi"][1]
                    row.extra["prev_nodes"] = prev["casadi"][0]
                prev["casadi"] = (n, totals[k])
                calls["casadi"] = lambda fn=fn: fn(xv)
            except Exception as exc:  # noqa: BLE001
                row = error_row("W4", case, "casadi", exc)
            rows["casadi"] = row

        for pname in ("jax", "pytensor"):
            mod = peer(pname)
            if not mod:
                rows[pname] = missing_row("W4", case, pname, mod)
                continue
            if pname == "pytensor" and cfg.quick:
                rows[pname] = Row("W4", case, pname, status="skipped: --quick (its compile of "
                                  "a 200-node DAG alone takes ~20 s)")
                continue
            if n != peer_size(cfg):
                rows[pname] = Row("W4", case, pname,
                                  status=f"skipped: measured at {peer_size(cfg)} nodes only "
                                         f"(seconds to minutes per compile)")
                continue
            rows[pname] = _peer_in_child(results, case, pname, n, cfg, want)

        # ratios: build+grad+compile against CasADi on the same DAG
        ref = rows.get("casadi")
        for r in rows.values():
            if r.time is not None and ref is not None and ref.time:
                r.ratio, r.ref = r.time / ref.time, "casadi"
        # per-call evaluation of the compiled gradients (informational)
        if calls:
            eval_cfg = Config(quick=cfg.quick, repeats=3 if cfg.quick else 5,
                              min_batch=cfg.min_batch, warmup=1)
            for name, t in measure_many(calls, eval_cfg).items():
                rows[name].extra["eval_per_call_s"] = t
        for r in rows.values():
            results.add(r)
        del calls
