"""Neural-net units: softmax and log_softmax over an axis (both computed with the max
subtracted, so logits of +-1e3 neither overflow nor lose the answer); convolution and pooling
in PyTorch's layouts, whose gradients are ops of their own (the transposed convolution, the
correlation of input and upstream, the scatter to the pooled maxima and its gather), so
second derivatives are graphs too.

``log softmax(z)_i = z_i - log sum_j exp(z_j)`` (Goodfellow 6.2.2.3).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, SymdiffError, fmt_shape
from ..graph import Expr, apply, as_expr
from .base import Op, check_axis_range, float_dtype, int_param, normalize_single_axis
from .elementwise import exp
from .lowering import Call
from .reduce import sum as reduce_sum


# softmax and log_softmax along the last axis of a matrix, for Numba (lower/numba.py)
_NUMBA_LOG_SOFTMAX = """\
def k_log_softmax(x):
    out = np.empty(x.shape, dtype=x.dtype)
    for i in range(x.shape[0]):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            if x[i, j] > m or x[i, j] != x[i, j]:
                m = x[i, j]
        s = 0.0
        for j in range(x.shape[1]):
            s += np.exp(x[i, j] - m)
        c = m + np.log(s)
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] - c
    return out
"""
_NUMBA_SOFTMAX = """\
def k_softmax(x):
    out = np.empty(x.shape, dtype=x.dtype)
    for i in range(x.shape[0]):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            if x[i, j] > m or x[i, j] != x[i, j]:
                m = x[i, j]
        s = 0.0
        for j in range(x.shape[1]):
            out[i, j] = np.exp(x[i, j] - m)
            s += out[i, j]
        for j in range(x.shape[1]):
            out[i, j] = out[i, j] / s
    return out
