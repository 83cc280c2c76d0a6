"""Credentials from ~/.netrc (or the file NETRC names) for a host whose URL gives none, as
pip reads them (through requests): the index of a private registry is often set up so.
Standard library only: the early request (early.py) asks before httpx is loaded."""

from __future__ import annotations

import os


def netrc_file() -> str | None:
    """The netrc file to read, if there is one."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    return path if os.path.isfile(path) else None


def credentials(path: str, host: str) -> tuple[str, str] | None:
    """(login, password) for ``host`` in the netrc file, its ``default`` entry else; None
    where it has none, or cannot be read (requests, so pip, then goes without)."""
    import netrc  # (only where a file exists: nothing at start-up otherwise)

    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError, UnicodeDecodeError):
        return None
    return (entry[0], entry[2]) if entry and (entry[0] or entry[2]) else None
