"""DOT output of ``to_dot`` and ``explain`` renders for any shapes and names (issue 10, item 13).

Every label text goes through one escaping function (``tools.inspect.dot_escape``): array
summaries such as ``<float64 array (5,)>`` inside the HTML-like edge labels of ``explain``,
quotes, backslashes and newlines in labels, and variable names that are DOT keywords. Each
test hands the DOT text to Graphviz's ``dot`` (skipped when it is not installed).
"""
from __future__ import annotations

import html
import shutil

import numpy as np
import pytest

import symdiff as sd
from symdiff.tools.inspect import dot_escape

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")


@needs_dot
def test_explain_of_a_vector_graph_renders(tmp_path):
    x = sd.var("x", (5,))
    w = sd.var("w", (5,))
    e = sd.explain(sd.sum(sd.tanh(w * x)), [w], {"x": np.arange(5.0), "w": np.ones(5) * 0.1})
    assert "x = x                                  = [0, 1, 2, 3, 4]" in e.table()
    path = sd.render(e, tmp_path / "vector.svg")
    assert "[0, 1, 2, 3, 4]" in path.read_text()


@needs_dot
def test_explain_of_a_large_vector_renders_its_summary(tmp_path):
    x = sd.var("x", (50,))
    e = sd.explain(sd.sum(sd.relu(x)), [x], {"x": np.arange(50.0) - 9.0})
    summary = "float64 (50,): min -9 mean 15.5 max 40, 2% zeros"
    assert summary in e.table()
    assert summary in html.unescape(sd.render(e, tmp_path / "large.svg").read_text())


@needs_dot
def test_explain_of_a_matrix_graph_renders(tmp_path):
    W = sd.var("W", (3, 4))
    v = sd.var("v", (4,))
    y = sd.sum(sd.relu(W @ v))
    rng = np.random.default_rng(0)
    e = sd.explain(y, [W, v], {"W": rng.normal(size=(3, 4)), "v": rng.normal(size=4)})
    assert sd.render(e, tmp_path / "matrix.png").read_bytes().startswith(b"\x89PNG")
    assert sd.render([y, *sd.grad(y, [W, v])], tmp_path / "graph.svg").stat().st_size > 0


@needs_dot
def test_awkward_names_and_texts_render(tmp_path):
    node, edge = sd.var("node"), sd.var("edge")  # DOT keywords as variable names
    y = sd.exp(node) * edge
    e = sd.explain(y, [node, edge], {"node": 1.0, "edge": 2.0})
    sd.render(e, tmp_path / "keywords.svg")
    sd.render([y, sd.grad(y, node)], tmp_path / "keywords2.svg")


def test_dot_escape_closes_nothing():
    assert dot_escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert dot_escape("<float64 array (5,)> & \"q\"\n", html=True) == (
        "&lt;float64 array (5,)&gt; &amp; &quot;q&quot;<br/>")
