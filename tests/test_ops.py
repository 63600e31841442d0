"""Generic checks over every row of the op table (``cases.py``), one test per (row, case).

1. the shape rule and the forward value agree with NumPy;
2. bprop agrees with central differences (``check_grad``);
3. jvp agrees with finite differences;
4. adjointness, <J v, u> = <v, J^T u>, so the forward and reverse rules cannot drift apart;
5. second order where the row asks: hvp against differences of the gradient, and against the
   Hessian times v for small inputs; scalar rows also against ``sympy.diff``;
6. float32 builds for the rows that ask, against float64.
Also: int64 inputs follow NumPy's dtypes; bad shapes raise ShapeError naming them; gradients at
kinks and ties follow the documented conventions; non-differentiable rows raise
UndefinedGradientError naming the op; stop_gradient gives a zero gradient. Guards: every
registered op and every API function has a row, and every case id is unique.

All randomness is seeded per test from the test's id.
"""
from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
import sympy as sp

import symdiff as sd
from symdiff.ops.base import REGISTRY

from cases import API_FUNCTIONS, ROWS

FD_STEP = 1e-5        # central-difference step of the jvp and hvp checks
ADJOINT_RTOL = 1e-9
HESSIAN_MAX_SIZE = 8  # form the full Hessian only for inputs this small
F32_RTOL, F32_ATOL = 1e-4, 1e-5


CHECKS = ("forward", "int64", "grad", "jvp", "adjoint", "hvp", "forward_over_reverse", "sympy",
          "float32", "no_gradient", "zero_gradient")


def _params(check: str, select):
    """(row, case) params of the rows ``select`` picks, for the test named ``check``; a case
    with a known bug in ``check`` (see cases.Case.bugs) is marked xfail(strict=True)."""
    assert check in CHECKS

    def marks(row, case):
        reason = row.known_bug(case, check)
        return (pytest.mark.xfail(strict=True, reason=reason),) if reason else ()
    return [pytest.param(row, case, id=row.case_id(case), marks=marks(row, case))
            for row in ROWS if select(row) for case in row.cases]


def _differentiable(row):
    return row.gradient == "fd"


