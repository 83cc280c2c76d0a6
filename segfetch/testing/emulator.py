"""A slow, flaky HTTP/1.1 file server on 127.0.0.1, for tests, benchmarks and `segfetch emulate`.

One trio task per connection, h11 on the server side. It serves synthetic files (deterministic
from the seed, never held whole in memory), in-memory bytes or files below a folder, honours
byte ranges and If-Range, paces every connection through token buckets, and injects faults
seeded from (seed, path, range start, attempt), so that a run is reproducible whatever the
accept order or the timing. Every request is logged when its response ends.

    async with Emulator({"/f.bin": SyntheticFile(8 << 20)}, link=Link(rate=256 << 10)) as emu:
        ...  # GET emu.url("/f.bin"); compare with emu.sha256("/f.bin"); inspect emu.log

With `index=folder` it is also a simple index of the wheels and sdists in that folder (PEP 503
HTML and PEP 691 JSON at emu.index_url, files at /files/<name>, PEP 658 metadata at
/files/<name>.metadata), shaped by IndexOptions; the files go through the same pacing and
faults, the pages do not.

From the command line, run `serve_forever(emulator)` under trio.run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html
import json
import logging
import os
import random
import re
import socket
import struct
import urllib.parse
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from email.parser import BytesHeaderParser
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import IO

import h11
import trio
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from segfetch.testing.wheelmaker import metadata_of

__all__ = ["Emulator", "Fault", "IndexOptions", "Link", "SyntheticFile", "serve_forever"]

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


HASHES_IN = frozenset({"hashes", "fragment", "both", "none"})
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


@dataclass(frozen=True)
class IndexOptions:
    """How the simple index (`Emulator(index=folder)`) answers; each knob mimics a real index."""

    json: bool = True  # answer PEP 691 JSON when the client's Accept prefers it
    html: bool = True  # answer PEP 503 HTML
    metadata: bool = True  # serve <file URL>.metadata (PEP 658) for wheels
    # False: like the proxy that drops the key; the .metadata files are still served.
    advertise_metadata: bool = True
    yanked: Mapping[str, str] = field(default_factory=dict)  # filename -> reason (PEP 592)
    hashes_in: str = "both"  # sha256 in JSON `hashes`, in the URL `#sha256=`, both, or none
    absolute_urls: bool = False  # http://127.0.0.1:PORT/files/... rather than ../../files/...

    def __post_init__(self) -> None:
        if not (self.json or self.html):
            raise ValueError("IndexOptions: enable json, html or both")
        if self.hashes_in not in HASHES_IN:
            raise ValueError(f"hashes_in must be one of {sorted(HASHES_IN)}")


@dataclass(frozen=True)
class _IndexFile:
    filename: str
    project: str  # PEP 503 normalized
    version: Version
    size: int
    sha256: str
    requires_python: str | None
    metadata_sha256: str | None  # wheels only


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

    `index_options` may be replaced likewise. Paths in `files` and below `root` come before the
    index's /files/.

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
        index: Path | None = None,
        index_options: IndexOptions = IndexOptions(),
    ) -> None:
        self.link = link
        self.index_options = index_options
        self._index = index.resolve() if index is not None else None
        self._index_cache: dict[tuple[str, int, int], _IndexFile | None] = {}
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

    @property
    def index_url(self) -> str:
        return self.url("/simple/")

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
        if spec is None and self._index is not None and path.startswith("/files/"):
            name = path.removeprefix("/files/")
            if self.index_options.metadata and name.endswith(".whl.metadata"):
                return self._metadata_source(name.removesuffix(".metadata"))
            spec = self._index_path(name)
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

    def _index_path(self, filename: str) -> Path | None:
        """A file directly in the index folder (no sub-folders, no dot files)."""
        if self._index is None or "/" in filename or filename.startswith("."):
            return None
        p = self._index / filename
        return p if p.is_file() else None

    def _metadata_source(self, filename: str) -> _Source | None:
        p = self._index_path(filename)
        if p is None:
            return None
        try:
            data = metadata_of(p)
        except (OSError, ValueError, zipfile.BadZipFile):
            return None
        tag = hashlib.sha256(data).hexdigest()[:24]
        date = formatdate(p.stat().st_mtime, usegmt=True)
        return _Source(len(data), f'"{tag}"', date, lambda a, b: data[a:b])

    def _index_files(self) -> list[_IndexFile]:
        """Every wheel and sdist in the index folder, read afresh so that files may be added
        while serving; digests are cached by (name, size, mtime)."""
        assert self._index is not None
        out = []
        for p in sorted(self._index.iterdir()):
            if p.name.startswith(".") or not p.is_file():
                continue
            st = p.stat()
            key = (p.name, st.st_size, st.st_mtime_ns)
            if key not in self._index_cache:
                self._index_cache[key] = _describe(p, st.st_size)
            if (info := self._index_cache[key]) is not None:
                out.append(info)
        return out

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
        headers = [*headers, ("Content-Type", "text/plain")]
        await self._send_bytes(c, method, status, headers, body, close, e)

    async def _send_bytes(
        self,
        c: _Conn,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        close: bool,
        e: _Entry | None = None,
    ) -> None:
        """A small response in one write: no pacing, no faults."""
        headers = [*headers, ("Content-Length", str(len(body)))]
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
        if target.startswith(("http://", "https://")):  # absolute form: we are the proxy
            target = "/" + target.split("/", 3)[-1] if target.count("/") >= 3 else "/"
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
        if self._index is not None and (path == "/simple" or path.startswith("/simple/")):
            await self._respond_index(c, method, path, hdrs, e)
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

    async def _respond_index(
        self, c: _Conn, method: str, path: str, hdrs: dict[str, str], e: _Entry
    ) -> None:
        """/simple/ and /simple/<project>/ pages, negotiated between PEP 691 JSON and HTML."""
        # Hashing a new large wheel takes a while: not on the event loop.
        every = await trio.to_thread.run_sync(self._index_files)
        rest = path.removeprefix("/simple").strip("/")
        if "/" in rest:
            await self._send_simple(c, method, 404, [], close=False, e=e)
            return
        project = _normalize(rest)
        files = [f for f in every if f.project == project]
        if rest and not files:
            await self._send_simple(c, method, 404, [], close=False, e=e)
            return
        canonical = f"/simple/{project}/" if rest else "/simple/"
        if path != canonical:  # as PyPI does for a non-normalized name or a missing slash
            await self._send_simple(c, method, 301, [("Location", canonical)], close=False, e=e)
            return
        opts = self.index_options
        media = _negotiate(hdrs.get("accept"), opts)
        if not rest:
            names = sorted({f.project for f in every})
            body = _render_list(names, media)
        else:
            base = self.url("/files/") if opts.absolute_urls else "../../files/"
            body = _render_project(project, files, media, opts, base)
        headers = [("Content-Type", media), ("Vary", "Accept")]
        e.sent = len(body) if method == "GET" else 0
        await self._send_bytes(c, method, 200, headers, body, close=False, e=e)

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


def _normalize(name: str) -> str:
    """PEP 503 project name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _describe(p: Path, size: int) -> _IndexFile | None:
    """What the index says about one file; None if it is not a wheel or sdist."""
    rp: str | None = None
    md_sha: str | None = None
    try:
        if p.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(p.name)
            try:
                md = metadata_of(p)
            except (OSError, ValueError, zipfile.BadZipFile):
                pass  # listed, but without metadata: a broken wheel is a fault worth serving
            else:
                md_sha = hashlib.sha256(md).hexdigest()
                value = BytesHeaderParser().parsebytes(md).get("Requires-Python")
                rp = str(value).strip() if value is not None else None
        else:
            name, version = parse_sdist_filename(p.name)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return _IndexFile(p.name, str(name), version, size, h.hexdigest(), rp, md_sha)


