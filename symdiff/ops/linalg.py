"""Linear algebra: matmul (NumPy semantics, batched), dot, outer, einsum (tensordot and N-D dot
are einsums).

The matmul bprop promotes 1-D operands to matrices (a row for the left, a column for the right),
applies the matrix rules ``dA = G B^T`` and ``dB = A^T G`` (Goodfellow 6.4: ``grad W = g h^T``),
then drops the promoted axis again; grad.py sums any broadcast batch axes back.
"""
from __future__ import annotations

import operator
import re

import numpy as np

from ..errors import ShapeError, SymdiffError, fmt_shape
from ..graph import Expr, apply, as_expr, broadcast_shapes
from ..printing import latex_group
from .base import PREC_MUL, Op, float_dtype
from .elementwise import multiply
from .reduce import sum as reduce_sum
from .lowering import Call, Infix
from .shape import broadcast_to, reshape, swap_last_two


class Matmul(Op):
    """``a @ b`` as ``np.matmul``: 1-D operands are promoted, leading axes broadcast.
    Gradients: ``dA = G B^T``, ``dB = A^T G`` on the promoted operands."""

    name, symbol, precedence = "matmul", "@", PREC_MUL

    def multiply_adds(self, inputs, out):
        """size(out) x the contracted length (a BLAS call's work)."""
        return max(out.size, 1) * inputs[0].shape[-1]

    def latex_form(self, inputs, parts):
        factors = [latex_group(part, PREC_MUL) for part in parts]
        if inputs[0].ndim == 1:  # a vector on the left is a row: u^T h
            factors[0] = f"{latex_group(parts[0])}^\\top"
        return " ".join(factors), PREC_MUL

    def gradient_form(self, inputs, names, position):
        # the forms of _vector_bprop and dA = G B^T, dB = A^T G, with G written delta
        a, b = names
        forms = {(1, 1): (f"delta {b}", f"delta {a}"),
                 (2, 1): (f"delta {b}^T", f"{a}^T delta"),
                 (1, 2): (f"{b} delta", f"{a} delta^T"),
                 (2, 2): (f"delta {b}^T", f"{a}^T delta")}
        pair = forms.get((inputs[0].ndim, inputs[1].ndim))
        return None if pair is None else pair[position]

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

    def batch(self, inputs, batched):
        """NumPy's matmul broadcasts leading axes, so a batched product is one matmul: a 1-D
        operand is promoted to a matrix, the batched operand gets unit axes after its batch
        axis up to the product's batch rank, and the promoted axis is dropped again. A batch
        of vectors times a fixed matrix is the single product ``X B`` (or ``X A^T``)."""
        a, b = inputs
        ba, bb = batched
        ra, rb = a.ndim - ba, b.ndim - bb  # the unbatched ranks
        # the identity seed (a Jacobian's rows e_i): e_i^T B is row i of B, so the batch of
        # all rows is B itself and (B e_j)_j is B^T (as rows); taken as that selection (equal
        # to the dense product wherever B is finite; where it is not, the selection keeps B's
        # inf or nan instead of spreading 0 * inf = nan over the column)
        if ba and not bb and ra == 1 and rb == 2 and _is_identity(a):
            return b
        if bb and not ba and rb == 1 and ra == 2 and _is_identity(b):
            return swap_last_two(a)
        if ba and not bb and ra == 1 and rb <= 2:
            return matmul(a, b)  # rows x_i: x_i B
        if bb and not ba and rb == 1 and ra == 2:
            return matmul(b, swap_last_two(a))  # A x_i as rows: x_i A^T
        if ra == 1:
            a = reshape(a, a.shape[:ba] + (1,) + a.shape[ba:])
        if rb == 1:
            b = reshape(b, b.shape + (1,))
        rank = max(ra, rb, 2) - 2  # the product's own batch rank
        if ba:
            a = reshape(a, a.shape[:1] + (1,) * (rank - (a.ndim - 3)) + a.shape[1:])
        if bb:
            b = reshape(b, b.shape[:1] + (1,) * (rank - (b.ndim - 3)) + b.shape[1:])
        out = matmul(a, b)
        if ra == 1:
            out = reshape(out, out.shape[:-2] + out.shape[-1:])
        if rb == 1:
            out = reshape(out, out.shape[:-1])
        return out


