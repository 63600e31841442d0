"""Lowering to NumPy: the generated source and the compiled callables."""
import re

import numpy as np

import symdiff as sd
from symdiff.graph import toposort

STATEMENT = re.compile(r"^\s+(t\d+)\s*=\s*(.*?)\s*(#.*)?$")


def _code_lines(source):
    """The source with comments removed, one entry per line."""
    return [line.split("#", 1)[0] for line in source.splitlines()]


def _statements(source):
    """The ``tN = ...`` assignments (fresh temporaries)."""
    return [m for m in (STATEMENT.match(line) for line in source.splitlines()) if m]


def _computing_lines(source):
    """Every line of the body that computes something: assignments, augmented assignments
    and ``xp.f(..., out=t)`` calls; not the header, comments, ``del`` or ``return``."""
    out = []
    for line in _code_lines(source)[1:]:
        code = line.strip()
        if not code or code.startswith(("del ", "return")):
            continue
        out.append(code)
    return out


def _op_nodes(outputs):
    return [n for n in toposort(outputs) if n.op is not None]


# ---------------------------------------------------------------------------------------------
# the source text
# ---------------------------------------------------------------------------------------------
def test_one_statement_per_op_node():
    x, w = sd.var("x", (3,)), sd.var("w", (2, 3))
    y = sd.sum(sd.tanh(w @ x) * sd.exp(w @ x))  # w @ x shared (one node)
    ops = _op_nodes([y])
    assert len(ops) == 5  # matmul, tanh, exp, multiply, sum
    for f in (sd.compile(y), sd.compile(y, optimize=False)):
        lines = _computing_lines(f.source)
        assert len(lines) == len(ops), f.source
        assert sum("@" in line for line in lines) == 1  # the shared product computed once
        stmts = _statements(f.source)
        assert len({m.group(1) for m in stmts}) == len(stmts)  # each fresh target once


def test_one_statement_per_op_node_gradient_graph():
    x = sd.var("x", (4,))
    y = sd.sum(sd.sin(x) * x)
    g = sd.grad(y, x)
    # as built (no rewrites): exactly one statement per op node
    f = sd.compile([y, g], optimize=False)
    assert len(_computing_lines(f.source)) == len(_op_nodes([y, g])), f.source
    # the default (rewritten) graph never has more statements than the graph has nodes
    f = sd.compile([y, g])
    assert len(_computing_lines(f.source)) <= len(_op_nodes([y, g]))
    x0 = np.array([0.1, -1.0, 2.0, 0.5])
    value, grad = f(x0)
    np.testing.assert_allclose(value, np.sum(np.sin(x0) * x0), rtol=1e-14)
    np.testing.assert_allclose(grad, np.sin(x0) + x0 * np.cos(x0), rtol=1e-14)


def test_source_uses_xp_calls():
    x = sd.var("x", (3,))
    y = sd.sum(sd.exp(x) + sd.sin(x))
    src = sd.compile(y).source
    code = "\n".join(_code_lines(src))
    assert "xp.exp(" in code and "xp.sin(" in code and "xp.sum(" in code
    assert "np." not in code.replace("xp.", "")
    assert "numpy" not in code


def test_no_user_names_outside_comments():
    secret_name = sd.var("secret_name", (3,))
    other_secret = sd.var("other_secret", ())
    y = sd.sum(sd.sin(secret_name) * other_secret)
    g = sd.grad(y, [secret_name, other_secret])
    for f in (sd.compile(y), sd.compile([y, *g]), sd.compile_grad(y, [secret_name])):
        src = f.source
        assert "secret_name" in src  # documented in comments
        for code in _code_lines(src):
            assert "secret_name" not in code, code
            assert "other_secret" not in code, code


def test_parameters_named_in_k():
    a, b, c = sd.var("alpha"), sd.var("beta", (2,)), sd.var("gamma", (2,))
    y = a * b + c
    f = sd.compile(y)
    header = f.source.splitlines()[0]
    assert re.match(r"^def \w+\(in_0, in_1, in_2\):$", header), header
    g = sd.compile(y, inputs=[c, a, b])
    assert re.match(r"^def \w+\(in_0, in_1, in_2\):$", g.source.splitlines()[0])
    # comments map in_k to the variable, in the given order
    assert re.search(r"#\s*in_0: gamma", g.source)
    assert re.search(r"#\s*in_1: alpha", g.source)
    assert re.search(r"#\s*in_2: beta", g.source)


