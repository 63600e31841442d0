"""Neural-net units over an axis: softmax and log_softmax (both computed with the max
subtracted, so logits of +-1e3 neither overflow nor lose the answer).

``log softmax(z)_i = z_i - log sum_j exp(z_j)`` (Goodfellow 6.2.2.3).
"""
from __future__ import annotations

from ..errors import ShapeError
from ..graph import Expr, apply, as_expr
from .base import Op, check_axis_range, float_dtype, int_param, normalize_single_axis
from .elementwise import exp
from .lowering import Call
from .reduce import sum as reduce_sum


class Softmax(Op):
    """``s = exp(x) / sum(exp(x))`` along ``axis``; gradient ``s * (g - sum(g * s))``."""

    name = "softmax"

    def stable_log(self, node):
        # log(softmax(x, axis)) = log_softmax(x, axis)
        return log_softmax(node.inputs[0], axis=self.axis)
    sympy = staticmethod(lambda s, x: s.sp.S.One)  # softmax of one entry

    def __init__(self, axis=-1):
        super().__init__(axis=int_param(axis, self.name, "axis"))

    def infer(self, x):
        check_axis_range(self.axis, x.ndim, self.name, x.shape)
        if x.shape[self.axis] == 0:
            raise ShapeError(f"{self.name}: axis {self.axis} of shape {x.shape} is empty")
        return x.shape, float_dtype(x.dtype)

    def lower(self, x):
        return Call(self.name, (x,), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        # ds = s * (g - <g, s>) along the axis
        return [out * (g - reduce_sum(g * out, axis=self.axis, keepdims=True))]

    def batch(self, inputs, batched):
        return apply(type(self)(self.axis + 1), inputs)


class LogSoftmax(Softmax):
    """``x - logsumexp(x)`` along ``axis``; gradient ``g - softmax(x) * sum(g)`` with
    ``softmax(x) = exp(out)``."""

    name = "log_softmax"

    def stable_log(self, node):
        return None  # (not softmax's rule)
    sympy = staticmethod(lambda s, x: s.sp.S.Zero)

    def bprop(self, inputs, out, g):
        return [g - exp(out) * reduce_sum(g, axis=self.axis, keepdims=True)]


def softmax(x, axis=-1) -> Expr:
    """Softmax along ``axis`` (numerically stable)."""
    x = as_expr(x)
    return apply(Softmax(normalize_single_axis(axis, x.ndim, "softmax", x.shape)), (x,))


def log_softmax(x, axis=-1) -> Expr:
    """Log of the softmax along ``axis`` (numerically stable)."""
    x = as_expr(x)
    return apply(LogSoftmax(normalize_single_axis(axis, x.ndim, "log_softmax", x.shape)), (x,))
