"""Backprop step by step: ``explain(y, wrt, at)`` evaluates a graph at a point and records what
build_grad does on every edge, the way the CS224n lecture draws it, for scalars and tensors.

For each node of G' (reverse topological order) it records the upstream gradient ``dJ/dC``; for
each edge C -> V the local gradient ``dC/dV`` where it is a number per entry (scalar edges and
elementwise unary ops, whose Jacobian is diagonal) and the downstream product; for a node with
several consumers, the sum of their contributions. Matrix-valued edges carry the
matrix-calculus form the lecture writes (``delta x^T`` for the weight gradient of ``W @ x``).
The numbers come from the real gradient graph (the ``on_edge`` hook of ``grad.backprop``),
compiled once (without rewrites: the graph as written) and evaluated at ``at``. Nodes outside
G' are kept and marked as pruned. ``grad`` and ``compile`` apply the stable forms
(``log(sigmoid(x)) -> -softplus(-x)``) before they differentiate and lower; ``explain`` shows
the graph as the user wrote it, so it shows what those forms fix.

Small arrays are shown in full (a 3x4 matrix as a matrix); large ones by a summary (shape,
min/mean/max, fraction of zeros, count of non-finite entries), so the table and the picture
stay readable for any shapes.

``Explanation.why(var)`` reads the recorded values to say, in words, where the gradient of
``var`` vanished or stopped being finite: a relu mask that is zero (dead units), a saturated
unit (|derivative| < 1e-8), a ``stop_gradient``, a path that does not exist, the first node
whose value or gradient is not finite and the input values that made it so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, SymdiffError, expect_mapping
from ..graph import Expr, as_expr, const, expect_exprs, toposort
from ..grad import _depends_on, backprop
from ..ops.elementwise import Relu, StopGradient, Unary
from .inspect import bounded_infix, dot_escape, dot_id, node_names
from ..compiler import CompiledFunction

FULL_ENTRIES = 24       # arrays of at most this many entries (and at most 2-D) shown in full
SATURATED = 1e-8        # |local derivative| below this counts as saturated


@dataclass
class EdgeStep:
    """One edge the gradient crosses: consumer -> input (by SSA name). ``local`` is the local
    derivative per entry where it is one (scalar edges, elementwise unary ops); ``form`` the
    matrix-calculus text of the downstream gradient where the lecture writes one."""

    consumer: str
    input: str
    upstream: np.ndarray
    local: np.ndarray | None
    downstream: np.ndarray
    form: str | None = None


@dataclass
class NodeStep:
    """One node: its SSA name, infix text, forward value, gradient (None off G'), and the node
    itself (``expr``) for questions about its op."""

    name: str
    text: str
    value: np.ndarray
    gradient: np.ndarray | None
    pruned: bool
    incoming: list = field(default_factory=list)  # EdgeSteps whose input is this node
    inputs_names: list = field(default_factory=list)  # SSA names of its non-constant inputs
    expr: Expr | None = None


def _number(x) -> str:
    x = x.item() if isinstance(x, np.generic) else x
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def summarize(value) -> str:
    """One line for an array of any size: dtype, shape, min/mean/max of the finite entries,
    fraction of zeros, count of non-finite entries.

    >>> summarize(np.array([[0.0, 1.0], [np.nan, 3.0]]))
    'float64 (2, 2): min 0 mean 1.333 max 3, 25% zeros, 1 non-finite'
    """
    arr = np.asarray(value)
    head = f"{arr.dtype} {tuple(arr.shape)}"
    if arr.size == 0:
        return head + ": empty"
    numeric = arr.astype(np.float64) if arr.dtype.kind in "biu" else arr
    finite = np.isfinite(numeric)
    parts = []
    if finite.any():
        ok = numeric[finite]
        parts.append(f"min {_number(ok.min())} mean {_number(float(ok.mean()))} "
                     f"max {_number(ok.max())}")
    parts.append(f"{100 * np.count_nonzero(numeric == 0) / arr.size:.3g}% zeros")
    bad = arr.size - int(np.count_nonzero(finite))
    if bad:
        parts.append(f"{bad} non-finite")
    return head + ": " + ", ".join(parts)


def fmt(value) -> str:
    """A number as ``%.4g``; a small array in full (a vector as a list, a matrix as rows on
    several lines, columns aligned); a large one by :func:`summarize`.

    >>> print(fmt(np.array([[1.0, -2.5], [30.0, 4.0]])))
    [[ 1, -2.5],
     [30,    4]]
    """
    if value is None:
        return "-"
    arr = np.asarray(value)
    if arr.shape == ():
        return _number(arr.item())
    if arr.size > FULL_ENTRIES or arr.ndim > 2 or arr.size == 0:
        return summarize(arr)
    if arr.ndim == 1:
        return "[" + ", ".join(_number(v) for v in arr) + "]"
    cells = [[_number(v) for v in row] for row in arr]
    widths = [max(len(row[j]) for row in cells) for j in range(arr.shape[1])]
    rows = ["[" + ", ".join(c.rjust(w) for c, w in zip(row, widths)) + "]" for row in cells]
    return "[" + ",\n ".join(rows) + "]"


def _hang(prefix: str, text: str) -> str:
    """``prefix + text`` with the continuation lines of a multi-line ``text`` indented under
    its first character."""
    return prefix + text.replace("\n", "\n" + " " * len(prefix))


class Explanation:
    """The recorded backprop: ``.nodes`` (NodeStep, topological order), ``.edges``
    (EdgeStep, in the order build_grad crossed them), ``.gradients`` (name -> value)."""

    def __init__(self, nodes, edges, gradients, output=None, variables=None):
        self.nodes = nodes
        self.edges = edges
        self.gradients = gradients
        self.output = output
        self.variables = variables or {}
        self._by_name = {n.name: n for n in nodes}
        self.names_of = {id(n.expr): n.name for n in nodes if n.expr is not None}

    def node(self, name: str) -> NodeStep:
        return self._by_name[name]

    def table(self) -> str:
        """A text table: forward values, then the backward pass node by node."""
        lines = ["forward pass:"]
        for n in self.nodes:
            lines.append(_hang(f"  {n.name:>4} = {n.text:<34} = ", fmt(n.value)))
        lines.append("backward pass (reverse topological order; upstream x local = downstream):")
        for n in reversed(self.nodes):
            if n.pruned:
                lines.append(f"  {n.name:>4}: pruned (not on a path to a requested variable)")
                continue
            if n.gradient is None:
                continue
            if len(n.incoming) > 1:
                scalars = all(np.ndim(e.downstream) == 0 for e in n.incoming)
                parts = " + ".join(fmt(e.downstream) if scalars else f"from {e.consumer}"
                                   for e in n.incoming)
                lines.append(_hang(f"  dJ/d{n.name} = {parts} = ", fmt(n.gradient)))
            else:
                lines.append(_hang(f"  dJ/d{n.name} = ", fmt(n.gradient)))
            for e in self.edges:
                if e.consumer != n.name:
                    continue
                head = f"      -> {e.input:<4}"
                scalar = all(np.ndim(v) == 0 for v in (e.upstream, e.local, e.downstream)
                             if v is not None)
                if e.form is not None:
                    head += f" {e.form} (delta = dJ/d{e.consumer})"
                elif scalar:
                    local = f" x local {fmt(e.local)}" if e.local is not None else ""
                    lines.append(f"{head} upstream {fmt(e.upstream)}{local} = "
                                 f"{fmt(e.downstream)}")
                    continue
                elif e.local is not None:
                    head += " upstream x local"
                    if np.size(e.upstream) <= FULL_ENTRIES or np.size(e.local) <= FULL_ENTRIES:
                        lines.append(_hang(head + " = ", fmt(e.upstream)))
                        head = " " * len(head)
                        lines.append(_hang(head + " x ", fmt(e.local)))
                lines.append(_hang(head + " = ", fmt(e.downstream)))
        return "\n".join(lines)

    __str__ = table

    def to_dot(self) -> str:
        """DOT in the CS224n style: forward values on nodes (green), gradients on the edges
        (red), pruned nodes greyed out; arrays in full when small, summarized when large."""
        lines = ["digraph explain {", "  rankdir=LR;",
                 '  node [fontname="Helvetica", fontsize=11, shape=box, style=rounded];']
        for n in self.nodes:
            grey = ', color="#bbbbbb", fontcolor="#999999"' if n.pruned else ""
            grad = f"\ngrad {fmt(n.gradient)}" if n.gradient is not None else ""
            label = dot_escape(f"{n.text}\n= {fmt(n.value)}{grad}")
            lines.append(f'  {dot_id(n.name)} [label="{label}"{grey}];')
        crossed = {(e.input, e.consumer): e for e in self.edges}
        for n in self.nodes:
            for src in n.inputs_names:
                e = crossed.get((src, n.name))
                value = dot_escape(fmt(self._by_name[src].value), html=True)
                edge = f"  {dot_id(src)} -> {dot_id(n.name)}"
                if e is None:
                    lines.append(f'{edge} [label=<<font color="#2e7d32">{value}'
                                 f'</font>>, color="#bbbbbb"];')
                else:
                    text = fmt(e.downstream)
                    if e.form is not None:
                        text = f"{e.form} =\n{text}"
                    downstream = dot_escape(text, html=True)
                    lines.append(f'{edge} [label=<<font color="#2e7d32">{value}</font><br/>'
                                 f'<font color="#c62828">{downstream}</font>>];')
        lines.append("}")
        return "\n".join(lines)

    def _repr_svg_(self):
        from .render import dot_to_svg_or_none
        return dot_to_svg_or_none(self.to_dot())

    def _repr_html_(self):
        import html
        return f"<pre>{html.escape(self.table())}</pre>"

    def why(self, var) -> str:
        """Plain words on where the gradient of ``var`` (a variable or its name) vanished or
        stopped being finite along its paths to the output: dead relu units (a zero mask),
        saturated units (|local derivative| < 1e-8 at some entries), a ``stop_gradient`` on the
        way, no path at all, the first node whose value or gradient is not finite and the input
        values that made it so. Nodes are named as ``pretty`` names them (SSA names).

        >>> import symdiff as sd
        >>> w = sd.var("w", (3,))
        >>> e = sd.explain(sd.sum(sd.relu(w)), w, {"w": [-1.0, -2.0, -3.0]})
        >>> print(e.why("w"))  # doctest: +NORMALIZE_WHITESPACE
        the gradient of w is zero at all 3 entries.
          t0 = relu(w): all 3 entries have zero local derivative (dead relu units: the input
          is <= 0 there); no gradient passes
        """
        name = var.name if isinstance(var, Expr) else var
        if not isinstance(name, str) or name not in self.variables:
            raise SymdiffError(f"why: {var!r} is not a variable of the explained graph "
                               f"(its variables: {sorted(self.variables)})")
        return "\n".join(_why_lines(self, name))


def _entries(count: int, total: int) -> str:
    return f"all {total} entries" if count == total else f"{count} of {total} entries"


def _where(mask) -> str:
    """The first index where ``mask`` holds, for the text."""
    index = tuple(int(i) for i in np.argwhere(np.asarray(mask))[0])
    return "" if index == () else f" (first at index {index if len(index) > 1 else index[0]})"


def _why_lines(e: Explanation, name: str) -> list[str]:
    """The findings of :meth:`Explanation.why`, one per line, the summary first."""
    var = e.variables[name]
    steps = [s for s in e.nodes if s.expr is not None]
    # nodes whose value depends on var at all, and those the gradient can reach backwards
    # (cut at stop_gradient: its bprop sends nothing)
    depends, reaches = {id(var)}, {id(var)}
    for s in steps:
        node = s.expr
        if node.op is None:
            continue
        if any(id(i) in depends for i in node.inputs):
            depends.add(id(node))
        if not isinstance(node.op, StopGradient) and any(id(i) in reaches
                                                         for i in node.inputs):
            reaches.add(id(node))
    out = e.output
    gradient = np.asarray(e.gradients.get(name, np.zeros(var.shape)))
    lines = []
    size = max(gradient.size, 1)
    zeros = int(np.count_nonzero(gradient == 0))
    bad = int(np.count_nonzero(~np.isfinite(gradient)))
    if var.dtype.kind != "f":
        lines.append(f"{name} has dtype {var.dtype}: integer and boolean inputs carry no "
                     f"gradient.")
    if id(out) not in depends:
        lines.append(f"the output does not depend on {name}: there is no path, so its gradient "
                     f"is zero (disconnected).")
        return lines
    if bad:
        lines.append(f"the gradient of {name} is not finite at {_entries(bad, size)}.")
    elif zeros == size:
        lines.append(f"the gradient of {name} is zero at all {size} entries.")
    elif zeros:
        lines.append(f"the gradient of {name} is zero at {zeros} of {size} entries.")
    else:
        lines.append(f"the gradient of {name} is finite and nonzero at every entry.")
    if id(out) not in reaches:
        for s in steps:
            node = s.expr
            if isinstance(node.op, StopGradient) and id(node.inputs[0]) in reaches:
                lines.append(f"  {s.name} = {s.text}: stop_gradient on every path from "
                             f"{name} to the output; the gradient through it is zero by design.")
        return lines
    lines += _value_findings(e, steps, depends)
    lines += _local_findings(e, reaches)
    lines += _gradient_findings(e, steps, reaches)
    return lines


def _value_findings(e: Explanation, steps, depends) -> list[str]:
    """The first node (topological order) on var's paths whose value is not finite, with the
    input values at the first bad entry."""
    for s in steps:
        value = np.asarray(s.value)
        if id(s.expr) not in depends or value.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(value)
        if not bad.any():
            continue
        kinds = sorted({"nan" if np.isnan(v) else "inf" for v in value[bad].ravel()})
        line = (f"  {s.name} = {s.text} is {'/'.join(kinds)} at "
                f"{_entries(int(bad.sum()), value.size)}{_where(bad)}, the first non-finite "
                f"value on the path")
        inputs = []
        index = tuple(np.argwhere(bad)[0])
        for inp in s.expr.inputs:
            name = e.names_of.get(id(inp))
            if name is None:
                continue
            held = np.asarray(e.node(name).value)
            if held.shape == value.shape:
                inputs.append(f"{name} = {_number(held[index])}")
            elif held.size <= FULL_ENTRIES:
                inputs.append(f"{name} = {fmt(held)}")
        if inputs:
            line += f"; there {', '.join(inputs)}"
        return [line + "."]
    return []


def _local_findings(e: Explanation, reaches) -> list[str]:
    """Elementwise edges on the path whose local derivative is zero (dead: a relu mask) or
    below SATURATED (a saturated sigmoid or tanh) at some entries."""
    lines = []
    for edge in e.edges:
        consumer = e.node(edge.consumer)
        if edge.local is None or id(consumer.expr) not in reaches:
            continue
        local = np.abs(np.asarray(edge.local, dtype=np.float64))
        if local.size == 0 or not np.isfinite(local).all():
            continue
        dead = int(np.count_nonzero(local == 0))
        tiny = int(np.count_nonzero((local > 0) & (local < SATURATED)))
        op = consumer.expr.op.name
        head = f"  {consumer.name} = {consumer.text}: "
        if dead and isinstance(consumer.expr.op, Relu):
            what = (f"{_entries(dead, local.size)} have zero local derivative (dead relu "
                    f"units: the input is <= 0 there)")
            value = np.asarray(consumer.value)
            if value.ndim == 2 and value.shape[0] > 1:
                columns = int(np.count_nonzero((value == 0).all(axis=0)))
                if columns:
                    what += (f"; {columns} of {value.shape[1]} units are dead for every "
                             f"one of the {value.shape[0]} rows")
            lines.append(head + what + ("; no gradient passes" if dead == local.size else ""))
        elif dead or tiny:
            exact = f", {dead} of them exactly 0" if dead else ""
            lines.append(head + f"saturated at {_entries(dead + tiny, local.size)} "
                         f"(|{op}'| < {SATURATED:g}{exact}): the gradient through them all "
                         f"but vanishes")
    return lines


def _gradient_findings(e: Explanation, steps, reaches) -> list[str]:
    """The first edge (in the order build_grad crossed them) where a finite upstream gradient
    became a non-finite downstream one, with the local derivative that did it."""
    for edge in e.edges:
        if id(e.node(edge.consumer).expr) not in reaches:
            continue
        if np.isfinite(edge.upstream).all() and not np.isfinite(edge.downstream).all():
            line = (f"  the gradient became non-finite on the edge {edge.consumer} -> "
                    f"{edge.input} ({e.node(edge.consumer).text}): upstream finite")
            if edge.local is not None:
                line += f", local derivative {fmt(edge.local)}"
            return [line + "."]
    return []


def explain(y: Expr, wrt, at: dict) -> Explanation:
    """Evaluate ``y`` at ``at`` (name -> value) and record build_grad edge by edge.

    >>> import symdiff as sd
    >>> x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    >>> e = sd.explain((x + y) * sd.maximum(y, z), [x, y, z], {"x": 1, "y": 2, "z": 0})
    >>> [float(e.gradients[n]) for n in "xyz"]
    [2.0, 5.0, 0.0]
    """
    y = as_expr(y)
    wrt_list, _ = expect_exprs(wrt, "wrt", "explain")
    expect_mapping(at, "at", "explain")
    order = toposort([y])
    needed = _depends_on(order, wrt_list)
    names = node_names(order)
    recorded = []  # (consumer, position, g, contribution, local, form)

    def on_edge(node, position, g, contribution):
        local = None
        inp = node.inputs[position]
        elementwise = isinstance(node.op, Unary) and node.shape == inp.shape
        if elementwise or (node.shape == () and inp.shape == ()):
            local = node.op.bprop(node.inputs, node, const(np.ones(node.shape, node.dtype)))
            local = local[position]
        form = node.op.gradient_form(node.inputs, [names[id(i)] for i in node.inputs],
                                     position)
        recorded.append((node, position, g, contribution, local, form))

    table = backprop(y, wrt_list, const(np.ones(y.shape, y.dtype)), on_edge=on_edge)
    graph_nodes = [n for n in order if not n.is_const or n is y]
    symbolic = list(graph_nodes)
    for node, position, g, contribution, local, form in recorded:
        symbolic += [g, contribution] + ([local] if local is not None else [])
    symbolic += [table[id(n)] for n in graph_nodes if id(n) in table]
    variables = [n for n in order if n.is_var]
    in_graph = {id(n) for n in order}
    outside = [w for w in wrt_list if not w.is_var and id(w) not in in_graph]
    if outside:
        raise SymdiffError(f"explain: wrt holds {outside[0]!r}, which is neither a variable "
                           f"nor a node of y's graph")
    missing = [v.name for v in variables if v.name not in at]
    if missing:
        raise InputError(f"explain: at gives no value for {missing} (the graph's variables: "
                         f"{sorted(v.name for v in variables)})")
    with np.errstate(all="ignore"):  # a nan or inf is a finding of why(), not a warning
        # the graph as written, unrewritten: every value is the one of the node it labels
        values = CompiledFunction(symbolic, variables, optimize=False)(
            **{v.name: at[v.name] for v in variables})
    value_of = {}
    for node, value in zip(symbolic, values):
        value_of.setdefault(id(node), value)

    texts = bounded_infix(order, width=40)
    steps = []
    for n in graph_nodes:
        grad_node = table.get(id(n))
        steps.append(NodeStep(names[id(n)], n.name if n.is_var else texts[id(n)],
                              value_of[id(n)],
                              None if grad_node is None else value_of[id(grad_node)],
                              pruned=id(n) not in needed,
                              inputs_names=[names[id(i)] for i in n.inputs if not i.is_const],
                              expr=n))
    by_name = {s.name: s for s in steps}
    edges = []
    for node, position, g, contribution, local, form in recorded:
        inp = node.inputs[position]
        edge = EdgeStep(names[id(node)], names[id(inp)], value_of[id(g)],
                        None if local is None else value_of[id(local)],
                        value_of[id(contribution)], form)
        edges.append(edge)
        by_name[edge.input].incoming.append(edge)
    gradients = {w.name if w.is_var else names[id(w)]:
                 np.asarray(value_of[id(table[id(w)])] if id(w) in table
                            else np.zeros(w.shape, w.dtype))
                 for w in wrt_list}
    known = {v.name: v for v in variables}
    known.update((w.name, w) for w in wrt_list if w.is_var)  # disconnected ones too
    return Explanation(steps, edges, gradients, output=y, variables=known)
