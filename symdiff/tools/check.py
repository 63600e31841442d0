"""check_grad: the compiled symbolic gradient against central finite differences.

``f'(x) ~ (f(x + h) - f(x - h)) / 2h`` (the lecture notes' gradient check), evaluated in float64
(a float32 graph is re-typed to float64 first), with the step scaled to each entry,
``h = eps * max(1, |x|)``. A variable with more than ``max_full`` entries is checked along a few
random directions instead of entry by entry (one pair of evaluations per direction).

``localize=True``: when the whole gradient disagrees, each op node on the gradient's paths is
checked alone, its ``bprop`` against finite differences of that op by itself at the input values
it sees in the graph (``<u, op(x + h e_i)> - <u, op(x - h e_i)>`` over ``2h``, ``u`` random).
At a kink (relu at 0, a tie of max) the central difference straddles two slopes, so an entry
also passes when it matches a one-sided difference; a rule that is wrong matches neither. The
first node (topological order) whose rule disagrees is the culprit, named as ``pretty`` names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ShapeError, SymdiffError, expect_int, expect_mapping, expect_number
from ..graph import (Expr, _make_var, apply, as_expr, const, expect_expr, expect_exprs,
                     free_vars, substitute, toposort)
from ..grad import _depends_on, grad
from ..printing import bounded_infix
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

    local: list = field(default_factory=list)  # NodeCheck per op node, with localize=True
    localized: bool = False

    def __bool__(self):
        return self.ok

    @property
    def culprit(self):
        """The first node (topological order) whose own rule disagrees with finite
        differences (a :class:`NodeCheck`), or None."""
        return next((c for c in self.local if not c.ok), None)

    def __str__(self):
        lines = [f"check_grad: {'ok' if self.ok else 'MISMATCH'} "
                 f"(max abs err {self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g})"]
        for r in self.report.values():
            lines.append(f"  {r.name:<12} {str(r.shape):<12} abs {r.max_abs_err:.3g}  "
                         f"rel {r.max_rel_err:.3g}  {r.method:<10} {'ok' if r.ok else 'MISMATCH'}")
        if self.localized:
            culprit = self.culprit
            if culprit is None:
                lines.append(f"localize: each of the {len(self.local)} op nodes agrees with "
                             f"finite differences alone; the mismatch comes from their "
                             f"composition (a kink crossed by the step, or the step size)")
            else:
                lines.append(f"localize: the rule of {culprit.op!r} is wrong at "
                             f"{culprit.name} = {culprit.text}: {culprit.detail}")
        return "\n".join(lines)


@dataclass
class NodeCheck:
    """One op node checked alone: its SSA name, infix text, op name, ``ok``, the worst error and
    the input it was found on (``detail`` says it in words)."""

    name: str
    text: str
    op: str
    ok: bool
    max_abs_err: float
    detail: str = ""


def _as_float64(y: Expr, variables: list[Expr]):
    """``y`` with every float32 variable replaced by a float64 one of the same name."""
    mapping = {v: _make_var(v.name, v.shape, np.dtype(np.float64))
               for v in variables if v.dtype == np.float32}
    if not mapping:
        return y, variables
    new_y = substitute([y], mapping)[0]
    return new_y, [mapping.get(v, v) for v in variables]


def check_grad(y: Expr, wrt, at: dict, eps=None, rtol=None, atol=None, max_full: int = 2000,
               directions: int = 4, seed: int = 0, localize: bool = False) -> CheckResult:
    """Compare ``grad(y, wrt)`` with central differences at the point ``at`` (name -> array).

    A non-scalar ``y`` is checked through ``sum(y * u)`` with a fixed random ``u``. Passes when
    ``|symbolic - numeric| <= atol + rtol * |numeric|`` everywhere. With ``localize=True`` a
    mismatch is traced to the op node whose own rule disagrees (``result.culprit``, a
    :class:`NodeCheck`; ``result.local`` holds every node checked).

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
    if not isinstance(localize, bool):
        raise SymdiffError(f"check_grad: localize must be True or False, got {localize!r}")
    y = user_y = as_expr(y)
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
    result = CheckResult(all(r.ok for r in reports.values()),
                         max((r.max_abs_err for r in reports.values()), default=0.0),
                         max((r.max_rel_err for r in reports.values()), default=0.0), reports)
    if localize and not result.ok:
        user_y64, _ = _as_float64(user_y, variables)
        result.local = _localize(user_y64, wrt64, point, eps, rtol, atol, max_full, rng)
        result.localized = True
    return result


