"""The SymPy bridge: ``to_sympy`` turns a scalar graph into a SymPy expression and
``from_sympy`` turns a SymPy expression into a graph.

SymPy is the project's independent oracle: ``sympy.diff(to_sympy(y), X)`` must agree with
``to_sympy(sd.grad(y, x))``. So ``to_sympy`` writes each op as its plain mathematical
definition (``sigmoid`` as ``1/(1 + exp(-x))``, ``relu`` as ``Max(0, x)``, ``leaky_relu`` as a
``Piecewise``), never as an opaque function, and float constants that are exact binary fractions
(``2.0``, ``0.5``) become exact SymPy Integers/Rationals so that SymPy can simplify them.

Both directions walk iteratively: ``to_sympy`` over ``toposort`` of the graph, ``from_sympy``
over an explicit stack of the SymPy tree, so a 10,000-deep chain converts without recursion in
this module (SymPy's own printers may still recurse on such an expression).

Design choices a reader might question:

- Only scalar graphs convert: a SymPy expression has no shapes. Any node of another shape
  raises ``ShapeError`` naming it. ``from_sympy`` takes ``shapes`` for its symbols, so a SymPy
  formula can be applied elementwise to arrays.
- Booleans: comparisons become SymPy relationals. Where a relational is used as a number (a mask
  multiplied by something) it becomes ``Piecewise((1, rel), (0, True))``; where a number is used
  as a condition (``where``) it becomes ``Ne(c, 0)``.
- ``round`` (NumPy rounds half to even) has no SymPy counterpart, so it maps to an undefined
  function named ``round`` that carries NumPy's rounding for ``lambdify`` and ``evalf``.
- ``stop_gradient`` is the identity: SymPy sees values, not gradient flow. So the SymPy
  derivative of a graph containing ``stop_gradient`` differs from ``sd.grad`` by design.
- Large graphs come out partly unevaluated. SymPy simplifies each new expression as it is built,
  by recursing through (and walking as a tree) everything below it, which fails on a deep chain
  and takes exponential time on the shared values gradients are made of. So nodes whose SymPy
  tree would be deep or large are built with ``evaluate=False`` (and Piecewise/Max/Min directly),
  giving the same value without simplification; small graphs are simplified as usual.
- SymPy is imported on first use, so ``import symdiff`` stays fast.
"""
from __future__ import annotations

import functools
import keyword
import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Callable

import numpy as np

from .. import ops
from ..errors import ShapeError, SymdiffError, fmt_shape
from ..graph import Expr, const, toposort, var

# SymPy's evaluation of a new expression recurses through its arguments (about 2.5 Python
# frames per level of the tree) and walks them as trees, not as shared DAGs (sorting, pattern
# checks), so its cost grows with the *tree* size: 2**n for a graph that uses each value twice,
# as gradients do. Nodes whose SymPy tree would be deeper or larger than these limits are built
# unevaluated (the same value, just not simplified). A rule adds about two levels (``a - b`` is
# ``Add(a, Mul(-1, b))``); the longer definitions add more; leaky_relu writes x three times.
_EVALUATE_DEPTH = 150
_EVALUATE_SIZE = 2000  # (each op says how many levels and copies its form adds)


def _needs_no_evaluation(order: list) -> set:
    """ids of the nodes of ``order`` whose SymPy tree exceeds the limits above. A node is
    never smaller than its inputs, so the set is closed under taking consumers."""
    depth: dict[int, int] = {}
    size: dict[int, int] = {}
    big = set()
    for node in order:
        if node.op is None:
            depth[id(node)], size[id(node)] = 0, 1
            continue
        levels = node.op.sympy_levels
        depth[id(node)] = levels + max(depth[id(i)] for i in node.inputs)
        size[id(node)] = min(_EVALUATE_SIZE + 1, levels + node.op.sympy_copies * sum(
            size[id(i)] for i in node.inputs))
        if depth[id(node)] > _EVALUATE_DEPTH or size[id(node)] > _EVALUATE_SIZE:
            big.add(id(node))
    return big


# ---------------------------------------------------------------------------------------------
# SymPy, imported lazily, and the tables built from it
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _sympy():
    import sympy
    return sympy


