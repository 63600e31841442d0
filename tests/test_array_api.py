"""The array-API backend (issue 6, part 5): ``compile(..., backend="array_api")``.

- ``array_api_strict`` (the reference namespace, which rejects anything outside the standard):
  the MLP's value and gradient, and a table of single-op graphs covering every registered op
  (forward and gradient), equal to the NumPy backend. Passing there proves the generated code
  and :mod:`symdiff.lower.array_api` call only standard functions.
- the adapter's gather/scatter kernels (``take``, ``scatter_add``, ``x[index]``, ``index_add``)
  against NumPy's, with repeated and negative indices, on every installed library.
- Dask through a ``dask.distributed`` local cluster of 2 workers: the MLP gradient over a data
  set of 20,000 rows in 10 chunks, lazy until computed, equal to NumPy.
- JAX and PyTorch (CPU) when installed.

Every optional package is skipped cleanly when missing (``pytest.importorskip``).
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

import symdiff as sd
from symdiff import models
from symdiff.graph import toposort
from symdiff.ops.kernels import index_add as np_index_add
from symdiff.ops.kernels import scatter_add as np_scatter_add
from symdiff.ops.base import REGISTRY

pytest.importorskip("array_api_compat")
from symdiff.lower.array_api import NAMES, namespace_for  # noqa: E402

RTOL, ATOL = 1e-10, 1e-12
A = np.array


@pytest.fixture(scope="module")
def xs():
    return pytest.importorskip("array_api_strict")


def to_numpy(a):
    """A result of any backend as a NumPy array."""
    if hasattr(a, "compute"):
        a = a.compute()
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError, RuntimeError):  # a library without __array__
        return np.from_dlpack(a)


def assert_same(got, want, rtol=RTOL, atol=ATOL, what=""):
    got = to_numpy(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype == bool:
        assert np.array_equal(got, want), what
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def mlp_data(n, d=20, hidden=32, classes=5, seed=0):
    model = models.mlp_loss(n, d, hidden, classes)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.eye(classes)[rng.integers(0, classes, n)]
    params = {p.name: rng.normal(size=p.shape) * 0.3 for p in model.params}
    return model, X, Y, params


def enable_x64(jax):
    """A context in which JAX makes float64 arrays (its default is float32)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64 as context  # older JAX
    return context()


def used_names(source: str) -> set[str]:
    return set(re.findall(r"\bxp\.(\w+)", source))


# ---------------------------------------------------------------------------------------------
# the namespace adapter
# ---------------------------------------------------------------------------------------------
def test_namespace_for_returns_one_cached_adapter(xs):
    a = namespace_for([xs.ones(3)])
    b = namespace_for([xs.ones((2, 2)), xs.zeros(1)])
    assert a is b
    assert a.xp is xs
    for name in NAMES:
        assert callable(getattr(a, name)), name
    with pytest.raises(AttributeError, match="does not provide"):
        a.add_at  # noqa: B018 (not a standard name: a clear error, not a silent fallback)


def test_numpy_inputs_mixed_with_another_library_are_converted(xs):
    values = [np.ones(3), xs.ones(3), np.float64(2.0)]
    ns = namespace_for(values)
    assert ns.xp is xs
    assert all(type(v) is type(values[1]) for v in values)


def test_two_libraries_is_an_input_error(xs):
    torch = pytest.importorskip("torch")
    with pytest.raises(sd.InputError, match="mix array libraries"):
        namespace_for([xs.ones(2), torch.ones(2)])


def test_array_api_source_is_standard():
    """The array-API form has no NumPy-only syntax: no in-place statements (JAX arrays are
    immutable, Dask's lazy), no ``.T`` (2-D only in the standard), indexing through
    ``xp.getitem``; every ``xp.`` name is one the adapter provides."""
    model, *_ = mlp_data(8)
    x = sd.var("x", (2, 3, 4))
    for loss, wrt in ((model.loss, model.params),
                      (sd.sum(sd.exp(sd.transpose(x)) ** 2) + sd.sum(x[A([0, 1, 1])] ** 2), [x])):
        source = sd.compile_grad(loss, wrt, backend="array_api").source
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
        assert "out=" not in code and not re.search(r"[-+*/]=", code), source
        assert ".T" not in code and "[" not in code, source
        assert used_names(source) <= set(NAMES), source
    # the NumPy backend keeps its fast in-place forms
    assert re.search(r"\+=|out=", sd.compile_grad(model.loss, model.params).source)


