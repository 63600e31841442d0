"""Algebraic simplification. Each rule is headed by the identity it applies; a rule returns a
replacement node of the same shape and dtype, or None. Rules match op classes.

Every rule keeps the IEEE result for every input: ``x * 0 = 0`` fails for x = inf or nan, so it
applies only where x is a known finite constant or an integer; ``c1 (c2 x) = (c1 c2) x`` can
overflow or round differently (``1e200 (1e200 x)`` at 1e-300 is 1e100, ``(1e200 1e200) x``
inf), so constants combine only where ``c2 x`` is exact (|c2| a power of two >= 1) and
``|c1| >= 1`` (then both sides overflow alike).
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr, apply, const
from .. import ops
from ..ops.elementwise import (Add, Binary, Compare, Divide, Maximum, Minimum, Multiply,
                               Negative, Power, Subtract)
from ..ops.linalg import Matmul
from ..ops.reduce import Sum
from ..ops.shape import BroadcastTo, Reshape
from .rules import is_op as _is, matches


def _const_equal(node: Expr, value) -> bool:
    return node.uniform is not None and node.uniform == value


def _same_type(new: Expr, old: Expr) -> Expr | None:
    """``new`` if it can stand for ``old`` (same shape and dtype), else None."""
    return new if new.shape == old.shape and new.dtype == old.dtype else None


@matches(Multiply)
def mul_by_one(node: Expr):
    # x * 1 = 1 * x = x
    if _is(node, Multiply):
        a, b = node.inputs
        if _const_equal(b, 1):
            return _same_type(a, node)
        if _const_equal(a, 1):
            return _same_type(b, node)
    return None


@matches(Multiply)
def mul_by_zero(node: Expr):
    # x * 0 = 0 * x = 0, for x a known finite constant or an integer (inf * 0 and nan * 0 are
    # nan, and -1.0 * 0 is -0.0: a float x is kept unless it is a constant without those)
    if not _is(node, Multiply):
        return None
    a, b = node.inputs
    for zero, x in ((a, b), (b, a)):
        if _const_equal(zero, 0) and _times_zero_is_zero(x, zero):
            return const(np.zeros(node.shape, node.dtype)) if node.size <= 64 else \
                ops.broadcast_to(const(np.zeros((), node.dtype)), node.shape)
    return None


def _times_zero_is_zero(x: Expr, zero: Expr) -> bool:
    """True when ``x * zero`` is +0 everywhere: integers, or a finite non-negative constant x
    times +0 (a negative x or a -0.0 would give -0.0)."""
    if x.dtype.kind in "biu" and zero.dtype.kind in "biu":
        return True
    if not x.is_const or np.signbit(zero.value).any():
        return False
    values = np.asarray(x.value, dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and not np.any(np.signbit(values)))


@matches(Add, Subtract)
def add_zero(node: Expr):
    # x + 0 = 0 + x = x - 0 = x
    if _is(node, Add) or _is(node, Subtract):
        a, b = node.inputs
        if _const_equal(b, 0):
            return _same_type(a, node)
        if _is(node, Add) and _const_equal(a, 0):
            return _same_type(b, node)
    return None


@matches(Negative)
def double_negation(node: Expr):
    # -(-x) = x
    if _is(node, Negative) and _is(node.inputs[0], Negative):
        return node.inputs[0].inputs[0]
    return None


@matches(Negative)
def negation_of_negated_product(node: Expr):
    # -((-a) * b) = -(b * (-a)) = a * b: negation flips the sign bit and rounding is symmetric,
    # so (-a) * b is exactly -(a * b) (nan and inf included)
    if not (_is(node, Negative) and _is(node.inputs[0], Multiply)):
        return None
    left, right = node.inputs[0].inputs
    if _is(left, Negative):
        return _same_type(ops.multiply(left.inputs[0], right), node)
    if _is(right, Negative):
        return _same_type(ops.multiply(left, right.inputs[0]), node)
    return None


@matches(Add, Subtract)
def sub_of_negative(node: Expr):
    # a - (-b) = a + b;  a + (-b) = a - b
    if _is(node, Subtract) and _is(node.inputs[1], Negative):
        return _same_type(node.inputs[0] + node.inputs[1].inputs[0], node)
    if _is(node, Add) and _is(node.inputs[1], Negative):
        return _same_type(node.inputs[0] - node.inputs[1].inputs[0], node)
    return None


@matches(Multiply)
def square_of_self(node: Expr):
    # x * x = square(x)
    if _is(node, Multiply) and node.inputs[0] is node.inputs[1]:
        return ops.square(node.inputs[0])
    return None


@matches(Add, Subtract, Multiply, Divide, Power, Maximum, Minimum)
def broadcast_into_elementwise(node: Expr):
    # f(broadcast_to(a, s), b) = f(a, b) when broadcasting a with b already gives s
    if not isinstance(node.op, Binary) or isinstance(node.op, Compare):
        return None
    a, b = node.inputs
    if _is(a, BroadcastTo):
        a = a.inputs[0]
    if _is(b, BroadcastTo):
        b = b.inputs[0]
    if a is node.inputs[0] and b is node.inputs[1]:
        return None
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        return None
    return apply(node.op, (a, b)) if shape == node.shape else None


@matches(Sum)
def sum_of_broadcast(node: Expr):
    # sum(broadcast_to(x, s)) over all axes = sum(x) * (size(s) / size(x))
    if _is(node, Sum) and node.op.axis is None and not node.op.keepdims \
            and _is(node.inputs[0], BroadcastTo):
        inner = node.inputs[0].inputs[0]
        factor = node.inputs[0].size // max(inner.size, 1)
        return _same_type(ops.sum(inner) * const(np.array(factor, node.dtype)), node)
    return None


@matches(Reshape)
def reshape_of_scalar_broadcast(node: Expr):
    # reshape(broadcast_to(c, s1), s2) = broadcast_to(c, s2) for a 0-d c
    if _is(node, Reshape) and _is(node.inputs[0], BroadcastTo) \
            and node.inputs[0].inputs[0].shape == ():
        return ops.broadcast_to(node.inputs[0].inputs[0], node.shape)
    return None


@matches(BroadcastTo)
def broadcast_of_unit_const(node: Expr):
    # broadcast_to(c, s) with c a constant holding one value = broadcast_to(c.item(), s)
    if _is(node, BroadcastTo) and node.inputs[0].is_const and node.inputs[0].size == 1 \
            and node.inputs[0].shape != ():
        return ops.broadcast_to(const(node.inputs[0].value.reshape(())), node.shape)
    return None


@matches(Multiply)
def scale_of_scale(node: Expr):
    # c1 * (c2 * x) = (c1 c2) * x for constants c1, c2 whose product does not change the shape,
    # where it is exact for every x (see _exact_scale)
    if not _is(node, Multiply):
        return None
    a, b = node.inputs
    if b.is_const and not a.is_const:
        a, b = b, a
    if not (a.is_const and _is(b, Multiply)):
        return None
    inner_a, inner_b = b.inputs
    c, x = (inner_a, inner_b) if inner_a.is_const else (inner_b, inner_a)
    if not c.is_const or x.is_const or not _exact_scale(a, c, node.dtype):
        return None
    product = const((a.value * c.value).astype(node.dtype))
    return _same_type(ops.multiply(product, x), node)


def _exact_scale(outer: Expr, inner: Expr, dtype) -> bool:
    """True when ``outer * (inner * x) == (outer inner) * x`` for every x. Integers: always
    (wrap-around multiplication is associative). Floats: when ``inner * x`` is exact or
    overflows (every |inner| a power of two >= 1, or 0), every |outer| >= 1 and finite (so
    an overflow of ``inner * x`` is one of the product too), and the product is finite."""
    if np.dtype(dtype).kind in "biu":
        return True
    if np.dtype(dtype).kind != "f":
        return False
    c1 = np.asarray(outer.value, dtype=dtype)
    c2 = np.asarray(inner.value, dtype=dtype)
    mantissa, exponent = np.frexp(c2)  # |c2| = |mantissa| 2^exponent, |mantissa| in [0.5, 1)
    inner_exact = np.all((c2 == 0) | ((np.abs(mantissa) == 0.5) & (exponent >= 1)))
    with np.errstate(over="ignore", invalid="ignore"):
        product = c1 * c2
    return bool(inner_exact and np.all(np.isfinite(c1)) and np.all(np.abs(c1) >= 1)
                and np.all(np.isfinite(product)))


def _flops(n: int, k: int, m: int) -> int:
    return n * k * m


@matches(Matmul)
def matmul_chain(node: Expr):
    # (A B) C = A (B C): pick the association with fewer multiply-adds (2-D operands; A may
    # carry leading batch axes, as a batched Jacobian's seeds do, when B and C are matrices)
    if not _is(node, Matmul) or node.inputs[1].ndim != 2 or node.inputs[0].ndim < 2:
        return None
    left, right = node.inputs
    if _is(left, Matmul) and left.inputs[0].ndim >= 2 and left.inputs[1].ndim == 2:
        a, b = left.inputs
        c = right
        batch = int(np.prod(a.shape[:-2], dtype=np.int64))
        rows = batch * a.shape[-2]
        now = _flops(rows, a.shape[-1], b.shape[1]) + _flops(rows, b.shape[1], c.shape[1])
        other = _flops(b.shape[0], b.shape[1], c.shape[1]) + _flops(rows, a.shape[-1],
                                                                     c.shape[1])
        if other < now:
            return ops.matmul(a, ops.matmul(b, c))
    if left.ndim != 2:
        return None
    if _is(right, Matmul) and all(i.ndim == 2 for i in right.inputs):
        a = left
        b, c = right.inputs
        now = _flops(b.shape[0], b.shape[1], c.shape[1]) + _flops(a.shape[0], a.shape[1],
                                                                   c.shape[1])
        other = _flops(a.shape[0], a.shape[1], b.shape[1]) + _flops(a.shape[0], b.shape[1],
                                                                     c.shape[1])
        if other < now:
            return ops.matmul(ops.matmul(a, b), c)
    return None


@matches(Matmul)
def matmul_of_scaled(node: Expr):
    # (a c) @ B = a @ (B c) = (a @ B) c for a scalar constant c with |c| a power of two:
    # scaling by 2^k commutes with every rounding of the product's terms and sums (short of
    # overflow or subnormals, the same caveat as re-associating a matmul chain). The product,
    # freed of the scale, may re-associate (matmul_chain); the scale then goes on the smallest
    # of its two factors and the result, where it costs the fewest multiplications
    if not _is(node, Matmul):
        return None
    for position in (0, 1):
        scaled = node.inputs[position]
        if not _is(scaled, Multiply):
            continue
        for k in (0, 1):
            c, x = scaled.inputs[k], scaled.inputs[1 - k]
            if c.is_const and c.size == 1 and c.ndim <= 1 and x.shape == scaled.shape \
                    and x.dtype == scaled.dtype and _power_of_two(c):
                pair = [node.inputs[0], node.inputs[1]]
                pair[position] = x
                inner = ops.matmul(*pair)
                chained = matmul_chain(inner)
                return _same_type(_place_scale(inner if chained is None else chained,
                                               const(c.value.reshape(()))), node)
    return None


def _place_scale(product: Expr, c: Expr) -> Expr:
    """``product * c`` with the scale on whichever of the product's two factors and its
    result is smallest."""
    left, right = product.inputs
    smallest = min((left.size, 0), (right.size, 1), (product.size, 2))[1]
    if smallest == 0 and _same_type(ops.multiply(left, c), left) is not None:
        return ops.matmul(ops.multiply(left, c), right)
    if smallest == 1 and _same_type(ops.multiply(right, c), right) is not None:
        return ops.matmul(left, ops.multiply(right, c))
    return ops.multiply(product, c)


def _power_of_two(c: Expr) -> bool:
    """True when the constant's one entry is +-2^k for an integer k >= 0."""
    if c.dtype.kind != "f":
        return False
    mantissa, exponent = np.frexp(np.asarray(c.value).reshape(()))
    return bool(abs(mantissa) == 0.5 and exponent >= 1)


SIMPLIFY_RULES = [mul_by_one, mul_by_zero, add_zero, double_negation, sub_of_negative,
                  square_of_self, broadcast_into_elementwise, sum_of_broadcast,
                  reshape_of_scalar_broadcast, broadcast_of_unit_const, scale_of_scale,
                  matmul_chain, negation_of_negated_product, matmul_of_scaled]
