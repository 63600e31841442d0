"""The symbolic graph: immutable, interned expression nodes and iterative walks over them.

An :class:`Expr` is a variable (``op is None``, has ``name``), a constant (``op is None``, has
``value``) or the application of an :class:`~symdiff.ops.base.Op` to input nodes. Nodes are
hash-consed: building the same op with the same params on the same inputs returns the very same
node, so common sub-expressions are shared by construction (CSE for free) and a gradient graph
reuses forward nodes. The intern table holds nodes weakly, so unreachable graphs are freed; a lock
keeps it consistent when several threads build graphs at once.

Shapes and dtypes are inferred by the op when a node is built (see ``Op.infer``). Every walk here
is iterative (explicit stacks), so a 100,000-node chain needs no recursion.

Design note: ``==`` on nodes builds a comparison node (NumPy semantics), so nodes hash by identity
and internal tables are keyed by node identity, never by ``==``.

Design note, no metadata on nodes: an interned node is shared by every graph that builds the
same expression, so anything written onto it leaks into the others (after ``sd.grad(x * x, x)``
the user's own ``x + x`` would print as a gradient). Nodes therefore carry only what defines
them. Which node is the gradient of which is a fact about a *pair* of nodes ("g is dJ/dW1 of
J"), true whoever else builds them; ``grad.py`` keeps it in a weak side table (gradient node ->
its losses and labels, as tinygrad's ``all_metadata`` sits beside its interned UOps), and a view
(``pretty``, ``to_dot``, compiled source, a saved file) shows gradient names and marks only
when it is given the loss together with its gradients. The "added by build_grad" nodes of such a
view are derived from its structure: those only the gradients need.
"""
from __future__ import annotations

import gc
import hashlib
import itertools
import keyword
import math
from operator import attrgetter
import threading
import unicodedata
import weakref
from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import DTypeError, ShapeError, SymdiffError, fmt_shape

SUPPORTED_DTYPES = frozenset(
    np.dtype(d) for d in ("float64", "float32", "int64", "int32", "bool"))

_intern_lock = threading.Lock()
_intern_table: "weakref.WeakValueDictionary[tuple, Expr]" = weakref.WeakValueDictionary()
_creation_counter = itertools.count()

# Printers registered by the layers above (graph.py imports none of them): "str" and "repr"
# by symdiff.printing, "latex" and "svg" (Jupyter's rich display) by symdiff.tools.inspect and
# symdiff.tools.render.
# ``import symdiff`` imports both; before that, a node prints as a plain object.
PRINTERS: dict[str, Callable] = {}


