"""A training loop over mini-batches with a compiled gradient: :func:`fit` and its
:class:`History`.

::

    model = sd.models.mlp_loss(n=64, d=20, hidden=32, classes=3)
    params = sd.init.init_params(model.params, rng=0, method="he_normal")
    hist = sd.fit(model.loss, params, {"X": X, "Y": Y}, sd.optim.Adam(1e-2),
                  epochs=20, batch_size=64)
    params = hist.params            # the trained values; hist.epoch_loss for plotting

**Batches.** The loss graph is written for one batch: its data variables have a leading batch
axis (``X`` of shape ``(B, d)``). The arrays given in ``data`` have the same shapes except the
leading axis, the number of examples ``N``, shared by all of them. Each epoch visits the
examples in a (seeded) random order, ``batch_size`` rows at a time. When a batch has a
different number of rows than the graph's ``B`` (e.g. the loss was written for the whole data
set and ``batch_size`` is smaller, or the last batch of an epoch is short), the loss is rebuilt
for that batch shape by substituting the data variables (:func:`symdiff.graph.substitute`, which
re-infers every shape) and compiled once more; at most two shapes are compiled per call. A graph
that hard-codes the batch size (a reshape to a fixed shape, a constant with ``B`` rows) cannot
be rebuilt: then pass ``batch_size=B`` with ``drop_last=True``, which drops the incomplete last
batch of every epoch (with shuffling, different examples each epoch).

Use a *mean* over the batch in the loss so that its scale, and the learning rate that suits it,
do not depend on the batch size.

**Stopping.** Whatever ends training, the work done is kept: ``History.params`` always holds the
parameters after the last completed step. Ctrl-C (KeyboardInterrupt) stops training gracefully,
as in Keras and PyTorch Lightning: ``fit`` returns the history with ``interrupted=True``
(``catch_interrupt=False`` re-raises instead). A non-finite loss or gradient raises
:class:`TrainingError`, which carries the history (``error.history``) and the last good
parameters (``error.params``). The caller's arrays are never modified: the parameters are
copied once and every optimizer step returns new arrays.
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..errors import InputError, ShapeError, SymdiffError, expect_bool, fmt_shape
from ..graph import Expr, free_vars, substitute, var
from ..compiler import compile_grad
from ..inputs import check_roles, numeric_array

__all__ = ["fit", "History", "TrainingError"]


class TrainingError(SymdiffError):
    """Training stopped on a non-finite loss or gradient.

    ``epoch`` and ``batch`` are 1-based (as in the message); ``params`` holds the parameters
    before the failing batch's update and ``history`` the record up to it.
    """

    def __init__(self, message: str, epoch: int | None = None, batch: int | None = None,
                 params: dict | None = None, history: "History | None" = None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.params = params
        self.history = history


@dataclass
class History:
    """What :func:`fit` records.

    - ``epoch_loss``: per epoch, the mean of that epoch's batch losses weighted by batch rows
      (the running loss during the epoch, as the parameters changed, not a separate pass)
    - ``batch_loss``: every batch's loss, all epochs in order
    - ``lr``: the optimizer's learning rate in each epoch (None if it has no ``lr``)
    - ``batches_per_epoch``, ``batch_sizes`` (the rows of each batch within an epoch)
    - ``params``: the parameters after the last update (a new dict; the caller's is untouched)
    - ``stopped_early``: True when a callback asked to stop
    - ``interrupted``: True when Ctrl-C (KeyboardInterrupt) stopped training; ``params`` then
      holds the parameters after the last completed step, and ``batch_loss`` one loss per
      completed step (``epoch_loss`` only whole epochs)
    """

    epoch_loss: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    lr: list = field(default_factory=list)
    batches_per_epoch: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.epoch_loss)

    def __repr__(self):
        last = f", last epoch loss {self.epoch_loss[-1]:.6g}" if self.epoch_loss else ""
        return (f"<History: {self.epochs} epoch(s), {len(self.batch_loss)} batch(es)"
                f"{last}>")

    def plot(self, ax=None, logy: bool = True):
        """Batch and epoch losses against epochs, on a matplotlib axes (created if None);
        returns the axes. Needs matplotlib (optional dependency)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib (pip install matplotlib)") from None
        if ax is None:
            _, ax = plt.subplots()
        nb = max(self.batches_per_epoch, 1)
        xs = [(i + 1) / nb for i in range(len(self.batch_loss))]
        ax.plot(xs, self.batch_loss, lw=0.8, alpha=0.5, label="batch loss")
        ax.plot(range(1, self.epochs + 1), self.epoch_loss, marker="o", label="epoch loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if logy and self.batch_loss and min(self.batch_loss) > 0:
            ax.set_yscale("log")
        ax.legend()
        return ax


def _check_count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SymdiffError(f"fit: {what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _as_input(v: Expr, value, what: str, batched: bool) -> np.ndarray:
    """``value`` as an array of ``v``'s dtype; shape checked (all but the leading axis if
    ``batched``)."""
    arr = numeric_array(value, f"fit: {what} {v.name!r}", "a numeric array")
    if batched:
        if v.ndim == 0:
            raise InputError(f"fit: data {v.name!r} is a scalar in the loss graph, so it has no "
                             f"batch axis; pass it in fixed= instead")
        if arr.ndim != v.ndim or arr.shape[1:] != v.shape[1:]:
            dims = ["N", *map(str, v.shape[1:])]
            want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
            raise InputError(f"fit: data {v.name!r} has shape {fmt_shape(arr.shape)}, but the "
                             f"loss graph's {v.name!r} is {fmt_shape(v.shape)}: expected "
                             f"{want} with N examples along the leading axis")
    elif arr.shape != v.shape:
        raise InputError(f"fit: {what} {v.name!r} has shape {fmt_shape(arr.shape)}, expected "
                         f"{fmt_shape(v.shape)}")
    if arr.dtype != v.dtype:
        if not np.can_cast(arr.dtype, v.dtype, "same_kind"):
            raise InputError(f"fit: {what} {v.name!r}: expected {v.dtype}, got {arr.dtype}")
        arr = arr.astype(v.dtype)
    elif what == "parameter":
        arr = arr.copy()
    return arr


def _split_inputs(loss: Expr, params: Mapping, data: Mapping, fixed: Mapping):
    graph_vars = {v.name: v for v in free_vars(loss)}
    check_roles("fit", graph_vars, {"params": params, "data": data, "fixed": fixed})
    if not params:
        raise InputError("fit: no parameters to train (params is empty)")
    return graph_vars


def _batch_plan(n: int, batch_size, drop_last: bool) -> list[int]:
    if batch_size is None:
        return [n]
    b = _check_count(batch_size, "batch_size", 1)
    if b > n:
        raise SymdiffError(f"fit: batch_size {b} is larger than the number of examples {n}")
    sizes = [b] * (n // b)
    if n % b and not drop_last:
        sizes.append(n % b)
    return sizes


def _rebuild(loss: Expr, data_vars: list[Expr], rows: int) -> Expr:
    """The loss with every data variable's leading axis set to ``rows``."""
    mapping = {v: var(v.name, (rows,) + v.shape[1:], v.dtype) for v in data_vars}
    try:
        return substitute([loss], mapping)[0]
    except ShapeError as exc:
        graph_rows = data_vars[0].shape[0]
        raise ShapeError(f"fit: the loss graph was built for batches of {graph_rows} rows and "
                         f"cannot be rebuilt for {rows} rows ({exc}); pass "
                         f"batch_size={graph_rows} with drop_last=True, or build the loss "
                         f"without a fixed batch size") from None


def fit(loss: Expr, params: Mapping[str, np.ndarray], data: Mapping[str, np.ndarray],
        optimizer, epochs: int = 10, batch_size: int | None = None, shuffle: bool = True,
        seed: int = 0, progress: bool = False, callback: Callable | None = None,
        drop_last: bool = False, fixed: Mapping[str, np.ndarray] | None = None,
        catch_interrupt: bool = True) -> History:
    """Train the variables named in ``params`` to minimize the scalar ``loss``.

    - ``params``: name -> initial array for each variable to train (found by name among
      ``sd.free_vars(loss)``); copied, never modified.
    - ``data``: name -> array for each batched input, all sharing the leading axis of ``N``
      examples (see the module docstring for how batches meet the graph's shapes).
    - ``fixed``: name -> array for inputs that are the same for every batch (e.g. a
      regularization weight declared as a variable).
    - ``optimizer``: anything with ``step(params, grads) -> params`` (:mod:`symdiff.optim`);
      its ``set_epoch(k)`` (if any) is called at the start of epoch ``k`` (from 0) so learning
      rate schedules advance. Its state carries over between calls of ``fit``.
    - ``epochs``, ``batch_size`` (None: the whole data set in one batch), ``drop_last`` (drop the
      short last batch of each epoch instead of compiling the loss for its size).
    - ``shuffle``/``seed``: each epoch visits the examples in a permutation drawn from
      ``numpy.random.default_rng(seed)``; the same seed gives the same run, bit for bit. (A
      single full batch is not permuted.)
    - ``progress``: a tqdm bar (loss in the postfix) when tqdm is installed, else one line per
      epoch on stderr.
    - ``callback(history)``: called after every epoch, with ``history.params`` the current
      parameters; returning True stops training (``history.stopped_early``).
    - ``catch_interrupt``: on Ctrl-C (KeyboardInterrupt) stop, warn, and return the history so
      far with ``interrupted=True`` and ``params`` after the last completed step (default);
      False re-raises the KeyboardInterrupt.

    Compiles ``compile_grad(loss, [params' variables])`` once per distinct batch shape (one or
    two). Raises :class:`TrainingError` naming the epoch and batch as soon as the loss or a
    gradient is not finite (nan or inf); the update of that batch is not applied, and
    ``error.history`` (with ``history.params``) holds everything up to the last good step.
    The arrays passed in are never modified.

    >>> import numpy as np, symdiff as sd
    >>> w, X, Y = sd.var("w"), sd.var("X", (4,)), sd.var("Y", (4,))
    >>> data = {"X": np.arange(4.0), "Y": 3 * np.arange(4.0)}
    >>> history = sd.fit(sd.mean((X * w - Y) ** 2), {"w": np.array(0.0)}, data,
    ...                  sd.optim.SGD(0.1), epochs=30)
    >>> round(float(history.params["w"]), 6)
    3.0
    """
    if not isinstance(loss, Expr):
        raise SymdiffError(f"fit: loss must be a symdiff expression, got {type(loss).__name__}")
    if loss.shape != ():
        raise ShapeError(f"fit: the loss must be a scalar, got shape {fmt_shape(loss.shape)}")
    if not callable(getattr(optimizer, "step", None)):
        raise SymdiffError(f"fit: optimizer must have a step(params, grads) method, got "
                           f"{optimizer!r}")
    epochs = _check_count(epochs, "epochs", 0)
    catch_interrupt = expect_bool(catch_interrupt, "catch_interrupt", "fit")
    if callback is not None and not callable(callback):
        raise SymdiffError(f"fit: callback must be callable, got {callback!r}")
    fixed = {} if fixed is None else fixed
    graph_vars = _split_inputs(loss, params, data, fixed)

    names = list(params)
    wrt = [graph_vars[k] for k in names]
    values = {k: _as_input(graph_vars[k], params[k], "parameter", False) for k in names}
    fixed_values = {k: _as_input(graph_vars[k], fixed[k], "fixed input", False) for k in fixed}
    data_vars = [graph_vars[k] for k in data]
    data_values = {k: _as_input(graph_vars[k], data[k], "data", True) for k in data}

    # the number of examples and the batch plan
    if data_values:
        counts = {k: a.shape[0] for k, a in data_values.items()}
        n = next(iter(counts.values()))
        if any(c != n for c in counts.values()):
            raise InputError(f"fit: the data arrays must share their leading (example) axis, "
                             f"got {counts}")
        graph_rows = {v.name: v.shape[0] for v in data_vars}
        if len(set(graph_rows.values())) > 1:
            raise ShapeError(f"fit: the loss graph's data variables disagree on the batch axis "
                             f"(leading sizes {graph_rows}); fit batches them together")
        if n == 0:
            raise InputError("fit: the data arrays hold no examples")
        sizes = _batch_plan(n, batch_size, drop_last)
        if not sizes:
            raise SymdiffError(f"fit: no complete batch of {batch_size} rows in {n} examples")
        base_rows = data_vars[0].shape[0]
    else:  # nothing batched: every step is the same full-graph step
        if batch_size is not None:
            raise SymdiffError("fit: batch_size given, but there is no data to batch")
        n, sizes, base_rows = 0, [0], 0

    functions, graphs = {}, {}
    for rows in sorted(set(sizes)):
        graph = loss if (not data_vars or rows == base_rows) else _rebuild(loss, data_vars, rows)
        graphs[rows] = graph
        functions[rows] = compile_grad(graph, wrt)  # parameters are never substituted

    history = History(batches_per_epoch=len(sizes), batch_sizes=list(sizes), params=values)
    rng = np.random.default_rng(seed)
    bar = _progress_bar(progress, epochs * len(sizes))
    total_batches = len(sizes)
    try:
        for epoch in range(epochs):
            if callable(getattr(optimizer, "set_epoch", None)):
                optimizer.set_epoch(epoch)
            lr = getattr(optimizer, "lr", None)
            history.lr.append(float(lr) if isinstance(lr, (int, float, np.number)) else None)
            # one full batch is not shuffled (a permutation would only copy the data)
            order = rng.permutation(n) if (shuffle and len(sizes) > 1) else None
            start = 0
            weighted = 0.0
            for b, rows in enumerate(sizes):
                if order is None:
                    batch = ({k: a for k, a in data_values.items()} if rows == n else
                             {k: a[start:start + rows] for k, a in data_values.items()})
                else:
                    idx = order[start:start + rows]
                    batch = {k: a[idx] for k, a in data_values.items()}
                start += rows
                value, grads = functions[rows](**values, **batch, **fixed_values)
                value = float(value)
                bad = [k for k, g in zip(names, grads) if not np.all(np.isfinite(g))]
                if bad or not math.isfinite(value):
                    where = (f"at epoch {epoch + 1} of {epochs}, batch {b + 1} of "
                             f"{total_batches}" + (f" ({rows} rows)" if data_values else ""))
                if not math.isfinite(value):
                    origin = _locate_non_finite(graphs[rows], wrt,
                                                {**values, **batch, **fixed_values})
                    raise TrainingError(
                        f"fit: the loss is {value} {where}{origin}; training stopped before "
                        f"this batch's update (the parameters before it are in error.params). "
                        f"Try a smaller learning rate, or look for log/sqrt/division of values "
                        f"that can reach 0 or below in the loss",
                        epoch + 1, b + 1, values, history)
                if bad:
                    origin = _locate_non_finite(graphs[rows], wrt,
                                                {**values, **batch, **fixed_values})
                    raise TrainingError(
                        f"fit: the gradient for {bad} is not finite {where} (the loss is "
                        f"{value:.6g}){origin}; training stopped before this batch's update "
                        f"(the parameters before it are in error.params)",
                        epoch + 1, b + 1, values, history)
                stepped = optimizer.step(values, dict(zip(names, grads)))
                if not isinstance(stepped, Mapping):
                    raise SymdiffError(f"fit: optimizer.step must return the new parameters "
                                       f"as a dict, got {type(stepped).__name__}")
                # the step is complete: its parameters and loss are recorded together
                values = history.params = stepped
                history.batch_loss.append(value)
                weighted += value * max(rows, 1)
                if bar is not None:
                    bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{value:.4g}",
                                    refresh=False)
                    bar.update(1)
            history.epoch_loss.append(weighted / max(sum(sizes), 1))
            history.params = values
            if progress and bar is None:
                lr_text = "" if history.lr[-1] is None else f"  lr {history.lr[-1]:.3g}"
                print(f"epoch {epoch + 1}/{epochs}  loss {history.epoch_loss[-1]:.6g}{lr_text}",
                      file=sys.stderr, flush=True)
            if callback is not None and callback(history):
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        if not catch_interrupt:
            raise
        history.interrupted = True
        warnings.warn(f"fit: interrupted after {len(history.batch_loss)} step(s) "
                      f"({history.epochs} complete epoch(s)); returning the history, with the "
                      f"parameters after the last completed step in history.params",
                      RuntimeWarning, stacklevel=2)
    finally:
        if bar is not None:
            bar.close()
    history.params = values
    return history


def _locate_non_finite(graph: Expr, wrt: list, inputs: dict) -> str:
    """``"; <where the first nan/inf appears>"`` by re-running the failing batch through a
    ``check_finite`` compilation, or ``""`` when that cannot tell (never raises)."""
    try:
        from ..errors import NonFiniteError
        checked = compile_grad(graph, wrt, check_finite=True)
        with np.errstate(all="ignore"):
            checked(**inputs)
    except NonFiniteError as exc:
        return f"; {exc}"
    except Exception:  # the diagnosis is a courtesy; the TrainingError is what matters
        return ""
    return ""


def _progress_bar(progress: bool, total: int):
    """A tqdm bar when asked for and tqdm is installed, else None (plain lines)."""
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="fit", unit="batch", leave=True)
