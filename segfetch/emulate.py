"""A slow, flaky HTTP/1.1 file server on 127.0.0.1, for tests, benchmarks and `segfetch emulate`.

One trio task per connection, h11 on the server side. It serves synthetic files (deterministic
from the seed, never held whole in memory), in-memory bytes or files below a folder, honours
byte ranges and If-Range, paces every connection through token buckets, and injects faults
seeded from (seed, path, range start, attempt), so that a run is reproducible whatever the
accept order or the timing. Every request is logged when its response ends.

    async with Emulator({"/f.bin": SyntheticFile(8 << 20)}, link=Link(rate=256 << 10)) as emu:
        ...  # GET emu.url("/f.bin"); compare with emu.sha256("/f.bin"); inspect emu.log

From the command line, run `serve_forever(emulator)` under trio.run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import re
import socket
import struct
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import IO

import h11
import trio

__all__ = ["Emulator", "Fault", "Link", "SyntheticFile", "serve_forever"]

logger = logging.getLogger(__name__)

BLOCK = 4096
_BLOCK_HEAD = struct.Struct(">QQ")  # block index, version
_CHUNK_MIN, _CHUNK_MAX = 1024, 64 * 1024
_SLACK = 0.05  # a bucket this far behind `now` restarts from now (idle); less is timer overshoot
_EPOCH = 1_700_000_000  # Last-Modified of version 0 of in-memory and synthetic files
BODY_FAULTS = frozenset({"reset", "close", "stall", "flip"})
REQUEST_FAULTS = frozenset({"ignore_range", "wrong_range", "status"})
FAULT_KINDS = BODY_FAULTS | REQUEST_FAULTS | {"change"}
# A client that goes away shows up as one of these; never worth a traceback.
_PEER_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour. Body faults (reset, close, stall, flip) fire at a body offset
    drawn in [every/2, 3*every/2) (offset 0 if every is None) when the body is that long; request
    faults (ignore_range, wrong_range, status) fire with probability `rate`. ignore_range and
    wrong_range only apply to ranged requests (wrong_range not to one starting at 0)."""

    kind: str
    every: int | None = None
    rate: float = 1.0
    status: int = 503
    retry_after: str | None = "1"
    after: int = 0  # only requests with index >= after on that path (0-based, all methods)
    limit: int | None = None  # at most this many firings server-wide
    stall_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.every is not None and self.every <= 0:
            raise ValueError("Fault.every must be positive")


@dataclass(frozen=True)
class Link:
    rate: float | None = None  # bytes/s per connection
    shared_rate: float | None = None  # bytes/s across all connections
    rtt: float = 0.0  # once per new connection, and once before each response's headers
    max_connections: int | None = None  # beyond: 503 + Retry-After: 1, then close
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    etag: bool = True
    last_modified: bool = True


@dataclass(frozen=True)
class SyntheticFile:
    size: int


@dataclass(frozen=True)
class _Source:
    """One file at one version: size, validators, and bytes [a, b) on demand."""

    size: int
    etag: str
    last_modified: str
    read: Callable[[int, int], bytes]


def synthetic_bytes(a: int, b: int, version: int, tail: bytes) -> bytes:
    """Bytes [a, b) of a synthetic file: block i is (i, version) as two big-endian u64, then
    `tail`. Built per call, so a slice of a 1 GiB file costs only the slice."""
    if a >= b:
        return b""
    first, last = a // BLOCK, (b - 1) // BLOCK
    data = b"".join(_BLOCK_HEAD.pack(i, version) + tail for i in range(first, last + 1))
    return data[a - first * BLOCK : b - first * BLOCK]


def _pread(path: Path, a: int, b: int) -> bytes:
    # Blocking, but one chunk (<= 64 KiB) from the page cache: not worth a thread.
    with open(path, "rb") as f:
        return os.pread(f.fileno(), max(0, b - a), a)