class Expr:
    """One node of a symbolic graph. Build nodes with :func:`var`, :func:`const`, operators and
    the functions of :mod:`symdiff`; never call the constructor directly.

    Attributes: ``op`` (None for var/const), ``inputs`` (tuple of Expr), ``shape`` (tuple),
    ``dtype`` (numpy dtype), ``name`` (the variable's name, else None), ``value`` (a constant's
    read-only array, else None).
    """

    __slots__ = ("op", "inputs", "shape", "dtype", "name", "value", "seq", "size", "uniform",
                 "__weakref__")
    __hash__ = object.__hash__
    # NumPy's protocols (NEP 13, NEP 18): ``np.tanh(x)``, ``ndarray * x`` and ``np.dot(W, x)``
    # build symdiff nodes; the table is derived from the ops (see symdiff.ops.dispatch)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ops.dispatch.array_ufunc(ufunc, method, inputs, kwargs, _ops)

    def __array_function__(self, func, types, args, kwargs):
        return _ops.dispatch.array_function(func, args, kwargs, _ops)

    def __array__(self, dtype=None, copy=None):
        # an Expr never becomes an (object) array: ndarray methods such as W0.dot(x) convert
        # their argument this way, bypassing the protocols above
        raise SymdiffError(
            "a symbolic expression cannot become a NumPy array; an ndarray method such as "
            "W0.dot(x) bypasses NumPy's dispatch: write W0 @ x or np.dot(W0, x) (or use "
            "symdiff's functions), and sd.compile the graph to get numbers")

    def __init__(self, op, inputs, shape, dtype, name=None, value=None):
        self.op = op
        self.inputs = inputs
        self.shape = shape
        self.dtype = dtype
        self.name = name
        self.value = value
        self.size = math.prod(shape)
        # a constant whose entries all equal one number holds it here (for cheap rewrites)
        self.uniform = _uniform_value(value) if value is not None else None
        # creation order: inputs always exist before their consumers, so sorting by seq is a
        # topological order (nodes are immutable; a consumer can never predate an input)
        self.seq = next(_creation_counter)

    # -- basic facts -------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_var(self) -> bool:
        return self.op is None and self.value is None

    @property
    def is_const(self) -> bool:
        return self.value is not None

    def __bool__(self):
        raise SymdiffError("the truth value of a symbolic expression is undefined; "
                           "use sd.where(cond, a, b) to choose between values")

    def __iter__(self):
        raise SymdiffError("a symbolic expression cannot be iterated; index it with x[i]")

    # nodes are immutable and interned: a copy is the node itself (as for tuples); pickling
    # goes through the graph-file format (registered by symdiff.interop.serialize)
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # Printing is registered from above (see PRINTERS): graph.py imports no printer.
    def __repr__(self) -> str:
        printer = PRINTERS.get("repr")
        return printer(self) if printer else object.__repr__(self)

    def __str__(self) -> str:
        printer = PRINTERS.get("str")
        return printer(self) if printer else object.__repr__(self)

    def _repr_latex_(self):
        printer = PRINTERS.get("latex")
        return printer(self) if printer else None

    def _repr_svg_(self):
        printer = PRINTERS.get("svg")
        return printer(self) if printer else None

    # -- operators (NumPy semantics; numbers and arrays on either side become constants) -----
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.subtract(self, other)
    def __rsub__(self, other): return _ops.subtract(other, self)
    def __mul__(self, other): return _ops.multiply(self, other)
    def __rmul__(self, other): return _ops.multiply(other, self)
    def __truediv__(self, other): return _ops.divide(self, other)
    def __rtruediv__(self, other): return _ops.divide(other, self)
    def __pow__(self, other): return _ops.power(self, other)
    def __rpow__(self, other): return _ops.power(other, self)
    def __mod__(self, other): return _ops.mod(self, other)
    def __rmod__(self, other): return _ops.mod(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.negative(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)
    def __lt__(self, other): return _ops.less(self, other)
    def __le__(self, other): return _ops.less_equal(self, other)
    def __gt__(self, other): return _ops.greater(self, other)
    def __ge__(self, other): return _ops.greater_equal(self, other)
    def __eq__(self, other): return _ops.equal(self, other)  # type: ignore[override]
    def __ne__(self, other): return _ops.not_equal(self, other)  # type: ignore[override]
    def __getitem__(self, index): return _ops.getitem(self, index)

    def __mod__(self, other): return _ops.mod(self, other)
    def __rmod__(self, other): return _ops.mod(other, self)

    @property
    def T(self) -> "Expr":
        return _ops.transpose(self)

    # -- NumPy habits: ndarray's methods, each calling the op function of the same meaning ----
    def __len__(self) -> int:
        if not self.shape:
            raise ShapeError("len() of a scalar expression (shape ()) is undefined")
        return self.shape[0]

    def sum(self, axis=None, keepdims=False) -> "Expr":
        """``sd.sum(x, axis, keepdims)``."""
        return _ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False) -> "Expr":
        """``sd.mean(x, axis, keepdims)``."""
        return _ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False) -> "Expr":
        """``sd.max(x, axis, keepdims)``."""
        return _ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False) -> "Expr":
        """``sd.min(x, axis, keepdims)``."""
        return _ops.min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False) -> "Expr":
        """``sd.prod(x, axis, keepdims)``."""
        return _ops.prod(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0) -> "Expr":
        """The variance, ``sd.variance(x, axis, keepdims, ddof)`` (NumPy's ``x.var()``)."""
        return _ops.variance(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis=None, keepdims=False, ddof=0) -> "Expr":
        """``sd.std(x, axis, keepdims, ddof)``."""
        return _ops.std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def reshape(self, *shape) -> "Expr":
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``, as ndarray."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _ops.reshape(self, tuple(shape))

    def transpose(self, *axes) -> "Expr":
        """``x.transpose()``, ``x.transpose(1, 0)`` or ``x.transpose((1, 0))``, as ndarray."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _ops.transpose(self, tuple(axes) if axes else None)

    def squeeze(self, axis=None) -> "Expr":
        """``sd.squeeze(x, axis)``."""
        return _ops.squeeze(self, axis=axis)

    def dot(self, other) -> "Expr":
        """``sd.dot(x, other)``."""
        return _ops.dot(self, other)

    def clip(self, lo=None, hi=None) -> "Expr":
        """``sd.clip(x, lo, hi)``; a missing bound is unbounded (as ndarray.clip)."""
        if lo is None and hi is None:
            raise SymdiffError("clip: give lo, hi or both")
        if lo is None:
            return _ops.minimum(self, hi)
        if hi is None:
            return _ops.maximum(self, lo)
        return _ops.clip(self, lo, hi)

    def astype(self, dtype) -> "Expr":
        """``sd.astype(x, dtype)``: the values converted to ``dtype`` (no gradient to integers)."""
        return _ops.astype(self, dtype)


def _uniform_value(value: np.ndarray):
    """The number every entry of a small constant equals, or None."""
    if value.size == 0 or value.size > 64:
        return None
    first = value.flat[0]
    if value.size > 1 and not np.all(value == first):
        return None
    return first.item()


# ---------------------------------------------------------------------------------------------
# building nodes
# ---------------------------------------------------------------------------------------------
def _intern(key: tuple, make) -> Expr:
    with _intern_lock:
        node = _intern_table.get(key)
        if node is None:
            node = make()
            _intern_table[key] = node
        return node


def normalize_shape(shape, what: str = "shape") -> tuple:
    """A tuple of non-negative ints, or ShapeError."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(int(d) for d in shape)
        ok = all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ShapeError(f"{what} must be a tuple of ints, got {shape!r}") from None
    if not ok or any(d < 0 for d in dims):
        raise ShapeError(f"{what} must be a tuple of non-negative ints, got {shape!r}")
    if any(d >= 2 ** 63 for d in dims) or math.prod(dims) >= 2 ** 63:
        raise ShapeError(f"{what} {shape!r} is too large")
    return dims


