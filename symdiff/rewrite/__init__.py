"""Graph rewrites run before lowering: ``optimize(outputs) -> outputs``.

Passes, each small and named after what it does:
- ``simplify``: algebraic identities (``mul_by_one``, ``mul_by_zero``, ``double_negation``,
  ``square_of_self``, ``sum_of_broadcast``, ``broadcast_into_elementwise``, ...);
- ``stable``: numerically stable forms the ops state (log(softmax) -> log_softmax,
  log(sigmoid(x)) -> -softplus(-x), log(1 + exp(x)) -> softplus, log(sum(exp)) -> logsumexp);
- ``matmul_chain``: re-associate ``(A B) C`` / ``A (B C)`` by FLOP count;
- ``fold``: evaluate constant sub-graphs once (results no larger than their inputs).
Common-subexpression elimination needs no pass: nodes are interned, so a rewrite that builds a
node equal to an existing one gets that node. Dead code vanishes because lowering walks only the
ancestors of the outputs.

Rules are functions ``node -> replacement or None``, declared for op classes (``@matches``);
``apply_rules`` rebuilds the graph in topological order (iteratively), applying the rules for
each rebuilt node's class until none fires. Every rule keeps the IEEE result for every input
(nan and inf included), or applies only where its operands are known constants that make it so.
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..errors import expect_bool
from ..graph import Expr, expect_exprs, rebuild, toposort
from .fold import fold_constants
from .rules import dispatch_table
from .simplify import SIMPLIFY_RULES
from .stable import STABLE_RULES

Rule = Callable[[Expr], "Expr | None"]
MAX_REWRITES_PER_NODE = 16


def apply_rules(outputs: Sequence[Expr], rules: Sequence[Rule]) -> list[Expr]:
    """Rebuild ``outputs`` bottom-up (graph.rebuild), applying to every node the first of
    ``rules`` for its op class that fires, until none fires."""
    table = dispatch_table(rules)

    def first_rule(node: Expr):
        for rule in table.get(type(node.op), ()):
            replacement = rule(node)
            if replacement is not None and replacement is not node:
                return replacement
        return None
    return rebuild(outputs, first_rule, MAX_REWRITES_PER_NODE)


def optimize(outputs, fold: bool = True):
    """The default pipeline: constant folding, then one bottom-up pass of the stable-form and
    simplification rules (rules fold the constants they combine themselves).

    Accepts one Expr or a list and returns the same form.

    >>> import symdiff as sd
    >>> a = sd.var("a")
    >>> str(sd.optimize(a * 1.0 + 0.0)), str(sd.optimize(sd.log(sd.sigmoid(a))))
    ('a', '-softplus(-a)')
    """
    result, single = expect_exprs(outputs, "outputs", "optimize")
    expect_bool(fold, "fold", "optimize")
    if fold:
        result = fold_constants(result)
    result = apply_rules(result, STABLE_RULES + SIMPLIFY_RULES)
    return result[0] if single else result


def stabilize(expr: Expr) -> Expr:
    """``expr`` with the numerically stable forms substituted (used by ``grad`` before it
    differentiates, so the gradient of ``log(sigmoid(x))`` is that of ``-softplus(-x)``)."""
    return apply_rules([expr], STABLE_RULES)[0]


def count_nodes(outputs) -> int:
    """Number of distinct nodes (ops, variables, constants) the outputs depend on."""
    return len(toposort([outputs] if isinstance(outputs, Expr) else list(outputs)))
