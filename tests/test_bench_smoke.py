"""The benchmark's correctness, tested in CI (no timing is asserted anywhere).

- The hand-written references themselves agree with central finite differences (so a "symdiff
  matches the reference" check means something).
- The whole harness runs in ``--quick`` mode with every peer made unimportable: every symdiff
  result agrees with the hand-written reference, and each peer shows as "not installed".
- With the peers that are installed (PyTensor left out: its numba compile alone can take a
  minute on a cold cache), every peer's result agrees with the reference too.

The harness runs in child processes, as ``python -m benchmarks.run`` would, so JAX's and
PyTorch's global settings and threads never leak into the rest of the test session.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import handwritten as hw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ("jax", "torch", "autograd", "pytensor", "casadi")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")


# ---------------------------------------------------------------------------------------------
# the references against finite differences
# ---------------------------------------------------------------------------------------------
def _fd(f, x, eps=1e-6, picks=12, seed=0):
    """Central differences of scalar ``f`` at a few entries of array ``x`` (changed in place and
    restored). Returns (indices, estimates)."""
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=min(picks, flat.size), replace=False)
    est = []
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        est.append((up - down) / (2 * eps))
    return idx, np.array(est)


def _assert_fd(f, x, g, tol=1e-6):
    idx, est = _fd(f, x)
    got = g.reshape(-1)[idx]
    np.testing.assert_allclose(got, est, rtol=tol, atol=tol)


def test_mlp_reference_gradient_and_hvp():
    from benchmarks.w1_mlp import make_data
    X, Y, W1, b1, W2, b2, V = make_data({"n": 16, "d": 5, "hidden": 7, "classes": 3}, seed=3)
    value, grads = hw.mlp_value_and_grad(X, Y, W1, b1, W2, b2)
    assert value == pytest.approx(hw.mlp_forward(X, Y, W1, b1, W2, b2), rel=1e-12)
    for p, g in zip((W1, b1, W2, b2), grads):
        _assert_fd(lambda: hw.mlp_forward(X, Y, W1, b1, W2, b2), p, g)
    # H v is the directional derivative of the gradient along V
    eps = 1e-6
    up = hw.mlp_value_and_grad(X, Y, W1 + eps * V, b1, W2, b2)[1][0]
    down = hw.mlp_value_and_grad(X, Y, W1 - eps * V, b1, W2, b2)[1][0]
    np.testing.assert_allclose(hw.mlp_hvp(X, Y, W1, b1, W2, b2, V), (up - down) / (2 * eps),
                               rtol=1e-5, atol=1e-7)


def test_deep_reference_gradient():
    from benchmarks.w2_deep import make_data
    X, T, Ws, bs = make_data(seed=4)
    value, grads = hw.deep_value_and_grad(X, T, Ws, bs)

    def loss():
        return hw.deep_value_and_grad(X, T, Ws, bs)[0]
    assert value == pytest.approx(loss())
    for k in range(len(Ws)):
        _assert_fd(loss, Ws[k], grads[2 * k])
        _assert_fd(loss, bs[k], grads[2 * k + 1])


def test_elementwise_reference_gradient():
    x = np.random.default_rng(5).standard_normal(200) * 3.0
    value, (g,) = hw.elementwise_value_and_grad(x)
    plain = float(np.sum(np.tanh(x / (1 + np.exp(-x)) + np.log1p(np.exp(x))) ** 2
                         + np.exp(-x ** 2)))
    assert value == pytest.approx(plain, rel=1e-12)
    assert hw.elementwise_forward(x) == pytest.approx(value, rel=1e-12)
    _assert_fd(lambda: hw.elementwise_forward(x), x, g)


def test_conv_reference_gradient():
    from benchmarks.w9_conv import handwritten
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((4, 3, 3, 3))
    value, (gx, gw) = handwritten(x, w)
    assert gx.shape == x.shape and gw.shape == w.shape
    _assert_fd(lambda: handwritten(x, w)[0], x, gx)
    _assert_fd(lambda: handwritten(x, w)[0], w, gw)


def test_scalar_references():
    for depth in (1, 5, 40):
        v, d = hw.nested_value_and_grad(0.7, depth)
        assert v == hw.nested_value(0.7, depth)
        eps = 1e-7
        fd = (hw.nested_value(0.7 + eps, depth) - hw.nested_value(0.7 - eps, depth)) / (2 * eps)
        assert d == pytest.approx(fd, rel=1e-5, abs=1e-7)
    assert hw.tiny_value_and_grad(1.0, 2.0, 0.0) == (6.0, (2.0, 5.0, 0.0))  # CS224n
    assert hw.tiny_value_and_grad(1.0, 0.0, 2.0) == (2.0, (2.0, 2.0, 1.0))


def test_bigdag_reference_gradient():
    from benchmarks.w4_bigdag import inputs_values, make_dag, reference
    dag = make_dag(300, seed=2)
    xs = inputs_values(2)
    value, grad = reference(dag, xs)
    assert all(math.isfinite(v) for v in [value, *grad])
    eps = 1e-6
    for k in range(len(xs)):
        up, down = list(xs), list(xs)
        up[k] += eps
        down[k] -= eps
        fd = (reference(dag, up)[0] - reference(dag, down)[0]) / (2 * eps)
        assert grad[k] == pytest.approx(fd, rel=1e-5, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# the harness, --quick
# ---------------------------------------------------------------------------------------------
_BLOCKED_RUN = r"""
import sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[3].split(","):
    sys.modules[name] = None          # "import name" now raises ImportError: as if not installed
