"""The array namespace generated code calls as ``xp``: NumPy's functions plus the few composite
kernels that ops lower to (stable sigmoid, logsumexp, softmax, log_softmax, the scatter-adds
that transpose take and indexing, the linear-algebra calls, and the convolution and pooling
kernels of :mod:`.conv_kernels`, imported on first use).

Lowering writes every array call as ``xp.<name>(...)``, so another array library can be plugged in
by building a namespace with the same names, without touching the ops.
"""
from __future__ import annotations

import math

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


def dtanh(x):
    """tanh'(x) = sech^2 x = 1 / cosh^2 x: one vectorised pass, no cancellation where tanh x
    rounds to +-1 (1 - tanh^2 would give 0 there); cosh overflows to inf past |x| ~ 710, where
    the true value underflows anyway (0)."""
    with np.errstate(over="ignore"):
        c = np.cosh(x)
    if isinstance(c, np.ndarray):
        np.multiply(c, c, out=c)
        return np.reciprocal(c, out=c)
    return 1.0 / (c * c)


def dsigmoid(x):
    """sigmoid'(x) = s (1 - s) = 1 / (2 + 2 cosh x): one vectorised pass, no cancellation for
    large x (where 1 - s would round to 0)."""
    with np.errstate(over="ignore"):
        c = np.cosh(x)
    if isinstance(c, np.ndarray):
        c += 1.0
        c *= 2.0
        return np.reciprocal(c, out=c)
    return 1.0 / (2.0 + 2.0 * c)


def along_axis_positions(indices, shape, out_shape, axis):
    """Flat positions in an array of ``shape`` that ``take_along_axis`` reads for each entry of
    its result (of ``out_shape``); an axis of size 1 in ``shape`` is read at 0 (broadcast)."""
    indices = np.asarray(indices)
    n = shape[axis]
    positions = np.broadcast_to(np.where(indices < 0, indices + n, indices), out_shape)
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
    positions = positions * strides[axis]
    for d, size in enumerate(shape):
        if d != axis and size > 1:
            along = np.arange(out_shape[d]).reshape((-1,) + (1,) * (len(shape) - d - 1))
            positions = positions + along * strides[d]
    return positions


def scatter_along_axis(values, indices, shape, axis):
    """Zeros of ``shape`` with ``values`` added where ``take_along_axis(., indices, axis)``
    reads them; repeated positions accumulate (its transpose)."""
    values = np.asarray(values)
    positions = along_axis_positions(indices, shape, values.shape, axis)
    size = int(np.prod(shape, dtype=np.int64))
    if values.dtype.kind == "f":
        total = np.bincount(positions.ravel(), weights=values.ravel(), minlength=size)
        return total.astype(values.dtype, copy=False).reshape(shape)
    out = np.zeros(size, dtype=values.dtype)
    np.add.at(out, positions.ravel(), values.ravel())
    return out.reshape(shape)


def one_hot(labels, n):
    """float64 ``labels[..., None] == arange(n)``: a 1 at each label, zero rows for labels
    outside 0..n-1."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(n)).astype(np.float64)


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
                                dtanh=dtanh, dsigmoid=dsigmoid, erf=erf, erfc=erfc, gelu=gelu,
                                scatter_along_axis=scatter_along_axis, one_hot=one_hot,
                                inv=inv, solve=solve, det=det, slogdet_sign=slogdet_sign,
                                logabsdet=logabsdet, cholesky=cholesky))


# ---------------------------------------------------------------------------------------------
# scalar kernels: the math-module forms of ops (``Op.scalar``) for float64 graphs of shape ().
# Domain errors and overflow raise (ValueError, OverflowError, ZeroDivisionError) and the
# caller falls back to NumPy; nan propagates as in NumPy (Python's max/min would drop it).
# ---------------------------------------------------------------------------------------------
def scalar_sigmoid(x):
    """The formula of :func:`sigmoid` (bit for bit); below -709 math.exp overflows and
    raises, and NumPy computes the 0."""
    return 1.0 / (1.0 + math.exp(-x))


def scalar_spread(x, **params):
    """The variance (or standard deviation) of one number: 0, nan for nan or inf (as NumPy)."""
    return x - x


def scalar_dtanh(x):
    """:func:`dtanh` on Python floats (math.cosh raises past |x| ~ 710: NumPy gives the 0)."""
    c = math.cosh(x)
    return 1.0 / (c * c)


def scalar_dsigmoid(x):
    """:func:`dsigmoid` on Python floats."""
    return 1.0 / (2.0 + 2.0 * math.cosh(x))


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


# ---------------------------------------------------------------------------------------------
# the error function, without SciPy: one vectorized kernel for NumPy and the array-API adapter
# ---------------------------------------------------------------------------------------------
# The rational approximations of fdlibm's s_erf.c (Sun Microsystems, 1993: "Permission to use,
# copy, modify, and distribute this software is freely granted, provided that this notice is
# preserved"), whose stated error bounds are below 2**-57 on each interval; here every interval
# is evaluated for every entry and ``where`` picks, so the kernel has no Python loop.
#   |x| < 0.84375:         erf(x) = x + x R(x^2), R = P/Q
#   0.84375 <= |x| < 1.25: erf(|x|) = c + P1(s)/Q1(s), s = |x| - 1, c = 0.845062911510467529297
#   1.25 <= |x| < 28:      erfc(|x|) = exp(-z^2 - 0.5625) exp((z - |x|)(z + |x|) + R(u)/S(u)) / |x|
#                          with u = 1/x^2 (two fits, split at 1/0.35), z = |x| cut to 16 fraction
#                          bits so z^2 is exact: -x^2 = -z^2 + (z - x)(z + x) without cancellation
_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)


def _poly(coefficients, t):
    """sum_k c_k t^k by Horner's rule (coefficients lowest degree first)."""
    out = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        out = out * t + c
    return out


