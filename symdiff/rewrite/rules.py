"""How rules declare the ops they rewrite, so ``apply_rules`` tries each node only against
the rules for its op (a dispatch table, not a scan of every rule)."""
from __future__ import annotations


def matches(*op_names: str):
    """Decorator: the rule applies to nodes whose op has one of ``op_names``."""
    def mark(rule):
        rule.op_names = op_names
        return rule
    return mark


def dispatch_table(rules) -> dict[str, list]:
    """op name -> the rules that match it, in the given order."""
    table: dict[str, list] = {}
    for rule in rules:
        for name in rule.op_names:
            table.setdefault(name, []).append(rule)
    return table
