"""Every worked example of the lecture notes (shared/SOURCES.md), checked against hand-derived
formulas, NumPy and finite differences."""
import math

import numpy as np
import pytest

import symdiff as sd
from symdiff.graph import toposort


def _fd(f, x0, eps=1e-6):
    """Central finite differences of a scalar function of an array."""
    x0 = np.asarray(x0, dtype=float)
    out = np.empty(x0.shape)
    for i in np.ndindex(x0.shape):
        p, m = x0.copy(), x0.copy()
        p[i] += eps
        m[i] -= eps
        out[i] = (float(f(p)) - float(f(m))) / (2 * eps)
    return out


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(u):
    e = np.exp(u - u.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# CS224n: f = (x + y) * max(y, z)
# ---------------------------------------------------------------------------------------------
def _cs224n():
    x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    return x, y, z, (x + y) * sd.maximum(y, z)


def test_cs224n_value_and_gradient_exact():
    x, y, z, f = _cs224n()
    fg = sd.compile_grad(f, [x, y, z])
    value, (gx, gy, gz) = fg(x=1.0, y=2.0, z=0.0)
    # a = x + y = 3, b = max(y, z) = 2, f = 6; df/dx = b = 2, df/dy = b + a = 5, df/dz = 0
    assert float(value) == 6.0
    assert float(gx) == 2.0
    assert float(gy) == 5.0
    assert float(gz) == 0.0
    assert np.shape(gx) == np.shape(gy) == np.shape(gz) == ()


def test_cs224n_positional_call_same():
    x, y, z, f = _cs224n()
    fg = sd.compile_grad(f, [x, y, z], inputs=[x, y, z])
    value, grads = fg(1.0, 2.0, 0.0)
    assert float(value) == 6.0
    assert [float(g) for g in grads] == [2.0, 5.0, 0.0]


def test_cs224n_check_grad():
    x, y, z, f = _cs224n()
    res = sd.check_grad(f, [x, y, z], {"x": 1.0, "y": 2.0, "z": 0.0})
    assert res.ok, str(res)
    assert res.max_abs_err < 1e-6
    assert set(res.report) == {"x", "y", "z"}


def test_cs224n_grad_graph_separately():
    x, y, z, f = _cs224n()
    gs = sd.grad(f, [x, y, z])
    vals = sd.compile(gs, inputs=[x, y, z])(1.0, 2.0, 0.0)
    assert [float(v) for v in vals] == [2.0, 5.0, 0.0]
    # the other side of the max: z wins, y only gets the (x + y) path
    vals = sd.compile(gs, inputs=[x, y, z])(1.0, 2.0, 4.0)
    assert [float(v) for v in vals] == [4.0, 4.0, 3.0]


# ---------------------------------------------------------------------------------------------
# Fig. 6.8 graphs
# ---------------------------------------------------------------------------------------------
def test_fig68_product():
    x, y = sd.var("x"), sd.var("y")
    gx, gy = sd.grad(x * y, [x, y])
    f = sd.compile([x * y, gx, gy], inputs=[x, y])
    v, a, b = f(3.0, -2.5)
    assert float(v) == -7.5
    assert float(a) == -2.5  # d(xy)/dx = y
    assert float(b) == 3.0   # d(xy)/dy = x


def _logreg_data(N=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d))
    y = (rng.random(N) < 0.5).astype(float)
    w = 0.5 * rng.standard_normal(d)
    b = np.array(0.3)
    return X, y, w, b


def _logreg_graph(N, d):
    X, y = sd.var("X", (N, d)), sd.var("y", (N,))
    w, b = sd.var("w", (d,)), sd.var("b")
    y_hat = sd.sigmoid(X @ w + b)
    J = -sd.mean(y * sd.log(y_hat) + (1 - y) * sd.log(1 - y_hat))
    return X, y, w, b, J


