"""The emulator itself: listen on 127.0.0.1, one trio task per connection, and answer each
request from the parts: content (files), seeded faults (faults), pacing (pacing, conn), the
simple index (index, pages), the request log (log)."""

from __future__ import annotations

import contextlib
import errno
import logging
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import h11
import trio

from segfetch.testing.emulator.answers import file_headers, instead, node_validators, other_node
from segfetch.testing.emulator.conn import Conn
from segfetch.testing.emulator.faults import Dice, Fault, Link, changed_version
from segfetch.testing.emulator.files import Contents, Source, SyntheticFile
from segfetch.testing.emulator.index import IndexFolder, IndexOptions
from segfetch.testing.emulator.log import Entry, RequestLog
from segfetch.testing.emulator.pacing import Bucket, round_trip
from segfetch.testing.emulator.pages import page
from segfetch.testing.emulator.ranges import Unsatisfiable, parse_range, range_if
from segfetch.testing.emulator.signed import Token, Tokens
from segfetch.testing.emulator.signed import parse as parse_signed

logger = logging.getLogger("segfetch.testing.emulator")
# A client that goes away shows up as one of these; never worth a traceback.
_PEER_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_DEFAULT_LINK, _DEFAULT_INDEX = Link(), IndexOptions()  # the defaults (frozen)


