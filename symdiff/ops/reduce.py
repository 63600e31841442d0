"""Reductions: sum mean max min prod logsumexp norm argmax, with ``axis`` and ``keepdims``.

Each bprop first restores the reduced axes of the upstream gradient (``_expand``: a reshape that
re-inserts them with size 1) and then broadcasts against the input, so every reduction shares one
way of undoing its shape change. ``mean`` reuses the bprop of ``sum``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, expect_bool
from ..graph import Expr, apply, as_expr, const
from ..printing import PREC_MUL, latex_escape, latex_group
from .base import (Op, axes_param, bool_param, check_axis_range, float_dtype, int_param,
                   normalize_axis)
from .kernels import scalar_identity
from .lowering import Call
from .elementwise import equal, exp, stop_gradient, where
from .shape import broadcast_to, reshape


def _kept_shape(shape: tuple, axes: tuple | None) -> tuple:
    """``shape`` with the reduced ``axes`` kept as size 1 (keepdims=True)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


class Reduce(Op):
    """A reduction over ``axis`` (normalized: sorted tuple or None for all)."""

    lowering = ""  # the namespace function
    keep_dtype = True
    scalar = staticmethod(scalar_identity)  # reducing a 0-d value leaves it

    def __init__(self, axis=None, keepdims=False):
        super().__init__(axis=axes_param(axis, self.name),
                         keepdims=bool_param(keepdims, self.name, "keepdims"))

    needs_entries = False  # True: no identity (max, min, logsumexp), so no empty reduction
    sympy = staticmethod(lambda s, x: x)  # the reduction of one number (a scalar graph)

    def infer(self, x):
        for axis in self.axis or ():
            check_axis_range(axis, x.ndim, self.name, x.shape)
        if self.needs_entries:
            axes = range(x.ndim) if self.axis is None else self.axis
            if any(x.shape[a] == 0 for a in axes) or (x.size == 0 and x.ndim == 0):
                raise ShapeError(f"{self.name}: reduction over a zero-size axis of shape "
                                 f"{x.shape} has no identity")
        kept = _kept_shape(x.shape, self.axis)
        if self.keepdims:
            shape = kept
        else:
            axes = range(x.ndim) if self.axis is None else self.axis
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return shape, self.result_dtype(x.dtype)

    def result_dtype(self, dtype):
        if self.keep_dtype:
            return np.dtype(dtype)
        return float_dtype(dtype)

    def lower(self, x):
        return Call(self.lowering, (x,), (("axis", self.axis), ("keepdims", self.keepdims)))

    def _expand(self, e: Expr, x: Expr) -> Expr:
        """The reduced-shape node ``e`` (out or g) reshaped to keep the reduced axes as 1."""
        return reshape(e, _kept_shape(x.shape, self.axis))

    def _spread(self, e: Expr, x: Expr) -> Expr:
        """``e`` broadcast back to the input's shape."""
        return broadcast_to(self._expand(e, x), x.shape)


class Sum(Reduce):
    """Sum over ``axis``; gradient: g broadcast back over the summed axes."""

    name, lowering = "sum", "sum"
    loop = "sum"  # folds into its input's loop as a running sum

    def stable_log(self, node):
        # log(sum(exp(x), axis)) = logsumexp(x, axis)
        inner = node.inputs[0]
        if isinstance(inner.op, type(exp)):
            return logsumexp(inner.inputs[0], axis=self.axis, keepdims=self.keepdims)
        return None

    def latex_form(self, inputs, parts):
        extra = self.params_text()
        under = f"_{{\\text{{{latex_escape(extra)}}}}}" if extra else ""
        return f"\\sum{under} {latex_group(parts[0])}", PREC_MUL

    def result_dtype(self, dtype):
        dtype = np.dtype(dtype)
        return np.dtype(np.int64) if dtype.kind in "biu" else dtype

    def bprop(self, inputs, out, g):
        return [self._spread(g, inputs[0])]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


class Mean(Sum):
    """Mean over ``axis``; gradient: the bprop of sum divided by the count."""

    name, lowering = "mean", "mean"
    loop = "mean"

    def stable_log(self, node):
        return None  # (not sum's rule)

    def latex_form(self, inputs, parts):
        return None  # the generic form, not the sum's

    def result_dtype(self, dtype):
        return float_dtype(dtype)

    def bprop(self, inputs, out, g):
        x = inputs[0]
        count = x.size // out.size if out.size else 1
        return [Sum.bprop(self, inputs, out, g / count)[0]]


class Max(Reduce):
    """Max over ``axis``; the gradient is routed to the maximal entries, split equally among
    ties (so max of a constant vector sends g/n to each)."""

    name, lowering, needs_entries, pairwise = "max", "max", True, "maximum"
    sympy_identity, latex = True, r"\max"

    def bprop(self, inputs, out, g):
        x = inputs[0]
        one = const(1, dtype=float_dtype(x.dtype))
        chosen = where(equal(x, self._expand(out, x)), one, 0)
        count = apply(Sum(self.axis, keepdims=True), (chosen,))
        return [chosen * (self._expand(g, x) / count)]