def _is_identity(e: Expr) -> bool:
    """True when ``e`` is a constant identity matrix."""
    value = e.value
    if value is None or value.ndim != 2 or value.shape[0] != value.shape[1]:
        return False
    return bool(np.count_nonzero(value) == value.shape[0] and np.all(np.diagonal(value) == 1))


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

    def batch(self, inputs, batched):
        # outer(a, b)[i, j] = a_i b_j: per batch entry, a column times a row
        a, b = inputs
        a = reshape(a, (a.shape[0], -1, 1) if batched[0] else (-1, 1))
        b = reshape(b, (b.shape[0], 1, -1) if batched[1] else (1, -1))
        return multiply(a, b)


def outer(a, b) -> Expr:
    """Outer product of two vectors (inputs are flattened, as NumPy)."""
    return apply(Outer(), (as_expr(a), as_expr(b)))


# ---------------------------------------------------------------------------------------------
# einsum, and tensordot and N-D dot written through it
# ---------------------------------------------------------------------------------------------
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CANONICAL = re.compile(r"[A-Za-z]*(,[A-Za-z]*)*->[A-Za-z]*")  # the op's subscripts param
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
        if not isinstance(subscripts, str) or not _CANONICAL.fullmatch(subscripts):
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


# ---------------------------------------------------------------------------------------------
# symdiff.linalg: inv, solve, det, slogdet, cholesky on (stacks of) square matrices. This
# module is the public ``symdiff.linalg`` namespace (``sd.linalg.inv`` ...).
# ---------------------------------------------------------------------------------------------
def _check_square(x: Expr, opname: str, other: Expr | None = None) -> None:
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        also = "" if other is None else f" (b {fmt_shape(other.shape)})"
        raise ShapeError(f"{opname}: a must be a (stack of) square matrices (..., n, n), "
                         f"got {fmt_shape(x.shape)}{also}")


def _matrix_t(x: Expr) -> Expr:
    return swap_last_two(x)


def _batch_scale(s: Expr, m: Expr) -> Expr:
    """``s[..., None, None] * m``: a value per matrix times the matrices."""
    return multiply(reshape(s, s.shape + (1, 1)), m)


class Inv(Op):
    """``np.linalg.inv`` of (stacks of) square matrices. ``d(A^-1) = -A^-1 dA A^-1``, so the
    gradient is ``-A^-T G A^-T`` (with ``A^-1`` the output) and the jvp ``-A^-1 dA A^-1``."""

    name = "inv"
    callable_by_name = False

    def infer(self, a):
        _check_square(a, "linalg.inv")
        return a.shape, float_dtype(a.dtype)

    def lower(self, a):
        return Call("inv", (a,))

    def bprop(self, inputs, out, g):
        out_t = _matrix_t(out)
        # dA = -A^-T G A^-T
        return [-matmul(matmul(out_t, g), out_t)]

    def jvp(self, inputs, out, tangents):
        return -matmul(matmul(out, tangents[0]), out)


