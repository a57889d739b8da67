"""Imports point one way: down the layers of design.md (command line, terminal, wiring, settings, the agent loop,
functions/prompts/loader, storage, the model layer, plain values). Every import in memagent/ counts, lazy ones
and those under TYPE_CHECKING included, since each is a dependency a reader has to follow.

KNOWN would list an upward import that exists for now; it is empty, and nothing should be added to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import memagent

PACKAGE = Path(memagent.__file__).parent

# Top first. A module may import from its own layer and the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("memagent.cli",),
    ("memagent.repl",),
    ("memagent.app",),
    ("memagent.settings",),
    ("memagent.agent",),
    ("memagent.functions", "memagent.prompts", "memagent.loader"),
    ("memagent.memory",),
    ("memagent.llm",),
    ("memagent.messages", "memagent.events", "memagent.errors", "memagent.text"),
)
# Upward imports that exist today (the last one, messages -> functions.memory, went with issue 17).
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    if module == "memagent":
        return len(LAYERS)  # the package root holds only __version__: the bottom
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p if p.endswith("_") else p + ".") for p in prefixes):
            return index
    return None


def imports() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found += [(source, target) for target in targets if target.split(".")[0] == "memagent"]
    return found


def test_every_module_has_a_layer():
    modules = {module_name(path) for path in PACKAGE.rglob("*.py")}
    assert sorted(m for m in modules if layer(m) is None) == []


def test_imports_point_down_the_layers():
    upward = {(source, target) for source, target in imports() if layer(target) < layer(source)}  # type: ignore[operator]
    assert sorted(upward - KNOWN) == []
    assert sorted(KNOWN - upward) == []  # a removed exception leaves the list too


def test_the_layer_check_sees_an_upward_import():
    assert layer("memagent.memory.store") > layer("memagent.agent")  # type: ignore[operator]
    assert layer("memagent.cli.agents") == 0 and layer("memagent.llm.parse") == 7