class _Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """Half-open [start, end) for one `bytes=` range; None = serve the whole file.

    Raises _Unsatisfiable for a well-formed range that starts at or past the end.
    Multiple or malformed ranges give None, as many servers do.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    m = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if unit.strip().lower() != "bytes" or m is None or m.group(0).strip() == "-":
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0 or total == 0:
            raise _Unsatisfiable
        return max(0, total - n), total
    a = int(first)
    b = int(last) if last else total - 1
    if last and b < a:
        return None
    if a >= total:
        raise _Unsatisfiable
    return a, min(b, total - 1) + 1


@dataclass
class _Conn:
    cid: int
    stream: trio.SocketStream
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    tat: float = 0.0  # theoretical arrival time of this connection's token bucket


@dataclass
class _Entry:
    t: float
    conn: int
    method: str = ""
    path: str = ""
    range: str | None = None
    if_range: str | None = None
    status: int = 0
    start: int | None = None
    end: int | None = None
    sent: int = 0
    fault: str | None = None
    version: int = 0
    duration: float = 0.0
    row: dict[str, object] | None = field(default=None, repr=False)  # once in the log

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "row"}


@dataclass
class _Plan:
    """What one response will do, after the faults have been drawn."""

    status: int
    start: int
    end: int
    content_range: str | None = None
    fault: Fault | None = None  # the fault that fired, if any
    fault_at: int = -1  # body offset of a body fault


class Emulator:
    """The server. Use `async with Emulator(...) as emu:` (once per instance). `emu.link` may be
    replaced between downloads: it is read per request (rtt and max_connections also per
    connection).

    `log` entries: t (request arrival, seconds since start), conn, method, path, range,
    if_range, status, start/end (served body, end exclusive; None without a file body), sent
    (body bytes written to the socket), fault (kind, or "max_connections"), version, duration.
    """

    def __init__(
        self,
        files: Mapping[str, SyntheticFile | bytes | Path] | None = None,
        *,
        root: Path | None = None,
        link: Link = Link(),
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        self.link = link
        self.host, self.port = host, port
        self.log: list[dict[str, object]] = []
        self._files = dict(files or {})
        self._root = root.resolve() if root is not None else None
        self._log_path = log_path
        self._log_file: IO[str] | None = None
        self._tails: dict[tuple[int, str, int], bytes] = {}
        self._digests: dict[tuple[int, str, int], str] = {}
        self._requests: Counter[str] = Counter()  # per path
        self._attempts: Counter[tuple[str, int]] = Counter()  # per (path, range start)
        self._fired: Counter[Fault] = Counter()
        self._shared_tat = 0.0
        self._next_cid = 0
        self.open_connections = 0  # admitted (not refused) connections now open
        self._t0 = 0.0
        self._stack: contextlib.AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        listener = listeners[0]
        for extra in listeners[1:]:  # a host name may resolve to several addresses
            await extra.aclose()
        self.port = listener.socket.getsockname()[1]
        self._t0 = trio.current_time()
        if self._log_path is not None:
            self._log_file = open(self._log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._stack = contextlib.AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        self._nursery.start_soon(self._accept_loop, listener)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._nursery is not None and self._stack is not None
        self._nursery.cancel_scope.cancel()
        # The body's own exception is not handed to the nursery: it propagates unwrapped.
        await self._stack.aclose()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -- content -----------------------------------------------------------------------------

    def _source(self, path: str, version: int = 0) -> _Source | None:
        seed = self.link.seed
        tag = hashlib.sha256(f"{seed}:{path}:{version}".encode()).hexdigest()[:24]
        date = formatdate(_EPOCH + 86400 * version, usegmt=True)
        spec = self._files.get(path)
        if spec is None and self._root is not None:
            p = (self._root / path.lstrip("/")).resolve()
            if p.is_relative_to(self._root) and p.is_file():
                spec = p
        if isinstance(spec, SyntheticFile):
            key, size = (seed, path, version), spec.size
            if key not in self._tails:
                rng = random.Random(f"{seed}:{path}:{version}")
                self._tails[key] = rng.randbytes(BLOCK - _BLOCK_HEAD.size)
            tail = self._tails[key]
            return _Source(
                size, f'"{tag}"', date, lambda a, b: synthetic_bytes(a, min(b, size), version, tail)
            )
        if isinstance(spec, bytes):
            data = spec
            return _Source(len(data), f'"{tag}"', date, lambda a, b: data[a:b])
        if isinstance(spec, Path):
            st, disk = spec.stat(), spec
            dtag = hashlib.sha256(f"{tag}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
            date = formatdate(st.st_mtime, usegmt=True)
            return _Source(st.st_size, f'"{dtag[:24]}"', date, lambda a, b: _pread(disk, a, b))
        return None

    def _must(self, path: str, version: int) -> _Source:
        src = self._source(path, version)
        if src is None:
            raise KeyError(path)
        return src

    def read(self, path: str, start: int, end: int, version: int = 0) -> bytes:
        """Bytes [start, end) of the file as served (cheap for a slice of a huge file)."""
        return self._must(path, version).read(start, end)

    def content(self, path: str, version: int = 0) -> bytes:
        src = self._must(path, version)
        return src.read(0, src.size)

    def size(self, path: str) -> int:
        return self._must(path, 0).size

    def sha256(self, path: str, version: int = 0) -> str:
        src = self._must(path, version)
        key = (self.link.seed, path, version)
        if key not in self._digests or not isinstance(self._files.get(path), SyntheticFile):
            h = hashlib.sha256()
            for a in range(0, src.size, 1 << 20):
                h.update(src.read(a, a + (1 << 20)))
            self._digests[key] = h.hexdigest()
        return self._digests[key]

    def _version(self, path: str, index: int, link: Link) -> int:
        if not isinstance(self._files.get(path), SyntheticFile):
            return 0
        changed = any(f.kind == "change" and index >= f.after for f in link.faults)
        return 1 if changed else 0

    # -- connections -------------------------------------------------------------------------

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        assert self._nursery is not None
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as e:  # out of descriptors or memory: wait, do not die
                    if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
                        raise
                    await trio.sleep(0.1)
                    continue
                cid, self._next_cid = self._next_cid, self._next_cid + 1
                limit = self.link.max_connections
                refused = limit is not None and self.open_connections >= limit
                if not refused:
                    self.open_connections += 1
                self._nursery.start_soon(self._serve_conn, stream, cid, refused)

    async def _serve_conn(self, stream: trio.SocketStream, cid: int, refused: bool) -> None:
        c = _Conn(cid, stream)
        try:
            if self.link.rtt:
                await trio.sleep(self.link.rtt)  # the handshake of a new connection
            while True:
                req = await self._next_request(c)
                if req is None:
                    return
                await self._respond(c, req, refused)
                if c.h11.our_state is not h11.DONE or c.h11.their_state is not h11.DONE:
                    return
                c.h11.start_next_cycle()
        except _PEER_GONE:
            pass
        except Exception:  # one broken connection must never stop the server
            logger.exception("emulator: connection %d failed", cid)
        finally:
            if not refused:
                self.open_connections -= 1
            await trio.aclose_forcefully(stream)

    async def _next_request(self, c: _Conn) -> h11.Request | None:
        """The next request, with its (empty) body consumed; None when the client is done."""
        req: h11.Request | None = None
        try:
            while True:
                ev = c.h11.next_event()
                if ev is h11.NEED_DATA:
                    c.h11.receive_data(await c.stream.receive_some(65536))
                elif isinstance(ev, h11.Request):
                    req = ev
                elif isinstance(ev, h11.EndOfMessage):
                    return req
                elif isinstance(ev, h11.ConnectionClosed) or ev is h11.PAUSED:
                    return None
        except h11.RemoteProtocolError:
            if c.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send_simple(c, "GET", 400, [], close=True)
            return None

    async def _send_simple(
        self,
        c: _Conn,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        close: bool,
        e: _Entry | None = None,
    ) -> None:
        body = f"{status} {_reason(status)}\n".encode()
        headers = [*headers, ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        out = c.h11.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        if method != "HEAD":
            out = (out or b"") + (c.h11.send(h11.Data(data=body)) or b"")
        out = (out or b"") + (c.h11.send(h11.EndOfMessage()) or b"")
        if e is not None:
            e.status = status
            self._publish(e)
        await c.stream.send_all(out)

    # -- one request -------------------------------------------------------------------------

    async def _respond(self, c: _Conn, req: h11.Request, refused: bool) -> None:
        hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in req.headers}
        method = req.method.decode("latin-1")
        target = req.target.decode("latin-1")
        path = urllib.parse.unquote(target.partition("?")[0])
        e = _Entry(trio.current_time() - self._t0, c.cid, method, path)
        e.range, e.if_range = hdrs.get("range"), hdrs.get("if-range")
        try:
            if refused:
                e.fault = "max_connections"
                await self._send_simple(c, method, 503, [("Retry-After", "1")], close=True, e=e)
                return
            await self._respond_file(c, method, path, hdrs, e)
        finally:
            e.duration = trio.current_time() - self._t0 - e.t
            self._publish(e)
            assert e.row is not None
            e.row.update(e.as_dict())  # final figures, if the last write failed
            if self._log_file is not None:
                self._log_file.write(json.dumps(e.row) + "\n")
                self._log_file.flush()

    async def _respond_file(
        self, c: _Conn, method: str, path: str, hdrs: dict[str, str], e: _Entry
    ) -> None:
        link = self.link
        if link.rtt:
            await trio.sleep(link.rtt)
        if method not in ("GET", "HEAD"):
            await self._send_simple(c, method, 405, [("Allow", "GET, HEAD")], close=False, e=e)
            return
        index = self._requests[path]
        version = self._version(path, index, link)
        src = self._source(path, version)
        if src is None:
            await self._send_simple(c, method, 404, [], close=False, e=e)
            return
        self._requests[path] += 1
        e.version = version
        validators = []
        if link.etag:
            validators.append(("ETag", src.etag))
        if link.last_modified:
            validators.append(("Last-Modified", src.last_modified))
        range_header = e.range
        if e.if_range is not None and e.if_range.strip() not in {v for _, v in validators}:
            range_header = None  # changed (or unknown validator): the whole current file
        try:
            asked = parse_range(range_header, src.size)
        except _Unsatisfiable:
            cr = ("Content-Range", f"bytes */{src.size}")
            await self._send_simple(c, method, 416, [cr, *validators], close=False, e=e)
            return
        start = asked[0] if asked else 0
        attempt = self._attempts[path, start]
        self._attempts[path, start] += 1
        plan = self._plan(link, path, index, attempt, asked, src.size, method)
        f = plan.fault
        e.fault = f.kind if f is not None else None
        if f is not None and f.kind == "status":
            extra = [("Retry-After", f.retry_after)] if f.retry_after is not None else []
            if f.status == 416:
                extra.append(("Content-Range", f"bytes */{src.size}"))
            await self._send_simple(c, method, f.status, extra, close=False, e=e)
            return
        e.status, e.start, e.end = plan.status, plan.start, plan.end
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            ("Content-Length", str(plan.end - plan.start)),
            *validators,
        ]
        if plan.content_range is not None:
            headers.append(("Content-Range", plan.content_range))
        resp = h11.Response(status_code=plan.status, headers=headers, reason=_reason(plan.status))
        head = c.h11.send(resp) or b""
        if method == "HEAD":
            self._publish(e)
            await c.stream.send_all(head + (c.h11.send(h11.EndOfMessage()) or b""))
            return
        await c.stream.send_all(head)
        await self._send_body(c, src, plan, e)

    def _plan(
        self,
        link: Link,
        path: str,
        index: int,
        attempt: int,
        asked: tuple[int, int] | None,
        size: int,
        method: str,
    ) -> _Plan:
        start, end = asked or (0, size)
        plan = _Plan(206 if asked else 200, start, end)
        if asked:
            plan.content_range = f"bytes {start}-{end - 1}/{size}"
        body_faults: list[tuple[int, int, Fault]] = []
        for i, f in enumerate(link.faults):
            # One generator per (request, fault): the draws do not depend on other faults.
            rng = random.Random(f"{link.seed}:{path}:{start}:{attempt}:{i}:{f.kind}")
            if f.kind == "change" or index < f.after:
                continue
            if f.limit is not None and self._fired[f] >= f.limit:
                continue
            if f.kind in REQUEST_FAULTS:
                if plan.fault is not None or rng.random() >= f.rate:
                    continue
                if f.kind == "status":
                    plan.fault = f
                    self._fired[f] += 1
                    return plan
                if f.kind == "ignore_range" and asked:
                    plan = _Plan(200, 0, size, None, f)
                elif f.kind == "wrong_range" and asked and start > 0:
                    s, t = start - 1, end - 1  # same length, one byte early
                    plan = _Plan(206, s, t, f"bytes {s}-{t - 1}/{size}", f)
            else:
                at = 0 if f.every is None else int(f.every * (0.5 + rng.random()))
                body_faults.append((at, i, f))
        if plan.fault is not None:
            self._fired[plan.fault] += 1
        hits = [(at, i, f) for at, i, f in body_faults if at < plan.end - plan.start]
        if hits and method == "GET":
            # One body fault per response, the earliest; the log shows it rather than a
            # request fault that also fired (both count towards their limits).
            plan.fault_at, _, plan.fault = min(hits)
            self._fired[plan.fault] += 1
        return plan

    async def _send_body(self, c: _Conn, src: _Source, plan: _Plan, e: _Entry) -> None:
        kind = plan.fault.kind if plan.fault is not None else None
        cut = plan.start + plan.fault_at  # absolute offset of a body fault
        stop = cut if kind in ("reset", "close", "stall") else plan.end
        pos = plan.start
        if pos == plan.end:
            self._publish(e)
            await c.stream.send_all(c.h11.send(h11.EndOfMessage()) or b"")
        while pos < stop:
            n = min(self._chunk_size(), stop - pos)
            await self._pace(c, n)
            data = src.read(pos, pos + n)
            if kind == "flip" and pos <= cut < pos + n:
                buf = bytearray(data)
                buf[cut - pos] ^= 0xFF
                data = bytes(buf)
            out = c.h11.send(h11.Data(data=data)) or b""
            pos += n
            e.sent += n
            if pos == plan.end:  # Content-Length framing: EndOfMessage adds no bytes
                out += c.h11.send(h11.EndOfMessage()) or b""
                self._publish(e)
            try:
                await c.stream.send_all(out)
            except BaseException:
                e.sent -= n
                raise
        # Below: the body stays incomplete, so _serve_conn closes the connection after logging.
        if kind == "reset":
            # SO_LINGER on with 0 s: close() sends RST and drops anything still queued.
            linger = struct.pack("ii", 1, 0)
            c.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        elif kind == "stall":
            assert plan.fault is not None
            with trio.move_on_after(plan.fault.stall_seconds):
                while await c.stream.receive_some(65536):
                    pass  # b"" means the client closed: stop stalling

    # -- pacing ------------------------------------------------------------------------------

    def _chunk_size(self) -> int:
        rates = [r for r in (self.link.rate, self.link.shared_rate) if r]
        if not rates:
            return _CHUNK_MAX
        return max(_CHUNK_MIN, min(_CHUNK_MAX, int(min(rates) * 0.01)))

    async def _pace(self, c: _Conn, n: int) -> None:
        link = self.link
        if link.rate:
            c.tat = _reserve(c.tat, n, link.rate)
            await trio.sleep_until(c.tat)
        if link.shared_rate:
            # Reserved only after the per-connection wait, so a waiting connection does not
            # hold shared bandwidth it cannot use yet.
            self._shared_tat = _reserve(self._shared_tat, n, link.shared_rate)
            await trio.sleep_until(self._shared_tat)

    def _publish(self, e: _Entry) -> None:
        # Called just before the last bytes of a response go out: a client that has seen
        # the whole response (and the test driving it) always finds the entry in the log.
        if e.row is None:
            e.row = e.as_dict()
            self.log.append(e.row)


def _reserve(tat: float, n: int, rate: float) -> float:
    """Virtual scheduling: the time by which n more bytes may have been sent.

    A bucket that fell behind by less than _SLACK keeps its virtual time, so sleep overshoot
    is made up on the next chunk instead of adding up; further behind, the link was idle.
    """
    now = trio.current_time()
    if tat < now - _SLACK:
        tat = now
    return tat + n / rate


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def serve_forever(
    emulator: Emulator, *, task_status: trio.TaskStatus[Emulator] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; `await nursery.start(serve_forever, emu)` returns the emulator
    once its port is known."""
    async with emulator:
        task_status.started(emulator)
        await trio.sleep_forever()