def test_fig68_logistic_regression_cs229_gradient():
    N, d = 12, 3
    Xa, ya, wa, ba = _logreg_data(N, d)
    X, y, w, b, J = _logreg_graph(N, d)
    fg = sd.compile_grad(J, [w, b])
    value, (gw, gb) = fg(X=Xa, y=ya, w=wa, b=ba)
    yh = _sigmoid(Xa @ wa + ba)
    J_np = -np.mean(ya * np.log(yh) + (1 - ya) * np.log(1 - yh))
    np.testing.assert_allclose(value, J_np, rtol=1e-12)
    # hand formula: dJ/dw = X^T (y_hat - y) / N, dJ/db = mean(y_hat - y)
    np.testing.assert_allclose(gw, Xa.T @ (yh - ya) / N, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, np.mean(yh - ya), rtol=1e-10, atol=1e-14)
    assert gw.shape == (d,) and np.shape(gb) == ()


def test_fig68_logistic_regression_check_grad_and_training():
    N, d = 12, 3
    Xa, ya, wa, ba = _logreg_data(N, d)
    X, y, w, b, J = _logreg_graph(N, d)
    res = sd.check_grad(J, [w, b], {"X": Xa, "y": ya, "w": wa, "b": ba})
    assert res.ok, str(res)
    # CS229 update w := w - alpha dJ/dw decreases the loss
    fg = sd.compile_grad(J, [w, b])
    losses = []
    for _ in range(50):
        value, (gw, gb) = fg(X=Xa, y=ya, w=wa, b=ba)
        losses.append(float(value))
        wa, ba = wa - 0.5 * gw, ba - 0.5 * gb
    assert losses[-1] < losses[0]
    assert all(b2 <= a2 + 1e-12 for a2, b2 in zip(losses, losses[1:]))


