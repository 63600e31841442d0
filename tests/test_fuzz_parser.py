"""Fuzzing ``sd.parse`` (issue 5, part 1): whatever the text, the outcome is an ``Expr`` or a
``SymdiffError`` carrying ``.position`` inside the text, never another exception, never a hang,
and nothing in the text is ever executed.

Five generators feed the parser: arbitrary Unicode text, token soup from the grammar's own tokens
(plus hostile fragments), mutations of valid expressions (characters and tokens inserted,
deleted, replaced, slices duplicated), deeply nested brackets and operator chains, and valid
expressions spliced with code-execution payloads. Every payload, if it were ever evaluated,
would call a sentinel function planted in ``builtins`` (which sets a flag) or create a file in
the temporary directory; both are checked after every input, and ``eval``/``exec``/``compile``
are watched for any source text carrying the payload marker.

The parser re-raises a ``ShapeError``/``DTypeError`` met while building a node with the source
position attached (parse.py's documented design), so the accepted failure is any
``SymdiffError`` with a ``.position`` in ``[0, len(text)]`` (always so for ``ParseError``).

Sizes: ``FUZZ_EXAMPLES`` examples per generator (default 250; ``SYMDIFF_LONG=1`` gives 5000,
``SYMDIFF_FUZZ_EXAMPLES=N`` sets it). Every input is run under a hard wall-clock limit
(``HANG_SECONDS``, via SIGALRM), and the number of inputs tried is added to the session's
robustness tally.
"""
from __future__ import annotations

import builtins
import contextlib
import os
import signal
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdiff as sd
from conftest import scaled

# one SHAPES dict serves every fuzzed text: its unused keys are not typos
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::symdiff.SymdiffWarning")]

FUZZ_EXAMPLES = scaled(250, 5000, env="SYMDIFF_FUZZ_EXAMPLES")
HANG_SECONDS = 20.0
SHAPES = {"x": (3,), "W": (2, 3), "M": (3, 3), "b": (2,), "s": ()}

# ---------------------------------------------------------------------------------------------
# the sentinel: what any executed payload would touch
# ---------------------------------------------------------------------------------------------
SENTINEL_NAME = "symdiff_fuzz_sentinel"
MARKER = "SYMDIFF_PWNED"
TARGET = os.path.join(tempfile.gettempdir(), f"symdiff_fuzz_pwned_{os.getpid()}")
_EXECUTED: list = []


def _sentinel(*args, **kwargs):
    _EXECUTED.append(("sentinel called", args, kwargs))
    return 0


PAYLOADS = [
    f"{SENTINEL_NAME}()",
    f"{SENTINEL_NAME}('{MARKER}')",
    f"__import__('builtins').{SENTINEL_NAME}()",
    f"__import__('os').system('touch {TARGET}')",
    f"open({TARGET!r}, 'w').write('{MARKER}')",
    f"__import__('pathlib').Path({TARGET!r}).touch()",
    f"exec(\"{SENTINEL_NAME}('{MARKER}')\")",
    f"eval(\"{SENTINEL_NAME}('{MARKER}')\")",
    f"compile(\"{SENTINEL_NAME}()\", '{MARKER}', 'exec')",
    f"(lambda: {SENTINEL_NAME}())()",
    f"[{SENTINEL_NAME}() for _ in (1,)]",
    f"{{{SENTINEL_NAME}()}}",
    f"globals()['{SENTINEL_NAME}']()",
    "().__class__.__base__.__subclasses__()[0]",
    f"x.__class__.__init__.__globals__['{SENTINEL_NAME}']()",
    "x.T.__dict__",
    f"sum(x, axis={SENTINEL_NAME}())",
    f"reshape(x, ({SENTINEL_NAME}(),))",
    f"x[{SENTINEL_NAME}()]",
    f"exp(x)({SENTINEL_NAME}())",
    f"getattr(x, '{MARKER}')",
    f"f'{{{SENTINEL_NAME}()}}'",
    f"(y := {SENTINEL_NAME}())",
    f"{SENTINEL_NAME}() if x else 0",
    f"*{SENTINEL_NAME}()",
    f"exp(**{{'x': {SENTINEL_NAME}()}})",
    "breakpoint()",
    f"__builtins__['{SENTINEL_NAME}']()",
    f"sd.{SENTINEL_NAME}()",
    "import os",
    f"{SENTINEL_NAME}()\n",
    f"x;{SENTINEL_NAME}()",
    f"x\n{SENTINEL_NAME}()",
    f"x #\\\n{SENTINEL_NAME}()",
]


def _payload_in(source) -> bool:
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    if not isinstance(source, str):
        return False
    return SENTINEL_NAME in source or MARKER in source or TARGET in source


