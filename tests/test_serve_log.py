"""The server's log line for a request that failed: a file cut short because the upstream
answered 404 midway is said too (a 404 before any byte is only the client's answer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from segfetch.errors import HTTPStatusError
from segfetch.wheels.httpd import Cut, Reply, Request
from segfetch.wheels.index import IndexFile
from segfetch.wheels.localindex import IndexApp, Listing, SendFile

WHEEL = "a-1.0-py3-none-any.whl"


async def _ask(app: IndexApp, target: str) -> bytes:
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        stream = await trio.open_tcp_stream("127.0.0.1", app.port)
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        got = b""
        with trio.fail_after(10):
            try:
                while data := await stream.receive_some(65536):
                    got += data
            except trio.BrokenResourceError:  # the reset of a body cut short
                pass
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return got


def _app(send: SendFile, said: list[str]) -> IndexApp:
    """An index of one wheel, its file sent by ``send``, its log lines into ``said``."""

    async def listing(name: str, revalidate: bool) -> Listing:
        return [IndexFile(WHEEL, f"http://127.0.0.1:9/{WHEEL}")], False

    async def metadata(f: IndexFile) -> bytes | None:
        return None

    return IndexApp(listing, metadata, send, log=said.append)


@pytest.mark.parametrize("midway", [True, False])
async def test_a_404_midway_is_said_and_resets_the_client(tmp_path: Path, midway: bool) -> None:
    said: list[str] = []

    async def send(f: IndexFile, request: Request, reply: Reply) -> None:
        if midway:
            await reply.start(200, [("Content-Length", "10")])
            await reply.body(b"PK\x03")
        raise HTTPStatusError("the file went away upstream (404)", 404)

    got = await _ask(_app(send, said), f"/files/a/{WHEEL}")
    if midway:
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"PK\x03")
        assert said == [f"GET /files/a/{WHEEL} (cut short): the file went away upstream (404)"]
    else:
        assert got.startswith(b"HTTP/1.1 404 ") and said == []


async def test_a_body_cut_for_bytes_repaired_since_is_said(tmp_path: Path) -> None:
    """The client was reset with nothing on the server's log, though the README says the
    log says why (bytes sent before the download repaired them: the client must ask again)."""
    said: list[str] = []

    async def send(f: IndexFile, request: Request, reply: Reply) -> None:
        await reply.start(200, [("Content-Length", "10")])
        await reply.body(b"PK\x03")
        raise Cut("bytes sent before the download repaired them were damaged; ask again")

    got = await _ask(_app(send, said), f"/files/a/{WHEEL}")
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"PK\x03")
    assert said == [
        f"GET /files/a/{WHEEL} (cut short): bytes sent before the download repaired them "
        "were damaged; ask again"
    ]
