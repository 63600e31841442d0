"""W8 Hessians: the full Hessian of three problems, against the hand-derived closed form.

- ``x^T A x`` w.r.t. x (A an (n, n) variable): H = A + A^T;
- logistic regression ``sum(log(exp(-y (X w)) + 1))`` w.r.t. w, X (n, n): with
  z = -y (X w) and s = sigmoid(z), H = X^T diag(y^2 s (1 - s)) X;
- matrix factorization ``sum((T - U V^T)^2)`` w.r.t. U (n, 5): H = 2 I_n (x) V^T V, shaped
  (n, 5, n, 5).

Per (problem, n): setup (build + hessian + compile + first call; JAX: its first jitted call)
and one evaluation, for the closed form in NumPy (the reference), symdiff, JAX
(``jax.hessian`` under jit), PyTorch (``torch.func.hessian``) and autograd. Peers whose
forward-over-reverse pass would hold a (5n, n, n) tangent batch (matrix factorization at
n >= 500: gigabytes) or whose per-row loop would take minutes (autograd beyond n = 100) are
skipped and say so. Notes: the Hessian graph's node count (before and after the rewrites) and,
for matrix factorization at the largest n, symdiff's total time and peak memory (tracemalloc)
against the Hessian's own size.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

import symdiff as sd
from symdiff.graph import toposort

from .common import Config, Impl, Results, Row, compare, peer

SIZES = (10, 100, 500, 1000)
QUICK_SIZES = (10, 30)
RANK = 5


# -- the problems: symdiff graph, NumPy closed form, data ----------------------------------
def _data(problem: str, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if problem == "xAx":
        return {"x": rng.normal(size=n), "A": rng.normal(size=(n, n))}
    if problem == "logreg":
        return {"w": rng.normal(size=n) / np.sqrt(n), "X": rng.normal(size=(n, n)),
                "y": rng.choice([-1.0, 1.0], size=n)}
    return {"U": rng.normal(size=(n, RANK)), "T": rng.normal(size=(n, n)),
            "V": rng.normal(size=(n, RANK))}


def _graph(problem: str, n: int):
    """(loss, wrt, inputs) as symdiff nodes."""
    if problem == "xAx":
        x, A = sd.var("x", (n,)), sd.var("A", (n, n))
        return x @ A @ x, x, [x, A]
    if problem == "logreg":
        w, X, y = sd.var("w", (n,)), sd.var("X", (n, n)), sd.var("y", (n,))
        return sd.sum(sd.log(sd.exp(-y * (X @ w)) + 1)), w, [w, X, y]
    U, T, V = sd.var("U", (n, RANK)), sd.var("T", (n, n)), sd.var("V", (n, RANK))
    return sd.sum((T - U @ V.T) ** 2), U, [U, T, V]


def closed_form(problem: str, d: dict) -> np.ndarray:
    if problem == "xAx":
        return d["A"] + d["A"].T
    if problem == "logreg":
        X, y = d["X"], d["y"]
        s = 1.0 / (1.0 + np.exp(-(-y * (X @ d["w"]))))
        return X.T @ ((y * y * s * (1.0 - s))[:, None] * X)
    n = d["U"].shape[0]
    H = np.zeros((n, RANK, n, RANK))
    idx = np.arange(n)
    H[idx, :, idx, :] = 2.0 * (d["V"].T @ d["V"])
    return H


def _args(problem: str, d: dict) -> tuple:
    """Positional arguments for the peers: the differentiated one first."""
    return {"xAx": ("x", "A"), "logreg": ("w", "X", "y"), "mf": ("U", "T", "V")}[problem]


def _peer_fn(problem: str, np_like):
    if problem == "xAx":
        return lambda x, A: x @ A @ x
    if problem == "logreg":
        return lambda w, X, y: np_like.sum(np_like.log(np_like.exp(-y * (X @ w)) + 1))
    return lambda U, T, V: np_like.sum((T - U @ V.T) ** 2)


# -- implementations -------------------------------------------------------------------------
def _symdiff(problem: str, n: int, d: dict, info: dict):
    def make():
        t0 = time.perf_counter()
        loss, wrt, inputs = _graph(problem, n)
        H = sd.hessian(loss, wrt)
        info["hessian_nodes"] = len(toposort([H]))
        info["optimized_nodes"] = len(toposort([sd.optimize(H)]))
        fn = sd.compile(H, inputs=inputs)
        values = [d[v.name] for v in inputs]
        fn(*values)
        return time.perf_counter() - t0, lambda: fn(*values)
    return make


def _jax(problem: str, d: dict):
    def make():
        jax = peer("jax")
        import jax.numpy as jnp
        names = _args(problem, d)
        fn = jax.jit(jax.hessian(_peer_fn(problem, jnp), argnums=0))
        values = [jnp.asarray(d[k]) for k in names]
        call = lambda: jax.block_until_ready(fn(*values))  # noqa: E731
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0, lambda: np.asarray(call())
    return make


def _torch(problem: str, d: dict):
    def make():
        torch = peer("torch")
        names = _args(problem, d)
        fn = torch.func.hessian(_peer_fn(problem, torch), argnums=0)
        values = [torch.tensor(d[k], dtype=torch.float64) for k in names]
        t0 = time.perf_counter()
        fn(*values)
        return time.perf_counter() - t0, lambda: fn(*values).numpy()
    return make


def _autograd(problem: str, d: dict):
    def make():
        import autograd
        import autograd.numpy as anp
        names = _args(problem, d)
        fn = autograd.hessian(_peer_fn(problem, anp), 0)
        values = [d[k] for k in names]
        t0 = time.perf_counter()
        fn(*values)
        return time.perf_counter() - t0, lambda: fn(*values)
    return make


def _skip(results: Results, problem: str, n: int, impl: str, why: str) -> None:
    results.add(Row("W8", f"{problem} n={n}", impl, status=f"skipped: {why}"))


def _mf_total_and_peak(n: int) -> dict:
    """symdiff's total time (build + hessian + compile + one call) and tracemalloc peak for
    the matrix-factorization Hessian, against the Hessian's size 8 (5n)^2 bytes."""
    d = _data("mf", n)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        loss, wrt, inputs = _graph("mf", n)
        fn = sd.compile(sd.hessian(loss, wrt), inputs=inputs)
        fn(*[d[v.name] for v in inputs])
        total = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = 8 * (RANK * n) ** 2
    return {"total_s": total, "peak_bytes": peak, "hessian_bytes": size,
            "peak_over_hessian": peak / size}


