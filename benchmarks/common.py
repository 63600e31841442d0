"""Shared machinery of the benchmark harness: configuration, timing, result rows, optional peers.

Timing: every measured callable is warmed up, then calibrated so that one *batch* of calls takes
at least ``cfg.min_batch`` seconds; the per-call time of a batch is its ``time.perf_counter``
duration divided by its call count, and the figure reported is the median over ``cfg.repeats``
batches. When several implementations of one workload are compared, their batches are
interleaved round-robin (``measure_many``), so slow drifts of the machine hit all of them alike.
"""
from __future__ import annotations

import gc
import importlib
import math
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class Config:
    quick: bool = False
    repeats: int = 21          # timed batches per implementation (the median is reported)
    min_batch: float = 0.005   # seconds: a batch repeats the call until it lasts this long
    warmup: int = 2            # untimed calls before calibration
    sympy_timeout: float = 20.0  # seconds for sympy.diff + count_ops + lambdify at one depth
    peer_timeout: float = 180.0  # seconds for one peer's W4 compile (run in a child process)
    seed: int = 0

    @classmethod
    def make(cls, quick: bool) -> "Config":
        if quick:
            return cls(quick=True, repeats=3, min_batch=0.0005, warmup=1, sympy_timeout=3.0,
                       peer_timeout=60.0)
        return cls()


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the result table.

    ``time``: median seconds per call (or per build, for compile-time rows); ``ratio``: time over
    the reference row's time (``ref``); ``err``: max relative error of this implementation's
    outputs against the workload's reference values (None when not compared); ``status``: "ok",
    "not installed", "timeout", "skipped: ...", or "error: ...".
    """

    workload: str
    case: str
    impl: str
    time: float | None = None
    ratio: float | None = None
    ref: str | None = None
    err: float | None = None
    status: str = "ok"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"workload": self.workload, "case": self.case, "impl": self.impl,
                "time_s": self.time, "ratio": self.ratio, "ref": self.ref, "max_rel_err": self.err,
                "status": self.status, "extra": self.extra}


@dataclass
class Check:
    """A correctness comparison of one implementation with the reference."""

    workload: str
    case: str
    impl: str
    err: float
    tol: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.err) and self.err <= self.tol)

    def as_dict(self) -> dict:
        return {"workload": self.workload, "case": self.case, "impl": self.impl,
                "max_rel_err": self.err, "tol": self.tol, "ok": self.ok}


class Results:
    """All rows, checks and free-form numbers of one run."""

    def __init__(self):
        self.rows: list[Row] = []
        self.checks: list[Check] = []
        self.info: dict = {}

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def check(self, workload, case, impl, got, want, tol=1e-8) -> float:
        err = max_rel_err(got, want)
        self.checks.append(Check(workload, case, impl, err, tol))
        return err

    def find(self, workload, case=None, impl=None) -> list[Row]:
        return [r for r in self.rows if r.workload == workload
                and (case is None or r.case == case) and (impl is None or r.impl == impl)]

    def one(self, workload, case, impl) -> Row | None:
        rows = self.find(workload, case, impl)
        return rows[0] if rows else None


def max_rel_err(got, want) -> float:
    """max |got - want| / max(1, max |want|) over a (nested) sequence of arrays; inf on shape
    mismatch or a non-finite value."""
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return math.inf
        return max((max_rel_err(g, w) for g, w in zip(got, want)), default=0.0)
    g = np.asarray(to_numpy(got), dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        if g.size == w.size == 1:
            g, w = g.reshape(()), w.reshape(())
        else:
            return math.inf
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(w))):
        return math.inf
    scale = max(1.0, float(np.max(np.abs(w))) if w.size else 1.0)
    return float(np.max(np.abs(g - w))) / scale if w.size else 0.0


def to_numpy(x):
    """A peer's array (JAX, torch, CasADi DM) as NumPy."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return x
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "full"):  # casadi DM
        return np.asarray(x.full()).squeeze()
    return np.asarray(x)


