"""``segfetch serve``: the index app (``localindex.py``) in front of the configured indexes,
for any number of clients over time.

- Pages: fetched once however many ask at the same time, kept and revalidated in the page
  cache; when an upstream fails, its stored page is served, marked stale.
- Files: one download per file however many clients ask (the engine: segmented, resumed,
  verified) into the sha256 cache, streamed to each client as it arrives (``growing.py``);
  a cached file is sent from the cache, with Range.
- Every fetch runs in the server's own nursery: a client that leaves cancels nothing
  another client waits for.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import trio

from segfetch.engine.download import Progress
from segfetch.engine.names import side_names
from segfetch.engine.options import Options
from segfetch.engine.retry import RetryPolicy
from segfetch.engine.store import PartFile
from segfetch.errors import (
    DiskError,
    DownloadError,
    HTTPStatusError,
    RetriesExhausted,
    SegfetchError,
    file_url_path,
    is_file_url,
    redact_url,
)
from segfetch.wheels import simple, unhashed
from segfetch.wheels.cache import Cache, Identity, identity
from segfetch.wheels.files import Planned, damage_notice, local_file, planned_of, wheel_metadata
from segfetch.wheels.growing import Growing, stream
from segfetch.wheels.httpd import OCTETS, Reply, Request, send_file
from segfetch.wheels.index import (
    IndexFile,
    fetch_project,
    fetch_projects,
    stored_project,
    stored_projects,
)
from segfetch.wheels.install import Session
from segfetch.wheels.localindex import NOT_THERE, STALE, IndexApp, Listing, secrets_of
from segfetch.wheels.relay import relay_range, relayable

T = TypeVar("T")
Key = tuple[str, str | None, str | None]  # a file's URL, and the hash its page gives


def file_key(f: IndexFile | Planned) -> Key:
    return f.url, f.sha256, f.other_hash


# With a stored page to fall back on, a failing upstream is given up on sooner: clients wait.
QUICK = RetryPolicy(max_tries=2)
# An upstream that gave no answer (refused, unresolved, silent) is not asked again for this
# long: every page would wait out its tries again (2-3 s for a host that refuses
# connections); another index or its stored pages stand in. An HTTP error is one URL's.
REST = 30.0
# A client waits this long for a page under way before it gets the stored one (stale): pip
# gives up on a silent answer after 15 s. The fetch goes on, for the next client.
STALE_AFTER = 10.0
# A check that the upstream still has a file kept from an earlier run waits this long: past
# it the copy is served (said), as when the upstream is down.
QUICK_CHECK = 10.0
# A file without a sha256 is checked with the upstream again after this long (one byte):
# a long-running serve would hand out a copy the upstream replaced for the rest of its life.
RECHECK = 60.0
# Seconds between looks at a download another process (another serve on this cache) makes.
FOLLOW_EVERY = 0.25


@dataclass
class _Job:
    done: trio.Event = field(default_factory=trio.Event)
    value: Any = None
    error: SegfetchError | None = None


class Upstream(Session):
    """install's Session (client, cache, connection budget, metadata), with what a
    long-running server adds: pages asked again each time (the page cache revalidates),
    stale pages when an upstream fails, and file downloads shared and streamed."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        cache: Cache,
        indexes: Sequence[str],
        nursery: trio.Nursery,
        *,
        budget: int,
        options: Options | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(client, cache, indexes, budget=budget, options=options, notice=notice)
        self.progress = self._progress
        self.nursery = nursery
        self._jobs: dict[tuple[str, ...], _Job] = {}
        # Downloads under way, by upstream URL and the hash its page gives: a page that
        # gives another hash for the URL (another project's, or the page republished) is
        # not handed those bytes unchecked.
        self._growing: dict[Key, Growing] = {}
        # files without a sha256 on their page, by URL: (the copy, when to check it again)
        self._fetched: dict[str, tuple[Path, float]] = {}
        self._unchecked: set[str] = set()  # such files served while the upstream is silent
        self._replaced: set[str] = set()  # such files the upstream replaced: size unknown
        self._silent: dict[str, float] = {}  # hosts that gave no answer to a check: until
        self._on_disk: dict[Key, Identity | None] = {}  # a file: index's files checked
        self._resting: dict[str, tuple[float, SegfetchError]] = {}  # index: (until, its error)
        # pages an index failed with 5xx on every try: (index, project) -> (until, error)
        self._page_rest: dict[tuple[str, str], tuple[float, SegfetchError]] = {}
        # A file whose bytes failed its page's sha256 is not fetched again for a while: each
        # retry of every client (uv tries 3 times) would cross the uplink again, to no avail.
        self.rest = REST

    async def _once(self, key: tuple[str, ...], fn: Callable[[], Awaitable[T]]) -> T:
        """fn() run once for all who ask while it runs, in the server's nursery."""
        job = self._jobs.get(key)
        if job is None:
            job = self._jobs[key] = _Job()
            self.nursery.start_soon(self._run, key, job, fn)
        await job.done.wait()
        if job.error is not None:
            raise job.error
        value: T = job.value
        return value

    async def _run(self, key: tuple[str, ...], job: _Job, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            job.value = await fn()
        except Exception as exc:
            job.error = self._error(exc)
        finally:
            del self._jobs[key]
            job.done.set()

    async def listing(self, name: str, revalidate: bool = False) -> Listing:
        """``revalidate``: a page the page cache holds fresh is asked for all the same."""
        key = ("page" if not revalidate else "page!", name)
        with trio.move_on_after(STALE_AFTER):
            return await self._once(key, lambda: self._listing(name, revalidate))
        stored = [stored_project(self.pages, index, name) for index in self.indexes]
        if any(kept is not None for kept in stored):
            return [f for kept in stored for f in kept or []], True
        return await self._once(key, lambda: self._listing(name, revalidate))  # nothing else

    async def _listing(self, name: str, revalidate: bool = False) -> Listing:
        """Files over all indexes, asked at once; an index that fails gives its stored page,
        if any, else nothing (as pip goes on without an index it cannot reach, saying so)
        while another index answered. Where no index has the project, a resting one with no
        stored page for it is asked after all: it may be back, and only it may have it."""
        stored = [stored_project(self.pages, index, name) for index in self.indexes]
        answers: list[list[IndexFile] | SegfetchError] = [[] for _ in self.indexes]

        async def ask(i: int, index: str, wake: bool = False) -> None:
            until, error = self._page_rest.get((index, name), (0.0, None))
            if error is not None and trio.current_time() < until:
                answers[i] = error  # (each client's retry would cost the upstream 5 more)
                return
            fetch = partial(fetch_project, self.client, index, name, recheck=revalidate)
            answers[i] = got = await self._ask(index, fetch, stored[i] is not None, wake)
            if isinstance(got, RetriesExhausted) and (got.status or 0) >= 500:
                self._page_rest[(index, name)] = (trio.current_time() + REST, got)

        async with trio.open_nursery() as nursery:
            for i, index in enumerate(self.indexes):
                nursery.start_soon(ask, i, index)
        if not any(isinstance(a, list) for a in answers):
            rested = [
                i
                for i, (a, kept) in enumerate(zip(answers, stored, strict=True))
                if kept is None and a is self._rest_error(self.indexes[i])
            ]
            async with trio.open_nursery() as nursery:
                for i in rested:
                    nursery.start_soon(ask, i, self.indexes[i], True)
        files: list[IndexFile] = []
        found = stale = False
        failed: list[SegfetchError] = []
        for answer, kept in zip(answers, stored, strict=True):
            if isinstance(answer, HTTPStatusError) and answer.status in NOT_THERE:
                continue
            if isinstance(answer, SegfetchError):
                if kept is None:
                    failed.append(answer)
                    continue
                if self.notice is not None:  # the operator hears that the upstream is down
                    self.notice(
                        f"{name}: its stored page served (stale), as an index failed: {answer}"
                    )
                answer, stale = kept, True
            files += answer
            found = True
        if failed and not found:
            raise failed[0]
        self._left_out(name, failed)
        if not found:
            where = ", ".join(map(redact_url, self.indexes))
            raise HTTPStatusError(f"no project {name!r} on {where}", 404)
        return files, stale

    def _rest_error(self, index: str) -> SegfetchError | None:
        resting = self._resting.get(index)
        return resting[1] if resting is not None else None

    async def _ask(
        self, index: str, fetch: Callable[..., Awaitable[T]], stored: bool, wake: bool = False
    ) -> T | SegfetchError:
        """``fetch(policy, slots, pages)`` from one index, or the error it failed with. One
        that gave no answer rests for REST seconds where something stands in for it (a
        stored page, another index), said so meanwhile; ``wake``: asked even so. With a
        stored page to fall back on, fewer tries."""
        resting = self._resting.get(index)
        stand_in = (stored or len(self.indexes) > 1) and not wake
        if resting is not None and trio.current_time() < resting[0] and stand_in:
            return resting[1]
        try:
            value: T = await fetch(QUICK if stored else None, self.slots, self.pages)
            self._resting.pop(index, None)  # back
            return value
        except SegfetchError as exc:
            if isinstance(exc, RetriesExhausted) and exc.status is None:  # no answer at all
                why = f"{redact_url(index)} gave no answer ({exc}); not asked for {REST:.0f} s"
                self._resting[index] = (trio.current_time() + REST, DownloadError(why))
            return exc

    async def projects(self) -> list[str]:
        """The projects all indexes list (clients such as proxpi look a project up there):
        revalidated as pages are; an index that fails gives its stored list, or none (said),
        and where none gave a list the request fails: an empty one would be taken as true."""
        return await self._once(("root", ""), self._projects)

    async def _projects(self) -> list[str]:
        names: list[str] = []
        failed: list[SegfetchError] = []
        for index in self.indexes:
            stored = stored_projects(self.pages, index)
            fetch = partial(fetch_projects, self.client, index)
            answer = await self._ask(index, fetch, stored is not None)
            gone = isinstance(answer, HTTPStatusError) and answer.status in NOT_THERE
            if isinstance(answer, SegfetchError) and stored is None and not gone:
                failed.append(answer)
            names += (stored or []) if isinstance(answer, SegfetchError) else answer
        if len(failed) == len(self.indexes):
            raise failed[0]
        self._left_out("project list", failed)
        return names

    def _left_out(self, what: str, failed: list[SegfetchError]) -> None:
        """Said on the log: indexes that failed while another answered for ``what``."""
        for error in failed:
            if self.notice is not None:
                self.notice(f"{what}: an index left out, as it failed: {error}")

    async def metadata(self, f: IndexFile) -> bytes | None:
        """From the wheel if it is cached (no request), else as install gets it."""
        hit = await self._cached(f)
        if hit is not None:
            return wheel_metadata(hit)
        return await self._once(("metadata", f.url), lambda: self.metadata_of(f))

    async def send(self, f: IndexFile, request: Request, reply: Reply) -> None:
        if request.head and not is_file_url(f.url):  # what a GET would send, without it
            source = await self._cached(f) or self._growing.get(file_key(f))
            if source is None:
                await self._head(f, reply)
                return
        else:
            asked = relayable(f.url, request)
            if asked and await self._cached(f) is None:  # no copy: the range alone crosses
                self._not_again(f)
                if await relay_range(self.client, f.url, asked, reply, self.options.timeout):
                    return
            source = await self._source(f)
        if f.url in self._unchecked and STALE not in reply.extra:
            reply.extra.append(STALE)
        if isinstance(source, Growing) and "range" in request.headers:
            source = await source.result()  # a range is sent from the verified file only
        if isinstance(source, Path):
            etag = f'"{f.sha256}"' if f.sha256 else None
            await send_file(request, reply, source, etag=etag)
        else:
            await stream(source, reply)

    async def _head(self, f: IndexFile, reply: Reply) -> None:
        """A HEAD for a file not fetched yet: its size from the page, else from one byte of
        the upstream's (a HEAD may be refused where a GET is signed), never the whole file."""
        self._not_again(f)  # a GET would fail
        size = f.size
        if size is None:
            answer = await unhashed.ask(self.client, f.url, unhashed.conditional(None), QUICK_CHECK)
            if isinstance(answer, str):
                raise DownloadError(f"{redact_url(f.url)}: {answer}")
            status, headers = answer
            if status not in (200, 206):
                raise HTTPStatusError(f"{redact_url(f.url)} answered {status}", status)
            size = unhashed.size_of(status, headers)
        length = [("Content-Length", str(size))] if size is not None else []
        etag = [("ETag", f'"{f.sha256}"')] if f.sha256 else []
        ranged = [("Content-Type", OCTETS), *length, ("Accept-Ranges", "bytes"), *etag]
        await reply.start(200, ranged)  # (a range of it is relayed: relay.py)
        await reply.end()

    async def file_of(self, f: IndexFile) -> Path:
        """The whole file (install's metadata reads a wheel through this): shared too."""
        source = await self._source(f)
        return source if isinstance(source, Path) else await source.result()

    async def _source(self, f: IndexFile) -> Path | Growing:
        """The cached file, or its download (started here if none is under way); a file:
        index's file where it lies, checked against its hash."""
        if is_file_url(f.url):
            # Hashed once while it stays the same file, not on every request: a large
            # wheel on a slow shared disk would hold each request past pip's timeout.
            path = file_url_path(f.url)
            if self._on_disk.get(file_key(f)) == (seen := identity(path)) and seen is not None:
                return path
            local = planned_of(f, frozenset())  # no --hash: the page's own hash checks it
            checked = await self._once(("local", *map(str, file_key(f))), lambda: local_file(local))
            self._on_disk[file_key(f)] = seen  # (as it was before the hash: a change since shows)
            return checked.path
        g = self._growing.get(file_key(f))
        if g is None:
            hit = await self._cached(f)
            if hit is not None:
                return hit
            g = self._growing.get(file_key(f))
            if g is None:
                self._not_again(f)
                g = self._start(f)
        return g

    def _not_again(self, f: IndexFile) -> None:
        self.not_again(planned_of(f, frozenset()))

    async def _cached(self, f: IndexFile) -> Path | None:
        if file_key(f) in self._growing:
            return None
        if not f.sha256:
            path, until = self._fetched.get(f.url, (None, 0.0))
            if path is not None and path.is_file() and trio.current_time() < until:
                return path
            return await self._once(("kept", f.url), lambda: self._kept(f))
        if self._elsewhere(self.cache.path(f.sha256, f.filename)):
            return None  # followed as it downloads (_follow), not waited for here
        damaged = damage_notice(self.notice, f.filename)
        return await self.cache.get_locked(f.sha256, f.filename, size=f.size, damaged=damaged)

    async def _kept(self, f: IndexFile) -> Path | None:
        """A file without a sha256 that an earlier run downloaded: its copy, checked against
        the sha256 then computed, once a cheap request shows the upstream has the same file
        (unhashed.py); served unchecked (said, marked stale) while the upstream gives no answer."""
        record = unhashed.load(self._record(f))
        if record is None:
            return None
        if f.size not in (None, record.size):
            self._changed(f, f"its page gives {f.size} bytes, not {record.size}")
            return None
        damaged = damage_notice(self.notice, f.filename)
        path = await self.cache.get_locked(
            record.sha256, f.filename, size=record.size, damaged=damaged
        )
        if path is None:
            return None
        host = urlsplit(f.url).netloc
        if trio.current_time() < self._silent.get(host, -1.0):
            verdict, why = unhashed.Verdict.NO_ANSWER, f"none to a check within {REST:.0f} s"
        else:
            verdict, why = await unhashed.check(self.client, f.url, record, QUICK_CHECK)
            if verdict is unhashed.Verdict.NO_ANSWER:
                self._silent[host] = trio.current_time() + REST  # not asked again meanwhile
        if verdict is unhashed.Verdict.CHANGED:
            self._changed(f, why)
            return None
        if verdict is unhashed.Verdict.NO_ANSWER:
            if f.url not in self._unchecked and self.notice is not None:  # said once
                self.notice(f"{f.filename}: served from the cache unchecked, as the upstream "
                            f"gave no answer ({why})")  # fmt: skip
            self._unchecked.add(f.url)  # checked again on the next request
            return path
        self._fetched[f.url] = path, trio.current_time() + RECHECK
        self._unchecked.discard(f.url)
        return path

    def _changed(self, f: IndexFile, why: str) -> None:
        self.cache.confirmed.discard(f.url)  # (the fetch asks the upstream, not this run's copy)
        self._replaced.add(f.url)  # (its page, still fresh here, may give the old size)
        if self.notice is not None:
            self.notice(f"{f.filename}: the upstream has another file now ({why}); fetching it")

    def _record(self, f: IndexFile) -> Path:
        return unhashed.record_path(self.cache, f.url, f.filename)

    def _start(self, f: IndexFile) -> Growing:
        if f.sha256:
            dest = self.cache.path(f.sha256, f.filename)
        else:
            dest = self.cache.unverified_path(f.url, f.filename)
        if f.url in self._replaced:
            f = replace(f, size=None)
        g = self._growing[file_key(f)] = Growing(dest.with_name(side_names(dest.name)[0]), f.size)
        self.nursery.start_soon(self._download, f, g, dest)
        return g

    def _elsewhere(self, dest: Path) -> bool:
        """Whether another process (or task) is downloading ``dest`` now."""
        return dest.with_name(side_names(dest.name)[0]).exists() and self.cache.busy(dest.parent)

    async def _follow(self, f: IndexFile, g: Growing, dest: Path) -> bool:
        """While another process downloads the file (another serve on this cache), its bytes
        go to our clients as its control file claims them; whether there was one. Then our
        own fetch takes the verified file, or resumes what that process left."""
        part, followed = PartFile(dest), False
        while self._elsewhere(dest):
            followed = True
            state = part.load(f.url, f.sha256)
            if state is not None:
                g.update(state.size, state.done.prefix())
            await trio.sleep(FOLLOW_EVERY)
        return followed

    async def _download(self, f: IndexFile, g: Growing, dest: Path) -> None:
        try:
            if await self._follow(f, g, dest) and not f.sha256:
                hit = await self._kept(f)  # that process kept it: not fetched again
                if hit is not None:  # (named by its sha256 in the cache)
                    g.finish(hit, hit.parent.name, hit.stat().st_size)
                    return
            got = await self.fetch(planned_of(f, frozenset()))
            if not f.sha256:
                self._fetched[f.url] = got.path, trio.current_time() + RECHECK
                self._unchecked.discard(f.url)
                if got.result is not None:  # what the next run checks the upstream against
                    etag, modified = got.result.validators
                    record = unhashed.Kept(got.sha256, got.size, etag, modified)
                    await trio.to_thread.run_sync(unhashed.save, self._record(f), f.url, record)
            g.finish(got.path, got.sha256, got.size)
        except Exception as exc:
            g.fail(self._error(exc))
        finally:
            self._growing.pop(file_key(f), None)

    def _error(self, exc: Exception) -> SegfetchError:
        """What the clients waiting for a fetch in the server's nursery are told: a failure
        there fails their requests, never the server."""
        if isinstance(exc, SegfetchError):
            return exc
        if isinstance(exc, OSError):
            return DiskError.from_os(exc, str(self.cache.root))
        print(f"segfetch: serve: {exc!r}", file=sys.stderr)  # a bug: say it where it is seen
        return SegfetchError(f"internal error ({type(exc).__name__}); see the server's log")

    def _progress(self, p: Planned, progress: Progress | None) -> None:
        g = self._growing.get(file_key(p))
        if g is not None and progress is not None:
            g.update(progress.size, progress.prefix)


async def run(
    indexes: Sequence[str],
    cache: Cache,
    client: httpx.AsyncClient,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    budget: int = 32,
    max_clients: int = 64,
    options: Options | None = None,
    auth: str | None = None,
    notice: Callable[[str], None] | None = None,
    task_status: trio.TaskStatus[IndexApp] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; tells ``task_status`` the app (its ``port``) once listening.
    ``notice``: where a line for the operator goes (a damaged cache entry fetched again)."""
    async with trio.open_nursery() as nursery:
        up = Upstream(
            client, cache, indexes, nursery, budget=budget, options=options, notice=notice
        )
        app = IndexApp(
            up.listing, up.metadata, up.send, auth=auth, secrets=secrets_of(indexes),
            projects=up.projects, log=notice, has_metadata=simple.metadata_at_once,
        )  # fmt: skip

        async def listen(*, task_status: trio.TaskStatus[None]) -> None:
            await app.serve(host, port, max_clients=max_clients, task_status=task_status)

        await nursery.start(listen)
        task_status.started(app)
