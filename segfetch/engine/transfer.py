"""One ranged pass over a file: a worker task per connection, each fetching a segment with
a bounded Range and If-Range, writing its bytes at their offsets, retrying from the byte
where it stopped, then taking more work (stealing when none is left). Beside the workers,
one task hashes the completed prefix and one saves the control file."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import NamedTuple

import httpx
import trio

from segfetch.engine import rules, versions
from segfetch.engine.body import unread
from segfetch.engine.client import (
    Location,
    RetryLater,
    StartOver,
    Unranged,
    backoff,
    carry_out,
    classify,
    send_settled,
)
from segfetch.engine.failures import Failure
from segfetch.engine.options import Options
from segfetch.engine.plan import Planner, Segment, hedge
from segfetch.engine.ranges import RangeSet, Span, range_header
from segfetch.engine.result import Stats
from segfetch.engine.retry import Budget
from segfetch.engine.slots import Slots
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.errors import first_error


class Body(NamedTuple):
    """An answer whose bytes are a segment's: the response (to close) and its chunks."""

    response: httpx.Response
    chunks: AsyncIterator[bytes]
    end: int  # where the answer's range ends (the range asked for, or less: rules.Ranged)


# Steal from a connection only if it needs longer than this to finish its range: then the
# bytes lost in flight on the cut are worth it (measured on nginx, docs/benchmarks-history.md).
STEAL_AFTER = 1.0
WATCH_EVERY = 0.25  # seconds between looks for silent connections
# seconds between an idle worker's looks for a range worth stealing: a connection that looked
# fast in its first burst (a server's buffers, a CDN's allowance) may slow down later
RECHECK = 0.25
IGNORED_RANGES = 3  # the file whole to this many range requests in a row: one stream
SAVE_EVERY = 1.0  # seconds between control-file saves
# ...or sooner, once this many bytes came since the last: the disk then writes them while
# the rest arrives, not all at the end (nginx on loopback, 500 MB: the final fsync took
# 0.85 s of a 2.4 s run, and the run 7-14 % less with syncs every 0.2 s).
SAVE_BYTES = 64 * 1024 * 1024
SAVE_POLL = 0.2  # seconds between looks at both
HASH_EVERY = 0.05  # seconds between steps of the prefix hash
DRAIN_WAIT = 1.0  # seconds for an answer's end once its range is all written


