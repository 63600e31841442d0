"""How rules declare the ops they rewrite, so ``apply_rules`` tries each node only against
the rules for its op class (a dispatch table on the class, as PyTensor's node rewriters and
SymPy's ``_print_<Class>`` dispatch, not a scan of every rule and not op-name strings).

Dispatch is on the exact class: a subclass is another op (``Mean`` is not ``Sum``,
``LogSoftmax`` is not ``Softmax``) and is named by the rules that apply to it.
"""
from __future__ import annotations

from dataclasses import dataclass


def matches(*op_classes: type):
    """Decorator: the rule applies to nodes whose op is an instance of exactly one of
    ``op_classes``."""
    def mark(rule):
        rule.op_classes = op_classes
        return rule
    return mark


def dispatch_table(rules) -> dict[type, list]:
    """op class -> the rules that match it, in the given order."""
    table: dict[type, list] = {}
    for rule in rules:
        for cls in rule.op_classes:
            table.setdefault(cls, []).append(rule)
    return table


def is_op(node, op_class: type) -> bool:
    """True when ``node`` applies exactly ``op_class`` (not a subclass)."""
    return node.op is not None and type(node.op) is op_class


@dataclass
class RewriteStep:
    """One rewrite: the rule (or pass) that fired, the node before and after, as infix."""

    rule: str
    before: str
    after: str

    def __str__(self):
        return f"{self.rule}: {self.before}  ->  {self.after}"
