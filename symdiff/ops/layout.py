"""Layout ops, as NumPy names them: squeeze expand_dims split flip tile repeat pad
take_along_axis one_hot tril triu diag diagonal trace, and ``scatter_along_axis`` (the
transpose of take_along_axis, built by its gradient).

Every op here except one_hot is linear in its array input, so each bprop is the op's transpose,
built from symdiff ops (so second derivatives work): squeeze and expand_dims reshape back, flip
flips again, a split piece and pad are each other's transposes (zero padding, a slice), tile
sums the copies (a reshape and a sum), repeat sums each run (a reshape and a sum, or a
scatter-add for uneven repeats), take_along_axis scatter-adds (repeated indices accumulate),
tril and triu mask again, and diag and diagonal are each other's transposes. Each jvp is the op
applied to the tangent (pad's with a zero fill: the fill is constant).

This module sits above ``shape``, ``elementwise`` and ``reduce`` (its gradients use their
ops), so those modules never import it.
"""
from __future__ import annotations

import numpy as np

from ..errors import (DTypeError, NoBatchingRuleError, ShapeError, SymdiffError,
                      fmt_shape)
from ..graph import Expr, apply, as_expr, const, normalize_shape
from .base import (Op, axes_param, check_axis_range, float_param, int_param, normalize_axis,
                   normalize_single_axis)
from .kernels import scalar_identity
from .lowering import Call, Subscript
from .reduce import sum as reduce_sum
from .shape import ScatterAdd, _check_indices, getitem, reshape, transpose


def _axes_tuple(axes, opname: str) -> tuple:
    """A non-empty sorted tuple of distinct non-negative axes (None is not allowed here)."""
    axes = axes_param(axes, opname)
    if not axes:
        raise SymdiffError(f"{opname}: axis param must be a non-empty tuple of ints")
    return axes


def _result_shape(shape, opname: str) -> tuple:
    """``shape`` checked as a result shape (ShapeError when its size passes int64)."""
    return normalize_shape(tuple(shape), f"{opname}: result shape")


def _as_index_expr(indices, opname: str) -> Expr:
    if isinstance(indices, Expr):
        return indices
    try:
        indices = np.asarray(indices)
    except (ValueError, TypeError, OverflowError):  # ragged lists and the like
        raise ShapeError(f"{opname}: indices must be an integer array, got "
                         f"{indices!r:.80}") from None
    if indices.size == 0 and indices.dtype.kind == "f":  # [] is float64 to NumPy
        indices = indices.astype(np.int64)
    return as_expr(indices)


