"""value_and_grad and jit: tracing plain NumPy-style functions, the per-signature cache, JAX's
return conventions, and tracing errors that name the arguments and the user's line."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd


def loss(W, x, y):
    h = np.tanh(np.dot(W, x))
    return ((h - y) ** 2).sum() + 0.1 * np.sum(W * W)


def _numeric_grad(fn, args, k, eps=1e-6):
    args = [np.array(a, dtype=float) for a in args]
    g = np.zeros_like(args[k])
    for i in np.ndindex(g.shape):
        plus = [a.copy() for a in args]
        minus = [a.copy() for a in args]
        plus[k][i] += eps
        minus[k][i] -= eps
        g[i] = (fn(*plus) - fn(*minus)) / (2 * eps)
    return g


@pytest.fixture
def args():
    rng = np.random.default_rng(3)
    return rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=2)


def test_value_and_grad_matches_numpy_and_finite_differences(args):
    value, g = sd.value_and_grad(loss)(*args)
    np.testing.assert_allclose(value, loss(*args), rtol=1e-12)
    np.testing.assert_allclose(g, _numeric_grad(loss, args, 0), rtol=1e-6, atol=1e-8)


def test_argnums_tuple_gives_a_tuple(args):
    value, grads = sd.value_and_grad(loss, argnums=(0, 2))(*args)
    assert isinstance(grads, tuple) and len(grads) == 2
    np.testing.assert_allclose(grads[1], _numeric_grad(loss, args, 2), rtol=1e-6, atol=1e-8)
    value, g = sd.value_and_grad(loss, argnums=-1)(*args)
    assert g.shape == (2,)


def test_compiles_once_per_signature(args):
    f = sd.value_and_grad(loss)
    f(*args)
    f(*(a + 1 for a in args))
    assert f.cache_size() == 1
    W, x, y = args
    f(W[:, :2], x[:2], y)          # a new shape recompiles
    f(W.astype(np.float32), x, y)  # so does a new dtype
    assert f.cache_size() == 3


def test_python_numbers_are_traced_not_static():
    f = sd.jit(lambda a, s: a * s)
    np.testing.assert_allclose(f(np.ones(2), 2.0), [2.0, 2.0])
    np.testing.assert_allclose(f(np.ones(2), 3.0), [3.0, 3.0])
    assert f.cache_size() == 1
    value, g = sd.value_and_grad(lambda s: s * s)(3.0)
    assert (float(value), float(g)) == (9.0, 6.0)


def test_jit_keeps_output_structure():
    f = sd.jit(lambda a, b: (a * b, np.sum(a)))
    out = f(np.ones(2), np.full(2, 3.0))
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_allclose(out[0], [3.0, 3.0])
    assert isinstance(sd.jit(lambda a: [a, 2 * a])(np.ones(1)), list)
    np.testing.assert_allclose(sd.jit(lambda a: np.exp(a))(np.zeros(3)), np.ones(3))


def test_jit_of_a_function_ignoring_an_argument():
    np.testing.assert_allclose(sd.jit(lambda a, b: 2 * a)(np.ones(2), np.ones(5)), [2.0, 2.0])


def test_shape_error_names_arguments_and_user_line(args):
    def bad(W, x):
        return np.dot(W, x)  # the failing line
    W, x, y = args
    with pytest.raises(sd.ShapeError) as info:
        sd.jit(bad)(W, y)
    text = str(info.value)
    assert "W: (2, 3) float64" in text and "x: (2,) float64" in text
    assert "the failing line" in text and "test_transforms.py" in text


def test_python_if_on_an_expression_is_located():
    def branchy(x):
        if x.sum() > 0:
            return x
        return -x
    with pytest.raises(sd.SymdiffError, match=r"if x.sum\(\) > 0.*sd.where"):
        sd.value_and_grad(branchy)(np.ones(3))


@pytest.mark.parametrize("call, words", [
    (lambda: sd.value_and_grad(loss)(np.ones((2, 3)), [1.0, 2.0, 3.0], np.ones(2)), "'x'"),
    (lambda: sd.value_and_grad(loss)(np.ones((2, 3)), "abc", np.ones(2)), "'x'"),
    (lambda: sd.value_and_grad(lambda x: x)(np.ones(3)), "scalar"),
    (lambda: sd.value_and_grad(lambda x: (x.sum(), x.sum()))(np.ones(3)), "one scalar"),
    (lambda: sd.value_and_grad(lambda n: n * 1.0)(3), "float"),
    (lambda: sd.value_and_grad(loss, argnums=5)(*([np.ones(1)] * 3)), "out of range"),
    (lambda: sd.value_and_grad(loss, argnums="0"), "argnums"),
    (lambda: sd.jit(3), "function"),
    (lambda: sd.jit(lambda x: x)(x=np.ones(1)), "positionally"),
    (lambda: sd.jit(lambda x: x)(sd.var("x")), "symbolic"),
], ids=["list", "str", "non-scalar", "tuple-out", "int-grad", "argnums-range", "argnums-type",
        "not-callable", "keywords", "expr-arg"])
def test_bad_input_raises_symdiff_error(call, words):
    with pytest.raises(sd.SymdiffError, match=words):
        call()


def test_sd_calls_and_np_calls_mix():
    def f(w):
        return sd.logsumexp(np.tanh(w)) + w.mean()
    value, g = sd.value_and_grad(f)(np.linspace(-1, 1, 4))
    np.testing.assert_allclose(g, _numeric_grad(
        lambda w: np.log(np.sum(np.exp(np.tanh(w)))) + w.mean(), [np.linspace(-1, 1, 4)], 0),
        rtol=1e-6)


def test_bools_and_integer_arrays_are_traced_with_their_dtypes():
    f = sd.jit(lambda x, flag, idx: np.where(flag, x, -x)[idx])
    np.testing.assert_allclose(f(np.arange(3.0), True, np.array([2, 0])), [2.0, 0.0])
    np.testing.assert_allclose(f(np.arange(3.0), False, np.array([2, 0])), [-2.0, 0.0])
    assert f.cache_size() == 1
