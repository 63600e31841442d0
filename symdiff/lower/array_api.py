"""The array-API backend: ``compile(..., backend="array_api")`` runs the generated code on the
arrays of any library that implements the Python array API standard (through
`array-api-compat <https://data-apis.org/array-api-compat/>`_): NumPy, PyTorch tensors, JAX
arrays, Dask arrays, and the reference ``array_api_strict`` namespace.

Generated code calls every array function as ``xp.<name>(...)`` (see :mod:`symdiff.kernels`
for the NumPy namespace). For this backend ``xp`` is an :class:`ArrayAPINamespace`: an adapter
around the inputs' namespace exposing the same names, each implemented **only** with functions of
the standard (``transpose`` is ``permute_dims``, ``concatenate`` is ``concat``, ``dot`` and
``outer`` are ``matmul``/``reshape``, ``sigmoid``/``softplus``/``logsumexp``/``softmax`` are
composed stably from ``exp``/``log1p``/``max``, the scatter-adds that transpose ``take`` and
indexing are one-hot matrix products, and ``x[index]`` with integer arrays is ``take`` on a
flattened axis). Python scalars are turned into 0-d arrays of a matching dtype where the
standard asks for arrays.

:func:`namespace_for` is called by the compiled function on every call with the validated
inputs; it returns the **same** adapter object for the same library namespace (cached), so the
generated code is exec'd once per library.

**Dask.** With Dask arrays as inputs (say the data ``X``, ``Y`` chunked by rows, the parameters
NumPy arrays, which are wrapped as one-chunk Dask arrays), every statement only builds the task
graph: the compiled function returns **lazy** Dask arrays at once, and nothing is computed until
the caller asks, e.g. ``dask.compute(value, *grads)`` (one pass over the data, chunk by chunk,
on the threaded scheduler or a ``dask.distributed`` cluster). A loss that is a mean or sum over
rows reduces chunk-wise (a tree of partial sums), so the data never has to fit in memory at once.

**JAX.** Everything here is traceable (shapes and index plans are static, computed with
NumPy once), so ``jax.jit(lambda inputs: f(**inputs))`` compiles the whole function into one
XLA program instead of dispatching statement by statement.

Costs to know: ``scatter_add``/``index_add`` with integer arrays (the gradients of ``take`` and
of ``x[int_array]``) build a one-hot matrix, ``O(m * n)`` for ``m`` gathered rows out of ``n``
(built in blocks of at most ``BLOCK`` entries); basic slices are undone by zero padding,
``O(size)``.
"""
from __future__ import annotations

import math
import threading

import numpy as np


from ..errors import InputError, SymdiffError
from ..ops.kernels import along_axis_positions, erf_pair

__all__ = ["namespace_for", "ArrayAPINamespace", "NAMES", "BLOCK"]

#: largest one-hot block (entries) a scatter-add builds at once
BLOCK = 1 << 22

_lock = threading.Lock()
_adapters: dict[int, tuple[object, "ArrayAPINamespace"]] = {}
_SCALARS = (bool, int, float)


def _compat():
    try:
        import array_api_compat
    except ImportError:
        raise SymdiffError("backend='array_api' needs array-api-compat "
                           "(pip install array-api-compat)") from None
    return array_api_compat


def namespace_for(arrays) -> "ArrayAPINamespace":
    """The adapter for the array library of ``arrays`` (the validated inputs, in input order).

    NumPy arrays (and scalars) mixed with another library's arrays do not decide the namespace:
    a compiled MLP may take NumPy parameters with Dask data, or a Python float for a scalar
    parameter with PyTorch tensors. When ``arrays`` is a list, such NumPy entries are replaced
    in place by arrays of the chosen library (``asarray``), so the generated code sees one kind
    of array. Arrays of two non-NumPy libraries are an :class:`~symdiff.InputError`.

    The same namespace always gives the same adapter object (the compiled function caches its
    exec'd code by the adapter's ``id``).
    """
    compat = _compat()
    arrays = arrays if isinstance(arrays, list) else list(arrays)
    foreign = [a for a in arrays if not isinstance(a, (np.ndarray, np.generic) + _SCALARS)]
    try:
        ns = compat.array_namespace(*(foreign or arrays))
    except TypeError as exc:
        kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in foreign})
        raise InputError(f"backend='array_api': the inputs mix array libraries "
                         f"({', '.join(kinds)}); pass arrays of one library (NumPy arrays may "
                         f"be mixed with any one other): {exc}") from None
    entry = _adapters.get(id(ns))
    if entry is None or entry[0] is not ns:
        with _lock:
            entry = _adapters.get(id(ns))
            if entry is None or entry[0] is not ns:
                entry = _adapters[id(ns)] = (ns, ArrayAPINamespace(ns))
    adapter = entry[1]
    if foreign and len(foreign) < len(arrays):
        device = _device_of(compat, foreign[0])
        for k, a in enumerate(arrays):
            if isinstance(a, (np.ndarray, np.generic) + _SCALARS):
                arrays[k] = adapter.asarray(a, device=device)
    return adapter


def _device_of(compat, array):
    try:
        return compat.device(array)
    except Exception:  # a library without devices
        return None


class _Unary:
    """An adapter method for the elementwise standard function of the attribute's own name:
    integer inputs promoted to float first when ``floating`` (as NumPy's transcendental
    functions do); ``out=`` is NumPy's in-place form (see :meth:`ArrayAPINamespace._store`)."""

    def __init__(self, floating: bool = True, standard: str | None = None):
        self.floating = floating
        self.standard = standard  # the standard's name when NumPy's differs (arcsin: asin)

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, adapter, owner=None):
        if adapter is None:
            return self
        name, floating = self.standard or self.name, self.floating

        def method(x, out=None):
            x = adapter._float(x) if floating else adapter.asarray(x)
            return adapter._store(out, getattr(adapter.xp, name)(x))
        method.__name__ = name
        return method


