"""check_backward: a hand-written backward pass against symdiff's symbolic vector-Jacobian
product, with finite differences as a third opinion when the two disagree.

For a forward ``y = f(x_1, ..., x_n)`` and an upstream gradient ``u`` (shaped like ``y``), the
backward pass computes ``dL/dx_k = u^T (dy/dx_k)``, the vjp of ``L = sum(u * y)``. symdiff
traces ``f`` once on variables shaped like the inputs, builds ``vjp(y, x_k, u)`` for every
checked input as a graph (build_grad), compiles it, and evaluates it at the inputs in float64
for the given upstream and a few seeded random ones. The user's backward is called with the
same upstream. Entries compare with ``|got - expected| <= atol + rtol * |expected|``, where
``atol`` defaults to ``rtol * max|expected|`` (a scale-aware floor, so entries that cancel to
nearly zero do not count as wrong).

When an input disagrees, the report says how (the verdict) and why it is likely wrong (the
hint): central differences of ``L`` along the disagreement decide which side is right;
one-sided differences at each wrong entry tell a kink (both conventions valid) from a bug; a
float32 run that is right in float64 is "wrong only in float32"; and the pattern of the error
(a sign, a scale of 1/N, a transpose, a missing sum over the batch axis, an error constant
along an axis) is named when it is a typical one.

Integer and bool inputs (labels, indices) are held constant: they reach the forward as the
given arrays, never as variables, and have no gradient.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import (ShapeError, SymdiffError, argument_error, describe, expect_choice,
                      expect_int, expect_number, fmt_shape)
from ..graph import Expr, var
from ..grad import vjp
from ..compiler import compile as compile_graph
from ..transforms import _user_line

DEFAULT_RTOL = {"float64": 1e-6, "float32": 1e-3}
KINK_SAMPLE = 24      # wrong entries probed by one-sided differences (worst first)
WORST_SHOWN = 5       # worst entries listed per input
VERDICTS = ("ok", "wrong", "wrong only at kinks", "wrong only in float32", "disputed")


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
@dataclass
class InputReport:
    """How one input's gradient compared.

    ``max_abs_err`` is ``max |got - expected|``; ``max_rel_err`` the same over
    ``max |expected|`` (normwise, so entries that cancel to nearly zero do not dominate);
    ``worst`` lists ``(index, expected, got)`` for the largest errors; ``verdict`` is one of
    ``VERDICTS``; ``hint`` names a typical pattern when one fits; ``opinion`` is what finite
    differences said when symdiff and the backward disagreed."""

    name: str
    shape: tuple
    ok: bool
    verdict: str
    max_abs_err: float
    max_rel_err: float
    mismatches: int
    size: int
    worst: list = field(default_factory=list)
    hint: str | None = None
    opinion: str | None = None

    def lines(self) -> list[str]:
        status = "ok" if self.verdict == "ok" else self.verdict.upper()
        head = (f"  {self.name:<10} {fmt_shape(self.shape):<14} {status:<10} "
                f"max abs err {self.max_abs_err:.3g}, rel {self.max_rel_err:.3g}")
        if self.mismatches:
            head += f" ({self.mismatches} of {self.size} entries off)"
        out = [head]
        if self.hint:
            out.append(f"      hint: {self.hint}")
        if self.opinion:
            out.append(f"      {self.opinion}")
        if self.mismatches and self.worst:
            out.append(f"      {'index':<16}{'expected (symdiff)':>22}{'got (backward)':>22}")
            for index, want, got in self.worst:
                out.append(f"      {str(index):<16}{want:>22.12g}{got:>22.12g}")
        return out


@dataclass
class BackwardReport:
    """The result of :func:`check_backward`: ``.ok``, ``.inputs`` (name -> InputReport, in
    ``wrt`` order), the tolerances used and how many upstream gradients were tried.
    ``report["w"]`` is the InputReport of ``w``; ``str(report)`` reads as a diff."""

    ok: bool
    inputs: dict
    forward: str
    backward: str
    upstreams: int
    rtol: float
    atol: float | None
    seconds: float

    def __bool__(self):
        return self.ok

    def __getitem__(self, name: str) -> InputReport:
        return self.inputs[name]

    @property
    def max_abs_err(self) -> float:
        return max((r.max_abs_err for r in self.inputs.values()), default=0.0)

    @property
    def max_rel_err(self) -> float:
        return max((r.max_rel_err for r in self.inputs.values()), default=0.0)

    def __str__(self):
        wrong = [r.name for r in self.inputs.values() if not r.ok]
        kinked = [r.name for r in self.inputs.values() if r.ok and r.verdict != "ok"]
        status = "ok" if self.ok else f"WRONG gradient for {', '.join(wrong)}"
        if kinked:
            status += f" ({', '.join(kinked)}: differs only at kinks)"
        lines = [f"check_backward({self.forward}, {self.backward}): {status}"]
        for r in self.inputs.values():
            lines.extend(r.lines())
        floor = "rtol * max|expected|" if self.atol is None else f"{self.atol:g}"
        lines.append(f"  compared at {self.upstreams} upstream gradient(s) with rtol "
                     f"{self.rtol:g}, atol {floor}, in {self.seconds * 1e3:.1f} ms")
        return "\n".join(lines)

    __repr__ = __str__


# ---------------------------------------------------------------------------------------------
# argument handling
# ---------------------------------------------------------------------------------------------
def _label(fn) -> str:
    return getattr(fn, "__name__", None) or repr(fn)


def _input_array(value, what: str) -> np.ndarray:
    if isinstance(value, Expr):
        raise SymdiffError(f"check_backward: {what} is a symdiff Expr; pass NumPy arrays "
                           f"(the forward is traced on variables shaped like them)")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # any conversion failure is the caller's input
        raise SymdiffError(f"check_backward: {what} ({describe(value)}) is not an array: "
                           f"{exc}") from None
    if arr.dtype.kind not in "biuf":
        raise SymdiffError(f"check_backward: {what} must be a numeric array, got dtype "
                           f"{arr.dtype} ({describe(value)})")
    if arr.dtype.kind == "f" and arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def _input_names(forward, count: int, names) -> list[str]:
    """The forward's positional parameter names (the variables are named after them)."""
    if names is not None:
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        names = list(names)
        if len(names) != count or not all(isinstance(n, str) and n.isidentifier()
                                           for n in names):
            raise argument_error("check_backward", "names",
                                 f"{count} Python identifiers, one per input", names)
        return names
    found = []
    try:
        for p in inspect.signature(forward).parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                found.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                break
    except (TypeError, ValueError):  # builtins and some callables have no signature
        pass
    result = []
    for k in range(count):
        name = found[k] if k < len(found) else f"x{k}"
        result.append(name if name.isidentifier() else f"x{k}")
    if len(set(result)) != count:
        result = [f"x{k}" for k in range(count)]
    return result


