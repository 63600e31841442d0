"""Reductions: sum mean max min prod logsumexp norm argmax variance std, with ``axis`` and
``keepdims``; and the axis-wise scans and orderings cumsum, sort and argsort (with permute, the
permutation along an axis that routes sort's gradient).

Each bprop first restores the reduced axes of the upstream gradient (``_expand``: a reshape that
re-inserts them with size 1) and then broadcasts against the input, so every reduction shares one
way of undoing its shape change. ``mean`` reuses the bprop of ``sum``.
"""
from __future__ import annotations

import numpy as np

from ..errors import NoBatchingRuleError, ShapeError, SymdiffError, expect_bool
from ..graph import Expr, apply, as_expr, const
from ..printing import PREC_MUL, latex_escape, latex_group
from .base import (Op, axes_param, bool_param, check_axis_range, float_dtype, int_param,
                   normalize_axis, normalize_single_axis)
from .kernels import scalar_identity, scalar_spread
from .lowering import Call
from .elementwise import equal, exp, stop_gradient, where
from .shape import batch_all, broadcast_to, getitem, reshape


def _kept_shape(shape: tuple, axes: tuple | None) -> tuple:
    """``shape`` with the reduced ``axes`` kept as size 1 (keepdims=True)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


class Reduce(Op):
    """A reduction over ``axis`` (normalized: sorted tuple or None for all)."""

    lowering = ""  # the namespace function
    keep_dtype = True
    scalar = staticmethod(scalar_identity)  # reducing a 0-d value leaves it

    def __init__(self, axis=None, keepdims=False):
        super().__init__(axis=axes_param(axis, self.name),
                         keepdims=bool_param(keepdims, self.name, "keepdims"))

    needs_entries = False  # True: no identity (max, min, logsumexp), so no empty reduction
    sympy = staticmethod(lambda s, x: x)  # the reduction of one number (a scalar graph)

    def infer(self, x):
        for axis in self.axis or ():
            check_axis_range(axis, x.ndim, self.name, x.shape)
        if self.needs_entries:
            axes = range(x.ndim) if self.axis is None else self.axis
            if any(x.shape[a] == 0 for a in axes) or (x.size == 0 and x.ndim == 0):
                raise ShapeError(f"{self.name}: reduction over a zero-size axis of shape "
                                 f"{x.shape} has no identity")
        kept = _kept_shape(x.shape, self.axis)
        if self.keepdims:
            shape = kept
        else:
            axes = range(x.ndim) if self.axis is None else self.axis
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return shape, self.result_dtype(x.dtype)

    def result_dtype(self, dtype):
        if self.keep_dtype:
            return np.dtype(dtype)
        return float_dtype(dtype)

    def lower(self, x):
        return Call(self.lowering, (x,), (("axis", self.axis), ("keepdims", self.keepdims)))

    def _expand(self, e: Expr, x: Expr) -> Expr:
        """The reduced-shape node ``e`` (out or g) reshaped to keep the reduced axes as 1."""
        return reshape(e, _kept_shape(x.shape, self.axis))

    def _spread(self, e: Expr, x: Expr) -> Expr:
        """``e`` broadcast back to the input's shape."""
        return broadcast_to(self._expand(e, x), x.shape)

    def batch(self, inputs, batched):
        # the same reduction over the same axes, counted past the batch axis (other params,
        # such as variance's ddof, kept)
        x = inputs[0]
        axes = range(x.ndim - 1) if self.axis is None else self.axis
        params = {**dict(self.params), "axis": tuple(a + 1 for a in axes)}
        return apply(type(self)(**params), (x,))


class Sum(Reduce):
    """Sum over ``axis``; gradient: g broadcast back over the summed axes."""

    name, lowering = "sum", "sum"
    loop = "sum"  # folds into its input's loop as a running sum

    def stable_log(self, node):
        # log(sum(exp(x), axis)) = logsumexp(x, axis)
        inner = node.inputs[0]
        if isinstance(inner.op, type(exp)):
            return logsumexp(inner.inputs[0], axis=self.axis, keepdims=self.keepdims)
        return None

    def latex_form(self, inputs, parts):
        extra = self.params_text()
        under = f"_{{\\text{{{latex_escape(extra)}}}}}" if extra else ""
        return f"\\sum{under} {latex_group(parts[0])}", PREC_MUL

    def result_dtype(self, dtype):
        dtype = np.dtype(dtype)
        return np.dtype(np.int64) if dtype.kind in "biu" else dtype

    def bprop(self, inputs, out, g):
        return [self._spread(g, inputs[0])]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


