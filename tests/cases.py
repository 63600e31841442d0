"""The op table: one row per registered op, read by the generic checks in ``test_ops.py``.

A row gives the op's registry name, a builder (symdiff inputs -> Expr), a NumPy reference for
the forward value, the cases to try (input shapes plus params such as ``axis``/``keepdims``),
the input domain (positive, away from kinks, distinct values), the derivative order to check
and tolerances. Everything particular to one op lives in its row, never in the test bodies.

Builders and references are called as ``build(*inputs, **case.params)`` and
``ref(*arrays, **case.params)``; every input is a float variable (indices, masks and constant
operands are params). ``gradient`` says what a gradient through the op should do: ``"fd"``
agree with finite differences, ``"none"`` raise UndefinedGradientError naming the op,
``"zero"`` be zero (stop_gradient). Optional per row: ``kinks`` (points on a kink or a tie with
the gradients the documented convention gives), ``bad`` (cases whose build must raise
ShapeError naming the shapes), ``float32`` and ``sympy`` (extra oracles), and ``bugs`` (checks
that fail because of a known bug outside symdiff/ops, marked xfail(strict=True) until fixed).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp

import symdiff as sd
from symdiff.graph import apply
from symdiff.ops.elementwise import dsigmoid, dtanh
from symdiff.ops.layout import ScatterAlongAxis
from symdiff.ops.nn import (AvgPoolGrad, ConvInputGrad, ConvWeightGrad, MaxPoolGather,
                            MaxPoolScatter)
from symdiff.ops.reduce import Permute
from symdiff.ops.shape import ScatterAdd

# the function names of the public contract (API.md); each needs a row
API_FUNCTIONS = tuple(
    "exp log log1p expm1 sqrt square abs sin cos tan tanh sigmoid softplus relu leaky_relu "
    "hardtanh maximum minimum where clip power sum mean max min prod logsumexp norm matmul dot "
    "outer transpose reshape concatenate stack take broadcast_to softmax log_softmax argmax "
    "floor round sign stop_gradient "
    "log_sigmoid erf erfc gelu silu elu sinh cosh arcsin arccos arctan arcsinh arccosh arctanh "
    "arctan2 logaddexp reciprocal mod variance std cumsum sort".split()) + tuple(
    "squeeze expand_dims split flip tile repeat pad take_along_axis one_hot tril triu diag "
    "diagonal trace einsum conv1d conv2d max_pool2d avg_pool2d".split())  # tensordot: einsum


# ---------------------------------------------------------------------------------------------
# input domains: a sampler maps (rng, shape) to an array; Joint samples all inputs together
# ---------------------------------------------------------------------------------------------
def uniform(lo: float = -2.0, hi: float = 2.0):
    """Uniform on [lo, hi]."""
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def magnitude(lo: float, hi: float):
    """|x| uniform on [lo, hi] with a random sign: away from zero (divisors, prod)."""
    return lambda rng, shape: rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def away_from(*points: float, margin: float = 0.1, lo: float = -2.0, hi: float = 2.0):
    """Uniform on [lo, hi], but at least ``margin`` from each of ``points`` (kinks)."""
    def sample(rng, shape):
        x = rng.uniform(lo, hi, shape)
        while True:
            bad = np.zeros(np.shape(x), dtype=bool)
            for p in points:
                bad |= np.abs(x - p) < margin
            if not bad.any():
                return x
            x = np.where(bad, rng.uniform(lo, hi, shape), x)
    return sample


def integers(lo: int, hi: int):
    """Whole numbers in [lo, hi] as floats: ties on purpose (comparisons)."""
    return lambda rng, shape: rng.integers(lo, hi + 1, shape).astype(np.float64)


@dataclass(frozen=True)
class Joint:
    """A sampler of all inputs at once: ``fn(rng, shapes) -> list of arrays``."""

    fn: Callable


def distinct(lo: float = -2.0, hi: float = 2.0, gap: float = 0.1) -> Joint:
    """Every entry of every input drawn without repeats from the grid ``lo + gap/2 + k gap``,
    jittered by at most ``gap / 5``: no ties for max/min/argmax or between maximum's operands,
    and constants that are multiples of ``gap`` (such as 0.3) are never within ``gap / 4``."""
    grid = np.arange(lo + gap / 2, hi, gap)

    def sample(rng, shapes):
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        values = rng.choice(grid, sum(sizes), replace=False)
        values = values + rng.uniform(-gap / 5, gap / 5, values.shape)
        out, start = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(values[start:start + size].reshape(shape))
            start += size
        return out
    return Joint(sample)


# ---------------------------------------------------------------------------------------------
# rows and cases
# ---------------------------------------------------------------------------------------------
def _shape_text(shape: tuple) -> str:
    return "x".join(map(str, shape)) if shape else "s"


def _param_text(key: str, value) -> str:
    if value is True:
        return key
    if value is False or value is None:
        return ""
    if isinstance(value, tuple):
        return key + ",".join(map(str, value))
    return f"{key}{value}"


@dataclass(eq=False)
class Case:
    """Input shapes and params of one try; ``label`` names it in test ids. ``bugs`` maps a
    check ("jvp", "adjoint", ...) to the reason it fails because of a known bug outside the op
    modules: that test is marked xfail(strict=True), so the fix shows up as XPASS."""

    shapes: tuple
    params: dict = field(default_factory=dict)
    label: str | None = None
    bugs: dict = field(default_factory=dict)
    domain: object = None         # overrides the row's domain for this case

    def text(self, sep: str) -> str:
        if self.label is not None:
            return self.label
        parts = [sep.join(_shape_text(s) for s in self.shapes)]
        parts += [_param_text(k, v) for k, v in self.params.items()]
        return "-".join(p for p in parts if p)


def C(*shapes: tuple, label: str | None = None, bugs: dict | None = None, domain=None,
      **params) -> Case:
    """A case: ``C((2, 3), (3,), axis=1)``."""
    return Case(tuple(tuple(s) for s in shapes), params, label, bugs or {}, domain)


@dataclass(eq=False)
class Kink:
    """A point on a kink or a tie, and the gradients of ``sum(out)`` there that the documented
    sub-gradient convention (README, "conventions at kinks") prescribes."""

    point: list
    expected: list
    params: dict = field(default_factory=dict)


@dataclass(eq=False)
class Row:
    op: str                       # name in symdiff.ops.base.REGISTRY
    build: Callable               # (*Expr, **params) -> Expr
    ref: Callable                 # (*ndarray, **params) -> ndarray
    cases: list
    domain: object = field(default_factory=uniform)  # sampler, list of samplers, or Joint
    order: int = 2                # highest derivative order checked (gradient == "fd")
    gradient: str = "fd"          # "fd" | "none" | "zero"
    rtol: float = 1e-5            # derivative checks against finite differences
    atol: float = 1e-6
    fwd_rtol: float = 1e-10       # forward value against the NumPy reference
    float32: bool = False         # also check a float32 build against float64
    sympy: Callable | None = None  # sympy function of scalar symbols (scalar cases)
    sep: str = "+"                # joins input shapes in case ids
    bugs: dict = field(default_factory=dict)  # check -> (reason, case texts or None for all)
    kinks: list = field(default_factory=list)  # Kink points: the documented sub-gradients
    bad: list = field(default_factory=list)    # cases whose build must raise sd.ShapeError
    adjoint_rtol: float | None = None  # <Jv, u> vs <v, J^T u> (None: test_ops' default)

    def case_id(self, case: Case) -> str:
        return f"{self.op}-{case.text(self.sep)}"

    def known_bug(self, case: Case, check: str) -> str | None:
        """Why ``check`` fails for ``case`` because of a known bug elsewhere, else None."""
        if check in case.bugs:
            return case.bugs[check]
        reason, texts = self.bugs.get(check, (None, ()))
        return reason if texts is None or case.text(self.sep) in texts else None

    def sample(self, rng, case: Case) -> list:
        """Float64 values of the case's inputs, drawn from its domain."""
        domain, shapes = case.domain or self.domain, case.shapes
        if isinstance(domain, Joint):
            return [np.asarray(a, dtype=np.float64) for a in domain.fn(rng, shapes)]
        samplers = domain if isinstance(domain, list) else [domain] * len(shapes)
        return [np.asarray(s(rng, shape), dtype=np.float64)
                for s, shape in zip(samplers, shapes)]


