"""One stream from byte 0: the plain path of a download, for a server that ignores ranges
(or stopped doing them mid-pass), or that sends no validator where no sha256 checks the
result. A failure starts the stream over; the bytes on disk count for a later run only where
the saved state showed the very file (``keep``). With ``resume`` (a server that does ranges
but names no version) a stream cut short goes on from where it stopped, asked from OVERLAP
bytes before: those must come back as they are on disk, else the file changed and starts
over from byte 0."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import httpx

from segfetch.engine import rules
from segfetch.engine.body import body_chunks
from segfetch.engine.client import Location, RetryLater, backoff, classify, send
from segfetch.engine.failures import Failure
from segfetch.engine.options import Options
from segfetch.engine.ranges import parse_content_range
from segfetch.engine.result import Stats
from segfetch.engine.retry import MAX_RESTARTS, Budget
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.errors import ServerError

OVERLAP = 64 * 1024


async def fetch(
    client: httpx.AsyncClient,
    where: Location,
    options: Options,
    rng: random.Random,
    stats: Stats,
    part: PartFile,
    hasher: PrefixHasher,
    *,
    size: int | None,
    keep: State | None,
    html_ok: bool,
    report: Callable[..., None],
    response: httpx.Response | None,
    resume: bool = False,
) -> int:
    """The file's size once it is all in ``part`` and hashed; ``response``: a first answer
    to use (None: ask)."""
    budget = Budget(options.policy, rng)
    stats.received = 0
    while True:
        start = 0
        try:
            if response is None:
                stats.requests += 1
                start = max(stats.received - OVERLAP, 0) if resume else 0
                headers = {"Range": f"bytes={start}-"} if start else {}
                response = await send(client, where, headers, options.timeout)
            known: int | None
            if start and response.status_code == 206:  # the stream's size holds
                known = _resumed_at(response, start, stats.size, where.name)
            else:
                start = 0
                verdict = rules.judge_whole(
                    response.status_code, response.headers, size, where.name, html_ok
                )
                if isinstance(verdict, rules.Fail):
                    raise verdict.error
                if isinstance(verdict, rules.Retry):
                    raise RetryLater(verdict.failure)
                known = verdict.size if verdict.size is not None else size  # not past it
            stream = _Stream(part, hasher, stats, keep, where.name, report)
            return await stream.run(response, start, known, budget if resume else None)
        except _Changed:  # from byte 0 again, at once (restarts are counted instead)
            pass
        except (RetryLater, httpx.TransportError) as exc:
            await backoff(budget, classify(exc, where.current), stats)
        finally:
            if response is not None:
                await response.aclose()
            response = None


def _resumed_at(response: httpx.Response, start: int, size: int | None, name: str) -> int:
    """The file's size from a 206 to ``bytes=start-``; RetryLater for another range."""
    try:
        first, last, total = parse_content_range(response.headers.get("Content-Range", ""))
    except ValueError as exc:
        raise RetryLater(Failure(f"{name}: {exc}", True)) from None
    if first != start or total is None or last != total or total != (size or total):
        raise RetryLater(Failure(f"{name} answered another range than asked, or size", True))
    return total


class _Changed(Exception):
    """The bytes asked again before a resume point differ from those on disk."""


class _Stream:
    def __init__(
        self,
        part: PartFile,
        hasher: PrefixHasher,
        stats: Stats,
        keep: State | None,
        name: str,
        report: Callable[..., None],
    ) -> None:
        self.part, self.hasher, self.stats, self.keep = part, hasher, stats, keep
        self.name, self.report = name, report

    async def run(
        self, response: httpx.Response, start: int, size: int | None, budget: Budget | None
    ) -> int:
        """The body from ``start``, written on; bytes before ``stats.received`` (what is on
        disk of this stream) compared, not written. ``budget``: bytes kept for a resume are
        progress (a stream that starts over from byte 0 keeps none)."""
        stats, part = self.stats, self.part
        on_disk = stats.received if start else 0
        if not start:
            stats.resumed = stats.received = 0  # every byte comes again in this stream
            if self.keep is None:
                part.reset()  # no resume without ranges
                self.hasher.reset()
            else:
                part.open(fresh=False)
        stats.size = size
        pos = start
        try:
            async for chunk in body_chunks(response):
                if size is not None and pos + len(chunk) > size:
                    raise ServerError(f"{self.name} sent more than {size} bytes")
                seen = max(min(on_disk - pos, len(chunk)), 0)
                if seen and _on_disk(part, pos, seen) != bytes(chunk[:seen]):
                    stats.received = 0  # another version: from byte 0 again
                    stats.restarts += 1
                    if stats.restarts > MAX_RESTARTS:
                        raise ServerError(
                            f"{self.name} changed {stats.restarts} times during the download; "
                            "try again later"
                        )
                    raise _Changed
                if seen < len(chunk):
                    part.write(pos + seen, chunk[seen:])
                    self.hasher.feed(pos + seen, chunk[seen:])
                    if budget is not None:
                        budget.progressed(len(chunk) - seen)
                pos += len(chunk)
                stats.received = max(pos, stats.received)
                self.report()
        finally:
            if self.keep is not None and pos:  # what arrived counts for the next run too
                self.keep.done.add(0, pos)
                part.save_synced(self.keep)
        if size is not None and pos != size:
            raise RetryLater(Failure(f"{self.name}: body ended at {pos} of {size} bytes", True))
        await self.hasher.advance(pos)
        self.report(force=True)
        return pos


def _on_disk(part: PartFile, pos: int, n: int) -> bytes:
    assert part.fd is not None
    return os.pread(part.fd, n, pos)
