"""Op: the contract every operation fulfils, and the registry of all ops.

An op owns, in one class: its API ``name``; hashable ``params`` (which, with the inputs, define
node identity); ``infer`` (the shape/dtype rule, raising ShapeError naming the shapes);
``lower`` (the expression for one node as data, see :mod:`.lowering`, written against the
namespace object ``xp``) and the lowering facts beside it (``scalar`` form, ``view``, ``alias``,
``commutative``);
``bprop(inputs, out, g)`` (one gradient Expr per input or None, built only from symdiff ops, so
it can be differentiated again); an optional ``jvp``; and ``symbol``/``precedence`` for infix
printing. Defining a subclass with a ``name`` registers it in :data:`REGISTRY`.

Every other fact other modules need is asked of the op, never kept in a table keyed by its
name: its SymPy form (``sympy``/``sympy_form``, read by interop/sympy_io.py both ways), its
LaTeX (``latex``/``latex_form``, tools/inspect.py), postfix text (``suffix_text``), whether text
calls it by name (``callable_by_name``, ``pairwise``: interop/parse.py), and its numerically
stable forms (``stable_form``/``stable_log``/``stable_log1p``: grad.py and rewrite/stable.py).

Broadcast gradients need not be reduced here: ``grad.py`` sums every contribution back to its
input's shape in one place.
"""
from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np

from ..errors import NoBatchingRuleError, ShapeError, SymdiffError, fmt_shape
from ..graph import Expr, apply
from ..printing import (  # noqa: F401 (the ops' precedences)
    PREC_ADD, PREC_ATOM, PREC_CMP, PREC_MUL, PREC_POW, PREC_UNARY)
from .kernels import NUMPY
from .lowering import Arg, evaluator

REGISTRY: dict[str, type] = {}