def _resolve_wrt(wrt, names: list[str], arrays: list[np.ndarray]) -> list[int]:
    floats = [k for k, a in enumerate(arrays) if a.dtype.kind == "f"]
    if wrt is None:
        if not floats:
            raise SymdiffError("check_backward: no float input to differentiate with respect "
                               "to (integer and bool inputs are held constant)")
        return floats
    items = [wrt] if isinstance(wrt, (str, int)) else list(wrt)
    positions = []
    for item in items:
        if isinstance(item, str) and item in names:
            k = names.index(item)
        elif isinstance(item, int) and not isinstance(item, bool) and -len(names) <= item < len(
                names):
            k = item % len(names)
        else:
            raise SymdiffError(f"check_backward: wrt names {item!r}, which is not an input "
                               f"(inputs: {', '.join(names)})")
        if k not in floats:
            raise SymdiffError(f"check_backward: wrt names {names[k]!r}, which has dtype "
                               f"{arrays[k].dtype}; only float inputs have gradients")
        if k in positions:
            raise SymdiffError(f"check_backward: wrt names {names[k]!r} twice")
        positions.append(k)
    if not positions:
        raise SymdiffError("check_backward: wrt is empty")
    return positions


# ---------------------------------------------------------------------------------------------
# the symbolic side: trace once, vjp, compile
# ---------------------------------------------------------------------------------------------
def _output_of(result, forward_name: str, cache: bool) -> Expr:
    if cache:
        if not isinstance(result, tuple) or len(result) != 2:
            raise SymdiffError(f"check_backward: with cache=True, {forward_name} must return "
                               f"(out, cache), got {describe(result)}")
        result = result[0]
    if isinstance(result, tuple) and not cache:
        raise SymdiffError(f"check_backward: {forward_name} returned a tuple of "
                           f"{len(result)}; a forward returns one array (for a CS231n-style "
                           f"(out, cache) pair, pass cache=True)")
    if isinstance(result, Expr):
        if result.dtype.kind != "f":
            raise SymdiffError(f"check_backward: {forward_name} returns a {result.dtype} "
                               f"value; its output must be a float array to have a gradient")
        return result
    if isinstance(result, np.ndarray) and result.dtype == object:
        raise SymdiffError(f"check_backward: symdiff cannot trace {forward_name}: it returned "
                           f"a NumPy object array, so some NumPy call in it did not dispatch "
                           f"to symdiff (write it with np.* functions symdiff supports, or "
                           f"with symdiff's own functions)")
    raise SymdiffError(f"check_backward: symdiff cannot trace {forward_name}: it returned "
                       f"{describe(result)}, which does not depend on the traced inputs (the "
                       f"inputs were turned into plain numbers or arrays, e.g. by np.asarray, "
                       f"float() or an in-place write)")


