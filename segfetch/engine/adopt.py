"""The answer to early.py's request, read with h11 and handed on as an httpx response.

It is taken only for a request equal to the one httpx would send now (method, target and
every header): then the engine cannot tell it apart from httpx's own answer, but for the
connection, which is closed after the body instead of kept. A redirect is handed on too:
send() follows it, not asking the first URL again (a link that redirects once is spent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11
import httpx
import trio

from segfetch.engine.body import READ_SIZE, checked_chunks, chunks_checkable, range_length
from segfetch.engine.early import Early


def same_request(early: Early, request: httpx.Request) -> bool:
    def lowered(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return sorted((k.lower(), v) for k, v in items)

    return (
        request.method == "GET"
        and request.url.scheme == "http"
        and request.url.raw_path == early.target.encode()
        and lowered(request.headers.multi_items()) == lowered(early.headers)
    )


async def adopt(early: Early, request: httpx.Request, timeout: float) -> httpx.Response | None:
    """The early answer's head, as httpx's streamed response to ``request``; None where there
    is none to take (not sent, another request). Failures as httpx's."""
    sock = early.take()
    if sock is None:
        return None
    if not same_request(early, request):
        sock.close()
        return None
    body = _Body(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), request, timeout)
    body.conn.send(h11.Request(method="GET", target=early.target, headers=early.headers))
    body.conn.send(h11.EndOfMessage())
    try:
        head = await body.head()
    except BaseException:
        await body.aclose()
        raise
    return httpx.Response(
        head.status_code,
        headers=head.headers.raw_items(),
        stream=body,
        request=request,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
    )


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: trio.SocketStream, request: httpx.Request, timeout: float):
        self.stream, self.request, self.timeout = stream, request, timeout
        # (the most of a head httpcore takes)
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=100 * 1024)
        self.length: int | None = None  # a plain Content-Length body's, once the head is in
        self.range: int | None = None  # a 206's range length, by its Content-Range

    async def head(self) -> h11.Response:
        while not isinstance(head := await self.next_event(), h11.Response):
            if not isinstance(head, h11.InformationalResponse):  # (a 100 Continue: skipped)
                raise httpx.RemoteProtocolError("the connection closed before an answer")
        lengths = [v for k, v in head.headers if k == b"content-length"]
        chunked = any(k == b"transfer-encoding" for k, _ in head.headers)
        if head.status_code in (200, 206) and len(lengths) == 1 and not chunked:
            self.length = int(lengths[0])  # (h11 checked it is a number)
        ranges = [v for k, v in head.headers if k == b"content-range"]
        if len(ranges) == 1:
            self.range = range_length(head.status_code, ranges[0].decode("latin-1"))
        return head

    async def _read(self, size: int) -> bytes:
        try:
            with trio.fail_after(self.timeout):
                return await self.stream.receive_some(size)
        except trio.TooSlowError:
            raise httpx.ReadTimeout("the server went silent", request=self.request) from None
        except (trio.BrokenResourceError, OSError) as exc:
            raise httpx.ReadError(str(exc), request=self.request) from None

    async def _read_some(self) -> bytes:
        return await self._read(READ_SIZE)

    async def next_event(self) -> object:
        """h11's next event, reading the socket as it needs; failures as httpx's."""
        try:
            while (event := self.conn.next_event()) is h11.NEED_DATA:
                self.conn.receive_data(await self._read(READ_SIZE))
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=self.request) from None
        return event

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self.length
        if left is None and chunks_checkable(self.conn):  # each chunk once its end shows
            try:
                async for chunk in checked_chunks(self.conn, self._read_some, self.range):
                    yield chunk
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=self.request) from None
            return
        if left is None:  # ended by the close (or an h11 unlike body.py's): h11 frames it
            while isinstance(event := await self.next_event(), h11.Data):
                yield bytes(event.data)
            if not isinstance(event, h11.EndOfMessage):
                raise httpx.RemoteProtocolError("the answer ended early", request=self.request)
            return
        # What h11 holds (read with the head), then the socket's bytes, never past the end:
        # h11 would copy each chunk three times (body.py's reason; here for `-n 1`).
        while isinstance(event := self.conn.next_event(), h11.Data):
            left -= len(event.data)
            yield bytes(event.data)
        while left > 0:
            if not (data := await self._read(min(READ_SIZE, left))):
                raise httpx.RemoteProtocolError(
                    f"peer closed connection without sending complete message body ({left} "
                    "bytes short)",
                    request=self.request,
                )
            left -= len(data)
            yield data

    async def aclose(self) -> None:
        await self.stream.aclose()
