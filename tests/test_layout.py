"""The layout rules of the product: one contract, layers that import one way, no import cycles."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import contract

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "studies", "analysis")
CONTRACT = REPO / "harness" / "contract.py"


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


MODULES = dict(_modules())


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """Return the product modules ``name`` imports (at module level only, or anywhere; TYPE_CHECKING aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    visit([n for n in inner if isinstance(n, ast.stmt)] +
                          [s for h in inner if isinstance(h, ast.ExceptHandler) for s in h.body])

    visit(tree.body)
    return {m for m in found if m in MODULES and m != name}


def test_contract_names_are_spelled_in_the_contract_only() -> None:
    offenders = []
    files = [p for _, p in MODULES.items() if p != CONTRACT] + sorted((REPO / "bench").glob("*.py"))
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exports = {id(n) for a in tree.body if isinstance(a, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "__all__" for t in a.targets)
                   for n in ast.walk(a.value)}  # __all__ names functions, not attrs
        for node in ast.walk(tree):
            if id(node) not in exports and isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in contract.CHECKED_NAMES:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not offenders, "use the harness.contract constants instead:\n" + "\n".join(offenders)


def test_the_contract_check_finds_a_literal(tmp_path: Path) -> None:
    tree = ast.parse('attrs.get("otdd_after")')
    assert any(isinstance(n, ast.Constant) and n.value in contract.CHECKED_NAMES for n in ast.walk(tree))


def test_contract_is_stdlib_only() -> None:
    assert _imports("harness.contract", CONTRACT, top_level_only=False) == set()
    tree = ast.parse(CONTRACT.read_text(encoding="utf-8"))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= {"__future__", "pathlib", "re"}


@pytest.mark.parametrize("lower", ["harness", "analysis"])
def test_lower_layers_never_import_studies(lower: str) -> None:
    bad = {name: sorted(m for m in _imports(name, path, top_level_only=False) if m.split(".")[0] == "studies")
           for name, path in MODULES.items() if name.split(".")[0] == lower}
    assert not {k: v for k, v in bad.items() if v}


def test_analysis_imports_only_the_contract_of_harness() -> None:
    used = {m for name, path in MODULES.items() if name.startswith("analysis")
            for m in _imports(name, path, top_level_only=False) if m.startswith("harness")}
    assert used <= {"harness", "harness.contract"}


def test_no_import_cycles() -> None:
    graph = {name: _imports(name, path, top_level_only=True) for name, path in MODULES.items()}
    # A package imports its submodules by design; a cycle through a package's own __init__ is not one.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            walk(start, [start])
    assert not cycles, cycles


def test_no_test_reads_outside_the_repository() -> None:
    needles = ("../" + "shared", "ORCA_ABLATE_" + "REFERENCE_DIR", '"shared" / ' + '"reference"')
    hits = [f"{p.relative_to(REPO)}: {n}" for p in sorted((REPO / "tests").rglob("*.py"))
            for n in needles if n in p.read_text(encoding="utf-8")]
    assert not hits