class ArrayAPINamespace:
    """``xp`` for generated code: the names of :data:`NAMES` over one array-API namespace
    (``self.xp``, as given by ``array_api_compat.array_namespace``), using only standard
    functions of it. Build it through :func:`namespace_for` (one per namespace)."""

    def __init__(self, xp):
        compat = _compat()
        self.xp = xp
        self.name = getattr(xp, "__name__", type(xp).__name__)
        self.lazy = bool(compat.is_dask_namespace(xp))
        self.is_numpy = bool(compat.is_numpy_namespace(xp))
        self._plans: dict[tuple, tuple] = {}
        self._plan_lock = threading.Lock()

    def __repr__(self):
        return f"<symdiff array-API namespace over {self.name}>"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"symdiff.array_api: generated code called xp.{name}, which the "
                             f"array-API adapter does not provide (see array_api.NAMES)")

    # -- dtypes and conversions ------------------------------------------------------------------
    def _info_dtypes(self):
        try:
            return self.xp.__array_namespace_info__()
        except Exception:  # pragma: no cover - every supported namespace has it
            return None

    def float_dtype(self):
        """float64 where the library has it (JAX only with x64 enabled), else its default
        real floating dtype: the dtype given to Python floats with no array to follow."""
        xp = self.xp
        info = self._info_dtypes()
        if info is None:
            return xp.float64
        if "float64" in info.dtypes(kind="real floating"):
            return xp.float64
        return info.default_dtypes()["real floating"]

    def int_dtype(self):
        info = self._info_dtypes()
        return self.xp.int64 if info is None else info.default_dtypes()["integral"]

    def index_dtype(self):
        info = self._info_dtypes()
        return self.xp.int64 if info is None else info.default_dtypes()["indexing"]

    def _scalar_dtype(self, s):
        if isinstance(s, bool):
            return self.xp.bool
        return self.int_dtype() if isinstance(s, int) else self.float_dtype()

    def _kind(self, dtype) -> str:
        xp = self.xp
        if xp.isdtype(dtype, "bool"):
            return "b"
        if xp.isdtype(dtype, "integral"):
            return "i"
        if xp.isdtype(dtype, "real floating"):
            return "f"
        return "c"

    def astype(self, x, dtype: str):
        """``x`` converted to the dtype named ``dtype`` (``"float32"``...), the standard's
        ``astype`` with this library's dtype object."""
        return self.xp.astype(self.asarray(x), getattr(self.xp, dtype))

    def asarray(self, value, dtype=None, device=None):
        """``value`` as an array of this library: Python scalars get the dtype of their kind
        (floats: :meth:`float_dtype`), NumPy arrays keep theirs."""
        if isinstance(value, _SCALARS) and dtype is None:
            dtype = self._scalar_dtype(value)
        elif isinstance(value, (np.ndarray, np.generic)):
            if self.is_numpy and dtype is None:
                return np.asarray(value)
            value = np.asarray(value)
            if not value.flags.writeable:  # graph constants are read-only; torch warns
                value = value.copy()
        elif dtype is None and device is None and not isinstance(value, (list, tuple)):
            return value  # already an array of this library
        kwargs = {} if device is None else {"device": device}
        try:
            return self.xp.asarray(value, dtype=dtype, **kwargs)
        except TypeError:  # a library whose asarray takes no device
            return self.xp.asarray(value, dtype=dtype)

    def constant(self, value):
        """A constant bound in the generated code's namespace, converted once per library:
        NumPy arrays become arrays of this library; indices and anything else are kept."""
        if isinstance(value, (np.ndarray, np.generic)):
            return self.asarray(value)
        return value

    def _float(self, x):
        """``x`` as a floating array (integers and bools promoted, as NumPy's transcendental
        functions do)."""
        x = self.asarray(x)
        if self._kind(x.dtype) in "bi":
            return self.xp.astype(x, self.float_dtype())
        return x

    def _common(self, *values):
        """``values`` as arrays of one dtype, NumPy-style: floats win over integers over bools;
        a Python float makes an integer result floating."""
        xp = self.xp
        arrays = [None if isinstance(v, _SCALARS) else self.asarray(v) for v in values]
        dtypes = [a.dtype for a in arrays if a is not None]
        scalars = [v for v, a in zip(values, arrays) if a is None]
        if not dtypes:
            kind = ("f" if any(isinstance(s, float) for s in scalars) else
                    "i" if any(not isinstance(s, bool) for s in scalars) else "b")
            target = {"f": self.float_dtype, "i": self.int_dtype,
                      "b": lambda: xp.bool}[kind]()
        else:
            by_kind: dict[str, list] = {}
            for d in dtypes:
                by_kind.setdefault(self._kind(d), []).append(d)
            for kind in "cfib":
                if kind in by_kind:
                    group = by_kind[kind]
                    target = group[0] if len(group) == 1 else xp.result_type(*group)
                    break
            top = self._kind(target)
            if top in "bi" and any(isinstance(s, float) for s in scalars):
                target = self.float_dtype()
            elif top == "b" and any(not isinstance(s, bool) for s in scalars):
                target = self.int_dtype()
        out = []
        for v, a in zip(values, arrays):
            if a is None:
                out.append(xp.asarray(v, dtype=target))
            else:
                out.append(a if a.dtype == target else xp.astype(a, target))
        return out

    def _store(self, out, result):
        """The ``out=`` of NumPy's ufunc calls (the in-place lowering): written with the
        standard ``__setitem__`` where the library allows it."""
        if out is None:
            return result
        try:
            out[...] = result
        except Exception as exc:
            raise SymdiffError(
                f"symdiff.array_api: generated code wrote a result in place (out=), which "
                f"{self.name} arrays do not support ({type(exc).__name__}: {exc}); the array-API "
                f"lowering must not use in-place statements") from None
        return out

    def _zeros(self, shape, like):
        xp = self.xp
        device = _device_of(_compat(), like)
        if device is not None and not self.lazy:
            return xp.zeros(tuple(shape), dtype=like.dtype, device=device)
        return xp.zeros(tuple(shape), dtype=like.dtype)

    def _index_array(self, values, like=None):
        """A NumPy integer array as an index array of this library."""
        device = None if like is None or self.lazy else _device_of(_compat(), like)
        return self.asarray(np.asarray(values, dtype=np.int64), dtype=self.index_dtype(),
                            device=device)

    # -- elementwise -----------------------------------------------------------------------------
    exp, log, log1p, expm1 = _Unary(), _Unary(), _Unary(), _Unary()
    sqrt, sin, cos, tan, tanh = _Unary(), _Unary(), _Unary(), _Unary(), _Unary()
    square, sign, floor = _Unary(False), _Unary(False), _Unary(False)
    abs, round = _Unary(False), _Unary(False)  # noqa: A003 (the NumPy names)
    sinh, cosh = _Unary(), _Unary()
    arcsin, arccos, arctan = _Unary(standard="asin"), _Unary(standard="acos"), _Unary(
        standard="atan")
    arcsinh, arccosh = _Unary(standard="asinh"), _Unary(standard="acosh")
    arctanh = _Unary(standard="atanh")

    def erf(self, x, out=None):
        """The error function: the NumPy kernel's rational approximations (ops/kernels.py
        erf_pair), written with standard functions only."""
        return self._store(out, erf_pair(self._float(x), _KernelNamespace(self))[0])

    def erfc(self, x, out=None):
        return self._store(out, erf_pair(self._float(x), _KernelNamespace(self))[1])

    def gelu(self, x, approximate=False):
        """x Phi(x) = 0.5 x erfc(-x/sqrt 2); the tanh form as x sigmoid(2u)."""
        x = self._float(x)
        if approximate:
            c = math.sqrt(2.0 / math.pi)
            return x * self.sigmoid(2.0 * c * (x + 0.044715 * (x * x * x)))
        return 0.5 * x * erf_pair(-x * math.sqrt(0.5), _KernelNamespace(self))[1]

    def logaddexp(self, a, b, out=None):
        a, b = self._common(a, b)
        return self._store(out, self.xp.logaddexp(self._float(a), self._float(b)))

    def arctan2(self, a, b, out=None):
        a, b = self._common(a, b)
        return self._store(out, self.xp.atan2(self._float(a), self._float(b)))

    def sigmoid(self, x, out=None):
        """1 / (1 + e^-x) without overflow: e^-|x| never exceeds 1."""
        xp = self.xp
        x = self._float(x)
        e = xp.exp(-xp.abs(x))
        d = 1.0 + e
        return self._store(out, xp.where(x >= 0, 1.0 / d, e / d))

    def softplus(self, x, out=None):
        """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows."""
        xp = self.xp
        x = self._float(x)
        zero = xp.asarray(0, dtype=x.dtype)
        return self._store(out, xp.maximum(x, zero) + xp.log1p(xp.exp(-xp.abs(x))))

    def dtanh(self, x, out=None):
        """tanh'(x) = 1 / cosh^2 x (as kernels.dtanh)."""
        xp = self.xp
        c = xp.cosh(self._float(x))
        return self._store(out, 1.0 / (c * c))

    def dsigmoid(self, x, out=None):
        """sigmoid'(x) = 1 / (2 + 2 cosh x) (as kernels.dsigmoid)."""
        xp = self.xp
        return self._store(out, 1.0 / (2.0 + 2.0 * xp.cosh(self._float(x))))

    def maximum(self, a, b, out=None):
        return self._store(out, self.xp.maximum(*self._common(a, b)))

    def minimum(self, a, b, out=None):
        return self._store(out, self.xp.minimum(*self._common(a, b)))

    def where(self, cond, a, b):
        """``a`` where ``cond`` is nonzero, else ``b`` (a non-boolean condition is compared
        with 0, as NumPy)."""
        cond = self.asarray(cond)
        if self._kind(cond.dtype) != "b":
            cond = cond != 0
        return self.xp.where(cond, *self._common(a, b))

    def clip(self, x, lo, hi):
        """min(max(x, lo), hi), NumPy's definition: the bounds broadcast with x, and hi wins
        where they cross."""
        x, lo, hi = self._common(x, lo, hi)
        return self.xp.minimum(self.xp.maximum(x, lo), hi)

    # -- reductions ------------------------------------------------------------------------------
    def _summable(self, x):
        x = self.asarray(x)
        if self._kind(x.dtype) == "b":
            return self.xp.astype(x, self.int_dtype())
        return x

    def sum(self, x, axis=None, keepdims=False):  # noqa: A003
        return self.xp.sum(self._summable(x), axis=axis, keepdims=keepdims)

    def prod(self, x, axis=None, keepdims=False):
        return self.xp.prod(self._summable(x), axis=axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return self.xp.mean(self._float(x), axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):  # noqa: A003
        return self.xp.max(self.asarray(x), axis=axis, keepdims=keepdims)

    def min(self, x, axis=None, keepdims=False):  # noqa: A003
        return self.xp.min(self.asarray(x), axis=axis, keepdims=keepdims)

    def argmax(self, x, axis=None):
        return self.xp.argmax(self.asarray(x), axis=axis)

    def var(self, x, axis=None, keepdims=False, correction=0):
        return self.xp.var(self._float(x), axis=axis, keepdims=keepdims, correction=correction)

    def std(self, x, axis=None, keepdims=False, correction=0):
        return self.xp.std(self._float(x), axis=axis, keepdims=keepdims, correction=correction)

    def cumsum(self, x, axis=None):
        """``np.cumsum``: the standard's ``cumulative_sum``, of the flattened array when
        ``axis`` is None; booleans and integers sum in the default integer dtype."""
        x = self._summable(x)
        if self._kind(x.dtype) == "i" and x.dtype != self.int_dtype():
            x = self.xp.astype(x, self.int_dtype())
        if axis is None:
            x, axis = self.xp.reshape(x, (-1,)), 0
        return self.xp.cumulative_sum(x, axis=axis)

    def sort(self, x, axis=-1):
        return self.xp.sort(self.asarray(x), axis=axis)

    def argsort(self, x, axis=-1):
        """Stable (ties keep their order), as the gradient of ``sort`` expects."""
        return self.xp.argsort(self.asarray(x), axis=axis, stable=True)

    def permute(self, v, order, axis):
        """``take_along_axis(v, order, axis)`` for a permutation ``order`` of each slice: the
        standard's 1-D ``take`` on the flattened array, with each slice's offset added."""
        xp = self.xp
        v, order = self.asarray(v), self.asarray(order)
        moved = tuple(i for i in range(v.ndim) if i != axis) + (axis,)
        v_last, order_last = xp.permute_dims(v, moved), xp.permute_dims(order, moved)
        n = v.shape[axis]
        rows = math.prod(v_last.shape[:-1])
        offsets = self._index_array(np.arange(rows).reshape(v_last.shape[:-1] + (1,)) * n,
                                    order)
        flat = xp.reshape(xp.astype(order_last, offsets.dtype) + offsets, (-1,))
        taken = xp.reshape(xp.take(xp.reshape(v_last, (-1,)), flat, axis=0), v_last.shape)
        back = [0] * v.ndim
        for position, source in enumerate(moved):
            back[source] = position
        return xp.permute_dims(taken, tuple(back))

    def logsumexp(self, x, axis=None, keepdims=False):
        """log(sum(exp(x))) with the max subtracted first; an all -inf slice gives -inf."""
        xp = self.xp
        x = self._float(x)
        top = xp.max(x, axis=axis, keepdims=True)
        top = xp.where(xp.isfinite(top), top, xp.asarray(0, dtype=x.dtype))
        out = xp.log(xp.sum(xp.exp(x - top), axis=axis, keepdims=True)) + top
        if not keepdims and x.ndim:
            axes = tuple(range(x.ndim)) if axis is None else (
                (axis,) if isinstance(axis, int) else tuple(axis))
            out = xp.squeeze(out, axis=axes)
        return out

    def norm(self, x, axis=None, keepdims=False):
        """sqrt(sum(x^2)) scaled by m = max|x| (as kernels.norm): no under- or overflow."""
        xp = self.xp
        x = self._float(x)
        if math.prod(x.shape) == 0:
            return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))
        magnitude = xp.abs(x)
        top = xp.max(magnitude, axis=axis, keepdims=True)
        one = xp.asarray(1, dtype=x.dtype)
        scale = xp.where((top > 0) & xp.isfinite(top), top, one)
        scaled = magnitude / scale
        out = scale * xp.sqrt(xp.sum(scaled * scaled, axis=axis, keepdims=True))
        if not keepdims and x.ndim:
            axes = tuple(range(x.ndim)) if axis is None else (
                (axis,) if isinstance(axis, int) else tuple(axis))
            out = xp.squeeze(out, axis=axes)
        return out

    def softmax(self, x, axis=-1):
        xp = self.xp
        x = self._float(x)
        e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
        return e / xp.sum(e, axis=axis, keepdims=True)

    def log_softmax(self, x, axis=-1):
        xp = self.xp
        x = self._float(x)
        shifted = x - xp.max(x, axis=axis, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))

    # -- shape and linear algebra ----------------------------------------------------------------
    def transpose(self, x, axes=None):
        x = self.asarray(x)
        axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
        return self.xp.permute_dims(x, axes)

    def reshape(self, x, shape):
        return self.xp.reshape(self.asarray(x), tuple(shape))

    def broadcast_to(self, x, shape):
        return self.xp.broadcast_to(self.asarray(x), tuple(shape))

    def concatenate(self, xs, axis=0):
        return self.xp.concat(self._common(*xs), axis=axis)

    def stack(self, xs, axis=0):
        return self.xp.stack(self._common(*xs), axis=axis)

    def power(self, a, b):
        """``a ** b`` as the standard's ``pow``."""
        return self.xp.pow(*self._common(a, b))

    def matmul(self, a, b):
        return self.xp.matmul(*self._common(a, b))

    def dot(self, a, b):
        """``np.dot`` of 1-D and 2-D operands, which is matmul."""
        return self.xp.matmul(*self._common(a, b))

    def outer(self, a, b):
        xp = self.xp
        a, b = self._common(a, b)
        return xp.reshape(a, (-1, 1)) * xp.reshape(b, (1, -1))

    def einsum(self, subscripts, *operands, optimize=False):
        """``np.einsum`` with canonical explicit subscripts (``"ij,jk->ik"``): each operand's
        repeated indices reduced to their diagonal (``take`` on the merged axes), every operand
        laid out over all indices (``permute_dims``, ``reshape`` with ones) and multiplied,
        then the indices not in the output summed. Standard functions only; the product is
        formed in full (the NumPy backend plans a BLAS contraction instead)."""
        xp = self.xp
        left, out = subscripts.split("->")
        terms = left.split(",")
        operands = self._common(*operands)
        letters = []
        for ch in left.replace(",", ""):
            if ch not in letters:
                letters.append(ch)
        product = None
        for term, x in zip(terms, operands):
            term, x = self._diagonal(term, x)
            order = sorted(range(len(term)), key=lambda k: letters.index(term[k]))
            if order != list(range(len(term))):
                x = xp.permute_dims(x, tuple(order))
            sizes = dict(zip((term[k] for k in order), x.shape))
            x = xp.reshape(x, tuple(sizes.get(ch, 1) for ch in letters))
            product = x if product is None else product * x
        summed = tuple(k for k, ch in enumerate(letters) if ch not in out)
        if summed:
            product = xp.sum(product, axis=summed)
        kept = [ch for ch in letters if ch in out]
        order = tuple(kept.index(ch) for ch in out)
        return xp.permute_dims(product, order) if order != tuple(range(len(order))) else product

    def _diagonal(self, term, x):
        """(term without repeats, x reduced to the diagonal over each repeated index)."""
        xp = self.xp
        while len(set(term)) != len(term):
            ch = next(c for c in term if term.count(c) > 1)
            axes = [k for k, c in enumerate(term) if c == ch]
            rest = [k for k in range(len(term)) if k not in axes]
            x = xp.permute_dims(x, tuple(rest + axes))
            n, r = x.shape[-1], len(axes)
            x = xp.reshape(x, tuple(x.shape[:len(rest)]) + (n ** r,))
            step = sum(n ** j for j in range(r))
            x = self.take(x, np.arange(n) * step, axis=len(rest))
            term = "".join(term[k] for k in rest) + ch
        return term, x

    # -- the standard's linalg extension -----------------------------------------------------------
    def _linalg(self):
        linalg = getattr(self.xp, "linalg", None)
        if linalg is None:
            raise SymdiffError(f"backend='array_api': {self.name} has no linalg extension")
        return linalg

    def inv(self, a):
        return self._linalg().inv(self._float(a))

    def solve(self, a, b):
        """NumPy 2's rule: a 1-D ``b`` is one vector (solved as a column)."""
        xp = self.xp
        a, b = self._common(self._float(a), b)
        if b.ndim == 1:
            return self._linalg().solve(a, xp.reshape(b, (-1, 1)))[..., 0]
        return self._linalg().solve(a, b)

    def det(self, a):
        return self._linalg().det(self._float(a))

    def slogdet_sign(self, a):
        return self._linalg().slogdet(self._float(a))[0]

    def logabsdet(self, a):
        return self._linalg().slogdet(self._float(a))[1]

    def cholesky(self, a):
        return self._linalg().cholesky(self._float(a))

    # -- convolution and pooling: windows gathered with take, put back with scatter_add ----------
    def _window_index(self, size, kernel, stride, dilation):
        """(P, K) constant index ``p * stride + k * dilation`` of one spatial axis."""
        count = (size - dilation * (kernel - 1) - 1) // stride + 1
        return np.arange(count)[:, None] * stride + np.arange(kernel)[None, :] * dilation

    def _windows(self, x, kernel, stride, dilation):
        """x (N, C, *S) -> (N, C, P0, K0, P1, K1...) by one ``take`` per spatial axis."""
        for i in range(len(kernel)):
            axis = 2 + 2 * i
            x = self.take(x, self._window_index(x.shape[axis], kernel[i], stride[i],
                                                dilation[i]), axis=axis)
        return x

    def _unwindows(self, cols, size, kernel, stride, dilation):
        """The transpose of :meth:`_windows`: (N, C, P0, K0, ...) summed into (N, C, *size)."""
        for i in reversed(range(len(kernel))):
            axis = 2 + 2 * i
            shape = tuple(cols.shape[:axis]) + (size[i],) + tuple(cols.shape[axis + 2:])
            cols = self.scatter_add(cols, self._window_index(size[i], kernel[i], stride[i],
                                                             dilation[i]), shape, axis=axis)
        return cols

    def _pad(self, x, padding):
        xp = self.xp
        for i, p in enumerate(padding):
            if p:
                zeros = self._zeros(tuple(x.shape[:2 + i]) + (p,) + tuple(x.shape[3 + i:]), x)
                x = xp.concat([zeros, x, zeros], axis=2 + i)
        return x

    @staticmethod
    def _interleave(d):
        """Axis order (N, C, P0, K0, P1, K1) <-> (N, P0, P1, C, K0, K1) of the im2col matrix."""
        return (0,) + tuple(2 + 2 * i for i in range(d)) + (1,) + tuple(3 + 2 * i
                                                                        for i in range(d))

    def conv(self, x, w, stride, padding, dilation):
        """im2col by ``take`` and one ``matmul`` (see conv_kernels.conv)."""
        xp = self.xp
        x, w = self._common(x, w)
        d = len(stride)
        cols = self._windows(self._pad(x, padding), tuple(w.shape[2:]), stride, dilation)
        cols = xp.permute_dims(cols, self._interleave(d))
        pooled = tuple(cols.shape[1:1 + d])
        mat = xp.reshape(cols, (-1, math.prod(cols.shape[1 + d:])))
        out = xp.matmul(mat, xp.permute_dims(xp.reshape(w, (w.shape[0], -1)), (1, 0)))
        out = xp.reshape(out, (x.shape[0],) + pooled + (w.shape[0],))
        return xp.permute_dims(out, (0, 1 + d) + tuple(range(1, 1 + d)))

    def conv_input_grad(self, g, w, input_size, stride, padding, dilation):
        """The transpose of :meth:`conv` in ``x``: g W gives the columns, put back by
        scatter-adds, then the padding is cut off."""
        xp = self.xp
        g, w = self._common(g, w)
        d = len(stride)
        kernel = tuple(w.shape[2:])
        gm = xp.reshape(xp.permute_dims(g, (0,) + tuple(range(2, 2 + d)) + (1,)),
                        (-1, g.shape[1]))
        cols = xp.matmul(gm, xp.reshape(w, (w.shape[0], -1)))
        cols = xp.reshape(cols, (g.shape[0],) + tuple(g.shape[2:]) + (w.shape[1],) + kernel)
        inverse = np.argsort(self._interleave(d))
        cols = xp.permute_dims(cols, tuple(int(k) for k in inverse))
        padded = tuple(n + 2 * p for n, p in zip(input_size, padding))
        out = self._unwindows(cols, padded, kernel, stride, dilation)
        return out[(slice(None),) * 2 + tuple(slice(p, p + n) for p, n in zip(padding,
                                                                              input_size))]

    def conv_weight_grad(self, x, g, kernel_size, stride, padding, dilation):
        """``g^T`` times the im2col matrix of ``x`` (the transpose of :meth:`conv` in ``w``)."""
        xp = self.xp
        x, g = self._common(x, g)
        d = len(stride)
        cols = self._windows(self._pad(x, padding), tuple(kernel_size), stride, dilation)
        cols = xp.permute_dims(cols, self._interleave(d))
        mat = xp.reshape(cols, (-1, x.shape[1] * math.prod(kernel_size)))
        gm = xp.reshape(xp.permute_dims(g, (1, 0) + tuple(range(2, 2 + d))), (g.shape[1], -1))
        return xp.reshape(xp.matmul(gm, mat), (g.shape[1], x.shape[1]) + tuple(kernel_size))

    def _pool_columns(self, x, kernel_size, stride):
        """x (N, C, H, W) -> windows (N, C, P0, P1, K0 K1)."""
        xp = self.xp
        cols = self._windows(x, kernel_size, stride, (1, 1))
        cols = xp.permute_dims(cols, (0, 1, 2, 4, 3, 5))
        return xp.reshape(cols, tuple(cols.shape[:4]) + (-1,))

    def _pool_back(self, cols, size, kernel_size, stride):
        """(N, C, P0, P1, K0 K1) summed back into (N, C, *size)."""
        xp = self.xp
        cols = xp.reshape(cols, tuple(cols.shape[:4]) + tuple(kernel_size))
        cols = xp.permute_dims(cols, (0, 1, 2, 4, 3, 5))
        return self._unwindows(cols, tuple(size), kernel_size, stride, (1, 1))

    def max_pool(self, x, kernel_size, stride):
        return self.xp.max(self._pool_columns(self.asarray(x), kernel_size, stride), axis=-1)

    def avg_pool(self, x, kernel_size, stride):
        return self.xp.mean(self._pool_columns(self._float(x), kernel_size, stride), axis=-1)

    def _first_max(self, x, kernel_size, stride, like):
        """One-hot (N, C, P0, P1, K0 K1) of each window's first maximum, in ``like``'s dtype."""
        xp = self.xp
        cols = self._pool_columns(self.asarray(x), kernel_size, stride)
        first = xp.argmax(cols, axis=-1, keepdims=True)
        slots = xp.arange(cols.shape[-1], dtype=first.dtype, **self._device_kw(cols))
        return xp.astype(first == slots, like.dtype)

    def max_pool_scatter(self, x, g, kernel_size, stride):
        x, g = self._common(x, g)
        onehot = self._first_max(x, kernel_size, stride, g)
        return self._pool_back(onehot * g[..., None], x.shape[2:], kernel_size, stride)

    def max_pool_gather(self, x, h, kernel_size, stride):
        x, h = self._common(x, h)
        onehot = self._first_max(x, kernel_size, stride, h)
        return self.xp.sum(self._pool_columns(h, kernel_size, stride) * onehot, axis=-1)

    def avg_pool_grad(self, g, input_size, kernel_size, stride):
        xp = self.xp
        g = self._float(g)
        count = math.prod(kernel_size)
        cols = xp.broadcast_to((g / count)[..., None], tuple(g.shape) + (count,))
        return self._pool_back(cols, input_size, kernel_size, stride)

    # -- gather and scatter ----------------------------------------------------------------------
    def _flat_indices(self, indices, n, like):
        """(flat index array of this library with negatives wrapped, original index shape)."""
        xp = self.xp
        if isinstance(indices, _Flat):
            return indices.flat, indices.shape
        if isinstance(indices, (np.ndarray, np.generic, int)) and not isinstance(indices, bool):
            idx = np.asarray(indices, dtype=np.int64)
            idx = np.where(idx < 0, idx + n, idx)
            return self._index_array(idx.reshape(-1), like), tuple(idx.shape)
        idx = self.asarray(indices)
        shape = tuple(idx.shape)
        if idx.ndim != 1:
            idx = xp.reshape(idx, (-1,))
        return xp.where(idx < 0, idx + n, idx), shape

    def take(self, x, indices, axis=0):
        """``np.take`` along ``axis`` for indices of any shape (flattened for the standard's
        1-D ``take``, then reshaped)."""
        x = self.asarray(x)
        axis = axis % x.ndim
        idx, ishape = self._flat_indices(indices, x.shape[axis], x)
        out = self.xp.take(x, idx, axis=axis)
        if len(ishape) != 1:
            out = self.xp.reshape(out, tuple(x.shape[:axis]) + ishape + tuple(x.shape[axis + 1:]))
        return out

    def _scatter_rows(self, values, idx, n):
        """(n, k) zeros with row ``i`` of ``values`` (m, k) added to row ``idx[i]``; repeated
        indices accumulate. A one-hot (m, n) matrix times ``values``: standard matmul only,
        in blocks of at most :data:`BLOCK` one-hot entries."""
        xp = self.xp
        m = values.shape[0]
        if m == 0 or n == 0:
            return self._zeros((n, values.shape[1]), values)
        cols = xp.reshape(xp.arange(n, dtype=idx.dtype, **self._device_kw(values)), (1, -1))
        block = max(1, BLOCK // n)  # rows per one-hot block (Dask: per block of the graph)
        total = None
        for start in range(0, m, block):
            stop = min(m, start + block)
            part_idx = idx if (start, stop) == (0, m) else idx[start:stop]
            part_val = values if (start, stop) == (0, m) else values[start:stop, ...]
            onehot = xp.astype(xp.reshape(part_idx, (-1, 1)) == cols, values.dtype)
            part = xp.matmul(xp.permute_dims(onehot, (1, 0)), part_val)
            total = part if total is None else total + part
        return total

    def _device_kw(self, like):
        if self.lazy:
            return {}
        device = _device_of(_compat(), like)
        return {} if device is None else {"device": device}

    def scatter_add(self, values, indices, shape, axis=0):
        """Zeros of ``shape`` with ``values`` added at ``indices`` along ``axis``; repeated
        indices accumulate (the transpose of :meth:`take`)."""
        xp = self.xp
        values = self.asarray(values)
        shape = tuple(int(d) for d in shape)
        n = shape[axis]
        idx, ishape = self._flat_indices(indices, n, values)
        m = math.prod(ishape)
        pre, post = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
        if pre == 1:
            rows = self._scatter_rows(xp.reshape(values, (m, post)), idx, n)
            return xp.reshape(rows, shape)
        v = xp.permute_dims(xp.reshape(values, (pre, m, post)), (1, 0, 2))
        rows = self._scatter_rows(xp.reshape(v, (m, pre * post)), idx, n)
        out = xp.permute_dims(xp.reshape(rows, (n, pre, post)), (1, 0, 2))
        return xp.reshape(out, shape)

    def _plan(self, index, shape) -> "_IndexPlan":
        key = (id(index), tuple(shape))
        entry = self._plans.get(key)
        if entry is None or entry[0] is not index:
            with self._plan_lock:
                entry = self._plans[key] = (index, _IndexPlan(index, tuple(shape)))
        return entry[1]

    def getitem(self, x, index):
        """``x[index]`` with NumPy's semantics for a constant index of ints, slices, None,
        Ellipsis and integer arrays: basic indexing by the standard's rules (a full tuple,
        positive steps), integer arrays by ``take`` on the advanced axes merged into one."""
        x = self.asarray(x)
        return self._plan(index, tuple(x.shape)).gather(self, x)

    def index_add(self, values, index, shape):
        """Zeros of ``shape`` with ``values`` added at ``out[index]`` (repeats accumulate): the
        transpose of :meth:`getitem`."""
        values = self.asarray(values)
        return self._plan(index, tuple(int(d) for d in shape)).scatter(self, values)

    # -- layout (ops/layout.py) ------------------------------------------------------------------
    def squeeze(self, x, axis):
        return self.xp.squeeze(self.asarray(x), axis=tuple(axis))

    def expand_dims(self, x, axis):
        """Size-1 axes at the result positions ``axis``, as one reshape (the standard's
        ``expand_dims`` inserts one axis)."""
        x = self.asarray(x)
        rest = iter(x.shape)
        shape = tuple(1 if i in axis else next(rest) for i in range(x.ndim + len(axis)))
        return self.xp.reshape(x, shape)

    def flip(self, x, axis=None):
        return self.xp.flip(self.asarray(x), axis=axis)

    def tile(self, x, reps):
        return self.xp.tile(self.asarray(x), tuple(reps))

    def repeat(self, x, repeats, axis=None):
        """``np.repeat``; per-entry counts become an index array, as the standard asks."""
        x = self.asarray(x)
        if isinstance(repeats, tuple):
            repeats = self._index_array(repeats, x)
        return self.xp.repeat(x, repeats, axis=axis)

    def pad(self, x, pad_width, constant_values=0.0):
        """``np.pad`` in constant mode: per axis, a concatenation with filled blocks."""
        xp = self.xp
        x = self.asarray(x)
        fill = constant_values if self._kind(x.dtype) in "fc" else int(constant_values)
        for axis, (before, after) in enumerate(pad_width):
            blocks = []
            for width in (before, None, after):
                if width is None:
                    blocks.append(x)
                elif width:
                    shape = tuple(width if d == axis else n for d, n in enumerate(x.shape))
                    blocks.append(xp.full(shape, fill, dtype=x.dtype, **self._device_kw(x)))
            if len(blocks) > 1:
                x = xp.concat(blocks, axis=axis)
        return x

    def _positions_along_axis(self, indices, shape, out_shape, axis, like):
        """Flat positions (a 1-D index array) that ``take_along_axis`` reads in an array of
        ``shape`` for a result of ``out_shape``; an axis of size 1 is read at 0."""
        if isinstance(indices, (np.ndarray, np.generic, int)) and not isinstance(indices, bool):
            positions = along_axis_positions(indices, shape, out_shape, axis)
            return self._index_array(positions.reshape(-1), like)
        xp = self.xp
        idx = self.asarray(indices)
        idx = xp.broadcast_to(xp.where(idx < 0, idx + shape[axis], idx), tuple(out_shape))
        strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
        positions = idx * strides[axis]
        for d, size in enumerate(shape):
            if d != axis and size > 1:
                along = xp.arange(out_shape[d], dtype=idx.dtype, **self._device_kw(like))
                along = xp.reshape(along, (-1,) + (1,) * (len(shape) - d - 1))
                positions = positions + along * strides[d]
        return xp.reshape(positions, (-1,))

    def take_along_axis(self, x, indices, axis):
        """``np.take_along_axis`` (other axes broadcast) as ``take`` on the flattened x."""
        xp = self.xp
        x = self.asarray(x)
        ishape = tuple(np.shape(indices)) if isinstance(indices, (np.ndarray, np.generic)) \
            else tuple(self.asarray(indices).shape)
        out_shape = tuple(i if d == axis else (n if i == 1 else i)
                          for d, (n, i) in enumerate(zip(x.shape, ishape)))
        flat = self._positions_along_axis(indices, tuple(x.shape), out_shape, axis, x)
        return xp.reshape(xp.take(xp.reshape(x, (-1,)), flat, axis=0), out_shape)

    def scatter_along_axis(self, values, indices, shape, axis):
        """Zeros of ``shape`` with ``values`` added where :meth:`take_along_axis` reads them
        (repeated positions accumulate): a one-hot product, as :meth:`scatter_add`."""
        xp = self.xp
        values = self.asarray(values)
        shape = tuple(int(d) for d in shape)
        flat = self._positions_along_axis(indices, shape, tuple(values.shape), axis, values)
        rows = self._scatter_rows(xp.reshape(values, (-1, 1)), flat, math.prod(shape))
        return xp.reshape(rows, shape)

    def one_hot(self, labels, n):
        """float ``labels[..., None] == arange(n)``."""
        xp = self.xp
        labels = self.asarray(labels)
        cols = xp.arange(n, dtype=labels.dtype, **self._device_kw(labels))
        hits = xp.reshape(labels, tuple(labels.shape) + (1,)) == cols
        return xp.astype(hits, self.float_dtype())

    def tril(self, x, k=0):
        return self.xp.tril(self.asarray(x), k=k)

    def triu(self, x, k=0):
        return self.xp.triu(self.asarray(x), k=k)

    def diag(self, v, k=0):
        """``np.diag`` of a vector: ``eye(m, k)`` times v padded to m, as a column (the row
        index holds v[i] for k >= 0) or a row (the column index, for k < 0)."""
        xp = self.xp
        v = self.asarray(v)
        m = v.shape[0] + abs(k)
        device = self._device_kw(v)
        if k:
            v = xp.concat([v, xp.zeros((abs(k),), dtype=v.dtype, **device)])
        eye = xp.eye(m, k=k, dtype=v.dtype, **device)
        return eye * xp.reshape(v, (m, 1) if k >= 0 else (1, m))

    def diagonal(self, x, offset=0, axis1=0, axis2=1):
        """``np.diagonal``: the two axes moved last and merged, then ``take`` of the flat
        positions ``r * n2 + r + offset`` of the diagonal's rows r."""
        xp = self.xp
        x = self.asarray(x)
        rest = [d for d in range(x.ndim) if d not in (axis1, axis2)]
        x = xp.permute_dims(x, tuple(rest + [axis1, axis2]))
        n1, n2 = x.shape[-2], x.shape[-1]
        length = max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))
        rows = np.arange(max(0, -offset), max(0, -offset) + length)
        flat = xp.reshape(x, tuple(x.shape[:-2]) + (n1 * n2,))
        return self.take(flat, rows * n2 + rows + offset, axis=flat.ndim - 1)

    def trace(self, x, offset=0, axis1=0, axis2=1):
        return self.sum(self.diagonal(x, offset, axis1, axis2), axis=-1)


