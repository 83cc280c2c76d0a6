"""`segfetch bench`: how much do more connections buy on this link?

Ranged reads within a byte budget and a time budget, at 1, 2, 4, 8, 16 (32, 64) connections,
stopping once throughput stops growing. The decisions (is the limit per connection or
shared, which -n to use) are pure functions at the bottom.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx
import trio

from segfetch.engine import failures
from segfetch.engine.body import body_chunks
from segfetch.engine.ranges import parse_content_range, range_header
from segfetch.errors import DownloadError, redact_url

STEPS = (1, 2, 4, 8, 16, 32, 64)  # those up to -n (16 unless told; bench takes up to 64)
STEP_SECONDS = 2.0  # how long one step lasts at most, so start-up costs do not dominate
GROWTH = 1.15  # a step that does not beat the last by this much ends the climb


@dataclass
class Step:
    connections: int
    bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Report:
    url: str
    size: int
    ranges: bool
    first_byte: float  # seconds to the first byte on a new connection (median)
    request: float  # seconds for a one-byte request on an open connection (about one RTT)
    steps: list[Step] = field(default_factory=list)
    limit: str = ""  # "per connection", "shared" or "mixed"
    recommended: int = 1
    # Why the climb ended while more connections still paid: "--time", "--budget" or "-n"
    # (the most it may measure); "" at the knee. The suggestion is then a lower bound.
    unfinished: str = ""

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["url"] = redact_url(self.url)
        for step, raw in zip(self.steps, out["steps"], strict=True):
            raw["rate"] = step.rate
        return out


async def bench(
    client: httpx.AsyncClient,
    url: str,
    *,
    budget: int,
    seconds: float,
    max_connections: int = 16,
    progress: Callable[[int], None] | None = None,
    step_seconds: float = STEP_SECONDS,
) -> Report:
    """Measure the link to url without downloading more than ``budget`` bytes."""
    deadline = trio.current_time() + seconds
    size, ranges, first = await _probe(client, url)
    report = Report(url, size, ranges, first, await _request_time(client, url))
    spent = 0
    steps = counts(max_connections) if ranges else [1]
    out_of = "-n" if ranges else ""  # what ends the climb if every count is measured
    for i, n in enumerate(steps):
        left_bytes, left_time = budget - spent, deadline - trio.current_time()
        if left_bytes <= n * 16 * 1024 or left_time <= 0:
            out_of = "--time" if left_time <= 0 else "--budget"
            break
        # Spread what is left of the budget over the steps still to come; each step lasts
        # step_seconds or until its share is read, whichever comes first.
        cap = left_bytes // (len(steps) - i)
        window = min(step_seconds, left_time)
        step = await _step(client, url, n, cap, size, ranges, window, progress)
        spent += step.bytes
        best = max((s.rate for s in report.steps), default=0.0)
        report.steps.append(step)
        if best and step.rate < best * GROWTH:
            out_of = ""  # the knee
            break
    report.limit = classify(report.steps)
    report.recommended = recommend(report.steps)
    report.unfinished = unfinished(report.steps, out_of)
    return report


async def _probe(client: httpx.AsyncClient, url: str) -> tuple[int, bool, float]:
    times = []
    size, ranges = 0, False
    for _ in range(3):  # a new connection each time: this is the cost of opening one
        started = trio.current_time()
        async with httpx.AsyncClient(
            timeout=client.timeout,
            headers=client.headers,
            follow_redirects=True,
            event_hooks=client.event_hooks,
        ) as fresh:
            response = await _get(fresh, url, range_header(0, 1))
        times.append(trio.current_time() - started)
        if response.status_code == 206:
            _, _, total = parse_content_range(response.headers.get("Content-Range", ""))
            size, ranges = total or 0, total is not None
        else:
            size = int(response.headers.get("Content-Length") or 0)
    return size, ranges, statistics.median(times)


async def _request_time(client: httpx.AsyncClient, url: str) -> float:
    await _get(client, url, range_header(0, 1))  # opens the connection
    times = []
    for _ in range(3):
        started = trio.current_time()
        await _get(client, url, range_header(0, 1))
        times.append(trio.current_time() - started)
    return statistics.median(times)


async def _get(client: httpx.AsyncClient, url: str, range_value: str) -> httpx.Response:
    """One measuring request; a failure ends the measurement with the classifier's line."""
    try:
        response = await client.get(url, headers={"Range": range_value})
    except httpx.TransportError as exc:
        raise failures.from_transport(exc, url).error() from None
    if response.status_code not in (200, 206):
        status, reason = response.status_code, response.reason_phrase
        raise failures.from_status(status, reason, response.headers, url).error()
    return response


async def _step(
    client: httpx.AsyncClient,
    url: str,
    n: int,
    cap: int,
    size: int,
    ranges: bool,
    window: float,
    progress: Callable[[int], None] | None,
) -> Step:
    """n connections at once, each reading its share at its own offset, for ``window``
    seconds at most. The rate counts from the first byte, not from the requests."""
    share = max(1, min(cap, size) // n)
    got = [0] * n
    first: list[float] = []

    errors: list[httpx.TransportError] = []

    async def read(i: int, start: int) -> None:
        headers = {"Range": range_header(start + got[i], start + share)} if ranges else {}
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code not in (200, 206):
                return  # refused (a host that allows fewer connections): this one adds nothing
            async for chunk in body_chunks(response):
                if not first:
                    first.append(trio.current_time())
                take = min(len(chunk), share - got[i])
                got[i] += take
                if progress:
                    progress(take)
                if got[i] >= share:
                    break

    async def one(i: int) -> None:
        # A dropped connection (the flaky links segfetch is for) is opened again where it
        # stopped, as a download would be: only three drops in a row without a byte end it.
        start = (i * share) % max(1, size - share + 1) if ranges else 0
        misses = 0
        while got[i] < share and misses < 3:
            before = got[i]
            try:
                await read(i, start)
                return
            except httpx.TransportError as exc:
                errors.append(exc)
                misses = 0 if got[i] > before else misses + 1

    with trio.move_on_after(window):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
    if errors and not sum(got):
        raise DownloadError(f"the link failed while measuring: {errors[0]}")
    ended = trio.current_time()
    return Step(n, sum(got), ended - first[0] if first else window)


def counts(max_connections: int) -> list[int]:
    """The connection counts measured, doubling up to ``max_connections`` (-n)."""
    return [s for s in STEPS if s <= max_connections]


def classify(steps: list[Step]) -> str:
    """Is the limit per connection (more connections add up) or shared (they do not)?"""
    if len(steps) < 2 or steps[0].rate <= 0:
        return "unknown"
    best = max(steps, key=lambda s: s.rate)
    growth = best.rate / steps[0].rate
    if growth < 1.3:
        return "shared"
    if growth >= 0.7 * best.connections:
        return "per connection"
    return "mixed"


def recommend(steps: list[Step]) -> int:
    """The fewest connections that reach 90 % of the best rate seen."""
    if not steps:
        return 1
    best = max(s.rate for s in steps)
    return min(s.connections for s in steps if s.rate >= 0.9 * best)


def unfinished(steps: list[Step], out_of: str) -> str:
    """``out_of`` (what ended the climb before a knee) if the last step measured still
    paid, or was the only one (time or budget ran out), i.e. more connections may buy
    more; else ""."""
    if not out_of or not steps:
        return ""
    if len(steps) == 1:
        return "" if out_of == "-n" else out_of
    return out_of if steps[-1].rate >= GROWTH * max(s.rate for s in steps[:-1]) else ""
