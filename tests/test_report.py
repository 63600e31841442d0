"""``sd.report``: one self-contained HTML page (issue 13). The page is checked as text, then
opened in a real headless Chromium through the DevTools protocol (skipped when no browser is
installed; CI installs Debian's chromium): the picture, the code and the table must be
visible, the console must stay free of errors, and nothing may be fetched from a network."""
from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest

import symdiff as sd
from symdiff.cli import main
from symdiff.training.models import mlp_loss

from cdp import Browser, find_browser

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
needs_browser = pytest.mark.skipif(find_browser() is None, reason="no Chromium installed")


def mlp_report(path):
    """Goodfellow's MLP (softmax cross-entropy, weight decay) at a point, as a report."""
    model = mlp_loss(4, 3, 5, 2, lam=1e-3)
    rng = np.random.default_rng(0)
    at = {"X": rng.normal(size=(4, 3)), "Y": np.eye(2)[[0, 1, 1, 0]],
          "W1": rng.normal(0, 0.5, (3, 5)), "b1": np.zeros(5),
          "W2": rng.normal(0, 0.5, (5, 2)), "b2": np.zeros(2)}
    return sd.report(model.loss, path, at=at, wrt=model.params), model


@needs_dot
def test_report_holds_every_section_and_links_lines_to_nodes(tmp_path):
    path, model = mlp_report(tmp_path / "mlp.html")
    page = path.read_text()
    for marker in ('id="graph"', 'id="listing"', 'id="code"', 'id="explain"', "why: W1",
                   "dJ/dW1", "def "):
        assert marker in page, marker
    assert "<script" not in page and "<link" not in page and " src=" not in page
    lines = set(re.findall(r'id="line_([^"]+)"', page))
    nodes = set(re.findall(r'id="node_([^"]+)"', page))
    assert lines and lines == nodes  # every listed node is drawn, every drawn node listed
    assert set(re.findall(r'href="#node_([^"]+)"', page)) == lines
    assert page.count("<svg") >= 2  # the graph and the LaTeX drawn by mathtext


def test_report_without_matplotlib_shows_latex_source(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.mathtext", None)  # import now fails
    x = sd.var("x", (3,))
    page = sd.report(sd.sum(sd.tanh(x)), tmp_path / "r.html").read_text()
    assert "\\tanh" in page
    with pytest.raises(sd.SymdiffError, match="at= explains a scalar loss"):
        sd.report(sd.tanh(x), tmp_path / "r.html", at={"x": np.zeros(3)})


def test_cli_report(tmp_path, capsys):
    out = tmp_path / "page.html"
    status = main(["report", "sum(relu(W @ x + b))", "--wrt", "W,b", "--shape", "W=3x4,x=4,b=3",
                   "--at", "b=-10", "-o", str(out)])
    assert status == 0
    page = out.read_text()
    assert "why: W" in page and "all 3 entries have zero local derivative" in page
    assert str(out) in capsys.readouterr().out


@needs_dot
@needs_browser
def test_report_in_a_headless_browser(tmp_path):
    path, _ = mlp_report(tmp_path / "mlp.html")
    with Browser(tmp_path / "profile") as browser:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                     deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", url=path.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        check = """JSON.stringify(['#graph svg', '#code', '#explain', '#listing', '.latex svg']
          .map(sel => { const el = document.querySelector(sel); if (!el) return [sel, false];
            const r = el.getBoundingClientRect(), s = getComputedStyle(el);
            return [sel, r.width > 50 && r.height > 20 && s.visibility === 'visible'
                         && s.display !== 'none']; }))"""
        result = browser.call("Runtime.evaluate", expression=check, returnByValue=True)
        visible = dict(__import__("json").loads(result["result"]["value"]))
        assert visible == {sel: True for sel in visible}, visible
        nodes = browser.call("Runtime.evaluate", returnByValue=True,
                             expression="document.querySelectorAll('#graph g.node').length")
        assert nodes["result"]["value"] > 10
        errors = [e for e in browser.events
                  if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled"
                      and e["params"]["type"] in ("error", "assert"))
                  or (e.get("method") == "Log.entryAdded"
                      and e["params"]["entry"]["level"] == "error")]
        assert errors == []
        fetched = [e["params"]["request"]["url"] for e in browser.events
                   if e.get("method") == "Network.requestWillBeSent"]
        assert all(url.startswith(("file:", "data:")) for url in fetched), fetched
        shot = browser.call("Page.captureScreenshot", format="png")
        assert len(shot["data"]) > 10_000