@functools.lru_cache(maxsize=None)
def _round_function():
    """``round``: an undefined SymPy function carrying NumPy's round-half-to-even."""
    from sympy.utilities.lambdify import implemented_function

    def numpy_round(value):
        return np.round(np.asarray(value, dtype=np.float64))

    return implemented_function(ops.round.name, numpy_round)


def _is_boolean(value) -> bool:
    """True for a SymPy truth value: True/False, a relational, And/Or/Not. (A Symbol is also a
    SymPy ``Boolean``, but here symbols are always real numbers.)"""
    boolalg = _sympy().logic.boolalg
    return isinstance(value, (boolalg.BooleanAtom, boolalg.BooleanFunction)) or bool(
        getattr(value, "is_Relational", False))


def _as_number(value):
    """A SymPy value usable as a number: booleans become 1/0 (a relational a Piecewise)."""
    sp = _sympy()
    if isinstance(value, sp.logic.boolalg.BooleanAtom):
        return sp.S.One if value else sp.S.Zero
    if _is_boolean(value):
        return _piecewise((sp.S.One, value), (sp.S.Zero, sp.true))
    return value


def _as_condition(value):
    """A SymPy value usable as a condition: a number ``c`` becomes ``Ne(c, 0)``."""
    sp = _sympy()
    if _is_boolean(value):
        return value
    if isinstance(value, sp.Piecewise) and len(value.args) == 2:
        (one, rel), (zero, rest) = value.args
        if one == 1 and zero == 0 and rest is sp.true:  # undo _as_number's mask
            return rel
    return sp.Ne(value, 0)


def _piecewise(*pairs):
    """``Piecewise(*pairs)``, built without SymPy's evaluation.

    SymPy's constructor folds a Piecewise nested in a condition (``piecewise_fold``), which
    grows exponentially with nesting depth (a chain of five leaky_relu takes minutes), so the
    pairs are assembled as SymPy's own ``evaluate=False`` path does, after the simplifications
    that matter here: False branches dropped, nothing after a True branch, a single remaining
    value returned as is.
    """
    sp = _sympy()
    from sympy.functions.elementary.piecewise import ExprCondPair
    kept = []
    for value, cond in pairs:
        if cond is sp.false:
            continue
        kept.append((value, cond))
        if cond is sp.true:
            break
    if kept[0][1] is sp.true or all(value is kept[0][0] for value, _ in kept[1:]) and (
            kept[-1][1] is sp.true):
        return kept[0][0]
    return sp.Basic.__new__(sp.Piecewise, *[sp.Tuple.__new__(ExprCondPair, value, cond)
                                            for value, cond in kept])


def _min_max(cls, a, b):
    """``Max(a, b)`` or ``Min(a, b)``; built directly when evaluation is off, since SymPy's
    constructor sorts its arguments by counting every node below them (recursively)."""
    sp = _sympy()
    from sympy.core.parameters import global_parameters
    if global_parameters.evaluate:
        return cls(a, b)
    arguments = frozenset((a, b))
    if len(arguments) == 1:
        return a
    node = sp.Expr.__new__(cls, a, b)
    node._argset = arguments  # as SymPy's constructor sets it
    return node


def _float_to_sympy(number: float):
    """A Python float as SymPy: exact Integer/Rational for small binary fractions (2.0, 0.5,
    0.375), else a 53-bit Float holding the very same binary value."""
    sp = _sympy()
    if math.isnan(number):
        return sp.nan
    if math.isinf(number):
        return sp.oo if number > 0 else -sp.oo
    if number.is_integer() and abs(number) <= 2.0 ** 53:
        return sp.Integer(int(number))
    fraction = Fraction(number)
    if fraction.denominator <= 2 ** 20:
        return sp.Rational(fraction.numerator, fraction.denominator)
    return sp.Float(number)


def _const_to_sympy(value: np.ndarray):
    sp = _sympy()
    item = value.item()
    if isinstance(item, bool):
        return sp.true if item else sp.false
    if isinstance(item, int):
        return sp.Integer(item)
    return _float_to_sympy(float(item))


