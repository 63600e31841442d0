"""sd.parse: the accepted grammar evaluates right, everything else is a ParseError at the right
character offset, nothing is ever executed, and no text (deep, long or hostile) escapes as a bare
Python error."""
from __future__ import annotations

import ast
import builtins
import os
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdiff as sd
from conftest import scaled
from symdiff.graph import toposort

RNG = np.random.default_rng(0)
# many tests here share one shapes dict across texts on purpose: its unused keys are not typos
pytestmark = pytest.mark.filterwarnings("ignore::symdiff.SymdiffWarning")


def run(text, shapes=None, **values):
    """Parse ``text`` and evaluate it at ``values`` (keyword per variable)."""
    expr = sd.parse(text, shapes)
    names = {v.name for v in sd.free_vars(expr)}
    return np.asarray(sd.compile(expr)(**{k: v for k, v in values.items() if k in names}))


# ---------------------------------------------------------------------------------------------
# accepted texts
# ---------------------------------------------------------------------------------------------
def test_cs224n_example_and_elementwise_max():
    expr = sd.parse("(x + y) * max(y, z)")
    assert float(sd.compile(expr)(x=1.0, y=2.0, z=0.0)) == 6.0
    assert float(sd.compile(expr)(x=1.0, y=2.0, z=5.0)) == 15.0
    # max of two operands is elementwise (maximum), not a reduction
    e = sd.parse("max(a, b)", {"a": (3,), "b": (3,)})
    assert e.shape == (3,) and e.op.name == "maximum"
    out = sd.compile(e)(a=np.array([1.0, 5.0, -2.0]), b=np.array([3.0, 0.0, -1.0]))
    np.testing.assert_array_equal(out, [3.0, 5.0, -1.0])
    assert str(expr) == "(x + y) * maximum(y, z)"


def test_neural_layer_matches_numpy():
    shapes = {"W": (8, 20), "x": (20,), "u": (8,), "b": (8,)}
    vals = {k: RNG.standard_normal(s) for k, s in shapes.items()}
    got = run("sum(u * tanh(W @ x + b))", shapes, **vals)
    want = np.sum(vals["u"] * np.tanh(vals["W"] @ vals["x"] + vals["b"]))
    np.testing.assert_allclose(got, want, rtol=1e-12)


M = np.arange(12.0).reshape(3, 4) - 5.0
V3 = np.array([1.5, -2.0, 0.25])
E = np.arange(15.0).reshape(5, 3)

