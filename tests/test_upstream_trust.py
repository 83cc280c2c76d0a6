"""What an index says about its files is held to, through `serve` and `install`: a .metadata
checked by the sha256 its page gives, only advertised ones asked for where a URL has a query,
hashes other than sha256 checked and passed on, <base href>, the file name from the URL, an
unreachable extra index left out. Upstreams here are a few lines of trio on loopback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from segfetch.engine.download import make_client
from segfetch.testing.wheelmaker import make_wheel, metadata_of
from segfetch.wheels import serve
from segfetch.wheels.cache import Cache
from segfetch.wheels.index import JSON_TYPE, parse_page
from segfetch.wheels.serve import run

HTML = "text/html"
PAGE = "https://idx.example/simple/p/"
WHEEL = "p-1.0-py3-none-any.whl"

Routes = dict[str, tuple[int, str, bytes]]  # path (with query) -> status, type, body


@asynccontextmanager
async def upstream(routes: Routes, asked: list[str]) -> AsyncIterator[str]:
    """A server of fixed answers (ranges ignored: each answer is whole); its base URL."""

    async def handler(stream: trio.SocketStream) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            asked.append(path)
            status, kind, body = routes.get(path, (404, "text/plain", b"no"))
            await stream.send_all(
                b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                % (status, kind.encode(), len(body))
                + body
            )

    async with listening(handler) as url:
        yield url


@asynccontextmanager
async def listening(handler: Callable[[trio.SocketStream], Awaitable[None]]) -> AsyncIterator[str]:
    """``handler`` serving on a free loopback port; its base URL."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


def cutting(tries: list[int]) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """A server that cuts every connection at once (each counted in ``tries``)."""

    async def cut(stream: trio.SocketStream) -> None:
        tries.append(1)
        await stream.aclose()

    return cut


@asynccontextmanager
async def serving(indexes: list[str], cache: Path, lines: list[str]) -> AsyncIterator[str]:
    async with make_client(4, 5) as client, trio.open_nursery() as nursery:
        app = await nursery.start(partial(run, indexes, Cache(cache), client, notice=lines.append))
        yield f"http://127.0.0.1:{app.port}"
        nursery.cancel_scope.cancel()


