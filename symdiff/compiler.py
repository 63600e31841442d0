"""The compile driver: resolve the inputs, rewrite, pick a backend and build the callable.

The backends are siblings in :mod:`symdiff.lower`: the NumPy printer (straight-line source,
compiled once), the math-module printer for scalar graphs, the register-machine tape for
graphs above ``TAPE_THRESHOLD`` statements, the array-API adapter and the Numba printer
(``backend="auto"``, the default, chooses by :func:`auto_picks_numba`). This module decides
which runs and checks the arguments at call time (:mod:`symdiff.inputs`); it keeps no
knowledge of any op. Generated lines are registered with ``linecache`` (so they show in
tracebacks) for exactly as long as the compiled function lives.
"""
from __future__ import annotations

import builtins
import itertools
import linecache
import weakref
from typing import Sequence

import numpy as np

from .errors import NonFiniteError, SymdiffError, argument_error, expect_bool, expect_choice
from .grad import gradient_labels
from .graph import (Expr, as_expr, expect_exprs, lookup_variables, paused_gc, toposort,
                    variables_of)
from .inputs import bind, check_foreign_input, check_input
from .lower.numpy import generate
from .lower.scalar import Fallback, scalar_function
from .lower.tape import TAPE_THRESHOLD, Tape
from .ops.kernels import NUMPY
from .printing import infix_short

_counter = itertools.count()
_free_filenames: list[str] = []  # names of collected functions' sources, for reuse
# optimize=True rewrites graphs up to this many nodes; beyond, a rewrite rebuilds every node
# downstream of a change, which costs more compile time than it saves (optimize="always" forces)
REWRITE_LIMIT = 20_000


BACKENDS = ("auto", "numpy", "numba", "array_api")
# auto: Numba for graphs of at least this many statements whose arrays are all small (per-call
# overhead dominates: one dispatch instead of one NumPy call per statement). Large elementwise
# graphs stay NumPy: its SIMD exp/log/tanh run 4-10x faster per element than the scalar libm
# calls of a Numba loop (measured), more than fusion saves in memory passes
AUTO_SMALL_STATEMENTS, AUTO_SMALL_SIZE = 16, 4096
# ... and for graphs dominated by matrix products (see _blas_bound)
AUTO_BLAS_RATIO = 16


def _blas_bound(statements: Sequence[Expr]) -> bool:
    """True when matrix products dominate: their multiply-adds are at least
    ``AUTO_BLAS_RATIO`` times the entries passing through elementwise function calls (exp,
    tanh...), the work where NumPy's SIMD kernels beat a Numba loop. Numba then saves the
    memory passes of the elementwise statements around the products (W1, W5)."""
    from .ops.lowering import Call
    from .lower.numpy import lowering_form
    products = calls = 0
    for n in statements:
        if n.op.loop == "map":
            if isinstance(lowering_form(n), Call):
                calls += n.size
        else:
            products += n.op.multiply_adds(n.inputs, n)
    return products > 0 and products >= AUTO_BLAS_RATIO * calls


def auto_picks_numba(order: Sequence[Expr], outputs, inputs, layout: str) -> bool:
    """The rule of ``backend="auto"``: Numba when it is installed, the graph has arrays (a
    scalar graph takes the math-module path), its kernel is already in the disk cache (so
    ``auto`` never pays Numba's compile, seconds, for a function that may run once: compile
    with ``backend="numba"`` once to fill the cache), and the graph is one Numba is faster
    on: small arrays and many statements (per-call overhead), or matrix products dominating
    the work (fused passes around BLAS calls). Everything else runs NumPy."""
    from .lower import numba as nb_lower
    statements = [n for n in order if n.op is not None and not n.op.alias]
    if (not statements or len(statements) > TAPE_THRESHOLD
            or all(n.shape == () for n in order)):
        return False
    largest = max(n.size for n in order)
    small = largest <= AUTO_SMALL_SIZE and len(statements) >= AUTO_SMALL_STATEMENTS
    if not (small or _blas_bound(statements)) or not nb_lower.numba_available():
        return False
    return nb_lower.is_cached(order, outputs, inputs, layout)


def _tape_checker(order: Sequence[Expr]):
    """``check_finite`` for a tape: told the topological position of each step."""
    def check_finite(value, position):
        node = order[position]
        if node.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise NonFiniteError(f"non-finite value (nan or inf) first appears at "
                                 f"'{node.op.name}' node {infix_short(node, 70)}")
    return check_finite


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


def _register_source(owner, source: str):
    """Compile ``source`` under a file name kept in ``linecache`` until ``owner`` is collected;
    the name then returns to a free list (CPython keeps code file names interned), so 10,000
    compiled functions leave neither 10,000 cache entries nor 10,000 names behind."""
    try:
        filename = _free_filenames.pop()
    except IndexError:
        filename = f"<symdiff-{next(_counter)}>"
    code = builtins.compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(owner, _release_filename, filename)
    return code


