"""`segfetch bench`: how much do more connections buy on this link?

Ranged reads within a byte budget and a time budget, at 1, 2, 4, 8, 16 (32, 64) connections,
stopping once throughput stops growing, or where the host refuses connections (its limit).
Each step opens its own connections (a host that counts idle ones would refuse the next
step's). The decisions (is the limit per connection or shared, which -n to use) are pure
functions at the bottom.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import httpx
import trio

from segfetch.engine import failures
from segfetch.engine.body import body_chunks
from segfetch.engine.coding import codings
from segfetch.engine.ranges import parse_content_range, range_header
from segfetch.errors import DownloadError, redact_url
from segfetch.units import human_bytes

STEPS = (1, 2, 4, 8, 16, 32, 64)  # those up to -n (16 unless told; bench takes up to 64)
STEP_SECONDS = 2.0  # how long one step lasts at most, so start-up costs do not dominate
GROWTH = 1.15  # a step that does not beat the last by this much ends the climb
MIN_SIZE = 1 << 20  # a smaller file is over before a link shows its rate (and its bursts)
MIN_STEP = 0.25  # seconds: a step over sooner measured bursts and start-up, not the link
PEEK = 64 * 1024  # the most read of an answer that is not a step's (it may be all the file)
TRIES = 3  # a connection refused (429, 503) or answered oddly is asked again this often
HTML = (".html", ".htm")

Clients = Callable[[], httpx.AsyncClient]  # a new client: its own connections


@dataclass
class Step:
    connections: int
    bytes: int
    seconds: float
    refused: int = 0  # connections refused (429, 503, ...) on every try of the step

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Report:
    url: str
    size: int
    ranges: bool
    first_byte: float  # seconds to the first byte on a new connection (median)
    request: float | None  # seconds for a one-byte request on an open connection (one RTT)
    steps: list[Step] = field(default_factory=list)
    limit: str = ""  # "per connection", "shared" or "mixed"
    recommended: int = 1
    # Why the climb ended while more connections still paid: "--time", "--budget" or "-n"
    # (the most it may measure); "" at the knee. The suggestion is then a lower bound.
    unfinished: str = ""
    short: bool = False  # a step lasted under MIN_STEP: the budget is too small for the link

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["url"] = redact_url(self.url)
        for step, raw in zip(self.steps, out["steps"], strict=True):
            raw["rate"] = step.rate
        return out


async def bench(
    clients: Clients,
    url: str,
    *,
    budget: int,
    seconds: float,
    max_connections: int = 16,
    progress: Callable[[int], None] | None = None,
    step_seconds: float = STEP_SECONDS,
) -> Report:
    """Measure the link to url without downloading more than ``budget`` bytes, nor taking
    much more than ``seconds`` (a step's connections are cut when its time is up)."""
    deadline = trio.current_time() + seconds
    size, ranges, first = await _probe(clients, url, deadline, seconds)
    request = await _request_time(clients, url, deadline) if ranges else None
    report = Report(url, size, ranges, first, request)
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
        step = await _step(clients, url, n, cap, size, ranges, window, progress)
        spent += step.bytes
        best = max((s.rate for s in report.steps), default=0.0)
        report.steps.append(step)
        report.short = report.short or (step.seconds < MIN_STEP and step.seconds < window)
        if step.refused or (best and step.rate < best * GROWTH):
            out_of = ""  # the knee, or the host's limit of connections
            break
    report.limit = classify(report.steps)
    report.recommended = recommend(report.steps)
    report.unfinished = unfinished(report.steps, out_of)
    return report


@asynccontextmanager
async def _answer(
    client: httpx.AsyncClient, url: str, range_value: str | None
) -> AsyncIterator[httpx.Response]:
    """A measuring answer (2xx, the file's own bytes), asked again after a refusal or an
    odd answer (TRIES in all); else the classifier's one line. (A failed connection is
    the caller's: httpx.TransportError.)"""
    for attempt in range(1, TRIES + 1):
        headers = {"Range": range_value} if range_value else {}
        async with client.stream("GET", url, headers=headers) as response:
            why = _unusable(response, url)
            if why is None:
                yield response
                return
        if attempt == TRIES or not why.retry:
            raise why.error()
        await trio.sleep(0.1 * attempt)


def _unusable(response: httpx.Response, url: str) -> failures.Failure | None:
    """Why an answer cannot be measured: a refusal or error status, compressed bytes (a
    proxy's gzip: not the file's rate), an HTML page where a file was asked (a portal)."""
    status, headers = response.status_code, response.headers
    if status == 416 and headers.get("Content-Range", "").strip() == "bytes */0":
        return failures.Failure(_too_small(url, 0), retry=False)  # (an empty file)
    if status not in (200, 206):
        return failures.from_status(status, response.reason_phrase, headers, url)
    if codings(headers, url):
        coding = headers.get("Content-Encoding")
        return failures.Failure(
            f"{redact_url(url)} sent {coding}-encoded bytes though asked for the file as it is "
            "(a proxy that compresses?): their rate is not the file's; measure another URL",
            retry=True,
        )
    html = headers.get("Content-Type", "").lower().startswith("text/html")
    if html and not urlsplit(url).path.lower().endswith(HTML):
        return failures.Failure(
            f"{redact_url(url)} answered with an HTML page, not a file (a login or error "
            "page?): give the URL of a large file on the server",
            retry=False,
        )
    return None


async def _peek(response: httpx.Response) -> None:
    """At most PEEK bytes of the body: an answer that ignores Range is all of the file."""
    got = 0
    async for chunk in body_chunks(response):
        got += len(chunk)
        if got >= PEEK:
            break


async def _probe(
    clients: Clients, url: str, deadline: float, seconds: float
) -> tuple[int, bool, float]:
    """The file's size, whether ranges work, and the time to the first byte on a new
    connection (the median of up to 3, taken while a third of --time is left)."""
    times: list[float] = []
    size: int | None = None
    ranges = False
    with trio.move_on_at(deadline), _one_line(url):
        for _ in range(3):  # a new connection each time: this is the cost of opening one
            if times and (not ranges or deadline - trio.current_time() < seconds * 2 / 3):
                break  # (where a Range gets all of the file, each sample would cost it)
            async with clients() as fresh:
                started = trio.current_time()
                async with _answer(fresh, url, range_header(0, 1)) as response:
                    times.append(trio.current_time() - started)
                    size, ranges = _size(response)
                    await _peek(response)
    if not times:
        raise DownloadError(
            f"--time {seconds:g}s ran out before {redact_url(url)} answered (opening a "
            "connection and asking took longer): give more --time"
        )
    if size is not None and size < MIN_SIZE:  # (an empty file too)
        raise DownloadError(_too_small(url, size))
    return size or 0, ranges, statistics.median(times)


@contextmanager
def _one_line(url: str) -> Iterator[None]:
    """A failed connection as the classifier says it."""
    try:
        yield
    except httpx.TransportError as exc:
        raise failures.from_transport(exc, url).error() from None


def _too_small(url: str, size: int) -> str:
    return (
        f"{redact_url(url)} is {human_bytes(size)}: too small to measure a link (a step would "
        f"be over before its rate shows); give the URL of a file of {human_bytes(MIN_SIZE)} or more"
    )


def _size(response: httpx.Response) -> tuple[int | None, bool]:
    """(size, ranges work) from an answer to "bytes=0-1"; None: unknown."""
    if response.status_code == 206:
        try:
            _, _, total = parse_content_range(response.headers.get("Content-Range", ""))
        except ValueError:  # (a multipart answer to one range: no ranges to rely on)
            return None, False
        return total, total is not None
    try:
        return max(0, int(response.headers["Content-Length"])), False
    except (KeyError, ValueError):
        return None, False


async def _request_time(clients: Clients, url: str, deadline: float) -> float | None:
    """A request's time on an open connection (about one round trip); None where time ran
    out first."""
    times = []
    with trio.move_on_at(deadline), _one_line(url):
        async with clients() as client:
            for i in range(4):  # the first opens the connection
                started = trio.current_time()
                async with _answer(client, url, range_header(0, 1)) as response:
                    await _peek(response)
                if i:
                    times.append(trio.current_time() - started)
    return statistics.median(times) if times else None


async def _step(
    clients: Clients,
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
    share = max(1, (min(cap, size) if size else cap) // n)
    got = [0] * n
    refused = [False] * n
    first: list[float] = []
    errors: list[Exception] = []

    async def read(client: httpx.AsyncClient, i: int, start: int) -> None:
        span = range_header(start + got[i], start + share) if ranges else None
        async with _answer(client, url, span) as response:
            refused[i] = False
            async for chunk in body_chunks(response):
                if not first:
                    first.append(trio.current_time())
                take = min(len(chunk), share - got[i])
                got[i] += take
                if progress:
                    progress(take)
                if got[i] >= share:
                    break

    async def one(client: httpx.AsyncClient, i: int) -> None:
        # A dropped connection (the flaky links segfetch is for) is opened again where it
        # stopped, as a download would be: only three drops in a row without a byte end it.
        # A refusal on every try (a host's limit of connections) leaves it out of the step.
        start = (i * share) % max(1, size - share + 1) if ranges and size else 0
        misses = 0
        while got[i] < share and misses < 3:
            before = got[i]
            try:
                await read(client, i, start)
                return
            except httpx.TransportError as exc:
                errors.append(exc)
                misses = 0 if got[i] > before else misses + 1
            except DownloadError as exc:
                refused[i] = True
                errors.append(exc)
                return

    with trio.move_on_after(window):
        async with clients() as client, trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, client, i)
    if errors and not sum(got):
        raise DownloadError(f"the link failed while measuring: {errors[0]}")
    ended = trio.current_time()
    return Step(n, sum(got), ended - first[0] if first else window, refused=sum(refused))


def counts(max_connections: int) -> list[int]:
    """The connection counts measured, doubling up to ``max_connections`` (-n)."""
    return [s for s in STEPS if s <= max_connections]


def classify(steps: list[Step]) -> str:
    """Is the limit per connection (more connections add up) or shared (they do not)?"""
    steps = [s for s in steps if not s.refused]
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
    """The fewest connections that reach 90 % of the best rate seen at a count the host
    did not refuse."""
    steps = [s for s in steps if not s.refused] or steps
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
