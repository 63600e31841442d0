"""Numerical stability at extreme values (issue 5, part 4).

Gradients of ``log_softmax``, ``logsumexp`` and softmax cross-entropy with logits up to +-1e3;
``sigmoid``, ``softplus`` and ``log(sigmoid(x))`` at +-800 (the latter through ``sd.optimize``,
which rewrites it to ``-softplus(-x)``, and through ``sd.compile``, which optimizes by default);
``sqrt`` and ``norm`` of inputs from 1e-150 down to 1e-300; ``log1p``/``expm1`` near 0. Every
value and derivative must be finite and agree with an mpmath evaluation of the textbook
definition at 50 digits (NumPy itself is not exact there).

Then the non-finite contract: NaN or inf in an input propagates as NaN/inf (no exception; the
tests silence NumPy's RuntimeWarnings), and ``compile(..., check_finite=True)`` raises
``sd.NonFiniteError`` naming the first node that went non-finite, in straight-line code and on
the tape used for graphs above 10,000 statements.
"""
from __future__ import annotations

import contextlib
import warnings

import mpmath
import numpy as np
import pytest

import symdiff as sd
from symdiff.lower.tape import TAPE_THRESHOLD

mp = mpmath.mp
mp.dps = 50

RTOL = 1e-12


@contextlib.contextmanager
def quiet():
    """NumPy's RuntimeWarnings (overflow, invalid value) silenced: values must speak."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def close(got, want, rtol=RTOL, atol=1e-300) -> None:
    """``got`` (float64) against ``want`` (mpmath numbers, nested lists ok)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.vectorize(lambda w: float(w), otypes=[np.float64])(np.asarray(want, dtype=object))
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def mpf(a):
    return [mpmath.mpf(float(v)) for v in np.ravel(a)]


# ---------------------------------------------------------------------------------------------
# references from the definitions, at 50 digits
# ---------------------------------------------------------------------------------------------
def ref_logsumexp(x):
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x))


def ref_softmax(x):
    lse = ref_logsumexp(x)
    return [mpmath.exp(v - lse) for v in x]


def ref_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def ref_softplus(x):
    return mpmath.log(1 + mpmath.exp(x))


LOGITS = [
    np.array([1e3, -1e3, 0.0, 999.0]),
    np.array([-1e3, -1e3, -999.5, -1e3]),
    np.array([1e3, 1e3, 1e3, 1e3]),
    np.array([-1e3, 1e3, 0.5, -0.5]),
    np.array([800.0, -800.0, 1e-3, 700.0]),
]
WEIGHTS = np.array([0.5, -1.0, 2.0, 0.25])


@pytest.mark.parametrize("logits", LOGITS, ids=[f"logits{i}" for i in range(len(LOGITS))])
def test_log_softmax_gradient_at_extreme_logits(logits):
    x = sd.var("x", (4,))
    y = sd.sum(WEIGHTS * sd.log_softmax(x))
    with quiet():
        value, (g,) = sd.compile_grad(y, x)(logits)
    xs = mpf(logits)
    lse = ref_logsumexp(xs)
    want_value = mpmath.fsum(w * (v - lse) for w, v in zip(mpf(WEIGHTS), xs))
    sm = ref_softmax(xs)
    want_grad = [w - s * mpmath.fsum(mpf(WEIGHTS)) for w, s in zip(mpf(WEIGHTS), sm)]
    close(value, want_value)
    close(g, want_grad, atol=1e-15)


@pytest.mark.parametrize("logits", LOGITS, ids=[f"logits{i}" for i in range(len(LOGITS))])
def test_logsumexp_gradient_is_softmax_at_extreme_logits(logits):
    x = sd.var("x", (4,))
    with quiet():
        value, (g,) = sd.compile_grad(sd.logsumexp(x), x)(logits)
    close(value, ref_logsumexp(mpf(logits)))
    close(g, ref_softmax(mpf(logits)), atol=1e-300)


def test_logsumexp_with_axis_and_keepdims_at_extreme_logits():
    x = sd.var("x", (2, 4))
    values = np.stack([LOGITS[0], LOGITS[3]])
    y = sd.sum(sd.logsumexp(x, axis=1, keepdims=True) * np.array([[1.0], [-2.0]]))
    with quiet():
        value, (g,) = sd.compile_grad(y, x)(values)
    rows = [mpf(r) for r in values]
    close(value, ref_logsumexp(rows[0]) - 2 * ref_logsumexp(rows[1]))
    close(g, [ref_softmax(rows[0]), [-2 * s for s in ref_softmax(rows[1])]], atol=1e-300)