class _Helpers:
    """What an op's ``sympy_form`` may use besides SymPy itself (``sp``): its inputs as numbers
    or conditions, Max/Min/Piecewise built without SymPy's costly evaluation, exact floats, and
    NumPy's rounding."""

    number = staticmethod(_as_number)
    condition = staticmethod(_as_condition)
    piecewise = staticmethod(_piecewise)
    float = staticmethod(_float_to_sympy)

    def __init__(self):
        self.sp = _sympy()

    def max(self, a, b):
        return _min_max(self.sp.Max, a, b)

    def min(self, a, b):
        return _min_max(self.sp.Min, a, b)

    def round(self, x):
        return _round_function()(x)


# ---------------------------------------------------------------------------------------------
# graph -> SymPy
# ---------------------------------------------------------------------------------------------
def _node_text(node: Expr) -> str:
    if node.is_var:
        return f"variable {node.name!r}"
    if node.is_const:
        return "a constant"
    return f"'{node.op.name}'"


def _convert_nodes(nodes: list, done: dict, settle: bool = False) -> None:
    """Add the SymPy form of each node (inputs first) to ``done`` (id(node) -> SymPy).

    ``settle``: ask each new (unevaluated) expression whether it is commutative, the one fact
    SymPy's unevaluated ``Add``/``Mul`` ask of their arguments. SymPy caches the answer, so it
    is found one level at a time here instead of by a recursion through a deep argument.
    """
    sp = _sympy()
    helpers = _Helpers()
    for node in nodes:
        if node.is_var:
            done[id(node)] = sp.Symbol(node.name, real=True)
            continue
        if node.is_const:
            done[id(node)] = _const_to_sympy(node.value)
            continue
        try:
            value = node.op.sympy_form(helpers, *[done[id(i)] for i in node.inputs])
            if value is None:
                raise SymdiffError(f"to_sympy: op '{node.op.name}' has no SymPy form")
            done[id(node)] = value
            if settle:
                getattr(value, "is_commutative", None)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise SymdiffError(f"to_sympy: SymPy could not build '{node.op.name}': "
                               f"{exc}") from None


def to_sympy(expr):
    """The SymPy expression of a scalar graph (every node of shape ``()``).

    Variables become ``sympy.Symbol(name, real=True)``; float constants become exact
    Integers/Rationals when they are small binary fractions, else Floats; each op becomes its
    mathematical definition (see the module docstring). ``expr`` may also be a list or tuple of
    Exprs, giving a list.

    Raises ShapeError naming the first node (op and shape) that is not a scalar, and
    SymdiffError for an op with no SymPy form.

    >>> import symdiff as sd
    >>> x = sd.var("x")
    >>> sd.to_sympy(sd.sin(x) * 2.0 + 1)
    2*sin(x) + 1
    """
    single = isinstance(expr, Expr)
    outputs = [expr] if single else list(expr) if isinstance(expr, (list, tuple)) else None
    if outputs is None or not all(isinstance(e, Expr) for e in outputs):
        raise SymdiffError(f"to_sympy expects an Expr (or a list of them), got {expr!r}")
    order = toposort(outputs)
    for node in order:
        if node.shape != ():
            raise ShapeError(f"to_sympy converts scalar graphs only: {_node_text(node)} has "
                             f"shape {fmt_shape(node.shape)}")
    from sympy.core.parameters import evaluate
    # Small nodes evaluated, then the big ones unevaluated: each part in topological order, and
    # SymPy's evaluate flag (whose switch clears SymPy's cache) switched only once.
    big = _needs_no_evaluation(order)
    small = [n for n in order if id(n) not in big]
    large = [n for n in order if id(n) in big]
    done: dict[int, object] = {}
    _convert_nodes(small, done)
    if large:
        with evaluate(False):
            _convert_nodes(large, done, settle=True)
    results = [done[id(e)] for e in outputs]
    return results[0] if single else results


# ---------------------------------------------------------------------------------------------
# SymPy -> graph
# ---------------------------------------------------------------------------------------------
# A plan for one SymPy node: the children to convert first, and a builder taking their graphs.
Plan = tuple[Callable[..., Expr], list]