def _localize(y: Expr, wrt: list[Expr], point: dict, eps: float, rtol: float, atol: float,
              max_full: int, rng) -> list[NodeCheck]:
    """Check each op node on the paths from ``wrt`` to ``y`` alone, at the values it sees."""
    from .inspect import node_names  # same layer (tools); inspect imports nothing from here
    order = toposort([y])
    needed = _depends_on(order, wrt)
    names = node_names(order)
    texts = bounded_infix(order, width=40)
    variables = [n for n in order if n.is_var]
    computed = [n for n in order if n.op is not None]
    with np.errstate(all="ignore"):
        values = CompiledFunction(computed, variables)(**{v.name: point[v.name]
                                                          for v in variables})
    value_of = {id(v): point[v.name] for v in variables}
    value_of.update((id(n), np.asarray(v)) for n, v in zip(computed, values))
    checks = []
    for node in computed:
        if id(node) not in needed or not node.op.differentiable:
            continue
        check = _check_node(node, needed, value_of, eps, rtol, atol, max_full, rng, names)
        if check is not None:
            checks.append(NodeCheck(names[id(node)], texts[id(node)], node.op.name, *check))
    return checks


def _check_node(node: Expr, needed, value_of, eps, rtol, atol, max_full, rng, names):
    """(ok, max_abs_err, detail) for one node's bprop against finite differences of its op
    alone, or None when its rule sends nothing to any float input on the path."""
    inputs, free = [], []
    for k, inp in enumerate(node.inputs):
        if inp.is_const:
            inputs.append(inp)
        elif inp.dtype.kind != "f" or id(inp) not in needed:
            inputs.append(const(value_of[id(inp)]))
        else:
            local_var = _make_var(f"x{k}", inp.shape, np.dtype(np.float64))
            inputs.append(local_var)
            free.append((k, local_var))
    local = apply(node.op, inputs)
    u = const(rng.standard_normal(local.shape))
    sent = node.op.bprop(inputs, local, u)
    free = [(k, v) for k, v in free if sent[k] is not None]  # None: "no gradient" by design
    if not free:
        return None
    local_vars = [v for _, v in free]
    f_expr = ops.sum(local * u)
    at = {v.name: np.asarray(value_of[id(node.inputs[k])], np.float64) for k, v in free}
    with np.errstate(all="ignore"):
        f = CompiledFunction(f_expr, local_vars)
        symbolic = CompiledFunction(grad(f_expr, local_vars), local_vars)(**at)
    worst = (0.0, True, "")
    for (k, v), g in zip(free, symbolic):
        x0 = at[v.name]
        g = np.asarray(g, np.float64)
        if x0.size <= max_full:
            probes = [(idx, np.eye(1, x0.size, i).reshape(x0.shape))
                      for i, idx in enumerate(np.ndindex(x0.shape))]
        else:
            probes = [(None, d / np.linalg.norm(d))
                      for d in (rng.standard_normal(x0.shape) for _ in range(4))]
        for idx, direction in probes:
            h = eps * max(1.0, float(np.abs(x0[idx] if idx is not None else x0).max()))
            with np.errstate(all="ignore"):
                center = float(f(**{**at, v.name: x0}))
                plus = float(f(**{**at, v.name: x0 + h * direction}))
                minus = float(f(**{**at, v.name: x0 - h * direction}))
            sym = float(np.sum(g * direction))
            central = (plus - minus) / (2 * h)
            one_sided = ((plus - center) / h, (center - minus) / h)
            err = abs(sym - central)
            # at a kink the central difference averages two slopes; a rule may take either
            agrees = (err <= atol + rtol * abs(central)
                      or any(abs(sym - s) <= 10 * atol + 1e-3 * abs(s) for s in one_sided))
            if not np.isfinite(sym) and not np.isfinite(central):
                agrees = True  # both infinite: no finite step can tell them apart
            if not agrees and (worst[1] or err > worst[0]):
                where = f" at index {idx}" if idx not in (None, ()) else ""
                worst = (err, False, f"d/d{names[id(node.inputs[k])]}{where}: its bprop gives "
                                     f"{sym:.6g}, finite differences of {node.op.name} alone "
                                     f"give {central:.6g}")
            elif worst[1]:
                worst = (max(worst[0], err), True, "")
    err, ok, detail = worst
    return ok, err, detail