ACCEPTED = [
    # text, shapes, values, expected
    ("max(x, axis=0)", {"x": (3, 4)}, {"x": M}, M.max(axis=0)),
    ("max(x, axis=1)", {"x": (3, 4)}, {"x": M}, M.max(axis=1)),
    ("max(x)", {"x": (3, 4)}, {"x": M}, M.max()),
    ("min(x, keepdims=True)", {"x": (3, 4)}, {"x": M}, M.min(keepdims=True)),
    ("min(x, axis=-1, keepdims=True)", {"x": (3, 4)}, {"x": M},
     M.min(axis=-1, keepdims=True)),
    ("max(x, 0)", {"x": (3,)}, {"x": V3}, np.maximum(V3, 0)),
    ("min(x, 0, -1)", {"x": (3,)}, {"x": V3}, np.minimum(np.minimum(V3, 0), -1)),
    ("take(E, [1, 2, 2])", {"E": (5, 3)}, {"E": E}, E[[1, 2, 2]]),
    ("take(E, [[0, -1], [4, 4]])", {"E": (5, 3)}, {"E": E}, np.take(E, [[0, -1], [4, 4]], 0)),
    ("take(E, [2, 0], axis=1)", {"E": (5, 3)}, {"E": E}, E[:, [2, 0]]),
    ("x.T", {"x": (3, 4)}, {"x": M}, M.T),
    ("x.T.T + 1", {"x": (3, 4)}, {"x": M}, M + 1),
    ("x[0, 1:3]", {"x": (3, 4)}, {"x": M}, M[0, 1:3]),
    ("x[-1]", {"x": (3, 4)}, {"x": M}, M[-1]),
    ("x[::-1, -3:-1]", {"x": (3, 4)}, {"x": M}, M[::-1, -3:-1]),
    ("x[..., 2]", {"x": (3, 4)}, {"x": M}, M[..., 2]),
    ("x[[0, 2, 2]]", {"x": (3, 4)}, {"x": M}, M[[0, 2, 2]]),
    ("x[1:, [0, -1]]", {"x": (3, 4)}, {"x": M}, M[1:, [0, -1]]),
    ("x[1][2]", {"x": (3, 4)}, {"x": M}, M[1][2]),
    ("reshape(x, (2, -1))", {"x": (3, 4)}, {"x": M}, M.reshape(2, -1)),
    ("reshape(x, [4, 3])", {"x": (3, 4)}, {"x": M}, M.reshape(4, 3)),
    ("reshape(x, (2 * 3, -1))", {"x": (3, 4)}, {"x": M}, M.reshape(6, -1)),
    ("reshape(x, 12)", {"x": (3, 4)}, {"x": M}, M.reshape(12)),
    ("concatenate([a, b], axis=0)", {"a": (2,), "b": (3,)},
     {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0, 5.0])}, np.arange(1.0, 6.0)),
    ("concatenate((x, x * 2), axis=-1)", {"x": (3, 4)}, {"x": M},
     np.concatenate([M, 2 * M], axis=-1)),
    ("stack([x, -x], axis=1)", {"x": (3,)}, {"x": V3}, np.stack([V3, -V3], axis=1)),
    ("leaky_relu(x, alpha=0.2)", {"x": (3,)}, {"x": V3}, np.where(V3 > 0, V3, 0.2 * V3)),
    ("leaky_relu(x, 1/5)", {"x": (3,)}, {"x": V3}, np.where(V3 > 0, V3, 0.2 * V3)),
    ("hardtanh(x, lo=-0.5, hi=1/2)", {"x": (3,)}, {"x": V3}, np.clip(V3, -0.5, 0.5)),
    ("clip(x, -1, 1)", {"x": (3,)}, {"x": V3}, np.clip(V3, -1, 1)),
    ("where(x > 0, x, 0 - x)", {"x": (3,)}, {"x": V3}, np.abs(V3)),
    ("abs(x) + round(x)", {"x": (3,)}, {"x": V3}, np.abs(V3) + np.round(V3)),
    ("sum(x, axis=(0, 1))", {"x": (3, 4)}, {"x": M}, M.sum()),
    ("sum(x, axis=[-1])", {"x": (3, 4)}, {"x": M}, M.sum(axis=-1)),
    ("mean(x, 0, True)", {"x": (3, 4)}, {"x": M}, M.mean(axis=0, keepdims=True)),
    ("logsumexp(x)", {"x": (3,)}, {"x": V3}, np.log(np.sum(np.exp(V3)))),
    ("softmax(x, axis=0)", {"x": (3,)}, {"x": V3}, np.exp(V3) / np.exp(V3).sum()),
    ("transpose(x, axes=(1, 0))", {"x": (3, 4)}, {"x": M}, M.T),
    ("broadcast_to(x, (2, 3))", {"x": (3,)}, {"x": V3}, np.broadcast_to(V3, (2, 3))),
    ("argmax(x, axis=1)", {"x": (3, 4)}, {"x": M}, M.argmax(axis=1)),
    ("matmul(x, x.T) @ y", {"x": (3, 4), "y": (3,)}, {"x": M, "y": V3}, M @ M.T @ V3),
    ("dot(y, y) + outer(y, y)[0, 1]", {"y": (3,)}, {"y": V3},
     V3 @ V3 + np.outer(V3, V3)[0, 1]),
    ("norm(x)", {"x": (3, 4)}, {"x": M}, np.linalg.norm(M)),
    ("-x ** 2", {}, {"x": 3.0}, -9.0),
    ("(-x) ** 2", {}, {"x": 3.0}, 9.0),
    ("2 ** -x", {}, {"x": 2.0}, 0.25),
    ("x ** y ** 2", {}, {"x": 2.0, "y": 3.0}, 2.0 ** 9),
    ("x - y - 1", {}, {"x": 10.0, "y": 3.0}, 6.0),
    ("x / y / 2", {}, {"x": 12.0, "y": 3.0}, 2.0),
    ("+x * -+-y", {}, {"x": 2.0, "y": 3.0}, 6.0),
    ("x * 1e-3 + .5", {}, {"x": 2.0}, 0.502),
    ("1 / 2 + x * 0", {}, {"x": 7.0}, 0.5),
    ("2 ** 70 / x", {}, {"x": 2.0 ** 70}, 1.0),
    ("x * 100000000000000000000", {}, {"x": 1.0}, 1e20),
    ("exp(x)", {}, {"x": 0.0}, 1.0),
    ("sigmoid(0) * x", {}, {"x": 4.0}, 2.0),
    ("x > 0", {"x": (3,)}, {"x": V3}, V3 > 0),
    ("x <= -2", {"x": (3,)}, {"x": V3}, V3 <= -2),
    ("x == y", {"x": (3,)}, {"x": V3, "y": 0.25}, V3 == 0.25),
    ("(x != 1.5) * 3", {"x": (3,)}, {"x": V3}, (V3 != 1.5) * 3.0),
    ("(x >= 0) + (x < 0)", {"x": (3,)}, {"x": V3}, np.ones(3)),
    ("True * x + False", {}, {"x": 5.0}, 5.0),
    ("exp", {}, {"exp": 2.0}, 2.0),  # a function name not called is a variable
    ("(x +\n y)", {}, {"x": 1.0, "y": 2.0}, 3.0),
    ("(x +\r\n y) # a comment", {}, {"x": 1.0, "y": 2.0}, 3.0),
    ("  x + 1", {}, {"x": 1.0}, 2.0),
    ("\n    x * 2\n", {}, {"x": 1.5}, 3.0),
    ("αβ * 2", {}, {"αβ": 1.5}, 3.0),
]


