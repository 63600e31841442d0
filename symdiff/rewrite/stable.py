"""Numerically stable forms. Each rule is headed by the identity it applies."""
from __future__ import annotations

import numpy as np

from ..graph import Expr
from .. import ops
from .rules import matches


def _is(node: Expr, name: str) -> bool:
    return node.op is not None and node.op.name == name


def _const_equal(node: Expr, value) -> bool:
    return node.uniform is not None and node.uniform == value


@matches("log")
def log_of_softmax(node: Expr):
    # log(softmax(x, axis)) = log_softmax(x, axis)
    if _is(node, "log") and _is(node.inputs[0], "softmax"):
        inner = node.inputs[0]
        return ops.log_softmax(inner.inputs[0], axis=inner.op.axis)
    return None


@matches("log")
def log_of_sigmoid(node: Expr):
    # log(sigmoid(x)) = -softplus(-x)
    if _is(node, "log") and _is(node.inputs[0], "sigmoid"):
        return -ops.softplus(-node.inputs[0].inputs[0])
    return None


@matches("log", "log1p")
def log_one_plus_exp(node: Expr):
    # log(1 + exp(x)) = softplus(x);  log1p(exp(x)) = softplus(x)
    if _is(node, "log1p") and _is(node.inputs[0], "exp"):
        return ops.softplus(node.inputs[0].inputs[0])
    if _is(node, "log") and _is(node.inputs[0], "add"):
        a, b = node.inputs[0].inputs
        for one, other in ((a, b), (b, a)):
            if _const_equal(one, 1) and _is(other, "exp") and other.shape == node.shape:
                return ops.softplus(other.inputs[0])
    return None


@matches("log")
def log_sum_exp(node: Expr):
    # log(sum(exp(x), axis)) = logsumexp(x, axis)
    if _is(node, "log") and _is(node.inputs[0], "sum") and _is(node.inputs[0].inputs[0], "exp"):
        total = node.inputs[0]
        return ops.logsumexp(total.inputs[0].inputs[0], axis=total.op.axis,
                             keepdims=total.op.keepdims)
    return None


STABLE_RULES = [log_of_softmax, log_of_sigmoid, log_one_plus_exp, log_sum_exp]
