"""Tools for looking at graphs: inspect (pretty, to_dot, to_latex), render (Graphviz), explain,
check (gradient checking).

Importing this package installs :class:`~symdiff.graph.Expr`'s Jupyter display hooks
(``_repr_latex_``, ``_repr_svg_``) into ``graph.DISPLAY_HOOKS``: graph sits below the printers
and Graphviz in the layers, so the printers plug themselves in from above rather than graph
importing upward.
"""
from ..graph import DISPLAY_HOOKS, Expr
from .inspect import repr_latex, to_dot
from .render import dot_to_svg_or_none


def _repr_svg(expr: Expr):
    """The graph as SVG for Jupyter, or None when Graphviz is missing."""
    return dot_to_svg_or_none(to_dot(expr))


DISPLAY_HOOKS["latex"] = repr_latex
DISPLAY_HOOKS["svg"] = _repr_svg
