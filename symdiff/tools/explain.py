"""Backprop step by step: ``explain(y, wrt, at)`` evaluates a graph at a point and records what
build_grad does on every edge, the way the CS224n lecture draws it.

For each node of G' (reverse topological order) it records the upstream gradient ``dJ/dC``; for
each edge C -> V the local gradient ``dC/dV`` (for scalar edges) and the downstream product
``upstream x local``; for a node with several consumers, the sum of their contributions. The
numbers come from the real gradient graph (the ``on_edge`` hook of ``grad.backprop``),
compiled once and evaluated at ``at``. Nodes outside G' (not on a path to a requested variable)
are kept and marked as pruned.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, SymdiffError, expect_mapping
from ..graph import Expr, as_expr, const, expect_exprs, toposort
from ..grad import _depends_on, backprop
from .inspect import bounded_infix, dot_escape, dot_id, node_names
from ..compiler import CompiledFunction


@dataclass
class EdgeStep:
    """One edge the gradient crosses: consumer -> input (by SSA name)."""

    consumer: str
    input: str
    upstream: np.ndarray
    local: np.ndarray | None
    downstream: np.ndarray


@dataclass
class NodeStep:
    """One node: its SSA name, infix text, forward value, gradient (None off G')."""

    name: str
    text: str
    value: np.ndarray
    gradient: np.ndarray | None
    pruned: bool
    incoming: list = field(default_factory=list)  # EdgeSteps whose input is this node
    inputs_names: list = field(default_factory=list)  # SSA names of its non-constant inputs


def fmt(value) -> str:
    """A number as ``%.4g``; a small array as a list; a large one by its shape."""
    if value is None:
        return "-"
    arr = np.asarray(value)
    if arr.shape == ():
        return f"{arr.item():.4g}" if arr.dtype.kind == "f" else str(arr.item())
    if arr.size <= 4:
        return "[" + ", ".join(fmt(v) for v in arr.ravel()) + "]"
    return f"<{arr.dtype} array {arr.shape}>"


class Explanation:
    """The recorded backprop: ``.nodes`` (NodeStep, topological order), ``.edges``
    (EdgeStep, in the order build_grad crossed them), ``.gradients`` (name -> value)."""

    def __init__(self, nodes, edges, gradients):
        self.nodes = nodes
        self.edges = edges
        self.gradients = gradients
        self._by_name = {n.name: n for n in nodes}

    def node(self, name: str) -> NodeStep:
        return self._by_name[name]

    def table(self) -> str:
        """A text table: forward values, then the backward pass node by node."""
        lines = ["forward pass:"]
        for n in self.nodes:
            lines.append(f"  {n.name:>4} = {n.text:<34} = {fmt(n.value)}")
        lines.append("backward pass (reverse topological order; upstream x local = downstream):")
        for n in reversed(self.nodes):
            if n.pruned:
                lines.append(f"  {n.name:>4}: pruned (not on a path to a requested variable)")
                continue
            if n.gradient is None:
                continue
            if len(n.incoming) > 1:
                parts = " + ".join(fmt(e.downstream) for e in n.incoming)
                lines.append(f"  dJ/d{n.name} = {parts} = {fmt(n.gradient)}  "
                             f"(sum over {len(n.incoming)} consumers)")
            else:
                lines.append(f"  dJ/d{n.name} = {fmt(n.gradient)}")
            for e in self.edges:
                if e.consumer == n.name:
                    local = f" x local {fmt(e.local)}" if e.local is not None else ""
                    lines.append(f"      -> {e.input:<4} upstream {fmt(e.upstream)}{local} = "
                                 f"{fmt(e.downstream)}")
        return "\n".join(lines)

    __str__ = table

    def to_dot(self) -> str:
        """DOT in the CS224n style: forward values on nodes (green), gradients on the edges
        (red), pruned nodes greyed out."""
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
                    downstream = dot_escape(fmt(e.downstream), html=True)
                    lines.append(f'{edge} [label=<<font color="#2e7d32">{value}</font><br/>'
                                 f'<font color="#c62828">{downstream}</font>>];')
        lines.append("}")
        return "\n".join(lines)

    def _repr_svg_(self):
        from .render import dot_to_svg_or_none
        return dot_to_svg_or_none(self.to_dot())

    def _repr_html_(self):
        return f"<pre>{self.table()}</pre>"


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
    recorded = []  # (consumer, position, g, contribution, local)

    def on_edge(node, position, g, contribution):
        local = None
        if node.shape == () and node.inputs[position].shape == ():
            local = node.op.bprop(node.inputs, node, const(np.ones((), node.dtype)))[position]
        recorded.append((node, position, g, contribution, local))

    table = backprop(y, wrt_list, const(np.ones(y.shape, y.dtype)), on_edge=on_edge)
    graph_nodes = [n for n in order if not n.is_const or n is y]
    symbolic = list(graph_nodes)
    for node, position, g, contribution, local in recorded:
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
    values = CompiledFunction(symbolic, variables)(**{v.name: at[v.name] for v in variables})
    value_of = {}
    for node, value in zip(symbolic, values):
        value_of.setdefault(id(node), value)

    names = node_names(order)
    texts = bounded_infix(order, width=40)
    steps = []
    for n in graph_nodes:
        grad_node = table.get(id(n))
        steps.append(NodeStep(names[id(n)], n.name if n.is_var else texts[id(n)],
                              value_of[id(n)],
                              None if grad_node is None else value_of[id(grad_node)],
                              pruned=id(n) not in needed,
                              inputs_names=[names[id(i)] for i in n.inputs if not i.is_const]))
    by_name = {s.name: s for s in steps}
    edges = []
    for node, position, g, contribution, local in recorded:
        inp = node.inputs[position]
        edge = EdgeStep(names[id(node)], names[id(inp)], value_of[id(g)],
                        None if local is None else value_of[id(local)],
                        value_of[id(contribution)])
        edges.append(edge)
        by_name[edge.input].incoming.append(edge)
    gradients = {w.name if w.is_var else names[id(w)]:
                 np.asarray(value_of[id(table[id(w)])] if id(w) in table
                            else np.zeros(w.shape, w.dtype))
                 for w in wrt_list}
    return Explanation(steps, edges, gradients)
