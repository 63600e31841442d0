"""Elementwise ops: unary functions (one row each), binary arithmetic, selection, comparisons.

Sub-gradient conventions at kinks (also in the README):
``relu'(0) = 0``; ``abs'(0) = 0`` (sign); ``leaky_relu'(0) = alpha``; ``hardtanh`` and ``clip``
pass the gradient only strictly inside ``(lo, hi)``; ``maximum``/``minimum`` split the gradient
equally between tied arguments (as JAX and PyTorch do); ``elu'(0) = alpha``; ``mod`` takes the
one-sided derivatives at its jumps.

``erf``/``erfc`` need no SciPy: their NumPy kernel (kernels.erf_pair) uses fdlibm's rational
approximations: erf within 1 ulp of ``math.erf``, erfc within 4 ulps of ``math.erfc``.

Masks and signs inside these bprop rules are constants to later differentiation: routing goes
through ``where`` (whose condition gets no gradient) and ``abs`` wraps its sign in
``stop_gradient``, so gradients of gradients through relu, abs, max and where work.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError
from ..graph import Expr, apply, as_expr, broadcast_shapes, const
from . import kernels
from ..printing import latex_group
from .base import (PREC_ADD, PREC_ATOM, PREC_CMP, PREC_MUL, PREC_POW, PREC_UNARY, Op,
                   bool_param, float_dtype, float_param)
from .lowering import Call, Infix, Prefix
from .shape import BroadcastTo, Reshape, batch_elementwise, broadcast_to


# ---------------------------------------------------------------------------------------------
# unary elementwise: one row per op
# ---------------------------------------------------------------------------------------------
class Unary(Op):
    """Elementwise ``f(x)``. A row gives the lowering (a namespace function name, or a function
    of the input returning a form), the math-module form and ``rule(x, out, g) = g * f'(x)``.

    The Jacobian is diagonal, so the jvp is the same rule applied to the tangent.
    """

    loop = "map"  # fuses into loops (lower/numba.py)

    lowering = ""            # name of the namespace function, or a staticmethod x -> form
    keep_dtype = False       # True: integer inputs keep their dtype (as NumPy)
    rule = None              # staticmethod (x, out, g) -> Expr

    def __call__(self, x) -> Expr:
        return apply(self, (as_expr(x),))

    def infer(self, x):
        if x.dtype == bool and self.name in ("negative", "sign"):
            raise DTypeError(f"{self.name}: not defined for a boolean mask; convert it with "
                             f"where(mask, 1.0, 0.0)")
        return x.shape, (x.dtype if self.keep_dtype else float_dtype(x.dtype))

    def lower(self, x):
        if isinstance(self.lowering, str):
            return Call(self.lowering, (x,))
        return self.lowering(x)

    def bprop(self, inputs, out, g):
        return [type(self).rule(inputs[0], out, g)]

    def jvp(self, inputs, out, tangents):
        return type(self).rule(inputs[0], out, tangents[0])

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)


def unary(name: str, scalar, rule, doc: str, keep_dtype=False, differentiable=True,
          symbol=None, lowering=None, **facts):
    """Make and register the op class of one unary row (``Exp`` for ``exp``...). The lowering
    is the namespace function of the op's own name unless the row gives a form builder;
    ``facts`` are further class attributes (``sympy``, ``latex``... see ``Op``)."""
    lowering = name if lowering is None else staticmethod(lowering)
    attrs = dict(name=name, keep_dtype=keep_dtype, differentiable=differentiable, __doc__=doc,
                 lowering=lowering,
                 scalar=staticmethod(scalar) if scalar else None,
                 rule=staticmethod(rule) if rule else None)
    attrs.update({key: staticmethod(value) if callable(value) else value
                  for key, value in facts.items()})
    if symbol:
        attrs.update(symbol=symbol, precedence=PREC_UNARY)
    cls_name = "".join(part.capitalize() for part in name.split("_"))
    return type(cls_name, (Unary,), attrs)


def _sign_const(x):
    return stop_gradient(Sign()(x))


# the scalar kernels Numba fuses into loops for namespace functions that are no ufuncs
_NUMBA_SIGMOID = """\
def k_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
"""
_NUMBA_SOFTPLUS = """\
def k_softplus(x):
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))
"""
_NUMBA_WHERE = """\
def k_where(c, a, b):
    return a if c else b
"""
_NUMBA_CLIP = """\
def k_clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)
"""
_NUMBA_ROUND = """\
def k_round(x):
    return np.rint(x)
"""


def _latex_dsigmoid(inputs, parts):
    """sigmoid'(z) typeset as the lecture writes it, s (1 - s) (a Hadamard product for tensors)."""
    s = f"\\sigma\\left({parts[0][0]}\\right)"
    sep = r" \odot " if inputs[0].ndim else " "
    return f"{s}{sep}\\left(1 - {s}\\right)", PREC_MUL


def _stable_log(node: Expr):
    """log(f(...)): the stable form f gives for its own log."""
    inner = node.inputs[0]
    return inner.op.stable_log(inner) if inner.op is not None else None


def _stable_log1p(node: Expr):
    """log1p(f(...)): the stable form f gives for its own log1p."""
    inner = node.inputs[0]
    return inner.op.stable_log1p(inner) if inner.op is not None else None


# name (also the xp function it lowers to), math-module form, g * f'(x) as a graph, doc;
# then the facts the printers and the SymPy bridge ask for (sympy, latex, stable forms)
Exp = unary("exp", math.exp, lambda x, out, g: g * out, "e^x; derivative e^x (reuses out)",
            sympy="exp", latex=r"\exp",
            stable_log1p=lambda node: softplus(node.inputs[0]))  # log1p(exp(x)) = softplus(x)
Log = unary("log", math.log, lambda x, out, g: g / x, "natural log; derivative 1/x",
            sympy="log", latex=r"\log", stable_form=_stable_log)