def test_constants_bound_not_inlined():
    x = sd.var("x", (1000,))
    C = np.arange(1000.0) * 0.001 + 0.5
    y = sd.sum(x * C) + 2.5
    f = sd.compile(y)
    # the array is bound by name, not written into the text
    assert len(f.source) < 2000
    assert "0.501" not in f.source and "array(" not in f.source
    # the scalar appears as a literal
    assert "2.5" in "\n".join(_code_lines(f.source))
    x0 = np.linspace(-1, 1, 1000)
    np.testing.assert_allclose(f(x0), np.sum(x0 * C) + 2.5, rtol=1e-13)


def test_constant_is_snapshot():
    C = np.array([1.0, 2.0, 3.0])
    x = sd.var("x", (3,))
    f = sd.compile(x * C)
    C[0] = 100.0  # later mutation of the user's array does not change the graph
    np.testing.assert_array_equal(f(np.ones(3)), [1.0, 2.0, 3.0])


def test_temporaries_released():
    x = sd.var("x", (3,))
    y = sd.sum(sd.exp(sd.sin(sd.cos(x)) * 2.0))
    src = sd.compile(y).source
    dels = [line for line in src.splitlines() if line.strip().startswith("del ")]
    assert dels
    deleted = {name.strip() for line in dels for name in line.strip()[4:].split(",")}
    assert all(re.fullmatch(r"t\d+", n) for n in deleted)
    # the returned value is never deleted; every other temporary is
    stmts = _statements(src)
    result = stmts[-1].group(1)
    assert result not in deleted
    assert deleted == {m.group(1) for m in stmts[:-1]}
    # every del comes after the last use of the names it deletes
    lines = src.splitlines()
    for k, line in enumerate(lines):
        if line.strip().startswith("del "):
            for name in line.strip()[4:].split(","):
                name = name.strip()
                later = [ln for ln in lines[k + 1:] if re.search(rf"\b{name}\b", ln.split("#")[0])]
                assert not later, (name, later)


def test_generated_code_is_valid_python_and_reproducible():
    x = sd.var("x", (3,))
    y = sd.sum(sd.softmax(x) * sd.log_softmax(x))
    f = sd.compile(y)
    compile(f.source, "<test>", "exec")  # the builtin: it is plain Python
    assert sd.compile(y).source == f.source


# ---------------------------------------------------------------------------------------------
# calling conventions
# ---------------------------------------------------------------------------------------------
def test_explicit_inputs_order_and_keywords_agree():
    a, b = sd.var("a", (2,)), sd.var("b", (2,))
    y = a - 2.0 * b
    a0, b0 = np.array([1.0, 2.0]), np.array([10.0, 20.0])
    f_default = sd.compile(y)  # sorted by name: a, b
    f_ba = sd.compile(y, inputs=[b, a])
    f_names = sd.compile(y, inputs=["b", "a"])
    expected = a0 - 2.0 * b0
    np.testing.assert_array_equal(f_default(a0, b0), expected)
    np.testing.assert_array_equal(f_ba(b0, a0), expected)
    np.testing.assert_array_equal(f_names(b0, a0), expected)
    for f in (f_default, f_ba, f_names):
        np.testing.assert_array_equal(f(a=a0, b=b0), expected)
        np.testing.assert_array_equal(f(b=b0, a=a0), expected)
    # mixed: positional first in inputs order, the rest by keyword
    np.testing.assert_array_equal(f_ba(b0, a=a0), expected)
    assert [v.name for v in f_ba.inputs] == ["b", "a"]
    assert [v.name for v in f_default.inputs] == ["a", "b"]


def test_default_inputs_sorted_by_name():
    z, a, m = sd.var("z"), sd.var("a"), sd.var("m")
    f = sd.compile(z * 100.0 + m * 10.0 + a)
    assert float(f(1.0, 2.0, 3.0)) == 321.0  # a=1, m=2, z=3