def _wheel(tmp_path: Path) -> tuple[bytes, bytes]:
    path = make_wheel(tmp_path, "p", "1.0", requires=["q>=1"])
    return path.read_bytes(), metadata_of(path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- parsing: pure ---------------------------------------------------------------------------


def test_what_a_page_says_of_metadata_and_hashes_is_kept() -> None:
    meta = "ab" * 32
    html = (
        f'<a href="/f/{WHEEL}#md5={"0" * 32}" data-dist-info-metadata="sha256={meta}">x</a>'
        f'<a href="/f/q-1.0.tar.gz#sha512={"1" * 128}">q-1.0.tar.gz</a>'
        f'<a href="/f/r-1.0.tar.gz" data-core-metadata="true">r-1.0.tar.gz</a>'
    ).encode()
    one, two, three = parse_page(html, HTML, PAGE)
    assert (one.filename, one.sha256, one.other_hash) == (WHEEL, None, "md5=" + "0" * 32)
    assert one.metadata and one.metadata_sha256 == meta  # the file name from the URL
    assert two.other_hash == "sha512=" + "1" * 128 and not two.metadata
    assert three.metadata and three.metadata_sha256 is None
    # A hash that cannot be read is no hash, as for pip: the page stays usable.
    [odd] = parse_page(f'<a href="/f/{WHEEL}#md5=xyz">x</a>'.encode(), HTML, PAGE)
    assert odd.other_hash is None and odd.filename == WHEEL
    doc = {
        "files": [
            {"filename": WHEEL, "url": "/f/x", "hashes": {"md5": "2" * 32},
             "core-metadata": {"sha256": meta}},
            {"filename": "q-1.0.tar.gz", "url": "/f/q",
             "hashes": {"sha256": meta, "md5": "3" * 32}},
        ]
    }  # fmt: skip
    a, b = parse_page(json.dumps(doc).encode(), JSON_TYPE, PAGE)
    assert (a.other_hash, a.metadata_sha256) == ("md5=" + "2" * 32, meta)
    assert (b.sha256, b.other_hash) == (meta, None)  # the sha256 is the one checked


def test_a_base_href_is_where_links_lead() -> None:
    html = f'<html><head><base href="https://pool.example/x/"></head><a href="{WHEEL}">y</a>'
    [f] = parse_page(html.encode(), HTML, PAGE)
    assert f.url == f"https://pool.example/x/{WHEEL}"


# -- through serve ---------------------------------------------------------------------------


async def test_a_metadata_that_fails_its_sha256_never_reaches_a_client(tmp_path: Path) -> None:
    """The page gives the .metadata's sha256; the upstream serves one that adds a
    dependency. Clients get the wheel's own METADATA (the wheel is checked by its sha256),
    never it, and nothing wrong is kept."""
    wheel, meta = _wheel(tmp_path)
    evil = meta + b"Requires-Dist: evil-dep\n"
    page = (
        f'<a href="/f/{WHEEL}#sha256={_sha(wheel)}" '
        f'data-dist-info-metadata="sha256={_sha(meta)}">{WHEEL}</a>'
    ).encode()
    routes: Routes = {
        "/simple/p/": (200, HTML, page),
        f"/f/{WHEEL}": (200, "application/octet-stream", wheel),
        f"/f/{WHEEL}.metadata": (200, "text/plain", evil),
    }
    asked: list[str] = []
    async with (
        upstream(routes, asked) as up,
        serving([up + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=30) as client,
    ):
        where = f"{url}/files/p/{WHEEL}.metadata"
        assert (await client.get(url + "/simple/p/")).status_code == 200
        first = await client.get(where)
        assert first.status_code == 200 and first.content == meta
        assert f"/f/{WHEEL}" in asked  # read from the wheel
        routes[f"/f/{WHEEL}.metadata"] = (200, "text/plain", meta)
        again = await client.get(where)
        assert again.status_code == 200 and again.content == meta


async def test_a_metadata_not_advertised_is_not_asked_after_a_query(tmp_path: Path) -> None:
    """A signed URL (a token in its query), no .metadata advertised: "<url>.metadata" would
    put the suffix in the token, and this server answers it with the wheel. The METADATA
    comes from the wheel instead."""
    wheel, meta = _wheel(tmp_path)
    page = f'<a href="/f/{WHEEL}?token=abc#sha256={_sha(wheel)}">{WHEEL}</a>'.encode()
    wheel_answer = (200, "application/octet-stream", wheel)
    routes: Routes = {
        "/simple/p/": (200, HTML, page),
        f"/f/{WHEEL}?token=abc": wheel_answer,
        f"/f/{WHEEL}?token=abc.metadata": wheel_answer,
    }
    asked: list[str] = []
    async with (
        upstream(routes, asked) as up,
        serving([up + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=30) as client,
    ):
        await client.get(url + "/simple/p/")
        got = await client.get(f"{url}/files/p/{WHEEL}.metadata")
    assert got.status_code == 200 and got.content == meta
    assert f"/f/{WHEEL}?token=abc.metadata" not in asked


async def test_a_file_that_fails_the_md5_its_page_gives_is_refused(tmp_path: Path) -> None:
    """pip checks an md5 (or sha512, ...) where the page gives no sha256: so does serve, and
    its page passes the hash on to the client."""
    wheel, _ = _wheel(tmp_path)
    page = f'<a href="/f/{WHEEL}#md5={"0" * 32}">{WHEEL}</a>'.encode()
    routes: Routes = {
        "/simple/p/": (200, HTML, page),
        f"/f/{WHEEL}": (200, "application/octet-stream", wheel),
    }
    async with (
        upstream(routes, []) as up,
        serving([up + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=30) as client,
    ):
        listing = await client.get(url + "/simple/p/", headers={"Accept": JSON_TYPE})
        assert listing.json()["files"][0]["hashes"] == {"md5": "0" * 32}
        try:
            got = await client.get(f"{url}/files/p/{WHEEL}")
            assert got.status_code >= 500 or got.content != wheel
        except httpx.TransportError:
            pass  # cut short: never the whole file


async def test_an_extra_index_that_cannot_be_reached_is_left_out_and_rests(
    tmp_path: Path,
) -> None:
    """As pip does: the page comes from the index that answers, and the operator is told.
    The failed index is not asked again for the next page (each would wait out its tries
    again); the one that answers is."""
    wheel, _ = _wheel(tmp_path)
    page = f'<a href="/f/{WHEEL}#sha256={_sha(wheel)}">{WHEEL}</a>'.encode()
    tries: list[int] = []
    lines: list[str] = []
    asked: list[str] = []
    routes = {"/simple/p/": (200, HTML, page), "/simple/q/": (200, HTML, b"")}
    async with (
        listening(cutting(tries)) as dead,
        upstream(routes, asked) as up,
        serving([up + "/simple/", dead + "/simple/"], tmp_path / "c", lines) as url,
        httpx.AsyncClient(trust_env=False, timeout=60) as client,
    ):
        got = await client.get(url + "/simple/p/", headers={"Accept": JSON_TYPE})
        tried = len(tries)
        again = await client.get(url + "/simple/q/", headers={"Accept": JSON_TYPE})
    assert got.status_code == 200 and [f["filename"] for f in got.json()["files"]] == [WHEEL]
    assert any("index left out" in line for line in lines)
    assert tried >= 1 and len(tries) == tried  # resting: not asked for q
    assert again.status_code == 200 and asked == ["/simple/p/", "/simple/q/"]


async def test_a_page_that_stalls_upstream_is_served_stale_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip gives up on a silent answer after 15 s: where a page is stored, a client waits
    STALE_AFTER for the upstream's answer, then gets the stored page (marked stale)."""
    monkeypatch.setattr(serve, "STALE_AFTER", 0.5)
    wheel, _ = _wheel(tmp_path)
    page = f'<a href="/f/{WHEEL}#sha256={_sha(wheel)}">{WHEEL}</a>'.encode()
    asked: list[str] = []

    async def answer_once(stream: trio.SocketStream) -> None:  # then silence
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536) or b"\r\n\r\n"
            asked.append(data.split(b" ")[1].decode())
            if len(asked) > 1:
                await trio.sleep_forever()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
            await stream.send_all(head % len(page) + page)

    async with (
        listening(answer_once) as up,
        serving([up + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=60) as client,
    ):
        fresh = await client.get(url + "/simple/p/", headers={"Accept": JSON_TYPE})
        with trio.fail_after(20):
            stale = await client.get(url + "/simple/p/", headers={"Accept": JSON_TYPE})
    assert asked == ["/simple/p/", "/simple/p/"]  # asked again, and it never answered
    assert fresh.status_code == stale.status_code == 200 and "Warning" not in fresh.headers
    assert stale.headers["Warning"] == '110 - "Response is Stale"'
    assert stale.json()["files"] == fresh.json()["files"]


async def test_an_index_that_answers_an_error_for_one_page_is_asked_for_the_next(
    tmp_path: Path,
) -> None:
    """An HTTP error is one URL's (a 500 for one project, a 403 on the root): the index
    answered, so it is asked for the next page as ever, and its newer files win. Only an
    index that gives no answer at all rests."""
    wheel, _ = _wheel(tmp_path)
    page = f'<a href="/f/{WHEEL}#sha256={_sha(wheel)}">{WHEEL}</a>'.encode()
    old = b'<a href="/f/p-0.9-py3-none-any.whl">p-0.9-py3-none-any.whl</a>'
    asked: list[str] = []
    primary = {
        "/simple/q/": (500, HTML, b"no"),
        "/simple/": (403, HTML, b"no"),
        "/simple/p/": (200, HTML, page),
    }
    async with (
        upstream(primary, asked) as a,
        upstream({"/simple/p/": (200, HTML, old)}, []) as b,
        serving([a + "/simple/", b + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=60) as client,
    ):
        await client.get(url + "/simple/q/")
        await client.get(url + "/simple/")
        got = await client.get(url + "/simple/p/", headers={"Accept": JSON_TYPE})
    assert "/simple/p/" in asked
    assert WHEEL in [f["filename"] for f in got.json()["files"]]


async def test_a_lone_index_that_failed_is_asked_again(tmp_path: Path) -> None:
    """With nothing to stand in for it (no other index, no stored page), an index that
    failed is asked again by the next request: it may be back."""
    tries: list[int] = []
    async with (
        listening(cutting(tries)) as dead,
        serving([dead + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=60) as client,
    ):
        first = await client.get(url + "/simple/p/")
        tried = len(tries)
        second = await client.get(url + "/simple/p/")
    assert first.status_code == second.status_code == 502
    assert len(tries) > tried >= 1


def test_json_pages_name_the_metadata_as_pep_714_does() -> None:
    """pip 22.3 to 23.1 crash on a JSON "dist-info-metadata" that is not a string (PyPI
    stopped sending it): only "core-metadata"."""
    from segfetch.wheels import simple
    from segfetch.wheels.index import IndexFile

    page = simple.render_page(JSON_TYPE, "p", [IndexFile(WHEEL, "https://x/" + WHEEL)])
    [entry] = json.loads(page)["files"]
    assert entry["core-metadata"] is True and "dist-info-metadata" not in entry


CONFLICT = (
    "Collecting requests==2.31.0\n"
    "ERROR: Cannot install requests==2.31.0 and idna==2.0 because these package versions"
    " have conflicting dependencies.\n\nThe conflict is caused by:\n"
    "    The user requested idna==2.0\n"
    "    requests 2.31.0 depends on idna<4,>=2.5\n\n"
    "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/\n"
)
# pip 23.2 indents the ERROR lines of a build's own pip (build dependencies not found): they
# are the reason (it was a StopIteration, a traceback)
OLD_BUILD = (
    "  error: subprocess-exited-with-error\n\n"
    "  \u00d7 pip subprocess to install build dependencies did not run successfully.\n"
    "  \u2502 exit code: 1\n"
    "  \u2570\u2500> [2 lines of output]\n"
    "      ERROR: Could not find a version that satisfies the requirement nope-xyz\n"
    "      ERROR: No matching distribution found for nope-xyz\n"
    "      [end of output]\n"
)


@pytest.mark.parametrize(
    ("said", "why", "shown", "not_shown"),
    [
        (
            CONFLICT,
            r"Cannot install.*pip's output is above",
            "requests 2.31.0 depends on idna<4,>=2.5",
            "Collecting",
        ),
        (OLD_BUILD, r"No matching distribution found for nope-xyz", "[end of output]", None),
    ],
    ids=["a-conflict", "an-old-pips-build"],
)
def test_pips_failure_is_one_line_and_its_account_is_shown(
    capsys: pytest.CaptureFixture[str], said: str, why: str, shown: str, not_shown: str | None
) -> None:
    from segfetch.errors import SegfetchError
    from segfetch.wheels.pip import _read_report

    with pytest.raises(SegfetchError, match=why):
        _read_report("python", 1, "", said)
    err = capsys.readouterr().err
    assert shown in err and (not_shown is None or not_shown not in err)


async def test_a_resting_index_is_asked_for_a_project_no_other_index_has(
    tmp_path: Path,
) -> None:
    """An extra index that gave no answer rests; back meanwhile, it is asked after all for
    a project the primary does not have (a 502 before, for the whole rest)."""
    wheel, _ = _wheel(tmp_path)
    page = f'<a href="/f/{WHEEL}#sha256={_sha(wheel)}">{WHEEL}</a>'.encode()
    tries: list[int] = []
    back: list[str] = []  # paths asked once it is back

    async def flaky(stream: trio.SocketStream) -> None:
        if not back:
            tries.append(1)
            await stream.aclose()
            return
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536) or b"\r\n\r\n"
        path = data.split(b" ")[1].decode()
        back.append(path)
        status, body = (200, page) if path == "/simple/r/" else (404, b"")
        head = "HTTP/1.1 %d X\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
        await stream.send_all((head % (status, len(body))).encode() + body)

    routes = {"/simple/p/": (200, HTML, page)}
    async with (
        listening(flaky) as extra,
        upstream(routes, []) as up,
        serving([up + "/simple/", extra + "/simple/"], tmp_path / "c", []) as url,
        httpx.AsyncClient(trust_env=False, timeout=60) as client,
    ):
        first = await client.get(url + "/simple/p/", headers={"Accept": JSON_TYPE})
        assert first.status_code == 200 and tries  # the extra index rests now
        back.append("(back)")
        got = await client.get(url + "/simple/r/", headers={"Accept": JSON_TYPE})
    assert got.status_code == 200, got.text
    assert [f["filename"] for f in got.json()["files"]] == [WHEEL]
    assert back == ["(back)", "/simple/r/"]
