"""Debugging a gradient (issue 13): ``explain`` for tensors, ``Explanation.why``,
``check_grad(..., localize=True)``. Values are asserted against NumPy written by hand, and each
``why`` finding on a case built to show it."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.tools.explain import fmt, summarize
from symdiff.training.models import mlp_loss


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------------------------
# explain for tensors
# ---------------------------------------------------------------------------------------------
def test_small_arrays_in_full_large_ones_summarized():
    assert fmt(np.arange(12.0).reshape(3, 4)) == ("[[0, 1,  2,  3],\n"
                                                  " [4, 5,  6,  7],\n"
                                                  " [8, 9, 10, 11]]")
    assert fmt(np.array([0.5, -1.0])) == "[0.5, -1]"
    big = np.zeros((10, 20))
    big[0, :5] = [1.0, 2.0, np.inf, np.nan, -3.0]
    assert fmt(big) == summarize(big) == (
        "float64 (10, 20): min -3 mean 0 max 2, 97.5% zeros, 2 non-finite")
    assert fmt(np.ones((2, 2, 2))).startswith("float64 (2, 2, 2): min 1 mean 1 max 1")


def _window_model():
    """CS224n lecture 4's window classifier: s = u^T sigmoid(W x + b), one window x."""
    W, x, b, u = sd.var("W", (3, 4)), sd.var("x", (4,)), sd.var("b", (3,)), sd.var("u", (3,))
    rng = np.random.default_rng(3)
    at = {"W": rng.normal(size=(3, 4)).round(2), "x": rng.normal(size=4).round(2),
          "b": rng.normal(size=3).round(2), "u": rng.normal(size=3).round(2)}
    return (W, x, b, u), u @ sd.sigmoid(W @ x + b), at


def test_window_model_every_edge_has_its_value():
    (W, x, b, u), s, at = _window_model()
    e = sd.explain(s, [W, x, b, u], at)
    z = at["W"] @ at["x"] + at["b"]
    delta = at["u"] * _sigmoid(z) * (1 - _sigmoid(z))  # dJ/dz, the lecture's delta
    np.testing.assert_allclose(e.gradients["W"], np.outer(delta, at["x"]))
    np.testing.assert_allclose(e.gradients["x"], at["W"].T @ delta)
    np.testing.assert_allclose(e.gradients["b"], delta)
    np.testing.assert_allclose(e.gradients["u"], _sigmoid(z))
    (to_w,) = [edge for edge in e.edges if edge.input == "W"]
    assert to_w.form == "delta x^T"
    np.testing.assert_allclose(to_w.upstream, delta)
    np.testing.assert_allclose(to_w.downstream, np.outer(delta, at["x"]))
    (to_x,) = [edge for edge in e.edges if edge.input == "x"]
    assert to_x.form == "W^T delta"
    # the sigmoid edge carries its elementwise local derivative s(z)(1 - s(z))
    (to_z,) = [edge for edge in e.edges if e.node(edge.consumer).text.startswith("sigmoid")]
    np.testing.assert_allclose(to_z.local, _sigmoid(z) * (1 - _sigmoid(z)))
    table = e.table()
    assert "W = W" in table and fmt(at["W"]).splitlines()[1] in table  # the matrix, row by row
    assert "-> W    delta x^T (delta = dJ/dt0) = [[" in table
    assert "delta x^T" in e.to_dot()


def test_mlp_layer_batch_values():
    X, W, b = sd.var("X", (5, 3)), sd.var("W", (3, 2)), sd.var("b", (2,))
    rng = np.random.default_rng(0)
    at = {"X": rng.normal(size=(5, 3)), "W": rng.normal(size=(3, 2)), "b": np.zeros(2)}
    J = sd.sum(sd.relu(X @ W + b))
    e = sd.explain(J, [W, b], at)
    mask = (at["X"] @ at["W"] > 0).astype(float)
    np.testing.assert_allclose(e.gradients["W"], at["X"].T @ mask)
    np.testing.assert_allclose(e.gradients["b"], mask.sum(axis=0))
    (to_w,) = [edge for edge in e.edges if edge.input == "W"]
    assert to_w.form == "X^T delta"
    relu = [n for n in e.nodes if n.text.startswith("relu")][0]
    np.testing.assert_allclose(relu.value, np.maximum(at["X"] @ at["W"], 0))


