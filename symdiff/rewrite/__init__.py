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

``optimize(..., trace=True)`` also returns a :class:`RewriteTrace`: every step (the rule's
name, the node before and after, in infix) and the node counts per pass, split into forward
nodes and the nodes build_grad added when the outputs hold a loss with its gradients
(Goodfellow Fig. 6.9's question: how big did the derivative get, and what did rewriting save).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import expect_bool
from ..graph import Expr, expect_exprs, rebuild, toposort
from ..grad import gradient_nodes
from ..printing import infix_short
from .fold import fold_constants
from .rules import RewriteStep, dispatch_table
from .simplify import SIMPLIFY_RULES
from .stable import STABLE_RULES

Rule = Callable[[Expr], "Expr | None"]
MAX_REWRITES_PER_NODE = 16


@dataclass
class RewriteTrace:
    """What ``optimize`` did: ``steps`` (RewriteStep, in the order they fired) and ``counts``
    (stage -> distinct nodes: ``forward``, ``gradient added``, ``total``, ``after fold``,
    ``after rewrites``)."""

    steps: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def __str__(self):
        lines = ["nodes: " + ", ".join(f"{stage} {n}" for stage, n in self.counts.items())]
        lines += [f"  {step}" for step in self.steps]
        return "\n".join(lines)


def apply_rules(outputs: Sequence[Expr], rules: Sequence[Rule],
                trace: list | None = None) -> list[Expr]:
    """Rebuild ``outputs`` bottom-up (graph.rebuild), applying to every node the first of
    ``rules`` for its op class that fires, until none fires. ``trace``, a list, receives a
    :class:`RewriteStep` for every rule that fired."""
    table = dispatch_table(rules)

    def first_rule(node: Expr):
        for rule in table.get(type(node.op), ()):
            replacement = rule(node)
            if replacement is not None and replacement is not node:
                if trace is not None:
                    name = getattr(rule, "step_name", None)
                    name = rule.__name__ if name is None else name(node)
                    trace.append(RewriteStep(name, infix_short(node), infix_short(replacement)))
                return replacement
        return None
    return rebuild(outputs, first_rule, MAX_REWRITES_PER_NODE)


def optimize(outputs, fold: bool = True, trace: bool = False):
    """The default pipeline: constant folding, then one bottom-up pass of the stable-form and
    simplification rules (rules fold the constants they combine themselves).

    Accepts one Expr or a list and returns the same form; with ``trace=True`` returns
    ``(result, RewriteTrace)``.

    >>> import symdiff as sd
    >>> a = sd.var("a")
    >>> str(sd.optimize(a * 1.0 + 0.0)), str(sd.optimize(sd.log(sd.sigmoid(a))))
    ('a', '-softplus(-a)')
    >>> _, steps = sd.optimize(sd.log(sd.sigmoid(a)), trace=True); print(steps)
    nodes: forward 3, gradient added 0, total 3, after fold 3, after rewrites 4
      log_of_sigmoid: log(sigmoid(a))  ->  -softplus(-a)
    """
    result, single = expect_exprs(outputs, "outputs", "optimize")
    expect_bool(fold, "fold", "optimize")
    expect_bool(trace, "trace", "optimize")
    record = RewriteTrace() if trace else None
    if record is not None:
        total = count_nodes(result)
        added = len(gradient_nodes(result))
        record.counts.update({"forward": total - added, "gradient added": added,
                              "total": total})
    if fold:
        result = fold_constants(result, None if record is None else record.steps)
    if record is not None:
        record.counts["after fold"] = count_nodes(result)
    result = apply_rules(result, STABLE_RULES + SIMPLIFY_RULES,
                         None if record is None else record.steps)
    if record is not None:
        record.counts["after rewrites"] = count_nodes(result)
    out = result[0] if single else result
    return (out, record) if trace else out


def stabilize(expr: Expr) -> Expr:
    """``expr`` with the numerically stable forms substituted (used by ``grad`` before it
    differentiates, so the gradient of ``log(sigmoid(x))`` is that of ``-softplus(-x)``)."""
    return apply_rules([expr], STABLE_RULES)[0]


def count_nodes(outputs) -> int:
    """Number of distinct nodes (ops, variables, constants) the outputs depend on."""
    return len(toposort([outputs] if isinstance(outputs, Expr) else list(outputs)))
