"""Verified files, addressed by sha256, shared by every segfetch process of a user.

A file is at ``<root>/sha256/<aa>/<digest>/<filename>`` only once it is complete and its
hash checked (the engine's atomic rename). A lock file per digest lets two processes that
want the same file wait for each other instead of writing one .part twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

LOCK_POLL = 0.05  # seconds between tries of a held lock


def default_cache_dir() -> Path:
    if env := os.environ.get("SEGFETCH_CACHE_DIR"):
        return Path(env)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "segfetch"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "segfetch" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segfetch"


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str, filename: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256 / filename

    def unverified_path(self, url: str, filename: str) -> Path:
        """Where a file whose hash the index did not give is fetched before it is known."""
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.root / "by-url" / key[:2] / key / filename

    def get(self, sha256: str, filename: str) -> Path | None:
        path = self.path(sha256, filename)
        return path if path.is_file() else None

    def adopt(self, path: Path, sha256: str) -> Path:
        """Move a file fetched by URL to its sha256 place."""
        final = self.path(sha256, path.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
        return final

    @asynccontextmanager
    async def lock(self, folder: Path) -> AsyncIterator[None]:
        """Hold the lock of one entry (works across processes; polled, so cancellable)."""
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await trio.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)  # closing releases the lock
