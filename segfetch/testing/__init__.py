"""A test kit, as trio.testing is one: the link emulator and the wheel maker. Used by the
tests, the benchmarks and `segfetch emulate` / `demo`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile
    from segfetch.testing.wheelmaker import make_wheel

# Imported on first use, so that the wheel maker alone does not load the server.
_HOMES = {
    **dict.fromkeys(("Emulator", "Fault", "Link", "SyntheticFile"), "segfetch.testing.emulator"),
    "make_wheel": "segfetch.testing.wheelmaker",
}

__all__ = ["Emulator", "Fault", "Link", "SyntheticFile", "make_wheel"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'segfetch.testing' has no attribute {name!r}")
