"""sd.grad and friends: pruning, disconnected inputs, accumulation over consumers, several
targets, vjp / jacobian / hessian / hvp / jvp, higher order through kinks, deep and wide graphs,
dtypes, variable identity and ops without a gradient."""
import math

import numpy as np
import pytest

import symdiff as sd
from conftest import scaled
from symdiff.graph import toposort


def _fd(f, x0, eps=1e-6):
    """Central differences of f (array -> array) at x0: shape f(x0).shape + x0.shape."""
    x0 = np.asarray(x0, dtype=float)
    y0 = np.asarray(f(x0), dtype=float)
    out = np.empty(y0.shape + x0.shape)
    for i in np.ndindex(x0.shape):
        p, m = x0.copy(), x0.copy()
        p[i] += eps
        m[i] -= eps
        out[(Ellipsis,) + i] = (np.asarray(f(p)) - np.asarray(f(m))) / (2 * eps)
    return out


def _ids(exprs):
    return {id(n) for n in toposort(exprs)}


# ---------------------------------------------------------------------------------------------
# pruning
# ---------------------------------------------------------------------------------------------
def test_unrelated_nondifferentiable_branch_is_pruned():
    x, a, b = sd.var("x", (3,)), sd.var("a", (3,)), sd.var("b", (4,))
    branch = sd.sum(sd.floor(a)) * sd.argmax(b)
    y = sd.sum(sd.sin(x)) + branch
    g = sd.grad(y, x)  # no UndefinedGradientError: the branch does not lead to x
    x0 = np.array([0.1, -0.5, 2.0])
    np.testing.assert_allclose(sd.compile(g)(x0), np.cos(x0), rtol=1e-15)
    # the gradient graph holds no node of the branch
    branch_nodes = _ids([branch])
    assert not (branch_nodes & _ids([g]))
    assert not any(n.op is not None and n.op.name in ("floor", "argmax")
                   for n in toposort([g]))
    # but asking for the gradient w.r.t. a goes through floor
    with pytest.raises(sd.UndefinedGradientError, match="floor"):
        sd.grad(y, a)


def test_unrelated_differentiable_branch_is_pruned():
    x, a = sd.var("x", (3,)), sd.var("a", (3,))
    side = sd.sum(sd.exp(sd.tanh(a) * a))
    y = sd.sum(x * x) + side
    g = sd.grad(y, x)
    nodes = toposort([g])
    assert not (_ids([side]) & _ids([g]))
    assert all(n is not a for n in nodes)
    assert not any(n.op is not None and n.op.name in ("exp", "tanh") for n in nodes)
    assert sd.free_vars(g) == [x]
    x0 = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(sd.compile(g)(x0), 2 * x0, rtol=1e-15)


def test_gradient_node_count_scales_with_relevant_graph_only():
    x, a = sd.var("x"), sd.var("a")
    s = a
    for _ in range(200):
        s = sd.sin(s)
    y_small = x * x
    y_big = x * x + s
    n_small = len(toposort([sd.grad(y_small, x)]))
    n_big = len(toposort([sd.grad(y_big, x)]))
    assert n_big == n_small


# ---------------------------------------------------------------------------------------------
# disconnected inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_disconnected_zero(dtype):
    x, z = sd.var("x", (3,), dtype), sd.var("z", (2, 5), dtype)
    y = sd.sum(sd.sin(x))
    gz = sd.grad(y, z)
    assert gz.shape == (2, 5) and gz.dtype == np.dtype(dtype)
    val = sd.compile(gz, inputs=[])()
    assert val.shape == (2, 5) and val.dtype == np.dtype(dtype)
    assert np.all(val == 0)
    gx, gz2 = sd.grad(y, [x, z], disconnected="zero")
    vx, vz = sd.compile([gx, gz2], inputs=[x])(np.ones(3, dtype))
    np.testing.assert_allclose(vx, np.cos(np.ones(3)), rtol=1e-6)
    assert vz.shape == (2, 5) and vz.dtype == np.dtype(dtype) and np.all(vz == 0)


