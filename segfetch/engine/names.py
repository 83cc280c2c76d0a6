"""Where a download keeps its bytes and its control file until the final rename. Pure, and
only the standard library: `get` looks for a control file before trio and httpx load."""

from __future__ import annotations

import hashlib
import os

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
_SUFFIXES = (".part", ".part.json", ".part.json.tmp")


def side_names(name: str) -> tuple[str, str]:
    """Names of the .part and the control file for a destination called ``name``: beside it
    as ``name.part`` / ``name.part.json`` where that fits in a file name, else under a short
    hidden name derived from it (a 250-byte file name must work too). Pure."""
    raw = os.fsencode(name)  # (a name that is not UTF-8 is legal on Linux)
    if len(raw + _SUFFIXES[-1].encode()) > NAME_MAX:
        name = ".segfetch-" + hashlib.sha256(raw).hexdigest()[:32]
    return name + _SUFFIXES[0], name + _SUFFIXES[1]
