"""The emulator's simple index (PEP 503 HTML, PEP 691 JSON, PEP 592 yanks, PEP 658 metadata),
checked with httpx and with a real pip over loopback. No timing is asserted."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import trio

from segfetch.testing.emulator import Emulator, Fault, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel, metadata_of

JSON = "application/vnd.pypi.simple.v1+json"
VND_HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {VND_HTML}; q=0.1, text/html; q=0.01"
YANK_REASON = 'broken <build> & "bad"'
FOO_OLD, FOO_NEW = "foo_bar-1.0-py3-none-any.whl", "foo_bar-1.1-py3-none-any.whl"
B = "b-2.0-py3-none-any.whl"
SDIST = "c_pkg-0.1.tar.gz"


@pytest.fixture
def index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    make_wheel(folder, "Foo.Bar", "1.0", requires=["b"], requires_python=">=3.8")
    make_wheel(folder, "Foo.Bar", "1.1", requires=["b"], requires_python=">=3.8")
    make_wheel(folder, "b", "2.0", requires_python="<4,>=3.8", payload=50_000)
    (folder / SDIST).write_bytes(b"not really a tarball, but the index does not open sdists")
    (folder / "README.txt").write_text("neither a wheel nor an sdist: not listed")
    return folder


def options(**kw: object) -> IndexOptions:
    return IndexOptions(yanked={FOO_NEW: YANK_REASON}, **kw)  # type: ignore[arg-type]


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self._attrs: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self.links.append({**self._attrs, "text": data})
            self._attrs = None


def anchors(body: str) -> dict[str, dict[str, str | None]]:
    p = Anchors()
    p.feed(body)
    return {str(a["text"]): a for a in p.links}


async def test_project_list_json_and_html(index: Path) -> None:
    async with Emulator(index=index) as emu, httpx.AsyncClient() as client:
        assert emu.index_url == f"http://127.0.0.1:{emu.port}/simple/"
        r = await client.get(emu.index_url, headers={"Accept": JSON})
        assert r.status_code == 200 and r.headers["content-type"] == JSON
        doc = r.json()
        assert doc["meta"]["api-version"] == "1.1"
        assert [p["name"] for p in doc["projects"]] == ["b", "c-pkg", "foo-bar"]

        r = await client.get(emu.index_url)  # httpx sends */*: HTML, as PyPI does
        assert r.headers["content-type"] == "text/html"
        assert r.headers["vary"] == "Accept"
        links = anchors(r.text)
        assert sorted(links) == ["b", "c-pkg", "foo-bar"]
        assert links["foo-bar"]["href"] == "foo-bar/"


async def test_project_page_json(index: Path) -> None:
    async with Emulator(index=index, index_options=options()) as emu:
        async with httpx.AsyncClient() as client:
            page = emu.index_url + "foo-bar/"
            r = await client.get(page, headers={"Accept": PIP_ACCEPT})
        assert r.status_code == 200 and r.headers["content-type"] == JSON
        doc = r.json()
    assert doc["meta"] == {"api-version": "1.1"} and doc["name"] == "foo-bar"
    assert doc["versions"] == ["1.0", "1.1"]
    files = {f["filename"]: f for f in doc["files"]}
    assert sorted(files) == [FOO_OLD, FOO_NEW]
    for name, f in files.items():
        digest = sha256(index / name)
        md_digest = hashlib.sha256(metadata_of(index / name)).hexdigest()
        assert f["hashes"] == {"sha256": digest}
        assert f["url"] == f"../../files/{name}#sha256={digest}"
        assert f["requires-python"] == ">=3.8"
        assert f["size"] == (index / name).stat().st_size
        assert f["core-metadata"] == f["dist-info-metadata"] == {"sha256": md_digest}
    assert files[FOO_OLD]["yanked"] is False
    assert files[FOO_NEW]["yanked"] == YANK_REASON


async def test_project_page_html(index: Path) -> None:
    emu = Emulator(index=index, index_options=options())
    async with emu, httpx.AsyncClient() as client:
        r = await client.get(emu.index_url + "b/", headers={"Accept": "text/html"})
        assert r.headers["content-type"] == "text/html"
        raw, b = r.text, anchors(r.text)[B]
        r = await client.get(emu.index_url + "foo-bar/", headers={"Accept": VND_HTML})
        assert r.headers["content-type"] == VND_HTML
        foo = anchors(r.text)
    digest = sha256(index / B)
    md = "sha256=" + hashlib.sha256(metadata_of(index / B)).hexdigest()
    assert b["href"] == f"../../files/{B}#sha256={digest}"
    assert b["data-requires-python"] == "<4,>=3.8"  # escaped in the page, unescaped here
    assert b["data-core-metadata"] == b["data-dist-info-metadata"] == md
    assert "data-yanked" not in b
    assert foo[FOO_NEW]["data-yanked"] == YANK_REASON
    assert "data-yanked" not in foo[FOO_OLD]
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in raw


ACCEPT_CASES = [
    # (json, html), Accept, expected Content-Type
    ((True, True), None, "text/html"),
    ((True, True), PIP_ACCEPT, JSON),
    ((True, True), "text/html", "text/html"),
    ((True, True), VND_HTML, VND_HTML),
    ((True, True), f"{JSON};q=0.5, text/html;q=0.9", "text/html"),
    ((True, True), f"{JSON};q=0.9, text/html;q=0.9", JSON),  # a tie goes to JSON
    ((True, True), "*/*", "text/html"),  # JSON only when named, as on PyPI
    ((True, True), "application/*", JSON),
    ((True, True), f"*/*, {JSON};q=0.5", "text/html"),
    ((True, True), "application/vnd.pypi.simple.latest+json", JSON),
    ((True, True), "text/*, application/*;q=0", "text/html"),
    ((True, True), "image/png", "text/html"),  # nothing acceptable: the default
    ((False, True), PIP_ACCEPT, VND_HTML),
    ((False, True), JSON, "text/html"),
    ((True, False), "text/html", JSON),  # the one format enabled
]


async def test_accept_negotiation(index: Path) -> None:
    async with Emulator(index=index) as emu, httpx.AsyncClient() as client:
        got = []
        for (js, ht), accept, _ in ACCEPT_CASES:
            emu.index_options = IndexOptions(json=js, html=ht)  # read per request
            req = client.build_request("GET", emu.index_url + "b/")
            if accept is None:
                del req.headers["Accept"]
            else:
                req.headers["Accept"] = accept
            r = await client.send(req)
            assert r.status_code == 200
            body_is_json = r.content.startswith(b"{")
            assert body_is_json == (r.headers["content-type"] == JSON)
            got.append(r.headers["content-type"])
    assert got == [want for _, _, want in ACCEPT_CASES]


async def test_metadata_files(index: Path) -> None:
    async with Emulator(index=index) as emu, httpx.AsyncClient() as client:
        r = await client.get(emu.url(f"/files/{B}.metadata"))
        assert r.status_code == 200 and r.content == metadata_of(index / B)
        r = await client.get(emu.url(f"/files/{SDIST}.metadata"))
        assert r.status_code == 404

        # The proxy that drops the key: nothing advertised, yet the files are there.
        emu.index_options = IndexOptions(advertise_metadata=False)
        r = await client.get(emu.index_url + "b/", headers={"Accept": JSON})
        (entry,) = r.json()["files"]
        assert "core-metadata" not in entry and "dist-info-metadata" not in entry
        r = await client.get(emu.index_url + "b/", headers={"Accept": "text/html"})
        assert "metadata" not in r.text
        r = await client.get(emu.url(f"/files/{B}.metadata"))
        assert r.status_code == 200 and r.content == metadata_of(index / B)

        emu.index_options = IndexOptions(metadata=False)
        r = await client.get(emu.index_url + "b/", headers={"Accept": JSON})
        (entry,) = r.json()["files"]
        assert entry["core-metadata"] is False
        r = await client.get(emu.url(f"/files/{B}.metadata"))
        assert r.status_code == 404


async def test_sdist_listed_without_metadata(index: Path) -> None:
    async with Emulator(index=index) as emu, httpx.AsyncClient() as client:
        r = await client.get(emu.index_url + "c-pkg/", headers={"Accept": JSON})
        (entry,) = r.json()["files"]
    assert entry["filename"] == SDIST and entry["core-metadata"] is False
    assert entry["requires-python"] is None and r.json()["versions"] == ["0.1"]


@pytest.mark.parametrize("hashes_in", ["hashes", "fragment", "both", "none"])
async def test_hashes_in_and_absolute_urls(index: Path, hashes_in: str) -> None:
    opts = IndexOptions(hashes_in=hashes_in, absolute_urls=True)
    async with Emulator(index=index, index_options=opts) as emu, httpx.AsyncClient() as client:
        page = emu.index_url + "b/"
        (entry,) = (await client.get(page, headers={"Accept": JSON})).json()["files"]
        html = anchors((await client.get(page)).text)[B]
        url, _, fragment = entry["url"].partition("#")
        assert url == emu.url(f"/files/{B}")
        assert html["href"] == entry["url"]
        body = (await client.get(url)).content
    digest = hashlib.sha256(body).hexdigest()
    assert digest == sha256(index / B)
    in_json = hashes_in in ("hashes", "both")
    in_url = hashes_in in ("fragment", "both")
    assert entry["hashes"] == ({"sha256": digest} if in_json else {})
    assert fragment == (f"sha256={digest}" if in_url else "")


async def test_unknown_project_and_redirects(index: Path) -> None:
    async with Emulator(index=index) as emu, httpx.AsyncClient() as client:
        assert (await client.get(emu.index_url + "nope/")).status_code == 404
        assert (await client.get(emu.index_url + "a/b/")).status_code == 404
        assert (await client.get(emu.url(f"/files/{B}x"))).status_code == 404
        assert (await client.get(emu.url("/files/README.txt.metadata"))).status_code == 404
        for odd in ("Foo_Bar/", "FOO.bar/", "foo-bar"):
            r = await client.get(emu.index_url + odd)
            assert r.status_code == 301 and r.headers["location"] == "/simple/foo-bar/"
        r = await client.get(emu.index_url + "Foo..Bar/", follow_redirects=True)
        assert r.status_code == 200 and str(r.url) == emu.index_url + "foo-bar/"
        r = await client.get(emu.url("/simple"))
        assert r.status_code == 301 and r.headers["location"] == "/simple/"
    assert [row["status"] for row in emu.log[:2]] == [404, 404]


async def test_file_download_with_range(index: Path) -> None:
    data = (index / B).read_bytes()
    async with Emulator(index=index) as emu, httpx.AsyncClient() as client:
        r = await client.get(emu.url(f"/files/{B}"), headers={"Range": "bytes=100-1099"})
        assert r.status_code == 206 and r.content == data[100:1100]
        assert r.headers["content-range"] == f"bytes 100-1099/{len(data)}"
        etag = r.headers["etag"]
        r = await client.get(
            emu.url(f"/files/{B}"), headers={"Range": "bytes=1100-", "If-Range": etag}
        )
        assert r.status_code == 206 and r.content == data[1100:]
        assert emu.sha256(f"/files/{B}") == hashlib.sha256(data).hexdigest()
    assert [(row["path"], row["start"], row["end"]) for row in emu.log] == [
        (f"/files/{B}", 100, 1100),
        (f"/files/{B}", 1100, len(data)),
    ]


def pip_env() -> dict[str, str]:
    """This machine's pip config adds find-links and extra indexes: keep pip to our index."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


