"""Saving and loading graphs as plain, versioned JSON (never pickle).

Format (``"format": "symdiff-graph", "version": 1``): ``nodes`` in topological order, each a
variable (name, shape, dtype), a constant (shape, dtype, base64 of its little-endian bytes) or an
op application (registered op name, params, indices of earlier nodes, and its shape and dtype,
optional on reading); ``outputs`` are node indices. Loading trusts nothing: every op name must be
registered, every input index must point to an earlier node (so no cycles), and every node is
rebuilt through the public constructors, so the op's own constructor type-checks and normalizes
its params and its shape rule runs again; a declared shape or dtype that differs is refused.
A file can therefore never put a node into the intern table that a graph built later would
reuse with another meaning. Any defect is a GraphFileError naming the node; nothing in the file
is ever executed.

A gradient output carries its ``label`` (``dJ/dW1``) and the nodes only gradients need
``"role": "grad"``, both taken from the saved outputs as a view (see graph.py's design note).
Loading records the labelled outputs as gradients of the file's other outputs; it writes
nothing onto nodes, which may be shared with the caller's own graphs.

``save`` is atomic (temporary file, fsync, rename). An ``Expr`` pickles as its graph file (see
the end of this module), so unpickling in the same process gives the very node.
"""
from __future__ import annotations

import base64
import contextlib
import copyreg
import inspect
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np

from ..errors import SymdiffError, expect_path, fmt_shape
from ..graph import (Expr, apply, const, expect_exprs, normalize_dtype, normalize_shape, toposort,
                     var)
from ..grad import gradient_labels, gradient_nodes, record_gradient
from ..ops.base import REGISTRY

FORMAT = "symdiff-graph"
VERSION = 1
MAX_FILE_BYTES = 1 << 30


class GraphFileError(SymdiffError):
    """A graph file that is malformed, hostile or of an unknown version."""


def _to_json(value):
    """Op params as JSON: tuples become lists, recursively."""
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


_SPEC_TAGS = frozenset({"int", "slice", "newaxis", "ellipsis", "array"})  # getitem specs
# einsum's canonical subscripts: letters and commas, one arrow (nothing else can pass)
_SUBSCRIPTS = re.compile(r"[A-Za-z]*(,[A-Za-z]*)*->[A-Za-z]*")


def _from_json(value):
    """Lists back to (hashable) tuples, recursively. Only numbers, booleans, None, the tags
    of an index spec and einsum subscripts are allowed: no other string may reach an op
    (lowering formats params)."""
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str) and (value in _SPEC_TAGS or _SUBSCRIPTS.fullmatch(value)):
        return value
    raise GraphFileError(f"unexpected parameter value {value!r}")