def normalize_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):  # NumPy parses some strings as Python
        raise DTypeError(f"unknown dtype {dtype!r:.80}") from None
    if dt not in SUPPORTED_DTYPES:
        raise DTypeError(f"dtype {dt} is not supported; use one of "
                         f"{sorted(str(d) for d in SUPPORTED_DTYPES)}")
    return dt


def var(name: str, shape=(), dtype="float64") -> Expr:
    """A free input of the graph, identified by its name (and shape and dtype).

    >>> x = var("x", (3,)); x is var("x", (3,))
    True
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SymdiffError(f"variable name must be a Python identifier, got {name!r}")
    # NFKC, as Python normalizes identifiers: var("\ufb01") and parse("\ufb01") (the "fi"
    # ligature, read by Python as "fi") are the same variable
    name = unicodedata.normalize("NFKC", name)
    return _make_var(name, normalize_shape(shape), normalize_dtype(dtype))


def _make_var(name: str, shape: tuple, dtype: np.dtype) -> Expr:
    """Intern a variable without validating the name (the library's own reserved vars)."""
    key = ("var", name, shape, dtype.str)
    return _intern(key, lambda: Expr(None, (), shape, dtype, name=name))


def _content_key(arr: np.ndarray):
    """The bytes of a small array; for a large one (a Jacobian's identity seeds can be
    hundreds of megabytes) a 256-bit BLAKE2 digest of them, read in place, so the intern table
    does not keep a second copy of every large constant alive."""
    if arr.nbytes <= 4096:
        return arr.tobytes()
    data = np.ascontiguousarray(arr)
    return ("blake2b", hashlib.blake2b(memoryview(data).cast("B"), digest_size=32).digest())


def const(value, dtype=None) -> Expr:
    """A constant node holding a (read-only copy of a) number or NumPy array.

    >>> const(2.0).shape
    ()
    """
    if isinstance(value, Expr):
        return value
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError, SyntaxError) as exc:  # SyntaxError: dtype text
        raise DTypeError(f"cannot make a constant of {value!r}: {exc}") from None
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise DTypeError(f"constant {value!r} does not fit in int64")
    if arr.dtype.kind in "fc" and arr.dtype not in SUPPORTED_DTYPES and arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
    if arr.dtype.kind in "iu" and arr.dtype not in SUPPORTED_DTYPES:
        arr = arr.astype(np.int64)
    if arr.dtype not in SUPPORTED_DTYPES:
        raise DTypeError(f"cannot make a constant of dtype {arr.dtype} from {value!r}")
    arr.flags.writeable = False
    key = ("const", arr.dtype.str, arr.shape, _content_key(arr))
    return _intern(key, lambda: Expr(None, (), arr.shape, arr.dtype, value=arr))


