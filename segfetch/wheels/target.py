"""What the target interpreter is: its tags, version, marker environment and pip settings.

Asked of the interpreter itself (``--python PATH``), through the packaging copy inside its
pip, so segfetch chooses files for that Python, not for the one running segfetch. The
question is one subprocess, started early (``start_probe``) and read when needed; it can
read pip's settings in the same go (as ``pip config list`` prints them), which costs less
than a ``pip config list`` of its own. The answer is kept in the cache folder and used
again, with no process at all, while nothing it depends on has changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from segfetch.errors import UsageError
from segfetch.wheels.children import spawn
from segfetch.wheels.installer import lent_folder, lent_version, pip_command
from segfetch.wheels.pipnet import config_settings

T = TypeVar("T")

# pip's settings as `pip config list` prints them, without loading pip's command line; but
# one line per setting, with the value pip uses. pip 23.3+ lists each file's values, a
# setting in two files twice, files sorted by path (not pip's order of override): merged
# here in the order pip loads them, as pip merges them. (pip --isolated reads no PIP_*
# variable, nor the user's files; still the others.)
_SETTINGS = r"""
def pip_settings(isolated):
    from pip._internal.configuration import Configuration
    configuration = Configuration(isolated=isolated)
    configuration.load()
    merged = {}
    for key, value in configuration.items():
        if isinstance(value, dict):  # pip 23.3+: by file, in the order of override
            merged.update(value)
        else:
            merged[key] = value
    listing = "".join("%s=%r\n" % kv for kv in merged.items())  # (pip's order: no-binary)
    files = [f for _, files in configuration.iter_config_files() for f in files]
    return configuration.isolated, listing, files

def config_error(exc):  # pip's words, on one line, where it cannot load its configuration
    try:
        from pip._internal.exceptions import ConfigurationError
    except ImportError:
        return None
    return " ".join(str(exc).split()) if isinstance(exc, ConfigurationError) else None
"""
# pip's settings alone (argv: the folder of the pip lent to a Python without one, and
# --pip-isolated): the lines of _SETTINGS, or nothing if pip cannot say.
_CONFIG_ERROR = "!config-error "  # then pip's words: _CONFIG's answer where pip stops
_CONFIG = (
    _SETTINGS
    + f"CONFIG_ERROR = {_CONFIG_ERROR!r}"
    + r"""
import sys
try:
    import pip
except ImportError:
    sys.path.append(sys.argv[1])
try:
    sys.stdout.write(pip_settings("--pip-isolated" in sys.argv)[1])
except Exception as exc:
    error = config_error(exc)  # (no :=: the target may be an old Python)
    if error:
        sys.stdout.write(CONFIG_ERROR + error)
"""
)

# The marker environment is PEP 508's own definition, written out here: pip's markers
# module would load its parser too (~40 ms of the probe) for a dict of eleven values.
_PROBE = (
    _SETTINGS
    + r"""
import json, os, platform, re, sys
try:
    from pip._vendor.packaging import tags
    import pip
except ImportError:  # a venv made --without-pip, or by uv: the tags of the pip segfetch
    sys.path.append(sys.argv[1])  # lends it (installer.pip_command), else of its packaging
    try:
        from pip._vendor.packaging import tags
    except ImportError:
        from packaging import tags
    sys.path.pop()
    pip = None
impl = sys.implementation.version
impl_version = "%d.%d.%d" % impl[:3]
if impl.releaselevel != "final":
    impl_version += impl.releaselevel[0] + str(impl.serial)