@pytest.mark.parametrize("text,shapes,values,expected", ACCEPTED,
                         ids=[row[0] for row in ACCEPTED])
def test_accepted_texts_evaluate(text, shapes, values, expected):
    got = run(text, shapes, **values)
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_comparisons_are_boolean_masks():
    e = sd.parse("x > y", {"x": (3,), "y": (3,)})
    assert e.op.name == "greater" and e.shape == (3,)
    out = sd.compile(e)(x=np.array([1.0, 2.0, 3.0]), y=np.array([2.0, 2.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(out, dtype=float), [0.0, 0.0, 1.0])
    for text, name in [("a < b", "less"), ("a <= b", "less_equal"), ("a >= b", "greater_equal"),
                       ("a == b", "equal"), ("a != b", "not_equal")]:
        assert sd.parse(text).op.name == name


def test_max_min_reduce_or_elementwise_by_arguments():
    s = {"x": (3, 4), "y": (3, 4)}
    assert sd.parse("max(x)", s).shape == ()
    assert sd.parse("max(x, axis=0)", s).shape == (4,)
    assert sd.parse("max(x, keepdims=True)", s).shape == (1, 1)
    assert sd.parse("max(x, y)", s).op.name == "maximum"
    assert sd.parse("min(x, y)", s).op.name == "minimum"
    assert sd.parse("min(x)", s).op.name == "min"
    assert sd.parse("maximum(x, y)", s) is sd.parse("max(x, y)", s)


def test_variables_are_the_shared_var_nodes():
    e = sd.parse("sum(x)", shapes={"x": (3,)})
    assert e.inputs[0] is sd.var("x", (3,))
    assert sd.free_vars(e) == [sd.var("x", (3,))]
    g = sd.grad(sd.parse("sum(x * x)", shapes={"x": [3]}), sd.var("x", (3,)))
    np.testing.assert_allclose(sd.compile(g)(x=V3), 2 * V3)
    # a name not in shapes is a float64 scalar
    y = sd.free_vars(sd.parse("y + 1"))[0]
    assert y is sd.var("y") and y.shape == () and y.dtype == np.float64
    # one node per name, even when the name appears many times
    e = sd.parse("x * x + x", {"x": (2,)})
    assert sum(1 for n in toposort([e]) if n.is_var) == 1


def test_numbers_fold_and_constants():
    half = sd.parse("1 / 2")
    assert half.is_const and float(half.value) == 0.5
    assert sd.parse("-3").is_const and int(sd.parse("-3").value) == -3
    assert sd.parse("2 * 3 - 1").value == 5
    assert sd.parse("True").value.dtype == np.bool_
    assert sd.parse("2.5").value.dtype == np.float64
    big = sd.parse("2 ** 70")  # beyond int64: a float, as documented
    assert big.value.dtype == np.float64 and float(big.value) == 2.0 ** 70
    assert float(sd.parse("2 ** 62 * 4").value) == 2.0 ** 64
    assert float(sd.parse("2 ** 0.5").value) == 2 ** 0.5
    assert float(sd.parse("(-2) ** 3").value) == -8
    assert float(sd.parse("2 ** 1000 / 2 ** 999").value) == 2.0
    with pytest.raises(sd.ParseError, match="cannot compute"):
        sd.parse("3 ** 10000")  # past 4096 bits a power is computed in floats: overflow
    # numbers that cannot be folded are constant nodes built by the Expr operators
    mask = sd.parse("1 < 2")
    assert mask.op.name == "less" and bool(sd.compile(mask)()) is True


def test_keyword_and_positional_arguments_bind_like_python():
    s = {"x": (3, 4)}
    assert sd.parse("sum(x, 1)", s) is sd.parse("sum(x, axis=1)", s)
    assert sd.parse("leaky_relu(x=x, alpha=0.5)", s) is sd.parse("leaky_relu(x, 0.5)", s)
    assert sd.parse("concatenate(xs=[x, x], axis=1)", s).shape == (3, 8)


# ---------------------------------------------------------------------------------------------
# rejected texts: ParseError at the offending character
# ---------------------------------------------------------------------------------------------
REJECTED = [
    ("__import__('os').system('echo pwned')", 0),
    ("x.foo()", 0),
    ("x.foo", 2),
    ("x . foo", 4),
    ("x.T.foo", 4),
    ("exp(x).__class__", 7),
    ("().__class__", 3),
    ("(lambda: 1)()", 1),
    ("exp(x)(y)", 0),
    ("lambda: 0", 0),
    ("[x for x in ()]", 0),
    ("(x for x in ())", 0),
    ("{1: 2}", 0),
    ("{1}", 0),
    ("x if y else z", 0),
    ("(y := 2)", 1),
    ("f'{x}'", 0),
    ("'s'", 0),
    ("b's'", 0),
    ("1j", 0),
    ("x + 2j", 4),
    ("None", 0),
    ("x + None", 4),
    ("...", 0),
    ("x // y", 2),
    ("(x) & y", 4),
    ("x << 1", 2),
    ("x and y", 0),
    ("not x", 0),
    ("~x", 0),
    ("a < b < c", 6),
    ("(a) <  (b) > c", 11),
    ("a is b", 2),
    ("a not in b", 2),
    ("foo(x)", 0),
    ("x + open('/tmp/x', 'w')", 4),
    ("getattr(x, 'T')", 0),
    ("exp(*x)", 4),
    ("exp(**k)", 4),
    ("sum(x, __axis=1)", 7),
    ("__x", 0),
    ("x + __y", 4),
    ("__builtins__", 0),
    ("exp(x, y)", 0),
    ("exp()", 0),
    ("leaky_relu(x, beta=1)", 0),
    ("max(x, y, axis=0)", 0),
    ("x[y]", 2),
    ("x[1.5]", 2),
    ("x[None]", 2),
    ("x[True]", 2),
    ("x['a']", 2),
    ("x[0:y]", 4),
    ("x[:-1:2.0]", 6),
    ("x[-y]", 3),
    ("x[1+1]", 2),
    ("x[[1, y]]", 6),
    ("x[exp(0)]", 2),
    ("[x, y]", 0),
    ("(x, y)", 0),
    ("x, y", 0),
    ("x + [1, 2]", 4),
    ("x ** -[1]", 6),
    ("exp([x, y])", 4),
    ("sum(x, axis=[y])", 12),
    ("max(x, [1, 2])", 7),
    ("1 / 0", 2),
    ("(-8) ** 0.5", 5),
    ("x +", 3),
    ("x @", 3),
    ("x $ y", 2),
    ("x y", 2),
    ("(((", 2),
    ("x)", 1),
    ("", 0),
    ("   ", 3),
    ("# only a comment", 16),
    ("x\0", 1),
    ("é + $", 4),
    ("é + é.foo", 6),
    ("(é +\n é.foo)", 8),
    ("(x +\r\n y.foo)", 9),
    ("(x +\r y.foo)", 8),
    ("  x.foo", 4),
    ("\n\n  x +", 7),
    ("ｘ.foo", 2),  # full-width x: NFKC-normalized name, position still in characters
]


@pytest.mark.parametrize("text,position", REJECTED, ids=[repr(r[0]) for r in REJECTED])
def test_rejected_texts_raise_parse_error_at_position(text, position):
    with pytest.raises(sd.ParseError) as info:
        sd.parse(text, {"x": (3,), "y": (3,)})
    err = info.value
    assert isinstance(err, sd.SymdiffError) and isinstance(err, ValueError)
    assert err.position == position, str(err)
    assert 0 <= err.position <= len(text)
    assert err.text == text
    assert f"(at position {position})" in str(err)


@pytest.mark.parametrize("text,fragment", [
    ("foo(x)", "unknown function 'foo'"),
    ("expp(x)", "did you mean 'exp'"),
    ("exp(x, y)", "exp(x)"),
    ("a < b < c", "chained"),
    ("x.foo", "attribute 'foo'"),
    ("x // y", "'//'"),
    ("__x", "'__'"),
    ("x[y]", "subscript"),
    ("exp([x])", "concatenate"),
    ("1 / 0", "division by zero"),
])
def test_error_messages_name_the_problem(text, fragment):
    with pytest.raises(sd.ParseError, match=None) as info:
        sd.parse(text, {"x": (3,), "y": (3,)})
    assert fragment in str(info.value)


def test_parse_error_for_non_string_text():
    for bad in (b"x", None, 3, ["x"]):
        with pytest.raises(sd.ParseError) as info:
            sd.parse(bad)
        assert info.value.position == 0


# ---------------------------------------------------------------------------------------------
# errors from building nodes keep their class and gain the position
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,cls,position", [
    ("x + y", sd.ShapeError, 2),
    ("exp(x) * (y)", sd.ShapeError, 7),
    ("x.T @ y", sd.ShapeError, 4),
    ("sum(x, axis=3)", sd.ShapeError, 0),
    ("x[0, 0]", sd.ShapeError, 1),
    ("(x)  [5]", sd.ShapeError, 5),
    ("reshape(x, (2, 2))", sd.ShapeError, 0),
    ("take(x, [1.5])", sd.DTypeError, 0),
    ("1 + stack([x, y])", sd.ShapeError, 4),
    ("(x +\n é) @ y", sd.ShapeError, 9),
])
def test_build_errors_keep_class_and_gain_position(text, cls, position):
    shapes = {"x": (3,), "y": (4,), "é": (3,)}
    with pytest.raises(cls) as info:
        sd.parse(text, shapes)
    assert not isinstance(info.value, sd.ParseError)
    assert str(info.value).endswith(f"(at position {position})")
    assert info.value.position == position


