"""Numerically stable forms, as the ops state them: ``log(softmax(x)) = log_softmax(x)``
(Softmax), ``log(sigmoid(x)) = -softplus(-x)`` (Sigmoid), ``log(1 + exp(x)) = softplus(x)``
(Add), ``log1p(exp(x)) = softplus(x)`` (Exp), ``log(sum(exp(x))) = logsumexp(x)`` (Sum).

Each identity lives on the op whose log it rewrites (``Op.stable_log``, ``Op.stable_log1p``,
reached through ``Op.stable_form`` of log and log1p), so grad.py applies the same forms
before differentiating without importing this package; this module only collects them as a
rewrite rule for ``optimize``.
"""
from __future__ import annotations

from ..graph import Expr
from ..ops import REGISTRY, Op
from .rules import matches

_HAS_STABLE_FORM = tuple(cls for cls in REGISTRY.values() if cls.stable_form is not Op.stable_form)


@matches(*_HAS_STABLE_FORM)
def stable_form(node: Expr):
    # f(x) = the op's own stable form of f(x)
    return node.op.stable_form(node)


def _step_name(node: Expr) -> str:
    """The identity's name for a trace: ``log_of_sigmoid``, ``log1p_of_exp``."""
    inner = node.inputs[0] if node.inputs else None
    if inner is None or inner.op is None:
        return f"stable_{node.op.name}"
    return f"{node.op.name}_of_{inner.op.name}"


stable_form.step_name = _step_name
STABLE_RULES = [stable_form]
