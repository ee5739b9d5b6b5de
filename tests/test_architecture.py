"""Layers point one way: a static check of every import in modbias/ and app/ (docs/ARCHITECTURE.md).

Each package under ``modbias/`` belongs to a layer; a module may import its own
package and layers below it, never a sibling of the same rank or a layer above.
Imports under ``if TYPE_CHECKING:`` are annotations only and never run, so they
are not edges.  Function-local imports are edges like any other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    "core": 0,
    "data": 1,
    "models": 2, "interventions": 2,
    "runs": 3, "training": 3, "reference": 3,
    "analysis": 4, "testing": 4,
    "app": 5,
    "cli": 6,
}
"""Rank of each layer: ``core ← data ← models/interventions ← runs/training/reference ← analysis/testing ← app ← cli``
(``testing`` writes tiny checkpoints and benchmarks for tests; nothing in modbias imports it)."""

TOP_LEVEL = {"__init__", "__main__"}
"""Modules directly in modbias/: the lazy public API and ``python -m modbias``."""


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name, ``None`` outside modbias/app or for a top-level module of modbias."""
    parts = module.split(".")
    if parts[0] == "modbias_app":
        return "app"
    if parts[0] != "modbias" or len(parts) < 2 or parts[1] not in LAYERS:
        return None  # outside modbias, or a top-level module / name of modbias (every package has a layer: below)
    return parts[1]


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import executed at run time (``if TYPE_CHECKING:`` blocks are skipped).

    ``from a.b import c`` yields ``a.b.c`` (``c`` may be a submodule), relative imports resolve against ``package``.
    """
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def module_name(path: Path) -> tuple[str, str]:
    """``(dotted module name, its package)`` of a file under modbias/ or app/ (app installs as ``modbias_app``)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "app":
        parts[0] = "modbias_app"
    package = ".".join(parts[:-1])
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts), package


def back_edges(files: list[Path]) -> list[str]:
    """One line per import that goes sideways or up between layers, naming file, line and both layers."""
    problems = []
    for path in files:
        name, package = module_name(path)
        source = layer_of(name)
        if source is None:
            continue
        for line, target_module in imported_modules(ast.parse(path.read_text()), package):
            if target_module.split(".")[0] == "analyses":
                problems.append(f"{path.relative_to(ROOT)}:{line} imports the analyses/ scripts ({target_module})")
                continue
            target = layer_of(target_module)
            if target is None or target == source:
                continue
            if LAYERS[target] >= LAYERS[source]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {source} imports {target} ({target_module})")
    return problems


def source_files() -> list[Path]:
    return sorted([*(ROOT / "modbias").rglob("*.py"), *(ROOT / "app").rglob("*.py")])


def test_every_package_of_modbias_has_a_layer():
    packages = {p.parent.name for p in (ROOT / "modbias").glob("*/__init__.py")}
    assert packages <= set(LAYERS), f"packages without a layer: {sorted(packages - set(LAYERS))}"
    assert {p.stem for p in (ROOT / "modbias").glob("*.py")} <= TOP_LEVEL


def test_layers_point_one_way():
    problems = back_edges(source_files())
    assert not problems, "imports against the layer order:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, imported, layers", [
    ("modbias/core/metrics.py", "from modbias.analysis.consistency import consistency", "core imports analysis"),
    ("modbias/models/base.py", "import modbias.interventions.ar", "models imports interventions"),
    ("modbias/interventions/x.py", "from modbias.models import base", "interventions imports models"),
    ("modbias/runs/x.py", "def f():\n    from modbias.cli import app", "runs imports cli"),
    ("modbias/data/x.py", "from modbias.core import chair\nfrom modbias.runs.store import open_run", "data imports runs"),
])
def test_a_back_edge_is_reported(tmp_path, monkeypatch, source, imported, layers):
    """The check can fail: a file with one back edge (module-level or inside a function) is reported."""
    fake = tmp_path / source
    fake.parent.mkdir(parents=True)
    fake.write_text(imported + "\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    problems = back_edges([fake])
    assert len(problems) == 1 and layers in problems[0]


def test_type_checking_imports_are_not_edges(tmp_path, monkeypatch):
    fake = tmp_path / "modbias/interventions/x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from modbias.models.base import ModelAdapter\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert back_edges([fake]) == []


def import_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """A circle ``[a, b, ..., a]`` in a module graph ``{module: imported modules}``, or ``None`` when there is none."""
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := walk(nxt, [*stack, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := walk(start, [start])):
            return found
    return None


def test_import_circle_is_found():
    assert import_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert import_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_between_modules():
    """No circle among modbias's modules, counting function-local imports (TYPE_CHECKING ones excepted)."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "modbias").rglob("*.py"):
        name, package = module_name(path)
        graph[name] = {m for _, m in imported_modules(ast.parse(path.read_text()), package)}
    modules = set(graph)
    edges = {a: {m if m in modules else m.rsplit(".", 1)[0] for m in targets} & modules - {a}
             for a, targets in graph.items()}
    # a package and its own submodules (an __init__ re-exporting them, a submodule reading the package) are one unit
    edges = {a: {b for b in targets if not a.startswith(b + ".") and not b.startswith(a + ".")}
             for a, targets in edges.items()}
    found = import_circle(edges)
    assert found is None, "import circle: " + " → ".join(found)


def test_every_kind_of_run_goes_through_the_one_run_loop():
    """Only the run loop (in this process or on Dask workers) writes units to a store; trace, intervene, drift,
    mi and chair call ``run``."""
    callers = {str(path.relative_to(ROOT)) for path in (ROOT / "modbias").rglob("*.py")
               if any(isinstance(node, ast.Attribute) and node.attr in ("write_unit", "begin")
                      for node in ast.walk(ast.parse(path.read_text())))}
    assert callers == {"modbias/runs/loop.py", "modbias/runs/distributed.py"}
    for kind in ("trace", "drift", "importance", "captioning"):
        tree = ast.parse((ROOT / "modbias" / "runs" / f"{kind}.py").read_text())
        assert any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run" for node in ast.walk(tree)), kind
