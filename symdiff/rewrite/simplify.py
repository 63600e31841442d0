"""Algebraic simplification. Each rule is headed by the identity it applies; a rule returns a
replacement node of the same shape and dtype, or None."""
from __future__ import annotations

import numpy as np

from ..graph import Expr, apply, const
from .. import ops
from ..ops.elementwise import Binary, Compare
from .rules import matches


def _is(node: Expr, name: str) -> bool:
    return node.op is not None and node.op.name == name


def _const_equal(node: Expr, value) -> bool:
    return node.uniform is not None and node.uniform == value


def _same_type(new: Expr, old: Expr) -> Expr | None:
    """``new`` if it can stand for ``old`` (same shape and dtype), else None."""
    return new if new.shape == old.shape and new.dtype == old.dtype else None


@matches("multiply")
def mul_by_one(node: Expr):
    # x * 1 = 1 * x = x
    if _is(node, "multiply"):
        a, b = node.inputs
        if _const_equal(b, 1):
            return _same_type(a, node)
        if _const_equal(a, 1):
            return _same_type(b, node)
    return None


@matches("multiply")
def mul_by_zero(node: Expr):
    # x * 0 = 0 (assumes x finite: a nan or inf in x no longer propagates)
    if _is(node, "multiply") and any(_const_equal(i, 0) for i in node.inputs):
        return const(np.zeros(node.shape, node.dtype)) if node.size <= 64 else \
            ops.broadcast_to(const(np.zeros((), node.dtype)), node.shape)
    return None


@matches("add", "subtract")
def add_zero(node: Expr):
    # x + 0 = 0 + x = x - 0 = x
    if _is(node, "add") or _is(node, "subtract"):
        a, b = node.inputs
        if _const_equal(b, 0):
            return _same_type(a, node)
        if _is(node, "add") and _const_equal(a, 0):
            return _same_type(b, node)
    return None


@matches("negative")
def double_negation(node: Expr):
    # -(-x) = x
    if _is(node, "negative") and _is(node.inputs[0], "negative"):
        return node.inputs[0].inputs[0]
    return None


@matches("add", "subtract")
def sub_of_negative(node: Expr):
    # a - (-b) = a + b;  a + (-b) = a - b
    if _is(node, "subtract") and _is(node.inputs[1], "negative"):
        return _same_type(node.inputs[0] + node.inputs[1].inputs[0], node)
    if _is(node, "add") and _is(node.inputs[1], "negative"):
        return _same_type(node.inputs[0] - node.inputs[1].inputs[0], node)
    return None


@matches("multiply")
def square_of_self(node: Expr):
    # x * x = square(x)
    if _is(node, "multiply") and node.inputs[0] is node.inputs[1]:
        return ops.square(node.inputs[0])
    return None


@matches("add", "subtract", "multiply", "divide", "power", "maximum", "minimum")
def broadcast_into_elementwise(node: Expr):
    # f(broadcast_to(a, s), b) = f(a, b) when broadcasting a with b already gives s
    if not isinstance(node.op, Binary) or isinstance(node.op, Compare):
        return None
    a, b = node.inputs
    if _is(a, "broadcast_to"):
        a = a.inputs[0]
    if _is(b, "broadcast_to"):
        b = b.inputs[0]
    if a is node.inputs[0] and b is node.inputs[1]:
        return None
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        return None
    return apply(node.op, (a, b)) if shape == node.shape else None


@matches("sum")
def sum_of_broadcast(node: Expr):
    # sum(broadcast_to(x, s)) over all axes = sum(x) * (size(s) / size(x))
    if _is(node, "sum") and node.op.axis is None and not node.op.keepdims \
            and _is(node.inputs[0], "broadcast_to"):
        inner = node.inputs[0].inputs[0]
        factor = node.inputs[0].size // max(inner.size, 1)
        return _same_type(ops.sum(inner) * const(np.array(factor, node.dtype)), node)
    return None


@matches("reshape")
def reshape_of_scalar_broadcast(node: Expr):
    # reshape(broadcast_to(c, s1), s2) = broadcast_to(c, s2) for a 0-d c
    if _is(node, "reshape") and _is(node.inputs[0], "broadcast_to") \
            and node.inputs[0].inputs[0].shape == ():
        return ops.broadcast_to(node.inputs[0].inputs[0], node.shape)
    return None


@matches("broadcast_to")
def broadcast_of_unit_const(node: Expr):
    # broadcast_to(c, s) with c a constant holding one value = broadcast_to(c.item(), s)
    if _is(node, "broadcast_to") and node.inputs[0].is_const and node.inputs[0].size == 1 \
            and node.inputs[0].shape != ():
        return ops.broadcast_to(const(node.inputs[0].value.reshape(())), node.shape)
    return None


@matches("multiply")
def scale_of_scale(node: Expr):
    # c1 * (c2 * x) = (c1 c2) * x for constants c1, c2 whose product does not change the shape
    if not _is(node, "multiply"):
        return None
    a, b = node.inputs
    if b.is_const and not a.is_const:
        a, b = b, a
    if not (a.is_const and _is(b, "multiply")):
        return None
    inner_a, inner_b = b.inputs
    c, x = (inner_a, inner_b) if inner_a.is_const else (inner_b, inner_a)
    if not c.is_const or x.is_const:
        return None
    product = const((a.value * c.value).astype(node.dtype))
    return _same_type(ops.multiply(product, x), node)


def _flops(n: int, k: int, m: int) -> int:
    return n * k * m


@matches("matmul")
def matmul_chain(node: Expr):
    # (A B) C = A (B C): pick the association with fewer multiply-adds (2-D operands)
    if not _is(node, "matmul") or any(i.ndim != 2 for i in node.inputs):
        return None
    left, right = node.inputs
    if _is(left, "matmul") and all(i.ndim == 2 for i in left.inputs):
        a, b = left.inputs
        c = right
        now = _flops(a.shape[0], a.shape[1], b.shape[1]) + _flops(a.shape[0], b.shape[1],
                                                                   c.shape[1])
        other = _flops(b.shape[0], b.shape[1], c.shape[1]) + _flops(a.shape[0], a.shape[1],
                                                                     c.shape[1])
        if other < now:
            return ops.matmul(a, ops.matmul(b, c))
    if _is(right, "matmul") and all(i.ndim == 2 for i in right.inputs):
        a = left
        b, c = right.inputs
        now = _flops(b.shape[0], b.shape[1], c.shape[1]) + _flops(a.shape[0], a.shape[1],
                                                                   c.shape[1])
        other = _flops(a.shape[0], a.shape[1], b.shape[1]) + _flops(a.shape[0], b.shape[1],
                                                                     c.shape[1])
        if other < now:
            return ops.matmul(ops.matmul(a, b), c)
    return None


SIMPLIFY_RULES = [mul_by_one, mul_by_zero, add_zero, double_negation, sub_of_negative,
                  square_of_self, broadcast_into_elementwise, sum_of_broadcast,
                  reshape_of_scalar_broadcast, broadcast_of_unit_const, scale_of_scale,
                  matmul_chain]