def _scalar_case_with_sympy(row, case):
    return (row.sympy is not None and not case.params
            and all(shape == () for shape in case.shapes))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _rng(row, case, salt: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{row.case_id(case)}/{salt}".encode()))


def _build(row, case, dtype="float64"):
    """The case's input variables (x0, x1, ...) and the op applied to them."""
    xs = [sd.var(f"x{i}", shape, dtype) for i, shape in enumerate(case.shapes)]
    return xs, row.build(*xs, **case.params)


def _point(row, case) -> list:
    return row.sample(_rng(row, case, "point"), case)


def _shifted(point: list, i: int, delta) -> list:
    out = list(point)
    out[i] = point[i] + delta
    return out


def _assert_close(got, want, rtol, atol, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def _scalar_loss(out, rng, dtype=np.float64):
    """``sum(out * U)`` with a fixed random U, and U."""
    weights = rng.standard_normal(out.shape).astype(dtype)
    return sd.sum(out * sd.const(weights)), weights


# ---------------------------------------------------------------------------------------------
# guards
# ---------------------------------------------------------------------------------------------
def test_every_registered_op_has_a_row():
    missing = sorted(set(REGISTRY) - {row.op for row in ROWS})
    assert not missing, f"registered ops without a row in tests/cases.py: {missing}"


def test_every_api_function_has_a_row():
    missing = sorted(set(API_FUNCTIONS) - {row.op for row in ROWS})
    assert not missing, f"API functions without a row in tests/cases.py: {missing}"
    absent = [name for name in API_FUNCTIONS if not callable(getattr(sd, name, None))]
    assert not absent, f"API functions missing from symdiff: {absent}"


def test_rows_name_registered_ops_once():
    names = [row.op for row in ROWS]
    assert sorted(set(names) - set(REGISTRY)) == []
    assert len(names) == len(set(names)), "two rows for one op"


def test_known_bugs_name_real_checks():
    named = {check for row in ROWS for check in row.bugs}
    named |= {check for row in ROWS for case in row.cases for check in case.bugs}
    assert named <= set(CHECKS), f"unknown checks in bugs: {sorted(named - set(CHECKS))}"


def test_case_ids_are_unique():
    ids = [row.case_id(case) for row in ROWS for case in row.cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate case ids: {duplicates}"


# ---------------------------------------------------------------------------------------------
# 1. shape rule and forward value
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params("forward", lambda row: True))
def test_forward_matches_numpy(row, case):
    xs, out = _build(row, case)
    assert out.op is not None and out.op.name == row.op, (
        f"the builder made {out.op!r}, not {row.op}")
    point = _point(row, case)
    want = np.asarray(row.ref(*point, **case.params))
    assert out.shape == want.shape, f"shape rule {out.shape}, NumPy {want.shape}"
    assert out.dtype == want.dtype, f"dtype rule {out.dtype}, NumPy {want.dtype}"
    got = np.asarray(sd.compile(out)(**{x.name: p for x, p in zip(xs, point)}))
    assert got.shape == want.shape and got.dtype == want.dtype, (
        f"compiled {got.shape} {got.dtype}, NumPy {want.shape} {want.dtype}")
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=row.fwd_rtol, atol=row.fwd_rtol)


@pytest.mark.parametrize("row, case", _params("int64", lambda row: True))
def test_int64_inputs_follow_numpy(row, case):
    """Integer inputs (values 1 and 2): the dtype rule, the lowering and NumPy agree."""
    xs, out = _build(row, case, "int64")
    point = [_rng(row, case, "int").integers(1, 3, shape) for shape in case.shapes]
    want = np.asarray(row.ref(*point, **case.params))
    assert (out.shape, out.dtype) == (want.shape, want.dtype), "rule vs NumPy"
    got = np.asarray(sd.compile(out, inputs=xs)(*point))
    assert (got.shape, got.dtype) == (want.shape, want.dtype), "lowering vs NumPy"
    np.testing.assert_allclose(got, want, rtol=row.fwd_rtol)


BAD = [pytest.param(row, case, id=f"{row.case_id(case)}-bad") for row in ROWS for case in row.bad]


@pytest.mark.parametrize("row, case", BAD)
def test_shape_mismatch_raises_shape_error_naming_the_shapes(row, case):
    xs = [sd.var(f"x{i}", shape) for i, shape in enumerate(case.shapes)]
    with pytest.raises(sd.ShapeError) as info:
        row.build(*xs, **case.params)
    for shape in case.shapes:
        assert str(shape) in str(info.value), f"{shape} not named in: {info.value}"


# ---------------------------------------------------------------------------------------------
# 2. bprop against central differences
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params("grad", _differentiable))
def test_grad_matches_finite_differences(row, case):
    xs, out = _build(row, case)
    at = {x.name: value for x, value in zip(xs, _point(row, case))}
    result = sd.check_grad(out, xs, at, rtol=row.rtol, atol=row.atol)
    assert result.ok, str(result)
    grads = sd.grad(_scalar_loss(out, _rng(row, case, "u"))[0], xs)
    for x, g in zip(xs, grads):
        assert g.shape == x.shape and g.dtype == x.dtype


# ---------------------------------------------------------------------------------------------
# 3. jvp against finite differences
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params("jvp", _differentiable))
def test_jvp_matches_finite_differences(row, case):
    xs, out = _build(row, case)
    point = _point(row, case)
    rng = _rng(row, case, "v")
    f = sd.compile(out, inputs=xs)
    for i, x in enumerate(xs):
        v = rng.standard_normal(x.shape)
        tangent = sd.jvp(out, x, v)
        assert tangent.shape == out.shape
        got = sd.compile(tangent, inputs=xs)(*point)
        numeric = (f(*_shifted(point, i, FD_STEP * v))
                   - f(*_shifted(point, i, -FD_STEP * v))) / (2 * FD_STEP)
        _assert_close(got, numeric, row.rtol, row.atol, f"jvp w.r.t. {x.name}")