def flatten_floats(out) -> list[float]:
    """Every number in a nested output (tuples, lists, arrays, peers' scalars), in order."""
    flat: list[float] = []
    stack = [out]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            flat.extend(float(v) for v in np.ravel(np.asarray(to_numpy(item), dtype=np.float64)))
    return flat


def short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) < 160 else text[:157] + "..."


def error_row(workload, case, impl, exc, **extra) -> Row:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    row = Row(workload, case, impl, status="error: " + short_error(exc), extra=dict(extra))
    row.extra["traceback"] = "".join(tb[-6:])
    return row


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
def _calibrate(fn: Callable[[], object], min_batch: float) -> int:
    """Calls per batch so that one batch lasts at least ``min_batch`` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_batch or n >= 1 << 20:
            return n
        n = max(n * 2, int(n * min_batch / max(dt, 1e-9) * 1.2) + 1) if dt > 0 else n * 10


def measure_many(fns: dict[str, Callable[[], object]], cfg: Config,
                 stats: dict | None = None) -> dict[str, float]:
    """Median per-call seconds of each callable, batches interleaved round-robin. If ``stats``
    is given, it receives name -> {"min_s", "max_s", "batches", "calls_per_batch"}: on a busy
    machine the minimum shows what the code costs when it has the cores to itself."""
    counts = {}
    for name, fn in fns.items():
        for _ in range(cfg.warmup):
            fn()
        counts[name] = _calibrate(fn, cfg.min_batch)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(cfg.repeats):
            for name, fn in fns.items():
                n = counts[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter() - t0) / n)
    finally:
        if gc_was:
            gc.enable()
    if stats is not None:
        for name, s in samples.items():
            stats[name] = {"min_s": min(s), "max_s": max(s), "batches": len(s),
                           "calls_per_batch": counts[name]}
    return {name: statistics.median(s) for name, s in samples.items()}


def time_once(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds for one call, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds over ``repeats`` single calls (for builds and compiles), and the last
    result. A full collection runs before each call so one build's garbage is not billed to the
    next."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        out = None
        gc.collect()
        t, out = time_once(fn)
        times.append(t)
    return statistics.median(times), out


# ---------------------------------------------------------------------------------------------
# optional peers
# ---------------------------------------------------------------------------------------------
PEERS = ("jax", "torch", "autograd", "pytensor", "casadi")
_peer_cache: dict[str, object] = {}
_enabled: set[str] = set(PEERS)


def enable_peers(names) -> None:
    """Use only these peers; the others show as "skipped: --peers" (imported or not)."""
    _enabled.clear()
    _enabled.update(names)


class Missing:
    """Marks a peer that could not be imported."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def __bool__(self):
        return False


_threads: int | None = None


def limit_threads(n: int | None) -> str:
    """Run NumPy's BLAS (via threadpoolctl), PyTorch and JAX's XLA with ``n`` threads each.
    On a machine shared with other work a single thread gives far steadier medians: a
    multi-threaded BLAS call waits for its slowest thread, and a busy core makes that thread
    late. Returns a description of what was limited."""
    global _threads
    if not n:
        return "default threads"
    _threads = n
    import os
    done = []
    try:
        from threadpoolctl import threadpool_limits
        try:  # SciPy's own BLAS, which Numba's (and PyTensor's Numba) matrix products call:
            import scipy.linalg  # noqa: F401  loaded now, so that the limit reaches it too
        except ImportError:
            pass
        threadpool_limits(n)  # applies globally (NumPy's BLAS, any OpenMP pool loaded so far)
        done.append(f"BLAS {n}")
    except ImportError:
        done.append("BLAS default (threadpoolctl not installed)")
    if n == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
        done.append("XLA 1")
    done.append(f"torch {n}")
    return ", ".join(done)