# ---------------------------------------------------------------------------------------------
# array_api_strict: the MLP and one graph per op
# ---------------------------------------------------------------------------------------------
def test_mlp_value_and_gradient_on_array_api_strict(xs):
    model, X, Y, params = mlp_data(64)
    f = sd.compile_grad(model.loss, model.params, backend="array_api")
    value, grads = sd.compile_grad(model.loss, model.params)(X=X, Y=Y, **params)
    inputs = {k: xs.asarray(v) for k, v in {"X": X, "Y": Y, **params}.items()}
    got_value, got_grads = f(**inputs)
    assert isinstance(got_value, type(inputs["X"]))
    assert_same(got_value, value, what="loss")
    for p, g, want in zip(model.params, got_grads, grads):
        assert isinstance(g, type(inputs["X"]))
        assert_same(g, want, what=f"dJ/d{p.name}")
    # the same compiled function still runs NumPy arrays, through the NumPy adapter
    np_value, _ = f(X=X, Y=Y, **params)
    assert_same(np_value, value)


INDICES = [  # x of shape (4, 5, 6); repeats, negatives, newaxis, reversed and strided slices
    (A([0, 2, 2]),), (slice(None), A([1, 1, 0])), (slice(1, 3), slice(None, None, -1)), (0,),
    (None, 1, slice(None, None, 2)), (A([0, 1]), A([2, 0])), (Ellipsis, 1),
    (A([0, 1]), slice(None), A([1, 1])), (1, slice(None), A([1, 1, 5])),
    (slice(None), A([[0, 1], [2, 2]]), A([0, 5])), (A([-1, 0, -1]),),
    (slice(None, None, -2), None, -1), (slice(3, 0, -1), A([0, 0]), slice(1, 6, 2)),
    (A([0, 3]), None, A([1, 2])), (slice(None), A([1, 2]), A([[0], [1]])), (slice(2, 2),),
    (Ellipsis, A([0, 0, 5])), (2, 3, 4), (A([1, 1]), 2, slice(None)),
]


def _row(name, build, shapes, domain=(-2.0, 2.0), grad=True):
    return pytest.param(build, shapes, domain, grad, id=name)


def _unary(name, fn, domain=(-2.0, 2.0), grad=True, shape=(3, 4)):
    return _row(name, fn, {"a": shape}, domain, grad)


