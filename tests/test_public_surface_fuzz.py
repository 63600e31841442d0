"""Fuzzing the whole public surface (issue 10, item 12): no bad argument escapes as a bare
Python exception.

Every public function of ``symdiff`` (each callable in ``dir(sd)`` that is not a class or a
module), plus the operators and methods of ``Expr``, is called with arguments drawn by a seeded
generator from a pool of wrong and right values: None, wrong types, strings, huge ints such as
``2**63``, negative and non-finite numbers, nested and ragged lists, wrong shapes, dicts with
missing or unknown keys, arrays of strings, objects and complex numbers, next to valid
expressions, shapes and inputs (so that calls get past the first check, too). A call follows
the function's signature (its required arguments, plus some optional ones by keyword), so the
only TypeErrors Python itself raises for a wrong argument count never occur.

Each outcome must be a value or an ``sd.SymdiffError`` subclass; a function that takes a file
path may also raise the operating system's own ``OSError`` for it (as ``open`` does). Anything
else (TypeError, KeyError, AttributeError, ValueError, IndexError, RecursionError,
OverflowError...) is a failure, listed with its call. The default run makes ``CALLS`` calls
(bounded: a few seconds); ``--long`` (or ``SYMDIFF_LONG=1``) ten times as many, and
``SYMDIFF_FUZZ_CALLS`` sets the number.
"""
from __future__ import annotations

import inspect
import math
import operator
import os
import random
import signal
import warnings
from collections import Counter

import numpy as np
import pytest

import symdiff as sd
from conftest import scaled

pytestmark = pytest.mark.slow

CALLS = scaled(20_000, 200_000, env="SYMDIFF_FUZZ_CALLS")
SEED = int(os.environ.get("SYMDIFF_FUZZ_SEED", "20261204"))
PATH_FUNCTIONS = {"save", "load", "render", "report"}
TIME_LIMIT = 5.0  # seconds per call (fit with epochs=2**31 would run, correctly, for ages)


SUBMODULES = ("init", "optim", "models")  # the public modules ``sd.<name>`` exports
SKIPPED = {"models.train_xor"}  # a demo that trains for seconds with its default arguments


def public_functions() -> dict:
    """Name -> callable for every public function of the package (op instances included), and
    the functions and classes that ``sd.init``, ``sd.optim`` and ``sd.models`` define."""
    out = {}
    for name in dir(sd):
        obj = getattr(sd, name)
        if name.startswith("_") or inspect.ismodule(obj) or inspect.isclass(obj):
            continue
        if callable(obj):
            out[name] = obj
    for module_name in SUBMODULES:
        module = getattr(sd, module_name)
        for name in dir(module):
            obj = getattr(module, name)
            if (name.startswith("_") or not callable(obj)
                    or getattr(obj, "__module__", None) != module.__name__
                    or (inspect.isclass(obj) and issubclass(obj, BaseException))):
                continue
            if f"{module_name}.{name}" not in SKIPPED:
                out[f"{module_name}.{name}"] = obj
    return out


def _operators() -> dict:
    """The operators and methods of Expr, each a function of (expr, other)."""
    table = {}
    for name in ("add", "sub", "mul", "truediv", "pow", "matmul", "lt", "le", "gt", "ge",
                 "eq", "ne", "getitem"):
        fn = getattr(operator, name)
        table[f"Expr {name}"] = lambda e, o, fn=fn: fn(e, o)
        if name != "getitem":
            table[f"{name} Expr"] = lambda e, o, fn=fn: fn(o, e)
    table.update({
        "Expr neg": lambda e, o: -e, "Expr abs": lambda e, o: abs(e), "Expr .T": lambda e, o: e.T,
        "Expr bool": lambda e, o: bool(e), "Expr iter": lambda e, o: list(iter(e)),
        "Expr str": lambda e, o: str(e), "Expr repr": lambda e, o: repr(e),
        "Expr hash": lambda e, o: hash(e),
    })
    return table


def _compiled_calls(pool: "Pool", rng: random.Random) -> dict:
    """Compiled functions, called with drawn positional and keyword inputs."""
    s, x = sd.var("s"), sd.var("x", (3,))
    y = sd.sum(sd.exp(x) * s)
    functions = {"compiled function": sd.compile([y, x * s]),
                 "compiled grad function": sd.compile_grad(y, [x, s]),
                 "compiled scalar function": sd.compile(s * s + 1.0)}
    table = {}
    for label, fn in functions.items():
        def call(e, o, fn=fn):
            args = [pool.draw(rng) for _ in range(rng.randint(0, 3))]
            kwargs = {rng.choice(["x", "s", "W", "bogus"]): pool.draw(rng)
                      for _ in range(rng.randint(0, 2))}
            return fn(*args, **kwargs)
        table[label] = call
    return table


