"""Drawing graphs with Graphviz's ``dot`` program (Debian package ``graphviz``).

symdiff writes DOT text itself (``to_dot``, ``Explanation.to_dot``) and hands it to ``dot`` on
the command line, exactly what the ``graphviz`` Python package does, without adding a runtime
dependency. A missing ``dot`` is a SymdiffError that says how to install it.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .. import graph
from ..errors import SymdiffError, argument_error, expect_path
from ..graph import Expr, expect_exprs
from .inspect import to_dot

FORMATS = ("svg", "png", "pdf")


class GraphvizMissingError(SymdiffError):
    """Graphviz's ``dot`` program is not installed."""


def _dot_program() -> str:
    path = shutil.which("dot")
    if path is None:
        raise GraphvizMissingError(
            "Graphviz's 'dot' program was not found; install it with "
            "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or "
            "'conda install graphviz'")
    return path


def dot_to(dot_source: str, format: str = "svg") -> bytes:  # noqa: A002 (graphviz's word)
    """Run ``dot -T<format>`` on DOT text and return the drawing's bytes."""
    if format not in FORMATS:
        raise SymdiffError(f"render: format must be one of {FORMATS}, got {format!r}")
    result = subprocess.run([_dot_program(), f"-T{format}"], input=dot_source.encode(),
                            capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise SymdiffError(f"render: dot failed: {result.stderr.decode(errors='replace')[:500]}")
    return result.stdout


def dot_to_svg_or_none(dot_source: str):
    """SVG text for Jupyter, or None when ``dot`` is not installed."""
    if shutil.which("dot") is None:
        return None
    return dot_to(dot_source, "svg").decode()


def render(exprs, path, format: str | None = None) -> Path:  # noqa: A002
    """Draw ``exprs`` (one Expr, a list of them, or anything with ``to_dot()`` such as an
    ``explain`` result) to ``path`` as SVG, PNG or PDF (``format`` defaults to the suffix).
    Returns the path written."""
    path = Path(expect_path(path, "path", "render"))
    if format is not None and not isinstance(format, str):
        raise argument_error("render", "format", "'svg', 'png', 'pdf' or None", format)
    format = format or path.suffix.lstrip(".") or "svg"
    if hasattr(exprs, "to_dot"):
        source = exprs.to_dot()
    else:
        source = to_dot(*expect_exprs(exprs, "exprs", "render")[0])
    path.write_bytes(dot_to(source, format))
    return path


def _repr_svg(expr: Expr):
    """The graph as SVG for Jupyter, or None when Graphviz is missing."""
    return dot_to_svg_or_none(to_dot(expr))


graph.PRINTERS["svg"] = _repr_svg  # Expr._repr_svg_ (graph.py imports no printer)
