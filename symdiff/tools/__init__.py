"""Tools for looking at graphs: inspect (pretty, to_dot, to_latex), render (Graphviz), explain,
check (gradient checking).

``tools.inspect`` registers Expr's Jupyter display (``_repr_latex_``, ``_repr_svg_``) in
``graph.PRINTERS`` when it is imported: graph sits below the printers and Graphviz in the
layers, so the printers plug themselves in from above rather than graph importing upward.
"""