class Mean(Sum):
    """Mean over ``axis``; gradient: the bprop of sum divided by the count."""

    name, lowering = "mean", "mean"
    loop = "mean"

    def stable_log(self, node):
        return None  # (not sum's rule)

    def latex_form(self, inputs, parts):
        return None  # the generic form, not the sum's

    def result_dtype(self, dtype):
        return float_dtype(dtype)

    def bprop(self, inputs, out, g):
        x = inputs[0]
        count = x.size // out.size if out.size else 1
        return [Sum.bprop(self, inputs, out, g / count)[0]]


class Max(Reduce):
    """Max over ``axis``; the gradient is routed to the maximal entries, split equally among
    ties (so max of a constant vector sends g/n to each)."""

    name, lowering, needs_entries, pairwise = "max", "max", True, "maximum"
    sympy_identity, latex = True, r"\max"

    def bprop(self, inputs, out, g):
        x = inputs[0]
        one = const(1, dtype=float_dtype(x.dtype))
        chosen = where(equal(x, self._expand(out, x)), one, 0)
        count = apply(Sum(self.axis, keepdims=True), (chosen,))
        return [chosen * (self._expand(g, x) / count)]


class Min(Max):
    """Min over ``axis``; gradient routed to the minimal entries, ties split equally."""

    name, lowering, latex, pairwise = "min", "min", r"\min", "minimum"


class Prod(Reduce):
    """Product over ``axis``; gradient g * out / x (assumes no zero entries in x)."""

    name, lowering = "prod", "prod"

    def result_dtype(self, dtype):
        return Sum.result_dtype(self, dtype)

    def bprop(self, inputs, out, g):
        x = inputs[0]
        return [self._expand(g * out, x) / x]


class Logsumexp(Reduce):
    """log(sum(exp(x))) over ``axis``, computed with the max subtracted (never overflows);
    gradient g * softmax(x), the softmax also computed with the max m subtracted:
    e^(x - m) / sum(e^(x - m)). (exp(x - out) loses the answer where out rounds: at logits
    [1e15, 1e15] it gives 0.472 for 0.5.)"""

    name, lowering, keep_dtype, needs_entries = "logsumexp", "logsumexp", False, True

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # softmax is invariant to the shift m, so m is a constant to later differentiation
        top = stop_gradient(apply(Max(self.axis, keepdims=True), (x,)))
        e = exp(x - top)
        softmax = e / apply(Sum(self.axis, keepdims=True), (e,))
        return [self._expand(g, x) * softmax]


class Norm(Reduce):
    """L2 norm sqrt(sum(x^2)) over ``axis`` (all entries by default: the Frobenius norm of a
    matrix), computed scaled by max|x| (kernels.norm), so entries from 1e-308 to 1e308 neither
    underflow nor overflow; gradient g x / out (undefined at x = 0, where it gives nan)."""

    name, keep_dtype = "norm", False
    numpy_names = ("linalg.norm",)  # np.linalg.norm (ops/dispatch.py), through numpy_call

    @staticmethod
    def numpy_call(x, ord=None, axis=None, keepdims=False):  # noqa: A002 (NumPy's name)
        """``np.linalg.norm``: the default (2-norm / Frobenius) order only."""
        if ord is not None:
            raise SymdiffError(f"numpy.linalg.norm: ord={ord!r} is not supported by symdiff "
                               f"(only the default L2/Frobenius norm)")
        return norm(x, axis=axis, keepdims=keepdims)
    sympy = "Abs"  # the L2 norm of one number

    scalar = staticmethod(abs)

    def lower(self, x):
        # the scaled kernel (ops/kernels.py norm): no underflow below 1e-154, no overflow above
        return Call("norm", (x,), (("axis", self.axis), ("keepdims", self.keepdims)))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # d|x|/dx = x / |x|, divided first: x / out is near 1 even where 1 / out overflows
        return [self._expand(g, x) * (x / self._expand(out, x))]


