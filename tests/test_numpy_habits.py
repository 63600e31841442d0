"""NumPy habits on expressions: ndarray methods, NumPy dispatch (NEP 13/18), and the refusals
(an Expr never becomes a NumPy array; unsupported NumPy functions name themselves)."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.ops.base import REGISTRY

RNG_SEED = 7


@pytest.fixture
def data():
    rng = np.random.default_rng(RNG_SEED)
    return dict(W=rng.normal(size=(2, 3)), x=rng.normal(size=3), A=rng.normal(size=(3, 3)))


@pytest.fixture
def xs():
    return sd.var("W", (2, 3)), sd.var("x", (3,)), sd.var("A", (3, 3))


# (symdiff build from W, x, A; NumPy reference on arrays)
DISPATCHED = [
    ("tanh", lambda W, x, A: np.tanh(x)),
    ("exp", lambda W, x, A: np.exp(x)),
    ("dot", lambda W, x, A: np.dot(W, x)),
    ("sum-axis", lambda W, x, A: np.sum(W, axis=0)),
    ("sum-keepdims", lambda W, x, A: np.sum(W, axis=1, keepdims=True)),
    ("mean", lambda W, x, A: np.mean(W)),
    ("max", lambda W, x, A: np.max(W, axis=1)),
    ("matmul-ndarray-left", lambda W, x, A: np.ones((2, 3)) @ x),
    ("mul-ndarray-left", lambda W, x, A: np.arange(3.0) * x),
    ("sub-ndarray-left", lambda W, x, A: np.arange(3.0) - x),
    ("div-ndarray-left", lambda W, x, A: (np.arange(3.0) + 1) / x),
    ("pow-ndarray-left", lambda W, x, A: np.full(3, 2.0) ** x),
    ("maximum", lambda W, x, A: np.maximum(x, 0)),
    ("where", lambda W, x, A: np.where(x > 0, x, 0.5 * x)),
    ("concatenate", lambda W, x, A: np.concatenate([x, 2 * x])),
    ("stack", lambda W, x, A: np.stack([x, x], axis=1)),
    ("abs", lambda W, x, A: np.abs(x)),
    ("absolute", lambda W, x, A: np.absolute(x)),
    ("true_divide", lambda W, x, A: np.true_divide(x, 2.0)),
    ("clip", lambda W, x, A: np.clip(x, -0.5, 0.5)),
    ("transpose", lambda W, x, A: np.transpose(W)),
    ("reshape", lambda W, x, A: np.reshape(W, (3, 2))),
    ("take-flat", lambda W, x, A: np.take(W, [0, 4])),
    ("take-axis", lambda W, x, A: np.take(W, [2, 0], axis=1)),
    ("linalg.norm", lambda W, x, A: np.linalg.norm(W)),
    ("outer", lambda W, x, A: np.outer(x, x)),
    ("log-of-square", lambda W, x, A: np.log(np.square(x) + 1)),
    ("less-ndarray-left", lambda W, x, A: np.zeros(3) < x),
]

METHODS = [
    ("sum", lambda W, x, A: W.sum(axis=1)),
    ("mean", lambda W, x, A: W.mean(axis=0, keepdims=True)),
    ("max", lambda W, x, A: W.max()),
    ("min", lambda W, x, A: W.min(axis=1)),
    ("prod", lambda W, x, A: x.prod()),
    ("reshape-args", lambda W, x, A: W.reshape(3, 2)),
    ("reshape-tuple", lambda W, x, A: W.reshape((6,))),
    ("transpose", lambda W, x, A: W.transpose()),
    ("transpose-axes", lambda W, x, A: W.transpose(1, 0)),
    ("T", lambda W, x, A: W.T),
    ("dot", lambda W, x, A: W.dot(x)),
    ("clip", lambda W, x, A: W.clip(-0.5, 0.5)),
    ("clip-hi", lambda W, x, A: W.clip(None, 0.5)),
    ("clip-lo", lambda W, x, A: W.clip(-0.5)),
    ("abs", lambda W, x, A: abs(W)),
    ("astype", lambda W, x, A: W.astype("float32")),
]


@pytest.mark.parametrize("label, build", DISPATCHED + METHODS,
                         ids=[label for label, _ in DISPATCHED + METHODS])
def test_numpy_calls_build_nodes_with_numpys_values(label, build, data, xs):
    expr = build(*xs)
    assert isinstance(expr, sd.Expr), type(expr)
    want = build(data["W"], data["x"], data["A"])
    got = sd.compile(expr, inputs=list(xs))(data["W"], data["x"], data["A"])
    np.testing.assert_allclose(got, want, rtol=1e-6 if expr.dtype == np.float32 else 1e-12)
    assert np.shape(got) == np.shape(want)
    assert np.asarray(got).dtype == np.asarray(want).dtype


def test_properties_and_len():
    W = sd.var("W", (2, 3))
    assert (W.ndim, W.size, len(W)) == (2, 6, 2)
    with pytest.raises(sd.ShapeError, match="scalar"):
        len(sd.var("s"))


def test_gradients_flow_through_dispatched_calls(data):
    W, x = sd.var("W", (2, 3)), sd.var("x", (3,))
    loss = np.sum(np.tanh(np.dot(W, x)) ** 2) + np.mean(np.abs(x))
    assert sd.check_grad(loss, [W, x], at=dict(W=data["W"], x=data["x"])).ok


@pytest.mark.parametrize("call, words", [
    (lambda x: np.fft.fft(x), "numpy.fft.fft is not supported"),
    (lambda x: np.sinc(x), "numpy.sinc is not supported"),
    (lambda x: np.add.reduce(x), "numpy.add.reduce"),
    (lambda x: np.multiply.outer(x, x), "numpy.multiply.outer"),
    (lambda x: np.add(x, x, out=np.zeros(3)), "out"),
    (lambda x: np.sum(x, out=np.zeros(())), "numpy.sum"),
    (lambda x: np.linalg.norm(x, 1), "ord=1"),
    (lambda x: np.asarray(x), "write W0 @ x"),
    (lambda x: np.array([x, x]), "cannot become a NumPy array"),
    (lambda x: np.ones((2, 3)).dot(x), "write W0 @ x or np.dot"),
    (lambda x: np.ones(3) + [x], "cannot become a NumPy array"),
], ids=["fft", "sinc", "reduce", "outer-method", "out", "sum-out", "norm-ord", "asarray",
        "array-of-exprs", "ndarray.dot", "list-of-exprs"])
def test_unsupported_numpy_raises_symdiff_error_naming_it(call, words):
    x = sd.var("x", (3,))
    with pytest.raises(sd.SymdiffError, match=words.replace(".", r"\.").replace("(", r"\(")):
        call(x)


def test_nothing_builds_object_arrays():
    x = sd.var("x", (3,))
    for make in (lambda: np.ones(3) * x, lambda: np.ones((2, 3)) @ x, lambda: x * np.ones(3),
                 lambda: np.float64(2.0) * x, lambda: np.ones(3) == x):
        assert isinstance(make(), sd.Expr)


def test_missing_method_function_is_a_clear_error():
    # x.var()/x.std()/x.squeeze() and % call functions looked up when called
    from symdiff import ops
    x = sd.var("x", (3,))
    for name, call in [("variance", lambda: x.var()), ("std", lambda: x.std()),
                       ("squeeze", lambda: x.squeeze()), ("mod", lambda: x % 2.0)]:
        if hasattr(ops, name):
            assert isinstance(call(), sd.Expr)
        else:
            with pytest.raises(sd.SymdiffError, match=name):
                call()


def test_numpy_aliases_are_declared_on_ops_only():
    # every alias an op declares names a NumPy function or ufunc (catches typos)
    for cls in REGISTRY.values():
        for alias in getattr(cls, "numpy_names", ()):
            target = np
            for part in alias.split("."):
                target = getattr(target, part)
            assert callable(target), alias


def test_astype_gradients():
    x = sd.var("x", (3,))
    g = sd.grad(sd.sum(x.astype("float32") * 2.0), x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(sd.compile(g, inputs=[x])(np.ones(3)), [2.0, 2.0, 2.0])
    with pytest.raises(sd.UndefinedGradientError, match="astype"):
        sd.grad(sd.sum(x.astype("int64") * 2.0), x)
    assert x.astype("float64") is x


def test_numpy_functions_named_after_methods_call_them():
    # np.var is variance (sd.var makes variables): it goes through x.var(), as np.std and
    # np.squeeze go through x.std() and x.squeeze()
    from symdiff import ops
    x = sd.var("x", (3, 1))
    for call, name in [(lambda: np.var(x, axis=0), "variance"), (lambda: np.std(x), "std"),
                       (lambda: np.squeeze(x), "squeeze")]:
        if hasattr(ops, name):
            assert isinstance(call(), sd.Expr)
        else:
            with pytest.raises(sd.SymdiffError, match=name):
                call()
    assert isinstance(np.astype(x, "float32"), sd.Expr)
    assert isinstance(np.prod(x), sd.Expr)


@pytest.mark.parametrize("numpy_name, call", [
    ("einsum", lambda A, x: np.einsum("ij,j->i", A, x)),
    ("tensordot", lambda A, x: np.tensordot(A, x, axes=1)),
    ("linalg.inv", lambda A, x: np.linalg.inv(A)),
    ("linalg.det", lambda A, x: np.linalg.det(A)),
    ("cumsum", lambda A, x: np.cumsum(x)),
    ("flip", lambda A, x: np.flip(x)),
])
def test_functions_dispatch_once_symdiff_has_them(numpy_name, call):
    # derived table: a symdiff function of NumPy's name (or an op's numpy_names alias) is
    # dispatched to with no edit here; until then the NumPy function is named in the error
    from symdiff.ops.dispatch import builder_for
    from symdiff import ops
    A, x = sd.var("A", (3, 3)), sd.var("x", (3,))
    if builder_for(numpy_name, ops) is not None:
        assert isinstance(call(A, x), sd.Expr)
    else:
        with pytest.raises(sd.SymdiffError, match=f"numpy.{numpy_name} is not supported"):
            call(A, x)
