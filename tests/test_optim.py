"""symdiff.training.optim (optimizers, schedules) and symdiff.training.init (initializers).

The hand-computed steps below are written out from the published update rules, entry by entry
with Python floats, independently of the implementation's vectorized code.
"""
import math

import numpy as np
import pytest

import symdiff as sd
from symdiff import init, optim
from symdiff.training.optim import SGD, Adagrad, Adam, OptimizerError, RMSprop

THETA0 = [1.0, -2.0]
G1 = [0.5, -1.0]
G2 = [0.25, 2.0]
LR = 0.1


def two_steps(opt, theta0=THETA0, g1=G1, g2=G2):
    params = {"p": np.array(theta0)}
    p1 = opt.step(params, {"p": np.array(g1)})
    p2 = opt.step(p1, {"p": np.array(g2)})
    return p1["p"], p2["p"]


# ---------------------------------------------------------------------------------------------
# hand-computed first two updates
# ---------------------------------------------------------------------------------------------
def test_sgd_plain_two_steps():
    p1, p2 = two_steps(SGD(lr=LR))
    # theta <- theta - lr g
    np.testing.assert_allclose(p1, [1.0 - 0.1 * 0.5, -2.0 - 0.1 * -1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, [0.95 - 0.1 * 0.25, -1.9 - 0.1 * 2.0], rtol=0, atol=1e-15)


def test_sgd_momentum_two_steps():
    mu = 0.9
    p1, p2 = two_steps(SGD(lr=LR, momentum=mu))
    # v1 = -lr g1; theta1 = theta0 + v1
    v1 = [-0.1 * 0.5, -0.1 * -1.0]
    t1 = [1.0 + v1[0], -2.0 + v1[1]]
    # v2 = mu v1 - lr g2; theta2 = theta1 + v2
    v2 = [0.9 * v1[0] - 0.1 * 0.25, 0.9 * v1[1] - 0.1 * 2.0]
    t2 = [t1[0] + v2[0], t1[1] + v2[1]]
    np.testing.assert_allclose(p1, t1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, t2, rtol=0, atol=1e-15)
    assert p2.tolist() == pytest.approx([0.95 - 0.045 - 0.025, -1.9 + 0.09 - 0.2])


def test_sgd_nesterov_matches_sutskever_lookahead_form():
    """Sutskever et al. (2013) eq. 3-4 on f(theta) = 0.5 k theta^2 (gradient k theta),
    evaluating the gradient at the look-ahead point theta + mu v; the optimizer holds that
    look-ahead point Theta = theta + mu v and is given gradients at the parameters it holds."""
    k, mu, lr = 3.0, 0.9, 0.05
    theta, v = 2.0, 0.0
    opt = SGD(lr=lr, momentum=mu, nesterov=True)
    held = {"p": np.array(theta)}
    for _ in range(2):
        # the published form
        v = mu * v - lr * k * (theta + mu * v)
        theta = theta + v
        # the optimizer, gradient at what it holds
        held = opt.step(held, {"p": k * held["p"]})
        assert float(held["p"]) == pytest.approx(theta + mu * v, abs=1e-14)
    # and the first step written out: Theta1 = theta0 - lr g0 (1 + mu)
    first = SGD(lr=lr, momentum=mu, nesterov=True).step({"p": np.array(2.0)},
                                                         {"p": np.array(6.0)})
    assert float(first["p"]) == pytest.approx(2.0 - 0.05 * 6.0 * 1.9, abs=1e-15)


def test_adagrad_two_steps():
    eps = 1e-7
    p1, p2 = two_steps(Adagrad(lr=LR, eps=eps))
    # r1 = g1^2; theta1 = theta0 - lr g1 / (eps + sqrt(r1))
    t1 = [1.0 - 0.1 * 0.5 / (eps + 0.5), -2.0 - 0.1 * -1.0 / (eps + 1.0)]
    # r2 = g1^2 + g2^2
    r2 = [0.25 + 0.0625, 1.0 + 4.0]
    t2 = [t1[0] - 0.1 * 0.25 / (eps + math.sqrt(r2[0])),
          t1[1] - 0.1 * 2.0 / (eps + math.sqrt(r2[1]))]
    np.testing.assert_allclose(p1, t1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, t2, rtol=0, atol=1e-15)


def test_rmsprop_two_steps():
    rho, eps = 0.9, 1e-8
    p1, p2 = two_steps(RMSprop(lr=LR, rho=rho, eps=eps))
    # r1 = 0.1 g1^2
    r1 = [0.1 * 0.25, 0.1 * 1.0]
    t1 = [1.0 - 0.1 * 0.5 / (math.sqrt(r1[0]) + eps),
          -2.0 - 0.1 * -1.0 / (math.sqrt(r1[1]) + eps)]
    # r2 = 0.9 r1 + 0.1 g2^2
    r2 = [0.9 * r1[0] + 0.1 * 0.0625, 0.9 * r1[1] + 0.1 * 4.0]
    t2 = [t1[0] - 0.1 * 0.25 / (math.sqrt(r2[0]) + eps),
          t1[1] - 0.1 * 2.0 / (math.sqrt(r2[1]) + eps)]
    np.testing.assert_allclose(p1, t1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, t2, rtol=0, atol=1e-15)
    # first step is lr * g / |g| / sqrt(1 - rho) = lr * sign(g) * sqrt(10)
    np.testing.assert_allclose(p1, [1.0 - 0.1 * math.sqrt(10), -2.0 + 0.1 * math.sqrt(10)])


def test_adam_two_steps_with_bias_correction():
    b1, b2, eps = 0.9, 0.999, 1e-8
    p1, p2 = two_steps(Adam(lr=LR, beta1=b1, beta2=b2, eps=eps))
    # t = 1: m = 0.1 g1, v = 0.001 g1^2, m_hat = g1, v_hat = g1^2 -> step lr * g/(|g| + eps)
    t1 = [1.0 - 0.1 * 0.5 / (0.5 + eps), -2.0 - 0.1 * -1.0 / (1.0 + eps)]
    # t = 2
    m2 = [0.9 * 0.1 * 0.5 + 0.1 * 0.25, 0.9 * 0.1 * -1.0 + 0.1 * 2.0]
    v2 = [0.999 * 0.001 * 0.25 + 0.001 * 0.0625, 0.999 * 0.001 * 1.0 + 0.001 * 4.0]
    mh = [m / (1 - 0.9 ** 2) for m in m2]
    vh = [v / (1 - 0.999 ** 2) for v in v2]
    t2 = [t1[i] - 0.1 * mh[i] / (math.sqrt(vh[i]) + eps) for i in range(2)]
    np.testing.assert_allclose(p1, t1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, t2, rtol=0, atol=1e-14)
    assert p1.tolist() == pytest.approx([0.9, -1.9])  # |step| = lr at t = 1


# ---------------------------------------------------------------------------------------------
# conventions
# ---------------------------------------------------------------------------------------------
ALL = [lambda: SGD(0.1), lambda: SGD(0.1, momentum=0.9), lambda: SGD(0.1, 0.9, nesterov=True),
       lambda: Adagrad(0.1), lambda: RMSprop(0.01), lambda: Adam(0.01)]


@pytest.mark.parametrize("make", ALL)
def test_step_does_not_mutate_and_keeps_dtype(make):
    opt = make()
    params = {"W": np.ones((2, 3), dtype=np.float32), "b": np.array(0.5), "frozen": np.ones(2)}
    grads = {"W": np.full((2, 3), 0.5), "b": np.array(-1.0)}
    before = {k: v.copy() for k, v in params.items()}
    gbefore = {k: v.copy() for k, v in grads.items()}
    new = opt.step(params, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    for k in grads:
        np.testing.assert_array_equal(grads[k], gbefore[k])
    assert new is not params
    assert new["W"].dtype == np.float32 and new["W"].shape == (2, 3)
    assert new["b"].shape == () and isinstance(new["b"], np.ndarray)
    assert new["frozen"] is params["frozen"]  # no gradient: passed through
    assert not np.shares_memory(new["W"], params["W"])
    assert set(opt.state) == {"W", "b"}


@pytest.mark.parametrize("make", ALL)
def test_deterministic(make):
    rng = np.random.default_rng(1)
    gs = [rng.normal(size=4) for _ in range(5)]
    runs = []
    for _ in range(2):
        opt, p = make(), {"x": np.zeros(4)}
        for g in gs:
            p = opt.step(p, {"x": g})
        runs.append(p["x"])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_int_params_promoted_and_reset():
    opt = Adam(0.1)
    new = opt.step({"x": np.array([1, 2])}, {"x": np.array([1.0, 1.0])})
    assert new["x"].dtype == np.float64
    assert opt.state["x"]["t"] == 1 and opt.iterations == 1
    opt.reset()
    assert opt.state == {} and opt.iterations == 0


def test_optimizer_errors():
    with pytest.raises(OptimizerError, match="not among the parameters"):
        SGD(0.1).step({"a": np.ones(2)}, {"b": np.ones(2)})
    with pytest.raises(sd.ShapeError, match=r"\(3,\).*\(2,\)"):
        SGD(0.1).step({"a": np.ones(2)}, {"a": np.ones(3)})
    with pytest.raises(OptimizerError, match="nesterov"):
        SGD(0.1, nesterov=True)
    with pytest.raises(OptimizerError, match="beta1"):
        Adam(beta1=1.0)
    with pytest.raises(OptimizerError, match="lr"):
        Adam(lr=-1.0)
    with pytest.raises(OptimizerError, match="momentum"):
        SGD(0.1, momentum=1.5)
    with pytest.raises(OptimizerError, match="two dicts"):
        SGD(0.1).step([np.ones(2)], [np.ones(2)])
    opt = Adam(0.1)
    opt.step({"a": np.ones(2)}, {"a": np.ones(2)})
    with pytest.raises(sd.ShapeError, match="changed shape"):
        opt.step({"a": np.ones(3)}, {"a": np.ones(3)})
    with pytest.raises(sd.SymdiffError):
        SGD(lambda e: float("nan")).step({"a": np.ones(1)}, {"a": np.ones(1)})
    assert issubclass(OptimizerError, sd.SymdiffError)


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------
def test_schedules():
    halve = optim.step_decay(1.0, factor=0.5, every=3)
    assert [halve(e) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    expo = optim.exponential_decay(0.1, gamma=0.5)
    assert [expo(e) for e in range(3)] == pytest.approx([0.1, 0.05, 0.025])
    assert optim.constant(0.3)(17) == 0.3
    lin = optim.linear_decay(1.0, 0.1, until=10)
    assert [lin(0), lin(5), lin(10), lin(50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert "step_decay" in repr(halve)
    with pytest.raises(OptimizerError):
        optim.step_decay(1.0, every=0)
    with pytest.raises(OptimizerError):
        halve(-1)


def test_optimizer_reads_schedule_at_its_epoch():
    opt = SGD(optim.step_decay(1.0, factor=0.5, every=2))
    assert opt.lr == 1.0
    opt.set_epoch(2)
    assert opt.lr == 0.5
    new = opt.step({"x": np.array(1.0)}, {"x": np.array(1.0)})
    assert float(new["x"]) == 0.5
    opt2 = Adam(lambda epoch: 0.01 / (1 + epoch))  # any callable works
    opt2.set_epoch(9)
    assert opt2.lr == pytest.approx(0.001)
    assert "Adam(lr=" in repr(opt2) and "SGD(lr=step_decay" in repr(opt)


# ---------------------------------------------------------------------------------------------
# convergence with symdiff-compiled gradients
# ---------------------------------------------------------------------------------------------
def _quadratic():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    A = q @ np.diag([1.0, 1.5, 2.0, 3.0, 4.0]) @ q.T
    bvec = rng.normal(size=5)
    x = sd.var("x", (5,))
    loss = 0.5 * sd.sum(x * (A @ x)) - sd.sum(bvec * x)
    return sd.compile_grad(loss, [x]), np.linalg.solve(A, bvec)


def _run(f, opt, steps, steps_per_epoch=100, **data):
    p = {"x": np.zeros(5)}
    for t in range(steps):
        opt.set_epoch(t // steps_per_epoch)
        _, (g,) = f(x=p["x"], **data)
        p = opt.step(p, {"x": g})
    return p["x"]


@pytest.mark.parametrize("make, steps, tol", [
    (lambda: SGD(0.2), 200, 1e-8),
    (lambda: SGD(0.05, momentum=0.9), 400, 1e-8),
    (lambda: SGD(0.05, momentum=0.9, nesterov=True), 400, 1e-8),
    (lambda: Adagrad(0.5), 1500, 1e-6),
    (lambda: RMSprop(optim.exponential_decay(0.05, 0.5)), 1500, 1e-4),
    (lambda: Adam(optim.step_decay(0.1, factor=0.5, every=2)), 1500, 1e-5),
], ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_converges_on_convex_quadratic(make, steps, tol):
    f, solution = _quadratic()
    x = _run(f, make(), steps)
    np.testing.assert_allclose(x, solution, atol=tol)


def test_adam_logistic_regression_reaches_newton_optimum():
    rng = np.random.default_rng(3)
    n, d, lam = 200, 3, 0.1
    X = rng.normal(size=(n, d))
    y = (X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n) > 0).astype(float)
    Xv, yv, w = sd.var("X", (n, d)), sd.var("y", (n,)), sd.var("w", (d,))
    z = Xv @ w
    loss = sd.mean(sd.softplus(z) - yv * z) + 0.5 * lam * sd.sum(w * w)
    f = sd.compile_grad(loss, [w])
    # reference: Newton's method in NumPy
    wn = np.zeros(d)
    for _ in range(30):
        s = 1 / (1 + np.exp(-X @ wn))
        g = X.T @ (s - y) / n + lam * wn
        H = (X * (s * (1 - s))[:, None]).T @ X / n + lam * np.eye(d)
        wn = wn - np.linalg.solve(H, g)
    opt, p = Adam(optim.step_decay(0.05, 0.5, every=1)), {"w": np.zeros(d)}
    for t in range(2000):
        opt.set_epoch(t // 250)
        _, (g,) = f(X=X, y=y, w=p["w"])
        p = opt.step(p, {"w": g})
    np.testing.assert_allclose(p["w"], wn, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# symdiff.training.init
# ---------------------------------------------------------------------------------------------
def test_fans_convention():
    assert init.fans((3, 4)) == (3, 4)  # (fan_in, fan_out), used as X @ W
    assert init.fans((5,)) == (5, 5)
    assert init.fans(()) == (1, 1)
    assert init.fans((3, 3, 16, 32)) == (9 * 16, 9 * 32)  # (kh, kw, in, out)


@pytest.mark.parametrize("fn, shape, expected", [
    (init.xavier_uniform, (200, 300), 2 / 500),
    (init.xavier_normal, (200, 300), 2 / 500),
    (init.he_uniform, (250, 240), 2 / 250),
    (init.he_normal, (250, 240), 2 / 250),
    (init.he_normal, (3, 3, 64, 12), 2 / (9 * 64)),
    (init.xavier_uniform, (3, 3, 64, 12), 2 / (9 * 76)),
])
def test_init_variance(fn, shape, expected):
    w = fn(shape, np.random.default_rng(0))
    assert w.shape == shape and w.dtype == np.float64
    # ~60,000 draws: relative standard error of the variance <= 0.6%; allow 3%
    assert w.var() == pytest.approx(expected, rel=0.03)
    assert abs(w.mean()) < 5 * math.sqrt(expected / w.size)


def test_uniform_bounds_and_small_uniform():
    w = init.xavier_uniform((100, 50), 0)
    a = math.sqrt(6 / 150)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    s = init.small_uniform((1000,), 0)
    assert np.abs(s).max() <= 0.01 and s.var() == pytest.approx(0.01 ** 2 / 3, rel=0.1)
    assert np.abs(init.small_uniform((10,), 0, scale=1e-4)).max() <= 1e-4
    z = init.zeros((3, 2))
    assert z.shape == (3, 2) and not z.any()


def test_init_seeded_and_dtype():
    a = init.he_normal((4, 5), np.random.default_rng(7))
    b = init.he_normal((4, 5), np.random.default_rng(7))
    c = init.he_normal((4, 5), 7)  # an int seed is a fresh default_rng(seed)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    g = np.random.default_rng(7)
    assert not np.array_equal(init.he_normal((4, 5), g), init.he_normal((4, 5), g))
    assert init.xavier_normal((4, 5), 0, dtype="float32").dtype == np.float32
    with pytest.raises(sd.SymdiffError, match="rng"):
        init.he_normal((2, 2), None)
    with pytest.raises(sd.ShapeError):
        init.he_normal((2, -1), 0)


def test_init_params_for_model_variables():
    from symdiff import models
    model = models.mlp_loss(n=8, d=5, hidden=7, classes=3)
    p1 = init.init_params(model.params, 0, method="he_normal")
    p2 = init.init_params(model.params, np.random.default_rng(0), method="he_normal")
    assert list(p1) == ["W1", "b1", "W2", "b2"]
    for v in model.params:
        assert p1[v.name].shape == v.shape
        np.testing.assert_array_equal(p1[v.name], p2[v.name])
    assert not p1["b1"].any() and p1["W1"].std() > 0
    with pytest.raises(sd.SymdiffError, match="unknown init method"):
        init.init_params(model.params, 0, method="nope")