class Min(Max):
    """Min over ``axis``; gradient routed to the minimal entries, ties split equally."""

    name, lowering, latex, pairwise = "min", "min", r"\min", "minimum"


class Prod(Reduce):
    """Product over ``axis``; gradient g * out / x (assumes no zero entries in x)."""

    name, lowering = "prod", "prod"

    def result_dtype(self, dtype):
        return Sum.result_dtype(self, dtype)

    def bprop(self, inputs, out, g):
        x = inputs[0]
        return [self._expand(g * out, x) / x]


class Logsumexp(Reduce):
    """log(sum(exp(x))) over ``axis``, computed with the max subtracted (never overflows);
    gradient g * softmax(x), the softmax also computed with the max m subtracted:
    e^(x - m) / sum(e^(x - m)). (exp(x - out) loses the answer where out rounds: at logits
    [1e15, 1e15] it gives 0.472 for 0.5.)"""

    name, lowering, keep_dtype, needs_entries = "logsumexp", "logsumexp", False, True

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # softmax is invariant to the shift m, so m is a constant to later differentiation
        top = stop_gradient(apply(Max(self.axis, keepdims=True), (x,)))
        e = exp(x - top)
        softmax = e / apply(Sum(self.axis, keepdims=True), (e,))
        return [self._expand(g, x) * softmax]


class Norm(Reduce):
    """L2 norm sqrt(sum(x^2)) over ``axis`` (all entries by default: the Frobenius norm of a
    matrix), computed scaled by max|x| (kernels.norm), so entries from 1e-308 to 1e308 neither
    underflow nor overflow; gradient g x / out (undefined at x = 0, where it gives nan)."""

    name, keep_dtype = "norm", False
    sympy = "Abs"  # the L2 norm of one number

    scalar = staticmethod(abs)

    def lower(self, x):
        # the scaled kernel (ops/kernels.py norm): no underflow below 1e-154, no overflow above
        return Call("norm", (x,), (("axis", self.axis), ("keepdims", self.keepdims)))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # d|x|/dx = x / |x|, divided first: x / out is near 1 even where 1 / out overflows
        return [self._expand(g, x) * (x / self._expand(out, x))]


class Argmax(Op):
    """Index of the maximum (flattened when ``axis`` is None), as NumPy; no gradient."""

    name = "argmax"
    differentiable = False
    sympy = staticmethod(lambda s, x: s.sp.S.Zero)  # the index of the only entry

    def __init__(self, axis=None):
        super().__init__(axis=None if axis is None else int_param(axis, "argmax", "axis"))

    def infer(self, x):
        if self.axis is not None:
            check_axis_range(self.axis, x.ndim, "argmax", x.shape)
        if x.size == 0:
            raise ShapeError(f"argmax: no entries in shape {x.shape}")
        if self.axis is None:
            return (), np.dtype(np.int64)
        return x.shape[:self.axis] + x.shape[self.axis + 1:], np.dtype(np.int64)

    def lower(self, x):
        return Call("argmax", (x,), (("axis", self.axis),))


def _reduction(cls):
    def reduce(x, axis=None, keepdims=False) -> Expr:
        x = as_expr(x)
        axes = normalize_axis(axis, x.ndim, cls.name, x.shape)
        return apply(cls(axes, expect_bool(keepdims, "keepdims", cls.name)), (x,))
    reduce.__name__ = reduce.__qualname__ = cls.name
    reduce.__doc__ = f"{cls.__doc__}\n\n``{cls.name}(x, axis=None, keepdims=False)``"
    return reduce


sum = _reduction(Sum)  # noqa: A001 (API name)
mean = _reduction(Mean)
max = _reduction(Max)  # noqa: A001
min = _reduction(Min)  # noqa: A001
prod = _reduction(Prod)
logsumexp = _reduction(Logsumexp)


def norm(x, axis=None, keepdims=False) -> Expr:
    """L2 norm (Frobenius for a matrix when ``axis`` is None)."""
    x = as_expr(x)
    keepdims = expect_bool(keepdims, "keepdims", "norm")
    return apply(Norm(normalize_axis(axis, x.ndim, "norm", x.shape), keepdims), (x,))


def argmax(x, axis=None) -> Expr:
    """Index of the largest entry, as ``np.argmax``; no gradient."""
    x = as_expr(x)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, "argmax", x.shape)
        if len(axis) != 1:
            raise ShapeError("argmax: axis must be a single int or None")
        axis = axis[0]
    return apply(Argmax(axis), (x,))