@pytest.mark.parametrize("text,position", [
    ("transpose(x, axes=1)", 0),  # the builder itself raises TypeError here
    ("reshape(x, 2.5)", 0),       # ... and here
    ("hardtanh(x, lo=y)", 0),     # ... float(Expr)
    ("1 + x[::0]", 5),            # ... and ValueError here (slice step zero)
])
def test_builder_python_errors_become_symdiff_errors_with_position(text, position):
    with pytest.raises(sd.SymdiffError) as info:
        sd.parse(text, {"x": (3,)})
    assert info.value.position == position
    assert f"(at position {position})" in str(info.value)


def test_nfkc_normalized_names_find_their_shapes():
    e = sd.parse("ﬁ * 2", {"ﬁ": (2,)})  # Python reads the ligature ﬁ as the name fi
    assert e.shape == (2,) and sd.free_vars(e) == [sd.var("fi", (2,))]


def test_shapes_are_validated_and_name_the_variable():
    with pytest.raises(sd.ShapeError, match="'x'"):
        sd.parse("x", {"x": (2, -1)})
    with pytest.raises(sd.ShapeError, match="'w'"):
        sd.parse("x", {"w": (2.5,)})
    with pytest.raises(sd.ShapeError, match="'x'"):
        sd.parse("x", {"x": "ab"})
    with pytest.raises(sd.ShapeError, match="'x'"):
        sd.parse("x", {"x": None})
    with pytest.raises(sd.ShapeError):
        sd.parse("x", {1: (2,)})
    with pytest.raises(sd.ShapeError):
        sd.parse("x", [("x", (2,))])
    assert sd.parse("x", {"x": np.array([2, 3])}).shape == (2, 3)
    assert sd.parse("x", {"x": 4}).shape == (4,)


