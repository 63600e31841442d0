"""Concurrency (issue 5, part 6).

A compiled function is re-entrant: 8 threads calling one function (straight-line code, and the
register tape used above 10,000 statements) with different inputs, many times each, get exactly
the results of serial calls. Building graphs from 8 threads at once does not corrupt the
hash-consing table: identical expressions built in different threads are the same node, and
every graph evaluates correctly. Threads start together at a barrier to maximize overlap, and
the interpreter's switch interval is shortened to force frequent preemption.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import symdiff as sd
from conftest import scaled
from symdiff.graph import toposort
from symdiff.training.models import mlp_loss
from symdiff.lower.tape import TAPE_THRESHOLD

pytestmark = pytest.mark.slow

THREADS = 8
CALLS = scaled(400, 5_000, env="SYMDIFF_THREAD_CALLS")
BUILDS = scaled(10, 200, env="SYMDIFF_THREAD_BUILDS")
ROUNDS = scaled(1, 10)


@pytest.fixture(autouse=True)
def frequent_switches():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(work, n=THREADS):
    """``work(k)`` in ``n`` threads released together; returns the results in thread order,
    re-raising the first exception."""
    barrier = threading.Barrier(n)

    def task(k):
        barrier.wait()
        return work(k)
    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result() for f in [pool.submit(task, k) for k in range(n)]]


def _mlp():
    model = mlp_loss(16, 10, 12, 4)
    f = sd.compile_grad(model.loss, model.params)
    return model, f


def _mlp_inputs(seed):
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(16, 10)), "Y": np.eye(4)[rng.integers(0, 4, 16)],
            "W1": rng.normal(size=(10, 12)), "b1": rng.normal(size=12),
            "W2": rng.normal(size=(12, 4)), "b2": rng.normal(size=4)}


def _same(a, b):
    """Bit-identical results (the same code on the same inputs)."""
    value_a, grads_a = a
    value_b, grads_b = b
    return np.array_equal(value_a, value_b) and all(
        np.array_equal(x, y) for x, y in zip(grads_a, grads_b))


def test_compiled_function_is_reentrant(robustness_tally):
    _, f = _mlp()
    inputs = [_mlp_inputs(seed) for seed in range(THREADS * 4)]
    serial = [f(**v) for v in inputs]

    def work(k):
        mismatches = 0
        for i in range(CALLS):
            j = (k * 7 + i) % len(inputs)  # threads interleave different inputs
            if not _same(f(**inputs[j]), serial[j]):
                mismatches += 1
        return mismatches

    assert run_threads(work) == [0] * THREADS
    robustness_tally["concurrency: threaded calls of one compiled function"] += THREADS * CALLS


def test_inputs_are_not_modified_by_concurrent_calls():
    _, f = _mlp()
    inputs = [_mlp_inputs(seed) for seed in range(THREADS)]
    copies = [{k: v.copy() for k, v in d.items()} for d in inputs]
    for d in inputs:
        for v in d.values():
            v.flags.writeable = False  # any in-place write into an input would raise
    run_threads(lambda k: [f(**inputs[k]) for _ in range(20)])
    for d, c in zip(inputs, copies):
        for key in d:
            np.testing.assert_array_equal(d[key], c[key])


def test_tape_function_is_reentrant(robustness_tally):
    x = sd.var("x", (4,))
    y = x
    for i in range(TAPE_THRESHOLD // 2 + 50):
        y = sd.sin(y) * 1.001 if i % 2 else sd.tanh(y) + 0.01
    f = sd.compile_grad(sd.sum(y), x)
    assert f.uses_tape
    points = [np.linspace(-1, 1, 4) * (k + 1) / THREADS for k in range(THREADS)]
    serial = [f(p) for p in points]
    calls = max(3, CALLS // 100)

    def work(k):
        return all(_same(f(points[(k + i) % THREADS]), serial[(k + i) % THREADS])
                   for i in range(calls))

    assert all(run_threads(work))
    robustness_tally["concurrency: threaded calls of one tape function"] += THREADS * calls


def test_check_finite_function_is_reentrant():
    x = sd.var("x", (3,))
    f = sd.compile(sd.sum(sd.log(x)), check_finite=True)
    good, bad = np.array([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 3.0])

    def work(k):
        outcomes = []
        for i in range(50):
            if (k + i) % 2:
                with np.errstate(all="ignore"):
                    try:
                        f(bad)
                        outcomes.append(False)
                    except sd.NonFiniteError:
                        outcomes.append(True)
            else:
                outcomes.append(float(f(good)) == float(np.sum(np.log(good))))
        return all(outcomes)

    assert all(run_threads(work))


# ---------------------------------------------------------------------------------------------
# building graphs concurrently: the intern table
# ---------------------------------------------------------------------------------------------
def _build_same(k):
    """The same expressions in every thread (variables, parsing, operators, gradients)."""
    x, W, b = sd.var("cx", (5,)), sd.var("cW", (3, 5)), sd.var("cb", (3,))
    y = sd.sum(sd.tanh(W @ x + b) * sd.softmax(W @ x))
    parsed = sd.parse("sum(tanh(cW @ cx + cb) * softmax(cW @ cx))",
                      {"cx": (5,), "cW": (3, 5), "cb": (3,)})
    grads = sd.grad(y, [x, W, b])
    chain = x
    for i in range(100):
        chain = sd.sin(chain) * (1.0 + i / 1000)
    model = mlp_loss(6, 5, 4, 3)
    return [y, parsed, *grads, chain, model.loss, *sd.grad(model.loss, model.params)]


def _build_own(k):
    """Different expressions per thread, over shared variables and constants."""
    x = sd.var("cx", (5,))
    own = sd.var(f"own{k}", (5,))
    y = x
    for i in range(100):
        y = sd.exp(-sd.square(y * float(k + 1))) + own * float(i % 7) + 1.0
    return [y, sd.grad(sd.sum(y), x), sd.grad(sd.sum(y), own)]


def test_identical_expressions_built_in_threads_are_the_same_node(robustness_tally):
    for _ in range(BUILDS):
        results = run_threads(_build_same)
        first = results[0]
        for other in results[1:]:
            assert len(other) == len(first)
            for a, b in zip(first, other):
                assert a is b  # interned: one node, whichever thread built it
        assert first[0] is first[1]  # text and operators meet in the same node
    robustness_tally["concurrency: threaded graph builds"] += BUILDS * THREADS


def test_graphs_built_in_threads_evaluate_correctly():
    reference = _build_same(0)
    values = {"cx": np.linspace(-1, 1, 5), "cW": np.linspace(-1, 1, 15).reshape(3, 5),
              "cb": np.array([0.1, -0.2, 0.3])}
    mlp_values = _mlp_inputs(3)
    mlp_values = {"X": mlp_values["X"][:6, :5], "Y": mlp_values["Y"][:6, :3],
                  "W1": mlp_values["W1"][:5, :4], "b1": mlp_values["b1"][:4],
                  "W2": mlp_values["W2"][:4, :3], "b2": mlp_values["b2"][:3]}
    want = [sd.compile(e)(**{v.name: {**values, **mlp_values}[v.name]
                             for v in sd.free_vars(e)}) for e in reference]

    def work(k):
        for _ in range(ROUNDS):
            exprs = _build_same(k) + _build_own(k)
            for e, w in zip(exprs, want):
                got = sd.compile(e)(**{v.name: {**values, **mlp_values}[v.name]
                                       for v in sd.free_vars(e)})
                if not np.allclose(got, w, rtol=1e-12, atol=0):
                    return False
            own = exprs[len(want):]
            v = {"cx": values["cx"], f"own{k}": np.full(5, 0.1 * k)}
            y, gx, gown = own
            value = sd.compile(y)(**v)
            if not np.all(np.isfinite(value)) or gx.shape != (5,) or gown.shape != (5,):
                return False
            if not sd.check_grad(sd.sum(y), [sd.var("cx", (5,))], v).ok:
                return False
        return True

    assert all(run_threads(work))


def test_intern_table_is_consistent_after_concurrent_builds():
    """After heavy concurrent building: rebuilding any node from its op and inputs yields the
    node itself (no duplicates slipped into the table), in the main thread."""
    results = run_threads(lambda k: _build_same(k) + _build_own(k))
    from symdiff.graph import apply
    for exprs in results:
        for node in toposort(exprs):
            if node.op is not None:
                assert apply(node.op, node.inputs) is node
            elif node.is_var:
                assert sd.var(node.name, node.shape, node.dtype) is node
            else:
                assert sd.const(node.value) is node


@pytest.mark.filterwarnings("ignore::symdiff.SymdiffWarning")  # one shapes dict, many texts
def test_concurrent_parsing_and_deep_parsing():
    """sd.parse from several threads, including deep texts that use the parser's big-stack
    worker thread (which changes process-wide settings while it runs)."""
    deep = "+".join(["x"] * 4000)
    texts = ["sum(W @ x)", deep, "exp(-x) * 2", "(" * 150 + "x" + ")" * 150,
             "(" * 300 + "x" + ")" * 300]

    def work(k):
        out = []
        for i in range(len(texts) * ROUNDS):
            text = texts[(k + i) % len(texts)]
            try:
                out.append(sd.parse(text, {"x": (3,), "W": (2, 3)}))
            except sd.ParseError as exc:
                out.append(("error", exc.position))
        return out

    limit = sys.getrecursionlimit()
    results = run_threads(work)
    for k, out in enumerate(results):
        for i, item in enumerate(out):
            text = texts[(k + i) % len(texts)]
            if text.startswith("(" * 300):
                assert item[0] == "error"
            else:
                assert isinstance(item, sd.Expr)
                assert item is sd.parse(text, {"x": (3,), "W": (2, 3)})
    assert sys.getrecursionlimit() == limit


CRASH_SCRIPT = """
import json, threading
import symdiff as sd
deep_text = "+".join(["x"] * 100_000)
nested = "[" * 100_000 + "]" * 100_000
done = threading.Event()
def parse_deep():
    try:
        for _ in range(5):
            sd.parse(deep_text)
    finally:
        done.set()
