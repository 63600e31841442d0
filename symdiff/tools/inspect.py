"""Looking at graphs: infix text (``str``), a one-line-per-node listing (``pretty``), Graphviz
DOT source (``to_dot``) and LaTeX (``to_latex``). Everything walks the topological order, never
recursion.

Infix text expands shared nodes, which can blow up exponentially on a DAG, so ``infix`` stops at
a bounded tree size and says so, and ``bounded_infix`` truncates every node's text to a width in
one linear pass (used for comments in generated code). ``pretty`` lists each node once and scales
to any size. When a view is given a loss together with its gradients (grad.py's record of
which node is the gradient of which, never a mark on the shared nodes), ``pretty`` names the
gradients ``g_W1`` with ``dJ/dW1`` and marks the nodes only they need ``[grad]``, and ``to_dot``
draws those beside the forward graph in another colour, as in Goodfellow's Fig. 6.10.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import fmt_shape
from ..graph import Expr, expect_expr, toposort
from ..grad import gradient_labels, gradient_nodes
from ..ops.base import PREC_ATOM, PREC_MUL, PREC_POW, PREC_UNARY

INFIX_TREE_LIMIT = 3000  # expanded tree size beyond which str() summarizes


# ---------------------------------------------------------------------------------------------
# infix text
# ---------------------------------------------------------------------------------------------
def const_text(node: Expr) -> str:
    """A constant as text: the number, a short list, or ``const(shape)``."""
    if node.shape == ():
        return repr(node.value.item())
    if node.size <= 6:
        return repr(node.value.tolist())
    return f"const{fmt_shape(node.shape)}"


def _call_text(node: Expr, parts: list[tuple[str, int]]) -> str:
    op = node.op
    extra = op.params_text()
    args = [s for s, _ in parts]
    if op.name in ("getitem", "transpose") and parts:
        base, precedence = parts[0]
        base = base if precedence >= PREC_ATOM else f"({base})"  # (a + b)[0], (a @ b).T
        if op.name == "getitem":
            return f"{base}{extra}"
        if node.inputs[0].ndim == 2:
            return f"{base}.T"
    inner = ", ".join(args + ([extra] if extra else []))
    return f"{op.name}({inner})"


def _node_infix(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    """The text and precedence of ``node`` from its inputs' (text, precedence)."""
    if node.is_var:
        return node.name, PREC_ATOM
    if node.is_const:
        s = const_text(node)
        return s, (PREC_UNARY if s.startswith("-") else PREC_ATOM)
    op = node.op
    if op.symbol and len(parts) == 1:
        s, p = parts[0]
        return f"{op.symbol}{f'({s})' if p < op.precedence else s}", op.precedence
    if op.symbol and len(parts) == 2:
        (ls, lp), (rs, rp) = parts
        prec = op.precedence
        if lp < prec or (prec == PREC_POW and lp == prec):
            ls = f"({ls})"
        if rp < prec or (rp == prec and prec != PREC_POW):
            rs = f"({rs})"  # a - (b - c), a * (b @ c): text parses back to the same graph
        return f"{ls} {op.symbol} {rs}", prec
    return _call_text(node, parts), PREC_ATOM


def _tree_sizes(order) -> dict[int, int]:
    size: dict[int, int] = {}
    for node in order:
        size[id(node)] = min(INFIX_TREE_LIMIT + 1, 1 + sum(size[id(i)] for i in node.inputs))
    return size


def infix(expr: Expr) -> str:
    """Python-style infix text of ``expr`` (what ``str`` returns)."""
    order = toposort([expr])
    if _tree_sizes(order)[id(expr)] > INFIX_TREE_LIMIT:
        return (f"<{expr.op.name if expr.op else 'node'} of shape {fmt_shape(expr.shape)}: "
                f"{len(order)} nodes, too large to print inline; see sd.pretty>")
    text: dict[int, tuple[str, int]] = {}
    for node in order:
        text[id(node)] = _node_infix(node, [text[id(i)] for i in node.inputs])
    return text[id(expr)][0]


