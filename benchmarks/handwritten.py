"""Hand-written references: forward pass and backpropagation written out in NumPy (or, for the
scalar workloads, in plain Python with the ``math`` module), the way a careful person writes them.

"Careful" means: one pass that keeps the forward intermediates the backward needs, in-place
updates where an intermediate is dead, no array allocated twice, stable softmax / sigmoid /
softplus. Every routine returns ``(value, grads)`` with ``grads`` a tuple in the order the
harness asks symdiff for them, so results compare directly.

W1  mlp_value_and_grad     ReLU MLP, mean softmax cross-entropy + lam (|W1|^2 + |W2|^2)
W2  deep_value_and_grad    8 tanh layers, mean squared error
W5  mlp_hvp                H v of the W1 loss w.r.t. W1 (R-operator, forward-over-reverse)
W6  elementwise_value_and_grad
W3  nested_value_and_grad  (plain Python) z = f(f(...f(w))), f(u) = u sin u + exp(-u^2)
W7  tiny_value_and_grad    (plain Python) (x + y) * max(y, z)
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# W1: Goodfellow 6.5.7 MLP
# ---------------------------------------------------------------------------------------------
# J = -1/n sum_i sum_k Y_ik log softmax(U)_ik + lam (sum W1^2 + sum W2^2)
#   A = X W1 + b1,  H = relu(A),  U = H W2 + b2
# Backprop (Y one-hot, so each row of Y sums to one and dJ/dU = (softmax(U) - Y) / n):
#   dU = (P - Y)/n;  dW2 = H^T dU + 2 lam W2;  db2 = sum_rows dU
#   dA = (dU W2^T) * [A > 0];  dW1 = X^T dA + 2 lam W1;  db1 = sum_rows dA


def mlp_forward(X, Y, W1, b1, W2, b2, lam=1e-3):
    """The loss alone (what the value+grad costs are compared with)."""
    H = X @ W1
    H += b1
    np.maximum(H, 0.0, out=H)
    U = H @ W2
    U += b2
    U -= U.max(axis=1, keepdims=True)
    logp = U
    logp -= np.log(np.exp(U).sum(axis=1, keepdims=True))
    n = X.shape[0]
    data = -float(np.vdot(Y, logp)) / n
    return data + lam * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2)))


def mlp_value_and_grad(X, Y, W1, b1, W2, b2, lam=1e-3):
    """Value and (dW1, db1, dW2, db2)."""
    n = X.shape[0]
    H = X @ W1                      # A, turned into H in place
    H += b1
    np.maximum(H, 0.0, out=H)       # H = relu(A); H > 0 exactly where A > 0
    U = H @ W2
    U += b2
    U -= U.max(axis=1, keepdims=True)
    P = np.exp(U)
    s = P.sum(axis=1, keepdims=True)
    # value: -1/n sum Y (U - log s) ; U now holds the shifted logits
    value = (-(float(np.vdot(Y, U)) - float(np.vdot(Y.sum(axis=1), np.log(s[:, 0])))) / n
             + lam * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2))))
    # backward
    P /= s                          # softmax
    dU = P
    dU -= Y
    dU *= 1.0 / n
    dW2 = H.T @ dU
    dW2 += (2.0 * lam) * W2
    db2 = dU.sum(axis=0)
    dA = dU @ W2.T
    dA *= H > 0.0
    dW1 = X.T @ dA
    dW1 += (2.0 * lam) * W1
    db1 = dA.sum(axis=0)
    return value, (dW1, db1, dW2, db2)


# ---------------------------------------------------------------------------------------------
# W5: Hessian-vector product of the W1 loss w.r.t. W1, in direction V
# ---------------------------------------------------------------------------------------------
# Pearlmutter's R-operator R{.} = d/dr (.)(W1 + r V) at r = 0, applied to the forward pass and
# then to the backprop equations of mlp_value_and_grad (forward-over-reverse by hand). W2, b1, b2,
# X, Y are fixed, so R{W2} = R{b} = 0.
#   R{A}  = X V
#   R{H}  = [A > 0] * R{A}                       (relu'' = 0 almost everywhere)
#   R{U}  = R{H} W2
#   R{P}  = P * (R{U} - rowsum(P * R{U}))         (softmax Jacobian applied to R{U})
#   R{dU} = R{P} / n                              (Y does not move)
#   R{dA} = (R{dU} W2^T) * [A > 0]
#   H v   = R{dW1} = X^T R{dA} + 2 lam V


def mlp_hvp(X, Y, W1, b1, W2, b2, V, lam=1e-3):
    n = X.shape[0]
    H = X @ W1
    H += b1
    mask = H > 0.0
    np.maximum(H, 0.0, out=H)
    U = H @ W2
    U += b2
    U -= U.max(axis=1, keepdims=True)
    P = np.exp(U, out=U)
    P /= P.sum(axis=1, keepdims=True)
    RH = X @ V
    RH *= mask
    RU = RH @ W2
    RP = P * RU
    RP -= P * RP.sum(axis=1, keepdims=True)
    RP *= 1.0 / n
    RA = RP @ W2.T
    RA *= mask
    Hv = X.T @ RA
    Hv += (2.0 * lam) * V
    return Hv


# ---------------------------------------------------------------------------------------------
# W2: 8 tanh layers of width 16, batch 4; J = mean((h_L - T)^2)
# ---------------------------------------------------------------------------------------------
def deep_value_and_grad(X, T, Ws, bs):
    """``Ws``, ``bs``: lists of the layers' weights and biases. Returns value and
    (dW_0, db_0, ..., dW_{L-1}, db_{L-1})."""
    hs = [X]
    h = X
    for W, b in zip(Ws, bs):
        a = h @ W
        a += b
        h = np.tanh(a, out=a)
        hs.append(h)
    diff = h - T
    value = float(np.vdot(diff, diff)) / diff.size
    dh = diff
    dh *= 2.0 / diff.size
    grads = [None] * (2 * len(Ws))
    for k in range(len(Ws) - 1, -1, -1):
        h = hs[k + 1]
        da = dh
        da *= 1.0 - h * h            # tanh' = 1 - tanh^2
        grads[2 * k] = hs[k].T @ da
        grads[2 * k + 1] = da.sum(axis=0)
        if k:
            dh = da @ Ws[k].T
    return value, tuple(grads)


# ---------------------------------------------------------------------------------------------
# W6: x with 1e6 entries; J = sum(tanh(sigmoid(x) x + softplus(x))^2 + exp(-x^2))
# ---------------------------------------------------------------------------------------------
# u = s x + softplus(x), s = sigmoid(x); t = tanh(u); e = exp(-x^2)
# dJ/dx = 2 t (1 - t^2) (s (1 - s) x + s + s) - 2 x e        (softplus' = sigmoid)


def _sigmoid_softplus(x):
    """sigmoid(x) = 1 / (1 + e^-x) (e^-x may overflow to inf for x < -709: the result is the
    correct 0) and softplus(x) = max(x, 0) + log1p(e^-|x|), which never overflows. Both cost
    one exp; np.logaddexp would be several times slower."""
    s = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)
    sp = np.abs(x)
    np.negative(sp, out=sp)
    np.exp(sp, out=sp)
    np.log1p(sp, out=sp)
    sp += np.maximum(x, 0.0)
    return s, sp


def elementwise_value_and_grad(x):
    s, u = _sigmoid_softplus(x)
    tmp = s * x
    u += tmp                         # u = sigmoid(x) x + softplus(x)
    t = np.tanh(u, out=u)
    e = np.square(x)
    np.negative(e, out=e)
    np.exp(e, out=e)                 # e = exp(-x^2)
    value = float(np.vdot(t, t)) + float(e.sum())
    # gradient: 2 t (1 - t^2) (s (1 - s) x + 2 s) - 2 x e
    du = np.square(t)
    np.subtract(1.0, du, out=du)
    du *= t
    du *= 2.0
    np.subtract(1.0, s, out=tmp)
    tmp *= x
    tmp += 2.0
    tmp *= s
    du *= tmp
    e *= x
    e *= 2.0
    du -= e
    return value, (du,)


def elementwise_forward(x):
    s, u = _sigmoid_softplus(x)
    s *= x
    u += s
    np.tanh(u, out=u)
    e = np.square(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    return float(np.vdot(u, u)) + float(e.sum())


# ---------------------------------------------------------------------------------------------
# W3: nested scalar function, plain Python
# ---------------------------------------------------------------------------------------------
# f(u) = u sin u + exp(-u^2);  f'(u) = sin u + u cos u - 2 u exp(-u^2); chain rule in the loop.


def nested_value_and_grad(w: float, depth: int):
    u, du = w, 1.0
    sin, cos, exp = math.sin, math.cos, math.exp
    for _ in range(depth):
        s = sin(u)
        e = exp(-u * u)
        du *= s + u * cos(u) - 2.0 * u * e
        u = u * s + e
    return u, du


def nested_value(w: float, depth: int) -> float:
    u = w
    for _ in range(depth):
        u = u * math.sin(u) + math.exp(-u * u)
    return u


# ---------------------------------------------------------------------------------------------
# W7: (x + y) * max(y, z), plain Python (CS224n)
# ---------------------------------------------------------------------------------------------
def tiny_value_and_grad(x: float, y: float, z: float):
    s = x + y
    if y > z:
        m, gy, gz = y, 1.0, 0.0
    elif z > y:
        m, gy, gz = z, 0.0, 1.0
    else:                            # a tie splits the gradient (symdiff's convention)
        m, gy, gz = y, 0.5, 0.5
    return s * m, (m, m + s * gy, s * gz)
