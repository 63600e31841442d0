"""Symbol-to-symbol differentiation: Goodfellow's build_grad (Deep Learning, algorithms 6.5 and
6.6) and what stands on it (vjp, jacobian, hessian, hvp, jvp).

The gradient is itself an ordinary graph of symdiff ops, so it can be printed, compiled and
differentiated again. This module owns the three things every bprop rule may leave out:
pruning to the subgraph G', summing the contributions of several consumers, and summing a
broadcast contribution back to its input's shape (``unbroadcast``). "No gradient" stays ``None``
until the end; zeros are only built for disconnected variables when ``disconnected="zero"``.

It also owns the record of which node is the gradient of which (``gradient_labels``,
``gradient_nodes``): a weak side table beside the interned nodes, never on them (see graph.py).
"""
from __future__ import annotations

import threading
import weakref
from typing import Sequence

import numpy as np

from .errors import (NoBatchingRuleError, DisconnectedInputError, DTypeError, ShapeError, SymdiffError,
                     UndefinedGradientError, expect_choice, fmt_shape)
from .graph import (Expr, _make_var, as_expr, const, expect_expr, expect_exprs, paused_gc,
                    rebuild, toposort, variables_of)
from . import ops
from .batching import vmap
from .printing import infix_short


def unbroadcast(g: Expr, shape: tuple) -> Expr:
    """``g`` brought to ``shape``: summed over the axes broadcasting added or stretched, and
    broadcast where ``g`` is smaller (a tangent of a broadcast operand)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = ops.sum(g, axis=tuple(range(lead)))
    offset = len(shape) - g.ndim
    axes = tuple(i for i, d in enumerate(g.shape) if d != 1 and shape[offset + i] == 1)
    if axes:
        g = ops.sum(g, axis=axes, keepdims=True)
    if g.shape != shape:
        g = ops.broadcast_to(g, shape)
    return g


def _sum_all(contributions: list[Expr]) -> Expr:
    """The sum of several consumers' contributions (Goodfellow 6.6: sum over C of G_i)."""
    total = contributions[0]
    for c in contributions[1:]:
        total = total + c
    return total


def _depends_on(order: Sequence[Expr], targets: Sequence[Expr]) -> set[int]:
    """ids of the nodes in ``order`` that are descendants of (or are) a target."""
    marked = {id(t) for t in targets}
    for node in order:
        if id(node) not in marked and any(id(i) in marked for i in node.inputs):
            marked.add(id(node))
    return marked


def _undefined(node: Expr, targets: Sequence[Expr]) -> UndefinedGradientError:
    names = ", ".join(repr(t.name) if t.is_var else "a node" for t in targets)
    return UndefinedGradientError(
        f"the gradient w.r.t. {names} flows through '{node.op.name}', which has no gradient, "
        f"at {infix_short(node)}; wrap that branch in stop_gradient(...) to treat it as a "
        f"constant")


def backprop(y: Expr, targets: Sequence[Expr], seed: Expr, on_edge=None) -> dict[int, Expr]:
    """Goodfellow's algorithm 6.5 with build_grad (6.6), in its iterative form.

    Prunes the graph to G' (ancestors of ``y`` that descend from a target), sets
    ``grad_table[y] = seed``, then visits G' in reverse topological order: when a node is
    reached, every consumer has already sent its contribution ``op.bprop(...)``, so the node's
    gradient is their sum (the memoized recursion of build_grad, unrolled). Returns id(node) ->
    gradient for the nodes of G' that received one. ``on_edge(node, position, g, contribution)``,
    if given, is told of every edge the gradient crosses (used by ``explain``).
    """
    order = toposort([y])
    needed = _depends_on(order, targets)
    if id(y) not in needed:
        return {}
    pending: dict[int, list[Expr]] = {id(y): [seed]}
    table: dict[int, Expr] = {}
    with paused_gc():
        for node in reversed(order):
            contributions = pending.pop(id(node), None)
            if contributions is None:
                continue
            g = _sum_all(contributions)
            table[id(node)] = g
            if node.op is None or not any(id(i) in needed for i in node.inputs):
                continue
            if not node.op.differentiable:
                raise _undefined(node, targets)
            contributions = node.op.bprop(node.inputs, node, g)
            for position, (inp, c) in enumerate(zip(node.inputs, contributions)):
                if c is None or id(inp) not in needed:
                    continue
                c = unbroadcast(c, inp.shape)
                if on_edge is not None:
                    on_edge(node, position, g, c)
                pending.setdefault(id(inp), []).append(c)
    return table


