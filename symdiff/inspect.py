"""Looking at graphs: infix text (``str``), a one-line-per-node listing (``pretty``) and Graphviz
DOT source (``to_dot``). Everything walks the topological order, never recursion.

Infix text expands shared nodes, which can blow up exponentially on a DAG, so ``infix`` stops
at a bounded tree size and says so; ``pretty`` lists each node once and scales to any size.
Nodes that build_grad added carry ``role == "grad"`` (and gradient results a ``label`` such as
``dJ/dW1``): ``pretty`` and ``to_dot`` tell them apart from the forward graph.
"""
from __future__ import annotations

import numpy as np

from .errors import fmt_shape
from .graph import Expr, toposort
from .ops.base import PREC_ATOM, PREC_POW, PREC_UNARY

INFIX_TREE_LIMIT = 3000  # expanded tree size beyond which str() summarizes


def _number(value: np.ndarray) -> str:
    return repr(value.item())


def const_text(node: Expr) -> str:
    """A constant as text: the number, a short list, or ``const(shape)``."""
    if node.shape == ():
        return _number(node.value)
    if node.size <= 6:
        return repr(node.value.tolist())
    return f"const{fmt_shape(node.shape)}"


def _tree_sizes(order):
    size: dict[int, int] = {}
    for node in order:
        size[id(node)] = min(INFIX_TREE_LIMIT + 1,
                             1 + sum(size[id(i)] for i in node.inputs))
    return size


def _call_text(node: Expr, args: list[str]) -> str:
    op = node.op
    extra = op.params_text()
    if op.name == "getitem":
        return f"{args[0]}{extra}"
    if op.name == "transpose" and node.inputs[0].ndim == 2:
        return f"{args[0]}.T"
    inner = ", ".join(args + ([extra] if extra else []))
    return f"{op.name}({inner})"


def infix(expr: Expr) -> str:
    """Python-style infix text of ``expr`` (what ``str`` returns)."""
    order = toposort([expr])
    if _tree_sizes(order)[id(expr)] > INFIX_TREE_LIMIT:
        return (f"<{expr.op.name if expr.op else 'node'} of shape {fmt_shape(expr.shape)}: "
                f"{len(order)} nodes, too large to print inline; see sd.pretty>")
    text: dict[int, tuple[str, int]] = {}
    for node in order:
        if node.is_var:
            text[id(node)] = (node.name, PREC_ATOM)
            continue
        if node.is_const:
            s = const_text(node)
            text[id(node)] = (s, PREC_ATOM if not s.startswith("-") else PREC_UNARY)
            continue
        op = node.op
        parts = [text[id(i)] for i in node.inputs]
        if op.symbol and len(parts) == 1:
            s, p = parts[0]
            inner = f"({s})" if p < op.precedence else s
            text[id(node)] = (f"{op.symbol}{inner}", op.precedence)
        elif op.symbol and len(parts) == 2:
            (ls, lp), (rs, rp) = parts
            prec = op.precedence
            left_paren = lp < prec or (prec == PREC_POW and lp == prec)
            right_paren = rp < prec or (rp == prec and prec != PREC_POW
                                        and op.name not in ("add", "multiply"))
            ls = f"({ls})" if left_paren else ls
            rs = f"({rs})" if right_paren else rs
            text[id(node)] = (f"{ls} {op.symbol} {rs}", prec)
        else:
            text[id(node)] = (_call_text(node, [s for s, _ in parts]), PREC_ATOM)
    return text[id(expr)][0]


def infix_short(expr: Expr, width: int = 80) -> str:
    s = infix(expr)
    return s if len(s) <= width else s[:width - 3] + "..."


def short_repr(expr: Expr) -> str:
    """``repr``: the kind of node, shape and dtype, and short infix text."""
    head = "var" if expr.is_var else "const" if expr.is_const else expr.op.name
    return f"<Expr {head} {fmt_shape(expr.shape)} {expr.dtype}: {infix_short(expr, 60)}>"


def repr_latex(expr: Expr):
    """LaTeX for Jupyter when the graph is scalar (through SymPy), else None."""
    if any(n.shape != () for n in toposort([expr])):
        return None
    try:
        import sympy
        from .sympy_io import to_sympy
        return "$" + sympy.latex(to_sympy(expr)) + "$"
    except Exception:  # display only: fall back to the plain repr
        return None


def _names(order) -> dict[int, str]:
    """SSA names: variables by name, constants c0.., other nodes t0.."""
    names: dict[int, str] = {}
    counters = {"c": 0, "t": 0}
    for node in order:
        if node.is_var:
            names[id(node)] = node.name
        else:
            kind = "c" if node.is_const else "t"
            names[id(node)] = f"{kind}{counters[kind]}"
            counters[kind] += 1
    return names


def pretty(*exprs: Expr) -> str:
    """One line per node in topological order: SSA name, op and inputs, shape and dtype;
    gradient nodes marked ``[grad]`` with the derivative they hold; outputs listed last."""
    order = toposort(exprs)
    names = _names(order)
    lines = []
    for node in order:
        name = names[id(node)]
        if node.is_var:
            rhs = "var"
        elif node.is_const:
            rhs = f"const {const_text(node)}"
        else:
            args = ", ".join(names[id(i)] for i in node.inputs)
            extra = node.op.params_text()
            rhs = f"{node.op.name}({args}{', ' + extra if extra else ''})"
        note = "  [grad]" if node.role == "grad" else ""
        if node.label:
            note += f" {node.label}"
        lines.append(f"{name:>6} = {rhs:<44} # {fmt_shape(node.shape)} {node.dtype}{note}")
    lines.append("return " + ", ".join(names[id(e)] for e in exprs))
    return "\n".join(lines)


def _dot_escape(text: str) -> str:
    """Quotes escaped for a DOT string (labels hold no other special characters)."""
    return text.replace('"', '\\"')


def to_dot(*exprs: Expr) -> str:
    """Graphviz DOT source: inputs as ellipses, constants as plain text, forward ops as boxes,
    gradient nodes (added by build_grad) in another colour, outputs with a double border."""
    order = toposort(exprs)
    names = _names(order)
    outputs = {id(e) for e in exprs}
    lines = ["digraph symdiff {", "  rankdir=BT;",
             '  node [fontname="Helvetica", fontsize=11];']
    for node in order:
        if node.is_var:
            label, style = node.name, 'shape=ellipse, style=filled, fillcolor="#dbe9f6"'
        elif node.is_const:
            label, style = const_text(node), "shape=plaintext"
        else:
            extra = node.op.params_text()
            label = node.op.name + (f"\\n{extra}" if extra else "")
            if node.role == "grad":
                style = 'shape=box, style="rounded,filled", fillcolor="#fde2c8", color="#d9822b"'
            else:
                style = 'shape=box, style="rounded,filled", fillcolor="#eeeeee"'
        if node.label:
            label += f"\\n{node.label}"
        if node.shape:
            label += f"\\n{fmt_shape(node.shape)}"
        if id(node) in outputs:
            style += ", peripheries=2"
        lines.append(f'  {names[id(node)]} [label="{_dot_escape(label)}", {style}];')
        for inp in node.inputs:
            edge = ' [color="#d9822b"]' if node.role == "grad" else ""
            lines.append(f"  {names[id(inp)]} -> {names[id(node)]}{edge};")
    lines.append("}")
    return "\n".join(lines)
