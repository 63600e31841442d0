"""The symdiff pytest plugin: a ``symdiff_check`` fixture for hand-written backprop.

Loaded by pytest through the ``pytest11`` entry point whenever symdiff is installed; turn it
off with ``pytest -p no:symdiff``. Loading it imports only pytest: the checker is imported
when the fixture is first used, and Hypothesis only through ``symdiff_check.strategies``.

    def test_affine(symdiff_check):
        symdiff_check(affine_forward, affine_backward, x, w, b)   # AssertionError + report
        report = symdiff_check.report(affine_forward, affine_backward, x, w, b)
"""
from __future__ import annotations

import pytest


class BackwardChecker:
    """Call it like :func:`symdiff.testing.assert_backward_close`; ``.report(...)`` is
    :func:`symdiff.testing.check_backward`; ``.strategies`` the Hypothesis strategies
    (skips the test when Hypothesis is not installed)."""

    def __call__(self, forward, backward, *inputs, **options):
        from .oracle import assert_backward_close
        return assert_backward_close(forward, backward, *inputs, **options)

    def report(self, forward, backward, *inputs, **options):
        from .oracle import check_backward
        return check_backward(forward, backward, *inputs, **options)

    @property
    def strategies(self):
        pytest.importorskip("hypothesis", reason="symdiff_check.strategies needs Hypothesis")
        from . import strategies
        return strategies


@pytest.fixture
def symdiff_check() -> BackwardChecker:
    """Checks a hand-written backward against symdiff's exact gradient (see
    :class:`BackwardChecker`)."""
    return BackwardChecker()
