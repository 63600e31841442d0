"""Undefined and disconnected gradients (issue 5, part 5).

Goodfellow's "track ops with undefined gradients and decide whether the user's request is
undefined": a gradient requested *through* ``argmax``, ``floor``, ``round``, ``sign`` or a
comparison raises ``UndefinedGradientError`` naming the op and the variable; a graph that merely
contains such an op on a branch off the requested path differentiates fine (and so does one
whose undefined branch is cut by ``stop_gradient``). ``disconnected="raise"`` vs ``"zero"``;
a gradient w.r.t. an integer or boolean variable is a ``SymdiffError`` naming the dtype.
"""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd

X0 = np.array([0.3, -1.2, 2.5])
W0 = np.array([1.5, 0.5, -0.7])

NO_GRADIENT = {
    "argmax": lambda x: sd.argmax(x) * 1.0,
    "argmax_axis": lambda x: sd.argmax(sd.reshape(x, (1, 3)), axis=1) * 1.0,
    "floor": sd.floor,
    "round": sd.round,
    "sign": sd.sign,
    "less": lambda x: x < 0.5,
    "less_equal": lambda x: x <= 0.5,
    "greater": lambda x: x > 0.5,
    "greater_equal": lambda x: x >= 0.5,
    "equal": lambda x: x == 0.3,
    "not_equal": lambda x: x != 0.3,
}
OP_NAME = {"argmax_axis": "argmax"}


def _through(kind, x, w):
    """A loss whose dependence on ``x`` passes through the op ``kind`` (and ``w`` does not)."""
    return sd.sum(w * NO_GRADIENT[kind](sd.sin(x) * 2.0) + w * w)


@pytest.mark.parametrize("kind", list(NO_GRADIENT))
def test_gradient_through_op_without_one_raises_naming_op_and_variable(kind):
    x, w = sd.var("x", (3,)), sd.var("w", (3,))
    y = _through(kind, x, w)
    op = OP_NAME.get(kind, kind)
    for wrt in (x, [x], [w, x], [x, w]):
        with pytest.raises(sd.UndefinedGradientError) as info:
            sd.grad(y, wrt)
        message = str(info.value)
        assert f"'{op}'" in message and "'x'" in message, message
    assert isinstance(info.value, sd.SymdiffError)


@pytest.mark.parametrize("kind", list(NO_GRADIENT))
def test_op_without_gradient_off_the_requested_path_is_fine(kind):
    x, w = sd.var("x", (3,)), sd.var("w", (3,))
    y = _through(kind, x, w)  # depends on w directly: the branch through the op is not needed
    g = sd.grad(y, w)
    mask = np.asarray(sd.compile(NO_GRADIENT[kind](sd.sin(x) * 2.0))(X0), dtype=float)
    got = sd.compile(g, inputs=[w, x])(W0, X0)
    np.testing.assert_allclose(got, mask + 2 * W0)
    assert sd.check_grad(y, w, {"x": X0, "w": W0}).ok


@pytest.mark.parametrize("kind", list(NO_GRADIENT))
def test_stop_gradient_is_the_explicit_way_through(kind):
    x = sd.var("x", (3,))
    y = sd.sum(sd.stop_gradient(NO_GRADIENT[kind](x)) * x)
    g = sd.compile(sd.grad(y, x), inputs=[x])(X0)
    mask = np.asarray(sd.compile(NO_GRADIENT[kind](x))(X0), float)
    np.testing.assert_allclose(g, np.broadcast_to(mask, X0.shape))


def test_masks_inside_library_rules_are_constants():
    """relu, abs, max and where build masks; their gradients (and second derivatives) work."""
    x = sd.var("x", (3,))
    y = sd.sum(sd.relu(x) * x + abs(x) ** 3 + sd.where(x > 0, x * x, -x) + sd.max(x) * x)
    g = sd.grad(y, x)
    h = sd.hessian(y, x)
    assert sd.check_grad(y, x, {"x": X0}).ok
    assert np.all(np.isfinite(sd.compile(h)(X0)))
    assert sd.check_grad(sd.sum(g * W0), x, {"x": X0}).ok


def test_undefined_error_names_the_node_on_the_path():
    x = sd.var("x", (3,))
    y = sd.sum(sd.exp(sd.floor(x * 3.0)) + x)
    with pytest.raises(sd.UndefinedGradientError) as info:
        sd.grad(y, x)
    message = str(info.value)
    assert "'floor'" in message and "floor(x * 3.0)" in message and "stop_gradient" in message


def test_undefined_branch_beside_a_defined_one_still_raises():
    """Part of the gradient could be computed, but the request as a whole is undefined."""
    x = sd.var("x", (3,))
    y = sd.sum(x * x) + sd.sum(sd.round(x))
    with pytest.raises(sd.UndefinedGradientError, match="'round'"):
        sd.grad(y, x)
    with pytest.raises(sd.UndefinedGradientError, match="'round'"):
        sd.compile_grad(y, x)
    with pytest.raises(sd.UndefinedGradientError, match="'round'"):
        sd.hessian(y, x)


