"""Shape ops: transpose reshape broadcast_to concatenate stack take getitem, and the two
scatter ops their gradients need (``scatter_add`` for take, ``index_add`` for indexing).

Gather and scatter are each other's transposes: ``take`` back-propagates as ``scatter_add``
(``np.add.at``), so repeated indices accumulate; that is how a word vector used twice in a window
gets both gradients (CS224n), and the update to the embedding matrix stays sparse.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import (DTypeError, NoBatchingRuleError, ShapeError, SymdiffError,
                      fmt_shape)
from ..graph import Expr, apply, as_expr, const, normalize_shape
from ..printing import PREC_ATOM, latex_escape, latex_group
from .base import Op, check_axis_range, int_param, normalize_single_axis
from .kernels import scalar_identity
from .lowering import Attr, Call, Subscript, Tuple


# ---------------------------------------------------------------------------------------------
# batching helpers (vmap's rules: the batch axis is always axis 0 of a batched input)
# ---------------------------------------------------------------------------------------------
def batch_size(inputs, batched) -> int:
    """The batch size: the leading axis of the batched inputs."""
    return next(x.shape[0] for x, b in zip(inputs, batched) if b)


def batch_all(inputs, batched) -> list:
    """Every input with the batch axis: unbatched ones broadcast over it (the ops that need one
    batch per input: concatenate, stack)."""
    size = batch_size(inputs, batched)
    return [x if b else broadcast_to(x, (size,) + x.shape) for x, b in zip(inputs, batched)]


def batch_elementwise(op: Op, inputs, batched) -> Expr:
    """The batching rule of every elementwise (broadcasting) op: each batched input
    ``(B,) + s`` gets unit axes after its batch axis up to the result's rank, so the batch axes
    line up in front and the unbatched inputs broadcast over them as before."""
    rank = max(x.ndim - b for x, b in zip(inputs, batched))
    args = []
    for x, b in zip(inputs, batched):
        pad = rank - (x.ndim - 1)
        if b and pad:
            x = reshape(x, x.shape[:1] + (1,) * pad + x.shape[1:])
        args.append(x)
    return apply(op, tuple(args))


def _shifted(axes) -> tuple:
    """Axes of the unbatched node, counted on its batched form (the batch axis is 0)."""
    return tuple(a + 1 for a in axes)


# ---------------------------------------------------------------------------------------------
# transpose, reshape, broadcast_to
# ---------------------------------------------------------------------------------------------
class Transpose(Op):
    """Permute axes (``axes`` a permutation); gradient: the inverse permutation of g."""

    name = "transpose"
    sympy_identity = True

    def latex_form(self, inputs, parts):
        return f"{latex_group(parts[0])}^\\top", PREC_ATOM

    def __init__(self, axes):
        if not isinstance(axes, (tuple, list)):
            raise SymdiffError(f"transpose: axes must be a tuple of ints, got {axes!r}")
        super().__init__(axes=tuple(int_param(a, "transpose", "each axis") for a in axes))

    def infer(self, x):
        if sorted(self.axes) != list(range(x.ndim)):
            raise ShapeError(f"transpose: axes {self.axes} are not a permutation for shape "
                             f"{fmt_shape(x.shape)}")
        return tuple(x.shape[a] for a in self.axes), x.dtype

    view = True
    scalar = staticmethod(scalar_identity)

    def suffix_text(self, inputs):
        return ".T" if inputs[0].ndim == 2 else None  # (a @ b).T; other ranks print a call

    def lower(self, x):
        if self.axes == tuple(reversed(range(len(self.axes)))):
            return Attr(x, "T")
        return self.lower_standard(x)

    def lower_standard(self, x):
        # the standard's .T is for 2-D arrays only
        return Call("transpose", (x, self.axes))

    def bprop(self, inputs, out, g):
        return [transpose(g, tuple(int(a) for a in np.argsort(self.axes)))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))

    def batch(self, inputs, batched):
        return apply(Transpose((0,) + _shifted(self.axes)), inputs)


def transpose(x, axes=None) -> Expr:
    """Permute the axes of ``x`` (reverse them when ``axes`` is None, as ``x.T``)."""
    x = as_expr(x)
    if axes is not None and not isinstance(axes, (tuple, list)):
        raise ShapeError(f"transpose: axes must be a tuple of ints or None, got {axes!r}")
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(
        normalize_single_axis(a, x.ndim, "transpose", x.shape) for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    if isinstance(x.op, Transpose):  # transpose of transpose: compose the permutations
        inner = x.op.axes
        return transpose(x.inputs[0], tuple(inner[a] for a in axes))
    return apply(Transpose(axes), (x,))


def swap_last_two(x: Expr) -> Expr:
    """Matrix transpose of the last two axes (batched)."""
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, perm)


class Reshape(Op):
    """Same entries, new shape (sizes agree); gradient: g reshaped back."""

    name = "reshape"
    sympy_identity = True

    def latex_form(self, inputs, parts):
        return parts[0]

    def __init__(self, shape):
        super().__init__(shape=normalize_shape(shape, "reshape shape"))

    def infer(self, x):
        if int(np.prod(self.shape, dtype=np.int64)) != x.size:
            raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} into "
                             f"{fmt_shape(self.shape)}")
        return self.shape, x.dtype

    view = True
    scalar = staticmethod(scalar_identity)

    def lower(self, x):
        return Call("reshape", (x, self.shape))

    def bprop(self, inputs, out, g):
        return [reshape(g, inputs[0].shape)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))

    def batch(self, inputs, batched):
        x = inputs[0]
        return reshape(x, x.shape[:1] + self.shape)


def reshape(x, shape) -> Expr:
    """``x`` with a new shape; one entry may be -1 (inferred)."""
    x = as_expr(x)
    if not isinstance(shape, (int, np.integer, tuple, list)) or isinstance(shape, bool):
        raise ShapeError(f"reshape: shape must be an int or a tuple of ints, got {shape!r}")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if sum(1 for d in shape if d == -1) > 1:
        raise ShapeError(f"reshape: only one -1 allowed, got {shape} for {fmt_shape(x.shape)}")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or x.size % known:
            raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} into {shape}")
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    shape = normalize_shape(shape, "reshape shape")
    if shape == x.shape:
        return x
    if isinstance(x.op, Reshape):  # reshape of reshape: one reshape
        return reshape(x.inputs[0], shape)
    if x.is_const and int(np.prod(shape, dtype=np.int64)) == x.size:
        return const(x.value.reshape(shape))
    return apply(Reshape(shape), (x,))  # a size mismatch is a ShapeError from Reshape.infer


class BroadcastTo(Op):
    """``x`` broadcast to ``shape`` (NumPy rules); gradient: g summed back to x's shape, which
    grad.py does for every op, so the rule just passes g on."""

    loop = "broadcast"  # fuses into loops: read with broadcast indices
    name = "broadcast_to"
    sympy_identity = True

    def latex_form(self, inputs, parts):
        return parts[0]

    def __init__(self, shape):
        super().__init__(shape=normalize_shape(shape, "broadcast_to shape"))

    def infer(self, x):
        try:
            ok = tuple(np.broadcast_shapes(x.shape, self.shape)) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise ShapeError(f"broadcast_to: cannot broadcast {fmt_shape(x.shape)} to "
                             f"{fmt_shape(self.shape)}")
        return self.shape, x.dtype

    view, writable_view = True, False
    scalar = staticmethod(scalar_identity)

    def lower(self, x):
        return Call("broadcast_to", (x, self.shape))

    def bprop(self, inputs, out, g):
        return [g]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))

    def batch(self, inputs, batched):
        # (B,) + s -> (B, 1, ..., 1) + s -> (B,) + shape
        x = inputs[0]
        x = reshape(x, x.shape[:1] + (1,) * (len(self.shape) - x.ndim + 1) + x.shape[1:])
        return broadcast_to(x, x.shape[:1] + self.shape)


def broadcast_to(x, shape) -> Expr:
    """``x`` broadcast to ``shape``."""
    x = as_expr(x)
    shape = normalize_shape(shape, "broadcast_to shape")
    if shape == x.shape:
        return x
    return apply(BroadcastTo(shape), (x,))


# ---------------------------------------------------------------------------------------------
# concatenate, stack
# ---------------------------------------------------------------------------------------------
class Concatenate(Op):
    """Join along an existing ``axis``; gradient: the matching slice of g for each input."""

    name = "concatenate"

    def __init__(self, axis=0):
        super().__init__(axis=int_param(axis, "concatenate", "axis"))

    def infer(self, *xs):
        if not xs:
            raise ShapeError("concatenate: expects at least one input")
        first = xs[0]
        check_axis_range(self.axis, first.ndim, "concatenate", first.shape)
        for other in xs[1:]:
            same = (other.ndim == first.ndim and all(
                a == b for i, (a, b) in enumerate(zip(first.shape, other.shape))
                if i != self.axis))
            if not same:
                raise ShapeError(f"concatenate: shapes {fmt_shape(first.shape)} and "
                                 f"{fmt_shape(other.shape)} differ off axis {self.axis}")
        shape = list(first.shape)
        shape[self.axis] = sum(x.shape[self.axis] for x in xs)
        return tuple(shape), np.result_type(*[x.dtype for x in xs])

    def lower(self, *xs):
        return Call("concatenate", (Tuple(xs),), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for x in inputs:
            stop = start + x.shape[self.axis]
            grads.append(getitem(g, lead + (slice(start, stop),)))
            start = stop
        return grads

    def batch(self, inputs, batched):
        return apply(Concatenate(self.axis + 1), tuple(batch_all(inputs, batched)))


def concatenate(xs, axis=0) -> Expr:
    """Join a list of expressions along an existing axis."""
    xs = _expr_list(xs, "concatenate")
    if xs[0].ndim == 0:
        raise ShapeError("concatenate: zero-dimensional inputs cannot be concatenated")
    axis = normalize_single_axis(axis, xs[0].ndim, "concatenate", xs[0].shape)
    return xs[0] if len(xs) == 1 else apply(Concatenate(axis), xs)


class Stack(Op):
    """Join equal shapes along a new ``axis``; gradient: slice i of g along that axis."""

    name = "stack"

    def __init__(self, axis=0):
        super().__init__(axis=int_param(axis, "stack", "axis"))

    def infer(self, *xs):
        if not xs:
            raise ShapeError("stack: expects at least one input")
        check_axis_range(self.axis, xs[0].ndim + 1, "stack", xs[0].shape)
        for other in xs[1:]:
            if other.shape != xs[0].shape:
                raise ShapeError(f"stack: shapes {fmt_shape(xs[0].shape)} and "
                                 f"{fmt_shape(other.shape)} differ")
        shape = xs[0].shape[:self.axis] + (len(xs),) + xs[0].shape[self.axis:]
        return shape, np.result_type(*[x.dtype for x in xs])

    def lower(self, *xs):
        return Call("stack", (Tuple(xs),), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        lead = (slice(None),) * self.axis
        return [getitem(g, lead + (i,)) for i in range(len(inputs))]

    def batch(self, inputs, batched):
        return apply(Stack(self.axis + 1), tuple(batch_all(inputs, batched)))


def stack(xs, axis=0) -> Expr:
    """Join a list of equally shaped expressions along a new axis."""
    xs = _expr_list(xs, "stack")
    axis = normalize_single_axis(axis, xs[0].ndim + 1, "stack", xs[0].shape)
    return apply(Stack(axis), xs)


def _expr_list(xs, opname) -> list[Expr]:
    if isinstance(xs, Expr) or not isinstance(xs, (list, tuple)) or not xs:
        raise ShapeError(f"{opname}: expects a non-empty list of expressions")
    return [as_expr(x) for x in xs]


# ---------------------------------------------------------------------------------------------
# take (gather) and scatter_add
# ---------------------------------------------------------------------------------------------
def _check_indices(indices: Expr, size: int, opname: str, shape: tuple):
    if indices.dtype.kind not in "iu":
        raise DTypeError(f"{opname}: indices must be integers, got {indices.dtype}")
    if indices.is_const and indices.size and (
            indices.value.max() >= size or indices.value.min() < -size):
        raise ShapeError(f"{opname}: index out of range for axis of size {size} "
                         f"(shape {fmt_shape(shape)})")


class Take(Op):
    """Gather entries of x along ``axis`` at integer ``indices`` (an input node, so indices may
    vary per call); gradient: scatter-add of g into zeros of x's shape (repeats accumulate)."""

    name = "take"

    @staticmethod
    def numpy_call(a, indices, axis=None):
        """``np.take``: ``axis=None`` (NumPy's default) gathers from the flattened array."""
        if axis is None:
            return take(reshape(a, (-1,)), indices, axis=0)
        return take(a, indices, axis=axis)

    def __init__(self, axis=0):
        super().__init__(axis=int_param(axis, "take", "axis"))

    def infer(self, x, indices):
        check_axis_range(self.axis, x.ndim, "take", x.shape)
        _check_indices(indices, x.shape[self.axis], "take", x.shape)
        shape = x.shape[:self.axis] + indices.shape + x.shape[self.axis + 1:]
        return shape, x.dtype

    def lower(self, x, indices):
        return Call("take", (x, indices), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        x, indices = inputs
        return [apply(ScatterAdd(x.shape, self.axis), (g, indices)), None]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0], inputs[1]))

    def batch(self, inputs, batched):
        x, indices = inputs
        if not batched[1]:
            return apply(Take(self.axis + 1), (x, indices))
        if batched[0]:
            return _take_per_entry(x, indices, self.axis)
        # x unbatched, indices (B,) + i: take puts (B,) + i at ``axis``; move B to the front
        out = apply(self, (x, indices))
        order = list(range(out.ndim))
        order.insert(0, order.pop(self.axis))
        return transpose(out, tuple(order))