class Solve(Op):
    """``np.linalg.solve(a, b)``: ``x = A^-1 b`` with ``b`` a vector ``(n,)`` or a stack of
    matrices ``(..., n, k)`` (NumPy 2's rule). Gradients: ``gb = solve(A^T, g)`` and
    ``gA = -gb x^T``; jvp ``solve(A, db - dA x)``."""

    name = "solve"
    callable_by_name = False

    def infer(self, a, b):
        _check_square(a, "linalg.solve", b)
        n = a.shape[-1]
        if b.ndim == 1:
            if b.shape[0] != n:
                raise ShapeError(f"linalg.solve: b {fmt_shape(b.shape)} does not fit a "
                                 f"{fmt_shape(a.shape)}")
            shape = a.shape[:-1]
        else:
            if b.shape[-2] != n:
                raise ShapeError(f"linalg.solve: b {fmt_shape(b.shape)} does not fit a "
                                 f"{fmt_shape(a.shape)} (b must be (n,) or (..., n, k))")
            try:
                batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], opname="linalg.solve")
            except ShapeError:
                raise ShapeError(f"linalg.solve: the batch axes of a {fmt_shape(a.shape)} and "
                                 f"b {fmt_shape(b.shape)} cannot be broadcast") from None
            shape = batch + b.shape[-2:]
        return shape, float_dtype(np.result_type(a.dtype, b.dtype))

    def lower(self, a, b):
        return Call("solve", (a, b))

    def bprop(self, inputs, out, g):
        a, b = inputs
        # gb = A^-T g, gA = -gb x^T
        gb = _solve_vectors(_matrix_t(a), g) if b.ndim == 1 else apply(self, (_matrix_t(a), g))
        if b.ndim == 1:
            ga = -multiply(reshape(gb, gb.shape + (1,)), reshape(out, out.shape[:-1] + (1,)
                                                                 + out.shape[-1:]))
        else:
            ga = -matmul(gb, _matrix_t(out))
        return [ga, gb]

    def jvp(self, inputs, out, tangents):
        a, b = inputs
        ta, tb = tangents
        rhs = tb
        if ta is not None:
            ax = (matmul(ta, out) if b.ndim != 1 else
                  reshape(matmul(ta, reshape(out, out.shape + (1,))), out.shape))
            rhs = -ax if rhs is None else rhs - ax
        return _solve_vectors(a, rhs) if b.ndim == 1 else apply(self, (a, rhs))


def _solve_vectors(a: Expr, v: Expr) -> Expr:
    """``solve`` for a stack of vectors ``v (..., n)`` (NumPy 2 reads a 2-D ``b`` as matrices,
    so a batched vector goes through as one column)."""
    if v.ndim == 1:
        return apply(Solve(), (a, v))
    x = apply(Solve(), (a, reshape(v, v.shape + (1,))))
    return reshape(x, x.shape[:-1])


class Det(Op):
    """``np.linalg.det``. Jacobi's formula: ``d det A = det A tr(A^-1 dA)``, so the gradient is
    ``g det(A) A^-T`` and the jvp ``det(A) sum(A^-T * dA)``."""

    name = "det"
    callable_by_name = False

    def infer(self, a):
        _check_square(a, "linalg.det")
        return a.shape[:-2], float_dtype(a.dtype)

    def lower(self, a):
        return Call("det", (a,))

    def bprop(self, inputs, out, g):
        # dA = g det(A) A^-T
        return [_batch_scale(g * out, _matrix_t(inv(inputs[0])))]

    def jvp(self, inputs, out, tangents):
        a = inputs[0]
        return out * reduce_sum(_matrix_t(inv(a)) * tangents[0], axis=(-2, -1))


class Logabsdet(Op):
    """The ``logabsdet`` of ``np.linalg.slogdet``: ``log |det A|``, gradient ``g A^-T`` (the
    derivative of ``log |det A|`` is ``A^-T`` wherever ``det A != 0``), jvp
    ``sum(A^-T * dA)``."""

    name = "logabsdet"
    callable_by_name = False

    def infer(self, a):
        _check_square(a, "linalg.slogdet")
        return a.shape[:-2], float_dtype(a.dtype)

    def lower(self, a):
        return Call("logabsdet", (a,))

    def bprop(self, inputs, out, g):
        return [_batch_scale(g, _matrix_t(inv(inputs[0])))]

    def jvp(self, inputs, out, tangents):
        return reduce_sum(_matrix_t(inv(inputs[0])) * tangents[0], axis=(-2, -1))


