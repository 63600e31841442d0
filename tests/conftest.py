"""Shared pytest configuration: the long-run switch and a tally of robustness inputs.

The robustness tests (fuzzing, differential testing, deep graphs...) run in a bounded form by
default, so ``pytest -q`` stays fast. Their long form is switched on by the environment
variable ``SYMDIFF_LONG=1`` or, equivalently, by ``pytest --long``; each test reads its sizes
through :func:`long_run` / :func:`scaled`. Those tests are also marked ``slow`` (see
pyproject.toml), so ``pytest -m "not slow"`` skips them altogether.

Tests that try many inputs record how many in the ``robustness_tally`` fixture; the totals are
printed at the end of the session ("robustness tally"), which is how the long runs' counts are
reported.
"""
from __future__ import annotations

import os
from collections import Counter

import pytest

_TALLY: Counter = Counter()


def long_run() -> bool:
    """True when the long stress runs are requested (``SYMDIFF_LONG=1`` or ``--long``)."""
    return os.environ.get("SYMDIFF_LONG", "").strip().lower() not in ("", "0", "false", "no")


def scaled(default: int, long: int, env: str | None = None) -> int:
    """A size: ``default`` normally, ``long`` in a long run; ``env`` (a variable name) may
    override both with an explicit integer."""
    if env and os.environ.get(env, "").strip():
        return int(os.environ[env])
    return long if long_run() else default


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the robustness tests at full size (same as SYMDIFF_LONG=1)")


def pytest_configure(config):
    if config.getoption("--long", default=False):
        os.environ["SYMDIFF_LONG"] = "1"


@pytest.fixture(scope="session")
def robustness_tally() -> Counter:
    """A session-wide Counter: ``tally["parse inputs"] += 1``; printed at the end."""
    return _TALLY


def pytest_terminal_summary(terminalreporter):
    if not _TALLY:
        return
    mode = "long" if long_run() else "default (bounded)"
    terminalreporter.write_sep("-", f"robustness tally, {mode} mode")
    for key in sorted(_TALLY):
        terminalreporter.write_line(f"{key:<52} {_TALLY[key]:>10,}")