POS = (0.5, 2.0)
OPS = [
    _unary("exp", sd.exp), _unary("log", sd.log, POS), _unary("log1p", sd.log1p, (-0.5, 2)),
    _unary("expm1", sd.expm1), _unary("sqrt", sd.sqrt, POS), _unary("square", sd.square),
    _unary("abs", sd.abs), _unary("sin", sd.sin), _unary("cos", sd.cos),
    _unary("tan", sd.tan, (-1, 1)), _unary("tanh", sd.tanh),
    _unary("sigmoid", sd.sigmoid, (-800, 800)), _unary("softplus", sd.softplus, (-800, 800)),
    _unary("relu", sd.relu), _unary("negative", lambda a: -a),
    _unary("leaky_relu", lambda a: sd.leaky_relu(a, 0.1)),
    _row("prelu", sd.leaky_relu, {"a": (3, 4), "b": ()}),
    _unary("hardtanh", sd.hardtanh), _unary("hardtanh_bounds", lambda a: sd.hardtanh(a, -.5, .5)),
    _unary("floor", sd.floor, grad=False), _unary("round", sd.round, grad=False),
    _unary("sign", sd.sign, grad=False),
    _unary("stop_gradient", lambda a: sd.stop_gradient(a) * a),
    _row("add", lambda a, b: a + b, {"a": (3, 4), "b": (4,)}),
    _row("subtract", lambda a, b: a - b, {"a": (3, 4), "b": (3, 1)}),
    _row("multiply", lambda a, b: a * b, {"a": (3, 4), "b": (4,)}),
    _row("divide", lambda a, b: a / b, {"a": (3, 4), "b": (4,)}, POS),
    _row("power", lambda a, b: a ** b, {"a": (3, 4), "b": (3, 4)}, POS),
    _unary("power_const", lambda a: a ** 3 + a ** 0.5, POS),
    _row("maximum", sd.maximum, {"a": (3, 4), "b": (3, 1)}),
    _row("minimum", sd.minimum, {"a": (3, 4), "b": (4,)}),
    _row("where", lambda a, b: sd.where(a > b, a, b * 2.0), {"a": (3, 4), "b": (4,)}),
    _unary("where_scalars", lambda a: sd.where(a > 0, 1.0, -1.0) * a),
    _unary("clip", lambda a: sd.clip(a, -0.5, 0.5)),
    _row("clip_expr", sd.clip, {"a": (3, 4), "b": (4,), "c": (3, 1)}),
    _row("less", lambda a, b: a < b, {"a": (3, 4), "b": (4,)}, grad=False),
    _row("less_equal", lambda a, b: a <= b, {"a": (3, 4), "b": (4,)}, grad=False),
    _row("greater", lambda a, b: a > b, {"a": (3, 4), "b": (4,)}, grad=False),
    _row("greater_equal", lambda a, b: a >= b, {"a": (3, 4), "b": (4,)}, grad=False),
    _row("equal", lambda a, b: sd.ops.equal(sd.round(a), sd.round(b)), {"a": (3, 4), "b": (4,)},
         grad=False),
    _row("not_equal", lambda a, b: sd.ops.not_equal(sd.round(a), b), {"a": (3, 4), "b": (4,)},
         grad=False),
    *[_unary(f"{r.__name__}_{axis}_{keep}", lambda a, r=r, axis=axis, keep=keep:
             r(a, axis=axis, keepdims=keep), (0.5, 1.5), shape=(2, 3, 4))
      for r in (sd.sum, sd.mean, sd.max, sd.min, sd.prod, sd.logsumexp, sd.norm)
      for axis, keep in ((None, False), (1, False), ((0, 2), True))],
    _unary("argmax", sd.argmax, grad=False), _unary("argmax_1", lambda a: sd.argmax(a, 1),
                                                    grad=False),
    _unary("softmax_0", lambda a: sd.softmax(a, axis=0)),
    _unary("softmax_1", lambda a: sd.softmax(a, axis=1)),
    _unary("log_softmax", lambda a: sd.log_softmax(a, axis=-1)),
    _row("matmul", lambda a, b: a @ b, {"a": (3, 4), "b": (4, 5)}),
    _row("matmul_vec_mat", lambda a, b: a @ b, {"a": (4,), "b": (4, 5)}),
    _row("matmul_mat_vec", lambda a, b: a @ b, {"a": (3, 4), "b": (4,)}),
    _row("matmul_vec_vec", lambda a, b: a @ b, {"a": (4,), "b": (4,)}),
    _row("matmul_batched", lambda a, b: a @ b, {"a": (2, 3, 4), "b": (4, 5)}),
    _row("dot", sd.dot, {"a": (3, 4), "b": (4,)}),
    _row("outer", sd.outer, {"a": (3,), "b": (2, 2)}),
    _unary("transpose", sd.transpose, shape=(2, 3, 4)),
    _unary("transpose_2d", sd.transpose),
    _unary("transpose_axes", lambda a: sd.transpose(a, (1, 0, 2)), shape=(2, 3, 4)),
    _unary("reshape", lambda a: sd.reshape(a, (4, 6)), shape=(2, 3, 4)),
    _unary("broadcast_to", lambda a: sd.broadcast_to(a, (2, 3, 4)), shape=(3, 1)),
    _row("concatenate", lambda a, b: sd.concatenate([a, b], axis=1), {"a": (3, 2), "b": (3, 4)}),
    _row("stack", lambda a, b: sd.stack([a, b], axis=1), {"a": (3, 4), "b": (3, 4)}),
    _unary("take", lambda a: sd.take(a, A([0, 4, 4, -1])), shape=(5, 3)),
    _unary("take_axis1_2d", lambda a: sd.take(a, A([[0, 2], [2, 2]]), axis=1), shape=(5, 3)),
    _row("take_index_input", lambda a, i: sd.take(a, i), {"a": (5, 3), "i": ((6,), "int64")}),
    *[_unary(f"getitem_{k}", lambda a, ix=ix: a[ix], shape=(4, 5, 6))
      for k, ix in enumerate(INDICES)],
    _unary("numpy_constants", lambda a: a * np.arange(1.0, 5.0) + a @ np.ones((4, 2))[:, :1]),
    _unary("grad_of_getitem", lambda a: sd.grad(sd.sum(sd.sin(a[A([0, 2, 2])])), [a])[0]),
    _row("grad_of_take", lambda a, i: sd.grad(sd.sum(sd.sin(sd.take(a, i))), [a])[0],
         {"a": (5, 3), "i": ((6,), "int64")}),
    _unary("astype", lambda a: sd.astype(sd.astype(a, "float32"), "float64") * a),
    # round 2: more elementwise functions and reductions
    _unary("sinh", sd.sinh), _unary("cosh", sd.cosh), _unary("arcsin", sd.arcsin, (-0.9, 0.9)),
    _unary("arccos", sd.arccos, (-0.9, 0.9)), _unary("arctan", sd.arctan),
    _unary("arcsinh", sd.arcsinh), _unary("arccosh", sd.arccosh, (1.1, 3.0)),
    _unary("arctanh", sd.arctanh, (-0.9, 0.9)), _unary("erf", sd.erf, (-6.0, 6.0)),
    _unary("erfc", sd.erfc, (-6.0, 30.0)), _unary("reciprocal", sd.reciprocal, POS),
    _unary("log_sigmoid", sd.log_sigmoid, (-40.0, 40.0)), _unary("silu", sd.silu, (-40, 40)),
    _unary("elu", lambda a: sd.elu(a, 0.5)), _unary("gelu", sd.gelu, (-6.0, 6.0)),
    _unary("gelu_tanh", lambda a: sd.gelu(a, approximate=True), (-6.0, 6.0)),
    _row("logaddexp", sd.logaddexp, {"a": (3, 4), "b": (4,)}),
    _row("arctan2", sd.arctan2, {"a": (3, 4), "b": (4,)}, POS),
    _row("mod", lambda a, b: a % b, {"a": (3, 4), "b": (4,)}, POS),
    *[_unary(f"{r.__name__}_{axis}_{ddof}", lambda a, r=r, axis=axis, ddof=ddof:
             r(a, axis=axis, ddof=ddof), shape=(2, 3, 4))
      for r in (sd.variance, sd.std) for axis, ddof in ((None, 0), (1, 1), ((0, 2), 0))],
    _unary("cumsum", sd.cumsum), _unary("cumsum_0", lambda a: sd.cumsum(a, axis=0)),
    _unary("sort", sd.sort, shape=(2, 3, 4)),
    _unary("sort_0", lambda a: sd.sort(a, axis=0), shape=(2, 3, 4)),
    _unary("argsort", sd.argsort, grad=False),
    # layout ops
    _unary("squeeze", lambda a: sd.squeeze(a, axis=(0, 2)), shape=(1, 3, 1)),
    _unary("expand_dims", lambda a: sd.expand_dims(a, (0, -1))),
    _unary("split", lambda a: sd.split(a, [1, 3], axis=1)[1] * 2.0),
    _unary("flip", sd.flip), _unary("flip_axis", lambda a: sd.flip(a, axis=-1)),
    _unary("tile", lambda a: sd.tile(a, (2, 1, 2))),
    _unary("repeat", lambda a: sd.repeat(a, 2, axis=0)),
    _unary("repeat_counts", lambda a: sd.repeat(a, [1, 0, 2, 3], axis=1)),
    _unary("repeat_flat", lambda a: sd.repeat(a, 2)),
    _unary("pad", lambda a: sd.pad(a, ((1, 0), (2, 1)), constant_values=0.5)),
    _unary("take_along_axis", lambda a: sd.take_along_axis(a, A([[0, 3, 3], [1, 1, 0]]), 1),
           shape=(2, 4)),
    _unary("take_along_axis_broadcast", lambda a: sd.take_along_axis(a, A([[0], [2], [-1]]), 1),
           shape=(1, 4)),
    _row("take_along_axis_input", lambda a, i: sd.take_along_axis(a, i, axis=0),
         {"a": (5, 3), "i": ((4, 3), "int64")}),
    _row("one_hot", lambda i: sd.one_hot(i, 5), {"i": ((6,), "int64")}, grad=False),
    _unary("tril", lambda a: sd.tril(a, -1)), _unary("triu", lambda a: sd.triu(a, 1)),
    _unary("diag", lambda a: sd.diag(a, -1), shape=(3,)),
    _unary("diag_k", lambda a: sd.diag(a, 2), shape=(3,)),
    _unary("diagonal", lambda a: sd.diagonal(a, 1)),
    _unary("diagonal_axes", lambda a: sd.diagonal(a, -1, axis1=2, axis2=0), shape=(3, 2, 4)),
    _unary("trace", lambda a: sd.trace(a, 1, axis1=-1, axis2=0), shape=(3, 2, 4)),
    _row("einsum_matmul", lambda a, b: sd.einsum("ij,jk->ik", a, b), {"a": (3, 4), "b": (4, 2)}),
    _row("einsum_three", lambda a, b, c: sd.einsum("bij,jk,k->bi", a, b, c),
         {"a": (2, 3, 4), "b": (4, 5), "c": (5,)}),
    _unary("einsum_diagonal", lambda a: sd.einsum("iij->ji", a), shape=(3, 3, 2)),
    _unary("einsum_trace", lambda a: sd.einsum("ii", a), shape=(3, 3)),
    _row("conv2d", lambda x, w: sd.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2)),
         {"x": (2, 3, 7, 6), "w": (4, 3, 3, 2)}),
    _row("conv1d", lambda x, w: sd.conv1d(x, w, stride=2, padding=1),
         {"x": (2, 3, 9), "w": (4, 3, 3)}),
    _row("grad_of_conv2d", lambda x, w: sd.grad(sd.sum(sd.conv2d(x, w) ** 2), [x, w])[0],
         {"x": (2, 3, 5, 5), "w": (2, 3, 3, 3)}),
    _unary("max_pool2d", lambda a: sd.max_pool2d(a, 2), shape=(2, 3, 5, 6)),
    _unary("max_pool2d_overlap", lambda a: sd.max_pool2d(a, 3, stride=1), shape=(2, 3, 5, 6)),
    _unary("grad_of_max_pool2d", lambda a: sd.grad(sd.sum(sd.max_pool2d(a, 2) ** 2), [a])[0],
           shape=(2, 3, 5, 6)),
    _unary("avg_pool2d", lambda a: sd.avg_pool2d(a, (3, 2), stride=(2, 1)), shape=(2, 3, 7, 6)),
    _unary("inv", lambda a: sd.linalg.inv(a + 4.0 * np.eye(3)), (-1.0, 1.0), shape=(2, 3, 3)),
    _row("solve", lambda a, b: sd.linalg.solve(a + 4.0 * np.eye(3), b),
         {"a": (2, 3, 3), "b": (3,)}, (-1.0, 1.0)),
    _row("solve_matrix", lambda a, b: sd.linalg.solve(a + 4.0 * np.eye(3), b),
         {"a": (3, 3), "b": (3, 2)}, (-1.0, 1.0)),
    _unary("det", lambda a: sd.linalg.det(a + 4.0 * np.eye(3)), (-1.0, 1.0), shape=(2, 3, 3)),
    _unary("slogdet", lambda a: sd.linalg.slogdet(a + 4.0 * np.eye(3))[1], (-1.0, 1.0),
           shape=(3, 3)),
    _unary("slogdet_sign", lambda a: sd.linalg.slogdet(a + 4.0 * np.eye(3))[0], (-1.0, 1.0),
           shape=(3, 3), grad=False),
    _unary("cholesky", lambda a: sd.linalg.cholesky(a @ sd.transpose(a) + 3.0 * np.eye(3)),
           (-1.0, 1.0), shape=(3, 3)),
]


