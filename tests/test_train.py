"""symdiff.training.train.fit: mini-batch training with compiled gradients, History, TrainingError."""
import sys
import types

import numpy as np
import pytest

import symdiff as sd
from symdiff import init, models, optim
from symdiff.training.optim import SGD, Adam
from symdiff.training.train import History, TrainingError, fit


def logistic(n=100, d=3, seed=0, lam=0.01):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 + rng.normal(size=n) > 0).astype(float)
    Xv, yv = sd.var("X", (n, d)), sd.var("y", (n,))
    w, b = sd.var("w", (d,)), sd.var("b")
    z = Xv @ w + b
    loss = sd.mean(sd.softplus(z) - yv * z) + lam * sd.sum(w * w)
    return loss, {"X": X, "y": y}, {"w": np.zeros(d), "b": np.array(0.0)}


def test_trains_xor_network_to_zero_error():
    model = models.xor_network(hidden=8)
    rng = np.random.default_rng(0)
    params = {"W": init.he_normal((2, 8), rng), "c": np.full(8, 0.1),
              "w": rng.normal(0, 0.5, 8), "b": 0.0}
    hist = fit(model.loss, params, {"X": models.XOR_X, "y": models.XOR_Y}, Adam(0.05),
               epochs=400)
    assert isinstance(hist, History)
    assert hist.epochs == 400 and len(hist.batch_loss) == 400 and hist.batches_per_epoch == 1
    assert hist.epoch_loss[-1] < 1e-6 < hist.epoch_loss[0]
    out = sd.compile(model.output)(X=models.XOR_X, **hist.params)
    np.testing.assert_allclose(out, models.XOR_Y, atol=1e-3)
    assert params["b"] == 0.0 and params["c"][0] == 0.1  # the caller's params are untouched


def test_logistic_regression_minibatches_rebuilt_for_batch_size():
    loss, data, params = logistic(n=100)
    opt = Adam(optim.step_decay(0.1, factor=0.5, every=10))
    hist = fit(loss, params, data, opt, epochs=40, batch_size=32, seed=1)
    # 100 rows in batches of 32: three full batches and one of 4 (compiled for 4 rows)
    assert hist.batch_sizes == [32, 32, 32, 4] and hist.batches_per_epoch == 4
    assert len(hist.batch_loss) == 160 and hist.epochs == 40
    assert hist.lr[:11] == [0.1] * 10 + [0.05] and hist.lr[-1] == pytest.approx(0.1 / 8)
    # near the full-batch optimum, found by Newton's method in NumPy on [w, b]
    X, y, lam = data["X"], data["y"], 0.01
    A = np.hstack([X, np.ones((len(X), 1))])
    reg = np.diag([2 * lam] * 3 + [0.0])
    theta = np.zeros(4)
    for _ in range(30):
        s = 1 / (1 + np.exp(-A @ theta))
        g = A.T @ (s - y) / len(X) + reg @ theta
        H = (A * (s * (1 - s))[:, None]).T @ A / len(X) + reg
        theta -= np.linalg.solve(H, g)
    f = sd.compile(loss)
    full = float(f(**data, **hist.params))
    best = float(f(**data, w=theta[:3], b=theta[3]))
    assert best <= full < best + 2e-3
    np.testing.assert_allclose(hist.params["w"], theta[:3], atol=0.05)
    assert hist.epoch_loss[-1] < hist.epoch_loss[0]


def test_every_example_once_per_epoch_and_drop_last():
    n, d = 100, 2
    X = np.random.default_rng(5).normal(size=(n, d))
    Xv, w = sd.var("X", (n, d)), sd.var("w", (d,))
    loss = sd.mean(Xv @ w)
    params = {"w": np.ones(d)}
    hist = fit(loss, params, {"X": X}, SGD(0.0), epochs=3, batch_size=32)  # lr 0: w stays 1
    np.testing.assert_allclose(hist.epoch_loss, [X.sum(1).mean()] * 3, rtol=1e-12)
    hist = fit(loss, params, {"X": X}, SGD(0.0), epochs=2, batch_size=32, drop_last=True)
    assert hist.batch_sizes == [32, 32, 32] and len(hist.batch_loss) == 6
    hist = fit(loss, params, {"X": X}, SGD(0.0), epochs=1, batch_size=25, shuffle=False)
    np.testing.assert_allclose(hist.batch_loss, X.sum(1).reshape(4, 25).mean(1), rtol=1e-12)