def test_disconnected_raise_names_the_variable():
    x, zeta = sd.var("x", (3,)), sd.var("zeta_var", (2,))
    y = sd.sum(sd.sin(x))
    with pytest.raises(sd.DisconnectedInputError, match="zeta_var"):
        sd.grad(y, zeta, disconnected="raise")
    with pytest.raises(sd.DisconnectedInputError, match="zeta_var"):
        sd.grad(y, [x, zeta], disconnected="raise")
    assert issubclass(sd.DisconnectedInputError, sd.SymdiffError)
    # connected only through stop_gradient counts as disconnected
    y2 = y + sd.sum(sd.stop_gradient(zeta))
    with pytest.raises(sd.DisconnectedInputError, match="zeta_var"):
        sd.grad(y2, zeta, disconnected="raise")
    # a connected variable is fine with "raise"
    g = sd.grad(y, x, disconnected="raise")
    np.testing.assert_allclose(sd.compile(g)(np.zeros(3)), np.ones(3))


# ---------------------------------------------------------------------------------------------
# reuse and accumulation
# ---------------------------------------------------------------------------------------------
def test_a_plus_a_gives_two():
    a = sd.var("a")
    g = sd.grad(a + a, a)
    assert float(sd.compile(g, inputs=[a])(1.7)) == 2.0
    a3 = sd.var("a3", (3,))
    g3 = sd.grad(sd.sum(a3 + a3), a3)
    np.testing.assert_array_equal(sd.compile(g3, inputs=[a3])(np.arange(3.0)), [2, 2, 2])


def test_x_times_x_gives_2x():
    x = sd.var("x", (4,))
    g = sd.grad(sd.sum(x * x), x)
    x0 = np.array([-1.5, 0.0, 2.0, 3.25])
    np.testing.assert_array_equal(sd.compile(g)(x0), 2 * x0)


def test_several_consumers_sum_contributions():
    x = sd.var("x")
    s = sd.sin(x)  # consumed three times
    y = s * x + sd.exp(s) + s
    g = sd.grad(y, x)
    for x0 in (-1.0, 0.3, 2.0):
        expected = math.cos(x0) * x0 + math.sin(x0) + math.exp(math.sin(x0)) * math.cos(x0) \
            + math.cos(x0)
        np.testing.assert_allclose(sd.compile(g)(x0), expected, rtol=1e-13)


def test_grad_of_several_vars_equals_separate_grads():
    x, w, b = sd.var("x", (3,)), sd.var("w", (2, 3)), sd.var("b", (2,))
    y = sd.sum(sd.tanh(w @ x + b) ** 2) + sd.sum(x * x)
    gs = sd.grad(y, [x, w, b])
    assert isinstance(gs, list) and len(gs) == 3
    assert [g.shape for g in gs] == [(3,), (2, 3), (2,)]
    rng = np.random.default_rng(0)
    vals = dict(x=rng.standard_normal(3), w=rng.standard_normal((2, 3)),
                b=rng.standard_normal(2))
    together = sd.compile(gs)(**vals)
    for var, g_all in zip([x, w, b], together):
        alone = sd.compile(sd.grad(y, var), inputs=[b, w, x])(**vals)
        np.testing.assert_allclose(g_all, alone, rtol=1e-14)
    # and both against finite differences
    for var, g_all in zip(["x", "w", "b"], together):
        f = sd.compile(y)
        num = _fd(lambda v: f(**{**vals, var: v}), vals[var])
        np.testing.assert_allclose(g_all, num, rtol=1e-6, atol=1e-8)


def test_grad_of_nonscalar_raises_shape_error():
    x = sd.var("x", (3,))
    with pytest.raises(sd.ShapeError, match=r"\(3,\)"):
        sd.grad(sd.sin(x), x)
    with pytest.raises(sd.ShapeError):
        sd.grad(sd.reshape(sd.sum(x), (1,)), x)


