"""Imports flow one way between the project's packages (DESIGN.md, "Where things live").

Every `import` statement counts, also those inside functions: a lazy import is
still a dependency. Old top-level names (`import pipeline`) are errors too, since
the installed distribution has one import name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "pipeline": {"core"},
    "quality_models": {"core"},
    "tokenizer": {"core"},
    "scaling": {"core"},
    "train": {"tokenizer", "scaling", "core"},
    "corpora": {"pipeline", "quality_models", "tokenizer", "core"},
    "jobs": {"pipeline", "quality_models", "tokenizer", "scaling", "train", "corpora", "core"},
}
OLD_NAMES = set(ALLOWED) | {"infra"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for lineno, module in _imports(path):
            parts = module.split(".")
            where = f"{path.relative_to(ROOT)}:{lineno} imports {module}"
            if parts[0] in OLD_NAMES:
                bad.append(f"{where} (old top-level name; use crawl2model.{module})")
            elif parts[0] == "crawl2model" and len(parts) > 1 and parts[1] in ALLOWED:
                target = parts[1]
                if target != package and target not in ALLOWED[package]:
                    bad.append(f"{where} ({package} may import {sorted(ALLOWED[package]) or 'nothing'})")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    assert (ROOT / package).is_dir()
    assert _violations(package) == []


def test_every_project_package_is_governed():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"crawl2model", "infra", "tests"}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


def test_the_graph_has_no_cycle():
    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, " -> ".join(stack + (node,))
        for nxt in ALLOWED[node]:
            visit(nxt, stack + (node,))

    for package in ALLOWED:
        visit(package, ())
