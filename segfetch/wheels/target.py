"""What the target interpreter is: its tags, version, marker environment and pip settings.

Asked of the interpreter itself (``--python PATH``), through the packaging copy inside its
pip, so segfetch chooses files for that Python, not for the one running segfetch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from segfetch.errors import UsageError

_PROBE = r"""
import json, sys
from pip._vendor.packaging import markers, tags
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "tags": [str(t) for t in tags.sys_tags()],
    "markers": markers.default_environment(),
}))
"""


def environment_python(given: str | None, environ: Mapping[str, str], cwd: Path) -> str | None:
    """The interpreter to install for, as uv finds it: ``--python`` if given, else the
    active virtual environment, else a ``.venv`` in the current folder or a parent; None
    when there is none (the caller asks the user rather than guess)."""
    if given:
        return given
    scripts = "Scripts" if os.name == "nt" else "bin"
    exe = "python.exe" if os.name == "nt" else "python"
    if venv := environ.get("VIRTUAL_ENV"):
        return str(Path(venv) / scripts / exe)
    for folder in (cwd, *cwd.parents):
        if (python := folder / ".venv" / scripts / exe).exists():
            return str(python)
    return None


def is_own_environment(python: str) -> bool:
    """Whether ``python`` belongs to the environment segfetch itself runs in."""
    # The folder holding bin/python, not the file: a venv's python links to the base one.
    home = Path(os.path.abspath(python)).parent.parent
    return os.path.realpath(home) == os.path.realpath(sys.prefix)


@dataclass
class Target:
    """The interpreter the files are for: its version and its tags, most preferred first."""

    python_version: Version
    tags: tuple[str, ...]
    markers: dict[str, str]
    order: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.order = {t: i for i, t in enumerate(self.tags)}

    def rank(self, tags: frozenset[str]) -> int | None:
        """Position of the best of these tags in the target's order; None if none fits."""
        positions = [self.order[t] for t in tags if t in self.order]
        return min(positions) if positions else None


def query_target(python: str | None = None) -> Target:
    exe = python or sys.executable
    try:
        out = subprocess.run(
            [exe, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        raw = json.loads(out)
    except FileNotFoundError:
        raise UsageError(
            f"no Python at {exe!r}; give --python the path of an interpreter"
        ) from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError):
        raise UsageError(f"{exe} did not answer as a Python with pip; check --python") from None
    return Target(Version(raw["version"]), tuple(raw["tags"]), dict(raw["markers"]))


def pip_index_urls(python: str | None = None) -> tuple[str | None, list[str]]:
    """index-url and extra-index-urls from the target pip's configuration and environment."""
    exe = python or sys.executable
    try:
        out = subprocess.run(
            [exe, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, []
    index, extras = None, []
    # Lines look like  global.index-url='https://...'  or  :env:.extra-index-url='a b'.
    # Later lines win, as pip's own precedence lists files before the environment.
    for line in out.splitlines():
        key, _, value = line.partition("=")
        value = value.strip().strip("'\"")
        section, _, name = key.rpartition(".")
        if section not in ("global", "install", "download", ":env:"):
            continue
        if name == "index-url":
            index = value
        elif name == "extra-index-url":
            extras = value.split()
    return index, extras
