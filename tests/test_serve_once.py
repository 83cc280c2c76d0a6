"""`segfetch serve`: each file crosses the uplink once, even one its page lists without a
sha256 (a find-links page, a plain listing): after a restart it is served from the cache
once one byte shows the upstream has the same file; a HEAD never fetches a file; a second
serve on the same cache streams what the first one downloads."""

from __future__ import annotations

import hashlib
import socket
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from test_serve import BIG, probes, serving

from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels import serve, unhashed
from segfetch.wheels.cache import Cache
from segfetch.wheels.localindex import STALE
from segfetch.wheels.unhashed import Kept, Verdict

NO_HASH = IndexOptions(hashes_in="none")
WARNING = STALE[1]
ETAG, DATE = '"v1"', "Sat, 28 Nov 2026 10:00:00 GMT"
KEPT = Kept("ab" * 32, 1000, ETAG, DATE)


@pytest.mark.parametrize(
    ("kept", "status", "headers", "expected"),
    [
        (KEPT, 304, {}, Verdict.SAME),
        (KEPT, 206, {"Content-Range": "bytes 0-0/1000", "ETag": ETAG}, Verdict.SAME),
        (KEPT, 206, {"Content-Range": "bytes 0-0/1000", "Last-Modified": DATE}, Verdict.SAME),
        (KEPT, 200, {"Content-Length": "1000", "ETag": ETAG, "Last-Modified": DATE}, Verdict.SAME),
        (KEPT, 206, {"Content-Range": "bytes 0-0/1000", "ETag": '"v2"'}, Verdict.CHANGED),
        (KEPT, 206, {"Content-Range": "bytes 0-0/999", "ETag": ETAG}, Verdict.CHANGED),
        (KEPT, 206, {"Content-Range": "bytes 0-0/1000"}, Verdict.CHANGED),  # validators lost
        (KEPT, 206, {"ETag": ETAG}, Verdict.CHANGED),  # no size said
        # no validator came with the download: a size cannot tell two builds apart
        (Kept("ab" * 32, 1000), 206, {"Content-Range": "bytes 0-0/1000"}, Verdict.CHANGED),
        (
            Kept("ab" * 32, 1000),
            206,
            {"Content-Range": "bytes 0-0/1000", "ETag": ETAG},
            Verdict.CHANGED,
        ),
        (Kept("ab" * 32, 1000), 200, {"Content-Length": "999"}, Verdict.CHANGED),
        (KEPT, 404, {}, Verdict.CHANGED),  # fetched anew: that download says what is wrong
        (KEPT, 403, {}, Verdict.CHANGED),
        (KEPT, 503, {}, Verdict.NO_ANSWER),
        (KEPT, 429, {}, Verdict.NO_ANSWER),
    ],
)
def test_verdict(kept: Kept, status: int, headers: dict[str, str], expected: Verdict) -> None:
    assert unhashed.verdict(kept, status, headers) is expected


def test_a_record_round_trips_and_a_damaged_one_is_none(tmp_path: Path) -> None:
    path = tmp_path / "r" / "x.whl.kept.json"
    unhashed.save(path, "http://user:secret@h/x.whl", KEPT)
    assert unhashed.load(path) == KEPT
    assert b"secret" not in path.read_bytes()
    assert unhashed.conditional(KEPT) == {
        "Range": "bytes=0-0",
        "Accept-Encoding": "identity",
        "If-None-Match": ETAG,
        "If-Modified-Since": DATE,
    }
    for text in ("{", "[]", '{"format": 1, "sha256": "ab", "size": 1}', '{"format": 2}'):
        path.write_text(text)
        assert unhashed.load(path) is None
    assert unhashed.load(tmp_path / "none.json") is None


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-big", "1.0", payload=2_000_000)
    return d


def file_bytes(emu: Emulator, name: str) -> int:
    sent = [e["sent"] for e in emu.log if e["path"] == f"/files/{name}"]
    return sum(n for n in sent if isinstance(n, int))