def test_render_of_any_shapes(tmp_path):
    pytest.importorskip("shutil").which("dot") or pytest.skip("Graphviz 'dot' not installed")
    X, W = sd.var("X", (40, 30)), sd.var("W", (30, 3))
    rng = np.random.default_rng(1)
    e = sd.explain(sd.sum(sd.tanh(X @ W)), W, {"X": rng.normal(size=(40, 30)),
                                             "W": rng.normal(size=(30, 3))})
    svg = sd.render(e, tmp_path / "big.svg").read_text()
    assert "float64 (40, 30)" in svg and "X^T delta" in svg


# ---------------------------------------------------------------------------------------------
# why
# ---------------------------------------------------------------------------------------------
def test_why_dead_relu_net():
    X, W, b, v = sd.var("X", (4, 3)), sd.var("W", (3, 5)), sd.var("b", (5,)), sd.var("v", (5,))
    rng = np.random.default_rng(2)
    b0 = np.array([-20.0, -20.0, 0.0, -20.0, 0.0])  # units 0, 1, 3 pushed below zero
    at = {"X": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 5)), "b": b0,
          "v": np.ones(5)}
    J = sd.sum(sd.relu(X @ W + b) @ v)
    why = sd.explain(J, [W, b, v], at).why("W")
    dead = at["X"] @ at["W"] + b0 <= 0
    zero_columns = dead.all(axis=0)
    assert list(zero_columns) == [True, True, False, True, False]
    lines = why.splitlines()
    assert lines[0] == "the gradient of W is zero at 9 of 15 entries."
    assert lines[1] == (f"  t2 = relu(X @ W + b): {int(dead.sum())} of 20 entries have zero "
                        f"local derivative (dead relu units: the input is <= 0 there); 3 of 5 "
                        f"units are dead for every one of the 4 rows")


def test_why_all_dead_says_no_gradient_passes():
    w = sd.var("w", (3,))
    why = sd.explain(sd.sum(sd.relu(w * 2.0)), w, {"w": [-1.0, -2.0, -3.0]}).why(w)
    assert why == ("the gradient of w is zero at all 3 entries.\n"
                   "  t1 = relu(w * 2.0): all 3 entries have zero local derivative (dead relu "
                   "units: the input is <= 0 there); no gradient passes")


def test_why_saturated_sigmoid_and_tanh():
    s = sd.var("s", (4,))
    e = sd.explain(sd.sum(sd.sigmoid(s) + sd.tanh(s)), s, {"s": [40.0, 1.0, -50.0, 0.0]})
    why = e.why("s")
    assert "t0 = sigmoid(s): saturated at 2 of 4 entries (|sigmoid'| < 1e-08)" in why
    assert "t1 = tanh(s): saturated at 2 of 4 entries (|tanh'| < 1e-08)" in why


def test_why_stop_gradient():
    s = sd.var("s", (3,))
    why = sd.explain(sd.sum(sd.stop_gradient(s) * 2.0), s, {"s": [1.0, 2.0, 3.0]}).why(s)
    assert why == ("the gradient of s is zero at all 3 entries.\n"
                   "  t0 = stop_gradient(s): stop_gradient on every path from s to the output; "
                   "the gradient through it is zero by design.")