# ---------------------------------------------------------------------------------------------
# vjp, jacobian, hessian, hvp, jvp
# ---------------------------------------------------------------------------------------------
def test_vjp_matches_transposed_jacobian():
    A = np.random.default_rng(1).standard_normal((4, 3))
    x = sd.var("x", (3,))
    y = sd.tanh(A @ x)
    u0 = np.array([1.0, -2.0, 0.5, 3.0])
    x0 = np.array([0.2, -0.3, 0.7])
    expected = A.T @ (u0 * (1 - np.tanh(A @ x0) ** 2))
    r = sd.vjp(y, x, u0)
    assert r.shape == (3,)
    np.testing.assert_allclose(sd.compile(r)(x0), expected, rtol=1e-13)
    # u as an Expr
    u = sd.var("u", (4,))
    r2 = sd.vjp(y, x, u)
    np.testing.assert_allclose(sd.compile(r2, inputs=[x, u])(x0, u0), expected, rtol=1e-13)


def test_vjp_matrix_output():
    X = sd.var("X", (2, 3))
    y = X * X  # (2, 3)
    u0 = np.arange(6.0).reshape(2, 3)
    X0 = np.linspace(-1, 1, 6).reshape(2, 3)
    r = sd.vjp(y, X, u0)
    assert r.shape == (2, 3)
    np.testing.assert_allclose(sd.compile(r)(X0), 2 * X0 * u0, rtol=1e-15)
    with pytest.raises(sd.ShapeError):
        sd.vjp(y, X, np.ones(3))


def _f23(X):
    """A (2, 3) -> (4,) function, NumPy version."""
    return np.array([np.sum(np.sin(X)), X[0, 1] * X[1, 2], np.prod(X[0]),
                     np.sqrt(np.sum(X ** 2))])


def _f23_sd(X):
    return sd.stack([sd.sum(sd.sin(X)), X[0, 1] * X[1, 2], sd.prod(X[0]), sd.norm(X)])


def test_jacobian_shape_and_values():
    X = sd.var("X", (2, 3))
    y = _f23_sd(X)
    assert y.shape == (4,)
    J = sd.jacobian(y, X)
    assert J.shape == (4, 2, 3)
    X0 = np.array([[0.3, -1.2, 0.8], [1.5, 0.4, -0.6]])
    np.testing.assert_allclose(sd.compile(y)(X0), _f23(X0), rtol=1e-14)
    np.testing.assert_allclose(sd.compile(J)(X0), _fd(_f23, X0), rtol=1e-6, atol=1e-8)


def test_jacobian_matrix_output_shape():
    X = sd.var("X", (2, 3))
    A = np.arange(12.0).reshape(3, 4)
    y = X @ A  # (2, 4)
    J = sd.jacobian(y, X)
    assert J.shape == (2, 4, 2, 3)
    X0 = np.ones((2, 3))
    np.testing.assert_allclose(sd.compile(J, inputs=[X])(X0),
                               np.einsum("ik,jl->ijkl", np.eye(2), A.T),
                               rtol=1e-15)


def _scalar_fn():
    x = sd.var("x", (3,))
    y = sd.sum(sd.sin(x) * sd.exp(x[::-1])) + x[0] * x[1] * x[2] + sd.logsumexp(x)
    return x, y


def test_hessian_against_finite_differences_of_gradient():
    x, y = _scalar_fn()
    H = sd.hessian(y, x)
    assert H.shape == (3, 3)
    x0 = np.array([0.3, -0.4, 0.9])
    gf = sd.compile(sd.grad(y, x))
    Hv = sd.compile(H)(x0)
    np.testing.assert_allclose(Hv, _fd(gf, x0).T, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Hv, Hv.T, rtol=1e-12, atol=1e-14)