def _upstream_name(names: list[str]) -> str:
    name = "upstream"
    while name in names:
        name += "_"
    return name


class _Symbolic:
    """The traced forward, its vjp graphs and their compiled functions (float64)."""

    def __init__(self, forward, arrays, names, wrt, cache):
        self.forward_name = _label(forward)
        self.float_positions = [k for k, a in enumerate(arrays) if a.dtype.kind == "f"]
        self.variables = {k: var(names[k], arrays[k].shape, "float64")
                          for k in self.float_positions}
        traced_args = [self.variables.get(k, a) for k, a in enumerate(arrays)]
        try:
            result = forward(*traced_args)
        except Exception as exc:
            shown = ", ".join(f"{names[k]}: {fmt_shape(arrays[k].shape)}"
                              for k in self.float_positions)
            line = _user_line(exc, forward)
            where = f" at {line}" if line else ""
            raise SymdiffError(
                f"check_backward: symdiff cannot trace {self.forward_name}: calling it on "
                f"symdiff variables ({shown}) raised {type(exc).__name__}{where}: "
                f"{exc}") from exc
        self.out = _output_of(result, self.forward_name, cache)
        inputs = [self.variables[k] for k in self.float_positions]
        self.input_names = [names[k] for k in self.float_positions]
        self.upstream = var(_upstream_name(names), self.out.shape, "float64")
        grads = vjp(self.out, [self.variables[k] for k in wrt], self.upstream)
        self.gradient_fn = compile_graph(grads, inputs=[*inputs, self.upstream])
        self._forward_fn = None
        self._inputs = inputs

    def gradients(self, values64: list, upstream: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(g) for g in self.gradient_fn(*values64, upstream)]

    def loss(self, values64: list, upstream: np.ndarray) -> float:
        """``L = sum(u * f(x))`` in float64: what finite differences differentiate."""
        if self._forward_fn is None:
            self._forward_fn = compile_graph(self.out, inputs=self._inputs)
        return float(np.sum(upstream * self._forward_fn(*values64)))


