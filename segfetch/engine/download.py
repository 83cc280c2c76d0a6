"""The download of one file: the only place that ties trio and httpx to the rules.

The first request (an open-ended Range) learns the size, range support and validator, and
its body is the first segment: no HEAD, no extra round trip. Then a ranged pass
(transfer.py) fetches the rest over many connections, or one stream where the server
ignores ranges. The whole file starts over if it changes (at most MAX_RESTARTS times);
a zip that fails its sha256 has just its damaged members fetched again.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from segfetch.engine import rules
from segfetch.engine.client import RetryLater, StartOver, backoff, classify, make_client, send
from segfetch.engine.failures import Failure
from segfetch.engine.options import Options
from segfetch.engine.ranges import range_header
from segfetch.engine.repair import damaged_ranges
from segfetch.engine.result import Progress, ProgressCallback, Result, Stats
from segfetch.engine.retry import Budget
from segfetch.engine.slots import Slots
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.engine.transfer import Transfer
from segfetch.errors import DiskError, DownloadError, HashMismatch, ServerError, redact_url

MAX_RESTARTS = 3  # times the whole file may be started over because it changed
REPORT_EVERY = 0.1  # seconds between progress callbacks


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
        self.origin = url  # what the user asked for: the control file's key
        self.name = redact_url(url)  # for messages: never print credentials
        self.url = url  # where requests go: the probe's final URL after redirects
        self.options, self.sha256, self.size = options, sha256, size
        self.progress, self.rng, self.slots = progress, rng, slots
        self.part = PartFile(dest)
        self.hasher = PrefixHasher(self.part)
        self.stats = Stats()
        self.state: State | None = None
        self.transfer: Transfer | None = None
        self.probe_slot = False  # this attempt holds a place no worker has taken over
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
            if not self.stats.repaired and (holes := await self._damaged(size)):
                self.stats.repaired = sum(end - start for start, end in holes)
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
            self.stats.restarts += 1
        self.part.commit()
        st = self.stats
        return Result(
            url=self.url,
            path=self.part.dest,
            size=size,
            sha256=digest,
            seconds=trio.current_time() - started,
            connections=st.peak,
            requests=st.requests,
            retries=st.retries,
            resumed=st.resumed,
            restarts=st.restarts,
            repaired=st.repaired,
        )

    async def _pass(self) -> int:
        """The whole file once, started over when it changes on the server."""
        while True:
            try:
                return await self._attempt()
            except StartOver:
                self.part.discard()
                self.stats.restarts += 1
                if self.stats.restarts > MAX_RESTARTS:
                    raise ServerError(
                        f"{self.name} changed {self.stats.restarts} times during the download; "
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

    async def _attempt(self) -> int:
        """Download the whole file once; returns its size. Raises StartOver to start over."""
        self.state = self.part.load(self.origin, self.sha256)
        self.transfer = None
        self.hasher = PrefixHasher(self.part)
        budget = Budget(self.options.policy, self.rng)
        # The probe's place in the budget passes to the first worker, which gives it back
        # when it ends: holding it for the whole attempt while extra workers wait for places
        # of their own would deadlock many files sharing one budget.
        if self.slots is not None:
            await self.slots.acquire()
        self.probe_slot = True
        try:
            while True:
                try:
                    response, verdict = await self._probe()
                    break
                except RetryLater as exc:
                    await backoff(budget, exc.failure, self.stats)
            try:
                if isinstance(verdict, rules.Ranged):
                    return await self._ranged(verdict, response)
                if isinstance(verdict, rules.Empty):
                    self.part.open(fresh=True)
                    return 0
                return await self._single(response)
            finally:
                await response.aclose()
        finally:
            self._release_probe_slot()

    def _release_probe_slot(self) -> None:
        if self.probe_slot and self.slots is not None:
            self.slots.release()
        self.probe_slot = False

    async def _probe(self) -> tuple[httpx.Response, rules.Ranged | rules.Whole | rules.Empty]:
        """The first request of a pass: the first missing range, or the whole file."""
        state = self.state
        known = None
        if state is None:
            start, end = 0, None
        else:
            known = rules.Known(state.size, state.etag, state.last_modified)
            if not self.stats.requests:  # the first pass, not a repair
                self.stats.resumed = state.done.total()
            gaps = state.done.gaps(state.size)
            # everything on disk: ask for one byte, to check the validator
            start, end = gaps[0] if gaps else (state.size - 1, state.size)
        headers = {"Range": range_header(start, end)}
        if state is not None and (validator := state.etag or state.last_modified):
            headers["If-Range"] = validator
        self.stats.requests += 1
        response = await send(self.client, self.url, headers, self.options.timeout, self.name)
        self.url = str(response.url)
        if self.origin.startswith("https:") and not self.url.startswith("https:"):
            await response.aclose()
            raise DownloadError(f"{self.name} redirected to plain http; refusing the downgrade")
        verdict = rules.judge_probe(
            response.status_code, response.headers, start, end, known, self.size, self.name
        )
        if isinstance(verdict, rules.Ranged | rules.Whole | rules.Empty):
            if isinstance(verdict, rules.Ranged) and state is None:
                self.state = State(
                    self.origin, verdict.total, verdict.etag, verdict.last_modified, self.sha256
                )
            return response, verdict
        await response.aclose()
        if isinstance(verdict, rules.Restart):
            raise StartOver(verdict.reason)
        if isinstance(verdict, rules.Fail):
            raise verdict.error
        raise RetryLater(verdict.failure)

    async def _ranged(self, verdict: rules.Ranged, response: httpx.Response) -> int:
        assert self.state is not None
        state = self.state
        self.part.open(fresh=not state.done)
        self.transfer = Transfer(
            self.client, self.url, self.name, self.options, state, self.part, self.hasher,
            stats=self.stats, rng=self.rng, slots=self.slots, report=self._report,
        )  # fmt: skip
        await self.transfer.run(verdict.first, response, self._release_probe_slot)
        if state.done.total() != state.size:
            raise ServerError(f"{self.name}: download ended with bytes missing")  # planner bug
        await self.hasher.advance(state.size)
        self._report(force=True)
        return state.size

    async def _single(self, response: httpx.Response | None) -> int:
        """One stream from byte 0: the server ignores ranges. A failure starts it over."""
        budget = Budget(self.options.policy, self.rng)
        while True:
            try:
                if response is None:
                    self.stats.requests += 1
                    response = await send(
                        self.client, self.url, {}, self.options.timeout, self.name
                    )
                verdict = rules.judge_whole(
                    response.status_code, response.headers, self.size, self.name
                )
                if isinstance(verdict, rules.Fail):
                    raise verdict.error
                if isinstance(verdict, rules.Retry):
                    raise RetryLater(verdict.failure)
                return await self._stream_whole(response, verdict.size)
            except (RetryLater, httpx.TransportError) as exc:
                await backoff(budget, classify(exc, self.url), self.stats)
            finally:
                if response is not None:
                    await response.aclose()
                response = None

    async def _stream_whole(self, response: httpx.Response, size: int | None) -> int:
        size = size if size is not None else self.size  # never write past a known size
        self.state = None  # no resume without ranges
        self.part.forget()
        self.part.open(fresh=True)
        self.stats.received = pos = 0
        async for chunk in response.aiter_raw():
            if size is not None and pos + len(chunk) > size:
                raise ServerError(f"{self.name} sent more than {size} bytes")
            self.part.write(pos, chunk)
            pos += len(chunk)
            self.stats.received = pos
            self._report()
        if size is not None and pos != size:
            raise RetryLater(Failure(f"{self.name}: body ended at {pos} of {size} bytes", True))
        await self.hasher.advance(pos)
        self._report(force=True)
        return pos

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = trio.current_time()
        if not force and now - self._last_report < REPORT_EVERY:
            return
        self._last_report = now
        size = self.state.size if self.state is not None else None
        t = self.transfer
        done = t.planner.done.total() if t is not None else self.stats.received
        self.progress(Progress(self.origin, size, done, self.stats.live, self.stats.retries))


__all__ = ["Options", "Progress", "Result", "Slots", "download", "download_sync", "make_client"]
