"""Linear algebra: matmul (NumPy semantics, batched), dot (up to 2-D), outer.

The matmul bprop promotes 1-D operands to matrices (a row for the left, a column for the right),
applies the matrix rules ``dA = G B^T`` and ``dB = A^T G`` (Goodfellow 6.4: ``grad W = g h^T``),
then drops the promoted axis again; grad.py sums any broadcast batch axes back.
"""
from __future__ import annotations

import operator

import numpy as np

from ..errors import ShapeError, fmt_shape
from ..graph import Expr, apply, as_expr, broadcast_shapes
from ..printing import latex_group
from .base import PREC_MUL, Op
from .elementwise import multiply
from .lowering import Call, Infix
from .shape import reshape, swap_last_two


class Matmul(Op):
    """``a @ b`` as ``np.matmul``: 1-D operands are promoted, leading axes broadcast.
    Gradients: ``dA = G B^T``, ``dB = A^T G`` on the promoted operands."""

    name, symbol, precedence = "matmul", "@", PREC_MUL

    def multiply_adds(self, inputs, out):
        """size(out) x the contracted length (a BLAS call's work)."""
        return max(out.size, 1) * inputs[0].shape[-1]

    def latex_form(self, inputs, parts):
        factors = [latex_group(part, PREC_MUL) for part in parts]
        if inputs[0].ndim == 1:  # a vector on the left is a row: u^T h
            factors[0] = f"{latex_group(parts[0])}^\\top"
        return " ".join(factors), PREC_MUL

    def infer(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"{self.name}: scalar operand {fmt_shape(a.shape)} @ "
                             f"{fmt_shape(b.shape)}; use * for scaling")
        a2 = a.shape if a.ndim >= 2 else (1,) + a.shape
        b2 = b.shape if b.ndim >= 2 else b.shape + (1,)
        if a2[-1] != b2[-2]:
            raise ShapeError(f"{self.name}: cannot align {fmt_shape(a.shape)} with "
                             f"{fmt_shape(b.shape)} ({a2[-1]} != {b2[-2]})")
        try:
            batch = broadcast_shapes(a2[:-2], b2[:-2], opname=self.name)
        except ShapeError:
            raise ShapeError(f"{self.name}: the batch axes of {fmt_shape(a.shape)} and "
                             f"{fmt_shape(b.shape)} cannot be broadcast together") from None
        shape = batch + (a2[-2],) * (a.ndim >= 2) + (b2[-1],) * (b.ndim >= 2)
        return shape, np.result_type(a.dtype, b.dtype)

    def lower(self, a, b):
        return Infix("@", a, b)

    def bprop(self, inputs, out, g):
        a, b = inputs
        vector = _vector_bprop(a, b, g)
        if vector is not None:
            return vector
        a2 = a if a.ndim >= 2 else reshape(a, (1,) + a.shape)
        b2 = b if b.ndim >= 2 else reshape(b, b.shape + (1,))
        batch = out.shape[:len(out.shape) - (a.ndim >= 2) - (b.ndim >= 2)]
        g2 = reshape(g, batch + (a2.shape[-2], b2.shape[-1]))
        # dA = G B^T, dB = A^T G
        ga = matmul(g2, swap_last_two(b2))
        gb = matmul(swap_last_two(a2), g2)
        if a.ndim == 1:
            ga = reshape(ga, ga.shape[:-2] + a.shape)
        if b.ndim == 1:
            gb = reshape(gb, gb.shape[:-2] + b.shape)
        return [ga, gb]

    def jvp(self, inputs, out, tangents):
        a, b = inputs
        ta, tb = tangents
        if ta is None:
            return apply(self, (a, tb))
        left = apply(self, (ta, b))
        return left if tb is None else left + apply(self, (a, tb))


def _vector_bprop(a: Expr, b: Expr, g: Expr):
    """The textbook forms when an operand is a vector (CS224n: ``dS/dW = delta x^T``):
    ``u . h`` gives ``g h`` and ``g u``; ``W x`` gives ``outer(g, x)`` and ``W^T g``; ``x W``
    gives ``W g`` and ``outer(x, g)``. None for matrix-matrix and batched products."""
    if a.ndim == 1 and b.ndim == 1:
        return [g * b, g * a]
    if a.ndim == 2 and b.ndim == 1:
        return [outer(g, b), matmul(g, a)]
    if a.ndim == 1 and b.ndim == 2:
        return [matmul(b, g), outer(a, g)]
    return None


class Dot(Matmul):
    """``np.dot`` for operands of at most two dimensions (where it equals matmul); the same
    gradients as matmul."""

    name, symbol = "dot", None
    scalar = staticmethod(operator.mul)  # the dot of two 0-d values is their product
    sympy = staticmethod(lambda s, a, b: a * b)

    def infer(self, a, b):
        if a.ndim > 2 or b.ndim > 2:
            raise ShapeError(f"dot: operands {fmt_shape(a.shape)} and {fmt_shape(b.shape)} "
                             f"have more than 2 dimensions; use matmul")
        return super().infer(a, b)

    def lower(self, a, b):
        return Call("dot", (a, b))


def matmul(a, b) -> Expr:
    """Matrix product with NumPy's ``matmul`` semantics (batched, 1-D promoted)."""
    a, b = as_expr(a), as_expr(b)
    return apply(Matmul(), (a, b))


def dot(a, b) -> Expr:
    """``np.dot`` of 0-, 1- or 2-D operands (a 0-D operand scales the other)."""
    a, b = as_expr(a), as_expr(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return apply(Dot(), (a, b))


class Outer(Op):
    """``np.outer``: the flattened a times the flattened b, shape (a.size, b.size).
    Gradients: ``da = G b``, ``db = G^T a`` (reshaped back)."""

    name = "outer"

    def latex_form(self, inputs, parts):
        return f"{latex_group(parts[0])} {latex_group(parts[1])}^\\top", PREC_MUL

    def infer(self, a, b):
        return (a.size, b.size), np.result_type(a.dtype, b.dtype)

    def lower(self, a, b):
        return Call("outer", (a, b))

    def bprop(self, inputs, out, g):
        a, b = inputs
        return [reshape(matmul(g, reshape(b, (-1,))), a.shape),
                reshape(matmul(reshape(a, (-1,)), g), b.shape)]


def outer(a, b) -> Expr:
    """Outer product of two vectors (inputs are flattened, as NumPy)."""
    return apply(Outer(), (as_expr(a), as_expr(b)))