class Emulator:
    """The server. Use `async with Emulator(...) as emu:` (once per instance). `emu.link` may be
    replaced between downloads: it is read per request (rtt and max_connections also per
    connection).

    `index_options` may be replaced likewise. Paths in `files` and below `root` come before the
    index's /files/.

    `log` entries: t (request arrival, seconds since start), conn, method, path, range,
    if_range, status, start/end (served body, end exclusive; None without a file body), sent
    (the file's bytes written to the socket, before any gzip or multipart framing; a portal
    page's bytes), fault (kind, or "max_connections"; "node_etag" where If-Range named another
    node's ETag; "expire" on a signed URL's 403 or cut body), version, duration. With the
    expire fault, path is the path asked for: the file's (302) or its signed one.
    """

    def __init__(
        self,
        files: Mapping[str, SyntheticFile | bytes | Path] | None = None,
        *,
        root: Path | None = None,
        link: Link = _DEFAULT_LINK,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        index: Path | None = None,
        index_options: IndexOptions = _DEFAULT_INDEX,
    ) -> None:
        self.link = link
        self.index_options = index_options
        self.host, self.port = host, port
        self._index = IndexFolder(index) if index is not None else None
        self._contents = Contents(files or {}, root, self._from_index)
        self._requests_log = RequestLog(log_path)
        self.log = self._requests_log.rows
        self._dice = Dice()
        self._tokens = Tokens()  # the expire fault's signed URLs
        self._shared = Bucket()  # the token bucket of Link.shared_rate
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
        self._requests_log.open()
        self._stack = contextlib.AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        self._nursery.start_soon(self._accept_loop, listener)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._nursery is not None and self._stack is not None
        self._nursery.cancel_scope.cancel()
        # The body's own exception is not handed to the nursery: it propagates unwrapped.
        await self._stack.aclose()
        self._requests_log.close()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def index_url(self) -> str:
        return self.url("/simple/")

    def fired(self, kind: str) -> int:
        """How many answers a fault of `kind` shaped, even where the log names another one
        that fired in the same answer (a body fault shows before a request fault)."""
        return sum(n for f, n in self._dice.fired.items() if f.kind == kind)

    # -- content -----------------------------------------------------------------------------

    def _from_index(self, path: str) -> Path | Source | None:
        if self._index is None:
            return None
        return self._index.lookup(path, self.index_options.metadata)

    def _source(self, path: str, version: int = 0) -> Source | None:
        return self._contents.source(path, version, self.link.seed)

    def read(self, path: str, start: int, end: int, version: int = 0) -> bytes:
        """Bytes [start, end) of the file as served (cheap for a slice of a huge file)."""
        return self._contents.must(path, version, self.link.seed).read(start, end)

    def content(self, path: str, version: int = 0) -> bytes:
        src = self._contents.must(path, version, self.link.seed)
        return src.read(0, src.size)

    def size(self, path: str) -> int:
        return self._contents.must(path, 0, self.link.seed).size

    def sha256(self, path: str, version: int = 0) -> str:
        return self._contents.sha256(path, version, self.link.seed)

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
        c = Conn(cid, stream, self._requests_log)
        try:
            await round_trip(self.link.rtt)  # the handshake of a new connection
            while True:
                req = await c.next_request()
                if req is None:
                    return
                await self._respond(c, req, refused)
                if c.protocol.our_state is not h11.DONE or c.protocol.their_state is not h11.DONE:
                    return
                c.protocol.start_next_cycle()
        except _PEER_GONE:
            pass
        except Exception:  # one broken connection must never stop the server
            logger.exception("emulator: connection %d failed", cid)
        finally:
            if not refused:
                self.open_connections -= 1
            await trio.aclose_forcefully(stream)

    # -- one request -------------------------------------------------------------------------

    async def _respond(self, c: Conn, req: h11.Request, refused: bool) -> None:
        hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in req.headers}
        method = req.method.decode("latin-1")
        target = req.target.decode("latin-1")
        if target.startswith(("http://", "https://")):  # absolute form: we are the proxy
            target = "/" + target.split("/", 3)[-1] if target.count("/") >= 3 else "/"
        path = urllib.parse.unquote(target.partition("?")[0])
        e = Entry(trio.current_time() - self._t0, c.cid, method, path)
        e.range, e.if_range = hdrs.get("range"), hdrs.get("if-range")
        try:
            if refused:
                e.fault = "max_connections"
                await c.send_simple(method, 503, [("Retry-After", "1")], close=True, e=e)
                return
            await self._respond_file(c, method, path, hdrs, e)
        finally:
            e.duration = trio.current_time() - self._t0 - e.t
            self._requests_log.finish(e)

    async def _respond_file(
        self, c: Conn, method: str, path: str, hdrs: dict[str, str], e: Entry
    ) -> None:
        link = self.link
        await round_trip(link.rtt)
        if method not in ("GET", "HEAD"):
            await c.send_simple(method, 405, [("Allow", "GET, HEAD")], close=False, e=e)
            return
        if self._index is not None and (path == "/simple" or path.startswith("/simple/")):
            await self._respond_index(c, method, path, hdrs, e)
            return
        token = None
        if (expire := link.standing("expire")) is not None:
            signed = await self._signed(c, method, path, e, link, expire)
            if signed is None:
                return
            path, token = signed
        index = self._dice.requests[path]
        version = changed_version(index, link.faults) if self._contents.is_synthetic(path) else 0
        src = self._source(path, version)  # self.link: it may have changed during the rtt
        if src is None:
            await c.send_simple(method, 404, [], close=False, e=e)
            return
        self._dice.requests[path] += 1
        e.version = version
        validators = node_validators(link, src, c.cid)
        range_header = range_if(e.range, e.if_range, (v for _, v in validators))
        try:
            asked = parse_range(range_header, src.size)
        except Unsatisfiable:
            cr = ("Content-Range", f"bytes */{src.size}")
            await c.send_simple(method, 416, [cr, *validators], close=False, e=e)
            return
        attempt = self._dice.attempt(path, asked[0] if asked else 0)
        plan = self._dice.plan(link, path, index, attempt, asked, src.size, method)
        if token is not None and expire is not None and method == "GET":
            self._tokens.spend(token, expire, plan)
        f = plan.fault
        e.fault = f.kind if f is not None else None
        if e.range != range_header and other_node(link, src, c.cid, e.if_range):
            e.fault = e.fault or "node_etag"  # If-Range named another node's ETag: all of it
        if f is not None and f.kind == "status":
            extra = [("Retry-After", f.retry_after)] if f.retry_after is not None else []
            if f.status == 416:
                extra.append(("Content-Range", f"bytes */{src.size}"))
            await c.send_simple(method, f.status, extra, close=False, e=e)
            return
        if (answer := instead(plan, validators)) is not None:
            status, headers, body = answer
            e.sent = len(body) if method == "GET" else 0
            await c.send_bytes(method, status, headers, body, close=False, e=e)
            return
        e.status, e.start, e.end = plan.status, plan.start, plan.end
        headers = file_headers(link, plan, validators)
        await c.send_file(method, headers, src, plan, e, lambda: self.link, self._shared)

    async def _signed(
        self, c: Conn, method: str, path: str, e: Entry, link: Link, expire: Fault
    ) -> tuple[str, Token | None] | None:
        """The expire fault: the file's URL answers 302 to a new signed URL, an expired one
        403. Returns the file's path and the token to serve it under (None: not a signed
        path), or None once answered."""
        if (signed := parse_signed(path)) is None:
            if self._source(path) is None:
                return path, None  # not a file: 404 below
            location = self.url(urllib.parse.quote(self._tokens.issue(link, expire, path)))
            await c.send_simple(method, 302, [("Location", location)], close=False, e=e)
            return None
        if (token := self._tokens.admit(*signed)) is None:
            e.fault = "expire"
            await c.send_simple(method, 403, [], close=False, e=e)
            return None
        return signed[1], token

    async def _respond_index(
        self, c: Conn, method: str, path: str, hdrs: dict[str, str], e: Entry
    ) -> None:
        """/simple/ and /simple/<project>/ pages, negotiated between PEP 691 JSON and HTML."""
        assert self._index is not None
        # Hashing a new large wheel takes a while: not on the event loop.
        every = await trio.to_thread.run_sync(self._index.files)
        answer = page(every, path, hdrs.get("accept"), self.index_options, self.url("/files/"))
        if answer.body is None:
            await c.send_simple(method, answer.status, answer.headers, close=False, e=e)
            return
        e.sent = len(answer.body) if method == "GET" else 0
        await c.send_bytes(method, answer.status, answer.headers, answer.body, close=False, e=e)


async def serve_forever(
    emulator: Emulator, *, task_status: trio.TaskStatus[Emulator] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; `await nursery.start(serve_forever, emu)` returns the emulator
    once its port is known."""
    async with emulator:
        task_status.started(emulator)
        await trio.sleep_forever()
