"""``segfetch install`` with uv on a cold cache: uv starts against an index segfetch serves
on 127.0.0.1 for this run, and unpacks each wheel as its bytes arrive (``growing.py``),
instead of starting once every file is verified. For a pinned set of index files uv starts
before the plan (``Early.ahead``: its own start overlaps segfetch's planning, its index
answers once the plan is in); else as soon as the set is planned.

The index lists, per project, exactly the planned files (sha256 in the link, PEP 700 size);
each file's last byte is held back until the engine verified the file, so uv never installs
another one. Local files (direct URLs already fetched, local paths) stay ``--find-links``
beside it. Not taken for a set the cache holds whole (uv keeps what it unpacked of a cached
file by its path: the find-links route is faster there), nor for sdists or build
dependencies (they install as before), nor for pip (it downloads everything first anyway).
If uv fails here, the install runs again the usual way once every file is verified: its
output and exit code are then the command's, as without this route. A uv that fails before
it asked the index for anything (an interpreter it refuses, an option it rejects) would
fail again: then the downloads stop at once, and its output and exit code are the
command's (``GaveUp``).
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
from packaging.utils import canonicalize_name

from segfetch.engine.download import Progress
from segfetch.engine.names import side_names
from segfetch.errors import HTTPStatusError, SegfetchError
from segfetch.wheels.cache import Cache
from segfetch.wheels.complete import check_hashed_set
from segfetch.wheels.files import Fetched, Planned, cache_key, wheel_metadata
from segfetch.wheels.growing import Growing, stream
from segfetch.wheels.httpd import Reply, Request, send_file
from segfetch.wheels.index import IndexFile
from segfetch.wheels.install import Session
from segfetch.wheels.installer import Installer, uv_from_loopback
from segfetch.wheels.localindex import IndexApp
from segfetch.wheels.pip import find_links
from segfetch.wheels.prelaunch import Prelaunched, no_deps, uv_cache
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.target import Target


@dataclass
class Early:
    """uv's install, started while the files download (``fetch``); ``code`` None: it was
    not (no installer: a download; pip; or not ``worth`` it)."""

    installer: Installer | None
    python: str
    pip_args: Sequence[str]
    quiet: bool
    code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    pre: Prelaunched | None = None  # uv started before the imports, for ``ahead`` to adopt
    json: bool = False  # the command prints one JSON document on stdout (``replay``)
    _ahead: _Started | None = field(default=None, init=False, repr=False)

    def replay(self, quiet_stdout: bool) -> int:
        """What uv said, where the install after the downloads would have said it."""
        out = sys.stderr if quiet_stdout else sys.stdout
        out.write(self.stdout.decode(errors="replace"))
        out.flush()
        sys.stderr.write(self.stderr.decode(errors="replace"))
        sys.stderr.flush()
        return self.code or 0

    @contextlib.asynccontextmanager
    async def ahead(
        self, session: Session, reqs: RequirementSet, args: Sequence[str] | None, cold: bool
    ) -> AsyncIterator[Callable[[], None]]:
        """Around the plan: where the set will likely take this route (uv installs a pinned
        set of index files, not all of them cached), uv starts before the plan, so that its
        own start and its look at the interpreter overlap the plan: once the caller calls
        what this yields (after the first index page: uv would slow segfetch's first
        requests), or at the latest with ``fetch``. Its index answers once the plan is in;
        if the plan takes another route, this uv is stopped, having installed nothing.
        ``args``: the requirements as uv takes them; None: not known before the plan.
        ``cold``: some requirement needs its index page (not all cached)."""
        likely = (
            cold
            and self.installer is not None
            and self.installer.name == "uv"
            and reqs.fully_pinned
        )
        if args is None or not likely:
            if self.pre is not None:
                self.pre.stop()  # (started for this route: it installed nothing)
            yield lambda: None
            return
        assert self.installer is not None
        told = no_deps(self.installer, pinned=True)
        async with self._started(session, args, [], told, adopt=True) as started:
            self._ahead = started
            try:
                yield started.go.set
            finally:
                self._ahead = None

    async def fetch(
        self,
        session: Session,
        planned: Sequence[Planned],
        args: Sequence[str],
        reqs: RequirementSet,
        target: Target,
    ) -> list[Fetched]:
        """``session.fetch_all(planned)``; and with uv (when ``worth`` it), uv installing
        ``args`` (the requirements as pip takes them) from the files as they arrive, until
        it is done too."""
        # Direct URLs were fetched before the plan, and uv takes them as local files.
        web = [p for p in dict.fromkeys(planned) if p.url not in {w.url for w in reqs.direct}]
        web = [p for p in web if not p.url.startswith("file:")]
        ahead, self._ahead = self._ahead, None
        if (
            self.installer is None
            or self.installer.name != "uv"
            or not worth(session, planned, web)
        ):
            if ahead is not None:
                self._drop(ahead)
            return await session.fetch_all(planned)
        pins = _Pins.of(reqs, target, planned)
        local = [p for p in dict.fromkeys(planned) if p not in web]
        got = dict(zip(local, await session.fetch_all(local), strict=True))
        told = no_deps(self.installer, pinned=pins is not None)
        if ahead is not None and (local or ahead.no_deps != told):
            self._drop(ahead)  # started for another route: uv anew, as it should run
            ahead = None
        if ahead is not None:
            await self._watched(ahead, _feed(session, web, ahead, pins, got))
        else:
            with tempfile.TemporaryDirectory(prefix="segfetch-") as tmp:
                links = find_links([got[p] for p in local], Path(tmp))
                async with self._started(session, args, links, told) as started:
                    await self._watched(started, _feed(session, web, started, pins, got))
        return [got[p] for p in planned]

    def _drop(self, ahead: _Started) -> None:
        """Stop a uv started for a route the plan did not take. One that is done already
        asked its index nothing (its answers wait for the plan), so installed nothing: a
        set the environment holds, with --no-deps ("Checked 1 package"). Its word is not
        the install's."""
        ahead.stop.cancel()
        self.code, self.stdout, self.stderr = None, b"", b""

    def _gave_up(self, started: _Started) -> bool:
        """uv failed, not having asked the index for anything, nor said it could not reach
        it (the usual route, from local files, may then do what this one could not)."""
        said = self.stderr.decode(errors="replace")
        return bool(self.code) and not started.asked and started.where not in said

    async def _watched(self, started: _Started, feed: Awaitable[None]) -> None:
        """``feed`` (``_feed``), stopped where uv gave up before asking for anything."""
        async with trio.open_nursery() as watching:

            async def watch() -> None:
                await started.done.wait()
                if self._gave_up(started):
                    watching.cancel_scope.cancel()

            watching.start_soon(watch)
            await feed
            watching.cancel_scope.cancel()
        if self._gave_up(started):
            self.replay(self.json)
            raise GaveUp(self.code or 1)

    @contextlib.asynccontextmanager
    async def _started(
        self,
        session: Session,
        args: Sequence[str],
        links: Sequence[str],
        no_deps: bool,
        adopt: bool = False,
    ) -> AsyncIterator[_Started]:
        """uv, once told to ``go``, against an index of ours whose answers wait for the
        plan. ``adopt``: the uv ``prelaunch`` started for this route, if there is one."""
        started = _Started(no_deps)
        app = _index(session, started)
        pre, self.pre = (self.pre, None) if adopt else (None, self.pre)
        async with contextlib.AsyncExitStack() as stack:
            if pre is None:
                uv_folder, sweep = stack.enter_context(uv_cache(session.cache.root))
            else:
                sweep = pre.sweep
            nursery = await stack.enter_async_context(trio.open_nursery())
            await nursery.start(functools.partial(app.serve, sock=pre.sock if pre else None))
            started.where = f"127.0.0.1:{app.port}"
            nursery.start_soon(trio.to_thread.run_sync, sweep)
            if pre is None:
                assert self.installer is not None
                url = f"http://127.0.0.1:{app.port}/simple/"
                cmd, env = uv_from_loopback(
                    self.installer, self.python, url, links, uv_folder, no_deps, args,
                    self.pip_args, self.quiet,
                )  # fmt: skip
                nursery.start_soon(self._uv, started, cmd, env)
            else:
                nursery.start_soon(self._adopted, started, pre)
            try:
                yield started
            finally:
                nursery.cancel_scope.cancel()

    async def _adopted(self, started: _Started, pre: Prelaunched) -> None:
        """Waits for the prelaunched uv; ``stop`` stops it (and reaps it)."""
        with started.stop:
            try:
                code = await trio.to_thread.run_sync(pre.proc.wait, abandon_on_cancel=True)
            finally:
                pre.stop()
            if not started.stop.cancel_called:  # (dropped: not the install's word, _drop)
                self.code, (self.stdout, self.stderr) = code, pre.output()
            started.done.set()

    async def _uv(self, started: _Started, cmd: list[str], env: dict[str, str]) -> None:
        """uv, once told to ``go``, its output kept for ``replay``. Stopped (``stop``), uv
        is stopped and reaped (trio: SIGTERM, then SIGKILL after 5 s)."""
        with started.stop:
            await started.go.wait()
            proc = await trio.run_process(
                cmd, stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True,
                check=False, env=env,
            )  # fmt: skip
            if not started.stop.cancel_called:
                self.code, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
            started.done.set()


