"""What the op table cannot say about the second round of elementwise functions and reductions:
the accuracy of the SciPy-free erf kernel against ``math.erf`` (tails included), logaddexp's
second derivative at a == b and its stability, std's convention at zero variance, sort's
gradient routing (ties included), mod's sign convention and gradients, and the names in text.
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import symdiff as sd
from symdiff.ops import kernels


def _ulps(got, want) -> np.ndarray:
    """|got - want| in units of the last place of ``want`` (the smallest subnormal at 0)."""
    want = np.asarray(want, dtype=np.float64)
    spacing = np.where(want == 0, np.spacing(0.0), np.spacing(np.abs(want)))
    return np.abs(np.asarray(got) - want) / spacing


def _wide_range() -> np.ndarray:
    rng = np.random.default_rng(0)
    points = [rng.uniform(-1, 1, 20_000), rng.uniform(-6, 6, 20_000),
              rng.uniform(-30, 30, 20_000), np.logspace(-310, 1.5, 4000),
              -np.logspace(-310, 1.5, 4000),
              # the interval ends of the rational fits, and around them
              np.array([0.0, 0.25, 0.84375, 1.25, 1 / 0.35, 6.0, 27.0, 28.0])]
    edges = np.concatenate(points[-1:])
    points.append(np.nextafter(edges, np.inf))
    points.append(np.nextafter(edges, -np.inf))
    return np.concatenate(points)


def test_erf_within_one_ulp_of_math_erf():
    x = _wide_range()
    got = kernels.erf(x)
    want = np.array([math.erf(v) for v in x])
    assert _ulps(got, want).max() <= 1.0
    np.testing.assert_array_equal(kernels.erf(-x), -got)  # odd, exactly


def test_erfc_keeps_relative_accuracy_in_the_tail():
    x = _wide_range()
    got = kernels.erfc(x)
    want = np.array([math.erfc(v) for v in x])
    assert _ulps(got, want).max() <= 4.0
    tail = np.linspace(5.0, 26.5, 500)  # erfc from 1.5e-12 down to 1e-307: no cancellation
    np.testing.assert_allclose(kernels.erfc(tail), [math.erfc(v) for v in tail], rtol=1e-15)


def test_erf_special_values_and_dtypes():
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0, -40.0])
    erf, erfc = kernels.erf_pair(values)
    np.testing.assert_array_equal(erf, [np.nan, 1.0, -1.0, 0.0, -0.0, 1.0, -1.0])
    assert np.signbit(erf[4])
    np.testing.assert_array_equal(erfc, [np.nan, 0.0, 2.0, 1.0, 1.0, 0.0, 2.0])
    assert kernels.erf(np.ones(3, np.float32)).dtype == np.float32
    assert kernels.erfc(np.arange(3)).dtype == np.float64


def test_erf_needs_no_scipy():
    code = ("import sys, numpy as np, symdiff as sd\n"
            "x = sd.var('x', (3,))\n"
            "y = sd.erf(x) + sd.erfc(x) + sd.gelu(x)\n"
            "sd.compile_grad(sd.sum(y), [x])(x=np.ones(3))\n"
            "assert 'scipy' not in sys.modules, 'scipy was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gelu_exact_has_no_cancellation_for_negative_inputs():
    x = np.array([-30.0, -10.0, -3.0, 0.5, 4.0])
    got = sd.compile(sd.gelu(sd.var("x", (5,))))(x=x)
    want = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x]
    # the rounding of x / sqrt(2) alone moves erfc by about x^2 ulps (1.5e-13 at x = -30)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] != 0  # -30 Phi(-30) = -7.3e-197


def test_logaddexp_second_derivative_at_a_equals_b():
    a, b = sd.var("a"), sd.var("b")
    y = sd.logaddexp(a, b)
    for value in (1.3, -700.0, 1000.0):  # huge and tiny arguments: stable, no 0/0
        at = dict(a=value, b=value)
        assert sd.compile(y)(**at) == pytest.approx(value + math.log(2))
        grads = [float(sd.compile(g)(**at)) for g in sd.grad(y, [a, b])]
        assert grads == [0.5, 0.5]
        hessian = [[float(sd.compile(sd.grad(sd.grad(y, u), w))(**at)) for w in (a, b)]
                   for u in (a, b)]
        assert hessian == [[0.25, -0.25], [-0.25, 0.25]]


def test_std_gradient_at_zero_variance_is_nan_and_variance_gradient_is_zero():
    x = sd.var("x", (3,))
    constant = np.full(3, 2.0)
    assert np.all(np.isnan(sd.compile(sd.grad(sd.std(x), x))(x=constant)))
    np.testing.assert_array_equal(sd.compile(sd.grad(sd.variance(x), x))(x=constant),
                                  np.zeros(3))


def test_sort_routes_the_gradient_through_the_permutation():
    x = sd.var("x", (2, 4))
    w = np.arange(8.0).reshape(2, 4)
    value = np.array([[3.0, -1.0, 2.0, 0.5], [0.0, 5.0, -2.0, 1.0]])
    for axis in (-1, 0):
        y = sd.sum(sd.sort(x, axis=axis) * w)
        got = sd.compile(sd.grad(y, x))(x=value)
        order = np.argsort(value, axis=axis)
        want = np.zeros_like(value)
        np.put_along_axis(want, order, w, axis=axis)
        np.testing.assert_array_equal(got, want)


def test_sort_ties_give_each_tied_entry_one_position():
    x = sd.var("x", (4,))
    w = np.array([1.0, 10.0, 100.0, 1000.0])
    got = sd.compile(sd.grad(sd.sum(sd.sort(x) * w), x))(x=np.array([2.0, 1.0, 2.0, 0.0]))
    # stable order: 0.0 (index 3), 1.0 (index 1), 2.0 (index 0), 2.0 (index 2)
    np.testing.assert_array_equal(got, [100.0, 10.0, 1000.0, 1.0])


def test_cumsum_with_axis_none_flattens():
    x = sd.var("x", (2, 3))
    y = sd.cumsum(x)
    assert y.shape == (6,)
    value = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(sd.compile(y)(x=value), np.cumsum(value))
    w = np.arange(1.0, 7.0)
    got = sd.compile(sd.grad(sd.sum(y * w), x), inputs=[x])(value)  # constant in x
    np.testing.assert_array_equal(got, np.cumsum(w[::-1])[::-1].reshape(2, 3))


def test_mod_follows_the_divisor_sign_and_its_gradients():
    a, b = sd.var("a", (4,)), sd.var("b", (4,))
    av, bv = np.array([5.5, -5.5, 5.5, -5.5]), np.array([2.0, 2.0, -2.0, -2.0])
    np.testing.assert_array_equal(sd.compile(a % b)(a=av, b=bv), np.mod(av, bv))
    ga, gb = sd.grad(sd.sum(a % b), [a, b])
    np.testing.assert_array_equal(sd.compile(ga, inputs=[a, b])(av, bv), np.ones(4))
    np.testing.assert_array_equal(sd.compile(gb, inputs=[a, b])(av, bv), -np.floor(av / bv))
    assert (2.0 % a).op.name == "mod" and str(2.0 % a) == "2.0 % a"


def test_new_functions_parse_by_name():
    shapes = {"x": (3,), "y": (3,)}
    text = ("erf(x) + erfc(x) + gelu(x, approximate=True) + silu(x) + elu(x, alpha=0.5) + "
            "log_sigmoid(x) + sinh(x) + arcsinh(x) + arctan2(x, y) + logaddexp(x, y) + "
            "reciprocal(y) + x % y + mod(x, 2.0) + variance(x, ddof=1) + std(x) + "
            "sort(x) + cumsum(x)")
    y = sd.parse(text, shapes)
    assert sd.parse(str(y), shapes) is y
    assert sd.parse("x % y", shapes) is sd.var("x", (3,)) % sd.var("y", (3,))


def test_bad_parameters_name_the_function():
    x = sd.var("x", (3,))
    with pytest.raises(sd.SymdiffError, match="variance: ddof"):
        sd.variance(x, ddof=1.5)
    with pytest.raises(sd.ShapeError, match=r"std: ddof=3 .*\(3,\)"):
        sd.std(x, ddof=3)
    with pytest.raises(sd.SymdiffError, match="elu: alpha"):
        sd.elu(x, alpha="big")
    with pytest.raises(sd.SymdiffError, match="gelu: approximate"):
        sd.gelu(x, approximate="tanh")
    with pytest.raises(sd.ShapeError, match="sort"):
        sd.sort(sd.var("s"))