Log1p = unary("log1p", math.log1p, lambda x, out, g: g / (1 + x),
              "log(1 + x), accurate near 0; derivative 1/(1 + x)",
              sympy=lambda s, x: s.sp.log(1 + x), stable_form=_stable_log1p)
# e^x, not out + 1: out + 1 cancels to 0 for x < -37 (expm1'(-40) = 4.2e-18, not 0)
Expm1 = unary("expm1", math.expm1, lambda x, out, g: g * exp(x),
              "e^x - 1, accurate near 0; derivative e^x (not out + 1, which cancels)",
              sympy=lambda s, x: s.sp.exp(x) - 1)
Sqrt = unary("sqrt", math.sqrt, lambda x, out, g: g / (2 * out),
             "square root; derivative 1/(2 sqrt x) (reuses out)",
             sympy="sqrt",
             latex_form=lambda inputs, parts: (f"\\sqrt{{{parts[0][0]}}}", PREC_ATOM))
Square = unary("square", kernels.scalar_square, lambda x, out, g: g * (2 * x),
               "x^2; derivative 2x", keep_dtype=True, sympy=lambda s, x: x ** 2,
               latex_form=lambda inputs, parts: (f"{latex_group(parts[0])}^{{2}}", PREC_POW))
Abs = unary("abs", abs, lambda x, out, g: g * _sign_const(x),
            "|x|; derivative sign(x), 0 at x = 0", keep_dtype=True, sympy="Abs",
            numpy_names=("absolute",))
Sin = unary("sin", math.sin, lambda x, out, g: g * cos(x), "sine; derivative cos x",
            sympy="sin", latex=r"\sin")
Cos = unary("cos", math.cos, lambda x, out, g: -(g * sin(x)), "cosine; derivative -sin x",
            sympy="cos", latex=r"\cos")
Tan = unary("tan", math.tan, lambda x, out, g: g * (1 + square(out)),
            "tangent; derivative 1 + tan^2 x (reuses out)", sympy="tan", latex=r"\tan")
# dtanh: sech^2 x, not 1 - out^2, which cancels to 0 where out rounds to +-1
Tanh = unary("tanh", math.tanh, lambda x, out, g: g * dtanh(x),
             "hyperbolic tangent; derivative 1 - tanh^2 x = sech^2 x (dtanh)",
             sympy="tanh", latex=r"\tanh")
# dsigmoid: 1 / (2 + 2 cosh x), not out (1 - out), which cancels to 0 for large x
Sigmoid = unary("sigmoid", kernels.scalar_sigmoid, lambda x, out, g: g * dsigmoid(x),
                "logistic 1/(1 + e^-x), computed without overflow; derivative "
                "s(x)(1 - s(x)) (dsigmoid)",
                sympy=lambda s, x: 1 / (1 + s.sp.exp(-x)), sympy_levels=4, latex=r"\sigma",
                stable_log=lambda node: -softplus(-node.inputs[0]),  # log s(x) = -softplus(-x)
                numba_kernel=_NUMBA_SIGMOID)
Softplus = unary("softplus", kernels.scalar_softplus, lambda x, out, g: g * sigmoid(x),
                 "log(1 + e^x), computed without overflow; derivative sigmoid(x)",
                 sympy=lambda s, x: s.sp.log(1 + s.sp.exp(x)), sympy_levels=3,
                 numba_kernel=_NUMBA_SOFTPLUS)
Relu = unary("relu", kernels.scalar_relu,
             lambda x, out, g: g * stop_gradient(out > 0),  # mask from out: x may die early
             "max(0, x); derivative 1 for x > 0 and 0 for x <= 0 (relu'(0) = 0)",
             keep_dtype=True, lowering=lambda x: Call("maximum", (x, 0)),
             sympy=lambda s, x: s.max(s.sp.S.Zero, x))
Negative = unary("negative", None, lambda x, out, g: -g, "-x; derivative -1",
                 keep_dtype=True, symbol="-", lowering=lambda x: Prefix("-", x),
                 sympy=lambda s, x: -x,
                 latex_form=lambda inputs, parts: (f"-{latex_group(parts[0])}", PREC_UNARY))
# NumPy >= 2.1 keeps integer and bool dtypes in floor (older versions give float64): ask it
_FLOOR_KEEPS_DTYPE = np.floor(np.zeros((), dtype=np.int64)).dtype == np.int64
Floor = unary("floor", kernels.scalar_floor, None, "largest integer <= x; no gradient",
              keep_dtype=_FLOOR_KEEPS_DTYPE, differentiable=False, sympy="floor")
Round = unary("round", kernels.scalar_round, None, "round half to even (NumPy); no gradient",
              keep_dtype=True, differentiable=False, sympy=lambda s, x: s.round(x),
              numba_kernel=_NUMBA_ROUND,
              numpy_names=("rint",))
Sign = unary("sign", kernels.scalar_sign, None, "-1, 0 or 1; no gradient", keep_dtype=True,
             differentiable=False, sympy="sign")


# the derivatives of tanh and sigmoid, each one vectorised pass without cancellation (the
# forms 1 - tanh^2 and s (1 - s) round to 0 in the tails: tanh'(19.5) = 4.6e-17, not 0)
Dtanh = unary("dtanh", kernels.scalar_dtanh, lambda x, out, g: g * (-2.0 * (out * tanh(x))),
              "tanh'(x) = sech^2 x = 1 / cosh^2 x (built by tanh's bprop); derivative "
              "-2 sech^2(x) tanh(x)",
              sympy=lambda s, x: 1 - s.sp.tanh(x) ** 2,
              latex_form=lambda inputs, parts: (
                  f"1 - \\tanh^{{2}}\\left({parts[0][0]}\\right)", PREC_ADD))
Dsigmoid = unary("dsigmoid", kernels.scalar_dsigmoid,
                 lambda x, out, g: g * (out * (1.0 - 2.0 * sigmoid(x))),
                 "sigmoid'(x) = s (1 - s) = 1 / (2 + 2 cosh x) (built by sigmoid's bprop); "
                 "derivative sigmoid'(x) (1 - 2 sigmoid(x))",
                 sympy=lambda s, x: 1 / (1 + s.sp.exp(-x)) * (1 - 1 / (1 + s.sp.exp(-x))),
                 sympy_levels=6, latex_form=_latex_dsigmoid)


