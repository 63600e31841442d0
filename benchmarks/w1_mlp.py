"""W1 (MLP value and gradient) and W5 (Hessian-vector product of the same loss w.r.t. W1).

W1: X (512, 64), one-hot Y (512, 10), W1 (64, 256), b1 (256,), ReLU, W2 (256, 10), b2 (10,),
mean softmax cross-entropy + 1e-3 (sum W1^2 + sum W2^2); value and gradients w.r.t. W1, b1,
W2, b2. Reference: hand-written NumPy forward + backprop. Extra: peak memory of one call
(tracemalloc) against the hand-written code; forward / gradient graph node counts.

W5: H v for the W1 loss w.r.t. W1, direction V (64, 256). Reference: the hand-written R-operator
HVP; also compared with symdiff's own W1 value+grad.
"""
from __future__ import annotations

import gc
import json
import time
import tracemalloc

import numpy as np

import symdiff as sd

from . import handwritten as hw
from . import peers_impl, sdutil
from .common import Config, Impl, Results, compare

LAM = 1e-3


def sizes(cfg: Config) -> dict:
    if cfg.quick:
        return {"n": 64, "d": 16, "hidden": 32, "classes": 10}
    return {"n": 512, "d": 64, "hidden": 256, "classes": 10}


def make_data(sz: dict, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, d, h, k = sz["n"], sz["d"], sz["hidden"], sz["classes"]
    X = rng.standard_normal((n, d))
    Y = np.zeros((n, k))
    Y[np.arange(n), rng.integers(0, k, n)] = 1.0
    W1 = rng.standard_normal((d, h)) * np.sqrt(2.0 / d)
    b1 = rng.standard_normal(h) * 0.1
    W2 = rng.standard_normal((h, k)) * np.sqrt(1.0 / h)
    b2 = rng.standard_normal(k) * 0.1
    V = rng.standard_normal((d, h))
    return X, Y, W1, b1, W2, b2, V


def build_graph(sz: dict):
    """The loss as a symdiff graph; returns (loss, inputs in data order, params)."""
    n, d, h, k = sz["n"], sz["d"], sz["hidden"], sz["classes"]
    X, Y = sd.var("X", (n, d)), sd.var("Y", (n, k))
    W1, b1 = sd.var("W1", (d, h)), sd.var("b1", (h,))
    W2, b2 = sd.var("W2", (h, k)), sd.var("b2", (k,))
    H = sd.relu(X @ W1 + b1)
    U = H @ W2 + b2
    ce = -sd.mean(sd.sum(Y * sd.log_softmax(U, axis=1), axis=1))
    loss = ce + LAM * (sd.sum(W1 ** 2) + sd.sum(W2 ** 2))
    return loss, [X, Y, W1, b1, W2, b2], [W1, b1, W2, b2]


def peak_bytes(fn) -> int:
    """Peak bytes allocated (NumPy buffers included) during one call, beyond what was live."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del out
    finally:
        tracemalloc.stop()
    return peak


def run_w1(cfg: Config, results: Results) -> None:
    sz = sizes(cfg)
    data = make_data(sz, cfg.seed)
    args = data[:6]
    case = "n={n} d={d} h={hidden}".format(**sz)
    want = hw.mlp_value_and_grad(*args, lam=LAM)

    impls = [Impl("hand-written NumPy", lambda: (0.0, lambda: hw.mlp_value_and_grad(*args)))]
    for name, kw in sdutil.backend_variants():
        def make(kw=kw):
            t0 = time.perf_counter()
            loss, inputs, params = build_graph(sz)
            fn = sdutil.compile_grad(loss, params, inputs, **kw)
            fn(*args)  # compile time includes the first call
            setup = time.perf_counter() - t0
            return setup, lambda: fn(*args)
        impls.append(Impl(name, make, tol=1e-9))
    for p, factory in peers_impl.MLP.items():
        impls.append(Impl(p, lambda factory=factory: factory(data, LAM), peer=p))
    impls.append(Impl("hand-written forward only",
                      lambda: (0.0, lambda: hw.mlp_forward(*args)), check=False))
    rows = compare(results, cfg, "W1", case, impls, "hand-written NumPy", want)
    nb_row = rows.get("symdiff backend=numba")
    if nb_row is not None and nb_row.time is not None:  # the disk cache, from a new process
        nb_row.extra.update(sdutil.cached_compile_in_new_process(
            "w1_mlp", f"import json\nsz = json.loads({json.dumps(json.dumps(sz))})\n"
            f"args = m.make_data(sz, {cfg.seed})[:6]",
            "loss, inputs, params = m.build_graph(sz)\n"
            "fn = sd.compile_grad(loss, params, inputs, backend='numba')\nfn(*args)"))
    fwd, vg = rows["hand-written forward only"], rows["hand-written NumPy"]
    if fwd.time and vg.time:
        vg.extra["value_and_grad_over_forward"] = vg.time / fwd.time

    # peak memory (tracemalloc sees NumPy's buffers; peers' allocators are not traced)
    hw_peak = peak_bytes(lambda: hw.mlp_value_and_grad(*args))
    rows["hand-written NumPy"].extra["peak_bytes"] = hw_peak
    for name, kw in sdutil.variants():
        row = rows.get(name)
        if row is None or row.status.startswith("error"):
            continue
        loss, inputs, params = build_graph(sz)
        fn = sdutil.compile_grad(loss, params, inputs, **kw)
        p = peak_bytes(lambda: fn(*args))
        row.extra["peak_bytes"] = p
        row.extra["peak_over_handwritten"] = p / hw_peak if hw_peak else None
        grads = sd.grad(loss, params)
        row.extra.update(sdutil.graph_sizes(loss, grads))
        row.extra["code_lines"] = sdutil.source_lines(fn)
    ag = rows.get("autograd")
    if ag is not None and ag.time is not None:  # autograd allocates through NumPy: traced too
        _, call = peers_impl.mlp_autograd(data, LAM)
        ag.extra["peak_bytes"] = peak_bytes(call)
        ag.extra["peak_over_handwritten"] = ag.extra["peak_bytes"] / hw_peak if hw_peak else None


def run_w5(cfg: Config, results: Results) -> None:
    sz = sizes(cfg)
    data = make_data(sz, cfg.seed)
    args7 = data[:7]
    case = "n={n} d={d} h={hidden}".format(**sz)
    want = hw.mlp_hvp(*args7, lam=LAM)

    impls = [Impl("hand-written NumPy HVP", lambda: (0.0, lambda: hw.mlp_hvp(*args7)))]
    for name, kw in sdutil.backend_variants():
        def make(kw=kw):
            t0 = time.perf_counter()
            loss, inputs, params = build_graph(sz)
            V = sd.var("V", params[0].shape)
            hv = sd.hvp(loss, params[0], V)
            fn = sdutil.compile_fn(hv, inputs + [V], **kw)
            setup = time.perf_counter() - t0
            return setup, lambda: fn(*args7)
        impls.append(Impl(name, make, tol=1e-9))
    for p, factory in peers_impl.MLP.items():
        impls.append(Impl(p, lambda factory=factory: factory(data, LAM, hvp=True), peer=p))
    # symdiff's own value+grad, timed in the same round-robin for the "HVP / value+grad" ratio
    for name, kw in sdutil.variants():
        def make_vg(kw=kw):
            loss, inputs, params = build_graph(sz)
            fn = sdutil.compile_grad(loss, params, inputs, **kw)
            return 0.0, lambda: fn(*data[:6])
        impls.append(Impl(f"{name} value+grad (W1)", make_vg, check=False))
    impls.append(Impl("hand-written NumPy value+grad (W1)",
                      lambda: (0.0, lambda: hw.mlp_value_and_grad(*data[:6])), check=False))
    rows = compare(results, cfg, "W5", case, impls, "hand-written NumPy HVP", want)
    for name, _ in sdutil.variants():
        hv, vg = rows.get(name), rows.get(f"{name} value+grad (W1)")
        if hv and vg and hv.time and vg.time:
            hv.extra["hvp_over_own_value_grad"] = hv.time / vg.time
            try:
                loss, inputs, params = build_graph(sz)
                V = sd.var("V", params[0].shape)
                hvx = sd.hvp(loss, params[0], V)
                hv.extra["hvp_graph_nodes"] = sdutil.count_ops(hvx)
                hv.extra["forward_nodes"] = sdutil.count_ops(loss)
            except Exception:  # noqa: BLE001 - informational
                pass
    hand_vg = rows.get("hand-written NumPy value+grad (W1)")
    hand_hv = rows.get("hand-written NumPy HVP")
    if hand_vg and hand_hv and hand_vg.time:
        hand_hv.extra["hvp_over_own_value_grad"] = hand_hv.time / hand_vg.time
