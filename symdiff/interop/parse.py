"""``parse(text, shapes)``: a safe parser of Python-style expression text into a graph.

The text goes through ``ast.parse(text, mode="eval")`` and the tree is checked against a strict
whitelist while it is converted; nothing is ever evaluated (no ``eval``/``exec``/``compile``),
no attribute of any Python object is looked up by a name taken from the text, and the only
functions that can be called are the builders in :data:`symdiff.ops.FUNCTIONS`.

Accepted (anything else is a :class:`~symdiff.errors.ParseError`):

* names (variables; ``shapes.get(name, ())`` gives the shape, float64), except names starting
  with ``__``; numbers (int, float); ``True``/``False``;
* ``+ - * / ** @``, unary ``-``/``+``, one comparison ``< <= > >= == !=`` (chains are an
  error), parentheses, ``expr.T`` (the only attribute);
* calls ``f(...)`` of a name in ``FUNCTIONS`` with positional and keyword arguments; an argument
  may be an expression, a number, ``True``/``False``, or a (nested) list/tuple of those. A list
  holding expressions is accepted only by ``concatenate``/``stack``. ``max(a, b)``/``min(a, b)``
  (two or more positional arguments, no keywords) are elementwise (``maximum``/``minimum``,
  folded left for more than two, as Python's builtins); ``max(x)``, ``max(x, axis=k)`` reduce;
* subscripts ``x[...]`` of integer literals, slices with integer-literal bounds, ``...``,
  lists of integer literals (gather) and tuples of those.

Numbers. Unary minus/plus of a literal number, and ``+ - * / **`` between two literal numbers,
are folded in Python (``reshape(x, (2 * 3, -1))`` works and ``x32 * (1 / 2)`` stays float32, as
a Python number would). A folded integer outside the int64 range becomes a float (so does an
integer literal outside int64); ``1 / 0``, ``(-8) ** 0.5`` (complex) or an overflowing fold is a
ParseError. An integer power is folded only while the exact result has at most 4096 bits; larger
ones are computed as floats. Every other mix of numbers (``True + 1``, ``1 < 2``) builds
constant nodes through the ordinary ``Expr`` operators.

Errors. Every ParseError carries ``.position``, the 0-based *character* offset into ``text``
(ast's UTF-8 byte columns are converted; lines may end in ``\\n``, ``\\r\\n`` or ``\\r``). A
:class:`~symdiff.errors.SymdiffError` raised while building a node (a ``ShapeError`` for
mismatched shapes, a ``DTypeError``...) is re-raised as the same class with
``" (at position N)"`` appended to its message and ``.position``/``.text`` attributes set; a
Python error from a builder called with unsuitable arguments becomes a ParseError naming the
function. The conversion of the tree uses an explicit stack, never recursion.

Limits of ``ast.parse`` itself (CPython 3.11): at most 200 nested brackets; roughly 1000 nested
unary operators or right-associative ``**``; and the C code turning the parse into ``ast``
objects stops at about 3 x ``sys.getrecursionlimit()`` levels, so a left-deep chain such as
``x + x + ... + x`` longer than about 3000 terms fails with RecursionError. Such a chain (up to
:data:`DEEP_PARSE_MAX_CHARS` characters) is split at its top-level operators (found with the
``tokenize`` module) and parsed in pieces of a few hundred terms, left to right, which gives the
very tree the whole text would. A long chain inside brackets (a call argument, a list item, a
parenthesized operand) is parsed on its own the same way and stands in the text as a
placeholder name of the same length, so every other position is unchanged. No process-wide
state (the recursion limit, a thread's stack size) is touched, so a 100,000-term sum parses
while other threads run. A deep nesting that is not a chain (10,000 brackets, unary minuses or
``.T``; a chain inside a subscript) is a ParseError.
"""
from __future__ import annotations

import ast
import bisect
import inspect
import io
import keyword
import operator
import re
import tokenize
import unicodedata
import warnings
from collections.abc import Mapping

from ..errors import ParseError, ShapeError, SymdiffError, SymdiffWarning
from ..graph import Expr, as_expr, normalize_shape, var
from ..ops import FUNCTIONS, REGISTRY

__all__ = ["parse", "DEEP_PARSE_MAX_CHARS"]

#: Longest text split into pieces when ``ast.parse`` hits its depth limit on a long chain
#: (0 refuses such texts).
DEEP_PARSE_MAX_CHARS = 1_000_000

_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1
_MAX_EXACT_POW_BITS = 4096

# conversion contexts
_EXPR = 0   # an expression operand: Expr or Python number
_ARG = 1    # a call argument: as _EXPR, plus (nested) lists/tuples
_INDEX = 2  # the whole subscript: an index item or a tuple of them
_ITEM = 3   # one index item: int literal, slice, ..., list of ints
_INTS = 4   # inside an index list: int literal or nested list of them
_INT = 5    # an int literal (optionally signed): slice bounds

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow, ast.MatMult: operator.matmul,
           ast.Mod: operator.mod}
