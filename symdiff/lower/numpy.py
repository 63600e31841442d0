"""Lowering: a graph becomes straight-line Python/NumPy source, compiled once into a callable.

One statement per node in topological order, each calling the array namespace ``xp`` (NumPy and
a few kernels, see :mod:`symdiff.kernels`). Inputs are bound by position to parameters
``in_0, in_1, ...``; user names appear only in comments, and they are validated identifiers, so
nothing a user typed becomes code. A temporary is deleted right after its last use, so peak
memory stays near the live set. Scalar constants are written as literals; other constants are
bound in the function's namespace. The generated lines are registered with ``linecache`` so they
show in tracebacks.
"""
from __future__ import annotations

import builtins
import itertools
import linecache
import math
import re
from typing import Sequence

import numpy as np

from ..errors import InputError, NonFiniteError, SymdiffError, fmt_shape
from ..graph import Expr, as_expr, lookup_variables, paused_gc, toposort, variables_of
from ..tools.inspect import bounded_infix, infix_short
from ..ops.kernels import math_namespace, numpy_namespace
from .tape import TAPE_THRESHOLD, Tape

_counter = itertools.count()
COMMENT_LIMIT = 20_000  # graphs larger than this get shape-only comments (infix is unreadable)
# optimize=True rewrites graphs up to this many nodes; beyond, a rewrite rebuilds every node
# downstream of a change, which costs more compile time than it saves (optimize="always" forces)
REWRITE_LIMIT = 20_000
_NUMPY = numpy_namespace()
_MATH = math_namespace()
_MISSING = object()


class _Fallback(Exception):
    """Raised by the scalar fast path for arguments it leaves to the NumPy path."""


class _Context:
    """What an op's ``lower`` may ask for: a name bound to a constant object."""

    def __init__(self):
        self.constants: dict[str, object] = {}

    def const(self, value) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name


_LITERAL_DTYPES = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(bool))


def _literal(value: np.ndarray) -> str | None:
    """Source text for a 0-d constant, or None when it must be bound as an array: not 0-d,
    not finite, or of a dtype a Python literal would not keep (float32 stays float32 even
    where it is the only array operand, as in ``where(mask, 1.0, 0.0)``)."""
    if value.shape != () or value.dtype not in _LITERAL_DTYPES:
        return None
    item = value.item()
    if isinstance(item, bool):
        return repr(item)
    if isinstance(item, int):
        return repr(item) if item >= 0 else f"({item!r})"
    if isinstance(item, float) and math.isfinite(item):
        return repr(item) if item >= 0 and not math.copysign(1, item) < 0 else f"({item!r})"
    return None


_DTYPE_NAMES = {np.dtype(d): str(np.dtype(d)) for d in ("float64", "float32", "int64", "int32",
                                                         "bool")}


_NOT_IN_COMMENTS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def _describe(node: Expr, text: str) -> str:
    """The comment after a statement: what the node computes, shape and dtype, and for a
    gradient result which derivative it is (``dJ/dW1 = ...``). Control and line-break
    characters are blanked, so nothing in a comment can end it and become code."""
    head = f"{node.label} = {text}" if node.label else text
    return _NOT_IN_COMMENTS.sub(" ", f"{head}  {node.shape} "
                                     f"{_DTYPE_NAMES.get(node.dtype, node.dtype)}")


_AUGMENTED = {"add": "+=", "subtract": "-=", "multiply": "*=", "divide": "/="}
_COMMUTATIVE = {"add", "multiply"}
_VIEW_OPS = {"reshape", "transpose", "broadcast_to", "getitem", "stop_gradient"}
_UFUNC_CALL = re.compile(r"^xp\.(\w+)\((.*)\)$")


def _dead_fresh_inputs(order: Sequence[Expr], outputs: Sequence[Expr]) -> dict[int, list[int]]:
    """id(node) -> positions of its inputs whose buffers it may overwrite: the input is a
    fresh array computed here (not a variable, constant or view), has the node's shape and
    dtype, is not an output, and neither it nor any view of it is used after the node."""
    owner: dict[int, int] = {}
    for node in order:
        view = node.op is not None and node.op.name in _VIEW_OPS
        owner[id(node)] = owner[id(node.inputs[0])] if view else id(node)
    last: dict[int, int] = {}
    for position, node in enumerate(order):
        for inp in node.inputs:
            last[owner[id(inp)]] = position
    for o in outputs:
        last[owner[id(o)]] = len(order)
    result: dict[int, list[int]] = {}
    for position, node in enumerate(order):
        for k, inp in enumerate(node.inputs):
            if (inp.op is not None and inp.op.name not in _VIEW_OPS
                    and owner[id(inp)] == id(inp) and last[id(inp)] == position
                    and inp.shape == node.shape and inp.dtype == node.dtype):
                result.setdefault(id(node), []).append(k)
    return result