def test_why_disconnected_and_integer():
    s, u = sd.var("s", (3,)), sd.var("u")
    why = sd.explain(sd.sum(s), [s, u], {"s": [1.0, 2.0, 3.0], "u": 1.0}).why("u")
    assert why == ("the output does not depend on u: there is no path, so its gradient is "
                   "zero (disconnected).")
    k = sd.var("k", (3,), dtype="int64")
    why = sd.explain(sd.sum(s * k), [s, k], {"s": [1.0, 2.0, 3.0], "k": [1, 2, 3]}).why(k)
    assert why.startswith("k has dtype int64: integer and boolean inputs carry no gradient.")
    with pytest.raises(sd.SymdiffError, match="not a variable of the explained graph"):
        sd.explain(sd.sum(s), s, {"s": [1.0, 2.0, 3.0]}).why("nope")


def test_why_log_of_a_negative_input():
    s = sd.var("s", (3,))
    why = sd.explain(sd.sum(sd.log(s) * 3.0 + s), s, {"s": [1.0, -1.0, 2.0]}).why(s)
    assert why.splitlines() == [
        "the gradient of s is finite and nonzero at every entry.",
        "  t0 = log(s) is nan at 1 of 3 entries (first at index 1), the first non-finite value "
        "on the path; there s = -1.",
    ]
    why = sd.explain(sd.sum(sd.log(s) * s), s, {"s": [1.0, 0.0, 2.0]}).why(s)
    assert why.splitlines()[0] == "the gradient of s is not finite at 1 of 3 entries."
    assert "t0 = log(s) is inf at 1 of 3 entries (first at index 1)" in why
    assert "there s = 0." in why
    assert "the gradient became non-finite on the edge t1 -> s" in why


# ---------------------------------------------------------------------------------------------
# check_grad(..., localize=True)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def wrong_sin():
    """An op whose bprop is deliberately wrong: sin with the derivative sin x instead of cos x.
    Defining it registers it; the fixture takes it out of the registry again."""
    from symdiff.ops.base import REGISTRY, Op
    from symdiff.ops.lowering import Call

    class WrongSin(Op):
        name = "wrong_sin_for_test"

        def infer(self, x):
            return x.shape, x.dtype

        def lower(self, x):
            return Call("sin", (x,))

        def bprop(self, inputs, out, g):
            return [g * sd.sin(inputs[0])]  # wrong on purpose: d sin x / dx = cos x

    yield WrongSin()
    REGISTRY.pop("wrong_sin_for_test", None)


def test_localize_names_the_wrong_rule(wrong_sin):
    W, x = sd.var("W", (3, 4)), sd.var("x", (4,))
    rng = np.random.default_rng(5)
    at = {"W": rng.normal(size=(3, 4)), "x": rng.normal(size=4)}
    J = sd.sum(sd.relu(sd.tanh(wrong_sin(W @ x)) * 2.0 + 0.1))
    plain = sd.check_grad(J, [W, x], at)
    assert not plain.ok and plain.culprit is None and "localize" not in str(plain)
    result = sd.check_grad(J, [W, x], at, localize=True)
    assert not result.ok
    culprit = result.culprit
    assert (culprit.name, culprit.op, culprit.text) == ("t1", "wrong_sin_for_test",
                                                        "wrong_sin_for_test(W @ x)")
    assert culprit.detail.startswith("d/dt0 at index (1,): its bprop gives -0.175667, finite "
                                     "differences of wrong_sin_for_test alone give -0.506046")
    assert [c.ok for c in result.local] == [True, False, True, True, True, True, True]
    assert ("localize: the rule of 'wrong_sin_for_test' is wrong at t1 = "
            "wrong_sin_for_test(W @ x): d/dt0") in str(result)


def test_localize_passes_relu_at_its_kink():
    # relu(x) - 1 is exactly 0 at x = 1: the whole check's central difference straddles the
    # kink, yet every rule is right, and each node checked alone says so
    x = sd.var("x", (4,))
    J = sd.sum(sd.relu(sd.relu(x) - 1.0) * 3.0 + sd.relu(x))
    result = sd.check_grad(J, x, {"x": [1.0, -2.0, 0.5, 3.0]}, localize=True)
    assert not result.ok and result.culprit is None
    assert len(result.local) == 6 and all(c.ok for c in result.local)
    assert "localize: each of the 6 op nodes agrees with finite differences alone" in str(result)
    assert sd.check_grad(J, x, {"x": [1.5, -2.0, 0.5, 3.0]}, localize=True).local == []
    with pytest.raises(sd.SymdiffError, match="localize must be True or False"):
        sd.check_grad(J, x, {"x": [1.5, -2.0, 0.5, 3.0]}, localize="yes")


