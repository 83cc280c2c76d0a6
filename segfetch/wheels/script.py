"""pip's ``--requirements-from-script SCRIPT`` (pip 26.0): the ``dependencies`` of a
script's inline metadata (PEP 723: a ``# /// script`` comment block of TOML), and its
``requires-python``, read as pip reads them. Pure but for reading the file."""

from __future__ import annotations

import re
import tomllib

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from segfetch.errors import SegfetchError, UsageError

# The specification's own expression for a block: its type, then its lines of comment
_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


def script_requirements(path: str) -> tuple[list[str], str | None]:
    """The script's dependencies, as requirement strings, and its requires-python."""
    said = f"--requirements-from-script {path}"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(f"{said}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{said}: not UTF-8 text") from None
    blocks = [m for m in _BLOCK.finditer(text) if m["type"] == "script"]
    if len(blocks) != 1:
        how = "more than one" if blocks else "no"
        raise UsageError(f"{said}: {how} '# /// script' metadata block (PEP 723)")
    toml = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0]["content"].splitlines(keepends=True)
    )
    try:
        meta = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{said}: its metadata is not valid TOML ({exc})") from None
    deps, python = meta.get("dependencies", []), meta.get("requires-python")
    if not (isinstance(deps, list) and all(isinstance(d, str) for d in deps)):
        raise UsageError(f"{said}: 'dependencies' is not a list of strings")
    if python is not None and not isinstance(python, str):
        raise UsageError(f"{said}: 'requires-python' is not a string")
    try:
        SpecifierSet(python or "")
    except InvalidSpecifier:  # (exit 1, as a script that pip cannot take)
        raise SegfetchError(f"{said}: bad requires-python {python!r}") from None
    return deps, python
