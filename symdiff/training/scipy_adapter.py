"""SciPy adapter: a symdiff loss as an objective for ``scipy.optimize.minimize``.

::

    obj = sd.scipy_objective(loss, [w, b], {"X": X, "y": y}, hessp=True)
    res = scipy.optimize.minimize(obj.fun, obj.pack({"w": w0, "b": b0}), jac=True,
                                  hessp=obj.hessp, method="Newton-CG")
    params = obj.unpack(res.x)                      # {"w": ..., "b": ...}
    # or in one call: res = obj.minimize({"w": w0, "b": b0}, method="Newton-CG"); res.params

SciPy optimizes one flat float64 vector; the objective packs the ``wrt`` variables into it in
the order given, each raveled in C order (:meth:`ScipyObjective.pack`, :meth:`~.unpack`).

- ``fun(x) -> (value, grad)``: one compiled pass (``compile_grad``) giving the loss and the
  flat gradient, for ``minimize(..., jac=True)``.
- ``hessp(x, p) -> H p`` (when built with ``hessp=True``; else ``hessp`` is None, which
  ``minimize`` accepts): the Hessian of the loss w.r.t. all ``wrt`` variables jointly, times
  ``p``, never forming H. It is the reverse-over-reverse construction of :func:`symdiff.hvp`
  extended to several variables: with ``g_i = grad(loss, w_i)`` and direction blocks ``v_i``,
  ``H v = grad(sum_i <g_i, v_i>, [w_1, ..., w_k])``, so the cross terms between variables are
  included. That graph is built and compiled once, when the objective is made.

SciPy itself is only imported by :meth:`ScipyObjective.minimize`; the objective works without
it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import ops
from ..errors import InputError, ShapeError, SymdiffError, expect_bool, fmt_shape
from ..graph import Expr, _make_var, free_vars, lookup_variables
from ..grad import grad
from ..compiler import CompiledFunction, compile_grad
from ..inputs import check_input, check_roles

__all__ = ["scipy_objective", "ScipyObjective"]

# methods of scipy.optimize.minimize that use a Hessian-vector product
_HESSP_METHODS = {"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"}


class ScipyObjective:
    """The loss, its gradient and (optionally) its Hessian-vector product on one flat vector.

    Attributes: ``names``, ``shapes``, ``size`` (length of the flat vector), ``wrt`` (the
    variables), ``data`` (the fixed inputs, validated), ``hessp`` (a callable or None), and
    ``evaluations`` (a count of ``fun`` and ``hessp`` calls, for inspection).
    """

    def __init__(self, loss: Expr, wrt, data: Mapping | None = None, hessp: bool = False):
        if not isinstance(loss, Expr):
            raise SymdiffError(f"scipy_objective: loss must be a symdiff expression, got "
                               f"{type(loss).__name__}")
        if loss.shape != ():
            raise ShapeError(f"scipy_objective: the loss must be a scalar, got shape "
                             f"{fmt_shape(loss.shape)}")
        graph_vars = {v.name: v for v in free_vars(loss)}
        items = [wrt] if isinstance(wrt, (Expr, str)) else wrt
        expect_bool(hessp, "hessp", "scipy_objective")
        if isinstance(items, (list, tuple)) and not items:
            raise SymdiffError("scipy_objective: wrt is empty")
        self.wrt: list[Expr] = []
        for item in lookup_variables(items, graph_vars, "scipy_objective wrt"):
            if item.dtype.kind != "f":
                raise SymdiffError(f"scipy_objective: variable {item.name!r} has dtype "
                                   f"{item.dtype}; only float variables can be optimized")
            self.wrt.append(item)
        self.names = [v.name for v in self.wrt]
        if len(set(self.names)) != len(self.names):
            raise SymdiffError(f"scipy_objective: a variable is listed twice in {self.names}")

        data = {} if data is None else data
        check_roles("scipy_objective", graph_vars, {"wrt": dict.fromkeys(self.names),
                                                    "data": data})
        self.data = {k: check_input(graph_vars[k], v) for k, v in data.items()}

        self.shapes = [v.shape for v in self.wrt]
        self.sizes = [v.size for v in self.wrt]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).tolist()
        self.size = int(self.offsets[-1])
        self.evaluations = 0

        self._value_and_grad = compile_grad(loss, self.wrt)
        self._hvp = None
        if hessp:
            self._hvp = self._compile_hvp(loss, graph_vars)
        self.hessp = self._hessp if hessp else None
        self._last_x = None
        self._last = None

    # -- graphs ---------------------------------------------------------------------------------
    def _compile_hvp(self, loss: Expr, graph_vars: dict) -> CompiledFunction:
        # one direction variable per wrt variable; "v'<name>" is a name no user variable can have
        directions = [_make_var(f"v'{w.name}", w.shape, w.dtype) for w in self.wrt]
        grads = grad(loss, self.wrt)
        inner = None
        for g, v in zip(grads, directions):
            term = ops.sum(g * v)
            inner = term if inner is None else inner + term
        hv = grad(inner, self.wrt)
        data_vars = [graph_vars[k] for k in self.data]
        self._directions = directions
        return CompiledFunction(hv, [*self.wrt, *directions, *data_vars])

    # -- packing --------------------------------------------------------------------------------
    def pack(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """The flat float64 vector of ``params`` (a dict holding every ``wrt`` name)."""
        if not isinstance(params, Mapping):
            raise SymdiffError(f"pack: expected a dict name -> array, got "
                               f"{type(params).__name__}")
        missing = [k for k in self.names if k not in params]
        if missing:
            raise InputError(f"pack: missing {missing} (expected {self.names})")
        parts = []
        for v in self.wrt:
            arr = np.asarray(params[v.name], dtype=np.float64)
            if arr.shape != v.shape:
                raise InputError(f"pack: {v.name!r} has shape {fmt_shape(arr.shape)}, expected "
                                 f"{fmt_shape(v.shape)}")
            parts.append(arr.ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    def unpack(self, x) -> dict[str, np.ndarray]:
        """The dict name -> array (each variable's shape and dtype, new arrays) of a flat
        vector."""
        x = self._flat(x, "x")
        return {v.name: x[a:b].reshape(v.shape).astype(v.dtype, copy=True)
                for v, a, b in zip(self.wrt, self.offsets, self.offsets[1:])}

    def _flat(self, x, what: str) -> np.ndarray:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what}: cannot convert {type(x).__name__} to a float vector "
                             f"({exc})") from None
        if arr.ndim > 1 or arr.size != self.size:
            layout = ", ".join(f"{n} {fmt_shape(s)}" for n, s in zip(self.names, self.shapes))
            raise InputError(f"{what}: expected a flat vector of length {self.size} "
                             f"({layout}), got shape {fmt_shape(arr.shape)}")
        return arr.reshape(self.size)

    def _flatten(self, arrays) -> np.ndarray:
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])

    # -- the objective --------------------------------------------------------------------------
    def fun(self, x) -> tuple[float, np.ndarray]:
        """``(loss, flat gradient)`` at the flat vector ``x``: for ``minimize(..., jac=True)``."""
        x = self._flat(x, "fun")
        if self._last_x is not None and np.array_equal(x, self._last_x):
            value, g = self._last
            return value, g.copy()
        self.evaluations += 1
        value, grads = self._value_and_grad(**self.unpack(x), **self.data)
        result = (float(value), self._flatten(grads))
        self._last_x, self._last = x.copy(), result
        return result[0], result[1].copy()

    __call__ = fun

    def value(self, x) -> float:
        """The loss alone (shares ``fun``'s cache of the last point)."""
        return self.fun(x)[0]

    def jac(self, x) -> np.ndarray:
        """The flat gradient alone (shares ``fun``'s cache of the last point)."""
        return self.fun(x)[1]

    def _hessp(self, x, p) -> np.ndarray:
        """``H(x) p``: the Hessian-vector product of the loss w.r.t. all ``wrt`` variables."""
        x = self._flat(x, "hessp x")
        p = self._flat(p, "hessp p")
        self.evaluations += 1
        point = self.unpack(x)
        direction = [p[a:b].reshape(v.shape).astype(v.dtype)
                     for v, a, b in zip(self.wrt, self.offsets, self.offsets[1:])]
        args = [point[n] for n in self.names] + direction + list(self.data.values())
        out = self._hvp(*args)
        return self._flatten(out if isinstance(out, tuple) else (out,))

    def minimize(self, x0, method: str = "L-BFGS-B", **kwargs):
        """``scipy.optimize.minimize(self.fun, x0, jac=True, method=method, ...)``, adding
        ``hessp=self.hessp`` for the methods that use one (Newton-CG, trust-ncg, trust-krylov,
        trust-constr) when this objective has it. ``x0`` is a dict (packed) or a flat vector.
        Returns SciPy's ``OptimizeResult`` with ``.params``, the solution unpacked."""
        try:
            from scipy.optimize import minimize
        except ImportError:
            raise ImportError("ScipyObjective.minimize needs SciPy (pip install scipy)") from None
        x = self.pack(x0) if isinstance(x0, Mapping) else self._flat(x0, "x0")
        if (self.hessp is not None and str(method).lower() in _HESSP_METHODS
                and "hess" not in kwargs and "hessp" not in kwargs):
            kwargs["hessp"] = self.hessp
        result = minimize(self.fun, x, jac=True, method=method, **kwargs)
        result.params = self.unpack(result.x)
        return result

    def __repr__(self):
        parts = ", ".join(f"{n} {fmt_shape(s)}" for n, s in zip(self.names, self.shapes))
        return (f"<ScipyObjective over {self.size} entries ({parts})"
                f"{', with hessp' if self.hessp is not None else ''}>")


def scipy_objective(loss: Expr, wrt, data: Mapping | None = None,
                    hessp: bool = False) -> ScipyObjective:
    """A :class:`ScipyObjective` for ``scipy.optimize.minimize``: ``.fun(x) -> (value, grad)``
    (use ``jac=True``), ``.pack(dict) -> x``, ``.unpack(x) -> dict``, and with ``hessp=True``
    ``.hessp(x, p)`` (Hessian-vector products, reverse-over-reverse, never forming H).

    ``wrt``: the variables to optimize (Exprs or names, one or a list), packed in that order;
    ``data``: name -> array for every other variable of the loss, fixed during optimization.
    """
    return ScipyObjective(loss, wrt, data, hessp)
