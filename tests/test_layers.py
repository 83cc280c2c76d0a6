"""The package's shape, checked: a folder per layer, imports only downward, no circle, no
module over 500 lines (docs/architecture.md draws it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import segfetch

ROOT = Path(segfetch.__file__).parent
# Lower layers first; a module may import its own layer and the ones before it.
LAYERS = ["base", "engine", "wheels", "testing", "cli"]
MAX_LINES = 500


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    if parts[1:] == ["__main__"]:
        return "cli"
    return "base"  # segfetch itself, errors, units, config


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path
    return out


def imports(module: str, path: Path) -> set[str]:
    """Every segfetch module this one imports, at any depth of the code (functions and
    TYPE_CHECKING blocks included: a circle through a late import is still a circle)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    known = modules()
    return {m for m in found if m in known and m != module}


GRAPH = {m: imports(m, p) for m, p in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_go_down(module: str) -> None:
    if module == "segfetch":
        return  # the public API: names re-exported lazily from the layers below
    mine = LAYERS.index(layer(module))
    upward = sorted(m for m in GRAPH[module] if LAYERS.index(layer(m)) > mine and m != "segfetch")
    assert not upward, f"{module} ({layer(module)}) imports higher layers: {upward}"


def test_no_circle_of_imports() -> None:
    graph = {m: deps - {"segfetch"} for m, deps in GRAPH.items() if m != "segfetch"}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("circle: " + " -> ".join([*path[path.index(m) :], m]))
        if m in done:
            return
        for dep in sorted(graph.get(m, ())):
            if dep not in (
                "segfetch.engine",
                "segfetch.wheels",
                "segfetch.cli",
                "segfetch.testing",
            ):
                visit(dep, [*path, m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_modules_stay_small(module: str) -> None:
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it"


def test_the_checker_sees_a_violation() -> None:
    """The rules above can fail: an engine module importing the command line is caught."""
    assert LAYERS.index(layer("segfetch.cli.get")) > LAYERS.index(layer("segfetch.engine.rules"))
    assert layer("segfetch.errors") == "base"
    assert "segfetch.engine.rules" in GRAPH["segfetch.engine.download"]
    assert "segfetch.cli.options" in GRAPH["segfetch.cli.get"]


def test_public_api() -> None:
    from segfetch import (  # noqa: F401
        DownloadError,
        HashMismatch,
        Options,
        Progress,
        Result,
        SegfetchError,
        download,
        download_sync,
    )

    assert issubclass(HashMismatch, DownloadError)
    assert issubclass(DownloadError, SegfetchError)
    for name in segfetch.__all__:
        assert getattr(segfetch, name) is not None
    with pytest.raises(AttributeError):
        segfetch.no_such_name  # noqa: B018
