"""``segfetch serve`` of a ``file:`` index (a mirror on a shared disk): each file is checked
against its page's sha256 once while it stays the same file, not on every request (a large
wheel on a slow disk would hold every request of pip past its timeout); a file changed
since is checked again, and refused if it no longer matches."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from helpers import count_hashes, file_index
from test_serve import serving

from segfetch.engine.download import make_client
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.cache import Cache
from segfetch.wheels.serve import run


async def test_a_file_index_file_is_hashed_once_while_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path, "fi-a", "1.0", payload=100_000)
    name = wheel.name
    index = file_index(tmp_path / "mirror", wheel)
    kept = tmp_path / "mirror" / "files" / name
    data = kept.read_bytes()
    hashed = count_hashes(monkeypatch, "segfetch.wheels.files.sha256_of")
    async with (
        make_client(4, 10) as client,
        trio.open_nursery() as nursery,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        app = await nursery.start(partial(run, [index], Cache(tmp_path / "c"), client))
        base = f"http://127.0.0.1:{app.port}"
        assert (await http.get(f"{base}/simple/fi-a/")).status_code == 200
        url = f"{base}/files/fi-a/{name}"
        assert (await http.get(url)).content == data
        assert (await http.head(url)).status_code == 200
        r = await http.get(url, headers={"Range": "bytes=0-9"})
        assert (r.status_code, r.content) == (206, data[:10])
        assert hashed == [kept]  # once for three requests
        # Changed on the disk (another build under the same name): checked again, refused.
        kept.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        os.utime(kept, ns=(1, 1))
        assert (await http.get(url)).status_code == 409  # (bytes that fail their hash)
        assert hashed == [kept, kept]
        nursery.cancel_scope.cancel()


async def test_a_file_checked_for_one_page_is_checked_again_for_a_page_with_another_hash(
    tmp_path: Path,
) -> None:
    """The check was remembered by URL: once one project's page (the right sha256) had the
    file served, another page listing the same file with another sha256 (or the page
    republished with a new one, the file not yet synced) got the bytes, 200."""
    wheel = make_wheel(tmp_path, "fi-b", "1.0", payload=50_000)
    name = wheel.name
    index = file_index(tmp_path / "mirror", wheel)
    other = tmp_path / "mirror" / "simple" / "fi-other"
    other.mkdir()
    link = f'<a href="../../files/{name}#sha256={"0" * 64}">{name}</a>'
    (other / "index.html").write_text(f"<html><body>{link}</body></html>")
    async with (
        serving([index], tmp_path / "c") as (app, _),
        httpx.AsyncClient(trust_env=False) as http,
    ):
        base = f"http://127.0.0.1:{app.port}"
        for project in ("fi-b", "fi-other"):
            assert (await http.get(f"{base}/simple/{project}/")).status_code == 200
        good = await http.get(f"{base}/files/fi-b/{name}")
        assert good.status_code == 200
        for _ in range(2):
            assert (await http.get(f"{base}/files/fi-other/{name}")).status_code == 409