def _check_targets(y: Expr, wrt: Sequence[Expr]) -> None:
    """Targets must be nodes; a variable may not clash (by name) with one of ``y``'s."""
    for w in wrt:
        if not isinstance(w, Expr):
            raise SymdiffError(f"grad: wrt must be Expr nodes (sd.var(...)), got {w!r}")
        if w.is_const:  # its gradient would silently be zero: almost surely a mistake
            raise SymdiffError(f"grad: cannot differentiate w.r.t. the constant {w!r}; wrt "
                               f"must be variables (sd.var) or nodes built from them")
        if w.dtype.kind != "f":
            what = f"variable {w.name!r}" if w.is_var else "node"
            raise DTypeError(f"grad: cannot differentiate w.r.t. {what} of dtype {w.dtype}; "
                             f"gradients are defined for float32/float64 only")
    variables_of(toposort([y, *wrt]))  # ShapeError on a name used with two shapes


def _raise_if_only_through_undefined(y: Expr, w: Expr) -> None:
    """``y`` depends on ``w`` yet no gradient reached it: if the dependence runs through an op
    without a gradient (an argmax used as take's indices, a floor...) and not through an
    explicit stop_gradient, the requested gradient is undefined, not zero. A comparison used as
    where's condition is a mask and gives zero by convention."""
    order = toposort([y])
    below = _depends_on(order, [w])
    if id(y) not in below:
        return
    above = {id(y)}
    for node in reversed(order):
        if id(node) in above:
            above.update(id(i) for i in node.inputs)
    between = [n for n in order if id(n) in below and id(n) in above and n.op is not None]
    if any(isinstance(n.op, ops.elementwise.StopGradient) for n in between):
        return
    for node in between:  # comparisons are masks (where's condition): zero by convention
        if not node.op.differentiable and node.dtype != bool:
            raise _undefined(node, [w])


# -- which node is the gradient of which -------------------------------------------------------
# id(gradient node) -> (weak reference to it, [(weak reference to its loss, label)]). Keyed by
# identity (a WeakKeyDictionary would compare nodes with ``==``, which builds a node) and emptied
# by the weak reference's callback when the gradient is freed, so the table keeps nothing alive;
# a lock keeps it whole when several threads differentiate at once. A record states a fact about
# the pair (g = dJ/dW of J), so views show it only when they hold both nodes.
_GRADIENT_OF: dict[int, tuple] = {}
_gradient_lock = threading.Lock()


def _forgetter(key: int):
    """The weak-reference callback dropping the record under ``key`` once its gradient node is
    gone (no lock: it may run inside GC; a dict pop is atomic)."""
    def forget(ref) -> None:
        held = _GRADIENT_OF.get(key)
        if held is not None and held[0] is ref:
            _GRADIENT_OF.pop(key, None)
    return forget


def record_gradient(loss: Expr, g: Expr, label: str) -> None:
    """Remember that ``g`` is the gradient ``label`` (e.g. ``dJ/dW1``) of ``loss``."""
    if g is loss or g.is_var:  # a variable keeps its own name (d(a * b)/da is just b)
        return
    with _gradient_lock:
        held = _GRADIENT_OF.get(id(g))
        if held is None or held[0]() is not g:
            held = (weakref.ref(g, _forgetter(id(g))), [])
        entries = [(ref, text) for ref, text in held[1]
                   if ref() is not None and ref() is not loss]
        entries.append((weakref.ref(loss), label))
        _GRADIENT_OF[id(g)] = (held[0], entries)


def _labels_of(g: Expr) -> list[tuple[Expr, str]]:
    held = _GRADIENT_OF.get(id(g))
    if held is None or held[0]() is not g:
        return []
    return [(loss, text) for loss, text in ((ref(), text) for ref, text in held[1])
            if loss is not None]