answer = {
    "version": "%d.%d.%d" % sys.version_info[:3],
    "tags": [str(t) for t in tags.sys_tags()],
    "markers": {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}
answer["pip"] = pip and pip.__version__
answer["files"] = [(pip or tags).__file__]  # what the answer depends on: pip, its settings
if sys.prefix == sys.base_prefix:  # not a venv: is it marked as the OS's (PEP 668)?
    import sysconfig
    marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
    answer["files"].append(marker)  # (the answer changes as it comes or goes)
    answer["managed"] = marker if os.path.isfile(marker) else None
answer["paths"] = [p for p in sys.path[1:] if os.path.isdir(p)]  # where installs land
# What is installed (pip takes a pin already satisfied from there, not the index): Name,
# Version, Requires-Dist (None: an egg's, not in its headers) and Provides-Extra from each
# metadata file's headers, the first on sys.path winning as for import. importlib.metadata
# says the same, but loading it and its email parser is ~35 ms.
installed, requires, extras = answer["installed"], answer["requires"], answer["extras"] = {}, {}, {}
seen = set()
for folder in answer["paths"]:
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        continue
    for entry in entries:
        path = os.path.join(folder, entry)
        if entry.endswith(".dist-info"):
            path = os.path.join(path, "METADATA")
        elif not entry.endswith(".egg-info"):
            continue
        elif os.path.isdir(path):  # else the file is PKG-INFO itself (distutils)
            path = os.path.join(path, "PKG-INFO")
        headers, deps, provided = {}, [] if entry.endswith(".dist-info") else None, []
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        break
                    key, value = (w.strip() for w in line.partition(":")[::2])
                    headers.setdefault(key.lower(), value)
                    if deps is not None and key.lower() == "requires-dist":
                        deps.append(value)
                    elif key.lower() == "provides-extra":
                        provided.append(value)
        except OSError:
            continue
        name, version = headers.get("name"), headers.get("version")
        key = name and re.sub(r"[-_.]+", "-", name).lower()  # PEP 503
        if key and version and key not in seen:
            seen.add(key)
            installed[name], requires[name], extras[name] = version, deps, provided
if pip is not None and "--pip-config" in sys.argv:
    try:
        answer["isolated"], answer["pip_config"], files = pip_settings("--pip-isolated" in sys.argv)
        answer["files"] += files
    except Exception as exc:
        answer["config_error"] = config_error(exc)  # else segfetch asks with _CONFIG instead
print(json.dumps(answer))
"""
)


def environment_python(given: str | None, environ: Mapping[str, str], cwd: Path) -> str | None:
    """The interpreter to install for, as uv finds it: ``--python`` if given, else the
    active virtual environment, else a ``.venv`` in the current folder or a parent; None
    when there is none (the caller asks the user rather than guess)."""
    scripts = "Scripts" if os.name == "nt" else "bin"
    exe = "python.exe" if os.name == "nt" else "python"
    if given:  # an interpreter, or an environment's folder (as pip's and uv's --python take)
        inside = Path(given) / scripts / exe
        return str(inside) if Path(given).is_dir() and inside.exists() else given
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
    requires: dict[str, list[str] | None] = field(default_factory=dict)  # its Requires-Dist
    extras: dict[str, list[str]] = field(default_factory=dict)  # its Provides-Extra
    managed: str | None = None  # its EXTERNALLY-MANAGED file (PEP 668), if it has one
    own_pip: bool = True  # False: pip is not installed in it (installer.pip_command)
    pip_reports: bool = True  # its pip resolves with --dry-run --report (pip 22.2+)
    pip_normalizes_extras: bool = True  # its pip compares extras by PEP 685 (pip 23.3+)
    resolver_pip: Version | None = None  # the version of the pip that resolves for it
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
        self._proc: subprocess.Popen[str] | None = None
        if cmd:  # else an answer known already (``answered``)
            self._proc = spawn(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    @classmethod
    def answered(cls, answer: T) -> Pending[T]:
        known = cls([], lambda _code, _out: answer)
        known._answer.append(answer)
        return known

    def result(self, timeout: float = 60) -> T:
        with self._lock:
            if not self._answer and self._proc is not None:
                try:
                    out, _ = self._proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.close()
                    out = ""
                self._answer.append(self._read(self._proc.returncode, out))
            return self._answer[0]

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
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
    config_error: str | None = None  # pip's words, where it cannot load its configuration

    def settings(self) -> str | None:
        """pip_config, or the one line pip's configuration error is."""
        if self.config_error:
            raise config_failed(self.config_error)
        return self.pip_config


def config_failed(words: str) -> UsageError:
    """As pip stops (exit 2) on a configuration file it cannot load."""
    return UsageError(f"pip's configuration cannot be loaded ({words}); fix it, as pip asks")


def _listing(out: str) -> str:
    """_CONFIG's answer: pip's settings, or its configuration error raised."""
    if out.startswith(_CONFIG_ERROR):
        raise config_failed(out[len(_CONFIG_ERROR) :].strip())
    return out


def start_probe(
    python: str | None = None,
    pip_config: bool = False,
    keep: Path | None = None,
    isolated: bool = False,
) -> Pending[Probe]:
    """Ask the target for its tags, version and markers, and if ``pip_config`` for pip's
    settings (as ``pip --isolated`` reads them if ``isolated``), in the background.
    ``keep``: a folder where answers are kept between runs; one is used again, with no
    process started, while nothing it depends on has changed."""
    exe = python or sys.executable
    if keep is not None and (kept := _kept(keep, exe, pip_config, isolated)) is not None:
        return Pending.answered(kept)

    def read(returncode: int, out: str) -> Probe:
        try:
            if returncode != 0:
                raise ValueError(returncode)
            probe = _probe_of(raw := json.loads(out))
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{exe} did not answer as a Python; check --python") from None
        if keep is not None and (probe.pip_config is not None or not pip_config):
            _keep(keep, exe, raw)
        return probe

    try:
        # (a Python without pip is told its tags by the pip segfetch lends it, else by
        # segfetch's packaging: both from the folder they are installed in)
        cmd = [exe, "-c", _PROBE, lent_folder(), *(["--pip-config"] if pip_config else [])]
        cmd += ["--pip-isolated"] if pip_config and isolated else []
        return Pending(cmd, read)
    except FileNotFoundError:
        raise UsageError(
            f"no Python at {exe!r}; give --python the path of an interpreter"
        ) from None
    except OSError:  # a folder, a file that is not executable, or not a program at all
        raise UsageError(f"{exe!r} is not a Python interpreter; check --python") from None


def _probe_of(raw: dict[str, Any]) -> Probe:
    installed = {str(canonicalize_name(k)): str(v) for k, v in raw.get("installed", {}).items()}
    target = Target(Version(raw["version"]), tuple(raw["tags"]), dict(raw["markers"]), installed)
    for field_ in ("requires", "extras"):  # (an answer kept by an older segfetch has none)
        setattr(target, field_, {canonicalize_name(k): v for k, v in raw.get(field_, {}).items()})
    target.managed = raw.get("managed")
    target.own_pip = isinstance(raw["pip"], str)
    with contextlib.suppress(InvalidVersion):  # (a pip of its own making: let it try)
        target.pip_reports = target.own_pip and Version(raw["pip"]) >= Version("22.2")
        target.pip_normalizes_extras = not target.own_pip or Version(raw["pip"]) >= Version("23.3")
        # its own pip where that reports, else segfetch's
        resolver = raw["pip"] if target.pip_reports else lent_version()
        target.resolver_pip = None if resolver is None else Version(resolver)
    config, error = raw.get("pip_config"), raw.get("config_error")
    return Probe(
        target,
        config if isinstance(config, str) else None,
        error if isinstance(error, str) else None,
    )


# -- answers kept between runs -------------------------------------------------------------
# As uv keeps what it learnt of an interpreter: a build script that installs on every run
# should not pay for the probe (~0.2 s, most of it loading pip) each time.

_PROBE_ID = hashlib.sha256(_PROBE.encode()).hexdigest()[:16]
# Where pip looks for its configuration files, besides PIP_* variables.
_CONFIG_PLACES = ("HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "APPDATA", "PROGRAMDATA")


def _stamp(exe: str, files: list[str], paths: list[str]) -> list[object]:
    """What a kept answer depends on, read without starting the target: the probe that
    gave it (a newer segfetch may ask differently), the interpreter it runs, its venv,
    pip's version and configuration files (``files``, as the probe named them), the
    environment pip reads, the C library (manylinux tags), and what is installed (``paths``:
    the target's sys.path folders). Small files by content, so that a venv made afresh at
    the same place (as CI does) is the same."""

    def content(path: str | Path) -> str | None:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None

    real = os.path.realpath(exe)
    try:
        st = os.stat(real)
        binary = [st.st_size, st.st_mtime_ns, st.st_ino]
    except OSError:
        binary = None
    env = sorted(
        (k, v) for k, v in os.environ.items() if k.startswith("PIP_") or k in _CONFIG_PLACES
    )
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not glibc, or not POSIX
        libc = None
    venv = Path(os.path.abspath(exe)).parent.parent / "pyvenv.cfg"
    return [
        _PROBE_ID, real, binary, content(venv), [(f, content(f)) for f in files], env, libc,
        [(d, _dists(d)) for d in paths],
    ]  # fmt: skip


def _dists(folder: str) -> list[str] | None:
    """What is installed in a folder of sys.path, by name (an install or an uninstall
    changes it; a venv made afresh with the same packages does not)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    kinds = (".dist-info", ".egg-info", ".pth", ".egg-link")
    return sorted(n for n in names if n.endswith(kinds))


def _kept_path(keep: Path, exe: str) -> Path:
    return keep / "targets" / (hashlib.sha256(os.path.abspath(exe).encode()).hexdigest() + ".json")


def _kept(keep: Path, exe: str, pip_config: bool, isolated: bool = False) -> Probe | None:
    try:
        kept = json.loads(_kept_path(keep, exe).read_text())
        raw, stamp = kept["answer"], kept["stamp"]
        if pip_config and raw.get("isolated", False) != isolated:
            return None  # pip's settings read the other way
        if json.loads(json.dumps(_stamp(exe, raw["files"], raw.get("paths", [])))) != stamp:
            return None
        probe = _probe_of(raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return probe if probe.pip_config is not None or not pip_config else None


def _keep(keep: Path, exe: str, raw: dict[str, Any]) -> None:
    """Keep an answer; a cache that cannot be written only costs the next run a probe."""
    path = _kept_path(keep, exe)
    with contextlib.suppress(OSError, KeyError, TypeError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        stamp = _stamp(exe, raw["files"], raw.get("paths", []))
        tmp.write_text(json.dumps({"stamp": stamp, "answer": raw}))
        os.replace(tmp, path)


def query_target(python: str | None = None) -> Target:
    with start_probe(python) as pending:
        return pending.result().target


def start_pip_config(
    python: str | None = None, own_pip: bool = True, isolated: bool = False
) -> Pending[str]:
    """pip's settings as ``pip config list`` prints them (``_SETTINGS``), read by the
    target's pip (or the one lent it: ``pip_command``) in the background: settings from
    files and the environment (under ``isolated``, as ``pip --isolated`` reads them), or ""
    when pip could not say."""
    pip_command(python or sys.executable, own_pip)  # (no pip to lend: its UsageError)
    cmd = [python or sys.executable, "-c", _CONFIG, lent_folder()]
    return Pending(cmd + (["--pip-isolated"] if isolated else []), lambda _, out: _listing(out))


def pip_config_listing(python: str | None = None) -> str:
    """pip's settings (``start_pip_config``), waited for ("" when pip could not say)."""
    try:
        pending = start_pip_config(python)
    except OSError:
        return ""
    with pending:
        return pending.result()


def index_urls_in_config(listing: str, command: str = "install") -> tuple[str | None, list[str]]:
    """index-url and extra-index-urls from the lines of ``pip config list``
    (``global.index-url='https://...'``, ``:env:.extra-index-url='a b'``), each as pip ranks
    it: the environment over the command's section over ``global``."""
    index = next(iter(config_settings(listing, "index-url", command)), None)
    extras = next(iter(config_settings(listing, "extra-index-url", command)), "").split()
    return index, extras