def _release_filename(filename: str) -> None:
    linecache.cache.pop(filename, None)
    _free_filenames.append(filename)


class CompiledFunction:
    """A graph lowered to NumPy. Call it positionally (in ``inputs`` order) or by variable name;
    it returns one array or a tuple. ``.source`` is the generated code."""

    def __init__(self, outputs, inputs=None, optimize: bool = True, xp=None,
                 check_finite: bool = False, backend: str = "auto", layout: str | None = None):
        with paused_gc():
            self._build(outputs, inputs, optimize, xp, check_finite, backend, layout)

    def _build(self, outputs, inputs, optimize, xp, check_finite, backend, layout):
        """Rewrite, lower and compile (see the class docstring)."""
        if backend not in BACKENDS:
            raise SymdiffError(f"compile: backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "numba" and (xp is not None or check_finite):
            raise SymdiffError("compile: backend='numba' takes NumPy arrays and has no "
                               "check_finite; use backend='numpy' for those")
        self._options = dict(optimize=optimize, check_finite=check_finite, backend=backend)
        requested = backend
        if backend == "auto":
            backend = "numpy"  # unless auto_picks_numba (in _try_numba)
        self.backend = backend
        self._xp = xp
        single = isinstance(outputs, Expr)
        self.outputs = [outputs] if single else [as_expr(o) for o in outputs]
        if not self.outputs:
            raise SymdiffError("compile: no outputs given")
        self.inputs = _resolve_inputs(self.outputs, inputs)
        self.graph = list(self.outputs)
        if optimize == "always" or (optimize and len(toposort(self.outputs)) <= REWRITE_LIMIT):
            from .rewrite import optimize as run_rewrites
            self.graph = run_rewrites(self.outputs)
        given = gradient_labels(self.outputs)  # by output position: rewrites may replace them
        self._labels = {id(new): given[id(old)] for old, new in zip(self.outputs, self.graph)
                        if id(old) in given}
        self._index = {v.name: k for k, v in enumerate(self.inputs)}
        self._layout = layout or ("single" if single else "tuple")
        self._check_finite = check_finite
        self._source = None
        order = toposort(self.graph)
        self._order = order
        self.n_statements = sum(1 for n in order if n.op is not None)
        self.uses_tape = self.n_statements > TAPE_THRESHOLD
        self._numba_fn = None
        if requested in ("numba", "auto") and xp is None and not check_finite:
            self._try_numba(requested)
        if not self.uses_tape:
            self._source, self._constants = generate(self.graph, self.inputs, "symdiff_fn",
                                                     layout=self._layout,
                                                     check_finite=check_finite,
                                                     array_api=backend == "array_api",
                                                     labels=self._labels)
            self._code = _register_source(self, self._source)
        self._by_namespace: dict[int, tuple] = {}  # array_api: id(xp) -> (xp, function)
        # array_api: one function per library, built at the first call with its arrays
        numpy_fn = backend == "numpy" or self.backend == "numba"
        self._fn = self._function_for(NUMPY if xp is None else xp) if numpy_fn else None
        self._n_inputs = len(self.inputs)
        scalar = (xp is None and self.backend == "numpy" and not self.uses_tape
                  and not check_finite)
        self._scalar_fn = (scalar_function(order, self.graph, self.inputs, self._layout)
                           if scalar else None)

    def _try_numba(self, requested: str) -> None:
        """Lower to Numba when asked (``"numba"``: NumbaUnsupported is the caller's answer)
        or when :func:`auto_picks_numba` says so (anything Numba declines stays NumPy)."""
        from .lower import numba as nb_lower
        if requested == "auto" and not auto_picks_numba(self._order, self.graph, self.inputs,
                                                        self._layout):
            return
        if requested == "numba" and not nb_lower.numba_available():
            raise SymdiffError("compile: backend='numba' needs Numba (pip install "
                               "'symdiff[numba]')")
        try:
            self._numba_source, self._numba_fn = nb_lower.numba_function(
                self._order, self.graph, self.inputs, self._layout)
        except nb_lower.NumbaUnsupported:
            if requested == "numba":
                raise
            return
        self.backend = "numba"

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

    @property
    def source(self) -> str:
        """The generated Python/NumPy code (for a graph lowered to a tape, the equivalent
        straight-line code, generated on first access and shown for reading only)."""
        if self.backend == "numba":
            return self._numba_source
        if self._source is None:
            self._source = generate(self.graph, self.inputs, "symdiff_fn",
                                    layout=self._layout,
                                    array_api=self.backend == "array_api",
                                    labels=self._labels)[0]
        return self._source

    def _function_for(self, xp):
        """The generated function with ``xp`` bound as its array namespace (exec'd once per
        namespace: our own generated code, never user text), or a tape for huge graphs."""
        if self.uses_tape:
            check = _tape_checker(self._order) if self._check_finite else None
            return Tape(self.graph, self.inputs, xp, self._layout, check, order=self._order,
                        array_api=self.backend == "array_api")
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
        check = check_input if self.backend != "array_api" else check_foreign_input
        return bind(self.inputs, self._index, args, kwargs, check)

    def __call__(*args, **kwargs):
        # ``self`` is taken from ``args`` so that any variable name (``self`` too) can be
        # passed by keyword
        self, args = args[0], args[1:]
        if self._scalar_fn is not None and not kwargs:
            # the math-module path for plain floats; NumPy computes whatever it declines
            # (other argument types, an arithmetic exception: nan/inf there)
            try:
                return self._scalar_fn(*args)
            except (Fallback, ArithmeticError, ValueError, TypeError):
                pass
        values = self._bind(args, kwargs)
        if self._numba_fn is not None:
            return self._numba_fn(values)
        if self.backend == "numpy":
            return self._fn(*values)
        from .lower.array_api import namespace_for
        xp = namespace_for(values)
        entry = self._by_namespace.get(id(xp))
        if entry is None:
            entry = self._by_namespace[id(xp)] = (xp, self._function_for(xp))
        return entry[1](*values)


def compile(outputs, inputs=None, optimize: bool = True,  # noqa: A001 (API name)
            check_finite: bool = False, backend: str = "auto") -> CompiledFunction:
    """Lower ``outputs`` (one Expr or a list) to a NumPy callable.

    ``inputs``: the variables (or names) in positional order; default every free variable sorted
    by name. The callable takes them positionally or by name and returns one array (one Expr
    given) or a tuple (a list given); ``.source`` holds the generated code. ``optimize=False``
    lowers the graph as built, without the rewrites of :mod:`symdiff.rewrite` (``True`` rewrites
    graphs of up to ``REWRITE_LIMIT`` nodes, ``"always"`` any size);
    ``check_finite=True`` raises NonFiniteError naming the first node whose value is nan or inf
    (otherwise nan and inf simply propagate, as in NumPy). ``backend="array_api"`` emits the
    same code against the namespace of the inputs (JAX, PyTorch, Dask... through
    array-api-compat, see :mod:`symdiff.lower.array_api`). ``backend="numba"`` compiles the
    graph into one Numba function with fused loops (:mod:`symdiff.lower.numba`; the extra
    ``symdiff[numba]``), kept in a disk cache; a graph Numba cannot take raises SymdiffError.
    ``backend="auto"`` (the default) runs NumPy (and the math-module path for scalar graphs)
    except where :func:`auto_picks_numba` says Numba is faster and already compiled.
    Every array returned is the caller's own (a fresh, writable array).

    >>> import symdiff as sd
    >>> f = sd.compile(sd.var("x") * 2.0); float(f(3.0))
    6.0
    """
    _check_options("compile", optimize, check_finite, backend)
    if not isinstance(outputs, (Expr, list, tuple)):
        raise argument_error("compile", "outputs", "an Expr or a list of them", outputs)
    return CompiledFunction(outputs, inputs, optimize, check_finite=check_finite,
                            backend=backend)


def _check_options(function: str, optimize, check_finite, backend) -> None:
    if not (isinstance(optimize, str) and optimize == "always"):
        expect_bool(optimize, "optimize", function)
    expect_bool(check_finite, "check_finite", function)
    expect_choice(backend, "backend", function, BACKENDS)


def rebuild_compiled(cls, args: tuple, options: dict):
    """A pickled compiled function, compiled again from its graph and options."""
    return cls(*args, **options)


class GradFunction(CompiledFunction):
    """``compile_grad``'s callable: returns ``(value, grads)`` straight from one generated
    function, so the forward work is shared between the value and the gradients."""

    def __init__(self, loss: Expr, wrt, inputs=None, optimize: bool = True,
                 check_finite: bool = False, backend: str = "auto"):
        from .grad import grad
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
                 check_finite: bool = False, backend: str = "auto") -> GradFunction:
    """Compile ``loss`` and its gradients w.r.t. ``wrt``: the callable returns
    ``(value, grads)``, ``grads`` a tuple in ``wrt`` order (options as :func:`compile`).

    >>> import symdiff as sd
    >>> a, b = sd.var("a"), sd.var("b")
    >>> value, (ga, gb) = sd.compile_grad(a * a * b, [a, b])(a=3.0, b=2.0)
    >>> float(value), float(ga), float(gb)
    (18.0, 12.0, 9.0)
    """
    _check_options("compile_grad", optimize, check_finite, backend)
    expect_exprs(wrt, "wrt", "compile_grad")
    return GradFunction(loss, wrt, inputs, optimize, check_finite, backend)