threading.Thread(target=parse_deep).start()
while not done.is_set():
    try:
        json.loads(nested)  # a RecursionError, unless the limit was raised meanwhile
    except RecursionError:
        pass
print("ok")
"""


def test_deep_parse_does_not_crash_other_threads():
    """A deep sd.parse used to raise the process-wide recursion limit while its big-stack
    worker ran, so C-recursive code in another thread (json.loads of deep nesting, also reached
    by sd.load) overflowed its stack; long chains are now parsed piecewise (issue 10, item 15)."""
    import subprocess
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, (result.returncode,
                                                               result.stderr[-2000:])


SYSTEM_ERROR_SCRIPT = """
import gc, sys, threading
import symdiff as sd
sys.setswitchinterval(1e-6)
gc.set_threshold(50)
text = "lambda: " + "+".join(["x"] * 1_000)  # a big AST, refused right after ast.parse
class Junk:
    def __init__(self):
        self.me = self
    def __del__(self):
        sum(range(50))  # Python code run by the GC while ast.parse builds its objects
errors = []
def work():
    for _ in range(int(sys.argv[1])):  # rounds: bounded by default, 40 in a long run
        for _ in range(50):
            Junk()
        try:
            sd.parse(text)
        except sd.ParseError:
            pass
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(errors), errors[:3])
"""


def test_parse_from_threads_never_raises_system_error():
    import subprocess
    rounds = str(scaled(15, 40))
    result = subprocess.run([sys.executable, "-c", SYSTEM_ERROR_SCRIPT, rounds],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("0 "), result.stdout