@pytest.fixture(scope="module", autouse=True)
def sentinel():
    """Plant the sentinel in builtins and watch eval/exec/compile for the payload marker."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(TARGET)
    real = {name: getattr(builtins, name) for name in ("eval", "exec", "compile")}

    def watch(name):
        fn = real[name]

        def watched(source, *args, **kwargs):
            if name == "compile":
                flags = args[2] if len(args) > 2 else kwargs.get("flags", 0)
                only_ast = bool(flags & 0x400)  # ast.PyCF_ONLY_AST: building a tree, not code
            else:
                only_ast = False
            if not only_ast and _payload_in(source):
                _EXECUTED.append((name, source))
            return fn(source, *args, **kwargs)
        return watched

    setattr(builtins, SENTINEL_NAME, _sentinel)
    for name in real:
        setattr(builtins, name, watch(name))
    try:
        yield
    finally:
        for name, fn in real.items():
            setattr(builtins, name, fn)
        delattr(builtins, SENTINEL_NAME)
    assert not _EXECUTED, _EXECUTED
    assert not os.path.exists(TARGET)


class Hang(Exception):
    """Raised by the alarm: one parse took longer than HANG_SECONDS."""


@contextlib.contextmanager
def time_limit(seconds: float):
    if not hasattr(signal, "setitimer"):  # no SIGALRM (Windows): hypothesis' own timing only
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"parse did not finish within {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_text(text: str, tally=None, key: str = "parse inputs") -> str:
    """Parse ``text``; assert the outcome is allowed and nothing ran. Returns the outcome
    kind ("expr" or the error class name)."""
    start = time.perf_counter()
    try:
        with time_limit(HANG_SECONDS):
            expr = sd.parse(text, SHAPES)
            if isinstance(expr, sd.Expr):
                str(expr)  # printing an accepted expression never fails either
    except Hang:
        pytest.fail(f"sd.parse hung (> {HANG_SECONDS} s) on {text!r:.300}")
    except sd.SymdiffError as exc:
        position = getattr(exc, "position", None)
        assert position is not None, (
            f"{type(exc).__name__} from parse without a position for {text!r:.300}: {exc}")
        assert isinstance(position, int) and 0 <= position <= len(text), (
            f"position {position} outside [0, {len(text)}] for {text!r:.300}: {exc}")
        outcome = type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - exactly what must never happen
        pytest.fail(f"sd.parse raised {type(exc).__name__}: {exc!s:.300} for {text!r:.300}")
    else:
        assert isinstance(expr, sd.Expr), (type(expr), text)
        outcome = "expr"
    finally:
        elapsed = time.perf_counter() - start
    assert not _EXECUTED, f"something was executed for {text!r:.300}: {_EXECUTED}"
    assert not os.path.exists(TARGET), f"the target file was created by {text!r:.300}"
    if tally is not None:
        tally[key] += 1
        tally[f"parse outcome: {outcome}"] += 1
        if elapsed > 1.0:
            tally["parse inputs taking > 1 s"] += 1
    return outcome


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------
FUNCTION_NAMES = sorted(sd.ops.FUNCTIONS) + ["eval", "exec", "open", "getattr", "print",
                                             "__import__", "globals", "compile", "len", "abs"]
NUMBERS = ["0", "1", "2", "-1", "2.5", ".5", "5.", "1e3", "1e308", "1e309", "1e-400", "0x1F",
           "0o7", "0b101", "1_000", "1j", "2.5j", "9" * 30, "9" * 400, "0.0", "-0.0", "1e",
           "3.", "00", "09", "1__0", "nan", "inf"]
PUNCTUATION = ["+", "-", "*", "/", "**", "@", "//", "%", "<<", ">>", "&", "|", "^", "~",
               "<", "<=", ">", ">=", "==", "!=", "=", ":=", "(", ")", "[", "]", "{", "}", ",",
               ":", ";", ".", "...", ".T", ".shape", "->", "!", "?", "$", "`", "'", '"',
               "\\", "#", "@=", "+="]
WORDS = ["x", "y", "W", "M", "b", "s", "T", "axis", "keepdims", "shape", "indices", "axes",
         "alpha", "lo", "hi", "True", "False", "None", "and", "or", "not", "if", "else", "in",
         "is", "lambda", "for", "yield", "await", "import", "from", "def", "class", "__x",
         "_", "λ", "é", "ｘ", "𝐱", "x1", "print"]
KEYWORD_ARGS = ["axis=", "axis=0", "axis=-1", "axis=(0, 1)", "keepdims=True", "shape=(3,)",
                "shape=(-1,)", "indices=[0, 0, 2]", "alpha=0.2", "lo=-1", "hi=1", "axes=(1, 0)"]
SPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\f", "\v", "\\\n", "# c\n", "\0", "\ufeff",
         "\u2028", "\xa0"]
STRINGS = ["'s'", '"s"', "b'x'", "r'x'", "f'{x}'", "'''x'''", "u'x'", "'\\x00'", "'",
           '"""']