def test_mlp_from_the_notes_minibatches():
    rng = np.random.default_rng(0)
    n, d, k = 120, 4, 3
    centers = rng.normal(scale=3.0, size=(k, d))
    labels = rng.integers(0, k, size=n)
    X = centers[labels] + rng.normal(size=(n, d))
    Y = np.eye(k)[labels]
    model = models.mlp_loss(n=n, d=d, hidden=16, classes=k, lam=1e-4)
    params = init.init_params(model.params, 0, method="he_normal")
    hist = fit(model.loss, params, {"X": X, "Y": Y}, Adam(0.01), epochs=30, batch_size=16)
    assert hist.batch_sizes == [16] * 7 + [8]
    assert hist.epoch_loss[-1] < 0.1 < hist.epoch_loss[0]


def test_deterministic_under_seed():
    loss, data, params = logistic(n=60)
    runs = [fit(loss, params, data, Adam(0.05), epochs=5, batch_size=16, seed=s)
            for s in (3, 3, 4)]
    assert runs[0].batch_loss == runs[1].batch_loss
    for k in params:
        np.testing.assert_array_equal(runs[0].params[k], runs[1].params[k])
    assert runs[0].batch_loss != runs[2].batch_loss


def test_non_finite_loss_names_epoch_and_batch():
    # log of a negative: the second batch (rows 2..3, no shuffling) holds a negative entry
    x = sd.var("x", (2,))
    a = sd.var("a")
    loss = sd.mean(sd.log(a * x))
    data = {"x": np.array([1.0, 2.0, -1.0, 3.0, 4.0, 5.0])}
    with np.errstate(invalid="ignore"), pytest.raises(TrainingError) as info:
        fit(loss, {"a": 1.0}, data, SGD(0.01), epochs=3, batch_size=2, shuffle=False)
    err = info.value
    assert "epoch 1 of 3" in str(err) and "batch 2 of 3" in str(err) and "nan" in str(err)
    assert (err.epoch, err.batch) == (1, 2)
    assert "log" in str(err).split("batch 2 of 3")[1]  # where the nan first appears
    assert isinstance(err, sd.SymdiffError)
    assert len(err.history.batch_loss) == 1 and np.isfinite(err.params["a"])


def test_divergence_stops_at_a_later_epoch():
    w = sd.var("w", (2,))
    loss = sd.sum(sd.square(w - 1.0))  # no data: one step per epoch
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(TrainingError) as info:
        fit(loss, {"w": np.zeros(2)}, {}, SGD(10.0), epochs=1000)  # |w - 1| grows 19x a step
    err = info.value
    assert 100 < err.epoch < 1000 and f"epoch {err.epoch} of 1000, batch 1 of 1" in str(err)
    assert len(err.history.epoch_loss) == err.epoch - 1


def test_non_finite_gradient_with_finite_loss():
    w = sd.var("w", (2,))
    loss = sd.norm(w)  # gradient w / |w|: 0/0 at w = 0, while the loss is 0
    with np.errstate(all="ignore"), pytest.raises(TrainingError) as info:
        fit(loss, {"w": np.zeros(2)}, {}, SGD(0.1), epochs=2)
    assert "gradient for ['w'] is not finite at epoch 1 of 2, batch 1 of 1" in str(info.value)


def test_callback_stops_early_and_sees_params():
    loss, data, params = logistic(n=50)
    seen = []

    def callback(history):
        seen.append((history.epochs, dict(history.params)))
        return history.epochs == 3

    hist = fit(loss, params, data, SGD(0.5), epochs=10, callback=callback)
    assert hist.stopped_early and hist.epochs == 3 and [e for e, _ in seen] == [1, 2, 3]
    np.testing.assert_array_equal(seen[-1][1]["w"], hist.params["w"])