def test_fig68_relu_layer_gradient():
    N, d, k = 5, 3, 4
    rng = np.random.default_rng(1)
    Xa, Wa, ba, Ra = (rng.standard_normal((N, d)), rng.standard_normal((d, k)),
                      rng.standard_normal(k), rng.standard_normal((N, k)))
    X, W, b = sd.var("X", (N, d)), sd.var("W", (d, k)), sd.var("b", (k,))
    H = sd.relu(X @ W + b)
    # same as max(0, XW + b) written with maximum
    H2 = sd.maximum(0.0, X @ W + b)
    J = sd.sum(H * Ra)
    fg = sd.compile_grad(J, [X, W, b])
    value, (gX, gW, gb) = fg(X=Xa, W=Wa, b=ba)
    Z = Xa @ Wa + ba
    np.testing.assert_allclose(sd.compile(H)(X=Xa, W=Wa, b=ba), np.maximum(0, Z), rtol=1e-14)
    np.testing.assert_allclose(sd.compile(H2)(X=Xa, W=Wa, b=ba), np.maximum(0, Z), rtol=1e-14)
    G = Ra * (Z > 0)
    np.testing.assert_allclose(value, np.sum(np.maximum(0, Z) * Ra), rtol=1e-12)
    np.testing.assert_allclose(gW, Xa.T @ G, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, G.sum(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gX, G @ Wa.T, rtol=1e-12, atol=1e-14)
    res = sd.check_grad(sd.sum(H2 * Ra), [X, W, b], {"X": Xa, "W": Wa, "b": ba})
    assert res.ok, str(res)


def test_fig68_linear_regression_weight_decay():
    N, d, lam = 10, 4, 0.3
    rng = np.random.default_rng(2)
    Xa, ya, wa = rng.standard_normal((N, d)), rng.standard_normal(N), rng.standard_normal(d)
    X, y, w = sd.var("X", (N, d)), sd.var("y", (N,)), sd.var("w", (d,))
    J = sd.mean((X @ w - y) ** 2) + lam * sd.sum(w ** 2)
    value, (gw,) = sd.compile_grad(J, [w])(X=Xa, y=ya, w=wa)
    r = Xa @ wa - ya
    np.testing.assert_allclose(value, np.mean(r ** 2) + lam * np.sum(wa ** 2), rtol=1e-12)
    np.testing.assert_allclose(gw, 2 / N * Xa.T @ r + 2 * lam * wa, rtol=1e-10)
    assert sd.check_grad(J, w, {"X": Xa, "y": ya, "w": wa}).ok


# ---------------------------------------------------------------------------------------------
# Fig. 6.9: z = f(f(f(w)))
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fname", ["sin", "exp"])
def test_fig69_chain_rule_by_hand(fname):
    f = getattr(sd, fname)
    fn = getattr(np, fname)
    dfn = {"sin": np.cos, "exp": np.exp}[fname]
    w = sd.var("w")
    z = f(f(f(w)))
    g = sd.grad(z, w)
    for w0 in (-0.7, 0.1, 0.4):
        x0 = fn(w0)
        y0 = fn(x0)
        value, d = sd.compile([z, g])(w0)
        np.testing.assert_allclose(value, fn(y0), rtol=1e-14)
        # dz/dw = f'(y) f'(x) f'(w)
        np.testing.assert_allclose(d, dfn(y0) * dfn(x0) * dfn(w0), rtol=1e-12)


@pytest.mark.parametrize("fname", ["sin", "exp"])
def test_fig69_second_derivative_vs_finite_differences(fname):
    f = getattr(sd, fname)
    w = sd.var("w")
    z = f(f(f(w)))
    g = sd.grad(z, w)
    h = sd.grad(g, w)
    first = sd.compile(g)
    second = sd.compile(h)
    for w0 in (-0.7, 0.1, 0.4):
        eps = 1e-5
        fd = (float(first(w0 + eps)) - float(first(w0 - eps))) / (2 * eps)
        np.testing.assert_allclose(second(w0), fd, rtol=1e-6, atol=1e-8)


def test_fig69_gradient_reuses_forward_nodes():
    w = sd.var("w")
    x = sd.sin(w)
    y = sd.sin(x)
    z = sd.sin(y)
    g = sd.grad(z, w)
    nodes = toposort([z, g])
    sin_w = [n for n in nodes if n.op is not None and n.op.name == "sin" and n.inputs[0] is w]
    assert len(sin_w) == 1 and sin_w[0] is x
    # every sin node the gradient uses is a forward node (stored, not recomputed)
    forward = {id(n) for n in toposort([z])}
    grad_sins = [n for n in toposort([g]) if n.op is not None and n.op.name == "sin"]
    assert grad_sins and all(id(n) in forward for n in grad_sins)
    assert sum(1 for n in nodes if n.op is not None and n.op.name == "sin") == 3
    # each cos(.) appears once
    coses = [n for n in nodes if n.op is not None and n.op.name == "cos"]
    assert len(coses) == 3
    assert len({id(n.inputs[0]) for n in coses}) == 3


def test_fig69_exp_gradient_adds_no_exp_nodes():
    w = sd.var("w")
    z = sd.exp(sd.exp(sd.exp(w)))
    g = sd.grad(z, w)
    forward = {id(n) for n in toposort([z])}
    exps = [n for n in toposort([z, g]) if n.op is not None and n.op.name == "exp"]
    assert len(exps) == 3
    assert all(id(n) in forward for n in exps)


def test_fig69_gradient_graph_is_linear_in_depth():
    counts = {}
    for depth in (10, 20, 40, 80):
        w = sd.var("w")
        z = w
        for _ in range(depth):
            z = sd.sin(z)
        g = sd.grad(z, w)
        counts[depth] = len(toposort([z, g]))
        sins = [n for n in toposort([z, g]) if n.op is not None and n.op.name == "sin"]
        assert len(sins) == depth
    for depth, n in counts.items():
        assert n <= 8 * depth + 10, counts
    # growth is linear: doubling the depth roughly doubles the node count
    assert counts[80] - counts[40] == pytest.approx(2 * (counts[40] - counts[20]), rel=0.05)
    assert counts[80] - counts[40] == pytest.approx(4 * (counts[20] - counts[10]), rel=0.05)


# ---------------------------------------------------------------------------------------------
# XOR (Goodfellow 6.1)
# ---------------------------------------------------------------------------------------------
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0], dtype=float)


