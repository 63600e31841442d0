"""The array namespace generated code calls as ``xp``: NumPy's functions plus the few composite
kernels that ops lower to (stable sigmoid, logsumexp, softmax, log_softmax, and the scatter-adds
that transpose take and indexing).

Lowering writes every array call as ``xp.<name>(...)``, so another array library can be plugged in
by building a namespace with the same names, without touching the ops.
"""
from __future__ import annotations

import math
import types
import warnings

import numpy as np


def sigmoid(x):
    """1 / (1 + e^-x): accurate for any x; for x < -709 e^-x overflows to inf and the result
    is the correct 0 (the overflow warning is silenced)."""
    with np.errstate(over="ignore"):
        e = np.exp(np.negative(x))
    if isinstance(e, np.ndarray):
        e += 1.0
        return np.reciprocal(e, out=e)
    return 1.0 / (1.0 + e)


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows, accurate for any x (and five
    times faster than np.logaddexp)."""
    e = np.exp(-np.abs(x))
    if isinstance(e, np.ndarray):
        np.log1p(e, out=e)
        e += np.maximum(x, 0.0)
        return e
    return max(float(x), 0.0) + np.log1p(e)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) with the max subtracted first; an all -inf slice gives -inf."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along ``axis``."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """x - max - log(sum(exp(x - max))) along ``axis``."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def norm(x, axis=None, keepdims=False):
    """sqrt(sum(x^2)) along ``axis``, computed as m sqrt(sum((x/m)^2)) with m = max|x| (the
    scaling of LAPACK's dnrm2): x/m lies in [-1, 1], so entries from 1e-308 to 1e308 neither
    underflow to 0 nor overflow to inf. A zero slice gives 0, an inf entry inf, a nan nan."""
    x = np.asarray(x)
    if x.size == 0:
        return np.sqrt(np.sum(np.square(x, dtype=np.float64 if x.dtype.kind != "f" else None),
                              axis=axis, keepdims=keepdims))
    magnitude = np.abs(x)
    top = np.max(magnitude, axis=axis, keepdims=True)
    scale = np.where((top > 0) & np.isfinite(top), top, 1.0)
    out = scale * np.sqrt(np.sum(np.square(magnitude / scale), axis=axis, keepdims=True))
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


def scatter_add(values, indices, shape, axis=0):
    """Zeros of ``shape`` with ``values`` added at ``indices`` along ``axis``; repeated indices
    accumulate (the transpose of ``take``)."""
    values = np.asarray(values)
    out = np.zeros(shape, dtype=values.dtype)
    indices = np.asarray(indices)
    if axis:
        k = indices.ndim
        values = np.moveaxis(values, list(range(axis, axis + k)), list(range(k)))
        np.add.at(np.moveaxis(out, axis, 0), indices, values)
    else:
        np.add.at(out, indices, values)
    return out


def index_add(values, index, shape):
    """Zeros of ``shape`` with ``values`` added at ``out[index]`` (repeats accumulate)."""
    out = np.zeros(shape, dtype=np.asarray(values).dtype)
    if any(isinstance(i, np.ndarray) for i in index):
        np.add.at(out, index, values)
    else:
        out[index] = values
    return out


def numpy_namespace() -> types.SimpleNamespace:
    """NumPy's public functions and the kernels above, as one namespace object."""
    names = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key in dir(np):
            if not key.startswith("_"):
                try:
                    names[key] = getattr(np, key)
                except AttributeError:
                    pass
    names.update(sigmoid=sigmoid, softplus=softplus, logsumexp=logsumexp, softmax=softmax, log_softmax=log_softmax,
                 norm=norm, scatter_add=scatter_add, index_add=index_add)
    return types.SimpleNamespace(**names)


# ---------------------------------------------------------------------------------------------
# the scalar namespace: float64 graphs of shape () lower to the math module
# ---------------------------------------------------------------------------------------------
def _scalar_sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _scalar_softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _scalar_sign(x):
    return (x > 0) - (x < 0) if x == x else x


def _identity(x, *args, **kwargs):
    return x


def math_namespace() -> types.SimpleNamespace:
    """Python-float versions of the names scalar graphs lower to. Domain errors and overflow
    raise (ValueError, OverflowError, ZeroDivisionError), and callers fall back to NumPy, so the
    results always equal the NumPy path's, nan and inf included."""
    return types.SimpleNamespace(
        exp=math.exp, log=math.log, log1p=math.log1p, expm1=math.expm1, sqrt=math.sqrt,
        square=lambda x: x * x, abs=abs, sin=math.sin, cos=math.cos, tan=math.tan,
        tanh=math.tanh, sigmoid=_scalar_sigmoid, softplus=_scalar_softplus,
        negative=lambda x: -x, floor=lambda x: float(math.floor(x)),
        round=lambda x: float(round(x)),
        sign=_scalar_sign, maximum=max, minimum=min,
        where=lambda c, a, b: a if c else b,
        clip=lambda x, lo, hi: min(max(x, lo), hi),
        sum=_identity, mean=_identity, max=_identity, min=_identity, prod=_identity,
        logsumexp=_identity, norm=lambda x, axis=None, keepdims=False: abs(x),
        reshape=_identity, broadcast_to=_identity, transpose=_identity,
        softmax=lambda x, axis=-1: 1.0, log_softmax=lambda x, axis=-1: 0.0,
        argmax=lambda x, axis=None: 0, asarray=np.asarray, dot=lambda a, b: a * b)