def _take_per_entry(x: Expr, indices: Expr, axis: int) -> Expr:
    """Batch entry b of x gathered at batch entry b of indices, as one take: the batch axis and
    the gathered axis of x merge into one, and each entry's indices are offset by b times the
    gathered axis's length (``x_b[i] = flat[b n + i]``)."""
    size, n = x.shape[0], x.shape[axis + 1]
    rest = [k for k in range(1, x.ndim) if k != axis + 1]
    flat = reshape(transpose(x, (0, axis + 1, *rest)), (size * n,) + tuple(x.shape[k]
                                                                           for k in rest))
    offsets = const((np.arange(size, dtype=indices.dtype) * n).reshape(
        (size,) + (1,) * (indices.ndim - 1)))
    wrapped = indices + (indices < 0) * n  # NumPy's negative indices count from the end
    out = apply(Take(0), (flat, wrapped + offsets))
    # out: (B,) + i + x's axes before ``axis`` + after it; bring i to the place of ``axis``
    k = indices.ndim - 1
    order = (0, *range(1 + k, 1 + k + axis), *range(1, 1 + k),
             *range(1 + k + axis, out.ndim))
    return transpose(out, order)


class ScatterAdd(Op):
    """Zeros of ``shape`` with g added at ``indices`` along ``axis`` (``np.add.at``): the
    transpose of take; gradient: take of the upstream gradient."""

    name = "scatter_add"

    def __init__(self, shape, axis=0):
        shape = normalize_shape(shape, "scatter_add shape")
        axis = int_param(axis, "scatter_add", "axis")
        check_axis_range(axis, len(shape), "scatter_add", shape)
        super().__init__(shape=shape, axis=axis)

    def infer(self, g, indices):
        _check_indices(indices, self.shape[self.axis], "scatter_add", self.shape)
        want = self.shape[:self.axis] + indices.shape + self.shape[self.axis + 1:]
        if g.shape != want:
            raise ShapeError(f"scatter_add: values of shape {fmt_shape(g.shape)} do not fit "
                             f"indices {fmt_shape(indices.shape)} into {fmt_shape(self.shape)}")
        return self.shape, g.dtype

    def lower(self, g, indices):
        return Call("scatter_add", (g, indices, self.shape, self.axis))

    def bprop(self, inputs, out, g):
        return [take(g, inputs[1], self.axis), None]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0], inputs[1]))

    def batch(self, inputs, batched):
        g, indices = inputs
        if batched[1]:
            raise NoBatchingRuleError("vmap: scatter_add with batched indices has no batching rule")
        return apply(ScatterAdd((g.shape[0],) + self.shape, self.axis + 1), (g, indices))