def _number_to_float(node) -> float:
    sp = _sympy()
    if node is sp.S.ComplexInfinity:
        raise SymdiffError("from_sympy: complex infinity (zoo) has no real value")
    if node is sp.S.NaN:
        return math.nan
    if node is sp.S.Infinity:
        return math.inf
    if node is sp.S.NegativeInfinity:
        return -math.inf
    try:
        value = float(node)
    except OverflowError:
        raise SymdiffError(f"from_sympy: the number {node} does not fit a float64") from None
    except TypeError:
        raise SymdiffError(f"from_sympy: the number {node} is not real") from None
    if math.isinf(value):  # SymPy gives inf for a finite number beyond float64's range
        raise SymdiffError(f"from_sympy: the number {node} does not fit a float64")
    return value


def _is_negative_term(term) -> bool:
    """True for a negative number or a product with a negative numeric coefficient."""
    if term.is_Number:
        return term.is_extended_negative is True
    return (term.is_Mul and term.args[0].is_Number
            and term.args[0].is_extended_negative is True)


def _negated(term):
    """``-term`` for a term ``_is_negative_term`` accepts, built without SymPy's evaluation
    (which recurses through the whole term): the coefficient changes sign, a -1 disappears."""
    sp = _sympy()
    if term.is_Number:
        return -term
    coefficient = -term.args[0]
    factors = term.args[1:]
    if not (coefficient.is_finite and float(coefficient) == 1.0):
        factors = (coefficient,) + factors
    return factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)


def _reciprocal(power):
    """``1 / power`` for a power with a negative numeric exponent, built without evaluation."""
    sp = _sympy()
    exponent = -power.exp
    if exponent.is_finite and float(exponent) == 1.0:
        return power.base
    return sp.Pow(power.base, exponent, evaluate=False)


def _plan_add(node) -> Plan:
    """``a + b - c + 1``: positive terms first, negative ones subtracted, the number last
    (first when every other term is negative: ``1 - x``)."""
    numbers = [t for t in node.args if t.is_Number]
    others = [t for t in node.args if not t.is_Number]
    positive = [t for t in others if not _is_negative_term(t)]
    negative = [t for t in others if _is_negative_term(t)]
    if not positive and numbers and not _is_negative_term(numbers[0]):
        positive, numbers = numbers, []
    ordered = positive + negative + numbers
    signs = [-1 if _is_negative_term(t) else 1 for t in ordered]
    children = [_negated(t) if s < 0 else t for t, s in zip(ordered, signs)]

    def build(*terms):
        total = terms[0] if signs[0] > 0 else ops.negative(terms[0])
        for term, sign in zip(terms[1:], signs[1:]):
            total = ops.add(total, term) if sign > 0 else ops.subtract(total, term)
        return total
    return build, children


def _plan_mul(node) -> Plan:
    """A product as ``-(numerator / denominator)``: a negative coefficient becomes a negation,
    factors with a negative numeric exponent (``y**-1``) and a Rational's denominator divide."""
    sp = _sympy()
    negative = False
    coefficient, numerator, denominator = [], [], []
    for factor in node.args:
        if factor.is_Number and factor.is_extended_negative is True:
            negative, factor = not negative, -factor
        if factor.is_Rational:
            if factor.p != 1:
                coefficient.append(sp.Integer(factor.p))
            if factor.q != 1:
                denominator.append(sp.Integer(factor.q))
        elif factor.is_Number:
            if not (factor.is_finite and float(factor) == 1.0):
                coefficient.append(factor)
        elif (factor.is_Pow and factor.exp.is_Number
              and factor.exp.is_extended_negative is True):
            denominator.append(_reciprocal(factor))
        else:
            numerator.append(factor)
    numerator = coefficient + numerator
    n_num = len(numerator)

    def product(factors):
        total = factors[0]
        for factor in factors[1:]:
            total = ops.multiply(total, factor)
        return total

    def build(*factors):
        top = product(factors[:n_num]) if n_num else const(1.0)
        result = ops.divide(top, product(factors[n_num:])) if len(factors) > n_num else top
        return ops.negative(result) if negative else result
    return build, numerator + denominator


def _plan_pow(node) -> Plan:
    """``sqrt`` for ``**(1/2)``, ``square`` for ``**2``, ``1/b**k`` for a negative exponent,
    else ``power``."""
    base, exponent = node.args
    if exponent.is_Number and exponent.is_finite:
        value = float(exponent)
        if value == 0.5:
            return ops.sqrt, [base]
        if value == 2.0:
            return ops.square, [base]
        if value < 0:
            return (lambda b: ops.divide(1.0, b)), [_reciprocal(node)]
    return ops.power, [base, exponent]


