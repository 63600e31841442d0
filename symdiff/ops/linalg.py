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

    def gradient_form(self, inputs, names, position):
        # the forms of _vector_bprop and dA = G B^T, dB = A^T G, with G written delta
        a, b = names
        forms = {(1, 1): (f"delta {b}", f"delta {a}"),
                 (2, 1): (f"delta {b}^T", f"{a}^T delta"),
                 (1, 2): (f"{b} delta", f"{a} delta^T"),
                 (2, 2): (f"delta {b}^T", f"{a}^T delta")}
        pair = forms.get((inputs[0].ndim, inputs[1].ndim))
        return None if pair is None else pair[position]

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

    def batch(self, inputs, batched):
        """NumPy's matmul broadcasts leading axes, so a batched product is one matmul: a 1-D
        operand is promoted to a matrix, the batched operand gets unit axes after its batch
        axis up to the product's batch rank, and the promoted axis is dropped again. A batch
        of vectors times a fixed matrix is the single product ``X B`` (or ``X A^T``)."""
        a, b = inputs
        ba, bb = batched
        ra, rb = a.ndim - ba, b.ndim - bb  # the unbatched ranks
        # the identity seed (a Jacobian's rows e_i): e_i^T B is row i of B, so the batch of
        # all rows is B itself and (B e_j)_j is B^T (as rows); taken as that selection (equal
        # to the dense product wherever B is finite; where it is not, the selection keeps B's
        # inf or nan instead of spreading 0 * inf = nan over the column)
        if ba and not bb and ra == 1 and rb == 2 and _is_identity(a):
            return b
        if bb and not ba and rb == 1 and ra == 2 and _is_identity(b):
            return swap_last_two(a)
        if ba and not bb and ra == 1 and rb <= 2:
            return matmul(a, b)  # rows x_i: x_i B
        if bb and not ba and rb == 1 and ra == 2:
            return matmul(b, swap_last_two(a))  # A x_i as rows: x_i A^T
        if ra == 1:
            a = reshape(a, a.shape[:ba] + (1,) + a.shape[ba:])
        if rb == 1:
            b = reshape(b, b.shape + (1,))
        rank = max(ra, rb, 2) - 2  # the product's own batch rank
        if ba:
            a = reshape(a, a.shape[:1] + (1,) * (rank - (a.ndim - 3)) + a.shape[1:])
        if bb:
            b = reshape(b, b.shape[:1] + (1,) * (rank - (b.ndim - 3)) + b.shape[1:])
        out = matmul(a, b)
        if ra == 1:
            out = reshape(out, out.shape[:-2] + out.shape[-1:])
        if rb == 1:
            out = reshape(out, out.shape[:-1])
        return out


def _is_identity(e: Expr) -> bool:
    """True when ``e`` is a constant identity matrix."""
    value = e.value
    if value is None or value.ndim != 2 or value.shape[0] != value.shape[1]:
        return False
    return bool(np.count_nonzero(value) == value.shape[0] and np.all(np.diagonal(value) == 1))


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

    def batch(self, inputs, batched):
        # outer(a, b)[i, j] = a_i b_j: per batch entry, a column times a row
        a, b = inputs
        a = reshape(a, (a.shape[0], -1, 1) if batched[0] else (-1, 1))
        b = reshape(b, (b.shape[0], 1, -1) if batched[1] else (1, -1))
        return multiply(a, b)


def outer(a, b) -> Expr:
    """Outer product of two vectors (inputs are flattened, as NumPy)."""
    return apply(Outer(), (as_expr(a), as_expr(b)))