def take(x, indices, axis=0) -> Expr:
    """Gather ``x`` at integer ``indices`` along ``axis`` (as ``np.take``; repeats allowed)."""
    x = as_expr(x)
    if x.ndim == 0:
        raise ShapeError("take: cannot index a scalar")
    if not isinstance(indices, Expr):
        try:
            indices = np.asarray(indices)
        except (ValueError, TypeError, OverflowError):  # ragged lists and the like
            raise ShapeError(f"take: indices must be integers or an integer array, got "
                             f"{indices!r:.80}") from None
        if indices.size == 0 and indices.dtype.kind == "f":  # [] is float64 to NumPy
            indices = indices.astype(np.int64)
    indices = as_expr(indices)
    axis = normalize_single_axis(axis, x.ndim, "take", x.shape)
    return apply(Take(axis), (x, indices))


# ---------------------------------------------------------------------------------------------
# x[index]: ints, slices, None, Ellipsis and constant integer arrays
# ---------------------------------------------------------------------------------------------
def _encode_index(index) -> tuple:
    """A hashable spec of a NumPy index (slices are not hashable before Python 3.12)."""
    items = index if isinstance(index, tuple) else (index,)
    spec = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise ShapeError("indexing with a bare boolean is not supported")
        if isinstance(item, (int, np.integer)):
            spec.append(("int", int(item)))
        elif isinstance(item, slice):
            parts = (item.start, item.stop, item.step)
            if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
                raise ShapeError(f"slice bounds must be ints, got {item!r}")
            spec.append(("slice",) + tuple(None if p is None else int(p) for p in parts))
        elif item is None:
            spec.append(("newaxis",))
        elif item is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(item, Expr):
            raise ShapeError("an expression as an index is supported only alone, as x[i] "
                             "(a gather: take(x, i, axis=0)); use take for other axes")
        else:
            try:
                arr = np.asarray(item)
            except (ValueError, TypeError, OverflowError):  # ragged lists and the like
                raise ShapeError(f"unsupported index {item!r}: use ints, slices, None, ... "
                                 f"or integer arrays") from None
            if arr.dtype == bool:
                arr = np.nonzero(arr)[0] if arr.ndim == 1 else None
            if arr is None or arr.dtype.kind not in "iu":
                raise ShapeError(f"unsupported index {item!r}: use ints, slices, None, ... "
                                 f"or integer arrays")
            spec.append(("array", arr.shape, tuple(int(v) for v in arr.ravel())))
    return tuple(spec)