def test_single_output_is_array_list_is_tuple():
    x = sd.var("x", (3,))
    x0 = np.array([1.0, 2.0, 3.0])
    one = sd.compile(x * 2.0)(x0)
    assert isinstance(one, np.ndarray) and one.shape == (3,)
    out = sd.compile([x * 2.0])(x0)
    assert isinstance(out, tuple) and len(out) == 1
    np.testing.assert_array_equal(out[0], 2 * x0)
    two = sd.compile([x * 2.0, sd.sum(x)])(x0)
    assert isinstance(two, tuple) and len(two) == 2
    np.testing.assert_array_equal(two[0], 2 * x0)
    assert float(two[1]) == 6.0


def test_scalar_output_is_ndarray_or_numpy_scalar():
    x = sd.var("x", (3,))
    out = sd.compile(sd.sum(x))(np.ones(3))
    assert np.shape(out) == () and float(out) == 3.0
    assert isinstance(out, (np.ndarray, np.generic))


def test_constant_only_output_returns_array():
    c = sd.const(np.array([1.0, 2.0])) * 3.0
    f = sd.compile(c)
    out = f()
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [3.0, 6.0])
    bare = sd.compile(sd.const(np.array([[1, 2], [3, 4]])))()
    assert isinstance(bare, np.ndarray) and bare.shape == (2, 2)
    np.testing.assert_array_equal(bare, [[1, 2], [3, 4]])
    scalar = sd.compile(sd.const(2.5))()
    assert isinstance(scalar, np.ndarray) and scalar.shape == () and float(scalar) == 2.5