def test_same_name_other_shape_in_one_graph_is_shape_error():
    e = sd.parse("q * 2", {"q": (3,)})
    assert e.inputs[0] is sd.var("q", (3,)) and e.shape == (3,)
    with pytest.raises(sd.ShapeError):  # q of shape (2,) and (3,) in one graph
        sd.free_vars([e, sd.var("q", (2,))])


# ---------------------------------------------------------------------------------------------
# deep and long texts
# ---------------------------------------------------------------------------------------------
def _evaluate_chain(expr, x, nodes=None):
    """Evaluate a graph made of add/multiply/var/const nodes iteratively (no compile)."""
    values = {}
    for node in toposort([expr]) if nodes is None else nodes:
        if node.is_var:
            values[id(node)] = x
        elif node.is_const:
            values[id(node)] = node.value
        else:
            a, b = (values[id(i)] for i in node.inputs)
            values[id(node)] = {"add": np.add, "multiply": np.multiply}[node.op.name](a, b)
    return values[id(expr)]


@pytest.mark.slow
def test_long_sum_parses_and_evaluates():
    n = scaled(20_000, 100_000)  # bounded by default; --long: the full 100,000 terms
    expr = sd.parse("+".join(["x"] * n))
    nodes = toposort([expr])
    assert len(nodes) == n  # n - 1 adds and the one variable
    assert nodes[0] is sd.var("x") and {node.op.name for node in nodes[1:]} == {"add"}
    assert _evaluate_chain(expr, 1.5, nodes) == 1.5 * n