def run(cfg: Config, results: Results) -> None:
    sizes = QUICK_SIZES if cfg.quick else SIZES
    for problem in ("xAx", "logreg", "mf"):
        for n in sizes:
            d = _data(problem, n, cfg.seed)
            want = closed_form(problem, d)
            info: dict = {}
            case = f"{problem} n={n}"
            impls = [Impl("closed form NumPy", lambda p=problem, d=d: (
                0.0, lambda: closed_form(p, d)), tol=1e-10),
                Impl("symdiff", _symdiff(problem, n, d, info), tol=1e-8)]
            huge = problem == "mf" and n >= 500  # a (5n, n, n) tangent batch: gigabytes
            for name, make in (("jax", _jax), ("torch", _torch), ("autograd", _autograd)):
                if huge:
                    _skip(results, problem, n, name, "the (5n, n, n) tangent batch would not "
                          "fit in memory")
                elif name == "autograd" and n > 100:
                    _skip(results, problem, n, name, "one reverse pass per row: minutes")
                else:
                    impls.append(Impl(name, make(problem, d), peer=name, tol=1e-8))
            rows = compare(results, cfg, "W8", case, impls, "closed form NumPy", want)
            row = rows.get("symdiff")
            if row is not None:
                row.extra.update(info)
                jax_row = rows.get("jax")
                if jax_row is not None and jax_row.time and row.time:
                    row.extra["over_jax"] = row.time / jax_row.time
                    if jax_row.extra.get("setup_s") and row.extra.get("setup_s"):
                        row.extra["setup_over_jax_first_call"] = (
                            row.extra["setup_s"] / jax_row.extra["setup_s"])
            if problem == "mf" and n == sizes[-1] and row is not None:
                row.extra.update(_mf_total_and_peak(n))
