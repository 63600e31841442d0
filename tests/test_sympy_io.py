"""SymPy bridge: ``to_sympy`` / ``from_sympy``, and SymPy as the oracle for symbolic gradients.

One table of scalar expressions covers every op ``to_sympy`` maps. Generic checks run over it:
the SymPy form evaluates (``lambdify``) to the compiled graph's values; ``from_sympy`` of it
compiles to the same values; and, for differentiable rows, ``to_sympy(sd.grad(e, x))`` equals
``sympy.diff(to_sympy(e), X)`` at points away from kinks, to first and second order.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import symdiff as sd
from symdiff.ops.elementwise import dsigmoid, dtanh

X, Y = sympy.symbols("x y", real=True)
x, y = sd.var("x"), sd.var("y")

# points (x, y): no ties x == y, nothing at a kink (0, +-1, the clip bounds) or at a .5
ANY = [(0.3, 0.7), (1.2, -0.4), (-0.8, 0.5), (2.1, 1.7), (-1.6, -2.3)]
POSITIVE = [(0.3, 0.7), (1.2, 0.4), (2.5, 1.9), (0.7, 2.2)]
SMALL = [(0.3, 0.7), (-0.6, 0.4), (1.1, -0.9)]  # |x| < pi/2 for tan


def _row(name, build, points=ANY, diff=True, order2=True):
    """One table row: ``build(x, y)`` gives the graph; ``diff`` whether sd.grad is defined;
    ``order2`` whether the second derivative is compared too."""
    return pytest.param(build, points, diff, order2, id=name)


CASES = [
    _row("add", lambda x, y: x + y),
    _row("subtract", lambda x, y: x - y),
    _row("multiply", lambda x, y: x * y),
    _row("divide", lambda x, y: x / y),
    _row("power", lambda x, y: x ** y, POSITIVE),
    _row("power_const", lambda x, y: x ** 3.0 - 2 ** x),
    _row("power_fraction", lambda x, y: x ** 1.5, POSITIVE),
    _row("negative", lambda x, y: -x * y),
    _row("exp", lambda x, y: sd.exp(x * y)),
    _row("log", lambda x, y: sd.log(x) * y, POSITIVE),
    _row("log1p", lambda x, y: sd.log1p(x * y), POSITIVE),
    _row("expm1", lambda x, y: sd.expm1(x) / y),
    _row("sqrt", lambda x, y: sd.sqrt(x + y), POSITIVE),
    _row("square", lambda x, y: sd.square(x - y)),
    _row("abs", lambda x, y: sd.abs(x) * y),
    _row("sin", lambda x, y: sd.sin(x * y)),
    _row("cos", lambda x, y: sd.cos(x) + y),
    _row("tan", lambda x, y: sd.tan(x), SMALL),
    _row("tanh", lambda x, y: sd.tanh(x * y)),
    _row("sigmoid", lambda x, y: sd.sigmoid(x - y)),
    # tanh's and sigmoid's derivatives (built by their bprops)
    _row("dtanh", lambda x, y: dtanh(x * 0.5) * y),
    _row("dsigmoid", lambda x, y: dsigmoid(x - y)),
    _row("softplus", lambda x, y: sd.softplus(x * y)),
    _row("relu", lambda x, y: sd.relu(x) * y),
    _row("leaky_relu", lambda x, y: sd.leaky_relu(x, 0.1) * y),
    _row("leaky_relu_default", lambda x, y: sd.leaky_relu(x - y)),
    _row("leaky_relu_param", lambda x, y: sd.leaky_relu(x, y)),
    _row("hardtanh", lambda x, y: sd.hardtanh(x)),
    _row("hardtanh_params", lambda x, y: sd.hardtanh(x * y, lo=-0.5, hi=1.5)),
    _row("clip", lambda x, y: sd.clip(x, -0.5, 1.0) * y),
    _row("clip_var_bound", lambda x, y: sd.clip(x, y, 2.5)),
    _row("maximum", lambda x, y: sd.maximum(x, y) * x),
    _row("minimum", lambda x, y: sd.minimum(x, y) * y),
    _row("where", lambda x, y: sd.where(x > y, sd.sin(x), y * y)),
    _row("where_numeric_cond", lambda x, y: sd.where(x, y * y, 2.0)),
    _row("where_mask_cond", lambda x, y: sd.where((x < y) * 1.0, x * y, sd.exp(x))),
    _row("where_less", lambda x, y: sd.where(x < y, x * y, sd.sin(x))),
    _row("where_less_equal", lambda x, y: sd.where(x <= y, x * y, sd.sin(x))),
    _row("where_greater_equal", lambda x, y: sd.where(x >= y, x * y, sd.sin(x))),
    _row("where_equal", lambda x, y: sd.where(x == y, x * y, sd.sin(x))),
    _row("where_not_equal", lambda x, y: sd.where(x != y, x * y, sd.sin(x))),
    _row("less", lambda x, y: x < y, diff=False),
    _row("less_equal", lambda x, y: x <= y, diff=False),
    _row("greater", lambda x, y: x > y, diff=False),
    _row("greater_equal", lambda x, y: x >= y, diff=False),
    _row("equal", lambda x, y: x == y, diff=False),
    _row("not_equal", lambda x, y: x != y, diff=False),
    _row("mask_times_value", lambda x, y: (x < y) * x + (x > 0), diff=False),
    _row("floor", lambda x, y: sd.floor(x * 3.0), diff=False),
    _row("round", lambda x, y: sd.round(x * 3.0) + y, diff=False),
    _row("sign", lambda x, y: sd.sign(x) * y, diff=False),
    _row("stop_gradient", lambda x, y: sd.stop_gradient(x) * y, diff=False),
    _row("sum", lambda x, y: sd.sum(x * y)),
    _row("mean", lambda x, y: sd.mean(sd.sin(x))),
    _row("max", lambda x, y: sd.max(x) * y),
    _row("min", lambda x, y: sd.min(x * y)),
    _row("prod", lambda x, y: sd.prod(x) + y),
    _row("logsumexp", lambda x, y: sd.logsumexp(x * y)),
    _row("norm", lambda x, y: sd.norm(x) * y),
    _row("argmax", lambda x, y: sd.argmax(x) + x, diff=False),
    _row("getitem", lambda x, y: x[...] * y),
    _row("dot", lambda x, y: sd.dot(x, y)),
    _row("composite", lambda x, y: sd.sigmoid(x * y) + sd.log1p(x ** 2) - sd.softplus(-y) / 3),
    _row("shared_subexpression", lambda x, y: (lambda s: s * s + s / y)(sd.tanh(x) + y)),
    _row("nested_piecewise", lambda x, y: sd.leaky_relu(sd.leaky_relu(x - 0.2) + y, 0.2)),
    # points exact in float32, so the cast's rounding is nil and values compare at float64's
    # tolerance (SymPy sees a float cast as the identity)
    _row("astype", lambda x, y: sd.astype(sd.astype(x * y, "float32"), "float64") + x,
         [(0.5, 0.25), (1.5, -0.75), (-2.0, 0.125), (0.375, 3.0)]),
    # round 2
    _row("sinh", lambda x, y: sd.sinh(x * y)),
    _row("cosh", lambda x, y: sd.cosh(x) + y),
    _row("arcsin", lambda x, y: sd.arcsin(0.5 * sd.tanh(x)) * y),
    _row("arccos", lambda x, y: sd.arccos(0.5 * sd.tanh(x * y))),
    _row("arctan", lambda x, y: sd.arctan(x * y)),
    _row("arcsinh", lambda x, y: sd.arcsinh(x) * y),
    _row("arccosh", lambda x, y: sd.arccosh(x + y), [(1.5, 0.7), (2.2, 1.0), (0.9, 1.3)]),
    _row("arctanh", lambda x, y: sd.arctanh(0.5 * sd.tanh(x)) + y),
    _row("erf", lambda x, y: sd.erf(x * y)),
    _row("erfc", lambda x, y: sd.erfc(x) * y),
    _row("reciprocal", lambda x, y: sd.reciprocal(x) * y, POSITIVE),
    _row("log_sigmoid", lambda x, y: sd.log_sigmoid(x * y)),
    _row("silu", lambda x, y: sd.silu(x - y)),
    _row("elu", lambda x, y: sd.elu(x, 0.5) * y),
    _row("gelu", lambda x, y: sd.gelu(x * y)),
    _row("gelu_tanh", lambda x, y: sd.gelu(x - y, approximate=True)),
    _row("logaddexp", lambda x, y: sd.logaddexp(x, y)),
    _row("arctan2", lambda x, y: sd.arctan2(x, y)),
    # sympy.diff leaves Mod underived; std of one number has no derivative (0/0)
    _row("mod", lambda x, y: (x % y) * x, diff=False),
    _row("variance", lambda x, y: sd.variance(x * y) + y),
    _row("std", lambda x, y: sd.std(x) + y, diff=False),
]

DIFF_CASES = [case for case in CASES if case.values[2]]
ORDER2_CASES = [case for case in DIFF_CASES if case.values[3]]

# lambdify names for the undefined functions to_sympy emits (round) or tests use (sigmoid), and
# for those NumPy lacks (lambdify would call math.erf on arrays)
_SYMPY_MODULES = [{"round": np.round, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
                   "erf": np.vectorize(math.erf), "erfc": np.vectorize(math.erfc)}, "numpy"]


def _eval_sympy(expr, points) -> np.ndarray:
    """``expr`` at each (x, y) of ``points`` by one lambdify; DiracDelta (a second derivative
    of a kink) is zero away from the kink."""
    expr = sympy.sympify(expr).replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    fn = sympy.lambdify((X, Y), expr, modules=_SYMPY_MODULES)
    xs, ys = np.array(points, dtype=np.float64).T
    return np.broadcast_to(np.asarray(fn(xs, ys), dtype=np.float64), xs.shape)


def _eval_graph(e: sd.Expr, points) -> np.ndarray:
    fn = sd.compile(e)
    names = [v.name for v in sd.free_vars(e)]
    return np.array([float(fn(**{n: dict(zip("xy", p))[n] for n in names})) for p in points])


def _assert_close(ours, theirs, *context):
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12, err_msg=repr(context))


@pytest.mark.parametrize("build, points, diff, order2", CASES)
def test_to_sympy_matches_compiled_values(build, points, diff, order2):
    e = build(x, y)
    expr = sd.to_sympy(e)
    _assert_close(_eval_sympy(expr, points), _eval_graph(e, points), expr)


@pytest.mark.parametrize("build, points, diff, order2", CASES)
def test_from_sympy_round_trip(build, points, diff, order2):
    e = build(x, y)
    back = sd.from_sympy(sd.to_sympy(e))
    assert isinstance(back, sd.Expr) and back.shape == ()
    _assert_close(_eval_graph(back, points), _eval_graph(e, points), str(back))


@pytest.mark.parametrize("build, points, diff, order2", DIFF_CASES)
def test_gradient_matches_sympy_diff(build, points, diff, order2):
    e = build(x, y)
    expr = sd.to_sympy(e)
    for v, V in ((x, X), (y, Y)):
        ours = sd.to_sympy(sd.grad(e, v))
        theirs = sympy.diff(expr, V)
        _assert_close(_eval_sympy(ours, points), _eval_sympy(theirs, points), v, ours, theirs)


@pytest.mark.parametrize("build, points, diff, order2", ORDER2_CASES)
def test_second_derivatives_match_sympy_diff(build, points, diff, order2):
    e = build(x, y)
    expr = sd.to_sympy(e)
    gx = sd.grad(e, x)
    for v, V in ((x, X), (y, Y)):
        ours = sd.to_sympy(sd.grad(gx, v))
        theirs = sympy.diff(expr, X, V)
        _assert_close(_eval_sympy(ours, points), _eval_sympy(theirs, points), v, ours, theirs)


@pytest.mark.parametrize("build, points, diff, order2", DIFF_CASES)
def test_forward_mode_and_hvp_match_sympy_diff(build, points, diff, order2):
    """jvp (forward mode) and hvp take other code paths than grad; SymPy checks them too."""
    e = build(x, y)
    expr = sd.to_sympy(e)
    for v, V in ((x, X), (y, Y)):
        ours = sd.to_sympy(sd.jvp(e, v, 1.0))
        _assert_close(_eval_sympy(ours, points), _eval_sympy(sympy.diff(expr, V), points), v)
        if order2:
            ours = sd.to_sympy(sd.hvp(e, v, 1.0))
            theirs = sympy.diff(expr, V, 2)
            _assert_close(_eval_sympy(ours, points), _eval_sympy(theirs, points), v)


@pytest.mark.parametrize("build", [
    lambda: x < y, lambda: sd.floor(x), lambda: sd.round(x) * y, lambda: sd.sign(x) + x,
    lambda: sd.argmax(x) * x])
def test_no_gradient_rows_raise(build):
    with pytest.raises(sd.UndefinedGradientError):
        sd.grad(build(), x)


def test_covers_every_scalar_op():
    """Guard: every registered op that can appear in a scalar graph is in the table."""
    seen = set()
    for case in CASES:
        for node in sd.graph.toposort([case.values[0](x, y)]):
            if node.op is not None:
                seen.add(node.op.name)
    not_scalar = {"matmul", "outer", "concatenate", "stack", "take", "scatter_add", "softmax",
                  "log_softmax", "reshape", "broadcast_to", "transpose", "index_add",
                  "dot",  # dot of scalars is multiply; index_add of a scalar comes from grad
                  "cumsum", "sort", "argsort", "permute",  # 1-d at least
                  "einsum", "conv1d", "conv2d", "conv_input_grad", "conv_weight_grad",
                  "max_pool2d", "max_pool2d_scatter", "max_pool2d_gather", "avg_pool2d",
                  "avg_pool2d_grad", "inv", "solve", "det", "logabsdet", "slogdet_sign",
                  "cholesky"}
    # layout ops: no scalar in and scalar out (a 0-d squeeze, flip or tile is no node at all)
    not_scalar |= {"squeeze", "expand_dims", "split", "flip", "tile", "repeat", "pad",
                   "take_along_axis", "scatter_along_axis", "one_hot", "tril", "triu", "diag",
                   "diagonal", "trace"}
    missing = set(sd.ops.REGISTRY) - seen - not_scalar
    assert not missing, f"ops without a row: {sorted(missing)}"


# ---------------------------------------------------------------------------------------------
# f(f(f(w))) with f = sin, to second order
# ---------------------------------------------------------------------------------------------
def test_nested_sin_first_and_second_derivative():
    w = sd.var("w")
    W = sympy.Symbol("w", real=True)
    z = sd.sin(sd.sin(sd.sin(w)))
    Z = sd.to_sympy(z)
    assert Z == sympy.sin(sympy.sin(sympy.sin(W)))
    dz = sd.grad(z, w)
    d2z = sd.grad(dz, w)
    assert sympy.simplify(sd.to_sympy(dz) - sympy.diff(Z, W)) == 0
    assert sympy.simplify(sd.to_sympy(d2z) - sympy.diff(Z, W, 2)) == 0
    second = sympy.diff(Z, W, 2)
    for at in (-1.3, 0.2, 0.9, 2.4):
        assert math.isclose(float(sd.compile(d2z)(at)), float(second.subs(W, at)), rel_tol=1e-12)


def test_stop_gradient_is_identity_for_sympy():
    # SymPy sees values only: the graph's gradient treats stop_gradient(x) as a constant
    assert sd.to_sympy(sd.stop_gradient(x) * x) == X ** 2
    assert sd.to_sympy(sd.grad(sd.stop_gradient(x) * x, x)) == X


# ---------------------------------------------------------------------------------------------
# to_sympy details
# ---------------------------------------------------------------------------------------------
def test_symbols_are_real_and_named_after_variables():
    expr = sd.to_sympy(sd.var("alpha_1") * x)
    names = sorted(s.name for s in expr.free_symbols)
    assert names == ["alpha_1", "x"]
    assert all(s.is_real for s in expr.free_symbols)


def test_constants_are_exact_when_they_can_be():
    assert sd.to_sympy(x * 0.5) == X / 2
    assert sd.to_sympy(x * 2.0 + 1) == 2 * X + 1
    assert sd.to_sympy(x ** 2) == X ** 2
    tenth = sd.to_sympy(x * 0.1).as_coeff_Mul()[0]
    assert isinstance(tenth, sympy.Float) and float(tenth) == 0.1
    assert sd.to_sympy(sd.const(3)) == 3 and isinstance(sd.to_sympy(sd.const(3)), sympy.Integer)
    assert sd.to_sympy(sd.const(True)) is sympy.true
    assert sd.to_sympy(sd.const(np.inf)) == sympy.oo
    assert sd.to_sympy(sd.const(np.nan)) is sympy.nan


def test_op_definitions():
    assert sd.to_sympy(sd.sigmoid(x)) == 1 / (1 + sympy.exp(-X))
    assert sd.to_sympy(sd.softplus(x)) == sympy.log(1 + sympy.exp(X))
    assert sd.to_sympy(sd.relu(x)) == sympy.Max(0, X)
    assert sd.to_sympy(sd.log1p(x)) == sympy.log(1 + X)
    assert sd.to_sympy(sd.expm1(x)) == sympy.exp(X) - 1
    assert sd.to_sympy(sd.hardtanh(x, -0.5, 2.0)) == sympy.Max(-sympy.S.Half, sympy.Min(2, X))
    assert sd.to_sympy(sd.clip(x, y, 3.0)) == sympy.Min(sympy.Max(X, Y), 3)
    assert sd.to_sympy(sd.leaky_relu(x, 0.25)) == sympy.Piecewise((X, X > 0), (X / 4, True))
    assert sd.to_sympy(sd.where(x > y, x, y)) == sympy.Piecewise((X, X > Y), (Y, True))
    assert sd.to_sympy(sd.where(x, x, y)) == sympy.Piecewise((X, sympy.Ne(X, 0)), (Y, True))
    assert sd.to_sympy((x <= y) * y) == sympy.Piecewise((1, X <= Y), (0, True)) * Y
    assert sd.to_sympy(x != y) == sympy.Ne(X, Y)
    assert sd.to_sympy(sd.norm(x)) == sympy.Abs(X)
    assert sd.to_sympy(sd.argmax(x)) == 0
    rounded = sd.to_sympy(sd.round(x))
    assert rounded.func.__name__ == "round" and rounded.args == (X,)


def test_round_is_numpy_round_half_to_even():
    expr = sd.to_sympy(sd.round(x))
    fn = sympy.lambdify(X, expr, "numpy")
    assert [fn(v) for v in (0.5, 1.5, 2.5, -2.5)] == [0.0, 2.0, 2.0, -2.0]
    assert float(expr.subs(X, 2.5).evalf()) == 2.0


def test_to_sympy_of_a_list():
    assert sd.to_sympy([x + y, x * y]) == [X + Y, X * Y]


def test_non_scalar_graph_raises_shape_error_naming_the_node():
    v = sd.var("v", (3,))
    with pytest.raises(sd.ShapeError, match=r"'v'.*\(3,\)"):
        sd.to_sympy(sd.sum(v))
    with pytest.raises(sd.ShapeError, match=r"broadcast_to.*\(2,\)"):
        sd.to_sympy(sd.sum(sd.broadcast_to(x, (2,))))
    with pytest.raises(sd.SymdiffError):
        sd.to_sympy("x + 1")


def test_deep_chain_converts_both_ways():
    depth = 10_000
    e = x
    for _ in range(depth):
        e = sd.sin(e)
    expr = sd.to_sympy(e)
    node, levels = expr, 0
    while node.args:  # walk down iteratively (SymPy's own printers would recurse)
        assert node.func is sympy.sin
        node, levels = node.args[0], levels + 1
    assert node == X and levels == depth
    back = sd.from_sympy(expr)
    order = sd.graph.toposort([back])
    assert len(order) == depth + 1
    assert {n.op.name for n in order if n.op is not None} == {"sin"}
    assert back is e  # interning: the same ops on the same inputs are the same node


def test_deep_gradient_graph_converts_both_ways():
    e = x
    for _ in range(1000):  # far past the depth at which SymPy's evaluation would recurse
        e = sd.tanh(e) * 0.9 + 0.1
    g = sd.grad(e, x)
    back = sd.from_sympy(sd.to_sympy(g))
    for at in (-0.7, 0.4):
        assert math.isclose(float(sd.compile(back)(at)), float(sd.compile(g)(at)),
                            rel_tol=1e-12, abs_tol=1e-300)


def test_shared_values_do_not_blow_up():
    # each step uses the previous value twice: the SymPy *tree* has 2**40 leaves, the graph 200
    # nodes; the conversion works on the shared structure both ways
    e = x
    for _ in range(40):
        e = sd.tanh(e) * x + sd.exp(-e)
    expr = sd.to_sympy(e)
    back = sd.from_sympy(expr)
    assert len(sd.graph.toposort([back])) < 1000
    assert math.isclose(float(sd.compile(back)(0.3)), float(sd.compile(e)(0.3)), rel_tol=1e-12)
    gx = sd.grad(e, x)
    assert math.isclose(float(sd.compile(sd.from_sympy(sd.to_sympy(gx)))(0.3)),
                        float(sd.compile(gx)(0.3)), rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------
# from_sympy details
# ---------------------------------------------------------------------------------------------
def _ops_of(e):
    return [n.op.name for n in sd.graph.toposort([e]) if n.op is not None]


def test_from_sympy_builds_readable_graphs():
    assert _ops_of(sd.from_sympy(X - Y)) == ["subtract"]
    assert _ops_of(sd.from_sympy(X / Y)) == ["divide"]
    assert _ops_of(sd.from_sympy(-X)) == ["negative"]
    assert _ops_of(sd.from_sympy(1 / X)) == ["divide"]
    assert _ops_of(sd.from_sympy(sympy.sqrt(X))) == ["sqrt"]
    assert _ops_of(sd.from_sympy(X ** 2)) == ["square"]
    assert _ops_of(sd.from_sympy(X ** -2)) == ["square", "divide"]
    assert _ops_of(sd.from_sympy(X ** 3)) == ["power"]
    assert str(sd.from_sympy(X - Y / 2)) == "x - y / 2.0"
    assert str(sd.from_sympy(3 - X / Y)) == "3.0 - x / y"
    assert _ops_of(sd.from_sympy(sympy.Max(X, Y, 1))) == ["maximum", "maximum"]
    assert _ops_of(sd.from_sympy(sympy.Min(X, Y, 1))) == ["minimum", "minimum"]


def test_from_sympy_numbers():
    for number, value in [(sympy.pi, math.pi), (sympy.E, math.e), (sympy.Rational(1, 3), 1 / 3),
                          (sympy.Float(0.1), 0.1), (sympy.Integer(7), 7.0),
                          (sympy.oo, math.inf), (-sympy.oo, -math.inf), (sympy.EulerGamma,
                                                                         0.5772156649015329)]:
        e = sd.from_sympy(number)
        assert e.is_const and e.dtype == np.float64 and float(e.value) == value
    assert math.isnan(float(sd.from_sympy(sympy.nan).value))
    for bad in (sympy.zoo, sympy.I, 2 + 3 * sympy.I * X, sympy.Integer(10) ** 400):
        with pytest.raises(sd.SymdiffError):
            sd.from_sympy(bad)


def test_from_sympy_functions_and_piecewise():
    cases = [
        (sympy.exp(X) * sympy.log(Y) + sympy.tan(X) - sympy.cos(Y), POSITIVE),
        (sympy.Abs(X) * sympy.sign(Y) + sympy.floor(X * 3) + sympy.ceiling(Y * 3), ANY),
        (sympy.tanh(X) + sympy.Heaviside(X) + sympy.Heaviside(Y, 0), ANY),
        (sympy.Piecewise((X, X > 0), (Y, sympy.And(Y < 1, X < -1)), (0, True)), ANY),
        (sympy.Piecewise((X, sympy.Or(X > 1, Y >= 1)), (Y, sympy.Not(X < -1)),
                         (X * Y, True)), ANY),
        (sympy.Piecewise((1, sympy.Eq(X, 0.3)), (2, sympy.Ne(Y, 0.5)), (3, True)), ANY),
        (sympy.Piecewise((X, X <= Y)), [(0.3, 0.7), (-1.0, 0.5)]),
        (sympy.Function("round")(X * 3) + sympy.Function("sigmoid")(Y), ANY),
    ]
    for expr, points in cases:
        _assert_close(_eval_graph(sd.from_sympy(expr), points), _eval_sympy(expr, points), expr)
    lone = sd.from_sympy(sympy.Piecewise((X, X > 0)))
    assert math.isnan(float(sd.compile(lone)(-1.0)))


def test_from_sympy_relationals_and_booleans():
    e = sd.from_sympy(X < Y)
    assert e.op.name == "less" and e.dtype == np.bool_
    assert sd.from_sympy(sympy.true).value.item() is True
    for rel, name in [(X <= Y, "less_equal"), (X > Y, "greater"), (X >= Y, "greater_equal"),
                      (sympy.Eq(X, Y), "equal"), (sympy.Ne(X, Y), "not_equal")]:
        assert sd.from_sympy(rel).op.name == name


def test_from_sympy_shapes_apply_elementwise():
    e = sd.from_sympy(X ** 2 + Y, shapes={"x": (3,)})
    assert e.shape == (3,) and sd.var("x", (3,)) in sd.free_vars(e)
    out = sd.compile(e)(x=np.array([1.0, 2.0, 3.0]), y=0.5)
    np.testing.assert_allclose(out, [1.5, 4.5, 9.5])


def test_from_sympy_plain_symbols_and_python_numbers():
    a = sympy.Symbol("a")  # no assumptions: still the variable named "a"
    assert sd.from_sympy(a * 2) is sd.from_sympy(sympy.Symbol("a", real=True) * 2)
    assert float(sd.from_sympy(2.5).value) == 2.5


def test_from_sympy_errors_name_the_culprit():
    with pytest.raises(sd.SymdiffError, match="Integral"):
        sd.from_sympy(sympy.Integral(X, X))
    with pytest.raises(sd.SymdiffError, match="'x y'"):
        sd.from_sympy(sympy.Symbol("x y") + 1)
    with pytest.raises(sd.SymdiffError, match="'lambda'"):
        sd.from_sympy(sympy.Symbol("lambda"))
    with pytest.raises(sd.SymdiffError, match="'foo'"):
        sd.from_sympy(sympy.Function("foo")(X))
    with pytest.raises(sd.SymdiffError, match="gamma"):
        sd.from_sympy(sympy.gamma(X))
    with pytest.raises(sd.SymdiffError, match="parse"):
        sd.from_sympy("x + 1")
    with pytest.raises(sd.SymdiffError):
        sd.from_sympy(x)
    with pytest.raises(sd.SymdiffError):
        sd.from_sympy(X, shapes=[("x", (3,))])