_BINOP_TEXT = {ast.FloorDiv: "//", ast.LShift: "<<", ast.RShift: ">>",
               ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&"}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
           ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}
_CMP_TEXT = {ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
_FOLDABLE = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_SYMBOL_OPS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "@": ast.MatMult,
               "%": ast.Mod,
               "<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE, "==": ast.Eq,
               "!=": ast.NotEq}

_DESCRIBE = {
    ast.Lambda: "lambda", ast.ListComp: "a list comprehension",
    ast.SetComp: "a set comprehension", ast.DictComp: "a dict comprehension",
    ast.GeneratorExp: "a generator expression", ast.Dict: "a dict literal",
    ast.Set: "a set literal", ast.IfExp: "a conditional expression (if/else)",
    ast.NamedExpr: "an assignment expression (:=)", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield", ast.BoolOp: "'and'/'or'", ast.Starred: "a starred expression",
    ast.Slice: "a slice outside a subscript",
}

# functions taking a list of expressions, and the parameter that does
# functions taking a list of expressions (their parameter ``xs``): concatenate, stack
_LIST_FUNCTIONS = {name: "xs" for name, fn in FUNCTIONS.items()
                   if "xs" in inspect.signature(fn).parameters}


# ---------------------------------------------------------------------------------------------
# positions: ast (line, UTF-8 byte column) -> character offset into the original text
# ---------------------------------------------------------------------------------------------
class _Source:
    def __init__(self, text: str, skip: int, body: str | None = None):
        self.text = text
        # offset of body[0] in text: the leading whitespace stripped before ast.parse, or the
        # start of one piece of a long chain (see _parse_long_chain)
        self.skip = skip
        body = text[skip:] if body is None else body
        self.body = body
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", body)]
        self._encoded: dict[int, bytes] = {}

    def clamp(self, pos: int) -> int:
        return max(0, min(int(pos), len(self.text)))

    def _line(self, index: int) -> str:
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.body)
        return self.body[start:end]

    def at(self, lineno, col, chars=False) -> int:
        """Offset of (1-based ``lineno``, ``col``); ``col`` in UTF-8 bytes unless ``chars``."""
        if not lineno or lineno < 1:
            return self.clamp(self.skip + (col or 0) if chars else self.skip)
        index = min(lineno, len(self.starts)) - 1
        col = max(0, col or 0)
        if not chars:
            line = self._line(index)
            if not line.isascii():
                data = self._encoded.get(index)
                if data is None:
                    data = self._encoded[index] = line.encode("utf-8", "surrogatepass")
                col = len(data[:col].decode("utf-8", "ignore"))
        return self.clamp(self.skip + self.starts[index] + col)

    def start(self, node) -> int:
        return self.at(getattr(node, "lineno", None), getattr(node, "col_offset", 0))

    def end(self, node) -> int:
        return self.at(getattr(node, "end_lineno", None), getattr(node, "end_col_offset", 0))

    def next_token(self, pos: int) -> int:
        """First offset at or after ``pos`` that is not blank, ')', a comment or a backslash
        continuation: where the operator after an operand's end is."""
        text, n = self.text, len(self.text)
        while pos < n:
            ch = text[pos]
            if ch in " \t\f\r\n)\\":
                pos += 1
            elif ch == "#":
                while pos < n and text[pos] not in "\r\n":
                    pos += 1
            else:
                break
        return self.clamp(pos)

    def error(self, message: str, pos: int) -> ParseError:
        return ParseError(message, self.clamp(pos), self.text)


# ---------------------------------------------------------------------------------------------
# ast.parse, with its failures turned into ParseError
# ---------------------------------------------------------------------------------------------
def _syntax_error(exc: BaseException, src: _Source) -> ParseError:
    msg = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    lineno, offset = getattr(exc, "lineno", None), getattr(exc, "offset", None)
    if lineno is None:
        if "\0" in src.text:
            pos = src.text.index("\0")
        elif isinstance(exc, UnicodeError) and isinstance(getattr(exc, "start", None), int):
            pos = src.skip + exc.start
        else:
            pos = 0
    elif lineno < 1:
        pos = src.skip
    elif not offset or offset < 1:
        # no column: CPython reports the unexpected end of the text (e.g. "x @") so
        index = min(lineno, len(src.starts)) - 1
        pos = src.at(lineno, len(src._line(index).rstrip("\r\n")), chars=True)
    else:
        # SyntaxError.offset is a 1-based character column (CPython >= 3.10)
        pos = src.at(lineno, offset - 1, chars=True)
    return src.error(f"syntax error: {msg}", pos)


def _too_deep(src: _Source, why: str) -> ParseError:
    return src.error(
        f"expression too deeply nested for Python's parser ({why}); Python accepts at most "
        f"200 nested brackets and about 1000 nested unary operators or '**'", 0)