def _chain(fn):
    """An n-ary builder folding a binary op left to right."""
    def build(*args):
        total = args[0]
        for arg in args[1:]:
            total = fn(total, arg)
        return total
    return build


def _plan_piecewise(node) -> Plan:
    """Nested ``where`` from the last branch up; where no branch applies the value is nan (SymPy
    leaves it undefined)."""
    atom = _sympy().logic.boolalg.BooleanAtom
    pairs = [(pair.expr, pair.cond) for pair in node.args]
    children = []  # each branch's value, then its condition unless that is plainly True/False
    for value, cond in pairs:
        children += [value] if isinstance(cond, atom) else [value, cond]

    def build(*converted):
        items = iter(converted)
        branches = [(next(items), bool(cond) if isinstance(cond, atom) else next(items))
                    for _, cond in pairs]
        result = const(math.nan)
        for value, cond in reversed(branches):
            if cond is True:
                result = value
            elif cond is not False:
                result = ops.where(cond, value, result)
        return result
    return build, children


def _plan_heaviside(node) -> Plan:
    """Heaviside(x, h0) = 1 for x > 0, 0 for x < 0, h0 at 0 (1/2 when SymPy gives none)."""
    sp = _sympy()
    arg = node.args[0]
    h0 = node.args[1] if len(node.args) > 1 else sp.S.Half

    def build(x, at_zero):
        return ops.where(ops.greater(x, 0.0), 1.0, ops.where(ops.less(x, 0.0), 0.0, at_zero))
    return build, [arg, h0]


def _symbol_plan(node, shapes: Mapping, named: dict) -> Plan:
    """A variable named as the symbol. ``named`` (name -> the first symbol of that name seen)
    catches two different symbols of one name: a variable is its name, so ``Dummy("x")`` and
    ``Symbol("x")`` would silently become one variable. Plain Symbols that differ only in
    assumptions (``real=True`` or not) are the same variable."""
    name = node.name
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SymdiffError(f"from_sympy: symbol name {name!r} is not a Python identifier, so "
                           f"it cannot name a variable; rename it (e.g. with .subs)")
    first = named.setdefault(name, node)
    plain = _sympy().Symbol
    if first is not node and (type(first) is not plain or type(node) is not plain):
        raise SymdiffError(f"from_sympy: two different SymPy symbols are named {name!r} "
                           f"({type(first).__name__} and {type(node).__name__}); a variable "
                           f"is its name, so rename one (e.g. with .subs)")
    shape = shapes.get(name, ())
    return (lambda: var(name, shape)), []


@functools.lru_cache(maxsize=None)
def _function_table() -> dict:
    """SymPy class -> (graph builder, number of arguments), derived from the ops: each op whose
    ``sympy`` names a SymPy class (``"exp"``, ``"Abs"``, ``"Lt"``) converts back to it; the
    first registered wins (``Abs`` is ``abs``, not the norm of one number)."""
    sp = _sympy()
    table = {}
    for name, cls in ops.REGISTRY.items():
        form = getattr(sp, cls.sympy, None) if isinstance(cls.sympy, str) else None
        builder = getattr(ops, name, None)  # the op's public builder
        if isinstance(form, type) and callable(builder) and form not in table:
            table[form] = (builder, 1 if issubclass(cls, ops.Unary) else 2)
    table[sp.ceiling] = (lambda x: ops.negative(ops.floor(ops.negative(x))), 1)  # -floor(-x)
    return table


@functools.lru_cache(maxsize=None)
def _unary_names() -> tuple:
    """Unary ops an undefined SymPy function (``Function("relu")(x)``) may name."""
    return tuple(name for name, cls in ops.REGISTRY.items()
                 if issubclass(cls, ops.Unary) and name in ops.FUNCTIONS)


