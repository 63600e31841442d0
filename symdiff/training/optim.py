"""First-order optimizers and learning-rate schedules for a dict of NumPy parameters.

The lecture notes' training toolbox (Goodfellow, *Deep Learning*, chapter 8; CS224n): plain SGD,
momentum and Nesterov momentum, Adagrad, RMSprop and Adam. Each optimizer works on a dict
``{name: ndarray}`` of parameters and a dict of gradients with the same names, as produced by a
:func:`symdiff.compile_grad` callable::

    f = sd.compile_grad(loss, [W, b])
    opt = Adam(lr=1e-3)
    for _ in range(100):
        value, (gW, gb) = f(W=params["W"], b=params["b"], X=X, y=y)
        params = opt.step(params, {"W": gW, "b": gb})

Conventions shared by every optimizer here:

- ``step(params, grads)`` returns a **new** dict holding new arrays; the caller's dict and arrays
  are never modified. A parameter without a gradient (a name missing from ``grads``) is passed
  through unchanged, as a frozen parameter; a gradient for an unknown name is an error.
- State (velocity, accumulators, step counts) is kept per parameter **name**, so one optimizer
  serves one set of parameters; :meth:`Optimizer.reset` clears it.
- ``lr`` is a float or a schedule, a callable ``epoch -> lr`` (:func:`constant`,
  :func:`step_decay`, :func:`exponential_decay`, :func:`linear_decay`, or any function). The
  optimizer reads ``schedule(self.epoch)``; :func:`symdiff.train.fit` sets ``epoch`` at the start
  of each epoch, a hand-written loop calls :meth:`Optimizer.set_epoch`.
- Parameters keep their floating dtype (float32 stays float32); integer or boolean parameter
  arrays are promoted to float64.
- Nothing is random: the same parameters and gradients give the same updates.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Union

import numpy as np

from ..errors import ShapeError, SymdiffError, expect_bool, fmt_shape
from ..inputs import numeric_array

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "OptimizerError",
    "Schedule", "constant", "step_decay", "exponential_decay", "linear_decay", "as_schedule",
]


class OptimizerError(SymdiffError, ValueError):
    """A bad hyperparameter, or parameters and gradients that do not match."""


# ---------------------------------------------------------------------------------------------
# learning-rate schedules: callables epoch -> lr
# ---------------------------------------------------------------------------------------------
class Schedule:
    """Base of the built-in schedules: a callable ``epoch -> learning rate`` (epochs from 0)."""

    def __call__(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_lr(value, what="lr") -> float:
    try:
        lr = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptimizerError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(lr) or lr < 0:
        raise OptimizerError(f"{what} must be a finite number >= 0, got {value!r}")
    return lr


def _check_epoch(epoch) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise OptimizerError(f"a schedule takes an epoch number >= 0, got {epoch!r}")
    return int(epoch)


class _Constant(Schedule):
    def __init__(self, lr):
        self.lr = _check_lr(lr)

    def __call__(self, epoch):
        _check_epoch(epoch)
        return self.lr

    def __repr__(self):
        return f"constant({self.lr!r})"


class _StepDecay(Schedule):
    def __init__(self, lr0, factor, every):
        self.lr0 = _check_lr(lr0, "lr0")
        self.factor = _check_lr(factor, "factor")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise OptimizerError(f"every must be an int >= 1 (epochs), got {every!r}")
        self.every = int(every)

    def __call__(self, epoch):
        return self.lr0 * self.factor ** (_check_epoch(epoch) // self.every)

    def __repr__(self):
        return f"step_decay({self.lr0!r}, factor={self.factor!r}, every={self.every!r})"


class _ExponentialDecay(Schedule):
    def __init__(self, lr0, gamma):
        self.lr0 = _check_lr(lr0, "lr0")
        self.gamma = _check_lr(gamma, "gamma")

    def __call__(self, epoch):
        return self.lr0 * self.gamma ** _check_epoch(epoch)

    def __repr__(self):
        return f"exponential_decay({self.lr0!r}, gamma={self.gamma!r})"


class _LinearDecay(Schedule):
    def __init__(self, lr0, lr_final, until):
        self.lr0 = _check_lr(lr0, "lr0")
        self.lr_final = _check_lr(lr_final, "lr_final")
        if isinstance(until, bool) or not isinstance(until, (int, np.integer)) or until < 1:
            raise OptimizerError(f"until must be an int >= 1 (epochs), got {until!r}")
        self.until = int(until)

    def __call__(self, epoch):
        alpha = min(_check_epoch(epoch) / self.until, 1.0)
        return (1.0 - alpha) * self.lr0 + alpha * self.lr_final

    def __repr__(self):
        return f"linear_decay({self.lr0!r}, {self.lr_final!r}, until={self.until!r})"


def constant(lr: float) -> Schedule:
    """The same learning rate at every epoch."""
    return _Constant(lr)


def step_decay(lr0: float, factor: float = 0.5, every: int = 10) -> Schedule:
    """``lr0 * factor ** (epoch // every)``: with the default ``factor=0.5``, the notes' "halve
    the learning rate every k epochs" (``every=k``). Epochs count from 0, so epochs
    ``0 .. every-1`` use ``lr0``."""
    return _StepDecay(lr0, factor, every)


def exponential_decay(lr0: float, gamma: float = 0.95) -> Schedule:
    """``lr0 * gamma ** epoch`` (epochs from 0)."""
    return _ExponentialDecay(lr0, gamma)


def linear_decay(lr0: float, lr_final: float, until: int) -> Schedule:
    """Goodfellow et al. (2016), section 8.3.1: ``(1 - a) lr0 + a lr_final`` with
    ``a = epoch / until``, constant ``lr_final`` from epoch ``until`` on."""
    return _LinearDecay(lr0, lr_final, until)


LearningRate = Union[float, Callable[[int], float]]


def as_schedule(lr: LearningRate) -> Callable[[int], float]:
    """A float becomes :func:`constant`; a callable ``epoch -> lr`` is kept as it is."""
    if callable(lr):
        return lr
    return constant(lr)


# ---------------------------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------------------------
def _check_fraction(value, what, upper_open=True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptimizerError(f"{what} must be a number, got {value!r}") from None
    ok = 0.0 <= x < 1.0 if upper_open else 0.0 <= x <= 1.0
    if not ok:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise OptimizerError(f"{what} must be in {interval}, got {value!r}")
    return x


def _check_eps(value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptimizerError(f"eps must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise OptimizerError(f"eps must be a finite number >= 0, got {value!r}")
    return x


def _as_float_array(value, name: str, what: str) -> np.ndarray:
    arr = numeric_array(value, f"{what} {name!r}", "a float array", OptimizerError)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


class Optimizer:
    """Base class: holds the learning-rate schedule, the epoch the schedule reads, and the
    per-parameter state. Subclasses implement :meth:`_update` for one parameter."""

    #: names of the per-parameter state arrays (for ``repr`` and tests)
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: LearningRate):
        if not callable(lr):
            _check_lr(lr)
        self.schedule = as_schedule(lr)
        self.epoch = 0
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    # -- schedule ---------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Tell the schedule which epoch (from 0) the next steps belong to."""
        self.epoch = _check_epoch(epoch)

    @property
    def lr(self) -> float:
        """The learning rate the next step uses: ``schedule(epoch)``."""
        return _check_lr(self.schedule(self.epoch), f"the schedule's learning rate at epoch "
                                                    f"{self.epoch}")

    def reset(self) -> None:
        """Forget all state (velocities, accumulators, step counts); the epoch goes back to 0."""
        self.state.clear()
        self.epoch = 0
        self.iterations = 0

    # -- the step ---------------------------------------------------------------------------
    def step(self, params: Mapping[str, np.ndarray],
             grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One update. ``params`` and ``grads`` map names to arrays; returns a new dict with new
        arrays for the names in ``grads`` (others passed through). Inputs are not modified."""
        if not isinstance(params, Mapping) or not isinstance(grads, Mapping):
            raise OptimizerError(f"step(params, grads) takes two dicts name -> array, got "
                                 f"{type(params).__name__} and {type(grads).__name__}")
        unknown = [k for k in grads if k not in params]
        if unknown:
            raise OptimizerError(f"gradients given for {unknown}, which are not among the "
                                 f"parameters {list(params)}")
        lr = self.lr
        new = dict(params)
        for name, g in grads.items():
            p = _as_float_array(params[name], name, "parameter")
            g = _as_float_array(g, name, "gradient")
            if g.shape != p.shape:
                raise ShapeError(f"gradient {name!r} has shape {fmt_shape(g.shape)} but the "
                                 f"parameter has shape {fmt_shape(p.shape)}")
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = self._init_state(p)
            elif any(s.shape != p.shape for s in state.values() if isinstance(s, np.ndarray)):
                raise ShapeError(f"parameter {name!r} changed shape to {fmt_shape(p.shape)} "
                                 f"since this optimizer's last step; call reset() first")
            g = g.astype(p.dtype, copy=False)
            new[name] = np.asarray(self._update(p, g, state, lr), dtype=p.dtype)
        self.iterations += 1
        return new

    def _init_state(self, p: np.ndarray) -> dict:
        return {k: np.zeros(p.shape, dtype=p.dtype) for k in self.state_names}

    def _update(self, p, g, state, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _hyper(self) -> str:
        return ""

    def __repr__(self):
        extra = self._hyper()
        return f"{type(self).__name__}(lr={self.schedule!r}{', ' + extra if extra else ''})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum or Nesterov momentum.

    Plain (``momentum=0``; Goodfellow et al. 2016, algorithm 8.1)::

        theta <- theta - lr * g

    Classical momentum (Polyak 1964; Sutskever, Martens, Dahl & Hinton 2013, eq. 1-2;
    Goodfellow algorithm 8.2), with velocity ``v`` starting at 0::

        v     <- momentum * v - lr * g(theta)
        theta <- theta + v

    Nesterov's accelerated gradient (Nesterov 1983; Sutskever et al. 2013, eq. 3-4) needs the
    gradient at the look-ahead point ``theta + momentum * v``. As in Bengio, Boulanger-Lewandowski
    & Pascanu (2013, eq. 7) and PyTorch/Keras, the parameters held here **are** that look-ahead
    point ``Theta = theta + momentum * v``, so the gradient you pass (evaluated at the parameters
    you hold) is the one Nesterov asks for, and the update is::

        v     <- momentum * v - lr * g(Theta)
        Theta <- Theta + momentum * v_new - lr * g(Theta)

    (Theta and theta agree at the start, where v = 0, and converge to the same point.)
    """

    state_names = ("velocity",)

    def __init__(self, lr: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        self.momentum = _check_fraction(momentum, "momentum")
        self.nesterov = expect_bool(nesterov, "nesterov", "SGD")
        if self.nesterov and self.momentum == 0.0:
            raise OptimizerError("nesterov=True needs a momentum > 0")

    def _init_state(self, p):
        return {"velocity": np.zeros(p.shape, dtype=p.dtype)} if self.momentum else {}

    def _update(self, p, g, state, lr):
        if not self.momentum:
            return p - lr * g
        v = self.momentum * state["velocity"] - lr * g
        state["velocity"] = v
        if self.nesterov:
            return p + self.momentum * v - lr * g
        return p + v

    def _hyper(self):
        return f"momentum={self.momentum!r}, nesterov={self.nesterov!r}"


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011; Goodfellow et al. 2016, algorithm 8.4): per-entry
    learning rates shrinking with the accumulated squared gradient ``r`` (starting at
    ``initial_accumulator``)::

        r     <- r + g * g
        theta <- theta - lr * g / (eps + sqrt(r))

    ``eps`` defaults to Goodfellow's ``delta = 1e-7``.
    """

    state_names = ("sum_sq",)

    def __init__(self, lr: LearningRate = 0.01, eps: float = 1e-7,
                 initial_accumulator: float = 0.0):
        super().__init__(lr)
        self.eps = _check_eps(eps)
        self.initial_accumulator = _check_eps(initial_accumulator)

    def _init_state(self, p):
        return {"sum_sq": np.full(p.shape, self.initial_accumulator, dtype=p.dtype)}

    def _update(self, p, g, state, lr):
        r = state["sum_sq"] + g * g
        state["sum_sq"] = r
        return p - lr * g / (self.eps + np.sqrt(r))

    def _hyper(self):
        return f"eps={self.eps!r}"


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, *Neural Networks for Machine Learning*, lecture 6.5;
    Goodfellow et al. 2016, algorithm 8.5): divide the gradient by a running root mean square
    ``r`` (starting at 0) with decay ``rho``::

        r     <- rho * r + (1 - rho) * g * g
        theta <- theta - lr * g / (sqrt(r) + eps)

    (``eps`` is added outside the square root, as in PyTorch and Keras; Goodfellow writes
    ``sqrt(delta + r)``.)
    """

    state_names = ("mean_sq",)

    def __init__(self, lr: LearningRate = 0.001, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(lr)
        self.rho = _check_fraction(rho, "rho")
        self.eps = _check_eps(eps)

    def _update(self, p, g, state, lr):
        r = self.rho * state["mean_sq"] + (1.0 - self.rho) * (g * g)
        state["mean_sq"] = r
        return p - lr * g / (np.sqrt(r) + self.eps)

    def _hyper(self):
        return f"rho={self.rho!r}, eps={self.eps!r}"


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, "Adam: a method for stochastic optimization", algorithm 1), with
    the bias correction of the first and second moment estimates. With ``m = v = 0`` and the step
    count ``t`` (per parameter) starting at 0::

        t     <- t + 1
        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g * g
        m_hat <- m / (1 - beta1 ** t)
        v_hat <- v / (1 - beta2 ** t)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    Defaults are the paper's: ``lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8``.
    """

    state_names = ("m", "v")

    def __init__(self, lr: LearningRate = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(lr)
        self.beta1 = _check_fraction(beta1, "beta1")
        self.beta2 = _check_fraction(beta2, "beta2")
        self.eps = _check_eps(eps)

    def _init_state(self, p):
        return {"m": np.zeros(p.shape, dtype=p.dtype), "v": np.zeros(p.shape, dtype=p.dtype),
                "t": 0}

    def _update(self, p, g, state, lr):
        t = state["t"] + 1
        m = self.beta1 * state["m"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["v"] + (1.0 - self.beta2) * (g * g)
        state.update(t=t, m=m, v=v)
        m_hat = m / (1.0 - self.beta1 ** t)
        v_hat = v / (1.0 - self.beta2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def _hyper(self):
        return f"beta1={self.beta1!r}, beta2={self.beta2!r}, eps={self.eps!r}"