def test_chain_past_ast_default_depth_compiles():
    n = 5000  # ast.parse alone gives up near 3 x sys.getrecursionlimit() levels
    expr = sd.parse("+".join(["x"] * n))
    assert float(sd.compile(expr)(x=2.0)) == 2.0 * n
    expr = sd.parse("x" + " * x" * (n - 1), {"x": (2,)})  # n factors
    assert expr.shape == (2,)
    assert _evaluate_chain(expr, np.array([1.0, -1.0])).tolist() == [1.0, 1.0]


DEEP = {
    "parens-10000": "(" * 10000 + "x" + ")" * 10000,
    "parens-100": "(" * 100 + "x" + ")" * 100,
    "unary-10000": "-" * 10000 + "x",
    "unary-1000": "-" * 1000 + "x",
    "pow-chain-100000": "**".join(["x"] * 100000),
    "lists-5000": "[" * 5000 + "]" * 5000,
    "calls-3000": "exp(" * 3000 + "x" + ")" * 3000,
    "subscripts-3000": "x" + "[0]" * 3000,
    "transposes-5000": "x" + ".T" * 5000,
    "attributes-5000": "x" + ".foo" * 5000,
    "calls-chain-5000": "exp(x)" + "(x)" * 5000,
}


@pytest.mark.parametrize("text", list(DEEP.values()), ids=list(DEEP))
def test_deep_texts_never_escape_as_python_errors(text):
    try:
        expr = sd.parse(text, {"x": (2, 2)})
    except sd.SymdiffError as exc:
        pos = getattr(exc, "position", 0)
        assert 0 <= pos <= len(text)
    else:
        assert isinstance(expr, sd.Expr)
        if text.startswith("(" * 100 + "x") or text.startswith("x.T.T"):
            assert expr is sd.var("x", (2, 2))  # 5000 transposes, even count: x itself
        if text.startswith("-" * 1000):
            assert expr is sd.var("x", (2, 2)) or expr.op.name == "negative"


def test_deep_bracket_error_is_parse_error_with_position():
    text = "(" * 10000 + "x" + ")" * 10000
    with pytest.raises(sd.ParseError) as info:
        sd.parse(text)
    assert "nested" in str(info.value) and 0 <= info.value.position <= len(text)


def test_huge_integer_literal_is_parse_error():
    with pytest.raises(sd.ParseError):
        sd.parse("9" * 5000)  # beyond Python's int-from-str digit limit
    with pytest.raises(sd.ParseError, match="too large"):
        sd.parse("x * " + "9" * 400)  # an int no float can hold


# ---------------------------------------------------------------------------------------------
# security: nothing in the text is ever run
# ---------------------------------------------------------------------------------------------
SENTINEL = {"touched": False}


def test_import_system_is_rejected_and_prints_nothing(capfd):
    with pytest.raises(sd.ParseError) as info:
        sd.parse("__import__('os').system('echo pwned')")
    assert info.value.position == 0
    out, err = capfd.readouterr()
    assert "pwned" not in out and "pwned" not in err


