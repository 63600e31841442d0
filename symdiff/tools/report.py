"""One self-contained HTML page about a derivative: ``report(exprs, path, at=None)``.

The page holds the graph picture (inline SVG from Graphviz, forward and gradient nodes coloured
as ``render`` colours them), the ``pretty`` listing with each line linked to its node in the
picture and each node linked back to its line, the generated NumPy code, the LaTeX of every
output (drawn to inline SVG by matplotlib's mathtext when matplotlib is installed, else shown
as LaTeX source), and, given ``at``, the ``explain`` table and ``why`` for each variable.

Nothing is fetched when the page is viewed: no script, no font, no stylesheet from elsewhere;
the styles are inline and the page needs no JavaScript. Every text goes through
``html.escape``.
"""
from __future__ import annotations

import html
import io
import shutil
from pathlib import Path

from ..errors import SymdiffError, expect_mapping, expect_path
from ..graph import Expr, expect_exprs, free_vars
from ..grad import grad, gradient_labels
from ..compiler import compile as compile_fn
from .explain import explain, fmt
from .inspect import pretty, to_dot, to_latex
from .render import dot_to

MATHTEXT_LIMIT = 1500   # characters of LaTeX beyond which the source is shown, not drawn

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.listing a { color: inherit; text-decoration: none; display: block; }
.listing a:hover, .listing a:target { background: #fde2c8; }
.top { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1em; }
.graph { overflow: auto; border: 1px solid #ddd; padding: 0.5em; max-height: 90vh; }
.graph svg { max-width: 100%; height: auto; }
.top .listing { max-height: 90vh; overflow: auto; margin: 0; }
.graph g.node:target polygon, .graph g.node:target ellipse, .graph g.node:target path {
  stroke: #c62828; stroke-width: 3; }
table.explain { border-collapse: collapse; font-size: 0.85em; }
table.explain td, table.explain th { border: 1px solid #ccc; padding: 0.2em 0.5em;
  vertical-align: top; text-align: left; }
table.explain td pre { margin: 0; padding: 0.2em; background: none; }
td.value { color: #2e7d32; } td.gradient { color: #c62828; }
.latex svg { max-width: 100%; height: auto; }
.why { background: #fff8e1; }
"""


def _svg_body(svg: str) -> str:
    """SVG text without its XML prolog and doctype, to sit inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def latex_svg(latex: str) -> str | None:
    """``latex`` drawn to SVG by matplotlib's mathtext, or None when matplotlib is missing, the
    text is too long, or mathtext does not know a command."""
    if len(latex) > MATHTEXT_LIMIT:
        return None
    try:
        from matplotlib.mathtext import math_to_image
    except ImportError:
        return None
    buffer = io.BytesIO()
    try:
        math_to_image(f"${latex}$", buffer, format="svg", dpi=100)
    except Exception:  # mathtext's parse errors are ValueErrors, its layout others: show source
        return None
    return _svg_body(buffer.getvalue().decode())


def _graph_section(outputs: list[Expr]) -> str:
    if shutil.which("dot") is None:
        return "<p>Graphviz's <code>dot</code> is not installed: no picture.</p>"
    svg = dot_to(to_dot(*outputs, anchors=True), "svg").decode()
    return f'<div class="graph" id="graph">{_svg_body(svg)}</div>'


def _listing_section(outputs: list[Expr]) -> str:
    rows = []
    for line in pretty(*outputs).splitlines():
        name, sep, _ = line.partition(" = ")
        if sep and not line.startswith("return "):
            anchor = html.escape(name.strip(), quote=True)
            rows.append(f'<a id="line_{anchor}" href="#node_{anchor}">{html.escape(line)}</a>')
        else:
            rows.append(f"<span>{html.escape(line)}</span>")
    return '<pre class="listing" id="listing">' + "".join(rows) + "</pre>"


def _latex_section(outputs: list[Expr], labels: dict[int, str]) -> str:
    parts = []
    for k, out in enumerate(outputs):
        label = labels.get(id(out)) or ("J" if k == 0 else f"y_{k}")
        latex = to_latex(out)
        drawn = latex_svg(latex)
        body = drawn if drawn is not None else f"<pre>{html.escape(latex)}</pre>"
        parts.append(f'<div class="latex"><b>{html.escape(label)}</b> = {body}</div>')
    return "".join(parts)


def _explain_section(loss: Expr, wrt: list[Expr], at: dict) -> str:
    e = explain(loss, wrt, at)
    rows = ["<tr><th>node</th><th>computes</th><th>value</th><th>gradient dJ/d(node)</th></tr>"]
    for n in e.nodes:
        gradient = "pruned" if n.pruned else fmt(n.gradient)
        rows.append(f"<tr><td>{html.escape(n.name)}</td><td>{html.escape(n.text)}</td>"
                    f'<td class="value"><pre>{html.escape(fmt(n.value))}</pre></td>'
                    f'<td class="gradient"><pre>{html.escape(gradient)}</pre></td></tr>')
    table = '<table class="explain" id="explain">' + "".join(rows) + "</table>"
    why = "".join(f'<h3>why: {html.escape(w.name)}</h3><pre class="why">'
                  f"{html.escape(e.why(w.name))}</pre>" for w in wrt)
    steps = f"<details><summary>backprop step by step</summary><pre>" \
            f"{html.escape(e.table())}</pre></details>"
    return table + steps + why


def report(exprs, path, at: dict | None = None, wrt=None, title: str | None = None) -> Path:
    """Write one self-contained HTML page about ``exprs`` to ``path``; returns the path.

    ``exprs``: one Expr or a list. A loss given alone (no gradients listed with it) is shown
    with its gradients with respect to ``wrt`` (default: its float variables). ``at`` (name ->
    value) adds the ``explain`` table of the loss (the first output) and ``why`` for each
    variable of ``wrt``. Raises SymdiffError for a bad argument, GraphvizMissingError never
    (the page says the picture is missing).

    >>> import symdiff as sd, tempfile, os
    >>> x = sd.var("x", (3,))
    >>> path = sd.report(sd.sum(sd.tanh(x)), os.path.join(tempfile.mkdtemp(), "r.html"),
    ...                  at={"x": [0.5, -1.0, 30.0]})
    >>> text = path.read_text(); "dJ/dx" in text and "saturated at 1 of 3 entries" in text
    True
    """
    outputs, _ = expect_exprs(exprs, "exprs", "report")
    path = Path(expect_path(path, "path", "report"))
    if title is not None and not isinstance(title, str):
        raise SymdiffError(f"report: title must be a string, got {type(title).__name__}")
    loss = outputs[0]
    if wrt is None:
        wrt_list = [v for v in free_vars(loss) if v.dtype.kind == "f"]
    else:
        wrt_list, _ = expect_exprs(wrt, "wrt", "report")
    labels = gradient_labels(outputs)
    if not labels and loss.shape == () and wrt_list:
        outputs = [loss, *grad(loss, wrt_list)]
        labels = gradient_labels(outputs)
    variables = free_vars(outputs)
    source = compile_fn(outputs, variables).source
    heading = title or f"J = {loss}"
    sections = [f"<h1>{html.escape(heading[:300])}</h1>",
                "<h2>Graph and listing</h2><p>Forward nodes grey, the nodes build_grad added "
                "orange. Each line of the listing links to its node in the picture; each node "
                "to its line.</p>",
                f'<div class="top">{_graph_section(outputs)}{_listing_section(outputs)}</div>',
                "<h2>Generated code</h2>", f'<pre id="code"><code>{html.escape(source)}'
                                           f"</code></pre>",
                "<h2>LaTeX</h2>", _latex_section(outputs, labels)]
    if at is not None:
        expect_mapping(at, "at", "report")
        if loss.shape != ():
            raise SymdiffError(f"report: at= explains a scalar loss; the first output has "
                               f"shape {loss.shape}")
        sections += ["<h2>Backprop at the given point</h2>", _explain_section(loss, wrt_list,
                                                                             at)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(heading[:120])}</title><style>{_STYLE}</style></head>"
            "<body>" + "\n".join(sections) + "</body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path
