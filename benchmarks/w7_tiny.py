"""W7 tiny: value and gradient of (x + y) * max(y, z) at (x, y, z) = (1, 2, 0), per call.

Everyone is called the way its user would call it with three Python floats: symdiff's compiled
value+grad, hand-written plain Python (the reference), SymPy's ``lambdify`` with the math module of
the hand-derived gradient, and the peers (JAX ``jit(value_and_grad)``, PyTorch eager autograd with
fresh leaf tensors, PyTensor ``function``, CasADi ``Function``, autograd ``value_and_grad``)."""
from __future__ import annotations

import time

import numpy as np

import symdiff as sd

from . import handwritten as hw
from . import sdutil
from .common import Config, Impl, Results, compare, flatten_floats, peer

AT = (1.0, 2.0, 0.0)


def build_graph():
    x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    return (x + y) * sd.maximum(y, z), [x, y, z]


def _sympy(args=AT):
    import sympy as sp
    x, y, z = sp.symbols("x y z")
    m = sp.Max(y, z)
    # the gradient derived by hand (CS224n): max routes to its larger argument
    exprs = [(x + y) * m, m, m + (x + y) * sp.Piecewise((1, y > z), (0, True)),
             (x + y) * sp.Piecewise((1, z > y), (0, True))]
    t0 = time.perf_counter()
    f = sp.lambdify((x, y, z), exprs, "math")
    setup = time.perf_counter() - t0
    return setup, lambda: f(*args)


def _symdiff(kw, args=AT):
    t0 = time.perf_counter()
    out, xs = build_graph()
    fn = sdutil.compile_grad(out, xs, xs, **kw)
    setup = time.perf_counter() - t0
    return setup, lambda: fn(*args)


def _jax():
    jax = peer("jax")
    import jax.numpy as jnp
    fn = jax.jit(jax.value_and_grad(lambda x, y, z: (x + y) * jnp.maximum(y, z),
                                    argnums=(0, 1, 2)))
    call = lambda: jax.block_until_ready(fn(*AT))  # noqa: E731
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0, call


def _torch():
    torch = peer("torch")

    def call():
        x, y, z = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in AT)
        out = (x + y) * torch.maximum(y, z)
        grads = torch.autograd.grad(out, (x, y, z))
        return out.item(), [g.item() for g in grads]
    return 0.0, call


def _pytensor():
    import pytensor
    import pytensor.tensor as pt
    t0 = time.perf_counter()
    x, y, z = pt.dscalars("x", "y", "z")
    out = (x + y) * pt.maximum(y, z)
    fn = pytensor.function([x, y, z], [out, *pytensor.grad(out, [x, y, z])])
    fn(*AT)
    return time.perf_counter() - t0, lambda: fn(*AT)


def _casadi():
    ca = peer("casadi")
    t0 = time.perf_counter()
    x, y, z = ca.SX.sym("x"), ca.SX.sym("y"), ca.SX.sym("z")
    out = (x + y) * ca.fmax(y, z)
    fn = ca.Function("f", [x, y, z], [out, *ca.gradient(out, ca.vertcat(x, y, z)).nz])
    return time.perf_counter() - t0, lambda: fn(*AT)


def _autograd():
    import autograd
    import autograd.numpy as anp
    vg = autograd.value_and_grad(lambda x, y, z: (x + y) * anp.maximum(y, z), (0, 1, 2))
    return 0.0, lambda: vg(*AT)


def run(cfg: Config, results: Results) -> None:
    want = flatten_floats(hw.tiny_value_and_grad(*AT))
    case = "(x+y)*max(y,z)"
    kw = {"tol": 1e-12, "post": flatten_floats}
    impls = [Impl("hand-written Python", lambda: (0.0, lambda: hw.tiny_value_and_grad(*AT)), **kw),
             Impl("sympy lambdify(math)", _sympy, **kw)]
    for name, ckw in sdutil.variants():
        impls.append(Impl(name, lambda ckw=ckw: _symdiff(ckw), **kw))
    at64 = tuple(np.float64(v) for v in AT)  # how a NumPy user calls it
    impls.append(Impl("sympy lambdify(math) (np.float64 args)",
                      lambda: _sympy(at64), **kw))
    impls.append(Impl("symdiff (np.float64 args)",
                      lambda: _symdiff(sdutil.variants()[0][1], at64), **kw))
    impls += [Impl("jax", _jax, peer="jax", **kw), Impl("torch", _torch, peer="torch", **kw),
              Impl("pytensor", _pytensor, peer="pytensor", **kw),
              Impl("casadi", _casadi, peer="casadi", **kw),
              Impl("autograd", _autograd, peer="autograd", **kw)]
    rows = compare(results, cfg, "W7", case, impls, "hand-written Python", want)
    lam = rows.get("sympy lambdify(math)")
    for name, _ in sdutil.variants():
        r = rows.get(name)
        if r is not None and r.time and lam is not None and lam.time:
            r.extra["over_sympy_lambdify"] = r.time / lam.time