def _in_place(node: Expr, text: str, args: list[str], positions) -> tuple[str, str] | None:
    """(buffer name, statement) that computes ``node`` into a dead input's buffer, or None:
    ``t += u`` for arithmetic, ``xp.f(..., out=t)`` for a NumPy ufunc call."""
    if not positions:
        return None
    name = node.op.name
    if name in _AUGMENTED:
        if 0 in positions:
            return args[0], f"{args[0]} {_AUGMENTED[name]} {args[1]}"
        if name in _COMMUTATIVE and 1 in positions:
            return args[1], f"{args[1]} {_AUGMENTED[name]} {args[0]}"
        return None
    match = _UFUNC_CALL.match(text)
    if node.ndim and match and isinstance(getattr(np, match.group(1), None), np.ufunc):
        target = args[positions[0]]
        return target, f"xp.{match.group(1)}({match.group(2)}, out={target})"
    return None


def _finite_checker(descriptions: list[str]):
    """The ``check_finite`` hook: raise NonFiniteError naming the first non-finite value."""
    def check_finite(value, k):
        if not np.all(np.isfinite(value)):
            raise NonFiniteError(f"non-finite value (nan or inf) first appears at "
                                 f"{descriptions[k]}")
    return check_finite


def _needs_array_constant(node: Expr, inp: Expr) -> bool:
    """True where a literal-eligible constant input must be bound as an array instead: when
    every input is a constant (Python would compute with its own number types) or when the
    constant promotes the result's dtype (NumPy treats a Python literal as weakly typed)."""
    if not inp.is_const or _literal(inp.value) is None:
        return False
    if all(i.is_const for i in node.inputs):
        return True
    others = [i.dtype for i in node.inputs if not i.is_const]
    return np.result_type(*others) != np.result_type(*others, inp.dtype)


def return_text(results: list[str], layout: str) -> str:
    """The returned expression: ``single`` (one value), ``tuple`` (all values) or
    ``value_grads`` (``(value, (grad, ...))``, what compile_grad returns)."""
    if layout == "single":
        return results[0]
    if layout == "value_grads":
        return f"({results[0]}, (" + "".join(f"{r}, " for r in results[1:]) + "))"
    return "(" + ", ".join(results) + ",)"


def arrange(results: tuple, layout: str):
    """The same arrangement for values already computed (used by the tape)."""
    if layout == "single":
        return results[0]
    if layout == "value_grads":
        return results[0], results[1:]
    return results


def _tape_checker(order: Sequence[Expr]):
    """``check_finite`` for a tape: told the topological position of each step."""
    def check_finite(value, position):
        node = order[position]
        if node.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise NonFiniteError(f"non-finite value (nan or inf) first appears at "
                                 f"'{node.op.name}' node {infix_short(node, 70)}")
    return check_finite


def standard_form(node: Expr, text: str, args: Sequence[str]) -> str:
    """The array-API spelling of lowerings that rely on NumPy-only behaviour: ``x[index]``
    (integer arrays, partial index tuples) becomes ``xp.getitem(x, index)``, ``x.T`` (the
    standard's ``.T`` is for 2-D arrays only) ``xp.transpose(x, axes)``, and a boolean mask
    times a value (NumPy casts the bool) ``xp.where(mask, value, 0.0)``."""
    name = node.op.name
    if name == "getitem":
        return f"xp.getitem({args[0]}, {text[len(args[0]) + 1:-1]})"
    if name == "multiply" and any(i.dtype == bool for i in node.inputs):
        # a mask times a value: NumPy casts the bool, the standard does not
        mask, value = (args[0], args[1]) if node.inputs[0].dtype == bool else (args[1], args[0])
        return f"xp.where({mask}, {value}, 0.0)"
    if name == "transpose" and text == f"{args[0]}.T":
        return f"xp.transpose({args[0]}, {node.op.axes!r})"
    return text