def _cross_entropy_reference(U, Y):
    n = U.shape[0]
    loss = mpmath.mpf(0)
    grad = []
    for u, t in zip(U, Y):
        us, ts = mpf(u), mpf(t)
        lse = ref_logsumexp(us)
        loss -= mpmath.fsum(ti * (ui - lse) for ti, ui in zip(ts, us))
        grad.append([(s - ti) / n for s, ti in zip(ref_softmax(us), ts)])
    return loss / n, grad


U_EXTREME = np.array([[1e3, -1e3, 0.0], [-1e3, 1e3, 999.0], [5.0, -5.0, 1e3], [1e3, 1e3, -1e3]])
Y_ONE_HOT = np.eye(3)[[1, 2, 0, 2]]


def test_softmax_cross_entropy_at_extreme_logits():
    U, Y = sd.var("U", (4, 3)), sd.var("Y", (4, 3))
    loss = -sd.mean(sd.sum(Y * sd.log_softmax(U, axis=1), axis=1))
    with quiet():
        value, (g,) = sd.compile_grad(loss, U)(U=U_EXTREME, Y=Y_ONE_HOT)
    want_loss, want_grad = _cross_entropy_reference(U_EXTREME, Y_ONE_HOT)
    close(value, want_loss)
    close(g, want_grad, atol=1e-15)


def test_mlp_loss_with_huge_logits_has_finite_gradient():
    from symdiff.training.models import mlp_loss
    model = mlp_loss(4, 3, 5, 3)
    rng = np.random.default_rng(0)
    values = {"X": rng.normal(size=(4, 3)) * 300, "Y": Y_ONE_HOT,
              "W1": rng.normal(size=(3, 5)), "b1": np.zeros(5),
              "W2": rng.normal(size=(5, 3)), "b2": np.zeros(3)}
    with quiet():
        value, grads = sd.compile_grad(model.loss, model.params)(**values)
    assert np.isfinite(value)
    for g in grads:
        assert np.all(np.isfinite(g))


