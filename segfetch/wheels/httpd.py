"""The HTTP/1.1 side of segfetch's index server (h11): one connection's loop with its
limits, and the ways to answer: bytes, a file on disk with Range, a body sent piece by piece.

Only GET and HEAD exist here: any other method, or a request with a body, gets a 405 and the
connection is closed without reading further. A request head larger than ``MAX_HEAD`` gets a
431, one not sent within ``HEAD_TIMEOUT`` seconds a closed connection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Literal

import h11
import trio

from segfetch.engine.ranges import Span

MAX_HEAD = 16 * 1024  # request line and headers, bytes
HEAD_TIMEOUT = 30.0  # seconds a client has to send a request's head
CHUNK = 256 * 1024
OCTETS = "application/octet-stream"
Headers = Sequence[tuple[str, str]]
UNSATISFIABLE: Literal["unsatisfiable"] = "unsatisfiable"


class Cut(Exception):
    """Stop the response here and close the connection: the client sees a short body."""


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


class Reply:
    """One response on a connection; a HEAD request's reply sends no body."""

    def __init__(self, conn: h11.Connection, stream: trio.abc.Stream, head: bool) -> None:
        self.conn, self.stream, self.head = conn, stream, head
        self.started = False
        self.extra: list[tuple[str, str]] = []  # headers for whatever answer is sent

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        hs = [("Server", "segfetch"), *self.extra, *headers]
        reason = HTTPStatus(status).phrase.encode()
        response = h11.Response(status_code=status, headers=hs, reason=reason)
        await self.stream.send_all(self.conn.send(response))

    async def body(self, data: bytes) -> None:
        if data and not self.head:
            await self.stream.send_all(self.conn.send(h11.Data(data=data)))

    async def end(self) -> None:
        await self.stream.send_all(self.conn.send(h11.EndOfMessage()))

    async def whole(self, status: int, ctype: str, body: bytes, headers: Headers = ()) -> None:
        hs = [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers]
        await self.start(status, hs)
        await self.body(body)
        await self.end()

    async def text(self, status: int, message: str, headers: Headers = ()) -> None:
        await self.whole(status, "text/plain; charset=utf-8", message.encode(), headers)


Handler = Callable[[Request, Reply], Awaitable[None]]


async def serve_listeners(
    listeners: list[trio.SocketListener],
    handler: Handler,
    *,
    max_clients: int,
    long: Callable[[Request], bool] = lambda _: False,
) -> None:
    """Answer connections until cancelled; more than ``max_clients`` requests at once wait
    their turn, those that may ``long`` last (a file streamed over a slow uplink) apart from
    the others (pages), which they would hold up for as long. A kept-alive connection
    between requests holds no place: pip's and uv's pools keep many such open, and they
    would lock out other clients for HEAD_TIMEOUT."""
    short, lasting = trio.CapacityLimiter(max_clients), trio.CapacityLimiter(max_clients)

    def limiter(request: Request) -> trio.CapacityLimiter:
        return lasting if long(request) else short

    await trio.serve_listeners(
        partial(serve_connection, handler=handler, limiter=limiter), listeners
    )


async def serve_connection(
    stream: trio.abc.Stream,
    handler: Handler,
    *,
    head_timeout: float = HEAD_TIMEOUT,
    limiter: Callable[[Request], trio.CapacityLimiter] | None = None,
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        while True:
            request = None
            with trio.move_on_after(head_timeout):  # a slow or idle client frees its place
                request = await _read_request(conn, stream)
            if request is None:
                return
            reply = Reply(conn, stream, request.head)
            if request.method not in ("GET", "HEAD") or _has_body(request):
                allow = [("Allow", "GET, HEAD"), ("Connection", "close")]
                await reply.text(405, "only GET and HEAD, without a body", allow)
                return  # its body is not read: the connection cannot be reused
            while not isinstance(await _next_event(conn, stream), h11.EndOfMessage):
                pass
            try:
                async with limiter(request) if limiter else contextlib.nullcontext():
                    await handler(request, reply)
            except (Cut, trio.BrokenResourceError, trio.ClosedResourceError):
                raise
            except Exception as exc:
                # A bug or a disk error costs this request, never the server (or any other
                # client): said on the server's stderr, a 500 if nothing was sent yet.
                print(f"segfetch: {request.method} {request.target}: {exc!r}", file=sys.stderr)
                if not reply.started:
                    await reply.text(500, "internal error; see the server's log")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # no response begun yet
            status = HTTPStatus(exc.error_status_hint)
            head = f"HTTP/1.1 {status.value} {status.phrase}\r\nConnection: close\r\n"
            head += "Content-Length: 0\r\n\r\n"
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(head.encode())
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError, Cut):
        pass  # the client went away, or the body was cut short on purpose
    finally:
        if conn.our_state is h11.SEND_BODY:  # a body cut short (a failure, the server stopping)
            _reset(stream)
        await trio.aclose_forcefully(stream)