# ---------------------------------------------------------------------------------------------
# the user's side
# ---------------------------------------------------------------------------------------------
def _call_backward(forward, backward, arrays, upstream, cache: bool):
    fwd, bwd = _label(forward), _label(backward)
    copies = [a.copy() for a in arrays]
    if cache:
        try:
            result = forward(*copies)
        except Exception as exc:
            raise SymdiffError(f"check_backward: {fwd} raised {type(exc).__name__} on the "
                               f"input arrays: {exc}") from exc
        if not isinstance(result, tuple) or len(result) != 2:
            raise SymdiffError(f"check_backward: with cache=True, {fwd} must return "
                               f"(out, cache), got {describe(result)}")
        args = (upstream.copy(), result[1])
    else:
        args = (upstream.copy(), *copies)
    try:
        return backward(*args)
    except Exception as exc:
        call = f"{bwd}(upstream, cache)" if cache else f"{bwd}(upstream, *inputs)"
        raise SymdiffError(f"check_backward: {call} raised {type(exc).__name__}: {exc}") \
            from exc


def _split_gradients(got, bwd: str, names, wrt, n_inputs) -> list:
    """The backward's return value as one item per ``wrt`` input (its own convention: one
    array, or a tuple/list in ``wrt`` order, or one per input with the others ignored)."""
    wanted = ", ".join(names[k] for k in wrt)
    if len(wrt) == 1 and not isinstance(got, tuple):
        return [got]
    if not isinstance(got, (tuple, list)):
        raise SymdiffError(f"check_backward: {bwd} returned one value ({describe(got)}), "
                           f"expected {len(wrt)} gradients as a tuple ({wanted})")
    items = list(got)
    if len(items) == n_inputs and n_inputs != len(wrt):
        items = [items[k] for k in wrt]
    if len(items) != len(wrt):
        raise SymdiffError(f"check_backward: {bwd} returned {len(items)} gradient(s), "
                           f"expected {len(wrt)} ({wanted}, in that order)")
    return items


def _gradient_array(value, name: str, bwd: str) -> np.ndarray:
    if value is None or isinstance(value, Expr):
        raise SymdiffError(f"check_backward: {bwd} returned {describe(value)} as the gradient "
                           f"of {name!r}; expected a NumPy array")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # anything unconvertible is the backward's fault
        raise SymdiffError(f"check_backward: {bwd}'s gradient of {name!r} "
                           f"({describe(value)}) is not an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise SymdiffError(f"check_backward: {bwd}'s gradient of {name!r} must be a numeric "
                           f"array, got dtype {arr.dtype} ({describe(value)})")
    return arr.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# diagnosis: shapes, patterns, kinks, finite differences
# ---------------------------------------------------------------------------------------------
def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6) -> bool:
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * scale))


def _sum_to(g: np.ndarray, shape: tuple):
    """``g`` summed over the axes broadcasting to ``g.shape`` added (None if it cannot)."""
    lead = g.ndim - len(shape)
    if lead < 0:
        return None, ()
    axes = tuple(range(lead))
    reduced = g.sum(axis=axes) if axes else g
    stretched = tuple(i for i, d in enumerate(shape) if d == 1 and reduced.shape[i] != 1)
    if stretched:
        reduced = reduced.sum(axis=stretched, keepdims=True)
    if reduced.shape != shape:
        return None, ()
    return reduced, axes + tuple(lead + i for i in stretched)


def _shape_hint(expected: np.ndarray, got: np.ndarray) -> str:
    matches = "and then it matches"
    if got.ndim == 2 and got.shape == expected.shape[::-1]:
        right = _close(got.T, expected)
        return ("off by a transpose: the gradient has the transposed shape"
                + (f" ({matches})" if right else ""))
    reduced, axes = _sum_to(got, expected.shape)
    if reduced is not None:
        right = _close(reduced, expected)
        what = ("missing sum over the batch axis (axis 0)" if axes == (0,)
                else f"broadcast not reduced: sum over axes {axes}")
        return what + (f" ({matches})" if right else "")
    if got.size == expected.size:
        right = _close(got.reshape(expected.shape), expected)
        return ("wrong shape with the right number of entries: reshape it"
                + (f" ({matches})" if right else ""))
    return "wrong shape"