def _plan(node, shapes: Mapping, named: dict) -> Plan:
    """The children and builder of one SymPy node; SymdiffError naming an unsupported class."""
    sp = _sympy()
    from sympy.core.function import AppliedUndef
    boolalg = sp.logic.boolalg
    kind = type(node)
    if node.is_Symbol:
        return _symbol_plan(node, shapes, named)
    if isinstance(node, boolalg.BooleanAtom):
        flag = bool(node)
        return (lambda: const(flag)), []
    if node.is_Number or node.is_NumberSymbol:
        value = _number_to_float(node)
        return (lambda: const(value)), []
    if node.is_Add:
        return _plan_add(node)
    if node.is_Mul:
        return _plan_mul(node)
    if node.is_Pow:
        return _plan_pow(node)
    builder, arity = _function_table().get(kind, (None, 0))
    if builder is not None and len(node.args) == arity:
        return builder, list(node.args)
    if kind is sp.Max:
        return _chain(ops.maximum), list(node.args)
    if kind is sp.Min:
        return _chain(ops.minimum), list(node.args)
    if kind is sp.Piecewise:
        return _plan_piecewise(node)
    if kind is sp.Heaviside:
        return _plan_heaviside(node)
    if kind is boolalg.And:
        return _chain(lambda a, b: ops.where(a, b, False)), list(node.args)
    if kind is boolalg.Or:
        return _chain(lambda a, b: ops.where(a, True, b)), list(node.args)
    if kind is boolalg.Not:
        return (lambda a: ops.where(a, False, True)), list(node.args)
    if isinstance(node, AppliedUndef):
        name = kind.__name__
        if name in _unary_names() and len(node.args) == 1:
            return ops.FUNCTIONS[name], list(node.args)
        raise SymdiffError(f"from_sympy: undefined SymPy function {name!r} with "
                           f"{len(node.args)} argument(s) is not a symdiff op; known unary "
                           f"names: {', '.join(_unary_names())}")
    if not node.args and node.is_number:  # an atom such as I
        raise SymdiffError(f"from_sympy: complex values ({kind.__name__}) are not supported")
    raise SymdiffError(f"from_sympy: SymPy {kind.__name__} is not supported")


def from_sympy(expr, shapes=None) -> Expr:
    """The graph of a SymPy expression.

    ``shapes`` maps symbol names to shapes (a symbol not in it is a scalar variable); every
    symbol becomes ``sd.var(name, shape)``, numbers become float64 constants, and the
    expression applies elementwise. Sums and products come out readable: ``x - y`` as a
    subtraction, ``x/y`` as a division, ``x**2`` as ``square``, ``x**(1/2)`` as ``sqrt``,
    ``Piecewise`` as nested ``where``, n-ary ``Max``/``Min`` as chains of ``maximum``/
    ``minimum``. An undefined function named after a unary symdiff op (``round``, ``relu``...)
    becomes that op.

    Raises SymdiffError naming the SymPy class it cannot convert, or a symbol name that is not
    a Python identifier.

    >>> import sympy, symdiff as sd
    >>> x, y = sympy.symbols("x y")
    >>> str(sd.from_sympy(x - y / 2))
    'x - y / 2.0'
    """
    sp = _sympy()
    if shapes is None:
        shapes = {}
    elif not isinstance(shapes, Mapping):
        raise SymdiffError(f"from_sympy: shapes must be a dict of name -> shape, got {shapes!r}")
    if isinstance(expr, str) or isinstance(expr, Expr):
        raise SymdiffError(f"from_sympy expects a SymPy expression, got {type(expr).__name__}"
                           + ("; use sd.parse for text" if isinstance(expr, str) else ""))
    try:
        root = sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError, ValueError):
        raise SymdiffError(f"from_sympy expects a SymPy expression, got "
                           f"{type(expr).__name__}") from None
    if not isinstance(root, sp.Basic):
        raise SymdiffError(f"from_sympy expects a SymPy expression, got {type(root).__name__}")

    named: dict = {}     # symbol name -> the first SymPy symbol of that name
    done: dict = {}      # SymPy node -> graph (SymPy nodes compare structurally)
    pending: dict = {}   # SymPy node -> plan, while its children are converted
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            build, children = pending.pop(node)
            done[node] = build(*[done[child] for child in children])
            continue
        if node in done or node in pending:
            continue
        build, children = _plan(node, shapes, named)
        if not children:
            done[node] = build()
            continue
        pending[node] = (build, children)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children) if child not in done)
    return done[root]
