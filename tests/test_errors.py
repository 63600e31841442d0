"""Every user error of API.md is raised where it should be, is a SymdiffError, names the culprit,
and never leaks as a bare KeyError / AttributeError / RecursionError / TypeError."""
import numpy as np
import pytest

import symdiff as sd

LEAKS = (KeyError, AttributeError, RecursionError, IndexError)


def _raises_symdiff(fn, *fragments, exc=sd.SymdiffError):
    """Call fn, expect ``exc`` (a SymdiffError) whose message contains every fragment."""
    try:
        fn()
    except exc as e:
        assert isinstance(e, sd.SymdiffError)
        msg = str(e)
        for frag in fragments:
            assert frag in msg, f"{frag!r} not in {msg!r}"
        return e
    except LEAKS as e:  # pragma: no cover - a failure
        pytest.fail(f"bare {type(e).__name__} leaked: {e!r}")
    pytest.fail(f"no {exc.__name__} raised")


# ---------------------------------------------------------------------------------------------
# the hierarchy
# ---------------------------------------------------------------------------------------------
def test_error_hierarchy():
    for cls in (sd.ParseError, sd.ShapeError, sd.UndefinedGradientError,
                sd.DisconnectedInputError, sd.InputError, sd.DTypeError):
        assert issubclass(cls, sd.SymdiffError)
    assert issubclass(sd.SymdiffError, Exception)


# ---------------------------------------------------------------------------------------------
# shapes at build time
# ---------------------------------------------------------------------------------------------
def test_add_mismatched_shapes_names_both():
    a, b = sd.var("a", (3,)), sd.var("b", (4,))
    for fn in (lambda: a + b, lambda: a - b, lambda: a * b, lambda: a / b,
               lambda: sd.maximum(a, b), lambda: sd.where(a > 0, a, b)):
        _raises_symdiff(fn, "(3,)", "(4,)", exc=sd.ShapeError)


def test_add_array_constant_mismatch():
    a = sd.var("a", (3,))
    _raises_symdiff(lambda: a + np.ones(4), "(3,)", "(4,)", exc=sd.ShapeError)
    _raises_symdiff(lambda: np.ones((2, 2)) * a, "(2, 2)", "(3,)", exc=sd.ShapeError)


def test_matmul_mismatch_names_both():
    A, v = sd.var("A", (3, 4)), sd.var("v", (5,))
    _raises_symdiff(lambda: A @ v, "(3, 4)", "(5,)", exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.matmul(A, v), "(3, 4)", "(5,)", exc=sd.ShapeError)
    B = sd.var("B", (5, 2))
    _raises_symdiff(lambda: A @ B, "(3, 4)", "(5, 2)", exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.var("s") @ A, exc=sd.ShapeError)


def test_other_shape_errors():
    x = sd.var("x", (2, 3))
    _raises_symdiff(lambda: sd.reshape(x, (4,)), "(2, 3)", exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.sum(x, axis=2), exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.concatenate([x, sd.var("y", (2, 4))], axis=0),
                    exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.broadcast_to(x, (3, 3)), exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.var("z", (-1,)), exc=sd.ShapeError)


def test_grad_nonscalar_is_shape_error():
    x = sd.var("x", (3,))
    _raises_symdiff(lambda: sd.grad(x * 2.0, x), "(3,)", exc=sd.ShapeError)


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["1x", "for", "", "a b", "x-y", "lambda", "None", "é-1"])
def test_bad_var_names(name):
    _raises_symdiff(lambda: sd.var(name), repr(name))


@pytest.mark.parametrize("name", [3, None, b"x"])
def test_non_string_var_names(name):
    _raises_symdiff(lambda: sd.var(name))


def test_good_var_names():
    for name in ("x", "_x1", "W1", "données"):
        assert sd.var(name).name == name


def test_bad_dtype():
    _raises_symdiff(lambda: sd.var("x", (), "complex128"), "complex128")
    _raises_symdiff(lambda: sd.var("x", (), "not_a_dtype"))