def test_fixed_inputs_and_optimizer_state_carries_over():
    loss0, data, params = logistic(n=40)
    lam = sd.var("lam")
    w = sd.var("w", (3,))
    loss = loss0 + lam * sd.sum(sd.square(w))
    opt = SGD(0.5, momentum=0.5)
    h1 = fit(loss, params, data, opt, epochs=2, fixed={"lam": 0.1})
    assert opt.iterations == 2 and "w" in opt.state
    h2 = fit(loss, h1.params, data, opt, epochs=2, fixed={"lam": 0.1})
    assert opt.iterations == 4 and h2.epoch_loss[0] < h1.epoch_loss[0]


def test_progress_plain_lines_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import fails: plain lines on stderr
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    loss, data, params = logistic(n=30)
    fit(loss, params, data, Adam(0.1), epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2  loss" in err and "epoch 2/2" in err and "lr 0.1" in err


def test_progress_uses_tqdm_when_installed(monkeypatch):
    calls = {"update": 0, "postfix": [], "closed": False}

    class FakeBar:
        def __init__(self, total, **kw):
            calls["total"] = total

        def update(self, k):
            calls["update"] += k

        def set_postfix(self, **kw):
            calls["postfix"].append(kw)

        def close(self):
            calls["closed"] = True

    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeBar
    pkg = types.ModuleType("tqdm")
    pkg.auto = auto
    monkeypatch.setitem(sys.modules, "tqdm", pkg)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    loss, data, params = logistic(n=30)
    fit(loss, params, data, Adam(0.1), epochs=3, batch_size=10, progress=True)
    assert calls["total"] == 9 and calls["update"] == 9 and calls["closed"]
    assert calls["postfix"][-1]["epoch"] == "3/3" and "loss" in calls["postfix"][-1]


def test_history_plot_without_matplotlib(monkeypatch):
    loss, data, params = logistic(n=20)
    hist = fit(loss, params, data, Adam(0.1), epochs=2)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        hist.plot()
    assert "2 epoch(s)" in repr(hist)


def test_history_plot_with_matplotlib():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    loss, data, params = logistic(n=20)
    hist = fit(loss, params, data, Adam(0.1), epochs=3, batch_size=5)
    ax = hist.plot()
    assert ax.get_xlabel() == "epoch" and len(ax.lines) == 2


def test_input_errors():
    loss, data, params = logistic(n=20)
    with pytest.raises(sd.InputError, match="not variables of the loss"):
        fit(loss, {**params, "v": np.ones(2)}, data, SGD(0.1))
    with pytest.raises(sd.InputError, match=r"\['y'\].*neither"):
        fit(loss, params, {"X": data["X"]}, SGD(0.1))
    with pytest.raises(sd.InputError, match="share their leading"):
        fit(loss, params, {"X": data["X"], "y": data["y"][:10]}, SGD(0.1))
    with pytest.raises(sd.InputError, match=r"expected \(N, 3\)"):
        fit(loss, params, {"X": data["X"][:, :2], "y": data["y"]}, SGD(0.1))
    with pytest.raises(sd.InputError, match="'w'.*expected"):
        fit(loss, {"w": np.zeros(4), "b": 0.0}, data, SGD(0.1))
    with pytest.raises(sd.SymdiffError, match="larger than"):
        fit(loss, params, data, SGD(0.1), batch_size=50)
    with pytest.raises(sd.SymdiffError, match="step"):
        fit(loss, params, data, object())
    with pytest.raises(sd.ShapeError, match="scalar"):
        fit(sd.var("X", (20, 3)) * 2.0, params, data, SGD(0.1))
    with pytest.raises(sd.SymdiffError, match="epochs"):
        fit(loss, params, data, SGD(0.1), epochs=-1)


def test_graph_with_fixed_batch_size_cannot_be_rebuilt():
    n, d = 12, 2
    Xv, w = sd.var("X", (n, d)), sd.var("w", (n * d,))
    loss = sd.sum(sd.reshape(Xv, (n * d,)) * w)  # hard-codes n rows
    X = np.ones((30, d))
    with pytest.raises(sd.ShapeError, match="drop_last=True"):
        fit(loss, {"w": np.zeros(n * d)}, {"X": X}, SGD(0.1), batch_size=n)
    hist = fit(loss, {"w": np.zeros(n * d)}, {"X": X}, SGD(0.1), batch_size=n, drop_last=True,
               epochs=1)
    assert hist.batch_sizes == [12, 12]


# ---------------------------------------------------------------------------------------------
# stopping keeps the work done (issue 10, item 7)
# ---------------------------------------------------------------------------------------------
class _InterruptAfter:
    """An SGD optimizer that gets Ctrl-C during its step number ``at`` (1-based): a real
    SIGINT when ``signal_it``, else a KeyboardInterrupt raised directly."""

    def __init__(self, at, signal_it=False):
        self.inner, self.at, self.calls, self.signal_it = SGD(0.1), at, 0, signal_it

    def step(self, params, grads):
        self.calls += 1
        if self.calls == self.at:
            if self.signal_it:
                import os
                import signal
                import time
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler raises KeyboardInterrupt here
            raise KeyboardInterrupt
        return self.inner.step(params, grads)


def _snapshot(mapping):
    return {k: np.array(v, copy=True) for k, v in mapping.items()}


@pytest.mark.parametrize("signal_it", [False, True], ids=["raise", "sigint"])
def test_ctrl_c_returns_the_history_with_the_last_good_parameters(signal_it):
    loss, data, params = logistic(n=100)
    before_params, before_data = _snapshot(params), _snapshot(data)
    # 4 batches an epoch: the 22nd step is interrupted, 21 are complete (5 epochs and 1 batch)
    with pytest.warns(RuntimeWarning, match="interrupted after 21 step"):
        hist = fit(loss, params, data, _InterruptAfter(22, signal_it), epochs=10,
                   batch_size=25, seed=3)
    assert hist.interrupted and not hist.stopped_early
    assert hist.epochs == 5 and len(hist.batch_loss) == 21
    # the same run stopped after 21 steps by plain SGD gives the same parameters
    reference = SGD(0.1)
    full = fit(loss, params, data, reference, epochs=6, batch_size=25, seed=3)
    assert full.batch_loss[:21] == hist.batch_loss
    assert hist.epoch_loss == full.epoch_loss[:5]
    redo = fit(loss, params, data, _StopAfter(SGD(0.1), 21), epochs=6, batch_size=25, seed=3)
    for k in params:
        np.testing.assert_array_equal(hist.params[k], redo.params[k])
        assert hist.params[k] is not params[k]
    for k in params:  # the caller's arrays are untouched
        np.testing.assert_array_equal(params[k], before_params[k])
    for k in data:
        np.testing.assert_array_equal(data[k], before_data[k])


class _StopAfter:
    """Plain steps, then the parameters frozen after ``n`` steps (returned unchanged)."""

    def __init__(self, inner, n):
        self.inner, self.n, self.calls = inner, n, 0

    def step(self, params, grads):
        self.calls += 1
        return self.inner.step(params, grads) if self.calls <= self.n else dict(params)


def test_ctrl_c_can_be_re_raised():
    loss, data, params = logistic(n=100)
    with pytest.raises(KeyboardInterrupt):
        fit(loss, params, data, _InterruptAfter(3), epochs=2, batch_size=25,
            catch_interrupt=False)


def test_training_error_carries_the_parameters_of_the_last_good_step():
    # the divergence is found in the middle of an epoch: the history's params are those of
    # the step before it (not of the last complete epoch), equal to error.params
    x = sd.var("x", (2,))
    a = sd.var("a")
    loss = sd.mean(sd.log(a * x))
    data = {"x": np.array([1.0, 2.0, 3.0, 4.0, -1.0, 5.0])}
    params = {"a": np.array(1.0)}
    with np.errstate(invalid="ignore"), pytest.raises(TrainingError) as info:
        fit(loss, params, data, SGD(0.01), epochs=3, batch_size=2, shuffle=False)
    err = info.value
    assert (err.epoch, err.batch) == (1, 3) and len(err.history.batch_loss) == 2
    assert err.history.params["a"] == err.params["a"] != 1.0
    assert params["a"] == 1.0 and data["x"][4] == -1.0