def _scale_candidates(shapes) -> list[int]:
    sizes = set()
    for shape in shapes:
        sizes.update(d for d in shape if d > 1)
        total = int(np.prod(shape, dtype=np.int64))
        if total > 1:
            sizes.add(total)
    return sorted(sizes)


def _value_hint(expected: np.ndarray, got: np.ndarray, sizes: list[int]) -> str | None:
    """A typical pattern of ``got`` against ``expected`` (same shapes), or None."""
    if not np.all(np.isfinite(got)):
        return "your gradient has non-finite entries (nan or inf)"
    norm_e, norm_g = float(np.linalg.norm(expected)), float(np.linalg.norm(got))
    if norm_e == 0.0:
        return "the expected gradient is zero here: the output does not depend on this input"
    if norm_g == 0.0:
        return "your gradient is all zeros"
    c = float(np.vdot(got, expected)) / norm_e ** 2
    if float(np.linalg.norm(got - c * expected)) <= 1e-6 * norm_g:
        if abs(c + 1.0) < 1e-6:
            return "sign flipped: your gradient is minus the expected one"
        for n in sizes:
            if abs(c * n - 1.0) < 1e-6:
                return (f"scaled by 1/{n}: a mean where the gradient needs a sum (mean vs sum "
                        f"over an axis of size {n})")
            if abs(c / n - 1.0) < 1e-6:
                return (f"scaled by {n}: a sum where the forward takes a mean over an axis of "
                        f"size {n} (mean vs sum)")
        return f"scaled by {c:.6g}: your gradient is a constant multiple of the expected one"
    if expected.ndim == 2 and expected.shape[0] == expected.shape[1] \
            and _close(got, expected.T):
        return "off by a transpose: your gradient is the transpose of the expected one"
    error = got - expected
    for axis in range(expected.ndim):
        if expected.shape[axis] > 1 and _close(error, np.broadcast_to(
                error.mean(axis=axis, keepdims=True), error.shape), 1e-6):
            return (f"the error is the same at every position along axis {axis}: a missing or "
                    f"extra term that does not vary along axis {axis}, such as a mean over the "
                    f"batch (batch norm's dx has two such terms)")
    return None


def _with(values: list, position: int, array: np.ndarray) -> list:
    out = list(values)
    out[position] = array
    return out


def _finite_difference_opinion(symbolic, values64, slot, upstream, expected, got) -> tuple:
    """Which side finite differences of ``L = sum(u * f)`` take, along the disagreement.

    Returns ``(side, text)`` with side "symdiff", "backward" or None (undecided)."""
    if not np.all(np.isfinite(got)):
        return None, None
    direction = got - expected
    direction = direction / np.linalg.norm(direction)
    x = values64[slot]
    h = 1e-5 * max(1.0, float(np.max(np.abs(x), initial=0.0)))
    plus = symbolic.loss(_with(values64, slot, x + h * direction), upstream)
    minus = symbolic.loss(_with(values64, slot, x - h * direction), upstream)
    fd = (plus - minus) / (2 * h)
    e, g = float(np.vdot(expected, direction)), float(np.vdot(got, direction))
    numbers = f"finite differences {fd:.8g}, symdiff {e:.8g}, backward {g:.8g}"
    if abs(fd - e) * 10 <= abs(fd - g):
        return "symdiff", (f"finite differences side with symdiff (slope along the "
                           f"disagreement: {numbers})")
    if abs(fd - g) * 10 <= abs(fd - e):
        return "backward", (f"finite differences side with the backward: symdiff's gradient "
                            f"looks wrong here, please report it ({numbers})")
    return None, f"finite differences are undecided ({numbers})"


