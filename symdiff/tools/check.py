"""check_grad: the compiled symbolic gradient against central finite differences.

``f'(x) ~ (f(x + h) - f(x - h)) / 2h`` (the lecture notes' gradient check), evaluated in float64
(a float32 graph is re-typed to float64 first), with the step scaled to each entry,
``h = eps * max(1, |x|)``. A variable with more than ``max_full`` entries is checked along a few
random directions instead of entry by entry (one pair of evaluations per direction).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ShapeError, SymdiffError, expect_int, expect_mapping, expect_number
from ..graph import (Expr, _make_var, as_expr, const, expect_expr, expect_exprs, free_vars,
                     substitute)
from ..grad import grad
from ..compiler import CompiledFunction
from ..inputs import numeric_array
from .. import ops

DEFAULT_EPS = 6e-6       # about cbrt(machine epsilon): balances truncation and rounding
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6


@dataclass
class VariableReport:
    """How one variable's gradient compared: errors, method ("full" or "directions")."""

    name: str
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    ok: bool
    method: str


@dataclass
class CheckResult:
    """``.ok``, ``.max_abs_err``, ``.max_rel_err`` and ``.report`` (name -> VariableReport)."""

    ok: bool
    max_abs_err: float
    max_rel_err: float
    report: dict = field(default_factory=dict)

    def __bool__(self):
        return self.ok

    def __str__(self):
        lines = [f"check_grad: {'ok' if self.ok else 'MISMATCH'} "
                 f"(max abs err {self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g})"]
        for r in self.report.values():
            lines.append(f"  {r.name:<12} {str(r.shape):<12} abs {r.max_abs_err:.3g}  "
                         f"rel {r.max_rel_err:.3g}  {r.method:<10} {'ok' if r.ok else 'MISMATCH'}")
        return "\n".join(lines)


def _as_float64(y: Expr, variables: list[Expr]):
    """``y`` with every float32 variable replaced by a float64 one of the same name."""
    mapping = {v: _make_var(v.name, v.shape, np.dtype(np.float64))
               for v in variables if v.dtype == np.float32}
    if not mapping:
        return y, variables
    new_y = substitute([y], mapping)[0]
    return new_y, [mapping.get(v, v) for v in variables]


def check_grad(y: Expr, wrt, at: dict, eps=None, rtol=None, atol=None, max_full: int = 2000,
               directions: int = 4, seed: int = 0) -> CheckResult:
    """Compare ``grad(y, wrt)`` with central differences at the point ``at`` (name -> array).

    A non-scalar ``y`` is checked through ``sum(y * u)`` with a fixed random ``u``. Passes when
    ``|symbolic - numeric| <= atol + rtol * |numeric|`` everywhere.

    >>> import symdiff as sd
    >>> x = sd.var("x", (3,))
    >>> sd.check_grad(sd.sum(sd.sin(x)), x, {"x": [0.1, 0.2, 0.3]}).ok
    True
    """
    eps = DEFAULT_EPS if eps is None else expect_number(eps, "eps", "check_grad", positive=True)
    rtol = DEFAULT_RTOL if rtol is None else expect_number(rtol, "rtol", "check_grad")
    atol = DEFAULT_ATOL if atol is None else expect_number(atol, "atol", "check_grad")
    max_full = expect_int(max_full, "max_full", "check_grad", minimum=0)
    directions = expect_int(directions, "directions", "check_grad", minimum=1)
    rng = np.random.default_rng(expect_int(seed, "seed", "check_grad", minimum=0))
    y = as_expr(y)
    wrt_list, _ = expect_exprs(wrt, "wrt", "check_grad")
    for w in wrt_list:
        expect_expr(w, "each of wrt", "check_grad", variable=True)
    expect_mapping(at, "at", "check_grad")
    variables = free_vars([y, *wrt_list])
    missing = [v.name for v in variables if v.name not in at]
    if missing:
        raise SymdiffError(f"check_grad: no value given for {missing}")
    if y.shape != ():
        u = rng.standard_normal(y.shape)
        y = ops.sum(y * const(u.astype(y.dtype)))
    y64, vars64 = _as_float64(y, variables)
    position = {id(v): k for k, v in enumerate(variables)}
    wrt64 = [vars64[position[id(w)]] if id(w) in position else w for w in wrt_list]
    point = {}
    for v in vars64:
        value = numeric_array(at[v.name], f"check_grad: value for {v.name!r}",
                              "a numeric array").astype(
            np.float64 if v.dtype.kind == "f" else v.dtype)
        if value.shape != v.shape:
            raise ShapeError(f"check_grad: value for {v.name!r} has shape {value.shape}, "
                             f"expected {v.shape}")
        point[v.name] = value
    f = CompiledFunction(y64, vars64)
    symbolic = CompiledFunction(grad(y64, wrt64), vars64)(**point)

    def value_at(name, array):
        return float(f(**{**point, name: array}))

    reports = {}
    for w, g in zip(wrt64, symbolic):
        x0 = point[w.name]
        g = np.asarray(g, dtype=np.float64)
        step = eps * np.maximum(1.0, np.abs(x0))
        if x0.size <= max_full:
            numeric = np.empty(x0.shape)
            for i in np.ndindex(x0.shape):
                plus, minus = x0.copy(), x0.copy()
                plus[i] += step[i]
                minus[i] -= step[i]
                numeric[i] = (value_at(w.name, plus) - value_at(w.name, minus)) / (
                    plus[i] - minus[i])
            sym_values, num_values, method = g, numeric, "full"
        else:
            sym_values, num_values = [], []
            for _ in range(directions):
                d = rng.standard_normal(x0.shape)
                d /= np.linalg.norm(d)
                h = eps * max(1.0, float(np.abs(x0).max()))
                num_values.append((value_at(w.name, x0 + h * d) - value_at(w.name, x0 - h * d))
                                  / (2 * h))
                sym_values.append(float(np.sum(g * d)))
            sym_values, num_values = np.array(sym_values), np.array(num_values)
            method = "directions"
        diff = np.abs(sym_values - num_values)
        scale = np.maximum(np.abs(sym_values), np.abs(num_values))
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), 0.0)
        ok = bool(np.all(diff <= atol + rtol * np.abs(num_values)))
        reports[w.name] = VariableReport(w.name, w.shape, float(diff.max(initial=0.0)),
                                         float(rel.max(initial=0.0)), ok, method)
    return CheckResult(all(r.ok for r in reports.values()),
                       max((r.max_abs_err for r in reports.values()), default=0.0),
                       max((r.max_rel_err for r in reports.values()), default=0.0), reports)