def peer(name: str):
    """The peer's top-level module (configured for float64), or a falsy :class:`Missing`."""
    if name not in _enabled:
        return Missing(name, "skipped: not in --peers")
    if name in _peer_cache:
        return _peer_cache[name]
    try:
        if name == "jax":
            mod = importlib.import_module("jax")
            mod.config.update("jax_enable_x64", True)
            mod.config.update("jax_platforms", "cpu")
            importlib.import_module("jax.numpy")
        elif name == "autograd":
            mod = importlib.import_module("autograd")
            importlib.import_module("autograd.numpy")
        elif name == "pytensor":
            mod = importlib.import_module("pytensor")
            importlib.import_module("pytensor.tensor")
        else:
            mod = importlib.import_module(name)
            if name == "torch" and _threads:
                mod.set_num_threads(_threads)
    except ImportError as exc:
        mod = Missing(name, f"not installed ({short_error(exc)})")
    except Exception as exc:  # a broken install is reported, never fatal
        mod = Missing(name, "import failed: " + short_error(exc))
    _peer_cache[name] = mod
    return mod


def missing_row(workload, case, impl, mod: Missing) -> Row:
    status = "not installed" if mod.reason.startswith("not installed") else mod.reason
    return Row(workload, case, impl, status=status)


def peer_versions() -> dict:
    from importlib import metadata
    out = {}
    for name in PEERS:
        mod = peer(name)
        if not mod:
            out[name] = mod.reason
            continue
        version = getattr(mod, "__version__", None)
        if version is None:
            try:
                version = metadata.version(name)
            except Exception:  # noqa: BLE001 - informational only
                version = "?"
        out[name] = version
    return out


def pytensor_mode_name() -> str:
    pt = peer("pytensor")
    if not pt:
        return "-"
    try:
        from pytensor.compile.mode import get_default_mode
        return type(get_default_mode().linker).__name__
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def machine_info() -> dict:
    import os
    import platform
    return {"python": sys.version.split()[0], "numpy": np.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count()}


# ---------------------------------------------------------------------------------------------
# one workload, several implementations, side by side
# ---------------------------------------------------------------------------------------------
@dataclass
class Impl:
    """An implementation to time: ``make()`` returns ``(setup_seconds, call)``; ``peer`` names
    the optional package it needs (None for symdiff and the hand-written code); ``tol`` is the
    accepted max relative error against the reference values."""

    name: str
    make: Callable[[], tuple[float, Callable[[], object]]]
    peer: str | None = None
    tol: float = 1e-8
    extra: dict = field(default_factory=dict)
    check: bool = True   # False: timed only (its output was checked elsewhere or is not comparable)
    post: Callable | None = None  # maps the output to the reference's layout before the check


def compare(results: Results, cfg: Config, workload: str, case: str, impls: list[Impl],
            ref_name: str, want) -> dict[str, Row]:
    """Build every implementation, check its output against ``want``, time them side by side and
    add one row each; ratios are against the implementation called ``ref_name``."""
    calls: dict[str, Callable] = {}
    rows: dict[str, Row] = {}
    for impl in impls:
        if impl.peer is not None:
            mod = peer(impl.peer)
            if not mod:
                rows[impl.name] = results.add(missing_row(workload, case, impl.name, mod))
                continue
        try:
            setup, call = impl.make()
            out = call()
        except Exception as exc:  # noqa: BLE001 - reported in the table, never fatal
            rows[impl.name] = results.add(error_row(workload, case, impl.name, exc))
            continue
        row = Row(workload, case, impl.name, extra=dict(impl.extra))
        if impl.check:
            if impl.post is not None:
                out = impl.post(out)
            row.err = results.check(workload, case, impl.name, out, want, impl.tol)
            if not results.checks[-1].ok:
                row.status = f"WRONG (max rel err {row.err:.2e} > {impl.tol:.0e})"
        if setup:
            row.extra["setup_s"] = setup
        rows[impl.name] = results.add(row)
        calls[impl.name] = call
    stats: dict = {}
    times = measure_many(calls, cfg, stats) if calls else {}
    ref_time = times.get(ref_name)
    ref_min = stats.get(ref_name, {}).get("min_s")
    for name, t in times.items():
        rows[name].extra.update(stats[name])
        if ref_min:
            rows[name].extra["min_ratio"] = stats[name]["min_s"] / ref_min
        rows[name].time = t
        rows[name].ref = ref_name
        rows[name].ratio = t / ref_time if ref_time else None
    return rows
