"""The engine's clocks, on trio's MockClock, held to the real defaults.

Backoff (0.25 s doubling to 10 s, equal jitter, 5 tries, at once after a 64 KiB drop),
Retry-After (capped at 120 s), the 30 s stall timeout and the 1 s control-file save
interval, each measured in virtual seconds against ``download`` with the default
``Options()``. No sockets: requests go to ``httpx.MockTransport``, or, where the timeout
lives in httpcore's network layer (a body that goes silent), through httpcore's own HTTP/1.1
client and trio stream over an in-memory pipe. With the ``autojump_clock`` fixture the clock
jumps to the next deadline whenever every task waits, so a 30 s timeout costs no real time.

One caveat shapes these tests: the engine runs fdatasync and hashing in threads, and while a
thread runs every task waits, so the autojump clock jumps on to the next deadline, however
far. Gaps between deadline-driven events (a backoff, a timeout) stay exact; how much virtual
time a thread takes does not. So no deadline is set around a whole download, and the save
tests pin what a save claims (fixed when its timer fires), not when its file appears.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import trio
import trio.testing
from httpcore._backends.trio import TrioStream  # httpcore's own stream, read timeouts and all

from segfetch.engine import plan
from segfetch.engine.download import Result, download
from segfetch.engine.options import Options
from segfetch.engine.retry import RetryPolicy
from segfetch.engine.store import PartFile, State
from segfetch.engine.transfer import WATCH_EVERY
from segfetch.errors import RetriesExhausted

# The real defaults (engine/retry.py, options.py, transfer.py), written out: a change to any
# of them should fail here, not pass silently.
BASE = 0.25  # first backoff
CAP = 10.0  # longest backoff
MAX_TRIES = 5
MAX_RETRY_AFTER = 120.0
QUICK_RETRY_BYTES = 64 * 1024
TIMEOUT = 30.0
SAVE_EVERY = 1.0
ALONE_HEDGE = 2.0  # a body silent with no other bytes coming is asked again after this

URL = "http://files.test/pkg.whl"
ETAG = '"v1"'
SIZE = 200_000  # below 1.5 * min_segment: one segment, so one request at a time
DATA = random.Random(1).randbytes(SIZE)
SHA256 = hashlib.sha256(DATA).hexdigest()
# A server that stalls gives up by itself after this many virtual seconds, so an engine that
# never times out fails the test instead of hanging it.
GUARD = 600.0
EPS = 1e-6  # virtual times are float sums


@pytest.fixture(autouse=True)
def _no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work the engine hands to threads (hashing, fdatasync) runs inline here: the clock
    autojumps whenever every task waits, so it would run on, to further timers, for as long
    as a thread really works, and the timings under test would hang on the machine's load."""

    async def inline(fn: Callable[..., Any], *args: Any, **_: Any) -> Any:
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", inline)


def ceiling(k: int) -> float:
    """The longest wait before retry k (1-based) of the default policy."""
    return min(CAP, BASE * 2.0 ** (k - 1))


def in_jitter(gap: float, k: int) -> bool:
    """Equal jitter: half fixed, half random."""
    return ceiling(k) / 2 - EPS <= gap <= ceiling(k) + EPS


# -- a server on MockTransport --------------------------------------------------------------

Answer = Callable[[httpx.Request], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Hit:
    t: float  # virtual arrival time
    range: str | None
    if_range: str | None


def asked(range_value: str) -> tuple[int, int]:
    """``[start, end)`` of a ``bytes=a-`` or ``bytes=a-b`` header."""
    first, _, last = range_value.removeprefix("bytes=").partition("-")
    return int(first), min(int(last) + 1, SIZE) if last else SIZE  # as servers clamp


async def streamed(data: bytes) -> AsyncIterator[bytes]:
    yield data


def partial(request: httpx.Request, body: AsyncIterable[bytes] | None = None) -> httpx.Response:
    """206 for the range asked; ``body`` (default: those bytes) may end early or trickle.
    Always a stream: a Response made from bytes counts as read, and aiter_raw refuses it."""
    start, end = asked(request.headers["Range"])
    headers = {"Content-Range": f"bytes {start}-{end - 1}/{SIZE}", "ETag": ETAG}
    content = streamed(DATA[start:end]) if body is None else body
    return httpx.Response(206, headers=headers, content=content)


async def whole(request: httpx.Request) -> httpx.Response:
    return partial(request)


def status(code: int, retry_after: str | None = None) -> Answer:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, headers={"Retry-After": retry_after} if retry_after else {})

    return answer