class _TimeLimit(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TimeLimit()


class Pool:
    """The values arguments are drawn from: wrong ones and right ones."""

    def __init__(self, tmp_path):
        s, x = sd.var("s"), sd.var("x", (3,))
        W, k = sd.var("W", (3, 4)), sd.var("k", (3,), "int64")
        y = sd.sum(sd.tanh(x) * x) + s * s
        self.exprs = [s, x, W, k, y, x > 0, sd.const(2.0), W @ sd.var("v", (4,)), s * 3]
        good_file = tmp_path / "good.json"
        sd.save([y], good_file)
        bad_file = tmp_path / "bad.json"
        bad_file.write_text('{"format": "symdiff-graph", "version": 1, "nodes": [')
        self.paths = [str(good_file), good_file, str(bad_file), str(tmp_path),
                      str(tmp_path / "missing" / "f.json"), "out.svg", "out.json", "out.png",
                      "out.unknown", ""]
        self.values = [
            None, True, False, 0, 1, -1, 2, 3, 7, 2 ** 31, 2 ** 63, -2 ** 63 - 1, 10 ** 400,
            0.5, -0.0, 1e308, math.nan, math.inf, -math.inf, 1j, np.float32(2.5), np.int64(2),
            "", "x", "s", "W", "k", "self", "sum(x)", "x +", "x[2**63]", "exp(x) * W",
            "svg", "png", "raise", "zero", "numpy", "array_api", "bogus", "1" * 5000,
            b"x", bytearray(b"x"), [], [1, 2], [[1], [2, 3]], [1.0, 2.0, 3.0], [x, x], [x, W],
            [y], [s, "x"], [None], (), (3,), (3, 1), (1, 3), (-1,), (2, -1), (2 ** 63,),
            (0, 2), (3, 4), (None,), (1.5,), ("a",), {}, {"x": np.ones(3)},
            {"x": np.ones(3), "s": 1.0}, {"x": np.ones(3), "s": 1.0, "W": np.ones((3, 4)),
                                           "k": np.arange(3), "v": np.ones(4)},
            {"x": "str"}, {"x": None}, {"q": 1}, {1: 2}, {"x": np.ones(7)}, {"x": (3,)},
            {x: np.ones(3)}, {1, 2}, frozenset(), slice(0, 2), slice(None, None, 0),
            Ellipsis, (0, slice(None)), (Ellipsis, None), np.array([True, False, True]),
            np.ones(3), np.ones((3, 4)), np.zeros(0), np.ones((2, 0)), np.array(2.0),
            np.array("a"), np.array(["a", "b", "c"]), np.array([1 + 2j, 1, 1]),
            np.array([None, 1, 2], dtype=object), np.arange(3), np.array([2 ** 62, 0, 1]),
            np.array([np.nan, np.inf, -np.inf]), np.ones(3, dtype=np.float32),
            np.ones((3, 4), dtype=np.int8), object(), lambda *a: 1, print, type,
            sd.optim.SGD(0.1), sd.optim.Adam(0.01), np.float64, "float32", "int64", "complex128",
            float, int, str, ValueError("x"),
        ]

    def draw(self, rng: random.Random, name: str = ""):
        roll = rng.random()
        if roll < 0.3:
            return rng.choice(self.exprs)
        if name in PATH_FUNCTIONS and roll < 0.5:
            return rng.choice(self.paths)
        return rng.choice(self.values)


def _arguments(fn, rng: random.Random, pool: Pool, name: str):
    """Positional and keyword arguments for ``fn`` following its signature."""
    params = list(inspect.signature(fn).parameters.values())
    args, kwargs = [], {}
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            args += [pool.draw(rng, name) for _ in range(rng.randint(0, 3))]
        elif p.kind is p.VAR_KEYWORD:
            if rng.random() < 0.2:
                kwargs[rng.choice(["x", "axis", "bogus"])] = pool.draw(rng, name)
        elif p.default is p.empty:
            if p.kind is p.KEYWORD_ONLY:
                kwargs[p.name] = pool.draw(rng, name)
            else:
                args.append(pool.draw(rng, name))
        elif rng.random() < 0.35:
            kwargs[p.name] = pool.draw(rng, name)
    return args, kwargs


def _call(fn, args, kwargs):
    """``fn(*args, **kwargs)``: None for a value or a SymdiffError, else the exception."""
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args, **kwargs)
    except sd.SymdiffError:
        return None
    except _TimeLimit:
        return "time"
    except Exception as exc:  # noqa: BLE001 - what the test is looking for
        return exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def test_public_surface_raises_only_symdiff_errors(tmp_path, monkeypatch, robustness_tally):
    monkeypatch.chdir(tmp_path)  # files written by save/render land here
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    rng = random.Random(SEED)
    pool = Pool(tmp_path)
    functions = public_functions()
    operators = {**_operators(), **_compiled_calls(pool, rng)}
    names = sorted(functions) + sorted(operators)
    bare: list[str] = []
    kinds: Counter = Counter()
    culprits: set[str] = set()
    slow = 0
    try:
        for i in range(CALLS):
            name = names[i % len(names)]
            if name in functions:
                fn = functions[name]
                args, kwargs = _arguments(fn, rng, pool, name)
            else:
                fn = operators[name]
                args, kwargs = [rng.choice(pool.exprs), pool.draw(rng)], {}
            outcome = _call(fn, args, kwargs)
            if outcome == "time":
                slow += 1
                continue
            if outcome is None:
                continue
            if name in PATH_FUNCTIONS and isinstance(outcome, OSError):
                continue
            kinds[type(outcome).__name__] += 1
            culprits.add(name)
            if len(bare) < 40:
                shown = ", ".join([*map(_short, args),
                                   *(f"{k}={_short(v)}" for k, v in kwargs.items())])
                bare.append(f"{name}({shown}) -> {type(outcome).__name__}: "
                            f"{str(outcome)[:120]}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    robustness_tally["public-surface fuzz calls"] += CALLS
    robustness_tally["public-surface fuzz: functions and operators"] = len(names)
    robustness_tally["public-surface fuzz: bare exceptions"] += sum(kinds.values())
    robustness_tally["public-surface fuzz: calls past the time limit"] += slow
    assert slow <= CALLS // 500, f"{slow} calls ran past {TIME_LIMIT} s"
    assert not bare, (f"{sum(kinds.values())} bare exceptions in {CALLS} calls, from "
                      f"{len(culprits)} of {len(names)} functions/operators "
                      f"({dict(kinds)}):\n" + "\n".join(bare))


def test_the_fuzz_covers_the_public_surface():
    functions = public_functions()
    for name in ("compile", "compile_grad", "grad", "pretty", "save", "load", "check_grad",
                 "explain", "fit", "parse", "reshape", "var", "const", "exp", "render"):
        assert name in functions
    assert len(functions) >= 65


def _cases(tmp_path):
    x, s = sd.var("x", (3,)), sd.var("s")
    y = sd.sum(x * s)
    return [
        ("compile(None)", lambda: sd.compile(None), "outputs"),
        ("grad(y, None)", lambda: sd.grad(y, None), "wrt"),
        ("grad(y, x, disconnected=1)", lambda: sd.grad(y, x, disconnected=1), "disconnected"),
        ("pretty(None)", lambda: sd.pretty(None), "argument 1"),
        ("to_latex(3)", lambda: sd.to_latex(3), "expr"),
        ("save(None, p)", lambda: sd.save(None, tmp_path / "f.json"), "exprs"),
        ("save(y, None)", lambda: sd.save(y, None), "path"),
        ("load(3)", lambda: sd.load(3), "path"),
        ("check_grad(y, x, None)", lambda: sd.check_grad(y, x, None), "at"),
        ("check_grad(..., eps=-1)", lambda: sd.check_grad(y, x, {"x": np.ones(3), "s": 1.0},
                                                          eps=-1.0), "eps"),
        ("explain without s", lambda: sd.explain(y, x, {"x": np.ones(3)}), "'s'"),
        ("x[2**63]", lambda: x[2 ** 63], "does not fit"),
        ("reshape([1, 2], (3, 1))", lambda: sd.reshape([1, 2], (3, 1)), "(3, 1)"),
        ("sum(x, keepdims=[1])", lambda: sd.sum(x, keepdims=np.ones(3)), "keepdims"),
        ("compile(y, optimize='no')", lambda: sd.compile(y, optimize="no"), "optimize"),
        ("hessian(y, 'x')", lambda: sd.hessian(y, "x"), "x"),
        ("free_vars(3)", lambda: sd.free_vars(3), "expr"),
    ]


def test_the_reported_cases_name_their_argument(tmp_path):
    for label, call, named in _cases(tmp_path):
        with pytest.raises(sd.SymdiffError) as info:
            call()
        assert named in str(info.value), (label, str(info.value))


def test_init_params_refuses_a_0d_array():
    # found by the fuzz above: a 0-d array is Iterable to isinstance but cannot be iterated
    with pytest.raises(sd.SymdiffError, match="init_params"):
        sd.init.init_params(np.array("a"), 7)