def test_log_of_softmax_optimized_then_differentiated_is_stable():
    U, Y = sd.var("U", (4, 3)), sd.var("Y", (4, 3))
    loss = -sd.mean(sd.sum(Y * sd.log(sd.softmax(U, axis=1)), axis=1))
    stable = sd.optimize(loss)
    assert "log_softmax" in sd.pretty(stable)
    with quiet():
        value, (g,) = sd.compile_grad(stable, U)(U=U_EXTREME, Y=Y_ONE_HOT)
        plain_value = sd.compile(loss)(U=U_EXTREME, Y=Y_ONE_HOT)  # optimizes by default
    want_loss, want_grad = _cross_entropy_reference(U_EXTREME, Y_ONE_HOT)
    close(value, want_loss)
    close(plain_value, want_loss)
    close(g, want_grad, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# sigmoid, softplus, log(sigmoid)
# ---------------------------------------------------------------------------------------------
POINTS = [-800.0, -745.0, -40.0, -1e-3, 0.0, 1e-3, 40.0, 745.0, 800.0]


def _value_and_derivative(y, s, x, optimize=True):
    with quiet():
        return sd.compile([y, sd.grad(y, s)], optimize=optimize)(x)


@pytest.mark.parametrize("x", POINTS)
def test_sigmoid_and_softplus_at_extremes(x):
    s = sd.var("s")
    X = mpmath.mpf(x)
    for optimize in (True, False):
        value, deriv = _value_and_derivative(sd.sigmoid(s), s, x, optimize)
        close(value, ref_sigmoid(X))
        # absolute accuracy here; relative accuracy for large x is the test below
        close(deriv, ref_sigmoid(X) * (1 - ref_sigmoid(X)), atol=1e-16)
        value, deriv = _value_and_derivative(sd.softplus(s), s, x, optimize)
        close(value, ref_softplus(X))
        close(deriv, ref_sigmoid(X))


@pytest.mark.parametrize("x", [20.0, 37.0, 40.0])
def test_sigmoid_derivative_keeps_relative_precision_for_large_x(x):
    s = sd.var("s")
    X = mpmath.mpf(x)
    value, deriv = _value_and_derivative(sd.sigmoid(s), s, x)
    close(deriv, ref_sigmoid(X) * ref_sigmoid(-X), rtol=1e-12, atol=0)


@pytest.mark.parametrize("x", POINTS)
def test_log_sigmoid_through_optimize(x):
    s = sd.var("s")
    y = sd.optimize(sd.log(sd.sigmoid(s)))
    assert "softplus" in str(y)  # log(sigmoid(s)) -> -softplus(-s)
    X = mpmath.mpf(x)
    value, deriv = _value_and_derivative(y, s, x)
    close(value, mpmath.log(ref_sigmoid(X)))
    close(deriv, ref_sigmoid(-X))


@pytest.mark.parametrize("x", POINTS)
def test_log_sigmoid_value_compiled_directly(x):
    s = sd.var("s")
    with quiet():
        value = sd.compile(sd.log(sd.sigmoid(s)))(x)  # compile optimizes by default
    close(value, mpmath.log(ref_sigmoid(mpmath.mpf(x))))


# Found here and fixed: grad differentiated the graph as written and the stable rewrites ran
# only at compile time on the result, so the gradient kept the unstable form (1/sigmoid(s) * ...,
# g / softmax, g / sum(exp)) and was nan at extreme inputs although the value was fine.
@pytest.mark.parametrize("x", [-800.0, -745.0])
def test_compile_grad_of_log_sigmoid_is_stable(x):
    s = sd.var("s")
    with quiet():
        value, (deriv,) = sd.compile_grad(sd.log(sd.sigmoid(s)), s)(x)
    X = mpmath.mpf(x)
    close(value, mpmath.log(ref_sigmoid(X)))
    close(deriv, ref_sigmoid(-X))


@pytest.mark.parametrize("form", ["log(softmax)", "log(sum(exp))", "log(1 + exp)"])
def test_compile_grad_of_rewritable_unstable_forms_is_stable(form):
    U, Y = sd.var("U", (4, 3)), sd.var("Y", (4, 3))
    if form == "log(softmax)":
        loss = -sd.mean(sd.sum(Y * sd.log(sd.softmax(U, axis=1)), axis=1))
    elif form == "log(sum(exp))":
        loss = sd.sum(sd.log(sd.sum(sd.exp(U), axis=1)))
    else:
        loss = sd.sum(sd.log(1 + sd.exp(U)))
    point = {"U": U_EXTREME, "Y": Y_ONE_HOT}
    fn = sd.compile_grad(loss, U)
    with quiet():
        value, (g,) = fn(**{v.name: point[v.name] for v in fn.inputs})
    assert np.isfinite(value)
    assert np.all(np.isfinite(g)), g


# ---------------------------------------------------------------------------------------------
# sqrt and norm near 0, log1p/expm1 near 0
# ---------------------------------------------------------------------------------------------
TINY = [1e-150, 3e-170, 1e-200, 7e-250, 1e-300]


@pytest.mark.parametrize("x", TINY + [5e-324])
def test_sqrt_near_zero(x):
    s = sd.var("s")
    value, deriv = _value_and_derivative(sd.sqrt(s), s, x)
    X = mpmath.mpf(x)
    close(value, mpmath.sqrt(X))
    close(deriv, 1 / (2 * mpmath.sqrt(X)))


def test_norm_of_small_but_representable_vectors():
    x = sd.var("x", (3,))
    for v in (np.array([1e-150, -2e-150, 0.0]), np.array([3e-120, 4e-120, 1e-130])):
        value, (g,) = sd.compile_grad(sd.norm(x), x)(v)
        norm = mpmath.sqrt(mpmath.fsum(t * t for t in mpf(v)))
        close(value, norm)
        close(g, [t / norm for t in mpf(v)])


@pytest.mark.parametrize("scale", [1e-160, 1e-200, 1e-300, 1e160, 1e200, 1e300],
                         ids=["1e-160", "1e-200", "1e-300", "1e160", "1e200", "1e300"])
def test_norm_without_underflow_or_overflow(scale):
    # norm is computed scaled by max|x| (issue 10, item 14)
    x = sd.var("x", (3,))
    v = np.array([1.0, -2.0, 3.0]) * scale
    with quiet():
        value, (g,) = sd.compile_grad(sd.norm(x), x)(v)
    norm = mpmath.sqrt(mpmath.fsum(t * t for t in mpf(v)))
    close(value, norm, rtol=1e-14)
    close(g, [t / norm for t in mpf(v)], rtol=1e-14)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_norm_with_axis_and_of_a_scalar_at_extreme_scales(scale):
    x = sd.var("x", (2, 3))
    v = np.array([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0]]) * scale
    with quiet():
        value = sd.compile(sd.norm(x, axis=1))(v)
        s = sd.var("s")
        scalar = sd.compile([sd.norm(s), sd.grad(sd.norm(s), s)])(-scale)
    close(value[0], mpmath.sqrt(mpmath.fsum(t * t for t in mpf(v[0]))), rtol=1e-14)
    assert value[1] == 0.0
    close(scalar, [abs(mpmath.mpf(scale)), -1], rtol=1e-14)
    with quiet():
        special = sd.compile(sd.norm(x, axis=1))(np.array([[np.inf, 1, 0], [np.nan, 1, 0]]))
    assert special[0] == np.inf and np.isnan(special[1])