class GaveUp(SegfetchError):
    """uv failed before it asked the index for anything: its output is printed already."""

    def __init__(self, code: int) -> None:
        super().__init__(
            "uv failed before it asked for any file (its output is above); "
            "the downloads were stopped"
        )
        self.exit_code = code


@dataclass
class _Started:
    """uv against our index: it starts on ``go``, its answers wait for ``plan_in``, and
    ``stop`` ends it."""

    no_deps: bool
    go: trio.Event = field(default_factory=trio.Event)
    listed: dict[str, list[IndexFile]] = field(default_factory=dict)
    growing: dict[str, Growing] = field(default_factory=dict)
    plan_in: trio.Event = field(default_factory=trio.Event)
    asked: int = 0  # index pages uv asked for
    where: str = ""  # the index's address
    done: trio.Event = field(default_factory=trio.Event)
    stop: trio.CancelScope = field(default_factory=trio.CancelScope)


def cached(cache: Cache, p: Planned) -> bool:
    sha = cache_key(p)
    return sha is not None and cache.path(sha, p.filename).is_file()


def worth(session: Session, planned: Sequence[Planned], web: Sequence[Planned]) -> bool:
    """Whether uv starts before the downloads end: only wheels, no build dependencies, and
    a file from an index (``web``) not in the cache yet."""
    if session.build_deps or not all(p.filename.endswith(".whl") for p in planned):
        return False
    return any(not cached(session.cache, p) for p in web)