def _inputs(shapes, domain, rng):
    variables, values = [], {}
    for name, spec in shapes.items():
        shape, dtype = spec if (spec and isinstance(spec[-1], str)) else (spec, "float64")
        v = sd.var(name, shape, dtype)
        variables.append(v)
        if dtype == "int64":
            values[name] = rng.integers(-5, 5, shape)
        else:
            values[name] = rng.uniform(*domain, shape)
    return variables, values


def _single_op(build, shapes, domain, seed=0):
    """(variables, values, out, loss or None, float variables)."""
    rng = np.random.default_rng(seed)
    variables, values = _inputs(shapes, domain, rng)
    out = build(*variables)
    floats = [v for v in variables if v.dtype.kind == "f"]
    loss = None
    if out.dtype.kind == "f":
        w = sd.var("w_", out.shape)
        values["w_"] = rng.normal(size=out.shape)
        loss = sd.sum(out * w)
    return variables, values, out, loss, floats


@pytest.mark.parametrize("build, shapes, domain, grad", OPS)
def test_single_op_on_array_api_strict(xs, build, shapes, domain, grad):
    variables, values, out, loss, floats = _single_op(build, shapes, domain)
    strict = {k: xs.asarray(v) for k, v in values.items()}
    f = sd.compile(out, backend="array_api")
    assert used_names(f.source) <= set(NAMES), f.source
    assert_same(f(**{v.name: strict[v.name] for v in variables}),
                sd.compile(out)(**{v.name: values[v.name] for v in variables}), what="value")
    if grad and loss is not None:
        fg = sd.compile_grad(loss, floats, backend="array_api")
        value, grads = sd.compile_grad(loss, floats)(**values)
        got_value, got_grads = fg(**strict)
        assert_same(got_value, value, what="loss")
        for v, g, want in zip(floats, got_grads, grads):
            assert_same(g, want, what=f"gradient w.r.t. {v.name}")


