"""Weight initialization: Xavier/Glorot, He, small uniform, zeros.

**Shape convention.** A weight matrix has shape ``(fan_in, fan_out)`` and is used as ``X @ W``
(rows of ``X`` are examples), the layout of :mod:`symdiff.models`. For more than two axes the
last two are ``(in, out)`` and the leading axes are a receptive field (a convolution kernel
``(kh, kw, in, out)``, TensorFlow/Keras layout, or a stack of matrices used by batched ``@``)::

    fan_in  = shape[-2] * prod(shape[:-2])
    fan_out = shape[-1] * prod(shape[:-2])

A vector ``(n,)`` has ``fan_in = fan_out = n``; a scalar has ``1, 1`` (see :func:`fans`).
Biases are usually initialized with :func:`zeros`.

**Randomness.** Every random initializer takes ``rng``: a ``numpy.random.Generator`` or an int
seed (``numpy.random.default_rng(seed)``), so the same seed gives the same arrays. There is no
hidden global random state.

Formulas (``U(-a, a)`` has variance ``a**2 / 3``; ``g`` is the gain, 1 by default):

- :func:`xavier_uniform`: ``U(-a, a)`` with ``a = g sqrt(6 / (fan_in + fan_out))``;
  variance ``2 g**2 / (fan_in + fan_out)``
- :func:`xavier_normal`: ``N(0, 2 g**2 / (fan_in + fan_out))``
- :func:`he_uniform`: ``U(-a, a)`` with ``a = sqrt(6 / fan_in)``; variance ``2 / fan_in``
- :func:`he_normal`: ``N(0, 2 / fan_in)`` (not truncated)
- :func:`small_uniform`: ``U(-scale, scale)``, ``scale = 0.01`` by default

References: Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward
neural networks"; He, Zhang, Ren & Sun (2015), "Delving deep
into rectifiers" (for ReLU layers).
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..errors import SymdiffError, describe, expect_number
from ..graph import Expr, normalize_dtype, normalize_shape

__all__ = ["fans", "xavier_uniform", "xavier_normal", "glorot_uniform", "glorot_normal",
           "he_uniform", "he_normal", "small_uniform", "zeros", "init_params"]


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of this shape (module docstring for the convention)."""
    shape = normalize_shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2], dtype=np.int64))
    return shape[-2] * receptive, shape[-1] * receptive


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise SymdiffError(f"rng must be a numpy.random.Generator or an int seed >= 0, got "
                       f"{describe(rng)} "
                       f"(use numpy.random.default_rng(seed))")


def _float_dtype(dtype) -> np.dtype:
    dt = normalize_dtype(dtype)
    if dt.kind != "f":
        raise SymdiffError(f"initializers make float arrays, got dtype {dt}")
    return dt


def _positive_fan(value: int, what: str, shape) -> int:
    if value <= 0:
        raise SymdiffError(f"{what} of shape {normalize_shape(shape)} is 0; cannot scale an "
                           f"initializer")
    return value


def _allocate(make, shape: tuple):
    """``make()``, with NumPy's refusal of a shape too large for memory as a SymdiffError."""
    try:
        return make()
    except (ValueError, MemoryError) as exc:
        raise SymdiffError(f"cannot allocate an array of shape {shape}: {exc}") from None


def _uniform(shape, rng, bound: float, dtype) -> np.ndarray:
    shape, gen, dtype = normalize_shape(shape), _rng(rng), _float_dtype(dtype)
    return _allocate(lambda: gen.uniform(-bound, bound, size=shape).astype(dtype, copy=False),
                     shape)


def _normal(shape, rng, std: float, dtype) -> np.ndarray:
    shape, gen, dtype = normalize_shape(shape), _rng(rng), _float_dtype(dtype)
    return _allocate(lambda: gen.normal(0.0, std, size=shape).astype(dtype, copy=False), shape)


def xavier_uniform(shape, rng, gain: float = 1.0, dtype="float64") -> np.ndarray:
    """Glorot & Bengio (2010): ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``, so
    the variance is ``gain**2 * 2 / (fan_in + fan_out)``."""
    fan_in, fan_out = fans(shape)
    total = _positive_fan(fan_in + fan_out, "fan_in + fan_out", shape)
    gain = expect_number(gain, "gain", "xavier_uniform")
    return _uniform(shape, rng, gain * math.sqrt(6.0 / total), dtype)