def test_xor_linear_least_squares_normal_equations():
    A = np.hstack([XOR_X, np.ones((4, 1))])
    theta = np.linalg.solve(A.T @ A, A.T @ XOR_Y)
    np.testing.assert_allclose(theta, [0.0, 0.0, 0.5], atol=1e-12)
    # the same linear model as a symdiff graph predicts 0.5 everywhere
    X, w, b = sd.var("X", (4, 2)), sd.var("w", (2,)), sd.var("b")
    pred = sd.compile(X @ w + b)(X=XOR_X, w=theta[:2], b=theta[2])
    np.testing.assert_allclose(pred, 0.5, atol=1e-12)


def test_xor_linear_model_gradient_descent_gives_half():
    X, y, w, b = sd.var("X", (4, 2)), sd.var("y", (4,)), sd.var("w", (2,)), sd.var("b")
    J = sd.mean((X @ w + b - y) ** 2)
    fg = sd.compile_grad(J, [w, b])
    wa, ba = np.array([0.3, -0.2]), np.array(0.1)
    for _ in range(2000):
        value, (gw, gb) = fg(X=XOR_X, y=XOR_Y, w=wa, b=ba)
        wa, ba = wa - 0.3 * gw, ba - 0.3 * gb
    np.testing.assert_allclose(wa, 0.0, atol=1e-8)
    np.testing.assert_allclose(ba, 0.5, atol=1e-8)
    np.testing.assert_allclose(value, 0.25, atol=1e-8)  # MSE of predicting 0.5 everywhere
    pred = sd.compile(X @ w + b)(X=XOR_X, w=wa, b=ba)
    np.testing.assert_allclose(pred, 0.5, atol=1e-7)


def _xor_net(H):
    X = sd.var("X", (4, 2))
    W, c = sd.var("W", (2, H)), sd.var("c", (H,))
    w, b = sd.var("w", (H,)), sd.var("b")
    return X, W, c, w, b, sd.relu(X @ W + c) @ w + b


def test_xor_relu_network_exact_solution():
    X, W, c, w, b, f = _xor_net(2)
    out = sd.compile(f)(X=XOR_X, W=np.array([[1.0, 1.0], [1.0, 1.0]]),
                        c=np.array([0.0, -1.0]), w=np.array([1.0, -2.0]), b=0.0)
    assert out.shape == (4,)
    np.testing.assert_array_equal(out, XOR_Y)
    # Goodfellow's intermediate values: h = max(0, XW + c)
    h = sd.compile(sd.relu(X @ W + c))(X=XOR_X, W=np.ones((2, 2)), c=np.array([0.0, -1.0]))
    np.testing.assert_array_equal(h, [[0, 0], [1, 0], [1, 0], [2, 1]])


def test_xor_relu_network_training_converges():
    # hidden width 16, small random weights (sd 0.3), biases c = 0.1 (ReLU practice),
    # gradient descent with momentum on the MSE; converges for essentially every seed
    H = 16
    X, W, c, w, b, f = _xor_net(H)
    y = sd.var("y", (4,))
    J = sd.mean((f - y) ** 2)
    fg = sd.compile_grad(J, [W, c, w, b])
    rng = np.random.default_rng(0)
    params = [rng.normal(0, 0.3, (2, H)), np.full(H, 0.1), rng.normal(0, 0.3, H),
              np.array(0.0)]
    velocity = [np.zeros_like(p) for p in params]
    first = None
    for _ in range(1500):
        value, grads = fg(X=XOR_X, y=XOR_Y, W=params[0], c=params[1], w=params[2], b=params[3])
        if first is None:
            first = float(value)
        for k in range(4):
            velocity[k] = 0.9 * velocity[k] - 0.05 * grads[k]
            params[k] = params[k] + velocity[k]
    pred = sd.compile(f)(X=XOR_X, W=params[0], c=params[1], w=params[2], b=params[3])
    assert np.max(np.abs(pred - XOR_Y)) < 0.1, pred
    assert float(value) < first