def test_op_table_covers_every_registered_op():
    """Every op in the registry is lowered (after the rewrites) by some row, forward or in
    its gradient, so every lowering runs in the strict namespace."""
    seen = set()
    for param in OPS:
        build, shapes, domain, grad = param.values
        variables, values, out, loss, floats = _single_op(build, shapes, domain)
        graphs = [sd.compile(out, backend="array_api").graph]
        if grad and loss is not None:
            fg = sd.compile_grad(loss, floats, backend="array_api")
            graphs.append(getattr(fg, "compiled", fg).graph)
        for graph in graphs:
            seen |= {n.op.name for n in toposort(graph) if n.op is not None}
    assert set(REGISTRY) <= seen, f"no row lowers {sorted(set(REGISTRY) - seen)}"


# ---------------------------------------------------------------------------------------------
# gather and scatter kernels on every installed library, against NumPy's
# ---------------------------------------------------------------------------------------------
def _dask_chunked():
    import dask.array as da
    return lambda a: da.from_array(a, chunks=2)  # 2 per axis: most results span chunks


def _libraries():
    libs = [("numpy", lambda: np.asarray)]
    for name, maker in (
            ("array_api_strict", lambda: __import__("array_api_strict").asarray),
            ("torch", lambda: __import__("torch").asarray),
            ("jax", lambda: __import__("jax.numpy", fromlist=["asarray"]).asarray),
            ("dask", _dask_chunked)):
        libs.append((name, maker))
    return [pytest.param((name, maker), id=name) for name, maker in libs]