TOKENS = (FUNCTION_NAMES + NUMBERS + PUNCTUATION + WORDS + KEYWORD_ARGS + SPACE + STRINGS
          + PAYLOADS)

VALID = [
    "x", "s", "-x", "x + 1", "W @ x + b", "sum(W @ x + b)", "(x + s) * max(s, 2.0)",
    "sum(x * tanh(x), axis=0)", "exp(-s ** 2 / 2)", "log(sum(exp(x)))", "softmax(W @ x)",
    "log_softmax(W, axis=1)", "max(x, axis=0, keepdims=True)", "min(x, s)", "max(x, s, 1)",
    "reshape(W, (3, 2)).T @ x", "transpose(W, (1, 0))", "concatenate([x, x, b])",
    "stack([x, x], axis=1)", "take(x, [0, 0, 2])", "W[:, ::-1][0, 1:]", "x[[2, 2, 0]]",
    "W[..., 0]", "where(x > 0, x, 0.01 * x)", "clip(x, -1, 1)", "leaky_relu(x, alpha=0.2)",
    "hardtanh(x, lo=-0.5, hi=2)", "power(s, 3)", "norm(W)", "logsumexp(W, axis=(0, 1))",
    "outer(x, b)", "dot(x, x)", "broadcast_to(s, (2, 3))", "sigmoid(x) * softplus(-x)",
    "stop_gradient(floor(x)) + round(x) * 0", "argmax(W, axis=1)", "sign(x) * abs(x)",
    "relu(x) - relu(-x)", "(x >= s) * 1.0", "mean(square(W - 1))", "prod(x)",
    "sqrt(s * s + 1) / log1p(expm1(s) + 2)", "sin(s) ** 2 + cos(s) ** 2", "tan(0.5 * s)",
    "reshape(2 * 3, (-1,))", "1 / 2 + 3 ** 2", "  exp(\n x\r\n)  # comment",
]


def _mutate(data, text: str) -> str:
    """Apply a few random edits (insert, delete, replace, duplicate, swap) to ``text``."""
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        n = len(text)
        kind = data.draw(st.sampled_from(["insert_char", "insert_token", "delete", "replace",
                                          "duplicate", "swap", "truncate"]), label="kind")
        i = data.draw(st.integers(0, n), label="at")
        if kind == "insert_char":
            text = text[:i] + data.draw(st.characters(), label="char") + text[i:]
        elif kind == "insert_token":
            text = text[:i] + data.draw(st.sampled_from(TOKENS), label="token") + text[i:]
        elif kind == "delete" and n:
            j = data.draw(st.integers(i, min(n, i + 6)), label="to")
            text = text[:i] + text[j:]
        elif kind == "replace" and i < n:
            text = text[:i] + data.draw(st.characters(), label="char") + text[i + 1:]
        elif kind == "duplicate" and n:
            j = data.draw(st.integers(i, n), label="to")
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap" and n >= 2:
            j = data.draw(st.integers(0, n - 1), label="other")
            a, b = sorted((min(i, n - 1), j))
            text = text[:a] + text[b] + text[a + 1:b] + text[a] + text[b + 1:]
        elif kind == "truncate":
            text = text[:i]
    return text


OPENERS = ["(", "[", "{", "exp(", "sum(", "max(x, ", "-", "+", "not ", "x[", "reshape(",
           "concatenate([", "(x)(", "lambda: "]
CLOSERS = [")", "]", "}", ", axis=0)", ".T", "[0]", "**x", " + x", ")(", ""]