# ------------------------------------------------------------------------------------------------
# x[index] as standard calls
# ------------------------------------------------------------------------------------------------
class _IndexPlan:
    """A constant NumPy index against a fixed shape, decomposed into standard steps:

    1. ``reshape`` to insert the axes of ``None`` (they become full slices);
    2. ``flip`` the axes sliced with a negative step, then basic indexing with a full tuple of
       ints and positive-step slices (with integer arrays present, ints are advanced indices,
       as NumPy treats them, so this step keeps every axis);
    3. integer arrays: the advanced axes are moved together and merged into one, gathered with
       ``take`` at the (constant) flat index ``ravel_multi_index(arrays)``, and the broadcast
       index shape is put where NumPy puts it (in place when the advanced indices are adjacent,
       else first).

    ``scatter`` runs the transpose of each step in reverse order.
    """

    def __init__(self, index, shape):
        from ..errors import ShapeError

        items = list(index) if isinstance(index, tuple) else [index]
        ndim = len(shape)
        consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
        ellipses = [k for k, it in enumerate(items) if it is Ellipsis]
        if len(ellipses) > 1:
            raise ShapeError("an index can only have a single ellipsis ('...')")
        fill = [slice(None)] * (ndim - consumed)
        if ellipses:
            k = ellipses[0]
            items = items[:k] + fill + items[k + 1:]
        else:
            items = items + fill
        self.shape = shape
        eshape, full, src = [], [], iter(shape)
        for it in items:
            if it is None:
                eshape.append(1)
                full.append(slice(None))
            else:
                eshape.append(next(src))
                full.append(np.asarray(it, dtype=np.int64) if isinstance(it, (list, np.ndarray))
                            else it)
        self.eshape = tuple(eshape)
        self.newaxis = any(it is None for it in items)
        advanced = any(isinstance(it, np.ndarray) for it in full)
        # per axis: ("full",) | ("int", i) | ("slice", start, step, count, flipped) | ("array", a)
        self.axes = []
        for n, it in zip(self.eshape, full):
            if isinstance(it, slice):
                positions = np.arange(n)[it]
                count = len(positions)
                if count == n and (count < 2 or positions[1] > positions[0]):
                    self.axes.append(("full",))
                    continue
                flipped = count > 1 and positions[1] < positions[0]
                if flipped:
                    positions = (n - 1) - positions
                step = int(positions[1] - positions[0]) if count > 1 else 1
                start = int(positions[0]) if count else 0
                self.axes.append(("slice", start, step, count, flipped))
            elif isinstance(it, np.ndarray):
                self.axes.append(("array", np.where(it < 0, it + n, it)))
            else:
                i = int(it)
                self.axes.append(("array", np.asarray(i + n if i < 0 else i))
                                 if advanced else ("int", i + n if i < 0 else i))
        self.flips = tuple(k for k, a in enumerate(self.axes) if a[0] == "slice" and a[4])
        # basic step: a full tuple of ints and positive slices (arrays: full slices for now)
        basic = []
        for a in self.axes:
            if a[0] == "int":
                basic.append(a[1])
            elif a[0] == "slice":
                _, start, step, count, _ = a
                stop = start + (count - 1) * step + 1 if count else start
                basic.append(slice(start, stop, step))
            else:
                basic.append(slice(None))
        self.basic = tuple(basic)
        self.basic_needed = any(a[0] in ("int", "slice") for a in self.axes)
        # the shape after step 2, int axes kept as 1 (for the scatter's reshape)
        kept = []
        for n, a in zip(self.eshape, self.axes):
            kept.append(1 if a[0] == "int" else a[3] if a[0] == "slice" else n)
        self.kept_shape = tuple(kept)
        self.sliced_shape = tuple(d for d, a in zip(kept, self.axes) if a[0] != "int")
        self.adv = [k for k, a in enumerate(self.axes) if a[0] == "array"]
        self._xp_cache: dict = {}
        if not self.adv:
            return
        rest = [k for k in range(len(self.axes)) if k not in self.adv]
        self.rest = rest
        arrays = np.broadcast_arrays(*[self.axes[k][1] for k in self.adv])
        self.bshape = tuple(arrays[0].shape) if arrays else ()
        dims = tuple(self.sliced_shape[k] for k in self.adv)
        self.lin = np.ravel_multi_index(tuple(arrays), dims).reshape(self.bshape)
        self.merged = math.prod(dims)
        self.adjacent = self.adv == list(range(self.adv[0], self.adv[0] + len(self.adv)))
        self.rest_shape = tuple(self.sliced_shape[k] for k in rest)

    def _lin(self, ns, like):
        key = (id(ns), None if ns.lazy else str(_device_of(_compat(), like)))
        arr = self._xp_cache.get(key)
        if arr is None:
            arr = self._xp_cache[key] = ns._index_array(self.lin.reshape(-1), like)
        return arr

    # forward: x[index]
    def gather(self, ns, x):
        xp = ns.xp
        if self.newaxis:
            x = xp.reshape(x, self.eshape)
        if self.flips:
            x = xp.flip(x, axis=self.flips)
        if self.basic_needed:
            x = x[self.basic]
        if not self.adv:
            return x
        lin = self._lin(ns, x)
        nb = len(self.bshape)
        if len(self.adv) == 1:
            a = self.adv[0]
            out = xp.take(x, lin, axis=a)
            if nb != 1:
                out = xp.reshape(out, tuple(x.shape[:a]) + self.bshape + tuple(x.shape[a + 1:]))
            return out
        perm = tuple(self.adv + self.rest)
        y = xp.permute_dims(x, perm) if perm != tuple(range(len(perm))) else x
        y = xp.reshape(y, (self.merged,) + self.rest_shape)
        out = xp.reshape(xp.take(y, lin, axis=0), self.bshape + self.rest_shape)
        p = self.adv[0]
        if self.adjacent and p:
            nr = len(self.rest)
            order = (tuple(nb + i for i in range(p)) + tuple(range(nb))
                     + tuple(nb + i for i in range(p, nr)))
            out = xp.permute_dims(out, order)
        return out

    # transpose: zeros(shape) with values added at [index]
    def scatter(self, ns, v):
        xp = ns.xp
        if self.adv:
            nb = len(self.bshape)
            lin = self._lin(ns, v)
            if len(self.adv) == 1:
                v = ns.scatter_add(v, _Flat(lin, self.bshape), self.sliced_shape, self.adv[0])
            else:
                p = self.adv[0]
                nr = len(self.rest)
                if self.adjacent and p:  # undo the forward permutation
                    order = (tuple(range(p, p + nb)) + tuple(range(p))
                             + tuple(range(p + nb, p + nb + nr - p)))
                    v = xp.permute_dims(v, order)
                v = ns.scatter_add(v, _Flat(lin, self.bshape), (self.merged,) + self.rest_shape, 0)
                dims = tuple(self.sliced_shape[k] for k in self.adv)
                v = xp.reshape(v, dims + self.rest_shape)
                perm = self.adv + self.rest
                inverse = tuple(int(i) for i in np.argsort(perm))
                if inverse != tuple(range(len(perm))):
                    v = xp.permute_dims(v, inverse)
        if self.basic_needed:
            v = xp.reshape(v, self.kept_shape)
            for k, (n, a) in enumerate(zip(self.eshape, self.axes)):
                if a[0] == "int":
                    v = _pad(ns, v, k, a[1], 1, 1, n)
                elif a[0] == "slice":
                    v = _pad(ns, v, k, a[1], a[2], a[3], n)
        if self.flips:
            v = xp.flip(v, axis=self.flips)
        if self.newaxis:
            v = xp.reshape(v, self.shape)
        return v