def bounded_infix(order, width: int = 60) -> dict[int, str]:
    """id(node) -> infix text cut to ``width`` characters, for every node of ``order`` in one
    linear pass (inputs' texts are cut before they are combined)."""
    text: dict[int, tuple[str, int]] = {}
    for node in order:
        s, p = _node_infix(node, [text[id(i)] for i in node.inputs])
        text[id(node)] = (s if len(s) <= width else s[:width - 3] + "...", p)
    return {k: s for k, (s, _) in text.items()}


def infix_short(expr: Expr, width: int = 80) -> str:
    """Infix text of ``expr`` cut to ``width`` characters."""
    return bounded_infix(toposort([expr]), width)[id(expr)]


def short_repr(expr: Expr) -> str:
    """``repr``: the kind of node, shape and dtype, and short infix text."""
    head = "var" if expr.is_var else "const" if expr.is_const else expr.op.name
    return f"<Expr {head} {fmt_shape(expr.shape)} {expr.dtype}: {infix_short(expr, 60)}>"


# ---------------------------------------------------------------------------------------------
# pretty: one line per node
# ---------------------------------------------------------------------------------------------
def node_names(order, labels: dict[int, str] | None = None) -> dict[int, str]:
    """SSA names: variables by name, gradient results ``g_<var>`` (``labels``: id(node) ->
    ``dJ/d<var>``), constants c0.., others t0.. (a name is never reused)."""
    labels = labels or {}
    names: dict[int, str] = {}
    taken = {n.name for n in order if n.is_var}
    counters = {"c": 0, "t": 0}
    for node in order:
        if node.is_var:
            names[id(node)] = node.name
            continue
        label = labels.get(id(node), "")
        wanted = "g_" + label[4:] if label.startswith("dJ/d") and label[4:].isidentifier() else ""
        if wanted and wanted not in taken:
            names[id(node)] = wanted
            taken.add(wanted)
            continue
        kind = "c" if node.is_const else "t"
        while f"{kind}{counters[kind]}" in taken:
            counters[kind] += 1
        names[id(node)] = f"{kind}{counters[kind]}"
        counters[kind] += 1
    return names


def _expect_each(exprs: tuple, function: str) -> None:
    for position, expr in enumerate(exprs, 1):
        expect_expr(expr, f"argument {position}", function)


def pretty(*exprs: Expr) -> str:
    """One line per node in topological order: SSA name, op and inputs, shape and dtype;
    when the loss is listed with its gradients, gradient nodes are marked ``[grad]`` and the
    gradients named ``g_W`` with ``# dJ/dW``.

    >>> import symdiff as sd
    >>> x = sd.var("x"); print(sd.pretty(sd.sin(x)))
         x = var                                    # () float64
        t0 = sin(x)                                 # () float64
    return t0
    >>> y = x * x; print(sd.pretty(y, sd.grad(y, x)))
         x = var                                    # () float64
        t0 = multiply(x, x)                         # () float64
       g_x = add(x, x)                              # () float64  [grad] dJ/dx
    return t0, g_x
    """
    _expect_each(exprs, "pretty")
    order = toposort(exprs)
    labels = gradient_labels(exprs)
    added = gradient_nodes(exprs, labels)
    names = node_names(order, labels)
    lines = []
    for node in order:
        if node.is_var:
            rhs = "var"
        elif node.is_const:
            rhs = f"const {const_text(node)}"
        else:
            args = ", ".join(names[id(i)] for i in node.inputs)
            extra = node.op.params_text()
            rhs = f"{node.op.name}({args}{', ' + extra if extra else ''})"
        note = "  [grad]" if id(node) in added else ""
        if id(node) in labels:
            note += f" {labels[id(node)]}"
        lines.append(f"{names[id(node)]:>6} = {rhs:<38} # {fmt_shape(node.shape)} "
                     f"{node.dtype}{note}")
    lines.append("return " + ", ".join(names[id(e)] for e in exprs))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# DOT
# ---------------------------------------------------------------------------------------------
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "<br/>"}
_QUOTED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\n"}


def dot_escape(text, html: bool = False) -> str:
    """Any text (a name, a value, a label) made safe inside DOT output, the one place that
    does so. ``html=False``: the body of a quoted string (``"..."``), where backslash and quote
    are escaped and a newline becomes DOT's ``\\n`` line break. ``html=True``: the text of an
    HTML-like label (``<...>``), where ``& < > "`` become entities and a newline ``<br/>``.
    Escaping goes character by character, so no text can close the string or the label."""
    table = _HTML_ENTITIES if html else _QUOTED_ESCAPES
    return "".join(table.get(ch, ch) for ch in str(text))