# ---------------------------------------------------------------------------------------------
# call-time input errors
# ---------------------------------------------------------------------------------------------
def _fn():
    x, w = sd.var("x", (3,)), sd.var("w", (2, 3))
    return sd.compile(w @ x)  # inputs (w, x) by name


def test_missing_input():
    f = _fn()
    e = _raises_symdiff(lambda: f(w=np.ones((2, 3))), "'x'", exc=sd.InputError)
    assert "(3,)" in str(e)
    _raises_symdiff(lambda: f(np.ones((2, 3))), "'x'", exc=sd.InputError)
    _raises_symdiff(lambda: f(), "'w'", exc=sd.InputError)


def test_unknown_keyword():
    f = _fn()
    _raises_symdiff(lambda: f(w=np.ones((2, 3)), x=np.ones(3), bogus=1.0), "bogus",
                    exc=sd.InputError)
    _raises_symdiff(lambda: f(w=np.ones((2, 3)), xx=np.ones(3)), "xx", exc=sd.InputError)


def test_input_given_twice():
    f = _fn()
    _raises_symdiff(lambda: f(np.ones((2, 3)), np.ones(3), x=np.ones(3)), "'x'",
                    exc=sd.InputError)


def test_too_many_positional():
    f = _fn()
    e = _raises_symdiff(lambda: f(np.ones((2, 3)), np.ones(3), np.ones(3)), "2",
                        exc=sd.InputError)
    assert "3" in str(e)


@pytest.mark.parametrize("bad,shape", [
    (np.ones(4), "(4,)"), (np.ones((3, 1)), "(3, 1)"), (1.0, "()"), ([1.0, 2.0], "(2,)"),
])
def test_wrong_shape_names_var_expected_and_received(bad, shape):
    f = _fn()
    _raises_symdiff(lambda: f(w=np.ones((2, 3)), x=bad), "'x'", "(3,)", shape,
                    exc=sd.InputError)


@pytest.mark.parametrize("bad", [
    np.array(["a", "b", "c"]),
    "abc",
    np.array([object(), object(), object()], dtype=object),
    None,
    np.array([1 + 1j, 2, 3]),
    [1.0, "x", 2.0],
    {"a": 1},
])
def test_wrong_dtype_for_float_var(bad):
    f = _fn()
    _raises_symdiff(lambda: f(w=np.ones((2, 3)), x=bad), "'x'", exc=sd.InputError)


def test_float_for_int_var():
    k = sd.var("k", (3,), "int64")
    f = sd.compile(k * 2)
    np.testing.assert_array_equal(f(np.array([1, 2, 3])), [2, 4, 6])
    _raises_symdiff(lambda: f(np.array([1.5, 2.0, 3.0])), "'k'", "int64", exc=sd.InputError)
    _raises_symdiff(lambda: f([1.0, 2.0, 3.0]), "'k'", exc=sd.InputError)
    _raises_symdiff(lambda: f(k=np.array(["1", "2", "3"])), "'k'", exc=sd.InputError)


def test_input_error_is_value_error_kind():
    f = _fn()
    with pytest.raises(sd.SymdiffError):
        f(w=np.ones((2, 3)))
    with pytest.raises(sd.InputError):
        f(w=np.ones((2, 3)), x=np.ones(4))


def test_compile_grad_input_errors():
    x = sd.var("x", (3,))
    fg = sd.compile_grad(sd.sum(x ** 2), x)
    _raises_symdiff(lambda: fg(), "'x'", exc=sd.InputError)
    _raises_symdiff(lambda: fg(np.ones(2)), "'x'", "(3,)", "(2,)", exc=sd.InputError)
    _raises_symdiff(lambda: fg(y=np.ones(3)), "y", exc=sd.InputError)


