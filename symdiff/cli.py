"""The ``symdiff`` command: ``symdiff demo``, ``symdiff grad "EXPR" --wrt x,y`` and
``symdiff report "EXPR" --wrt x,y -o page.html``.

``demo`` is the main job: Goodfellow's MLP loss compiled into a gradient function, checked
against finite differences, its pruned gradient graph summarized and its NumPy code shown; then
the XOR network trained to zero error with the compiled gradient.
"""
from __future__ import annotations

import argparse
import sys
import time
import unicodedata
import warnings
from collections import Counter

import numpy as np

from .errors import SymdiffError
from .graph import toposort


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def demo(args) -> int:
    """Run the demonstration; returns the exit status (0 when every check holds)."""
    from .grad import grad, gradient_nodes
    from .tools.check import check_grad
    from .tools.inspect import pretty
    from .training.models import XOR_SOLUTION, XOR_X, XOR_Y, mlp_loss, train_xor, xor_network
    from .compiler import compile as compile_fn, compile_grad

    rng = np.random.default_rng(0)
    n, d, hidden, classes = 32, 6, 16, 3
    model = mlp_loss(n, d, hidden, classes, lam=1e-3)
    _section("Goodfellow 6.5.7: MLP with softmax cross-entropy and weight decay")
    print(f"J = {model.loss}")
    start = time.perf_counter()
    grads = grad(model.loss, model.params)
    fn = compile_grad(model.loss, model.params)
    elapsed = time.perf_counter() - start
    forward = toposort([model.loss])
    full = toposort([model.loss, *grads])
    added = gradient_nodes([model.loss, *grads])
    new = [node for node in full if id(node) in added]
    print(f"forward graph: {len(forward)} nodes; value+gradient graph: {len(full)} nodes "
          f"({len(new)} added by build_grad); grad + compile took {elapsed * 1e3:.1f} ms")
    print("gradient nodes by op:", ", ".join(
        f"{op} {count}" for op, count in Counter(n.op.name for n in new if n.op).most_common()))

    labels = rng.integers(0, classes, n)
    point = {"X": rng.normal(size=(n, d)), "Y": np.eye(classes)[labels],
             "W1": rng.normal(0, 0.3, (d, hidden)), "b1": np.zeros(hidden),
             "W2": rng.normal(0, 0.3, (hidden, classes)), "b2": np.zeros(classes)}
    value, _ = fn(**point)
    print(f"J at a random point = {float(value):.6f}")
    report = check_grad(model.loss, model.params, point)
    print(report)

    _section("The gradient graph (one line per node; [grad] = added by build_grad)")
    listing = pretty(*grads).splitlines()
    shown = listing if args.full else listing[:12] + [f"   ... ({len(listing) - 24} lines)"] + \
        listing[-12:]
    print("\n".join(shown))

    _section("Generated NumPy code for value and gradients")
    print(fn.source if args.full else "\n".join(fn.source.splitlines()[:40]) + "\n    ...")

    _section("Goodfellow 6.1: XOR")
    xor = xor_network(hidden=2)
    exact = compile_fn(xor.output, [xor.data[0], *xor.params])(XOR_X, **XOR_SOLUTION)
    print(f"the book's ReLU solution f(x) = w^T max(0, W^T x + c) + b gives {exact.tolist()}")
    params, losses = train_xor(seed=0)
    trained = xor_network(hidden=8)
    predictions = compile_fn(trained.output, [trained.data[0], *trained.params])(
        XOR_X, **params)
    for step in (0, 100, 300, 1000, len(losses) - 1):
        print(f"  step {step:>5}: loss {losses[step]:.3e}")
    errors = int(np.sum(np.round(predictions) != XOR_Y))
    print(f"trained predictions {np.round(predictions, 4).tolist()} -> {errors} errors")
    ok = report.ok and errors == 0 and np.allclose(exact, XOR_Y)
    print("\ndemo:", "all checks hold" if ok else "A CHECK FAILED")
    return 0 if ok else 1


def _name(text: str) -> str:
    """A variable name as symdiff stores it (NFKC, as Python identifiers)."""
    return unicodedata.normalize("NFKC", text.strip())


def _parse_shapes(items) -> dict:
    """``--shape W=8x20 --shape x=20`` or ``--shape W=8x20,x=20`` as a dict of shapes."""
    shapes = {}
    for item in (part for group in items or [] for part in group.split(",") if part.strip()):
        name, _, dims = item.partition("=")
        try:
            shapes[_name(name)] = tuple(int(v) for v in dims.lower().split("x") if v)
        except ValueError:
            raise SymdiffError(f"--shape {item!r}: expected NAME=DIMxDIM, e.g. W=8x20") from None
    return shapes


def _check_names(option: str, names, by_name: dict) -> None:
    """SymdiffError (exit status 2) for a name that is not a variable of the expression."""
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SymdiffError(f"{option}: {', '.join(map(repr, unknown))} "
                           f"{'is' if len(unknown) == 1 else 'are'} not variables of the "
                           f"expression (its variables: {', '.join(sorted(by_name)) or 'none'})")


