"""engine/body.py: a Content-Length body is read straight from httpx's connection (plain and
TLS), the connection is reused after it, and a short or silent answer behaves as httpx's own
reading would: a TransportError the engine retries. A chunked body is passed on a chunk at a
time, each once the CRLF after it came."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trustme
from helpers import connect_proxy, tls_front

from segfetch.engine.body import body_chunks, insides
from segfetch.engine.client import make_client
from segfetch.engine.options import Network
from segfetch.testing.emulator import Emulator

DATA = os.urandom(3 * 1024 * 1024 + 17)


async def ranged(client: httpx.AsyncClient, url: str, start: int, end: int) -> bytes:
    """Bytes start..end (inclusive) through body_chunks, checking it read them directly."""
    request = client.build_request("GET", url, headers={"Range": f"bytes={start}-{end}"})
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 206
        assert insides(response) is not None  # not httpx's reader
        return b"".join([chunk async for chunk in body_chunks(response)])
    finally:
        await response.aclose()


async def test_ranges_read_directly_keep_their_connection() -> None:
    async with Emulator({"/f.bin": DATA}) as emu, make_client(4, 10) as client:
        url = emu.url("/f.bin")
        assert await ranged(client, url, 0, 99) == DATA[:100]  # all of it came with the head
        assert await ranged(client, url, 100, len(DATA) - 1) == DATA[100:]
        assert await ranged(client, url, 5, 1_000_004) == DATA[5:1_000_005]
        conns = {row["conn"] for row in emu.log}
    assert len(emu.log) == 3 and len(conns) == 1  # one connection, reused after each body


async def test_a_body_over_tls_and_a_proxy_tunnel_is_read_directly(tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(bundle)
    async with (
        Emulator({"/f.bin": DATA}) as emu,
        tls_front(emu.port, context) as port,
        connect_proxy() as (proxy_port, asked),
    ):
        url = f"https://127.0.0.1:{port}/f.bin"
        async with make_client(4, 10, Network(cafile=bundle)) as client:
            assert await ranged(client, url, 7, len(DATA) - 1) == DATA[7:]
            assert await ranged(client, url, 0, 6) == DATA[:7]
        proxy = Network(proxy=f"http://127.0.0.1:{proxy_port}", cafile=bundle)
        async with make_client(4, 10, proxy) as client:
            assert await ranged(client, url, 3, len(DATA) - 1) == DATA[3:]
            assert await ranged(client, url, 0, 2) == DATA[:3]
        assert asked == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]  # one tunnel, kept
        assert len({row["conn"] for row in emu.log}) == 2  # one connection per client


@contextlib.asynccontextmanager
async def raw_server(answer: Callable[[trio.SocketStream], object]) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that reads a request head and lets ``answer`` write: its URL."""

    async def handle(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            if not (data := await stream.receive_some(4096)):
                return
            head += data
        with contextlib.suppress(trio.BrokenResourceError):
            await answer(stream)  # type: ignore[misc]

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/f.bin"
        nursery.cancel_scope.cancel()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n"


async def read_all(url: str, timeout: float = 10) -> bytes:
    async with make_client(1, timeout) as client, client.stream("GET", url) as response:
        assert insides(response) is not None
        return b"".join([chunk async for chunk in body_chunks(response)])


async def test_an_answer_cut_short_is_a_transport_error() -> None:
    async def short(stream: trio.SocketStream) -> None:
        await stream.send_all(HEAD + b"x" * 150_000)
        await stream.aclose()

    async with raw_server(short) as url:
        with pytest.raises(httpx.RemoteProtocolError, match="50000 bytes short"):
            await read_all(url)


async def test_a_silent_answer_times_out_as_httpx_would() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await stream.send_all(HEAD + b"x" * 1000)
        await trio.sleep_forever()

    async with raw_server(silent) as url:
        with pytest.raises(httpx.ReadTimeout):
            await read_all(url, timeout=0.3)


async def chunks_of(answer: bytes) -> tuple[list[bytes], BaseException | None]:
    """What body_chunks passes on of a chunked ``answer`` (then closed), and how it ended."""

    async def send(stream: trio.SocketStream) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + answer)

    got: list[bytes] = []
    async with (
        raw_server(send) as url,
        make_client(1, 10) as client,
        client.stream("GET", url) as response,
    ):
        assert insides(response) is not None  # h11's chunks are read here
        try:
            async for chunk in body_chunks(response):
                got.append(chunk)
        except httpx.TransportError as exc:
            return got, exc
    return got, None


async def test_a_chunked_answer_is_passed_on_chunk_by_chunk() -> None:
    got, error = await chunks_of(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert (got, error) == ([b"hello", b" world"], None)


@pytest.mark.parametrize(
    "rest",
    [b"", b"\r\n6\r\n world\r\n", b"\r\n6\r\n world\r\n0\r\n\r\n", b"x" * 20],
)
async def test_a_chunk_bigger_than_what_came_is_never_passed_on(rest: bytes) -> None:
    """A size line that says more than its chunk holds: the CRLF and size line after it
    would be read as data, then fail; the chunks before it are right, that one is dropped."""
    got, error = await chunks_of(b"5\r\nhello\r\n9\r\n world" + rest)
    assert got == [b"hello"]
    assert isinstance(error, httpx.RemoteProtocolError)
