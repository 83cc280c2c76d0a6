"""segfetch's own settings file: what `segfetch bench --save` writes, `get` and `install` read.

``$SEGFETCH_CONFIG``, else ``$XDG_CONFIG_HOME/segfetch/config.json``, else
``~/.config/segfetch/config.json``. JSON: ``{"connections": 8}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(os.environ.get("SEGFETCH_CONFIG", Path(base) / "segfetch" / "config.json"))


def saved_connections(default: str) -> str:
    """The -n that `segfetch bench --save` chose, as -n takes it; else ``default``."""
    value = load_config().get("connections")
    return str(value) if isinstance(value, int) and 1 <= value <= 64 else default


def load_config() -> dict[str, object]:
    try:
        raw = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def save_connections(n: int) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {**load_config(), "connections": n}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=1) + "\n")
    os.replace(tmp, path)
    return path
