"""Linear algebra: matmul (NumPy semantics, batched), dot, outer, einsum (tensordot and N-D dot
are einsums).

The matmul bprop promotes 1-D operands to matrices (a row for the left, a column for the right),
applies the matrix rules ``dA = G B^T`` and ``dB = A^T G`` (Goodfellow 6.4: ``grad W = g h^T``),
then drops the promoted axis again; grad.py sums any broadcast batch axes back.
"""
from __future__ import annotations

import operator

import numpy as np

from ..errors import ShapeError, SymdiffError, fmt_shape
from ..graph import Expr, apply, as_expr, broadcast_shapes
from ..printing import latex_group
from .base import PREC_MUL, Op
from .elementwise import multiply
from .lowering import Call, Infix
from .shape import broadcast_to, reshape, swap_last_two


class Matmul(Op):
    """``a @ b`` as ``np.matmul``: 1-D operands are promoted, leading axes broadcast.
    Gradients: ``dA = G B^T``, ``dB = A^T G`` on the promoted operands."""

    name, symbol, precedence = "matmul", "@", PREC_MUL

    def latex_form(self, inputs, parts):
        factors = [latex_group(part, PREC_MUL) for part in parts]
        if inputs[0].ndim == 1:  # a vector on the left is a row: u^T h
            factors[0] = f"{latex_group(parts[0])}^\\top"
        return " ".join(factors), PREC_MUL

    def infer(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"{self.name}: scalar operand {fmt_shape(a.shape)} @ "
                             f"{fmt_shape(b.shape)}; use * for scaling")
        a2 = a.shape if a.ndim >= 2 else (1,) + a.shape
        b2 = b.shape if b.ndim >= 2 else b.shape + (1,)
        if a2[-1] != b2[-2]:
            raise ShapeError(f"{self.name}: cannot align {fmt_shape(a.shape)} with "
                             f"{fmt_shape(b.shape)} ({a2[-1]} != {b2[-2]})")
        try:
            batch = broadcast_shapes(a2[:-2], b2[:-2], opname=self.name)
        except ShapeError:
            raise ShapeError(f"{self.name}: the batch axes of {fmt_shape(a.shape)} and "
                             f"{fmt_shape(b.shape)} cannot be broadcast together") from None
        shape = batch + (a2[-2],) * (a.ndim >= 2) + (b2[-1],) * (b.ndim >= 2)
        return shape, np.result_type(a.dtype, b.dtype)

    def lower(self, a, b):
        return Infix("@", a, b)

    def bprop(self, inputs, out, g):
        a, b = inputs
        vector = _vector_bprop(a, b, g)
        if vector is not None:
            return vector
        a2 = a if a.ndim >= 2 else reshape(a, (1,) + a.shape)
        b2 = b if b.ndim >= 2 else reshape(b, b.shape + (1,))
        batch = out.shape[:len(out.shape) - (a.ndim >= 2) - (b.ndim >= 2)]
        g2 = reshape(g, batch + (a2.shape[-2], b2.shape[-1]))
        # dA = G B^T, dB = A^T G
        ga = matmul(g2, swap_last_two(b2))
        gb = matmul(swap_last_two(a2), g2)
        if a.ndim == 1:
            ga = reshape(ga, ga.shape[:-2] + a.shape)
        if b.ndim == 1:
            gb = reshape(gb, gb.shape[:-2] + b.shape)
        return [ga, gb]

    def jvp(self, inputs, out, tangents):
        a, b = inputs
        ta, tb = tangents
        if ta is None:
            return apply(self, (a, tb))
        left = apply(self, (ta, b))
        return left if tb is None else left + apply(self, (a, tb))


def _vector_bprop(a: Expr, b: Expr, g: Expr):
    """The textbook forms when an operand is a vector (CS224n: ``dS/dW = delta x^T``):
    ``u . h`` gives ``g h`` and ``g u``; ``W x`` gives ``outer(g, x)`` and ``W^T g``; ``x W``
    gives ``W g`` and ``outer(x, g)``. None for matrix-matrix and batched products."""
    if a.ndim == 1 and b.ndim == 1:
        return [g * b, g * a]
    if a.ndim == 2 and b.ndim == 1:
        return [outer(g, b), matmul(g, a)]
    if a.ndim == 1 and b.ndim == 2:
        return [matmul(b, g), outer(a, g)]
    return None


class Dot(Matmul):
    """``np.dot`` for operands of at most two dimensions (where it equals matmul); the same
    gradients as matmul."""

    name, symbol = "dot", None
    scalar = staticmethod(operator.mul)  # the dot of two 0-d values is their product
    sympy = staticmethod(lambda s, a, b: a * b)

    def infer(self, a, b):
        if a.ndim > 2 or b.ndim > 2:
            raise ShapeError(f"dot: operands {fmt_shape(a.shape)} and {fmt_shape(b.shape)} "
                             f"have more than 2 dimensions; use matmul")
        return super().infer(a, b)

    def lower(self, a, b):
        return Call("dot", (a, b))