def generate(outputs: Sequence[Expr], inputs: Sequence[Expr], name: str = "symdiff_fn",
             layout: str = "tuple", check_finite: bool = False, array_api: bool = False):
    """Source text and constants of a function computing ``outputs`` from ``inputs``; it
    returns them as ``layout`` says (see :func:`return_text`). With
    ``check_finite`` every float input and statement result is checked for nan/inf."""
    order = toposort(outputs)
    ctx = _Context()
    names: dict[int, str] = {}
    params = []
    header = []
    for k, v in enumerate(inputs):
        names[id(v)] = f"in_{k}"
        params.append(f"in_{k}")
        header.append(f"    # in_{k}: {v.name} {fmt_shape(v.shape)} {v.dtype}")

    # statements (node, text); aliases (stop_gradient) share their input's name
    statements: list[tuple[Expr, str]] = []
    # in-place statements (t += u, xp.f(..., out=t)) need mutable NumPy buffers; the array-API
    # form also runs on immutable (JAX) and lazy (Dask) arrays
    reusable = {} if array_api else _dead_fresh_inputs(order, outputs)
    temp = 0
    for node in order:
        if id(node) in names:
            continue
        if node.is_const:
            names[id(node)] = _literal(node.value) or ctx.const(node.value)
            continue
        if node.is_var:
            raise SymdiffError(f"compile: the outputs depend on variable {node.name!r}, which is "
                               f"not among the inputs")
        args = [names[id(i)] if not _needs_array_constant(node, i) else ctx.const(i.value)
                for i in node.inputs]
        if getattr(node.op, "alias", False):
            names[id(node)] = args[0]
            continue
        text = node.op.lower(ctx, *args)
        if array_api:
            text = standard_form(node, text, args)
        in_place = _in_place(node, text, args, reusable.get(id(node), ()))
        if in_place:
            names[id(node)], text = in_place
            statements.append((node, text))
            continue
        target = f"t{temp}"
        temp += 1
        statements.append((node, f"{target} = {text}"))
        names[id(node)] = target

    # free temporaries after their last use (outputs are kept)
    keep = {names[id(o)] for o in outputs}
    last_use: dict[str, int] = {}
    for index, (node, _) in enumerate(statements):
        for inp in node.inputs:
            last_use[names[id(inp)]] = index
    dead_after: dict[int, list[str]] = {}
    for tname, index in last_use.items():
        if tname.startswith("t") and tname not in keep:
            dead_after.setdefault(index, []).append(tname)

    body = list(header)
    readable = bounded_infix(order, width=48) if len(order) <= COMMENT_LIMIT else {}
    checked: list[str] = []
    if check_finite:
        for k, v in enumerate(inputs):
            if v.dtype.kind == "f":
                body.append(f"    check_finite(in_{k}, {len(checked)})")
                checked.append(f"input {v.name!r}")
    for index, (node, text) in enumerate(statements):
        body.append(f"    {text:<36}  # {_describe(node, readable.get(id(node), ''))}")
        if check_finite and node.dtype.kind == "f":
            body.append(f"    check_finite({names[id(node)]}, {len(checked)})")
            what = f"'{node.op.name}' node {infix_short(node, 70)}"
            checked.append(f"{what} ({node.label})" if node.label else what)
        if index in dead_after:
            body.append(f"    del {', '.join(sorted(dead_after[index]))}")
    if check_finite:
        ctx.constants["check_finite"] = _finite_checker(checked)
    results = []
    for o in outputs:
        ref = names[id(o)]
        results.append(f"xp.asarray({ref})" if o.op is None and not o.is_var else ref)
    returned = return_text(results, layout)
    body.append(f"    return {returned}")
    source = f"def {name}({', '.join(params)}):\n" + "\n".join(body) + "\n"
    return source, ctx.constants


def _resolve_inputs(outputs: Sequence[Expr], inputs) -> list[Expr]:
    graph_vars = variables_of(toposort(outputs))
    if inputs is None:
        return graph_vars
    by_name = {v.name: v for v in graph_vars}
    resolved = lookup_variables(inputs, by_name, "compile inputs")
    variables_of(toposort(list(outputs) + resolved))  # name clash -> ShapeError
    names = [v.name for v in resolved]
    if len(set(names)) != len(names):
        raise SymdiffError(f"compile: an input is listed twice in {names}")
    listed = set(names)
    missing = [v.name for v in graph_vars if v.name not in listed]
    if missing:
        raise SymdiffError(f"compile: the outputs depend on {missing}, which are not among the "
                           f"inputs {names}")
    return resolved