class Server:
    """Answers the n-th request with the n-th answer (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        self.hits: list[Hit] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        h = request.headers
        self.hits.append(Hit(trio.current_time(), h.get("Range"), h.get("If-Range")))
        return await self.answers[min(len(self.hits), len(self.answers)) - 1](request)

    def gaps(self) -> list[float]:
        return [b.t - a.t for a, b in zip(self.hits, self.hits[1:], strict=False)]


async def fetch(server: Server, dest: Path, options: Options | None = None, **kw: Any) -> Result:
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        return await download(URL, dest, options, client=client, sha256=SHA256, **kw)


# -- backoff --------------------------------------------------------------------------------


async def test_backoff_waits_are_the_default_equal_jitter(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    schedules = []
    for seed in range(10):
        server = Server(*[status(500)] * 4, whole)
        result = await fetch(server, tmp_path / f"{seed}.whl", seed=seed)
        assert result.retries == 4 and (tmp_path / f"{seed}.whl").read_bytes() == DATA
        gaps = server.gaps()
        assert len(gaps) == 4
        for k, gap in enumerate(gaps, 1):  # 0.125-0.25, 0.25-0.5, 0.5-1, 1-2 s
            assert in_jitter(gap, k), (seed, k, gap)
        schedules.append(gaps)
    # The random half is used, over most of its range: retries of many clients spread out.
    for k, waits in enumerate(zip(*schedules, strict=True), 1):
        assert len(set(waits)) == len(waits)
        assert max(waits) - min(waits) > ceiling(k) / 4


async def test_backoff_stops_growing_at_10_s(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # more tries than the default 5 (which end at 2 s) to reach the cap; base and cap default
    server = Server(*[status(500)] * 8, whole)
    await fetch(server, tmp_path / "pkg.whl", Options(policy=RetryPolicy(max_tries=9)), seed=3)
    gaps = server.gaps()
    assert len(gaps) == 8
    for k, gap in enumerate(gaps, 1):
        assert in_jitter(gap, k), (k, gap)
    assert [ceiling(k) for k in (6, 7, 8)] == [8.0, 10.0, 10.0]


async def test_a_dead_server_is_given_up_after_5_tries(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = Server(status(500))
    with pytest.raises(RetriesExhausted) as info:
        await fetch(server, tmp_path / "pkg.whl")
    assert len(server.hits) == MAX_TRIES
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"giving up after {MAX_TRIES} tries with no progress: ")
    assert all(in_jitter(gap, k) for k, gap in enumerate(server.gaps(), 1))
    assert trio.current_time() == server.hits[-1].t  # no wait after the last try
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("sent", "at_once"), [(QUICK_RETRY_BYTES, True), (QUICK_RETRY_BYTES - 1, False)]
)
async def test_a_drop_after_64_KiB_reconnects_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, sent: int, at_once: bool
) -> None:
    async def cut(request: httpx.Request) -> httpx.Response:
        return partial(request, streamed(DATA[:sent]))  # the body ends early

    server = Server(cut, whole)
    await fetch(server, tmp_path / "pkg.whl")
    assert server.hits[1].range == f"bytes={sent}-{SIZE - 1}"  # from the byte where it stopped
    (gap,) = server.gaps()
    if at_once:
        assert gap == 0.0
    else:
        assert in_jitter(gap, 1)


# -- Retry-After ----------------------------------------------------------------------------


def http_date(after: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + after, usegmt=True)


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_seconds_is_waited_exactly(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, code: int
) -> None:
    server = Server(status(code, "7"), whole)
    await fetch(server, tmp_path / "pkg.whl")
    assert server.gaps() == pytest.approx([7.0], abs=EPS)


@pytest.mark.parametrize("form", ["seconds", "date"])
async def test_a_retry_after_beyond_120_s_ends_the_download_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, form: str
) -> None:
    """Not minutes of silence in 120 s waits: one request, one line saying what was asked."""
    value = "100000" if form == "seconds" else http_date(timedelta(days=1))
    server = Server(status(503, value), whole)
    with pytest.raises(
        RetriesExhausted, match=f"longer than segfetch waits \\({MAX_RETRY_AFTER:.0f} s\\)"
    ):
        await fetch(server, tmp_path / "pkg.whl")
    assert server.gaps() == []
    just = Server(status(503, f"{MAX_RETRY_AFTER:.0f}"), whole)  # 120 s is still waited
    await fetch(just, tmp_path / "pkg.whl")
    assert just.gaps() == pytest.approx([MAX_RETRY_AFTER], abs=EPS)


async def test_retry_after_date_is_waited_until_that_time(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # The engine reads an HTTP-date against the wall clock (the exact arithmetic, with an
    # injected now, is test_retry.py's); a date has whole seconds, so 30 s from now is 29-30 s.
    async def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": http_date(timedelta(seconds=30))})

    server = Server(busy, whole)
    await fetch(server, tmp_path / "pkg.whl")
    (gap,) = server.gaps()
    assert 28.5 < gap <= 30.0 + EPS


async def test_retry_after_on_a_segment_request_is_waited(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def then_drop(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield DATA[:1000]
            await trio.sleep(0.5)  # then the connection ends early

        return partial(request, body())

    # One segment, so its worker is the only one left: asked to come back in 7 s, it waits
    # (with others still at work it would leave the host to them).
    server = Server(then_drop, status(503, "7"), whole)
    await fetch(server, tmp_path / "pkg.whl")
    probe, segment, again = server.hits
    assert segment.range == again.range == f"bytes=1000-{SIZE - 1}"
    assert in_jitter(segment.t - (probe.t + 0.5), 1)
    assert again.t - segment.t == pytest.approx(7.0, abs=EPS)


# -- stalls ---------------------------------------------------------------------------------


async def test_a_head_that_never_comes_is_given_up_after_30_s(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    gave_up: list[float] = []

    async def never(request: httpx.Request) -> httpx.Response:
        try:
            await trio.sleep(GUARD)
        finally:
            gave_up.append(trio.current_time())
        return partial(request)

    server = Server(never, whole)
    result = await fetch(server, tmp_path / "pkg.whl")
    first, second = server.hits
    assert gave_up == pytest.approx([first.t + TIMEOUT], abs=EPS)
    assert in_jitter(second.t - gave_up[0], 1)
    assert result.retries == 1 and (tmp_path / "pkg.whl").read_bytes() == DATA


# A body that goes silent is caught by httpx's read timeout, which lives in httpcore's network
# layer: MockTransport has none, and under it the engine waits forever. So these requests
# cross httpcore's real HTTP/1.1 client and trio stream, over an in-memory pipe instead of a
# socket (a socket would let the autojump clock jump while bytes are in flight). Over real
# sockets, with a shrunken timeout: test_engine.py::test_stalled_connection_times_out_and_resumes.

Serve = Callable[[trio.abc.Stream], Awaitable[None]]


class Pipe(httpcore.AsyncNetworkBackend):
    """Each connection: a new in-memory pipe, its server end handled by ``serve``."""

    def __init__(self, nursery: trio.Nursery, serve: Serve) -> None:
        self.nursery, self.serve = nursery, serve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.serve, server)
        return PipeStream(client)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


async def read_request(stream: trio.abc.Stream) -> dict[str, str]:
    """The request's headers (lowercase names); the request line as ``""``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some()
    line, *fields = data.partition(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = {"": line}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def head(start: int, end: int) -> bytes:
    return (
        f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end - 1}/{SIZE}\r\n"
        f"Content-Length: {end - start}\r\nETag: {ETAG}\r\n\r\n"
    ).encode()