# ---------------------------------------------------------------------------------------------
# 4. adjointness of jvp and vjp
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params("adjoint", _differentiable))
def test_jvp_and_vjp_are_adjoint(row, case):
    xs, out = _build(row, case)
    point = _point(row, case)
    rng = _rng(row, case, "uv")
    for x in xs:
        v = rng.standard_normal(x.shape)
        u = rng.standard_normal(out.shape)
        jv = np.asarray(sd.compile(sd.jvp(out, x, v), inputs=xs)(*point))
        ju = np.asarray(sd.compile(sd.vjp(out, x, u), inputs=xs)(*point))
        assert jv.shape == out.shape and ju.shape == x.shape
        forward, reverse = np.sum(jv * u), np.sum(ju * v)
        scale = max(np.sum(np.abs(jv * u)), np.sum(np.abs(ju * v)))
        assert abs(forward - reverse) <= (row.adjoint_rtol or ADJOINT_RTOL) * scale, (
            f"w.r.t. {x.name}: <Jv, u> = {forward!r}, <v, J^T u> = {reverse!r}")


# ---------------------------------------------------------------------------------------------
# 5. second order
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params(
    "hvp", lambda row: _differentiable(row) and row.order >= 2))
def test_hvp_matches_differences_of_the_gradient(row, case):
    xs, out = _build(row, case)
    point = _point(row, case)
    rng = _rng(row, case, "hvp")
    y, _ = _scalar_loss(out, rng)
    for i, x in enumerate(xs):
        v = rng.standard_normal(x.shape)
        hv = sd.hvp(y, x, v)
        assert hv.shape == x.shape
        got = np.asarray(sd.compile(hv, inputs=xs)(*point))
        g = sd.compile(sd.grad(y, x), inputs=xs)
        numeric = (g(*_shifted(point, i, FD_STEP * v))
                   - g(*_shifted(point, i, -FD_STEP * v))) / (2 * FD_STEP)
        _assert_close(got, numeric, row.rtol, row.atol, f"hvp w.r.t. {x.name}")
        if x.size <= HESSIAN_MAX_SIZE:
            hessian = sd.hessian(y, x)
            assert hessian.shape == x.shape + x.shape
            h = np.asarray(sd.compile(hessian, inputs=xs)(*point)).reshape(x.size, x.size)
            _assert_close((h @ v.ravel()).reshape(x.shape), got, 1e-9, 1e-12,
                          f"hessian @ v vs hvp w.r.t. {x.name}")


@pytest.mark.parametrize("row, case", _params(
    "forward_over_reverse", lambda row: _differentiable(row) and row.order >= 2))
def test_forward_over_reverse_equals_hvp(row, case):
    """jvp of the gradient (forward over reverse) equals hvp (reverse over reverse)."""
    xs, out = _build(row, case)
    point = _point(row, case)
    rng = _rng(row, case, "fwd-rev")
    y, _ = _scalar_loss(out, rng)
    for x in xs:
        v = rng.standard_normal(x.shape)
        forward = sd.jvp(sd.grad(y, x), x, v)
        assert forward.shape == x.shape
        got = sd.compile(forward, inputs=xs)(*point)
        want = sd.compile(sd.hvp(y, x, v), inputs=xs)(*point)
        _assert_close(got, want, 1e-9, 1e-12, f"jvp(grad) vs hvp w.r.t. {x.name}")


def _sympy_value(expr, symbols, point) -> float:
    return float(expr.subs({s: float(p) for s, p in zip(symbols, point)}).evalf())


@pytest.mark.parametrize("row, case", [
    p for p in _params("sympy", _differentiable) if _scalar_case_with_sympy(*p.values)])
def test_scalar_derivatives_match_sympy(row, case):
    xs, out = _build(row, case)
    point = _point(row, case)
    symbols = sp.symbols(f"x0:{len(xs)}", real=True)
    expr = row.sympy(*symbols)
    for x, s in zip(xs, symbols):
        first = sp.diff(expr, s)
        g = sd.grad(out, x)
        got = float(sd.compile(g, inputs=xs)(*point))
        assert got == pytest.approx(_sympy_value(first, symbols, point), rel=1e-10, abs=1e-12)
        if row.order >= 2:
            got2 = float(sd.compile(sd.grad(g, x), inputs=xs)(*point))
            want2 = _sympy_value(sp.diff(first, s), symbols, point)
            assert got2 == pytest.approx(want2, rel=1e-10, abs=1e-12), f"d2/d{x.name}^2"