def test_jvp_through_op_without_gradient():
    x = sd.var("x", (3,))
    with pytest.raises(sd.UndefinedGradientError, match="'sign'"):
        sd.jvp(sd.sum(sd.sign(x) * 2.0), x, np.ones(3))
    # a mask used only as where's condition is no obstacle
    t = sd.jvp(sd.sum(sd.where(x > 0, x, 0.0)), x, np.ones(3))
    assert float(sd.compile(t)(X0)) == 2.0


def test_gradient_only_through_argmax_indices_is_undefined():
    x, w = sd.var("x", (3,)), sd.var("w", (3,))
    y = sd.sum(sd.take(x, sd.argmax(w)))
    with pytest.raises(sd.UndefinedGradientError, match="'argmax'"):
        sd.grad(y, w)


def test_where_condition_carries_no_gradient_by_convention():
    """README: ``where`` gives its condition no gradient (so grad-of-grad through relu works);
    a variable reached only through a where condition gets zeros."""
    x, w = sd.var("x", (3,)), sd.var("w", (3,))
    y = sd.sum(sd.where(w > 0, x, 0.0))
    np.testing.assert_array_equal(sd.compile(sd.grad(y, w), inputs=[w, x])(W0, X0), 0.0)


# ---------------------------------------------------------------------------------------------
# disconnected
# ---------------------------------------------------------------------------------------------
def test_disconnected_zero_and_raise():
    x, w, u = sd.var("x", (3,)), sd.var("w", (2, 2)), sd.var("u", (), "float32")
    y = sd.sum(sd.sin(x))
    zero_w, zero_u, gx = sd.grad(y, [w, u, x])
    assert zero_w.shape == (2, 2) and zero_u.shape == () and zero_u.dtype == np.float32
    np.testing.assert_array_equal(sd.compile(zero_w)(), np.zeros((2, 2)))
    np.testing.assert_allclose(sd.compile(gx)(X0), np.cos(X0))
    for wrt in (w, [x, w], [u]):
        with pytest.raises(sd.DisconnectedInputError) as info:
            sd.grad(y, wrt, disconnected="raise")
        assert "'w'" in str(info.value) or "'u'" in str(info.value)
    assert sd.grad(y, x, disconnected="raise").shape == (3,)
    with pytest.raises(sd.SymdiffError, match="disconnected"):
        sd.grad(y, x, disconnected="ignore")


def test_disconnected_through_stop_gradient_and_constant_graphs():
    x = sd.var("x", (3,))
    y = sd.sum(sd.stop_gradient(x) * 2.0)
    np.testing.assert_array_equal(sd.compile(sd.grad(y, x), inputs=[x])(X0), 0.0)
    with pytest.raises(sd.DisconnectedInputError):
        sd.grad(y, x, disconnected="raise")
    c = sd.const(3.0) * 2.0
    np.testing.assert_array_equal(sd.compile(sd.grad(c, x), inputs=[x])(X0), 0.0)


def test_disconnected_variable_next_to_undefined_one():
    x, w = sd.var("x", (3,)), sd.var("w", (3,))
    y = sd.sum(sd.floor(x))
    # w is simply disconnected: zero, or DisconnectedInputError on request
    np.testing.assert_array_equal(sd.compile(sd.grad(y, w), inputs=[w])(W0), 0.0)
    with pytest.raises(sd.DisconnectedInputError):
        sd.grad(y, w, disconnected="raise")
    with pytest.raises(sd.UndefinedGradientError):
        sd.grad(y, [w, x])


# ---------------------------------------------------------------------------------------------
# integer and boolean variables
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_gradient_wrt_integer_variable_names_the_dtype(dtype):
    k, x = sd.var("k", (3,), dtype), sd.var("x", (3,))
    y = sd.sum(x * k)
    for call in (lambda: sd.grad(y, k), lambda: sd.grad(y, [x, k]),
                 lambda: sd.compile_grad(y, [k]), lambda: sd.jvp(y, k, np.ones(3)),
                 lambda: sd.hessian(y, k)):
        with pytest.raises(sd.SymdiffError) as info:
            call()
        message = str(info.value)
        assert dtype in message and "'k'" in message, message


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_integer_variables_may_feed_a_float_gradient(dtype):
    k, x = sd.var("k", (3,), dtype), sd.var("x", (3,))
    y = sd.sum(x * x * k)
    kv = np.array([1, 0, 1]).astype(dtype)
    np.testing.assert_allclose(sd.compile(sd.grad(y, x))(k=kv, x=X0), 2 * X0 * kv)


def test_gradient_wrt_integer_valued_node_names_the_dtype():
    x = sd.var("x", (3,))
    with pytest.raises(sd.SymdiffError, match="int64"):
        sd.grad(sd.sum(x), sd.argmax(x))