def dot_id(name: str) -> str:
    """A node name as a quoted DOT ID (so a variable named ``node`` or ``edge`` is no
    keyword)."""
    return f'"{dot_escape(name)}"'


def _layer(name: str) -> str | None:
    """The layer a variable belongs to by its name (W1, b1 -> "1"), if any."""
    match = re.search(r"(\d+)$", name)
    return match.group(1) if match else None


def to_dot(*exprs: Expr) -> str:
    """Graphviz DOT source in the style of Goodfellow's Fig. 6.10: the forward graph in one
    cluster, the nodes build_grad added in another colour beside it; inputs as ellipses
    (grouped per layer when names end in a layer number, e.g. W1, b1), constants as plain text,
    outputs with a double border. Gradients are told apart when listed with their loss.

    >>> import symdiff as sd
    >>> x = sd.var("x")
    >>> dot = sd.to_dot(x * x, sd.grad(x * x, x))
    >>> dot.splitlines()[0], "cluster_grad" in dot, "dJ/dx" in dot
    ('digraph symdiff {', True, True)
    """
    _expect_each(exprs, "to_dot")
    order = toposort(exprs)
    labels = gradient_labels(exprs)
    added = gradient_nodes(exprs, labels)
    names = node_names(order, labels)
    outputs = {id(e) for e in exprs}
    groups: dict[str, list[str]] = {"forward": [], "grad": []}
    layers: dict[str, list[str]] = {}
    lines = ["digraph symdiff {", "  rankdir=BT;", "  newrank=true;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555", arrowsize=0.6];']
    for node in order:
        name = dot_id(names[id(node)])
        if node.is_var:
            label, style = node.name, 'shape=ellipse, style=filled, fillcolor="#dbe9f6"'
            layer = _layer(node.name)
            if layer:
                layers.setdefault(layer, []).append(name)
        elif node.is_const:
            label, style = const_text(node), 'shape=plaintext, fontcolor="#666666"'
        else:
            extra = node.op.params_text()
            label = node.op.name + (f"\n{extra}" if extra else "")
            if id(node) in added:
                style = 'shape=box, style="rounded,filled", fillcolor="#fde2c8", color="#d9822b"'
            else:
                style = 'shape=box, style="rounded,filled", fillcolor="#eeeeee"'
            groups["grad" if id(node) in added else "forward"].append(name)
        if id(node) in labels:
            label += f"\n{labels[id(node)]}"
        if node.shape:
            label += f"\n{fmt_shape(node.shape)}"
        if id(node) in outputs:
            style += ", peripheries=2"
        lines.append(f'  {name} [label="{dot_escape(label)}", {style}];')
    for key, title, colour in (("forward", "forward", "#999999"),
                               ("grad", "gradient (added by build_grad)", "#d9822b")):
        if groups[key]:
            lines.append(f'  subgraph cluster_{key} {{ label="{title}"; color="{colour}"; '
                         f'fontcolor="{colour}"; style=dashed; {"; ".join(groups[key])}; }}')
    for layer, members in sorted(layers.items()):
        lines.append(f'  subgraph cluster_layer{layer} {{ label="layer {layer}"; '
                     f'color="#4a7ab5"; style=dotted; {"; ".join(members)}; }}')
    for node in order:
        for inp in node.inputs:
            edge = ' [color="#d9822b"]' if id(node) in added else ""
            lines.append(f"  {dot_id(names[id(inp)])} -> {dot_id(names[id(node)])}{edge};")
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------------------------
_LATEX_FUNCS = {"exp": r"\exp", "log": r"\log", "sin": r"\sin", "cos": r"\cos", "tan": r"\tan",
                "tanh": r"\tanh", "sigmoid": r"\sigma", "max": r"\max", "min": r"\min"}