from benchmarks.run import main, symdiff_ok
res = main(["--quick", "--json", sys.argv[2]])
sys.exit(0 if symdiff_ok(res) else 1)
"""


def _run(args, tmp_path, timeout=300):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return proc


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def _assert_symdiff_agrees(data, output):
    symdiff_checks = [c for c in data["checks"] if c["impl"].startswith("symdiff")]
    assert symdiff_checks, output
    bad = [c for c in symdiff_checks if not c["ok"]]
    assert not bad, f"symdiff disagrees with the hand-written reference: {bad}\n{output}"
    broken = [(r["workload"], r["case"], r["impl"], r["status"]) for r in data["rows"]
              if r["impl"].startswith("symdiff") and r["status"] != "ok"]
    assert not broken, f"symdiff rows not ok: {broken}\n{output}"
    # every workload was compared with its reference
    assert {c["workload"] for c in symdiff_checks} == set(WORKLOADS), output
    for w in WORKLOADS:
        assert any(r["workload"] == w and r["impl"] == "symdiff" and r["time_s"] is not None
                   for r in data["rows"]), (w, output)


def test_quick_run_without_peers(tmp_path):
    out = tmp_path / "quick.json"
    blocked = ["jax", "jaxlib", "torch", "autograd", "pytensor", "casadi"]
    proc = _run(["-c", _BLOCKED_RUN, ROOT, str(out), ",".join(blocked)], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Targets (issue 4)" in proc.stdout
    data = _load(out)
    _assert_symdiff_agrees(data, output)
    peer_rows = [r for r in data["rows"] if r["impl"] in PEERS]
    assert peer_rows
    assert all(r["status"] == "not installed" for r in peer_rows), peer_rows
    assert all(v.startswith("not installed") for v in data["info"]["peers"].values())
    # hand-written references were timed and are what symdiff is compared with
    assert any(r["impl"] == "hand-written NumPy" and r["time_s"] for r in data["rows"])
    assert data["targets"] and all(t["status"] in ("met", "missed", "not measured")
                                   for t in data["targets"])


def _installed(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_quick_run_with_installed_peers(tmp_path):
    peers = [p for p in ("jax", "torch", "autograd", "casadi") if _installed(p)]
    if not peers:
        pytest.skip("no peer installed (pip install -e '.[bench]')")
    out = tmp_path / "quick_peers.json"
    proc = _run(["-m", "benchmarks.run", "--quick", "--json", str(out),
                 "--peers", ",".join(peers)], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    data = _load(out)
    _assert_symdiff_agrees(data, output)
    rows = [r for r in data["rows"] if r["impl"] in peers]
    assert rows
    errors = [(r["workload"], r["case"], r["impl"], r["status"]) for r in rows
              if r["status"].startswith(("error", "WRONG"))]
    assert not errors, output
    bad = [c for c in data["checks"] if c["impl"] in peers and not c["ok"]]
    assert not bad, bad
