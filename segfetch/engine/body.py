"""A response's body read straight from its connection.

httpcore hands each chunk of a body through h11, which copies it three times (into its
receive buffer, then two slices), and copies it a fourth time itself (``bytes(event.data)``):
on a fast link those copies were a tenth of segfetch's CPU (perf, docs/benchmarks-history.md S8).
httpx still sends the request and reads the head, so proxies, TLS, redirects and the connect
and head timeouts are httpx's. Only the body of a plain ``Content-Length`` answer on HTTP/1.1
is read here: from the same network stream (httpcore's ``network_stream`` extension) with the
same read timeout, never past the body's end, telling h11 how many bytes went by so that the
connection is reused as before. A chunked body is read through h11 here too, for its chunks'
ends: a chunk's bytes are passed on only once what follows them shows that its size line told
the truth (a size line that says more than was sent swallows the framing that follows as
data, and a segment resumed after it kept that framing in the file). Any other answer,
and any httpx, httpcore or h11 whose insides are not the ones this was written against, gets
httpx's own ``aiter_raw``."""

from __future__ import annotations

import fcntl
import socket
import sys
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import h11
import httpcore
import httpx
import trio

from segfetch.engine.ranges import parse_content_range

READ_SIZE = 1024 * 1024  # the most one read asks for: it returns what the socket has
HOLD_MAX = 8 * READ_SIZE  # a longer chunk is passed on as it comes (memory), unchecked


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The raw bytes of ``response``'s body (no decoding, as ``aiter_raw``)."""
    inside = insides(response)
    if inside is None:
        return response.aiter_raw()
    if type(inside[1]).__name__ == "ChunkedReader":
        return _chunked(response, *inside)
    return _direct(response, *inside)


def unread(response: httpx.Response) -> tuple[int, int]:
    """Bytes of the answer already on this machine and not read yet (its socket's receive
    queue), and the most that queue may hold now (its receive buffer); (0, 0) where
    unknown. Behind a busy reader (a loaded machine, loopback) the queue stays full."""
    network: Any = response.extensions.get("network_stream")
    try:
        sock = network.get_extra_info("socket")  # (through TLS: the socket under it)
        queue = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
        room = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except (AttributeError, AssertionError, OSError, TypeError, ValueError):
        return 0, 0
    return max(0, int.from_bytes(queue, sys.byteorder, signed=True)), max(0, int(room))


def insides(response: httpx.Response) -> tuple[h11.Connection, Any, Any] | None:
    """h11's connection, its Content-Length or chunked reader and the network stream of a
    response whose body has not been touched; None where anything is not as expected."""
    if response.is_stream_consumed or response.is_closed:
        return None
    # httpx's BoundAsyncStream -> its transport's AsyncResponseStream -> httpcore's
    # PoolByteStream -> HTTP11ConnectionByteStream, whose connection holds the h11 state.
    stream: Any = response.stream
    for name in ("_stream", "_httpcore_stream", "_stream"):
        stream = getattr(stream, name, None)
    if type(stream).__name__ != "HTTP11ConnectionByteStream":
        return None
    state = getattr(getattr(stream, "_connection", None), "_h11_state", None)
    reader = getattr(state, "_reader", None)
    network = response.extensions.get("network_stream")
    if (
        not isinstance(state, h11.Connection)
        or state.their_state is not h11.SEND_BODY
        or not _untouched(reader)
        or not isinstance(network, httpcore.AsyncNetworkStream)
    ):
        return None
    return state, reader, network


def _untouched(reader: Any) -> bool:
    """An h11 reader of a Content-Length or chunked body, as this module knows it."""
    if type(reader).__name__ == "ContentLengthReader":
        return isinstance(getattr(reader, "_remaining", None), int)
    if type(reader).__name__ == "ChunkedReader":
        parts = (
            getattr(reader, "_bytes_in_chunk", None),
            getattr(reader, "_bytes_to_discard", None),
        )
        return parts == (0, b"")
    return False