def _check_spec(spec) -> tuple:
    """An index spec as ``_encode_index`` makes it, with every number a Python int (never a bool
    or float: ``("int", True)`` would otherwise mean ``x[True]``); SymdiffError otherwise."""
    if not isinstance(spec, tuple):
        raise SymdiffError(f"getitem: index spec must be a tuple, got {spec!r}")
    checked = []
    for item in spec:
        if not isinstance(item, tuple) or not item or item[0] not in _SPEC_ARITY \
                or len(item) != _SPEC_ARITY[item[0]]:
            raise SymdiffError(f"getitem: malformed index item {item!r}")
        kind = item[0]
        if kind == "int":
            checked.append(("int", int_param(item[1], "getitem", "an index")))
        elif kind == "slice":
            parts = tuple(None if p is None else int_param(p, "getitem", "a slice bound")
                          for p in item[1:])
            if parts[2] == 0:
                raise SymdiffError("getitem: slice step cannot be zero")
            checked.append(("slice",) + parts)
        elif kind == "array":
            shape = normalize_shape(item[1], "getitem array shape")
            if not isinstance(item[2], tuple) or len(item[2]) != math.prod(shape):
                raise SymdiffError(f"getitem: array index values do not fill shape {shape}")
            values = tuple(int_param(v, "getitem", "an array index") for v in item[2])
            checked.append(("array", shape, values))
        else:
            checked.append((kind,))
    return tuple(checked)


