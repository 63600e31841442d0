"""The peers' versions of the array workloads (W1, W2, W5, W6), each behind an optional import.

Every ``make_*`` returns ``(setup_seconds, call)`` where ``call()`` computes the workload once
and returns NumPy-convertible results (value, grads) or the HVP, already finished (JAX results
are blocked on). ``setup_seconds`` is the one-time cost: tracing + compiling (JAX's first call,
PyTensor's ``function``), zero where there is none. All peers run in float64.
"""
from __future__ import annotations

import time

import numpy as np

from .common import peer


def _jax():
    jax = peer("jax")
    import jax.numpy as jnp
    return jax, jnp


def _block(out):
    jax = peer("jax")
    return jax.block_until_ready(out)


def _first_call(call):
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------------------------------------
# W1: MLP value and grad, inputs (X, Y, W1, b1, W2, b2)
# ---------------------------------------------------------------------------------------------
def mlp_jax(data, lam, hvp=False):
    jax, jnp = _jax()

    def loss(W1, b1, W2, b2, X, Y):
        H = jax.nn.relu(X @ W1 + b1)
        U = H @ W2 + b2
        ce = -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(U, axis=1), axis=1))
        return ce + lam * (jnp.sum(W1 ** 2) + jnp.sum(W2 ** 2))

    X, Y, W1, b1, W2, b2 = (jnp.asarray(a) for a in data[:6])
    if hvp:
        V = jnp.asarray(data[6])

        def hv(W1, b1, W2, b2, X, Y, V):
            g = lambda w: jax.grad(loss)(w, b1, W2, b2, X, Y)  # noqa: E731
            return jax.jvp(g, (W1,), (V,))[1]           # forward-over-reverse
        fn = jax.jit(hv)
        call = lambda: _block(fn(W1, b1, W2, b2, X, Y, V))  # noqa: E731
    else:
        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
        call = lambda: _block(fn(W1, b1, W2, b2, X, Y))  # noqa: E731
    setup, _ = _first_call(call)
    return setup, call


def mlp_torch(data, lam, hvp=False):
    torch = peer("torch")
    X, Y, W1, b1, W2, b2 = (torch.from_numpy(np.ascontiguousarray(a)) for a in data[:6])
    params = [p.clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    F = torch.nn.functional

    def loss(W1, b1, W2, b2):
        H = torch.relu(X @ W1 + b1)
        U = H @ W2 + b2
        ce = -torch.mean(torch.sum(Y * F.log_softmax(U, dim=1), dim=1))
        return ce + lam * (torch.sum(W1 ** 2) + torch.sum(W2 ** 2))

    if hvp:
        V = torch.from_numpy(np.ascontiguousarray(data[6]))

        def call():
            J = loss(*params)
            (g,) = torch.autograd.grad(J, params[0], create_graph=True)
            (hv,) = torch.autograd.grad(torch.sum(g * V), params[0])
            return hv
    else:
        def call():
            J = loss(*params)
            grads = torch.autograd.grad(J, params)
            return J.detach(), grads
    return 0.0, call


def mlp_autograd(data, lam, hvp=False):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    X, Y, W1, b1, W2, b2 = data[:6]

    def loss(params):
        W1, b1, W2, b2 = params
        H = anp.maximum(X @ W1 + b1, 0.0)
        U = H @ W2 + b2
        logp = U - logsumexp(U, axis=1, keepdims=True)
        ce = -anp.mean(anp.sum(Y * logp, axis=1))
        return ce + lam * (anp.sum(W1 ** 2) + anp.sum(W2 ** 2))

    if hvp:
        V = data[6]
        hvp_fn = autograd.hessian_vector_product(lambda w: loss((w, b1, W2, b2)))
        return 0.0, lambda: hvp_fn(W1, V)
    vg = autograd.value_and_grad(loss)
    return 0.0, lambda: vg((W1, b1, W2, b2))


def mlp_pytensor(data, lam, hvp=False):
    import pytensor
    import pytensor.tensor as pt
    X, Y, W1, b1, W2, b2 = (pt.dmatrix("X"), pt.dmatrix("Y"), pt.dmatrix("W1"), pt.dvector("b1"),
                            pt.dmatrix("W2"), pt.dvector("b2"))
    H = pt.maximum(X @ W1 + b1, 0.0)
    U = H @ W2 + b2
    ce = -pt.mean(pt.sum(Y * pt.special.log_softmax(U, axis=1), axis=1))
    J = ce + lam * (pt.sum(W1 ** 2) + pt.sum(W2 ** 2))
    inputs = [X, Y, W1, b1, W2, b2]
    t0 = time.perf_counter()
    if hvp:
        V = pt.dmatrix("V")
        g = pytensor.grad(J, W1)
        hv = pytensor.grad(pt.sum(g * V), W1)
        fn = pytensor.function(inputs + [V], hv)
        args = data[:7]
    else:
        grads = pytensor.grad(J, [W1, b1, W2, b2])
        fn = pytensor.function(inputs, [J, *grads])
        args = data[:6]
    setup = time.perf_counter() - t0

    def call():
        out = fn(*args)
        return out if hvp else (out[0], tuple(out[1:]))
    return setup + _first_call(call)[0], call


MLP = {"jax": mlp_jax, "torch": mlp_torch, "autograd": mlp_autograd, "pytensor": mlp_pytensor}


# ---------------------------------------------------------------------------------------------
# W2: deep tanh net, inputs (X, T, [W], [b])
# ---------------------------------------------------------------------------------------------
def deep_jax(X, T, Ws, bs):
    jax, jnp = _jax()

    def loss(params, X, T):
        h = X
        for W, b in params:
            h = jnp.tanh(h @ W + b)
        return jnp.mean((h - T) ** 2)

    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(Ws, bs)]
    fn = jax.jit(jax.value_and_grad(loss))
    Xj, Tj = jnp.asarray(X), jnp.asarray(T)
    call = lambda: _block(fn(params, Xj, Tj))  # noqa: E731

    def flat():
        v, g = call()
        return v, tuple(a for pair in g for a in pair)
    setup, _ = _first_call(call)
    return setup, flat