def test_output_that_is_an_input():
    x = sd.var("x", (2,))
    f = sd.compile([x, x * 2.0])
    a, b = f(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(a, [1.0, 2.0])
    np.testing.assert_array_equal(b, [2.0, 4.0])


def test_float32_graph_returns_float32():
    x = sd.var("x", (3,), "float32")
    W = sd.var("W", (2, 3), "float32")
    y = sd.sigmoid(W @ x) * 2.0 + 1
    assert y.dtype == np.float32
    f = sd.compile(y)
    out = f(np.ones((2, 3), np.float32), np.ones(3, np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 2 / (1 + np.exp(-3.0)) + 1, rtol=1e-6)
    loss = sd.sum(y ** 2)
    value, (gW, gx) = sd.compile_grad(loss, [W, x])(np.ones((2, 3), np.float32),
                                                    np.ones(3, np.float32))
    assert np.asarray(value).dtype == np.float32
    assert gW.dtype == np.float32 and gx.dtype == np.float32


def test_list_and_python_number_inputs_are_cast():
    x, s = sd.var("x", (3,)), sd.var("s")
    f = sd.compile(x * s)
    out = f(x=[1, 2, 3], s=2)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(f(x=(1.5, 2.5, 3.5), s=2.0), [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(f(2.0, [1.0, 1.0, 1.0]), [2.0, 2.0, 2.0])  # (s, x)
    x32 = sd.var("x32", (2,), "float32")
    g = sd.compile(x32 * 2.0)
    out = g([1.0, 2.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([2.0, 4.0], np.float32))
    out = g(np.array([1.0, 2.0], np.float64))
    assert out.dtype == np.float32
    k = sd.var("k", (2,), "int64")
    h = sd.compile(k + 1)
    out = h([3, 4])
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [4, 5])


def test_input_arrays_not_mutated():
    x = sd.var("x", (3,))
    g = sd.grad(sd.sum(x * x), x)
    x0 = np.array([1.0, 2.0, 3.0])
    keep = x0.copy()
    sd.compile([x * 2.0, g])(x0)
    np.testing.assert_array_equal(x0, keep)


# ---------------------------------------------------------------------------------------------
# compile_grad
# ---------------------------------------------------------------------------------------------
def test_compile_grad_value_and_tuple_matches_separate_compiles():
    rng = np.random.default_rng(0)
    W, x, b = sd.var("W", (3, 4)), sd.var("x", (4,)), sd.var("b", (3,))
    loss = sd.sum(sd.tanh(W @ x + b) ** 2) + 0.1 * sd.sum(W * W)
    vals = dict(W=rng.standard_normal((3, 4)), x=rng.standard_normal(4),
                b=rng.standard_normal(3))
    fg = sd.compile_grad(loss, [W, b])
    out = fg(**vals)
    assert isinstance(out, tuple) and len(out) == 2
    value, grads = out
    assert isinstance(grads, tuple) and len(grads) == 2
    assert grads[0].shape == (3, 4) and grads[1].shape == (3,)
    np.testing.assert_allclose(value, sd.compile(loss)(**vals), rtol=1e-15)
    sep = sd.compile(sd.grad(loss, [W, b]), inputs=[W, b, x])(**vals)
    np.testing.assert_allclose(grads[0], sep[0], rtol=1e-15)
    np.testing.assert_allclose(grads[1], sep[1], rtol=1e-15)
    # against NumPy by hand
    z = vals["W"] @ vals["x"] + vals["b"]
    gz = 2 * np.tanh(z) * (1 - np.tanh(z) ** 2)
    np.testing.assert_allclose(grads[0], np.outer(gz, vals["x"]) + 0.2 * vals["W"], rtol=1e-12)
    np.testing.assert_allclose(grads[1], gz, rtol=1e-12)


def test_compile_grad_single_wrt_gives_one_tuple():
    x = sd.var("x", (2,))
    value, grads = sd.compile_grad(sd.sum(x ** 3), x)(np.array([1.0, -2.0]))
    assert isinstance(grads, tuple) and len(grads) == 1
    np.testing.assert_allclose(grads[0], [3.0, 12.0])
    assert float(value) == -7.0


def test_compile_grad_shares_forward_work():
    x = sd.var("x", (3,))
    loss = sd.sum(sd.exp(sd.sin(x)))
    fg = sd.compile_grad(loss, x)
    # sin(x) and exp(sin(x)) computed once each (exp's derivative reuses its output)
    code = "\n".join(_code_lines(fg.source))
    assert code.count("xp.sin(") == 1
    assert code.count("xp.exp(") == 1
    value, (g,) = fg(np.array([0.1, 0.2, 0.3]))
    x0 = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(g, np.exp(np.sin(x0)) * np.cos(x0), rtol=1e-14)


def test_compile_grad_positional_inputs_order():
    a, b = sd.var("a"), sd.var("b")
    loss = a * b * b
    fg = sd.compile_grad(loss, [b, a], inputs=[b, a])
    value, (gb, ga) = fg(3.0, 2.0)  # b = 3, a = 2
    assert float(value) == 18.0
    assert float(gb) == 12.0 and float(ga) == 9.0
    value, (gb, ga) = fg(a=2.0, b=3.0)
    assert float(value) == 18.0 and float(gb) == 12.0 and float(ga) == 9.0


def test_compile_grad_source_available():
    x = sd.var("x", (3,))
    fg = sd.compile_grad(sd.sum(x * x), x)
    assert isinstance(fg.source, str) and "def " in fg.source and "return" in fg.source


def test_temporaries_released_with_and_without_check_finite():
    x = sd.var("x", (3,))
    y = sd.sum(sd.exp(sd.sin(sd.cos(x)) * 2.0)) + sd.sum(x * x)
    x0 = np.array([0.1, 0.2, 0.3])
    expected = np.sum(np.exp(np.sin(np.cos(x0)) * 2.0)) + np.sum(x0 * x0)
    for kwargs in ({}, {"optimize": False}, {"check_finite": True}):
        f = sd.compile(y, **kwargs)
        np.testing.assert_allclose(f(x0), expected, rtol=1e-14)
        dels = [line for line in f.source.splitlines() if line.strip().startswith("del ")]
        assert len(dels) >= 2, (kwargs, f.source)
        # each del sits right after a computing line, never at the very end only
        lines = [ln.strip() for ln in f.source.splitlines()]
        assert lines[-1].startswith("return")


def test_check_finite_with_no_statements():
    # an output that is an input (or an alias of one) gives a body without statements
    x = sd.var("x", (3,))
    for out in (x, sd.stop_gradient(x)):
        f = sd.compile(out, check_finite=True)
        np.testing.assert_array_equal(f(np.array([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])
