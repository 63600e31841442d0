"""Input checking, in one place: a compiled function's arguments, ``fit``'s parameters and
data, the optimizers' and the SciPy adapter's arrays all go through these functions, so one
value is accepted or refused (with the same :class:`~symdiff.InputError`) everywhere.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

import numpy as np

from .errors import InputError, SymdiffError, fmt_shape
from .graph import Expr

MISSING = object()  # an input not given


def numeric_array(value, culprit: str, expected: str, error: type = InputError) -> np.ndarray:
    """``value`` as a NumPy array of a numeric (bool, int or float) dtype, or ``error`` (an
    InputError unless the caller has its own subclass of SymdiffError) naming ``culprit`` and
    what was ``expected``."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # any conversion failure is the user's input
        raise error(f"{culprit}: cannot convert {type(value).__name__} to an array "
                         f"({exc}); expected {expected}") from None
    if arr.dtype.kind not in "biuf":
        raise error(f"{culprit}: expected {expected}, got dtype {arr.dtype} "
                         f"({type(value).__name__})")
    return arr


def check_input(v: Expr, value):
    """``value`` as an array fit for variable ``v``, or InputError naming ``v``."""
    if type(value) is np.ndarray and value.dtype == v.dtype and value.shape == v.shape:
        return value
    expected = f"{v.dtype} of shape {fmt_shape(v.shape)}"
    if value is MISSING:
        raise InputError(f"missing input {v.name!r} (expected {expected})")
    arr = numeric_array(value, f"input {v.name!r}", expected)
    if arr.shape != v.shape:
        raise InputError(f"input {v.name!r}: expected shape {fmt_shape(v.shape)}, got "
                         f"{fmt_shape(arr.shape)}")
    if arr.dtype != v.dtype:
        if not np.can_cast(arr.dtype, v.dtype, "same_kind"):
            raise InputError(f"input {v.name!r}: expected {v.dtype}, got {arr.dtype} "
                             f"(not castable without loss of kind)")
        if v.dtype.kind in "iu" and not np.can_cast(arr.dtype, v.dtype, "safe"):
            _check_integer_range(v, arr)  # same_kind lets uint64 2**64 - 1 wrap to -1
        arr = arr.astype(v.dtype)
    return arr


def _check_integer_range(v: Expr, arr: np.ndarray) -> None:
    """InputError unless every entry of the integer array ``arr`` fits ``v``'s integer dtype."""
    info = np.iinfo(v.dtype)
    if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
        raise InputError(f"input {v.name!r}: values of {arr.dtype} from {int(arr.min())} to "
                         f"{int(arr.max())} do not fit {v.dtype}")


def check_foreign_input(v: Expr, value):
    """Like :func:`check_input` for any array-API array (JAX, PyTorch, Dask...): shape and
    dtype are checked through attributes, the array is never converted to NumPy."""
    if value is MISSING:
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


def bind(inputs: Sequence[Expr], index: dict, args, kwargs, check=check_input) -> list:
    """The values of ``inputs`` from positional ``args`` and keyword ``kwargs`` (any variable
    name, ``self`` included; ``index`` maps names to positions), each passed through
    ``check``. InputError for too many, unknown, repeated or missing inputs."""
    n = len(inputs)
    if len(args) > n:
        raise InputError(f"expected at most {n} inputs "
                         f"({', '.join(v.name for v in inputs)}), got {len(args)}; "
                         f"the default inputs are the variables the outputs depend on: "
                         f"to accept others, compile with inputs=[...]")
    values = list(args) + [MISSING] * (n - len(args))
    for key, value in kwargs.items():
        k = index.get(key)
        if k is None:
            names = [v.name for v in inputs]
            raise InputError(f"unknown input {key!r}; the inputs are {names} (the outputs "
                             f"do not depend on {key!r}: to pass it anyway, compile with "
                             f"inputs=[...] listing its sd.var, e.g. "
                             f"inputs=[{', '.join(names + [key])}])")
        if values[k] is not MISSING:
            raise InputError(f"input {key!r} given twice")
        values[k] = value
    return [check(v, values[k]) for k, v in enumerate(inputs)]


def check_roles(function: str, graph_vars, roles: dict) -> None:
    """The variables a loss depends on (``graph_vars``, names) split into named roles
    (``{"params": {...}, "data": {...}}``, each a mapping keyed by variable name): every role a
    mapping, no unknown name, no name in two roles, no variable left out. InputError naming
    the names and roles at fault (SymdiffError for a role that is not a mapping)."""
    for role, mapping in roles.items():
        if not isinstance(mapping, Mapping):
            raise SymdiffError(f"{function}: {role} must be a dict name -> array, got "
                               f"{type(mapping).__name__}")
        unknown = [k for k in mapping if k not in graph_vars]
        if unknown:
            raise InputError(f"{function}: {role} names {unknown}, which are not variables of "
                             f"the loss (its variables: {sorted(graph_vars)})")
    names = list(roles)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            both = [k for k in roles[first] if k in roles[second]]
            if both:
                raise InputError(f"{function}: {both} given in both {first} and {second}")
    missing = [k for k in graph_vars if not any(k in mapping for mapping in roles.values())]
    if missing:
        raise InputError(f"{function}: the loss depends on {missing}, which are in neither "
                         f"{', '.join(names[:-1])} nor {names[-1]}")
