"""Reliability of compiled functions (issue 10): linecache entries die with the function,
non-finite constants and params print as valid code, returned arrays are the caller's own,
any variable name (``self`` too) can be passed by keyword, and the scalar fast path computes
what the NumPy path computes."""
import gc
import linecache
import tracemalloc

import numpy as np
import pytest

import symdiff as sd
from symdiff.lower.tape import TAPE_THRESHOLD


# -- linecache (issue 10 #5) ----------------------------------------------------------------
def test_linecache_entries_die_with_the_compiled_function():
    x = sd.var("x", (3,))
    loss = sd.sum(sd.sin(x) * x)
    for _ in range(50):  # warm caches (NumPy dtypes, interned nodes)
        sd.compile_grad(loss, x)(np.ones(3))
    gc.collect()
    before = sum(1 for k in linecache.cache if k.startswith("<symdiff-"))
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(1000):
        f = sd.compile_grad(loss, x)
        assert f(np.ones(3))[0] > 0
    del f
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    after = sum(1 for k in linecache.cache if k.startswith("<symdiff-"))
    assert after <= before
    assert growth < 100_000, f"{growth} bytes kept by 1,000 compiled functions"


def test_traceback_shows_generated_line_while_the_function_lives():
    x = sd.var("x", (2,))
    f = sd.compile(sd.sum(x), check_finite=True)
    with pytest.raises(sd.NonFiniteError):
        f(np.array([np.nan, 1.0]))
    names = [k for k in linecache.cache if k.startswith("<symdiff-")]
    assert any("check_finite" in "".join(linecache.cache[k][2]) for k in names)


# -- non-finite constants and params (issue 10 #6) --------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "tape", "scalar"])
def test_non_finite_params_and_constants_print_as_valid_code(backend, monkeypatch):
    if backend == "tape":
        monkeypatch.setattr("symdiff.compiler.TAPE_THRESHOLD", 0)
    shape = () if backend == "scalar" else (3,)
    x = sd.var("x", shape)
    ys = [sd.hardtanh(x, lo=-np.inf), sd.hardtanh(x, -np.inf, np.inf) + np.inf * 0 + x,
          sd.parse("hardtanh(x,-1e999,1e999)", shapes={"x": shape}),
          sd.maximum(x, sd.const(-np.inf)), x * sd.const(np.nan)]
    value = 2.5 if backend == "scalar" else np.array([-5.0, 0.3, 7.0])
    for y in ys:
        for optimize in (True, False):
            got = sd.compile(y, optimize=optimize)(value)
            want = sd.compile(y, optimize=optimize)(x=value)  # keyword: never the scalar path
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(sd.compile(ys[0])(value), np.clip(value, -np.inf, 1.0))


# -- ownership of returned arrays (issue 10 #8) -----------------------------------------------
def test_gradient_is_not_the_callers_array():
    W, X = sd.var("W", (2, 3)), sd.var("X", (2, 3))
    f = sd.compile_grad(sd.sum(W * X), [W, X])
    w, xv = np.ones((2, 3)), np.arange(6.0).reshape(2, 3)
    _, (gW, gX) = f(w, xv)
    assert gW is not xv and not np.shares_memory(gW, xv) and gW.flags.writeable
    gW += 1.0
    np.testing.assert_array_equal(xv, np.arange(6.0).reshape(2, 3))


def test_broadcast_gradient_is_writable_and_outputs_do_not_share():
    x, b = sd.var("x", (3,)), sd.var("b")
    f = sd.compile_grad(sd.sum(x + b), [x, b])
    _, (gx, gb) = f(x=np.ones(3), b=1.0)
    assert gx.flags.writeable
    gx += 1.0
    a, c = sd.var("a", (3,)), sd.var("c", (3,))
    _, (ga, gc_) = sd.compile_grad(sd.sum(a + c), [a, c])(np.ones(3), np.ones(3))
    assert not np.shares_memory(ga, gc_)
    assert sd.compile(sd.const(np.ones(2)) + 0.0, optimize=False)().flags.writeable


@pytest.mark.parametrize("tape", [False, True])
def test_constant_and_input_outputs_are_copies(tape, monkeypatch):
    if tape:
        monkeypatch.setattr("symdiff.compiler.TAPE_THRESHOLD", 0)
    x = sd.var("x", (3,))
    f = sd.compile([x, sd.stop_gradient(x), sd.reshape(x, (3, 1)), sd.broadcast_to(x, (2, 3))])
    value = np.arange(3.0)
    for out in f(value):
        assert not np.shares_memory(out, value) and out.flags.writeable


# -- any variable name by keyword (issue 10 #10) ----------------------------------------------
def test_variable_named_self_by_keyword():
    s, y = sd.var("self"), sd.var("y")
    loss = s * s + y
    assert float(sd.compile(loss)(self=2.0, y=1.0)) == 5.0
    value, (g,) = sd.compile_grad(loss, s)(self=3.0, y=0.0)
    assert float(g) == 6.0
    assert sd.check_grad(loss, s, {"self": 1.5, "y": 0.5}).ok
    e = sd.explain(loss, [s], {"self": 2.0, "y": 1.0})
    assert float(e.gradients["self"]) == 4.0
    w = sd.var("self", (2,))
    X = sd.var("X", (4, 2))
    fit_loss = sd.mean(sd.square(X @ w - 1.0))
    history = sd.fit(fit_loss, {"self": np.zeros(2)}, {"X": np.ones((4, 2))},
                     sd.optim.SGD(0.1), epochs=2)
    assert history is not None


