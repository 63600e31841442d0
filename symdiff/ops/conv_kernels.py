"""NumPy kernels of the convolution and pooling ops (see :mod:`.nn`): every one is a strided
window view of its input (``sliding_window_view``, no copy) followed by one contraction
(``np.tensordot``: the im2col copy and one BLAS matrix product) or one reduction, never a
Python loop over output positions. Layouts are PyTorch's: ``x (N, C, *S)``,
``w (O, C, *K)``, output ``(N, O, *P)`` with ``P = (S + 2 pad - dil (K - 1) - 1) // stride + 1``.

The transposed convolution (the gradient w.r.t. ``x``) is the columns ``g W`` of one
contraction added back into the padded input (col2im), one strided slice-add per kernel offset.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kernel, stride, dilation):
    """View ``(N, C, *P, *K)`` of ``x (N, C, *S)``: entry ``[n, c, p.., k..]`` is
    ``x[n, c, p * stride + k * dilation ..]``."""
    d = len(kernel)
    extents = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))
    view = sliding_window_view(x, extents, axis=tuple(range(2, 2 + d)))
    index = ((slice(None),) * 2 + tuple(slice(None, None, s) for s in stride)
             + tuple(slice(None, None, dl) for dl in dilation))
    return view[index]


def _pad(x, padding):
    """``x`` with each spatial axis padded by ``padding`` zeros on both sides."""
    if not any(padding):
        return x
    return np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])


def conv(x, w, stride, padding, dilation):
    """Cross-correlation ``out[n, o, p] = sum_{c, k} x_pad[n, c, p s + k dil] w[o, c, k]``."""
    x, w = np.asarray(x), np.asarray(w)
    d = len(stride)
    win = _windows(_pad(x, padding), w.shape[2:], stride, dilation)
    spatial_k = list(range(2 + d, 2 + 2 * d))
    out = np.tensordot(win, w, axes=([1] + spatial_k, [1] + list(range(2, 2 + d))))
    return np.ascontiguousarray(np.moveaxis(out, -1, 1))


def conv_input_grad(g, w, input_size, stride, padding, dilation):
    """The transposed convolution: ``x_grad[n, c, h] = sum g[n, o, p] w[o, c, k]`` over
    ``p s + k dil - pad = h``. The columns ``g W`` come from one contraction; col2im adds them
    back with one strided slice-add per kernel offset (not per position), then the padding is
    cut off."""
    g, w = np.asarray(g), np.asarray(w)
    d = len(stride)
    cols = np.tensordot(g, w, axes=([1], [0]))          # (N, *P, C, *K)
    padded = tuple(n + 2 * p for n, p in zip(input_size, padding))
    out = np.zeros(g.shape[:1] + w.shape[1:2] + padded, dtype=cols.dtype)
    for offset in np.ndindex(*w.shape[2:]):
        window = tuple(slice(k * dl, k * dl + s * (n - 1) + 1, s)
                       for k, dl, s, n in zip(offset, dilation, stride, g.shape[2:]))
        part = cols[(slice(None),) * (2 + d) + offset]   # (N, *P, C)
        out[(slice(None),) * 2 + window] += np.moveaxis(part, -1, 1)
    return out[(slice(None),) * 2 + tuple(slice(p, p + n) for p, n in zip(padding, input_size))]


def conv_weight_grad(x, g, kernel_size, stride, padding, dilation):
    """``w_grad[o, c, k] = sum_{n, p} g[n, o, p] x_pad[n, c, p s + k dil]``: the correlation
    of ``x`` with ``g``, one contraction over the windows of ``x``."""
    x, g = np.asarray(x), np.asarray(g)
    d = len(stride)
    win = _windows(_pad(x, padding), kernel_size, stride, dilation)
    win = win[(slice(None),) * 2 + tuple(slice(0, n) for n in g.shape[2:])]
    spatial = list(range(2, 2 + d))
    return np.tensordot(g, win, axes=([0] + spatial, [0] + spatial))


def max_pool(x, kernel_size, stride):
    """The maximum of each window."""
    win = _windows(np.asarray(x), kernel_size, stride, (1,) * len(stride))
    return win.max(axis=tuple(range(-len(stride), 0)))


def avg_pool(x, kernel_size, stride):
    """The mean of each window."""
    win = _windows(np.asarray(x), kernel_size, stride, (1,) * len(stride))
    return win.mean(axis=tuple(range(-len(stride), 0)))


def _argmax_positions(x, kernel_size, stride):
    """For each window, the flat index into ``x`` of its first maximum (row-major window
    order, as PyTorch)."""
    x = np.asarray(x)
    d = len(stride)
    win = _windows(x, kernel_size, stride, (1,) * d)
    pooled = win.shape[2:2 + d]
    first = win.reshape(win.shape[:2 + d] + (-1,)).argmax(axis=-1)
    offsets = np.unravel_index(first, kernel_size)
    coords = [np.arange(n).reshape((-1,) + (1,) * (d - 1 - i)) * s + off
              for i, (n, s, off) in enumerate(zip(pooled, stride, offsets))]
    plane = np.ravel_multi_index(coords, x.shape[2:])
    planes = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * d)
    return plane + planes * int(np.prod(x.shape[2:]))


def max_pool_scatter(x, g, kernel_size, stride):
    """``g`` added at each window's maximum of ``x`` (the gradient of max_pool)."""
    x, g = np.asarray(x), np.asarray(g)
    positions = _argmax_positions(x, kernel_size, stride)
    out = np.bincount(positions.ravel(), weights=g.ravel(), minlength=x.size)
    return out.reshape(x.shape).astype(np.result_type(x.dtype, g.dtype), copy=False)


def max_pool_gather(x, h, kernel_size, stride):
    """``h`` read at each window's maximum of ``x`` (the transpose of the scatter)."""
    positions = _argmax_positions(x, kernel_size, stride)
    h = np.asarray(h)
    return h.reshape(-1)[positions].astype(np.result_type(np.asarray(x).dtype, h.dtype),
                                           copy=False)


def avg_pool_grad(g, input_size, kernel_size, stride):
    """The transposed window mean: each output's ``g / prod(K)`` spread over its window (one
    strided slice-add per kernel offset)."""
    g = np.asarray(g)
    count = int(np.prod(kernel_size))
    out = np.zeros(g.shape[:2] + tuple(input_size), dtype=np.result_type(g.dtype, np.float64)
                   if g.dtype.kind != "f" else g.dtype)
    share = g / count
    for offset in np.ndindex(*kernel_size):
        out[(slice(None),) * 2 + tuple(slice(k, k + s * (n - 1) + 1, s) for k, s, n in
                                       zip(offset, stride, g.shape[2:]))] += share
    return out
