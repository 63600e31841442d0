"""W2 small-deep: 8 tanh layers of width 16, batch 4; J = mean((h_8 - T)^2); value and the
gradients w.r.t. every W_k and b_k. Reference: hand-written NumPy backprop (a loop over layers).
At these sizes the time is per-call and per-node overhead, not arithmetic."""
from __future__ import annotations

import time

import numpy as np

import symdiff as sd

from . import handwritten as hw
from . import peers_impl, sdutil
from .common import Config, Impl, Results, compare

LAYERS, WIDTH, BATCH = 8, 16, 4


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((BATCH, WIDTH))
    T = rng.uniform(-0.5, 0.5, (BATCH, WIDTH))
    Ws = [rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH) for _ in range(LAYERS)]
    bs = [rng.standard_normal(WIDTH) * 0.1 for _ in range(LAYERS)]
    return X, T, Ws, bs


def build_graph():
    X, T = sd.var("X", (BATCH, WIDTH)), sd.var("T", (BATCH, WIDTH))
    params = []
    h = X
    for k in range(LAYERS):
        W, b = sd.var(f"W{k}", (WIDTH, WIDTH)), sd.var(f"b{k}", (WIDTH,))
        params += [W, b]
        h = sd.tanh(h @ W + b)
    loss = sd.mean((h - T) ** 2)
    return loss, [X, T, *params], params


def run(cfg: Config, results: Results) -> None:
    X, T, Ws, bs = make_data(cfg.seed)
    args = [X, T]
    for W, b in zip(Ws, bs):
        args += [W, b]
    case = f"{LAYERS} layers x {WIDTH}, batch {BATCH}"
    want = hw.deep_value_and_grad(X, T, Ws, bs)
    impls = [Impl("hand-written NumPy",
                  lambda: (0.0, lambda: hw.deep_value_and_grad(X, T, Ws, bs)))]
    for name, kw in sdutil.backend_variants():
        def make(kw=kw):
            t0 = time.perf_counter()
            loss, inputs, params = build_graph()
            fn = sdutil.compile_grad(loss, params, inputs, **kw)
            fn(*args)  # compile time includes the first call
            return time.perf_counter() - t0, lambda: fn(*args)
        impls.append(Impl(name, make, tol=1e-9))
    for p, factory in peers_impl.DEEP.items():
        impls.append(Impl(p, lambda factory=factory: factory(X, T, Ws, bs), peer=p))
    rows = compare(results, cfg, "W2", case, impls, "hand-written NumPy", want)
    for name, kw in sdutil.variants():
        row = rows.get(name)
        if row is not None and row.time is not None:
            loss, inputs, params = build_graph()
            row.extra.update(sdutil.graph_sizes(loss, sd.grad(loss, params)))
            row.extra["code_lines"] = sdutil.source_lines(sdutil.compile_grad(loss, params, inputs,
                                                                              **kw))
