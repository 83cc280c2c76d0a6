"""The download of one file: the only place that ties trio and httpx to the rules.

The first request (a Range of one --min-segment) learns the size, range support and
validator, and its body is the first segment: no HEAD, no extra round trip. Then a ranged pass
(transfer.py) fetches the rest over many connections, or one stream where the server
ignores ranges, or has no validator where no sha256 checks the result. The whole file starts
over if it changes (at most MAX_RESTARTS times); a zip that fails its sha256 has just its
damaged members fetched again.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from segfetch.engine import rules, versions, whole
from segfetch.engine.client import (
    Location,
    RetryLater,
    StartOver,
    Unranged,
    Usable,
    backoff,
    carry_out,
    make_client,
    send_settled,
)
from segfetch.engine.control import START, Controller
from segfetch.engine.early import Early
from segfetch.engine.names import check_destination
from segfetch.engine.options import Options
from segfetch.engine.ranges import Span, range_header
from segfetch.engine.repair import forget_damaged
from segfetch.engine.result import Progress, ProgressCallback, Result, Stats
from segfetch.engine.retry import Budget
from segfetch.engine.slots import Slots
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.engine.transfer import Body, Transfer
from segfetch.errors import DiskError, ServerError

MAX_RESTARTS = 3  # times the whole file may be started over because it changed
REPORT_EVERY = 0.1  # seconds between progress callbacks
# Backoff jitter for downloads given no seed: one generator for all of them, since seeding a
# fresh one from the OS costs more than a small file's whole fetch on a fast link.
JITTER = random.Random()


async def download(
    url: str,
    dest: Path | str,
    options: Options | None = None,
    *,
    sha256: str | None = None,
    other_hash: str | None = None,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    client: httpx.AsyncClient | None = None,
    slots: Slots | None = None,
    seed: int | None = None,
    early: Early | None = None,
) -> Result:
    """Fetch url to dest; dest appears only complete and verified.

    ``sha256``, ``other_hash`` ("md5=HEX", any hashlib name, as a link's fragment gives
    one): the file is kept only if it matches. ``size``, if known (from an index), must
    be the server's size, or nothing is fetched. ``slots`` is a connection budget shared with
    other downloads: each connection holds one place. ``client`` is reused if given (its
    connection pool should allow ``options.cap``); ``options.timeout`` applies to
    every request either way. ``seed`` makes backoff jitter repeatable. ``early``: a first
    request already sent (early.py), taken if it is the one the download would send first.
    """
    options = options or Options()
    dest = Path(dest)
    check_destination(dest)
    job = _Download(
        url,
        dest,
        options=options,
        sha256=sha256.lower() if sha256 else None,
        other_hash=other_hash,
        progress=progress,
        rng=JITTER if seed is None else random.Random(seed),
        slots=slots,
        size=size,
        early=early,
    )
    try:
        if client is not None:
            return await job.run(client)
        async with make_client(options.cap, options.timeout) as own:
            return await job.run(own)
    except OSError as exc:  # httpx wraps network errors: these are the disk's
        raise DiskError.from_os(exc, str(job.part.part)) from None
    finally:
        job.part.release()  # and with it the lock on the destination
        if early is not None:
            early.close()  # (if the download asked otherwise)


def download_sync(
    url: str,
    dest: Path | str,
    options: Options | None = None,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    seed: int | None = None,
) -> Result:
    """``download`` for code that is not async."""
    job = partial(download, url, dest, options, sha256=sha256, size=size, progress=progress)
    return trio.run(partial(job, seed=seed))


class _Unranged(Exception):
    """The first answer of an eager pass is usable, not as a range (None: ask it plainly)."""

    def __init__(self, answer: tuple[httpx.Response, AsyncIterator[bytes], Usable] | None):
        super().__init__("the first answer is not a range")
        self.answer = answer


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
        other_hash: str | None = None,
        slots: Slots | None,
        size: int | None,
        early: Early | None = None,
    ) -> None:
        self.where = Location(url)  # the URL asked for (the control file's key), and where to
        self.name = self.where.name
        self.options, self.sha256, self.size = options, sha256, size
        if slots is None and options.connections is None:
            start = options.start or START  # this file alone finds its count
            slots = Slots(0, Controller(options.cap, limit=start, knee=options.start))
        self.progress, self.rng, self.slots, self.early = progress, rng, slots, early
        self.part = PartFile(dest)
        self.hasher = PrefixHasher(self.part, other_hash)
        self.stats = Stats()
        self.state: State | None = None
        self.transfer: Transfer | None = None
        self.probe_slot = False  # this attempt holds a place no worker has taken over
        self.open_probe = False  # the server tells the size only to "bytes=0-"
        self.probe_end: int | None = None  # where the first answer's range ends
        self.unsure = False  # the size is where a "bytes a-b/*" answer stopped (_confirm_end)
        self.split = True  # this pass cuts a known size into pieces (see _first_range)
        # An HTML answer is a portal's page, unless HTML is what was asked for.
        html = (".html", ".htm")
        self.html_ok = urlsplit(url).path.lower().endswith(html) or dest.name.lower().endswith(html)
        self.lenient = False  # some answers had validators, others none (versions.Known)
        self.one_answer = False  # no validator, nothing checks the result (see _probe)
        self._last_report = -1.0

    async def run(self, client: httpx.AsyncClient) -> Result:
        self.client = client
        started = trio.current_time()
        refetched = False
        while True:
            size = await self._pass()
            if (wrong := self.hasher.mismatch(self.sha256, self.name)) is None:
                break
            # Bytes went bad on the way (a proxy, a flipped bit). A zip says which members
            # fail their CRC: fetch just those again, once; else the whole file, once.
            if not self.stats.repaired and (holes := await forget_damaged(self.part, self.state)):
                self.stats.repaired = sum(end - start for start, end in holes)
                continue
            if refetched:
                self.part.discard()
                raise wrong
            self._refetch()
            refetched = True
        digest = self.hasher.hexdigest()
        await trio.to_thread.run_sync(self.part.commit, size)  # fsyncs: off the event loop
        controller = self.slots.controller if self.slots else None  # -n auto's
        settled = controller.to_remember if controller else None
        seconds = trio.current_time() - started
        return self.stats.result(self.where.current, self.part.dest, size, digest, seconds, settled)

    def _refetch(self) -> None:
        """Again, once, from byte 0 on one connection: one answer is one version (nodes of
        a load balancer may each hold other bytes: a splice is not made again)."""
        self.options = replace(self.options, connections=1)
        self._start_over()

    def _start_over(self) -> None:
        """Drop every byte on disk, and with them the claim that any was resumed; past
        MAX_RESTARTS the file keeps changing: one line, nothing kept."""
        self.part.reset()
        self.stats.restarts += 1
        self.stats.resumed = 0
        if self.stats.restarts > MAX_RESTARTS:
            self.part.discard()
            raise ServerError(
                f"{self.name} changed {self.stats.restarts} times during the download; "
                "try again later"
            ) from None

    async def _pass(self) -> int:
        """The whole file once, started over when it changes on the server."""
        while True:
            try:
                size = await self._attempt()
                return await self._confirm_end(size) if self.unsure else size
            except StartOver as exc:
                if exc.one_node:  # (a per-node ETag, unchecked): one connection, one node
                    self.options = replace(self.options, connections=1)
                # Validators sent by some answers and not others: from now on an answer
                # without any is taken, rather than the file started over again and again
                # (other validators still show a change).
                self.lenient = self.lenient or exc.lost
                self._start_over()

    def _resume_state(self) -> State | None:
        """The saved state, if it may be resumed: it is for this file, and either the server
        can tell us whether the file changed (ETag or Last-Modified) or the result is
        checked anyway (a sha256)."""
        self.part.acquire()  # before reading what the control file claims
        state = self.part.load(self.where.origin, self.sha256)
        if state is None or not state.done:
            return state
        if not (state.etag or state.last_modified) and self.sha256 is None:
            self.part.reset()  # nothing could tell a changed file: start over
            return None
        if self.sha256 is not None:
            state.sha256 = self.sha256  # the identity grows when --sha256 is added
        return state

    async def _attempt(self) -> int:
        """Download the whole file once; returns its size. Raises StartOver to start over."""
        self.state = self._resume_state()
        self.unsure = False
        if self.state is not None and not self.stats.requests:  # the first pass, not a repair
            self.stats.resumed = self.state.done.total()
        self.transfer = None
        self.hasher.reset()
        budget = Budget(self.options.policy, self.rng)
        # The probe's place in the budget passes to the first worker: held for the whole
        # attempt while extra workers wait, it would deadlock files sharing one budget.
        if self.slots is not None:
            await self.slots.acquire()
        self.probe_slot = True
        # Pieces are cut only while places are free for them: in a set that fills the budget
        # a file is one request (a place freed later may take half of what is left).
        self.split = self.slots is None or self.slots.free > 0
        try:
            start, end = self._first_range()
            size = self.state.size if self.state is not None else self.size
            if end is not None and size is not None and end < size and self.options.cap > 1:
                try:  # the size is known: every connection starts now, not after the probe
                    return await self._eager(Span(start, end), size, budget)
                except _Unranged as exc:
                    if self.slots is not None and not self.probe_slot:  # the worker gave it
                        await self.slots.acquire()
                    self.probe_slot = True
                    answer = exc.answer or await self._probe_until_usable(budget)
                    response, chunks, verdict = answer
            else:
                response, chunks, verdict = await self._probe_until_usable(budget)
            try:
                if isinstance(verdict, rules.WithoutRange) or self.one_answer:
                    # A 416 "bytes */0" may be wrong, a 200 of a range's length may be the
                    # range: only a plain GET shows the file.
                    whole_file = isinstance(verdict, rules.Ranged) and (
                        (verdict.first, self.probe_end) == (0, verdict.total)
                    )
                    if not whole_file:
                        await response.aclose()
                    self.state = None
                    learned = getattr(verdict, "total", None)  # (a Ranged's, or a WithoutRange's)
                    return await self._single(response if whole_file else None, learned)
                if isinstance(verdict, rules.Ranged):
                    end = self.probe_end or verdict.total
                    return await self._ranged(verdict, Body(response, chunks, end))
                if verdict.coding:  # decoded from byte 0 (a range of it is compressed bytes)
                    self.state = None  # nothing saved is of use, nor is its size
                return await self._single(response)
            finally:
                await response.aclose()
        except Unranged:  # mid-pass the server stopped doing ranges (the same file, whole)
            if self.slots is not None and not self.probe_slot:  # the worker gave it back
                await self.slots.acquire()
            self.probe_slot = True
            learned, etag = (self.state.size, self.state.etag) if self.state else (None, None)
            self.state = None  # all of it, from byte 0
            self.hasher.reset()
            return await self._single(None, learned, etag)
        finally:
            self._release_probe_slot()

    async def _probe_until_usable(
        self, budget: Budget
    ) -> tuple[httpx.Response, AsyncIterator[bytes], Usable]:
        while True:
            try:
                return await self._probe()
            except RetryLater as exc:
                await backoff(budget, exc.failure, self.stats)

    async def _eager(self, first: Span, size: int, budget: Budget) -> int:
        """The ranged pass with the first request sent beside the others, not before them.
        The others judge their answers only after the first one showed the file as expected
        (its size, and the validators they are checked against); an answer that is not a
        range (a 200, an empty file) ends them all and is used as in the plain path."""
        resumed = self.state is not None
        state = self.state or State(self.where.origin, size, None, None, self.sha256)
        self.state = state
        self.part.open(state)
        transfer = self._transfer(first)

        async def first_body() -> Body:
            self.state = state if resumed else None  # a fresh probe knows nothing yet
            while True:
                try:
                    response, chunks, verdict = await self._probe()
                    break
                except RetryLater as exc:
                    if self.open_probe:  # only an open-ended request learns the size
                        raise _Unranged(None) from None
                    await backoff(budget, exc.failure, self.stats)
            if not isinstance(verdict, rules.Ranged) or self.one_answer:
                raise _Unranged((response, chunks, verdict))
            self.state = state
            transfer.learn(verdict.etag, verdict.last_modified)
            return Body(response, chunks, self.probe_end or verdict.total)

        try:
            await transfer.run(first.start, first_body, self._release_probe_slot)
        except _Unranged:
            self.state = None  # nothing was written: the plain path starts clean
            raise
        return await self._finish_ranged()

    def _release_probe_slot(self) -> None:
        if self.probe_slot and self.slots is not None:
            self.slots.release()
        self.probe_slot = False

    def _first_range(self) -> tuple[int, int | None]:
        """What the first request of a pass asks: the first missing range, or the whole file."""
        state, cap, least = self.state, self.options.cap, self.options.min_segment
        if state is None:
            # Bounded, so that no byte is sent twice: an open-ended first answer would run on
            # into ranges other connections fetch, until it is cut. One connection takes all.
            if self.open_probe or cap == 1:
                return 0, None
            if self.size:  # known: the first request's range is one of cap equal pieces
                return 0, min(self.size, max(least, -(-self.size // (cap if self.split else 1))))
            return 0, least
        gaps = state.done.gaps(state.size)
        # everything on disk: ask for one byte, to check the validator
        start, end = gaps[0] if gaps else (state.size - 1, state.size)
        return start, min(end, start + least)

    async def _probe(self) -> tuple[httpx.Response, AsyncIterator[bytes], Usable]:
        """The first request of a pass (see _first_range)."""
        state = self.state
        known = self._known(state) if state is not None else None
        start, end = self._first_range()
        headers = {"Range": range_header(start, end)}
        if state is not None and (validator := state.etag or state.last_modified):
            headers["If-Range"] = validator
        self.stats.requests += 1
        early, self.early = self.early, None  # the first probe's only
        args = self.client, self.where, headers, self.options.timeout
        response = await send_settled(*args, early, self.stats if self.sha256 is None else None)
        try:
            chunks, verdict = await self._judge_probe(response, start, end, known)
        except BaseException:
            await response.aclose()
            raise
        if isinstance(verdict, rules.Ranged):
            self.probe_end = verdict.end or (
                verdict.total if end is None else min(end, verdict.total)
            )
            self.unsure = self.unsure or verdict.unsure
        if isinstance(verdict, rules.Ranged) and state is None:
            # No validator: a change during the download would go unseen (between the
            # answers of several connections, or of one that drops and resumes); a sha256
            # sees it. Else only one answer from byte 0 is one version: the file comes as
            # one stream, from byte 0 again after a failure (whole.py).
            if not (verdict.etag or verdict.last_modified):
                self.one_answer = self.sha256 is None
            self.state = State(
                self.where.origin, verdict.total, verdict.etag, verdict.last_modified, self.sha256
            )
        return response, chunks, verdict

    async def _judge_probe(
        self, response: httpx.Response, start: int, end: int | None, known: versions.Known | None
    ) -> tuple[AsyncIterator[bytes], Usable]:
        def judge(headers: rules.Headers) -> rules.Verdict:
            return rules.judge_probe(
                response.status_code, headers, start, end, known, self.size, self.name,
                self.html_ok,
            )  # fmt: skip

        def on_retry(verdict: rules.Retry) -> None:
            if verdict.drop_etag and self.state is not None:
                self.state.etag = None
            if verdict.drop_date and self.state is not None:  # no If-Range from now on
                self.state.last_modified = None
            self.open_probe = self.open_probe or verdict.open

        return await carry_out(response, judge, on_retry, self.name)

    def _transfer(self, first: Span) -> Transfer:
        assert self.state is not None
        self.transfer = Transfer(
            self.client, self.where, self.options, self.state, self.part, self.hasher,
            stats=self.stats, rng=self.rng, slots=self.slots, report=self._report,
            html_ok=self.html_ok, first=first, known=self._known(self.state),
        )  # fmt: skip
        return self.transfer

    def _known(self, state: State) -> versions.Known:
        """What the rules know of the file (checked: a sha256 given)."""
        checked = self.sha256 is not None
        return versions.Known(state.size, state.etag, state.last_modified, checked, self.lenient)

    async def _ranged(self, verdict: rules.Ranged, body: Body) -> int:
        assert self.state is not None
        self.part.open(self.state)
        transfer = self._transfer(Span(verdict.first, self.probe_end or verdict.total))
        await transfer.run(verdict.first, body, self._release_probe_slot)
        return await self._finish_ranged()

    async def _finish_ranged(self) -> int:
        state = self.state
        assert state is not None
        if state.done.total() != state.size:
            raise ServerError(f"{self.name}: download ended with bytes missing")  # planner bug
        await self.hasher.advance(state.size)
        self.stats.validators = (state.etag, state.last_modified)
        self._report(force=True)
        return state.size

    async def _confirm_end(self, size: int) -> int:
        """After ``bytes a-b/*`` answers (a server that cuts each short, never saying the size:
        curl keeps a part, exit 0), more bytes after ``size``: all of it, one stream."""
        validator = self.state and (self.state.etag or self.state.last_modified)
        args = self.client, self.where, self.options, self.rng, self.stats
        if await whole.ends_at(*args, size, validator or None):
            return size
        self.state, self.transfer = None, None
        self.hasher.reset()
        return await self._single(None)

    async def _single(self, response: httpx.Response | None, learned: int | None = None,
                      etag: str | None = None) -> int:  # fmt: skip
        """One stream from byte 0 (whole.py): the server ignores ranges. ``learned``: the
        size an earlier answer gave (under ``etag``, the answer must be of that size)."""
        self.transfer = None  # progress counts the stream's bytes (an eager pass's none)
        return await whole.fetch(
            self.client, self.where, self.options, self.rng, self.stats, self.part,
            self.hasher, size=self.size, learned=learned, keep=self.state,
            html_ok=self.html_ok, report=self._report, response=response, learned_etag=etag,
        )  # fmt: skip

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = trio.current_time()
        if not force and now - self._last_report < REPORT_EVERY:
            return
        self._last_report = now
        t, st = self.transfer, self.stats
        size = t.state.size if t is not None else st.size  # (a stream's: what it decodes to)
        done = t.planner.done.total() if t is not None else st.received
        prefix = t.planner.done.prefix() if t is not None else st.received
        self.progress(Progress(self.where.origin, size, done, st.live, st.retries, prefix))


__all__ = ["Options", "Progress", "Result", "Slots", "download", "download_sync", "make_client"]