class Argmax(Op):
    """Index of the maximum (flattened when ``axis`` is None), as NumPy; no gradient."""

    name = "argmax"
    differentiable = False
    sympy = staticmethod(lambda s, x: s.sp.S.Zero)  # the index of the only entry

    def __init__(self, axis=None):
        super().__init__(axis=None if axis is None else int_param(axis, "argmax", "axis"))

    def infer(self, x):
        if self.axis is not None:
            check_axis_range(self.axis, x.ndim, "argmax", x.shape)
        if x.size == 0:
            raise ShapeError(f"argmax: no entries in shape {x.shape}")
        if self.axis is None:
            return (), np.dtype(np.int64)
        return x.shape[:self.axis] + x.shape[self.axis + 1:], np.dtype(np.int64)

    def lower(self, x):
        return Call("argmax", (x,), (("axis", self.axis),))

    def batch(self, inputs, batched):
        x = inputs[0]
        if self.axis is None:  # the flat index of each batch entry
            return apply(Argmax(1), (reshape(x, (x.shape[0], -1)),))
        return apply(Argmax(self.axis + 1), (x,))


def _reduction(cls):
    def reduce(x, axis=None, keepdims=False) -> Expr:
        x = as_expr(x)
        axes = normalize_axis(axis, x.ndim, cls.name, x.shape)
        return apply(cls(axes, expect_bool(keepdims, "keepdims", cls.name)), (x,))
    reduce.__name__ = reduce.__qualname__ = cls.name
    reduce.__doc__ = f"{cls.__doc__}\n\n``{cls.name}(x, axis=None, keepdims=False)``"
    return reduce


sum = _reduction(Sum)  # noqa: A001 (API name)
mean = _reduction(Mean)
max = _reduction(Max)  # noqa: A001
min = _reduction(Min)  # noqa: A001
prod = _reduction(Prod)
logsumexp = _reduction(Logsumexp)


def norm(x, axis=None, keepdims=False) -> Expr:
    """L2 norm (Frobenius for a matrix when ``axis`` is None)."""
    x = as_expr(x)
    keepdims = expect_bool(keepdims, "keepdims", "norm")
    return apply(Norm(normalize_axis(axis, x.ndim, "norm", x.shape), keepdims), (x,))


def argmax(x, axis=None) -> Expr:
    """Index of the largest entry, as ``np.argmax``; no gradient."""
    x = as_expr(x)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, "argmax", x.shape)
        if len(axis) != 1:
            raise ShapeError("argmax: axis must be a single int or None")
        axis = axis[0]
    return apply(Argmax(axis), (x,))



# ---------------------------------------------------------------------------------------------
# variance and standard deviation
# ---------------------------------------------------------------------------------------------
class Variance(Reduce):
    """NumPy's ``var``: mean((x - mean(x))^2) * n/(n - ddof) over ``axis`` (n entries per
    slice); gradient 2 (x - mean(x)) / (n - ddof) times g. Named ``variance`` because
    ``sd.var`` makes a variable."""

    name, lowering, keep_dtype = "variance", "var", False
    sympy = staticmethod(lambda s, x: s.sp.S.Zero)  # the variance of one number
    scalar = staticmethod(scalar_spread)  # ... is 0 (nan for nan or inf, as NumPy)

    def __init__(self, axis=None, keepdims=False, ddof=0):
        Op.__init__(self, axis=axes_param(axis, self.name),
                    keepdims=bool_param(keepdims, self.name, "keepdims"),
                    ddof=int_param(ddof, self.name, "ddof"))

    def infer(self, x):
        shape, dtype = super().infer(x)
        if self._count(x) - self.ddof <= 0:
            raise ShapeError(f"{self.name}: ddof={self.ddof} leaves no degrees of freedom in "
                             f"{self._count(x)} entries per slice of shape {x.shape}")
        return shape, dtype

    def _count(self, x: Expr) -> int:
        axes = range(x.ndim) if self.axis is None else self.axis
        return int(np.prod([x.shape[a] for a in axes], dtype=np.int64))

    def lower(self, x):
        return Call(self.lowering, (x,), (("axis", self.axis), ("keepdims", self.keepdims),
                                          ("ddof", self.ddof)))

    def lower_standard(self, x):
        return Call(self.lowering, (x,), (("axis", self.axis), ("keepdims", self.keepdims),
                                          ("correction", self.ddof)))

    def _centered(self, x: Expr) -> Expr:
        return x - apply(Mean(self.axis, keepdims=True), (x,))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        # d/dx sum((x - m)^2)/(n - ddof) = 2 (x - m)/(n - ddof): the terms through m sum to 0
        scale = 2.0 / (self._count(x) - self.ddof)
        return [self._centered(x) * (self._expand(g, x) * scale)]