class SlogdetSign(Op):
    """The ``sign`` of ``np.linalg.slogdet`` (+-1, or 0 for a singular matrix): piecewise
    constant, so no gradient (as ``sign``); a gradient requested through it is an error."""

    name = "slogdet_sign"
    callable_by_name = False
    differentiable = False

    def infer(self, a):
        _check_square(a, "linalg.slogdet")
        return a.shape[:-2], float_dtype(a.dtype)

    def lower(self, a):
        return Call("slogdet_sign", (a,))


class Cholesky(Op):
    """``np.linalg.cholesky``: the lower factor ``L`` of ``A = L L^T`` (only ``A``'s lower
    triangle is read; ``A`` is taken as symmetric). Gradient (Murray 2016, eq. 10):
    ``gA = sym(L^-T Phi(L^T G) L^-1)`` with ``Phi`` the lower triangle with its diagonal halved
    and ``sym(M) = (M + M^T) / 2``; jvp ``dL = L Phi(L^-1 dA L^-T)``."""

    name = "cholesky"
    callable_by_name = False

    def infer(self, a):
        _check_square(a, "linalg.cholesky")
        return a.shape, float_dtype(a.dtype)

    def lower(self, a):
        return Call("cholesky", (a,))

    def bprop(self, inputs, out, g):
        l_inv = inv(out)
        # gA = L^-T Phi(L^T G) L^-1, symmetrized
        middle = _phi(matmul(_matrix_t(out), g))
        ga = matmul(matmul(_matrix_t(l_inv), middle), l_inv)
        return [0.5 * (ga + _matrix_t(ga))]

    def jvp(self, inputs, out, tangents):
        l_inv = inv(out)
        return matmul(out, _phi(matmul(matmul(l_inv, tangents[0]), _matrix_t(l_inv))))


def _phi(m: Expr) -> Expr:
    """The lower triangle of ``m`` with its diagonal halved (a constant mask)."""
    n = m.shape[-1]
    mask = np.tril(np.ones((n, n), dtype=m.dtype)) - 0.5 * np.eye(n, dtype=m.dtype)
    return m * as_expr(mask)


def inv(a) -> Expr:
    """Inverse of a (stack of) square matrices, as ``np.linalg.inv``.

    >>> import symdiff as sd
    >>> sd.linalg.inv(sd.var("A", (3, 3))).shape
    (3, 3)
    """
    return apply(Inv(), (as_expr(a),))


def solve(a, b) -> Expr:
    """``x`` with ``a x = b``, as ``np.linalg.solve`` (``b`` of shape ``(n,)`` or
    ``(..., n, k)``).

    >>> import symdiff as sd
    >>> sd.linalg.solve(sd.var("A", (3, 3)), sd.var("b", (3,))).shape
    (3,)
    """
    return apply(Solve(), (as_expr(a), as_expr(b)))


def det(a) -> Expr:
    """Determinant of a (stack of) square matrices, as ``np.linalg.det``."""
    return apply(Det(), (as_expr(a),))


def slogdet(a) -> tuple[Expr, Expr]:
    """``(sign, logabsdet)`` as ``np.linalg.slogdet``: two expressions; ``sign`` has no
    gradient, ``logabsdet`` has ``A^-T``.

    >>> import symdiff as sd
    >>> sign, logabsdet = sd.linalg.slogdet(sd.var("A", (2, 3, 3)))
    >>> logabsdet.shape
    (2,)
    """
    a = as_expr(a)
    return apply(SlogdetSign(), (a,)), apply(Logabsdet(), (a,))


def cholesky(a) -> Expr:
    """Lower Cholesky factor of a (stack of) symmetric positive-definite matrices, as
    ``np.linalg.cholesky``."""
    return apply(Cholesky(), (as_expr(a),))