def gradient_labels(outputs: Sequence[Expr]) -> dict[int, str]:
    """id(output) -> label (``dJ/dW1``) for each of ``outputs`` recorded as the gradient of
    another of ``outputs``: a view shows gradient names only when it holds the loss too.

    >>> import symdiff as sd
    >>> x = sd.var("x"); y = x * x; g = sd.grad(y, x)
    >>> list(gradient_labels([y, g]).values()), gradient_labels([g])
    (['dJ/dx'], {})
    """
    present = {id(o) for o in outputs}
    labels: dict[int, str] = {}
    for o in outputs:
        for loss, text in _labels_of(o):
            if id(loss) in present:
                labels.setdefault(id(o), text)
    return labels


def gradient_nodes(outputs: Sequence[Expr], labels: dict[int, str] | None = None) -> set[int]:
    """ids of the nodes of ``outputs``' graph that only their gradient outputs need (those
    build_grad added, Goodfellow Fig. 6.10); variables excluded. ``labels`` as
    :func:`gradient_labels` gives (computed when not given)."""
    labels = gradient_labels(outputs) if labels is None else labels
    gradients = [o for o in outputs if id(o) in labels]
    if not gradients:
        return set()
    forward = {id(n) for n in toposort([o for o in outputs if id(o) not in labels])}
    return {id(n) for n in toposort(gradients) if id(n) not in forward and not n.is_var}


def _label(g: Expr, y: Expr, w: Expr) -> Expr:
    """Record ``g`` as the derivative it is: ``dJ/dW``, or ``d(dJ/dw)/dw`` when ``y`` is itself
    a recorded gradient."""
    earlier = _labels_of(y)
    top = f"d({earlier[-1][1]})" if earlier else "dJ"
    record_gradient(y, g, f"{top}/d{w.name}" if w.is_var else f"{top}/d(node)")
    return g


def _zeros(like: Expr) -> Expr:
    return const(np.zeros(like.shape, dtype=like.dtype))


def _stable_form(node: Expr) -> Expr | None:
    """The op's own numerically stable form of ``node`` (``log(sigmoid(x)) = -softplus(-x)``)."""
    return node.op.stable_form(node)


def _gradients(y: Expr, wrt_list: list[Expr], seed: Expr, disconnected: str) -> list[Expr]:
    if disconnected not in ("zero", "raise"):
        raise SymdiffError(f"disconnected must be 'zero' or 'raise', got {disconnected!r}")
    _check_targets(y, wrt_list)
    loss = y
    # differentiate log_softmax, not log(softmax): the gradient stays finite
    y = rebuild([y], _stable_form)[0]
    table = backprop(y, wrt_list, seed)
    result = []
    for w in wrt_list:
        g = table.get(id(w))
        if g is None:
            _raise_if_only_through_undefined(y, w)
            if disconnected == "raise":
                name = repr(w.name) if w.is_var else "the node"
                raise DisconnectedInputError(f"the output does not depend on {name}")
            g = _zeros(w)
        result.append(_label(g, loss, w))
    return result


def grad(y: Expr, wrt, disconnected: str = "zero"):
    """Gradient of the scalar ``y`` w.r.t. ``wrt`` (one Expr or a list), as new graph nodes.

    Each gradient has its variable's shape. ``disconnected="raise"`` raises
    DisconnectedInputError for a variable ``y`` does not depend on; ``"zero"`` returns zeros.
    Raises UndefinedGradientError if the gradient flows through an op without one.

    >>> import symdiff as sd
    >>> x = sd.var("x"); str(sd.grad(x * x, x))
    'x + x'
    """
    y = as_expr(y)
    if y.shape != ():
        raise ShapeError(f"grad: the output must be a scalar, got shape {fmt_shape(y.shape)}; "
                         f"use vjp or jacobian for non-scalar outputs")
    wrt_list, single = expect_exprs(wrt, "wrt", "grad")
    expect_choice(disconnected, "disconnected", "grad", ("zero", "raise"))
    grads = _gradients(y, wrt_list, const(np.ones((), dtype=y.dtype)), disconnected)
    return grads[0] if single else grads


def vjp(y: Expr, x, u):
    """Reverse-mode product ``u^T J``: ``u`` has ``y``'s shape; the result has ``x``'s shape.

    >>> import numpy as np, symdiff as sd
    >>> x = sd.var("x", (2,))
    >>> print(sd.compile(sd.vjp(x * x, x, np.array([1.0, 10.0])))(x=np.array([3.0, 4.0])))
    [ 6. 80.]
    """
    y = as_expr(y)
    u = as_expr(u, like=y)
    if u.shape != y.shape:
        raise ShapeError(f"vjp: u has shape {fmt_shape(u.shape)} but y has shape "
                         f"{fmt_shape(y.shape)}")
    x_list, single = expect_exprs(x, "x", "vjp")
    grads = _gradients(y, x_list, u, "zero")
    return grads[0] if single else grads