async def get_file(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        return await client.get(url.replace("/simple/", f"/files/sf-big/{BIG}"), headers=headers)


async def test_a_file_without_sha256_crosses_the_uplink_once_across_restarts(
    tmp_path: Path, index_dir: Path
) -> None:
    size = (index_dir / BIG).stat().st_size
    want = hashlib.sha256((index_dir / BIG).read_bytes()).hexdigest()
    said: list[str] = []
    async with Emulator(index=index_dir, index_options=NO_HASH) as emu:
        for _ in range(3):  # a first run, then two restarts on the same cache
            async with serving([emu.index_url], tmp_path / "c", notice=said.append) as (_, url):
                r = await get_file(url)
                assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == want
                assert "Warning" not in r.headers
        assert probes(emu, BIG) == 3  # one download, then one check per restart
        assert file_bytes(emu, BIG) == size + 2  # each check: one byte
    assert said == [], said


@pytest.mark.parametrize("json", [True, False])  # the new size on the page; or one byte shows it
async def test_a_file_changed_upstream_is_fetched_anew_after_a_restart(
    tmp_path: Path, index_dir: Path, json: bool
) -> None:
    other = tmp_path / "other"
    make_wheel(other, "sf-big", "1.0", payload=2_000_000, seed=7)  # the same name, new bytes
    want = hashlib.sha256((other / BIG).read_bytes()).hexdigest()
    said: list[str] = []
    options = IndexOptions(hashes_in="none", json=json)
    async with (
        Emulator(index=index_dir, index_options=options) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
    ):
        assert (await get_file(url)).status_code == 200
    async with (
        Emulator(index=other, index_options=options, port=emu.port) as emu,
        serving([emu.index_url], tmp_path / "c", notice=said.append) as (_, url),
    ):
        r = await get_file(url)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == want
    assert any(f"{BIG}: the upstream has another file now" in line for line in said), said


@pytest.mark.parametrize("json", [False, True])  # a plain listing; a page with sizes
async def test_a_file_changed_upstream_is_fetched_anew_by_a_serve_that_runs_on(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch, json: bool
) -> None:
    """The same serve, still running when the upstream replaces the file (no sha256 on its
    page): it is checked again once RECHECK passed (it was served from the first copy for
    the serve's life), and fetched whatever size the page, still fresh here, gives."""
    other = tmp_path / "other"
    make_wheel(other, "sf-big", "1.0", payload=2_000_000, seed=7)
    want = hashlib.sha256((other / BIG).read_bytes()).hexdigest()
    monkeypatch.setattr(serve, "RECHECK", 0.0)
    listing = IndexOptions(hashes_in="none", json=json)
    said: list[str] = []
    with socket.socket() as sock:  # a free port for both upstreams, one after the other
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    upstream = f"http://127.0.0.1:{port}/simple/"
    async with serving([upstream], tmp_path / "c", notice=said.append) as (_, url):
        async with Emulator(index=index_dir, index_options=listing, port=port):
            assert (await get_file(url)).status_code == 200
        async with Emulator(index=other, index_options=listing, port=port):
            r = await get_file(url)
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == want
    assert any(f"{BIG}: the upstream has another file now" in line for line in said), said


async def test_a_kept_file_is_served_while_the_upstream_is_down_and_said(
    tmp_path: Path, index_dir: Path
) -> None:
    """As proxpi and devpi-server serve their cached files: the copy (checked against the
    sha256 of its download), marked stale, one line on the log."""
    want = hashlib.sha256((index_dir / BIG).read_bytes()).hexdigest()
    said: list[str] = []
    async with (
        Emulator(index=index_dir, index_options=NO_HASH) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
    ):
        assert (await get_file(url)).status_code == 200
    async with serving([emu.index_url], tmp_path / "c", notice=said.append) as (_, url):
        r = await get_file(url)
        again = await get_file(url, {"Range": "bytes=0-9"})
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == want
    assert r.headers["Warning"] == WARNING
    assert again.status_code == 206 and again.content == r.content[:10]
    lines = [line for line in said if "served from the cache unchecked" in line]
    assert lines and lines[0].startswith(f"{BIG}: "), said


@pytest.mark.parametrize("json", [True, False])  # the JSON page gives the size; HTML does not
async def test_a_head_never_fetches_the_file(tmp_path: Path, index_dir: Path, json: bool) -> None:
    size = (index_dir / BIG).stat().st_size
    async with (
        Emulator(index=index_dir, index_options=IndexOptions(json=json)) as emu,
        serving([emu.index_url], tmp_path / "c") as (_, url),
    ):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            r = await client.head(url.replace("/simple/", f"/files/sf-big/{BIG}"))
        assert r.status_code == 200 and r.headers["Content-Length"] == str(size)
        assert file_bytes(emu, BIG) <= (0 if json else 1)
        assert not list((tmp_path / "c").rglob(BIG))  # nothing downloaded
        got = await get_file(url)  # and a GET still brings it
        assert got.status_code == 200 and len(got.content) == size


async def test_a_second_serve_on_the_cache_streams_what_the_first_downloads(
    tmp_path: Path, index_dir: Path
) -> None:
    """Two serve processes (here two servers in one process: the cache's locks are the same)
    on one cache: the second one's client gets the bytes as the first one writes them, not
    only once that download ends (pip gives up after 15 s without a byte), and the file
    crosses the uplink once."""
    data = (index_dir / BIG).read_bytes()
    final = Cache(tmp_path / "c").path(hashlib.sha256(data).hexdigest(), BIG)
    bodies: dict[str, bytes] = {}
    early: list[bool] = []

    async def fetch(url: str, who: str, *, started: trio.Event) -> None:
        async with (
            httpx.AsyncClient(trust_env=False, timeout=30) as client,
            client.stream("GET", url.replace("/simple/", f"/files/sf-big/{BIG}")) as r,
        ):
            body = b""
            async for chunk in r.aiter_bytes():
                if not body and who == "second":
                    early.append(not final.exists())  # the first one's download not done yet
                body += chunk
                started.set()
            bodies[who] = body

    async with (
        Emulator(index=index_dir, link=Link(shared_rate=1 << 19)) as emu,  # 4 s for the file
        serving([emu.index_url], tmp_path / "c") as (_, one),
        serving([emu.index_url], tmp_path / "c") as (_, two),
        trio.open_nursery() as nursery,
    ):
        first, second = trio.Event(), trio.Event()
        nursery.start_soon(partial(fetch, one, "first", started=first))
        await first.wait()
        nursery.start_soon(partial(fetch, two, "second", started=second))
    assert bodies == {"first": data, "second": data}
    assert early == [True]
    assert probes(emu, BIG) == 1


async def test_a_download_under_way_is_not_handed_to_a_page_with_another_hash(
    tmp_path: Path,
) -> None:
    """Downloads under way were shared by URL: a client of another page listing the same
    URL with another sha256 (a second index's page, or the page republished mid-download)
    got the first page's bytes, 200, unchecked against its own hash."""
    wheel = make_wheel(tmp_path / "idx", "sf-slow", "1.0", payload=400_000)
    (tmp_path / "idx").mkdir(exist_ok=True)
    async with Emulator(index=tmp_path / "idx", link=Link(rate=200_000)) as emu:
        url = f"{emu.index_url.removesuffix('/simple/')}/files/{wheel.name}"
        other = tmp_path / "mirror" / "simple" / "sf-other"
        other.mkdir(parents=True)
        link = f'<a href="{url}#sha256={"0" * 64}">{wheel.name}</a>'
        (other / "index.html").write_text(f"<html><body>{link}</body></html>")
        mirror = (tmp_path / "mirror" / "simple").as_uri()
        async with (
            serving([emu.index_url, mirror], tmp_path / "c") as (_, base),
            httpx.AsyncClient(trust_env=False, timeout=30) as http,
        ):
            for project in ("sf-slow", "sf-other"):
                assert (await http.get(f"{base}{project}/")).status_code == 200
            files = base.removesuffix("simple/") + "files"
            async with http.stream("GET", f"{files}/sf-slow/{wheel.name}") as first:
                assert first.status_code == 200
                chunks = first.aiter_raw()
                got = len(await anext(chunks))  # under way now
                try:
                    second = await http.get(f"{files}/sf-other/{wheel.name}")
                except httpx.HTTPError:
                    pass  # cut short: a client never takes that as the file
                else:
                    assert second.status_code == 409, second.status_code
                async for chunk in chunks:
                    got += len(chunk)
            assert got == len(emu.content(f"/files/{wheel.name}"))


async def test_pages_are_answered_while_files_fill_every_place(tmp_path: Path) -> None:
    """--max-clients counted file streams and page requests alike: 64 slow files held every
    place and another builder's page waited, unanswered, until one ended."""
    wheel = make_wheel(tmp_path / "idx", "sf-long", "1.0", payload=400_000)
    async with (
        Emulator(index=tmp_path / "idx", link=Link(rate=50_000)) as emu,
        serving([emu.index_url], tmp_path / "c", max_clients=1) as (_, base),
        httpx.AsyncClient(trust_env=False, timeout=30) as http,
    ):
        assert (await http.get(f"{base}sf-long/")).status_code == 200
        files = base.removesuffix("simple/") + "files"
        async with http.stream("GET", f"{files}/sf-long/{wheel.name}") as streaming:
            chunks = streaming.aiter_raw()
            await anext(chunks)  # the one place for files is taken, for seconds yet
            with trio.fail_after(5):
                page = await http.get(f"{base}sf-long/", headers={"Cache-Control": "max-age=0"})
            assert page.status_code == 200
