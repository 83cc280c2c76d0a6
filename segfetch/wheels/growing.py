"""A file while the engine downloads it, sent to clients as its bytes arrive in order.

The engine reports how many bytes from 0 are on disk (``Progress.prefix``); a reader sends
them from the ``.part``, waits for the next report (an event, no polling) and goes on. The
last byte is held back until the download is verified: the reader then checks that the
sha256 of all it sent is the verified file's, and only then sends it. The ``.part`` may
start over (the file changed upstream, a damaged range) and the download may fail; either
way a client gets a short body and tries again, never a complete wrong file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import trio

from segfetch.errors import SegfetchError
from segfetch.wheels.httpd import CHUNK, OCTETS, Cut, Reply


class Growing:
    def __init__(self, part: Path, size: int | None) -> None:
        self.part = part
        self.size = size  # from the index, or the engine's first answer; None: not known yet
        self.prefix = 0
        self.path: Path | None = None  # the verified file, once done
        self.sha256 = ""
        self.error: SegfetchError | None = None
        self.done = trio.Event()
        self._changed = trio.Event()

    def update(self, size: int | None, prefix: int) -> None:
        if (size is not None and size != self.size) or prefix != self.prefix:
            self.size = size if size is not None else self.size
            self.prefix = prefix
            self._wake()

    def finish(self, path: Path, sha256: str, size: int) -> None:
        self.path, self.sha256, self.size = path, sha256, size
        self.done.set()
        self._wake()

    def fail(self, error: SegfetchError) -> None:
        self.error = error
        self.done.set()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Until the next report. Callers look at the state first, with no checkpoint in
        between, so no report is missed."""
        await self._changed.wait()

    async def result(self) -> Path:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.path is not None
        return self.path


async def stream(g: Growing, reply: Reply) -> None:
    """Send the file as it grows: Content-Length once the size is known (else chunked)."""
    while g.size is None and g.prefix == 0 and not g.done.is_set():
        await g.changed()
    if g.error is not None:
        raise g.error  # nothing sent yet: the client hears why
    length = [("Content-Length", str(g.size))] if g.size is not None else []
    await reply.start(200, [("Content-Type", OCTETS), *length])
    if reply.head:
        await reply.end()
        return
    h = hashlib.sha256()
    sent = 0
    while not g.done.is_set():
        limit = g.prefix - 1  # the last byte waits for the verdict
        if g.size is not None:
            limit = min(limit, g.size - 1)
        data = _read(g.part, sent, min(CHUNK, limit - sent)) if sent < limit else b""
        if data:
            h.update(data)
            await reply.body(data)
            sent += len(data)
        else:
            await g.changed()
    if g.error is not None:
        raise g.error  # the body is cut short (the index app says why on the server's log)
    if g.path is None:
        raise Cut("its download ended without a file")
    await _finish(g.path, g.sha256, sent, h, reply)


async def _finish(path: Path, sha256: str, sent: int, h: hashlib._Hash, reply: Reply) -> None:
    """The rest from the verified file; its last piece only if all sent hashes right."""
    size = path.stat().st_size
    offset = sent
    while True:
        data = _read(path, offset, CHUNK)
        h.update(data)
        offset += len(data)
        if offset >= size:
            break
        if not data:
            raise Cut("the verified file changed while it was sent")
        await reply.body(data)
    if h.hexdigest() != sha256:  # what went out earlier is not this file: asked again, it is
        raise Cut("bytes sent before the download repaired them were damaged; ask again")
    await reply.body(data)
    await reply.end()


def _read(path: Path, offset: int, n: int) -> bytes:
    """Bytes of a file that may be renamed or started over meanwhile (then b"")."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return b""
    try:
        return os.pread(fd, n, offset)
    finally:
        os.close(fd)