def jacobian(y: Expr, x: Expr) -> Expr:
    """The Jacobian, shape ``y.shape + x.shape``: one reverse pass for all output entries, the
    vjp ``u -> u^T J`` mapped (:func:`~symdiff.batching.vmap`) over the rows of the identity
    (``J = I J``). One graph whose node count does not grow with ``y.size``.

    >>> import numpy as np, symdiff as sd
    >>> x = sd.var("x", (2,))
    >>> print(sd.compile(sd.jacobian(x * x, x))(x=np.array([3.0, 4.0])))
    [[6. 0.]
     [0. 8.]]
    """
    y = as_expr(y)
    expect_expr(x, "x", "jacobian")
    if y.shape == ():
        return grad(y, x)
    if y.size == 0:  # no rows: an empty Jacobian of the right shape
        _check_targets(y, [x])
        return const(np.zeros(y.shape + x.shape, dtype=x.dtype))
    # the seeds e_i, one per output entry, each shaped like y
    seeds = const(np.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape))
    try:
        rows = vmap(lambda u: vjp(y, x, u))(seeds)
    except NoBatchingRuleError:  # an op vmap cannot batch: one vjp per row instead
        return _jacobian_rows(y, x)
    return ops.reshape(rows, y.shape + x.shape)


def _jacobian_rows(y: Expr, x: Expr) -> Expr:
    """The Jacobian built row by row: one vjp per output entry, seeded by a one-hot vector, then
    stacked (the reference construction the batched :func:`jacobian` is tested against; its
    node count grows with ``y.size``)."""
    y = as_expr(y)
    if y.shape == ():
        return grad(y, x)
    if y.size == 0:
        _check_targets(y, [x])
        return const(np.zeros(y.shape + x.shape, dtype=x.dtype))
    flat = ops.reshape(y, (y.size,))
    rows = [grad(flat[i], x) for i in range(y.size)]
    return ops.reshape(ops.stack(rows, axis=0), y.shape + x.shape)


def hessian(y: Expr, x: Expr) -> Expr:
    """The Hessian of scalar ``y``, shape ``x.shape + x.shape``: the Jacobian of the gradient,
    one batched reverse pass over the gradient graph (reverse-over-reverse), so its node count
    does not depend on ``x.size``. A matmul with the identity seeds is taken as the selection it
    is while the graph is built (the Hessian of ``x @ A @ x`` prints as ``A + A.T``).

    >>> import numpy as np, symdiff as sd
    >>> w = sd.var("w", (2,))
    >>> print(sd.compile(sd.hessian(sd.sum(w ** 3), w))(w=np.array([1.0, 2.0])))
    [[ 6.  0.]
     [ 0. 12.]]
    """
    expect_expr(x, "x", "hessian")
    return jacobian(grad(y, x), x)


def hvp(y: Expr, x: Expr, v, mode: str = "auto") -> Expr:
    """Hessian-vector product ``H v`` without forming H (Goodfellow 6.5.10); ``v`` has ``x``'s
    shape. ``mode="reverse"``: reverse-over-reverse, ``grad(<grad(y, x), v>, x)``;
    ``"forward"``: forward-over-reverse, ``jvp(grad(y, x), x, v)`` (the tangent pushed through
    the gradient graph, which skips the second sweep's repeated forward work); ``"auto"`` (the
    default) builds both and keeps the one with fewer nodes (its cost estimate: one statement
    per node), reverse on a tie.

    >>> import numpy as np, symdiff as sd
    >>> w = sd.var("w", (2,))
    >>> Hv = sd.hvp(sd.sum(w ** 3), w, np.array([1.0, 1.0]))
    >>> print(sd.compile(Hv)(w=np.array([1.0, 2.0])))
    [ 6. 12.]
    """
    expect_expr(x, "x", "hvp")
    expect_choice(mode, "mode", "hvp", ("auto", "reverse", "forward"))
    v = as_expr(v, like=x)
    if v.shape != x.shape:
        raise ShapeError(f"hvp: v has shape {fmt_shape(v.shape)} but x has shape "
                         f"{fmt_shape(x.shape)}")
    g = grad(y, x)
    if mode == "forward":
        return jvp(g, x, v)
    reverse = grad(ops.sum(g * v), x)
    if mode == "reverse":
        return reverse
    forward = jvp(g, x, v)
    return forward if len(toposort([forward])) < len(toposort([reverse])) else reverse