def _negotiate(accept: str | None, opts: IndexOptions) -> str:
    """The media type to answer: the offer with the highest q (JSON on a tie); HTML when the
    client accepts none (PEP 691 allows a default), or the one format enabled. A bare `*/*`
    (curl, browsers, httpx) gets HTML, as on PyPI: JSON must be asked for by name."""
    if not opts.html:
        return JSON_TYPE
    offers = [JSON_TYPE, "text/html", HTML_TYPE] if opts.json else ["text/html", HTML_TYPE]
    ranges = _parse_accept(accept or "text/html")
    best, best_q = "text/html", 0.0
    for offer in offers:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    return best


def _parse_accept(header: str) -> list[tuple[str, float]]:
    out = []
    for part in header.split(","):
        media, *params = (x.strip() for x in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not 0.0 <= q <= 1.0:  # also nan
            q = 0.0
        if media:
            out.append((media.lower().replace(".latest+", ".v1+"), q))
    return out


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """q of the most specific media range that matches the offer (RFC 9110 12.5.1)."""
    major = offer.partition("/")[0]
    matches = (
        {offer: 2, f"{major}/*": 1} if offer == JSON_TYPE else {offer: 2, f"{major}/*": 1, "*/*": 0}
    )
    best_spec, q = -1, 0.0
    for media, mq in ranges:
        spec = matches.get(media, -1)
        if spec > best_spec:
            best_spec, q = spec, mq
    return q


def _render_list(names: list[str], media: str) -> bytes:
    if media == JSON_TYPE:
        doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
        return json.dumps(doc).encode()
    links = "".join(f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br>\n' for n in names)
    return _html_page("Simple index", links)


def _render_project(
    project: str, files: list[_IndexFile], media: str, opts: IndexOptions, base: str
) -> bytes:
    entries = []
    for f in files:
        url = base + urllib.parse.quote(f.filename)
        if opts.hashes_in in ("fragment", "both"):
            url += f"#sha256={f.sha256}"
        hashes = {"sha256": f.sha256} if opts.hashes_in in ("hashes", "both") else {}
        yanked = opts.yanked.get(f.filename)
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": url,
            "hashes": hashes,
            "requires-python": f.requires_python,
            "yanked": False if yanked is None else (yanked or True),
            "size": f.size,
        }
        if opts.advertise_metadata:
            md = {"sha256": f.metadata_sha256} if opts.metadata and f.metadata_sha256 else False
            entry["core-metadata"] = entry["dist-info-metadata"] = md
        entries.append(entry)
    if media == JSON_TYPE:
        versions = sorted({f.version for f in files})
        doc = {
            "meta": {"api-version": "1.1"},
            "name": project,
            "files": entries,
            "versions": [str(v) for v in versions],
        }
        return json.dumps(doc).encode()
    links = []
    for entry in entries:
        attrs = [("href", str(entry["url"]))]
        if entry["requires-python"] is not None:
            attrs.append(("data-requires-python", str(entry["requires-python"])))
        if entry["yanked"] is not False:
            attrs.append(("data-yanked", opts.yanked[str(entry["filename"])]))
        advertised = entry.get("core-metadata")
        if isinstance(advertised, dict):
            value = f"sha256={advertised['sha256']}"
            attrs += [("data-core-metadata", value), ("data-dist-info-metadata", value)]
        text = " ".join(f'{k}="{html.escape(v)}"' for k, v in attrs)
        links.append(f"    <a {text}>{html.escape(str(entry['filename']))}</a><br>\n")
    return _html_page(f"Links for {project}", "".join(links))


def _html_page(title: str, body: str) -> bytes:
    t = html.escape(title)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>{t}</title>\n  </head>\n  <body>\n    <h1>{t}</h1>\n"
        f"{body}  </body>\n</html>\n"
    ).encode()


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