def test_compile_input_list_errors():
    x, y = sd.var("x", (3,)), sd.var("y", (3,))
    _raises_symdiff(lambda: sd.compile(x + y, inputs=[x]), "y")
    _raises_symdiff(lambda: sd.compile(x + y, inputs=[x, "nope"]), "nope")
    _raises_symdiff(lambda: sd.compile(x + y, inputs=[x, y, x]), "x")
    _raises_symdiff(lambda: sd.compile(x + y, inputs=[x, x + y]))


# ---------------------------------------------------------------------------------------------
# truth value and iteration
# ---------------------------------------------------------------------------------------------
def test_bool_of_expr_raises():
    x = sd.var("x")
    _raises_symdiff(lambda: bool(x))
    _raises_symdiff(lambda: bool(x > 0))
    with pytest.raises(sd.SymdiffError):
        if x:  # noqa: SIM102
            pass
    with pytest.raises(sd.SymdiffError):
        x and 1  # noqa: B018
    with pytest.raises(sd.SymdiffError):
        0 < x < 1  # chained comparison needs bool()  # noqa: B015


def test_iterating_expr_raises():
    x = sd.var("x", (3,))
    _raises_symdiff(lambda: list(x))


# ---------------------------------------------------------------------------------------------
# gradient errors
# ---------------------------------------------------------------------------------------------
def test_undefined_gradient_names_op():
    x = sd.var("x", (3,))
    _raises_symdiff(lambda: sd.grad(sd.sum(sd.floor(x) * x), x), "floor",
                    exc=sd.UndefinedGradientError)
    _raises_symdiff(lambda: sd.grad(sd.sum(x * sd.argmax(x)), x), "argmax",
                    exc=sd.UndefinedGradientError)


def test_disconnected_raise_names_var():
    x, other = sd.var("x"), sd.var("other_input")
    _raises_symdiff(lambda: sd.grad(x * 2.0, other, disconnected="raise"), "other_input",
                    exc=sd.DisconnectedInputError)


def test_bad_disconnected_option():
    x = sd.var("x")
    _raises_symdiff(lambda: sd.grad(x * 2.0, x, disconnected="ignore"), "ignore")


def test_integer_wrt_is_dtype_error():
    k = sd.var("k", (2,), "int64")
    _raises_symdiff(lambda: sd.grad(sd.sum(k * 1.5), k), "int64", exc=sd.DTypeError)


def test_grad_wrt_non_expr():
    x = sd.var("x")
    _raises_symdiff(lambda: sd.grad(x * 2.0, "x"))


def test_same_name_two_shapes():
    a, b = sd.var("dup", (3,)), sd.var("dup", (2,))
    _raises_symdiff(lambda: sd.compile(sd.sum(a) + sd.sum(b)), "dup", "(3,)", "(2,)",
                    exc=sd.ShapeError)
    _raises_symdiff(lambda: sd.free_vars([a, b]), "dup", "(3,)", "(2,)", exc=sd.ShapeError)


# ---------------------------------------------------------------------------------------------
# no leaks on deep graphs and odd inputs
# ---------------------------------------------------------------------------------------------
def test_deep_graph_no_recursion_error():
    x = sd.var("x")
    y = x
    for _ in range(5000):
        y = y + 1.0
    str(y)  # printing a deep graph
    repr(y)
    sd.free_vars(y)
    g = sd.grad(y, x)
    assert float(sd.compile(g, inputs=[x])(0.0)) == 1.0
    assert float(sd.compile(y)(0.0)) == 5000.0


def test_check_grad_missing_value():
    x, y = sd.var("x"), sd.var("y")
    _raises_symdiff(lambda: sd.check_grad(x * y, x, {"x": 1.0}), "y")


def test_check_grad_wrong_shape_value():
    x = sd.var("x", (3,))
    _raises_symdiff(lambda: sd.check_grad(sd.sum(x), x, {"x": np.ones(2)}), "x",
                    exc=sd.ShapeError)


def test_const_of_unsupported_value():
    _raises_symdiff(lambda: sd.const("text"))
    _raises_symdiff(lambda: sd.const(object()))
    x = sd.var("x")
    _raises_symdiff(lambda: x + "text")
    _raises_symdiff(lambda: x * None)
