"""backend="numba": the op table and graph shapes the fused loops handle (broadcast reads,
reductions folded into loops, small matrix products as loops, float32), agreement with
backend="numpy", ownership of returned arrays, the disk cache, and the rule of "auto"."""
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import symdiff as sd
from symdiff.compiler import auto_picks_numba
from symdiff.graph import toposort
from symdiff.lower import numba as nb_lower

from cases import ROWS

pytest.importorskip("numba")


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """A fresh disk cache for this module (restored afterwards)."""
    old = os.environ.get("SYMDIFF_CACHE_DIR")
    os.environ["SYMDIFF_CACHE_DIR"] = str(tmp_path_factory.mktemp("symdiff-cache"))
    yield
    if old is None:
        os.environ.pop("SYMDIFF_CACHE_DIR")
    else:
        os.environ["SYMDIFF_CACHE_DIR"] = old


def _agree(got, want, rtol=1e-10):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _agree(g, w, rtol)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def _row_graph(row, case, dtype, prefix=""):
    xs = [sd.var(f"{prefix}x{i}", shape, dtype) for i, shape in enumerate(case.shapes)]
    out = row.build(*xs, **case.params)
    point = [np.asarray(p, dtype=dtype) for p in
             row.sample(np.random.default_rng(zlib.crc32(row.op.encode())), case)]
    outputs = [out]
    if row.gradient == "fd" and out.dtype.kind == "f":
        weights = np.linspace(0.5, 1.5, max(out.size, 1)).reshape(out.shape).astype(dtype)
        outputs += sd.grad(sd.sum(out * sd.const(weights)), xs)
    return xs, outputs, point


# one graph per dtype holding every row's value and gradient (a bounded run: one compile)
FUSIBLE = [row for row in ROWS if row.op in (
    "exp log log1p expm1 sqrt square abs sin cos tan tanh sigmoid softplus relu leaky_relu "
    "hardtanh maximum minimum where clip power sum mean matmul broadcast_to add subtract "
    "multiply divide negative stop_gradient transpose".split())]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_op_table_rows_agree_with_numpy(dtype):
    names, inputs, outputs, point = [], [], [], []
    for k, row in enumerate(FUSIBLE):
        case = row.cases[0]
        xs, outs, p = _row_graph(row, case, dtype, f"r{k}_")
        names += [row.op] * len(outs)
        inputs += xs
        outputs += outs
        point += p
    assert len(FUSIBLE) >= 30
    fast = sd.compile(outputs, inputs, backend="numba")
    assert fast.backend == "numba" and "@nb.njit" in fast.source
    want = sd.compile(outputs, inputs, backend="numpy")(*point)
    got = fast(*point)
    rtol = 1e-10 if dtype == "float64" else 2e-5
    for name, g, w in zip(names, got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype), name
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=name)
