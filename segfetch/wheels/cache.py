"""Verified files, addressed by sha256, shared by every segfetch process of a user.

A file is at ``<root>/sha256/<aa>/<digest>/<filename>`` only once it is complete and its
hash checked (the engine's atomic rename). A lock file per digest lets two processes that
want the same file wait for each other instead of writing one .part twice.

A disk, a hard link edited in place or a stray tool can still damage an entry later, so
``get`` checks one before it is used: its size against the index's, and its sha256 once per
run (a ``Cache`` is one run); a damaged entry is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from segfetch.config import cache_entry, default_cache_dir
from segfetch.engine.store import HASH_CHUNK
from segfetch.errors import UsageError

LOCK_POLL = 0.05  # seconds between tries of a held lock

__all__ = ["Cache", "default_cache_dir", "identity", "sha256_of"]


# What identifies one version of a file on disk; any write or rename changes the ctime.
Identity = tuple[int, int, int, int, int]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def identity(path: Path) -> Identity | None:
    """The file's identity now; None if it is not there."""
    try:
        return _identity(path.stat())
    except OSError:
        return None


async def sha256_of(path: Path) -> str:
    return await digest_of(path, "sha256")


async def digest_of(path: Path, algorithm: str) -> str:
    """The file's digest (a hashlib name), read in a thread chunk by chunk (each chunk is a
    checkpoint, so a cancelled guess does not hold its lock for a whole large file)."""
    h = hashlib.new(algorithm)
    with path.open("rb", buffering=0) as f:

        def step() -> bool:
            chunk = f.read(HASH_CHUNK)
            h.update(chunk)
            return bool(chunk)

        while await trio.to_thread.run_sync(step):
            pass
    return h.hexdigest()


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._verified: dict[Path, Identity] = {}  # entries whose sha256 this run checked
        # URLs of files listed without a sha256 whose copy this run fetched, or the server
        # confirmed (unhashed.py): not asked about again this run
        self.confirmed: set[str] = set()

    def check(self) -> None:
        """Make the root if need be and write a file in it: a cache that cannot be used is a
        usage error said before any work, not a failure of every fetch later."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".check-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            why = "a file is there" if isinstance(exc, FileExistsError) else exc.strerror or exc
            raise UsageError(
                f"cannot use the cache folder {str(self.root)!r}: {why}; "
                "give --cache-dir a folder segfetch can write to"
            ) from None

    @property
    def files(self) -> Path:
        """The verified files: each alone in a folder named by its sha256."""
        return self.root / "sha256"

    def path(self, sha256: str, filename: str) -> Path:
        return cache_entry(self.root, sha256) / filename

    def unverified_path(self, url: str, filename: str) -> Path:
        """Where a file whose hash the index did not give is fetched before it is known."""
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.root / "by-url" / key[:2] / key / filename

    async def get(
        self,
        sha256: str,
        filename: str,
        *,
        size: int | None = None,
        damaged: Callable[[str], None] | None = None,
    ) -> Path | None:
        """The entry if it is intact, else None. Hold the entry's lock: a damaged entry is
        removed (``damaged`` is told why), so no other process sees it half replaced."""
        path = self.path(sha256, filename)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        why = None
        if size is not None and st.st_size != size:
            why = f"{st.st_size} bytes, not {size}"
        elif self._verified.get(path) != _identity(st) and await sha256_of(path) != sha256:
            why = "its sha256 does not match"
        if why is not None:
            self._verified.pop(path, None)
            path.unlink(missing_ok=True)
            if damaged is not None:
                damaged(why)
            return None
        self._verified[path] = _identity(st)
        return path

    def verified(self, path: Path) -> None:
        """Note a file whose sha256 was just checked (by the engine): not hashed again this run."""
        self._verified[path] = _identity(path.stat())

    def adopt(self, path: Path, sha256: str) -> Path:
        """Move a file fetched by URL to its sha256 place."""
        final = self.path(sha256, path.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
        return final

    async def get_locked(
        self,
        sha256: str,
        filename: str,
        *,
        size: int | None = None,
        damaged: Callable[[str], None] | None = None,
    ) -> Path | None:
        """``get`` under the entry's lock, for a caller that holds it for nothing else."""
        async with self.lock(self.path(sha256, filename).parent):
            return await self.get(sha256, filename, size=size, damaged=damaged)

    def busy(self, folder: Path) -> bool:
        """Whether the entry's lock is held now (by another process, or another task)."""
        try:
            fd = os.open(folder / ".lock", os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # (a lock taken here goes with it)

    @asynccontextmanager
    async def lock(self, folder: Path) -> AsyncIterator[None]:
        """Hold the lock of one entry (works across processes; polled, so cancellable). Its
        folder and file are made in a thread (~1 ms on a busy disk, for each file of a set)."""
        fd = await trio.to_thread.run_sync(_lock_file, folder)
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


def _lock_file(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