class StopGradient(Unary):
    """The value of ``x``, a constant to ``grad``: the gradient through it is zero."""

    name = "stop_gradient"
    keep_dtype = True
    alias = view = True  # lowering emits no statement: the node is its input's value
    scalar = staticmethod(kernels.scalar_identity)
    sympy_identity = True  # SymPy sees values, not gradient flow

    def latex_form(self, inputs, parts):
        return parts[0]

    def lower(self, x):
        return x

    def bprop(self, inputs, out, g):
        return [None]

    def jvp(self, inputs, out, tangents):
        return None


exp, log, log1p, expm1, sqrt, square = Exp(), Log(), Log1p(), Expm1(), Sqrt(), Square()
abs, sin, cos, tan, tanh = Abs(), Sin(), Cos(), Tan(), Tanh()  # noqa: A001 (API name)
sigmoid, softplus, relu, negative = Sigmoid(), Softplus(), Relu(), Negative()
floor, round, sign = Floor(), Round(), Sign()
dtanh, dsigmoid = Dtanh(), Dsigmoid()
stop_gradient = StopGradient()


# ---------------------------------------------------------------------------------------------
# binary arithmetic
# ---------------------------------------------------------------------------------------------
def _pair(a, b) -> tuple[Expr, Expr]:
    """Both operands as nodes; a bare number takes the other side's dtype."""
    if isinstance(a, Expr):
        return a, as_expr(b, like=a)
    b = as_expr(b)
    return as_expr(a, like=b), b


def _is_const_value(e: Expr, value: float) -> bool:
    return e.uniform is not None and e.uniform == value


def _passes_through(keep: Expr, other: Expr, result_dtype) -> bool:
    """True when ``keep op other`` would equal ``keep`` in shape and dtype."""
    return (broadcast_shapes(keep.shape, other.shape) == keep.shape
            and np.dtype(result_dtype) == keep.dtype)


class Binary(Op):
    """Elementwise op of two broadcast operands; the result dtype follows NumPy."""

    loop = "map"  # fuses into loops (lower/numba.py)

    lowering = ""  # the Python operator symbol, or the namespace function name
    callable_by_name = False  # written as its operator (a + b); power and the rest are named

    def infer(self, a, b):
        return broadcast_shapes(a.shape, b.shape, opname=self.name), self.result_dtype(a, b)

    def result_dtype(self, a, b):
        return np.result_type(a.dtype, b.dtype)

    def lower(self, a, b):
        if self.symbol:
            return Infix(self.symbol, a, b)
        return Call(self.lowering, (a, b))

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)


class Add(Binary):
    """a + b; gradient g to both (``+`` distributes the upstream gradient)."""

    name, symbol, precedence, commutative = "add", "+", PREC_ADD, True
    sympy = staticmethod(lambda s, a, b: a + b)

    def latex_form(self, inputs, parts):
        return f"{parts[0][0]} + {parts[1][0]}", PREC_ADD

    def stable_log(self, node):
        # log(1 + exp(x)) = softplus(x)
        a, b = node.inputs
        for one, other in ((a, b), (b, a)):
            if (_is_const_value(one, 1) and isinstance(other.op, Exp)
                    and other.shape == node.shape):
                return softplus(other.inputs[0])
        return None

    def bprop(self, inputs, out, g):
        return [g, g]

    def jvp(self, inputs, out, tangents):
        # a lone tangent has its input's shape; the tangent of out has out's shape
        ta, tb = tangents
        if ta is None or tb is None:
            return broadcast_to(tb if ta is None else ta, out.shape)
        return ta + tb


class Subtract(Binary):
    """a - b; gradients g and -g."""

    name, symbol, precedence = "subtract", "-", PREC_ADD
    sympy = staticmethod(lambda s, a, b: a - b)

    def latex_form(self, inputs, parts):
        return f"{parts[0][0]} - {latex_group(parts[1], PREC_ADD + 1)}", PREC_ADD

    def result_dtype(self, a, b):
        if a.dtype == bool and b.dtype == bool:
            raise DTypeError("subtract: both operands are boolean masks; convert one with "
                             "where(mask, 1.0, 0.0)")
        return super().result_dtype(a, b)

    def bprop(self, inputs, out, g):
        return [g, -g]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Multiply(Binary):
    """a * b; gradients g b and g a (``*`` switches the inputs)."""

    name, symbol, precedence, commutative = "multiply", "*", PREC_MUL, True
    sympy = staticmethod(lambda s, a, b: a * b)

    def latex_form(self, inputs, parts):
        # juxtaposition for a scalar factor (a constant array of one value, broadcast or not,
        # prints as that number and counts as one), the Hadamard product of two tensors
        def tensor(x, part):
            return x.ndim and not _is_number(part[0])
        for one, other in ((parts[0], parts[1]), (parts[1], parts[0])):
            if _is_number(one[0]) and float(one[0]) == 1.0:  # 1 x = x (the seed of grad)
                return other
        if tensor(inputs[0], parts[0]) and tensor(inputs[1], parts[1]):
            sep = r" \odot "
        elif parts[1][0][:1].isdigit():  # 0.001 \cdot 2.0: juxtaposed digits would merge
            sep = r" \cdot "
        else:
            sep = " "
        return sep.join(latex_group(part, PREC_MUL) for part in parts), PREC_MUL

    def bprop(self, inputs, out, g):
        a, b = inputs
        return [g * b, g * a]

    def lower_standard(self, a, b):
        # a mask times a value: NumPy casts the bool, the standard does not
        if a.dtype == bool:
            return Call("where", (a, b, 0.0))
        if b.dtype == bool:
            return Call("where", (b, a, 0.0))
        return self.lower(a, b)

    def jvp(self, inputs, out, tangents):
        a, b = inputs
        ta, tb = tangents
        if ta is None:
            return a * tb
        return ta * b if tb is None else ta * b + a * tb

    def batch(self, inputs, batched):
        # x * 1 = x: a gradient's unit seed (broadcast ones) is dropped, exactly, where the
        # batched factor already has the product's shape and dtype
        out = batch_elementwise(self, inputs, batched)
        for keep, unit in ((0, 1), (1, 0)):
            x, one = out.inputs[keep], out.inputs[unit]
            if batched[keep] and not batched[unit] and _is_unit(one) \
                    and x.shape == out.shape and x.dtype == out.dtype:
                return x
        return out