# -- one semantics for the scalar fast path and the NumPy path (issue 10 #3) ------------------
def _same(got, want, rtol=0.0):
    """Same value (nan and inf in the same places), same dtype, never a Python int. ``rtol``:
    the math module's transcendental functions may differ from NumPy's own (SIMD) versions
    in the last bit, so random graphs through exp/tanh/sigmoid compare to a few ulps."""
    assert type(got) is not int and type(want) is not int
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=0)
    assert np.asarray(got).dtype == np.asarray(want).dtype


@pytest.mark.parametrize("build, at", [
    (lambda x: sd.abs(x ** 0.5), -4.0),
    (lambda x: ((x > 0) + (x > -1)) * 1.0, 2.0),
    (lambda x: sd.maximum(1.0, x - x), np.inf),
    (lambda x: sd.minimum(x - x, 1.0), np.inf),
    (lambda x: sd.relu(x), -3.0),
    (lambda x: sd.sign(x), -3.0),
    (lambda x: sd.clip(x, 0.0, 1.0) + sd.hardtanh(x), np.nan),
])
def test_scalar_path_agrees_with_numpy_path(build, at):
    x = sd.var("x")
    f = sd.compile(build(x))
    with np.errstate(all="ignore"):
        _same(f(at), f(x=at))


def _random_scalar_graphs(rng, x, y, count):
    unary = [sd.exp, sd.log, sd.sqrt, sd.abs, sd.sin, sd.tanh, sd.sigmoid, sd.relu, sd.sign,
             sd.softplus, sd.square, sd.floor, lambda a: a ** 0.5, lambda a: -a]
    binary = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a - b,
              sd.maximum, sd.minimum, lambda a, b: a ** b,
              lambda a, b: sd.where(a > b, a, b), lambda a, b: (a > b) * 1.0 + a,
              lambda a, b: ((a > 0) + (b > -1)) * 1.0]
    for _ in range(count):
        leaves = [x, y]
        for _ in range(rng.integers(1, 6)):
            if rng.random() < 0.5:
                node = unary[rng.integers(len(unary))](leaves[rng.integers(len(leaves))])
            else:
                a, b = (leaves[k] for k in rng.integers(len(leaves), size=2))
                node = binary[rng.integers(len(binary))](a, b)
            leaves.append(node)
        yield leaves[-1]


def test_backend_differential_random_scalar_graphs(monkeypatch):
    """Random scalar graphs: the scalar path, the NumPy path and the tape agree in value and
    dtype (bounded here; the probe ran 1,200 graphs)."""
    rng = np.random.default_rng(0)
    x, y = sd.var("x"), sd.var("y")
    points = [0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e300, -1e-300]
    graphs = list(_random_scalar_graphs(rng, x, y, 300))
    straight = [sd.compile(g, inputs=[x, y]) for g in graphs]
    monkeypatch.setattr("symdiff.compiler.TAPE_THRESHOLD", 0)
    tapes = [sd.compile(g, inputs=[x, y]) for g in graphs]
    for f, tape in zip(straight, tapes):
        for _ in range(4):
            a, b = (float(v) for v in rng.choice(points, 2))
            with np.errstate(all="ignore"):
                want = f(x=a, y=b)
                _same(f(a, b), want, rtol=1e-14)
                _same(tape(a, b), want)


# -- the tape runs the same forms as the straight-line code -----------------------------------
@pytest.mark.parametrize("backend", ["numpy", "array_api"])
def test_tape_agrees_with_straight_line_code(backend, monkeypatch):
    if backend == "array_api":
        pytest.importorskip("array_api_compat")
        xs = pytest.importorskip("array_api_strict")
    from symdiff.training.models import mlp_loss
    model = mlp_loss(6, 4, 5, 3)
    rng = np.random.default_rng(1)
    values = [rng.normal(size=v.shape) for v in model.params + model.data]
    idx = sd.var("i", (4,))
    extra = sd.sum(sd.take(idx, np.array([0, 2, 2]))) + sd.sum(idx[1:3]) + sd.norm(idx)
    loss = model.loss + sd.sum(sd.concatenate([idx, idx * 2.0])) + extra
    inputs = model.params + model.data + [idx]
    values.append(rng.normal(size=4))
    if backend == "array_api":
        values = [xs.asarray(v) for v in values]
    want = sd.compile_grad(loss, model.params + [idx], inputs=inputs, backend=backend)(*values)
    monkeypatch.setattr("symdiff.compiler.TAPE_THRESHOLD", 0)
    f = sd.compile_grad(loss, model.params + [idx], inputs=inputs, backend=backend)
    assert f.uses_tape
    got = f(*values)
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=1e-12)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-14)