class Op:
    """Base class of all ops. Subclasses set ``name`` and override the rules they need."""

    name: str = ""
    differentiable: bool = True  # False: a requested gradient through it is an error
    symbol: str | None = None     # infix operator, e.g. "+"; None prints as a call
    precedence: int = PREC_ATOM
    # lowering facts the printers and executors ask for (never a list of names kept elsewhere)
    view: bool = False         # the result may share its input's memory (reshape, x.T, x[i])
    writable_view: bool = True  # False: NumPy's view is read-only (broadcast_to)
    alias: bool = False        # no statement at all: the node is its input's value
    commutative: bool = False  # a op b == b op a: an in-place statement may overwrite either
    # the math-module form for float64 scalar graphs: a function of Python floats taking the
    # op's params as keywords. None: an operator form (Infix/Prefix) is printed as Python
    # float arithmetic; any other form sends the graph to NumPy
    scalar = None
    # how the op enters a fused loop (lower/numba.py): None (a statement of its own), "map"
    # (elementwise: the loop computes ``lower`` on scalars), "broadcast" (the value is its
    # input's, read with broadcast indices), "sum"/"mean" (a reduction kept as a running sum)
    loop: str | None = None
    # Numba (lower/numba.py), where the namespace function is no NumPy ufunc: the source of
    # ``def k_<name>(...)`` on scalars inside a loop, or ``numba_rows`` along the last axis of a
    # matrix (softmax); None: the op's ``scalar`` form is jitted, or the op is not fused
    numba_kernel: str | None = None
    numba_rows: str | None = None
    # SymPy form (interop/sympy_io.py): the name of the SymPy function applied to the inputs
    # as numbers ("exp"), or staticmethod(fn(s, *inputs)) with the bridge's helpers ``s``;
    # None: no SymPy form. A SymPy class named here also converts back to this op.
    sympy: object = None
    sympy_identity = False  # on a scalar graph the node is its input, unchanged (reshape...)
    sympy_levels = 2        # SymPy tree levels the form adds, and copies of its input it makes
    sympy_copies = 1        # (to_sympy builds big nodes unevaluated, see sympy_io)
    # LaTeX form (tools/inspect.py): the function's LaTeX name (r"\exp"); None typesets
    # \operatorname{name}. Structural forms (sums, products, fractions) override latex_form.
    latex: str | None = None
    # text (interop/parse.py): False when the op is written only as its operator (``a + b``)
    # or subscript, not called by name; ``pairwise``: the elementwise op Python's two-argument
    # form of this reduction means (``max(a, b)`` is ``maximum``)
    callable_by_name = True
    pairwise: str | None = None

    def __init__(self, **params):
        for key in params:  # a param may never replace part of the op (its lowering, name...)
            if key == "params" or hasattr(type(self), key):
                from ..errors import SymdiffError
                raise SymdiffError(f"{type(self).__name__}: {key!r} is not a parameter")
        object.__setattr__(self, "params", tuple(sorted(params.items())))
        # identity compares params by type as well as value: Python's True == 1 == 1.0 would
        # otherwise let a node built with axis=True be interned as (and reused for) axis=1
        object.__setattr__(self, "_identity", _typed(self.params))
        for key, value in params.items():
            object.__setattr__(self, key, value)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name") and not cls.__dict__.get("user_defined"):
            REGISTRY[cls.name] = cls

    def __setattr__(self, key, value):
        raise AttributeError("ops are immutable")

    def __eq__(self, other):
        return type(self) is type(other) and self._identity == other._identity

    def __hash__(self):
        return hash((type(self), self._identity))

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({inner})" if inner else self.name

    def __call__(self, *inputs: Expr) -> Expr:
        return apply(self, inputs)

    # -- the rules ------------------------------------------------------------------------------
    def infer(self, *inputs: Expr) -> tuple[tuple, np.dtype]:
        raise NotImplementedError

    def lower(self, *args: Arg):
        """The form (see :mod:`.lowering`) computing this node from its inputs ``args``."""
        raise NotImplementedError

    def lower_standard(self, *args: Arg):
        """The form for the array-API backend, where NumPy's spelling relies on NumPy-only
        behaviour (default: the same as :meth:`lower`)."""
        return self.lower(*args)

    def compute(self, *values):
        """This op's NumPy kernel applied to input values (constant folding uses it)."""
        args = [Arg(k, np.asarray(v).dtype) for k, v in enumerate(values)]
        return evaluator(self.lower(*args), NUMPY)(*values)

    def scalar_params(self) -> dict:
        """The keyword arguments of :attr:`scalar` (the params, by default)."""
        return dict(self.params)

    def multiply_adds(self, inputs: Sequence[Expr], out: Expr) -> int:
        """The multiply-adds of a BLAS-backed product (the compile driver's backend rule
        weighs them against elementwise work); 0 for every other op."""
        return 0

    def bprop(self, inputs: Sequence[Expr], out: Expr, g: Expr) -> list[Expr | None]:
        """Gradient contribution to each input, given the upstream gradient ``g`` of ``out``."""
        raise NotImplementedError(f"{self.name} has no bprop")

    # Forward-mode rule ``jvp(inputs, out, tangents) -> Expr | None``, the tangent of ``out``.
    # None here means "no rule of its own": grad.jvp then transposes the op's (linear) bprop,
    # ``J_i t = d/dg <bprop_i(g), t>``, so every op with a bprop has a jvp. The fallback lives
    # in grad.py, which owns differentiation; ops stay below grad in the layers.
    jvp = None

    def batch(self, inputs: Sequence[Expr], batched: Sequence[bool]) -> Expr:
        """This op applied to a batch: ``inputs`` where ``batched[k]`` marks those carrying a
        leading batch axis (the others are as in the unbatched graph); returns the batched
        result, batch axis first (``vmap``'s rule, as JAX's ``primitive_batchers``). An op
        without a rule cannot be mapped: SymdiffError naming it, never a loop at run time."""
        raise NoBatchingRuleError(f"vmap: '{self.name}' has no batching rule; it cannot be mapped "
                           f"over a batch axis")

    def sympy_form(self, s, *args):
        """This node as SymPy from its inputs' SymPy forms ``args``; ``s`` holds the bridge's
        helpers (``s.sp`` the sympy module, ``s.number``, ``s.condition``, ``s.max``, ``s.min``,
        ``s.piecewise``, ``s.float``). None when the op has no SymPy form."""
        if self.sympy_identity:
            return args[0]
        form = self.sympy
        if form is None:
            return None
        numbers = [s.number(a) for a in args]
        return getattr(s.sp, form)(*numbers) if isinstance(form, str) else form(s, *numbers)

    # -- numerically stable forms (grad differentiates them; rewrite/stable.py applies them) --
    def stable_form(self, node: Expr) -> Expr | None:
        """A numerically stable graph equal to ``node`` (an application of this op), or None.
        ``log`` and ``log1p`` ask their input's op (``stable_log``, ``stable_log1p``)."""
        return None

    def stable_log(self, node: Expr) -> Expr | None:
        """A stable graph for ``log(node)`` (``log(softmax) = log_softmax``...), or None."""
        return None

    def stable_log1p(self, node: Expr) -> Expr | None:
        """A stable graph for ``log1p(node)`` (``log1p(exp(x)) = softplus(x)``), or None."""
        return None

    def latex_form(self, inputs: Sequence[Expr], parts: list[tuple[str, int]]):
        """(LaTeX, precedence) of this node from its inputs' (LaTeX, precedence), or None for
        the generic form ``f\\left(x, params\\right)``."""
        return None

    def gradient_form(self, inputs: Sequence[Expr], names: Sequence[str],
                      position: int) -> str | None:
        """The matrix-calculus text of the gradient sent to input ``position``, in terms of the
        upstream gradient ``delta`` and the inputs' ``names`` (``delta x^T`` for the weight of
        ``W @ x``), for ``explain``'s edge labels; None when the lecture writes no such form."""
        return None

    def suffix_text(self, inputs: Sequence[Expr]) -> str | None:
        """Infix text to write after the first input instead of a call (``[0]``, ``.T``), or
        None to print as a call."""
        return None

    def params_text(self) -> str:
        """Params that differ from their defaults, as call arguments (e.g. ``axis=(1,)``)."""
        defaults = _init_defaults(type(self))
        return ", ".join(f"{k}={v!r}" for k, v in self.params
                         if k not in defaults or defaults[k] != v)