# ---------------------------------------------------------------------------------------------
# builders and references shared by several rows
# ---------------------------------------------------------------------------------------------
def _binary(fn):
    """``fn`` of the inputs, with optional constant operands ``left=``/``right=``; works for
    symdiff inputs (the builder) and NumPy arrays (the reference) alike."""
    def apply_fn(*xs, left=None, right=None):
        args = ([] if left is None else [left]) + list(xs) + ([] if right is None else [right])
        return fn(*args)
    return apply_fn


_ROW3 = np.array([0.5, -1.5, 2.0])

BINARY_CASES = [
    C((), ()), C((2, 3), (2, 3)), C((2, 3), (3,)), C((2, 1), (1, 3)), C((), (2, 3)),
    C((3,), (2, 3)),
    C((2, 3), right=2.5, label="2x3-const2.5"),
    C((2, 3), left=2.5, label="const2.5-2x3"),
    C((2, 3), left=_ROW3, label="array3-2x3"),
]
UNARY_CASES = [C(()), C((5,)), C((2, 3))]
REDUCE_CASES = [
    C(()), C((4,)), C((2, 3)), C((2, 3), axis=0), C((2, 3), axis=1), C((2, 3), axis=-1),
    C((2, 3), axis=(0, 1)), C((2, 3), keepdims=True), C((2, 3), axis=0, keepdims=True),
    C((2, 3), axis=1, keepdims=True), C((2, 3, 2), axis=(0, 2)),
    C((2, 3, 2), axis=(0, 2), keepdims=True),
]
SOFTMAX_CASES = [C((4,)), C((2, 3), axis=0), C((2, 3), axis=1), C((2, 3), axis=-1),
                 C((2, 3, 2), axis=0), C((2, 3, 2), axis=1)]
COMPARE_CASES = [C((), ()), C((2, 3), (3,)), C((2, 1), (1, 3)),
                 C((2, 3), right=0.0, label="2x3-const0")]


def _einsum(lib):
    """einsum, or tensordot (``tensordot=axes``) or N-D dot (``dot=True``), which symdiff writes
    as einsums, of the inputs."""
    def build(*xs, subscripts=None, tensordot=None, dot=False):
        if dot:
            return lib.dot(*xs)
        if tensordot is not None:
            return lib.tensordot(*xs, axes=tensordot)
        return lib.einsum(subscripts, *xs)
    return build


def _E(subscripts, *shapes, **kw):
    return C(*shapes, subscripts=subscripts, label=f"{subscripts}:" + "+".join(
        _shape_text(s) for s in shapes), **kw)


EINSUM_CASES = [
    _E("ij,jk->ik", (2, 3), (3, 4)), _E("ij,jk", (2, 3), (3, 4)), _E("ii->i", (3, 3)),
    _E("ii", (3, 3)), _E("iij->ji", (3, 3, 2)), _E("ij->", (2, 3)), _E("ba", (2, 3)),
    _E("i,j", (2,), (3,)), _E("i,i->i", (3,), (3,)), _E("ij,j->i", (2, 3), (3,)),
    _E("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 2)), _E("...i->...", (2, 3)),
    _E("bij,bjk->bik", (2, 3, 4), (2, 4, 2)), _E("ijk,kl,lm->im", (2, 3, 4), (4, 5), (5, 2)),
    _E("ij,ij,ij->j", (2, 3), (2, 3), (2, 3)), _E("i->", (4,)), _E(",i->i", (), (3,)),
    C((2, 3, 4), (3, 4, 2), tensordot=2, label="tensordot2:2x3x4+3x4x2"),
    C((2, 3), (3, 4), tensordot=1, label="tensordot1:2x3+3x4"),
    C((2, 3), (4,), tensordot=0, label="tensordot0:2x3+4"),
    C((2, 3, 4), (4, 2, 3), tensordot=((1, 2), (2, 0)), label="tensordot_pairs:2x3x4+4x2x3"),
    C((2, 3, 4), (5, 4, 2), dot=True, label="dot:2x3x4+5x4x2"),
    C((2, 3, 4), (4,), dot=True, label="dot:2x3x4+4"),
    C((3,), (2, 3, 4), dot=True, label="dot:3+2x3x4"),
]


# convolution and pooling: loop references over output positions and kernel offsets (small
# shapes only), independent of the strided-window kernels
def _tuple(v, d):
    return (v,) * d if isinstance(v, int) else tuple(v)


def _conv_plan(x_shape, kernel, stride, padding, dilation):
    """(stride, padding, dilation, output size, [(output position, kernel offset, padded
    input position)]) of a convolution of spatial rank len(kernel)."""
    d = len(kernel)
    s, p, dl = _tuple(stride, d), _tuple(padding, d), _tuple(dilation, d)
    size = [(x_shape[2 + i] + 2 * p[i] - dl[i] * (kernel[i] - 1) - 1) // s[i] + 1
            for i in range(d)]
    taps = [(pos, k, tuple(pos[i] * s[i] + k[i] * dl[i] for i in range(d)))
            for pos in np.ndindex(*size) for k in np.ndindex(*kernel)]
    return p, tuple(size), taps


def _conv_ref(x, w, stride=1, padding=0, dilation=1):
    p, size, taps = _conv_plan(x.shape, w.shape[2:], stride, padding, dilation)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in p])
    out = np.zeros(x.shape[:1] + w.shape[:1] + size, dtype=np.result_type(x, w))
    for pos, k, at in taps:
        out[(slice(None),) * 2 + pos] += xp[(slice(None),) * 2 + at] @ w[(slice(None),) * 2 + k].T
    return out


def _conv_input_grad_ref(g, w, input_size, stride=1, padding=0, dilation=1):
    shape = g.shape[:1] + w.shape[1:2] + tuple(input_size)
    p, size, taps = _conv_plan(shape, w.shape[2:], stride, padding, dilation)
    xp = np.zeros(shape[:2] + tuple(n + 2 * q for n, q in zip(input_size, p)),
                  dtype=np.result_type(g, w))
    for pos, k, at in taps:
        xp[(slice(None),) * 2 + at] += g[(slice(None),) * 2 + pos] @ w[(slice(None),) * 2 + k]
    return xp[(slice(None),) * 2 + tuple(slice(q, q + n) for q, n in zip(p, input_size))]


def _conv_weight_grad_ref(x, g, kernel_size, stride=1, padding=0, dilation=1):
    p, size, taps = _conv_plan(x.shape, kernel_size, stride, padding, dilation)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in p])
    out = np.zeros(g.shape[1:2] + x.shape[1:2] + tuple(kernel_size), dtype=np.result_type(x, g))
    for pos, k, at in taps:
        out[(slice(None),) * 2 + k] += g[(slice(None),) * 2 + pos].T @ xp[(slice(None),) * 2 + at]
    return out