# ---------------------------------------------------------------------------------------------
# Goodfellow 6.5.7 MLP
# ---------------------------------------------------------------------------------------------
def _mlp(N=6, d=4, h=5, k=3, lam=0.25, seed=3):
    rng = np.random.default_rng(seed)
    data = dict(X=rng.standard_normal((N, d)),
                Y=np.eye(k)[rng.integers(0, k, N)],
                W1=rng.standard_normal((d, h)) * 0.7,
                W2=rng.standard_normal((h, k)) * 0.7)
    X, Y = sd.var("X", (N, d)), sd.var("Y", (N, k))
    W1, W2 = sd.var("W1", (d, h)), sd.var("W2", (h, k))
    H = sd.relu(X @ W1)
    U2 = H @ W2
    cross_entropy = -sd.mean(sd.sum(Y * sd.log_softmax(U2, axis=1), axis=1))
    decay = lam * (sd.sum(sd.square(W1)) + sd.sum(sd.square(W2)))
    return data, (X, Y, W1, W2), cross_entropy + decay, decay


def test_mlp_check_grad_all_parameters():
    data, (X, Y, W1, W2), J, _ = _mlp()
    res = sd.check_grad(J, [W1, W2], data)
    assert res.ok, str(res)
    assert set(res.report) == {"W1", "W2"}


def test_mlp_weight_decay_gradient_is_exactly_2_lambda_W():
    data, (X, Y, W1, W2), J, decay = _mlp(lam=0.25)
    g1, g2 = sd.compile(sd.grad(decay, [W1, W2]), inputs=[W1, W2])(data["W1"], data["W2"])
    # lam = 1/4 is a power of two, so 2 lam W is exact in floating point
    np.testing.assert_array_equal(g1, 2 * 0.25 * data["W1"])
    np.testing.assert_array_equal(g2, 2 * 0.25 * data["W2"])
    lam = 0.37
    data, (X, Y, W1, W2), J, decay = _mlp(lam=lam)
    g1, g2 = sd.compile(sd.grad(decay, [W1, W2]), inputs=[W1, W2])(data["W1"], data["W2"])
    np.testing.assert_allclose(g1, 2 * lam * data["W1"], rtol=1e-15)
    np.testing.assert_allclose(g2, 2 * lam * data["W2"], rtol=1e-15)