@st.composite
def deep_texts(draw):
    """Deeply nested or long-chained texts, balanced or not."""
    limit = draw(st.sampled_from([50, 199, 200, 201, 400, 1200]))
    kind = draw(st.sampled_from(["nest", "mixed", "chain", "unary", "pow", "suffix"]))
    depth = draw(st.integers(0, limit))
    core = draw(st.sampled_from(["x", "s", "W", "1", "", "x + s", "(", ")", "]", "exp(x)",
                                 *PAYLOADS[:6]]))
    if kind == "nest":
        opener = draw(st.sampled_from(OPENERS))
        closer = draw(st.sampled_from(CLOSERS))
        extra = draw(st.integers(-2, 2))
        return opener * depth + core + closer * max(0, depth + extra)
    if kind == "mixed":
        parts = draw(st.lists(st.sampled_from(OPENERS), min_size=depth, max_size=depth))
        closes = draw(st.lists(st.sampled_from(CLOSERS), min_size=0, max_size=depth))
        return "".join(parts) + core + "".join(closes)
    if kind == "chain":
        op = draw(st.sampled_from(["+", "-", "*", "@", "/", " < ", ",", "**"]))
        count = draw(st.integers(0, 4000))
        return op.join([core or "x"] * count)
    if kind == "unary":
        return draw(st.sampled_from(["-", "+", "~", "not "])) * depth * 3 + (core or "x")
    if kind == "pow":
        return (core or "x") + "**x" * depth * 3
    suffix = draw(st.sampled_from([".T", "[0]", "(x)", ".y", "[:, 0]", "[...]"]))
    return (core or "x") + suffix * depth * 3


def _fuzz_settings(n: int = FUZZ_EXAMPLES):
    # deadline=None: a slow, loaded CI machine must not turn timing into flaky failures; hangs
    # are caught by the hard time_limit instead
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------------------------------------
# the properties
# ---------------------------------------------------------------------------------------------
@_fuzz_settings()
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=60))
def test_random_text(robustness_tally, text):
    check_text(text, robustness_tally, "parse inputs: random text")


@_fuzz_settings()
@given(st.lists(st.sampled_from(TOKENS), max_size=20).map("".join))
def test_token_soup(robustness_tally, text):
    check_text(text, robustness_tally, "parse inputs: token soup")


@_fuzz_settings()
@given(st.lists(st.sampled_from(TOKENS), max_size=20).map(" ".join))
def test_spaced_token_soup(robustness_tally, text):
    check_text(text, robustness_tally, "parse inputs: token soup")


@_fuzz_settings()
@given(st.data())
def test_mutated_valid_expressions(robustness_tally, data):
    text = _mutate(data, data.draw(st.sampled_from(VALID), label="seed"))
    check_text(text, robustness_tally, "parse inputs: mutations")


@_fuzz_settings()
@given(st.sampled_from(VALID), st.sampled_from(PAYLOADS), st.integers(0, 10_000),
       st.sampled_from(["", " ", "+", ", ", "(", ")", "[", "\n", ";", "*"]))
def test_payload_spliced_into_valid_expression(robustness_tally, seed, payload, at, glue):
    at %= len(seed) + 1
    check_text(seed[:at] + glue + payload + seed[at:], robustness_tally,
               "parse inputs: payload splices")


@_fuzz_settings(max(50, FUZZ_EXAMPLES // 5))
@given(deep_texts())
def test_deep_brackets_and_chains(robustness_tally, text):
    check_text(text, robustness_tally, "parse inputs: deep nesting")


# ---------------------------------------------------------------------------------------------
# fixed inputs: every seed parses, every payload is refused, the very deep cases
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", VALID)
def test_seed_corpus_is_valid(text, robustness_tally):
    assert check_text(text, robustness_tally, "parse inputs: fixed") == "expr"


@pytest.mark.parametrize("text", PAYLOADS)
def test_every_payload_is_a_parse_error(text, robustness_tally):
    assert check_text(text, robustness_tally, "parse inputs: fixed") == "ParseError"


@pytest.mark.parametrize("text", [
    "(" * 100_000 + "x" + ")" * 100_000,
    "(" * 100_000,
    ")" * 100_000,
    "[" * 50_000 + "]" * 50_000,
    "-" * 100_000 + "x",
    "x" + "**x" * 30_000,
    "exp(" * 20_000 + "x" + ")" * 20_000,
    "x" + ".T" * 50_000,
    "x" + "[0]" * 30_000,
    "+".join(["x"] * 30_000),
    "x" + " " * 1_000_000,
    "#" * 1_000_000,
    "\\\n" * 100_000 + "x",
], ids=["parens-1e5", "open-1e5", "close-1e5", "lists-5e4", "neg-1e5", "pow-3e4",
        "calls-2e4", "T-5e4", "sub-3e4", "sum-3e4", "blank-1e6", "comment-1e6",
        "continuations-1e5"])
def test_very_deep_texts(text, robustness_tally):
    check_text(text, robustness_tally, "parse inputs: fixed")


def test_sentinel_would_catch_execution(tmp_path):
    """The harness itself: an eval of a payload trips the sentinel (so a silent pass means
    nothing ran, not that the check is blind)."""
    before = len(_EXECUTED)
    eval(PAYLOADS[0])  # noqa: S307 - deliberately, to prove the sentinel works
    assert len(_EXECUTED) == before + 2  # the watched eval and the sentinel call
    del _EXECUTED[before:]