"""


class Softmax(Op):
    """``s = exp(x) / sum(exp(x))`` along ``axis``; gradient ``s * (g - sum(g * s))``."""

    numba_rows = _NUMBA_SOFTMAX

    name = "softmax"

    def stable_log(self, node):
        # log(softmax(x, axis)) = log_softmax(x, axis)
        return log_softmax(node.inputs[0], axis=self.axis)
    sympy = staticmethod(lambda s, x: s.sp.S.One)  # softmax of one entry

    def __init__(self, axis=-1):
        super().__init__(axis=int_param(axis, self.name, "axis"))

    def infer(self, x):
        check_axis_range(self.axis, x.ndim, self.name, x.shape)
        if x.shape[self.axis] == 0:
            raise ShapeError(f"{self.name}: axis {self.axis} of shape {x.shape} is empty")
        return x.shape, float_dtype(x.dtype)

    def lower(self, x):
        return Call(self.name, (x,), (("axis", self.axis),))

    def bprop(self, inputs, out, g):
        # ds = s * (g - <g, s>) along the axis
        return [out * (g - reduce_sum(g * out, axis=self.axis, keepdims=True))]

    def batch(self, inputs, batched):
        return apply(type(self)(self.axis + 1), inputs)


class LogSoftmax(Softmax):
    """``x - logsumexp(x)`` along ``axis``; gradient ``g - softmax(x) * sum(g)`` with
    ``softmax(x) = exp(out)``."""

    numba_rows = _NUMBA_LOG_SOFTMAX

    name = "log_softmax"

    def stable_log(self, node):
        return None  # (not softmax's rule)
    sympy = staticmethod(lambda s, x: s.sp.S.Zero)

    def bprop(self, inputs, out, g):
        return [g - exp(out) * reduce_sum(g, axis=self.axis, keepdims=True)]


def softmax(x, axis=-1) -> Expr:
    """Softmax along ``axis`` (numerically stable)."""
    x = as_expr(x)
    return apply(Softmax(normalize_single_axis(axis, x.ndim, "softmax", x.shape)), (x,))


def log_softmax(x, axis=-1) -> Expr:
    """Log of the softmax along ``axis`` (numerically stable)."""
    x = as_expr(x)
    return apply(LogSoftmax(normalize_single_axis(axis, x.ndim, "log_softmax", x.shape)), (x,))


# ---------------------------------------------------------------------------------------------
# convolution and pooling (PyTorch layouts: x (N, C, *S), w (O, C, *K); cross-correlation, no
# bias). Kernels: ops/conv_kernels.py (a strided window view and one contraction each).
# ---------------------------------------------------------------------------------------------
def _tuple_param(value, d: int, opname: str, what: str, low: int) -> tuple:
    """An int or a sequence of ``d`` ints, each at least ``low``, as a tuple of ``d`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value,) * d
    if not isinstance(value, (tuple, list)) or len(value) != d:
        raise SymdiffError(f"{opname}: {what} must be an int or {d} ints, got {value!r}")
    out = tuple(int_param(v, opname, what) for v in value)
    if any(v < low for v in out):
        raise SymdiffError(f"{opname}: {what} must be at least {low}, got {value!r}")
    return out


def _out_size(size, kernel, stride, padding, dilation) -> tuple:
    return tuple((n + 2 * p - dl * (k - 1) - 1) // s + 1
                 for n, k, s, p, dl in zip(size, kernel, stride, padding, dilation))


class _Window(Op):
    """Shared by the convolution and pooling ops: tuple params of the spatial rank."""

    spatial = 2

    def _check_rank(self, x: Expr, what: str, layout: str):
        if x.ndim != 2 + self.spatial:
            raise ShapeError(f"{self.name}: {what} must be {layout}, got shape "
                             f"{fmt_shape(x.shape)}")


class _Convolution(_Window):
    """Shared by conv and its two gradient ops: params ``stride``, ``padding``, ``dilation``
    (plus the size a gradient op produces), and the product rule of a bilinear op,
    ``d op(a, b) = op(da, b) + op(a, db)``."""

    def _init_params(self, d: int, **sizes):
        """Set the tuple params of spatial rank ``d``: ``sizes`` (at least 1 each) first, then
        stride, padding and dilation."""
        stride, padding, dilation = (sizes.pop(k) for k in ("stride", "padding", "dilation"))
        params = {k: _tuple_param(v, d, self.name, k, 1) for k, v in sizes.items()}
        Op.__init__(self, **params,
                    stride=_tuple_param(stride, d, self.name, "stride", 1),
                    padding=_tuple_param(padding, d, self.name, "padding", 0),
                    dilation=_tuple_param(dilation, d, self.name, "dilation", 1))

    def _sized(self, what: str, size):
        """The spatial rank a gradient op's output ``size`` (1 or 2 ints) gives it."""
        if not isinstance(size, (tuple, list)) or len(size) not in (1, 2):
            raise SymdiffError(f"{self.name}: {what} must be 1 or 2 ints, got {size!r}")
        object.__setattr__(self, "spatial", len(size))  # derived from a param (ops are immutable)
        return len(size)

    def jvp(self, inputs, out, tangents):
        (a, b), (ta, tb) = inputs, tangents
        left = None if ta is None else apply(self, (ta, b))
        right = None if tb is None else apply(self, (a, tb))
        return right if left is None else left if right is None else left + right


class Conv2d(_Convolution):
    """2-D cross-correlation ``out[n, o, p] = sum_{c, k} x_pad[n, c, p s + k dil] w[o, c, k]``
    (PyTorch's ``conv2d`` without bias). Bilinear: ``dx = conv_input_grad(g, w)`` (the
    transposed convolution), ``dw = conv_weight_grad(x, g)`` (the correlation of ``x`` with
    ``g``); the jvp is ``conv(tx, w) + conv(x, tw)``."""

    name = "conv2d"

    def __init__(self, stride=1, padding=0, dilation=1):
        self._init_params(self.spatial, stride=stride, padding=padding, dilation=dilation)

    def infer(self, x, w):
        if x.ndim != 2 + self.spatial or w.ndim != 2 + self.spatial:
            layouts = ("(N, C, L)", "(O, C, K)") if self.spatial == 1 else (
                "(N, C, H, W)", "(O, C, KH, KW)")
            raise ShapeError(f"{self.name}: x must be {layouts[0]} and w {layouts[1]}, got "
                             f"x {fmt_shape(x.shape)} and w {fmt_shape(w.shape)}")
        if x.shape[1] != w.shape[1]:
            raise ShapeError(f"{self.name}: x {fmt_shape(x.shape)} has {x.shape[1]} channels, "
                             f"w {fmt_shape(w.shape)} expects {w.shape[1]}")
        out = _out_size(x.shape[2:], w.shape[2:], self.stride, self.padding, self.dilation)
        if any(n < 1 for n in out):
            raise ShapeError(f"{self.name}: kernel {fmt_shape(w.shape)} (dilation "
                             f"{self.dilation}) is larger than the padded input "
                             f"{fmt_shape(x.shape)}")
        return (x.shape[0], w.shape[0]) + out, np.result_type(x.dtype, w.dtype)

    def lower(self, x, w):
        return Call("conv", (x, w), self.params)

    def bprop(self, inputs, out, g):
        x, w = inputs
        return [conv_input_grad(g, w, x.shape[2:], self.stride, self.padding, self.dilation),
                conv_weight_grad(x, g, w.shape[2:], self.stride, self.padding, self.dilation)]


class Conv1d(Conv2d):
    """1-D cross-correlation on ``x (N, C, L)``, ``w (O, C, K)``; the rules of conv2d."""

    name, spatial = "conv1d", 1


def _conv_node(x: Expr, w: Expr, stride, padding, dilation) -> Expr:
    cls = Conv1d if x.ndim == 3 else Conv2d
    return apply(cls(stride, padding, dilation), (x, w))


class ConvInputGrad(_Convolution):
    """The transposed convolution ``dx[n, c, h] = sum g[n, o, p] w[o, c, k]`` over
    ``p s + k dil - pad = h``: the gradient of a convolution w.r.t. its input, of spatial size
    ``input_size``. Bilinear in ``(g, w)``: ``<conv_input_grad(g, w), h> = <g, conv(h, w)>``,
    so its gradients are ``conv(h, w)`` for ``g`` and ``conv_weight_grad(h, g)`` for ``w``."""

    name = "conv_input_grad"
    callable_by_name = False

    def __init__(self, input_size, stride=1, padding=0, dilation=1):
        self._init_params(self._sized("input_size", input_size), input_size=input_size,
                          stride=stride, padding=padding, dilation=dilation)

    def infer(self, g, w):
        self._check_rank(g, "g", f"{2 + self.spatial}-D")
        self._check_rank(w, "w", f"{2 + self.spatial}-D")
        want = _out_size(self.input_size, w.shape[2:], self.stride, self.padding, self.dilation)
        if g.shape[1] != w.shape[0] or g.shape[2:] != want:
            raise ShapeError(f"{self.name}: upstream {fmt_shape(g.shape)} does not fit kernel "
                             f"{fmt_shape(w.shape)} and input size {self.input_size}")
        return (g.shape[0], w.shape[1]) + self.input_size, np.result_type(g.dtype, w.dtype)

    def lower(self, g, w):
        return Call("conv_input_grad", (g, w), self.params)

    def bprop(self, inputs, out, h):
        g, w = inputs
        return [_conv_node(h, w, self.stride, self.padding, self.dilation),
                conv_weight_grad(h, g, w.shape[2:], self.stride, self.padding, self.dilation)]


class ConvWeightGrad(_Convolution):
    """The correlation of ``x`` with ``g``, ``dw[o, c, k] = sum_{n, p} g[n, o, p]
    x_pad[n, c, p s + k dil]``: the gradient of a convolution w.r.t. its kernel (of spatial
    size ``kernel_size``). Bilinear: ``<conv_weight_grad(x, g), h> = <g, conv(x, h)>``, so its
    gradients are ``conv_input_grad(g, h)`` for ``x`` and ``conv(x, h)`` for ``g``."""

    name = "conv_weight_grad"
    callable_by_name = False

    def __init__(self, kernel_size, stride=1, padding=0, dilation=1):
        self._init_params(self._sized("kernel_size", kernel_size), kernel_size=kernel_size,
                          stride=stride, padding=padding, dilation=dilation)

    def infer(self, x, g):
        self._check_rank(x, "x", f"{2 + self.spatial}-D")
        self._check_rank(g, "g", f"{2 + self.spatial}-D")
        want = _out_size(x.shape[2:], self.kernel_size, self.stride, self.padding,
                         self.dilation)
        if g.shape[0] != x.shape[0] or g.shape[2:] != want:
            raise ShapeError(f"{self.name}: upstream {fmt_shape(g.shape)} does not fit input "
                             f"{fmt_shape(x.shape)} and kernel size {self.kernel_size}")
        return (g.shape[1], x.shape[1]) + self.kernel_size, np.result_type(x.dtype, g.dtype)

    def lower(self, x, g):
        return Call("conv_weight_grad", (x, g), self.params)

    def bprop(self, inputs, out, h):
        x, g = inputs
        return [conv_input_grad(g, h, x.shape[2:], self.stride, self.padding, self.dilation),
                _conv_node(x, h, self.stride, self.padding, self.dilation)]


def conv_input_grad(g, w, input_size, stride=1, padding=0, dilation=1) -> Expr:
    """The transposed convolution of ``g`` with ``w`` to spatial size ``input_size``."""
    return apply(ConvInputGrad(tuple(input_size), stride, padding, dilation),
                 (as_expr(g), as_expr(w)))


def conv_weight_grad(x, g, kernel_size, stride=1, padding=0, dilation=1) -> Expr:
    """The correlation of ``x`` with ``g`` (a kernel of spatial size ``kernel_size``)."""
    return apply(ConvWeightGrad(tuple(kernel_size), stride, padding, dilation),
                 (as_expr(x), as_expr(g)))


def conv2d(x, w, stride=1, padding=0, dilation=1) -> Expr:
    """2-D cross-correlation as PyTorch's ``conv2d`` (no bias): ``x (N, C, H, W)``,
    ``w (O, C, KH, KW)``, each of ``stride``, ``padding``, ``dilation`` an int or a pair.
    Output ``(N, O, OH, OW)`` with ``OH = (H + 2 pad - dil (KH - 1) - 1) // stride + 1``.

    >>> import symdiff as sd
    >>> sd.conv2d(sd.var("x", (2, 3, 8, 8)), sd.var("w", (4, 3, 3, 3)), padding=1).shape
    (2, 4, 8, 8)
    """
    return apply(Conv2d(stride, padding, dilation), (as_expr(x), as_expr(w)))


def conv1d(x, w, stride=1, padding=0, dilation=1) -> Expr:
    """1-D cross-correlation as PyTorch's ``conv1d`` (no bias): ``x (N, C, L)``,
    ``w (O, C, K)``.

    >>> import symdiff as sd
    >>> sd.conv1d(sd.var("x", (2, 3, 10)), sd.var("w", (4, 3, 3)), stride=2).shape
    (2, 4, 4)
    """
    return apply(Conv1d(stride, padding, dilation), (as_expr(x), as_expr(w)))


class _Pool(_Window):
    """A pooling op on ``(N, C, H, W)``: ``kernel_size`` and ``stride`` (default: the kernel)
    each an int or a pair; no padding."""

    def __init__(self, kernel_size, stride=None):
        kernel = _tuple_param(kernel_size, 2, self.name, "kernel_size", 1)
        stride = kernel if stride is None else _tuple_param(stride, 2, self.name, "stride", 1)
        super().__init__(kernel_size=kernel, stride=stride)

    def _pooled(self, x: Expr) -> tuple:
        self._check_rank(x, "x", "(N, C, H, W)")
        out = _out_size(x.shape[2:], self.kernel_size, self.stride, (0, 0), (1, 1))
        if any(n < 1 for n in out):
            raise ShapeError(f"{self.name}: kernel {self.kernel_size} is larger than the input "
                             f"{fmt_shape(x.shape)}")
        return x.shape[:2] + out


class MaxPool2d(_Pool):
    """The maximum of each window. Gradient: ``g`` scattered to each window's maximum (ties:
    the first in row-major window order, as PyTorch), ``max_pool2d_scatter(x, g)``; jvp: the
    tangent read at those positions, ``max_pool2d_gather(x, t)``."""

    name = "max_pool2d"

    def infer(self, x):
        return self._pooled(x), x.dtype

    def lower(self, x):
        return Call("max_pool", (x,), self.params)

    def bprop(self, inputs, out, g):
        return [apply(MaxPoolScatter(self.kernel_size, self.stride), (inputs[0], g))]

    def jvp(self, inputs, out, tangents):
        return apply(MaxPoolGather(self.kernel_size, self.stride), (inputs[0], tangents[0]))


class MaxPoolScatter(_Pool):
    """``g`` (pooled shape) added at the position of each window's first maximum of ``x``: the
    gradient of max_pool2d. Linear in ``g`` with the positions fixed by ``x`` (piecewise
    constant in ``x``, so no gradient flows to ``x``); its transpose is the gather."""

    name = "max_pool2d_scatter"
    callable_by_name = False

    def infer(self, x, g):
        if g.shape != self._pooled(x):
            raise ShapeError(f"{self.name}: upstream {fmt_shape(g.shape)} does not fit input "
                             f"{fmt_shape(x.shape)} pooled to {fmt_shape(self._pooled(x))}")
        return x.shape, np.result_type(x.dtype, g.dtype)

    def lower(self, x, g):
        return Call("max_pool_scatter", (x, g), self.params)

    def bprop(self, inputs, out, h):
        return [None, apply(MaxPoolGather(self.kernel_size, self.stride), (inputs[0], h))]

    def jvp(self, inputs, out, tangents):
        return None if tangents[1] is None else apply(self, (inputs[0], tangents[1]))


class MaxPoolGather(_Pool):
    """``h`` (input shape) read at each window's first maximum of ``x``: the transpose of
    max_pool2d_scatter (its gradient for ``h`` is that scatter; none flows to ``x``)."""

    name = "max_pool2d_gather"
    callable_by_name = False

    def infer(self, x, h):
        if h.shape != x.shape:
            raise ShapeError(f"{self.name}: values {fmt_shape(h.shape)} and input "
                             f"{fmt_shape(x.shape)} differ")
        return self._pooled(x), np.result_type(x.dtype, h.dtype)

    def lower(self, x, h):
        return Call("max_pool_gather", (x, h), self.params)

    def bprop(self, inputs, out, g):
        return [None, apply(MaxPoolScatter(self.kernel_size, self.stride), (inputs[0], g))]

    def jvp(self, inputs, out, tangents):
        return None if tangents[1] is None else apply(self, (inputs[0], tangents[1]))


class AvgPool2d(_Pool):
    """The mean of each window (linear): gradient ``avg_pool2d_grad(g)``, each ``g / (KH KW)``
    spread over its window; jvp ``avg_pool2d(t)``."""

    name = "avg_pool2d"

    def infer(self, x):
        return self._pooled(x), float_dtype(x.dtype)

    def lower(self, x):
        return Call("avg_pool", (x,), self.params)

    def bprop(self, inputs, out, g):
        return [apply(AvgPoolGrad(inputs[0].shape[2:], self.kernel_size, self.stride), (g,))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


class AvgPoolGrad(_Window):
    """The transpose of avg_pool2d to spatial size ``input_size``; its own gradient is
    avg_pool2d."""

    name = "avg_pool2d_grad"
    callable_by_name = False

    def __init__(self, input_size, kernel_size, stride):
        super().__init__(input_size=_tuple_param(input_size, 2, self.name, "input_size", 1),
                         kernel_size=_tuple_param(kernel_size, 2, self.name, "kernel_size", 1),
                         stride=_tuple_param(stride, 2, self.name, "stride", 1))

    def infer(self, g):
        self._check_rank(g, "g", "(N, C, OH, OW)")
        want = _out_size(self.input_size, self.kernel_size, self.stride, (0, 0), (1, 1))
        if g.shape[2:] != want:
            raise ShapeError(f"{self.name}: upstream {fmt_shape(g.shape)} does not fit input "
                             f"size {self.input_size} pooled by {self.kernel_size}")
        return g.shape[:2] + self.input_size, float_dtype(g.dtype)

    def lower(self, g):
        return Call("avg_pool_grad", (g,), self.params)

    def bprop(self, inputs, out, h):
        return [apply(AvgPool2d(self.kernel_size, self.stride), (h,))]

    def jvp(self, inputs, out, tangents):
        return apply(self, (tangents[0],))


def max_pool2d(x, kernel_size, stride=None) -> Expr:
    """Max pooling on ``(N, C, H, W)`` as PyTorch's (no padding; ``stride`` defaults to the
    kernel). The gradient goes to each window's first maximum.

    >>> import symdiff as sd
    >>> sd.max_pool2d(sd.var("x", (2, 3, 8, 8)), 2).shape
    (2, 3, 4, 4)
    """
    return apply(MaxPool2d(kernel_size, stride), (as_expr(x),))


def avg_pool2d(x, kernel_size, stride=None) -> Expr:
    """Average pooling on ``(N, C, H, W)`` as PyTorch's (no padding; ``stride`` defaults to
    the kernel).

    >>> import symdiff as sd
    >>> sd.avg_pool2d(sd.var("x", (2, 3, 8, 8)), 3, stride=2).shape
    (2, 3, 3, 3)
    """
    return apply(AvgPool2d(kernel_size, stride), (as_expr(x),))