def _all_at_kinks(symbolic, values64, slot, upstream, expected, got, wrong) -> bool:
    """Whether every sampled wrong entry sits on a kink of ``L`` (left and right slopes differ)
    and the backward's value there lies between those slopes (a valid one-sided choice)."""
    flat = np.flatnonzero(wrong)
    order = np.argsort(-np.abs(got - expected).ravel()[flat], kind="stable")
    x = values64[slot]
    scale = float(np.max(np.abs(expected), initial=0.0))
    base = symbolic.loss(values64, upstream)
    for i in flat[order[:KINK_SAMPLE]]:
        index = np.unravel_index(i, x.shape)
        h = 1e-6 * max(1.0, abs(float(x[index])))
        step = np.zeros_like(x)
        step[index] = h
        right = (symbolic.loss(_with(values64, slot, x + step), upstream) - base) / h
        left = (base - symbolic.loss(_with(values64, slot, x - step), upstream)) / h
        jump = abs(right - left)
        if jump <= 1e-3 * (abs(right) + abs(left)) + 1e-4 * scale:
            return False
        tol = 1e-3 * jump + 1e-4 * scale
        if not min(left, right) - tol <= float(got[index]) <= max(left, right) + tol:
            return False
    return True


@dataclass
class _Trial:
    """One input at one upstream: the arrays compared and the mask of wrong entries."""

    upstream: np.ndarray
    expected: np.ndarray
    got: np.ndarray
    wrong: np.ndarray
    badness: float


def _compare(expected, got, rtol, atol) -> tuple:
    scale = float(np.max(np.abs(expected), initial=0.0))
    floor = (rtol * scale if scale > 0 else rtol) if atol is None else atol
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(got - expected)
        allowed = floor + rtol * np.abs(expected)
        wrong = ~(diff <= allowed)
        badness = float(np.max(diff / allowed, initial=0.0))  # nan propagates: see below
    return wrong, (np.inf if np.isnan(badness) else badness)