def _pool_windows(x, kernel_size, stride=None):
    """[(output position, the window of x as (N, C, KH*KW), its flat input positions)]."""
    k = _tuple(kernel_size, 2)
    s = k if stride is None else _tuple(stride, 2)
    size = [(x.shape[2 + i] - k[i]) // s[i] + 1 for i in range(2)]
    out = []
    for pos in np.ndindex(*size):
        rows = range(pos[0] * s[0], pos[0] * s[0] + k[0])
        cols = range(pos[1] * s[1], pos[1] * s[1] + k[1])
        flat = [(r, c) for r in rows for c in cols]
        window = np.stack([x[:, :, r, c] for r, c in flat], axis=-1)
        out.append((pos, window, flat))
    return tuple(size), out


def _max_pool_ref(x, kernel_size, stride=None):
    size, windows = _pool_windows(x, kernel_size, stride)
    out = np.zeros(x.shape[:2] + size, dtype=x.dtype)
    for pos, window, _ in windows:
        out[(slice(None),) * 2 + pos] = window.max(axis=-1)
    return out


def _avg_pool_ref(x, kernel_size, stride=None):
    size, windows = _pool_windows(x, kernel_size, stride)
    out = np.zeros(x.shape[:2] + size, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    for pos, window, _ in windows:
        out[(slice(None),) * 2 + pos] = window.mean(axis=-1)
    return out


def _max_scatter_ref(g, x, kernel_size, stride=None):
    _, windows = _pool_windows(x, kernel_size, stride)
    out = np.zeros(x.shape, dtype=np.result_type(x, g))
    n, c = np.indices(x.shape[:2])
    for pos, window, flat in windows:
        r, col = np.array(flat)[window.argmax(axis=-1)].transpose(2, 0, 1)
        np.add.at(out, (n, c, r, col), g[(slice(None),) * 2 + pos])
    return out


def _max_gather_ref(h, x, kernel_size, stride=None):
    size, windows = _pool_windows(x, kernel_size, stride)
    out = np.zeros(x.shape[:2] + size, dtype=np.result_type(x, h))
    n, c = np.indices(x.shape[:2])
    for pos, window, flat in windows:
        r, col = np.array(flat)[window.argmax(axis=-1)].transpose(2, 0, 1)
        out[(slice(None),) * 2 + pos] = h[n, c, r, col]
    return out


def _avg_pool_grad_ref(g, input_size, kernel_size, stride=None):
    x_shape = g.shape[:2] + tuple(input_size)
    _, windows = _pool_windows(np.zeros(x_shape), kernel_size, stride)
    out = np.zeros(x_shape)
    for pos, _, flat in windows:
        for r, c in flat:
            out[:, :, r, c] += g[(slice(None),) * 2 + pos] / len(flat)
    return out


def _pool_internal(op_class):
    """Builder of an internal pooling op whose first input ``x`` (fixing the max positions) is
    a constant param: ``build(g, x=..., kernel_size=..., stride=...)``."""
    def build(g, x, kernel_size, stride=None):
        return apply(op_class(kernel_size, stride), (sd.const(x), g))
    return build


_POOL_X = np.random.default_rng(7).permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 50.0
CONV2D_CASES = [
    C((2, 3, 7, 6), (4, 3, 3, 2)), C((2, 3, 7, 6), (4, 3, 3, 2), padding=1),
    C((2, 3, 7, 6), (4, 3, 3, 2), stride=2), C((2, 3, 7, 6), (4, 3, 3, 2), dilation=2),
    C((2, 3, 7, 6), (4, 3, 2, 2), stride=(2, 1), padding=(0, 2), dilation=(2, 1),
      label="2x3x7x6+4x3x2x2-mixed"),
    C((1, 2, 5, 5), (2, 2, 3, 3), stride=3, padding=2, label="1x2x5x5+2x2x3x3-s3p2"),
]
CONV1D_CASES = [C((2, 3, 9), (4, 3, 3)), C((2, 3, 9), (4, 3, 3), stride=2, padding=2),
                C((2, 3, 9), (2, 3, 2), dilation=3, padding=1)]


def _conv_input_grad(g, w, input_size, stride=1, padding=0, dilation=1):
    return apply(ConvInputGrad(input_size, stride, padding, dilation), (g, w))


def _conv_weight_grad(x, g, kernel_size, stride=1, padding=0, dilation=1):
    return apply(ConvWeightGrad(kernel_size, stride, padding, dilation), (x, g))


def _avg_pool_grad(g, input_size, kernel_size, stride=None):
    k = _tuple(kernel_size, 2)
    return apply(AvgPoolGrad(input_size, k, k if stride is None else stride), (g,))


# linear algebra: square inputs are shifted by 4 I (inputs in [-1, 1], or the int64 check's 1
# and 2, stay far from singular); cholesky factors x x^T + 3 I (symmetric positive definite)
def _shifted(x):
    if x.ndim >= 2 and x.shape[-1] == x.shape[-2]:
        return x + 4.0 * np.eye(x.shape[-1])
    return x


def _linalg(name):
    def build(*xs):
        return getattr(sd.linalg, name)(*[_shifted(x) for x in xs])

    def ref(*xs):
        return getattr(np.linalg, name)(*[_shifted(x) for x in xs])
    return build, ref


def _slogdet(part):
    return (lambda x: sd.linalg.slogdet(_shifted(x))[part],
            lambda x: np.linalg.slogdet(_shifted(x))[part])


def _cholesky(lib):
    def build(x):
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            return lib.linalg.cholesky(x)
        gram = lib.matmul(x, lib.swapaxes(x, -1, -2) if lib is np else sd.transpose(
            x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)))
        return lib.linalg.cholesky(gram + 3.0 * np.eye(x.shape[-1]))
    return build


SQUARE_CASES = [C((3, 3)), C((2, 3, 3)), C((1, 1))]
SQUARE_BAD = [C((2, 3)), C((3,))]


def _unary(op, build, ref, domain=None, sympy=None, **kw) -> Row:
    return Row(op, build, ref, UNARY_CASES, domain=domain or uniform(), sympy=sympy, **kw)


def _logsumexp_ref(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _norm_ref(x, axis=None, keepdims=False):
    return np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims))


def _softmax_ref(x, axis=-1):
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def _where(lib):
    """where(mask, a, b); ``cond="a>b"`` uses a comparison of the inputs as the mask, and a
    missing ``b`` is the constant ``right``."""
    def fn(a, b=None, cond=None, right=0.0):
        mask = a > b if isinstance(cond, str) else cond
        return lib.where(mask, a, right if b is None else b)
    return fn


def _power(a, b=None, exponent=None, base=None):
    """a ** b; ``exponent=`` a constant exponent, ``base=`` a constant base (``base ** a``)."""
    if base is not None:
        return base ** a
    if exponent is not None:
        return a ** exponent
    return sd.power(a, b) if isinstance(a, sd.Expr) else np.power(a, b)


def _transpose(lib):
    def fn(x, axes=None, via_T=False):
        return x.T if via_T else lib.transpose(x, axes)
    return fn


def _positions(shape) -> np.ndarray:
    """The flat position of every entry of an array of ``shape``."""
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _accumulate(values, positions, shape):
    """Zeros of ``shape`` with ``values`` added at flat ``positions`` (repeats accumulate)."""
    size = int(np.prod(shape, dtype=np.int64))
    total = np.bincount(np.ravel(positions), weights=np.ravel(values), minlength=size)
    return total.reshape(shape).astype(np.asarray(values).dtype)


def _scatter_add_build(g, shape, indices, axis):
    return apply(ScatterAdd(shape, axis), (g, sd.const(np.asarray(indices))))


def _scatter_add_ref(g, shape, indices, axis):
    return _accumulate(g, np.take(_positions(shape), indices, axis=axis), shape)


def _scatter(shape, indices, axis, label) -> Case:
    g_shape = np.take(_positions(shape), indices, axis=axis).shape
    return C(g_shape, shape=shape, indices=indices, axis=axis, label=label)


def _index_add_build(g, index, shape):
    # index_add is the bprop of x[index]: vjp with u = g leaves just index_add(g)
    source = sd.var("index_add_source", shape)
    return sd.vjp(source[index], source, g)


def _index_add_ref(g, index, shape):
    return _accumulate(g, _positions(shape)[index], shape)


def _index_add(shape, index, label) -> Case:
    return C(_positions(shape)[index].shape, index=index, shape=shape, label=label)


def _getitem(x, index):
    return x[index]


def _take_ref(x, indices, axis=0):
    return np.take(x, indices, axis=axis)


def _concatenate(lib):
    return lambda *xs, axis=0: lib.concatenate(list(xs), axis=axis)


def _stack(lib):
    return lambda *xs, axis=0: lib.stack(list(xs), axis=axis)


def _stop_gradient(lib):
    """stop_gradient(x), or of ``inner(x)`` (an op without a gradient: the way through it)."""
    def fn(x, inner=None):
        x = x if inner is None else getattr(lib, inner)(x)
        return sd.stop_gradient(x) if lib is sd else x
    return fn


