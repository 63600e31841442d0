"""Hypothesis strategies for the inputs of a forward: arrays with the shapes and domains it
needs (positive for a log or a sqrt, away from the kinks of relu or abs).

Imported only when used: ``import symdiff`` and the pytest plugin never import Hypothesis.
Without Hypothesis installed, importing this module raises :class:`MissingDependency` (an
ImportError, so ``pytest.importorskip`` works, and a SymdiffError).

    from hypothesis import given
    from symdiff.testing import strategies as sds

    @given(sds.inputs({"x": (4, 3), "w": (3, 2)}, domains={"x": "away_from_kinks"}))
    def test_layer(inputs):
        assert_backward_close(forward, backward, *inputs)
"""
from __future__ import annotations

import numpy as np

from ..errors import SymdiffError


class MissingDependency(SymdiffError, ImportError):
    """An optional dependency (here Hypothesis) is not installed."""


try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover (exercised through a blocked import in the tests)
    raise MissingDependency("symdiff.testing.strategies needs Hypothesis: "
                            "pip install hypothesis (or symdiff[test])") from None

DOMAINS = ("any", "positive", "away_from_kinks")


def _elements(domain, lo: float, hi: float, kinks, margin: float, dtype):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    if isinstance(domain, tuple):
        lo, hi = float(domain[0]), float(domain[1])
        domain = "any"
    if domain not in DOMAINS:
        raise SymdiffError(f"strategies: domain must be one of {DOMAINS} or a (lo, hi) pair, "
                           f"got {domain!r}")
    if domain == "positive":
        lo = max(lo, margin)
        if hi <= lo:
            hi = lo + 2.0
    floats = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width)
    if domain == "away_from_kinks":
        kinks = tuple(float(k) for k in kinks)
        # map rather than filter: a value too near a kink is pushed out to the margin
        return floats.map(lambda v: _push_out(v, kinks, margin))
    return floats


def _push_out(value: float, kinks: tuple, margin: float) -> float:
    for k in kinks:
        if abs(value - k) < margin:
            value = k + margin if value >= k else k - margin
    return value


def arrays(shape, domain="any", dtype="float64", lo: float = -2.0, hi: float = 2.0,
           kinks=(0.0,), margin: float = 0.1):
    """A strategy of float arrays of ``shape``: ``domain`` is ``"any"`` (uniform-ish on
    ``[lo, hi]``), ``"positive"`` (``[margin, hi]``), ``"away_from_kinks"`` (at least
    ``margin`` from every point of ``kinks``) or a ``(lo, hi)`` pair."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return hnp.arrays(np.dtype(dtype), shape,
                      elements=_elements(domain, lo, hi, kinks, margin, dtype))


def inputs(shapes, domains=None, dtype="float64", **options):
    """A strategy of a tuple of arrays, one per entry of ``shapes`` (a dict name -> shape, in
    the forward's parameter order, or a list of shapes); ``domains`` maps a name (or a
    position) to its domain (default ``"any"``); other options as :func:`arrays`."""
    items = list(shapes.items()) if isinstance(shapes, dict) else list(enumerate(shapes))
    domains = domains or {}
    return st.tuples(*(arrays(shape, domains.get(key, "any"), dtype, **options)
                       for key, shape in items))