_SPEC_ARITY = {"int": 2, "slice": 4, "newaxis": 1, "ellipsis": 1, "array": 3}


def decode_index(spec: tuple) -> tuple:
    """The NumPy index object of a spec made by ``_encode_index``."""
    out = []
    for item in spec:
        kind = item[0]
        if kind == "int":
            out.append(item[1])
        elif kind == "slice":
            out.append(slice(*item[1:]))
        elif kind == "newaxis":
            out.append(None)
        elif kind == "ellipsis":
            out.append(Ellipsis)
        else:
            out.append(np.array(item[2], dtype=np.int64).reshape(item[1]))
    return tuple(out)


def _index_shape(shape: tuple, spec: tuple) -> tuple:
    """Shape of ``x[index]``, found by indexing a zero-stride stand-in (no memory)."""
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=bool), shape=shape,
                                            strides=(0,) * len(shape))
    try:
        return dummy[decode_index(spec)].shape
    except (IndexError, ValueError, OverflowError) as exc:  # OverflowError: x[2**63]
        raise ShapeError(f"index {_spec_text(spec)} does not fit shape {fmt_shape(shape)}: "
                         f"{exc}") from None


def _spec_text(spec: tuple) -> str:
    parts = []
    for item in spec:
        if item[0] == "int":
            parts.append(str(item[1]))
        elif item[0] == "slice":
            start, stop, step = ("" if p is None else str(p) for p in item[1:])
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
        elif item[0] == "newaxis":
            parts.append("None")
        elif item[0] == "ellipsis":
            parts.append("...")
        else:
            parts.append(str(list(item[2])) if len(item[2]) <= 8 else "[...]")
    return "[" + ", ".join(parts) + "]"


