"""Saving and loading graphs as plain, versioned JSON (never pickle).

Format (``"format": "symdiff-graph", "version": 1``): ``nodes`` in topological order, each a
variable (name, shape, dtype), a constant (shape, dtype, base64 of its little-endian bytes) or an
op application (registered op name, params, indices of earlier nodes); ``outputs`` are node
indices. Loading trusts nothing: every op name must be registered, every input index must point
to an earlier node (so no cycles), params must fit the op, and shapes are re-inferred by the ops
themselves. Any defect is a SymdiffError; nothing in the file is ever executed.

A gradient output carries its ``label`` (``dJ/dW1``) and the nodes only gradients need
``"role": "grad"``, both taken from the saved outputs as a view (see graph.py's design note).
Loading records the labelled outputs as gradients of the file's other outputs; it writes
nothing onto nodes, which may be shared with the caller's own graphs.
"""
from __future__ import annotations

import base64
import inspect
import json
import re
from pathlib import Path

import numpy as np

from ..errors import SymdiffError, expect_path
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


def _from_json(value):
    """Lists back to (hashable) tuples, recursively. Only numbers, booleans, None and the tags
    of an index spec are allowed: no other string may reach an op (lowering formats params)."""
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str) and value in _SPEC_TAGS:
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


_LABEL = re.compile(r"^d[\w()/.]{0,200}$")  # dJ/dW1, d(dJ/dw)/dw, dJ/d(node)


def dumps(exprs) -> str:
    """The JSON text of ``exprs`` (one Expr or a list)."""
    single = isinstance(exprs, Expr)
    outputs = [exprs] if single else list(exprs)
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
            entry = {"kind": "op", "op": node.op.name,
                     "params": {k: _to_json(v) for k, v in node.op.params},
                     "inputs": [index[id(i)] for i in node.inputs]}
        if id(node) in labels:
            entry["label"] = labels[id(node)]
        if id(node) in added:
            entry["role"] = "grad"
        nodes.append(entry)
    document = {"format": FORMAT, "version": VERSION, "single": single, "nodes": nodes,
                "outputs": [index[id(o)] for o in outputs]}
    return json.dumps(document, separators=(",", ":"))


def _build(entry, built: list) -> Expr:
    kind = entry.get("kind")
    if kind == "var":
        return var(entry["name"], normalize_shape(entry["shape"]), normalize_dtype(entry["dtype"]))
    if kind == "const":
        dtype = normalize_dtype(entry["dtype"])
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
        if not isinstance(inputs, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(built)
                for i in inputs):
            raise GraphFileError(f"inputs {inputs!r} must index earlier nodes")
        _check_params(cls, params)
        try:
            op = cls(**{k: _from_json(v) for k, v in params.items()})
        except TypeError as exc:
            raise GraphFileError(f"bad params for {entry['op']}: {exc}") from None
        return apply(op, [built[i] for i in inputs])
    raise GraphFileError(f"unknown node kind {kind!r}")


def loads(text: str):
    """Graph(s) from JSON text made by :func:`dumps`; GraphFileError for anything else."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise GraphFileError(f"not a symdiff graph file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise GraphFileError("not a symdiff graph file (missing format tag)")
    if document.get("version") != VERSION:
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
                if not isinstance(label, str) or not _LABEL.match(label):
                    raise GraphFileError(f"node {position}: malformed label {label!r}")
                labels[position] = label
            built.append(node)
        outputs = [built[i] for i in document["outputs"]]
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

    >>> import os, tempfile, symdiff as sd
    >>> x = sd.var("x")
    >>> path = sd.save([sd.sin(x), sd.cos(x)], os.path.join(tempfile.mkdtemp(), "g.json"))
    >>> path.name
    'g.json'
    """
    expect_exprs(exprs, "exprs", "save")
    expect_path(path, "path", "save")
    path = Path(path)
    path.write_text(dumps(exprs), encoding="utf-8")
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