def apply(op, inputs: Sequence[Expr]) -> Expr:
    """The node ``op(*inputs)``: shape and dtype inferred by ``op.infer``; interned."""
    inputs = tuple(inputs)
    shape, dtype = op.infer(*inputs)
    key = (op, tuple(map(id, inputs)))
    return _intern(key, lambda: Expr(op, inputs, tuple(shape), np.dtype(dtype)))


def as_expr(value, like: Expr | None = None) -> Expr:
    """``value`` as a node; a Python number takes the dtype of ``like`` (weak typing, as JAX)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, (bool, np.bool_)):
        return const(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and like is not None:
        kind = like.dtype.kind
        if kind == "f" or (kind in "iu" and isinstance(value, (int, np.integer))):
            return const(value, dtype=like.dtype)
        if kind == "b" and isinstance(value, (int, np.integer)):
            return const(value, dtype=np.int64)
    if isinstance(value, (float, np.floating)):
        return const(value, dtype=np.float64)
    if isinstance(value, (int, np.integer)):
        return const(value, dtype=np.int64)
    return const(value)


class paused_gc:
    """Pause Python's cyclic garbage collector for a whole-graph pass, restoring its state after.

    Graph nodes form no reference cycles (a node points only at its inputs), so a collection in
    the middle of building a 100,000-node gradient only re-scans the million live objects; on
    large graphs that made build_grad and compile several times slower (and superlinear).
    """

    def __enter__(self):
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self._was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# walks (all iterative)
# ---------------------------------------------------------------------------------------------
def toposort(outputs: Iterable[Expr]) -> list[Expr]:
    """Every ancestor of ``outputs`` (themselves included), inputs before consumers.

    Collects the ancestors with an explicit stack (no recursion: graph depth is bounded only by
    memory) and orders them by creation sequence, which is topological because a node's inputs
    always exist before it is built.
    """
    seen: set[int] = set()
    nodes: list[Expr] = []
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(node.inputs)
    nodes.sort(key=_by_creation)
    return nodes


_by_creation = attrgetter("seq")


def variables_of(order: Iterable[Expr]) -> list[Expr]:
    """The variables among ``order``, sorted by name; ShapeError if one name has two shapes."""
    by_name: dict[str, Expr] = {}
    for node in order:
        if node.is_var:
            other = by_name.setdefault(node.name, node)
            if other is not node:
                raise ShapeError(
                    f"variable {node.name!r} appears with two shapes/dtypes in one graph: "
                    f"{fmt_shape(other.shape)} {other.dtype} and {fmt_shape(node.shape)} "
                    f"{node.dtype}")
    return [by_name[n] for n in sorted(by_name)]


def lookup_variables(items, by_name: dict, who: str) -> list[Expr]:
    """The variables ``items`` name or are (``by_name``: the graph's variables by name);
    InputError naming an unknown name, SymdiffError for anything that is not a variable.
    ``items`` is one variable or name, or a list or tuple of them."""
    from .errors import InputError, argument_error
    if isinstance(items, (Expr, str)):
        items = [items]
    elif not isinstance(items, (list, tuple)):
        raise argument_error(who, "the variables", "a variable, a name or a list of them",
                             items)
    found = []
    for item in items:
        if isinstance(item, str):
            if item not in by_name:
                raise InputError(f"{who}: no variable named {item!r} in the graph "
                                 f"(its variables: {sorted(by_name)})")
            item = by_name[item]
        if not isinstance(item, Expr) or not item.is_var:
            raise SymdiffError(f"{who}: expected variables (sd.var) or their names, got "
                               f"{item!r}")
        found.append(item)
    return found


def expect_expr(value, argument: str, function: str, variable: bool = False) -> Expr:
    """``value`` if it is an Expr (a variable made by ``sd.var`` when ``variable``), else a
    SymdiffError naming ``function`` and ``argument``."""
    from .errors import argument_error
    if not isinstance(value, Expr) or (variable and not value.is_var):
        raise argument_error(function, argument, "a variable (sd.var)" if variable else
                             "a symdiff expression (Expr)", value)
    return value


def expect_exprs(value, argument: str, function: str) -> tuple[list[Expr], bool]:
    """``(list of Expr, single)`` for one Expr or a list (tuple, any iterable) of them
    (``single`` is True for one); anything else is a SymdiffError naming ``function`` and
    ``argument``."""
    from collections.abc import Iterable, Mapping

    from .errors import argument_error
    if isinstance(value, Expr):
        return [value], True
    if (not isinstance(value, Iterable) or isinstance(value, (str, bytes, bytearray, Mapping))
            or type(value).__module__ == "numpy"):
        raise argument_error(function, argument, "an Expr or a list of them", value)
    value = list(value)
    for item in value:
        if not isinstance(item, Expr):
            raise argument_error(function, f"each of {argument}", "an Expr", item)
    return list(value), False


def free_vars(expr) -> list[Expr]:
    """The variables ``expr`` (one Expr or several) depends on, sorted by name.

    >>> import symdiff as sd
    >>> a, b = sd.var("a"), sd.var("b")
    >>> [v.name for v in sd.free_vars(b * sd.exp(a))]
    ['a', 'b']
    """
    exprs, _ = expect_exprs(expr, "expr", "free_vars")
    return variables_of(toposort(exprs))


def consumers_of(order: Sequence[Expr]) -> dict[int, list[Expr]]:
    """id(node) -> the nodes in ``order`` that take it as an input (each listed once)."""
    users: dict[int, list[Expr]] = {id(n): [] for n in order}
    for node in order:
        for inp in dict.fromkeys(map(id, node.inputs)):
            users.setdefault(inp, []).append(node)
    return users


def substitute(outputs: Sequence[Expr], mapping: dict) -> list[Expr]:
    """Rebuild ``outputs`` with each key node of ``mapping`` replaced by its value.

    Iterative over the topological order; shapes and dtypes are re-inferred, so substituting a
    float64 variable for a float32 one re-types the graph.

    >>> import symdiff as sd
    >>> a, b = sd.var("a"), sd.var("b")
    >>> str(substitute([sd.sin(a)], {a: b * 2})[0])
    'sin(b * 2.0)'
    """
    new: dict[int, Expr] = {id(k): v for k, v in mapping.items()}
    for node in toposort(outputs):
        if id(node) in new or node.op is None:
            continue
        args = tuple(new.get(id(i), i) for i in node.inputs)
        if all(a is b for a, b in zip(args, node.inputs)):
            continue
        new[id(node)] = apply(node.op, args)
    return [new.get(id(o), o) for o in outputs]


def rebuild(outputs: Sequence[Expr], replace: Callable[[Expr], "Expr | None"],
            limit: int = 16) -> list[Expr]:
    """``outputs`` rebuilt bottom-up with ``replace`` applied to every op node until it returns
    None (at most ``limit`` times per node): each node is re-applied to its rebuilt inputs
    first, so a replacement sees rewritten inputs. One pass over the topological order, no
    recursion. The generic walk of term rewriting; the rewrites themselves live on the ops
    (``Op.stable_form``) and in ``rewrite/``. Nothing is written onto nodes: callers that name
    outputs (``dJ/dW``) carry the names by output position.
    """
    new: dict[int, Expr] = {}
    for node in toposort(outputs):
        if node.op is None:
            new[id(node)] = node
            continue
        args = tuple(new[id(i)] for i in node.inputs)
        current = node if all(a is b for a, b in zip(args, node.inputs)) else apply(node.op, args)
        for _ in range(limit):
            if current.op is None:
                break
            replacement = replace(current)
            if replacement is None or replacement is current:
                break
            current = replacement
        new[id(node)] = current
    return [new[id(o)] for o in outputs]


def broadcast_shapes(*shapes: tuple, opname: str = "broadcast") -> tuple:
    """NumPy broadcasting of ``shapes``; ShapeError naming them when they do not fit."""
    if len(shapes) == 2:
        a, b = shapes
        if a == b or not b:
            return a
        if not a:
            return b
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        shown = " and ".join(fmt_shape(s) for s in shapes)
        raise ShapeError(f"{opname}: shapes {shown} cannot be broadcast together") from None


from . import ops as _ops  # noqa: E402  (operators above call the op functions)