class CompiledFunction:
    """A graph lowered to NumPy. Call it positionally (in ``inputs`` order) or by variable name;
    it returns one array or a tuple. ``.source`` is the generated code."""

    def __init__(self, outputs, inputs=None, optimize: bool = True, xp=None,
                 check_finite: bool = False, backend: str = "numpy", layout: str | None = None):
        with paused_gc():
            self._build(outputs, inputs, optimize, xp, check_finite, backend, layout)

    def _build(self, outputs, inputs, optimize, xp, check_finite, backend, layout):
        """Rewrite, lower and compile (see the class docstring)."""
        if backend not in ("numpy", "array_api"):
            raise SymdiffError(f"compile: backend must be 'numpy' or 'array_api', got "
                               f"{backend!r}")
        self.backend = backend
        self._options = dict(optimize=optimize, check_finite=check_finite, backend=backend)
        self._xp = xp
        single = isinstance(outputs, Expr)
        self.outputs = [outputs] if single else [as_expr(o) for o in outputs]
        if not self.outputs:
            raise SymdiffError("compile: no outputs given")
        self.inputs = _resolve_inputs(self.outputs, inputs)
        self.graph = list(self.outputs)
        if optimize == "always" or (optimize and len(toposort(self.outputs)) <= REWRITE_LIMIT):
            from ..rewrite import optimize as run_rewrites
            self.graph = run_rewrites(self.outputs)
        self._index = {v.name: k for k, v in enumerate(self.inputs)}
        self._layout = layout or ("single" if single else "tuple")
        self._check_finite = check_finite
        self._source = None
        order = toposort(self.graph)
        self._order = order
        self.n_statements = sum(1 for n in order if n.op is not None)
        self.uses_tape = self.n_statements > TAPE_THRESHOLD
        if not self.uses_tape:
            self._source, self._constants = generate(self.graph, self.inputs, "symdiff_fn",
                                                     layout=self._layout,
                                                     check_finite=check_finite,
                                                     array_api=backend == "array_api")
            filename = f"<symdiff-{next(_counter)}>"
            self._code = builtins.compile(self._source, filename, "exec")
            linecache.cache[filename] = (len(self._source), None,
                                         self._source.splitlines(True), filename)
        self._by_namespace: dict[int, tuple] = {}  # array_api: id(xp) -> (xp, function)
        self._fn = self._function_for(_NUMPY if xp is None else xp)
        self._n_inputs = len(self.inputs)
        op_names = {n.op.name for n in order if n.op is not None}
        self._may_be_complex = "power" in op_names
        self._scalar_fn = self._scalar_function(op_names) if self._scalar_graph(xp) else None

    def __reduce__(self):
        """Pickle as the graph (each Expr through the graph-file format) plus the compile
        options; the function is compiled again on load, so multiprocessing and joblib work."""
        if self._xp is not None:
            raise SymdiffError("a function compiled for a given array namespace cannot be "
                               "pickled: save its graph with sd.save and compile it again")
        options = dict(self._options)
        if isinstance(self, GradFunction):
            args = (self.outputs[0], self.wrt, self.inputs)
        else:
            outputs = self.outputs[0] if self._layout == "single" else list(self.outputs)
            args = (outputs, self.inputs)
            if self._layout not in ("single", "tuple"):
                options["layout"] = self._layout
        return rebuild_compiled, (type(self), args, options)

    def _scalar_function(self, op_names: set):
        """The same generated code run on Python floats: the math-module functions bound as
        globals (``xp.exp`` -> ``exp``), no ``del`` lines, and a guard that hands anything but
        plain floats (and, where Python's max/min would drop it, a nan) back to NumPy by
        raising ``_Fallback``."""
        source = re.sub(r"^ +del .*\n", "", self._source, flags=re.M).replace("xp.", "")
        params = [f"in_{k}" for k in range(self._n_inputs)]
        guard = []
        if params:
            guard.append(f"    if not ({' and '.join(f'type({p}) is float' for p in params)}):"
                         f" raise _Fallback")
            if op_names & {"maximum", "minimum", "clip", "hardtanh", "relu", "max", "min"}:
                total = " + ".join(params)
                guard.append(f"    if ({total}) != ({total}): raise _Fallback  # nan")
        header, _, body = source.partition("\n")
        source = "\n".join([header, *guard, body])
        namespace = {**vars(_MATH), **self._constants, "_Fallback": _Fallback}
        exec(builtins.compile(source, "<symdiff-scalar>", "exec"), namespace)
        return namespace["symdiff_fn"]

    def _scalar_graph(self, xp) -> bool:
        """True when every node is a float64/bool/int64 scalar and inputs are float64: such
        a graph also gets a ``math``-module lowering (NumPy calls on 0-d values cost ~1 us)."""
        if xp is not None or self.backend != "numpy" or self.uses_tape or self._check_finite:
            return False
        if any(v.dtype != np.float64 for v in self.inputs):
            return False
        return all(n.shape == () and n.dtype in _LITERAL_DTYPES for n in self._order)

    @property
    def source(self) -> str:
        """The generated Python/NumPy code (for a graph lowered to a tape, the equivalent
        straight-line code, generated on first access and shown for reading only)."""
        if self._source is None:
            self._source = generate(self.graph, self.inputs, "symdiff_fn",
                                    layout=self._layout,
                                    array_api=self.backend == "array_api")[0]
        return self._source

    def _function_for(self, xp):
        """The generated function with ``xp`` bound as its array namespace (exec'd once per
        namespace: our own generated code, never user text), or a tape for huge graphs."""
        if self.uses_tape:
            ctx = _Context()
            namespace = {"xp": xp}
            check = _tape_checker(self._order) if self._check_finite else None
            tape = Tape(self.graph, self.inputs, ctx, namespace, self._layout, check,
                        order=self._order,
                        standard_form=standard_form if self.backend == "array_api" else None)
            namespace.update(ctx.constants)
            return tape
        constants = self._constants
        convert = getattr(xp, "constant", None)  # array_api: NumPy constants as arrays of
        if convert is not None:                   # the inputs' library, once per library
            constants = {k: convert(v) for k, v in constants.items()}
        namespace = {"xp": xp, **constants}
        exec(self._code, namespace)
        return namespace["symdiff_fn"]

    def __repr__(self):
        names = ", ".join(v.name for v in self.inputs)
        return f"<symdiff compiled function ({names}) -> {len(self.outputs)} output(s)>"

    def _bind(self, args, kwargs) -> list:
        n = len(self.inputs)
        if len(args) > n:
            raise InputError(f"expected at most {n} inputs "
                             f"({', '.join(v.name for v in self.inputs)}), got {len(args)}; "
                             f"the default inputs are the variables the outputs depend on: "
                             f"to accept others, compile with inputs=[...]")
        values = list(args) + [_MISSING] * (n - len(args))
        for key, value in kwargs.items():
            k = self._index.get(key)
            if k is None:
                names = [v.name for v in self.inputs]
                raise InputError(f"unknown input {key!r}; the inputs are {names} (the outputs "
                                 f"do not depend on {key!r}: to pass it anyway, compile with "
                                 f"inputs=[...] listing its sd.var, e.g. "
                                 f"inputs=[{', '.join(names + [key])}])")
            if values[k] is not _MISSING:
                raise InputError(f"input {key!r} given twice")
            values[k] = value
        check = check_input if self.backend == "numpy" else check_foreign_input
        for k, v in enumerate(self.inputs):
            values[k] = check(v, values[k])
        return values

    def __call__(self, *args, **kwargs):
        if self._scalar_fn is not None and not kwargs:
            # the math-module path for plain floats; NumPy computes whatever it declines
            # (other argument types, an arithmetic exception or complex result: nan/inf there)
            try:
                result = self._scalar_fn(*args)
            except (_Fallback, ArithmeticError, ValueError, TypeError):
                pass
            else:
                if not self._may_be_complex or not _contains_complex(result):
                    return result
        values = self._bind(args, kwargs)
        if self.backend == "numpy":
            return self._fn(*values)
        from .array_api import namespace_for
        xp = namespace_for(values)
        entry = self._by_namespace.get(id(xp))
        if entry is None:
            entry = self._by_namespace[id(xp)] = (xp, self._function_for(xp))
        return entry[1](*values)


