"""Op: the contract every operation fulfils, and the registry of all ops.

An op owns, in one class: its API ``name``; hashable ``params`` (which, with the inputs, define
node identity); ``infer`` (the shape/dtype rule, raising ShapeError naming the shapes);
``lower`` (the NumPy expression for one node, written against the namespace object ``xp``);
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

from ..errors import ShapeError, fmt_shape
from ..graph import Expr, apply
from ..printing import (  # noqa: F401 (the ops' precedences)
    PREC_ADD, PREC_ATOM, PREC_CMP, PREC_MUL, PREC_POW, PREC_UNARY)

REGISTRY: dict[str, type] = {}



class Op:
    """Base class of all ops. Subclasses set ``name`` and override the rules they need."""

    name: str = ""
    differentiable: bool = True  # False: a requested gradient through it is an error
    symbol: str | None = None     # infix operator, e.g. "+"; None prints as a call
    precedence: int = PREC_ATOM
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
        for key, value in params.items():
            object.__setattr__(self, key, value)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            REGISTRY[cls.name] = cls

    def __setattr__(self, key, value):
        raise AttributeError("ops are immutable")

    def __eq__(self, other):
        return type(self) is type(other) and self.params == other.params

    def __hash__(self):
        return hash((type(self), self.params))

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.name}({inner})" if inner else self.name

    def __call__(self, *inputs: Expr) -> Expr:
        return apply(self, inputs)

    # -- the rules ------------------------------------------------------------------------------
    def infer(self, *inputs: Expr) -> tuple[tuple, np.dtype]:
        raise NotImplementedError

    def lower(self, ctx, *args: str) -> str:
        """The NumPy expression computing this node from the input names ``args``."""
        raise NotImplementedError

    def bprop(self, inputs: Sequence[Expr], out: Expr, g: Expr) -> list[Expr | None]:
        """Gradient contribution to each input, given the upstream gradient ``g`` of ``out``."""
        raise NotImplementedError(f"{self.name} has no bprop")

    def jvp(self, inputs: Sequence[Expr], out: Expr, tangents: Sequence[Expr | None]) -> Expr:
        """Forward-mode tangent of ``out``. Default: transpose this op's own (linear) bprop,
        ``J_i t = d/dg <bprop_i(g), t>``, so every op with a bprop has a jvp."""
        from ..grad import transpose_bprop
        return transpose_bprop(self, inputs, out, tangents)

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

    def suffix_text(self, inputs: Sequence[Expr]) -> str | None:
        """Infix text to write after the first input instead of a call (``[0]``, ``.T``), or
        None to print as a call."""
        return None

    def params_text(self) -> str:
        """Params that differ from their defaults, as call arguments (e.g. ``axis=(1,)``)."""
        defaults = _init_defaults(type(self))
        return ", ".join(f"{k}={v!r}" for k, v in self.params
                         if k not in defaults or defaults[k] != v)


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


def normalize_single_axis(axis, ndim: int, opname: str, shape: tuple) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"{opname}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{opname}: axis {axis} is out of range for shape {fmt_shape(shape)}")
    return int(axis) % ndim
