"""The lecture notes' models as symdiff graphs, shared by the demo, the tests and the notebooks.

- :func:`mlp_loss`: Goodfellow 6.5.7, a ReLU hidden layer, softmax cross-entropy on the
  unnormalized log probabilities, plus ``lam * (sum W1^2 + sum W2^2)`` (Fig. 6.11).
- :func:`xor_network`: Goodfellow 6.1, ``f(x) = w^T max(0, W^T x + c) + b``, with the book's exact
  solution in :data:`XOR_SOLUTION`.
- :func:`train_xor`: gradient descent on the XOR network with a compiled gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops
from ..graph import Expr, var
from ..compiler import compile_grad

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])
XOR_SOLUTION = {"W": np.array([[1.0, 1.0], [1.0, 1.0]]), "c": np.array([0.0, -1.0]),
                "w": np.array([1.0, -2.0]), "b": np.array(0.0)}


@dataclass
class Model:
    """A loss graph with its parameters and data inputs."""

    loss: Expr
    params: list[Expr]
    data: list[Expr]
    output: Expr | None = None


def mlp_loss(n: int, d: int, hidden: int, classes: int, lam: float = 1e-3,
             with_bias: bool = True) -> Model:
    """Goodfellow's MLP cost (6.5.7): ``J = mean cross-entropy(log_softmax(U2), Y) +
    lam (sum W1^2 + sum W2^2)`` with ``H = relu(X W1 + b1)`` and ``U2 = H W2 + b2``."""
    X, Y = var("X", (n, d)), var("Y", (n, classes))
    W1, W2 = var("W1", (d, hidden)), var("W2", (hidden, classes))
    params = [W1, W2]
    pre = X @ W1
    if with_bias:
        b1, b2 = var("b1", (hidden,)), var("b2", (classes,))
        pre = pre + b1
        params = [W1, b1, W2, b2]
    H = ops.relu(pre)
    U2 = H @ W2 + b2 if with_bias else H @ W2
    cross_entropy = -ops.mean(ops.sum(Y * ops.log_softmax(U2, axis=1), axis=1))
    decay = lam * (ops.sum(ops.square(W1)) + ops.sum(ops.square(W2)))
    return Model(cross_entropy + decay, params, [X, Y], U2)


def xor_network(hidden: int = 2) -> Model:
    """Goodfellow 6.1: ``f(X) = relu(X W + c) w + b`` on the four XOR points, MSE loss."""
    X, y = var("X", (4, 2)), var("y", (4,))
    W, c = var("W", (2, hidden)), var("c", (hidden,))
    w, b = var("w", (hidden,)), var("b")
    f = ops.relu(X @ W + c) @ w + b
    loss = ops.mean(ops.square(f - y))
    return Model(loss, [W, c, w, b], [X, y], f)


def train_xor(hidden: int = 8, steps: int = 2000, lr: float = 0.05, momentum: float = 0.9,
              seed: int = 0):
    """Train the XOR network by gradient descent with momentum from small random weights.

    Returns ``(params, losses)``: the trained parameters by name and the loss per step.
    """
    model = xor_network(hidden)
    step_fn = compile_grad(model.loss, model.params)
    rng = np.random.default_rng(seed)
    values = {"W": rng.normal(0, 0.5, (2, hidden)), "c": np.full(hidden, 0.1),
              "w": rng.normal(0, 0.5, hidden), "b": np.array(0.0)}
    names = [p.name for p in model.params]
    velocity = {k: np.zeros_like(v) for k, v in values.items()}
    losses = []
    for _ in range(steps):
        loss, grads = step_fn(X=XOR_X, y=XOR_Y, **values)
        losses.append(float(loss))
        for name, g in zip(names, grads):
            velocity[name] = momentum * velocity[name] - lr * g
            values[name] = values[name] + velocity[name]
    return values, losses
