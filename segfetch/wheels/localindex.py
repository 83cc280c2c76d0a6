"""A local index in front of pip's resolver, so that every byte pip asks for comes
through segfetch: project pages from the real indexes (retried), files and their metadata
through the engine (segmented, resumed, verified, cached).

pip is told every file has PEP 658 metadata, so resolving a wheel costs one small
``.metadata`` download, not the whole wheel. Where the upstream has no ``.metadata`` file
the wheel is fetched through the engine and its METADATA read from it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11
import trio
from packaging.utils import canonicalize_name

from segfetch.errors import HTTPStatusError, SegfetchError
from segfetch.wheels.index import IndexFile

FetchFile = Callable[[IndexFile], Awaitable[Path]]
FetchMetadata = Callable[[IndexFile], Awaitable[bytes | None]]
FetchProject = Callable[[str], Awaitable[list[IndexFile]]]
CHUNK = 64 * 1024
# Upstream statuses that mean "not there": pip hears a 404, as from an index without the
# file. Any other failure is a 502, which stops pip; we then report the upstream's reason.
NOT_THERE = frozenset({404, 410})


class LocalIndex:
    def __init__(self, project: FetchProject, file: FetchFile, metadata: FetchMetadata) -> None:
        self._project, self._file, self._metadata = project, file, metadata
        self.files: dict[str, IndexFile] = {}  # our /files/<key>/<name> -> upstream file
        self.port = 0
        self.error: SegfetchError | None = None  # the first failure, to report instead of pip's

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await _next_event(conn, stream)
                if not isinstance(event, h11.Request):
                    return
                while not isinstance(await _next_event(conn, stream), h11.EndOfMessage):
                    pass
                await self._answer(conn, stream, event.target.decode("latin-1"))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass  # pip went away
        finally:
            await stream.aclose()

    async def _answer(self, conn: h11.Connection, stream: trio.SocketStream, target: str) -> None:
        parts = target.split("?")[0].strip("/").split("/")
        try:
            if parts[0] == "simple" and len(parts) == 2:
                body = await self._page(parts[1])
                await _send(conn, stream, 200, "text/html; charset=utf-8", body)
            elif parts[0] == "files" and len(parts) == 3 and parts[1] in self.files:
                f = self.files[parts[1]]
                if parts[2] == f.filename + ".metadata":
                    meta = await self._metadata(f)
                    if meta is None:
                        await _send(conn, stream, 404, "text/plain", b"no metadata")
                    else:
                        await _send(conn, stream, 200, "text/plain", meta)
                elif parts[2] == f.filename:
                    await _send_file(conn, stream, await self._file(f))
                else:
                    await _send(conn, stream, 404, "text/plain", b"not found")
            else:
                await _send(conn, stream, 404, "text/plain", b"not found")
        except SegfetchError as exc:
            self.error = self.error or exc
            gone = isinstance(exc, HTTPStatusError) and exc.status in NOT_THERE
            status = 404 if gone else 502
            await _send(conn, stream, status, "text/plain", str(exc).encode())

    async def _page(self, name: str) -> bytes:
        rows = []
        for f in await self._project(name):
            key = str(len(self.files))
            self.files[key] = f
            href = f"/files/{key}/{f.filename}" + (f"#sha256={f.sha256}" if f.sha256 else "")
            attrs = [f'href="{html.escape(href)}"']
            if f.requires_python:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked is not None:
                attrs.append(f'data-yanked="{html.escape(f.yanked)}"')
            if f.filename.endswith(".whl"):
                attrs += ['data-dist-info-metadata="true"', 'data-core-metadata="true"']
            rows.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
        title = html.escape(canonicalize_name(name))
        head = f"<!DOCTYPE html><html><head><title>{title}</title></head>"
        return f"{head}<body>{''.join(rows)}</body></html>".encode()

    def upstream(self, url: str) -> IndexFile | None:
        """The upstream file behind one of our /files/ URLs."""
        parts = url.split("#")[0].split("/files/", 1)
        return self.files.get(parts[1].split("/")[0]) if len(parts) == 2 else None


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(CHUNK))


async def _send(
    conn: h11.Connection, stream: trio.SocketStream, status: int, ctype: str, body: bytes
) -> None:
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
    out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    out += (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(out)


async def _send_file(conn: h11.Connection, stream: trio.SocketStream, path: Path) -> None:
    size = path.stat().st_size
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in range(0, size, CHUNK):
            await stream.send_all(conn.send(h11.Data(data=os.pread(fd, CHUNK, offset))) or b"")
    finally:
        os.close(fd)
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
