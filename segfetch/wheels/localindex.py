"""segfetch's own simple index: one implementation for ``segfetch serve`` and for the index
``segfetch install`` runs in front of pip's resolver, so that every byte a client asks for
comes through segfetch: project pages from the real indexes, files and their metadata
through the engine (segmented, resumed, verified, cached).

``IndexApp`` answers requests (routes and pages in ``simple.py``, HTTP in ``httpd.py``)
from three functions of its owner: a project's files, a file's METADATA, and sending a
file. A file is served only if it is listed on its project's page, as upstream listed it;
a request never names an upstream URL. Clients are told every wheel has PEP 658 metadata,
so resolving a wheel costs one small ``.metadata`` download, not the whole wheel; where the
upstream has no ``.metadata`` the wheel is fetched and its METADATA read from it.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import trio

from segfetch.errors import HashMismatch, HTTPStatusError, SegfetchError
from segfetch.wheels import simple
from segfetch.wheels.httpd import (
    Cut,
    Reply,
    Request,
    basic_auth_ok,
    held,
    send_file,
    serve_listeners,
)
from segfetch.wheels.index import IndexFile
from segfetch.wheels.pages import cache_control as cache_control_of

FetchFile = Callable[[IndexFile], Awaitable[Path]]
FetchMetadata = Callable[[IndexFile], Awaitable[bytes | None]]
# (name, revalidate): revalidate, the client asked for the page checked with the index
FetchProject = Callable[[str, bool], Awaitable[list[IndexFile]]]
Listing = tuple[list[IndexFile], bool]  # a project's files, and whether they are stale
FetchListing = Callable[[str, bool], Awaitable[Listing]]
SendFile = Callable[[IndexFile, Request, Reply], Awaitable[None]]
FetchProjects = Callable[[], Awaitable[list[str]]]
# Upstream statuses that mean "not there": the client hears a 404, as from an index without
# the file. Bytes that failed their hash (twice) are a 409: pip and uv retry a 5xx, with
# pauses, and would hear the same. Any other failure is a 502, with the upstream's reason.
NOT_THERE = frozenset({404, 410})
STALE = ("Warning", '110 - "Response is Stale"')
MAX_CLIENTS = 64


class IndexApp:
    def __init__(
        self,
        project: FetchListing,
        metadata: FetchMetadata,
        send: SendFile,
        *,
        auth: str | None = None,
        secrets: Sequence[str] = (),
        projects: FetchProjects | None = None,
        log: Callable[[str], None] | None = None,
        has_metadata: Callable[[IndexFile], bool] = simple.any_wheel,
    ) -> None:
        self._project, self._metadata, self._send = project, metadata, send
        self._has_metadata = has_metadata  # the files whose .metadata the pages advertise
        self._projects = projects  # what the upstream's root page lists; None: not asked
        self._log = log  # a line for the operator per failed request; None: silent
        self.auth = auth  # "user:pass" clients must give (Basic), or None
        self.secrets = [s for s in secrets if s]  # never in an answer (upstream credentials)
        self.listed: dict[str, dict[str, IndexFile]] = {}  # project -> name -> upstream file
        self.stale: set[str] = set()  # projects last listed from a stored page (upstream down)
        self.port = 0
        self.error: SegfetchError | None = None  # the first failure, to report instead of pip's
        # Projects no index has, by name: one explains pip's failure only if pip names it
        # (with --no-index or --find-links, pip finds others elsewhere).
        self.missing: dict[str, SegfetchError] = {}

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_clients: int = MAX_CLIENTS,
        sock: socket.socket | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """``sock``: a listening socket to serve instead of a new one (``prelaunch``)."""
        if sock is None:
            listeners = await trio.open_tcp_listeners(port, host=host)
        else:
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock))]
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await serve_listeners(listeners, self.handle, max_clients=max_clients, long=_a_file)

    async def handle(self, request: Request, reply: Reply) -> None:
        if self.auth is not None and not basic_auth_ok(
            request.headers.get("authorization"), self.auth
        ):
            challenge = ("WWW-Authenticate", 'Basic realm="segfetch"')
            await reply.text(401, "this index needs a user name and password", [challenge])
            return
        where = simple.route(request.target)
        try:
            await self._answer(where, request, reply)
        except Cut as exc:
            if self._log is not None and str(exc):  # the client saw a reset: say why
                self._log(f"{request.method} {request.target} (cut short): {exc}")
            raise
        except SegfetchError as exc:
            gone = isinstance(exc, HTTPStatusError) and exc.status in NOT_THERE
            if gone and isinstance(where, simple.Page):
                self.missing.setdefault(where.project, exc)
            else:
                self.error = self.error or exc
            if self._log is not None and (not gone or reply.started):  # a reset: say why
                cut = " (cut short)" if reply.started else ""
                self._log(f"{request.method} {request.target}{cut}: {self.scrub(str(exc))}")
            if reply.started:
                raise Cut from None  # the client sees a reset, never a wrong file
            status = 404 if gone else 409 if isinstance(exc, HashMismatch) else 502
            await reply.text(status, self.scrub(str(exc)))

    async def _answer(self, where: simple.Route, request: Request, reply: Reply) -> None:
        if isinstance(where, simple.Refused):
            await reply.text(where.status, where.why)
        elif isinstance(where, simple.Redirect):
            await reply.text(301, "moved", [("Location", where.location)])
        elif isinstance(where, simple.File):
            await self._file(where, request, reply)
        else:
            media = simple.negotiate(request.headers.get("accept"))
            if media is None:
                await reply.text(406, "pages are PEP 691 JSON or HTML")
                return
            headers = [("Vary", "Accept"), ("Cache-Control", "max-age=0")]
            if isinstance(where, simple.Root):
                upstream = await self._projects() if self._projects is not None else []
                body = simple.render_root(media, [*self.listed, *upstream])
            else:
                fresh = revalidate(request.headers.get("cache-control"))
                files, stale = await self.listing(where.project, revalidate=fresh)
                body = simple.render_page(media, where.project, files, self._has_metadata)
                headers += [STALE] if stale else []
            headers.append(("ETag", f'"{hashlib.sha256(body).hexdigest()[:32]}"'))
            if held(request, headers[-1][1]):  # (a client's HTTP cache: not the page again)
                await reply.start(304, headers)
                await reply.end()
                return
            await reply.whole(200, simple.content_type(media), body, headers)

    async def listing(self, project: str, *, revalidate: bool = False) -> Listing:
        """The project's files as its pages list them, one per name; remembered, so that
        its file URLs lead to them."""
        files, stale = await self._project(project, revalidate)
        files = simple.unique(files)
        self.listed[project] = dict(zip(simple.keys(files), files, strict=True))
        (self.stale.add if stale else self.stale.discard)(project)
        return files, stale

    async def _file(self, where: simple.File, request: Request, reply: Reply) -> None:
        f = self.listed.get(where.project, {}).get(where.filename)
        if f is None:  # not seen in this run: as its page lists it now (or last listed it)
            await self.listing(where.project)
            f = self.listed[where.project].get(where.filename)
        if where.project in self.stale:  # served from the cache while the upstream is down
            reply.extra.append(STALE)
        if f is None or (where.metadata and not f.filename.endswith(".whl")):
            await reply.text(404, f"{where.project} lists no such file")
        elif where.metadata:
            meta = await self._metadata(f)
            if meta is None:
                await reply.text(404, "no metadata")
            else:
                await reply.whole(200, "text/plain; charset=utf-8", meta)
        else:
            await self._send(f, request, reply)

    def explain(self, pip_said: str, local: Collection[str] | None = ()) -> SegfetchError | None:
        """What explains pip's failure better than pip: a failure here, or the project no
        index has that pip's message names ("pip" is in all of them: its version check asks
        for that page, and "pip subprocess to install build dependencies" is no such name),
        unless a local --find-links place has it (``local``; None: may have any): pip saw
        its files there, and says why it took none."""
        if local is None:  # (a place that may hold any project: pip's own words stand)
            return self.error
        words = set(re.split(r"[^a-z0-9-]+", re.sub(r"[._]", "-", pip_said.lower()))) - {"pip"}
        named = [e for name, e in self.missing.items() if name in words - set(local)]
        return self.error or next(iter(named), None)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def upstream(self, url: str) -> IndexFile | None:
        """The upstream file behind one of our /files/ URLs."""
        where = simple.route(urlsplit(url).path)
        if not isinstance(where, simple.File) or where.metadata:
            return None
        return self.listed.get(where.project, {}).get(where.filename)


def _a_file(request: Request) -> bool:
    """A file's request, which lasts as long as its download: not a page's, nor a
    .metadata's."""
    where = simple.route(request.target)
    return isinstance(where, simple.File) and not where.metadata


def secrets_of(indexes: Sequence[str]) -> list[str]:
    """The credentials in index URLs, which no answer may hold."""
    out = []
    for url in indexes:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            out.append(parts.netloc.rpartition("@")[0])
            out += [s for s in (parts.password or parts.username,) if s]
    return sorted(set(out), key=len, reverse=True)  # the longest first


def revalidate(cache_control: str | None) -> bool:
    """Whether a request's Cache-Control asks for a page checked with its origin (pip sends
    max-age=0 for every page): a page a cache still holds fresh may be a release behind."""
    cc = cache_control_of(cache_control)
    return "no-cache" in cc or cc.get("max-age") == "0"


class LocalIndex(IndexApp):
    """The index in front of pip's resolver during ``install``: on 127.0.0.1, a file sent
    once it is complete in the cache."""

    def __init__(self, project: FetchProject, file: FetchFile, metadata: FetchMetadata) -> None:
        async def listing(name: str, revalidate: bool) -> Listing:
            return await project(name, revalidate), False

        async def send(f: IndexFile, request: Request, reply: Reply) -> None:
            await send_file(request, reply, await file(f))

        super().__init__(listing, metadata, send)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"