def _is_unit(e: Expr) -> bool:
    """A constant one, or one broadcast (a gradient's seed spread over a reduction)."""
    while e.op is not None and isinstance(e.op, (BroadcastTo, Reshape)):
        e = e.inputs[0]
    return _is_const_value(e, 1)


class Divide(Binary):
    """a / b; gradients g / b and -g a / b^2 = -g out / b."""

    name, symbol, precedence = "divide", "/", PREC_MUL
    numpy_names = ("true_divide",)  # NumPy's other name (numpy dispatch, ops/dispatch.py)
    sympy = staticmethod(lambda s, a, b: a / b)

    def latex_form(self, inputs, parts):
        return f"\\frac{{{parts[0][0]}}}{{{parts[1][0]}}}", PREC_ATOM

    def result_dtype(self, a, b):
        return float_dtype(np.result_type(a.dtype, b.dtype))

    def bprop(self, inputs, out, g):
        a, b = inputs
        return [g / b, -(g * out) / b]


class Power(Binary):
    """a ** b; gradients g b a^(b-1) and g a^b log(a). At a = 0 the second is taken as 0 (the
    limit for b > 0, as JAX does); for a < 0 it is nan. Where b = 0 the first is 0 (even at
    a = 0, as autograd)."""

    name, symbol, precedence = "power", "**", PREC_POW
    # raises where a float power is complex or infinite (the caller falls back to NumPy,
    # which gives nan or inf); Python's ** would return a complex number
    scalar = staticmethod(kernels.scalar_power)
    callable_by_name = True
    sympy = staticmethod(lambda s, a, b: a ** b)

    def latex_form(self, inputs, parts):
        return f"{latex_group(parts[0])}^{{{parts[1][0]}}}", PREC_POW

    def result_dtype(self, a, b):
        dtype = np.result_type(a.dtype, b.dtype)
        if dtype.kind in "iu" and b.is_const and np.any(b.value < 0):
            raise DTypeError(f"power: integer {a.dtype} to a negative integer power; "
                             f"use a float base")
        return dtype

    def bprop(self, inputs, out, g):
        a, b = inputs
        # d/da = b a^(b-1), with the exponent 1 where b = 0 (as autograd): there the derivative
        # is 0, and 0 * 0^-1 would be nan at a = 0
        if b.is_const:
            b_minus_1 = const(np.where(b.value != 0, b.value - 1, 1).astype(b.dtype))
        else:
            b_minus_1 = where(b != 0, b - 1, 1)
        safe_base = where(a == 0, 1, a)  # log(1) = 0: no 0 * -inf at a zero base
        return [g * (b * power(a, b_minus_1)), g * (out * log(safe_base))]


class Maximum(Binary):
    """Elementwise max(a, b): the gradient goes to the larger input (``max`` routes it); a tie
    splits it equally."""

    name, lowering, commutative = "maximum", "maximum", True
    scalar = staticmethod(kernels.scalar_maximum)
    callable_by_name = True
    sympy = staticmethod(lambda s, a, b: s.max(a, b))

    def bprop(self, inputs, out, g):
        a, b = inputs
        # share of a: 1 if a > b, 0 if a < b, 1/2 on a tie; b gets the rest
        return _route(g, stop_gradient(0.5 + 0.5 * Sign()(a - b)))


class Minimum(Binary):
    """Elementwise min(a, b): the gradient goes to the smaller input; a tie splits it."""

    name, lowering, commutative = "minimum", "minimum", True
    scalar = staticmethod(kernels.scalar_minimum)
    callable_by_name = True
    sympy = staticmethod(lambda s, a, b: s.min(a, b))

    def bprop(self, inputs, out, g):
        a, b = inputs
        # share of a: 1 if a < b, 0 if a > b, 1/2 on a tie; b gets the rest
        return _route(g, stop_gradient(0.5 + 0.5 * Sign()(b - a)))




def _route(g: Expr, share: Expr) -> list[Expr]:
    """Split ``g`` between two inputs: ``g * share`` to the first, the rest to the second."""
    first = g * share
    return [first, g - first]


def _with_unit(op: Binary, a, b, unit: float, left=None) -> Expr:
    """``op(a, b)``, except that ``a op unit`` is ``a`` and, when ``left`` is given,
    ``unit op b`` is ``left(b)`` (only where shape and dtype stay those of the kept side)."""
    a, b = _pair(a, b)
    dtype = op.result_dtype(a, b)
    if _is_const_value(b, unit) and _passes_through(a, b, dtype):
        return a
    if left is not None and _is_const_value(a, unit) and _passes_through(b, a, dtype):
        return left(b)
    return apply(op, (a, b))


def _same(x: Expr) -> Expr:
    return x


def add(a, b) -> Expr:
    """a + b with NumPy broadcasting; ``x + 0`` and ``0 + x`` are ``x``."""
    return _with_unit(Add(), a, b, 0, left=_same)


def subtract(a, b) -> Expr:
    """a - b; ``x - 0`` is ``x`` and ``0 - x`` is ``-x``."""
    return _with_unit(Subtract(), a, b, 0, left=negative)


def multiply(a, b) -> Expr:
    """a * b; ``x * 1`` and ``1 * x`` are ``x``."""
    return _with_unit(Multiply(), a, b, 1, left=_same)