class Std(Variance):
    """NumPy's ``std``: sqrt(variance(x, axis, ddof)); gradient (x - mean(x)) / ((n - ddof)
    out) times g. At zero variance (a constant slice) that is 0/0 = nan, as in PyTorch and
    JAX: the square root has no derivative at 0."""

    name, lowering = "std", "std"

    def bprop(self, inputs, out, g):
        x = inputs[0]
        count = self._count(x) - self.ddof
        return [self._centered(x) * (self._expand(g, x) / (count * self._expand(out, x)))]


def _moment(cls):
    def reduce(x, axis=None, keepdims=False, ddof=0) -> Expr:
        x = as_expr(x)
        axes = normalize_axis(axis, x.ndim, cls.name, x.shape)
        return apply(cls(axes, expect_bool(keepdims, "keepdims", cls.name), ddof), (x,))
    reduce.__name__ = reduce.__qualname__ = cls.name
    reduce.__doc__ = f"{cls.__doc__}\n\n``{cls.name}(x, axis=None, keepdims=False, ddof=0)``"
    return reduce


variance = _moment(Variance)
std = _moment(Std)


# ---------------------------------------------------------------------------------------------
# scans and orderings along one axis: cumsum, sort (and argsort and permute, its gradient)
# ---------------------------------------------------------------------------------------------
def _reverse(e: Expr, axis: int) -> Expr:
    """``e`` reversed along ``axis`` (a basic slice)."""
    return getitem(e, (slice(None),) * axis + (slice(None, None, -1),))


class _AlongOneAxis:
    """vmap's rule for ops along one ``axis`` param (cumsum, sort, argsort): the same op along
    the same axis counted past the batch axis (a negative axis counts from the end: unchanged);
    ``axis=None`` (flattened) has none."""

    def batch(self, inputs, batched):
        if self.axis is None:
            raise NoBatchingRuleError(f"vmap: {self.name} with axis=None (flattened) has no "
                                      f"batching rule; give an axis")
        return apply(type(self)(self.axis + 1 if self.axis >= 0 else self.axis), inputs)


