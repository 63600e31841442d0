"""The ``symdiff`` command: ``symdiff demo``, ``symdiff grad "EXPR" --wrt x,y`` and
``symdiff report "EXPR" --wrt x,y -o page.html``;
``symdiff check MODULE:forward MODULE:backward --shape x=4x10`` (a hand-written backward
against the exact gradient; exit status 1 when a gradient is wrong).

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


def _check_names(option: str, names, by_name: dict, what: str = "variables of the expression",
                 known: str = "its variables") -> None:
    """SymdiffError (exit status 2) for a name that is not a variable of the expression."""
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SymdiffError(f"{option}: {', '.join(map(repr, unknown))} "
                           f"{'is' if len(unknown) == 1 else 'are'} not {what} "
                           f"({known}: {', '.join(sorted(by_name)) or 'none'})")


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


def _expression_and_wrt(args):
    """EXPR parsed with the --shape shapes, its variables, and the --wrt ones (default all);
    SymdiffError naming a --shape or --wrt name the expression does not have."""
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
    return expr, variables, [by_name[n] for n in names]


def grad_command(args) -> int:
    """Print the derivative of EXPR w.r.t. the --wrt variables, its code and its numbers."""
    from .grad import grad
    from .compiler import compile

    expr, variables, wrt = _expression_and_wrt(args)
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
    from .tools.report import report

    expr, variables, wrt = _expression_and_wrt(args)
    point = _parse_point(args.at, variables, np.random.default_rng(0))
    path = report(_scalar(expr), args.output, at=point, wrt=wrt, title=f"f = {args.expr}")
    print(f"wrote {path}")
    return 0


def _scalar(expr):
    """A non-scalar expression is differentiated through its sum (printed as such)."""
    from . import ops
    return expr if expr.shape == () else ops.sum(expr)


def _load(spec: str, option: str):
    """``MODULE:NAME`` (an importable module or a path to a .py file) as the named object.

    Importing the user's module is the point of the command (as pytest imports test files);
    the text itself is never evaluated."""
    import importlib
    import importlib.util
    import inspect
    import os

    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute.isidentifier():
        raise SymdiffError(f"{option} {spec!r}: expected MODULE:FUNCTION, e.g. layers:forward")
    try:
        if module_name.endswith(".py"):
            if not os.path.exists(module_name):
                raise SymdiffError(f"{option} {spec!r}: no file {module_name!r}")
            name = os.path.splitext(os.path.basename(module_name))[0]
            module_spec = importlib.util.spec_from_file_location(name, module_name)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except SymdiffError:
        raise
    except Exception as exc:  # the user's module failed to import: say which and why
        raise SymdiffError(f"{option} {spec!r}: importing {module_name!r} raised "
                           f"{type(exc).__name__}: {exc}") from None
    target = getattr(module, attribute, None)
    if not callable(target):
        found = [n for n, v in vars(module).items() if inspect.isfunction(v)]
        raise SymdiffError(f"{option} {spec!r}: {module_name!r} has no function {attribute!r} "
                           f"(its functions: {', '.join(found) or 'none'})")
    return target


def _parse_names(items, option: str) -> dict:
    """``--int y=10`` (repeatable or comma-separated) as {name: int}."""
    found = {}
    for item in (part for group in items or [] for part in group.split(",") if part.strip()):
        name, _, value = item.partition("=")
        try:
            found[_name(name)] = int(value)
        except ValueError:
            raise SymdiffError(f"{option} {item!r}: expected NAME=INTEGER") from None
    return found


def check_command(args) -> int:
    """Check a hand-written backward against the exact gradient of its forward at random
    inputs; prints the report; 0 when right, 1 when a gradient is wrong."""
    import inspect
    from .testing import check_backward

    forward = _load(args.forward, "FORWARD")
    backward = _load(args.backward, "BACKWARD")
    shapes = _parse_shapes(args.shape)
    integers = _parse_names(args.int, "--int")
    positive = {_name(n) for group in args.positive or [] for n in group.split(",") if n.strip()}
    params = [p for p in inspect.signature(forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
    known = {n: None for n in names}
    for option, given in (("--shape", shapes), ("--int", integers), ("--positive", positive)):
        _check_names(option, given, known, "among the parameters of the forward",
                     "its parameters")
    rng = np.random.default_rng(args.seed)
    inputs = []
    for p in params:
        if p.name not in shapes:
            if p.default is p.empty:
                raise SymdiffError(f"--shape: no shape given for {p.name!r}, a parameter of "
                                   f"{args.forward} (e.g. --shape {p.name}=4x10)")
            break
        shape = shapes[p.name]
        if p.name in integers:
            inputs.append(rng.integers(0, integers[p.name], shape))
        elif p.name in positive:
            inputs.append(np.abs(rng.normal(size=shape)) + 0.1)
        else:
            inputs.append(rng.normal(size=shape))
    wrt = [_name(w) for w in args.wrt.split(",") if w.strip()] if args.wrt else None
    report = check_backward(forward, backward, *inputs, wrt=wrt, cache=args.cache,
                            seed=args.seed, rtol=args.rtol, atol=args.atol)
    print(report)
    return 0 if report.ok else 1


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
    p_check = sub.add_parser("check", help="check a hand-written backward against the exact "
                                           "gradient (exit status 1 when wrong)")
    p_check.add_argument("forward", help="MODULE:FUNCTION (a module or a .py file), "
                                         "forward(*inputs) -> out")
    p_check.add_argument("backward", help="MODULE:FUNCTION, backward(dout, *inputs) -> "
                                          "gradient(s)")
    p_check.add_argument("--shape", action="append",
                         help="NAME=DIMxDIM[,NAME=DIM...] for each forward parameter "
                              "(repeatable)")
    p_check.add_argument("--int", action="append",
                         help="NAME=HIGH: an integer input drawn from [0, HIGH) (labels)")
    p_check.add_argument("--positive", action="append",
                         help="NAME[,NAME...]: inputs drawn positive (a log, a sqrt)")
    p_check.add_argument("--wrt", help="comma-separated inputs to check (default: all floats)")
    p_check.add_argument("--cache", action="store_true",
                         help="forward returns (out, cache) and backward takes (dout, cache)")
    p_check.add_argument("--seed", type=int, default=0, help="random inputs and upstreams")
    p_check.add_argument("--rtol", type=float, default=None)
    p_check.add_argument("--atol", type=float, default=None)
    args = parser.parse_args(argv)
    commands = {"demo": demo, "grad": grad_command, "report": report_command,
                "check": check_command}
    try:
        return commands[args.command](args)
    except SymdiffError as exc:
        print(f"symdiff: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