@pytest.fixture(params=_libraries())
def lib(request):
    """(name, asarray of the library); JAX with float64 enabled."""
    name, maker = request.param
    try:
        to_lib = maker()
    except ImportError as exc:
        pytest.skip(f"not installed: {exc}")
    if name == "jax":
        import jax
        with enable_x64(jax):
            yield name, to_lib
        return
    yield name, to_lib


def test_getitem_and_index_add_match_numpy(lib):
    name, to_lib = lib
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 6))
    xa = to_lib(x)
    ns = namespace_for([xa])
    # JAX compiles every new primitive and shape eagerly (~0.1 s each): a third of the cases
    for index in INDICES[::3] if name == "jax" else INDICES:
        want = x[index]
        assert_same(ns.getitem(xa, index), want, what=f"x[{index}]")
        v = rng.normal(size=want.shape)
        assert_same(ns.index_add(to_lib(v), index, x.shape), np_index_add(v, index, x.shape),
                    what=f"index_add at {index}")


def test_take_and_scatter_add_with_repeats_match_numpy(lib):
    _, to_lib = lib
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5, 6))
    xa = to_lib(x)
    ns = namespace_for([xa])
    for axis in range(3):
        n = x.shape[axis]
        indices = np.concatenate([[0, 0, -1], rng.integers(-n, n, 3)]).reshape(3, 2)
        want = np.take(x, indices, axis=axis)
        v = rng.normal(size=want.shape)
        scattered = np_scatter_add(v, indices, x.shape, axis)
        for idx in (indices, to_lib(indices)):  # a constant, or an array of the library
            assert_same(ns.take(xa, idx, axis=axis), want, what=f"take axis {axis}")
            assert_same(ns.scatter_add(to_lib(v), idx, x.shape, axis), scattered,
                        what=f"scatter_add axis {axis}")


