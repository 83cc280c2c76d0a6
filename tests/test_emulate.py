"""The link emulator over real loopback sockets. No timing is asserted."""

from __future__ import annotations

import hashlib
import json
import resource
from pathlib import Path

import httpx
import pytest
import trio

from segfetch.testing.emulator import BLOCK, Emulator, Fault, Link, SyntheticFile, parse_range

SIZE = 100_000
F = "/f.bin"


def emu(link: Link | None = None) -> Emulator:
    return Emulator({F: SyntheticFile(SIZE)}, link=link or Link())


async def get_partial(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> tuple[bytes, BaseException | None]:
    """GET a body that may break off: the bytes that arrived, and the error if it did."""
    got = bytearray()
    async with client.stream("GET", url, headers=headers) as r:
        try:
            async for chunk in r.aiter_raw():
                got += chunk
        except httpx.TransportError as err:
            return bytes(got), err
    return bytes(got), None


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=2-", 10) == (2, 10)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    assert parse_range("bytes=5-100", 10) == (5, 10)
    assert parse_range("bytes=1-2,4-5", 10) is None
    assert parse_range("bytes=4-2", 10) is None
    assert parse_range("items=1-2", 10) is None
    assert parse_range("bytes=-", 10) is None


def test_synthetic_blocks_carry_their_index() -> None:
    e = emu()
    data = e.content(F)
    assert len(data) == SIZE
    assert data[BLOCK * 3 : BLOCK * 3 + 16] == (3).to_bytes(8, "big") + (0).to_bytes(8, "big")
    assert e.read(F, 5000, 9000) == data[5000:9000]
    assert e.content(F, version=1) != data
    assert e.sha256(F) == hashlib.sha256(data).hexdigest()
    other = Emulator({F: SyntheticFile(SIZE)}, link=Link(seed=1))
    assert other.content(F) != data


async def test_full_ranged_suffix_416_head_404() -> None:
    async with emu() as e, httpx.AsyncClient() as client:
        data = e.content(F)
        r = await client.get(e.url(F))
        assert r.status_code == 200 and r.content == data
        assert r.headers["accept-ranges"] == "bytes"
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["etag"].startswith('"') and "last-modified" in r.headers

        r = await client.get(e.url(F), headers={"Range": "bytes=1000-4999"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes 1000-4999/{SIZE}"
        assert r.content == data[1000:5000]

        r = await client.get(e.url(F), headers={"Range": "bytes=-100"})
        assert r.status_code == 206 and r.content == data[-100:]
        assert r.headers["content-range"] == f"bytes {SIZE - 100}-{SIZE - 1}/{SIZE}"

        r = await client.get(e.url(F), headers={"Range": f"bytes={SIZE}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{SIZE}"

        r = await client.head(e.url(F))
        assert r.status_code == 200 and r.headers["content-length"] == str(SIZE)
        assert r.content == b""

        r = await client.get(e.url("/nope"))
        assert r.status_code == 404
        r = await client.post(e.url(F))
        assert r.status_code == 405

        # Keep-alive: every request above went over one connection.
        assert len(e.log) == 7
        assert {entry["conn"] for entry in e.log} == {0}
        assert [entry["status"] for entry in e.log] == [200, 206, 206, 416, 200, 404, 405]
        assert e.log[1]["start"] == 1000 and e.log[1]["end"] == 5000
        assert e.log[1]["sent"] == 4000 and e.log[4]["sent"] == 0


async def test_if_range() -> None:
    async with emu() as e, httpx.AsyncClient() as client:
        r = await client.head(e.url(F))
        etag, lm = r.headers["etag"], r.headers["last-modified"]
        for validator in (etag, lm):
            h = {"Range": "bytes=10-19", "If-Range": validator}
            r = await client.get(e.url(F), headers=h)
            assert r.status_code == 206 and r.content == e.content(F)[10:20]
        for validator in ('"other"', "W/" + etag, "Mon, 01 Jan 2001 00:00:00 GMT"):
            h = {"Range": "bytes=10-19", "If-Range": validator}
            r = await client.get(e.url(F), headers=h)
            assert r.status_code == 200 and r.content == e.content(F)


async def test_no_validators() -> None:
    async with emu(Link(etag=False, last_modified=False)) as e, httpx.AsyncClient() as client:
        r = await client.get(e.url(F), headers={"Range": "bytes=0-9"})
        assert r.status_code == 206
        assert "etag" not in r.headers and "last-modified" not in r.headers


async def test_root_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    blob = bytes(range(256)) * 1000
    (tmp_path / "sub" / "a.whl").write_bytes(blob)
    async with Emulator(root=tmp_path) as e, httpx.AsyncClient() as client:
        r = await client.get(e.url("/sub/a.whl"), headers={"Range": "bytes=70000-"})
        assert r.status_code == 206 and r.content == blob[70000:]
        assert e.sha256("/sub/a.whl") == hashlib.sha256(blob).hexdigest()
        r = await client.get(e.url("/../etc/passwd"))
        assert r.status_code == 404


async def test_bytes_file_and_log_path(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    async with Emulator({"/b": b"hello world"}, log_path=log) as e, httpx.AsyncClient() as c:
        r = await c.get(e.url("/b"), headers={"Range": "bytes=6-"})
        assert r.content == b"world"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == e.log and lines[0]["sent"] == 5


async def test_reset() -> None:
    async with emu(Link(faults=(Fault("reset", every=20_000),))) as e:
        async with httpx.AsyncClient() as client:
            got, err = await get_partial(client, e.url(F))
        assert isinstance(err, httpx.ReadError | httpx.RemoteProtocolError)
        assert e.content(F).startswith(got) and len(got) < SIZE
        (entry,) = e.log
        sent = entry["sent"]
        assert entry["fault"] == "reset" and isinstance(sent, int) and 10_000 <= sent < 30_000


async def test_close_is_byte_exact() -> None:
    async with emu(Link(faults=(Fault("close", every=20_000),))) as e:
        async with httpx.AsyncClient() as client:
            h = {"Range": "bytes=5000-"}
            got, err = await get_partial(client, e.url(F), h)
        assert isinstance(err, httpx.RemoteProtocolError)
        (entry,) = e.log
        assert entry["fault"] == "close" and entry["sent"] == len(got)
        assert got == e.content(F)[5000 : 5000 + len(got)] and 0 < len(got) < SIZE - 5000


async def test_stall_then_close() -> None:
    fault = Fault("stall", every=20_000, stall_seconds=0.2)
    async with emu(Link(faults=(fault,))) as e, httpx.AsyncClient() as client:
        got, err = await get_partial(client, e.url(F))
        assert isinstance(err, httpx.RemoteProtocolError)
        assert e.log[0]["fault"] == "stall" and e.log[0]["sent"] == len(got)


async def test_stall_ends_when_client_leaves() -> None:
    async with emu(Link(faults=(Fault("stall"),))) as e:
        async with httpx.AsyncClient(timeout=0.3) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(e.url(F))
        with trio.fail_after(5):
            while not e.log:
                await trio.sleep(0.01)
        assert e.log[0]["fault"] == "stall" and e.log[0]["sent"] == 0


async def test_flip() -> None:
    async with emu(Link(faults=(Fault("flip", every=30_000),))) as e:
        async with httpx.AsyncClient() as client:
            r = await client.get(e.url(F))
        data = e.content(F)
        assert r.status_code == 200 and len(r.content) == SIZE
        diffs = [i for i in range(SIZE) if r.content[i] != data[i]]
        assert len(diffs) == 1 and r.content[diffs[0]] == data[diffs[0]] ^ 0xFF
        assert e.log[0]["fault"] == "flip"


async def test_ignore_and_wrong_range() -> None:
    link = Link(faults=(Fault("ignore_range", limit=1), Fault("wrong_range", limit=1)))
    async with emu(link) as e, httpx.AsyncClient() as client:
        data = e.content(F)
        h = {"Range": "bytes=1000-1999"}
        r = await client.get(e.url(F), headers=h)
        assert r.status_code == 200 and r.content == data
        r = await client.get(e.url(F), headers=h)
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes 999-1998/{SIZE}"
        assert r.content == data[999:1999]
        r = await client.get(e.url(F), headers=h)  # both limits used up
        assert r.status_code == 206 and r.content == data[1000:2000]
        assert [x["fault"] for x in e.log] == ["ignore_range", "wrong_range", None]


async def test_status_429_with_retry_after() -> None:
    fault = Fault("status", status=429, retry_after="2", after=1, limit=1)
    async with emu(Link(faults=(fault,))) as e, httpx.AsyncClient() as client:
        statuses = [(await client.get(e.url(F))).status_code for _ in range(3)]
        assert statuses == [200, 429, 200]
        r = await client.get(e.url(F))
        assert [x["fault"] for x in e.log] == [None, "status", None, None]
        assert e.log[1]["sent"] == 0
    async with emu(Link(faults=(Fault("status", rate=1.0),))) as e, httpx.AsyncClient() as c:
        r = await c.get(e.url(F))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


async def test_change_after_k() -> None:
    async with emu(Link(faults=(Fault("change", after=2),))) as e, httpx.AsyncClient() as c:
        r0 = await c.get(e.url(F))
        r1 = await c.get(e.url(F), headers={"Range": "bytes=0-9"})
        h = {"Range": "bytes=10-19", "If-Range": r0.headers["etag"]}
        r2 = await c.get(e.url(F), headers=h)
        assert r0.headers["etag"] == r1.headers["etag"] != r2.headers["etag"]
        assert r0.headers["last-modified"] != r2.headers["last-modified"]
        assert r0.content == e.content(F) and r1.content == e.content(F)[:10]
        # The old ETag no longer matches: the whole new file, never a splice.
        assert r2.status_code == 200 and r2.content == e.content(F, version=1)
        assert [x["version"] for x in e.log] == [0, 0, 1]


async def run_faulty(link: Link) -> list[tuple[object, ...]]:
    async with emu(link) as e, httpx.AsyncClient() as client:
        for start in (0, 0, 30_000, 30_000, 60_000):
            await get_partial(client, e.url(F), {"Range": f"bytes={start}-"})
        return [(x["start"], x["sent"], x["fault"]) for x in e.log]


async def test_same_seed_same_faults() -> None:
    faults = (Fault("close", every=15_000), Fault("flip", every=10_000, rate=0.5))
    a = await run_faulty(Link(faults=faults, seed=7))
    b = await run_faulty(Link(faults=faults, seed=7))
    c = await run_faulty(Link(faults=faults, seed=8))
    assert a == b
    assert a != c
    # Retries of the same range start draw fresh offsets (attempt is part of the seed).
    assert a[0] != a[1] or a[2] != a[3]


async def test_max_connections() -> None:
    async with emu(Link(max_connections=2)) as e:
        clients = [httpx.AsyncClient() for _ in range(3)]
        try:
            for c in clients[:2]:  # each keeps its connection open in its pool
                assert (await c.get(e.url(F))).status_code == 200
            r = await clients[2].get(e.url(F))
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert e.log[-1]["fault"] == "max_connections" and e.log[-1]["conn"] == 2
            await clients[0].aclose()
            with trio.fail_after(5):
                while e.open_connections >= 2:
                    await trio.sleep(0.01)
            assert (await clients[2].get(e.url(F))).status_code == 200
        finally:
            for c in clients:
                await c.aclose()


async def test_huge_synthetic_file() -> None:
    size = 1 << 30
    e = Emulator({"/big": SyntheticFile(size)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    async with e, httpx.AsyncClient() as client:
        start = size - 10_000 - 123
        r = await client.get(e.url("/big"), headers={"Range": f"bytes={start}-"})
        assert r.status_code == 206 and r.content == e.read("/big", start, size)
        block = (size - BLOCK) // BLOCK
        assert r.content[-BLOCK : -BLOCK + 8] == block.to_bytes(8, "big")
    digest = e.sha256("/big")
    assert len(digest) == 64 and e.sha256("/big") == digest  # second call is cached
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 100 * 1024


async def test_pacing_sends_all_bytes() -> None:
    # Rates are measured by hand and in benchmarks; here only the bytes are checked.
    link = Link(rate=2 << 20, shared_rate=4 << 20, rtt=0.01)
    async with emu(link) as e, httpx.AsyncClient() as client:
        results: list[bytes] = []

        async def fetch(a: int, b: int) -> None:
            r = await client.get(e.url(F), headers={"Range": f"bytes={a}-{b - 1}"})
            results.append(r.content)

        async with trio.open_nursery() as n:
            for a in range(0, SIZE, 25_000):
                n.start_soon(fetch, a, a + 25_000)
        assert sorted(results) == sorted(
            e.content(F)[a : a + 25_000] for a in range(0, SIZE, 25_000)
        )


async def test_client_leaving_mid_body_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    async with emu(Link(rate=1 << 20)) as e:
        stream = await trio.open_tcp_stream("127.0.0.1", e.port)
        await stream.send_all(b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await stream.receive_some(4096)
        await stream.aclose()  # leave with most of the body unsent
        with trio.fail_after(5):
            while not e.log:
                await trio.sleep(0.01)
        sent = e.log[0]["sent"]
        assert isinstance(sent, int) and sent < SIZE
    assert not [rec for rec in caplog.records if rec.levelname in ("ERROR", "WARNING")]


async def test_stopping_ends_a_stall() -> None:
    e = emu(Link(faults=(Fault("stall"),)))
    async with e:
        stream = await trio.open_tcp_stream("127.0.0.1", e.port)
        await stream.send_all(b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
    with trio.fail_after(5):
        assert await stream.receive_some(4096) == b""  # the server closed it on the way out
    await stream.aclose()
    assert e.log[0]["fault"] == "stall" and e.log[0]["sent"] == 0


def test_the_banner_names_every_limit_of_the_link() -> None:
    """It said "no rate limit, 2.0 MiB/s shared", and left out --max-connections and
    --no-etag (bench/emulate review)."""
    from segfetch.cli.emulate import _describe

    link = Link(shared_rate=2 << 20, max_connections=3, etag=False)
    assert _describe(link) == "2.0 MiB/s shared, 503 beyond 3 connections, no ETag"
    assert _describe(Link()) == "no rate limit"