def test_hostile_texts_touch_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x"
    calls = []
    real_compile = builtins.compile

    def checked_compile(source, filename, mode, flags=0, *args, **kwargs):
        calls.append(flags)
        assert flags & ast.PyCF_ONLY_AST, "compile used for anything but building an AST"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "compile", checked_compile)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    texts = [
        f"open({str(target)!r}, 'w')",
        f"exp(open({str(target)!r}, 'w'))",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "[x for x in ()]",
        "lambda: 0",
        "(lambda: SENTINEL.update(touched=True))()",
        "SENTINEL.update(touched=True)",
        "SENTINEL['touched']",
        "exec('SENTINEL.update(touched=True)')",
        "eval('1')",
        "globals()",
        "sum.__globals__",
        "x.T.__class__",
        "[__import__('os')]",
        "sum(x, axis=__import__('os').getpid())",
        "x[__import__('os').getpid()]",
        "breakpoint()",
    ]
    for text in texts:
        with pytest.raises(sd.ParseError):
            sd.parse(text, {"x": (3,)})
    assert not target.exists()
    assert SENTINEL == {"touched": False}
    assert calls  # ast.parse did run, through compile(..., PyCF_ONLY_AST) only


def test_parse_module_never_calls_eval_exec_compile():
    source = pathlib.Path(sd.parse.__code__.co_filename).read_text()
    banned = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars", "setattr"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in banned, node.func.id
            if node.func.id == "getattr":  # only fixed attribute names, never from the text
                assert isinstance(node.args[1], ast.Constant), ast.dump(node)
    assert os.path.basename(sd.parse.__code__.co_filename) == "parse.py"


# ---------------------------------------------------------------------------------------------
# fuzzing: any text gives an Expr or a SymdiffError with a position in range
# ---------------------------------------------------------------------------------------------
TOKENS = ["x", "y", "W", "1", "-1", "2.5", "0", " ", "+", "-", "*", "/", "**", "@", "(", ")",
          "[", "]", ",", ":", ".T", ".x", "<", "==", "max", "sum", "exp", "take", "reshape",
          "concatenate", "axis=", "keepdims=", "True", "None", "'s'", "é", "\n", "...", "lambda",
          "__", "#", "{", "}", "=", "not ", "if", "1j", "\\", "\0", "λ"]


def _check_outcome(text):
    try:
        expr = sd.parse(text, {"x": (3,), "W": (2, 3)})
    except sd.SymdiffError as exc:
        position = getattr(exc, "position", None)
        if isinstance(exc, sd.ParseError):
            assert position is not None
        if position is not None:
            assert 0 <= position <= len(text), (text, position)
    else:
        assert isinstance(expr, sd.Expr)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
def test_fuzz_token_soup(text):
    _check_outcome(text)


CHARS = list("xyW019.eE+-*/@()[]{},:;=<>!~&|^%#'\"\\ \t\n\r\0") + [
    "é", "λ", "ｘ", "\u2028", "\ufeff", "\ud800", "…", "𝐱", "١"]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(CHARS), max_size=16).map("".join))
def test_fuzz_arbitrary_text(text):
    _check_outcome(text)


def test_unused_shapes_key_warns_naming_it_and_the_scalar_fallback():
    """issue 10, item 13: a typo in a shapes key was silent and the variable became a scalar."""
    with pytest.warns(sd.SymdiffWarning, match=r"\['Wq'\].*\['W'\].*scalars"):
        e = sd.parse("sum(W * 2)", shapes={"Wq": (3,)})
    assert e.inputs[0].inputs[0].shape == ()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd.parse("sum(W * 2)", shapes={"W": (3,)})
        sd.parse("sum(\ufb01)", shapes={"\ufb01": (3,)})


# ---------------------------------------------------------------------------------------------
# long chains are parsed piecewise, never by raising the recursion limit (issue 10, item 15)
# ---------------------------------------------------------------------------------------------
def _left_fold(ops, terms):
    import operator as op_module
    table = {"+": op_module.add, "-": op_module.sub, "*": op_module.mul,
             "/": op_module.truediv, "@": op_module.matmul}
    value = terms[0]
    for symbol, term in zip(ops, terms[1:]):
        value = table[symbol](value, term)
    return value


