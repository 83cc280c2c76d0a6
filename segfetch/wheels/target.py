"""What the target interpreter is: its tags, version, marker environment and pip settings.

Asked of the interpreter itself (``--python PATH``), through the packaging copy inside its
pip, so segfetch chooses files for that Python, not for the one running segfetch. The
question is one subprocess, started early (``start_probe``) and read when needed; it can
read pip's settings in the same go (as ``pip config list`` prints them), which costs less
than a ``pip config list`` of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from segfetch.errors import UsageError

T = TypeVar("T")

_PROBE = r"""
import json, sys
try:
    from pip._vendor.packaging import markers, tags
except ImportError:  # a venv made --without-pip, or by uv
    print(json.dumps({"no_pip": True}))
    sys.exit()
answer = {
    "version": "%d.%d.%d" % sys.version_info[:3],
    "tags": [str(t) for t in tags.sys_tags()],
    "markers": markers.default_environment(),
}
try:  # what is installed: pip takes a pin already satisfied from there, not the index
    from importlib import metadata
    answer["installed"] = {
        d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]
    }
except Exception:
    pass
if "--pip-config" in sys.argv:
    try:  # what `pip config list` prints, without loading pip's command line
        from pip._internal.configuration import Configuration
        configuration = Configuration(isolated=False)
        configuration.load()
        answer["pip_config"] = "".join("%s=%r\n" % kv for kv in sorted(configuration.items()))
    except Exception:
        pass  # segfetch runs `pip config list` instead
print(json.dumps(answer))
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
    installed: dict[str, str] = field(default_factory=dict)  # canonical name: version
    order: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.order = {t: i for i, t in enumerate(self.tags)}

    def holds(self, name: str, version: str) -> bool:
        """Whether the environment has this project installed at this version."""
        have = self.installed.get(canonicalize_name(name))
        try:
            return have is not None and Version(have) == Version(version)
        except InvalidVersion:
            return have == version

    def rank(self, tags: frozenset[str]) -> int | None:
        """Position of the best of these tags in the target's order; None if none fits."""
        positions = [self.order[t] for t in tags if t in self.order]
        return min(positions) if positions else None


class Pending(Generic[T]):
    """A question to the target interpreter, asked now (a subprocess started at once) and
    answered later: segfetch loads and fetches index pages while it runs. ``result()`` waits
    for the answer (read once, kept); ``close()`` stops a question no longer needed."""

    def __init__(self, cmd: list[str], read: Callable[[int, str], T]) -> None:
        self._read = read
        self._answer: list[T] = []
        self._lock = threading.Lock()  # result() may be called from a worker thread
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def result(self, timeout: float = 60) -> T:
        with self._lock:
            if not self._answer:
                try:
                    out, _ = self._proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.close()
                    out = ""
                self._answer.append(self._read(self._proc.returncode, out))
            return self._answer[0]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Pending[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Probe:
    """What the probe found: the target, and pip's settings as ``pip config list`` prints
    them (None: not asked for, or this pip could not say so)."""

    target: Target
    pip_config: str | None = None


def start_probe(python: str | None = None, pip_config: bool = False) -> Pending[Probe]:
    """Ask the target for its tags, version and markers, and if ``pip_config`` for pip's
    settings, in the background."""
    exe = python or sys.executable

    def read(returncode: int, out: str) -> Probe:
        try:
            if returncode != 0:
                raise ValueError(returncode)
            raw = json.loads(out)
            if isinstance(raw, dict) and raw.get("no_pip") is True:
                raise UsageError(
                    f"{exe} has no pip: segfetch asks the target's pip for its tags and to "
                    f"resolve; run {exe} -m ensurepip, or give --python an environment with pip"
                )
            installed = {
                str(canonicalize_name(k)): str(v) for k, v in raw.get("installed", {}).items()
            }
            target = Target(
                Version(raw["version"]), tuple(raw["tags"]), dict(raw["markers"]), installed
            )
            config = raw.get("pip_config")
            return Probe(target, config if isinstance(config, str) else None)
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{exe} did not answer as a Python with pip; check --python") from None

    try:
        return Pending([exe, "-c", _PROBE, *(["--pip-config"] if pip_config else [])], read)
    except FileNotFoundError:
        raise UsageError(
            f"no Python at {exe!r}; give --python the path of an interpreter"
        ) from None
    except OSError:  # a folder, a file that is not executable, or not a program at all
        raise UsageError(f"{exe!r} is not a Python interpreter; check --python") from None


def query_target(python: str | None = None) -> Target:
    with start_probe(python) as pending:
        return pending.result().target


def start_pip_config(python: str | None = None) -> Pending[str]:
    """``pip config list`` of the target pip, asked in the background: its lines (settings
    from files and the environment), or "" when pip could not say."""
    return Pending([python or sys.executable, "-m", "pip", "config", "list"], lambda _, out: out)


def pip_index_urls(python: str | None = None) -> tuple[str | None, list[str]]:
    """index-url and extra-index-urls from the target pip's configuration and environment."""
    try:
        pending = start_pip_config(python)
    except OSError:
        return None, []
    with pending:
        return index_urls_in_config(pending.result())


def index_urls_in_config(listing: str) -> tuple[str | None, list[str]]:
    """index-url and extra-index-urls from the lines of ``pip config list``."""
    index, extras = None, []
    # Lines look like  global.index-url='https://...'  or  :env:.extra-index-url='a b'.
    # Later lines win, as pip's own precedence lists files before the environment.
    for line in listing.splitlines():
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
