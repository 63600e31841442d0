"""Looking at graphs: a one-line-per-node listing (``pretty``), Graphviz DOT source
(``to_dot``) and LaTeX (``to_latex``); infix text (``str``) lives in ``symdiff.printing``, below
the ops, and is re-exported here. Everything walks the topological order, never recursion.

Infix text expands shared nodes, which can blow up exponentially on a DAG, so it lives in
:mod:`symdiff.printing` with a bounded tree size. ``pretty`` lists each node once and scales
to any size. When a view is given a loss together with its gradients (grad.py's record of
which node is the gradient of which, never a mark on the shared nodes), ``pretty`` names the
gradients ``g_W1`` with ``dJ/dW1`` and marks the nodes only they need ``[grad]``, and ``to_dot``
draws those beside the forward graph in another colour, as in Goodfellow's Fig. 6.10.
``to_latex`` asks each op for its LaTeX (``Op.latex_form`` or its function name ``Op.latex``;
else ``\\operatorname`` of the escaped name with its params).

This module registers ``to_latex`` for Jupyter's rich display in ``graph.PRINTERS`` (render.py
registers the SVG drawing), so graph.py imports nothing from here.
"""
from __future__ import annotations

import re

from ..errors import expect_bool, fmt_shape
from ..graph import Expr, expect_expr, toposort
from .. import graph
from ..grad import gradient_labels, gradient_nodes
from ..printing import (  # noqa: F401 (infix, short_repr: the old home)
    PREC_ATOM, bounded_infix, const_text, infix, infix_short, latex_escape, short_repr)

SYMPY_TREE_LIMIT = 3000     # SymPy tree size beyond which to_latex does not ask SymPy
LATEX_TEXT_LIMIT = 200_000  # characters of LaTeX beyond which to_latex summarizes


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


def to_dot(*exprs: Expr, anchors: bool = False) -> str:
    """Graphviz DOT source in the style of Goodfellow's Fig. 6.10: the forward graph in one
    cluster, the nodes build_grad added in another colour beside it; inputs as ellipses
    (grouped per layer when names end in a layer number, e.g. W1, b1), constants as plain text,
    outputs with a double border. Gradients are told apart when listed with their loss.
    ``anchors=True`` gives each node the SVG id ``node_<SSA name>`` and a link to
    ``#line_<SSA name>`` (the ``pretty`` line of an HTML report).

    >>> import symdiff as sd
    >>> x = sd.var("x")
    >>> dot = sd.to_dot(x * x, sd.grad(x * x, x))
    >>> dot.splitlines()[0], "cluster_grad" in dot, "dJ/dx" in dot
    ('digraph symdiff {', True, True)
    """
    _expect_each(exprs, "to_dot")
    expect_bool(anchors, "anchors", "to_dot")
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
        if anchors:
            anchor = dot_escape(names[id(node)])
            style += f', id="node_{anchor}", href="#line_{anchor}", tooltip="{anchor}"'
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
def _latex_name(name: str) -> str:
    match = re.fullmatch(r"([A-Za-z]+)_?(\d+)", name)
    base, sub = (match.group(1), match.group(2)) if match else (name.replace("_", r"\_"), "")
    greek = {"alpha", "beta", "gamma", "delta", "lambda", "mu", "sigma", "theta", "eta"}
    base = "\\" + base if base in greek else base
    return f"{base}_{{{sub}}}" if sub else base


def _tensor_latex(expr: Expr) -> str:
    """Matrix-calculus style LaTeX: ``W x`` for matmul, ``^\\top``, ``\\odot`` for elementwise
    products of tensors, ``\\sum`` for sums. Each op gives its own form (``latex_form``, or its
    function name ``latex``); any other op is ``\\operatorname{name}`` of its inputs and
    params. One pass over the topological order, no recursion."""
    order = toposort([expr])
    text: dict[int, tuple[str, int]] = {}
    for node in order:
        parts = [text[id(i)] for i in node.inputs]
        if node.is_var:
            text[id(node)] = (_latex_name(node.name), PREC_ATOM)
        elif node.is_const:
            text[id(node)] = (_const_latex(node), PREC_ATOM)
        else:
            text[id(node)] = node.op.latex_form(node.inputs, parts) or _latex_call(node, parts)
        if len(text[id(node)][0]) > LATEX_TEXT_LIMIT:  # stop before shared nodes blow it up
            return r"\text{(graph too large)}"
    return text[id(expr)][0]


def _number_latex(value) -> str:
    return repr(value.item() if hasattr(value, "item") else value)


def _const_latex(node: Expr) -> str:
    """A constant in LaTeX: a number; an array whose entries are all equal as that number
    (it multiplies or adds entrywise the same way); a small vector or matrix by its entries
    (rows separated by ``;``); a large one named by its shape, ``\\mathrm{const}_{3 \\times
    4}``, never a bare symbol the reader cannot look up."""
    if node.shape == ():
        return const_text(node)
    if node.uniform is not None:
        return _number_latex(node.uniform)
    value = node.value
    if node.size <= 6 and node.ndim <= 2:
        rows = value.reshape(1, -1) if node.ndim == 1 else value
        body = "; ".join(", ".join(_number_latex(v) for v in row) for row in rows)
        return f"\\left[{body}\\right]"
    dims = " \\times ".join(map(str, node.shape))
    return f"\\mathrm{{const}}_{{{dims}}}"


def _latex_call(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    """``f\\left(x, y, \\text{params}\\right)``: the op's LaTeX function name, else
    ``\\operatorname`` of its escaped name (``log\\_softmax``)."""
    op = node.op
    func = op.latex or f"\\operatorname{{{latex_escape(op.name)}}}"
    args = [s for s, _ in parts]
    extra = op.params_text()
    if extra:
        args.append(f"\\text{{{latex_escape(extra)}}}")
    return f"{func}\\left({', '.join(args)}\\right)", PREC_ATOM


_SYMPY_DEPTH_LIMIT = 400  # SymPy levels; its latex printer recurses a few frames per level


def _fits_sympy(order) -> bool:
    """True when the SymPy tree of the graph (each op adds its ``sympy_levels`` and copies its
    inputs ``sympy_copies`` times) is shallow and small enough for SymPy's recursive printer,
    which walks it as a tree: leaky_relu's three copies of x make a chain of 10 a 2 MB text."""
    depth: dict[int, int] = {}
    size: dict[int, int] = {}
    for node in order:
        if node.op is None:
            depth[id(node)], size[id(node)] = 1, 1
            continue
        depth[id(node)] = node.op.sympy_levels + max(depth[id(i)] for i in node.inputs)
        size[id(node)] = min(SYMPY_TREE_LIMIT + 1, node.op.sympy_levels + node.op.sympy_copies
                             * sum(size[id(i)] for i in node.inputs))
        if depth[id(node)] > _SYMPY_DEPTH_LIMIT or size[id(node)] > SYMPY_TREE_LIMIT:
            return False
    return True


def to_latex(expr: Expr) -> str:
    """LaTeX of ``expr``: through SymPy for scalar graphs, else (and for graphs too deep or, as
    a tree, too large for SymPy's recursive printer) matrix-calculus notation (``W x + b``,
    ``\\delta x^\\top``, ``\\odot`` for elementwise products)."""
    expect_expr(expr, "expr", "to_latex")
    order = toposort([expr])
    if all(n.shape == () for n in order) and _fits_sympy(order):
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


graph.PRINTERS["latex"] = repr_latex  # Jupyter's rich display; the SVG one is render.py's
