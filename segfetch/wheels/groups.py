"""pip's ``--group [PATH:]NAME``: a dependency group of a pyproject.toml (PEP 735), as
requirement strings, read as pip reads it (packaging's resolver: ``include-group``, names
normalized, cycles refused). The set then takes them as lines given on the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.dependency_groups import DependencyGroupResolver

from segfetch.errors import UsageError


def group_requirements(value: str) -> list[str]:
    """The requirements of ``--group value``: NAME of ./pyproject.toml, or PATH:NAME (the
    name holds no ":", so the last one splits, as in pip)."""
    path, colon, name = value.rpartition(":")
    path = path if colon else "pyproject.toml"
    said = f"--group {value}"
    if Path(path).name != "pyproject.toml":  # (pip 26 also reads pylock.toml's groups)
        raise UsageError(f"{said}: segfetch reads groups from a pyproject.toml only")
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{said}: cannot read {path} ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{said}: {path} is not valid TOML ({exc})") from None
    table = data.get("dependency-groups")
    if not isinstance(table, dict):
        raise UsageError(f"{said}: {path} has no [dependency-groups] table")
    try:
        return [str(r) for r in DependencyGroupResolver(table).resolve(name)]
    except ExceptionGroup as group:  # every problem found, as pip lists them
        why = "; ".join(_one_line(e) for e in group.exceptions)
        raise UsageError(f"{said}: {path}: {why}") from None


def _one_line(exc: Exception) -> str:
    """packaging's words for a problem, on one line: a bad requirement's message draws a
    caret under its text on lines of their own."""
    reason, *drawn = str(exc).splitlines() or [""]
    return f"not a requirement: {drawn[0].strip()!r} ({reason})" if drawn else reason