KINKS = [pytest.param(row, kink, id=f"{row.op}-kink{k}")
         for row in ROWS for k, kink in enumerate(row.kinks)]


@pytest.mark.parametrize("row, kink", KINKS)
def test_gradient_at_kinks_follows_the_convention(row, kink):
    point = [np.asarray(p, dtype=np.float64) for p in kink.point]
    xs = [sd.var(f"x{i}", p.shape) for i, p in enumerate(point)]
    out = row.build(*xs, **kink.params)
    for x, g, want in zip(xs, sd.grad(sd.sum(out), xs), kink.expected):
        got = sd.compile(g, inputs=xs)(*point)
        np.testing.assert_array_equal(got, np.asarray(want), err_msg=f"d/d{x.name}")


# ---------------------------------------------------------------------------------------------
# 6. float32
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params("float32", lambda row: row.float32))
def test_float32_build_matches_float64(row, case):
    xs64, out64 = _build(row, case)
    xs32, out32 = _build(row, case, "float32")
    point64 = _point(row, case)
    point32 = [p.astype(np.float32) for p in point64]
    want_dtype = np.asarray(row.ref(*point32, **case.params)).dtype
    assert out32.dtype == want_dtype, f"dtype rule {out32.dtype}, NumPy {want_dtype}"
    got32 = np.asarray(sd.compile(out32, inputs=xs32)(*point32))
    assert got32.dtype == want_dtype
    got64 = np.asarray(sd.compile(out64, inputs=xs64)(*point64))
    _assert_close(got32, got64, F32_RTOL, F32_ATOL, "float32 value")
    if row.gradient != "fd":
        return
    rng = _rng(row, case, "f32")
    y64, weights = _scalar_loss(out64, rng)
    y32 = sd.sum(out32 * sd.const(weights.astype(out32.dtype)))
    for x32, x64 in zip(xs32, xs64):
        g32 = sd.grad(y32, x32)
        v32 = np.asarray(sd.compile(g32, inputs=xs32)(*point32))
        v64 = sd.compile(sd.grad(y64, x64), inputs=xs64)(*point64)
        if out32.dtype == np.float32:
            assert g32.dtype == np.float32, f"grad w.r.t. {x32.name} is {g32.dtype}"
            assert v32.dtype == np.float32, f"compiled grad w.r.t. {x32.name} is {v32.dtype}"
        _assert_close(v32, v64, F32_RTOL, F32_ATOL, f"float32 grad w.r.t. {x32.name}")


# ---------------------------------------------------------------------------------------------
# ops without a gradient, and stop_gradient
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, case", _params("no_gradient", lambda r: r.gradient == "none"))
def test_gradient_through_op_without_one_raises(row, case):
    xs, out = _build(row, case)
    y, _ = _scalar_loss(out, _rng(row, case, "u"))
    names_op = re.compile(rf"\b{re.escape(row.op)}\b")
    with pytest.raises(sd.UndefinedGradientError) as info:
        sd.grad(y, xs)
    assert names_op.search(str(info.value)), str(info.value)
    for x in xs:
        with pytest.raises(sd.UndefinedGradientError) as info:
            sd.jvp(out, x, np.ones(x.shape))
        assert names_op.search(str(info.value)), str(info.value)


@pytest.mark.parametrize("row, case", _params("zero_gradient", lambda r: r.gradient == "zero"))
def test_gradient_through_stop_gradient_is_zero(row, case):
    xs, out = _build(row, case)
    point = _point(row, case)
    y, _ = _scalar_loss(out, _rng(row, case, "u"))
    for x, g in zip(xs, sd.grad(y, xs)):
        assert g.shape == x.shape
        np.testing.assert_array_equal(sd.compile(g, inputs=xs)(*point), np.zeros(x.shape))
        tangent = sd.jvp(out, x, np.ones(x.shape))
        assert tangent.shape == out.shape
        np.testing.assert_array_equal(sd.compile(tangent, inputs=xs)(*point),
                                      np.zeros(out.shape))
