"""Where a download keeps its bytes and its control file until the final rename, and what
it may be renamed over. Only the standard library: `get` checks its destination and looks
for a control file before trio and httpx load."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from pathlib import Path

from segfetch.errors import Busy, DiskError, UsageError

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


def check_destination(dest: Path) -> None:
    """Refuse a destination the final rename would wrongly replace: a device, a FIFO, a
    socket (as root, a rename over /dev/null replaces the device), or a folder."""
    try:
        mode = os.stat(dest).st_mode
    except FileNotFoundError:
        check_not_held(dest)  # (another download's control file, not written yet)
        return
    except OSError as exc:
        raise DiskError.from_os(exc, str(dest)) from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{str(dest)!r} is a folder; give a file path")
    if not stat.S_ISREG(mode):
        # (-o /dev/null is curl's way to time a link: segfetch bench is ours)
        measure = "; to measure the link, `segfetch bench URL`" if dest == Path(os.devnull) else ""
        raise UsageError(
            f"{str(dest)!r} is not a regular file (a device or a pipe); segfetch writes a file "
            f"and renames it into place: give a file path{measure}"
        )
    check_not_held(dest)


def check_not_held(dest: Path) -> None:
    """Refuse a destination another download holds locked: its .part, or that .part's
    control file (a second download named after one would rename its file into that
    one's place, which then wrote over it, or removed it)."""
    part, what = dest, "its .part"
    for side in _SUFFIXES[1:]:
        if dest.name.endswith(side):  # (unlocked itself: the .part it describes is)
            part, what = dest.with_name(dest.name.removesuffix(side) + ".part"), "its control file"
    try:
        fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # none, a symlink: the rename replaces it, as any file
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise Busy(
                f"{dest} is being written by another download (it is {what}); "
                "choose another destination"
            ) from None
    finally:
        os.close(fd)