def xavier_normal(shape, rng, gain: float = 1.0, dtype="float64") -> np.ndarray:
    """Glorot & Bengio (2010), normal form: ``N(0, std**2)``,
    ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    total = _positive_fan(fan_in + fan_out, "fan_in + fan_out", shape)
    gain = expect_number(gain, "gain", "xavier_normal")
    return _normal(shape, rng, gain * math.sqrt(2.0 / total), dtype)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


def he_uniform(shape, rng, dtype="float64") -> np.ndarray:
    """He et al. (2015) for ReLU layers, uniform form: ``U(-a, a)``, ``a = sqrt(6 / fan_in)``,
    variance ``2 / fan_in``."""
    fan_in, _ = fans(shape)
    return _uniform(shape, rng, math.sqrt(6.0 / _positive_fan(fan_in, "fan_in", shape)), dtype)


def he_normal(shape, rng, dtype="float64") -> np.ndarray:
    """He et al. (2015) for ReLU layers: ``N(0, 2 / fan_in)`` (not truncated)."""
    fan_in, _ = fans(shape)
    return _normal(shape, rng, math.sqrt(2.0 / _positive_fan(fan_in, "fan_in", shape)), dtype)


def small_uniform(shape, rng, scale: float = 0.01, dtype="float64") -> np.ndarray:
    """Small random weights ``U(-scale, scale)`` (the notes' "initialize small random
    weights")."""
    scale = expect_number(scale, "scale", "small_uniform")
    if scale < 0:
        raise SymdiffError(f"scale must be a number >= 0, got {scale!r}")
    return _uniform(shape, rng, scale, dtype)


def zeros(shape, dtype="float64") -> np.ndarray:
    """Zeros, for biases."""
    shape, dtype = normalize_shape(shape), _float_dtype(dtype)
    return _allocate(lambda: np.zeros(shape, dtype=dtype), shape)


_METHODS = {"xavier_uniform": xavier_uniform, "xavier_normal": xavier_normal,
            "glorot_uniform": xavier_uniform, "glorot_normal": xavier_normal,
            "he_uniform": he_uniform, "he_normal": he_normal, "small_uniform": small_uniform}


def init_params(variables: Iterable[Expr], rng, method="xavier_uniform") -> dict[str, np.ndarray]:
    """Initial values for graph variables, by name: variables with two or more axes (weight
    matrices, kernels) get ``method`` (a name from this module, e.g. ``"he_normal"``, or a
    callable ``(shape, rng) -> array``), variables with fewer axes (biases, scalars) get zeros.
    Each array has its variable's shape and dtype. Variables are initialized in the order
    given, from one generator, so a seed fixes all of them.

    A weight *vector* (e.g. the XOR network's output weights ``w``) would get zeros under this
    rule; initialize such a parameter explicitly.
    """
    if isinstance(method, str):
        if method not in _METHODS:
            raise SymdiffError(f"unknown init method {method!r}; choose one of "
                               f"{sorted(_METHODS)} or pass a callable (shape, rng) -> array")
        method = _METHODS[method]
    elif not callable(method):
        raise SymdiffError(f"method must be a name or a callable, got {method!r}")
    gen = _rng(rng)
    values: dict[str, np.ndarray] = {}
    if isinstance(variables, Expr):
        variables = [variables]
    elif (not isinstance(variables, Iterable) or isinstance(variables, (str, bytes, dict))
          or isinstance(variables, np.ndarray) and variables.ndim == 0):  # 0-d: no items
        raise SymdiffError(f"init_params: variables must be a list of graph variables "
                           f"(sd.var), got {describe(variables)}")
    for v in variables:
        if not isinstance(v, Expr) or not v.is_var:
            raise SymdiffError(f"init_params takes graph variables (sd.var), got {v!r}")
        if v.name in values:
            raise SymdiffError(f"variable {v.name!r} listed twice")
        if v.ndim >= 2:
            arr = np.asarray(method(v.shape, gen)).astype(v.dtype, copy=False)
        else:
            arr = zeros(v.shape, v.dtype)
        values[v.name] = arr
    return values