def _quiet_ast_parse(body: str) -> ast.Expression:
    """``ast.parse`` without the SyntaxWarning/DeprecationWarning noise CPython emits for
    odd text (``1if``, ``'\\d'``): the text is rejected or accepted on its own merits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(body, mode="eval")


class _TooDeep(Exception):
    """ast.parse gave up on the nesting depth (its C recursion guard)."""


def _ast_parse(src: _Source) -> ast.Expression:
    """``ast.parse`` of ``src.body``; _TooDeep when it hits its depth limit, ParseError for
    anything else it refuses."""
    try:
        return _quiet_ast_parse(src.body)
    except (RecursionError, SystemError):
        raise _TooDeep from None
    except MemoryError:
        raise _too_deep(src, "parser stack exhausted") from None
    except (SyntaxError, ValueError, TypeError, OverflowError) as exc:
        raise _syntax_error(exc, src) from None


# ---------------------------------------------------------------------------------------------
# long left-deep chains, split into pieces ast.parse can take (no recursion limit is changed)
# ---------------------------------------------------------------------------------------------
_PIECE_TERMS = 256  # terms per ast.parse call: far below ast's ~3000-level limit
_CHAIN = "__chain"  # stands for the value of the pieces before (user text cannot say "__")
# binary operators by precedence level, lowest first (Python's table); ** is right-associative
_LEVELS = ({"<", "<=", ">", ">=", "==", "!="}, {"+", "-"}, {"*", "/", "@", "//", "%"})
_OPERAND_END = {")", "]", "}", "..."}
_SKIPPED_TOKENS = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER,
                   tokenize.INDENT, tokenize.DEDENT)


def _ends_operand(tok) -> bool:
    """True when ``tok`` (the token before an operator) ends an operand, so the operator is
    binary (``a - b``), not unary (``(-b``, ``, -b``)."""
    if tok is None:
        return False
    if tok.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING):
        return not keyword.iskeyword(tok.string) or tok.string in ("True", "False", "None")
    return tok.string in _OPERAND_END


def _top_level_operators(src: _Source):
    """(level, start, end) of each binary operator outside brackets, offsets into the text, or
    None when the body cannot be tokenized (then ast.parse's own error stands)."""
    found = []
    depth = 0
    previous = None  # the last significant token: tells binary from unary + and -
    try:
        tokens = tokenize.generate_tokens(io.StringIO(src.body, newline="").readline)
        for tok in tokens:
            if tok.type in _SKIPPED_TOKENS:
                continue
            text = tok.string
            if tok.type == tokenize.OP and text in "([{":
                depth += 1
            elif tok.type == tokenize.OP and text in ")]}":
                depth -= 1
            elif depth == 0 and tok.type == tokenize.OP and _ends_operand(previous):
                for level, symbols in enumerate(_LEVELS):
                    if text in symbols:
                        (row, col), (end_row, end_col) = tok.start, tok.end
                        found.append((level, src.at(row, col, chars=True),
                                      src.at(end_row, end_col, chars=True)))
            previous = tok
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    return found


def _parse_long_chain(src: _Source, table: dict, found: dict):
    """The value of ``src.body`` when it is a chain of left-associative binary operators too
    long for ``ast.parse`` (``x + x + ... + x``), or None when it is not.

    The chain is split at the operators of its lowest precedence level outside brackets, and
    the pieces are parsed one after another, each as ``__chain op term op term ...`` with
    ``__chain`` standing for the value of the pieces before: left-to-right evaluation of a
    left-associative chain, exactly as the whole tree would give. A piece still too deep (a
    term that is itself a long chain of a higher level) is taken term by term, each term split
    the same way; the levels bound that nesting to three. Positions in errors stay exact: each
    piece's source knows its offset in the original text.
    """
    operators = _top_level_operators(src)
    if not operators:
        return None
    lowest = min(level for level, _, _ in operators)
    cuts = [(start, end) for level, start, end in operators if level == lowest]
    if lowest == 0 and len(cuts) > 1:
        raise src.error("chained comparisons (a < b < c) are not supported; compare two "
                        "operands at a time", cuts[1][0])
    stop = src.skip + len(src.body)
    value = _MISSING
    for first in range(0, len(cuts) + 1, _PIECE_TERMS):
        start = src.skip if first == 0 else cuts[first - 1][0]
        last = first + _PIECE_TERMS
        end = cuts[last - 1][0] if last <= len(cuts) else stop
        value = _parse_piece(src, start, end, value, table, found)
    return value


_MISSING = object()


def _span(src: _Source, start: int, end: int) -> str:
    """The part of ``src.body`` between two offsets into the text."""
    return src.body[start - src.skip:end - src.skip]


def _parse_piece(src: _Source, start: int, end: int, before, table: dict, found: dict):
    """The value of the span ``start:end`` of ``src`` (a piece of a chain that begins with its
    operator unless it is the first), with ``before`` the value of the chain up to ``start``."""
    piece = _piece_source(src, start, end, before)
    try:
        tree = _ast_parse(piece)
    except _TooDeep:
        return _parse_terms(src, start, end, before, table, found)
    placeholders = None if before is _MISSING else {(_CHAIN, 1, 0): before}
    converter = _Converter(piece, table, found, placeholders)
    return converter.convert(tree.body)


def _piece_source(src: _Source, start: int, end: int, before) -> _Source:
    """The span ``start:end`` of ``src``, headed by the placeholder ``__chain`` when a value
    comes before it (the piece then starts with its operator); offsets stay those of the
    text."""
    if before is _MISSING:
        return _Source(src.text, start, _span(src, start, end))
    return _Source(src.text, start - len(_CHAIN), _CHAIN + _span(src, start, end))


def _parse_terms(src: _Source, start: int, end: int, before, table: dict, found: dict):
    """A piece term by term: each term parsed on its own (as a chain of a higher level if it
    is one), combined with the value before through the piece's operators."""
    piece = _piece_source(src, start, end, before)
    operators = _top_level_operators(piece)
    if not operators:
        raise _too_deep(piece, "recursion limit")
    lowest = min(level for level, _, _ in operators)
    cuts = [(s, e) for level, s, e in operators if level == lowest]
    combine = _Converter(piece, table, found)
    if before is _MISSING:  # the first term of the whole chain
        before = _parse_term(src, start, cuts[0][0], table, found)
    for k, (op_start, op_end) in enumerate(cuts):
        term_end = cuts[k + 1][0] if k + 1 < len(cuts) else end
        term = _parse_term(src, op_end, term_end, table, found)
        before = combine.chain_link(_span(src, op_start, op_end), before, term, op_start)
    return before


def _parse_term(outer: _Source, start: int, end: int, table: dict, found: dict):
    """The value of the span ``start:end`` of ``outer``, one operand of a chain or one
    bracketed element, parsed on its own (and, if still too deep, split again)."""
    body = _span(outer, start, end)
    stripped = body.lstrip(" \t\f\r\n")
    src = _Source(outer.text, start + len(body) - len(stripped), _one_line(stripped))
    try:
        tree = _ast_parse(src)
    except _TooDeep:
        return _parse_deep(src, table, found)
    return _Converter(src, table, found).convert(tree.body)


def _one_line(body: str) -> str:
    """``body`` with its comments, line breaks and line continuations blanked, one character
    for one (so every offset is kept): a bracketed element parsed outside its brackets may
    span lines, which Python allows only inside brackets."""
    if "\n" not in body and "\r" not in body:
        return body
    wrapped = _Source("(" + body + ")", 0)  # tokenized inside brackets, as in the text
    chars = list(body)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(wrapped.body, newline="").readline):
            if tok.type == tokenize.COMMENT:
                start = wrapped.at(*tok.start, chars=True) - 1
                end = wrapped.at(*tok.end, chars=True) - 1
                chars[start:end] = " " * (end - start)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return body
    for i, char in enumerate(chars):
        if char in "\r\n" or (char == "\\" and i + 1 < len(chars) and chars[i + 1] in "\r\n"):
            chars[i] = " "
    return "".join(chars)


def _parse_deep(src: _Source, table: dict, found: dict):
    """The value of a text too deep for ``ast.parse``: a long chain at its top level is parsed
    piecewise; otherwise long chains inside brackets (call arguments, list items, parentheses)
    are parsed on their own and stand in the text as placeholders of the same length (so every
    other position is unchanged). Anything else too deep is a ParseError."""
    value = _parse_long_chain(src, table, found)
    if value is not None:
        return value
    spans = _long_elements(src)
    if not spans:
        raise _too_deep(src, "recursion limit")
    masked = list(src.body)
    placeholders = {}
    for k, (start, end) in enumerate(spans):
        name = f"{_GROUP}{k}"
        first = start - src.skip
        for i in range(first, end - src.skip):
            if masked[i] not in "\r\n":
                masked[i] = " "
        masked[first:first + len(name)] = name
        line = bisect.bisect_right(src.starts, first) - 1
        column = len(src.body[src.starts[line]:first].encode("utf-8", "surrogatepass"))
        placeholders[(name, line + 1, column)] = _parse_term(src, start, end, table, found)
    outer = _Source(src.text, src.skip, "".join(masked))
    try:
        tree = _ast_parse(outer)
    except _TooDeep:
        raise _too_deep(src, "recursion limit") from None
    return _Converter(outer, table, found, placeholders).convert(tree.body)


_GROUP = "__group"  # stands for a long bracketed chain parsed on its own


def _long_elements(src: _Source) -> list:
    """(start, end) text offsets of the bracketed elements (a call argument or keyword value,
    a list or tuple item, a parenthesized expression; never a subscript) that hold at least
    ``_PIECE_TERMS`` binary operators at their own level, outermost only."""
    spans = []
    groups = []  # per open bracket: [element start, operator count, usable, tokens in element]
    previous = None
    try:
        tokens = tokenize.generate_tokens(io.StringIO(src.body, newline="").readline)
        for tok in tokens:
            if tok.type in _SKIPPED_TOKENS:
                continue
            text = tok.string
            offset = src.at(*tok.start, chars=True)
            end = src.at(*tok.end, chars=True)
            if tok.type == tokenize.OP and text in "([{":
                subscript = text == "[" and _ends_operand(previous)
                groups.append([end, 0, not subscript and text != "{", 0])
            elif groups and tok.type == tokenize.OP and text in ",)]}":
                start, count, usable, _ = groups[-1]
                if usable and count >= _PIECE_TERMS:
                    spans.append((start, offset))
                if text == ",":
                    groups[-1][:2], groups[-1][3] = [end, 0], 0
                else:
                    groups.pop()
            elif groups:
                group = groups[-1]
                if tok.type == tokenize.OP and text == "=" and group[3] == 1:
                    group[0], group[1] = end, 0  # a keyword argument: its value
                elif tok.type == tokenize.OP and text in (":", ":="):
                    group[2] = False  # a slice, a lambda or a walrus: left to ast
                elif tok.type == tokenize.OP and _ends_operand(previous) and any(
                        text in symbols for symbols in _LEVELS):
                    group[1] += 1
            if groups and not (tok.type == tokenize.OP and text in "([{"):
                groups[-1][3] += 1
            previous = tok
    except (tokenize.TokenError, SyntaxError, ValueError):
        return []
    spans.sort(key=lambda span: (span[0], -span[1]))
    outermost = []
    for span in spans:
        if not outermost or span[0] >= outermost[-1][1]:
            outermost.append(span)
    return outermost


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------
def _shape_table(shapes) -> dict:
    if shapes is None:
        return {}
    if not isinstance(shapes, Mapping):
        raise ShapeError(f"shapes must be a dict mapping variable names to shapes, "
                         f"got {type(shapes).__name__}")
    table: dict = {}
    for name, shape in shapes.items():
        if not isinstance(name, str):
            raise ShapeError(f"shapes: keys must be variable names (str), got {name!r}")
        what = f"shape of variable {name!r}"
        if isinstance(shape, (str, bytes)) or shape is None:
            raise ShapeError(f"{what} must be a tuple of ints, got {shape!r}")
        try:
            dims = normalize_shape(shape, what)
        except ShapeError:
            raise
        except Exception:  # an object normalize_shape cannot digest
            raise ShapeError(f"{what} must be a tuple of ints, got {shape!r}") from None
        key = unicodedata.normalize("NFKC", name)  # Python normalizes identifiers so
        if table.get(key, dims) != dims:
            raise ShapeError(f"shapes: {name!r} given twice with different shapes")
        table[key] = dims
    return table


# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fit_int(v):
    """An int outside int64 as a float (raises OverflowError if even that cannot hold it)."""
    if isinstance(v, int) and not isinstance(v, bool) and not _INT64_MIN <= v <= _INT64_MAX:
        return float(v)
    return v


def _fold(op, a, b):
    """``a op b`` for two Python numbers, or raise ArithmeticError/ValueError."""
    if op is ast.Pow and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 \
            and a.bit_length() * b > _MAX_EXACT_POW_BITS:
        result = float(a) ** b
    else:
        result = _BINOPS[op](a, b)
    if isinstance(result, complex):
        raise ValueError("the result is complex")
    return _fit_int(result)


def _contains_expr(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Expr):
            return True
        if isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


# ---------------------------------------------------------------------------------------------
# the converter
# ---------------------------------------------------------------------------------------------
class _Converter:
    def __init__(self, src: _Source, shapes: dict, found: dict | None = None,
                 placeholders: dict | None = None):
        self.src = src
        self.shapes = shapes
        self.vars: dict[str, Expr] = {} if found is None else found
        # (name, line, UTF-8 column) -> value: the stand-ins of parts parsed on their own (a
        # long chain's earlier pieces, a long bracketed chain); matched by position, so a name
        # the user wrote is never taken for one
        self.placeholders = placeholders or {}

    def fail(self, message: str, node=None, pos: int | None = None) -> ParseError:
        return self.src.error(message, self.src.start(node) if pos is None else pos)

    # -- pre-order check: which children, in which context -----------------------------------
    def visit(self, node, ctx):
        """Return ``("leaf", value)`` or ``("node", [(child, ctx), ...])``."""
        t = type(node)
        if t is ast.Constant:
            return "leaf", self.constant(node, ctx)
        if t is ast.Name:
            if ctx >= _INDEX:
                raise self.fail(self.index_message(ctx, f"variable {node.id!r}"), node)
            return "leaf", self.name(node)
        if t is ast.UnaryOp:
            op = type(node.op)
            if op is ast.Not:
                raise self.fail("'not' is not supported (use comparisons and where)", node)
            if op is ast.Invert:
                raise self.fail("'~' is not supported", node)
            return "node", [(node.operand, _INT if ctx >= _INDEX else _EXPR)]
        if ctx >= _INDEX:
            return "node", self.visit_index(node, ctx)
        if t is ast.BinOp:
            op = type(node.op)
            if op not in _BINOPS:
                sym = _BINOP_TEXT.get(op, op.__name__)
                raise self.fail(f"operator {sym!r} is not supported", pos=self.op_pos(node.left))
            return "node", [(node.left, _EXPR), (node.right, _EXPR)]
        if t is ast.Compare:
            if len(node.ops) > 1:
                raise self.fail("chained comparisons (a < b < c) are not supported; compare "
                                "two operands at a time", pos=self.op_pos(node.comparators[0]))
            op = type(node.ops[0])
            if op not in _CMPOPS:
                sym = _CMP_TEXT.get(op, op.__name__)
                raise self.fail(f"comparison {sym!r} is not supported",
                                pos=self.op_pos(node.left))
            return "node", [(node.left, _EXPR), (node.comparators[0], _EXPR)]
        if t is ast.Call:
            return "node", self.visit_call(node)
        if t is ast.Attribute:
            if node.attr != "T":
                raise self.fail(f"attribute {node.attr!r} is not allowed; .T (transpose) is "
                                f"the only attribute", pos=self.src.end(node) - len(node.attr))
            return "node", [(node.value, _EXPR)]
        if t is ast.Subscript:
            return "node", [(node.value, _EXPR), (node.slice, _INDEX)]
        if t in (ast.List, ast.Tuple):
            kind = "list" if t is ast.List else "tuple"
            if ctx != _ARG:
                raise self.fail(f"a {kind} is only allowed as a function argument "
                                f"(e.g. axis=(0, 1), concatenate([a, b]))", node)
            return "node", [(e, _ARG) for e in node.elts]
        raise self.fail(f"{self.describe(node)} is not allowed", node)

    def visit_index(self, node, ctx):
        t = type(node)
        if t is ast.Tuple and ctx == _INDEX:
            return [(e, _ITEM) for e in node.elts]
        if t is ast.Slice and ctx in (_INDEX, _ITEM):
            return [(p, _INT) for p in (node.lower, node.upper, node.step) if p is not None]
        if t in (ast.List, ast.Tuple) and ctx in (_INDEX, _ITEM, _INTS):
            return [(e, _INTS) for e in node.elts]
        what = {ast.Tuple: "a nested tuple", ast.Slice: "a slice here", ast.List: "a list here",
                ast.BinOp: "arithmetic", ast.Compare: "a comparison",
                ast.Call: "a call", ast.Attribute: "an attribute",
                ast.Subscript: "a subscript"}.get(t) or self.describe(node)
        raise self.fail(self.index_message(ctx, what), node)

    @staticmethod
    def index_message(ctx, what) -> str:
        if ctx == _INT:
            return f"expected an integer literal (a slice bound or a signed index), not {what}"
        return (f"{what} is not allowed in a subscript; use integer literals, slices with "
                f"integer bounds, ..., or lists of integers")

    def visit_call(self, node):
        func = node.func
        if type(func) is not ast.Name:
            raise self.fail("only a function name can be called (e.g. exp(x))", func)
        name = func.id
        if name.startswith("__"):
            raise self.fail(f"names starting with '__' are not allowed: {name!r}", func)
        if name not in FUNCTIONS:
            import difflib  # only for this error message (6 ms of `import symdiff`)
            close = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(f"unknown function {name!r}{hint}", func)
        children = []
        for arg in node.args:
            if type(arg) is ast.Starred:
                raise self.fail("starred arguments (*args) are not allowed", arg)
            children.append((arg, _ARG))
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail("**kwargs is not allowed", kw)
            if kw.arg.startswith("__"):
                raise self.fail(f"names starting with '__' are not allowed: {kw.arg!r}", kw)
            children.append((kw.value, _ARG))
        return children

    @staticmethod
    def describe(node) -> str:
        t = type(node)
        return _DESCRIBE.get(t) or f"a {t.__name__} expression"

    def op_pos(self, operand) -> int:
        """Where the operator after ``operand`` is."""
        return self.src.next_token(self.src.end(operand))

    # -- leaves --------------------------------------------------------------------------------
    def constant(self, node, ctx):
        v = node.value
        if ctx >= _INDEX:
            if v is Ellipsis and ctx in (_INDEX, _ITEM):
                return Ellipsis
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            raise self.fail(self.index_message(ctx, self.const_text(v)), node)
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            try:
                return _fit_int(v)
            except OverflowError:
                raise self.fail("integer literal too large", node) from None
        if isinstance(v, float):
            return v
        if isinstance(v, complex):
            raise self.fail("complex numbers are not supported", node)
        raise self.fail(f"{self.const_text(v)} is not allowed", node)

    @staticmethod
    def const_text(v) -> str:
        if v is None:
            return "None"
        if v is Ellipsis:
            return "'...' (outside a subscript)"
        if isinstance(v, str):
            return "a string"
        if isinstance(v, bytes):
            return "a bytes literal"
        if isinstance(v, bool):
            return f"{v!r}"
        if isinstance(v, float):
            return "a float"
        if isinstance(v, complex):
            return "a complex number"
        return type(v).__name__

    def name(self, node) -> Expr:
        name = node.id
        if self.placeholders:
            key = (name, node.lineno, node.col_offset)
            if key in self.placeholders:
                return self.placeholders[key]
        found = self.vars.get(name)
        if found is not None:
            return found
        if name.startswith("__"):
            raise self.fail(f"names starting with '__' are not allowed: {name!r}", node)
        try:
            found = self.vars[name] = var(name, self.shapes.get(name, ()))
        except ParseError:
            raise
        except SymdiffError as exc:
            raise _located(exc, self.src, self.src.start(node)) from None
        return found

    # -- post-order build ----------------------------------------------------------------------
    def build(self, node, vals):
        t = type(node)
        if t is ast.UnaryOp:
            v = vals[0]
            neg = type(node.op) is ast.USub
            if _is_number(v):
                return _fit_int(-v) if neg else v
            v = as_expr(v)
            return -v if neg else v
        if t is ast.BinOp:
            return self.binary(type(node.op), *vals, lambda: self.op_pos(node.left))
        if t is ast.Compare:
            return self.binary(type(node.ops[0]), *vals, lambda: self.op_pos(node.left))
        if t is ast.Call:
            return self.call(node, vals)
        if t is ast.Attribute:
            return as_expr(vals[0]).T
        if t is ast.Subscript:
            return as_expr(vals[0])[vals[1]]
        if t is ast.Slice:
            it = iter(vals)
            parts = [None if p is None else next(it) for p in (node.lower, node.upper, node.step)]
            return slice(*parts)
        if t is ast.Tuple:
            return tuple(vals)
        if t is ast.List:
            return list(vals)
        raise AssertionError(f"unexpected node {t.__name__}")  # visit() admits nothing else

    def binary(self, op: type, a, b, where):
        """``a op b`` (an ``ast`` operator class) for two built operands: two literal numbers
        fold in Python, anything else builds a node. ``where()``: the operator's position."""
        if _is_number(a) and _is_number(b) and op in _FOLDABLE:
            try:
                return _fold(op, a, b)
            except (ArithmeticError, ValueError) as exc:
                raise self.fail(f"cannot compute {_num(a)} {_sym(op)} {_num(b)}: {exc}",
                                pos=where()) from None
        if not isinstance(a, Expr) and not isinstance(b, Expr):
            a = as_expr(a)
        return (_BINOPS.get(op) or _CMPOPS[op])(a, b)

    def chain_link(self, symbol: str, a, b, pos: int):
        """``a symbol b`` between two terms of a long chain, its errors located at ``pos``."""
        op = _SYMBOL_OPS.get(symbol)
        if op is None:
            raise self.fail(f"operator {symbol!r} is not supported", pos=pos)
        try:
            return self.binary(op, a, b, lambda: pos)
        except ParseError:
            raise
        except SymdiffError as exc:
            raise _located(exc, self.src, pos) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.fail(f"cannot build {symbol}: {type(exc).__name__}: {exc}",
                            pos=pos) from None

    def build_pos(self, node) -> int:
        """Where to report an error raised while building ``node``."""
        t = type(node)
        if t is ast.BinOp:
            return self.op_pos(node.left)
        if t is ast.Compare:
            return self.op_pos(node.left)
        if t is ast.Subscript:
            return self.op_pos(node.value)
        if t is ast.Attribute:
            return self.src.end(node) - len(node.attr)
        return self.src.start(node)

    def call(self, node, vals):
        name = node.func.id
        nargs = len(node.args)
        args = list(vals[:nargs])
        kwargs = {kw.arg: v for kw, v in zip(node.keywords, vals[nargs:])}
        pairwise = getattr(REGISTRY.get(name), "pairwise", None)
        if pairwise and nargs >= 2 and not kwargs:
            # Python's builtins: max(a, b, ...) is elementwise
            fn = FUNCTIONS[pairwise]
            for i, arg in enumerate(args):
                if isinstance(arg, (list, tuple)):
                    raise self.fail(f"{name}() with several positional arguments is the "
                                    f"elementwise {fn.__name__}; a list/tuple argument is not "
                                    f"accepted there (for a reduction use axis=...)",
                                    node.args[i])
            result = args[0]
            for arg in args[1:]:
                result = fn(result, arg)
            return result
        fn = FUNCTIONS[name]
        sig = inspect.signature(fn).replace(return_annotation=inspect.Signature.empty)
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise self.fail(f"bad call of {name}{sig}: {exc}", node) from None
        params = list(sig.parameters.values())
        arg_nodes = [(params[min(i, len(params) - 1)].name, a)
                     for i, a in enumerate(node.args)] if params else []
        arg_nodes += [(kw.arg, kw.value) for kw in node.keywords]
        for (pname, arg_node), value in zip(arg_nodes, vals):
            if isinstance(value, (list, tuple)) and _contains_expr(value) \
                    and _LIST_FUNCTIONS.get(name) != pname:
                accepted = " and ".join(f"{n}()" for n in _LIST_FUNCTIONS)
                raise self.fail(f"{name}(): a list of expressions is accepted only by "
                                f"{accepted}", arg_node)
        return fn(*args, **kwargs)

    # -- the walk ------------------------------------------------------------------------------
    def convert(self, root):
        VISIT, BUILD = 0, 1
        stack = [(VISIT, root, _EXPR)]
        values: list = []
        while stack:
            phase, node, ctx = stack.pop()
            if phase == VISIT:
                kind, payload = self.visit(node, ctx)
                if kind == "leaf":
                    values.append(payload)
                    continue
                stack.append((BUILD, node, len(payload)))
                for child, child_ctx in reversed(payload):
                    stack.append((VISIT, child, child_ctx))
                continue
            n = ctx  # for BUILD entries the third slot is the number of children
            vals = values[len(values) - n:]
            del values[len(values) - n:]
            try:
                values.append(self.build(node, vals))
            except ParseError:
                raise
            except SymdiffError as exc:
                raise _located(exc, self.src, self.build_pos(node)) from None
            except (TypeError, ValueError, IndexError, KeyError, AttributeError,
                    ArithmeticError, RecursionError) as exc:
                what = (f"{node.func.id}()" if type(node) is ast.Call
                        else type(node).__name__)
                raise self.fail(f"cannot build {what}: {type(exc).__name__}: {exc}",
                                pos=self.build_pos(node)) from None
        (result,) = values
        return result


def _num(v) -> str:
    return f"({v!r})" if v < 0 else repr(v)


def _sym(op) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}[op]