def divide(a, b) -> Expr:
    """a / b (true division); ``x / 1`` is ``x``."""
    return _with_unit(Divide(), a, b, 1)


def power(a, b) -> Expr:
    """a ** b elementwise; ``x ** 1`` is ``x``."""
    return _with_unit(Power(), a, b, 1)


def maximum(a, b) -> Expr:
    """Elementwise maximum (gradient routed to the larger; ties split equally)."""
    return apply(Maximum(), _pair(a, b))


def minimum(a, b) -> Expr:
    """Elementwise minimum (gradient routed to the smaller; ties split equally)."""
    return apply(Minimum(), _pair(a, b))


# ---------------------------------------------------------------------------------------------
# selection: where, clip, leaky_relu, hardtanh
# ---------------------------------------------------------------------------------------------
class Where(Op):
    """``where(cond, a, b)``: a where cond is nonzero, else b. Gradient: g routed to the chosen
    side; none to cond (a mask is a constant)."""

    numba_kernel = _NUMBA_WHERE  # (lower/numba.py)

    loop = "map"  # fuses into loops (lower/numba.py)

    name = "where"
    sympy_levels = 3

    def sympy_form(self, s, cond, a, b):
        return s.piecewise((s.number(a), s.condition(cond)), (s.number(b), s.sp.true))

    def infer(self, cond, a, b):
        shape = broadcast_shapes(cond.shape, a.shape, b.shape, opname="where")
        return shape, np.result_type(a.dtype, b.dtype)

    scalar = staticmethod(kernels.scalar_where)

    def lower(self, cond, a, b):
        return Call("where", (cond, a, b))

    def bprop(self, inputs, out, g):
        cond = inputs[0]
        return [None, where(cond, g, 0), where(cond, 0, g)]

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)


def where(cond, a, b) -> Expr:
    """Elementwise choice: ``a`` where ``cond`` is nonzero, else ``b``."""
    a, b = _pair(a, b)
    return apply(Where(), (as_expr(cond), a, b))


class Clip(Op):
    """``clip(x, lo, hi)`` = min(max(x, lo), hi). Gradient: to x strictly inside (lo, hi), else to
    the bound that is active (lo and hi may be expressions); hi wins when the bounds cross (as
    NumPy's value does)."""

    numba_kernel = _NUMBA_CLIP  # (lower/numba.py)

    loop = "map"  # fuses into loops (lower/numba.py)

    name = "clip"
    # np.clip(x, lo, hi) = min(max(x, lo), hi)
    sympy = staticmethod(lambda s, x, lo, hi: s.min(s.max(x, lo), hi))

    def infer(self, x, lo, hi):
        shape = broadcast_shapes(x.shape, lo.shape, hi.shape, opname="clip")
        return shape, np.result_type(x.dtype, lo.dtype, hi.dtype)

    scalar = staticmethod(kernels.scalar_clip)

    def lower(self, x, lo, hi):
        return Call("clip", (x, lo, hi))

    def bprop(self, inputs, out, g):
        # out = min(max(x, lo), hi): hi is active where max(x, lo) >= hi, i.e. out >= hi; else lo
        # where x <= lo; else x (strictly inside, as hardtanh)
        x, lo, hi = inputs
        at_hi, at_lo = out >= hi, x <= lo
        return [where(at_hi, 0, where(at_lo, 0, g)), where(at_hi, 0, where(at_lo, g, 0)),
                where(at_hi, g, 0)]

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)


def clip(x, lo, hi) -> Expr:
    """Limit ``x`` to ``[lo, hi]`` elementwise."""
    x = as_expr(x)
    return apply(Clip(), (x, as_expr(lo, like=x), as_expr(hi, like=x)))


class LeakyRelu(Op):
    """``leaky_relu(x, alpha)`` = x for x > 0, alpha x otherwise; derivative 1 or alpha
    (alpha at 0). ``alpha`` is an input, so a learned alpha (parametric ReLU) gets a gradient,
    sum of x over x <= 0."""

    loop = "map"  # fuses into loops (lower/numba.py)

    name = "leaky_relu"
    sympy_levels, sympy_copies = 3, 3  # x appears three times

    def sympy_form(self, s, x, alpha):
        x = s.number(x)
        return s.piecewise((x, s.sp.Gt(x, 0)), (s.number(alpha) * x, s.sp.true))

    def infer(self, x, alpha):
        shape = broadcast_shapes(x.shape, alpha.shape, opname="leaky_relu")
        return shape, np.result_type(x.dtype, alpha.dtype)

    def lower(self, x, alpha):
        return Call("where", (Infix(">", x, 0), x, Infix("*", alpha, x)))

    def bprop(self, inputs, out, g):
        x, alpha = inputs
        positive = x > 0
        return [where(positive, g, g * alpha), where(positive, 0, g * x)]

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)


def leaky_relu(x, alpha=0.01) -> Expr:
    """Leaky (or, with a variable ``alpha``, parametric) ReLU."""
    x = as_expr(x)
    return apply(LeakyRelu(), (x, as_expr(alpha, like=x)))


class Hardtanh(Op):
    """``hardtanh(x, lo, hi)`` = max(lo, min(hi, x)); derivative 1 strictly inside (lo, hi),
    0 outside and at the corners."""

    loop = "map"  # fuses into loops (lower/numba.py)

    name = "hardtanh"

    def __init__(self, lo=-1.0, hi=1.0):
        super().__init__(lo=float_param(lo, "hardtanh", "lo"),
                         hi=float_param(hi, "hardtanh", "hi"))

    def sympy_form(self, s, x):
        # max(lo, min(hi, x))
        return s.max(s.float(self.lo), s.min(s.float(self.hi), s.number(x)))

    def infer(self, x):
        return x.shape, float_dtype(x.dtype)

    scalar = staticmethod(kernels.scalar_clip)

    def lower(self, x):
        return Call("clip", (x, self.lo, self.hi))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        return [where(x > self.lo, where(x < self.hi, g, 0), 0)]

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)


