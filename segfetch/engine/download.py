"""The download engine: the one place with trio + httpx I/O.

One probe request (an open-ended Range) learns the size, range support and validator,
and its body is the first segment. The planner cuts the rest; each worker task holds one
HTTP/1.1 connection, fetches a segment, retries it from the byte where it stopped, and
asks for more work (stealing when none is left). Bytes go to the .part at their offsets
as they arrive; the sha256 follows the completed prefix, so verifying costs almost
nothing after the last byte.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from segfetch import __version__
from segfetch.engine import failures
from segfetch.engine.failures import Failure
from segfetch.engine.options import DEFAULT_CONNECTIONS, DEFAULT_TIMEOUT, Options
from segfetch.engine.plan import Planner, Segment
from segfetch.engine.ranges import (
    RangeSet,
    parse_content_range,
    parse_unsatisfied_range,
    range_header,
)
from segfetch.engine.repair import damaged_ranges
from segfetch.engine.retry import Budget
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.errors import (
    DiskError,
    DownloadError,
    HashMismatch,
    ServerError,
    first_error,
    redact_url,
)

MAX_RESTARTS = 3  # times the whole file may be started over because it changed
SAVE_EVERY = 1.0  # seconds between control-file saves
REPORT_EVERY = 0.1  # seconds between progress callbacks


@dataclass(frozen=True)
class Progress:
    url: str
    size: int | None
    done: int
    connections: int
    retries: int


@dataclass(frozen=True)
class Result:
    url: str
    path: Path
    size: int
    sha256: str
    seconds: float
    connections: int  # most connections open at once
    requests: int
    retries: int
    resumed: int  # bytes already on disk from an earlier run
    restarts: int
    repaired: int = 0  # bytes fetched again because a zip member failed its CRC


ProgressCallback = Callable[[Progress], None]


class Slots:
    """A connection budget shared by downloads: each open connection holds one place.

    It shrinks when a host pushes back (429/503), so a host that allows four connections
    soon sees about four, however many files want them. It never grows back.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = trio.Semaphore(size)
        self._owed = 0  # places to retire as they come back

    async def acquire(self) -> None:
        await self._free.acquire()

    def release(self) -> None:
        if self._owed:
            self._owed -= 1
            self.size -= 1
        else:
            self._free.release()

    def shrink(self) -> None:
        """Halve the places in use, as TCP halves its window: free ones go at once, the
        others as they come back."""
        target = max(1, (self.size - self._free.value) // 2)
        while self.size - self._owed > target:
            try:
                self._free.acquire_nowait()
                self.size -= 1
            except trio.WouldBlock:
                self._owed += 1


class _Retry(Exception):
    """A failure worth another try."""

    def __init__(self, failure: Failure | str) -> None:
        if isinstance(failure, str):
            failure = Failure(failure, retry=True)
        super().__init__(failure.message)
        self.failure = failure


class _Restart(Exception):
    """Start the whole file over: it changed on the server, or our saved state is stale.

    ``ranged=False``: the server stopped honouring ranges; the next pass is one stream.
    """

    def __init__(self, message: str, ranged: bool = True) -> None:
        super().__init__(message)
        self.ranged = ranged


def make_client(
    connections: int = DEFAULT_CONNECTIONS, timeout: float = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http1=True,
        http2=False,  # one TCP connection per segment is the point
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=10,
        # identity: the bytes on the wire are the bytes of the file, so ranges mean file offsets
        headers={"Accept-Encoding": "identity", "User-Agent": f"segfetch/{__version__}"},
        trust_env=True,  # HTTP(S)_PROXY, SSL_CERT_FILE
    )


async def download(
    url: str,
    dest: Path | str,
    options: Options | None = None,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    client: httpx.AsyncClient | None = None,
    slots: Slots | None = None,
    seed: int | None = None,
) -> Result:
    """Fetch url to dest; dest appears only complete and verified.

    ``sha256``: the file is kept only if it matches. ``size``, if known (from an index), must
    be the server's size, or nothing is fetched. ``slots`` is a connection budget shared with
    other downloads: each connection holds one place. ``client`` is reused if given (its
    connection pool should allow ``options.connections``); ``options.timeout`` applies to
    every request either way. ``seed`` makes backoff jitter repeatable.
    """
    options = options or Options()
    job = _Download(
        url,
        Path(dest),
        options=options,
        sha256=sha256.lower() if sha256 else None,
        progress=progress,
        rng=random.Random(seed),
        slots=slots,
        size=size,
    )
    try:
        if client is not None:
            return await job.run(client)
        async with make_client(options.connections, options.timeout) as own:
            return await job.run(own)
    except OSError as exc:  # httpx wraps network errors: these are the disk's
        raise DiskError.from_os(exc, str(job.part.part)) from None


def download_sync(url: str, dest: Path | str, **kwargs: Any) -> Result:
    """``download`` for code that is not async."""
    return trio.run(partial(download, url, dest, **kwargs))


class _Download:
    def __init__(
        self,
        url: str,
        dest: Path,
        *,
        options: Options,
        sha256: str | None,
        progress: ProgressCallback | None,
        rng: random.Random,
        slots: Slots | None,
        size: int | None,
    ) -> None:
        self.slots = slots
        self.probe_slot = False  # this attempt holds a place no worker has taken over
        self.size = size
        self.origin = url  # what the user asked for: the control file's key
        self.name = redact_url(url)  # for messages: never print credentials
        self.url = url  # where requests go: the probe's final URL after redirects
        self.ranged = True  # False once the server has shown it ignores ranges
        self.part = PartFile(dest)
        self.options = options
        self.connections = options.connections
        self.sha256 = sha256
        self.min_segment = options.min_segment
        self.policy = options.policy
        self.progress = progress
        self.rng = rng
        self.state: State | None = None
        self.planner: Planner | None = None
        self.hasher = PrefixHasher(self.part)
        self.requests = self.retries = self.restarts = self.resumed = self.repaired = 0
        self.live = self.peak = 0
        self.workers = 0
        self.received = 0  # bytes written in this run
        self._last_report = -1.0

    async def run(self, client: httpx.AsyncClient) -> Result:
        self.client = client
        started = trio.current_time()
        refetched = False
        while True:
            size = await self._pass()
            digest = self.hasher.hexdigest()
            if self.sha256 is None or digest == self.sha256:
                break
            # Bytes went bad on the way (a proxy, a flipped bit). A zip says which members
            # fail their CRC: fetch just those again, once; else the whole file, once.
            if not self.repaired and (holes := await self._damaged(size)):
                self.repaired = sum(end - start for start, end in holes)
                continue
            self.part.discard()
            if refetched:
                raise HashMismatch(
                    f"sha256 mismatch for {self.name}: expected {self.sha256}, got {digest}, "
                    "twice; nothing was kept",
                    expected=self.sha256,
                    got=digest,
                )
            refetched = True
            self.restarts += 1
        self.part.commit()
        return Result(
            url=self.url,
            path=self.part.dest,
            size=size,
            sha256=digest,
            seconds=trio.current_time() - started,
            connections=self.peak,
            requests=self.requests,
            retries=self.retries,
            resumed=self.resumed,
            restarts=self.restarts,
            repaired=self.repaired,
        )

    async def _pass(self) -> int:
        """The whole file once, started over when it changes on the server."""
        while True:
            try:
                return await self._attempt()
            except _Restart as restart:
                self.part.discard()
                self.restarts += 1
                self.ranged = self.ranged and restart.ranged
                if self.restarts > MAX_RESTARTS:
                    raise ServerError(
                        f"{self.name} changed {self.restarts} times during the download; "
                        "try again later"
                    ) from None

    async def _damaged(self, size: int) -> list[tuple[int, int]]:
        """Mark the ranges of a bad zip's failing members as missing; [] if none is found."""
        if self.state is None:  # one stream, no ranges: nothing to re-fetch in part
            return []
        holes = await trio.to_thread.run_sync(damaged_ranges, self.part.part, size) or []
        for start, end in holes:
            self.state.done.remove(start, end)
        if holes:
            self.part.save(self.state)
        return holes

    # -- one pass over the file -------------------------------------------------------

    async def _attempt(self) -> int:
        """Download the whole file once; returns its size. Raises _Restart to start over."""
        self.state = self.part.load(self.origin, self.sha256)
        self.planner = None
        self.hasher = PrefixHasher(self.part)
        budget = Budget(self.policy, self.rng)
        # The probe's place in the budget passes to the first worker, which gives it back
        # when it ends: holding it for the whole attempt while extra workers wait for places
        # of their own would deadlock many files sharing one budget.
        if self.slots is not None:
            await self.slots.acquire()
        self.probe_slot = True
        try:
            while True:
                try:
                    response = await self._probe()
                    break
                except _Retry as exc:
                    await self._backoff(budget, exc.failure)
            try:
                if response.status_code == 206:
                    return await self._ranged(response)
                if response.status_code == 416:
                    return await self._empty()
                return await self._single(response)
            finally:
                await response.aclose()
        finally:
            self._release_probe_slot()

    def _release_probe_slot(self) -> None:
        if self.probe_slot and self.slots is not None:
            self.slots.release()
        self.probe_slot = False

    async def _probe(self) -> httpx.Response:
        state = self.state
        if state is None:
            start, end = 0, None
        else:
            if not self.requests:  # the first pass, not a repair
                self.resumed = state.done.total()
            gaps = state.done.gaps(state.size)
            if not gaps:  # everything was on disk; ask for one byte to check the validator
                start, end = state.size - 1, state.size
            else:
                start, end = gaps[0]
        headers = {"Range": range_header(start, end)} if self.ranged else {}
        if state is not None and (validator := state.etag or state.last_modified):
            headers["If-Range"] = validator
        response = await self._send(headers)
        self.url = str(response.url)
        if self.origin.startswith("https:") and not self.url.startswith("https:"):
            await response.aclose()
            raise DownloadError(f"{self.name} redirected to plain http; refusing the downgrade")
        status = response.status_code
        if status == 200 and state is not None:
            await response.aclose()
            raise _Restart("the file changed since the last run")
        if status == 416:
            total = parse_unsatisfied_range(response.headers.get("Content-Range", ""))
            if state is None and total == 0:
                return response
            await response.aclose()
            if state is not None:
                raise _Restart("the saved state does not fit the file")
            message = f"{self.name} answered 416 to a request for the start of the file"
            raise _Retry(Failure(message, retry=True, status=416))
        if status == 206:
            try:
                first, last, total = parse_content_range(response.headers.get("Content-Range", ""))
            except ValueError as exc:
                await response.aclose()
                raise _Retry(f"{self.name}: {exc}") from None
            if total is None or first != start or last != (end if end is not None else total):
                await response.aclose()
                raise _Retry(f"{self.name} answered a different range than asked")
            etag, modified = _validators(response)
            if state is not None and (
                total != state.size or (state.etag and etag and etag != state.etag)
            ):
                await response.aclose()
                raise _Restart("the file changed since the last run")
            if state is None:
                if self.size is not None and total != self.size:
                    await response.aclose()
                    raise ServerError(
                        f"{self.name} is {total} bytes, but {self.size} were expected; "
                        "the index and the file server disagree"
                    )
                self.state = State(self.origin, total, etag, modified, self.sha256)
        return response

    async def _ranged(self, response: httpx.Response) -> int:
        assert self.state is not None
        state = self.state
        self.part.open(fresh=not state.done)
        self.planner = Planner(
            state.size, state.done, pieces=self.connections, min_segment=self.min_segment
        )
        first = int(parse_content_range(response.headers["Content-Range"])[0])
        seg = self.planner.take(at=first) if self.planner.pending else None
        try:
            async with trio.open_nursery() as background:
                background.start_soon(self._keep_hashing)
                background.start_soon(self._keep_saving)
                try:
                    async with trio.open_nursery() as workers:
                        workers.start_soon(self._first_worker, seg, response)
                        for _ in range(self.connections - 1):
                            workers.start_soon(self._extra_worker)
                except BaseExceptionGroup as group:
                    raise first_error(group, _Restart) from None
                background.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise first_error(group, _Restart) from None
        finally:
            self._save_now()
        if self.planner.done.total() != state.size:
            raise ServerError(f"{self.name}: download ended with bytes missing")  # planner bug
        await self.hasher.advance(state.size)
        self._report(force=True)
        return state.size

    async def _single(self, response: httpx.Response | None) -> int:
        """One stream from byte 0: the server ignores ranges. A failure starts it over."""
        budget = Budget(self.policy, self.rng)
        while True:
            try:
                if response is None:
                    response = await self._send({})
                    if response.status_code != 200:
                        raise _Retry(f"{self.name} answered {response.status_code}")
                size = _content_length(response)
                if self.size is not None and size not in (None, self.size):
                    raise ServerError(f"{self.name} is {size} bytes, but {self.size} were expected")
                size = size if size is not None else self.size  # never write past a known size
                self.state = None  # no resume without ranges
                self.part.forget()
                self.part.open(fresh=True)
                self.received = pos = 0
                async for chunk in response.aiter_raw():
                    if size is not None and pos + len(chunk) > size:
                        raise ServerError(f"{self.name} sent more than {size} bytes")
                    self.part.write(pos, chunk)
                    pos += len(chunk)
                    self.received = pos
                    self._report()
                if size is not None and pos != size:
                    raise _Retry(f"{self.name}: body ended at {pos} of {size} bytes")
                await self.hasher.advance(pos)
                self._report(force=True)
                return pos
            except (_Retry, httpx.TransportError) as exc:
                await self._backoff(budget, _failure(exc, self.url))
            finally:
                if response is not None:
                    await response.aclose()
                response = None

    async def _empty(self) -> int:
        self.part.open(fresh=True)
        return 0

    # -- workers ----------------------------------------------------------------------

    async def _first_worker(self, seg: Segment | None, response: httpx.Response) -> None:
        try:
            await self._worker(seg, response)
        finally:
            self._release_probe_slot()

    async def _extra_worker(self) -> None:
        """A worker that needs its own place in a shared connection budget, if there is one."""
        if self.slots is None:
            await self._worker(None, None)
            return
        await self.slots.acquire()
        try:
            await self._worker(None, None)
        finally:
            self.slots.release()

    async def _worker(self, seg: Segment | None, response: httpx.Response | None) -> None:
        planner = self.planner
        assert planner is not None
        self.workers += 1
        try:
            if seg is None:
                response = None
                seg = planner.take()
            while seg is not None:
                if not await self._fetch(seg, response):
                    planner.release(seg)
                    return  # the host pushed back: one connection fewer
                response = None
                planner.release(seg)
                seg = planner.take()
        finally:
            self.workers -= 1

    async def _fetch(self, seg: Segment, response: httpx.Response | None) -> bool:
        """Fetch seg to its end, retrying from where it stopped. False: give it up."""
        budget = Budget(self.policy, self.rng)
        while seg.remaining > 0:
            try:
                if response is None:
                    response = await self._open_segment(seg)
                await self._stream(seg, response, budget)
            except (_Retry, httpx.TransportError) as exc:
                failure = _failure(exc, self.url)
                if failure.backpressure:
                    if self.slots is not None:
                        self.slots.shrink()  # the host wants fewer of us, whichever file
                    if self.workers > 1:
                        self.retries += 1
                        return False
                await self._backoff(budget, failure)
            finally:
                if response is not None:
                    await response.aclose()
                response = None
        return True

    async def _open_segment(self, seg: Segment) -> httpx.Response:
        assert self.state is not None
        state = self.state
        asked = (seg.pos, seg.end, state.size)  # seg.end may shrink while we wait: keep it
        headers = {"Range": range_header(seg.pos, seg.end)}
        if validator := state.etag or state.last_modified:
            headers["If-Range"] = validator
        response = await self._send(headers)
        try:
            etag, modified = _validators(response)
            if (state.etag and etag and etag != state.etag) or (
                not state.etag and state.last_modified and modified != state.last_modified
            ):
                raise _Restart(f"{self.name} changed during the download")
            if response.status_code == 200:
                # Same file, but this answer ignored the range (the probe showed the server
                # can do ranges): drop the body, never splice it, and try the segment again.
                # A server that stopped for good runs out of tries with the state kept; the
                # next run's probe then sees the 200 and takes one stream.
                raise _Retry(f"{self.name} ignored a Range request")
            if response.status_code != 206:
                raise _Retry(Failure(f"{self.name} answered 416", retry=True, status=416))
            try:
                first, last, total = parse_content_range(response.headers.get("Content-Range", ""))
            except ValueError as exc:
                raise _Retry(f"{self.name}: {exc}") from None
            if (first, last, total) != asked:
                raise _Retry(f"{self.name} answered bytes {first}-{last} for {asked[0]}-{asked[1]}")
        except BaseException:
            await response.aclose()
            raise
        return response

    async def _stream(self, seg: Segment, response: httpx.Response, budget: Budget) -> None:
        assert self.planner is not None
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            async for chunk in response.aiter_raw():
                n = min(len(chunk), seg.remaining)
                self.part.write(seg.pos, memoryview(chunk)[:n])
                self.planner.advance(seg, n)
                self.received += n
                budget.progressed(n)
                self._report()
                if seg.remaining == 0:
                    return  # done, or the rest was stolen: this response ends here
        finally:
            self.live -= 1
        raise _Retry(f"{self.name}: response ended {seg.remaining} bytes short")

    # -- plumbing ---------------------------------------------------------------------

    async def _send(self, headers: dict[str, str]) -> httpx.Response:
        timeout = self.options.timeout
        request = self.client.build_request("GET", self.url, headers=headers, timeout=timeout)
        self.requests += 1
        # httpx's read timeout is per read: a server trickling its headers a byte at a
        # time would never trip it. The whole head must arrive within one timeout.
        try:
            with trio.fail_after(timeout):
                response = await self.client.send(request, stream=True)
        except trio.TooSlowError:
            raise _Retry(f"{self.name}: no complete answer within {timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry(_failure(exc, self.url)) from None
        except httpx.TooManyRedirects:
            raise DownloadError(f"{self.name}: too many redirects") from None
        status = response.status_code
        if status in (200, 206, 416):
            return response
        await response.aclose()
        failure = failures.from_status(
            status, response.reason_phrase, response.headers, self.url, what=self.name
        )
        if failure.retry:
            raise _Retry(failure)
        raise failure.error()

    async def _backoff(self, budget: Budget, failure: Failure) -> None:
        wait = budget.fail(failure.retry_after)
        if wait is None:
            raise failures.exhausted(budget.failures, failure)
        self.retries += 1
        await trio.sleep(wait)

    async def _keep_hashing(self) -> None:
        assert self.planner is not None
        while True:
            await self.hasher.advance(self.planner.done.prefix())
            await trio.sleep(0.05)

    async def _keep_saving(self) -> None:
        while True:
            await trio.sleep(SAVE_EVERY)
            if self.state is not None and self.part.fd is not None:
                # Claim only what was written before the sync began: workers go on writing.
                done = RangeSet(self.state.done)
                await self.part.sync()
                self.part.save(replace(self.state, done=done))

    def _save_now(self) -> None:
        """Record what is on disk so that a later run resumes; also on crash or Ctrl-C."""
        if self.state is not None and self.part.fd is not None:
            os.fdatasync(self.part.fd)
            self.part.save(self.state)

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = trio.current_time()
        if not force and now - self._last_report < REPORT_EVERY:
            return
        self._last_report = now
        size = self.state.size if self.state is not None else None
        done = self.planner.done.total() if self.planner is not None else self.received
        self.progress(Progress(self.origin, size, done, self.live, self.retries))


def _validators(response: httpx.Response) -> tuple[str | None, str | None]:
    etag = response.headers.get("ETag")
    if etag is not None and etag.startswith("W/"):
        etag = None  # weak tags may not be used in If-Range
    return etag, response.headers.get("Last-Modified")


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _failure(exc: _Retry | httpx.TransportError, url: str) -> Failure:
    """What a caught failure means; a final one is raised here."""
    failure = exc.failure if isinstance(exc, _Retry) else failures.from_transport(exc, url)
    if not failure.retry:
        raise failure.error() from None
    return failure


__all__ = ["Options", "Progress", "Result", "Slots", "download", "download_sync", "make_client"]
