"""`segfetch serve`: routes, pages, ranges and streaming without sockets; then pip and uv
installing through it from the link emulator's index, over loopback only."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from helpers import file_index

from segfetch.engine.download import make_client
from segfetch.engine.options import Options
from segfetch.engine.ranges import Span
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import UsageError
from segfetch.testing.emulator import Emulator, Fault, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels import simple
from segfetch.wheels.cache import Cache
from segfetch.wheels.growing import Growing, stream
from segfetch.wheels.httpd import (
    UNSATISFIABLE,
    Cut,
    Reply,
    Request,
    basic_auth_ok,
    parse_range,
    serve_connection,
)
from segfetch.wheels.index import JSON_TYPE, IndexFile, parse_page, parse_root
from segfetch.wheels.installer import find_uv
from segfetch.wheels.localindex import IndexApp, secrets_of
from segfetch.wheels.serve import run

UV = find_uv()
SHA = "ab" * 32
FLAKY = Link(rate=4 << 20, faults=(Fault("reset", every=100_000),))
SLOW = Link(shared_rate=1 << 20)  # a 2 MB wheel takes two seconds: long enough to join midway

# -- routes, pages, negotiation: pure --------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/simple/", simple.Root()),
        ("/simple", simple.Redirect("/simple/")),
        ("/simple/sf-alpha/", simple.Page("sf-alpha")),
        ("/simple/sf-alpha/?format=x", simple.Page("sf-alpha")),
        ("/simple/SF_Alpha/", simple.Redirect("/simple/sf-alpha/")),
        ("/simple/sf-alpha", simple.Redirect("/simple/sf-alpha/")),
        (
            "/files/sf-alpha/a-1.0-py3-none-any.whl",
            simple.File("sf-alpha", "a-1.0-py3-none-any.whl"),
        ),
        (
            "/files/sf-alpha/a-1.0%2Blocal-py3-none-any.whl",
            simple.File("sf-alpha", "a-1.0+local-py3-none-any.whl"),
        ),
        ("/files/sf-alpha/a.whl.metadata", simple.File("sf-alpha", "a.whl", metadata=True)),
        ("/files/SF_Alpha/a.whl", simple.Refused(404, "not found")),  # file URLs are canonical
        ("/simple/../etc/passwd", simple.Refused(400, "a path segment that is not a plain name")),
        ("/files/sf-alpha/..", simple.Refused(400, "a path segment that is not a plain name")),
        ("/files/sf-alpha/%2e%2e", simple.Refused(400, "a path segment that is not a plain name")),
        (
            "/files/sf-alpha/..%2f..%2fx",
            simple.Refused(400, "a path segment that is not a plain name"),
        ),
        (
            "/files/sf-alpha/a%5c..%5cx",
            simple.Refused(400, "a path segment that is not a plain name"),
        ),
        (
            "/files/sf-alpha/a%00.whl",
            simple.Refused(400, "a path segment that is not a plain name"),
        ),
        ("/files/sf-alpha/%ff.whl", simple.Refused(400, "a path that is not UTF-8")),
        ("//evil/simple/", simple.Refused(400, "a path segment that is not a plain name")),
        ("http://evil/simple/x/", simple.Refused(400, "only /path request targets are served")),
        ("*", simple.Refused(400, "only /path request targets are served")),
        ("/simple/-x-/", simple.Refused(404, "not found")),  # no project name
        ("/files/sf-alpha/a/b", simple.Refused(404, "not found")),
        ("/", simple.Refused(404, "not found")),
    ],
)
def test_route(target: str, expected: simple.Route) -> None:
    assert simple.route(target) == expected


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, simple.HTML),
        ("", simple.HTML),
        # pip's and uv's own
        (f"{JSON_TYPE}, {simple.HTML_V1};q=0.1, text/html;q=0.01", JSON_TYPE),
        ("application/vnd.pypi.simple.latest+json", JSON_TYPE),
        ("text/html", simple.HTML),
        (f"text/html, {JSON_TYPE};q=0.5", simple.HTML),
        ("*/*", simple.HTML),  # a tie: HTML first, as PyPI (curl's and requests' Accept)
        (f"{JSON_TYPE}, text/html", simple.HTML),
        ("application/*;q=0.5, text/html;q=0.4", simple.HTML_V1),  # (a tie of the two)
        (f"{JSON_TYPE};q=0, */*;q=0.1", simple.HTML),
        (f"{JSON_TYPE};q=0.9, */*;q=0.1", JSON_TYPE),
        ("image/png", None),
        (f"{JSON_TYPE};q=bad", None),
        (f"{JSON_TYPE};q=nan, text/html;q=0.5", simple.HTML),
        (f"{JSON_TYPE};q=2, text/html;q=0.5", simple.HTML),
    ],
)
def test_negotiate(accept: str | None, media: str | None) -> None:
    assert simple.negotiate(accept) == media


FILES = [
    IndexFile("a-1.0-py3-none-any.whl", "https://u:p@up.example/x/a.whl", SHA, ">=3.8", None, 10),
    IndexFile("a-0.9.tar.gz", "https://up.example/a-0.9.tar.gz", None, None, "bad & old"),
    IndexFile("a-1.0+local-py3-none-any.whl", "https://up.example/y", SHA, None, ""),
]


@pytest.mark.parametrize("media", [JSON_TYPE, simple.HTML_V1, simple.HTML])
def test_page_round_trips_through_our_own_parser(media: str) -> None:
    """What the page says, as a client (segfetch's own index parser) reads it back: our
    URLs, never an upstream one, with hashes, Requires-Python, yanks and metadata."""
    page_url = "http://127.0.0.1:1/simple/a/"
    body = simple.render_page(media, "a", FILES)
    assert b"up.example" not in body and b"u:p" not in body
    got = parse_page(body, simple.content_type(media), page_url)
    ours = "http://127.0.0.1:1/files/a/"
    assert [(f.filename, f.url, f.sha256, f.requires_python, f.yanked) for f in got] == [
        ("a-1.0-py3-none-any.whl", ours + "a-1.0-py3-none-any.whl", SHA, ">=3.8", None),
        ("a-0.9.tar.gz", ours + "a-0.9.tar.gz", None, None, "bad & old"),
        ("a-1.0+local-py3-none-any.whl", ours + "a-1.0%2Blocal-py3-none-any.whl", SHA, None, ""),
    ]
    assert [f.metadata for f in got] == [True, False, True]  # wheels: from the wheel if need be
    if media == JSON_TYPE:
        doc = json.loads(body)
        # PEP 700's 1.1 asks every file's size, and the versions: 1.0 where a size is unknown
        assert doc["meta"] == {"api-version": "1.0"} and doc["name"] == "a"
        assert [f["yanked"] for f in doc["files"]] == [False, "bad & old", True]
        sized = [dataclasses.replace(f, size=10) for f in FILES]
        doc = json.loads(simple.render_page(media, "a", sized))
        assert doc["meta"] == {"api-version": "1.1"} and [f["size"] for f in doc["files"]]
        assert doc["versions"] == ["0.9", "1.0", "1.0+local"]


@pytest.mark.parametrize("media", [JSON_TYPE, simple.HTML_V1, simple.HTML])
def test_root_lists_each_valid_name_once_and_reads_back(media: str) -> None:
    """An upstream's root page is not trusted to hold names: markup or a path is dropped,
    not rendered; spellings of one project are one entry (the first)."""
    listed = ["Flask", "flask", "sf-alpha", "<script>x</script>", "../etc", "a_b.c"]
    body = simple.render_root(media, listed)
    assert b"<script>" not in body and b"../" not in body
    assert sorted(parse_root(body, simple.content_type(media), "http://h/simple/")) == [
        "Flask", "a_b.c", "sf-alpha",
    ]  # fmt: skip
    if media != JSON_TYPE:
        assert b'<a href="a-b-c/">a_b.c</a>' in body


def test_a_folder_listing_root_names_its_folders() -> None:
    """An upstream's root as nginx's autoindex writes it (a static tree): each project is a
    folder, "name/", and a name over 50 characters is cut ("..&gt;"); the names are the
    folders' (they were dropped: only projects already served were listed)."""
    long = "a-project-whose-name-is-longer-than-fifty-characters"
    rows = ['<a href="../">../</a>', '<a href="alpha/">alpha/</a>        29-Nov-2026 08:41   -']
    rows.append(f'<a href="{long}/">{long[:47]}..&gt;</a> 29-Nov-2026 08:41   -')
    body = ("<html><body><pre>" + "\r\n".join(rows) + "</pre></body></html>").encode()
    names = parse_root(body, "text/html", "http://h/simple/")
    assert names == ["..", "alpha", long]
    assert simple.render_root(JSON_TYPE, names) == simple.render_root(JSON_TYPE, ["alpha", long])


def test_unique_keeps_the_file_of_a_name_pip_takes() -> None:
    """pip takes the last of equal links: the extra index's file of a name (another
    build under one name), the later of two links on a page (a stale hash first); a
    yanked one only where all are."""
    first = IndexFile("a-1.0-py3-none-any.whl", "https://up.example/a.whl", SHA)
    extra = IndexFile("a-1.0-py3-none-any.whl", "https://extra.example/a.whl", "b" * 64)
    sdist = IndexFile("a-0.9.tar.gz", "https://up.example/a-0.9.tar.gz")
    # The other file of that name is listed too, before it, by its sha256: pip, given
    # both, takes the one its --hash names (through serve it failed where it succeeded
    # from the indexes), and else the last, as ever.
    assert simple.unique([first, sdist, extra]) == [first, extra, sdist]
    assert simple.keys([first, extra, sdist]) == [
        f"{SHA}/{first.filename}",
        extra.filename,
        sdist.filename,
    ]
    assert simple.route(f"/files/a/{SHA}/{first.filename}") == simple.File(
        "a", f"{SHA}/{first.filename}"
    )
    assert simple.route(f"/files/a/{SHA[:10]}/{first.filename}") == simple.Refused(404, "not found")
    yanked = IndexFile(extra.filename, extra.url, extra.sha256, None, "broken")
    assert simple.unique([first, yanked]) == [yanked, first]
    assert simple.unique([yanked, first]) == [yanked, first]
    again = IndexFile(first.filename, first.url, first.sha256, None, "")
    assert simple.unique([yanked, again]) == [yanked, again]
    assert simple.unique([first, again]) == [first]  # (one file: one link)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, Span(0, 10)),
        ("bytes=90-", 100, Span(90, 100)),
        ("bytes=90-1000", 100, Span(90, 100)),
        ("bytes=-10", 100, Span(90, 100)),
        ("bytes=-1000", 100, Span(0, 100)),
        (" Bytes = 5 - 5 ", 100, Span(5, 6)),
        ("bytes=100-", 100, UNSATISFIABLE),
        ("bytes=-0", 100, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=5-4", 100, None),  # malformed: ignored, the whole file
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole file
        ("items=0-1", 100, None),
        ("bytes=a-b", 100, None),
        ("bytes=-", 100, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_basic_auth_and_secrets() -> None:
    good = "Basic " + base64.b64encode(b"me:s3cret").decode()
    assert basic_auth_ok(good, "me:s3cret")
    assert not basic_auth_ok(good, "me:other")
    assert not basic_auth_ok("Bearer x", "me:s3cret")
    assert not basic_auth_ok("Basic !!!", "me:s3cret")
    assert not basic_auth_ok(None, "me:s3cret")
    urls = ["https://me:s3cret@a.example/simple/", "https://TOKEN@b.example/", "https://c.example/"]
    assert secrets_of(urls) == ["me:s3cret", "s3cret", "TOKEN"]


# -- a growing file, without sockets -----------------------------------------------------------


class Sink(Reply):
    """A reply that keeps what is sent."""

    def __init__(self) -> None:
        self.head, self.started, self.ended = False, False, False
        self.headers: dict[str, str] = {}
        self.data = b""

    async def start(self, status: int, headers: object) -> None:
        assert status == 200
        self.started = True
        self.headers = dict(headers)  # type: ignore[call-overload]

    async def body(self, data: bytes) -> None:
        self.data += data

    async def end(self) -> None:
        self.ended = True


CONTENT = bytes(range(256)) * 40  # 10240 bytes


async def _grow(
    tmp_path: Path, size: int | None, final: bytes
) -> tuple[Sink, BaseException | None]:
    """Stream a file that the "engine" writes in two steps, then finishes as ``final``."""
    part, dest = tmp_path / "f.whl.part", tmp_path / "f.whl"
    g, sink = Growing(part, size), Sink()
    error: list[BaseException] = []

    async def reader() -> None:
        try:
            await stream(g, sink)
        except (Cut, OSError) as exc:
            error.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert not sink.started or size is not None  # size unknown: nothing before a byte
        part.write_bytes(CONTENT[:4000])
        g.update(size, 4000)
        await trio.testing.wait_all_tasks_blocked()
        assert sink.data == CONTENT[:3999]  # sent as it came, less the byte held back
        part.write_bytes(final)
        part.rename(dest)
        g.finish(dest, hashlib.sha256(final).hexdigest(), len(final))
    return sink, error[0] if error else None


async def test_a_growing_file_is_sent_as_it_arrives(tmp_path: Path) -> None:
    sink, error = await _grow(tmp_path, len(CONTENT), CONTENT)
    assert error is None and sink.ended
    assert sink.data == CONTENT and sink.headers["Content-Length"] == str(len(CONTENT))


async def test_a_growing_file_of_unknown_size_is_chunked(tmp_path: Path) -> None:
    sink, error = await _grow(tmp_path, None, CONTENT)
    assert error is None and sink.data == CONTENT and "Content-Length" not in sink.headers


async def test_bytes_sent_before_a_restart_never_complete_a_wrong_file(tmp_path: Path) -> None:
    """The .part started over with other bytes (the file changed upstream): the verified
    file is not what the client got first, so its last byte never goes out."""
    other = bytes(reversed(CONTENT))
    sink, error = await _grow(tmp_path, len(CONTENT), other)
    assert isinstance(error, Cut) and not sink.ended
    assert "before the download repaired them" in str(error)  # (the server's log says it)
    assert len(sink.data) < len(CONTENT)


async def test_a_failed_download_before_any_byte_is_an_error(tmp_path: Path) -> None:
    from segfetch.errors import RetriesExhausted

    g, sink = Growing(tmp_path / "x.part", 10), Sink()
    g.fail(RetriesExhausted("gave up"))
    with pytest.raises(RetriesExhausted):
        await stream(g, sink)
    assert not sink.started


# -- over loopback: the emulator's index behind `serve` --------------------------------------


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-alpha", "1.0", requires=["sf-beta>=1"])
    make_wheel(d, "sf-beta", "1.0", payload=300_000)
    make_wheel(d, "sf-big", "1.0", payload=2_000_000)
    return d


ALPHA, BETA = "sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.0-py3-none-any.whl"
BIG = "sf_big-1.0-py3-none-any.whl"


@asynccontextmanager
async def serving(
    indexes: list[str], cache: Path, **kw: object
) -> AsyncIterator[tuple[IndexApp, str]]:
    async with make_client(8, 10) as client, trio.open_nursery() as nursery:
        app = await nursery.start(partial(run, indexes, Cache(cache), client, **kw))  # type: ignore[arg-type]
        yield app, f"http://127.0.0.1:{app.port}/simple/"
        nursery.cancel_scope.cancel()


def probes(emu: Emulator, name: str) -> int:
    """Downloads of a file: each starts with a request from byte 0."""
    return sum(1 for e in emu.log if e["path"] == f"/files/{name}" and e["start"] == 0)


async def _run(*cmd: str | Path) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(120):
        return await trio.run_process(
            [str(c) for c in cmd], capture_stdout=True, capture_stderr=True, check=False
        )


async def _uv_venv(path: Path) -> Path:
    assert UV is not None
    proc = await _run(UV, "venv", "-q", "--python", sys.executable, path)
    assert proc.returncode == 0, proc.stderr
    return path / "bin" / "python"


async def _uv_install(python: Path, url: str, *reqs: str) -> subprocess.CompletedProcess[bytes]:
    assert UV is not None
    return await _run(
        UV, "pip", "install", "--no-cache", "--python", python, "--index-url", url, *reqs
    )


async def _imports(python: Path, *modules: str) -> None:
    proc = await _run(python, "-c", f"import {', '.join(modules)}")
    assert proc.returncode == 0, proc.stderr


needs_uv = pytest.mark.skipif(UV is None, reason="uv is not installed (it is in the test extra)")


async def test_pip_installs_through_serve_over_a_flaky_link(
    tmp_path: Path, index_dir: Path
) -> None:
    venv = tmp_path / "venv"
    assert (await _run(sys.executable, "-m", "venv", venv)).returncode == 0
    python = venv / "bin" / "python"
    async with (
        Emulator(index=index_dir, link=FLAKY) as emu,
        serving([emu.index_url], tmp_path / "cache") as (_, url),
    ):
        pip: list[str | Path] = [
            python,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            url,
        ]
        proc = await _run(*pip, "sf-alpha")
        assert proc.returncode == 0, proc.stderr
    await _imports(python, "sf_alpha", "sf_beta")
    assert any(e["fault"] == "reset" for e in emu.log)  # the link did break on the way
    # pip read the metadata through serve (PEP 658), from the upstream's .metadata
    assert any(e["path"] == f"/files/{ALPHA}.metadata" for e in emu.log)


@needs_uv
async def test_two_uv_clients_at_once_share_one_download_then_the_cache_outlives_upstream(
    tmp_path: Path, index_dir: Path
) -> None:
    one, two, three = [await _uv_venv(tmp_path / n) for n in ("one", "two", "three")]
    cache = tmp_path / "cache"
    async with Emulator(index=index_dir, link=SLOW) as emu:
        async with serving([emu.index_url], cache) as (_, url):
            results = {}

            async def install(python: Path) -> None:
                results[python] = await _uv_install(python, url, "sf-alpha", "sf-big")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(install, one)
                nursery.start_soon(install, two)
            assert all(p.returncode == 0 for p in results.values()), results
        for name in (ALPHA, BETA, BIG):
            assert probes(emu, name) == 1, name
    await _imports(one, "sf_alpha", "sf_beta", "sf_big")
    await _imports(two, "sf_alpha", "sf_beta", "sf_big")
    # The upstream is gone: a fresh server on the same cache still installs (stale pages
    # and files, marked).
    said: list[str] = []
    async with serving([emu.index_url], cache, notice=said.append) as (_, url):
        proc = await _uv_install(three, url, "sf-alpha")
        assert proc.returncode == 0, proc.stderr
        async with httpx.AsyncClient(trust_env=False) as client:
            r = await client.get(url + "sf-alpha/")
            f = await client.get(url.replace("/simple/", f"/files/sf-alpha/{ALPHA}"))
        assert r.status_code == 200 and r.headers["Warning"] == '110 - "Response is Stale"'
        assert f.status_code == 200 and f.headers["Warning"] == '110 - "Response is Stale"'
    assert any(line.startswith("sf-alpha: its stored page served (stale)") for line in said), said
    await _imports(three, "sf_alpha", "sf_beta")


async def test_a_download_failing_midway_resets_the_client_and_is_said(
    tmp_path: Path, index_dir: Path
) -> None:
    """The upstream goes away while a client is streamed a file: the client's connection is
    reset (an error it cannot take for the end of the file: pip 23 would take a closed one
    for a whole, tampered file), and the server says why on its log."""
    said: list[str] = []
    quick = Options(policy=RetryPolicy(max_tries=1, base=0.01))
    stop = trio.Event()

    async def upstream(*, task_status: trio.TaskStatus[Emulator]) -> None:
        async with Emulator(index=index_dir, link=SLOW) as emu:
            task_status.started(emu)
            await stop.wait()

    async with trio.open_nursery() as nursery:
        emu = await nursery.start(upstream)
        async with serving([emu.index_url], tmp_path / "c", options=quick, notice=said.append) as (
            app,
            _,
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", app.port)
            ask = f"GET /files/sf-big/{BIG} HTTP/1.1\r\nHost: x\r\n\r\n"
            await stream.send_all(ask.encode())
            with trio.fail_after(30):
                assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
            stop.set()  # the upstream goes away midway
            with trio.fail_after(30), pytest.raises(trio.BrokenResourceError):
                while await stream.receive_some(65536):
                    pass
            await stream.aclose()
    assert any(f"/files/sf-big/{BIG} (cut short)" in line for line in said), said


async def test_a_client_leaving_midway_cancels_nothing(tmp_path: Path, index_dir: Path) -> None:
    """The first bytes reach a client while the engine still downloads (no verified file
    yet); that client leaves; another, come meanwhile, gets the whole file from the same
    download."""
    cache = tmp_path / "cache"
    data = (index_dir / BIG).read_bytes()
    final = Cache(cache).path(hashlib.sha256(data).hexdigest(), BIG)
    async with (
        Emulator(index=index_dir, link=SLOW) as emu,
        serving([emu.index_url], cache) as (_, url),
    ):
        file_url = url.replace("/simple/", f"/files/sf-big/{BIG}")
        async with httpx.AsyncClient(trust_env=False) as a, httpx.AsyncClient(trust_env=False) as b:
            assert (await a.get(url + "sf-big/")).status_code == 200
            async with a.stream("GET", file_url) as first:
                assert first.headers["Content-Length"] == str(len(data))
                chunk = await first.aiter_raw().__anext__()
                assert chunk == data[: len(chunk)] and not final.exists()  # streamed
                with trio.fail_after(30):
                    async with b.stream("GET", file_url) as second:
                        pieces = second.aiter_raw()
                        got = chunk[:0]
                        while len(got) < len(data) // 4:
                            got += await anext(pieces)
                        await first.aclose()  # the first client leaves; the second carries on
                        async for piece in pieces:
                            got += piece
        assert got == data and final.read_bytes() == data
    assert probes(emu, BIG) == 1


OK = b"HTTP/1.1 200 OK"


async def _raw(port: int, request: bytes) -> bytes:
    """The status line of the answer to raw request bytes."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            answer = b""
            while b"\r\n" not in answer:
                got = await stream.receive_some(4096)
                if not got:
                    break
                answer += got
    return answer.split(b"\r\n")[0]


HOSTILE = [
    (b"GET ../ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /simple/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /files/sf-alpha/%2e%2e%2f%2e%2e%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /files/sf-alpha/..%5C..%5Cwin.ini HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET http://evil.example/simple/sf-alpha/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400),
    (b"GET http://127.0.0.1:1/files/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405),
    (b"POST /simple/sf-alpha/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
    (b"PUT /files/sf-alpha/x.whl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 405),
    (b"GET /simple/sf-alpha/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
    (b"GET /simple/sf-alpha/ HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n", 431),
    (b"GARBAGE\r\n\r\n", 400),
]


async def test_hostile_requests_get_4xx_and_never_reach_upstream(
    tmp_path: Path, index_dir: Path
) -> None:
    async with (
        Emulator(index=index_dir) as emu,
        serving([emu.index_url], tmp_path / "c") as (app, _),
    ):
        for request, status in HOSTILE:
            line = await _raw(app.port, request)
            assert line.startswith(b"HTTP/1.1 %d " % status), (request[:60], line)
        assert emu.log == []
        # and the server still answers (the root list is the upstream's)
        assert (await _raw(app.port, b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")).endswith(
            b"200 OK"
        )
    assert [e["path"] for e in emu.log] == ["/simple/"]


async def test_upstream_credentials_never_reach_clients(tmp_path: Path, index_dir: Path) -> None:
    seen = []
    async with Emulator(index=index_dir) as emu:
        upstream = emu.index_url.replace("http://", "http://me:s3cret@")
        async with (
            serving([upstream], tmp_path / "c") as (_, url),
            httpx.AsyncClient(trust_env=False) as client,
        ):
            for path in ("sf-alpha/", "nothing-here/", "sf-alpha/?x", ""):
                seen.append(await client.get(url + path))
            for accept in (JSON_TYPE, "text/html"):
                seen.append(await client.get(url + "sf-alpha/", headers={"Accept": accept}))
            seen.append(await client.get(url.replace("/simple/", f"/files/sf-alpha/{ALPHA}")))
    # An upstream that cannot be reached (nothing listens on port 1): the error says which.
    dead = "http://me:s3cret@127.0.0.1:1/simple/"
    async with (
        serving([dead], tmp_path / "d") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        seen.append(await client.get(url + "sf-beta/"))
    assert [r.status_code for r in seen] == [200, 404, 200, 200, 200, 200, 200, 502]
    assert ALPHA in seen[0].text and "127.0.0.1:1" in seen[-1].text
    for r in seen:
        text = r.text + "".join(f"{k}: {v}\n" for k, v in r.headers.items())
        assert "s3cret" not in text and "me:" not in text, text


async def test_ranges_head_and_auth(tmp_path: Path, index_dir: Path) -> None:
    data = (index_dir / BETA).read_bytes()
    auth = httpx.BasicAuth("reader", "pw")
    async with (
        Emulator(index=index_dir) as emu,
        serving([emu.index_url], tmp_path / "c", auth="reader:pw") as (_, url),
    ):
        file_url = url.replace("/simple/", f"/files/sf-beta/{BETA}")
        async with httpx.AsyncClient(trust_env=False) as client:
            r = await client.get(url + "sf-beta/")
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
            r = await client.get(url + "sf-beta/", auth=httpx.BasicAuth("reader", "nope"))
            assert r.status_code == 401
            # Not fetched yet: the range alone is relayed from the upstream, as uv reads a
            # wheel's METADATA (it waited for the whole file: past uv's timeout, and the
            # whole wheel crossed the uplink for a dry run).
            for asked, got in (
                ("bytes=10-19", (10, 19)),
                ("bytes=-5", (len(data) - 5, len(data) - 1)),
            ):
                r = await client.get(file_url, auth=auth, headers={"Range": asked})
                assert (r.status_code, r.content) == (206, data[got[0] : got[1] + 1])
                assert r.headers["Content-Range"] == f"bytes {got[0]}-{got[1]}/{len(data)}"
            assert probes(emu, BETA) == 0  # (no download of the file began)
            assert (await client.get(file_url, auth=auth)).content == data  # now cached
            etag = (await client.get(file_url, auth=auth)).headers["ETag"]  # (the sha256)
            # a client's HTTP cache that holds it: a 304 (it got all of it again)
            for held in (etag, f'"x", W/{etag}'):
                r = await client.get(file_url, auth=auth, headers={"If-None-Match": held})
                assert (r.status_code, r.content) == (304, b"")
            r = await client.get(file_url, auth=auth, headers={"If-None-Match": '"other"'})
            assert (r.status_code, r.content) == (200, data)
            r = await client.get(file_url, auth=auth, headers={"Range": "bytes=10-19"})
            assert (r.status_code, r.content) == (206, data[10:20])  # (from the cache)
            assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
            r = await client.get(file_url, auth=auth, headers={"Range": f"bytes={len(data)}-"})
            assert (r.status_code, r.headers["Content-Range"]) == (416, f"bytes */{len(data)}")
            etag = r.headers.get("ETag")
            r = await client.get(
                file_url, auth=auth, headers={"Range": "bytes=0-0", "If-Range": '"other"'}
            )
            assert (r.status_code, r.content) == (200, data)  # another version's range: all
            r = await client.head(file_url, auth=auth)
            assert (r.status_code, r.content) == (200, b"")
            assert r.headers["Content-Length"] == str(len(data)) and etag is None
            meta = await client.get(file_url + ".metadata", auth=auth)
            assert meta.status_code == 200 and b"Name: sf-beta" in meta.content
    assert probes(emu, BETA) == 1


async def test_cli_serves_pips_index_prints_the_url_and_stops_cleanly_on_sigterm(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Emulator(index=index_dir) as emu:
        conf = tmp_path / "pip.conf"  # no --index-url: pip's own setting, as install takes it
        # a local mirror (file:, as this machine's pip.conf has one) served from disk, and
        # an index of a kind segfetch does not read: passed over, and said
        mirror = file_index(tmp_path / "mirror", make_wheel(tmp_path, "fi-c", "1.0"))
        extras = f"ftp://nowhere/simple {mirror}"
        conf.write_text(f"[global]\nindex-url = {emu.index_url}\nextra-index-url = {extras}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
        cmd = [sys.executable, "-m", "segfetch", "serve", "--port", "0",
               "--cache-dir", str(tmp_path / "c")]  # fmt: skip
        proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            out = b""
            with trio.fail_after(30):
                while out.count(b"\n") < 2 and (got := await proc.stdout.receive_some(4096)):
                    out += got
            url = out.decode().splitlines()[0]
            assert url.startswith("http://127.0.0.1:") and url.endswith("/simple/")
            assert f"PIP_INDEX_URL={url}" in out.decode() and f"UV_INDEX_URL={url}" in out.decode()
            async with httpx.AsyncClient(trust_env=False) as client:
                r = await client.get(url + "sf-alpha/", headers={"Accept": JSON_TYPE})
                assert r.status_code == 200 and r.json()["name"] == "sf-alpha"
                page = await client.get(url + "fi-c/", headers={"Accept": JSON_TYPE})
                (entry,) = page.json()["files"]
                wheel = await client.get(httpx.URL(url).join(entry["url"]))
            kept = tmp_path / "mirror" / "files" / "fi_c-1.0-py3-none-any.whl"
            assert wheel.status_code == 200 and wheel.content == kept.read_bytes()
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                assert await proc.wait() == 0
            err = (await proc.stderr.receive_some(65536)).decode()
        finally:
            proc.kill()
    assert "Traceback" not in err and "stopped" in err, err
    assert "ftp://nowhere/simple is not an http(s) or file: index; not served" in err, err


def test_an_index_from_pips_settings_is_reached_with_pips_network_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve took pip's index-url but not its cert, proxy, client-cert or trusted-host: an
    https index behind a company CA failed every page. Named with --index-url, the
    environment's alone (SSL_CERT_FILE, HTTP(S)_PROXY), as before."""
    from argparse import Namespace

    from segfetch.cli.serve import _indexes

    conf = tmp_path / "pip.conf"
    ca = tmp_path / "ca.pem"
    conf.write_text(
        f"[global]\nindex-url = https://idx.example/simple\ncert = {ca}\n"
        "proxy = http://127.0.0.1:3128\ntrusted-host = other.example\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for name in ("PIP_CERT", "PIP_PROXY", "PIP_TRUSTED_HOST", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    urls, network = _indexes(Namespace(index_url=None, extra_index_url=[]))
    assert urls[0] == "https://idx.example/simple" and network is not None
    assert network.cafile == str(ca) and network.proxy == "http://127.0.0.1:3128"
    assert network.insecure == ("other.example",)
    given = Namespace(index_url="https://idx.example/simple", extra_index_url=[])
    assert _indexes(given) == (["https://idx.example/simple"], None)


def test_pips_index_setting_it_cannot_serve_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip's index-url that is no index, or a config file pip cannot load: one line. serve
    warned and served the public index in its place."""
    from argparse import Namespace

    from segfetch.cli.serve import _indexes

    conf = tmp_path / "pip.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    given = Namespace(index_url=None, extra_index_url=[])
    for text, words in (
        ("[global]\nindex-url = notaurl\n", "pip's index-url setting notaurl is not an http"),
        ("[global]\nindex-url = http://127.0.0.1:9/\n[[[bad\n", "cannot be loaded ("),
    ):
        conf.write_text(text)
        with pytest.raises(UsageError, match=re.escape(words)):
            _indexes(given)


async def test_cli_refuses_a_bad_option(tmp_path: Path) -> None:
    from helpers import one_line_error, segfetch

    for url in ("ftp://x/simple/", "http://", "https:///simple/", "file://elsewhere/simple"):
        proc = await segfetch("serve", "--index-url", url, "--port", "0")
        said = one_line_error(proc)
        assert proc.returncode == 2 and "not an http(s) URL with a host, or a file:" in said, url
    with socket.socket() as taken:  # a port in use: one line naming it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await segfetch("serve", "--index-url", "http://127.0.0.1:1/", "--port", str(port))
        assert proc.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}: " in one_line_error(proc)
    for args, says in [
        (["--auth", "nopassword"], "USER:PASS"),
        (["--port", "70000"], "--port must be"),
        (["--max-clients", "0"], "--max-clients must be"),
        (["--max-connections", "0"], "--max-connections must be"),
        (["--timeout", "soon"], "--timeout"),
        (["--cache-dir", "/proc/x"], "cannot use the cache folder '/proc/x'"),
    ]:
        proc = await segfetch("serve", "--index-url", "http://127.0.0.1:1/simple/", *args)
        assert proc.returncode == 2 and says in one_line_error(proc), args


async def test_root_lists_the_upstreams_projects_and_outlives_it(
    tmp_path: Path, index_dir: Path
) -> None:
    """A client that looks a project up in the root list first (proxpi does) finds every
    project the upstream has, not only those asked for; with the upstream gone, the list
    it last gave."""
    accept = {"Accept": JSON_TYPE}
    async with Emulator(index=index_dir) as emu:
        async with (
            serving([emu.index_url], tmp_path / "c") as (_, url),
            httpx.AsyncClient(trust_env=False) as client,
        ):
            doc = (await client.get(url, headers=accept)).json()
        index_url = emu.index_url
    assert sorted(p["name"] for p in doc["projects"]) == ["sf-alpha", "sf-beta", "sf-big"]
    async with (
        serving([index_url], tmp_path / "c") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        html = (await client.get(url, headers={"Accept": "text/html"})).text
    assert all(f'<a href="{n}/">' in html for n in ("sf-alpha", "sf-beta", "sf-big"))


async def test_root_of_an_upstream_that_never_answered_is_an_error_not_an_empty_list(
    tmp_path: Path, index_dir: Path
) -> None:
    """With no index answering and no list stored, an empty list with a 200 would tell a
    client (proxpi caches it) that no project exists: it gets a 502 instead, and the list
    once the upstream is back. A second index that fails is left out, and said."""
    lines: list[str] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/simple/"  # bound, not listening
        async with (
            serving([dead], tmp_path / "c", notice=lines.append) as (_, url),
            httpx.AsyncClient(trust_env=False) as client,
        ):
            down = await client.get(url, headers={"Accept": JSON_TYPE})
        async with (
            Emulator(index=index_dir) as emu,
            serving([emu.index_url, dead], tmp_path / "c", notice=lines.append) as (_, url),
            httpx.AsyncClient(trust_env=False) as client,
        ):
            doc = (await client.get(url, headers={"Accept": JSON_TYPE})).json()
    assert down.status_code == 502 and "127.0.0.1" in down.text
    assert sorted(p["name"] for p in doc["projects"]) == ["sf-alpha", "sf-beta", "sf-big"]
    assert sum("project list: an index left out" in line for line in lines) == 1


async def test_clients_asking_for_one_page_at_once_share_one_upstream_request(
    tmp_path: Path, index_dir: Path
) -> None:
    """The first request opens the upstream connection (an rtt of 1 s); the others come
    while it is under way and wait for the same answer."""
    async with (
        Emulator(index=index_dir, link=Link(rtt=1.0)) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        bodies: list[bytes] = []

        async def ask() -> None:
            bodies.append((await client.get(url + "sf-alpha/")).content)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            with trio.fail_after(10):
                while not emu.open_connections:  # the first request reached upstream
                    await trio.sleep(0.01)
            for _ in range(4):
                nursery.start_soon(ask)
    assert len(bodies) == 5 and len(set(bodies)) == 1 and ALPHA.encode() in bodies[0]
    assert [e["path"] for e in emu.log] == ["/simple/sf-alpha/"]


async def test_requests_beyond_the_limit_wait_their_turn(tmp_path: Path, index_dir: Path) -> None:
    """--max-clients counts files under way: one beyond waits (never refused) until a
    place frees, while a page is answered at once (test_serve_once.py). A kept-alive
    connection between requests holds none (pip's and uv's pools keep many open)."""
    async with (
        Emulator(index=index_dir, link=SLOW) as emu,
        serving([emu.index_url], tmp_path / "c", max_clients=1) as (app, _),
    ):
        idle = await trio.open_tcp_stream("127.0.0.1", app.port)  # holds no place
        assert await _raw(app.port, b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n") == OK
        await _raw(app.port, b"GET /simple/sf-big/ HTTP/1.1\r\nHost: x\r\n\r\n")
        busy = await trio.open_tcp_stream("127.0.0.1", app.port)  # a 2 s download: the place
        await busy.send_all(f"GET /files/sf-big/{BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await busy.receive_some(100)
        answered: list[bytes] = []

        async def ask() -> None:
            asking = f"GET /files/sf-big/{BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            answered.append(await _raw(app.port, asking))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await trio.sleep(0.5)
            assert answered == []  # waiting, not refused
            await busy.aclose()
        await idle.aclose()
        assert answered == [OK]


async def test_metadata_from_the_wheel_where_upstream_has_none(
    tmp_path: Path, index_dir: Path
) -> None:
    """A .metadata is advertised only where the upstream has one: else it would come from
    the whole wheel, the client's request silent meanwhile (a 40 MB wheel at 300 KB/s:
    uv gave up after 128 s, pip --timeout 10 with a traceback). Asked for all the same,
    the wheel is fetched (once, into the cache) and its METADATA read; the wheel asked
    for next comes from the cache."""
    data = (index_dir / BETA).read_bytes()
    no_meta = IndexOptions(metadata=False, advertise_metadata=False)
    async with (
        Emulator(index=index_dir, index_options=no_meta) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        page = (await client.get(url + "sf-beta/", headers={"Accept": JSON_TYPE})).json()
        assert page["files"][0]["core-metadata"] is False
        assert b"metadata" not in (await client.get(url + "sf-beta/")).content
        file_url = url.replace("/simple/", f"/files/sf-beta/{BETA}")
        meta = await client.get(file_url + ".metadata")
        assert meta.status_code == 200 and b"Name: sf-beta" in meta.content
        assert (await client.get(file_url)).content == data
    assert probes(emu, BETA) == 1
    assert [e["status"] for e in emu.log if e["path"] == f"/files/{BETA}.metadata"] == [404]


async def test_metadata_the_upstream_advertises_is_advertised(
    tmp_path: Path, index_dir: Path
) -> None:
    async with (
        Emulator(index=index_dir) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        page = (await client.get(url + "sf-beta/", headers={"Accept": JSON_TYPE})).json()
        assert page["files"][0]["core-metadata"] is True
        assert b'data-core-metadata="true"' in (await client.get(url + "sf-beta/")).content


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("build-cache.lan", False)],
)  # fmt: skip
def test_only_a_non_loopback_host_is_warned_about(host: str, loopback: bool) -> None:
    from segfetch.cli.serve import _loopback

    assert _loopback(host) is loopback


async def test_a_client_that_never_finishes_its_request_is_let_go(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow or idle client (a slow loris) holds its place only so long."""

    async def handler(request: Request, reply: Reply) -> None:
        raise AssertionError("no request was complete")

    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    with trio.fail_after(60):
        await serve_connection(server, handler, head_timeout=5)
    assert await client.receive_some() == b""  # closed, nothing answered


async def test_a_cache_that_cannot_be_written_fails_the_request_not_the_server(
    tmp_path: Path, index_dir: Path
) -> None:
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "sha256").write_text("a file where the cache wants a folder")
    async with (
        Emulator(index=index_dir) as emu,
        serving([emu.index_url], cache) as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        r = await client.get(url.replace("/simple/", f"/files/sf-beta/{BETA}"))
        assert r.status_code == 500 and "Traceback" not in r.text
        assert (await client.get(url + "sf-beta/")).status_code == 200  # still serving


def test_a_stop_while_asking_pip_for_the_index_is_a_clean_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: Ctrl-C or SIGTERM stops serve (exit 0). Asking pip for its index takes seconds
    (a subprocess); a SIGTERM then (docker stop) exited 143 with '... again to resume'."""
    from segfetch.cli import running
    from segfetch.cli.main import main
    from segfetch.wheels import target

    def stopped() -> None:
        raise running.Terminated(signal.SIGTERM)

    monkeypatch.setattr(target, "pip_config_listing", stopped)
    assert main(["serve", "--port", "0", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == "segfetch: serve stopped\n"


async def test_a_file_failing_its_sha256_is_not_fetched_again_for_each_request(
    tmp_path: Path, index_dir: Path
) -> None:
    """Bytes that fail the page's sha256 crossed the uplink for nothing: a request soon
    after (a client's own retry, another builder) hears why at once (a 409), not after the
    same bytes crossed again. Seen: one `uv pip install` fetched such a file 16 times."""
    data = (index_dir / BETA).read_bytes()
    other = {f"/files/{BETA}": data[:-1] + bytes([data[-1] ^ 1])}  # its size, another sha256
    lines: list[str] = []
    async with (
        Emulator(index=index_dir, files=other) as emu,
        serving([emu.index_url], tmp_path / "c", notice=lines.append) as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        file_url = url.replace("/simple/", f"/files/sf-beta/{BETA}")
        with pytest.raises(httpx.HTTPError):  # streamed, then cut: never the wrong file whole
            await client.get(file_url)
        fetched = probes(emu, BETA)
        again = await client.get(file_url)
        assert again.status_code == 409  # (not a 5xx, which pip and uv retry)
        assert "sha256 mismatch" in again.text and "not fetched again" in again.text
        assert probes(emu, BETA) == fetched


async def test_a_file_the_upstream_keeps_failing_is_not_asked_again_for_each_request(
    tmp_path: Path, index_dir: Path
) -> None:
    """The upstream answers 500 for a file: a request soon after (pip and uv retry a 502
    five times) hears why at once, not after serve's tries crossed the link again. Seen:
    pip waited 2 minutes, and the upstream had 53 requests for the file."""
    link = Link(faults=(Fault("status", status=500, retry_after=None),))
    quick = Options(policy=RetryPolicy(max_tries=2, base=0.01))
    async with (
        Emulator(index=index_dir, link=link) as emu,
        serving([emu.index_url], tmp_path / "c", options=quick) as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        assert (await client.get(url + "sf-beta/")).status_code == 200
        file_url = url.replace("/simple/", f"/files/sf-beta/{BETA}")
        with contextlib.suppress(httpx.HTTPError):  # a 502, or its stream cut short
            assert (await client.get(file_url)).status_code == 502
        asked = len([e for e in emu.log if e["path"] == f"/files/{BETA}"])
        again = await client.get(file_url)
        assert again.status_code == 502 and "not asked again for 30 s" in again.text
        assert len([e for e in emu.log if e["path"] == f"/files/{BETA}"]) == asked > 0


async def test_a_page_the_upstream_fails_with_5xx_rests_before_it_is_asked_again(
    tmp_path: Path,
) -> None:
    """Each client request of a page the upstream answers 500 cost serve's 5 tries, and
    pip and uv retry a 502: 20 upstream requests for one uv run. The page now rests, as
    a file that failed does: a retry within the rest hears the 502 at once."""
    asked: list[bytes] = []

    async def upstream(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head and (data := await stream.receive_some(4096)):
            head += data
        asked.append(head)
        await stream.send_all(
            b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, upstream, 0, host="127.0.0.1"))
        index = f"http://127.0.0.1:{listener.socket.getsockname()[1]}/simple/"
        async with (
            serving([index], tmp_path / "c") as (_, url),
            httpx.AsyncClient(trust_env=False, timeout=60) as client,
        ):
            assert (await client.get(url + "sf-gone/")).status_code == 502
            tries = len(asked)
            assert tries > 1
            assert (await client.get(url + "sf-gone/")).status_code == 502
            assert len(asked) == tries  # not asked again within the rest
        nursery.cancel_scope.cancel()


async def test_a_range_the_upstream_does_not_give_comes_from_the_verified_file(
    tmp_path: Path, index_dir: Path
) -> None:
    """An upstream that ignores ranges (a 200 of all of it): nothing of that answer is
    relayed; the range is sent once the file is fetched and verified, as before."""
    data = (index_dir / BETA).read_bytes()
    link = Link(faults=(Fault("ignore_range"),))
    async with (
        Emulator(index=index_dir, link=link) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        file_url = url.replace("/simple/", f"/files/sf-beta/{BETA}")
        r = await client.get(file_url, headers={"Range": "bytes=10-19"})
        assert (r.status_code, r.content) == (206, data[10:20])
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        asked = len(emu.log)
        assert (await client.get(file_url)).content == data  # (fetched for it: cached)
        assert len(emu.log) == asked


@pytest.mark.parametrize("which", [0, 1])
async def test_two_indexes_with_other_bytes_under_one_name_both_reach_pip(
    tmp_path: Path, which: int
) -> None:
    """The index and the extra index list one file name with other bytes: serve listed
    the extra index's alone, so pip with a --hash of the index's failed through serve
    where it installs from the two indexes. Both are listed now; pip takes the one its
    --hash names."""
    wheels = [
        make_wheel(tmp_path / f"i{i}", "sf-twin", "1.0", payload=20_000, seed=10 + i)
        for i in (0, 1)
    ]
    assert wheels[0].name == wheels[1].name and wheels[0].read_bytes() != wheels[1].read_bytes()
    venv = tmp_path / "venv"
    assert (await _run(sys.executable, "-m", "venv", venv)).returncode == 0
    req = tmp_path / "req.txt"
    sha = hashlib.sha256(wheels[which].read_bytes()).hexdigest()
    req.write_text(f"sf-twin==1.0 --hash=sha256:{sha}\n")
    async with (
        Emulator(index=tmp_path / "i0") as one,
        Emulator(index=tmp_path / "i1") as two,
        serving([one.index_url, two.index_url], tmp_path / "cache") as (_, url),
    ):
        pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
        proc = await _run(*pip, "--no-cache-dir", "--index-url", url, "-r", req)
        assert proc.returncode == 0, proc.stderr
        asked = [e["path"] for e in (one, two)[which].log if str(e["path"]).endswith(".whl")]
    assert asked  # (the file its hash names came from its own index)


async def test_a_page_a_client_holds_is_a_304(tmp_path: Path, index_dir: Path) -> None:
    """Pages carried no ETag: a client's HTTP cache (pip's, uv's) got each page whole again
    on every revalidation. Each page and media type has its own now; naming it, a 304."""
    async with (
        Emulator(index=index_dir) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
        httpx.AsyncClient(trust_env=False) as client,
    ):
        html_page = await client.get(url + "sf-beta/")
        json_page = await client.get(url + "sf-beta/", headers={"Accept": JSON_TYPE})
        tags = html_page.headers["ETag"], json_page.headers["ETag"]
        assert tags[0] != tags[1]
        again = await client.get(url + "sf-beta/", headers={"If-None-Match": tags[0]})
        assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", tags[0])
        other = await client.get(url + "sf-beta/", headers={"If-None-Match": tags[1]})
        assert (other.status_code, other.content) == (200, html_page.content)