def _split(lib):
    """Piece ``piece`` of ``split(x, sections, axis)``."""
    def fn(x, sections, axis=0, piece=0):
        return lib.split(x, sections, axis=axis)[piece]
    return fn


def _take_along_axis(lib):
    return lambda x, indices, axis: lib.take_along_axis(x, np.array(indices), axis=axis)


def _scatter_along_axis_build(g, shape, indices, axis):
    return apply(ScatterAlongAxis(shape, axis), (g, sd.const(np.asarray(indices))))


def _scatter_along_axis_ref(g, shape, indices, axis):
    read = np.take_along_axis(_positions(shape), np.asarray(indices), axis=axis)
    return _accumulate(g, read, shape)


def _along(shape, indices, axis, label) -> Case:
    g_shape = np.take_along_axis(_positions(shape), np.asarray(indices), axis=axis).shape
    return C(g_shape, shape=shape, indices=indices, axis=axis, label=label)


def _one_hot_ref(labels, n):
    return (np.asarray(labels)[..., None] == np.arange(n)).astype(np.float64)


_MASK23 = np.array([[True, False, True], [False, False, True]])
_MASK3 = np.array([True, False, True])


def _sp_sigmoid(x):
    return 1 / (1 + sp.exp(-x))


def _math_ref(fn):
    """A math-module function elementwise, in the float dtype NumPy would give."""
    def ref(x):
        x = np.asarray(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        return np.vectorize(fn, otypes=[np.float64])(x).astype(dtype)
    return ref


def _elu_ref(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _gelu_ref(x, approximate=False):
    x = np.asarray(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _math_ref(math.erf)(x / math.sqrt(2)))


def _permute_build(v, order, axis):
    return apply(Permute(axis), (v, sd.const(order)))


def _permute_ref(v, order, axis):
    return np.take_along_axis(v, order, axis=axis)


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------
ROWS: list[Row] = [
    # unary elementwise
    _unary("exp", sd.exp, np.exp, sympy=sp.exp, float32=True),
    _unary("log", sd.log, np.log, uniform(0.5, 2.0), sympy=sp.log, float32=True),
    _unary("log1p", sd.log1p, np.log1p, uniform(-0.5, 2.0), sympy=lambda x: sp.log(1 + x)),
    _unary("expm1", sd.expm1, np.expm1, sympy=lambda x: sp.exp(x) - 1),
    _unary("sqrt", sd.sqrt, np.sqrt, uniform(0.5, 2.0), sympy=sp.sqrt, float32=True),
    _unary("square", sd.square, np.square, sympy=lambda x: x ** 2),
    _unary("abs", abs, np.abs, away_from(0.0), sympy=sp.Abs,
           kinks=[Kink([[0.0, -1.0, 2.0]], [[0.0, -1.0, 1.0]])]),
    _unary("sin", sd.sin, np.sin, sympy=sp.sin),
    _unary("cos", sd.cos, np.cos, sympy=sp.cos),
    _unary("tan", sd.tan, np.tan, uniform(-1.2, 1.2), sympy=sp.tan),
    _unary("tanh", sd.tanh, np.tanh, sympy=sp.tanh, float32=True),
    _unary("sigmoid", sd.sigmoid, lambda x: 1 / (1 + np.exp(-x)), sympy=_sp_sigmoid,
           float32=True),
    # tanh's and sigmoid's derivatives (built by their bprops), into the tails
    _unary("dtanh", dtanh, lambda x: 1.0 / np.cosh(x) ** 2, uniform(-6.0, 6.0),
           sympy=lambda x: 1 - sp.tanh(x) ** 2, float32=True),
    _unary("dsigmoid", dsigmoid, lambda x: np.exp(-x) / (1.0 + np.exp(-x)) ** 2,
           uniform(-8.0, 8.0), sympy=lambda x: sp.exp(-x) / (1 + sp.exp(-x)) ** 2, float32=True),
    _unary("softplus", sd.softplus, lambda x: np.log1p(np.exp(x)),
           sympy=lambda x: sp.log(1 + sp.exp(x)), float32=True),
    _unary("relu", sd.relu, lambda x: np.maximum(x, 0), away_from(0.0),
           sympy=lambda x: sp.Max(0, x), float32=True,
           kinks=[Kink([[0.0, -1.0, 2.0]], [[0.0, 0.0, 1.0]])]),
    _unary("negative", operator.neg, np.negative, sympy=lambda x: -x),
    Row("leaky_relu", sd.leaky_relu, lambda x, alpha=0.01: np.where(x > 0, x, alpha * x),
        [C(()), C((2, 3)), C((2, 3), alpha=0.2),
         C((), (), label="s-alpha_s"), C((2, 3), (), label="2x3-alpha_s"),
         C((2, 3), (3,), label="2x3-alpha_3")],
        domain=[away_from(0.0), uniform(0.05, 0.3)], float32=True,
        kinks=[Kink([[0.0, -1.0, 2.0]], [[0.2, 0.2, 1.0]], {"alpha": 0.2}),
               Kink([[0.0, -1.0, 2.0], 0.2], [[0.2, 0.2, 1.0], -1.0])],
        bad=[C((2, 3), (2,), label="2x3-alpha_2")]),
    Row("hardtanh", sd.hardtanh, lambda x, lo=-1.0, hi=1.0: np.minimum(np.maximum(x, lo), hi),
        [C(()), C((5,)), C((2, 3)), C((2, 3), lo=-0.5, hi=2.0)],
        domain=away_from(-1.0, 1.0, -0.5, 2.0, margin=0.1, lo=-3.0, hi=3.0),
        kinks=[Kink([[-1.0, 1.0, 0.0, 2.0, -3.0]], [[0.0, 0.0, 1.0, 0.0, 0.0]])]),
    # binary arithmetic (operators: + - * / ** on either side)
    Row("add", _binary(operator.add), _binary(operator.add), BINARY_CASES, float32=True,
        sympy=operator.add,
        bad=[C((2, 3), (2,)), C((3,), (4,))]),
    Row("subtract", _binary(operator.sub), _binary(operator.sub), BINARY_CASES,
        sympy=operator.sub, bad=[C((2, 3), (2,))]),
    Row("multiply", _binary(operator.mul), _binary(operator.mul), BINARY_CASES, float32=True,
        sympy=operator.mul, bad=[C((2, 3), (2,))]),
    Row("divide", _binary(operator.truediv), _binary(operator.truediv), BINARY_CASES,
        domain=magnitude(0.5, 2.0), float32=True, sympy=operator.truediv,
        bad=[C((2, 3), (2,))]),
    Row("power", _power, _power,
        [C((), ()), C((2, 3), (2, 3)), C((2, 3), (3,)), C((2, 1), (1, 3)), C((), (2, 3)),
         C((2, 3), exponent=3.0), C((2, 3), exponent=2), C((2, 3), exponent=-1.5),
         C((3,), base=2.0)],
        domain=[uniform(0.5, 2.0), uniform(-1.5, 1.5)], float32=True, sympy=operator.pow,
        bad=[C((2, 3), (2,))]),
    Row("maximum", _binary(sd.maximum), _binary(np.maximum),
        BINARY_CASES[:6] + [C((2, 3), right=0.3, label="2x3-const0.3")],
        domain=distinct(), sympy=sp.Max,
        kinks=[Kink([[1.0, 2.0], [1.0, 0.0]], [[0.5, 1.0], [0.5, 0.0]])],
        bad=[C((2, 3), (2,))]),
    Row("minimum", _binary(sd.minimum), _binary(np.minimum),
        BINARY_CASES[:6] + [C((2, 3), right=0.3, label="2x3-const0.3")],
        domain=distinct(), sympy=sp.Min,
        kinks=[Kink([[1.0, 2.0], [1.0, 0.0]], [[0.5, 0.0], [0.5, 1.0]])],
        bad=[C((2, 3), (2,))]),
    # selection
    Row("where", _where(sd), _where(np),
        [C((2, 3), (2, 3), cond=_MASK23, label="2x3+2x3-mask2x3"),
         C((2, 3), (3,), cond=_MASK3, label="2x3+3-mask3"),
         C((2, 1), (1, 3), cond=_MASK23, label="2x1+1x3-mask2x3"),
         C((2, 3), cond=_MASK23, right=0.0, label="2x3+const0-mask2x3"),
         C((2, 3), (2, 3), cond="a>b", label="2x3+2x3-cond_a>b"),
         C((), (), cond="a>b", label="s+s-cond_a>b")],
        domain=distinct(), float32=True,
        bad=[C((2, 3), (2,), cond=_MASK23, label="2x3+2-mask2x3")]),
    Row("clip", lambda x, lo=-1.0, hi=1.0: sd.clip(x, lo, hi),
        lambda x, lo=-1.0, hi=1.0: np.minimum(np.maximum(x, lo), hi),
        [C(()), C((2, 3)), C((2, 3), (3,), label="2x3-lo_3"),
         C((2, 3), (), (), label="2x3-lo_s-hi_s"),
         C((2, 3), (3,), (2, 1), label="2x3-lo_3-hi_2x1"),
         C((), (), (), label="s-lo_s-hi_s"),
         C((2, 3), (), (), label="2x3-crossed_bounds",
           domain=[away_from(0.5, 1.0, margin=0.3, lo=-2.5, hi=2.5),
                   uniform(0.9, 1.1), uniform(0.4, 0.6)])],
        domain=[away_from(-1.0, 1.0, margin=0.3, lo=-2.5, hi=2.5),
                uniform(-1.2, -0.8), uniform(0.8, 1.2)], float32=True,
        kinks=[Kink([[-1.0, 1.0, 0.0, 2.0, -3.0]], [[0.0, 0.0, 1.0, 0.0, 0.0]]),
               Kink([[-1.0, 1.0, 0.0, 2.0, -3.0], -1.0, 1.0],
                    [[0.0, 0.0, 1.0, 0.0, 0.0], 2.0, 2.0])],
        bad=[C((2, 3), (2,), label="2x3-lo_2")]),
    # reductions
    Row("sum", sd.sum, np.sum, REDUCE_CASES, float32=True,
        bad=[C((2, 3), axis=2), C((2, 3), axis=(0, 0))]),
    Row("mean", sd.mean, np.mean, REDUCE_CASES, float32=True,
        bad=[C((2, 3), axis=-3)]),
    Row("max", sd.max, np.max, REDUCE_CASES, domain=distinct(), float32=True,
        kinks=[Kink([[1.0, 3.0, 3.0, 2.0]], [[0.0, 0.5, 0.5, 0.0]]),
               Kink([[[1.0, 1.0], [0.0, 2.0]]], [[[0.5, 0.5], [0.0, 1.0]]], {"axis": 1})],
        bad=[C((2, 3), axis=2)]),
    Row("min", sd.min, np.min, REDUCE_CASES, domain=distinct(),
        kinks=[Kink([[1.0, 0.0, 0.0, 2.0]], [[0.0, 0.5, 0.5, 0.0]])],
        bad=[C((2, 3), axis=2)]),
    Row("prod", sd.prod, np.prod, REDUCE_CASES, domain=magnitude(0.5, 1.5),
        bad=[C((2, 3), axis=2)]),
    Row("logsumexp", sd.logsumexp, _logsumexp_ref, REDUCE_CASES, float32=True,
        bad=[C((2, 3), axis=2)]),
    Row("norm", sd.norm, _norm_ref, REDUCE_CASES, float32=True,
        bad=[C((2, 3), axis=2)]),
    # linear algebra
    Row("matmul", _binary(operator.matmul), _binary(operator.matmul),
        [C((3,), (3,)), C((2, 3), (3,)), C((3,), (3, 4)), C((2, 3), (3, 4)),
         C((2, 3, 4), (4, 5)), C((2, 3, 4), (2, 4, 5)), C((1, 3, 4), (2, 4, 5)),
         C((4,), (2, 4, 3)), C((2, 3, 4), (4,)), C((2, 1, 3, 4), (5, 4, 2)),
         C((3, 4), left=np.linspace(-1.0, 1.0, 6).reshape(2, 3), label="array2x3@3x4")],
        sep="@", float32=True,
        bad=[C((2, 3), (4,)), C((2, 3, 4), (3, 4, 5)), C((), (3,))]),
    Row("dot", sd.dot, np.dot,
        [C((3,), (3,)), C((2, 3), (3,)), C((3,), (3, 4)), C((2, 3), (3, 4))], sep=".",
        bad=[C((2, 3), (4,)), C((2, 2, 2), (3,))]),
    Row("outer", sd.outer, np.outer, [C((3,), (4,)), C((2, 2), (3,)), C((), (3,))]),
    # shape
    Row("transpose", _transpose(sd), _transpose(np),
        [C((2, 3)), C((2, 3), via_T=True, label="2x3-T"), C((2, 3, 4), axes=(1, 0, 2)),
         C((2, 3, 4), axes=(2, 0, 1)), C((2, 3, 4), axes=(-1, 0, 1)),
         C((2, 3, 4), via_T=True, label="2x3x4-T")], float32=True,
        bad=[C((2, 3), axes=(0, 0)), C((2, 3), axes=(0, 1, 2))]),
    Row("reshape", sd.reshape, np.reshape,
        [C((2, 3), shape=(3, 2)), C((6,), shape=(2, -1)), C((2, 3, 2), shape=(-1, 2)),
         C((2, 3), shape=(6,)), C((), shape=(1, 1)), C((4,), shape=(2, 1, 2))],
        bad=[C((2, 3), shape=(4,)), C((2, 3), shape=(-1, 4)), C((2, 3), shape=(-1, -1))]),
    Row("broadcast_to", sd.broadcast_to, np.broadcast_to,
        [C((3,), shape=(2, 3)), C((2, 1), shape=(2, 3)), C((), shape=(2, 2)),
         C((1, 3), shape=(2, 2, 3))],
        bad=[C((2, 3), shape=(3,)), C((2, 3), shape=(3, 3))]),
    Row("concatenate", _concatenate(sd), _concatenate(np),
        [C((2, 3), (1, 3)), C((2, 3), (2, 2), axis=1), C((3,), (2,), (1,)),
         C((2, 3), (2, 1), axis=-1), C((2, 2), (2, 2), (2, 2), axis=1)], float32=True,
        bad=[C((2, 3), (2, 2)), C((2, 3), (3,))]),
    Row("stack", _stack(sd), _stack(np),
        [C((3,), (3,)), C((3,), (3,), axis=1), C((2, 3), (2, 3), (2, 3)),
         C((2, 3), (2, 3), (2, 3), axis=1), C((2, 3), (2, 3), (2, 3), axis=2),
         C((2, 3), (2, 3), (2, 3), axis=-1), C((), ())],
        bad=[C((2, 3), (3, 2)), C((3,), (3,), axis=2)]),
    Row("take", sd.take, _take_ref,
        [C((4,), indices=[1, 1, 0], label="4-idx110"),
         C((3, 4), indices=[1, 1, 0], axis=0, label="3x4-idx110-axis0"),
         C((3, 4), indices=[1, 1, 0], axis=1, label="3x4-idx110-axis1"),
         C((3, 4), indices=[[0, 2], [2, 2]], axis=1, label="3x4-idx2x2-axis1"),
         C((3, 4), indices=2, axis=1, label="3x4-idx_scalar-axis1"),
         C((4,), indices=[-1, 0, -1], label="4-idx_negative"),
         C((2, 3, 2), indices=[1, 1, 0], axis=-2, label="2x3x2-idx110-axis-2")],
        float32=True,
        bad=[C((4,), indices=[4], label="4-idx4"),
             C((3, 4), indices=[0], axis=2, label="3x4-axis2")]),
    Row("getitem", _getitem, _getitem,
        [C((5,), index=1, label="5-[1]"),
         C((5,), index=-1, label="5-[-1]"),
         C((5,), index=slice(1, 4), label="5-[1:4]"),
         C((5,), index=slice(None, None, -1), label="5-[::-1]"),
         C((5,), index=slice(4, 0, -2), label="5-[4:0:-2]"),
         C((5,), index=None, label="5-[None]"),
         C((5,), index=np.array([1, 1, 0]), label="5-[110]"),
         C((5,), index=[3, 3], label="5-[list33]"),
         C((5,), index=np.array([True, False, True, False, True]), label="5-[bool_mask]"),
         C((3, 4), index=(1, 2), label="3x4-[1,2]"),
         C((3, 4), index=(slice(None), 1), label="3x4-[:,1]"),
         C((3, 4), index=(None, slice(1, None)), label="3x4-[None,1:]"),
         C((3, 4), index=(Ellipsis, slice(None, None, -1)), label="3x4-[...,::-1]"),
         C((3, 4), index=(slice(None), [2, 2, 0]), label="3x4-[:,220]"),
         C((3, 4), index=([0, 1], [1, 1]), label="3x4-[01,11]"),
         C((3, 4), index=np.array([[0, 2], [2, 2]]), label="3x4-[idx2x2]"),
         C((3, 4), index=(-1, slice(None, None, -2)), label="3x4-[-1,::-2]"),
         C((2, 3, 4), index=(Ellipsis, 1), label="2x3x4-[...,1]"),
         C((2, 3, 4), index=(1, Ellipsis, None), label="2x3x4-[1,...,None]"),
         C((2, 3, 4), index=(slice(None), [0, 0], slice(1, 3)), label="2x3x4-[:,00,1:3]")],
        float32=True,
        bad=[C((5,), index=5, label="5-[5]"),
             C((3, 4), index=(0, 0, 0), label="3x4-[0,0,0]")]),
    # the transposes of take and indexing (internal: built by their bprops)
    Row("scatter_add", _scatter_add_build, _scatter_add_ref,
        [_scatter((4,), [1, 1, 0], 0, "4-idx110"),
         _scatter((4, 3), [1, 1, 0], 0, "4x3-idx110-axis0"),
         _scatter((2, 4), [1, 1, 0], 1, "2x4-idx110-axis1"),
         _scatter((2, 3), [[0, 2], [2, 2]], 1, "2x3-idx2x2-axis1"),
         _scatter((2, 3, 2), [2, 0, 2], 1, "2x3x2-idx202-axis1")]),
    Row("index_add", _index_add_build, _index_add_ref,
        [_index_add((5,), 1, "5-[1]"),
         _index_add((5,), (slice(4, 0, -2),), "5-[4:0:-2]"),
         _index_add((5,), (np.array([1, 1, 0]),), "5-[110]"),
         _index_add((3, 4), (slice(None), [2, 2, 0]), "3x4-[:,220]"),
         _index_add((3, 4), ([0, 1, 0], [1, 1, 1]), "3x4-[010,111]"),
         _index_add((3, 4), (None, Ellipsis, slice(None, None, -1)), "3x4-[None,...,::-1]")]),
    # neural-net units
    Row("softmax", sd.softmax, _softmax_ref, SOFTMAX_CASES, float32=True,
        bad=[C((2, 3), axis=2)]),
    Row("log_softmax", sd.log_softmax, _log_softmax_ref, SOFTMAX_CASES, float32=True,
        bad=[C((2, 3), axis=-3)]),
    # no gradient: forward value only, and grad through them raises
    Row("argmax", sd.argmax, np.argmax,
        [C((5,)), C((2, 3)), C((2, 3), axis=0), C((2, 3), axis=1), C((2, 3), axis=-1)],
        domain=distinct(), gradient="none",
        bad=[C((2, 3), axis=2)]),
    _unary("floor", sd.floor, np.floor, uniform(-3.0, 3.0), gradient="none"),
    _unary("round", sd.round, np.round, uniform(-3.0, 3.0), gradient="none"),
    _unary("sign", sd.sign, np.sign, away_from(0.0), gradient="none"),
    Row("less", _binary(operator.lt), _binary(operator.lt), COMPARE_CASES,
        domain=integers(-1, 1), gradient="none"),
    Row("less_equal", _binary(operator.le), _binary(operator.le), COMPARE_CASES,
        domain=integers(-1, 1), gradient="none"),
    Row("greater", _binary(operator.gt), _binary(operator.gt), COMPARE_CASES,
        domain=integers(-1, 1), gradient="none"),
    Row("greater_equal", _binary(operator.ge), _binary(operator.ge), COMPARE_CASES,
        domain=integers(-1, 1), gradient="none"),
    Row("equal", _binary(operator.eq), _binary(operator.eq), COMPARE_CASES,
        domain=integers(-1, 1), gradient="none"),
    Row("not_equal", _binary(operator.ne), _binary(operator.ne), COMPARE_CASES,
        domain=integers(-1, 1), gradient="none"),
    # the explicit way through: value passes, gradient zero
    Row("stop_gradient", _stop_gradient(sd), _stop_gradient(np),
        UNARY_CASES + [C((2, 3), inner="floor", label="2x3-of_floor")],
        gradient="zero"),
    # dtype conversion: float64 -> float32 rounds, so derivative checks get float32 tolerances
    Row("astype", sd.astype, lambda x, dtype: x.astype(dtype),
        [C((), dtype="float32"), C((3,), dtype="float32"), C((2, 3), dtype="float32")],
        rtol=2e-2, atol=2e-3, fwd_rtol=1e-7, adjoint_rtol=1e-6),
    # round 2: more elementwise functions
    _unary("sinh", sd.sinh, np.sinh, sympy=sp.sinh, float32=True),
    _unary("cosh", sd.cosh, np.cosh, sympy=sp.cosh, float32=True),
    _unary("arcsin", sd.arcsin, np.arcsin, uniform(-0.9, 0.9), sympy=sp.asin, float32=True),
    _unary("arccos", sd.arccos, np.arccos, uniform(-0.9, 0.9), sympy=sp.acos, float32=True),
    _unary("arctan", sd.arctan, np.arctan, uniform(-3.0, 3.0), sympy=sp.atan, float32=True),
    _unary("arcsinh", sd.arcsinh, np.arcsinh, uniform(-3.0, 3.0), sympy=sp.asinh),
    _unary("arccosh", sd.arccosh, np.arccosh, uniform(1.1, 3.0), sympy=sp.acosh),
    _unary("arctanh", sd.arctanh, np.arctanh, uniform(-0.9, 0.9), sympy=sp.atanh,
           float32=True),
    _unary("erf", sd.erf, _math_ref(math.erf), uniform(-3.0, 3.0), sympy=sp.erf, float32=True),
    _unary("erfc", sd.erfc, _math_ref(math.erfc), uniform(-3.0, 3.0), sympy=sp.erfc,
           float32=True),
    _unary("reciprocal", sd.reciprocal, lambda x: 1.0 / x, magnitude(0.5, 2.0),
           sympy=lambda x: 1 / x, float32=True),
    _unary("log_sigmoid", sd.log_sigmoid, lambda x: -np.log1p(np.exp(-x)), uniform(-4.0, 4.0),
           sympy=lambda x: -sp.log(1 + sp.exp(-x)), float32=True),
    _unary("silu", sd.silu, lambda x: x / (1 + np.exp(-x)), uniform(-4.0, 4.0),
           sympy=lambda x: x / (1 + sp.exp(-x)), float32=True),
    Row("elu", sd.elu, _elu_ref, [C(()), C((5,)), C((2, 3)), C((2, 3), alpha=0.5)],
        domain=away_from(0.0), float32=True,
        sympy=lambda x: sp.Piecewise((x, x > 0), (sp.exp(x) - 1, True)),
        kinks=[Kink([[0.0, 2.0]], [[1.0, 1.0]]),
               Kink([[0.0, 2.0]], [[0.5, 1.0]], {"alpha": 0.5})]),
    Row("gelu", sd.gelu, _gelu_ref,
        [C(()), C((5,)), C((2, 3)), C((), approximate=True), C((2, 3), approximate=True)],
        domain=uniform(-4.0, 4.0), float32=True,
        sympy=lambda x: x * (1 + sp.erf(x / sp.sqrt(2))) / 2),
    Row("logaddexp", _binary(sd.logaddexp), _binary(np.logaddexp), BINARY_CASES, float32=True,
        sympy=lambda a, b: sp.log(sp.exp(a) + sp.exp(b)),
        kinks=[Kink([[1.0, -3.0], [1.0, -3.0]], [[0.5, 0.5], [0.5, 0.5]])],
        bad=[C((2, 3), (2,))]),
    Row("arctan2", _binary(sd.arctan2), _binary(np.arctan2), BINARY_CASES,
        domain=magnitude(0.5, 2.0), float32=True, sympy=sp.atan2, bad=[C((2, 3), (2,))]),
    # a % b away from its jumps: |a| <= 4 away from 0 and +-2.5 (the constant divisor), and
    # |b| in [5, 6] so that floor(a/b) is 0 or -1 (both signs of both operands); no SymPy
    # oracle: sympy.diff leaves Mod and floor underived
    Row("mod", _binary(operator.mod), _binary(operator.mod), BINARY_CASES,
        domain=[away_from(0.0, 2.5, -2.5, margin=0.2, lo=-4.0, hi=4.0), magnitude(5.0, 6.0)],
        float32=True, bad=[C((2, 3), (2,))]),
    # round 2: reductions and orderings
    Row("variance", sd.variance, np.var,
        REDUCE_CASES + [C((2, 3), axis=1, ddof=1), C((4,), ddof=2),
                        C((2, 3, 2), axis=(0, 2), keepdims=True, ddof=1)],
        float32=True, bad=[C((2, 3), axis=2), C((3,), ddof=3)]),
    Row("std", sd.std, np.std,
        REDUCE_CASES[1:] + [C((2, 3), axis=1, ddof=1), C((4,), ddof=2)],
        float32=True, bad=[C((2, 3), axis=2), C((3,), ddof=3)]),
    Row("cumsum", sd.cumsum, np.cumsum,
        [C(()), C((4,)), C((2, 3)), C((2, 3), axis=0), C((2, 3), axis=1), C((2, 3), axis=-1),
         C((2, 3, 2), axis=1)],
        float32=True, bad=[C((2, 3), axis=2)]),
    Row("sort", sd.sort, np.sort,
        [C((5,)), C((2, 3)), C((2, 3), axis=0), C((2, 3), axis=-2), C((2, 3, 2), axis=1)],
        domain=distinct(), float32=True, bad=[C((2, 3), axis=2), C(())]),
    Row("argsort", sd.argsort, lambda x, axis=-1: np.argsort(x, axis=axis, kind="stable"),
        [C((5,)), C((2, 3)), C((2, 3), axis=0)], domain=distinct(), gradient="none",
        bad=[C((2, 3), axis=2)]),
    # sort's gradient routing (internal)
    Row("permute", _permute_build, _permute_ref,
        [C((4,), order=np.array([2, 0, 3, 1]), axis=0, label="4-order2031"),
         C((2, 3), order=np.array([[2, 0, 1], [0, 2, 1]]), axis=1, label="2x3-axis1"),
         C((2, 3), order=np.array([[1, 0, 0], [0, 1, 1]]), axis=0, label="2x3-axis0")],
        float32=True),
    # layout (ops/layout.py)
    Row("squeeze", sd.squeeze, np.squeeze,
        [C((2, 1, 3)), C((2, 1, 3), axis=1), C((1, 3, 1), axis=-1), C((1, 3, 1), axis=(0, 2)),
         C((1, 1))], float32=True,
        bad=[C((2, 3), axis=0), C((2, 1), axis=2)]),
    Row("expand_dims", sd.expand_dims, np.expand_dims,
        [C((2, 3), axis=0), C((2, 3), axis=-1), C((2, 3), axis=(0, 3)), C((3,), axis=(-1, 0)),
         C((), axis=0)], float32=True, sympy=lambda x: x,
        bad=[C((2, 3), axis=3), C((2, 3), axis=(0, 0))]),
    Row("split", _split(sd), _split(np),
        [C((6,), sections=3, piece=1, label="6-sections3-piece1"),
         C((5, 2), sections=[2, 3], piece=2, label="5x2-at2,3-piece2"),
         C((5, 2), sections=[2, 3], piece=0, label="5x2-at2,3-piece0"),
         C((2, 6), sections=[1, 4], axis=1, piece=1, label="2x6-at1,4-axis1-piece1"),
         C((2, 6), sections=2, axis=-1, piece=0, label="2x6-sections2-axis-1-piece0"),
         C((5,), sections=[-2], piece=1, label="5-at-2-piece1")], float32=True,
        bad=[C((5, 2), sections=2, label="5x2-sections2"),
             C((5, 2), sections=[1], axis=2, label="5x2-axis2")]),
    Row("flip", sd.flip, np.flip,
        [C((5,)), C((2, 3)), C((2, 3), axis=0), C((2, 3), axis=-1), C((2, 3, 2), axis=(0, 2))],
        float32=True,
        bad=[C((2, 3), axis=2)]),
    Row("tile", sd.tile, np.tile,
        [C((3,), reps=2), C((2, 3), reps=(2, 1)), C((2, 3), reps=(2, 1, 2)), C((2, 3), reps=3),
         C((), reps=(2, 2)), C((2, 1, 3), reps=(1, 2))], float32=True),
    Row("repeat", sd.repeat, np.repeat,
        [C((2, 3), repeats=2), C((2, 3), repeats=2, axis=0),
         C((2, 3), repeats=[1, 0, 2], axis=1, label="2x3-repeats1,0,2-axis1"),
         C((2, 3), repeats=3, axis=-1), C((4,), repeats=[2, 1, 1, 3], label="4-repeats2,1,1,3"),
         C((), repeats=2), C((2, 3), repeats=[2], axis=0, label="2x3-repeats_list2-axis0")],
        float32=True,
        bad=[C((2, 3), repeats=[1, 2], axis=1, label="2x3-repeats1,2-axis1"),
             C((2, 3), repeats=2, axis=2)]),
    Row("pad", sd.pad, np.pad,
        [C((3,), pad_width=1), C((2, 3), pad_width=(1, 2)),
         C((2, 3), pad_width=((0, 1), (2, 0)), label="2x3-pad01,20"),
         C((2, 3), pad_width=((1, 1),), constant_values=0.5, label="2x3-pad11-fill0.5"),
         C((2, 3, 2), pad_width=((0, 0), (1, 0), (0, 2)), label="2x3x2-pad00,10,02")],
        float32=True,
        bad=[C((2, 3), pad_width=((1, 1), (1, 1), (1, 1)), label="2x3-pad3pairs"),
             C((2, 3), pad_width=-1, label="2x3-pad-1")]),
    Row("take_along_axis", _take_along_axis(sd), _take_along_axis(np),
        [C((3, 4), indices=[[0, 3, 3], [1, 1, 0], [2, 0, 0]], axis=1, label="3x4-idx3x3-axis1"),
         C((3, 4), indices=[[2, 2, 0, 1]], axis=0, label="3x4-idx1x4-axis0"),
         C((3, 4), indices=[[1], [0], [3]], axis=-1, label="3x4-idx3x1-axis-1"),
         C((5,), indices=[4, 4, 0, -1], axis=0, label="5-idx4,4,0,-1"),
         C((1, 4), indices=[[0, 1], [1, 1], [3, 2]], axis=1, label="1x4-idx3x2-broadcast"),
         C((2, 3, 2), indices=[[[1], [0], [2]]], axis=1, label="2x3x2-idx1x3x1-axis1")],
        float32=True,
        bad=[C((3, 4), indices=[[0]], axis=2, label="3x4-axis2"),
             C((3, 4), indices=[[0, 1], [1, 0]], axis=1, label="3x4-idx2x2-axis1"),
             C((3, 4), indices=[0, 1], axis=1, label="3x4-idx1d-axis1")]),
    Row("scatter_along_axis", _scatter_along_axis_build, _scatter_along_axis_ref,
        [_along((3, 4), [[0, 3, 3], [1, 1, 0], [2, 0, 0]], 1, "3x4-idx3x3-axis1"),
         _along((3, 4), [[2, 2, 0, 1]], 0, "3x4-idx1x4-axis0"),
         _along((5,), [4, 4, 0, -1], 0, "5-idx4,4,0,-1"),
         _along((1, 4), [[0, 1], [1, 1], [3, 2]], 1, "1x4-idx3x2-broadcast")]),
    Row("one_hot", sd.one_hot, _one_hot_ref,
        [C((5,), n=4), C((2, 3), n=3), C((), n=2)],
        domain=integers(-1, 4), gradient="none"),
    Row("tril", sd.tril, np.tril,
        [C((3, 3)), C((3, 4), k=1), C((4, 3), k=-1), C((2, 3, 3)), C((2, 3), k=-2)],
        float32=True,
        bad=[C((3,))]),
    Row("triu", sd.triu, np.triu,
        [C((3, 3)), C((3, 4), k=1), C((4, 3), k=-1), C((2, 3, 3)), C((2, 3), k=2)],
        bad=[C((3,))]),
    Row("diag", sd.diag, np.diag,
        [C((3,)), C((3,), k=1), C((2,), k=-2), C((1,))], float32=True,
        bad=[C((2, 3, 4)), C(())]),
    Row("diagonal", sd.diagonal, np.diagonal,
        [C((3, 3)), C((3, 4), offset=1), C((4, 3), offset=-1), C((3, 4), offset=-2),
         C((2, 3, 4), axis1=1, axis2=2), C((2, 3, 4), offset=1, axis1=-1, axis2=0),
         C((3, 2, 4), offset=-1, axis1=2, axis2=0)], float32=True,
        bad=[C((3,)), C((3, 3), axis1=0, axis2=-2), C((3, 3), axis2=2)]),
    Row("trace", sd.trace, np.trace,
        [C((3, 3)), C((3, 4), offset=1), C((4, 3), offset=-2), C((2, 3, 4), axis1=1, axis2=2),
         C((2, 3, 3), axis1=-2, axis2=-1), C((3, 2, 4), offset=1, axis1=2, axis2=0)],
        float32=True,
        bad=[C((3,)), C((3, 3), axis1=1, axis2=1)]),
    # einsum (tensordot and N-D dot are einsums)
    Row("einsum", _einsum(sd), _einsum(np), EINSUM_CASES, float32=True, fwd_rtol=1e-9,
        bad=[_E("ij,jk->ik", (2, 3), (4, 5)), _E("ij->i", (2, 3, 4)), _E("ij,jk", (2, 3)),
             C((2, 3), (2, 3), tensordot=1, label="tensordot1:2x3+2x3"),
             C((2, 3, 4), (3, 4), dot=True, label="dot:2x3x4+3x4")]),
    # convolution and pooling (PyTorch layouts), and the ops their gradients are made of
    Row("conv2d", sd.conv2d, _conv_ref, CONV2D_CASES, float32=True, fwd_rtol=1e-9, sep="*",
        bad=[C((2, 3, 7, 6), (4, 2, 3, 3)), C((2, 3, 2, 2), (4, 3, 3, 3)),
             C((3, 7, 6), (4, 3, 3, 3))]),
    Row("conv1d", sd.conv1d, _conv_ref, CONV1D_CASES, float32=True, fwd_rtol=1e-9, sep="*",
        bad=[C((2, 3, 9), (4, 2, 3)), C((2, 3, 9), (4, 3, 3, 3))]),
    Row("conv_input_grad", _conv_input_grad, _conv_input_grad_ref,
        [C((2, 4, 5, 5), (4, 3, 3, 2), input_size=(7, 6)),
         C((2, 4, 4, 4), (4, 3, 3, 2), input_size=(7, 6), stride=2, padding=1),
         C((2, 4, 3, 9), (4, 3, 2, 2), input_size=(7, 6), stride=(2, 1), padding=(0, 2),
           dilation=(2, 1), label="2x4x3x9*4x3x2x2-mixed"),
         C((2, 4, 5), (4, 3, 3), input_size=(9,), stride=2, padding=1)], sep="*",
        fwd_rtol=1e-9, bad=[C((2, 4, 5, 5), (3, 3, 3, 2), input_size=(7, 6))]),
    Row("conv_weight_grad", _conv_weight_grad, _conv_weight_grad_ref,
        [C((2, 3, 7, 6), (2, 4, 5, 5), kernel_size=(3, 2)),
         C((2, 3, 7, 6), (2, 4, 4, 4), kernel_size=(3, 2), stride=2, padding=1),
         C((2, 3, 7, 6), (2, 4, 3, 9), kernel_size=(2, 2), stride=(2, 1), padding=(0, 2),
           dilation=(2, 1), label="2x3x7x6*2x4x3x9-mixed"),
         C((2, 3, 9), (2, 4, 5), kernel_size=(3,), stride=2, padding=1)], sep="*",
        fwd_rtol=1e-9, bad=[C((2, 3, 7, 6), (2, 4, 4, 4), kernel_size=(3, 2))]),
    Row("max_pool2d", sd.max_pool2d, _max_pool_ref,
        [C((2, 3, 7, 6), kernel_size=2), C((2, 3, 7, 6), kernel_size=(3, 2), stride=(2, 1)),
         C((2, 3, 7, 6), kernel_size=3, stride=1)], domain=distinct(-4.0, 4.0, 0.02),
        float32=True, bad=[C((2, 3, 2, 2), kernel_size=3), C((3, 7, 6), kernel_size=2)]),
    Row("max_pool2d_scatter", _pool_internal(MaxPoolScatter), _max_scatter_ref,
        [C((2, 3, 3, 3), x=_POOL_X, kernel_size=2, label="2x3x3x3-k2"),
         C((2, 3, 5, 4), x=_POOL_X, kernel_size=3, stride=1, label="2x3x5x4-k3s1")]),
    Row("max_pool2d_gather", _pool_internal(MaxPoolGather), _max_gather_ref,
        [C((2, 3, 7, 6), x=_POOL_X, kernel_size=2, label="2x3x7x6-k2"),
         C((2, 3, 7, 6), x=_POOL_X, kernel_size=3, stride=1, label="2x3x7x6-k3s1")]),
    Row("avg_pool2d", sd.avg_pool2d, _avg_pool_ref,
        [C((2, 3, 7, 6), kernel_size=2), C((2, 3, 7, 6), kernel_size=(3, 2), stride=(2, 1)),
         C((2, 3, 7, 6), kernel_size=3, stride=1)], float32=True,
        bad=[C((2, 3, 2, 2), kernel_size=3), C((3, 7, 6), kernel_size=2)]),
    Row("avg_pool2d_grad", _avg_pool_grad, _avg_pool_grad_ref,
        [C((2, 3, 3, 3), input_size=(7, 6), kernel_size=2),
         C((2, 3, 3, 5), input_size=(7, 6), kernel_size=(3, 2), stride=(2, 1))],
        bad=[C((2, 3, 3, 4), input_size=(7, 6), kernel_size=2)]),
    # symdiff.linalg
    Row("inv", *_linalg("inv"), SQUARE_CASES, domain=uniform(-1.0, 1.0), bad=SQUARE_BAD),
    Row("solve", *_linalg("solve"),
        [C((3, 3), (3,)), C((3, 3), (3, 2)), C((2, 3, 3), (2, 3, 2)), C((2, 3, 3), (3,)),
         C((2, 3, 3), (1, 3, 2))], domain=uniform(-1.0, 1.0),
        bad=[C((3, 3), (2,)), C((3, 3), (2, 2)), C((2, 3), (3,))]),
    Row("det", *_linalg("det"), SQUARE_CASES, domain=uniform(-1.0, 1.0), bad=SQUARE_BAD),
    Row("logabsdet", *_slogdet(1), SQUARE_CASES, domain=uniform(-1.0, 1.0), bad=SQUARE_BAD),
    Row("slogdet_sign", *_slogdet(0), SQUARE_CASES, domain=uniform(-1.0, 1.0),
        gradient="none", bad=SQUARE_BAD),
    Row("cholesky", _cholesky(sd), _cholesky(np), SQUARE_CASES, domain=uniform(-1.0, 1.0),
        bad=SQUARE_BAD),
]