def deep_torch(X, T, Ws, bs):
    torch = peer("torch")
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    params = []
    for W, b in zip(Ws, bs):
        params += [torch.from_numpy(W.copy()).requires_grad_(True),
                   torch.from_numpy(b.copy()).requires_grad_(True)]

    def call():
        h = Xt
        for k in range(0, len(params), 2):
            h = torch.tanh(h @ params[k] + params[k + 1])
        J = torch.mean((h - Tt) ** 2)
        return J.detach(), torch.autograd.grad(J, params)
    return 0.0, call


def deep_autograd(X, T, Ws, bs):
    import autograd
    import autograd.numpy as anp

    def loss(params):
        h = X
        for k in range(0, len(params), 2):
            h = anp.tanh(h @ params[k] + params[k + 1])
        return anp.mean((h - T) ** 2)

    params = []
    for W, b in zip(Ws, bs):
        params += [W, b]
    vg = autograd.value_and_grad(loss)
    return 0.0, lambda: vg(params)


def deep_pytensor(X, T, Ws, bs):
    import pytensor
    import pytensor.tensor as pt
    Xs, Ts = pt.dmatrix("X"), pt.dmatrix("T")
    params = []
    h = Xs
    for k in range(len(Ws)):
        W, b = pt.dmatrix(f"W{k}"), pt.dvector(f"b{k}")
        params += [W, b]
        h = pt.tanh(h @ W + b)
    J = pt.mean((h - Ts) ** 2)
    t0 = time.perf_counter()
    fn = pytensor.function([Xs, Ts, *params], [J, *pytensor.grad(J, params)])
    setup = time.perf_counter() - t0
    args = [X, T]
    for W, b in zip(Ws, bs):
        args += [W, b]

    def call():
        out = fn(*args)
        return out[0], tuple(out[1:])
    return setup + _first_call(call)[0], call


DEEP = {"jax": deep_jax, "torch": deep_torch, "autograd": deep_autograd,
        "pytensor": deep_pytensor}


# ---------------------------------------------------------------------------------------------
# W6: elementwise
# ---------------------------------------------------------------------------------------------
def elem_jax(x):
    jax, jnp = _jax()

    def loss(x):
        return jnp.sum(jnp.tanh(jax.nn.sigmoid(x) * x + jax.nn.softplus(x)) ** 2
                       + jnp.exp(-x ** 2))
    fn = jax.jit(jax.value_and_grad(loss))
    xj = jnp.asarray(x)
    call = lambda: _block(fn(xj))  # noqa: E731

    def flat():
        v, g = call()
        return v, (g,)
    setup, _ = _first_call(call)
    return setup, flat


def elem_torch(x):
    torch = peer("torch")
    F = torch.nn.functional
    xt = torch.from_numpy(x.copy()).requires_grad_(True)

    def call():
        J = torch.sum(torch.tanh(torch.sigmoid(xt) * xt + F.softplus(xt)) ** 2
                      + torch.exp(-xt ** 2))
        return J.detach(), torch.autograd.grad(J, [xt])
    return 0.0, call


def elem_autograd(x):
    import autograd
    import autograd.numpy as anp

    def loss(x):
        s = 0.5 * (anp.tanh(0.5 * x) + 1.0)
        sp = anp.logaddexp(0.0, x)
        return anp.sum(anp.tanh(s * x + sp) ** 2 + anp.exp(-x ** 2))
    vg = autograd.value_and_grad(loss)

    def call():
        v, g = vg(x)
        return v, (g,)
    return 0.0, call


def elem_pytensor(x):
    import pytensor
    import pytensor.tensor as pt
    xs = pt.dvector("x")
    J = pt.sum(pt.tanh(pt.sigmoid(xs) * xs + pt.softplus(xs)) ** 2 + pt.exp(-xs ** 2))
    t0 = time.perf_counter()
    fn = pytensor.function([xs], [J, pytensor.grad(J, xs)])
    setup = time.perf_counter() - t0

    def call():
        v, g = fn(x)
        return v, (g,)
    return setup + _first_call(call)[0], call


ELEM = {"jax": elem_jax, "torch": elem_torch, "autograd": elem_autograd,
        "pytensor": elem_pytensor}
