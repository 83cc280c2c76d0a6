"""One HTTP/1.1 connection on the server side (h11): read the next request, write a response.
Small responses go in one write; a file's body goes chunk by chunk through the token buckets,
with the body fault its Plan drew (reset, close, stall, flip, expire), multipart-framed or
gzip-encoded where the Plan's shape says so."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11
import trio

from segfetch.testing.emulator.answers import Encoder
from segfetch.testing.emulator.faults import Link, Plan
from segfetch.testing.emulator.files import Source
from segfetch.testing.emulator.log import Entry, RequestLog
from segfetch.testing.emulator.pacing import Bucket, chunk_size, pace


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclass
class Conn:
    cid: int
    stream: trio.SocketStream
    log: RequestLog
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    bucket: Bucket = field(default_factory=Bucket)  # this connection's token bucket

    def _data(self, data: bytes) -> bytes:
        return (self.protocol.send(h11.Data(data=data)) or b"") if data else b""

    async def next_request(self) -> h11.Request | None:
        """The next request, with its (empty) body consumed; None when the client is done."""
        req: h11.Request | None = None
        try:
            while True:
                ev = self.protocol.next_event()
                if ev is h11.NEED_DATA:
                    self.protocol.receive_data(await self.stream.receive_some(65536))
                elif isinstance(ev, h11.Request):
                    req = ev
                elif isinstance(ev, h11.EndOfMessage):
                    return req
                elif isinstance(ev, h11.ConnectionClosed) or ev is h11.PAUSED:
                    return None
        except h11.RemoteProtocolError:
            if self.protocol.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self.send_simple("GET", 400, [], close=True)
            return None

    async def send_simple(
        self,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        close: bool,
        e: Entry | None = None,
    ) -> None:
        """A plain-text status line as the body."""
        body = f"{status} {reason(status)}\n".encode()
        headers = [*headers, ("Content-Type", "text/plain")]
        await self.send_bytes(method, status, headers, body, close, e)

    async def send_bytes(
        self,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        close: bool,
        e: Entry | None = None,
    ) -> None:
        """A small response in one write: no pacing, no faults."""
        headers = [*headers, ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        out = self.protocol.send(
            h11.Response(status_code=status, headers=headers, reason=reason(status))
        )
        if method != "HEAD":
            out = (out or b"") + (self.protocol.send(h11.Data(data=body)) or b"")
        out = (out or b"") + (self.protocol.send(h11.EndOfMessage()) or b"")
        if e is not None:
            e.status = status
            self.log.publish(e)
        await self.stream.send_all(out)

    async def send_file(
        self,
        method: str,
        headers: list[tuple[str, str]],
        src: Source,
        plan: Plan,
        e: Entry,
        link: Callable[[], Link],
        shared: Bucket,
    ) -> None:
        """Bytes [plan.start, plan.end) of `src` (none for HEAD), paced at the rates of `link()`
        as they are at each chunk."""
        resp = h11.Response(status_code=plan.status, headers=headers, reason=reason(plan.status))
        head = self.protocol.send(resp) or b""
        if method == "HEAD":
            self.log.publish(e)
            await self.stream.send_all(head + (self.protocol.send(h11.EndOfMessage()) or b""))
            return
        await self.stream.send_all(head)
        await self._send_body(src, plan, e, link, shared)

    async def _send_body(
        self, src: Source, plan: Plan, e: Entry, link: Callable[[], Link], shared: Bucket
    ) -> None:
        # e.sent counts the file's bytes, before any encoding or multipart framing.
        pos, stop = plan.start, plan.stop
        encoder, head = Encoder(plan), plan.prefix
        if pos == plan.end:
            self.log.publish(e)
            out = self._data(head + plan.suffix) + (self.protocol.send(h11.EndOfMessage()) or b"")
            await self.stream.send_all(out)
        while pos < stop:
            current = link()
            rate, until = current.rate, stop
            if plan.kind == "slow" and plan.fault is not None:
                if pos < plan.cut:
                    until = plan.cut
                else:
                    rate = min(rate or plan.fault.slow_rate, plan.fault.slow_rate)
            n = min(chunk_size(rate, current.shared_rate), until - pos)
            await pace(n, rate, current.shared_rate, self.bucket, shared)
            data = src.read(pos, pos + n)
            if (i := plan.flip_at(pos, n)) is not None:
                buf = bytearray(data)
                buf[i] ^= 0xFF
                data = bytes(buf)
            pos += n
            last = pos == plan.end
            wire = head + encoder.encode(data, last) + (plan.suffix if last else b"")
            out, head = self._data(wire), b""
            e.sent += n
            if last:  # the end of the message goes in the same write
                out += self.protocol.send(h11.EndOfMessage()) or b""
                self.log.publish(e)
            try:
                await self.stream.send_all(out)
            except BaseException:
                e.sent -= n
                raise
        # Below: the body stays incomplete, so the server closes the connection after logging.
        if plan.kind == "reset":
            # SO_LINGER on with 0 s: close() sends RST and drops anything still queued.
            linger = struct.pack("ii", 1, 0)
            self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        elif plan.kind == "stall":
            assert plan.fault is not None
            with trio.move_on_after(plan.fault.stall_seconds):
                while await self.stream.receive_some(65536):
                    pass  # b"" means the client closed: stop stalling