# ---------------------------------------------------------------------------------------------
# the entry points
# ---------------------------------------------------------------------------------------------
def check_backward(forward, backward, *inputs, upstream=None, wrt=None, rtol=None, atol=None,
                   cache: bool = False, trials: int = 2, seed: int = 0, kinks: str = "allow",
                   names=None) -> BackwardReport:
    """Compare a hand-written ``backward`` with symdiff's exact vjp of ``forward``.

    ``forward(*inputs) -> out`` is NumPy-style code; symdiff calls it once on variables named
    after its parameters (float inputs; integer inputs are passed as they are and held
    constant). ``backward(upstream, *inputs)`` returns the gradients of ``sum(upstream * out)``
    w.r.t. the ``wrt`` inputs (names or positions; default every float input): one array, or
    a tuple in ``wrt`` order. With ``cache=True`` the pair is CS231n-style:
    ``forward(*inputs) -> (out, cache)`` and ``backward(upstream, cache)``.

    The gradients are compared at ``upstream`` (if given) and ``trials`` seeded random
    upstreams, in float64 on symdiff's side. ``rtol`` defaults to 1e-6 (1e-3 when an input
    is float32); ``atol`` to ``rtol * max|expected|`` per input. ``kinks="allow"`` passes an
    input whose only wrong entries sit on kinks with a valid one-sided value there
    (``"fail"`` counts them as wrong).

    Returns a :class:`BackwardReport`. Raises SymdiffError naming the culprit when the forward
    cannot be traced, the backward raises, returns the wrong number of gradients, non-arrays,
    or a gradient of the wrong shape (a ShapeError naming both shapes and a likely cause).

    >>> import numpy as np
    >>> from symdiff.testing import check_backward
    >>> def forward(x, w):
    ...     return x @ w
    >>> def backward(dout, x, w):
    ...     return dout @ w.T, x.T @ dout
    >>> rng = np.random.default_rng(0)
    >>> check_backward(forward, backward, rng.normal(size=(4, 3)), rng.normal(size=(3, 2))).ok
    True
    """
    start = time.perf_counter()
    function = "check_backward"
    for argument, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise argument_error(function, argument, "a callable", fn)
    if not inputs:
        raise SymdiffError("check_backward: no inputs given (pass the arrays forward takes)")
    trials = expect_int(trials, "trials", function, minimum=0 if upstream is not None else 1)
    seed = expect_int(seed, "seed", function, minimum=0)
    expect_choice(kinks, "kinks", function, ("allow", "fail"))
    if cache not in (True, False):
        raise argument_error(function, "cache", "True or False", cache)
    arrays = [_input_array(a, f"input {k}") for k, a in enumerate(inputs)]
    names = _input_names(forward, len(arrays), names)
    wrt_positions = _resolve_wrt(wrt, names, arrays)
    float_arrays = [arrays[k] for k in range(len(arrays)) if arrays[k].dtype.kind == "f"]
    user_dtype = np.result_type(*float_arrays) if float_arrays else np.dtype(np.float64)
    single = user_dtype == np.float32
    rtol = DEFAULT_RTOL[str(user_dtype)] if rtol is None else expect_number(rtol, "rtol",
                                                                          function)
    atol = None if atol is None else expect_number(atol, "atol", function)

    symbolic = _Symbolic(forward, arrays, names, wrt_positions, cache)
    slots = {k: j for j, k in enumerate(symbolic.float_positions)}
    values64 = [arrays[k].astype(np.float64) for k in symbolic.float_positions]
    out_shape = symbolic.out.shape
    upstreams = []
    if upstream is not None:
        u = _input_array(upstream, "upstream")
        if u.shape != out_shape:
            raise ShapeError(f"check_backward: upstream has shape {fmt_shape(u.shape)}, but "
                             f"the forward's output has shape {fmt_shape(out_shape)}")
        upstreams.append(u.astype(np.float64))
    rng = np.random.default_rng(seed)
    upstreams += [np.asarray(rng.standard_normal(out_shape)) for _ in range(trials)]

    bwd = _label(backward)
    worst: dict[int, _Trial] = {}
    for u in upstreams:
        expected = symbolic.gradients(values64, u)
        got = _call_backward(forward, backward, arrays, u.astype(user_dtype), cache)
        items = _split_gradients(got, bwd, names, wrt_positions, len(arrays))
        for k, e, item in zip(wrt_positions, expected, items):
            g = _gradient_array(item, names[k], bwd)
            if g.shape != e.shape:
                raise ShapeError(f"check_backward: {bwd} returned a gradient of shape "
                                 f"{fmt_shape(g.shape)} for {names[k]!r}, whose shape is "
                                 f"{fmt_shape(e.shape)}; {_shape_hint(e, g)}")
            wrong, badness = _compare(e, g, rtol, atol)
            if k not in worst or badness > worst[k].badness:
                worst[k] = _Trial(u, e, g, wrong, badness)

    sizes = _scale_candidates([out_shape] + [a.shape for a in arrays])
    reports = {}
    for k in wrt_positions:
        trial = worst[k]
        reports[names[k]] = _diagnose(names[k], trial, symbolic, values64, slots[k],
                                      wrt_positions.index(k), sizes, single, rtol, atol, kinks,
                                      lambda u, k=k: _float64_run(forward, backward, arrays, u,
                                                                  cache, bwd, names,
                                                                  wrt_positions, k))
    return BackwardReport(all(r.ok for r in reports.values()), reports, _label(forward), bwd,
                          len(upstreams), rtol, atol, time.perf_counter() - start)


def _float64_run(forward, backward, arrays, upstream, cache, bwd, names, wrt, k):
    """The user's backward on float64 copies of the inputs: its gradient of input ``k``."""
    wide = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    got = _call_backward(forward, backward, wide, upstream, cache)
    items = _split_gradients(got, bwd, names, wrt, len(arrays))
    return _gradient_array(items[wrt.index(k)], names[k], bwd)


