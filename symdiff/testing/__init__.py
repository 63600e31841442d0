"""Checking hand-written backprop against symdiff's exact gradient.

``check_backward(forward, backward, *inputs)`` traces ``forward`` (NumPy-style code run on
symdiff variables), derives its vector-Jacobian product symbolically, and compares it with the
user's ``backward`` at the same upstream gradients, to rounding; ``assert_backward_close`` is
the same check for pytest. :mod:`symdiff.testing.pytest_plugin` (loaded by pytest through the
``pytest11`` entry point) adds the ``symdiff_check`` fixture, and
:mod:`symdiff.testing.strategies` draws inputs with Hypothesis (imported only when used).

This package sits above ``tools`` in the layers: it only calls the public machinery (trace,
``vjp``, ``compile``) and never adds rules of its own.
"""
from .oracle import (BackwardReport, InputReport, assert_backward_close,  # noqa: F401
                     check_backward)

__all__ = ["BackwardReport", "InputReport", "assert_backward_close", "check_backward"]