def _reset(stream: trio.abc.Stream) -> None:
    """Close with a reset, not a FIN: a client reading a body cut short then sees a network
    error, not an early end it could take for the whole file (pip 23 does not check
    Content-Length, and reports a hash mismatch as tampering)."""
    sock = getattr(stream, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> Request | None:
    # h11 checks the size of an incomplete head only: one arriving whole is measured here
    received = 0
    too_large = h11.RemoteProtocolError("request head too large", error_status_hint=431)
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            if received > MAX_HEAD:
                raise too_large from None
            raise
        if received > MAX_HEAD:
            raise too_large
        if event is not h11.NEED_DATA:
            break
        data = await stream.receive_some(MAX_HEAD)
        received += len(data)
        conn.receive_data(bytes(data))
    if not isinstance(event, h11.Request):
        return None
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(event.method.decode("latin-1"), event.target.decode("latin-1"), headers)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0").strip()
    return "transfer-encoding" in request.headers or length not in ("", "0")


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(MAX_HEAD)))


def parse_range(value: str | None, size: int) -> Span | Literal["unsatisfiable"] | None:
    """The one byte range a Range header asks of a ``size``-byte file: a Span, None for the
    whole file (no header, one we do not honour: several ranges, another unit, a malformed
    one; RFC 9110 lets a server ignore those), or UNSATISFIABLE (a 416). Pure."""
    if value is None:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":  # the last N bytes
        if last == "":
            return None
        n = int(last)
        return UNSATISFIABLE if n == 0 or size == 0 else Span(max(0, size - n), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = size if last == "" else min(size, int(last) + 1)
    return Span(start, end)


async def send_file(
    request: Request, reply: Reply, path: Path, *, etag: str | None = None, headers: Headers = ()
) -> None:
    """A complete file, or the one range asked for (206), or a 416. If-Range against the
    ETag: a range of another version is never sent. If-None-Match with it: a 304 (the
    client's HTTP cache holds this file)."""
    if etag is not None and held(request, etag):
        await reply.start(304, [("ETag", etag), *headers])
        await reply.end()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        asked = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range != etag:
            asked = None
        span = parse_range(asked, size)
        common = [("Accept-Ranges", "bytes"), *([("ETag", etag)] if etag else []), *headers]
        if span == UNSATISFIABLE:
            await reply.text(416, "range not satisfiable", [("Content-Range", f"bytes */{size}")])
            return
        if span is None:
            span, status = Span(0, size), 200
        else:
            status = 206
            common.append(("Content-Range", f"bytes {span.start}-{span.end - 1}/{size}"))
        length = ("Content-Length", str(span.end - span.start))
        await reply.start(status, [("Content-Type", OCTETS), length, *common])
        if not reply.head:
            for offset in range(span.start, span.end, CHUNK):
                n = min(CHUNK, span.end - offset)
                data = await trio.to_thread.run_sync(os.pread, fd, n, offset)
                if len(data) != n:
                    raise Cut  # shrunk under us: never pad
                await reply.body(data)
        await reply.end()
    finally:
        os.close(fd)


def held(request: Request, etag: str) -> bool:
    """Whether the client's cache holds what ``etag`` names (If-None-Match: a 304 then)."""
    tags = [
        t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")
    ]
    return etag in tags or "*" in tags


def basic_auth_ok(header: str | None, user_pass: str) -> bool:
    """Whether an Authorization header carries exactly ``user:pass`` (Basic). Pure."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return secrets.compare_digest(given, user_pass.encode())
