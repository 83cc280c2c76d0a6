"""One ranged pass over a file: a worker task per connection, each fetching a segment with
a bounded Range and If-Range, writing its bytes at their offsets, retrying from the byte
where it stopped, then taking more work (stealing when none is left). Beside the workers,
one task hashes the completed prefix and one saves the control file."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import replace

import httpx
import trio

from segfetch.engine import rules
from segfetch.engine.client import RetryLater, StartOver, backoff, classify, send
from segfetch.engine.failures import Failure
from segfetch.engine.options import Options
from segfetch.engine.plan import Planner, Segment
from segfetch.engine.ranges import RangeSet, range_header
from segfetch.engine.result import Stats
from segfetch.engine.retry import Budget
from segfetch.engine.slots import Slots
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.errors import first_error

SAVE_EVERY = 1.0  # seconds between control-file saves
HASH_EVERY = 0.05  # seconds between steps of the prefix hash


class Transfer:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        name: str,
        options: Options,
        state: State,
        part: PartFile,
        hasher: PrefixHasher,
        *,
        stats: Stats,
        rng: random.Random,
        slots: Slots | None,
        report: Callable[[], None],
    ) -> None:
        self.client, self.url, self.name, self.options = client, url, name, options
        self.state, self.part, self.hasher = state, part, hasher
        self.stats, self.rng, self.slots, self.report = stats, rng, slots, report
        self.known = rules.Known(state.size, state.etag, state.last_modified)
        self.planner = Planner(
            state.size,
            state.done,
            pieces=options.connections,
            min_segment=options.min_segment,
        )

    async def run(
        self, first: int, response: httpx.Response, release_probe: Callable[[], None]
    ) -> None:
        """Fetch every missing byte. ``response`` (the probe's, starting at ``first``) feeds
        the first worker, which then takes over the probe's place in the budget."""
        seg = self.planner.take(at=first) if self.planner.pending else None
        try:
            async with trio.open_nursery() as background:
                background.start_soon(self._keep_hashing)
                background.start_soon(self._keep_saving)
                try:
                    async with trio.open_nursery() as workers:
                        workers.start_soon(self._first_worker, seg, response, release_probe)
                        for _ in range(self.options.connections - 1):
                            workers.start_soon(self._extra_worker)
                except BaseExceptionGroup as group:
                    raise first_error(group, StartOver) from None
                background.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise first_error(group, StartOver) from None
        finally:
            self.save_now()

    async def _first_worker(
        self, seg: Segment | None, response: httpx.Response, release_probe: Callable[[], None]
    ) -> None:
        try:
            await self._worker(seg, response)
        finally:
            release_probe()

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
        self.stats.workers += 1
        try:
            if seg is None:
                response = None
                seg = self.planner.take()
            while seg is not None:
                if not await self._fetch(seg, response):
                    self.planner.release(seg)
                    return  # the host pushed back: one connection fewer
                response = None
                self.planner.release(seg)
                seg = self.planner.take()
        finally:
            self.stats.workers -= 1

    async def _fetch(self, seg: Segment, response: httpx.Response | None) -> bool:
        """Fetch seg to its end, retrying from where it stopped. False: give it up."""
        budget = Budget(self.options.policy, self.rng)
        while seg.remaining > 0:
            try:
                if response is None:
                    response = await self._open(seg)
                await self._stream(seg, response, budget)
            except (RetryLater, httpx.TransportError) as exc:
                failure = classify(exc, self.url)
                if failure.backpressure:
                    if self.slots is not None:
                        self.slots.shrink()  # the host wants fewer of us, whichever file
                    if self.stats.workers > 1:
                        self.stats.retries += 1
                        return False
                await backoff(budget, failure, self.stats)
            finally:
                if response is not None:
                    await response.aclose()
                response = None
        return True

    async def _open(self, seg: Segment) -> httpx.Response:
        start, end = seg.pos, seg.end  # seg.end may shrink while we wait: keep what we asked
        headers = {"Range": range_header(start, end)}
        if validator := self.state.etag or self.state.last_modified:
            headers["If-Range"] = validator
        self.stats.requests += 1
        response = await send(self.client, self.url, headers, self.options.timeout, self.name)
        verdict = rules.judge_segment(
            response.status_code, response.headers, start, end, self.known, self.name
        )
        if isinstance(verdict, rules.Ranged):
            return response
        await response.aclose()
        if isinstance(verdict, rules.Restart):
            raise StartOver(verdict.reason)
        raise RetryLater(verdict.failure)

    async def _stream(self, seg: Segment, response: httpx.Response, budget: Budget) -> None:
        self.stats.streaming(+1)
        try:
            async for chunk in response.aiter_raw():
                n = min(len(chunk), seg.remaining)
                self.part.write(seg.pos, memoryview(chunk)[:n])
                self.planner.advance(seg, n)
                self.stats.received += n
                budget.progressed(n)
                self.report()
                if seg.remaining == 0:
                    return  # done, or the rest was stolen: this response ends here
        finally:
            self.stats.streaming(-1)
        raise RetryLater(
            Failure(f"{self.name}: response ended {seg.remaining} bytes short", retry=True)
        )

    async def _keep_hashing(self) -> None:
        while True:
            await self.hasher.advance(self.planner.done.prefix())
            await trio.sleep(HASH_EVERY)

    async def _keep_saving(self) -> None:
        while True:
            await trio.sleep(SAVE_EVERY)
            if self.part.fd is not None:
                # Claim only what was written before the sync began: workers go on writing.
                done = RangeSet(self.state.done)
                await self.part.sync()
                self.part.save(replace(self.state, done=done))

    def save_now(self) -> None:
        """Record what is on disk so that a later run resumes; also on crash or Ctrl-C."""
        if self.part.fd is not None:
            os.fdatasync(self.part.fd)
            self.part.save(self.state)