def test_hessian_matrix_variable_shape():
    W = sd.var("W", (2, 2))
    y = sd.sum(W ** 3)
    H = sd.hessian(y, W)
    assert H.shape == (2, 2, 2, 2)
    W0 = np.array([[1.0, 2.0], [-1.0, 0.5]])
    expected = np.zeros((2, 2, 2, 2))
    for i in np.ndindex(2, 2):
        expected[i + i] = 6 * W0[i]
    np.testing.assert_allclose(sd.compile(H)(W0), expected, rtol=1e-14)


def test_hvp_equals_hessian_times_v():
    x, y = _scalar_fn()
    x0 = np.array([0.3, -0.4, 0.9])
    v0 = np.array([1.0, 2.0, -0.5])
    Hm = sd.compile(sd.hessian(y, x))(x0)
    r = sd.hvp(y, x, v0)
    assert r.shape == (3,)
    np.testing.assert_allclose(sd.compile(r)(x0), Hm @ v0, rtol=1e-12, atol=1e-14)
    v = sd.var("v", (3,))
    np.testing.assert_allclose(sd.compile(sd.hvp(y, x, v), inputs=[x, v])(x0, v0), Hm @ v0,
                               rtol=1e-12, atol=1e-14)
    # a column of H is H e_i
    e1 = np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(sd.compile(sd.hvp(y, x, e1))(x0), Hm[:, 1], rtol=1e-12,
                               atol=1e-14)


def test_jvp_equals_jacobian_times_v():
    X = sd.var("X", (2, 3))
    y = _f23_sd(X)
    X0 = np.array([[0.3, -1.2, 0.8], [1.5, 0.4, -0.6]])
    V0 = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.25]])
    Jm = sd.compile(sd.jacobian(y, X))(X0)
    t = sd.jvp(y, X, V0)
    assert t.shape == (4,)
    np.testing.assert_allclose(sd.compile(t)(X0), np.einsum("ijk,jk->i", Jm, V0), rtol=1e-12,
                               atol=1e-14)
    # directional finite difference
    f = sd.compile(y)
    eps = 1e-6
    fd = (f(X0 + eps * V0) - f(X0 - eps * V0)) / (2 * eps)
    np.testing.assert_allclose(sd.compile(t)(X0), fd, rtol=1e-6, atol=1e-8)


def test_jvp_of_network_layer():
    rng = np.random.default_rng(3)
    W0, x0, v0 = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3)
    W, x = sd.var("W", (4, 3)), sd.var("x", (3,))
    y = sd.softmax(sd.relu(W @ x) + sd.sigmoid(W @ x))
    t = sd.jvp(y, x, v0)
    Jm = sd.compile(sd.jacobian(y, x), inputs=[W, x])(W0, x0)
    np.testing.assert_allclose(sd.compile(t, inputs=[W, x])(W0, x0), Jm @ v0, rtol=1e-10,
                               atol=1e-14)


# ---------------------------------------------------------------------------------------------
# second derivatives through kinks
# ---------------------------------------------------------------------------------------------
KINK_CASES = {
    # name: (graph builder, f', f'') for scalar x, valid away from the kinks
    "relu": (lambda x: sd.relu(x) * x,
             lambda x: 2 * x * (x > 0), lambda x: 2.0 * (x > 0)),
    "relu_linear": (lambda x: sd.relu(x),
                    lambda x: 1.0 * (x > 0), lambda x: 0.0),
    "abs": (lambda x: sd.abs(x) * x,
            lambda x: 2 * abs(x), lambda x: 2.0 * np.sign(x)),
    "maximum": (lambda x: sd.maximum(x ** 2, 2 * x),
                lambda x: np.where((x < 0) | (x > 2), 2 * x, 2.0),
                lambda x: np.where((x < 0) | (x > 2), 2.0, 0.0)),
    "where": (lambda x: sd.where(x > 0, x ** 3, -x ** 2),
              lambda x: np.where(x > 0, 3 * x ** 2, -2 * x),
              lambda x: np.where(x > 0, 6 * x, -2.0)),
}


