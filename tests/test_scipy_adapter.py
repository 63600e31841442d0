"""symdiff.training.scipy_adapter: scipy.optimize.minimize on symdiff losses (L-BFGS-B, Newton-CG)."""
import numpy as np
import pytest

import symdiff as sd
from symdiff.training.scipy_adapter import ScipyObjective, scipy_objective

LAM = 0.1


@pytest.fixture(scope="module")
def problem():
    """L2-regularized logistic regression (bias not regularized) and its NumPy reference."""
    rng = np.random.default_rng(0)
    n, d = 150, 4
    X = rng.normal(size=(n, d))
    y = (X @ np.array([1.5, -2.0, 0.5, 0.0]) - 0.4 + rng.normal(size=n) > 0).astype(float)
    Xv, yv = sd.var("X", (n, d)), sd.var("y", (n,))
    w, b = sd.var("w", (d,)), sd.var("b")
    z = Xv @ w + b
    loss = sd.mean(sd.softplus(z) - yv * z) + 0.5 * LAM * sd.sum(w * w)

    # reference, in NumPy: theta = [w, b], Newton's method to machine precision
    A = np.hstack([X, np.ones((n, 1))])
    reg = np.diag([LAM] * d + [0.0])

    def grad_hess(theta):
        s = 1 / (1 + np.exp(-A @ theta))
        g = A.T @ (s - y) / n + reg @ theta
        H = (A * (s * (1 - s))[:, None]).T @ A / n + reg
        return g, H

    theta = np.zeros(d + 1)
    for _ in range(50):
        g, H = grad_hess(theta)
        theta = theta - np.linalg.solve(H, g)
    assert np.abs(grad_hess(theta)[0]).max() < 1e-12
    return dict(loss=loss, w=w, b=b, data={"X": X, "y": y}, theta=theta, grad_hess=grad_hess,
                d=d)


def test_lbfgsb_and_newton_cg_match_newton_reference(problem):
    optimize = pytest.importorskip("scipy.optimize")
    obj = scipy_objective(problem["loss"], [problem["w"], problem["b"]], problem["data"],
                          hessp=True)
    x0 = obj.pack({"w": np.zeros(problem["d"]), "b": 0.0})
    lbfgs = optimize.minimize(obj.fun, x0, jac=True, method="L-BFGS-B",
                              options={"gtol": 1e-10, "ftol": 1e-15})
    newton = optimize.minimize(obj.fun, x0, jac=True, hessp=obj.hessp, method="Newton-CG",
                               options={"xtol": 1e-10})
    assert lbfgs.success and newton.success
    np.testing.assert_allclose(lbfgs.x, problem["theta"], atol=1e-5)
    np.testing.assert_allclose(newton.x, problem["theta"], atol=1e-7)
    np.testing.assert_allclose(lbfgs.x, newton.x, atol=1e-5)
    assert newton.nhev > 0
    params = obj.unpack(newton.x)
    assert params["w"].shape == (problem["d"],) and params["b"].shape == ()


def test_minimize_helper_adds_hessp(problem):
    pytest.importorskip("scipy.optimize")
    obj = scipy_objective(problem["loss"], ["w", "b"], problem["data"], hessp=True)
    start = {"w": np.zeros(problem["d"]), "b": 0.0}
    for method in ("Newton-CG", "trust-ncg", "L-BFGS-B"):
        res = obj.minimize(start, method=method, tol=1e-10)
        assert res.success, (method, res.message)
        np.testing.assert_allclose(res.params["w"], problem["theta"][:-1], atol=1e-5)
        np.testing.assert_allclose(res.params["b"], problem["theta"][-1], atol=1e-5)
        if method != "L-BFGS-B":
            assert res.nhev > 0  # the hessp was used


def test_fun_and_hessp_equal_numpy_formulas(problem):
    obj = scipy_objective(problem["loss"], [problem["w"], problem["b"]], problem["data"],
                          hessp=True)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x, p = rng.normal(size=obj.size), rng.normal(size=obj.size)
        value, g = obj.fun(x)
        g_ref, H_ref = problem["grad_hess"](x)
        assert isinstance(value, float) and g.shape == (obj.size,) and g.dtype == np.float64
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-14)
        # the joint Hessian over [w, b] includes the w-b cross terms
        np.testing.assert_allclose(obj.hessp(x, p), H_ref @ p, rtol=1e-11, atol=1e-13)
    assert obj.value(x) == value and np.array_equal(obj.jac(x), g)