_UNDEFINED = object()  # the tangent of an op without a gradient (a mask, an argmax...)


def _ignored_inputs(node: Expr) -> set[int]:
    """Positions of ``node``'s inputs whose tangents its rules never use (bprop gives None),
    e.g. the condition of where or the input of stop_gradient."""
    probe = _make_var("g'", node.shape, node.dtype)
    return {k for k, c in enumerate(node.op.bprop(node.inputs, node, probe)) if c is None}


def jvp(y: Expr, x: Expr, v) -> Expr:
    """Forward-mode directional derivative ``J v`` (shape ``y.shape``): tangents pushed through
    the graph in topological order by each op's ``jvp`` rule, or, for an op without one, by
    :func:`transpose_bprop` of its bprop. An op without a gradient gives an
    undefined tangent, an error only if a consumer actually uses it (a mask feeding where's
    condition, or anything under stop_gradient, is fine).

    >>> import numpy as np, symdiff as sd
    >>> x = sd.var("x", (2,))
    >>> print(sd.compile(sd.jvp(sd.sin(x), x, np.array([1.0, 0.0])))(x=np.zeros(2)))
    [1. 0.]
    """
    y = as_expr(y)
    expect_expr(x, "x", "jvp")
    v = as_expr(v, like=x)
    if v.shape != x.shape:
        raise ShapeError(f"jvp: v has shape {fmt_shape(v.shape)} but x has shape "
                         f"{fmt_shape(x.shape)}")
    _check_targets(y, [x])
    order = toposort([y])
    tangent: dict[int, object] = {id(x): v}
    source: dict[int, Expr] = {}  # id(node) -> the op without gradient behind an undefined one
    with paused_gc():
        for node in order:
            if node.op is None or id(node) in tangent:
                continue
            ins = [tangent.get(id(i)) for i in node.inputs]
            if all(t is None for t in ins):
                continue
            if not node.op.differentiable:
                tangent[id(node)] = _UNDEFINED
                source[id(node)] = node
                continue
            if any(t is _UNDEFINED for t in ins):
                ignored = _ignored_inputs(node)
                used = [inp for k, (inp, t) in enumerate(zip(node.inputs, ins))
                        if t is _UNDEFINED and k not in ignored]
                if used:  # undefined flows on; an error only if it reaches the output
                    tangent[id(node)] = _UNDEFINED
                    source[id(node)] = source[id(used[0])]
                    continue
                ins = [None if t is _UNDEFINED else t for t in ins]
                if all(t is None for t in ins):
                    continue
            if node.op.jvp is not None:
                t = node.op.jvp(node.inputs, node, ins)
            else:
                t = transpose_bprop(node.op, node.inputs, node, ins)
            if t is not None:
                tangent[id(node)] = unbroadcast(t, node.shape)
    result = tangent.get(id(y))
    if result is _UNDEFINED:
        raise _undefined(source[id(y)], [x])
    return _zeros(y) if result is None else result


def transpose_bprop(op, inputs: Sequence[Expr], out: Expr,
                    tangents: Sequence[Expr | None]) -> Expr | None:
    """Forward-mode rule from an op's reverse rule: ``bprop_i(g)`` is linear in ``g``, so
    ``J_i t = d/dg <bprop_i(g), t>``. A reserved variable stands for ``g`` and must vanish."""
    seed = _make_var("g'", out.shape, out.dtype)  # name no user variable can have
    total = None
    for inp, t, c in zip(inputs, tangents, op.bprop(inputs, out, seed)):
        if t is None or c is None:
            continue
        c = unbroadcast(c, inp.shape)
        jt = grad(ops.sum(c * t), seed)
        total = jt if total is None else total + jt
    if total is not None and any(v is seed for v in toposort([total]) if v.is_var):
        raise SymdiffError(f"internal: the bprop of {op.name} is not linear in its upstream "
                           f"gradient")
    return total
