"""User-defined ops (sd.define_op): gradients checked against finite differences, a wrong
bprop caught by check_grad, second derivatives, printing, jvp, compile backends, save refusal,
and the naming rules (no silent shadowing, no built-in names)."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd


def _softsign_forward(x):
    return x / (1 + np.abs(x))


def _softsign_bprop(inputs, out, g):
    # d/dx x / (1 + |x|) = 1 / (1 + |x|)^2
    (x,) = inputs
    return [g / (1 + sd.abs(x)) ** 2]


softsign = sd.define_op("softsign", _softsign_forward, _softsign_bprop)


def _cube_bprop(inputs, out, g):
    # d/dx x^3 = 3 x^2: built from symdiff ops, so differentiable again
    return [g * 3 * inputs[0] ** 2]


cube = sd.define_op("cube", lambda x: x ** 3, _cube_bprop)

# a two-input op with its own shape rule: rowwise dot product, (n, k), (n, k) -> (n,)
rowdot = sd.define_op(
    "rowdot", lambda a, b: np.einsum("ij,ij->i", a, b),
    lambda inputs, out, g: [g[:, None] * inputs[1], g[:, None] * inputs[0]],
    shape=lambda sa, sb: sa[:1])

AWAY_FROM_ZERO = np.array([-1.5, -0.4, 0.3, 2.0])


def test_correct_op_passes_check_grad():
    x = sd.var("x", (4,))
    y = sd.sum(softsign(x) * np.arange(1.0, 5.0))
    assert sd.check_grad(y, x, at={"x": AWAY_FROM_ZERO}).ok
    value = sd.compile(softsign(x))(AWAY_FROM_ZERO)
    np.testing.assert_allclose(value, _softsign_forward(AWAY_FROM_ZERO))


def test_wrong_bprop_is_caught_by_check_grad():
    wrong = sd.define_op("softsign_wrong", _softsign_forward,
                         lambda inputs, out, g: [g / (1 + sd.abs(inputs[0]))])  # missing ** 2
    x = sd.var("x", (4,))
    assert not sd.check_grad(sd.sum(wrong(x)), x, at={"x": AWAY_FROM_ZERO}).ok


def test_second_derivative_of_a_twice_differentiable_op():
    x = sd.var("x")
    second = sd.grad(sd.grad(cube(x), x), x)
    assert float(sd.compile(second)(2.0)) == pytest.approx(12.0)
    h = sd.hessian(sd.sum(cube(sd.var("v", (3,)))), sd.var("v", (3,)))
    np.testing.assert_allclose(sd.compile(h)(np.array([1.0, 2.0, 3.0])), np.diag([6.0, 12, 18]))


def test_two_inputs_and_a_shape_rule():
    a, b = sd.var("a", (3, 2)), sd.var("b", (3, 2))
    out = rowdot(a, b)
    assert out.shape == (3,)
    rng = np.random.default_rng(0)
    at = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=(3, 2))}
    assert sd.check_grad(sd.sum(sd.tanh(out)), [a, b], at=at).ok
    with pytest.raises(sd.SymdiffError, match="rowdot: expected 2"):
        rowdot(a)


def test_jvp_default_and_custom():
    x = sd.var("x", (4,))
    v = np.array([1.0, -2.0, 0.5, 3.0])
    jv = sd.compile(sd.jvp(softsign(x), x, v))(AWAY_FROM_ZERO)
    np.testing.assert_allclose(jv, v / (1 + np.abs(AWAY_FROM_ZERO)) ** 2)
    square_j = sd.define_op("square_j", lambda x: x * x, lambda i, o, g: [2 * g * i[0]],
                            jvp=lambda i, o, t: 2 * i[0] * t[0])
    np.testing.assert_allclose(sd.compile(sd.jvp(square_j(x), x, v))(AWAY_FROM_ZERO),
                               2 * AWAY_FROM_ZERO * v)


def test_printing_shows_the_name():
    x = sd.var("x", (4,))
    assert "softsign(x)" in str(softsign(x))
    assert "softsign" in sd.pretty(softsign(x))


def test_compiled_source_binds_the_forward():
    x, s = sd.var("x", (4,)), sd.var("s")
    f = sd.compile(softsign(x))
    assert "softsign" in f.source
    # a scalar graph takes the NumPy path (no math-module form for a user op)
    assert float(sd.compile(softsign(s) * 2.0)(1.0)) == 1.0
    with pytest.raises(sd.SymdiffError, match="softsign"):
        sd.compile(softsign(x), backend="array_api")(np.ones(4))


def test_traced_functions_use_user_ops():
    value, g = sd.value_and_grad(lambda w: np.sum(softsign(w)))(AWAY_FROM_ZERO)
    np.testing.assert_allclose(g, 1 / (1 + np.abs(AWAY_FROM_ZERO)) ** 2)


def test_save_refuses_a_user_op(tmp_path):
    x = sd.var("x", (4,))
    with pytest.raises(sd.SymdiffError, match="user-defined op 'softsign'"):
        sd.save(softsign(x), tmp_path / "g.json")


def test_names_are_not_shadowed():
    with pytest.raises(sd.SymdiffError, match="already defined"):
        sd.define_op("softsign", lambda x: x, _softsign_bprop)
    assert sd.define_op("softsign", _softsign_forward, _softsign_bprop) is softsign
    with pytest.raises(sd.SymdiffError, match="built-in"):
        sd.define_op("tanh", np.tanh, _softsign_bprop)
    with pytest.raises(sd.SymdiffError, match="identifier"):
        sd.define_op("not a name", np.tanh, _softsign_bprop)
    with pytest.raises(sd.SymdiffError, match="forward"):
        sd.define_op("fine_name", None, _softsign_bprop)


def test_bad_bprop_results_are_named():
    x = sd.var("x", (3,))
    two = sd.define_op("two_grads", lambda x: x, lambda i, o, g: [g, g])
    with pytest.raises(sd.SymdiffError, match="two_grads: bprop must return one Expr"):
        sd.grad(sd.sum(two(x)), x)
    shaped = sd.define_op("bad_shape", lambda x: x, lambda i, o, g: [sd.var("z", (5,))])
    with pytest.raises(sd.ShapeError, match=r"bad_shape.*\(5,\).*\(3,\)"):
        sd.grad(sd.sum(shaped(x)), x)
    broken = sd.define_op("broken_shape", lambda x: x, _softsign_bprop,
                          shape=lambda s: s[5])
    with pytest.raises(sd.ShapeError, match="broken_shape"):
        broken(x)


def test_user_ops_stay_out_of_the_registry():
    from symdiff.ops.base import REGISTRY
    assert "softsign" not in REGISTRY
    with pytest.raises(sd.ParseError):
        sd.parse("softsign(x)")
