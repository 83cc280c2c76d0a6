"""Index pages honest with bandwidth: asked for compressed, kept in a page cache and
revalidated (or not asked for at all while fresh), no page at all for a hashed set that is
all in the cache, and a missing ``.metadata`` asked for once a run.

The emulator's index sends no ETag, Cache-Control or gzip, so the pages here come through
``PageServer``: a small h11 front on loopback that serves the emulator's pages as a real
index does (gzip when asked, ETag, Last-Modified, Cache-Control) and logs each request
with its headers and the bytes of body it put on the wire. The files stay the emulator's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from pathlib import Path

import h11
import httpx
import pytest
import trio
from helpers import segfetch
from packaging.version import Version

from segfetch.engine.client import make_client
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import RetriesExhausted
from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel, metadata_of
from segfetch.wheels.cache import Cache
from segfetch.wheels.index import JSON_TYPE, fetch_project, project_url
from segfetch.wheels.install import Session
from segfetch.wheels.pages import Page, PageCache, cache_control, page_of
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.target import Target

TARGET = Target(Version("3.11.7"), ("cp311-cp311-linux_x86_64", "py3-none-any"), {})
BETA = "sf_beta-1.1-py3-none-any.whl"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-alpha", "1.0", requires=["sf-beta>=1"])
    for i, version in enumerate(("1.0", "1.1")):
        make_wheel(d, "sf-beta", version, payload=50_000, seed=i)
    return d


@dataclass
class Served:
    body: bytes
    content_type: str = JSON_TYPE
    etag: str | None = '"v1"'
    last_modified: str | None = None
    cache_control: str | None = None
    age: str | None = None
    dated: bool = True  # a Date header


@dataclass
class PageServer:
    """Project pages at /simple/<name>/, served as a real index serves them."""

    pages: dict[str, Served] = field(default_factory=dict)
    log: list[dict[str, object]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request: h11.Request | None = None
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        return
                assert request is not None
                await stream.send_all(self._answer(conn, request))
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        finally:
            await stream.aclose()

    def _answer(self, conn: h11.Connection, request: h11.Request) -> bytes:
        path = request.target.decode()
        asked = {k.decode().lower(): v.decode() for k, v in request.headers}
        page = self.pages.get(path)
        status, headers, body = 404, [("Content-Type", "text/plain")], b"not found"
        if page is not None:
            headers = [("Vary", "Accept, Accept-Encoding")]
            if page.dated:  # (as every real server: pip's cache never takes a page fresh without)
                headers.append(("Date", formatdate(usegmt=True)))
            for name, value in (
                ("ETag", page.etag),
                ("Last-Modified", page.last_modified),
                ("Cache-Control", page.cache_control),
                ("Age", page.age),
            ):
                if value is not None:
                    headers.append((name, value))
            if (page.etag and asked.get("if-none-match") == page.etag) or (
                page.last_modified and asked.get("if-modified-since") == page.last_modified
            ):
                status, body = 304, b""
            else:
                status, body = 200, page.body
                headers.append(("Content-Type", page.content_type))
                if "gzip" in asked.get("accept-encoding", ""):
                    body = gzip.compress(body, mtime=0)
                    headers.append(("Content-Encoding", "gzip"))
        self.log.append({"path": path, "headers": asked, "status": status, "wire": len(body)})
        headers.append(("Content-Length", str(len(body))))
        out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        if body:
            out += conn.send(h11.Data(data=body)) or b""
        return out + (conn.send(h11.EndOfMessage()) or b"")


@pytest.fixture
async def served(index_dir: Path) -> AsyncIterator[tuple[Emulator, PageServer]]:
    """The emulator (files, absolute URLs on its pages) and a PageServer with its pages."""
    options = IndexOptions(absolute_urls=True)
    async with Emulator(index=index_dir, link=Link(), index_options=options) as emu:
        server = PageServer()
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
            await nursery.start(server.serve)
            for name in ("sf-alpha", "sf-beta"):
                r = await client.get(f"{emu.index_url}{name}/", headers={"Accept": JSON_TYPE})
                server.pages[f"/simple/{name}/"] = Served(r.content)
            yield emu, server
            nursery.cancel_scope.cancel()


def session(client: httpx.AsyncClient, cache: Path, index: str) -> Session:
    return Session(client, Cache(cache), [index], budget=4)


def pages_asked(server: PageServer) -> list[dict[str, object]]:
    return [e for e in server.log if str(e["path"]).startswith("/simple/")]


def headers_of(entry: dict[str, object]) -> dict[str, str]:
    h = entry["headers"]
    assert isinstance(h, dict)
    return h


# -- compressed pages ------------------------------------------------------------------------


async def test_pages_are_asked_compressed_and_files_are_not(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    emu, server = served
    page = server.pages["/simple/sf-beta/"]
    doc = json.loads(page.body)  # a long page, as real ones are: 100 older releases
    f = doc["files"][0]
    for i in range(100):
        name, sha = f"sf_beta-0.{i}-py3-none-any.whl", _digest(str(i).encode())
        url = f["url"].rsplit("/", 1)[0] + f"/{name}#sha256={sha}"
        doc["files"].append({**f, "filename": name, "url": url, "hashes": {"sha256": sha}})
    page.body = json.dumps(doc).encode()
    async with make_client(4, 30) as client:
        s = session(client, tmp_path / "cache", server.url)
        files = await s.project("sf-beta")
        [p] = await s.plan_pinned(_reqs("sf-beta==1.1"), TARGET)
        await s.fetch(p)
    assert {f.filename for f in files} >= {BETA}
    [asked] = pages_asked(server)
    assert headers_of(asked)["accept-encoding"] == "gzip"
    wire = asked["wire"]
    assert isinstance(wire, int) and wire * 2 < len(page.body)
    assert [e["range"] for e in emu.log if e["path"] == f"/files/{BETA}"]  # ranges, identity


# -- the page cache --------------------------------------------------------------------------


async def test_a_warm_run_revalidates_instead_of_fetching_again(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    _, server = served
    server.pages["/simple/sf-beta/"] = replace(
        server.pages["/simple/sf-beta/"], last_modified="Tue, 01 Sep 2026 10:00:00 GMT"
    )
    async with make_client(4, 30) as client:
        cold = await session(client, tmp_path / "cache", server.url).project("sf-beta")
        seen = len(server.log)
        warm = await session(client, tmp_path / "cache", server.url).project("sf-beta")
    assert warm == cold
    [again] = server.log[seen:]
    assert again["status"] == 304 and again["wire"] == 0
    assert headers_of(again)["if-none-match"] == '"v1"'
    assert headers_of(again)["if-modified-since"] == "Tue, 01 Sep 2026 10:00:00 GMT"


async def test_a_changed_page_replaces_the_stored_one(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    _, server = served
    old = server.pages["/simple/sf-beta/"]
    doc = json.loads(old.body)
    doc["files"] = [f for f in doc["files"] if f["filename"] != BETA]
    server.pages["/simple/sf-beta/"] = Served(json.dumps(doc).encode(), etag='"v0"')
    async with make_client(4, 30) as client:
        before = await session(client, tmp_path / "cache", server.url).project("sf-beta")
        server.pages["/simple/sf-beta/"] = old  # a release: a new page, a new ETag
        after = await session(client, tmp_path / "cache", server.url).project("sf-beta")
        stored = await session(client, tmp_path / "cache", server.url).project("sf-beta")
    assert BETA not in {f.filename for f in before}
    assert BETA in {f.filename for f in after} and stored == after
    assert [e["status"] for e in server.log] == [200, 200, 304]
    assert headers_of(server.log[1])["if-none-match"] == '"v0"'


async def test_a_fresh_page_is_not_asked_for(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    _, server = served
    beta = server.pages["/simple/sf-beta/"]
    server.pages["/simple/sf-beta/"] = replace(beta, cache_control="max-age=600, public")
    async with make_client(4, 30) as client:
        cold = await session(client, tmp_path / "cache", server.url).project("sf-beta")
        warm = await session(client, tmp_path / "cache", server.url).project("sf-beta")
        assert warm == cold and len(server.log) == 1
        # A page that came 600 s old out of a CDN's cache is stale at once: revalidated.
        server.pages["/simple/sf-beta/"] = replace(beta, cache_control="max-age=600", age="600")
        await session(client, tmp_path / "other", server.url).project("sf-beta")
        await session(client, tmp_path / "other", server.url).project("sf-beta")
    assert [e["status"] for e in server.log] == [200, 200, 304]


async def test_a_pin_newer_than_a_fresh_page_asks_the_index_again(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    _, server = served
    new = server.pages["/simple/sf-beta/"]
    doc = json.loads(new.body)
    doc["files"] = [f for f in doc["files"] if f["filename"] != BETA]
    server.pages["/simple/sf-beta/"] = Served(json.dumps(doc).encode(), cache_control="max-age=600")
    async with make_client(4, 30) as client:
        await session(client, tmp_path / "cache", server.url).project("sf-beta")
        server.pages["/simple/sf-beta/"] = replace(new, etag='"v2"', cache_control="max-age=600")
        s = session(client, tmp_path / "cache", server.url)
        [p] = await s.plan_pinned(_reqs("sf-beta==1.1"), TARGET)
    assert p.filename == BETA
    assert [e["status"] for e in server.log] == [200, 200]
    assert headers_of(server.log[1])["if-none-match"] == '"v1"'


@pytest.mark.parametrize("directive", ["no-store", "private, no-store"])
async def test_no_store_pages_are_not_kept(
    served: tuple[Emulator, PageServer], tmp_path: Path, directive: str
) -> None:
    _, server = served
    beta = server.pages["/simple/sf-beta/"]
    cache = PageCache(tmp_path / "cache" / "pages")
    url = project_url(server.url, "sf-beta")
    async with make_client(4, 30) as client:
        await session(client, tmp_path / "cache", server.url).project("sf-beta")
        assert cache.load(url) is not None
        server.pages["/simple/sf-beta/"] = replace(beta, etag='"v2"', cache_control=directive)
        await session(client, tmp_path / "cache", server.url).project("sf-beta")
        assert cache.load(url) is None  # the older copy went too
        await session(client, tmp_path / "cache", server.url).project("sf-beta")
    assert [e["status"] for e in server.log] == [200, 200, 200]
    assert "if-none-match" not in headers_of(server.log[2])


async def test_a_warm_cli_run_moves_no_page_body(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    emu, server = served
    args = ["download", "sf-alpha==1.0", "sf-beta==1.1", "--index-url", server.url]
    args += ["--cache-dir", str(tmp_path / "cache")]
    cold = await segfetch(*args, "-d", str(tmp_path / "a"))
    assert cold.returncode == 0, cold.stderr
    seen_pages, seen_files = len(server.log), len(emu.log)
    warm = await segfetch(*args, "-d", str(tmp_path / "b"))
    assert warm.returncode == 0, warm.stderr
    assert {e["status"] for e in server.log[seen_pages:]} == {304}
    assert sum(int(str(e["wire"])) for e in server.log[seen_pages:]) == 0
    assert emu.log[seen_files:] == []  # files and their .metadata: all from the cache


async def test_no_cache_keeps_no_page(served: tuple[Emulator, PageServer], tmp_path: Path) -> None:
    _, server = served
    for _ in range(2):
        proc = await segfetch(
            "download", "sf-beta==1.1", "--index-url", server.url, "--no-cache",
            "-d", str(tmp_path / "out"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert [e["status"] for e in server.log] == [200, 200]
    assert not any("if-none-match" in headers_of(e) for e in server.log)
    assert not list(tmp_path.rglob("pages"))
    assert not (Path(os.environ["SEGFETCH_CACHE_DIR"]) / "pages").exists()


# -- a hashed set all in the cache -----------------------------------------------------------


async def test_a_hashed_set_all_cached_makes_no_request(tmp_path: Path, index_dir: Path) -> None:
    req = _hashed_set(tmp_path, index_dir)
    reqs = RequirementSet()
    reqs.add_file(req)
    async with Emulator(index=index_dir, link=Link()) as emu, make_client(4, 30) as client:
        cold = session(client, tmp_path / "cache", emu.index_url)
        await cold.fetch_all(await cold.plan(sys.executable, reqs, [], TARGET))
        seen = len(emu.log)
        warm = session(client, tmp_path / "cache", emu.index_url)
        assert not any(warm.needs_page(w) for w in reqs.wanted)
        got = await warm.fetch_all(await warm.plan(sys.executable, reqs, [], TARGET))
    assert emu.log[seen:] == []
    assert [f.result for f in got] == [None, None]  # from the cache
    assert [f.path.read_bytes() for f in got] == [(index_dir / n).read_bytes() for *_, n in _SET]


async def test_a_hashed_set_all_cached_makes_no_request_from_the_cli(
    tmp_path: Path, index_dir: Path
) -> None:
    req = _hashed_set(tmp_path, index_dir)
    async with Emulator(index=index_dir, link=Link()) as emu:
        args = ["download", "-r", str(req), "--index-url", emu.index_url]
        args += ["--cache-dir", str(tmp_path / "cache")]
        cold = await segfetch(*args, "-d", str(tmp_path / "a"))
        assert cold.returncode == 0, cold.stderr
        seen = len(emu.log)
        warm = await segfetch(*args, "-d", str(tmp_path / "b"), "--json")
        assert warm.returncode == 0, warm.stderr
    assert emu.log[seen:] == []
    assert all(r["cached"] for r in json.loads(warm.stdout))
    for _, _, name in _SET:
        assert (tmp_path / "b" / name).read_bytes() == (index_dir / name).read_bytes()


_SET = [
    ("sf-alpha", "1.0", "sf_alpha-1.0-py3-none-any.whl"),
    ("sf-beta", "1.1", BETA),
]


def _hashed_set(tmp_path: Path, index_dir: Path) -> Path:
    req = tmp_path / "req.txt"
    req.write_text("".join(f"{n}=={v} --hash=sha256:{_sha(index_dir / f)}\n" for n, v, f in _SET))
    return req


class Recorder:
    """An index behind httpx.MockTransport: one JSON page, every request counted."""

    def __init__(self, files: list[tuple[str, bytes]]) -> None:
        self.asked: list[str] = []
        entries = [
            {"filename": n, "url": f"/files/{n}", "hashes": {"sha256": _digest(b)}}
            for n, b in files
        ]
        self.body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries}).encode()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.url.path)
        headers = {"Content-Type": JSON_TYPE, "ETag": '"p"'}
        return httpx.Response(200, headers=headers, content=self.body)


PURE = ("sf_beta-1.1-py3-none-any.whl", b"pure")
NATIVE = ("sf_beta-1.1-cp311-cp311-linux_x86_64.whl", b"native")
OTHER = ("sf_beta-1.1-cp312-cp312-linux_x86_64.whl", b"other")


@pytest.mark.parametrize(
    ("on_page", "hashes", "cached", "chosen", "asks"),
    [
        # every allowed file known from the stored page, pip's choice cached: no request
        ([PURE, OTHER], [PURE, OTHER], [PURE], PURE, False),
        ([PURE, NATIVE], [PURE, NATIVE], [NATIVE], NATIVE, False),
        # pip would take the native wheel, which is not cached: the page is asked for
        ([PURE, NATIVE], [PURE, NATIVE], [PURE], NATIVE, True),
        # an allowed file the stored page does not list may fit better: asked for
        ([PURE], [PURE, NATIVE], [PURE], NATIVE, True),
    ],
)
async def test_a_hashed_pin_takes_the_file_pip_would(
    tmp_path: Path,
    on_page: list[tuple[str, bytes]],
    hashes: list[tuple[str, bytes]],
    cached: list[tuple[str, bytes]],
    chosen: tuple[str, bytes],
    asks: bool,
) -> None:
    index = "https://idx.example/simple/"
    cache = Cache(tmp_path)
    pages = PageCache(tmp_path / "pages")
    stored = Recorder(on_page)  # what the page cache holds from an earlier run
    url = project_url(index, "sf-beta")
    pages.save(Page(url, None, JSON_TYPE, stored.body, etag='"p"', born=0.0))
    for name, data in cached:
        path = cache.path(_digest(data), name)
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    now = Recorder([PURE, NATIVE, OTHER])  # the index today
    async with httpx.AsyncClient(transport=httpx.MockTransport(now)) as client:
        s = Session(client, cache, [index], budget=2)
        line = "sf-beta==1.1 " + " ".join(f"--hash=sha256:{_digest(b)}" for _, b in hashes)
        [p] = await s.plan_pinned(_reqs(line), TARGET)
    assert p.filename == chosen[0]
    assert now.asked == (["/simple/sf-beta/"] if asks else [])


# -- .metadata -------------------------------------------------------------------------------


async def test_a_missing_metadata_is_asked_for_once(tmp_path: Path, index_dir: Path) -> None:
    options = IndexOptions(metadata=False)  # .metadata files answer 404
    async with (
        Emulator(index=index_dir, link=Link(), index_options=options) as emu,
        make_client(4, 30) as client,
    ):
        s = session(client, tmp_path / "cache", emu.index_url)
        [f] = [f for f in await s.project("sf-beta") if f.filename == BETA]
        got: list[bytes | None] = []

        async def one() -> None:
            got.append(await s.metadata_of(f))

        async with trio.open_nursery() as nursery:  # pip and the look-ahead at once
            for _ in range(3):
                nursery.start_soon(one)
        await one()
    assert got == [metadata_of(index_dir / BETA)] * 4
    asked = [e["path"] for e in emu.log if str(e["path"]).startswith("/files/")]
    assert asked.count(f"/files/{BETA}.metadata") == 1
    assert f"/files/{BETA}" in asked  # read from the wheel instead


@pytest.mark.parametrize("advertised", [False, True])
async def test_a_promised_metadata_that_is_missing_is_a_warning(
    tmp_path: Path, index_dir: Path, advertised: bool
) -> None:
    """A page that promises a .metadata (PEP 658) the index then 404s costs the whole wheel
    over the link, for every wheel pip looks at: said once, where the operator sees it
    (serve's stderr). One never promised is only a guess: silent."""
    options = IndexOptions(metadata=False)  # .metadata files answer 404
    lines: list[str] = []
    async with (
        Emulator(index=index_dir, link=Link(), index_options=options) as emu,
        make_client(4, 30) as client,
    ):
        s = Session(
            client, Cache(tmp_path / "cache"), [emu.index_url], budget=4, notice=lines.append
        )
        [f] = [f for f in await s.project("sf-beta") if f.filename == BETA]
        f = replace(f, metadata=advertised)
        assert await s.metadata_of(f) == metadata_of(index_dir / BETA)
        assert await s.metadata_of(f) == metadata_of(index_dir / BETA)
    said = f"warning: the index's metadata of {BETA} answered 404; read from the wheel instead"
    assert lines == ([said] if advertised else [])


# -- pure parts ------------------------------------------------------------------------------


def test_cache_control_directives() -> None:
    assert cache_control("max-age=600, public,, x=y") == {
        "max-age": "600",
        "public": None,
        "x": "y",
    }
    assert cache_control('Max-Age="60"') == {"max-age": "60"}
    assert cache_control("max-age=60, max-age=0") == {"max-age": "60"}  # the first
    assert cache_control(None) == {}


DATE = {"Date": "Thu, 01 Jan 1970 00:16:40 GMT"}


@pytest.mark.parametrize(
    ("headers", "now", "fresh"),
    [
        ({"Cache-Control": "max-age=600"} | DATE, 1599.0, True),
        ({"Cache-Control": "max-age=600"}, 1599.0, False),  # no Date: pip's cache revalidates
        ({"Cache-Control": "max-age=600"}, 1600.0, False),
        ({"Cache-Control": "max-age=600"}, 999.0, False),  # the clock went back
        ({"Cache-Control": "max-age=600", "Age": "599"} | DATE, 1000.5, True),
        ({"Cache-Control": "max-age=600", "Age": "600"}, 1000.0, False),
        ({"Cache-Control": "no-cache, max-age=600"}, 1000.0, False),
        ({"Cache-Control": "max-age=abc"}, 1000.0, False),
        ({}, 1000.0, False),
    ],
)
def test_freshness(headers: dict[str, str], now: float, fresh: bool) -> None:
    assert page_of("u", None, headers, b"", 1000.0).fresh(now) is fresh


def test_a_304_renews_the_page(tmp_path: Path) -> None:
    page = page_of("u", None, {"ETag": '"a"', "Cache-Control": "max-age=60"}, b"body", 0.0)
    renewed = page.revalidated({"ETag": '"b"', "Cache-Control": "max-age=600"}, 100.0)
    assert renewed.body == b"body" and renewed.etag == '"b"'
    assert renewed.fresh(699.0) and not renewed.fresh(700.0)
    assert page.revalidated({}, 100.0) == replace(page, born=100.0)


def test_a_validator_that_is_not_ascii_is_not_sent_back() -> None:
    """An ETag may hold bytes 0x80-0xFF; httpx decodes them by a guess and cannot encode
    them again: a warm run's request for such a page was a UnicodeEncodeError traceback."""
    etag, modified = '"\xe9t\xe9"', "Tue, 03 Jun 2025 10:00:00 GMT"
    page = page_of("u", None, {"ETag": etag, "Last-Modified": modified}, b"body", 0.0)
    assert page.validators() == {"If-Modified-Since": modified}
    httpx.Request("GET", "http://127.0.0.1/simple/x/", headers=page.validators())
    odd = page_of("u", None, {"ETag": '"a"', "Last-Modified": "\xe9"}, b"body", 0.0)
    assert odd.validators() == {"If-None-Match": '"a"'}


def test_stored_pages_survive_only_whole(tmp_path: Path) -> None:
    pages = PageCache(tmp_path)
    url = "https://user:secret@idx.example/simple/a/"
    page = page_of(url, "https://idx.example/simple/a/", {"ETag": '"e"'}, b"\xff\x00<a>", 5.0)
    pages.save(page)
    assert pages.load(url) == page
    assert b"secret" not in pages.path(url).read_bytes()
    pages.path(url).write_bytes(pages.path(url).read_bytes()[:-10])  # torn by a disk
    assert pages.load(url) is None
    assert list(tmp_path.iterdir()) == [pages.path(url)]  # no temporary files left


async def test_fetch_project_without_a_page_cache_is_unchanged() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "if-none-match" not in request.headers
        assert request.headers["accept-encoding"] == "gzip"
        body = json.dumps({"meta": {"api-version": "1.1"}, "files": []}).encode()
        return httpx.Response(200, headers={"Content-Type": JSON_TYPE, "ETag": '"x"'}, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await fetch_project(client, "https://idx.example/simple/", "a") == []


async def test_a_compressed_page_damaged_on_the_way_is_asked_again() -> None:
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": []}).encode()
    good = gzip.compress(body)
    answers = [good[:10] + bytes([good[10] ^ 0xFF]) + good[11:], good]

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=answers.pop(0))

    policy = RetryPolicy(max_tries=2, base=0.0, cap=0.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await fetch_project(client, "https://idx.example/simple/", "a", policy) == []
    assert answers == []


async def test_a_page_that_cannot_be_reached_is_named_in_the_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("all attempts to connect to idx.example:443 failed")

    policy = RetryPolicy(max_tries=2, base=0.0, cap=0.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RetriesExhausted) as caught:
            await fetch_project(client, "https://me:pw@idx.example/simple/", "a", policy)
    message = str(caught.value)
    assert "page https://***@idx.example/simple/a/: cannot connect (all" in message, message
    assert "pw" not in message


def _reqs(line: str) -> RequirementSet:
    reqs = RequirementSet()
    reqs.add_string(line.split(" --")[0])
    w = reqs.wanted[0]
    hashes = frozenset(h.split("sha256:")[1] for h in line.split()[1:])
    reqs.wanted[0] = replace(w, hashes=hashes)
    return reqs


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha(path: Path) -> str:
    return _digest(path.read_bytes())
