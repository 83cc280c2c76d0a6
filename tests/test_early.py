"""`get`'s first request sent before trio and httpx load (early.py), and its answer taken by
the engine (adopt.py): which URLs may have one, and over loopback against the emulator,
that the answer is the first segment when it is the engine's own request and is closed and
asked again otherwise. The emulator's log tells them apart: an adopted answer is one of the
engine's requests; one not taken is one more."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.cli import main as cli
from segfetch.engine import adopt, client
from segfetch.engine.download import download
from segfetch.engine.early import Early, start
from segfetch.engine.options import Options
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import SegfetchError, UsageError
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile

PATH = "/pkg.whl"
SIZE = 1_000_000
SEGMENT = 64 * 1024
OPTS = Options(connections=4, min_segment=SEGMENT, policy=RetryPolicy(max_tries=4, base=0.01))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)


async def sent(url: str, connections: int | None = 4, segment: int = SEGMENT) -> Early:
    early = start(url, connections, segment, 10.0)
    assert early is not None
    assert await trio.to_thread.run_sync(early.sent.wait, 10.0), "the request never went out"
    return early


def gets(emu: Emulator) -> list[dict[str, object]]:
    return [e for e in emu.log if e["method"] == "GET"]


def first_asked(emu: Emulator) -> dict[str, object]:
    """The first GET asked (the log is in the order answers end: a later, shorter range
    may end first on a loaded machine)."""
    return min(gets(emu), key=lambda e: float(str(e["t"])))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:9/x.whl",  # TLS is httpx's
        "http://user:pw@127.0.0.1:9/x.whl",  # so is authentication
        "http://127.0.0.1:9/a b.whl",  # httpx quotes the space
        "http://127.0.0.1:9/é.whl",
        "http://bücher.example/x.whl",  # httpx writes the IDNA form
        "http://Under_Score.example/x.whl",
        "http://127.0.0.1:0/x.whl",
        "http://127.0.0.1:99999/x.whl",
        "http:///x.whl",
        "ftp://127.0.0.1/x.whl",
        "http://127.0.0.1:09/x.whl",  # httpx writes the port as 9
        "http://[::1]:080/x.whl",
        "http://127.0.0.1:9/a/../x.whl",  # httpx removes dot segments
        "http://127.0.0.1:9/a/./x.whl",
        "http://127.0.0.1:9/a/..",
        # urlsplit drops these where httpx refuses the URL: no request for a URL refused
        "http://127.0.0.1:9/x.whl\r",
        "http://127.0.0.1:9/x\t.whl",
        "http://127.0.\n0.1:9/x.whl",
        " http://127.0.0.1:9/x.whl",
        "http://127.0.0.1:9/x.whl ",
    ],
)
def test_no_early_request_where_httpx_might_ask_otherwise(url: str) -> None:
    assert start(url, 4, SEGMENT, 1.0) is None


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_no_early_request_past_a_proxy(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "http://127.0.0.1:3128")
    assert start("http://127.0.0.1:9/x.whl", 4, SEGMENT, 1.0) is None


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x.whl?", "http://127.0.0.1:9/x.whl?#f", "http://127.0.0.1:9?"]
)
def test_an_empty_query_is_asked_as_httpx_asks_it(url: str) -> None:
    """httpx keeps the '?' of an empty query: so does the early request, or it is not taken
    (and the server sees the URL asked twice)."""
    import httpx

    early = start(url, 4, SEGMENT, 0.5)
    assert early is not None
    assert early.target.encode() == httpx.URL(url).raw_path
    early.close()


def test_the_request_is_the_engines_first() -> None:
    """The range _first_range asks for a fresh file of unknown size: one segment, or all of
    it on one connection."""
    early = start("HTTP://LocalHost:8080/a/x.whl?v=1#frag", 4, SEGMENT, 0.5)
    assert early is not None
    head = early.request().decode()
    assert head.startswith("GET /a/x.whl?v=1 HTTP/1.1\r\nHost: localhost:8080\r\n")
    assert f"\r\nRange: bytes=0-{SEGMENT - 1}\r\n" in head and head.endswith("\r\n\r\n")
    one = start("http://[::1]/x.whl", 1, SEGMENT, 0.5)
    assert one is not None
    assert "\r\nHost: [::1]\r\n" in one.request().decode()
    assert "\r\nRange: bytes=0-\r\n" in one.request().decode()
    early.close()
    one.close()


async def test_the_early_answer_is_the_first_segment(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        early = await sent(emu.url(PATH))
        dest = tmp_path / "out.whl"
        result = await download(emu.url(PATH), dest, OPTS, early=early)
        assert dest.read_bytes() == emu.content(PATH)
        assert len(gets(emu)) == result.requests  # none asked twice
        assert first_asked(emu)["range"] == f"bytes=0-{SEGMENT - 1}"
        assert early.take() is None


async def test_one_connection_takes_the_whole_file_from_the_early_answer(tmp_path: Path) -> None:
    """-n 1: the early request is open-ended and its answer is the whole file (read past h11:
    it has a Content-Length)."""
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        early = await sent(emu.url(PATH), connections=1)
        opts = Options(connections=1)
        result = await download(emu.url(PATH), tmp_path / "out.whl", opts, early=early)
        assert (tmp_path / "out.whl").read_bytes() == emu.content(PATH)
        assert result.requests == 1 and len(gets(emu)) == 1 and gets(emu)[0]["range"] == "bytes=0-"


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_an_early_answer_framed_otherwise(tmp_path: Path, framing: str) -> None:
    """A 200 without a Content-Length, chunked or ended by the close, is framed by h11."""
    body = bytes(range(256)) * 1000
    asked: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        asked.append(await stream.receive_some(4096))
        if framing == "chunked":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 70_000):
                piece = body[i : i + 70_000]
                await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
            await stream.send_all(b"0\r\n\r\n")
        else:
            await stream.send_all(b"HTTP/1.0 200 OK\r\n\r\n" + body)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/x.bin"
        early = await sent(url, connections=1)
        result = await download(url, tmp_path / "x.bin", Options(connections=1), early=early)
        assert (tmp_path / "x.bin").read_bytes() == body and result.size == len(body)
        assert len(asked) == 1  # the early request's answer was the file
        nursery.cancel_scope.cancel()


async def test_an_early_request_the_engine_would_not_send_is_closed(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        early = await sent(emu.url(PATH), segment=2 * SEGMENT)
        result = await download(emu.url(PATH), tmp_path / "out.whl", OPTS, early=early)
        assert (tmp_path / "out.whl").read_bytes() == emu.content(PATH)
        assert len(gets(emu)) == result.requests + 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault("reset", every=20_000, limit=1),  # the early answer's body cut short: resumed
        Fault("close", every=20_000, limit=1),  # (closed, not reset)
        Fault("status", status=503, retry_after="0", limit=1),  # asked again by httpx
        Fault("expire"),  # a redirect: httpx follows it
        Fault("ignore_range", limit=1),  # a 200: the whole file as one stream
    ],
    ids=lambda f: f.kind,
)
async def test_an_early_answer_is_judged_as_any_other(tmp_path: Path, fault: Fault) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=Link(faults=(fault,))) as emu:
        early = await sent(emu.url(PATH))
        dest = tmp_path / "out.whl"
        result = await download(emu.url(PATH), dest, OPTS, sha256=emu.sha256(PATH), early=early)
        assert dest.read_bytes() == emu.content(PATH)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.whl"]
        if fault.kind in ("reset", "close"):
            assert result.retries >= 1 and len(gets(emu)) == result.requests
        if fault.kind == "expire":  # the 302 was followed, not taken for an answer
            assert gets(emu)[0]["status"] == 302 and gets(emu)[1]["status"] != 302


async def test_an_early_redirect_is_followed_not_asked_again(tmp_path: Path) -> None:
    """A link that redirects once (a one-time token: asked again, 410 Gone): the early
    answer's redirect is followed from there, as httpx would have, not asked a second time."""
    body = bytes(range(256)) * 400
    asked: list[str] = []

    async def serve(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(4096)
        target = head.split(b" ")[1].decode()
        asked.append(target)
        if target == "/cdn/x.bin":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            await stream.send_all(body)
        elif asked.count(target) == 1:
            await stream.send_all(b"HTTP/1.1 302 Found\r\nLocation: /cdn/x.bin\r\n\r\n")
        else:
            await stream.send_all(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n")
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/x.bin"
        early = await sent(url)
        await download(url, tmp_path / "x.bin", OPTS, early=early)
        assert (tmp_path / "x.bin").read_bytes() == body
        assert asked == ["/x.bin", "/cdn/x.bin"]
        nursery.cancel_scope.cancel()


async def test_a_silent_server_times_the_early_head_out(tmp_path: Path) -> None:
    """A server that takes the request and says nothing: the head's timeout holds, and the
    engine asks again on a connection of its own."""
    heard: list[bytes] = []

    async def silent(stream: trio.SocketStream) -> None:
        heard.append(await stream.receive_some(4096))
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}/x.whl"
        early = await sent(url)
        opts = Options(connections=4, min_segment=SEGMENT, timeout=0.3,
                       policy=RetryPolicy(max_tries=2, base=0.01))  # fmt: skip
        with pytest.raises(SegfetchError) as failed:
            await download(url, tmp_path / "x.whl", opts, early=early)
        assert "no complete answer within 0.3 s" in str(failed.value)
        assert len(heard) == 2 and all(h.startswith(b"GET /x.whl HTTP/1.1") for h in heard)
        nursery.cancel_scope.cancel()


async def test_get_sends_its_first_request_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line's wiring: `get` starts an early request and the engine takes its
    answer (the request given time to go out, as the imports give it)."""
    from segfetch.cli import get

    def started(*args: object) -> Early | None:
        early = start(*args)  # type: ignore[arg-type]
        assert early is not None and early.sent.wait(10.0)
        return early

    taken: list[object] = []
    real_adopt = adopt.adopt

    async def recorded(*args: object) -> object:
        taken.append(await real_adopt(*args))  # type: ignore[arg-type]
        return taken[-1]

    monkeypatch.setattr(get, "start_early", started)
    monkeypatch.setattr(client, "adopt", recorded)
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        argv = ["get", emu.url(PATH), "-o", str(tmp_path / "out.whl"), "-q", "-n", "4"]
        assert await trio.to_thread.run_sync(cli.main, argv) == 0
        assert (tmp_path / "out.whl").read_bytes() == emu.content(PATH)
        assert len(taken) == 1 and taken[0] is not None
        assert first_asked(emu)["range"] == "bytes=0-262143"  # the default --min-segment's


def test_no_early_request_where_a_download_may_resume(tmp_path: Path) -> None:
    """A control file beside the destination: the engine's first request asks for what is
    missing (with If-Range), never what an early request would have asked."""
    from segfetch.cli.get import _early

    url = "http://127.0.0.1:9/a/pkg%2Dx.whl"  # (port 9: nothing listens)
    dest = tmp_path / "pkg-x.whl"
    for output in (str(tmp_path), str(dest)):
        early = _early(url, output, OPTS)
        assert early is not None
        early.close()
    (tmp_path / "pkg-x.whl.part.json").write_text("{}")
    assert _early(url, str(tmp_path), OPTS) is None and _early(url, str(dest), OPTS) is None
    assert _early("http://[::1/x.whl", None, OPTS) is None  # not a URL: check_url says so


@pytest.mark.parametrize("output", ["missing/x.bin", "missing/", "/dev/null", "d"])
async def test_a_bad_destination_sends_nothing(tmp_path: Path, output: str) -> None:
    """-o's errors come before the early request: a mistyped -o spends no one-time link."""
    (tmp_path / "d" / "x.bin").mkdir(parents=True)  # -o d: d/x.bin, a folder
    connected: list[object] = []

    async def serve(stream: trio.SocketStream) -> None:
        connected.append(stream)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/x.bin"
        proc = await segfetch("get", url, "-o", output, cwd=tmp_path)
        assert proc.returncode == 2 and one_line_error(proc)
        await trio.sleep(0.2)  # (a connection, had there been one, is accepted by now)
        assert connected == []
        nursery.cancel_scope.cancel()


async def test_an_early_request_is_closed_when_get_stops_before_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the early request went out (here the URL check made to fail; a
    Ctrl-C while the imports run is another): one line, exit 2, and the early socket closed
    (not left to the garbage collector)."""
    from segfetch.cli import get

    made: list[Early] = []

    def started(*args: object) -> Early | None:
        early = start(*args)  # type: ignore[arg-type]
        assert early is not None and early.sent.wait(10.0)
        made.append(early)
        return early

    def refused(url: str) -> str:
        raise UsageError(f"not a valid URL: {url!r}")

    monkeypatch.setattr(get, "start_early", started)
    monkeypatch.setattr(get, "check_url", refused)
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        argv = ["get", emu.url(PATH), "-o", str(tmp_path / "out.whl"), "-q"]
        assert await trio.to_thread.run_sync(cli.main, argv) == 2
        assert len(made) == 1 and made[0].take() is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_an_early_redirect_without_location_is_one_line(tmp_path: Path, status: int) -> None:
    """A 3xx without Location is no redirect (httpx's rule): an error of one line, not
    httpx's KeyError from building a redirect to nowhere."""

    async def serve(stream: trio.SocketStream) -> None:
        with trio.move_on_after(5):
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some(4096)
            await stream.send_all(b"HTTP/1.1 %d Moved\r\nContent-Length: 0\r\n\r\n" % status)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/x.bin"
        early = await sent(url)
        with pytest.raises(SegfetchError) as failed:
            await download(url, tmp_path / "x.bin", OPTS, early=early)
        assert f"answered {status}" in str(failed.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        nursery.cancel_scope.cancel()
