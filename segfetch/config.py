"""segfetch's own settings file: what `segfetch bench --save` writes, `get` and `install` read;
and where its cache lives.

``$SEGFETCH_CONFIG``, else ``$XDG_CONFIG_HOME/segfetch/config.json``, else
``~/.config/segfetch/config.json``. JSON: ``{"connections": 8, "hosts": {"files.example:443":
3}}``: a fixed -n, and where ``-n auto`` settled for each host, to begin there next time.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from pathlib import Path

from segfetch.errors import UsageError


def default_cache_dir() -> Path:
    if env := os.environ.get("SEGFETCH_CACHE_DIR"):
        return Path(env)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "segfetch"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "segfetch" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segfetch"


def cache_entry(root: Path, sha256: str) -> Path:
    """The folder of the cache's verified file with this sha256 (``wheels.cache``); here,
    where no trio is loaded, for install's look before it starts uv."""
    return root / "sha256" / sha256[:2] / sha256


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(os.environ.get("SEGFETCH_CONFIG", Path(base) / "segfetch" / "config.json"))


def saved_connections(default: str) -> str:
    """The -n that `segfetch bench --save` chose, as -n takes it; else ``default``."""
    saved = load_config().get("connections")
    value = _count(saved, 64)
    if value is None and saved is not None:
        # (a hand edit, say "connections": 100: said, not silently taken as auto)
        _warn(
            f'segfetch: ignoring "connections": {json.dumps(saved)} in {config_path()}: '
            "not a count of 1 to 64 (-n takes its default): fix or delete it"
        )
    return str(value) if value is not None else default


def load_config() -> dict[str, object]:
    """The settings, for hints only: a file that is not usable is warned of and ignored."""
    config, problem = _read()
    if problem:
        _warn(f"segfetch: ignoring settings file {config_path()}: {problem}: fix or delete it")
    return config


def save_connections(n: int) -> Path:
    return _write({**settings_for_saving(), "connections": n})


def settings_for_saving() -> dict[str, object]:
    """The settings to add to; a file that is not usable is a usage error, never written over
    (it is the user's: a typo must not cost the rest of it)."""
    config, problem = _read()
    if problem:
        raise UsageError(
            f"cannot save to the settings file {config_path()}: {problem}; fix or delete it"
        )
    return config


def _read() -> tuple[dict[str, object], str | None]:
    """The settings ({} if there is no file), or ({}, what is wrong with the file)."""
    try:
        text = config_path().read_text(encoding="utf-8")
        raw = json.loads(text) if text.strip() else {}
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"cannot read it ({exc.strerror or exc})"
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON (line {exc.lineno})"
    except ValueError:  # not UTF-8
        return {}, "not valid JSON (not UTF-8 text)"
    return (raw, None) if isinstance(raw, dict) else ({}, "not a JSON object")


@functools.cache  # once a process: the parser of each command reads the file too
def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def _write(config: dict[str, object]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two runs may save at once
    tmp.write_text(json.dumps(config, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def host_start(host: str) -> int | None:
    """Where ``-n auto`` settled for this host last time, if it was recorded."""
    hosts = load_config().get("hosts")
    return _count(hosts.get(host) if isinstance(hosts, dict) else None, 256)


def _count(value: object, most: int) -> int | None:
    """A saved count of connections, or None for anything else (true is an int to Python,
    and a bad value in a cache of what hosts rewarded is only ignored)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most:
        return value
    return None


def save_host_start(host: str, n: int) -> None:
    """Remember where ``-n auto`` settled for this host; never fails the command, and never
    writes over a file that is not usable (load_config warned of it)."""
    config, problem = _read()
    if problem:
        return
    hosts = config.get("hosts")
    hosts = dict(hosts) if isinstance(hosts, dict) else {}
    if hosts.get(host) == n:
        return
    hosts[host] = n
    with contextlib.suppress(OSError):
        _write({**config, "hosts": hosts})