def test_scatter_add_in_blocks(xs, monkeypatch):
    """The one-hot matrix is built in blocks of rows: the blocks add up exactly."""
    import symdiff.lower.array_api as aa
    monkeypatch.setattr(aa, "BLOCK", 16)
    rng = np.random.default_rng(3)
    indices = rng.integers(0, 7, 50)
    v = rng.normal(size=(50, 3))
    got = namespace_for([xs.ones(1)]).scatter_add(xs.asarray(v), indices, (7, 3))
    assert_same(got, np_scatter_add(v, indices, (7, 3)))


# ---------------------------------------------------------------------------------------------
# Dask: a local cluster of 2 workers, the MLP gradient over 20,000 rows in 10 chunks
# ---------------------------------------------------------------------------------------------
def test_mlp_gradient_on_dask_local_cluster():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    n, chunk = 20_000, 2_000
    model, X, Y, params = mlp_data(n)
    value, grads = sd.compile_grad(model.loss, model.params)(X=X, Y=Y, **params)

    f = sd.compile_grad(model.loss, model.params, backend="array_api")
    Xd = da.from_array(X, chunks=(chunk, X.shape[1]))
    Yd = da.from_array(Y, chunks=(chunk, Y.shape[1]))
    assert Xd.numblocks == (n // chunk, 1)
    lazy_value, lazy_grads = f(X=Xd, Y=Yd, **params)  # NumPy parameters, Dask data
    assert all(isinstance(a, da.Array) for a in (lazy_value, *lazy_grads))  # nothing computed
    assert len(lazy_value.__dask_graph__()) > n // chunk  # per-chunk tasks

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        start = time.perf_counter()
        with distributed.get_task_stream(client) as stream:
            futures = client.compute([lazy_value, *lazy_grads])
            results = [fut.result(timeout=120) for fut in futures]
        elapsed = time.perf_counter() - start
    assert len(stream.data) >= n // chunk  # the work ran as tasks on the cluster
    assert elapsed < 60
    assert_same(results[0], value, rtol=1e-9, what="loss")
    for p, got, want in zip(model.params, results[1:], grads):
        assert_same(got, want, rtol=1e-9, atol=1e-12, what=f"dJ/d{p.name}")


def test_dask_default_scheduler_and_index_gradient():
    """The threaded scheduler (no cluster), and a gather/scatter gradient whose indices are
    themselves a chunked Dask input."""
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    rng = np.random.default_rng(4)
    E, i = sd.var("E", (7, 3)), sd.var("i", (40,), "int64")
    loss = sd.sum(sd.tanh(sd.take(E, i)) ** 2)
    values = {"E": rng.normal(size=(7, 3)), "i": rng.integers(0, 7, 40)}
    value, (gE,) = sd.compile_grad(loss, [E])(**values)
    f = sd.compile_grad(loss, [E], backend="array_api")
    lazy = f(E=values["E"], i=da.from_array(values["i"], chunks=10))
    got_value, got_gE = dask.compute(lazy[0], lazy[1][0], scheduler="threads")
    assert_same(got_value, value)
    assert_same(got_gE, gE)


# ---------------------------------------------------------------------------------------------
# JAX and PyTorch (CPU)
# ---------------------------------------------------------------------------------------------
def test_mlp_on_jax():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    model, X, Y, params = mlp_data(128)
    value, grads = sd.compile_grad(model.loss, model.params)(X=X, Y=Y, **params)
    f = sd.compile_grad(model.loss, model.params, backend="array_api")
    with enable_x64(jax):
        got_value, got_grads = f(**{k: jnp.asarray(v) for k, v in
                                    {"X": X, "Y": Y, **params}.items()})
        assert isinstance(got_value, jax.Array) and got_value.dtype == jnp.float64
        assert_same(got_value, value)
        for g, want in zip(got_grads, grads):
            assert_same(g, want)
    # JAX's default float32 arrays, and the compiled function traced whole by jax.jit (one
    # XLA program instead of one dispatch per statement): the same code, float32 accuracy
    jitted = jax.jit(lambda inputs: f(**inputs))
    g32_value, g32_grads = jitted({k: jnp.asarray(v, dtype=jnp.float32) for k, v in
                                   {"X": X, "Y": Y, **params}.items()})
    assert g32_value.dtype == jnp.float32
    assert_same(g32_value, value, rtol=1e-5, atol=1e-6)
    for g, want in zip(g32_grads, grads):
        assert_same(g, want, rtol=1e-4, atol=1e-6)


def test_mlp_on_torch_cpu():
    torch = pytest.importorskip("torch")
    model, X, Y, params = mlp_data(128)
    value, grads = sd.compile_grad(model.loss, model.params)(X=X, Y=Y, **params)
    f = sd.compile_grad(model.loss, model.params, backend="array_api")
    got_value, got_grads = f(X=torch.asarray(X), Y=torch.asarray(Y),
                             **{k: torch.asarray(v) for k, v in params.items()})
    assert isinstance(got_value, torch.Tensor) and got_value.dtype == torch.float64
    assert_same(got_value, value)
    for g, want in zip(got_grads, grads):
        assert isinstance(g, torch.Tensor)
        assert_same(g, want)
    # NumPy parameters with torch data: converted to tensors
    mixed_value, _ = f(X=torch.asarray(X), Y=torch.asarray(Y), **params)
    assert isinstance(mixed_value, torch.Tensor)
    assert_same(mixed_value, value)


def test_torch_gather_gradient_and_getitem():
    torch = pytest.importorskip("torch")
    a = sd.var("a", (4, 5, 6))
    loss = sd.sum(sd.sin(a[A([0, 2, 2]), ::-1, 1]) ** 2) + sd.sum(sd.take(a, A([3, 3]), axis=2))
    x = np.random.default_rng(5).normal(size=(4, 5, 6))
    value, (ga,) = sd.compile_grad(loss, [a])(a=x)
    got_value, (got_ga,) = sd.compile_grad(loss, [a], backend="array_api")(a=torch.asarray(x))
    assert_same(got_value, value)
    assert_same(got_ga, ga)