@dataclass(frozen=True)
class _Pins:
    """A set planned from its pins alone (every file it installs is pinned): uv is told
    --no-deps, so it asks no metadata and takes every wheel as it arrives, unpacking while
    the rest download. A hashed set was never checked for completeness (pip's hash mode
    fails on a missing dependency): ``check`` it before uv may have a last byte."""

    reqs: RequirementSet
    target: Target
    check: bool

    @staticmethod
    def of(reqs: RequirementSet, target: Target, planned: Sequence[Planned]) -> _Pins | None:
        pins = {canonicalize_name(w.req.name) for w in reqs.wanted_in(target.markers)}
        if not reqs.fully_pinned or not {canonicalize_name(p.name) for p in planned} <= pins:
            return None  # pip's resolver chose files beyond the pins: uv resolves
        return _Pins(reqs, target, check=reqs.require_hashes)


async def _feed(
    session: Session,
    web: Sequence[Planned],
    started: _Started,
    pins: _Pins | None,
    got: dict[Planned, Fetched],
) -> None:
    """The plan's files to uv's index as they arrive; until uv is done."""
    started.go.set()  # at the latest now (installing.ahead's uv may wait for a first page)
    growing = started.growing
    growing.update({p.url: Growing(_part(session.cache, p), p.size) for p in web})
    shown = session.progress

    def progress(p: Planned, pr: Progress | None) -> None:
        if shown is not None:
            shown(p, pr)
        g = growing.get(p.url)
        if g is not None and pr is not None:
            g.update(pr.size, pr.prefix)

    session.progress = progress
    for p in web:
        # The upstream's entry says whether it has a .metadata (its page is in memory: the
        # plan read it, for every file not cached).
        page = [] if cached(session.cache, p) else await session.project(p.name)
        up = next((f for f in page if f.url == p.url), None)
        f = IndexFile(
            p.filename, p.url, cache_key(p), size=p.size, metadata=bool(up and up.metadata),
            metadata_sha256=up.metadata_sha256 if up else None,
        )  # fmt: skip
        started.listed.setdefault(canonicalize_name(p.name), []).append(f)
    started.plan_in.set()

    async def one(p: Planned) -> None:
        try:
            f = got[p] = await session.fetch(p)
        except SegfetchError as exc:
            growing[p.url].fail(exc)
            raise
        if pins is None or not pins.check:
            growing[p.url].finish(f.path, f.sha256, f.size)

    async with trio.open_nursery() as fetching:
        for p in web:
            fetching.start_soon(one, p)
    if pins is not None and pins.check:
        # From the verified wheels: .metadata requests meanwhile would compete with them,
        # and uv installs nothing before its last file anyway.
        await _release(pins, web, got, growing)
    await started.done.wait()


