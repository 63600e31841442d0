"""The array namespace generated code calls as ``xp``: NumPy's functions plus the few composite
kernels that ops lower to (stable sigmoid, logsumexp, softmax, log_softmax, the scatter-adds
that transpose take and indexing, the linear-algebra calls, and the convolution and pooling
kernels of :mod:`.conv_kernels`, imported on first use).

Lowering writes every array call as ``xp.<name>(...)``, so another array library can be plugged in
by building a namespace with the same names, without touching the ops.
"""
from __future__ import annotations

import math
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


def inv(a):
    return np.linalg.inv(a)


def solve(a, b):
    """NumPy 2's rule: ``b`` is one vector when 1-D, else a stack of matrices."""
    return np.linalg.solve(a, b)


def det(a):
    return np.linalg.det(a)


def slogdet_sign(a):
    return np.linalg.slogdet(a)[0]


def logabsdet(a):
    return np.linalg.slogdet(a)[1]


def cholesky(a):
    return np.linalg.cholesky(a)


#: kernels of :mod:`.conv_kernels`, imported on first use (``import symdiff`` stays as cheap)
_CONV_KERNELS = ("conv", "conv_input_grad", "conv_weight_grad", "max_pool", "avg_pool",
                 "max_pool_scatter", "max_pool_gather", "avg_pool_grad")


class _NumpyNamespace:
    """NumPy's functions and the kernels above as one object. A name is looked up on first use
    and then kept as an attribute (walking all of ``dir(numpy)`` up front would import NumPy's
    lazy submodules and double the cost of ``import symdiff``)."""

    def __init__(self, kernels: dict):
        self.__dict__.update(kernels)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _CONV_KERNELS:
            from . import conv_kernels
            value = getattr(conv_kernels, name)
        else:
            value = getattr(np, name)
        setattr(self, name, value)
        return value


def numpy_namespace() -> _NumpyNamespace:
    """NumPy's public functions and the kernels above, as one namespace object."""
    return _NumpyNamespace(dict(sigmoid=sigmoid, softplus=softplus, logsumexp=logsumexp,
                                softmax=softmax, log_softmax=log_softmax,
                                norm=norm, scatter_add=scatter_add, index_add=index_add,
                                inv=inv, solve=solve, det=det, slogdet_sign=slogdet_sign,
                                logabsdet=logabsdet, cholesky=cholesky))


#: the namespace compiled code and constant folding call
NUMPY = numpy_namespace()


# ---------------------------------------------------------------------------------------------
# scalar kernels: the math-module forms of ops (``Op.scalar``) for float64 graphs of shape ().
# Domain errors and overflow raise (ValueError, OverflowError, ZeroDivisionError) and the
# caller falls back to NumPy; nan propagates as in NumPy (Python's max/min would drop it).
# ---------------------------------------------------------------------------------------------
def scalar_sigmoid(x):
    """The formula of :func:`sigmoid` (bit for bit); below -709 math.exp overflows and
    raises, and NumPy computes the 0."""
    return 1.0 / (1.0 + math.exp(-x))


def scalar_softplus(x):
    return scalar_maximum(x, 0.0) + math.log1p(math.exp(-abs(x)))


def scalar_sign(x):
    return float((x > 0) - (x < 0)) if x == x else x


def scalar_maximum(a, b):
    """np.maximum on floats: nan if either is nan."""
    return a if a >= b or a != a else b


def scalar_minimum(a, b):
    """np.minimum on floats: nan if either is nan."""
    return a if a <= b or a != a else b


def scalar_clip(x, lo, hi):
    return scalar_minimum(scalar_maximum(x, lo), hi)


def scalar_relu(x):
    return scalar_maximum(x, 0.0)


def scalar_power(a, b):
    """a ** b on floats as NumPy computes it: a negative base (-inf included) to a non-integer
    power has no real value, so it raises and NumPy gives its nan; math.pow follows C's pow
    otherwise (overflow and 0 to a negative power raise too)."""
    if a < 0 and not float(b).is_integer():
        raise ValueError("power: negative base, non-integer exponent")
    return math.pow(a, b)


def scalar_square(x):
    return x * x


def scalar_floor(x):
    return float(math.floor(x))


def scalar_round(x):
    return float(round(x))


def scalar_where(cond, a, b):
    return a if cond else b


def scalar_identity(x, *args, **kwargs):
    """Reductions, reshapes and transposes of a 0-d value leave it as it is."""
    return x