def _parse_point(text: str | None, variables, rng) -> dict:
    given = {}
    for item in (text or "").split(","):
        if item.strip():
            name, _, value = item.partition("=")
            try:
                given[_name(name)] = float(value)
            except ValueError:
                raise SymdiffError(f"--at {item!r}: expected NAME=NUMBER") from None
    _check_names("--at", given, {v.name: v for v in variables})
    point = {}
    for v in variables:
        if v.name in given:
            point[v.name] = np.full(v.shape, given[v.name])
        else:
            point[v.name] = rng.normal(size=v.shape)
    return point


def grad_command(args) -> int:
    """Print the derivative of EXPR w.r.t. the --wrt variables, its code and its numbers."""
    from .grad import grad
    from .compiler import compile
    from .interop.parse import parse
    from .errors import SymdiffWarning
    from .graph import free_vars

    shapes = _parse_shapes(args.shape)
    with warnings.catch_warnings():  # an unused --shape is an error below, not a warning
        warnings.simplefilter("ignore", SymdiffWarning)
        expr = parse(args.expr, shapes=shapes)
    variables = free_vars(expr)
    by_name = {v.name: v for v in variables}
    _check_names("--shape", shapes, by_name)
    names = [_name(w) for w in args.wrt.split(",") if w.strip()] if args.wrt else list(by_name)
    _check_names("--wrt", names, by_name)
    wrt = [by_name[n] for n in names]
    expr = _scalar(expr)
    grads = grad(expr, wrt)
    scalar = all(node.shape == () for node in toposort([expr, *grads]))
    print(f"f = {expr}")
    for w, g in zip(wrt, grads):
        print(f"df/d{w.name} = {g}")
        if scalar:
            import sympy
            from .interop.sympy_io import to_sympy
            print(f"   simplified (SymPy): {sympy.simplify(to_sympy(g))}")
    fn = compile([expr, *grads], variables)
    print("\ngenerated code:\n" + fn.source)
    point = _parse_point(args.at, variables, np.random.default_rng(0))
    values = fn(**point)
    print("at " + ", ".join(f"{k}={np.array2string(v, precision=4)}" for k, v in point.items()))
    print(f"  f = {np.array2string(np.asarray(values[0]), precision=6)}")
    for w, g in zip(wrt, values[1:]):
        print(f"  df/d{w.name} = {np.array2string(np.asarray(g), precision=6)}")
    return 0


def report_command(args) -> int:
    """Write the HTML report of EXPR's gradient (explained at --at, others random) to -o."""
    from .interop.parse import parse
    from .errors import SymdiffWarning
    from .graph import free_vars
    from .tools.report import report

    shapes = _parse_shapes(args.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SymdiffWarning)
        expr = parse(args.expr, shapes=shapes)
    variables = free_vars(expr)
    by_name = {v.name: v for v in variables}
    _check_names("--shape", shapes, by_name)
    names = [_name(w) for w in args.wrt.split(",") if w.strip()] if args.wrt else list(by_name)
    _check_names("--wrt", names, by_name)
    point = _parse_point(args.at, variables, np.random.default_rng(0))
    path = report(_scalar(expr), args.output, at=point, wrt=[by_name[n] for n in names],
                  title=f"f = {args.expr}")
    print(f"wrote {path}")
    return 0


def _scalar(expr):
    """A non-scalar expression is differentiated through its sum (printed as such)."""
    from . import ops
    return expr if expr.shape == () else ops.sum(expr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="symdiff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="compile, check and train the lecture notes' models")
    p_demo.add_argument("--full", action="store_true", help="print whole listings")
    p_grad = sub.add_parser("grad", help="differentiate an expression")
    p_grad.add_argument("expr", help='e.g. "sum(u * tanh(W @ x + b))"')
    p_grad.add_argument("--wrt", help="comma-separated variables (default: all)")
    p_grad.add_argument("--shape", action="append",
                        help="NAME=DIMxDIM[,NAME=DIM...], e.g. W=8x20,x=20 (repeatable)")
    p_grad.add_argument("--at", help="NAME=NUMBER,... (others random)")
    p_report = sub.add_parser("report", help="write an HTML page about a gradient")
    p_report.add_argument("expr", help='e.g. "sum(relu(W @ x + b))"')
    p_report.add_argument("--wrt", help="comma-separated variables (default: all)")
    p_report.add_argument("--shape", action="append",
                          help="NAME=DIMxDIM[,NAME=DIM...], e.g. W=8x20,x=20 (repeatable)")
    p_report.add_argument("--at", help="NAME=NUMBER,... (others random)")
    p_report.add_argument("-o", "--output", default="report.html", help="the page to write")
    args = parser.parse_args(argv)
    commands = {"demo": demo, "grad": grad_command, "report": report_command}
    try:
        return commands[args.command](args)
    except SymdiffError as exc:
        print(f"symdiff: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