# ---------------------------------------------------------------------------------------------
# derivative forms without cancellation (issue 10, item 14)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x", [-40.0, -19.5, -3.0, 0.0, 0.5, 19.5, 40.0, 300.0])
def test_tanh_derivative_keeps_relative_precision(x):
    s = sd.var("s")
    X = mpmath.mpf(x)
    _, deriv = _value_and_derivative(sd.tanh(s), s, x)
    close(deriv, 1 / mpmath.cosh(X) ** 2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("x", [-700.0, -40.0, -1e-3, 0.0, 1e-8, 3.0, 700.0])
def test_expm1_derivative_keeps_relative_precision(x):
    s = sd.var("s")
    _, deriv = _value_and_derivative(sd.expm1(s), s, x)
    close(deriv, mpmath.exp(mpmath.mpf(x)), rtol=1e-14, atol=0)


@pytest.mark.parametrize("logits", [[1e15, 1e15], [1e15, 1e15 + 0.125], [-1e300, 1e300]])
def test_logsumexp_gradient_at_huge_equal_logits(logits):
    x = sd.var("x", (2,))
    with quiet():
        _, (g,) = sd.compile_grad(sd.logsumexp(x), x)(np.array(logits))
    close(g, ref_softmax(mpf(logits)), rtol=1e-14, atol=1e-300)


def test_power_gradient_at_zero_base_and_zero_exponent():
    # d/da a^b = b a^(b-1) is 0 where b = 0, even at a = 0 (autograd's convention), and the
    # gradients of the gradient stay finite there
    a, b = sd.var("a"), sd.var("b")
    f = sd.compile([*sd.grad(a ** b, [a, b]), sd.grad(sd.grad(a ** b, a), b)])
    assert [float(v) for v in f(0.0, 0.0)] == [0.0, 0.0, 0.0]
    assert [float(v) for v in f(2.0, 3.0)] == [12.0, 8 * np.log(2.0), 4 + 12 * np.log(2.0)]
    v = sd.var("v", (3,))
    g = sd.compile(sd.grad(sd.sum(v ** np.array([0.0, 2.0, 0.0])), v))(np.zeros(3))
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


NEAR_ZERO = [1e-300, 1e-100, 1e-17, 1e-10, -1e-10, -1e-17, 2.5e-8, -3e-5]


@pytest.mark.parametrize("x", NEAR_ZERO)
def test_log1p_and_expm1_near_zero(x):
    s = sd.var("s")
    X = mpmath.mpf(x)
    value, deriv = _value_and_derivative(sd.log1p(s), s, x)
    close(value, mpmath.log1p(X), rtol=1e-15)
    close(deriv, 1 / (1 + X), rtol=1e-15)
    value, deriv = _value_and_derivative(sd.expm1(s), s, x)
    close(value, mpmath.expm1(X), rtol=1e-15)
    close(deriv, mpmath.exp(X), rtol=1e-15)
    value, deriv = _value_and_derivative(sd.log1p(sd.expm1(s)), s, x)
    close(value, X, rtol=1e-15)
    close(deriv, 1, rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# NaN and inf: propagate, or NonFiniteError when asked
# ---------------------------------------------------------------------------------------------
def _mlp_function(**options):
    from symdiff.training.models import mlp_loss
    model = mlp_loss(4, 3, 5, 3)
    rng = np.random.default_rng(1)
    values = {"X": rng.normal(size=(4, 3)), "Y": Y_ONE_HOT, "W1": rng.normal(size=(3, 5)),
              "b1": np.zeros(5), "W2": rng.normal(size=(5, 3)), "b2": np.zeros(3)}
    return sd.compile_grad(model.loss, model.params, **options), values


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_propagates_without_exception(bad):
    f, values = _mlp_function()
    values["X"] = values["X"].copy()
    values["X"][2, 1] = bad
    with quiet():
        value, grads = f(**values)
    assert not np.isfinite(value)
    assert not np.all(np.isfinite(grads[0]))  # dJ/dW1 sees X


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_propagate_elementwise(bad):
    x = sd.var("x", (4,))
    f = sd.compile([sd.exp(x) * 2.0, sd.grad(sd.sum(sd.sin(x) * x), x), sd.relu(x),
                    sd.maximum(x, 0.5), sd.sum(x)])
    with quiet():
        outs = f(np.array([0.5, bad, -1.0, 2.0]))
    for out in outs[:4]:
        assert np.all(np.isfinite(np.delete(out, 1))) and not np.isfinite(out[1])
    assert not np.isfinite(outs[4])


def test_non_finite_input_propagates_on_a_tape():
    x = sd.var("x", (2,))
    y = x
    for _ in range(TAPE_THRESHOLD // 2 + 10):
        y = sd.sin(y) * 1.0001
    f = sd.compile_grad(sd.sum(y), x)
    assert f.uses_tape
    with quiet():
        value, (g,) = f(np.array([np.nan, 0.5]))
    assert np.isnan(value) and np.isnan(g[0]) and np.isfinite(g[1])


def test_check_finite_passes_finite_values_through():
    f, values = _mlp_function(check_finite=True)
    plain, _ = _mlp_function()
    value, grads = f(**values)
    want_value, want_grads = plain(**values)
    assert value == want_value
    for a, b in zip(grads, want_grads):
        np.testing.assert_array_equal(a, b)


def test_check_finite_names_a_non_finite_input():
    f, values = _mlp_function(check_finite=True)
    values["W2"] = values["W2"].copy()
    values["W2"][0, 0] = np.nan
    with quiet(), pytest.raises(sd.NonFiniteError, match="'W2'") as info:
        f(**values)
    assert isinstance(info.value, sd.SymdiffError)


@pytest.mark.parametrize("tape", [False, True], ids=["straight-line", "tape"])
def test_check_finite_names_the_first_node_that_went_non_finite(tape):
    x = sd.var("x", (3,))
    y = x
    if tape:
        for _ in range(TAPE_THRESHOLD + 10):
            y = y * 1.00000001
    a = sd.exp(y)                   # finite at the point
    b = a * 1e308                   # first non-finite: inf where exp(x) > 1
    c = sd.log(b) - sd.sqrt(y - 5)  # more non-finite values downstream
    f = sd.compile(sd.sum(c), check_finite=True, optimize=False)
    assert f.uses_tape == tape
    with quiet(), pytest.raises(sd.NonFiniteError, match="multiply") as info:
        f(np.array([2.0, 0.5, -1.0]))
    message = str(info.value)
    assert "log" not in message.split("multiply")[0] and "sqrt" not in message
    with quiet():  # without the check: the same inputs simply propagate inf/nan
        assert not np.isfinite(sd.compile(sd.sum(c), optimize=False)(np.array([2.0, 0.5, -1.0])))


def test_check_finite_names_a_gradient_node():
    x = sd.var("x", (3,))
    f = sd.compile_grad(sd.sum(sd.sqrt(x)), x, check_finite=True)
    with quiet(), pytest.raises(sd.NonFiniteError) as info:
        f(np.array([4.0, 0.0, 1.0]))  # sqrt(0) is finite; its derivative 1/(2 sqrt 0) is not
    assert "divide" in str(info.value) or "dJ/dx" in str(info.value), str(info.value)


CONSTANT_ARITHMETIC = {
    "1.0 / 0.0": (lambda: sd.const(1.0) / sd.const(0.0), np.inf),
    "-1.0 / 0.0": (lambda: sd.const(-1.0) / sd.const(0.0), -np.inf),
    "0.0 / 0.0": (lambda: sd.const(0.0) / sd.const(0.0), np.nan),
    "0.0 ** -1.0": (lambda: sd.const(0.0) ** sd.const(-1.0), np.inf),
    "(-8.0) ** 0.5": (lambda: sd.const(-8.0) ** sd.const(0.5), np.nan),
    "10.0 ** 400.0": (lambda: sd.const(10.0) ** sd.const(400.0), np.inf),
    "s * (1.0 / 0.0)": (lambda: sd.var("s") * (sd.const(1.0) / sd.const(0.0)), np.inf),
    "grad of mean over an empty axis": (
        lambda: sd.sum(sd.grad(sd.mean(sd.var("e", (0, 3))), sd.var("e", (0, 3)))) + 0.0,
        0.0),
}


@pytest.mark.parametrize("name", list(CONSTANT_ARITHMETIC))
@pytest.mark.parametrize("optimize", [False, True], ids=["plain", "optimized"])
def test_constant_arithmetic_follows_numpy(name, optimize):
    build, want = CONSTANT_ARITHMETIC[name]
    y = build()
    values = {v.name: np.ones(v.shape) for v in sd.free_vars(y)}
    with quiet():
        got = sd.compile(y, optimize=optimize)(**values)
    got = np.asarray(got)
    assert got.dtype == y.dtype and got.dtype.kind == "f", got
    np.testing.assert_equal(got, want)