def test_single_variable_hessp_agrees_with_sd_hvp(problem):
    obj = scipy_objective(problem["loss"], problem["w"], {**problem["data"], "b": 0.3},
                          hessp=True)
    assert obj.names == ["w"] and obj.size == problem["d"]
    x, p = np.linspace(-1, 1, obj.size), np.arange(1.0, obj.size + 1)
    hv = sd.hvp(problem["loss"], problem["w"], sd.const(p))
    ref = sd.compile(hv)(X=problem["data"]["X"], w=x, b=0.3)  # H does not depend on y
    np.testing.assert_allclose(obj.hessp(x, p), ref, rtol=1e-13)


def test_hessp_several_matrix_variables_against_finite_differences():
    # a smooth two-layer network: cross terms between W1, b1 and W2 all matter
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    W1, b1, W2 = sd.var("W1", (3, 4)), sd.var("b1", (4,)), sd.var("W2", (4, 2))
    Xv, Yv = sd.var("X", (10, 3)), sd.var("Y", (10, 2))
    loss = sd.mean(sd.square(sd.tanh(Xv @ W1 + b1) @ W2 - Yv))
    obj = scipy_objective(loss, [W1, b1, W2], {"X": X, "Y": Y}, hessp=True)
    assert obj.size == 12 + 4 + 8 and obj.shapes == [(3, 4), (4,), (4, 2)]
    x, p = rng.normal(size=obj.size), rng.normal(size=obj.size)
    eps = 1e-6
    fd = (obj.fun(x + eps * p)[1] - obj.fun(x - eps * p)[1]) / (2 * eps)
    np.testing.assert_allclose(obj.hessp(x, p), fd, rtol=1e-6, atol=1e-8)
    # symmetric: <q, H p> = <p, H q>
    q = rng.normal(size=obj.size)
    assert q @ obj.hessp(x, p) == pytest.approx(p @ obj.hessp(x, q), rel=1e-10)


def test_pack_unpack_roundtrip_and_dtypes():
    W, s, c = sd.var("W", (2, 3)), sd.var("s"), sd.var("c", (3,), "float32")
    loss = sd.sum(W * W) * s + sd.sum(c)
    obj = scipy_objective(loss, [W, s, c])
    assert obj.hessp is None  # not requested; minimize(..., hessp=None) is fine
    params = {"W": np.arange(6.0).reshape(2, 3), "s": np.array(2.0), "c": np.ones(3)}
    x = obj.pack(params)
    assert x.shape == (10,) and x.dtype == np.float64
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 4, 5, 2, 1, 1, 1])  # C order, wrt order
    back = obj.unpack(x)
    assert list(back) == ["W", "s", "c"] and back["c"].dtype == np.float32
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
    value, g = obj.fun(x)
    assert value == pytest.approx(2 * 55 + 3)
    np.testing.assert_allclose(g, np.concatenate([4 * np.arange(6.0), [55.0], np.ones(3)]))
    assert isinstance(obj, ScipyObjective) and "10 entries" in repr(obj)


def test_fun_does_not_alias_its_cache():
    x = sd.var("x", (3,))
    obj = scipy_objective(sd.sum(x * x), x, {})
    x0 = np.ones(3)
    _, g = obj.fun(x0)
    g[:] = 99.0
    x0[:] = 5.0  # a caller reusing its buffers
    np.testing.assert_array_equal(obj.fun(np.ones(3))[1], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(obj.fun(x0)[1], [10.0, 10.0, 10.0])


def test_errors(problem):
    loss, data = problem["loss"], problem["data"]
    with pytest.raises(sd.InputError, match=r"\['b'\].*neither"):
        scipy_objective(loss, "w", data)
    with pytest.raises(sd.InputError, match="no variable named 'v'"):
        scipy_objective(loss, ["w", "v"], data)
    with pytest.raises(sd.InputError, match="not variables of the loss"):
        scipy_objective(loss, ["w", "b"], {**data, "Z": np.ones(2)})
    with pytest.raises(sd.InputError, match="'X'"):
        scipy_objective(loss, ["w", "b"], {"X": np.ones((3, 3)), "y": data["y"]})
    obj = scipy_objective(loss, ["w", "b"], data)
    with pytest.raises(sd.InputError, match="length 5"):
        obj.fun(np.zeros(4))
    with pytest.raises(sd.InputError, match="missing"):
        obj.pack({"w": np.zeros(4)})
    with pytest.raises(sd.SymdiffError, match="twice"):
        scipy_objective(loss, ["w", "w", "b"], data)
    with pytest.raises(sd.ShapeError, match="scalar"):
        scipy_objective(problem["w"] * 2.0, "w", {})
