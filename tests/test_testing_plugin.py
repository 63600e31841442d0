"""The pytest plugin (``symdiff_check`` fixture) and the Hypothesis strategies, run through
``pytester`` in a separate pytest session."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def _plugin_args() -> list[str]:
    """Load the plugin explicitly unless the installed package already declares it."""
    installed = any(ep.value == "symdiff.testing.pytest_plugin"
                    for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "symdiff.testing.pytest_plugin"]


def _run(pytester, *args):
    """A separate pytest process (numpy cannot be imported twice in one) on this checkout."""
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester.runpytest_subprocess(*args)


LAYER = '''
import numpy as np

def affine_forward(x, w, b):
    return x @ w + b

def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)

def affine_backward_mean(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)

rng = np.random.default_rng(0)
ARGS = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
'''


def test_pyproject_declares_the_entry_point():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.entry-points.pytest11]\n", 1)[1].split("\n[", 1)[0]
    assert 'symdiff = "symdiff.testing.pytest_plugin"' in section.splitlines()


def test_fixture_passes_and_fails_with_the_report(pytester):
    pytester.makepyfile(LAYER + '''
def test_right(symdiff_check):
    report = symdiff_check(affine_forward, affine_backward, *ARGS)
    assert report.ok

def test_report_only(symdiff_check):
    assert not symdiff_check.report(affine_forward, affine_backward_mean, *ARGS).ok

def test_wrong(symdiff_check):
    symdiff_check(affine_forward, affine_backward_mean, *ARGS)
''')
    result = _run(pytester, *_plugin_args())
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*WRONG gradient for b*", "*hint: scaled by 1/4*"])


def test_opt_out_removes_the_fixture(pytester):
    pytester.makepyfile("def test_uses(symdiff_check):\n    pass\n")
    result = _run(pytester, "-p", "no:symdiff", "-p", "no:symdiff.testing.pytest_plugin")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'symdiff_check' not found*"])


def test_strategies_with_hypothesis(pytester):
    pytest.importorskip("hypothesis")
    pytester.makepyfile(LAYER + '''
import numpy as np
from hypothesis import given, settings

from symdiff.testing import strategies as sds

def relu_forward(x):
    return np.maximum(x, 0)

def relu_backward(dout, x):
    return dout * (x > 0)

def log_forward(x):
    return np.log(x)

def log_backward(dout, x):
    return dout / x

@settings(max_examples=15, deadline=None)
@given(sds.inputs({"x": (3, 4)}, domains={"x": "away_from_kinks"}))
def test_relu(inputs):
    (x,) = inputs
    assert np.all(np.abs(x) >= 0.1)
    from symdiff.testing import assert_backward_close
    assert_backward_close(relu_forward, relu_backward, x)

@settings(max_examples=15, deadline=None)
@given(sds.arrays((5,), "positive"))
def test_log(x):
    assert np.all(x > 0)
    from symdiff.testing import assert_backward_close
    assert_backward_close(log_forward, log_backward, x)

def test_fixture_strategies(symdiff_check):
    assert symdiff_check.strategies is sds
''')
    result = _run(pytester, *_plugin_args())
    result.assert_outcomes(passed=3)


def test_plugin_works_without_hypothesis(pytester):
    pytester.makeconftest("import sys\nsys.modules['hypothesis'] = None\n")
    pytester.makepyfile(LAYER + '''
import pytest

def test_check_still_works(symdiff_check):
    symdiff_check(affine_forward, affine_backward, *ARGS)

def test_strategies_skip(symdiff_check):
    symdiff_check.strategies

def test_import_names_the_dependency():
    with pytest.raises(ImportError, match="needs Hypothesis"):
        import symdiff.testing.strategies
''')
    # Hypothesis's own pytest plugin is switched off too: it is missing along with Hypothesis
    result = _run(pytester, "-p", "no:hypothesispytest", *_plugin_args())
    result.assert_outcomes(passed=2, skipped=1)


def test_loading_the_plugin_does_not_import_hypothesis():
    code = ("import sys; import symdiff.testing.pytest_plugin; "
            "print('hypothesis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["False"]