# ---------------------------------------------------------------------------------------------
# optimize(..., trace=True)
# ---------------------------------------------------------------------------------------------
def test_optimize_trace_names_each_rule_and_counts_nodes():
    z = sd.var("z", (3,))
    J = sd.sum(sd.log(sd.sigmoid(z)))
    (loss, g), trace = sd.optimize([J, sd.grad(J, z)], trace=True)
    assert str(loss) == "sum(-softplus(-z))"
    steps = [(s.rule, s.before, s.after) for s in trace.steps]
    assert ("log_of_sigmoid", "log(sigmoid(z))", "-softplus(-z)") in steps
    assert ("broadcast_of_unit_const", "broadcast_to([1.0], shape=(3,))",
            "broadcast_to(1.0, shape=(3,))") in steps
    assert trace.counts == {"forward": 4, "gradient added": 7, "total": 11, "after fold": 11,
                            "after rewrites": trace.counts["after rewrites"]}
    assert str(trace).splitlines()[0] == ("nodes: forward 4, gradient added 7, total 11, "
                                          "after fold 11, after rewrites "
                                          f"{trace.counts['after rewrites']}")
    assert "  log_of_sigmoid: log(sigmoid(z))  ->  -softplus(-z)" in str(trace)
    assert sd.optimize(J) is loss  # without trace: the result alone, the same nodes
    a = sd.var("a")
    result, trace = sd.optimize(a * (sd.const(2.0) * 3.0), trace=True)
    assert [(s.rule, s.before, s.after) for s in trace.steps] == [
        ("fold_constants", "2.0 * 3.0", "6.0")]
    with pytest.raises(sd.SymdiffError):
        sd.optimize(a, trace="yes")


# ---------------------------------------------------------------------------------------------
# LaTeX of tensor gradients
# ---------------------------------------------------------------------------------------------
def test_latex_of_tensor_gradients_explains_every_symbol():
    mlp = mlp_loss(5, 4, 3, 2, lam=1e-3)
    g_w1 = sd.grad(mlp.loss, mlp.params)[0]
    latex = sd.to_latex(g_w1)
    assert "\\mathbf{c}" not in latex
    assert latex.startswith("0.001 \\cdot 2.0 W_{1} + X^\\top")  # weight decay, 2 lambda W1
    assert latex.endswith("\\odot \\mathbb{1}\\left[\\operatorname{relu}\\left(X W_{1} + "
                          "b_{1}\\right) > 0.0\\right]")  # relu's mask as an indicator
    W, x, b, u = sd.var("W", (3, 4)), sd.var("x", (4,)), sd.var("b", (3,)), sd.var("u", (3,))
    g_w = sd.grad(sd.sum(u * sd.sigmoid(W @ x + b)), W)
    assert sd.to_latex(g_w) == ("\\left(u \\odot \\sigma\\left(W x + b\\right) \\odot "
                                "\\left(1 - \\sigma\\left(W x + b\\right)\\right)\\right) x^\\top")
    v = sd.var("v", (3,))
    assert sd.to_latex(v * np.array([1.0, 2.0, 3.0])) == "v \\odot \\left[1.0, 2.0, 3.0\\right]"
    assert sd.to_latex(np.eye(2) @ sd.var("w", (2,))) == "\\left[1.0, 0.0; 0.0, 1.0\\right] w"
    assert sd.to_latex(np.arange(12.0).reshape(4, 3) @ v) == "\\mathrm{const}_{4 \\times 3} v"
    assert sd.to_latex(v <= 2.0) == "\\mathbb{1}\\left[v \\le 2.0\\right]"