# ---------------------------------------------------------------------------------------------
# squeeze, expand_dims
# ---------------------------------------------------------------------------------------------
class Squeeze(Op):
    """Drop the size-1 ``axis`` (a sorted tuple); gradient: g reshaped back to x's shape."""

    name = "squeeze"
    view = True
    sympy_identity = True
    scalar = staticmethod(scalar_identity)

    def __init__(self, axis):
        super().__init__(axis=_axes_tuple(axis, "squeeze"))

    def batch(self, inputs, batched):
        # the same axes, counted past the batch axis (vmap)
        return apply(type(self)(tuple(a + 1 for a in self.axis)), inputs)

    def infer(self, x):
        for a in self.axis:
            check_axis_range(a, x.ndim, "squeeze", x.shape)
            if x.shape[a] != 1:
                raise ShapeError(f"squeeze: axis {a} of shape {fmt_shape(x.shape)} has size "
                                 f"{x.shape[a]}, not 1")
        return tuple(d for i, d in enumerate(x.shape) if i not in self.axis), x.dtype

    def lower(self, x):
        return Call("squeeze", (x,), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        return [reshape(g, inputs[0].shape)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def squeeze(x, axis=None) -> Expr:
    """``x`` without its size-1 axes (only those of ``axis`` when given), as ``np.squeeze``.

    >>> import symdiff as sd
    >>> sd.squeeze(sd.var("x", (2, 1, 3))).shape
    (2, 3)
    """
    x = as_expr(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axis(axis, x.ndim, "squeeze", x.shape)
    return apply(Squeeze(axes), (x,)) if axes else x


class ExpandDims(Op):
    """Insert size-1 axes at ``axis`` (positions in the result); gradient: g reshaped back."""

    name = "expand_dims"
    view = True
    sympy_identity = True
    scalar = staticmethod(scalar_identity)

    def __init__(self, axis):
        super().__init__(axis=_axes_tuple(axis, "expand_dims"))

    def batch(self, inputs, batched):
        # the same axes, counted past the batch axis (vmap)
        return apply(type(self)(tuple(a + 1 for a in self.axis)), inputs)

    def infer(self, x):
        ndim = x.ndim + len(self.axis)
        for a in self.axis:
            check_axis_range(a, ndim, "expand_dims", x.shape)
        rest = iter(x.shape)
        return tuple(1 if i in self.axis else next(rest) for i in range(ndim)), x.dtype

    def lower(self, x):
        return Call("expand_dims", (x,), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        return [reshape(g, inputs[0].shape)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def expand_dims(x, axis) -> Expr:
    """``x`` with size-1 axes inserted at ``axis`` (an int or a tuple; negative axes count from
    the end of the result), as ``np.expand_dims``.

    >>> import symdiff as sd
    >>> sd.expand_dims(sd.var("x", (2, 3)), -1).shape
    (2, 3, 1)
    """
    x = as_expr(x)
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        axis = (axis,)
    if not isinstance(axis, (tuple, list)):
        raise ShapeError(f"expand_dims: axis must be an int or a tuple of ints, got {axis!r}")
    axes = normalize_axis(tuple(axis), x.ndim + len(axis), "expand_dims", x.shape)
    return apply(ExpandDims(axes), (x,)) if axes else x


# ---------------------------------------------------------------------------------------------
# split (one node per piece) and pad: each other's transposes
# ---------------------------------------------------------------------------------------------
class Split(Op):
    """One piece of ``split``: entries ``start:stop`` of x along ``axis`` (a view); gradient: g
    padded with zeros back to x's extent along ``axis``."""

    name = "split"
    view = True
    callable_by_name = False  # split(...) builds a list; a piece prints as its slice x[:, a:b]

    def __init__(self, axis, start, stop):
        axis, start, stop = (int_param(v, "split", what) for v, what in
                             ((axis, "axis"), (start, "start"), (stop, "stop")))
        if not 0 <= start <= stop:
            raise SymdiffError(f"split: piece {start}:{stop} must have 0 <= start <= stop")
        super().__init__(axis=axis, start=start, stop=stop)

    def batch(self, inputs, batched):
        return apply(Split(self.axis + 1, self.start, self.stop), inputs)

    def infer(self, x):
        check_axis_range(self.axis, x.ndim, "split", x.shape)
        if self.stop > x.shape[self.axis]:
            raise ShapeError(f"split: piece {self.start}:{self.stop} exceeds axis {self.axis} "
                             f"of shape {fmt_shape(x.shape)}")
        shape = list(x.shape)
        shape[self.axis] = self.stop - self.start
        return tuple(shape), x.dtype

    def _key(self):
        return (slice(None),) * self.axis + (slice(self.start, self.stop), Ellipsis)

    def lower(self, x):
        return Subscript(x, self._key())

    def suffix_text(self, inputs):
        return "[" + ", ".join([":"] * self.axis + [f"{self.start}:{self.stop}"]) + "]"

    def bprop(self, inputs, out, g):
        # transpose of a slice: zeros before and after the piece
        x = inputs[0]
        widths = [(0, 0)] * x.ndim
        widths[self.axis] = (self.start, x.shape[self.axis] - self.stop)
        return [pad(g, tuple(widths))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def split(x, sections, axis=0) -> list[Expr]:
    """``x`` cut along ``axis`` into a list of pieces, as ``np.split``: ``sections`` an int
    (that many equal pieces; ShapeError if the axis does not divide) or a list of split points
    (pieces ``x[:p0], x[p0:p1], ..., x[pk:]``, Python slice rules for negative or out-of-range
    points).

    >>> import symdiff as sd
    >>> [p.shape for p in sd.split(sd.var("x", (5, 2)), [2, 3])]
    [(2, 2), (1, 2), (2, 2)]
    """
    x = as_expr(x)
    if x.ndim == 0:
        raise ShapeError("split: cannot split a zero-dimensional input")
    axis = normalize_single_axis(axis, x.ndim, "split", x.shape)
    n = x.shape[axis]
    if isinstance(sections, (int, np.integer)) and not isinstance(sections, (bool, np.bool_)):
        if sections <= 0 or n % sections:
            raise ShapeError(f"split: axis {axis} of shape {fmt_shape(x.shape)} does not "
                             f"divide into {sections} equal sections")
        step = n // int(sections)
        points = [k * step for k in range(1, int(sections))]
    else:
        try:
            points = [int_param(p, "split", "each split point") for p in sections]
        except TypeError:
            raise ShapeError(f"split: sections must be an int or a list of ints, got "
                             f"{sections!r}") from None
    bounds = [0] + points + [n]
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        start, stop, _ = slice(lo, hi).indices(n)
        stop = max(start, stop)
        pieces.append(x if (start, stop) == (0, n) else apply(Split(axis, start, stop), (x,)))
    return pieces


class Pad(Op):
    """``x`` with ``pad_width[d] = (before, after)`` entries of ``constant_values`` added on
    each side of axis d (``np.pad``, constant mode); gradient: the slice of g where x sits. The
    fill is a constant: pad is affine in x, and its jvp pads the tangent with zeros."""

    name = "pad"

    def __init__(self, pad_width, constant_values=0.0):
        if not isinstance(pad_width, (tuple, list)):
            raise SymdiffError(f"pad: pad_width param must be a tuple of (before, after) "
                               f"pairs, got {pad_width!r}")
        pairs = []
        for pair in pad_width:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise SymdiffError(f"pad: pad_width param must be a tuple of (before, after) "
                                   f"pairs, got {pad_width!r}")
            before, after = (int_param(w, "pad", "each pad width") for w in pair)
            if before < 0 or after < 0:
                raise SymdiffError(f"pad: pad widths must be non-negative, got {pad_width!r}")
            pairs.append((before, after))
        super().__init__(pad_width=tuple(pairs),
                         constant_values=float_param(constant_values, "pad", "constant_values"))

    def batch(self, inputs, batched):
        # no padding along the batch axis
        return apply(Pad(((0, 0),) + self.pad_width, self.constant_values), inputs)

    def infer(self, x):
        if len(self.pad_width) != x.ndim:
            raise ShapeError(f"pad: pad_width {self.pad_width} has {len(self.pad_width)} "
                             f"pairs for input shape {fmt_shape(x.shape)}")
        shape = [d + b + a for d, (b, a) in zip(x.shape, self.pad_width)]
        return _result_shape(shape, "pad"), x.dtype

    def lower(self, x):
        return Call("pad", (x, self.pad_width), (("constant_values", self.constant_values),))

    def bprop(self, inputs, out, g):
        # transpose of zero padding: the slice where x sits
        return [getitem(g, tuple(slice(b, b + d) for d, (b, _) in
                                 zip(inputs[0].shape, self.pad_width)))]

    def jvp(self, inputs, out, tangents):
        return apply(Pad(self.pad_width, 0.0), (tangents[0],))


def pad(x, pad_width, constant_values=0) -> Expr:
    """``x`` padded with ``constant_values`` (a number), as ``np.pad(x, pad_width)`` in its
    constant mode. ``pad_width`` takes NumPy's forms: an int (every side of every axis),
    ``(before, after)`` (every axis) or ``((b0, a0), (b1, a1), ...)`` (one pair per axis).

    >>> import symdiff as sd
    >>> sd.pad(sd.var("x", (2, 3)), ((1, 0), (0, 2))).shape
    (3, 5)
    """
    x = as_expr(x)
    try:
        widths = np.asarray(pad_width)
        ok = widths.dtype.kind in "iu" and widths.ndim <= 2
        widths = np.broadcast_to(widths, (x.ndim, 2)) if ok else None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ShapeError(f"pad: pad_width {pad_width!r} is not an int, a (before, after) pair "
                         f"or one pair per axis of shape {fmt_shape(x.shape)}")
    if (widths < 0).any():
        raise ShapeError(f"pad: pad widths must be non-negative, got {pad_width!r} for shape "
                         f"{fmt_shape(x.shape)}")
    if not widths.any():
        return x
    pairs = tuple((int(b), int(a)) for b, a in widths)
    return apply(Pad(pairs, float_param(constant_values, "pad", "constant_values")), (x,))


# ---------------------------------------------------------------------------------------------
# flip, tile, repeat
# ---------------------------------------------------------------------------------------------
class Flip(Op):
    """Reverse the order of entries along ``axis`` (a view); gradient: g flipped back."""

    name = "flip"
    view = True
    sympy_identity = True
    scalar = staticmethod(scalar_identity)

    def __init__(self, axis):
        super().__init__(axis=_axes_tuple(axis, "flip"))

    def batch(self, inputs, batched):
        # the same axes, counted past the batch axis (vmap)
        return apply(type(self)(tuple(a + 1 for a in self.axis)), inputs)

    def infer(self, x):
        for a in self.axis:
            check_axis_range(a, x.ndim, "flip", x.shape)
        return x.shape, x.dtype

    def lower(self, x):
        return Call("flip", (x,), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        return [apply(self, (g,))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def flip(x, axis=None) -> Expr:
    """``x`` reversed along ``axis`` (an int, a tuple, or None for every axis), as
    ``np.flip``."""
    x = as_expr(x)
    axes = tuple(range(x.ndim)) if axis is None else normalize_axis(axis, x.ndim, "flip",
                                                                    x.shape)
    return apply(Flip(axes), (x,)) if axes else x


def _tile_layout(shape: tuple, reps: tuple) -> tuple[tuple, tuple]:
    """(shape, reps) both padded with leading 1s to one length, as ``np.tile`` does."""
    d = max(len(shape), len(reps))
    return (1,) * (d - len(shape)) + shape, (1,) * (d - len(reps)) + reps


class Tile(Op):
    """``x`` repeated ``reps[d]`` times along each axis (``np.tile``: the shorter of x's shape
    and reps is padded with leading 1s); gradient: the sum of g over the copies, as a reshape
    to (r0, s0, r1, s1, ...) and a sum over the r axes."""

    name = "tile"

    def __init__(self, reps):
        if not isinstance(reps, (tuple, list)):
            raise SymdiffError(f"tile: reps param must be a tuple of ints, got {reps!r}")
        reps = tuple(int_param(r, "tile", "each repetition count") for r in reps)
        if any(r < 0 for r in reps):
            raise SymdiffError(f"tile: repetition counts must be non-negative, got {reps}")
        super().__init__(reps=reps)

    def infer(self, x):
        shape, reps = _tile_layout(x.shape, self.reps)
        return _result_shape([s * r for s, r in zip(shape, reps)], "tile"), x.dtype

    def lower(self, x):
        return Call("tile", (x, self.reps))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        shape, reps = _tile_layout(x.shape, self.reps)
        # out[k s + j] = x[j] along each axis: copy k of entry j sits at (k, j) after a reshape
        interleaved = tuple(v for r, s in zip(reps, shape) for v in (r, s))
        copies = tuple(range(0, 2 * len(shape), 2))
        return [reshape(reduce_sum(reshape(g, interleaved), axis=copies), x.shape)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def tile(x, reps) -> Expr:
    """``x`` repeated ``reps`` times (an int or one count per axis), as ``np.tile``.

    >>> import symdiff as sd
    >>> sd.tile(sd.var("x", (2, 3)), (2, 1, 2)).shape
    (2, 2, 6)
    """
    x = as_expr(x)
    try:
        counts = np.asarray(reps)
    except (ValueError, TypeError, OverflowError):  # ragged lists and the like
        counts = None
    if counts is not None and counts.size == 0:
        counts = counts.astype(np.int64)  # () is float64 to NumPy
    if counts is None or counts.ndim > 1 or counts.dtype.kind not in "iu":
        raise ShapeError(f"tile: reps must be an int or a tuple of ints, got {reps!r:.80}")
    op = Tile(tuple(int(r) for r in counts.reshape(-1)))
    if len(op.reps) <= x.ndim and all(r == 1 for r in op.reps):
        return x
    return apply(op, (x,))


class Repeat(Op):
    """Each entry of x along ``axis`` repeated ``repeats`` times (an int, or one count per
    entry), as ``np.repeat``; ``axis=None`` repeats the entries of the flattened x. Gradient:
    the sum of g over each run: a reshape and a sum for an int, a scatter-add otherwise."""

    name = "repeat"

    def __init__(self, repeats, axis=None):
        if isinstance(repeats, (tuple, list)):
            repeats = tuple(int_param(r, "repeat", "each repeat count") for r in repeats)
            counts = repeats
        else:
            repeats = int_param(repeats, "repeat", "repeats")
            counts = (repeats,)
        if any(r < 0 for r in counts):
            raise SymdiffError(f"repeat: repeat counts must be non-negative, got {repeats!r}")
        axis = None if axis is None else int_param(axis, "repeat", "axis")
        super().__init__(repeats=repeats, axis=axis)

    def _base_shape(self, x):
        """x's shape as the op sees it (flattened for axis=None) and the repeated axis."""
        if self.axis is None:
            return (x.size,), 0
        check_axis_range(self.axis, x.ndim, "repeat", x.shape)
        return x.shape, self.axis

    def batch(self, inputs, batched):
        if self.axis is None:  # repeats of the flattened x: each batch entry flattens alone
            raise NoBatchingRuleError("vmap: repeat with axis=None has no batching rule; give an axis")
        return apply(Repeat(self.repeats, self.axis + 1), inputs)

    def infer(self, x):
        shape, axis = self._base_shape(x)
        n = shape[axis]
        if isinstance(self.repeats, tuple):
            if len(self.repeats) != n:
                raise ShapeError(f"repeat: {len(self.repeats)} repeat counts for axis "
                                 f"{self.axis} of shape {fmt_shape(x.shape)} (size {n})")
            size = sum(self.repeats)
        else:
            size = n * self.repeats
        return _result_shape(shape[:axis] + (size,) + shape[axis + 1:], "repeat"), x.dtype

    def lower(self, x):
        return Call("repeat", (x, self.repeats), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        x = inputs[0]
        shape, axis = self._base_shape(x)
        n = shape[axis]
        if isinstance(self.repeats, tuple):
            # run k of g holds repeats[k] copies of entry k: scatter-add them onto k
            owners = np.repeat(np.arange(n, dtype=np.int64), self.repeats)
            summed = apply(ScatterAdd(shape, axis), (g, const(owners)))
        else:
            # out[k r + j] = x[k] for j < r: reshape to (..., n, r, ...) and sum the r axis
            runs = shape[:axis] + (n, self.repeats) + shape[axis + 1:]
            summed = reduce_sum(reshape(g, runs), axis=axis + 1)
        return [reshape(summed, x.shape)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def repeat(x, repeats, axis=None) -> Expr:
    """Each entry of ``x`` repeated ``repeats`` times along ``axis`` (None: of the flattened
    ``x``), as ``np.repeat``; ``repeats`` an int or one count per entry.

    >>> import symdiff as sd
    >>> sd.repeat(sd.var("x", (2, 3)), [1, 0, 2], axis=1).shape
    (2, 3)
    """
    x = as_expr(x)
    if axis is not None:
        axis = normalize_single_axis(axis, x.ndim, "repeat", x.shape)
    if not isinstance(repeats, (int, np.integer)):
        try:
            counts = np.asarray(repeats)
        except (ValueError, TypeError):
            counts = None
        if counts is None or counts.ndim > 1 or counts.dtype.kind not in "iu":
            raise ShapeError(f"repeat: repeats must be an int or a list of ints, got "
                             f"{repeats!r:.80}")
        counts = counts.reshape(-1)
        if counts.size == 1 or (counts.size and (counts == counts[0]).all()):
            repeats = int(counts[0])  # NumPy broadcasts one count; equal counts are an int
        else:
            repeats = tuple(int(c) for c in counts)
    return apply(Repeat(repeats, axis), (x,))


# ---------------------------------------------------------------------------------------------
# take_along_axis and its transpose
# ---------------------------------------------------------------------------------------------
def _along_axis_shape(shape: tuple, indices: Expr, axis: int, opname: str) -> tuple:
    """The shape of ``take_along_axis`` of an array of ``shape``: indices' extent on ``axis``,
    the broadcast of both elsewhere (NumPy's rule)."""
    if indices.dtype.kind not in "iu":
        raise DTypeError(f"{opname}: indices must be integers, got {indices.dtype}")
    if indices.ndim != len(shape):
        raise ShapeError(f"{opname}: indices of shape {fmt_shape(indices.shape)} need as many "
                         f"dimensions as the array of shape {fmt_shape(shape)}")
    out = []
    for d, (a, b) in enumerate(zip(shape, indices.shape)):
        if d == axis:
            out.append(b)
        elif a == b or b == 1 or a == 1:
            out.append(a if b == 1 else b)
        else:
            raise ShapeError(f"{opname}: indices of shape {fmt_shape(indices.shape)} do not "
                             f"broadcast with shape {fmt_shape(shape)} off axis {axis}")
    _check_indices(indices, shape[axis], opname, shape)
    return tuple(out)


class TakeAlongAxis(Op):
    """``out[..., i, ...] = x[..., indices[..., i, ...], ...]`` along ``axis``
    (``np.take_along_axis``; indices an integer input); gradient: g scatter-added into zeros of
    x's shape at the same positions (``scatter_along_axis``), so repeated indices accumulate."""

    name = "take_along_axis"

    def __init__(self, axis):
        super().__init__(axis=int_param(axis, "take_along_axis", "axis"))

    def batch(self, inputs, batched):
        # both operands get the batch axis (a size-1 one broadcasts), the axis moves past it
        x, indices = (v if b else expand_dims(v, 0) for v, b in zip(inputs, batched))
        return apply(TakeAlongAxis(self.axis + 1), (x, indices))

    def infer(self, x, indices):
        check_axis_range(self.axis, x.ndim, "take_along_axis", x.shape)
        return _along_axis_shape(x.shape, indices, self.axis, "take_along_axis"), x.dtype

    def lower(self, x, indices):
        return Call("take_along_axis", (x, indices), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        x, indices = inputs
        return [apply(ScatterAlongAxis(x.shape, self.axis), (g, indices)), None]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0], inputs[1]))


class ScatterAlongAxis(Op):
    """Zeros of ``shape`` with g added at the positions take_along_axis reads (repeated
    positions accumulate; an axis of size 1 in ``shape`` that the result broadcast sums its
    entries): the transpose of take_along_axis; gradient: take_along_axis of the upstream."""

    name = "scatter_along_axis"

    def __init__(self, shape, axis):
        shape = normalize_shape(shape, "scatter_along_axis shape")
        axis = int_param(axis, "scatter_along_axis", "axis")
        check_axis_range(axis, len(shape), "scatter_along_axis", shape)
        super().__init__(shape=shape, axis=axis)

    def infer(self, g, indices):
        want = _along_axis_shape(self.shape, indices, self.axis, "scatter_along_axis")
        if g.shape != want:
            raise ShapeError(f"scatter_along_axis: values of shape {fmt_shape(g.shape)} do not "
                             f"fit indices {fmt_shape(indices.shape)} into "
                             f"{fmt_shape(self.shape)}")
        return self.shape, g.dtype

    def lower(self, g, indices):
        return Call("scatter_along_axis", (g, indices, self.shape, self.axis))

    def bprop(self, inputs, out, g):
        return [apply(TakeAlongAxis(self.axis), (g, inputs[1])), None]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0], inputs[1]))


def take_along_axis(x, indices, axis) -> Expr:
    """Entries of ``x`` at integer ``indices`` along ``axis`` (``indices`` has x's number of
    dimensions; other axes broadcast), as ``np.take_along_axis``; ``axis=None`` works on the
    flattened ``x`` with 1-D indices. ``indices`` may be an integer variable.

    >>> import numpy as np, symdiff as sd
    >>> x = sd.var("x", (2, 3))
    >>> sd.take_along_axis(x, np.array([[2], [0]]), axis=1).shape
    (2, 1)
    """
    x = as_expr(x)
    indices = _as_index_expr(indices, "take_along_axis")
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    if x.ndim == 0:
        raise ShapeError("take_along_axis: cannot index a scalar")
    axis = normalize_single_axis(axis, x.ndim, "take_along_axis", x.shape)
    return apply(TakeAlongAxis(axis), (x, indices))


# ---------------------------------------------------------------------------------------------
# one_hot
# ---------------------------------------------------------------------------------------------
class OneHot(Op):
    """``out[..., j] = 1.0 if labels[...] == j else 0.0`` for j < n, float64. A label outside
    0..n-1 (or not a whole number) gives a row of zeros, as JAX's ``one_hot``. No gradient:
    the labels are integers (a gradient requested through it is an error)."""

    name = "one_hot"
    differentiable = False

    def __init__(self, n):
        n = int_param(n, "one_hot", "n")
        if n < 0:
            raise SymdiffError(f"one_hot: n must be non-negative, got {n}")
        super().__init__(n=n)

    def batch(self, inputs, batched):
        return apply(self, inputs)  # the new axis is last: the batch axis stays first

    def infer(self, labels):
        if labels.dtype.kind not in "iuf":
            raise DTypeError(f"one_hot: labels must be integers, got {labels.dtype}")
        return _result_shape(labels.shape + (self.n,), "one_hot"), np.dtype(np.float64)

    def lower(self, labels):
        return Call("one_hot", (labels, self.n))


def one_hot(labels, n) -> Expr:
    """A float64 0/1 array of shape ``labels.shape + (n,)`` with a 1 at each label
    (``labels`` integers, e.g. an int64 variable; out-of-range labels give zero rows).

    >>> import symdiff as sd
    >>> sd.one_hot(sd.var("y", (4,), "int64"), 3).shape
    (4, 3)
    """
    labels = _as_index_expr(labels, "one_hot")
    return apply(OneHot(n), (labels,))


# ---------------------------------------------------------------------------------------------
# tril, triu
# ---------------------------------------------------------------------------------------------
class _Triangle(Op):
    """Zero the entries of the last two axes above (tril) or below (triu) diagonal ``k``: a
    mask, so its gradient is the same mask applied to g."""

    def __init__(self, k=0):
        super().__init__(k=int_param(k, self.name, "k"))

    def batch(self, inputs, batched):
        # tril/triu act on the last two axes; a 1-D x (made a matrix) has no rule
        if inputs[0].ndim < 3:
            raise NoBatchingRuleError(f"vmap: {self.name} of a vector has no batching rule")
        return apply(self, inputs)

    def infer(self, x):
        if x.ndim < 2:
            raise ShapeError(f"{self.name}: needs at least 2 dimensions, got shape "
                             f"{fmt_shape(x.shape)}")
        return x.shape, x.dtype

    def lower(self, x):
        return Call(self.name, (x,), (("k", self.k),))

    def bprop(self, inputs, out, g):
        return [apply(self, (g,))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


class Tril(_Triangle):
    __doc__ = "``np.tril``: keeps ``x[..., i, j]`` for ``j - i <= k``. " + _Triangle.__doc__
    name = "tril"


class Triu(_Triangle):
    __doc__ = "``np.triu``: keeps ``x[..., i, j]`` for ``j - i >= k``. " + _Triangle.__doc__
    name = "triu"


def tril(x, k=0) -> Expr:
    """The lower triangle of ``x`` (on and below diagonal ``k``) of its last two axes."""
    return apply(Tril(k), (as_expr(x),))


def triu(x, k=0) -> Expr:
    """The upper triangle of ``x`` (on and above diagonal ``k``) of its last two axes."""
    return apply(Triu(k), (as_expr(x),))


# ---------------------------------------------------------------------------------------------
# diag, diagonal, trace
# ---------------------------------------------------------------------------------------------
def _diagonal_length(n1: int, n2: int, offset: int) -> int:
    return max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))


def _diagonal_embed(g: Expr, shape: tuple, offset: int, axis1: int, axis2: int) -> Expr:
    """Zeros of ``shape`` with g's last axis on the ``offset`` diagonal of (axis1, axis2):
    the transpose of :class:`Diagonal`, as pad, a product with the 0/1 matrix
    ``E = eye(n1, n2, offset)`` and a transpose (all differentiable again)."""
    n1, n2 = shape[axis1], shape[axis2]
    length = g.shape[-1]
    lead = ((0, 0),) * (g.ndim - 1)
    eye = const(np.eye(n1, n2, k=offset, dtype=g.dtype))
    if offset >= 0:  # entry (r, r + offset) holds g[r]: index g by row
        full = expand_dims(pad(g, lead + ((0, n1 - length),)), -1) * eye
    else:            # entry (c - offset, c) holds g[c]: index g by column
        full = expand_dims(pad(g, lead + ((0, n2 - length),)), -2) * eye
    return _last_two_back(full, axis1, axis2)


def _last_two_back(full: Expr, axis1: int, axis2: int) -> Expr:
    """``full``, whose last two axes are (axis1, axis2) of an array and the others that
    array's remaining axes in order, transposed to the array's layout."""
    layout = [d for d in range(full.ndim) if d not in (axis1, axis2)] + [axis1, axis2]
    return transpose(full, tuple(int(a) for a in np.argsort(layout)))


class Diag(Op):
    """``np.diag`` of a vector: the square matrix with v on diagonal ``k`` (zeros elsewhere);
    gradient: the ``k`` diagonal of g."""

    name = "diag"

    def __init__(self, k=0):
        super().__init__(k=int_param(k, "diag", "k"))

    def infer(self, v):
        if v.ndim != 1:
            raise ShapeError(f"diag: the op takes a vector, got shape {fmt_shape(v.shape)}")
        n = v.shape[0] + abs(self.k)
        return _result_shape((n, n), "diag"), v.dtype

    def lower(self, v):
        return Call("diag", (v,), (("k", self.k),))

    def bprop(self, inputs, out, g):
        return [diagonal(g, offset=self.k)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def diag(x, k=0) -> Expr:
    """As ``np.diag``: of a vector, the matrix with it on diagonal ``k``; of a matrix, its
    ``k`` diagonal (``diagonal(x, offset=k)``).

    >>> import symdiff as sd
    >>> sd.diag(sd.var("v", (3,))).shape, sd.diag(sd.var("A", (3, 4)), 1).shape
    ((3, 3), (3,))
    """
    x = as_expr(x)
    if x.ndim == 2:
        return diagonal(x, offset=k)
    if x.ndim != 1:
        raise ShapeError(f"diag: input must be 1-D or 2-D, got shape {fmt_shape(x.shape)}")
    return apply(Diag(k), (x,))


class Diagonal(Op):
    """``np.diagonal``: entries ``x[..., i, ..., i + offset, ...]`` of axes (axis1, axis2), as
    a new last axis (NumPy's read-only view); gradient: g put back on that diagonal of zeros."""

    name = "diagonal"
    view, writable_view = True, False

    def __init__(self, offset=0, axis1=0, axis2=1):
        offset, axis1, axis2 = (int_param(v, "diagonal", what) for v, what in
                                ((offset, "offset"), (axis1, "axis1"), (axis2, "axis2")))
        if axis1 == axis2 or axis1 < 0 or axis2 < 0:
            raise SymdiffError(f"diagonal: axes {axis1} and {axis2} must be distinct and "
                               f"non-negative")
        super().__init__(offset=offset, axis1=axis1, axis2=axis2)

    def batch(self, inputs, batched):
        return apply(type(self)(self.offset, self.axis1 + 1, self.axis2 + 1), inputs)

    def infer(self, x):
        if x.ndim < 2:
            raise ShapeError(f"{self.name}: needs at least 2 dimensions, got shape "
                             f"{fmt_shape(x.shape)}")
        check_axis_range(self.axis1, x.ndim, self.name, x.shape)
        check_axis_range(self.axis2, x.ndim, self.name, x.shape)
        rest = tuple(d for i, d in enumerate(x.shape) if i not in (self.axis1, self.axis2))
        n = _diagonal_length(x.shape[self.axis1], x.shape[self.axis2], self.offset)
        return rest + (n,), x.dtype

    def _params(self):
        return (("offset", self.offset), ("axis1", self.axis1), ("axis2", self.axis2))

    def lower(self, x):
        return Call(self.name, (x,), self._params())

    def bprop(self, inputs, out, g):
        return [_diagonal_embed(g, inputs[0].shape, self.offset, self.axis1, self.axis2)]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def _diagonal_axes(x: Expr, axis1, axis2, opname: str) -> tuple[int, int]:
    if x.ndim < 2:
        raise ShapeError(f"{opname}: needs at least 2 dimensions, got shape "
                         f"{fmt_shape(x.shape)}")
    a1 = normalize_single_axis(axis1, x.ndim, opname, x.shape)
    a2 = normalize_single_axis(axis2, x.ndim, opname, x.shape)
    if a1 == a2:
        raise ShapeError(f"{opname}: axis1 and axis2 are the same axis {a1} of shape "
                         f"{fmt_shape(x.shape)}")
    return a1, a2


def diagonal(x, offset=0, axis1=0, axis2=1) -> Expr:
    """The ``offset`` diagonal of axes (axis1, axis2) of ``x``, as a new last axis
    (``np.diagonal``).

    >>> import symdiff as sd
    >>> sd.diagonal(sd.var("x", (2, 3, 4)), axis1=1, axis2=2).shape
    (2, 3)
    """
    x = as_expr(x)
    a1, a2 = _diagonal_axes(x, axis1, axis2, "diagonal")
    return apply(Diagonal(offset, a1, a2), (x,))


class Trace(Diagonal):
    """``np.trace``: the sum of the ``offset`` diagonal of axes (axis1, axis2); gradient: g
    broadcast along that diagonal of zeros."""

    name = "trace"
    view, writable_view = False, True

    def infer(self, x):
        shape, _ = super().infer(x)
        # NumPy sums small integers in the platform integer, as np.sum
        return shape[:-1], np.trace(np.zeros((1, 1), dtype=x.dtype)).dtype

    def bprop(self, inputs, out, g):
        # d trace / dx = eye(n1, n2, offset) on axes (axis1, axis2), scaled by g
        x = inputs[0]
        eye = np.eye(x.shape[self.axis1], x.shape[self.axis2], k=self.offset, dtype=g.dtype)
        full = expand_dims(g, (-2, -1)) * const(eye)
        return [_last_two_back(full, self.axis1, self.axis2)]


def trace(x, offset=0, axis1=0, axis2=1) -> Expr:
    """The sum along the ``offset`` diagonal of axes (axis1, axis2), as ``np.trace``.

    >>> import symdiff as sd
    >>> sd.trace(sd.var("A", (3, 3))).shape
    ()
    """
    x = as_expr(x)
    a1, a2 = _diagonal_axes(x, axis1, axis2, "trace")
    return apply(Trace(offset, a1, a2), (x,))