def _check_params(cls, params: dict) -> None:
    """Param names must be those the op's constructor declares (no **kwargs catch-all)."""
    signature = inspect.signature(cls.__init__)
    declared = {name for name, p in signature.parameters.items()
                if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = set(params) - declared
    if unknown:
        raise GraphFileError(f"op {cls.name!r} has no parameters {sorted(unknown)}")


_LABEL = re.compile(r"d[\w()/.]{0,200}")  # dJ/dW1, d(dJ/dw)/dw, dJ/d(node)


def dumps(exprs) -> str:
    """The JSON text of ``exprs`` (one Expr or a list)."""
    single = isinstance(exprs, Expr)
    if not single and not isinstance(exprs, (list, tuple)):
        raise SymdiffError(f"save: expected an Expr or a list of Expr, got {exprs!r}")
    outputs = [exprs] if single else list(exprs)
    if not outputs:  # a file naming no outputs would be refused by load
        raise SymdiffError("save: nothing to save (the list of expressions is empty)")
    for position, output in enumerate(outputs):
        if not isinstance(output, Expr):
            raise SymdiffError(f"save: item {position} is {output!r}, not an Expr")
    order = toposort(outputs)
    index = {id(n): k for k, n in enumerate(order)}
    labels = gradient_labels(outputs)
    added = gradient_nodes(outputs, labels)
    nodes = []
    for node in order:
        if node.is_var:
            entry = {"kind": "var", "name": node.name, "shape": list(node.shape),
                     "dtype": str(node.dtype)}
        elif node.is_const:
            data = np.ascontiguousarray(node.value, dtype=node.dtype.newbyteorder("<"))
            entry = {"kind": "const", "shape": list(node.shape), "dtype": str(node.dtype),
                     "data": base64.b64encode(data.tobytes()).decode("ascii")}
        else:
            if REGISTRY.get(node.op.name) is not type(node.op):  # a user op (sd.define_op)
                raise GraphFileError(
                    f"cannot save the user-defined op {node.op.name!r} (sd.define_op): its "
                    f"NumPy forward and bprop are Python functions, which a graph file does not "
                    f"hold; rebuild the graph in the loading process instead")
            entry = {"kind": "op", "op": node.op.name,
                     "params": {k: _to_json(v) for k, v in node.op.params},
                     "inputs": [index[id(i)] for i in node.inputs],
                     "shape": list(node.shape), "dtype": str(node.dtype)}
        if id(node) in labels:
            entry["label"] = labels[id(node)]
        if id(node) in added:
            entry["role"] = "grad"
        nodes.append(entry)
    document = {"format": FORMAT, "version": VERSION, "single": single, "nodes": nodes,
                "outputs": [index[id(o)] for o in outputs]}
    return json.dumps(document, separators=(",", ":"))


def _dtype(entry) -> np.dtype:
    if not isinstance(entry["dtype"], str):
        raise GraphFileError(f"dtype must be a string, got {entry['dtype']!r}")
    return normalize_dtype(entry["dtype"])


def _index(value, limit: int, what: str) -> int:
    """A node index: an int (not a bool) in ``range(limit)``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise GraphFileError(f"{what} {value!r} must index an earlier node (0 to {limit - 1})")
    return value


def _build(entry, built: list) -> Expr:
    """The node of one file entry, built through the public constructors (``var``, ``const``,
    the op's own constructor and ``apply``), so params are checked and normalized by the op and
    shapes re-inferred exactly as for a graph the user builds; a declared shape or dtype that
    differs from the rebuilt one is refused."""
    kind = entry.get("kind")
    if kind == "var":
        return var(entry["name"], normalize_shape(entry["shape"]), _dtype(entry))
    if kind == "const":
        dtype = _dtype(entry)
        shape = normalize_shape(entry["shape"])
        raw = base64.b64decode(entry["data"], validate=True)
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dtype.itemsize:
            raise GraphFileError(f"constant data has {len(raw)} bytes, expected "
                                 f"{count * dtype.itemsize} for {shape} {dtype}")
        return const(np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
                     .reshape(shape))
    if kind == "op":
        cls = REGISTRY.get(entry["op"])
        if cls is None:
            raise GraphFileError(f"unknown op {entry['op']!r}")
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise GraphFileError("params must be an object")
        inputs = entry["inputs"]
        if not isinstance(inputs, list):
            raise GraphFileError(f"inputs {inputs!r} must be a list of earlier nodes")
        inputs = [built[_index(i, len(built), "input")] for i in inputs]
        _check_params(cls, params)
        try:
            op = cls(**{k: _from_json(v) for k, v in params.items()})
        except TypeError as exc:
            raise GraphFileError(f"bad params for {entry['op']}: {exc}") from None
        node = apply(op, inputs)
        declared = (normalize_shape(entry["shape"]) if "shape" in entry else node.shape,
                    _dtype(entry) if "dtype" in entry else node.dtype)
        if declared != (node.shape, node.dtype):
            raise GraphFileError(
                f"{entry['op']} declares {fmt_shape(declared[0])} {declared[1]} but its inputs "
                f"and params give {fmt_shape(node.shape)} {node.dtype}")
        return node
    raise GraphFileError(f"unknown node kind {kind!r}")


def loads(text: str):
    """Graph(s) from JSON text made by :func:`dumps`; GraphFileError for anything else."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise GraphFileError(f"not a symdiff graph file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise GraphFileError("not a symdiff graph file (missing format tag)")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version != VERSION:
        raise GraphFileError(f"unsupported graph file version {document.get('version')!r}; "
                             f"this symdiff reads version {VERSION}")
    built: list[Expr] = []
    labels: dict[int, str] = {}  # position -> label, recorded once the outputs are known
    try:
        for position, entry in enumerate(document["nodes"]):
            if not isinstance(entry, dict):
                raise GraphFileError(f"node {position} is not an object")
            try:
                node = _build(entry, built)
            except SymdiffError as exc:
                raise GraphFileError(f"node {position}: {exc}") from None
            label = entry.get("label")  # "role" is derived from the structure, not read
            if label is not None:
                if not isinstance(label, str) or not _LABEL.fullmatch(label):
                    raise GraphFileError(f"node {position}: malformed label {label!r}")
                labels[position] = label
            built.append(node)
        if not isinstance(document["outputs"], list):
            raise GraphFileError("outputs must be a list of node indices")
        outputs = [built[_index(i, len(built), "output")] for i in document["outputs"]]
    except GraphFileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError,
            OverflowError) as exc:
        raise GraphFileError(f"malformed graph file: {type(exc).__name__}: {exc}") from None
    if not outputs:
        raise GraphFileError("the graph file names no outputs")
    _record_labels(document["outputs"], built, labels)
    return outputs[0] if document.get("single") and len(outputs) == 1 else outputs


def _record_labels(output_positions: list, built: list, labels: dict[int, str]) -> None:
    """A file's labels say which of its outputs are gradients of its other outputs (the
    losses): record those pairs, as grad would have; nothing is written onto the nodes, which
    may be shared with the caller's own graphs."""
    losses = [built[i] for i in output_positions if i not in labels]
    for position, label in labels.items():
        for loss in losses:
            record_gradient(loss, built[position], label)


def save(exprs, path) -> Path:
    """Write ``exprs`` (one Expr or a list) to ``path`` as JSON; returns the path.

    The write is atomic: the text goes to a temporary file in the same directory, is flushed
    and fsynced, and then renamed over ``path`` (``os.replace``). A failure midway (a full disk)
    leaves any old file intact, and a reader never sees a partly written file.

    >>> import os, tempfile, symdiff as sd
    >>> x = sd.var("x")
    >>> path = sd.save([sd.sin(x), sd.cos(x)], os.path.join(tempfile.mkdtemp(), "g.json"))
    >>> path.name
    'g.json'
    """
    expect_exprs(exprs, "exprs", "save")
    expect_path(path, "path", "save")
    path = Path(path)
    data = dumps(exprs).encode("utf-8")
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                    dir=path.parent if str(path.parent) else ".")
    try:
        # mkstemp makes the file private (0600): keep the mode the old file had, else 0644
        os.chmod(temp, stat.S_IMODE(os.stat(path).st_mode) if path.exists() else 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path


def load(path):
    """Read graph(s) written by :func:`save` (one Expr or a list, as saved).

    >>> import os, tempfile, symdiff as sd
    >>> x = sd.var("x")
    >>> path = sd.save(sd.sin(x), os.path.join(tempfile.mkdtemp(), "g.json"))
    >>> sd.load(path) is sd.sin(x)  # nodes are interned: the very same node
    True
    """
    expect_path(path, "path", "load")
    path = Path(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise GraphFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GraphFileError(f"{path} is not UTF-8 text: {exc}") from None
    return loads(text)


# ---------------------------------------------------------------------------------------------
# pickling: an Expr travels as its graph file, so unpickling gives the interned node
# ---------------------------------------------------------------------------------------------
def expr_from_graph_file(text: str) -> Expr:
    """The node a pickled Expr stands for: its graph file loaded, so in the same process the
    result IS the original (interned) node and in a fresh interpreter an equal graph."""
    return loads(text)


def _reduce_expr(expr: Expr):
    return expr_from_graph_file, (dumps(expr),)


# registered here rather than as Expr.__reduce__ because graph.py sits below this layer; pickle
# consults copyreg's table before __reduce_ex__, and importing symdiff imports this module
copyreg.pickle(Expr, _reduce_expr)