_FLOAT_MAX = float(np.finfo(np.float64).max)


def hardtanh(x, lo=-1.0, hi=1.0) -> Expr:
    """Hard tanh, max(lo, min(hi, x)) (Goodfellow 6.3.3); ``lo`` and ``hi`` are numbers (use
    ``clip`` for expression bounds)."""
    for bound in (lo, hi):
        if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer,
                                                              np.floating)):
            raise DTypeError(f"hardtanh: lo and hi must be numbers, got {bound!r}; use "
                             f"clip(x, lo, hi) for expression bounds")
        if isinstance(bound, (int, np.integer)) and not -_FLOAT_MAX <= bound <= _FLOAT_MAX:
            raise DTypeError(f"hardtanh: the bound {bound} is too large for a float")
    return apply(Hardtanh(lo, hi), (as_expr(x),))


# ---------------------------------------------------------------------------------------------
# comparisons: boolean masks without a gradient
# ---------------------------------------------------------------------------------------------
class Compare(Binary):
    """A comparison giving a boolean (0/1) mask; it has no gradient. In LaTeX it is the
    indicator function ``\\mathbb{1}[a > b]`` (relu's mask reads ``\\mathbb{1}[z > 0]``)."""

    differentiable = False
    precedence = PREC_CMP
    relation = ""  # the LaTeX relation

    def result_dtype(self, a, b):
        return np.dtype(bool)

    def latex_form(self, inputs, parts):
        return (f"\\mathbb{{1}}\\left[{parts[0][0]} {self.relation} {parts[1][0]}\\right]",
                PREC_ATOM)


class Less(Compare):
    """a < b"""
    name, symbol = "less", "<"
    sympy = "Lt"
    relation = "<"


class LessEqual(Compare):
    """a <= b"""
    name, symbol = "less_equal", "<="
    sympy = "Le"
    relation = "\\le"


class Greater(Compare):
    """a > b"""
    name, symbol = "greater", ">"
    sympy = "Gt"
    relation = ">"


class GreaterEqual(Compare):
    """a >= b"""
    name, symbol = "greater_equal", ">="
    sympy = "Ge"
    relation = "\\ge"


class Equal(Compare):
    """a == b"""
    name, symbol = "equal", "=="
    sympy = "Eq"
    relation = "="


class NotEqual(Compare):
    """a != b"""
    name, symbol = "not_equal", "!="
    sympy = "Ne"
    relation = "\\ne"


def less(a, b): return apply(Less(), _pair(a, b))
def less_equal(a, b): return apply(LessEqual(), _pair(a, b))
def greater(a, b): return apply(Greater(), _pair(a, b))
def greater_equal(a, b): return apply(GreaterEqual(), _pair(a, b))
def equal(a, b): return apply(Equal(), _pair(a, b))
def not_equal(a, b): return apply(NotEqual(), _pair(a, b))


# ---------------------------------------------------------------------------------------------
# dtype conversion
# ---------------------------------------------------------------------------------------------
class Cast(Op):
    """``x.astype(dtype)``: the values of ``x`` as ``dtype`` (float <-> float keeps the value up
    to rounding; float -> int truncates toward zero as NumPy; -> bool is ``x != 0``).

    Derivative: between float dtypes the cast is the identity up to rounding, so the gradient
    is ``g`` cast back to the input's dtype. A cast to an integer is piecewise constant: it has
    no gradient (a requested one raises UndefinedGradientError); a cast to bool is a mask.
    """

    name = "astype"

    def __init__(self, dtype):
        from ..graph import normalize_dtype
        super().__init__(dtype=normalize_dtype(dtype).name)

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return np.dtype(self.dtype).kind == "f"

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)  # elementwise: vmap broadcasts

    def infer(self, x):
        return x.shape, np.dtype(self.dtype)

    def lower(self, x):
        return Call("asarray", (x,), (("dtype", self.dtype),))

    def lower_standard(self, x):
        return Call("astype", (x,), (("dtype", self.dtype),))

    def sympy_form(self, s, *args):
        # between float dtypes the cast is the identity up to rounding (SymPy's values are
        # exact); a cast to an integer or bool has no SymPy form here
        return args[0] if np.dtype(self.dtype).kind == "f" else None

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # d astype(x)/dx = 1 between float dtypes; integer inputs take no gradient
        return [astype(g, x.dtype) if x.dtype.kind == "f" else None]

    def jvp(self, inputs, out, tangents):
        return astype(tangents[0], out.dtype)


def astype(x, dtype) -> Expr:
    """``x`` converted to ``dtype`` (``"float32"``, ``"float64"``, ``"int64"``, ``"int32"``,
    ``"bool"``); the node itself when ``x`` has that dtype already (as ``astype(copy=False)``).

    >>> import symdiff as sd
    >>> sd.astype(sd.var("x", (2,)), "float32").dtype
    dtype('float32')
    """
    x = as_expr(x)
    op = Cast(dtype)
    if np.dtype(op.dtype) == x.dtype:
        return x
    return apply(op, (x,))


# ---------------------------------------------------------------------------------------------
# more unary functions: hyperbolic and inverse trigonometric, the error function, activations
# ---------------------------------------------------------------------------------------------
def _one_minus_square(x):
    """1 - x^2 as (1 - x)(1 + x): no cancellation near |x| = 1, where arcsin' and arctanh' are
    large."""
    return (1 - x) * (1 + x)


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_HALF = math.sqrt(0.5)

Sinh = unary("sinh", math.sinh, lambda x, out, g: g * cosh(x),
             "hyperbolic sine; derivative cosh x", sympy="sinh", latex=r"\sinh")
Cosh = unary("cosh", math.cosh, lambda x, out, g: g * sinh(x),
             "hyperbolic cosine; derivative sinh x", sympy="cosh", latex=r"\cosh")
