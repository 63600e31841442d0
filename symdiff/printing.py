"""Infix text of graphs and the precedence table: what ``str`` and ``repr`` of a node show, and
the short texts that error messages and generated-code comments quote.

This layer sits right above graph.py and below the ops, so graph, the ops, grad and the
backends can all print without reaching up into ``tools/``. It therefore never imports the
ops: it reads what each node's op says about itself (duck-typed) -- ``op.name``,
``op.symbol`` and ``op.precedence`` for infix operators, ``op.params_text()`` for call
arguments and ``op.suffix_text(inputs)`` for postfix forms such as ``x[0]`` and ``x.T``.

Hook: graph.py cannot import this module (it is below it), so ``Expr.__str__`` and
``Expr.__repr__`` call the printers registered in ``graph.PRINTERS``; this module registers
``infix`` and ``short_repr`` there when it is imported (``import symdiff`` always imports it,
since the ops import the precedence table). That registration is the one graph -> printing
link, and it points downward.

Infix text expands shared nodes, which can blow up exponentially on a DAG, so ``infix`` bounds
the *length of the text* (not the number of nodes): it first computes every node's text length
(an integer pass, capped), and only when the whole text fits builds it, as fragments joined in
one iterative pass, so a 100,000-node chain prints in time linear in its text.
``bounded_infix`` cuts every node's text to a width in one linear pass (comments in generated
code, error messages).
"""
from __future__ import annotations

from . import graph
from .errors import fmt_shape
from .graph import Expr, toposort

# precedence (higher binds tighter), after Python's own table
PREC_ATOM = 100
PREC_POW = 60
PREC_UNARY = 50
PREC_MUL = 40
PREC_ADD = 30
PREC_CMP = 20

INFIX_TEXT_LIMIT = 1_000_000  # characters of infix text beyond which str() summarizes


def const_text(node: Expr) -> str:
    """A constant as text: the number, a short list, or ``const(shape)``."""
    if node.shape == ():
        return repr(node.value.item())
    if node.size <= 6:
        return repr(node.value.tolist())
    return f"const{fmt_shape(node.shape)}"


def _paren(part, wrap: bool) -> list:
    return ["(", part, ")"] if wrap else [part]


def _node_fragments(node: Expr, parts: list[tuple[object, int]]) -> tuple[list, int]:
    """The text of ``node`` as fragments (strings and its inputs' handles from ``parts``, in
    order) and its precedence, from its inputs' (handle, precedence)."""
    if node.is_var:
        return [node.name], PREC_ATOM
    if node.is_const:
        s = const_text(node)
        return [s], (PREC_UNARY if s.startswith("-") else PREC_ATOM)
    op = node.op
    if op.symbol and len(parts) == 1:
        s, p = parts[0]
        return [op.symbol] + _paren(s, p < op.precedence), op.precedence
    if op.symbol and len(parts) == 2:
        (ls, lp), (rs, rp) = parts
        prec = op.precedence
        wrap_left = lp < prec or (prec == PREC_POW and lp == prec)
        # a - (b - c), a * (b @ c): the text parses back to the same graph
        wrap_right = rp < prec or (rp == prec and prec != PREC_POW)
        return _paren(ls, wrap_left) + [f" {op.symbol} "] + _paren(rs, wrap_right), prec
    suffix = op.suffix_text(node.inputs) if hasattr(op, "suffix_text") else None
    if suffix is not None and parts:
        base, precedence = parts[0]
        return _paren(base, precedence < PREC_ATOM) + [suffix], PREC_ATOM  # (a + b)[0]
    extra = op.params_text()
    fragments: list = [f"{op.name}("]
    for k, (s, _) in enumerate(parts):
        fragments += [", ", s] if k else [s]
    if extra:
        fragments.append(f", {extra}" if parts else extra)
    fragments.append(")")
    return fragments, PREC_ATOM


def _node_infix(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    """The text and precedence of ``node`` from its inputs' (text, precedence)."""
    fragments, precedence = _node_fragments(node, parts)
    return "".join(fragments), precedence


def infix(expr: Expr) -> str:
    """Python-style infix text of ``expr`` (what ``str`` returns); a placeholder naming the
    op, shape and node count when the text would exceed ``INFIX_TEXT_LIMIT`` characters."""
    order = toposort([expr])
    # each node's text as fragments: strings, and ints standing for an input's text (its id)
    fragments: dict[int, list] = {}
    precedence: dict[int, int] = {}
    length: dict[int, int] = {}
    for node in order:
        key = id(node)
        frags, precedence[key] = _node_fragments(
            node, [(id(i), precedence[id(i)]) for i in node.inputs])
        fragments[key] = frags
        total = 0
        for f in frags:
            total += length[f] if type(f) is int else len(f)
        length[key] = min(total, INFIX_TEXT_LIMIT + 1)
    if length[id(expr)] > INFIX_TEXT_LIMIT:
        return (f"<{expr.op.name if expr.op else 'node'} of shape {fmt_shape(expr.shape)}: "
                f"{len(order)} nodes, too large to print inline; see sd.pretty>")
    out: list[str] = []
    stack = fragments[id(expr)][::-1]
    while stack:  # expand the fragments depth-first, left to right
        item = stack.pop()
        if type(item) is int:
            stack.extend(fragments[item][::-1])
        else:
            out.append(item)
    return "".join(out)


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


# -- LaTeX pieces the ops' latex_form use (the typesetter itself is tools/inspect.to_latex) ---
_LATEX_ESCAPES = str.maketrans({
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}",
    "#": r"\#", "%": r"\%", "&": r"\&", "$": r"\$", "~": r"\~{}"})


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (for \\operatorname and \\text)."""
    return text.translate(_LATEX_ESCAPES)


def latex_group(part: tuple[str, int], at_least: int = PREC_ATOM) -> str:
    """The LaTeX of ``part`` (text, precedence), in \\left( \\right) when it binds looser
    than ``at_least``."""
    text, precedence = part
    return text if precedence >= at_least else f"\\left({text}\\right)"


graph.PRINTERS.update(str=infix, repr=short_repr)
