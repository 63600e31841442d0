"""The declared layers of symdiff, enforced on the import graph.

Order (a module may import only from layers below it, lazy imports inside functions included):

    errors -> graph -> printing -> ops -> grad -> rewrite -> lower -> compile/inputs -> interop
    -> tools -> training -> cli -> symdiff/__init__.py (the top: may import anything)

Modules within one layer may import each other as long as those imports form no cycle. The one
documented exception is the operator hook: ``graph.py``'s ``Expr.__add__`` and friends call the
op functions (``from . import ops`` at the bottom of graph.py).

Every ``import``/``from ... import`` statement in every module is read with :mod:`ast` (at any
depth: inside functions, methods, ``try`` blocks), resolved to the symdiff module it names
(``from . import y`` names the submodule ``y`` when there is one, else the package), and
checked. ``KNOWN_UPWARD_EDGES`` lists the upward edges not yet moved to their owner (and
``KNOWN_CYCLE_EDGES`` the same-layer imports that still close a cycle); a test fails on any
upward edge or cycle outside them, and another when an entry has gone (so the sets only
shrink). The self-tests plant an upward import in a copy of the package and check that the
checker names it.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = "symdiff"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# first name after "symdiff." -> layer rank (low to high); "" is symdiff/__init__.py itself
LAYERS: dict[str, int] = {
    "errors": 0, "graph": 1, "printing": 2, "ops": 3, "grad": 4, "rewrite": 5, "lower": 6,
    "batching": 4, "compile": 7, "compiler": 7, "inputs": 7, "transforms": 7, "interop": 8,
    "tools": 9, "training": 10, "testing": 10,  # testing: hand-written backprop, above tools
    "cli": 11, "": 12,
}

# The documented exception: graph's operators call the op functions.
ALLOWED_UPWARD_EDGES = {("symdiff.graph", "symdiff.ops")}

# Upward edges that still exist, each waiting for its rule to move to its owner. Remove an
# entry when its edge is fixed (test_known_upward_edges_still_exist insists on it).
KNOWN_UPWARD_EDGES: set = set()

# Imports within one layer that still close a cycle (same rule: remove when fixed).
KNOWN_CYCLE_EDGES: set = set()


def layer_of(module: str) -> int:
    """The layer rank of a module ``symdiff.a.b`` (by its first component ``a``)."""
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else ""
    if key not in LAYERS:
        raise KeyError(f"module {module} is in no declared layer; add it to LAYERS")
    return LAYERS[key]


def _module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``root`` (the package dir)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(module: str, is_package: bool, node: ast.AST, known: set[str],
             package: str) -> list[str]:
    """The symdiff modules one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        found = []
        for alias in node.names:
            name = alias.name
            if name == package or name.startswith(package + "."):
                found.append(_longest_known(name, known))
        return found
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        base_parts = here[:len(here) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if not (base == package or base.startswith(package + ".")):
        return []
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(sub if sub in known else _longest_known(base, known))
    return found


def _longest_known(name: str, known: set[str]) -> str:
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def import_edges(root: Path = ROOT, package: str = PACKAGE) -> dict[tuple[str, str], int]:
    """Every import edge (importer, imported) between distinct modules, with a line number."""
    files = _module_names(root, package)
    known = set(files)
    edges: dict[tuple[str, str], int] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _resolve(module, is_package, node, known, package):
                if target != module:
                    edges.setdefault((module, target), node.lineno)
    return edges


def upward_edges(edges) -> set[tuple[str, str]]:
    """Edges from a module to one in a higher layer, minus the documented exception."""
    return {(a, b) for a, b in edges
            if layer_of(b) > layer_of(a) and (a, b) not in ALLOWED_UPWARD_EDGES}


def strongly_connected(edges) -> list[set[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan's
    algorithm, iterative)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def modules_in_cycles(edges) -> int:
    """How many modules take part in some import cycle."""
    return sum(len(c) for c in strongly_connected(edges))


def _fmt(edge_set, edges) -> str:
    return "; ".join(f"{a} -> {b} (line {edges[(a, b)]})" for a, b in sorted(edge_set))


# -- the checks on symdiff ---------------------------------------------------------------------
def test_every_module_is_in_a_layer():
    for module in _module_names(ROOT, PACKAGE):
        layer_of(module)  # KeyError names a module outside the declared layers


def test_no_unknown_upward_import():
    edges = import_edges()
    new = upward_edges(edges) - KNOWN_UPWARD_EDGES
    assert not new, f"upward imports (import from a lower layer instead): {_fmt(new, edges)}"


def test_known_upward_edges_still_exist():
    gone = KNOWN_UPWARD_EDGES - upward_edges(import_edges())
    assert not gone, f"fixed, so remove from KNOWN_UPWARD_EDGES: {sorted(gone)}"


def test_known_cycle_edges_still_exist():
    gone = KNOWN_CYCLE_EDGES - set(import_edges())
    assert not gone, f"fixed, so remove from KNOWN_CYCLE_EDGES: {sorted(gone)}"


def test_no_import_cycle_apart_from_known_edges():
    edges = import_edges()
    tolerated = ALLOWED_UPWARD_EDGES | KNOWN_UPWARD_EDGES | KNOWN_CYCLE_EDGES
    cycles = strongly_connected([e for e in edges if e not in tolerated])
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_graph_display_hooks_are_installed_from_above():
    """graph imports no printer; printing and tools.inspect register theirs from above."""
    import symdiff as sd
    x = sd.var("x")
    assert (x + 1)._repr_latex_() == "$x + 1$"
    assert set(sd.graph.PRINTERS) == {"str", "repr", "latex", "svg"}


# -- self-tests: the checker catches what it should ---------------------------------------------
def _copy_package(tmp_path: Path) -> Path:
    copy = tmp_path / PACKAGE
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _plant(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize("planted", [
    "\n\ndef _planted():\n    from .tools import explain\n    return explain\n",
    "\n\ndef _planted():\n    from .tools.render import render\n    return render\n",
    "\nimport symdiff.training.optim\n",
    "\nfrom symdiff import cli\n",
])
def test_checker_catches_a_planted_upward_import(tmp_path, planted):
    copy = _copy_package(tmp_path)
    _plant(copy / "grad.py", planted)
    new = upward_edges(import_edges(copy)) - KNOWN_UPWARD_EDGES
    assert len(new) == 1
    ((src, dst),) = new
    assert src == "symdiff.grad" and layer_of(dst) > layer_of("symdiff.grad")


def test_checker_catches_a_planted_import_of_the_top_package(tmp_path):
    copy = _copy_package(tmp_path)
    _plant(copy / "ops" / "nn.py", "\n\ndef _planted():\n    import symdiff\n    return symdiff\n")
    new = upward_edges(import_edges(copy)) - KNOWN_UPWARD_EDGES
    assert new == {("symdiff.ops.nn", "symdiff")}


def test_checker_catches_a_cycle_within_a_layer(tmp_path):
    copy = _copy_package(tmp_path)
    _plant(copy / "tools" / "check.py", "\n\ndef _planted():\n    from . import explain\n")
    _plant(copy / "tools" / "explain.py", "\n\ndef _planted():\n    from . import check\n")
    edges = import_edges(copy)
    tolerated = ALLOWED_UPWARD_EDGES | KNOWN_UPWARD_EDGES | KNOWN_CYCLE_EDGES
    cycles = strongly_connected([e for e in edges if e not in tolerated])
    assert {"symdiff.tools.check", "symdiff.tools.explain"} in cycles


def test_checker_resolves_relative_imports(tmp_path):
    copy = _copy_package(tmp_path)
    _plant(copy / "rewrite" / "simplify.py", "\nfrom .. import errors\nfrom . import stable\n")
    edges = import_edges(copy)
    assert ("symdiff.rewrite.simplify", "symdiff.errors") in edges
    assert ("symdiff.rewrite.simplify", "symdiff.rewrite.stable") in edges


def test_strongly_connected_on_a_small_graph():
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "a")]
    assert sorted(map(sorted, strongly_connected(edges))) == [["a", "b", "c"], ["d", "e"]]
    assert modules_in_cycles(edges) == 5