Arcsin = unary("arcsin", math.asin, lambda x, out, g: g / sqrt(_one_minus_square(x)),
               "inverse sine on [-1, 1]; derivative 1/sqrt(1 - x^2) (inf at +-1)",
               sympy="asin", latex=r"\arcsin")
Arccos = unary("arccos", math.acos, lambda x, out, g: -(g / sqrt(_one_minus_square(x))),
               "inverse cosine on [-1, 1]; derivative -1/sqrt(1 - x^2) (-inf at +-1)",
               sympy="acos", latex=r"\arccos")
Arctan = unary("arctan", math.atan, lambda x, out, g: g / (1 + square(x)),
               "inverse tangent; derivative 1/(1 + x^2)", sympy="atan", latex=r"\arctan")
Arcsinh = unary("arcsinh", math.asinh, lambda x, out, g: g / sqrt(1 + square(x)),
                "inverse hyperbolic sine; derivative 1/sqrt(1 + x^2)", sympy="asinh",
                latex=r"\operatorname{arsinh}")
# sqrt(x - 1) sqrt(x + 1), not sqrt(x^2 - 1): x^2 - 1 cancels near x = 1
Arccosh = unary("arccosh", math.acosh,
                lambda x, out, g: g / (sqrt(x - 1) * sqrt(x + 1)),
                "inverse hyperbolic cosine on [1, inf); derivative 1/sqrt(x^2 - 1), computed "
                "as 1/(sqrt(x - 1) sqrt(x + 1)) (inf at 1)", sympy="acosh",
                latex=r"\operatorname{arcosh}")
Arctanh = unary("arctanh", math.atanh, lambda x, out, g: g / _one_minus_square(x),
                "inverse hyperbolic tangent on (-1, 1); derivative 1/(1 - x^2)",
                sympy="atanh", latex=r"\operatorname{artanh}")
Erf = unary("erf", math.erf,
            lambda x, out, g: g * (_TWO_OVER_SQRT_PI * exp(-square(x))),
            "error function 2/sqrt(pi) int_0^x e^(-t^2) dt (a NumPy kernel within 1 ulp, no "
            "SciPy); derivative 2/sqrt(pi) e^(-x^2)", sympy="erf",
            latex=r"\operatorname{erf}")
Erfc = unary("erfc", math.erfc,
             lambda x, out, g: -(g * (_TWO_OVER_SQRT_PI * exp(-square(x)))),
             "complementary error function 1 - erf(x), accurate in the tail (erfc(26) = "
             "5.7e-296); derivative -2/sqrt(pi) e^(-x^2)", sympy="erfc",
             latex=r"\operatorname{erfc}")
# 1/x as a true division: NumPy's reciprocal of an integer array is integer (1/2 = 0)
Reciprocal = unary("reciprocal", kernels.scalar_reciprocal, lambda x, out, g: -(g * square(out)),
                   "1/x (always floating); derivative -1/x^2 = -out^2 (reuses out)",
                   lowering=lambda x: Infix("/", 1.0, x), sympy=lambda s, x: 1 / x,
                   latex_form=lambda inputs, parts: (f"\\frac{{1}}{{{parts[0][0]}}}",
                                                     PREC_ATOM))
# log sigmoid(x) = -softplus(-x): never overflows, and keeps its relative precision for x >> 0
LogSigmoid = unary("log_sigmoid", kernels.scalar_log_sigmoid,
                   lambda x, out, g: g * sigmoid(-x),
                   "log(1/(1 + e^-x)) = -softplus(-x), computed without overflow; derivative "
                   "1 - sigmoid(x) = sigmoid(-x)",
                   lowering=lambda x: Prefix("-", Call("softplus", (Prefix("-", x),))),
                   sympy=lambda s, x: -s.sp.log(1 + s.sp.exp(-x)), sympy_levels=4,
                   latex=r"\log\sigma")
# silu'(x) = s(x) + x s(x) s(-x) = s(x) + out s(-x)
Silu = unary("silu", kernels.scalar_silu,
             lambda x, out, g: g * (sigmoid(x) + out * sigmoid(-x)),
             "x sigmoid(x) (swish); derivative sigmoid(x) + x sigmoid(x) sigmoid(-x)",
             lowering=lambda x: Infix("*", x, Call("sigmoid", (x,))),
             sympy=lambda s, x: x / (1 + s.sp.exp(-x)), sympy_levels=4)

sinh, cosh, arcsin, arccos, arctan = Sinh(), Cosh(), Arcsin(), Arccos(), Arctan()
arcsinh, arccosh, arctanh, erf, erfc = Arcsinh(), Arccosh(), Arctanh(), Erf(), Erfc()
reciprocal, log_sigmoid, silu = Reciprocal(), LogSigmoid(), Silu()


class Elu(Op):
    """``elu(x, alpha)`` = x for x > 0, alpha (e^x - 1) otherwise (Clevert et al. 2015);
    derivative 1 for x > 0 and alpha e^x for x <= 0, so elu'(0) = alpha (as PyTorch and JAX).
    The lowering takes expm1 of min(x, 0): the branch not chosen never overflows."""

    name = "elu"
    sympy_levels, sympy_copies = 3, 3

    def __init__(self, alpha=1.0):
        super().__init__(alpha=float_param(alpha, "elu", "alpha"))

    def sympy_form(self, s, x):
        x = s.number(x)
        return s.piecewise((x, s.sp.Gt(x, 0)),
                           (s.float(self.alpha) * (s.sp.exp(x) - 1), s.sp.true))

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)  # elementwise: vmap broadcasts

    def infer(self, x):
        return x.shape, float_dtype(x.dtype)

    scalar = staticmethod(kernels.scalar_elu)

    def lower(self, x):
        negative_part = Infix("*", self.alpha, Call("expm1", (Call("minimum", (x, 0.0)),)))
        return Call("where", (Infix(">", x, 0), x, negative_part))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # d/dx alpha (e^x - 1) = alpha e^x, the left branch at x = 0 too
        return [where(x > 0, g, g * (self.alpha * exp(x)))]

    def jvp(self, inputs, out, tangents):
        return self.bprop(inputs, out, tangents[0])[0]