PIP_CASES = {
    # id: (json, html, advertise_metadata), the media type pip gets
    "html": ((False, True, True), VND_HTML),
    "both": ((True, True, True), JSON),
    "json": ((True, False, True), JSON),
    "unadvertised": ((True, True, False), JSON),
}


@pytest.mark.parametrize("case", PIP_CASES)
async def test_pip_download(index: Path, tmp_path: Path, case: str) -> None:
    (json_on, html_on, advertise), media = PIP_CASES[case]
    dest = tmp_path / "dest"
    opts = options(json=json_on, html=html_on, advertise_metadata=advertise)
    async with Emulator(index=index, index_options=opts) as emu:
        cmd = [sys.executable, "-m", "pip", "download", "-vv", "--no-deps", "--no-cache-dir"]
        cmd += ["--index-url", emu.index_url, "-d", str(dest), "Foo_Bar"]
        done = await trio.run_process(
            cmd, env=pip_env(), capture_stdout=True, capture_stderr=True, check=False
        )
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out + done.stderr.decode(errors="replace")
    assert f"/simple/foo-bar/ as {media}" in out  # pip's debug line "Fetched page ... as ..."
    # 1.1 is yanked: pip takes 1.0, and has checked its sha256 from the page.
    assert [p.name for p in dest.iterdir()] == [FOO_OLD]
    assert sha256(dest / FOO_OLD) == sha256(index / FOO_OLD)
    fetched = [row["path"] for row in emu.log if row["status"] == 200]
    assert f"/files/{FOO_OLD}" in fetched
    # PEP 658: pip reads the advertised .metadata before the wheel, and without it, not at all.
    assert (f"/files/{FOO_OLD}.metadata" in fetched) == advertise
    assert json.dumps(emu.log)  # the log stays serializable with index rows in it


async def test_faults_hit_files_not_pages(index: Path) -> None:
    link = Link(faults=(Fault("status", status=503), Fault("close", every=10_000)))
    async with Emulator(index=index, link=link) as emu, httpx.AsyncClient() as client:
        r = await client.get(emu.index_url + "b/")
        assert r.status_code == 200 and B in r.text
        r = await client.head(emu.index_url + "b/")
        assert r.status_code == 200 and int(r.headers["content-length"]) > len(B)
        r = await client.get(emu.url(f"/files/{B}"))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert [(row["path"], row["fault"]) for row in emu.log] == [
        ("/simple/b/", None),
        ("/simple/b/", None),
        (f"/files/{B}", "status"),
    ]