class PipeStream(TrioStream):
    """httpcore's trio stream over a memory pipe: no socket to ask whether it is readable
    (the pool asks before reusing a kept-alive connection), so it never is."""

    def get_extra_info(self, info: str) -> Any:
        if info in ("socket", "is_readable"):
            return None if info == "socket" else False
        return super().get_extra_info(info)


async def fetch_over_pipe(serve: Serve, dest: Path) -> Result:
    async with trio.open_nursery() as servers:
        transport = httpx.AsyncHTTPTransport()
        # httpx has no public way to pass httpcore a network backend: swap its pool (checked
        # first, so that an httpx that renamed it fails here rather than opening sockets)
        assert isinstance(transport._pool, httpcore.AsyncConnectionPool)
        transport._pool = httpcore.AsyncConnectionPool(network_backend=Pipe(servers, serve))
        async with httpx.AsyncClient(transport=transport) as client:
            result = await download(URL, dest, client=client, sha256=SHA256)
        servers.cancel_scope.cancel()
    return result


async def test_a_body_that_goes_silent_alone_is_asked_again_after_two_seconds(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    hits: list[Hit] = []
    hung_up: list[float] = []

    async def serve(stream: trio.abc.Stream) -> None:
        headers = await read_request(stream)
        hits.append(Hit(trio.current_time(), headers.get("range"), headers.get("if-range")))
        start, end = asked(headers["range"])
        if len(hits) == 1:
            await stream.send_all(head(start, end) + DATA[start : start + 1000])
            with trio.move_on_after(GUARD):
                while await stream.receive_some():  # until the client hangs up
                    pass
            hung_up.append(trio.current_time())
            await stream.aclose()
        else:
            await stream.send_all(head(start, end) + DATA[start:end])

    result = await fetch_over_pipe(serve, tmp_path / "pkg.whl")
    first, second = hits
    # Alone and quiet: the link may be down, so not at its 1 s quiet limit, but at twice it
    # (seen by the watcher, which looks every WATCH_EVERY), not the whole 30 s.
    assert hung_up == pytest.approx([first.t + ALONE_HEDGE], abs=WATCH_EVERY + EPS)
    assert second.range == f"bytes=1000-{SIZE - 1}" and second.if_range == ETAG
    assert in_jitter(second.t - hung_up[0], 1)
    assert result.retries == 1 and (tmp_path / "pkg.whl").read_bytes() == DATA


async def test_a_head_that_trickles_is_given_up_after_30_s(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # A byte every 10 s never trips the per-read timeout; the head as a whole must arrive
    # within the 30 s.
    hits: list[Hit] = []

    async def serve(stream: trio.abc.Stream) -> None:
        headers = await read_request(stream)
        hits.append(Hit(trio.current_time(), headers.get("range"), headers.get("if-range")))
        start, end = asked(headers["range"])
        if len(hits) == 1:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                for byte in head(start, end):
                    await stream.send_all(bytes([byte]))
                    await trio.sleep(10)
                await stream.send_all(DATA[start:end])
        else:
            await stream.send_all(head(start, end) + DATA[start:end])

    await fetch_over_pipe(serve, tmp_path / "pkg.whl")
    first, second = hits
    assert in_jitter(second.t - (first.t + TIMEOUT), 1)
    assert (tmp_path / "pkg.whl").read_bytes() == DATA


# -- the control file -----------------------------------------------------------------------
# When a save lands in virtual time is not fixed (its fdatasync runs in a thread, and the
# clock jumps on meanwhile); what it claims is: the bytes written when its timer fired. So
# the server writes at known times and pauses until it sees the control file change.

CHUNK = 1000


def claimed(dest: Path) -> int | None:
    """Bytes the control file says are written (always a prefix here), or None without one."""
    try:
        done = json.loads(dest.with_name(dest.name + ".part.json").read_text())["done"]
    except FileNotFoundError:
        return None
    assert len(done) == 1 and done[0][0] == 0, done
    n: int = done[0][1]
    return n


class Saves:
    """Wakes a paused server at each control-file save. Not a poll: under the autojumping
    clock a poll runs the clock on for as long as a worker thread (hashing, syncing) works."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.saved = trio.Event()
        save = PartFile.save

        def save_and_tell(part: PartFile, state: State) -> None:
            save(part, state)
            self.saved.set()

        monkeypatch.setattr(PartFile, "save", save_and_tell)

    async def claim_other_than(self, dest: Path, old: int | None) -> tuple[float, int]:
        """Wait for the control file to claim something else than ``old``: (when, claim)."""
        with trio.fail_after(GUARD):
            while (claim := claimed(dest)) in (None, old):
                self.saved = trio.Event()
                await self.saved.wait()
        return trio.current_time(), claim


async def test_control_file_is_saved_every_second_with_what_was_written(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk whose sync takes 0.1 s: the worker goes on writing while a save syncs.
    sync = PartFile.sync

    async def slow_sync(part: PartFile) -> None:
        await trio.sleep(0.1)
        await sync(part)

    monkeypatch.setattr(PartFile, "sync", slow_sync)
    # The body pauses about 2 s below while it waits for the saves: not a hedge's business.
    monkeypatch.setattr(plan, "ALONE", 5)
    dest = tmp_path / "pkg.whl"
    watch = Saves(monkeypatch)
    early: list[int | None] = []  # what the control file claimed before each early chunk
    saves: list[int] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        t0 = trio.current_time()

        async def body() -> AsyncIterator[bytes]:
            for i in range(10):  # a chunk at 0.05, 0.15, ... 0.95 s
                await trio.sleep_until(t0 + 0.05 + 0.1 * i)
                early.append(claimed(dest))
                yield DATA[i * CHUNK : (i + 1) * CHUNK]
            seen, claim = await watch.claim_other_than(dest, None)
            saves.append(claim)
            # Seen as it was written, so the next save's timer fires 1.0 s from now: a chunk
            # just before that, one while that save syncs (0.1 s).
            await trio.sleep_until(seen + 0.95)
            yield DATA[10 * CHUNK : 11 * CHUNK]
            await trio.sleep_until(seen + 1.03)
            yield DATA[11 * CHUNK : 12 * CHUNK]
            saves.append((await watch.claim_other_than(dest, claim))[1])
            yield DATA[12 * CHUNK :]

        return partial(request, body())

    await fetch(Server(answer), dest)
    assert dest.read_bytes() == DATA and claimed(dest) is None
    assert early == [None] * 10  # nothing saved in the first second
    # The first save: the 10 chunks of the first second. The next, 1 s after it: the chunk
    # before its timer, not the one that came while it synced.
    assert saves == [10 * CHUNK, 11 * CHUNK]


async def test_cancelled_download_saves_what_was_written_and_resumes(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def trickle(request: httpx.Request) -> httpx.Response:
        t0 = trio.current_time()

        async def body() -> AsyncIterator[bytes]:
            for i, pos in enumerate(range(0, SIZE, CHUNK)):  # at 0.05, 0.15, ... s
                await trio.sleep_until(t0 + 0.05 + 0.1 * i)
                yield DATA[pos : pos + CHUNK]

        return partial(request, body())

    dest = tmp_path / "pkg.whl"
    # Ctrl-C half a second after the first save, which claims 10 chunks: 15 are written.
    with trio.move_on_after(1.5) as scope:
        await fetch(Server(trickle), dest)
    assert scope.cancelled_caught
    written = 15 * CHUNK
    assert claimed(dest) == written
    part = dest.with_name(dest.name + ".part").read_bytes()
    assert part[:written] == DATA[:written]

    again = Server(whole)
    result = await fetch(again, dest)
    assert (again.hits[0].range, again.hits[0].if_range) == (f"bytes={written}-{SIZE - 1}", ETAG)
    assert result.resumed == written and dest.read_bytes() == DATA