def _located(exc: SymdiffError, src: _Source, pos: int) -> SymdiffError:
    """A new exception of ``exc``'s class whose message ends with the source position."""
    pos = src.clamp(pos)
    message = f"{exc} (at position {pos})"
    try:
        new = type(exc)(message)
    except Exception:
        new = SymdiffError(message)
    try:
        new.position = pos
        new.text = src.text
    except AttributeError:
        pass
    return new


# ---------------------------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------------------------
def parse(text: str, shapes: dict | None = None) -> Expr:
    """Parse Python-style expression ``text`` into a graph, safely (never evaluated).

    ``shapes`` maps variable names to shapes; a name not in it is a scalar (float64) variable,
    the same node as ``sd.var(name, shape)``. See the module docstring for the grammar.

    A ``shapes`` key that names no variable of the text is most likely a typo (its variable
    then silently becomes a scalar), so it gives a :class:`~symdiff.errors.SymdiffWarning`
    naming the key and the variables that fell back to scalars. A warning, not an error: one
    shapes dict may serve several texts. Turn it into an error with
    ``warnings.simplefilter("error", sd.SymdiffWarning)``.

    >>> import symdiff as sd
    >>> e = sd.parse("(x + y) * max(y, z)")
    >>> float(sd.compile(e)(x=1.0, y=2.0, z=0.0))
    6.0
    """
    if not isinstance(text, str):
        raise ParseError(f"text must be a str, got {type(text).__name__}", 0, None)
    table = _shape_table(shapes)
    body = text.lstrip(" \t\f\r\n")  # as eval(): leading blank space is not an indent
    src = _Source(text, len(text) - len(body))
    found: dict = {}
    try:
        tree = _ast_parse(src)
    except _TooDeep:
        result = _long_chain(src, table, found)
    else:
        result = _Converter(src, table, found).convert(tree.body)
    if isinstance(result, (list, tuple, slice)) or result is Ellipsis:
        raise src.error("the text must be one expression", src.skip)
    _warn_unused_shapes(table, found)
    return as_expr(result)


def _long_chain(src: _Source, table: dict, found: dict):
    """A text too deep for ast.parse: a long chain is parsed piecewise, anything else (10,000
    nested brackets or unary minuses) is a ParseError."""
    if len(src.body) > DEEP_PARSE_MAX_CHARS:
        raise src.error(
            f"expression nested too deeply: Python's ast.parse hit its recursion limit and the "
            f"text is longer than {DEEP_PARSE_MAX_CHARS} characters, the most split into "
            f"pieces (symdiff.interop.parse.DEEP_PARSE_MAX_CHARS)", 0)
    return _parse_deep(src, table, found)


def _warn_unused_shapes(table: dict, found: dict) -> None:
    unused = sorted(name for name in table if name not in found)
    if unused:
        scalars = sorted(name for name in found if name not in table)
        fallback = (f"; the text's variables without a shape, {scalars}, are scalars"
                    if scalars else "")
        warnings.warn(f"parse: shapes names {unused}, which the text does not use{fallback}",
                      SymdiffWarning, stacklevel=3)