async def _release(
    pins: _Pins, web: Sequence[Planned], got: dict[Planned, Fetched], growing: dict[str, Growing]
) -> None:
    """The last bytes, once the hashed set is known complete (the wheels' METADATA, read
    from the verified files); else the command stops, uv having installed nothing."""
    try:
        await check_hashed_set([got[p] for p in web], pins.reqs, pins.target)
    except SegfetchError as exc:
        for p in web:
            growing[p.url].fail(exc)
        raise
    for p in web:
        f = got[p]
        growing[p.url].finish(f.path, f.sha256, f.size)


def _part(cache: Cache, p: Planned) -> Path:
    """The .part the engine writes the file into (fetch_file's destination)."""
    sha = cache_key(p)
    dest = cache.path(sha, p.filename) if sha else cache.unverified_path(p.url, p.filename)
    return dest.with_name(side_names(dest.name)[0])


def _index(session: Session, started: _Started) -> IndexApp:
    """The index of the planned files: one page per project, with them only, once the
    plan is in."""
    listed, growing = started.listed, started.growing

    async def listing(name: str, revalidate: bool) -> tuple[list[IndexFile], bool]:
        started.asked += 1
        await started.plan_in.wait()
        if name not in listed:
            raise HTTPStatusError(f"{name} is not in the set", 404)
        return listed[name], False

    async def metadata(f: IndexFile) -> bytes | None:
        """uv resolves first: the upstream's small .metadata if it has one (or what the
        plan read), else the wheel's own, once it is verified: never a second download."""
        g = growing[f.url]
        if f.metadata and not g.done.is_set():
            return await session.metadata_of(f)
        return wheel_metadata(await g.result())

    async def send(f: IndexFile, request: Request, reply: Reply) -> None:
        g = growing[f.url]
        if g.done.is_set() or "range" in request.headers:  # a range: from the verified file
            await send_file(request, reply, await g.result())
        else:
            await stream(g, reply)

    return IndexApp(listing, metadata, send)