class Cumsum(_AlongOneAxis, Op):
    """Running sum along ``axis`` (``None``: of the flattened input, as NumPy); gradient: the
    running sum of g taken from the end, cumsum(g[::-1])[::-1] (the transpose of the lower
    triangular matrix of ones)."""

    name = "cumsum"

    def __init__(self, axis=None):
        super().__init__(axis=None if axis is None else int_param(axis, "cumsum", "axis"))

    def infer(self, x):
        if self.axis is None:
            return (x.size,), Sum.result_dtype(self, x.dtype)
        check_axis_range(self.axis, x.ndim, "cumsum", x.shape)
        return x.shape, Sum.result_dtype(self, x.dtype)

    def lower(self, x):
        return Call("cumsum", (x,), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        axis = 0 if self.axis is None else self.axis
        back = _reverse(apply(Cumsum(axis), (_reverse(g, axis),)), axis)
        return [reshape(back, x.shape) if self.axis is None else back]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def cumsum(x, axis=None) -> Expr:
    """Cumulative sum along ``axis``; ``axis=None`` flattens first (as ``np.cumsum``)."""
    x = as_expr(x)
    if axis is not None:
        axis = normalize_single_axis(axis, x.ndim, "cumsum", x.shape)
    return apply(Cumsum(axis), (x,))


class Argsort(_AlongOneAxis, Op):
    """The indices that sort ``x`` along ``axis`` (a stable sort: ties keep their order);
    integer, no gradient."""

    name = "argsort"
    differentiable = False

    def __init__(self, axis=-1):
        super().__init__(axis=int_param(axis, "argsort", "axis"))

    def infer(self, x):
        check_axis_range(self.axis, x.ndim, "argsort", x.shape)
        return x.shape, np.dtype(np.int64)

    def lower(self, x):
        return Call("argsort", (x,), (("axis", self.axis), ("kind", "stable")))

    def lower_standard(self, x):
        return Call("argsort", (x,), (("axis", self.axis),))  # the standard's is stable


class Permute(Op):
    """``v`` rearranged along ``axis`` by the permutation ``order`` of each slice:
    ``take_along_axis(v, order, axis)`` where every slice of ``order`` is a permutation (the
    gradient routing of ``sort``). Linear in ``v``; its transpose is the permutation by the
    inverse ``argsort(order)``. ``order`` gets no gradient."""

    name = "permute"
    callable_by_name = False  # internal: built by sort's rules

    def __init__(self, axis):
        super().__init__(axis=int_param(axis, "permute", "axis"))

    def batch(self, inputs, batched):
        # both the values and the order get the batch axis; the axis moves past it
        axis = self.axis + 1 if self.axis >= 0 else self.axis
        return apply(Permute(axis), tuple(batch_all(inputs, batched)))

    def infer(self, v, order):
        check_axis_range(self.axis, v.ndim, "permute", v.shape)
        if order.shape != v.shape or order.dtype.kind not in "iu":
            raise ShapeError(f"permute: the order must be an integer array of the values' "
                             f"shape {v.shape}, got {order.dtype} {order.shape}")
        return v.shape, v.dtype

    def lower(self, v, order):
        return Call("take_along_axis", (v, order), (("axis", self.axis),))

    def lower_standard(self, v, order):
        return Call("permute", (v, order), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        inverse = stop_gradient(apply(Argsort(self.axis), (inputs[1],)))
        return [apply(Permute(self.axis), (g, inverse)), None]

    def jvp(self, inputs, out, tangents):
        if tangents[0] is None:
            return None
        return apply(self, (tangents[0], inputs[1]))


class Sort(_AlongOneAxis, Op):
    """``x`` sorted ascending along ``axis``. Locally a permutation p = argsort(x), so the
    gradient routes g back through it: g permuted by the inverse permutation argsort(p).
    Ties: the stable argsort decides which tied entry gets which position's gradient (as
    JAX's); the values are equal there, so any assignment is a valid sub-gradient."""

    name = "sort"

    def __init__(self, axis=-1):
        super().__init__(axis=int_param(axis, "sort", "axis"))

    def infer(self, x):
        check_axis_range(self.axis, x.ndim, "sort", x.shape)
        return x.shape, x.dtype

    def lower(self, x):
        return Call("sort", (x,), (("axis", self.axis),))

    def _order(self, x: Expr) -> Expr:
        """argsort(x): a constant to differentiation (the permutation is locally fixed)."""
        return stop_gradient(apply(Argsort(self.axis), (x,)))

    def bprop(self, inputs, out, g):
        inverse = stop_gradient(apply(Argsort(self.axis), (self._order(inputs[0]),)))
        return [apply(Permute(self.axis), (g, inverse))]

    def jvp(self, inputs, out, tangents):
        return apply(Permute(self.axis), (tangents[0], self._order(inputs[0])))


def sort(x, axis=-1) -> Expr:
    """``x`` sorted ascending along ``axis`` (default the last), as ``np.sort``."""
    x = as_expr(x)
    return apply(Sort(normalize_single_axis(axis, x.ndim, "sort", x.shape)), (x,))


def argsort(x, axis=-1) -> Expr:
    """The indices that sort ``x`` along ``axis`` (stable), as ``np.argsort``; no gradient."""
    x = as_expr(x)
    return apply(Argsort(normalize_single_axis(axis, x.ndim, "argsort", x.shape)), (x,))