def matmul(a, b) -> Expr:
    """Matrix product with NumPy's ``matmul`` semantics (batched, 1-D promoted)."""
    a, b = as_expr(a), as_expr(b)
    return apply(Matmul(), (a, b))


def dot(a, b) -> Expr:
    """``np.dot``: a 0-D operand scales the other; up to 2-D it is matmul; with more axes it
    sums over the last axis of ``a`` and the second-to-last of ``b`` (an einsum)."""
    a, b = as_expr(a), as_expr(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if a.ndim > 2 or b.ndim > 2:
        return _nd_dot(a, b)
    return apply(Dot(), (a, b))


class Outer(Op):
    """``np.outer``: the flattened a times the flattened b, shape (a.size, b.size).
    Gradients: ``da = G b``, ``db = G^T a`` (reshaped back)."""

    name = "outer"

    def latex_form(self, inputs, parts):
        return f"{latex_group(parts[0])} {latex_group(parts[1])}^\\top", PREC_MUL

    def infer(self, a, b):
        return (a.size, b.size), np.result_type(a.dtype, b.dtype)

    def lower(self, a, b):
        return Call("outer", (a, b))

    def bprop(self, inputs, out, g):
        a, b = inputs
        return [reshape(matmul(g, reshape(b, (-1,))), a.shape),
                reshape(matmul(reshape(a, (-1,)), g), b.shape)]


def outer(a, b) -> Expr:
    """Outer product of two vectors (inputs are flattened, as NumPy)."""
    return apply(Outer(), (as_expr(a), as_expr(b)))


# ---------------------------------------------------------------------------------------------
# einsum, and tensordot and N-D dot written through it
# ---------------------------------------------------------------------------------------------
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# contractions with more multiply-adds than this go through np.einsum's optimize=True path
# (tensordot, so BLAS), whose planning costs tens of microseconds on small operands
_OPTIMIZE_WORK = 1 << 14


def _parse_subscripts(subscripts, shapes: list, opname: str = "einsum"):
    """``subscripts`` (NumPy's notation: explicit ``->`` or implicit output, ``...``) for
    operands of ``shapes``, as (one letter string per operand, the output letters, the letters
    the ellipsis stands for). ShapeError when the text does not fit the operands."""
    if not isinstance(subscripts, str):
        raise ShapeError(f"{opname}: subscripts must be a string, got {subscripts!r}")
    text = subscripts.replace(" ", "")
    shown = ", ".join(fmt_shape(s) for s in shapes)
    if text.count("->") > 1:
        raise ShapeError(f"{opname}: more than one '->' in {subscripts!r}")
    left, arrow, right = text.partition("->")
    terms = left.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(f"{opname}: {subscripts!r} names {len(terms)} operands, got "
                         f"{len(shapes)} ({shown})")
    for term in [*terms, right]:
        if any(ch not in _LETTERS for ch in term.replace("...", "", 1)):
            raise ShapeError(f"{opname}: {subscripts!r}: subscripts are letters and at most "
                             f"one '...' per term")
    used = set(text) - set(".,->")
    fresh = [ch for ch in _LETTERS if ch not in used]
    widths = []
    for term, shape in zip(terms, shapes):
        named = len(term.replace("...", ""))
        if ("..." in term and named > len(shape)) or ("..." not in term and named != len(shape)):
            raise ShapeError(f"{opname}: term {term!r} of {subscripts!r} does not fit operand "
                             f"shape {fmt_shape(shape)} (operands {shown})")
        widths.append(len(shape) - named if "..." in term else 0)
    ellipsis = "".join(fresh[:max(widths, default=0)])
    if len(fresh) < len(ellipsis):
        raise ShapeError(f"{opname}: {subscripts!r} needs more than {len(_LETTERS)} letters")
    expanded = [term.replace("...", ellipsis[len(ellipsis) - w:]) if "..." in term else term
                for term, w in zip(terms, widths)]
    if arrow:
        out = right.replace("...", ellipsis)
    else:
        counts = {}
        for term in terms:
            for ch in term.replace("...", ""):
                counts[ch] = counts.get(ch, 0) + 1
        out = ellipsis + "".join(sorted(ch for ch, n in counts.items() if n == 1))
    return expanded, out, ellipsis


def _letter_sizes(terms, shapes, subscripts: str, opname: str = "einsum",
                  broadcast: str = "") -> dict:
    """Each letter's size; letters in ``broadcast`` (the ellipsis) may be 1 in some operands."""
    sizes = {}
    for term, shape in zip(terms, shapes):
        for ch, n in zip(term, shape):
            known = sizes.get(ch)
            if known is None or (ch in broadcast and known == 1):
                sizes[ch] = n
            elif n != known and not (ch in broadcast and n == 1):
                raise ShapeError(f"{opname}: {subscripts!r}: index {ch!r} has size {known} and "
                                 f"{n} (operands {', '.join(fmt_shape(s) for s in shapes)})")
    return sizes


class Einsum(Op):
    """``np.einsum(subscripts, *operands)`` with canonical explicit subscripts (letters only,
    ``->`` always; the builder expands ``...`` and the implicit output).

    The sum is multilinear, so the gradient of operand ``k`` is the einsum of the upstream
    ``g`` (subscripts: the output) with the other operands, to operand ``k``'s subscripts.
    Two cases need care: a letter repeated in operand ``k`` (a diagonal, ``"ii->i"``) gets the
    identity matrix as an extra operand, over the letter and a fresh copy, so the gradient is
    zero off the diagonal; a letter only operand ``k`` has (summed out) gets a ones vector, so
    the gradient is broadcast along it. The jvp is the sum over operands of the einsum with
    that operand replaced by its tangent."""

    name = "einsum"
    # a pure permutation or diagonal (``"ij->ji"``, ``"ii->i"``) is a view of the operand
    view, writable_view = True, False

    def __init__(self, subscripts: str, optimize: bool = False):
        if not isinstance(subscripts, str) or "->" not in subscripts:
            raise SymdiffError(f"einsum: subscripts param must be explicit text 'ab,bc->ac', "
                               f"got {subscripts!r}")
        if not isinstance(optimize, bool):
            raise SymdiffError(f"einsum: optimize must be True or False, got {optimize!r}")
        super().__init__(subscripts=subscripts, optimize=optimize)

    def infer(self, *inputs):
        shapes = [x.shape for x in inputs]
        terms, out, _ = _parse_subscripts(self.subscripts, shapes)
        sizes = _letter_sizes(terms, shapes, self.subscripts)
        if len(set(out)) != len(out) or any(ch not in sizes for ch in out):
            raise ShapeError(f"einsum: output {out!r} of {self.subscripts!r} must name distinct "
                             f"indices of the operands")
        return tuple(sizes[ch] for ch in out), np.result_type(*[x.dtype for x in inputs])

    def lower(self, *args):
        params = (("optimize", True),) if self.optimize else ()
        return Call("einsum", (self.subscripts,) + args, params)

    def bprop(self, inputs, out, g):
        terms, out_term = self.subscripts.split("->")
        terms = terms.split(",")
        sizes = {ch: n for term, x in zip(terms, inputs) for ch, n in zip(term, x.shape)}
        used = set(self.subscripts)
        fresh = [ch for ch in _LETTERS if ch not in used]
        grads = []
        for k, x in enumerate(inputs):
            operands = [inputs[j] for j in range(len(inputs)) if j != k] + [g]
            subs = [terms[j] for j in range(len(inputs)) if j != k] + [out_term]
            target, seen, spare = [], set(), iter(fresh)
            for ch in terms[k]:
                if ch in seen:  # a diagonal: d x_ii = delta_ij (an identity operand)
                    copy = next(spare)
                    subs.append(ch + copy)
                    operands.append(as_expr(np.eye(sizes[ch], dtype=g.dtype)))
                    target.append(copy)
                else:
                    seen.add(ch)
                    target.append(ch)
            present = set("".join(subs))
            for ch in terms[k]:
                if ch not in present:  # summed out of x alone: the gradient is constant along ch
                    subs.append(ch)
                    operands.append(as_expr(np.ones(sizes[ch], dtype=g.dtype)))
                    present.add(ch)
            grads.append(_einsum_node(",".join(subs) + "->" + "".join(target), operands))
        return grads

    def jvp(self, inputs, out, tangents):
        total = None
        for k, t in enumerate(tangents):
            if t is None:
                continue
            term = apply(self, tuple(t if j == k else x for j, x in enumerate(inputs)))
            total = term if total is None else total + term
        return total


def _einsum_node(subscripts: str, operands: list) -> Expr:
    """An Einsum node for canonical ``subscripts``, planned with BLAS when the work is large."""
    terms = subscripts.split("->")[0].split(",")
    sizes = {ch: n for term, x in zip(terms, operands) for ch, n in zip(term, x.shape)}
    work = int(np.prod([sizes[ch] for ch in sizes], dtype=np.float64))
    optimize = len(operands) >= 3 or work > _OPTIMIZE_WORK
    return apply(Einsum(subscripts, optimize), tuple(operands))


def einsum(subscripts: str, *operands) -> Expr:
    """Einstein summation as ``np.einsum``: explicit (``"ij,jk->ik"``) or implicit output
    (``"ij,jk"``: the indices seen once, sorted), ``...`` for broadcast leading axes.

    Raises ShapeError when the subscripts do not fit the operands' shapes.

    >>> import symdiff as sd
    >>> a, b = sd.var("a", (2, 3)), sd.var("b", (3, 4))
    >>> sd.einsum("ij,jk->ik", a, b).shape
    (2, 4)
    """
    if not operands:
        raise ShapeError("einsum: no operands")
    operands = [as_expr(x) for x in operands]
    shapes = [x.shape for x in operands]
    terms, out, ellipsis = _parse_subscripts(subscripts, shapes)
    sizes = _letter_sizes(terms, shapes, subscripts, broadcast=ellipsis)
    if len(set(out)) != len(out) or any(ch not in sizes for ch in out):
        raise ShapeError(f"einsum: output of {subscripts!r} must name distinct indices of the "
                         f"operands ({', '.join(fmt_shape(s) for s in shapes)})")
    for k, (term, x) in enumerate(zip(terms, operands)):
        full = tuple(sizes[ch] for ch in term)
        if full != x.shape:  # a size-1 ellipsis axis broadcast against the others
            operands[k] = broadcast_to(x, full)
    return _einsum_node(",".join(terms) + "->" + out, operands)


def tensordot(a, b, axes=2) -> Expr:
    """``np.tensordot``: sum over the last ``axes`` axes of ``a`` and the first of ``b`` (an
    int), or over the axes pairs ``(axes_a, axes_b)``; written as an einsum.

    >>> import symdiff as sd
    >>> sd.tensordot(sd.var("a", (2, 3, 4)), sd.var("b", (3, 4, 5))).shape
    (2, 5)
    """
    a, b = as_expr(a), as_expr(b)
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot: axes={axes} does not fit {fmt_shape(a.shape)} and "
                             f"{fmt_shape(b.shape)}")
        axes_a, axes_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        try:
            axes_a, axes_b = axes
            axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
            axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
        except (TypeError, ValueError):
            raise ShapeError(f"tensordot: axes must be an int or a pair of axis sequences, "
                             f"got {axes!r}") from None
    if len(axes_a) != len(axes_b):
        raise ShapeError(f"tensordot: {len(axes_a)} axes of {fmt_shape(a.shape)} against "
                         f"{len(axes_b)} of {fmt_shape(b.shape)}")
    axes_a = [_axis_in(ax, a, "tensordot") for ax in axes_a]
    axes_b = [_axis_in(ax, b, "tensordot") for ax in axes_b]
    if len(set(axes_a)) != len(axes_a) or len(set(axes_b)) != len(axes_b):
        raise ShapeError(f"tensordot: repeated axis in {axes!r}")
    for i, j in zip(axes_a, axes_b):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"tensordot: axis {i} of {fmt_shape(a.shape)} (size {a.shape[i]}) "
                             f"does not match axis {j} of {fmt_shape(b.shape)} "
                             f"(size {b.shape[j]})")
    if a.ndim + b.ndim > len(_LETTERS):
        raise ShapeError(f"tensordot: {fmt_shape(a.shape)} and {fmt_shape(b.shape)} have too "
                         f"many axes")
    letters = iter(_LETTERS)
    ta = [next(letters) for _ in range(a.ndim)]
    tb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(axes_a, axes_b):
        tb[j] = ta[i]
    out = [ta[i] for i in range(a.ndim) if i not in axes_a]
    out += [tb[j] for j in range(b.ndim) if j not in axes_b]
    return _einsum_node(f"{''.join(ta)},{''.join(tb)}->{''.join(out)}", [a, b])


def _axis_in(axis, x: Expr, opname: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"{opname}: axis {axis!r} is not an int")
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{opname}: axis {axis} is out of range for {fmt_shape(x.shape)}")
    return int(axis) % x.ndim


def _nd_dot(a: Expr, b: Expr) -> Expr:
    """``np.dot`` when an operand has more than two axes: the sum over the last axis of ``a``
    and the second-to-last of ``b`` (its only axis when 1-D), as an einsum."""
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if k_a != k_b:
        raise ShapeError(f"dot: cannot align {fmt_shape(a.shape)} with {fmt_shape(b.shape)} "
                         f"({k_a} != {k_b})")
    if a.ndim + b.ndim > len(_LETTERS):
        raise ShapeError(f"dot: {fmt_shape(a.shape)} and {fmt_shape(b.shape)} have too many "
                         f"axes")
    letters = iter(_LETTERS)
    ta = [next(letters) for _ in range(a.ndim)]
    tb = [next(letters) for _ in range(b.ndim)]
    tb[-2 if b.ndim >= 2 else 0] = ta[-1]
    out = ta[:-1] + [ch for ch in tb if ch != ta[-1]]
    return _einsum_node(f"{''.join(ta)},{''.join(tb)}->{''.join(out)}", [a, b])