class Transfer:
    def __init__(
        self,
        client: httpx.AsyncClient,
        where: Location,
        options: Options,
        state: State,
        part: PartFile,
        hasher: PrefixHasher,
        *,
        stats: Stats,
        rng: random.Random,
        slots: Slots | None,
        report: Callable[[], None],
        html_ok: bool = False,
        first: Span | None = None,
        known: versions.Known | None = None,
    ) -> None:
        self.client, self.where, self.name, self.options = client, where, where.name, options
        self.html_ok = html_ok
        self.state, self.part, self.hasher = state, part, hasher
        self.stats, self.rng, self.slots, self.report = stats, rng, slots, report
        self.known = known or versions.Known(state.size, state.etag, state.last_modified)
        self.ignored = 0  # 200s of the very file to range requests, in a row
        self.empty = 0  # answers that ended short before their first byte, since a whole one
        self.server: tuple[str, str, int | None, str] | None = None  # the first answer's
        self.watched: dict[int, trio.CancelScope] = {}  # id(segment) -> its request's scope
        self.answers: dict[int, httpx.Response] = {}  # id(segment) -> the answer it streams
        self.hedged: dict[int, str] = {}  # id(segment) -> why its request was dropped
        self.heard = 0.0  # when the latest bytes arrived, on any connection
        self.ready = trio.Event()  # the first answer showed the file as expected
        self.gone = 0  # workers that ended (a host that pushed back has one fewer)
        self.released = trio.lowlevel.ParkingLot()  # idle workers, woken as a range comes back
        self.idle = 0  # workers waiting there: not at work (a 503 leaves the range to those)
        self.pushed = False  # the host pushed back: idle workers end, as they did before
        self.let_passed = False  # a refusal let pass (-n N alone: Slots.let_pass has its own)
        self.planner = Planner(
            state.size,
            state.done,
            pieces=options.cap,
            min_segment=options.min_segment,
            steal_after=STEAL_AFTER,
            first=first,
        )

    def learn(self, etag: str | None, last_modified: str | None) -> None:
        """The first answer's validators, for the answers sent beside it (an eager pass)."""
        self.state.etag, self.state.last_modified = etag, last_modified
        self.known = self.known._replace(etag=etag, last_modified=last_modified)

    async def run(
        self,
        first: int,
        body: Body | Callable[[], Awaitable[Body]],
        release_probe: Callable[[], None],
    ) -> None:
        """Fetch every missing byte. ``body`` (the probe's answer, starting at ``first``)
        feeds the first worker, which then takes over the probe's place in the budget. Given
        as a function, the probe is sent beside the other workers' requests, and they judge
        their answers once it has come."""
        if isinstance(body, Body):
            self.server = _server(body.response.url)
            self.ready.set()
        seg = self.planner.take(at=first) if self.planner.pending else None
        finished = False
        try:
            async with trio.open_nursery() as background:
                background.start_soon(self._keep_hashing)
                background.start_soon(self._keep_watching)
                background.start_soon(self._keep_saving)
                try:
                    async with trio.open_nursery() as workers:
                        workers.start_soon(self._first_worker, seg, body, release_probe)
                        for _ in range(self.options.cap - 1):
                            workers.start_soon(self._extra_worker)
                except BaseExceptionGroup as group:
                    raise first_error(group, KeyboardInterrupt, StartOver, Unranged) from None
                background.cancel_scope.cancel()
            finished = True
        except BaseExceptionGroup as group:
            raise first_error(group, KeyboardInterrupt, StartOver, Unranged) from None
        finally:
            # Not ready: nothing was written, nor known to be this file. On the way out of
            # a failure or a cancel the state is saved at once; after a whole pass in a
            # thread, as an SD card's fdatasync can take tens of milliseconds that would
            # stall every other file's connections on the event loop.
            if self.ready.is_set() and not finished:
                self.save_now()
        if self.ready.is_set():
            await trio.to_thread.run_sync(self.save_now)

    async def _first_worker(
        self,
        seg: Segment | None,
        body: Body | Callable[[], Awaitable[Body]],
        release_probe: Callable[[], None],
    ) -> None:
        try:
            if not isinstance(body, Body):
                body = await body()
                self.server = _server(body.response.url)  # before the others judge theirs
                self.ready.set()
            await self._worker(seg, body)
        finally:
            release_probe()

    async def _extra_worker(self) -> None:
        """A worker that needs its own place in a shared connection budget, if there is one."""
        if self.slots is None:
            await self._worker(None, None)
            return
        if self.slots.controller is not None:
            await self._auto_worker(self.slots)
            return
        await self.slots.acquire()
        try:
            await self._worker(None, None)
        finally:
            self.slots.release()

    async def _auto_worker(self, slots: Slots) -> None:
        """Under ``-n auto`` a place is held per segment, not for life, so that the count
        the controller sets applies at once."""
        self.stats.workers += 1
        try:
            again = False
            while True:
                await slots.acquire()
                try:
                    seg = self._take(again)
                    if seg is not None:
                        ok = await self._fetch(seg, None)
                        self._release(seg)
                        if not ok:
                            return
                finally:
                    slots.release()
                # Waiting, it holds no place: other files may use it meanwhile, and it ends
                # without one once nothing is left.
                again = seg is None
                if again and not await self._idle():
                    return
        finally:
            self.stats.workers -= 1
            self.gone += 1

    async def _worker(self, seg: Segment | None, body: Body | None) -> None:
        self.stats.workers += 1
        try:
            if seg is None:
                body = None
                seg = await self._next()
            while seg is not None:
                if not await self._fetch(seg, body):
                    self._release(seg)
                    return  # the host pushed back: one connection fewer
                body = None
                self._release(seg)
                seg = await self._next()
        finally:
            self.stats.workers -= 1
            self.gone += 1

    async def _next(self) -> Segment | None:
        """Work for a worker of its own (no shared budget: it holds no place others could
        use): while ranges are in flight, it waits for one worth stealing."""
        seg = self._take()
        while seg is None and self.slots is None and await self._idle():
            seg = self._take(again=True)
        return seg

    async def _idle(self) -> bool:
        """Wait until a range comes back, or RECHECK seconds pass, while looking again may
        pay: ranges in flight, and the host has not pushed back. False: it does not (now,
        or once the wait is over)."""
        if self.pushed or not self.planner.active:
            return False
        self.idle += 1
        try:
            with trio.move_on_after(RECHECK):
                await self.released.park()
        finally:
            self.idle -= 1
        return not self.pushed and bool(self.planner.active)

    def _release(self, seg: Segment) -> None:
        self.planner.release(seg)
        self.released.unpark_all()

    def _take(self, again: bool = False) -> Segment | None:
        """A piece, or a steal. ``again``: a look while it waits (``Planner.take``'s
        ``settled``)."""
        # The connections that will share the rest: -n less the workers that ended, or fewer
        # if the budget allows fewer (the workers now alive undercount while they start).
        # Under a budget that other files share too, the shares come out smaller than they
        # need to: a few more cuts.
        sharers = self.options.cap - self.gone
        if self.slots is not None:
            sharers = min(sharers, self.slots.places)
        if not self.planner.pending:  # a steal is weighed: what each victim holds unread
            for seg in self.planner.active:
                answer = self.answers.get(id(seg))
                seg.unread, seg.room = unread(answer) if answer is not None else (0, 0)
        return self.planner.take(now=trio.current_time(), sharers=sharers, settled=again)

    async def _fetch(self, seg: Segment, body: Body | None) -> bool:
        """Fetch seg to its end, retrying from where it stopped. False: give it up."""
        budget = Budget(self.options.policy, self.rng)
        while seg.remaining > 0:
            asked = trio.current_time()  # a refusal's burst is told by when it was asked
            try:
                with trio.CancelScope() as scope:
                    self.watched[id(seg)] = scope
                    if body is None:
                        body = await self._open(seg)
                    await self._stream(seg, body, budget)
                if scope.cancelled_caught:
                    why = self.hedged.pop(id(seg), "was dropped")
                    if seg.waiting() and self.stats.workers - self.idle > 1:
                        # No answer while others get theirs: the host serves fewer at once
                        # (a queue, one connection at a time). As for a 503: one fewer of
                        # us, and the range goes back to the others, not to the queue's end.
                        if self.slots is not None:
                            self.slots.shrink(asked)
                        self.stats.retries += 1
                        self.pushed = True
                        return False
                    message = f"{self.name}: a connection {why}"  # (asked again: a retry)
                    raise RetryLater(Failure(message, True))
            except (RetryLater, httpx.TransportError) as exc:
                failure = classify(exc, self.where.current)
                # (one that asks for a longer wait than we make is never let pass: the
                # others go on without this connection)
                later = (failure.retry_after or 0) > budget.policy.max_retry_after
                if failure.backpressure and (later or not self._let_pass(asked)):
                    if self.slots is not None:
                        self.slots.shrink(asked)  # the host wants fewer of us, whichever file
                    if self.stats.workers - self.idle > 1:
                        self.stats.retries += 1
                        self.pushed = True
                        return False
                await backoff(budget, failure, self.stats)
            finally:
                self.watched.pop(id(seg), None)
                self.hedged.pop(id(seg), None)
                if body is not None:
                    await body.response.aclose()
                body = None
        return True

    def _let_pass(self, asked: float) -> bool:
        """A refusal let pass, without a connection fewer: see ``Slots.let_pass``; with -n N
        and no shared budget, the first one at a count that streamed at once."""
        if self.slots is not None:
            return self.slots.let_pass(asked)
        if self.let_passed or self.stats.live >= self.stats.peak:
            return False
        self.let_passed = True
        return True

    async def _open(self, seg: Segment) -> Body:
        start, end = seg.pos, seg.end  # seg.end may shrink while we wait: keep what we asked
        headers = {"Range": range_header(start, end)}
        if validator := self.state.etag or self.state.last_modified:
            headers["If-Range"] = validator
        self.stats.requests += 1
        seg.asked = trio.current_time()
        # Sent beside a first request for a file just written, its answer too has no
        # validator yet: asked again once the second is past, as the first is.
        settle = None if self.known.checked else self.stats
        args = self.client, self.where, headers, self.options.timeout
        response = await send_settled(*args, None, settle)
        try:
            await self.ready.wait()  # sent beside the first request: judged after it
            return await self._judge(response, start, end)
        except BaseException:
            await response.aclose()
            raise

    async def _judge(self, response: httpx.Response, start: int, end: int) -> Body:
        def judge(headers: rules.Headers) -> rules.Verdict:
            return rules.judge_segment(
                response.status_code,
                headers,
                start,
                end,
                self.known,
                self.name,
                self.html_ok,
                "If-Range" in response.request.headers,
            )

        def on_retry(verdict: rules.Retry) -> None:
            if verdict.drop_etag:  # per-node ETags: If-Range carries Last-Modified from now on
                self.state.etag = None
                self.known = self.known._replace(etag=None)
            if verdict.drop_date:  # per-node dates too: no If-Range from now on
                self.state.last_modified = None
                self.known = self.known._replace(last_modified=None)
            # A proxy may ignore a Range now and then: tried again. A server that stopped
            # doing ranges sends the whole file each time: from then on, one stream.
            self.ignored = self.ignored + 1 if verdict.whole else 0
            if self.ignored >= IGNORED_RANGES:
                raise Unranged

        chunks, verdict = await carry_out(response, judge, on_retry, self.name)
        self.ignored = 0  # a range came: "in a row" starts over
        # Redirected to another server (a mirror) than the first answer came from: its bytes
        # are the same file's only if its strong ETag says so, or the result is checked.
        moved = self.server is not None and _server(response.url) != self.server
        same_etag = isinstance(verdict, rules.Ranged) and verdict.etag == self.known.etag
        if moved and not self.known.checked and not (same_etag and self.known.etag):
            raise StartOver(f"{self.name} was redirected to another server", one_node=True)
        assert isinstance(verdict, rules.Ranged)  # judge_segment's only usable verdict
        return Body(response, chunks, verdict.end or end)

    async def _stream(self, seg: Segment, body: Body, budget: Budget) -> None:
        self.stats.streaming(+1)
        if self.slots is not None:
            self.slots.streaming(+1)
        seg.begin(trio.current_time())  # for stealing, hedging
        self.answers[id(seg)] = body.response
        try:
            async for chunk in body.chunks:
                # Never past the answer's own range: a shorter answer than asked may be
                # followed by other bytes in its body (a multipart's closing delimiter, a
                # script's stray newline), which are not the file's.
                n = min(len(chunk), seg.remaining, body.end - seg.pos)
                data = memoryview(chunk)[:n]
                self.part.write(seg.pos, data)
                self.hasher.feed(seg.pos, data)
                self.planner.advance(seg, n)
                self.heard = trio.current_time()
                self.planner.heard(seg, self.heard)
                if self.slots is not None:
                    self.slots.count(n)
                self.stats.received += n
                budget.progressed(n)
                self.report()
                if seg.remaining == 0 or seg.pos >= body.end:
                    self.empty = 0
                    if seg.end >= body.end:  # (all of the answer's range, none stolen)
                        await _drain(body.chunks)  # keeps the connection for the next range
                    return  # done, or the rest was stolen: this response ends here
        finally:
            self.answers.pop(id(seg), None)
            self.stats.streaming(-1)
            if self.slots is not None:
                self.slots.streaming(-1)
        if seg.pos >= body.end:
            return  # all of a shorter range than asked: the rest is asked for next
        if seg.got == 0:
            # A server whose every range ends short of its Content-Range (Sharry's 206s
            # each lack their last byte) never sends what is left: the file comes whole,
            # without Range, as curl gets it.
            self.empty += 1
            if self.empty >= IGNORED_RANGES:
                raise Unranged
        raise RetryLater(
            Failure(f"{self.name}: response ended {seg.remaining} bytes short", retry=True)
        )

    async def _keep_watching(self) -> None:
        """Hedge silent connections (plan.hedge): one that has gone quiet, or has no answer,
        while others flow, or trickles far slower than the file comes, is dropped and its
        worker asks again, from the byte where it stopped, on a new connection, long before
        the timeout (which stays the last resort when all go quiet)."""
        started, began = trio.current_time(), self.planner.done.total()
        while True:
            await trio.sleep(WATCH_EVERY)
            now = trio.current_time()
            # What a fresh connection would get: its share of the file's rate so far.
            streaming = sum(1 for s in self.planner.active if s.reads and not s.waiting())
            share = (self.planner.done.total() - began) / max(now - started, 1e-3)
            share /= max(1, streaming)
            for seg in [s for s in self.planner.active if id(s) in self.watched]:
                # The tries without progress are counted as ever.
                if why := hedge(seg, now, self.heard, self.options.timeout, share):
                    self.hedged[id(seg)] = why
                    self.watched[id(seg)].cancel()

    async def _keep_hashing(self) -> None:
        while True:
            await self.hasher.advance(self.planner.done.prefix())
            await trio.sleep(HASH_EVERY)

    async def _keep_saving(self) -> None:
        while True:
            since, received = trio.current_time(), self.stats.received
            while (
                trio.current_time() - since < SAVE_EVERY
                and self.stats.received - received < SAVE_BYTES
            ):
                await trio.sleep(min(SAVE_POLL, SAVE_EVERY))  # (never past its period)
            if self.part.fd is not None:
                # Claim only what was written before the sync began: workers go on writing.
                done = RangeSet(self.state.done)
                await self.part.sync()
                self.part.save(replace(self.state, done=done))

    def save_now(self) -> None:
        """Record what is on disk so that a later run resumes; also on crash or Ctrl-C."""
        self.part.save_synced(self.state)


def _server(url: httpx.URL) -> tuple[str, str, int | None, str]:
    """Where an answer came from, but its query (a signed URL's changes every time)."""
    return url.scheme, url.host, url.port, url.path


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read a response whose range is all written to its end (nothing more should come), so
    that httpx keeps its connection for the next request instead of closing it: a new
    connection costs a round trip, and on TLS a handshake. Its end is not waited for long,
    nor is a failure there one of the range's: its bytes are all written (a chunked answer
    whose last chunk never came cost two --timeouts, and failed the download under
    --max-tries 1)."""
    with trio.move_on_after(DRAIN_WAIT):
        try:
            async for extra in chunks:
                if extra:
                    return  # more than the range asked: the connection is not worth keeping
        except httpx.TransportError:
            return  # (closed with its response)