class _Flat:
    """Already flat, wrapped index array handed from an index plan to ``scatter_add``."""

    def __init__(self, flat, shape):
        self.flat, self.shape = flat, shape


def _pad(ns, v, axis, start, step, count, n):
    """``v`` (``count`` entries along ``axis``) placed at ``start, start+step, ...`` of ``n``
    zeros: the transpose of a positive-step slice, by concatenating zeros."""
    xp = ns.xp
    shape = list(v.shape)
    if count == 0:
        shape[axis] = n
        return ns._zeros(shape, v)
    if step > 1:  # interleave step-1 zeros after each entry, then drop the trailing ones
        shape_z = shape[:axis + 1] + [step - 1] + shape[axis + 1:]
        spread = xp.concat([xp.expand_dims(v, axis=axis + 1), ns._zeros(shape_z, v)],
                           axis=axis + 1)
        shape[axis] = count * step
        v = xp.reshape(spread, tuple(shape))
        length = (count - 1) * step + 1
        index = tuple(slice(0, length) if k == axis else slice(None) for k in range(len(shape)))
        v = v[index]
        shape[axis] = length
        count = length
    parts = []
    if start:
        parts.append(ns._zeros(shape[:axis] + [start] + shape[axis + 1:], v))
    parts.append(v)
    if n - start - count:
        parts.append(ns._zeros(shape[:axis] + [n - start - count] + shape[axis + 1:], v))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)


class _KernelNamespace:
    """The few functions the shared NumPy kernels (ops/kernels.py ``erf_pair``) call on
    ``xp``, over an adapter: its NumPy-style ``where`` (Python numbers allowed) and the
    standard's own elementwise functions."""

    def __init__(self, adapter: ArrayAPINamespace):
        xp = adapter.xp
        self.where = adapter.where
        self.abs, self.exp, self.trunc = xp.abs, xp.exp, xp.trunc
        self.copysign, self.isnan = xp.copysign, xp.isnan


#: every name generated code (the ops' lowering forms and the NumPy printer) may call on
#: ``xp``: the adapter's public methods, less its dtype queries
NAMES = tuple(sorted(name for name, value in vars(ArrayAPINamespace).items()
                     if not name.startswith("_") and (callable(value) or isinstance(value, _Unary))
                     and not name.endswith("_dtype")))
