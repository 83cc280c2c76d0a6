"""uv started before trio and httpx load (``streaming.Early`` adopts it).

On a fast link the first ~0.3 s of `segfetch install` is Python loading trio and httpx (on
2 shared cores), and uv's own start and its look at the target interpreter take ~0.2 s
more. For a pinned set whose files are not cached, uv is started first, against a socket
bound now: the kernel holds uv's connections until the event loop runs, and the index
behind the socket answers once the plan is in, as it does for a uv started later. If the
set then takes another route, this uv is stopped, having installed nothing.

Only the standard library here: importing more would delay what this is for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from segfetch.config import cache_entry
from segfetch.wheels.children import spawn, stop
from segfetch.wheels.installer import Installer, uv_from_loopback

BACKLOG = 64  # uv opens one connection per project page at once


@dataclass
class Prelaunched:
    """A uv running against ``sock`` (not served yet), its output going to ``out``/``err``."""

    sock: socket.socket
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    no_deps: bool
    sweep: Callable[[], None]  # removes earlier runs' uv caches (``uv_cache``), for a thread

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop(self.proc)

    def output(self) -> tuple[bytes, bytes]:
        self.out.seek(0)
        self.err.seek(0)
        return self.out.read(), self.err.read()


def no_deps(installer: Installer, pinned: bool) -> bool:
    """uv is told --no-deps for a set planned from its pins (unless the user said it)."""
    return pinned and "--no-deps" not in installer.uv_args


def all_cached(cache_root: Path, hashes: Sequence[Collection[str]]) -> bool:
    """Whether every hashed requirement has a file in the cache, when each has hashes: such
    a set installs from the cache, without uv's index."""
    return bool(hashes) and all(
        h and any(cache_entry(cache_root, sha).is_dir() for sha in h) for h in hashes
    )


@contextlib.contextmanager
def prelaunch(
    installer: Installer,
    python: str,
    reqs: Sequence[str],
    pip_args: Sequence[str],
    quiet: bool,
    cache_root: Path,
) -> Iterator[Prelaunched | None]:
    """uv installing the pinned ``reqs`` (as pip takes them) from an index on a socket of
    ours; stopped on the way out unless it ended (``Early`` waits for it). None where it
    cannot start (a cache folder that cannot be written: said later, as without this)."""
    with contextlib.ExitStack() as stack:
        try:
            folder, sweep = stack.enter_context(uv_cache(cache_root))
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            out = stack.enter_context(tempfile.TemporaryFile())
            err = stack.enter_context(tempfile.TemporaryFile())
            sock.bind(("127.0.0.1", 0))
            sock.listen(BACKLOG)
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/simple/"
            told = no_deps(installer, pinned=True)
            cmd, env = uv_from_loopback(
                installer, python, url, [], folder, told, reqs, pip_args, quiet
            )
            proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        except OSError:
            stack.close()
            yield None
            return
        pre = Prelaunched(sock, proc, out, err, told, sweep)
        stack.callback(pre.stop)
        yield pre


@contextlib.contextmanager
def uv_cache(root: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """uv's cache for this run, and what removes earlier runs' (``sweep``, for a thread).

    uv keys a download by its index URL, and ours has a fresh port each run: uv's own
    cache would keep a copy of the set per run. So each run has a folder of its own,
    beside segfetch's cache (the file system of the user's caches: hard links work as
    from uv's own). It is removed by a later run while its files download, not at the
    end: removing 400 files just written took 0.6 s on a busy disk. A run holds the
    lock beside its folder while it lives, so no other run removes a folder in use."""
    runs = root / "uv-runs"
    runs.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=runs))
    fd = os.open(folder.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def sweep() -> None:
        for lock in runs.glob("*.lock"):
            if lock.with_suffix("") == folder:
                continue
            try:
                other = os.open(lock, os.O_RDWR)
            except OSError:
                continue  # removed meanwhile
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
                lock.unlink(missing_ok=True)
            except OSError:
                pass  # in use by a run going on now (or gone meanwhile)
            finally:
                os.close(other)

    try:
        yield str(folder), sweep
    finally:
        os.close(fd)  # releases the lock: the folder is a later run's to remove