async def _direct(
    response: httpx.Response, state: h11.Connection, reader: Any, network: Any
) -> AsyncIterator[bytes]:
    request = response.request
    timeout = request.extensions.get("timeout", {}).get("read")
    try:
        # First what h11 already holds: the body's start, read with the head.
        while isinstance(event := state.next_event(), h11.Data):
            yield bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return
        while reader._remaining > 0:
            data = await network.read(min(READ_SIZE, reader._remaining), timeout)
            if not data:
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body "
                    f"({reader._remaining} bytes short)",
                    request=request,
                )
            reader._remaining -= len(data)  # what h11 would have counted
            yield data
        state.next_event()  # EndOfMessage: closing the response gives the connection back
    except GeneratorExit:
        raise  # left unread: whoever holds the response closes it
    except BaseException as exc:
        if (mapped := await _closed(response, exc)) is None:
            raise
        raise mapped from exc


async def _chunked(
    response: httpx.Response, state: h11.Connection, reader: Any, network: Any
) -> AsyncIterator[bytes]:
    request = response.request
    timeout = request.extensions.get("timeout", {}).get("read")
    length = range_length(response.status_code, response.headers.get("Content-Range"))
    try:
        async for chunk in checked_chunks(state, partial(network.read, READ_SIZE, timeout), length):
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        if (mapped := await _closed(response, exc)) is None:
            raise
        raise mapped from exc


async def checked_chunks(
    state: h11.Connection, read: Callable[[], Awaitable[bytes]], length: int | None
) -> AsyncIterator[bytes]:
    """The chunked body h11's ``state`` reads (``read``: the socket's next bytes), each chunk
    passed on once the next one's size line came, or the message ended, or (``length``: a
    206's) the chunk ends the range and the CRLF after it came (the end of the message may
    never come); a chunk cut short or followed by anything else is dropped whole (a CRLF
    alone can be a lying size line's luck). h11's errors are raised as they are."""
    reader: Any = getattr(state, "_reader", None)
    held: list[bytes] = []
    size = passed = 0
    while True:
        event = state.next_event()
        checked = reader._bytes_in_chunk == 0 and not reader._bytes_to_discard
        last = checked and length is not None and passed + size >= length
        starts = isinstance(event, h11.Data) and event.chunk_start
        if held and (last or starts or size > HOLD_MAX):
            yield b"".join(held)
            held, passed, size = [], passed + size, 0
        if isinstance(event, h11.Data):
            held.append(bytes(event.data))
            size += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            if held:
                yield b"".join(held)
            return
        elif event is h11.NEED_DATA:
            state.receive_data(await read())
        else:
            raise h11.RemoteProtocolError(f"unexpected {event!r} in a chunked body")


def chunks_checkable(state: h11.Connection) -> bool:
    """Whether ``state`` is about to read a chunked body that checked_chunks can follow."""
    reader = getattr(state, "_reader", None)
    return type(reader).__name__ == "ChunkedReader" and _untouched(reader)


def range_length(status: int, content_range: str | None) -> int | None:
    """The length of a 206's range, by its Content-Range (None: no such range)."""
    try:
        start, end, _ = parse_content_range(content_range or "")
    except ValueError:
        return None
    return end - start if status == 206 else None


async def _closed(response: httpx.Response, exc: BaseException) -> httpx.TransportError | None:
    """As httpcore's reader does: a failed or cancelled body closes its connection now, not
    after the caller's backoff. Returns httpx's exception for ``exc`` (None: raise it)."""
    with trio.CancelScope(shield=True):
        await response.aclose()
    return _as_httpx(exc, response.request)


def _as_httpx(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """httpx's exception for what httpcore or h11 raised (as httpx maps them itself)."""
    if isinstance(exc, httpcore.TimeoutException):
        return httpx.ReadTimeout(str(exc), request=request)
    if isinstance(exc, httpcore.NetworkError | httpcore.ProtocolError):
        return httpx.ReadError(str(exc), request=request)
    if isinstance(exc, h11.RemoteProtocolError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    return None