def _typed(value):
    """``value`` with every leaf tagged by its type (floats by their exact bits, so -0.0, 0.0
    and nan each have one identity): equal results mean equal types and equal values."""
    if isinstance(value, tuple):
        return ("tuple",) + tuple(_typed(v) for v in value)
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


def _init_defaults(cls) -> dict:
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def float_dtype(dtype: np.dtype) -> np.dtype:
    """The floating dtype a transcendental function returns for ``dtype`` (as NumPy)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def normalize_axis(axis, ndim: int, opname: str, shape: tuple) -> tuple | None:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative ints, or None for all."""
    if axis is None:
        return None
    if not isinstance(axis, (int, np.integer, tuple, list)):
        raise ShapeError(f"{opname}: axis must be an int, a tuple of ints or None, got "
                         f"{type(axis).__name__}")
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise ShapeError(f"{opname}: axis must be an int, a tuple of ints or None, "
                             f"got {axis!r}")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{opname}: axis {a} is out of range for shape {fmt_shape(shape)}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{opname}: repeated axis in {axis!r} for shape {fmt_shape(shape)}")
    return tuple(sorted(out))


# -- param checks, run by each op's constructor (the one path shared by the API functions, the
# parser and the graph-file loader), so a param's type and form are the op's own business -----
def int_param(value, opname: str, what: str) -> int:
    """``value`` as a Python int; SymdiffError for bools, floats and anything else."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SymdiffError(f"{opname}: {what} must be an int, got {value!r}")
    return int(value)


def bool_param(value, opname: str, what: str) -> bool:
    """``value`` as a Python bool (also accepts the ints 0 and 1, as NumPy's keepdims)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise SymdiffError(f"{opname}: {what} must be True or False, got {value!r}")


def float_param(value, opname: str, what: str) -> float:
    """``value`` (a real number, not a bool) as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise SymdiffError(f"{opname}: {what} must be a number, got {value!r}")
    return float(value)


def axes_param(axis, opname: str) -> tuple | None:
    """A reduction's ``axis`` param: None or a sorted tuple of distinct non-negative ints (the
    form :func:`normalize_axis` gives; the range is checked against the input by ``infer``)."""
    if axis is None:
        return None
    if not isinstance(axis, (tuple, list)):
        raise SymdiffError(f"{opname}: axis param must be None or a tuple of ints, got "
                           f"{axis!r}")
    axes = tuple(int_param(a, opname, "each axis") for a in axis)
    if any(a < 0 for a in axes) or list(axes) != sorted(set(axes)):
        raise SymdiffError(f"{opname}: axis param {axis!r} must be sorted, distinct and "
                           f"non-negative")
    return axes


def check_axis_range(axis: int, ndim: int, opname: str, shape: tuple) -> None:
    """ShapeError unless ``0 <= axis < ndim``: params hold axes in normalized form only, so one
    meaning has one identity (``axis=-1`` and ``axis=1`` of a matrix are not two nodes)."""
    if not 0 <= axis < ndim:
        raise ShapeError(f"{opname}: axis {axis} is not a normalized axis (0 to {ndim - 1}) "
                         f"for shape {fmt_shape(shape)}")


def normalize_single_axis(axis, ndim: int, opname: str, shape: tuple) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"{opname}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{opname}: axis {axis} is out of range for shape {fmt_shape(shape)}")
    return int(axis) % ndim
