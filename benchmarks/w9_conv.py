"""W9 convolution: x (32, 16, 32, 32), w (32, 16, 3, 3), padding 1, J = sum(conv2d(x, w)^2),
value and gradient w.r.t. x and w (float64). Reference: hand-written NumPy im2col (one matrix
product forward, two backward, col2im by nine strided slice-adds). Peers: PyTorch eager
(``F.conv2d``), JAX (``lax.conv_general_dilated`` under ``jit``), and autograd, which has no
conv2d of its own: its version is written with ``autograd.numpy`` as an einsum over the nine
shifted slices of the padded input (a ``sliding_window_view`` has no autograd gradient)."""
from __future__ import annotations

import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import symdiff as sd

from . import sdutil
from .common import Config, Impl, Results, compare, peer


def shapes(cfg: Config) -> tuple[tuple, tuple]:
    if cfg.quick:
        return (4, 3, 8, 8), (5, 3, 3, 3)
    return (32, 16, 32, 32), (32, 16, 3, 3)


def handwritten(x, w):
    """J, (dJ/dx, dJ/dw) by im2col: cols (N H W, C KH KW), y = cols W^T, dW = dy^T cols,
    dcols = dy W scattered back (col2im)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = sliding_window_view(xp, (kh, kw), axis=(2, 3))          # (N, C, H, W, KH, KW)
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * kh * kw)
    w2 = w.reshape(o, -1)
    y = cols @ w2.T                                                  # (N H W, O)
    value = float(np.sum(y * y))
    dy = 2.0 * y
    dw = (dy.T @ cols).reshape(w.shape)
    dcols = (dy @ w2).reshape(n, h, wd, c, kh, kw)
    dxp = np.zeros(xp.shape)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return value, (dxp[:, :, 1:-1, 1:-1], dw)


def build_graph(x_shape, w_shape):
    x, w = sd.var("x", x_shape), sd.var("w", w_shape)
    return sd.sum(sd.conv2d(x, w, padding=1) ** 2), x, w


def torch_impl(x, w):
    torch = peer("torch")
    F = torch.nn.functional
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    wt = torch.from_numpy(w.copy()).requires_grad_(True)

    def call():
        J = torch.sum(F.conv2d(xt, wt, padding=1) ** 2)
        return J.detach(), torch.autograd.grad(J, [xt, wt])
    return 0.0, call


def jax_impl(x, w):
    jax = peer("jax")
    import jax.numpy as jnp
    from jax import lax

    def loss(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jnp.sum(y ** 2)
    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    xj, wj = jnp.asarray(x), jnp.asarray(w)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(xj, wj))
    setup = time.perf_counter() - t0

    def call():
        return jax.block_until_ready(fn(xj, wj))
    return setup, call


def autograd_impl(x, w):
    import autograd
    import autograd.numpy as anp
    kh, kw = w.shape[2:]
    h, wd = x.shape[2:]

    def loss(x, w):
        xp = anp.concatenate([anp.zeros(x.shape[:2] + (1, wd)), x,
                              anp.zeros(x.shape[:2] + (1, wd))], axis=2)
        xp = anp.concatenate([anp.zeros(xp.shape[:3] + (1,)), xp,
                              anp.zeros(xp.shape[:3] + (1,))], axis=3)
        y = 0.0
        for i in range(kh):
            for j in range(kw):
                y = y + anp.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j],
                                   optimize=True)
        return anp.sum(y ** 2)
    vg = autograd.value_and_grad(loss, argnum=(0, 1)) if _argnum_tuple(autograd) else None
    if vg is None:
        vx, vw = autograd.value_and_grad(loss, 0), autograd.grad(loss, 1)

        def call():
            v, gx = vx(x, w)
            return v, (gx, vw(x, w))
        return 0.0, call

    def call():
        v, g = vg(x, w)
        return v, tuple(g)
    return 0.0, call


def _argnum_tuple(autograd) -> bool:
    try:
        autograd.value_and_grad(lambda a, b: a * b, argnum=(0, 1))(1.0, 2.0)
        return True
    except Exception:
        return False


PEERS = {"torch": torch_impl, "jax": jax_impl, "autograd": autograd_impl}


def run(cfg: Config, results: Results) -> None:
    x_shape, w_shape = shapes(cfg)
    rng = np.random.default_rng(cfg.seed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape) * 0.1
    case = "x" + "x".join(map(str, x_shape)) + " w" + "x".join(map(str, w_shape))
    want = handwritten(x, w)
    impls = [Impl("hand-written NumPy", lambda: (0.0, lambda: handwritten(x, w)))]
    for name, kw in sdutil.variants():
        def make(kw=kw):
            t0 = time.perf_counter()
            loss, xv, wv = build_graph(x_shape, w_shape)
            fn = sdutil.compile_grad(loss, [xv, wv], [xv, wv], **kw)
            return time.perf_counter() - t0, lambda: fn(x, w)
        impls.append(Impl(name, make, tol=1e-9))
    for p, factory in PEERS.items():
        impls.append(Impl(p, lambda factory=factory: factory(x, w), peer=p, tol=1e-7))
    compare(results, cfg, "W9", case, impls, "hand-written NumPy", want)