def elu(x, alpha=1.0) -> Expr:
    """Exponential linear unit: x for x > 0, alpha (e^x - 1) otherwise."""
    return apply(Elu(alpha), (as_expr(x),))


_GELU_C = math.sqrt(2 / math.pi)
_GELU_K = 0.044715


class Gelu(Op):
    """``gelu(x)`` = x Phi(x), Phi the standard normal CDF (Hendrycks and Gimpel 2016),
    computed as 0.5 x erfc(-x/sqrt 2); derivative Phi(x) + x phi(x), phi(x) =
    e^(-x^2/2)/sqrt(2 pi). ``approximate=True``: the tanh form 0.5 x (1 + tanh(u)),
    u = sqrt(2/pi) (x + 0.044715 x^3), written x sigmoid(2u) (as PyTorch's
    ``approximate="tanh"``); derivative sigmoid(2u) + x sigmoid(2u) sigmoid(-2u) 2u'."""

    name = "gelu"
    sympy_levels, sympy_copies = 4, 2

    def __init__(self, approximate=False):
        super().__init__(approximate=bool_param(approximate, "gelu", "approximate"))

    def sympy_form(self, s, x):
        x, sp = s.number(x), s.sp
        if self.approximate:
            u = sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 1000000) * x ** 3)
            return x * (1 + sp.tanh(u)) / 2
        return x * (1 + sp.erf(x / sp.sqrt(2))) / 2

    def batch(self, inputs, batched):
        return batch_elementwise(self, inputs, batched)  # elementwise: vmap broadcasts

    def infer(self, x):
        return x.shape, float_dtype(x.dtype)

    scalar = staticmethod(kernels.scalar_gelu)

    def lower(self, x):
        return Call("gelu", (x,), (("approximate", self.approximate),))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        if self.approximate:
            two_u = (2 * _GELU_C) * (x + _GELU_K * (x * square(x)))
            s = sigmoid(two_u)
            du = (2 * _GELU_C) * (1 + (3 * _GELU_K) * square(x))
            return [g * (s + x * (s * sigmoid(-two_u)) * du)]
        phi = _INV_SQRT_2PI * exp(-0.5 * square(x))
        return [g * (0.5 * erfc(-_SQRT_HALF * x) + x * phi)]

    def jvp(self, inputs, out, tangents):
        return self.bprop(inputs, out, tangents[0])[0]


def gelu(x, approximate=False) -> Expr:
    """Gaussian error linear unit x Phi(x); ``approximate=True`` for the tanh form."""
    return apply(Gelu(approximate), (as_expr(x),))


# ---------------------------------------------------------------------------------------------
# more binary functions: logaddexp, arctan2, mod
# ---------------------------------------------------------------------------------------------
class Logaddexp(Binary):
    """log(e^a + e^b), computed stably by NumPy's logaddexp; gradients g sigmoid(a - b) and
    g sigmoid(b - a) (the softmax of the pair), so the second derivative at a == b is
    sigmoid'(0) = 1/4, not a 0/0."""

    name, lowering, commutative = "logaddexp", "logaddexp", True
    scalar = staticmethod(kernels.scalar_logaddexp)
    callable_by_name = True
    sympy = staticmethod(lambda s, a, b: s.sp.log(s.sp.exp(a) + s.sp.exp(b)))
    sympy_levels = 3

    def result_dtype(self, a, b):
        return float_dtype(np.result_type(a.dtype, b.dtype))

    def bprop(self, inputs, out, g):
        a, b = inputs
        return [g * sigmoid(a - b), g * sigmoid(b - a)]


class Arctan2(Binary):
    """The angle of the point (x, y), in (-pi, pi]: ``arctan2(y, x)`` as NumPy; gradients
    g x/(x^2 + y^2) to y and -g y/(x^2 + y^2) to x (undefined at the origin)."""

    name, lowering = "arctan2", "arctan2"
    scalar = staticmethod(math.atan2)
    callable_by_name = True
    sympy = "atan2"

    def result_dtype(self, a, b):
        return float_dtype(np.result_type(a.dtype, b.dtype))

    def bprop(self, inputs, out, g):
        y, x = inputs
        scale = g / (square(x) + square(y))
        return [scale * x, -(scale * y)]


class Mod(Binary):
    """a mod b, the remainder with the sign of the divisor (Python's and NumPy's ``%``):
    a - floor(a/b) b. Gradients g to a and -g floor(a/b) to b (the quotient is locally
    constant; at the jumps, where a/b is an integer, these are the one-sided derivatives)."""

    name, symbol, precedence = "mod", "%", PREC_MUL
    callable_by_name = True
    numpy_names = ("remainder",)  # np.remainder, np.mod and ndarray % Expr (ops/dispatch.py)
    sympy = "Mod"

    def latex_form(self, inputs, parts):
        return (f"{latex_group(parts[0], PREC_MUL)} \\bmod {latex_group(parts[1], PREC_ATOM)}",
                PREC_MUL)

    def result_dtype(self, a, b):
        if a.dtype == bool and b.dtype == bool:
            raise DTypeError("mod: both operands are boolean masks")
        return np.result_type(a.dtype, b.dtype)

    def bprop(self, inputs, out, g):
        a, b = inputs
        # a mod b = a - floor(a/b) b; the floor is a constant to differentiation
        quotient = stop_gradient(floor(a / b))
        return [g, -(g * quotient)]


def logaddexp(a, b) -> Expr:
    """log(e^a + e^b) elementwise, without overflow."""
    return apply(Logaddexp(), _pair(a, b))


def arctan2(y, x) -> Expr:
    """Elementwise angle of (x, y) in (-pi, pi], as ``np.arctan2(y, x)``."""
    return apply(Arctan2(), _pair(y, x))


def mod(a, b) -> Expr:
    """a mod b with the sign of b, as ``np.mod`` and Python's ``%``."""
    return apply(Mod(), _pair(a, b))
