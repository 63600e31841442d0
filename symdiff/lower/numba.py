"""The Numba printer: the whole graph becomes one ``numba.njit`` function with fused loops.

Each op says how it enters a loop through its ``loop`` fact (:attr:`Op.loop`): ``"map"``
(elementwise: the loop computes the op's own lowering form on scalars), ``"broadcast"`` (the
value is its input's, read with broadcast indices), ``"sum"``/``"mean"`` (a reduction folded
into the loop as a running sum). Nodes are grouped into *clusters*, one loop each:

* every node gets a level; a fusible node of shape S takes the highest level among its
  same-shape fusible inputs, and one more than any other input's level; any other node takes
  one more than its inputs' highest level. A cluster is the set of fusible nodes of one shape
  and one level, so no path leaves a cluster and comes back (that path would raise the level):
  a cluster is one loop, run after everything its inputs need;
* a reduction joins the cluster of its input's shape and level (its consumers see a new
  shape, so they come after the loop);
* inside the loop every member is a local scalar; a member is stored into an array only when a
  node outside its cluster or an output reads it. Smaller inputs are read with broadcast
  index arithmetic (a size-1 or missing axis reads index 0).

Products of small float matrices (below ``SMALL_MATMUL`` multiply-adds) are loops too, larger
ones ``@`` (BLAS); softmax and log_softmax of a matrix are row kernels. Everything else is
printed as the op's NumPy form inside the jitted function (transposes, reshapes); 0-d values
are Numba scalars. What Numba cannot compile raises
:class:`NumbaUnsupported` at compile time, and the compile driver falls back to NumPy (or
reports it when ``backend="numba"`` was asked for). The source is written to the cache
directory (``SYMDIFF_CACHE_DIR``, default ``~/.cache/symdiff``) under the hash of its text,
which holds the graph, the shapes and the dtypes, and compiled with ``cache=True``: a second
process loads the machine code from Numba's cache instead of compiling again.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from typing import Sequence

import numpy as np

from ..errors import SymdiffError
from ..graph import Expr
from ..ops.base import REGISTRY
from ..ops.lowering import Arg, Call, Infix, Prefix
from .numpy import FormPrinter, lowering_form
from .quote import Quoter

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
_LOOP_DTYPES = _FLOATS + (np.dtype(bool),)
SMALL_MATMUL = 32_768  # multiply-adds below which a matrix product is a loop, not BLAS

# scalar kernels for the namespace functions of the lowering forms that are not NumPy ufuncs
# Numba knows on scalars (the NumPy namespace's own kernels, see ops/kernels.py)
_KERNELS = {cls.name: cls.numba_kernel for cls in REGISTRY.values() if cls.numba_kernel}


# kernels along the last axis of a matrix, for the namespace functions that take ``axis``
# (ops/kernels.py: x - max - log(sum(exp(x - max))), and its exp); axis 0 runs on x.T
_ROW_KERNELS = {cls.name: cls.numba_rows for cls in REGISTRY.values() if cls.numba_rows}


class NumbaUnsupported(SymdiffError):
    """The graph has a node Numba cannot compile (the message names it)."""


def numba_available() -> bool:
    """True when Numba can be imported (the optional extra ``symdiff[numba]``)."""
    return importlib.util.find_spec("numba") is not None


def cache_dir() -> str:
    """Where generated modules and Numba's cache live: ``SYMDIFF_CACHE_DIR`` or
    ``~/.cache/symdiff``."""
    root = os.environ.get("SYMDIFF_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "symdiff")
    return os.path.join(root, "numba")


def _fusible(node: Expr) -> bool:
    op = node.op
    if op is None or op.loop not in ("map", "broadcast") or op.alias or node.shape == ():
        return False
    if node.size == 0:
        return False
    dtypes = [node.dtype] + [i.dtype for i in node.inputs]
    if op.loop == "map":
        return all(d in _LOOP_DTYPES for d in dtypes) and node.dtype in _LOOP_DTYPES
    return node.inputs[0].dtype in _FLOATS and node.dtype in _FLOATS


def _reduction(node: Expr) -> bool:
    op = node.op
    return (op is not None and op.loop in ("sum", "mean") and node.inputs[0].ndim > 0
            and node.inputs[0].size > 0 and node.inputs[0].dtype in _FLOATS
            and node.dtype == node.inputs[0].dtype)


def _index(shape: tuple, loop_shape: tuple) -> str:
    """Index text reading an array of ``shape`` broadcast to ``loop_shape`` at ``i0, i1...``."""
    offset = len(loop_shape) - len(shape)
    parts = ["0" if d == 1 and loop_shape[offset + k] != 1 else f"i{offset + k}"
             for k, d in enumerate(shape)]
    return ", ".join(parts) + ("," if len(parts) == 1 else "")


def _reduced_index(node: Expr, loop_shape: tuple) -> str | None:
    """Index text of the running sum of reduction ``node`` at the loop position, or None when
    it reduces everything (a scalar accumulator)."""
    axes = node.op.axis
    axes = range(len(loop_shape)) if axes is None else axes
    parts = []
    for k in range(len(loop_shape)):
        if k in axes:
            if node.op.keepdims:
                parts.append("0")
        else:
            parts.append(f"i{k}")
    if not parts:
        return None
    return ", ".join(parts) + ("," if len(parts) == 1 else "")


def _importable(function) -> bool:
    """True for a module-level function of symdiff's (an op's scalar form) that generated
    source can import by name."""
    module = getattr(function, "__module__", "") or ""
    name = getattr(function, "__name__", "")
    return (module.startswith("symdiff.") and name.isidentifier()
            and getattr(sys.modules.get(module), name, None) is function)


class _Printer:
    def __init__(self, order, outputs, inputs, layout):
        self.order, self.outputs, self.inputs, self.layout = order, outputs, inputs, layout
        self.quoter = Quoter()
        self.forms = FormPrinter(self.quoter, prefix="np.")
        self.kernels: set[str] = set()
        self.imported: dict[str, object] = {}  # fn -> an op's scalar function, jitted
        self.names: dict[int, str] = {}
        self.lines: list[str] = []
        self.constants: list[np.ndarray] = []
        self.stored: set[int] = set()  # nodes a loop stores into a fresh array

    # -- scalar text of a node's form inside a loop or on 0-d values -------------------------
    def scalar_text(self, node: Expr, args: list[str]) -> str:
        form = lowering_form(node)
        scalar = node.op.scalar if node.op is not None else None
        if (isinstance(form, Call) and not form.params and form.fn not in _KERNELS
                and not isinstance(getattr(np, form.fn, None), np.ufunc)
                and _importable(scalar)):
            # an op with a math-module form (Op.scalar) and no ufunc: that function, jitted
            self.imported[form.fn] = scalar
            return f"k_{form.fn}({', '.join(self._print(a, args) for a in form.args)})"
        return self._print(form, args)

    def _print(self, form, args) -> str:
        if isinstance(form, Arg):
            return args[form.index]
        if isinstance(form, Call):
            if form.params:
                raise NumbaUnsupported(f"numba backend: no scalar form for {form.fn} with "
                                       f"parameters")
            parts = [self._print(a, args) for a in form.args]
            if form.fn in _KERNELS:
                self.kernels.add(form.fn)
                return f"k_{form.fn}({', '.join(parts)})"
            if not isinstance(getattr(np, form.fn, None), np.ufunc):
                raise NumbaUnsupported(f"numba backend: no scalar form for {form.fn!r}")
            return f"np.{form.fn}({', '.join(parts)})"
        if isinstance(form, Infix):
            return f"({self._print(form.left, args)} {form.symbol} {self._print(form.right, args)})"
        if isinstance(form, Prefix):
            return f"({form.symbol}{self._print(form.operand, args)})"
        if isinstance(form, tuple) or isinstance(form, (list, dict)):
            raise NumbaUnsupported("numba backend: a structured form in a loop")
        return self.quoter.value(form, operand=True)

    # -- planning ---------------------------------------------------------------------------
    def plan(self):
        level: dict[int, int] = {}
        cluster_of: dict[int, tuple] = {}
        for node in self.order:
            if node.op is None:
                level[id(node)] = 0
                continue
            if node.op.alias:
                level[id(node)] = level[id(node.inputs[0])]
                continue
            if _fusible(node):
                key_shape = node.shape
            elif _reduction(node):
                key_shape = node.inputs[0].shape
            else:
                level[id(node)] = 1 + max(level[id(i)] for i in node.inputs)
                continue
            lv = 0
            for i in node.inputs:
                same = cluster_of.get(id(i), (None,))[0] == key_shape and _fusible(i)
                lv = max(lv, level[id(i)] if same else level[id(i)] + 1)
            level[id(node)] = lv
            cluster_of[id(node)] = (key_shape, lv)
        self.level, self.cluster_of = level, cluster_of

    def generate(self) -> tuple[str, str]:
        self.plan()
        params = [f"in_{k}" for k in range(len(self.inputs))]
        for k, v in enumerate(self.inputs):
            self.names[id(v)] = params[k]
        users: dict[int, set] = {}
        for node in self.order:
            for i in node.inputs:
                users.setdefault(id(i), set()).add(self.cluster_of.get(id(node), id(node)))
        for node in self.order:  # an alias's users read its input's array
            if node.op is not None and node.op.alias:
                root = node.inputs[0]
                while root.op is not None and root.op.alias:
                    root = root.inputs[0]
                users.setdefault(id(root), set()).add(("alias", id(node)))
        output_ids = {id(o) for o in self.outputs}
        # units in emission order: by level; at one level, clusters and statements are
        # independent of each other (a dependency would raise the level)
        units: dict[tuple, list] = {}
        for pos, node in enumerate(self.order):
            if id(node) in self.names:
                continue
            key = self.cluster_of.get(id(node))
            unit = ("loop", key) if key is not None else ("node", id(node))
            units.setdefault((self.level[id(node)], unit), []).append(node)
        position = {id(n): k for k, n in enumerate(self.order)}
        firsts = {key: position[id(nodes[0])] for key, nodes in units.items()}
        for lv_unit in sorted(units, key=lambda u: (u[0], firsts[u])):
            nodes = units[lv_unit]
            if lv_unit[1][0] == "loop":
                self.emit_loop(lv_unit[1][1], nodes, users, output_ids)
            else:
                self.emit_node(nodes[0])
        results = [self.names[id(o)] for o in self.outputs]
        body = "\n".join(self.lines) if self.lines else "    pass"
        extra = [f"k{j}" for j in range(len(self.constants))]
        head = f"def symdiff_nb({', '.join(params + extra)}):"
        ret = "    return (" + "".join(f"{r}, " for r in results) + ")"
        table = {**_KERNELS, **_ROW_KERNELS}
        kernels = "".join(f"\n@nb.njit(cache=True, error_model='numpy')\n{table[k]}"
                          for k in sorted(self.kernels))
        kernels += "".join(f"\nfrom {fn.__module__} import {fn.__name__} as _py_{name}\n"
                           f"k_{name} = nb.njit(cache=True, error_model='numpy')(_py_{name})\n"
                           for name, fn in sorted(self.imported.items()))
        source = ("import math\nimport numpy as np\nimport numba as nb\n" + kernels +
                  "\n\n@nb.njit(cache=True, error_model='numpy', fastmath=False)\n" +
                  head + "\n" + body + "\n" + ret + "\n")
        return source, head

    def emit_node(self, node: Expr) -> None:
        if node.is_const:
            value = np.asarray(node.value)
            if value.shape == () and value.dtype in _LOOP_DTYPES and np.isfinite(value):
                text = repr(value.item()) if value.dtype != np.float32 else (
                    f"np.float32({value.item()!r})")
                self.names[id(node)] = f"({text})"
            else:
                name = f"k{len(self.constants)}"
                self.constants.append(value)
                self.names[id(node)] = name
            return
        if node.op is None:
            raise NumbaUnsupported(f"numba backend: variable {node.name!r} is not an input")
        if node.op.alias:
            self.names[id(node)] = self.names[id(node.inputs[0])]
            return
        args = [self.names[id(i)] for i in node.inputs]
        if node.shape == () and node.op.loop == "map":
            text = self.scalar_text(node, args)
        elif node.shape == () and all(i.shape == () for i in node.inputs) and (
                node.op.loop in ("sum", "mean", "broadcast")):
            text = args[0]
        elif node.inputs and node.inputs[0].shape == () and node.op.sympy_identity:
            # reshape/transpose/broadcast of a 0-d value (a Numba scalar here): an array of it
            dtype = "np.float32" if node.dtype == np.float32 else f"np.{node.dtype.name}"
            text = f"np.full({node.shape!r}, {args[0]}, dtype={dtype})"
        elif self.small_matmul(node, args):
            return
        elif self.row_kernel(node, args) is not None:
            text = self.row_kernel(node, args)
        else:
            form = lowering_form(node)
            if isinstance(form, Call) and form.fn in _KERNELS or (
                    isinstance(form, Call) and form.params):
                raise NumbaUnsupported(f"numba backend: {node.op.name} "
                                       f"({form.fn} with {dict(form.params)}) has no Numba form "
                                       f"outside a loop")
            text = self.forms.print(form, args)
            if self.quoter.constants:
                raise NumbaUnsupported(f"numba backend: {node.op.name} needs bound values")
        name = f"t{len(self.names)}"
        self.names[id(node)] = name
        self.lines.append(f"    {name} = {text}")

    def row_kernel(self, node: Expr, args: list[str]) -> str | None:
        """A call of a row kernel (softmax, log_softmax of a float matrix), or None."""
        form = lowering_form(node)
        if not (isinstance(form, Call) and form.fn in _ROW_KERNELS
                and len(node.inputs) == 1 and node.inputs[0].ndim == 2
                and node.inputs[0].size and node.inputs[0].dtype in _FLOATS
                and dict(form.params).keys() == {"axis"}):
            return None
        axis = dict(form.params)["axis"] % 2
        self.kernels.add(form.fn)
        return f"k_{form.fn}({args[0]})" if axis == 1 else f"k_{form.fn}({args[0]}.T).T"

    def small_matmul(self, node: Expr, args: list[str]) -> bool:
        """A product of small float matrices as three loops (a BLAS call costs more than the
        arithmetic below ``SMALL_MATMUL`` multiply-adds); False for anything else."""
        form = lowering_form(node)
        if not (isinstance(form, Infix) and form.symbol == "@"
                and all(i.ndim == 2 and i.dtype in _FLOATS for i in node.inputs)
                and node.dtype in _FLOATS):
            return False
        (m, k), (_, n) = node.inputs[0].shape, node.inputs[1].shape
        if m * k * n > SMALL_MATMUL:
            return False
        a, b = args
        name = f"t{len(self.names)}"
        self.names[id(node)] = name
        dtype = "np.float32" if node.dtype == np.float32 else "np.float64"
        self.lines += [f"    {name} = np.zeros(({m}, {n}), dtype={dtype})",
                       f"    for i0 in range({m}):",
                       f"        for i2 in range({k}):",
                       f"            a_ = {a}[i0, i2]",
                       f"            for i1 in range({n}):",
                       f"                {name}[i0, i1] += a_ * {b}[i2, i1]"]
        self.stored.add(id(node))
        return True

    def emit_loop(self, key, nodes, users, output_ids) -> None:
        shape = key[0]
        cluster = key
        members = {id(n) for n in nodes}
        ind = "    "
        pre, loop = [], []
        local: dict[int, str] = {}
        for n in nodes:
            if _reduction(n) and n.op.loop in ("sum", "mean") and n.inputs[0].shape == shape \
                    and id(n) in members and n.shape != shape:
                name = f"t{len(self.names)}"
                self.names[id(n)] = name
                idx = _reduced_index(n, shape)
                dt = "np.float64"  # running sums in float64 (float32 input: cast after)
                if idx is None:
                    pre.append(f"{ind}{name} = 0.0")
                else:
                    pre.append(f"{ind}{name} = np.zeros({n.shape!r}, dtype={dt})")
                    self.stored.add(id(n))
                local[id(n)] = (name, idx)
        depth = len(shape)
        head = []
        for k, d in enumerate(shape):
            head.append(f"{ind * (k + 1)}for i{k} in range({d}):")
        body_ind = ind * (depth + 1)
        stores = []

        def read(i: Expr) -> str:
            if id(i) in members and id(i) not in local:
                return f"v{self._vid(i)}"
            name = self.names[id(i)]
            if i.shape == ():
                return name
            return f"{name}[{_index(i.shape, shape)}]"

        for n in nodes:
            if id(n) in local:
                name, idx = local[id(n)]
                src = read(n.inputs[0])
                target = name if idx is None else f"{name}[{idx}]"
                loop.append(f"{body_ind}{target} += {src}")
                continue
            args = [read(i) for i in n.inputs]
            if n.op.loop == "broadcast":
                text = args[0]
            else:
                text = self.scalar_text(n, args)
            v = f"v{self._vid(n)}"
            loop.append(f"{body_ind}{v} = {text}")
            needed = id(n) in output_ids or any(u != cluster for u in users.get(id(n), ()))
            if needed:
                name = f"t{len(self.names)}"
                self.names[id(n)] = name
                dtype = "np.float32" if n.dtype == np.float32 else (
                    "np.bool_" if n.dtype == bool else "np.float64")
                pre.append(f"{ind}{name} = np.empty({shape!r}, dtype={dtype})")
                self.stored.add(id(n))
                stores.append(f"{body_ind}{name}[{_index(shape, shape)}] = {v}")
                loop.append(stores[-1])
        self.lines += pre + head + loop
        for n in nodes:  # finish the reductions: mean divides, float32 casts back
            if id(n) in local:
                name = local[id(n)][0]
                count = n.inputs[0].size // max(1, n.size)
                if n.op.loop == "mean":
                    self.lines.append(f"{ind}{name} = {name} / {float(count)!r}")
                if n.dtype == np.float32:
                    cast = "np.float32" if n.shape == () else None
                    self.lines.append(f"{ind}{name} = np.float32({name})" if cast else
                                      f"{ind}{name} = {name}.astype(np.float32)")

    def _vid(self, node: Expr) -> int:
        ids = self.__dict__.setdefault("_vids", {})
        return ids.setdefault(id(node), len(ids))


def _module_name(source: str) -> str:
    return "symdiff_nb_" + hashlib.sha256(source.encode()).hexdigest()[:24]


def is_cached(order: Sequence[Expr], outputs: Sequence[Expr], inputs: Sequence[Expr],
              layout: str) -> bool:
    """True when this graph's kernel is in the disk cache (compiled by an earlier
    ``backend="numba"`` compile, in this process or another), so using it costs no compile."""
    try:
        source = _Printer(order, outputs, inputs, layout).generate()[0]
    except NumbaUnsupported:
        return False
    name = _module_name(source)
    if name in sys.modules:
        return True
    index = os.path.join(cache_dir(), "__pycache__")
    try:
        return any(f.startswith(name + ".symdiff_nb-") and f.endswith(".nbi")
                   for f in os.listdir(index))
    except OSError:
        return False


def _module_for(source: str):
    """The generated module, written once under its hash in the cache directory (never
    rewritten: Numba's cache keys on the file's time stamp) and imported from there."""
    name = _module_name(source)
    module = sys.modules.get(name)
    if module is not None:
        return module
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)  # atomic: a concurrent process sees a whole file or none
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own generated source
    sys.modules[name] = module
    return module


def _signature(nb, inputs: Sequence[Expr], constants: Sequence):
    types = []
    for value in [*inputs, *constants]:
        dtype, ndim = value.dtype, len(value.shape)
        scalar = nb.from_dtype(np.dtype(dtype))
        types.append(scalar if ndim == 0 else nb.types.Array(scalar, ndim, "C"))
    return tuple(types)


def numba_function(order: Sequence[Expr], outputs: Sequence[Expr], inputs: Sequence[Expr],
                   layout: str):
    """(source, function of the checked input arrays returning the outputs as ``layout``
    says), or NumbaUnsupported naming what Numba cannot compile."""
    for node in order:
        if node.dtype not in _LOOP_DTYPES and node.dtype.kind not in "iu":
            raise NumbaUnsupported(f"numba backend: dtype {node.dtype} of "
                                   f"'{node.op.name if node.op else node.name}'")
    printer = _Printer(order, outputs, inputs, layout)
    source, _ = printer.generate()
    import numba as nb
    from numba.core.errors import NumbaError
    module = _module_for(source)
    jitted = module.symdiff_nb
    constants = [c[()] if c.ndim == 0 else np.array(c, order="C") for c in printer.constants]
    try:
        if not jitted.signatures:  # else compiled (or loaded) already in this process
            jitted.compile(_signature(nb, inputs, constants))
    except (NumbaError, TypeError, ValueError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NumbaUnsupported(f"numba backend: Numba cannot compile this graph ({first})") \
            from None
    jitted.disable_compile()  # one signature: a call never compiles again
    return source, _caller(jitted, inputs, outputs, constants, layout, printer.stored)


def _caller(jitted, inputs, outputs, constants, layout, stored):
    """The Python-side function: inputs made contiguous (0-d ones as scalars), the jitted
    function called once, outputs given back as NumPy returns them (0-d: NumPy scalars of the
    node's dtype; an array reaching the output unchanged from an input: a copy)."""
    scalar_in = [v.ndim == 0 for v in inputs]
    contiguous = np.ascontiguousarray
    finish = []
    for o in outputs:
        if o.ndim == 0:
            finish.append(o.dtype.type)
        else:
            finish.append(np.array)  # a copy: the caller owns it (views and inputs too)
    seen = set()
    for k, o in enumerate(outputs):  # arrays a loop stored are the function's own: no copy
        if o.ndim and id(o) in stored and id(o) not in seen:
            finish[k] = None
            seen.add(id(o))

    def call(values):
        args = [v[()] if s else contiguous(v) for v, s in zip(values, scalar_in)]
        try:
            out = jitted(*args, *constants)
        except TypeError:  # a read-only input (the signature takes writable arrays): a copy
            args = [a if s else np.array(a, order="C") for a, s in zip(args, scalar_in)]
            out = jitted(*args, *constants)
        results = [r if f is None else f(r) for r, f in zip(out, finish)]
        if layout == "single":
            return results[0]
        if layout == "value_grads":
            return results[0], tuple(results[1:])
        return tuple(results)
    call.dispatcher = jitted  # Numba's dispatcher (its ``stats`` count cache hits)
    return call