@pytest.mark.parametrize("ops", [["+"], ["-"], ["*"], ["/"], ["+", "-"], ["*", "/"]])
def test_long_chains_give_the_left_deep_tree(ops, monkeypatch):
    monkeypatch.setattr(sys, "setrecursionlimit", _refuse_global_change)
    n = 7000
    names = ["x", "y", "z"]
    symbols = [ops[k % len(ops)] for k in range(n - 1)]
    text = names[0] + "".join(f" {s} {names[(k + 1) % 3]}" for k, s in enumerate(symbols))
    shapes = {"x": (2,), "y": (2,), "z": (2,)}
    expected = _left_fold(symbols, [sd.var(names[k % 3], (2,)) for k in range(n)])
    assert sd.parse(text, shapes) is expected


def test_long_chain_of_mixed_precedence(monkeypatch):
    monkeypatch.setattr(sys, "setrecursionlimit", _refuse_global_change)
    x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    term = x * y / z
    expected = _left_fold(["+", "-"] * 1500, [term] * 3001)
    text = "x * y / z" + "".join(f" {symbol} x * y / z" for symbol in ["+", "-"] * 1500)
    assert sd.parse(text) is expected


def _refuse_global_change(*args):
    raise AssertionError("sd.parse changed the process-wide recursion limit")


def test_long_chains_with_deep_terms_and_numbers(monkeypatch):
    monkeypatch.setattr(sys, "setrecursionlimit", _refuse_global_change)
    x, a = sd.var("x"), sd.var("a")
    product = " * ".join(["x"] * 5000)
    assert sd.parse(f"a + {product} - 2").op.name == "subtract"
    assert sd.parse("+".join(["1"] * 5000)) is sd.const(np.int64(5000))
    mixed = sd.parse(" - ".join(["a", product, "a"]))
    assert mixed.inputs[1] is a and mixed.inputs[0].inputs[0] is a
    assert sd.parse("a < " + "+".join(["x"] * 5000)).op.name == "less"
    assert sd.parse(" + ".join(["True"] * 5000) + " + x").op.name == "add"  # True ends operands


@pytest.mark.parametrize("text, where", [
    ("+".join(["x"] * 5000) + " // 2", "//"),
    ("+".join(["x"] * 5000) + " + __chain", "__chain"),
    ("x < " + "+".join(["x"] * 5000) + " < x", "< x"),
    ("+".join(["x"] * 5000) + " + q", "+ q"),
    ("+".join(["x"] * 5000) + " + y[", "["),
], ids=["unsupported-op", "reserved-name", "chained-compare", "shape-error", "unclosed"])
def test_long_chain_errors_keep_exact_positions(text, where):
    with pytest.raises(sd.SymdiffError) as info:
        sd.parse(text, {"x": (2,), "q": (3,)})
    assert info.value.position == text.rindex(where), str(info.value)[:200]


def test_long_chains_inside_brackets(monkeypatch):
    """Chains inside call arguments, parentheses and list items are parsed on their own and
    stand in the text as same-length placeholders, so positions stay exact."""
    monkeypatch.setattr(sys, "setrecursionlimit", _refuse_global_change)
    chain = " + ".join(["x"] * 4000)
    ref = sd.parse(chain)
    assert sd.parse(f"({chain})") is ref
    assert sd.parse(f"exp({chain}) * 2") is sd.exp(ref) * 2
    assert sd.parse(f"sum({chain}, keepdims=True)") is sd.sum(ref, keepdims=True)
    assert sd.parse(f"exp({chain}) + ({chain} - sum({chain}))") is sd.exp(ref) + (ref - sd.sum(ref))
    vs = " + ".join(["v"] * 4000)
    assert sd.parse(f"concatenate([{vs}, v])", {"v": (2,)}).shape == (4,)
    multiline = "(\n" + chain.replace(" + x + x", " + x  # note\n + x \\\n", 7) + "\n)"
    assert sd.parse(multiline) is ref
    bad = f"exp({chain}) + ({chain} + ({chain} @ ))"
    with pytest.raises(sd.ParseError) as info:
        sd.parse(bad)
    assert info.value.position == len(bad) - 2
    with pytest.raises(sd.ParseError) as info:
        sd.parse(f"({chain} + __group0)")
    assert "'__'" in str(info.value) and info.value.position == len(chain) + 4
