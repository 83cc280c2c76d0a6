"""The file on disk: ``<dest>.part`` with a control file beside it, and the final rename.

The control file (``<dest>.part.json``) says which byte ranges of the .part are written,
and of which file: the URL, size, validator (ETag / Last-Modified) and expected sha256.
The next run resumes from it only if that identity matches. The final path is only ever
made by an atomic rename of a complete, fsynced, verified .part.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

from segfetch.engine.ranges import RangeSet

HASH_CHUNK = 4 * 1024 * 1024


@dataclass
class State:
    """What the control file records."""

    url: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    done: RangeSet = field(default_factory=RangeSet)

    def same_file(self, url: str, sha256: str | None) -> bool:
        # Identity is the sha256 where known (a mirror serves the same bytes), else the URL.
        if sha256 is not None and self.sha256 is not None:
            return sha256 == self.sha256
        return url == self.url and sha256 == self.sha256


class PartFile:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.control = dest.with_name(dest.name + ".part.json")
        self.fd: int | None = None

    def load(self, url: str, sha256: str | None) -> State | None:
        """The saved state if it is for this file and its .part is intact, else None."""
        try:
            raw = json.loads(self.control.read_text())
            state = State(
                url=raw["url"],
                size=int(raw["size"]),
                etag=raw.get("etag"),
                last_modified=raw.get("last_modified"),
                sha256=raw.get("sha256"),
                done=RangeSet((int(a), int(b)) for a, b in raw["done"]),
            )
            part_size = self.part.stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        ends = [e for _, e in state.done]
        if not state.same_file(url, sha256) or (ends and ends[-1] > min(part_size, state.size)):
            return None
        return state

    def save(self, state: State) -> None:
        raw = {
            "url": state.url,
            "size": state.size,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "sha256": state.sha256,
            "done": [[s, e] for s, e in state.done],
        }
        tmp = self.control.with_name(self.control.name + ".tmp")
        tmp.write_text(json.dumps(raw))
        os.replace(tmp, self.control)

    def open(self, *, fresh: bool) -> None:
        self.close()
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        self.fd = os.open(self.part, flags, 0o644)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        assert self.fd is not None
        while data:
            n = os.pwrite(self.fd, data, offset)
            data, offset = data[n:], offset + n

    async def sync(self) -> None:
        """Make written bytes durable before the control file claims them."""
        if self.fd is not None:
            await trio.to_thread.run_sync(os.fdatasync, self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def commit(self) -> None:
        """Move the verified .part to the final path; the control file goes last."""
        assert self.fd is not None
        os.fsync(self.fd)
        self.close()
        os.replace(self.part, self.dest)
        _fsync_dir(self.dest.parent)
        self.control.unlink(missing_ok=True)

    def forget(self) -> None:
        """Drop the resume state (the .part stays, to be rewritten from byte 0)."""
        self.control.unlink(missing_ok=True)

    def discard(self) -> None:
        self.close()
        for path in (self.part, self.control):
            path.unlink(missing_ok=True)


class PrefixHasher:
    """sha256 of the file's completed prefix, read back from the .part as the prefix grows.

    Reading back (from the page cache) keeps one code path for bytes that arrived in
    order and bytes that arrived early from other segments; hashing runs in a thread.
    """

    def __init__(self, part: PartFile) -> None:
        self.part = part
        self.hashed = 0
        self._hash = hashlib.sha256()

    async def advance(self, to: int) -> None:
        while self.hashed < to:
            n = min(HASH_CHUNK, to - self.hashed)
            await trio.to_thread.run_sync(self._update, self.hashed, n)

    def _update(self, offset: int, n: int) -> None:
        assert self.part.fd is not None
        data = os.pread(self.part.fd, n, offset)
        if len(data) != n:
            raise OSError(f"{self.part.part} is shorter than the bytes recorded in it")
        self._hash.update(data)
        self.hashed += n

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
