"""The package's import graph: no cycles, not even through imports inside functions.

Built with ``ast`` over every module of geoanom, so an import a function makes
only when called (the usual way to dodge a cycle) counts as much as one at the
top of a module, and so do the names ``geoanom/__init__.py`` loads on first
use (PEP 562). Imports under ``if TYPE_CHECKING:`` never run and are left
out: they name types for annotations only.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import geoanom

ROOT = Path(geoanom.__file__).parent


def module_name(path: Path) -> str:
    """``geoanom.model.core`` for ``geoanom/model/core.py``; a package is its ``__init__``."""
    parts = ("geoanom",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST):
    """Every Import / ImportFrom node, at any depth, except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _runtime_imports(ast.Module([child], [])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The geoanom modules an import statement loads (a name imported from a package may be a submodule)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    source = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
    if source not in MODULES:
        return set()
    return {f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names}


def _lazy_targets(tree: ast.Module) -> set[str]:
    """The modules a package face loads on first use: the values of its ``_LAZY`` and its ``_SUBMODULES``."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["_LAZY"]:
            out |= {f"geoanom{name}" for name in ast.literal_eval(node.value).values()}
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["_SUBMODULES"]:
            out |= {f"geoanom.{name}" for name in ast.literal_eval(node.value)}
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the geoanom modules it imports anywhere in its body, or loads lazily (the package face)."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {target for node in _runtime_imports(tree) for target in _targets(module, node)} - {module}
    graph["geoanom"] |= _lazy_targets(ast.parse(MODULES["geoanom"].read_text())) & set(MODULES)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .core import A\n"
                     "def f():\n    from .score import g\n")
    names = [node.module for node in _runtime_imports(tree)]
    assert names == ["typing", "score"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert "geoanom.model.core" in graph and "geoanom.model.score" in graph["geoanom.model.core"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_package_face_counts_with_what_it_loads_lazily():
    """``geoanom/__init__`` loads its public names on first use, so a library module importing it back is a cycle."""
    graph = import_graph()
    assert {"geoanom.model", "geoanom.features", "geoanom.io"} <= graph["geoanom"]
    library = ("geoanom.model", "geoanom.features", "geoanom.detectors", "geoanom.federated", "geoanom.io")
    assert sorted(m for m, targets in graph.items() if m.startswith(library) and "geoanom" in targets) == []


def test_federated_does_not_depend_on_model():
    """Federated training reads cubes through the feature pipeline, never through the model's modules."""
    graph = import_graph()
    reached = {target for module, targets in graph.items() if module.startswith("geoanom.federated")
               for target in targets}
    assert sorted(name for name in reached if name.startswith("geoanom.model")) == []


def test_the_model_modules_depend_in_one_direction():
    """fit -> core -> (score -> result, store): the model is built by fit, and scores and saves itself."""
    graph = import_graph()
    assert "geoanom.model.core" in graph["geoanom.model.fit"]
    for lower in ("geoanom.model.score", "geoanom.model.result", "geoanom.model.store"):
        assert not graph[lower] & {"geoanom.model.core", "geoanom.model.fit"}, lower


def test_the_version_has_its_own_module():
    from geoanom._version import __version__

    assert geoanom.__version__ == __version__ and __version__.count(".") == 2


def test_every_module_imports():
    """Every module the graph describes imports (``__main__`` is left out: importing it runs the command)."""
    failures = {}
    for module in sorted(name for name in MODULES if not name.endswith("__main__")):
        try:
            importlib.import_module(module)
        except Exception as error:  # every failure at once, not only the first
            failures[module] = repr(error)
    assert failures == {}