def _contains_complex(result) -> bool:
    stack = [result]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, complex):
            return True
    return False



def check_foreign_input(v: Expr, value):
    """Like :func:`check_input` for any array-API array (JAX, PyTorch, Dask...): shape and
    dtype are checked through attributes, the array is never converted to NumPy."""
    if value is _MISSING:
        raise InputError(f"missing input {v.name!r} (expected {v.dtype} of shape "
                         f"{fmt_shape(v.shape)})")
    if isinstance(value, (int, float, bool, list, tuple, np.ndarray, np.generic)):
        return check_input(v, value)
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "dtype"):
        raise InputError(f"input {v.name!r}: expected an array, got {type(value).__name__}")
    if tuple(int(d) for d in shape) != v.shape:
        raise InputError(f"input {v.name!r}: expected shape {fmt_shape(v.shape)}, got "
                         f"{fmt_shape(tuple(shape))}")
    return value


def numeric_array(value, culprit: str, expected: str) -> np.ndarray:
    """``value`` as a NumPy array of a numeric (bool, int or float) dtype, or InputError
    naming ``culprit`` and what was ``expected``."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # any conversion failure is the user's input
        raise InputError(f"{culprit}: cannot convert {type(value).__name__} to an array "
                         f"({exc}); expected {expected}") from None
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{culprit}: expected {expected}, got dtype {arr.dtype} "
                         f"({type(value).__name__})")
    return arr


def check_input(v: Expr, value):
    """``value`` as an array fit for variable ``v``, or InputError naming ``v``."""
    if type(value) is np.ndarray and value.dtype == v.dtype and value.shape == v.shape:
        return value
    expected = f"{v.dtype} of shape {fmt_shape(v.shape)}"
    if value is _MISSING:
        raise InputError(f"missing input {v.name!r} (expected {expected})")
    arr = numeric_array(value, f"input {v.name!r}", expected)
    if arr.shape != v.shape:
        raise InputError(f"input {v.name!r}: expected shape {fmt_shape(v.shape)}, got "
                         f"{fmt_shape(arr.shape)}")
    if arr.dtype != v.dtype:
        if not np.can_cast(arr.dtype, v.dtype, "same_kind"):
            raise InputError(f"input {v.name!r}: expected {v.dtype}, got {arr.dtype} "
                             f"(not castable without loss of kind)")
        arr = arr.astype(v.dtype)
    return arr


def compile(outputs, inputs=None, optimize: bool = True,  # noqa: A001 (API name)
            check_finite: bool = False, backend: str = "numpy") -> CompiledFunction:
    """Lower ``outputs`` (one Expr or a list) to a NumPy callable.

    ``inputs``: the variables (or names) in positional order; default every free variable sorted
    by name. The callable takes them positionally or by name and returns one array (one Expr
    given) or a tuple (a list given); ``.source`` holds the generated code. ``optimize=False``
    lowers the graph as built, without the rewrites of :mod:`symdiff.rewrite` (``True`` rewrites
    graphs of up to ``REWRITE_LIMIT`` nodes, ``"always"`` any size);
    ``check_finite=True`` raises NonFiniteError naming the first node whose value is nan or inf
    (otherwise nan and inf simply propagate, as in NumPy). ``backend="array_api"`` emits the
    same code against the namespace of the inputs (JAX, PyTorch, Dask... through
    array-api-compat, see :mod:`symdiff.array_api`); NumPy stays the default and fastest.

    >>> import symdiff as sd
    >>> f = sd.compile(sd.var("x") * 2.0); float(f(3.0))
    6.0
    """
    return CompiledFunction(outputs, inputs, optimize, check_finite=check_finite,
                            backend=backend)


def rebuild_compiled(cls, args: tuple, options: dict):
    """A pickled compiled function, compiled again from its graph and options."""
    return cls(*args, **options)


class GradFunction(CompiledFunction):
    """``compile_grad``'s callable: returns ``(value, grads)`` straight from one generated
    function, so the forward work is shared between the value and the gradients."""

    def __init__(self, loss: Expr, wrt, inputs=None, optimize: bool = True,
                 check_finite: bool = False, backend: str = "numpy"):
        from ..grad import grad
        self.wrt = [wrt] if isinstance(wrt, Expr) else list(wrt)
        loss = as_expr(loss)
        grads = grad(loss, self.wrt)
        if inputs is None:
            inputs = variables_of(toposort([loss, *self.wrt]))
        super().__init__([loss, *grads], inputs, optimize, check_finite=check_finite,
                         backend=backend, layout="value_grads")

    def __repr__(self):
        names = ", ".join(v.name for v in self.inputs)
        return f"<symdiff value-and-grad function ({names})>"


def compile_grad(loss: Expr, wrt, inputs=None, optimize: bool = True,
                 check_finite: bool = False, backend: str = "numpy") -> GradFunction:
    """Compile ``loss`` and its gradients w.r.t. ``wrt``: the callable returns
    ``(value, grads)``, ``grads`` a tuple in ``wrt`` order (options as :func:`compile`)."""
    return GradFunction(loss, wrt, inputs, optimize, check_finite, backend)