def test_mlp_gradient_matches_hand_backprop_algorithm_64():
    lam = 0.25
    data, (X, Y, W1, W2), J, _ = _mlp(lam=lam)
    value, (g1, g2) = sd.compile_grad(J, [W1, W2])(**data)
    Xa, Ya, W1a, W2a = data["X"], data["Y"], data["W1"], data["W2"]
    N = Xa.shape[0]
    # forward
    A1 = Xa @ W1a
    Ha = np.maximum(0, A1)
    U = Ha @ W2a
    P = _softmax(U)
    J_np = -np.mean(np.sum(Ya * np.log(P), axis=1)) + lam * (np.sum(W1a ** 2) + np.sum(W2a ** 2))
    np.testing.assert_allclose(value, J_np, rtol=1e-12)
    # backward (algorithm 6.4)
    G = (P - Ya) / N
    gW2 = Ha.T @ G + 2 * lam * W2a
    G = G @ W2a.T
    G = G * (A1 > 0)
    gW1 = Xa.T @ G + 2 * lam * W1a
    np.testing.assert_allclose(g2, gW2, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g1, gW1, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# CS224n window NER model with max-margin loss
# ---------------------------------------------------------------------------------------------
V, DIM, HID = 10, 4, 8
TRUE_IDX = np.array([3, 7, 3, 1, 5])   # word 3 occurs twice in the window
CORRUPT_IDX = np.array([3, 7, 9, 1, 5])  # the center word replaced


def _ner_data(seed=4):
    rng = np.random.default_rng(seed)
    return dict(L=rng.standard_normal((V, DIM)), W=rng.standard_normal((HID, 5 * DIM)) * 0.3,
                b=rng.standard_normal(HID) * 0.1, u=rng.standard_normal(HID) * 0.1)


def _ner_graph(act, margin=1.0):
    L, W, b, u = (sd.var("L", (V, DIM)), sd.var("W", (HID, 5 * DIM)), sd.var("b", (HID,)),
                  sd.var("u", (HID,)))

    def score(idx):
        x = sd.reshape(sd.take(L, idx), (5 * DIM,))
        z = W @ x + b
        h = act(z)
        return x, z, h, u @ h

    x, z, h, s = score(TRUE_IDX)
    xc, zc, hc, sc = score(CORRUPT_IDX)
    J = sd.maximum(0.0, margin - s + sc)
    return (L, W, b, u), (x, z, h, s), (xc, zc, hc, sc), J


def _ner_numpy(p, act, dact):
    out = {}
    for key, idx in (("t", TRUE_IDX), ("c", CORRUPT_IDX)):
        x = p["L"][idx].reshape(-1)
        z = p["W"] @ x + p["b"]
        h = act(z)
        out[key] = dict(x=x, z=z, h=h, s=p["u"] @ h, dh=dact(z))
    return out


ACTS = {
    "sigmoid": (sd.sigmoid, _sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    "relu": (sd.relu, lambda z: np.maximum(0, z), lambda z: (z > 0).astype(float)),
}


@pytest.mark.parametrize("actname", sorted(ACTS))
def test_ner_window_max_margin_gradients(actname):
    sd_act, np_act, np_dact = ACTS[actname]
    p = _ner_data()
    (L, W, b, u), _, _, J = _ner_graph(sd_act)
    value, (gL, gW, gb, gu) = sd.compile_grad(J, [L, W, b, u])(**p)
    ref = _ner_numpy(p, np_act, np_dact)
    t, c = ref["t"], ref["c"]
    margin = 1 - t["s"] + c["s"]
    assert margin > 0  # the hinge is active at this point
    np.testing.assert_allclose(value, margin, rtol=1e-12)
    # each gradient has its parameter's shape
    assert gL.shape == (V, DIM) and gW.shape == (HID, 5 * DIM)
    assert gb.shape == (HID,) and gu.shape == (HID,)
    # dJ/ds = -1, dJ/ds_c = +1; delta = dJ/dz = dJ/ds * u * f'(z)
    delta = -p["u"] * t["dh"]
    delta_c = p["u"] * c["dh"]
    np.testing.assert_allclose(gW, np.outer(delta, t["x"]) + np.outer(delta_c, c["x"]),
                               rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gb, delta + delta_c, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gu, -t["h"] + c["h"], rtol=1e-10, atol=1e-15)
    # word vectors: scatter-add of W^T delta, one DIM-slice per window position
    dx = (p["W"].T @ delta).reshape(5, DIM)
    dxc = (p["W"].T @ delta_c).reshape(5, DIM)
    expected = np.zeros((V, DIM))
    for pos in range(5):
        expected[TRUE_IDX[pos]] += dx[pos]
        expected[CORRUPT_IDX[pos]] += dxc[pos]
    np.testing.assert_allclose(gL, expected, rtol=1e-10, atol=1e-15)
    used = set(TRUE_IDX) | set(CORRUPT_IDX)
    for row in range(V):
        if row not in used:
            assert np.all(gL[row] == 0.0), row
    # the repeated word 3 gets positions 0 and 2 of the true window and 0 of the corrupt one
    np.testing.assert_allclose(gL[3], dx[0] + dx[2] + dxc[0], rtol=1e-10, atol=1e-15)
    assert not np.allclose(gL[3], dx[0] + dxc[0])
    # word 9 is only in the corrupt window, word 7 in both at position 1
    np.testing.assert_allclose(gL[9], dxc[2], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gL[7], dx[1] + dxc[1], rtol=1e-10, atol=1e-15)


def test_ner_score_gradient_is_outer_product():
    p = _ner_data()
    (L, W, b, u), (x, z, h, s), _, _ = _ner_graph(sd.sigmoid)
    gW, gb = sd.grad(s, [W, b])
    gW_v, gb_v = sd.compile([gW, gb], inputs=[L, W, b, u])(p["L"], p["W"], p["b"], p["u"])
    ref = _ner_numpy(p, _sigmoid, lambda zz: _sigmoid(zz) * (1 - _sigmoid(zz)))["t"]
    delta = p["u"] * ref["dh"]  # dS/dz
    np.testing.assert_allclose(gW_v, np.outer(delta, ref["x"]), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gb_v, delta, rtol=1e-10, atol=1e-15)
    # delta = dS/dz, the gradient w.r.t. the intermediate node z itself
    dz = sd.compile(sd.grad(s, z), inputs=[L, W, b, u])(p["L"], p["W"], p["b"], p["u"])
    np.testing.assert_allclose(dz, delta, rtol=1e-10, atol=1e-15)


def test_ner_inactive_margin_gives_zero_gradients():
    p = _ner_data()
    (L, W, b, u), _, _, J = _ner_graph(sd.sigmoid, margin=-10.0)
    value, grads = sd.compile_grad(J, [L, W, b, u])(**p)
    assert float(value) == 0.0
    for g in grads:
        assert np.all(g == 0.0)


def test_ner_check_grad():
    p = _ner_data()
    (L, W, b, u), _, _, J = _ner_graph(sd.sigmoid)
    res = sd.check_grad(J, [L, W, b, u], p)
    assert res.ok, str(res)


# ---------------------------------------------------------------------------------------------
# softmax classifier
# ---------------------------------------------------------------------------------------------
def test_softmax_classifier_gradient():
    N, d, C = 7, 4, 3
    rng = np.random.default_rng(5)
    Xa, Wa = rng.standard_normal((N, d)), rng.standard_normal((C, d))
    labels = rng.integers(0, C, N)
    Ya = np.eye(C)[labels]
    X, Y, W = sd.var("X", (N, d)), sd.var("Y", (N, C)), sd.var("W", (C, d))
    # p(y|x) = exp(W_y x) / sum_c exp(W_c x), written out
    E = sd.exp(X @ W.T)
    P = E / sd.sum(E, axis=1, keepdims=True)
    J = -sd.mean(sd.log(sd.sum(Y * P, axis=1)))
    # the same loss with log_softmax
    J2 = -sd.mean(sd.sum(Y * sd.log_softmax(X @ W.T, axis=1), axis=1))
    Pa = _softmax(Xa @ Wa.T)
    J_np = -np.mean(np.log(Pa[np.arange(N), labels]))
    expected = (Pa - Ya).T @ Xa / N
    for loss in (J, J2):
        value, (gW,) = sd.compile_grad(loss, [W])(X=Xa, Y=Ya, W=Wa)
        np.testing.assert_allclose(value, J_np, rtol=1e-12)
        assert gW.shape == (C, d)
        np.testing.assert_allclose(gW, expected, rtol=1e-9, atol=1e-14)


def test_softmax_classifier_with_gathered_labels():
    N, d, C = 7, 4, 3
    rng = np.random.default_rng(6)
    Xa, Wa = rng.standard_normal((N, d)), rng.standard_normal((C, d))
    labels = rng.integers(0, C, N)
    X, W = sd.var("X", (N, d)), sd.var("W", (C, d))
    logp = sd.log_softmax(X @ W.T, axis=1)
    J = -sd.mean(logp[np.arange(N), labels])
    value, (gW,) = sd.compile_grad(J, [W])(X=Xa, W=Wa)
    Pa = _softmax(Xa @ Wa.T)
    np.testing.assert_allclose(value, -np.mean(np.log(Pa[np.arange(N), labels])), rtol=1e-12)
    np.testing.assert_allclose(gW, (Pa - np.eye(C)[labels]).T @ Xa / N, rtol=1e-9, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fname,deriv", [
    ("sigmoid", lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    ("tanh", lambda z: 1 - np.tanh(z) ** 2),
    ("relu", lambda z: (z > 0).astype(float)),
    ("sin", np.cos),
    ("exp", np.exp),
])
def test_jacobian_of_elementwise_is_diagonal(fname, deriv):
    z = sd.var("z", (5,))
    h = getattr(sd, fname)(z)
    J = sd.jacobian(h, z)
    assert J.shape == (5, 5)
    z0 = np.array([-1.3, -0.2, 0.4, 0.9, 2.1])
    np.testing.assert_allclose(sd.compile(J)(z0), np.diag(deriv(z0)), rtol=1e-12, atol=1e-15)


def test_jacobian_of_affine_map():
    n, m = 4, 3
    rng = np.random.default_rng(7)
    Wa, xa, ba = rng.standard_normal((n, m)), rng.standard_normal(m), rng.standard_normal(n)
    W, x, b = sd.var("W", (n, m)), sd.var("x", (m,)), sd.var("b", (n,))
    z = W @ x + b
    Jx, Jb = sd.jacobian(z, x), sd.jacobian(z, b)
    assert Jx.shape == (n, m) and Jb.shape == (n, n)
    jx, jb = sd.compile([Jx, Jb], inputs=[W, x, b])(Wa, xa, ba)
    np.testing.assert_allclose(jx, Wa, rtol=1e-15)  # d(Wx + b)/dx = W
    np.testing.assert_array_equal(jb, np.eye(n))    # d(Wx + b)/db = I
    # d(Wx + b)/dW has shape (n, n, m): entry [i, j, k] = delta_ij x_k
    JW = sd.jacobian(z, W)
    assert JW.shape == (n, n, m)
    jw = sd.compile(JW, inputs=[W, x, b])(Wa, xa, ba)
    np.testing.assert_allclose(jw, np.einsum("ij,k->ijk", np.eye(n), xa), rtol=1e-15)


def test_jacobian_of_score_wrt_u_is_h():
    u, h = sd.var("u", (6,)), sd.var("h", (6,))
    J = sd.jacobian(u @ h, u)
    assert J.shape == (6,)
    ha = np.linspace(-1, 1, 6)
    np.testing.assert_allclose(sd.compile(J, inputs=[h, u])(ha, np.ones(6)), ha, rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# gradient checking itself
# ---------------------------------------------------------------------------------------------
def test_check_grad_report_fields():
    x = sd.var("x", (3,))
    res = sd.check_grad(sd.sum(sd.exp(x)), x, {"x": np.array([0.1, 0.5, 1.0])})
    assert res.ok is True
    assert isinstance(res.max_abs_err, float) and isinstance(res.max_rel_err, float)
    assert 0.0 <= res.max_abs_err < 1e-6 and 0.0 <= res.max_rel_err < 1e-6
    rep = res.report["x"]
    assert rep.ok is True
    assert isinstance(rep.max_abs_err, float) and isinstance(rep.max_rel_err, float)


def test_check_grad_numeric_side_error_grows_with_eps():
    x = sd.var("x", (3,))
    y = sd.sum(sd.exp(x))
    at = {"x": np.array([0.1, 0.5, 1.0])}
    default = sd.check_grad(y, x, at)
    coarse = sd.check_grad(y, x, at, eps=1e-1)
    assert coarse.max_abs_err > default.max_abs_err
    assert coarse.max_abs_err > 1e-4
    # central differences: error ~ f'''(x) h^2 / 6 = e^x h^2 / 6 at the largest x
    expected = math.exp(1.0) * (1e-1 * 1.0) ** 2 / 6
    assert coarse.max_abs_err == pytest.approx(expected, rel=0.05)
    # with a strict tolerance that coarse step is reported as a mismatch
    strict = sd.check_grad(y, x, at, eps=1e-1, rtol=1e-8, atol=0.0)
    assert strict.ok is False and bool(strict) is False
    assert strict.report["x"].ok is False


def test_check_grad_matches_lecture_formula():
    # f'(x) ~ (f(x + h) - f(x - h)) / 2h with h ~ 1e-4, done by hand, against check_grad's
    # symbolic side (the compiled gradient)
    x = sd.var("x", (4,))
    y = sd.sum(sd.tanh(x) * x)
    x0 = np.array([-1.0, -0.1, 0.3, 2.0])
    f = sd.compile(y)
    num = _fd(f, x0, eps=1e-4)
    g = sd.compile(sd.grad(y, x))(x0)
    np.testing.assert_allclose(g, num, rtol=1e-7, atol=1e-9)
    assert sd.check_grad(y, x, {"x": x0}).ok
