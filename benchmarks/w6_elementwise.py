"""W6 elementwise-heavy: x with 1e6 entries, J = sum(tanh(sigmoid(x) x + softplus(x))^2 +
exp(-x^2)), value and gradient. Reference: hand-written NumPy (in-place updates, stable sigmoid
and softplus without np.logaddexp). The graph is written as the issue writes it (``** 2``)."""
from __future__ import annotations

import time

import numpy as np

import symdiff as sd

from . import handwritten as hw
from . import peers_impl, sdutil
from .common import Config, Impl, Results, compare


def size(cfg: Config) -> int:
    return 10_000 if cfg.quick else 1_000_000


def build_graph(n: int):
    x = sd.var("x", (n,))
    loss = sd.sum(sd.tanh(sd.sigmoid(x) * x + sd.softplus(x)) ** 2 + sd.exp(-x ** 2))
    return loss, x


def run(cfg: Config, results: Results) -> None:
    n = size(cfg)
    x = np.random.default_rng(cfg.seed).standard_normal(n) * 2.0
    case = f"n={n:.0e}".replace("e+0", "e")
    want = hw.elementwise_value_and_grad(x)
    impls = [Impl("hand-written NumPy", lambda: (0.0, lambda: hw.elementwise_value_and_grad(x)))]
    for name, kw in sdutil.backend_variants():
        def make(kw=kw):
            t0 = time.perf_counter()
            loss, xv = build_graph(n)
            fn = sdutil.compile_grad(loss, [xv], [xv], **kw)
            fn(x)  # compile time includes the first call
            return time.perf_counter() - t0, lambda: fn(x)
        impls.append(Impl(name, make, tol=1e-9))
    for p, factory in peers_impl.ELEM.items():
        impls.append(Impl(p, lambda factory=factory: factory(x), peer=p))
    impls.append(Impl("hand-written forward only",
                      lambda: (0.0, lambda: hw.elementwise_forward(x)), check=False))
    rows = compare(results, cfg, "W6", case, impls, "hand-written NumPy", want)
    for name, kw in sdutil.variants():
        row = rows.get(name)
        if row is not None and row.time is not None:
            loss, xv = build_graph(n)
            row.extra.update(sdutil.graph_sizes(loss, [sd.grad(loss, xv)]))
            row.extra["code_lines"] = sdutil.source_lines(sdutil.compile_grad(loss, [xv], [xv],
                                                                              **kw))
