"""vmap and the batched derivatives built on it.

Oracles: a Python loop over the batch (vmap), the per-row Jacobian construction (one vjp per
output entry, ``grad._jacobian_rows``) and central differences (jacobian, hessian). Random
graphs come from the differential suite's generator, so every op with a batching rule is hit
with broadcasting, reductions over tuples of axes, batched matmuls, gathers and slices.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symdiff as sd
from symdiff.graph import substitute
from symdiff.grad import _jacobian_rows
from symdiff.ops.base import Op
from symdiff.rewrite import count_nodes
from test_differential import find_point, random_graph

BATCH = 3


def _loop(y, variables, batched_values, fixed, dtype):
    """The reference: ``y`` evaluated once per batch entry, stacked."""
    f = sd.compile(y, inputs=variables)
    rows = []
    for b in range(BATCH):
        point = dict(fixed)
        point.update({name: value[b] for name, value in batched_values.items()})
        rows.append(np.asarray(f(**point), dtype=dtype))
    return np.stack(rows)


def _vmap_case(seed: int, float32: bool):
    graph = random_graph(1000 + seed, seed)
    rng = np.random.default_rng(seed)
    point, _ = find_point(graph, rng)
    if point is None or not graph.variables:
        pytest.skip("no point away from kinks")
    dtype = np.float32 if float32 else np.float64
    every = sd.free_vars(graph.y)
    chosen = {id(v) for v in graph.variables if rng.random() < 0.7} or {id(graph.variables[0])}
    # each chosen variable: its batch at a random axis; the others unbatched
    stand_ins, args, axes, batched_values = [], [], [], {}
    for v in every:
        if id(v) in chosen:
            values = point[v.name] + 1e-3 * rng.standard_normal((BATCH,) + v.shape)
            axis = int(rng.integers(0, v.ndim + 1))
            batched_values[v.name + "_b"] = values.astype(dtype)
            args.append(sd.var(v.name + "_b", np.moveaxis(values, 0, axis).shape, dtype))
            axes.append(axis)
            point_arg = np.moveaxis(values, 0, axis).astype(dtype)
        else:
            args.append(sd.var(v.name, v.shape, v.dtype if v.dtype.kind != "f" else dtype))
            axes.append(None)
            point_arg = np.asarray(point[v.name], dtype=args[-1].dtype)
        stand_ins.append(v)
        point[args[-1].name] = point_arg

    def fn(*xs):
        return substitute([graph.y], dict(zip(stand_ins, xs)))[0]

    try:
        mapped = sd.vmap(fn, in_axes=tuple(axes))(*args)
    except sd.SymdiffError as error:  # the documented refusal (test_ops_without_batching_rule)
        if "no batching rule" not in str(error):
            raise
        pytest.skip(str(error))
    typed = fn(*[sd.var(a.name, a.shape[:k] + a.shape[k + 1:], a.dtype) if k is not None
                 else a for a, k in zip(args, axes)])
    assert mapped.shape == (BATCH,) + graph.y.shape
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = sd.compile(mapped, inputs=args)(**{a.name: point[a.name] for a in args})
        loop_vars = sd.free_vars(typed)
        fixed = {a.name: point[a.name] for a, k in zip(args, axes) if k is None}
        want = _loop(typed, loop_vars, batched_values,
                     {k: v for k, v in fixed.items() if k in {u.name for u in loop_vars}},
                     np.asarray(got).dtype)
    rtol = 1e-4 if float32 else 1e-9
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True,
                               err_msg=graph.describe())


@pytest.mark.parametrize("seed", range(40))
def test_vmap_matches_a_loop_on_random_graphs(seed):
    _vmap_case(seed, float32=False)


@pytest.mark.parametrize("seed", range(40, 52))
def test_vmap_float32_matches_a_loop(seed):
    _vmap_case(seed, float32=True)


def test_vmap_in_axes_forms():
    W = sd.var("W", (3, 2))
    xs = sd.var("xs", (2, 5))
    rng = np.random.default_rng(0)
    Wv, xv = rng.normal(size=(3, 2)), rng.normal(size=(2, 5))
    by_column = sd.vmap(lambda x: sd.tanh(W @ x), in_axes=1)(xs)
    assert by_column.shape == (5, 3)
    np.testing.assert_allclose(sd.compile(by_column)(W=Wv, xs=xv), np.tanh(Wv @ xv).T)
    # tuple in_axes, an unbatched argument, a constant argument and two outputs
    both = sd.vmap(lambda x, w: (sd.sum(x * w), x + 1.0), in_axes=(-1, None))(xs, sd.var(
        "w", (2,)))
    assert isinstance(both, tuple) and [b.shape for b in both] == [(5,), (5, 2)]
    wv = rng.normal(size=2)
    got = sd.compile(list(both))(xs=xv, w=wv)
    np.testing.assert_allclose(got[0], wv @ xv)
    np.testing.assert_allclose(got[1], xv.T + 1.0)
    # an output that does not depend on the batch is broadcast over it
    const_out = sd.vmap(lambda x: W)(xs.T)
    assert const_out.shape == (5, 3, 2)


def test_vmap_nested():
    A = sd.var("A", (4, 3, 2))
    inner = sd.vmap(lambda row: sd.softmax(row * 2.0))
    outer = sd.vmap(lambda m: inner(m) @ sd.var("v", (2,)))(A)
    rng = np.random.default_rng(1)
    Av, vv = rng.normal(size=(4, 3, 2)), rng.normal(size=2)
    e = np.exp(2 * Av - (2 * Av).max(-1, keepdims=True))
    want = (e / e.sum(-1, keepdims=True)) @ vv
    np.testing.assert_allclose(sd.compile(outer)(A=Av, v=vv), want)


class _NoRule(Op):  # no ``name`` in the class body: not registered (no op-table row needed)
    def infer(self, x):
        return x.shape, x.dtype


_NoRule.name = "no_rule_op"


def test_vmap_errors():
    xs = sd.var("xs", (5, 2))
    with pytest.raises(sd.SymdiffError, match="no_rule_op"):
        sd.vmap(lambda x: _NoRule()(x))(xs)
    with pytest.raises(sd.ShapeError, match="batch sizes differ"):
        sd.vmap(lambda a, b: a + b)(xs, sd.var("ys", (4, 2)))
    with pytest.raises(sd.SymdiffError, match="in_axes has 1 entries for 2"):
        sd.vmap(lambda a, b: a + b, in_axes=(0,))(xs, xs)
    with pytest.raises(sd.ShapeError, match="out of range"):
        sd.vmap(lambda a: a, in_axes=2)(xs)
    with pytest.raises(sd.ShapeError, match="scalar"):
        sd.vmap(lambda a: a)(sd.var("s"))
    with pytest.raises(sd.SymdiffError, match="no argument is batched"):
        sd.vmap(lambda a: a, in_axes=None)(xs)
    with pytest.raises(sd.SymdiffError, match="callable"):
        sd.vmap(3)
    with pytest.raises(sd.SymdiffError, match="getitem"):
        sd.vmap(lambda x: x[[0, 1], :, [1, 0]])(sd.var("t", (5, 2, 3, 2)))


def test_vmap_take_with_batched_indices():
    xs = sd.var("xs", (4, 3, 5))
    idx = sd.var("idx", (4, 2), np.int64)
    rng = np.random.default_rng(2)
    xv = rng.normal(size=(4, 3, 5))
    iv = rng.integers(-3, 3, size=(4, 2))
    for axis in (0, 1):
        mapped = sd.vmap(lambda x, i: sd.take(x, i, axis=axis))(xs, idx)
        want = np.stack([np.take(xv[b], iv[b] % xv.shape[1 + axis], axis=axis)
                         for b in range(4)])
        np.testing.assert_allclose(sd.compile(mapped)(xs=xv, idx=iv), want)
    # unbatched array, batched indices
    table = sd.var("table", (5, 3))
    mapped = sd.vmap(lambda i: sd.take(table, i, axis=0), in_axes=0)(idx)
    tv = rng.normal(size=(5, 3))
    np.testing.assert_allclose(sd.compile(mapped)(table=tv, idx=iv),
                               np.stack([tv[iv[b]] for b in range(4)]))


# ---------------------------------------------------------------------------------------------
# batched jacobian and hessian
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(25))
def test_batched_jacobian_and_hessian_match_the_per_row_construction(seed):
    graph = random_graph(2000 + seed, seed)
    rng = np.random.default_rng(seed)
    point, _ = find_point(graph, rng)
    if point is None or not graph.variables:
        pytest.skip("no point away from kinks")
    x = graph.variables[0]
    y = graph.y
    every = sd.free_vars(y)
    try:
        rows = _jacobian_rows(y, x)
    except sd.UndefinedGradientError:
        with pytest.raises(sd.UndefinedGradientError):
            sd.jacobian(y, x)
        return
    batched = sd.jacobian(y, x)
    assert batched.shape == rows.shape == y.shape + x.shape
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, want = sd.compile([batched, rows], inputs=every)(**point)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=graph.describe())
        loss = sd.sum(y)
        h_rows = _jacobian_rows(sd.grad(loss, x), x)
        h = sd.hessian(loss, x)
        got, want = sd.compile([h, h_rows], inputs=every)(**point)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True,
                               err_msg=graph.describe())


def _xax(n):
    x, A = sd.var("x", (n,)), sd.var("A", (n, n))
    return x @ A @ x, x, [x, A]


def _xax_sum(n):
    x, A = sd.var("x", (n,)), sd.var("A", (n, n))
    return sd.sum(x * (A @ x)), x, [x, A]


def _logistic(n):
    X, y, w = sd.var("X", (n, n)), sd.var("y", (n,)), sd.var("w", (n,))
    return sd.sum(sd.log(sd.exp(-y * (X @ w)) + 1)), w, [X, y, w]


def _factorization(n):
    T, U, V = sd.var("T", (n, n)), sd.var("U", (n, 5)), sd.var("V", (n, 5))
    return sd.sum((T - U @ V.T) ** 2), U, [T, U, V]


def _softmax_ce(n):
    z, t = sd.var("z", (n,)), sd.var("t", (n,))
    return -sd.sum(t * sd.log_softmax(z * z)), z, [z, t]


PROBLEMS = [_xax, _xax_sum, _logistic, _factorization, _softmax_ce]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.__name__)
def test_hessian_matches_finite_differences(problem):
    f, x, variables = problem(4)
    rng = np.random.default_rng(3)
    point = {v.name: rng.normal(size=v.shape) for v in variables}
    h = sd.compile(sd.hessian(f, x), inputs=variables)(**point)
    g = sd.compile(sd.grad(f, x), inputs=variables)
    eps, flat = 1e-6, point[x.name].ravel()
    columns = []
    for k in range(flat.size):
        step = np.zeros(flat.size)
        step[k] = eps
        plus = dict(point, **{x.name: (flat + step).reshape(x.shape)})
        minus = dict(point, **{x.name: (flat - step).reshape(x.shape)})
        columns.append((np.asarray(g(**plus)) - np.asarray(g(**minus))).ravel() / (2 * eps))
    numeric = np.stack(columns, axis=1)
    np.testing.assert_allclose(np.asarray(h).reshape(flat.size, flat.size), numeric,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.__name__)
def test_hessian_node_count_does_not_grow_with_n(problem):
    counts = {n: count_nodes(sd.hessian(*problem(n)[:2])) for n in (3, 10, 40)}
    assert len(set(counts.values())) == 1, counts


def test_jacobian_of_a_vector_function_is_one_graph():
    x = sd.var("x", (300,))
    J = sd.jacobian(sd.tanh(x) * x, x)
    assert count_nodes(J) < 20
    xv = np.random.default_rng(0).normal(size=300)
    np.testing.assert_allclose(sd.compile(J)(x=xv),
                               np.diag(np.tanh(xv) + xv * (1 - np.tanh(xv) ** 2)))


def test_printed_closed_forms():
    n = 50
    assert str(sd.hessian(*_xax(n)[:2])) == "A + A.T"
    assert str(sd.hessian(*_xax_sum(n)[:2])) == "A.T + A"
    # X^T diag(d) X, a scaled Gram product: the columns of X.T scaled, then one matmul
    assert str(sd.hessian(*_logistic(n)[:2])) == (
        "X.T * -y * dsigmoid(-y * (X @ w)) * -y @ X")


def test_factorization_hessian_simplifies_to_a_gram_product():
    # d^2/dU^2 sum((T - U V^T)^2) = 2 I (x) V^T V: after the rewrites, the seeds times the 5x5
    # Gram matrix (never the (5n, n, n) batch of U V^T tangents)
    f, U, variables = _factorization(30)
    H = sd.optimize(sd.hessian(f, U))
    assert str(H).endswith("@ (V.T @ V * 2.0), shape=(30, 5, 30, 5))"), str(H)
    rng = np.random.default_rng(4)
    Vv = rng.normal(size=(30, 5))
    got = sd.compile(H, inputs=variables)(T=rng.normal(size=(30, 30)),
                                          U=rng.normal(size=(30, 5)), V=Vv)
    want = 2 * np.einsum("ij,ab->iajb", np.eye(30), Vv.T @ Vv)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_rewrite_negation_of_negated_product_is_exact():
    a, b = sd.var("a", (5,)), sd.var("b", (5,))
    out = sd.optimize(-((-a) * b))
    assert str(out) == "a * b"
    av = np.array([1.5, -np.inf, np.nan, 0.0, -0.0])
    bv = np.array([3.0, 2.0, 1.0, -1.0, 5.0])
    want = -((-av) * bv)
    got = sd.compile(out)(a=av, b=bv)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(got, want)


def test_rewrite_matmul_of_scaled_only_for_powers_of_two():
    A, B = sd.var("A", (3, 4)), sd.var("B", (4, 2))
    assert str(sd.optimize((A * 2.0) @ B)) == "A @ B * 2.0"  # the result is the smallest
    assert str(sd.optimize(A @ (B * 4.0))) == "A @ B * 4.0"
    P, Q, R = sd.var("P", (50, 2)), sd.var("Q", (2, 50)), sd.var("R", (50, 2))
    # re-associated, and the scale on the smallest factor
    assert str(sd.optimize((P @ Q * 2.0) @ R)) == "P @ (Q @ R * 2.0)"
    assert str(sd.optimize((A * 3.0) @ B)) == "A * 3.0 @ B"  # 3 A rounds: kept
    assert str(sd.optimize((A * 0.5) @ B)) == "A * 0.5 @ B"  # halving may go subnormal: kept


# ops vmap cannot batch yet: jacobian/hessian through them fall back to one vjp per row
WITHOUT_BATCHING_RULE = {
    "avg_pool2d", "avg_pool2d_grad", "cholesky", "conv1d", "conv2d", "conv_input_grad",
    "conv_weight_grad", "det", "diag", "einsum", "inv", "logabsdet", "max_pool2d",
    "max_pool2d_gather", "max_pool2d_scatter", "scatter_along_axis", "slogdet_sign", "solve",
    "tile"}


def test_ops_without_batching_rule_are_the_listed_ones():
    from symdiff.ops.base import REGISTRY, Op
    assert {n for n, cls in REGISTRY.items() if cls.batch is Op.batch} == WITHOUT_BATCHING_RULE


def test_jacobian_through_an_op_without_batching_rule_is_built_per_row():
    A = sd.var("A", (2, 2))
    J = sd.jacobian(sd.linalg.inv(A), A)  # inv has no batching rule: one vjp per entry
    a = np.array([[2.0, 1.0], [0.5, 3.0]])
    inv = np.linalg.inv(a)
    # d(A^-1)_ij / dA_kl = -(A^-1)_ik (A^-1)_lj
    np.testing.assert_allclose(sd.compile(J)(A=a), -np.einsum("ik,lj->ijkl", inv, inv))