class Index(Op):
    """``x[index]`` with a constant index; gradient: g added into zeros of x's shape at the
    same index (``index_add``), so repeated array indices accumulate."""

    name = "getitem"
    callable_by_name = False  # written x[index]
    sympy_identity = True

    def latex_form(self, inputs, parts):
        return f"{latex_group(parts[0])}{latex_escape(_spec_text(self.spec))}", PREC_ATOM

    def __init__(self, spec):
        super().__init__(spec=_check_spec(spec))

    def infer(self, x):
        return _index_shape(x.shape, self.spec), x.dtype

    view = True

    def lower(self, x):
        return Subscript(x, decode_index(self.spec))

    def lower_standard(self, x):
        # integer arrays and partial index tuples are NumPy-only: the adapter's getitem
        return Call("getitem", (x, decode_index(self.spec)))

    def params_text(self):
        return _spec_text(self.spec)

    def suffix_text(self, inputs):
        return _spec_text(self.spec)  # x[0, 1:3]

    def bprop(self, inputs, out, g):
        return [apply(IndexAdd(self.spec, inputs[0].shape), (g,))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))

    def batch(self, inputs, batched):
        return apply(Index(_batched_spec(self.spec, "getitem")), inputs)


class IndexAdd(Op):
    """Zeros of ``shape`` with g added at a constant index: the transpose of ``x[index]``;
    gradient: the same index applied to the upstream gradient."""

    name = "index_add"
    sympy_identity = True

    def __init__(self, spec, shape):
        super().__init__(spec=_check_spec(spec), shape=normalize_shape(shape, "index_add shape"))

    def infer(self, g):
        want = _index_shape(self.shape, self.spec)
        if g.shape != want:
            raise ShapeError(f"index_add: values of shape {fmt_shape(g.shape)} do not fit "
                             f"{_spec_text(self.spec)} of {fmt_shape(self.shape)} "
                             f"(expects {fmt_shape(want)})")
        return self.shape, g.dtype

    def lower(self, g):
        return Call("index_add", (g, decode_index(self.spec), self.shape))

    def params_text(self):
        return f"{_spec_text(self.spec)}, shape={self.shape!r}"

    def bprop(self, inputs, out, g):
        return [apply(Index(self.spec), (g,))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))

    def batch(self, inputs, batched):
        g = inputs[0]
        return apply(IndexAdd(_batched_spec(self.spec, "index_add"), g.shape[:1] + self.shape),
                     (g,))


def _batched_spec(spec: tuple, opname: str) -> tuple:
    """The index ``[:, *spec]`` for a batched operand. NumPy moves the axes of advanced indices
    (arrays, and ints beside arrays) to the front when something separates them, which would
    move them before the batch axis: such an index has no batching rule here."""
    if any(item[0] == "array" for item in spec):
        advanced = [k for k, item in enumerate(spec) if item[0] in ("array", "int")]
        if advanced[-1] - advanced[0] + 1 != len(advanced):
            raise NoBatchingRuleError(f"vmap: {opname} with separated advanced indices "
                               f"{_spec_text(spec)} has no batching rule")
    return (("slice", None, None, None),) + spec


def getitem(x, index) -> Expr:
    """``x[index]``: ints, slices, None, Ellipsis, integer arrays (gather); an integer
    expression alone as the index is ``take(x, index, axis=0)``."""
    x = as_expr(x)
    if isinstance(index, Expr):
        return take(x, index, axis=0)
    spec = _encode_index(index)
    if all(item == ("slice", None, None, None) for item in spec):
        return x
    return apply(Index(spec), (x,))