@pytest.mark.parametrize("case", sorted(KINK_CASES))
def test_second_derivative_through_kinks(case):
    build, d1, d2 = KINK_CASES[case]
    x = sd.var("x")
    y = build(x)
    g = sd.grad(y, x)
    h = sd.grad(g, x)
    f1, f2 = sd.compile(g, inputs=[x]), sd.compile(h, inputs=[x])
    for x0 in (-1.7, -0.3, 0.6, 1.4, 3.1):
        np.testing.assert_allclose(f1(x0), d1(x0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(f2(x0), d2(x0), rtol=1e-13, atol=1e-15)
        eps = 1e-6
        fd = (float(f1(x0 + eps)) - float(f1(x0 - eps))) / (2 * eps)
        np.testing.assert_allclose(f2(x0), fd, rtol=1e-6, atol=1e-7)


def test_hessian_of_relu_network_vs_fd():
    rng = np.random.default_rng(4)
    W0, x0 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    W, x = sd.var("W", (5, 3)), sd.var("x", (3,))
    y = sd.sum(sd.relu(W @ x) ** 2) + sd.sum(sd.abs(x) * x)
    H = sd.compile(sd.hessian(y, x), inputs=[W, x])(W0, x0)
    gf = sd.compile(sd.grad(y, x), inputs=[W, x])
    num = _fd(lambda v: gf(W0, v), x0)
    np.testing.assert_allclose(H, num, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# deep and wide graphs
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_deep_chain_of_sines():
    n = scaled(20_000, 100_000)  # bounded by default; --long: the full 100,000
    x0 = sd.var("x")
    x = x0
    for _ in range(n):
        x = sd.sin(x)
    g = sd.grad(x, x0)
    f = sd.compile([x, g])
    value, deriv = f(0.5)
    a, prod = 0.5, 1.0
    for _ in range(n):
        prod *= math.cos(a)
        a = math.sin(a)
    np.testing.assert_allclose(value, a, rtol=1e-12)
    np.testing.assert_allclose(deriv, prod, rtol=1e-9)


@pytest.mark.slow
def test_fan_out_to_many_consumers():
    x = sd.var("x")
    cs = np.linspace(0.1, 2.0, scaled(5_000, 20_000))
    y = sd.sum(sd.stack([sd.sin(x * float(c)) for c in cs]))
    g = sd.grad(y, x)
    value, deriv = sd.compile([y, g])(0.7)
    np.testing.assert_allclose(value, np.sum(np.sin(0.7 * cs)), rtol=1e-12)
    np.testing.assert_allclose(deriv, np.sum(cs * np.cos(0.7 * cs)), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# dtypes and variable identity
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_integer_wrt_raises(dtype):
    k = sd.var("k", (3,), dtype)
    x = sd.var("x", (3,))
    y = sd.sum(x * k)
    with pytest.raises(sd.SymdiffError, match=dtype):
        sd.grad(y, k)
    with pytest.raises(sd.DTypeError):
        sd.grad(y, [x, k])


def test_float32_gradient_keeps_dtype():
    x = sd.var("x", (3,), "float32")
    g = sd.grad(sd.sum(sd.sin(x) * x), x)
    assert g.dtype == np.float32
    x0 = np.array([0.1, 0.2, 0.3], np.float32)
    out = sd.compile(g)(x0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.cos(x0) * x0 + np.sin(x0), rtol=1e-6)


def test_variables_identified_by_name():
    a = sd.var("x", (3,))
    b = sd.var("x", (3,))
    assert a is b
    y = sd.sum(sd.var("x", (3,)) ** 2)
    g = sd.grad(y, sd.var("x", (3,)))
    np.testing.assert_allclose(sd.compile(g)(np.array([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])
    assert sd.free_vars(y) == [a]
    g2 = sd.grad(sd.sum(sd.var("x", (3,))), sd.var("x", (3,)), disconnected="raise")
    np.testing.assert_array_equal(sd.compile(g2, inputs=[])(), np.ones(3))


def test_same_name_other_shape_raises():
    x3, x4 = sd.var("x", (3,)), sd.var("x", (4,))
    assert x3 is not x4
    with pytest.raises(sd.ShapeError) as info:
        y = sd.sum(x3) + sd.sum(x4)
        sd.free_vars(y)
    assert "(3,)" in str(info.value) and "(4,)" in str(info.value)
    # grad w.r.t. the other-shaped variable of the same name
    with pytest.raises(sd.ShapeError) as info:
        sd.grad(sd.sum(x3), x4)
    assert "(3,)" in str(info.value) and "(4,)" in str(info.value)
    with pytest.raises(sd.ShapeError) as info:
        sd.compile(sd.sum(x3) + sd.sum(x4))
    assert "(3,)" in str(info.value) and "(4,)" in str(info.value)


def test_same_name_other_dtype_raises():
    x64, x32 = sd.var("x", (3,)), sd.var("x", (3,), "float32")
    with pytest.raises(sd.ShapeError, match="x"):
        sd.compile(sd.sum(x64) + sd.sum(x32))


# ---------------------------------------------------------------------------------------------
# ops without a gradient
# ---------------------------------------------------------------------------------------------
NO_GRAD = {
    "argmax": (lambda x: sd.argmax(x), "argmax"),
    "floor": (lambda x: sd.sum(sd.floor(x)), "floor"),
    "round": (lambda x: sd.sum(sd.round(x)), "round"),
    "sign": (lambda x: sd.sum(sd.sign(x)), "sign"),
    "less": (lambda x: sd.sum(x < 0.5), "less"),
    "less_equal": (lambda x: sd.sum(x <= 0.5), "less_equal"),
    "greater": (lambda x: sd.sum(x > 0.5), "greater"),
    "greater_equal": (lambda x: sd.sum(x >= 0.5), "greater_equal"),
    "equal": (lambda x: sd.sum(x == 0.5), "equal"),
    "not_equal": (lambda x: sd.sum(x != 0.5), "not_equal"),
}


@pytest.mark.parametrize("case", sorted(NO_GRAD))
def test_undefined_gradient_names_op_and_stop_gradient_zeroes_it(case):
    build, opname = NO_GRAD[case]
    x = sd.var("x", (3,))
    branch = build(x)
    y = sd.sum(sd.sin(x)) + branch * 1.0
    with pytest.raises(sd.UndefinedGradientError) as info:
        sd.grad(y, x)
    assert opname in str(info.value)
    assert issubclass(sd.UndefinedGradientError, sd.SymdiffError)
    # the same branch behind stop_gradient contributes zero
    y2 = sd.sum(sd.sin(x)) + sd.stop_gradient(branch) * 1.0
    g = sd.grad(y2, x)
    x0 = np.array([0.2, 0.5, 1.7])
    np.testing.assert_allclose(sd.compile(g)(x0), np.cos(x0), rtol=1e-15)
    # and the forward value still includes the branch
    value = sd.compile(y2)(x0)
    branch_value = sd.compile(branch)(x0)
    np.testing.assert_allclose(value, np.sum(np.sin(x0)) + branch_value, rtol=1e-14)


def test_mask_product_undefined_but_stop_gradient_mask_works():
    x = sd.var("x", (4,))
    y = sd.sum(x * (x > 0))
    with pytest.raises(sd.UndefinedGradientError, match="greater"):
        sd.grad(y, x)
    y2 = sd.sum(x * sd.stop_gradient(x > 0))
    x0 = np.array([-1.0, 2.0, -0.5, 3.0])
    np.testing.assert_array_equal(sd.compile(sd.grad(y2, x))(x0), [0.0, 1.0, 0.0, 1.0])


def test_stop_gradient_value_and_zero_gradient():
    x = sd.var("x")
    y = x * sd.stop_gradient(x)
    g = sd.grad(y, x)
    assert float(sd.compile(y)(3.0)) == 9.0
    assert float(sd.compile(g)(3.0)) == 3.0  # only the first factor


# ---------------------------------------------------------------------------------------------
# issue 10, items 13 and 15: corners of the differentiation API
# ---------------------------------------------------------------------------------------------
def test_hessian_that_does_not_depend_on_w_compiles_with_inputs_w():
    w = sd.var("w", (2,))
    loss = sd.sum(w * np.array([1.0, 2.0]))  # linear: the Hessian is constant
    h = sd.hessian(loss, w)
    with pytest.raises(sd.SymdiffError, match=r"inputs=\[.*w"):
        sd.compile(h)(w=np.ones(2))
    f = sd.compile(h, inputs=[w])
    np.testing.assert_array_equal(f(w=np.ones(2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(f(np.ones(2)), np.zeros((2, 2)))


def test_jacobian_of_an_empty_output_is_empty():
    x = sd.var("x", (3,))
    j = sd.jacobian(sd.take(x, []), x)
    assert j.shape == (0, 3)
    assert sd.compile(j, inputs=[x])(np.ones(3)).shape == (0, 3)


def test_grad_wrt_a_constant_is_refused_naming_it():
    x = sd.var("x", (3,))
    with pytest.raises(sd.SymdiffError, match="constant"):
        sd.grad(sd.sum(x), sd.const(np.ones(3)))


def test_take_of_no_indices_is_an_empty_gather():
    x = sd.var("x", (3, 2))
    t = sd.take(x, [])
    assert t.shape == (0, 2)
    assert sd.compile(t)(np.ones((3, 2))).shape == (0, 2)
    g = sd.grad(sd.sum(t), x)
    np.testing.assert_array_equal(sd.compile(g, inputs=[x])(np.ones((3, 2))), np.zeros((3, 2)))


def test_variable_names_are_nfkc_normalized_as_python_identifiers():
    assert sd.var("\ufb01") is sd.var("fi")
    assert sd.parse("\ufb01") is sd.var("fi")
    assert sd.parse("sum(\ufb01)", shapes={"\ufb01": (3,)}) is sd.sum(sd.var("fi", (3,)))


# -- hvp: reverse-over-reverse and forward-over-reverse, chosen by graph size -------------------
def _hvp_cases():
    w = sd.var("w", (3,))
    A = sd.var("A", (3, 3))
    return [
        ("tanh_exp", sd.sum(sd.tanh(w) * sd.exp(w)) ** 2, w, {}),
        ("quadratic_form", w @ A @ w, w, {"A": np.arange(9.0).reshape(3, 3) / 10}),
        ("softmax_ce", -sd.log_softmax(A @ w)[1], w, {"A": np.eye(3) + 0.1}),
    ]


@pytest.mark.parametrize("mode", ["reverse", "forward", "auto"])
@pytest.mark.parametrize("case", range(3))
def test_hvp_modes_equal_hessian_times_v(case, mode):
    name, y, w, fixed = _hvp_cases()[case]
    at = {"w": np.array([0.5, -0.2, 1.1]), **fixed}
    v = np.array([0.3, -1.0, 2.0])
    H = sd.compile(sd.hessian(y, w), inputs=sd.free_vars(y))(**at)
    got = sd.compile(sd.hvp(y, w, v, mode=mode), inputs=sd.free_vars(y))(**at)
    np.testing.assert_allclose(got, H @ v, rtol=1e-10, atol=1e-12, err_msg=name)


def test_hvp_auto_keeps_the_smaller_graph():
    from symdiff.graph import toposort
    for _, y, w, _ in _hvp_cases():
        v = sd.var("v", w.shape)
        sizes = {m: len(toposort([sd.hvp(y, w, v, mode=m)])) for m in ("reverse", "forward")}
        assert len(toposort([sd.hvp(y, w, v)])) == min(sizes.values())


def test_hvp_mode_is_checked():
    w = sd.var("w", (2,))
    with pytest.raises(sd.SymdiffError, match="mode"):
        sd.hvp(sd.sum(w * w), w, np.ones(2), mode="sideways")