def erf_pair(x, xp=np):
    """(erf(x), erfc(x)) of a floating array, elementwise, with the namespace ``xp`` (NumPy or
    an array-API namespace: only abs, where, exp, trunc, copysign, isnan and arithmetic are
    used). erf is within 1 ulp of ``math.erf``; erfc within 4 ulps of ``math.erfc``, keeping
    its relative accuracy in the tail (erfc(26) = 5.7e-296: the two exponentials and the
    division each round); erf(-x) = -erf(x) holds exactly, -0 included."""
    a = xp.abs(x)
    near = xp.where(a < 1.25, a, 0.0)  # the first two intervals' argument (no inf / inf)
    # |x| < 0.84375: erf = a + a R(a^2); erfc = 1 - erf, written 0.5 - (a R + (a - 0.5)) above
    # 0.25 so that the subtraction is exact
    z = near * near
    ar = near * (_poly(_PP, z) / _poly(_QQ, z))
    erf_small = near + ar
    erfc_small = xp.where(near < 0.25, 1.0 - erf_small, 0.5 - (ar + (near - 0.5)))
    # 0.84375 <= |x| < 1.25: around erf(1)
    s = near - 1.0
    p1 = _poly(_PA, s) / _poly(_QA, s)
    erf_mid, erfc_mid = _ERX + p1, (1.0 - _ERX) - p1
    # 1.25 <= |x| < 28 (clamped, so other entries compute harmless values)
    t = xp.where(a < 1.25, 1.25, xp.where(a < 28.0, a, 28.0))
    u = 1.0 / (t * t)
    fit = xp.where(t < 1 / 0.35, _poly(_RA, u) / _poly(_SA, u), _poly(_RB, u) / _poly(_SB, u))
    cut = xp.trunc(t * 65536.0) / 65536.0
    erfc_tail = xp.exp(-cut * cut - 0.5625) * xp.exp((cut - t) * (cut + t) + fit) / t
    erfc_tail = xp.where(a < 28.0, erfc_tail, 0.0)
    erf_abs = xp.where(a < 0.84375, erf_small, xp.where(a < 1.25, erf_mid, 1.0 - erfc_tail))
    erfc_abs = xp.where(a < 0.84375, erfc_small, xp.where(a < 1.25, erfc_mid, erfc_tail))
    erf = xp.where(xp.isnan(x), x, xp.copysign(erf_abs, x))
    # erfc(-a) = 1 + erf(a) = 2 - erfc(a)
    erfc = xp.where(x < 0, xp.where(a < 1.25, 1.0 + erf_abs, 2.0 - erfc_tail), erfc_abs)
    return erf, xp.where(xp.isnan(x), x, erfc)


def _float64(x):
    """``x`` as float64 for the erf kernels, and the dtype to give the result back in."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return x.astype(np.float64, copy=False), dtype


def erf(x):
    """The error function 2/sqrt(pi) int_0^x e^(-t^2) dt (:func:`erf_pair`, in float64)."""
    x, dtype = _float64(x)
    return erf_pair(x)[0].astype(dtype, copy=False)


def erfc(x):
    """1 - erf(x), without cancellation for large x (:func:`erf_pair`, in float64)."""
    x, dtype = _float64(x)
    return erf_pair(x)[1].astype(dtype, copy=False)


_SQRT_HALF = math.sqrt(0.5)
_GELU_C = math.sqrt(2.0 / math.pi)  # the tanh form: 0.5 x (1 + tanh(c (x + 0.044715 x^3)))


def gelu(x, approximate=False):
    """x Phi(x), Phi the standard normal CDF, written 0.5 x erfc(-x / sqrt 2) (no cancellation
    for x << 0); ``approximate``: the tanh form, as x sigmoid(2 c (x + 0.044715 x^3))."""
    if approximate:
        return x * sigmoid(2.0 * _GELU_C * (x + 0.044715 * (x * x * x)))
    return 0.5 * x * erfc(-x * _SQRT_HALF)


def scalar_gelu(x, approximate=False):
    if approximate:
        return x * scalar_sigmoid(2.0 * _GELU_C * (x + 0.044715 * (x * x * x)))
    return 0.5 * x * math.erfc(-x * _SQRT_HALF)


def scalar_reciprocal(x):
    """1/x; at 0 Python raises ZeroDivisionError and NumPy gives the signed inf."""
    return 1.0 / x


def scalar_log_sigmoid(x):
    """log(1 / (1 + e^-x)) = -softplus(-x)."""
    return -scalar_softplus(-x)


def scalar_silu(x):
    return x * scalar_sigmoid(x)


def scalar_elu(x, alpha=1.0):
    return x if x > 0 else alpha * math.expm1(x)


def scalar_logaddexp(a, b):
    """log(e^a + e^b) = max(a, b) + log1p(e^-|a - b|); equal infinities give that infinity."""
    if a == b:
        return a + math.log(2.0) if math.isfinite(a) else a
    top = scalar_maximum(a, b)
    return top + math.log1p(math.exp(-abs(a - b)))


#: the namespace compiled code and constant folding call
NUMPY = numpy_namespace()