def _latex_name(name: str) -> str:
    match = re.fullmatch(r"([A-Za-z]+)_?(\d+)", name)
    base, sub = (match.group(1), match.group(2)) if match else (name.replace("_", r"\_"), "")
    greek = {"alpha", "beta", "gamma", "delta", "lambda", "mu", "sigma", "theta", "eta"}
    base = "\\" + base if base in greek else base
    return f"{base}_{{{sub}}}" if sub else base


def _tensor_latex(expr: Expr) -> str:
    """Matrix-calculus style LaTeX: ``W x`` for matmul, ``^\\top``, ``\\odot`` for elementwise
    products of tensors, ``\\sum`` for sums."""
    order = toposort([expr])
    if _tree_sizes(order)[id(expr)] > INFIX_TREE_LIMIT:
        return r"\text{(graph too large)}"
    text: dict[int, tuple[str, int]] = {}
    for node in order:
        parts = [text[id(i)] for i in node.inputs]
        wrap = [f"\\left({s}\\right)" if p < PREC_ATOM else s for s, p in parts]
        if node.is_var:
            text[id(node)] = (_latex_name(node.name), PREC_ATOM)
        elif node.is_const:
            s = const_text(node) if node.shape == () else r"\mathbf{c}"
            text[id(node)] = (s, PREC_ATOM)
        else:
            name = node.op.name
            if name in ("add", "subtract"):
                rs = wrap[1] if name == "subtract" and parts[1][1] <= 30 else parts[1][0]
                text[id(node)] = (f"{parts[0][0]} {'+' if name == 'add' else '-'} {rs}", 30)
            elif name == "multiply":
                sep = r" \odot " if node.inputs[0].ndim and node.inputs[1].ndim else " "
                ms = [s if p >= PREC_MUL else f"\\left({s}\\right)" for s, p in parts]
                text[id(node)] = (sep.join(ms), PREC_MUL)
            elif name in ("matmul", "dot"):
                ms = [s if p >= PREC_MUL else f"\\left({s}\\right)" for s, p in parts]
                if node.inputs[0].ndim == 1:  # a vector on the left is a row: u^T h
                    ms[0] = f"{wrap[0]}^\\top"
                text[id(node)] = (" ".join(ms), PREC_MUL)
            elif name == "divide":
                text[id(node)] = (f"\\frac{{{parts[0][0]}}}{{{parts[1][0]}}}", PREC_ATOM)
            elif name == "negative":
                text[id(node)] = (f"-{wrap[0]}", PREC_UNARY)
            elif name in ("reshape", "broadcast_to", "stop_gradient"):
                text[id(node)] = parts[0]
            elif name == "outer":
                text[id(node)] = (f"{wrap[0]} {wrap[1]}^\\top", PREC_MUL)
            elif name == "transpose":
                text[id(node)] = (f"{wrap[0]}^\\top", PREC_ATOM)
            elif name in ("square", "power"):
                exponent = "2" if name == "square" else parts[1][0]
                text[id(node)] = (f"{wrap[0]}^{{{exponent}}}", PREC_POW)
            elif name == "sum":
                text[id(node)] = (f"\\sum {wrap[0]}", PREC_MUL)
            elif name == "sqrt":
                text[id(node)] = (f"\\sqrt{{{parts[0][0]}}}", PREC_ATOM)
            else:
                func = _LATEX_FUNCS.get(name, f"\\operatorname{{{name}}}")
                args = ", ".join(s for s, _ in parts)
                text[id(node)] = (f"{func}\\left({args}\\right)", PREC_ATOM)
    return text[id(expr)][0]


def to_latex(expr: Expr) -> str:
    """LaTeX of ``expr``: through SymPy for scalar graphs, else matrix-calculus notation
    (``W x + b``, ``\\delta x^\\top``, ``\\odot`` for elementwise products)."""
    expect_expr(expr, "expr", "to_latex")
    if all(n.shape == () for n in toposort([expr])):
        import sympy
        from ..interop.sympy_io import to_sympy
        return sympy.latex(to_sympy(expr))
    return _tensor_latex(expr)


def repr_latex(expr: Expr):
    """LaTeX for Jupyter (``$...$``), or None when it cannot be made."""
    try:
        return "$" + to_latex(expr) + "$"
    except Exception:  # display only: Jupyter falls back to the plain repr
        return None