def _diagnose(name, trial: _Trial, symbolic, values64, slot, wrt_index, sizes, single, rtol,
              atol, kinks, float64_run) -> InputReport:
    e, g, wrong = trial.expected, trial.got, trial.wrong
    with np.errstate(invalid="ignore"):
        diff = np.abs(g - e)
    diff = np.where(np.isnan(diff), np.inf, diff)
    scale = float(np.max(np.abs(e), initial=0.0))
    max_abs = float(np.max(diff, initial=0.0))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    mismatches = int(np.count_nonzero(wrong))
    candidates = np.flatnonzero(wrong) if mismatches else np.arange(diff.size)
    if candidates.size > WORST_SHOWN:  # a partial sort: inputs can have millions of entries
        top = np.argpartition(-diff.ravel()[candidates], WORST_SHOWN)[:WORST_SHOWN]
        candidates = candidates[top]
    ranked = candidates[np.argsort(-diff.ravel()[candidates], kind="stable")]
    shown = [(tuple(int(i) for i in np.unravel_index(i, e.shape)), float(e.flat[i]),
              float(g.flat[i])) for i in ranked[:WORST_SHOWN]]
    report = InputReport(name, e.shape, True, "ok", max_abs, max_rel, mismatches, e.size, shown)
    if not mismatches:
        return report
    report.ok = False
    if single:
        wide = float64_run(trial.upstream)
        if not _compare(e, wide, DEFAULT_RTOL["float64"], None)[0].any():
            report.verdict = "wrong only in float32"
            report.hint = ("right in float64, off in float32: precision is lost (an overflow "
                           "or a cancellation in float32; compute that step in float64 or "
                           "rearrange it)")
            return report
    if np.all(np.isfinite(g)) and _all_at_kinks(symbolic, values64, slot, trial.upstream, e, g,
                                                wrong):
        report.verdict = "wrong only at kinks"
        report.ok = kinks == "allow"
        report.hint = ("every wrong entry sits on a kink (left and right slopes differ) and "
                       "the backward picks a valid one-sided slope there; symdiff's convention "
                       "is documented in the README (relu'(0) = 0, ties share the gradient)")
        return report
    side, report.opinion = _finite_difference_opinion(symbolic, values64, slot, trial.upstream,
                                                      e, g)
    if side == "backward":
        report.verdict = "disputed"
        return report
    report.verdict = "wrong"
    report.hint = _value_hint(e, g, sizes) or _transposed_operand_hint(
        symbolic, values64, trial.upstream, g, wrt_index)
    return report


def _transposed_operand_hint(symbolic, values64, upstream, got, wrt_index) -> str | None:
    """"Off by a transpose" inside a product: ``got`` is what the exact gradient would be if
    one square matrix input were transposed (``dout @ w`` where ``dout @ w.T`` belongs)."""
    for j, x in enumerate(values64):
        if x.ndim == 2 and x.shape[0] == x.shape[1] > 1:
            swapped = symbolic.gradients(_with(values64, j, x.T.copy()), upstream)[wrt_index]
            if _close(got, swapped):
                name = symbolic.input_names[j]
                return (f"off by a transpose: the backward uses {name} where {name}.T belongs "
                        f"(or the reverse): its result is the exact gradient with {name} "
                        f"transposed")
    return None


def assert_backward_close(forward, backward, *inputs, **options) -> BackwardReport:
    """:func:`check_backward`, raising AssertionError with the report when a gradient is wrong
    (for pytest); returns the report when every gradient is right.

    >>> import numpy as np
    >>> from symdiff.testing import assert_backward_close
    >>> assert_backward_close(lambda x: x * x, lambda g, x: 2 * x * g, np.arange(3.0)).ok
    True
    """
    report = check_backward(forward, backward, *inputs, **options)
    if not report.ok:
        raise AssertionError("\n" + str(report))
    return report
