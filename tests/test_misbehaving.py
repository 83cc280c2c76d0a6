"""Servers that misbehave as real ones do, each a seeded fault of the link emulator, over
loopback: captive portals, load-balanced nodes with ETags of their own, redirects to signed
URLs that expire, ranges answered gzip-encoded or as multipart/byteranges, a wrong 416,
`bytes a-b/*`, a range from an earlier start, and files that change between runs with no
validator or only a weak one. First what the emulator sends, then what the engine makes of it.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch import Options, Progress, Result, download
from segfetch.cli.options import parse_fault
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import DownloadError, RetriesExhausted
from segfetch.testing.emulator import (
    FAULT_KINDS,
    PORTAL_PAGE,
    Emulator,
    Fault,
    Link,
    SyntheticFile,
)
from segfetch.testing.wheelmaker import make_wheel

SIZE = 1 << 20
F = "/f.bin"
PLAIN = Link()
SLOW = Link(rate=512 << 10)  # 2 MiB/s over 4 connections: slow enough to interrupt
FAST = RetryPolicy(max_tries=4, base=0.01, cap=0.05)
OPTS = Options(connections=4, min_segment=64 * 1024, policy=FAST)
Row = dict[str, object]


def emu(link: Link = PLAIN) -> Emulator:
    return Emulator({F: SyntheticFile(SIZE)}, link=link)


def faulty(*faults: Fault, base: Link = PLAIN) -> Link:
    return replace(base, faults=faults)


def control(dest: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dest.with_name(dest.name + ".part.json").read_text())
    return data


async def settled(e: Emulator) -> list[Row]:
    """The log once every connection has closed: the client is gone, nothing more comes."""
    with trio.fail_after(5):
        while e.open_connections:
            await trio.sleep(0.01)
    return e.log


async def cancelled_unkept(url: str, dest: Path) -> None:
    """A download cancelled once a quarter of it arrived, that keeps nothing to resume."""
    with trio.move_on_after(10) as scope:

        def stop_early(p: Progress) -> None:
            if p.size and p.done >= p.size // 4:
                scope.cancel()

        await download(url, dest, OPTS, progress=stop_early)
    assert scope.cancelled_caught
    assert not dest.with_name(dest.name + ".part.json").exists()


async def interrupted(url: str, dest: Path, options: Options = OPTS, **kw: Any) -> list[Any]:
    """A download cancelled (as Ctrl-C would) once a quarter of the file is on disk; returns
    the byte ranges the control file claims."""
    with trio.move_on_after(10) as scope:

        def stop_early(p: Progress) -> None:
            if p.size and p.done >= p.size // 4:
                scope.cancel()

        await download(url, dest, options, progress=stop_early, **kw)
    assert scope.cancelled_caught, "the download ended before it could be interrupted"
    done: list[Any] = control(dest)["done"]
    assert done
    return done


def count(rows: list[Row], key: str = "fault") -> Counter[object]:
    return Counter(row[key] for row in rows)


def is_one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message
    return message


# -- what the emulator sends ------------------------------------------------------------------


async def test_portal_page_after_some_requests() -> None:
    async with emu(faulty(Fault("portal", after=1))) as e, httpx.AsyncClient() as client:
        r = await client.get(e.url(F), headers={"Range": "bytes=0-9"})
        assert r.status_code == 206 and r.content == e.content(F)[:10]
        r = await client.get(e.url(F), headers={"Range": "bytes=10-19"})
        assert r.status_code == 200 and r.content == PORTAL_PAGE
        assert r.headers["content-type"].startswith("text/html")
        assert "etag" not in r.headers and "content-range" not in r.headers
        assert [(x["status"], x["fault"]) for x in e.log] == [(206, None), (200, "portal")]


async def test_node_etags_differ_per_connection() -> None:
    async with emu(faulty(Fault("node_etag", nodes=3))) as e:
        heads = []
        for _ in range(8):  # a client per request: a new connection each time
            async with httpx.AsyncClient() as client:
                heads.append((await client.head(e.url(F))).headers)
        tags = {h["etag"] for h in heads}
        assert len(tags) > 1  # several nodes answered...
        assert {h["last-modified"] for h in heads} == {heads[0]["last-modified"]}  # ...alike
        assert {h["content-length"] for h in heads} == {str(SIZE)}
        # If-Range with every node's ETag: the node that made it serves the range, the
        # others the whole file, as a real server would.
        statuses = set()
        for tag in sorted(tags):
            async with httpx.AsyncClient() as client:
                r = await client.get(e.url(F), headers={"Range": "bytes=5-9", "If-Range": tag})
                statuses.add(r.status_code)
                assert r.content == (e.content(F)[5:10] if r.status_code == 206 else e.content(F))
        assert 200 in statuses
        gets = [x for x in e.log if x["method"] == "GET"]
        assert count(gets)["node_etag"] == sum(1 for x in gets if x["status"] == 200)


async def test_expire_redirects_to_tokens_that_run_out() -> None:
    link = faulty(Fault("expire", after=2))
    async with emu(link) as e, httpx.AsyncClient(follow_redirects=True) as client:
        r = await client.get(e.url(F), headers={"Range": "bytes=0-9"})
        assert r.status_code == 206 and r.content == e.content(F)[:10]
        first = str(r.url)
        assert "/signed/" in first and first.endswith(F) and r.history[0].status_code == 302
        r = await client.get(first, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == e.content(F)[10:20]
        r = await client.get(first, headers={"Range": "bytes=20-29"})
        assert r.status_code == 403  # two requests served: expired
        r = await client.get(e.url(F), headers={"Range": "bytes=20-29"})
        assert r.status_code == 206 and r.content == e.content(F)[20:30]
        assert str(r.url) != first  # a new token
        assert [(x["status"], x["fault"]) for x in e.log] == [
            (302, None), (206, None), (206, None), (403, "expire"), (302, None), (206, None),
        ]  # fmt: skip


async def test_expire_by_bytes_cuts_the_body() -> None:
    async with emu(faulty(Fault("expire", every=100_000))) as e:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            got = b""
            async with client.stream("GET", e.url(F)) as r:
                signed = str(r.url)
                with pytest.raises(httpx.TransportError):
                    async for chunk in r.aiter_raw():
                        got += chunk
            assert 50_000 <= len(got) < 150_000 and got == e.content(F)[: len(got)]
        async with httpx.AsyncClient() as client:
            assert (await client.get(signed)).status_code == 403
        log = await settled(e)
        assert [(x["status"], x["fault"], x["sent"]) for x in log][1:] == [
            (200, "expire", len(got)),
            (403, "expire", 0),
        ]


async def test_range_shapes() -> None:
    """gzip_range, multipart, unknown_total, shifted_start and short_range, as they go on
    the wire."""
    data = emu().content(F)
    faults = ("gzip_range", "multipart", "unknown_total", "shifted_start", "short_range")
    for kind in faults:
        every = 300 if kind == "short_range" else 1000
        async with emu(faulty(Fault(kind, every=every))) as e, httpx.AsyncClient() as client:
            h = {"Range": "bytes=5000-5999", "Accept-Encoding": "identity"}
            async with client.stream("GET", e.url(F), headers=h) as r:
                raw = b"".join([chunk async for chunk in r.aiter_raw()])
            assert r.status_code == 206 and e.log[0]["fault"] == kind
            if kind == "gzip_range":
                assert r.headers["content-encoding"] == "gzip" and "content-length" not in r.headers
                assert r.headers["content-range"] == f"bytes 5000-5999/{SIZE}"
                assert gzip.decompress(raw) == data[5000:6000]
            elif kind == "multipart":
                ctype = r.headers["content-type"]
                assert ctype.startswith("multipart/byteranges; boundary=")
                boundary = ctype.partition("boundary=")[2].encode()
                assert "content-range" not in r.headers
                assert raw == (
                    b"--" + boundary + b"\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Range: bytes 5000-5999/" + str(SIZE).encode() + b"\r\n\r\n"
                    + data[5000:6000] + b"\r\n--" + boundary + b"--\r\n"
                )  # fmt: skip
                assert int(r.headers["content-length"]) == len(raw)
            elif kind == "unknown_total":
                assert r.headers["content-range"] == "bytes 5000-5999/*"
                assert raw == data[5000:6000]
            elif kind == "short_range":  # the first 300 bytes of those asked
                assert r.headers["content-range"] == f"bytes 5000-5299/{SIZE}"
                assert raw == data[5000:5300]
            else:  # an earlier start (by `every` bytes), the same end
                assert r.headers["content-range"] == f"bytes 4000-5999/{SIZE}"
                assert raw == data[4000:6000]
            sent = {"shifted_start": 2000, "short_range": 300}.get(kind, 1000)
            assert e.log[0]["sent"] == sent


async def test_wrong_416_answers_only_the_first_request() -> None:
    async with emu(faulty(Fault("wrong_416"))) as e, httpx.AsyncClient() as client:
        r = await client.get(e.url(F), headers={"Range": "bytes=0-"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */0"
        r = await client.get(e.url(F))
        assert r.status_code == 200 and r.content == e.content(F)
        assert count(e.log) == Counter({"wrong_416": 1, None: 1})


async def test_weak_etag_never_matches_if_range() -> None:
    async with emu(Link(weak_etag=True, last_modified=False)) as e, httpx.AsyncClient() as c:
        r = await c.head(e.url(F))
        tag = r.headers["etag"]
        assert tag.startswith('W/"') and "last-modified" not in r.headers
        r = await c.get(e.url(F), headers={"Range": "bytes=0-9", "If-Range": tag})
        assert r.status_code == 200 and r.content == e.content(F)  # strong comparison only


def test_every_kind_from_the_command_line() -> None:
    specs = [
        "portal:rate=0.5",
        "portal:after=3",
        "node_etag:nodes=3",
        "expire:after=2,every=1M",
        "gzip_range",
        "multipart:rate=0.5",
        "wrong_416:after=1",
        "unknown_total:limit=2",
        "shifted_start:every=4K,rate=0.2",
    ]
    faults = [parse_fault(spec) for spec in specs]
    assert faults[3] == Fault("expire", after=2, every=1 << 20)
    assert faults[2].nodes == 3 and faults[8].every == 4096
    assert {f.kind for f in faults} <= FAULT_KINDS
    with pytest.raises(ValueError, match="nodes"):
        Fault("node_etag", nodes=0)


STOPS = [
    pytest.param(signal.SIGTERM, id="SIGTERM"),
    pytest.param(
        signal.SIGINT,
        id="SIGINT",
    ),
]


@pytest.mark.parametrize("stop", STOPS)
async def test_emulate_serves_a_portal(tmp_path: Path, stop: signal.Signals) -> None:
    """`segfetch emulate --fault portal:rate=0.5` from the command line, its log naming it."""
    log = tmp_path / "log.jsonl"
    argv = [sys.executable, "-m", "segfetch", "emulate", "--port", "0", "--log", str(log)]
    argv += ["--file", "/f.bin:64K", "--fault", "portal:rate=0.5", "--fault", "node_etag:nodes=2"]
    proc = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        head = b""
        with trio.fail_after(10):
            while b"\n" not in head:
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "segfetch emulate ended before serving"
                head += chunk
        line = head.decode().splitlines()[0]
        assert line.startswith("serving on http://127.0.0.1:") and "portal" in line
        base = line.split()[2].rstrip("/")
        statuses = []
        async with httpx.AsyncClient() as client:
            for i in range(8):
                r = await client.get(base + "/f.bin", headers={"Range": f"bytes={i}-{i}"})
                statuses.append(r.status_code)
        assert set(statuses) == {200, 206}  # some portal pages, some bytes
    finally:
        proc.send_signal(stop)
        with trio.fail_after(10):
            code = await proc.wait()
    err = await proc.stderr.receive_some(65536)
    assert (code, err) == (0, b"segfetch emulate: stopped\n")
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["status"] == 200 for r in rows] == [s == 200 for s in statuses]
    assert {r["fault"] for r in rows if r["status"] == 200} == {"portal"}


# -- a captive portal -------------------------------------------------------------------------


async def test_portal_on_a_rerun_keeps_the_saved_bytes(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    async with emu(SLOW) as e:
        claimed = await interrupted(e.url(F), dest)
        await settled(e)
        e.link = faulty(Fault("portal"))
        before = len(e.log)
        with pytest.raises(RetriesExhausted) as failed:
            await download(e.url(F), dest, OPTS)
        assert "HTML page" in is_one_line(failed.value)
        # Every try of the first request met the portal, and so may have the first asks of
        # the other three connections, sent beside the first (the saved size is known):
        # those are dropped unjudged once the first answer fails.
        seen = count((await settled(e))[before:])
        assert set(seen) == {"portal"}
        assert FAST.max_tries <= seen["portal"] <= FAST.max_tries + OPTS.cap - 1
        assert control(dest)["done"] == claimed and not dest.exists()  # nothing given up

        e.link = PLAIN
        result = await download(e.url(F), dest, OPTS)
        assert result.sha256 == e.sha256(F) and dest.read_bytes() == e.content(F)
        assert result.resumed == sum(b - a for a, b in claimed) > 0 and result.restarts == 0


async def test_portal_on_a_first_run_is_never_the_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    async with emu(faulty(Fault("portal"))) as e:
        proc = await segfetch("get", e.url(F), "-o", str(out / "f.bin"), "--max-tries", "2")
        assert proc.returncode == 1
        assert "HTML page" in one_line_error(proc)
        assert list(out.iterdir()) == []
        assert count(await settled(e)) == Counter({"portal": 2})


async def test_portal_now_and_then(tmp_path: Path) -> None:
    """The portal answers three requests in the middle of a download: never written, each
    retried, and the rest completes the file."""
    async with emu(faulty(Fault("portal", after=1, limit=3))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert result.sha256 == e.sha256(F) and result.restarts == 0
        assert result.retries >= count(e.log)["portal"] == 3


# -- load-balanced nodes with ETags of their own ----------------------------------------------


async def test_node_etags_download_without_restarts(tmp_path: Path) -> None:
    async with emu(faulty(Fault("node_etag", nodes=3))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS, sha256=e.sha256(F))
        assert result.sha256 == e.sha256(F) and result.restarts == 0
        log = await settled(e)
        # The nodes' 200s are the cost: a few, then If-Range carries Last-Modified.
        assert 0 < count(log)["node_etag"] <= OPTS.cap
        assert result.requests == len(log)


async def test_node_etags_and_a_real_change_are_never_spliced(tmp_path: Path) -> None:
    link = faulty(Fault("node_etag", nodes=3), Fault("change", after=3), base=SLOW)
    async with emu(link) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert (tmp_path / "f.bin").read_bytes() == e.content(F, version=1)
        assert result.sha256 == e.sha256(F, version=1) and result.restarts >= 1


async def test_node_etags_on_a_rerun_after_a_real_change(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    async with emu(faulty(Fault("node_etag", nodes=3), base=SLOW)) as e:
        await interrupted(e.url(F), dest)
        e.link = faulty(Fault("node_etag", nodes=3), Fault("change"))
        await download(e.url(F), dest, OPTS)
        assert dest.read_bytes() == e.content(F, version=1)


# -- redirects to signed URLs that expire -----------------------------------------------------


def signed_206(log: list[Row]) -> list[Row]:
    return [x for x in log if x["status"] == 206 and str(x["path"]).startswith("/signed/")]


async def test_expire_each_segment_continues_where_it_stopped(tmp_path: Path) -> None:
    """One connection: each token runs out mid-body (or after 3 requests); the segment goes
    on from the byte where it stopped, under a new token; no byte is sent twice."""
    link = faulty(Fault("expire", after=3, every=200_000))
    async with emu(link) as e:
        result = await download(e.url(F), tmp_path / "f.bin", replace(OPTS, connections=1))
        assert result.sha256 == e.sha256(F) and result.restarts == 0
        log = await settled(e)
        parts = signed_206(log)
        assert [x["start"] for x in parts] == [0] + [
            int(str(x["start"])) + int(str(x["sent"])) for x in parts[:-1]
        ]
        assert sum(int(str(x["sent"])) for x in log) == SIZE  # nothing wasted
        statuses = count(log, "status")
        assert statuses[403] >= 3 and statuses[302] == statuses[403] + 1
        assert all(x["fault"] == "expire" for x in log if x["status"] == 403)


def test_expire_with_four_connections(tmp_path: Path) -> None:
    trio.run(expire_with_four_connections, tmp_path)


async def expire_with_four_connections(tmp_path: Path) -> None:
    link = faulty(Fault("expire", after=2, every=300_000), base=Link(rate=1 << 20))
    async with emu(link) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert result.sha256 == e.sha256(F) and result.restarts == 0
        sent = sum(int(str(x["sent"])) for x in await settled(e))
        assert sent < SIZE * 1.25  # each segment went on where it stopped


def test_expire_error_names_the_url_that_refused(tmp_path: Path) -> None:
    trio.run(expire_error_names_the_url_that_refused, tmp_path)


async def expire_error_names_the_url_that_refused(tmp_path: Path) -> None:
    # Every signed URL is refused, fresh or not.
    async with emu(faulty(Fault("expire"), Fault("status", status=403))) as e:
        with pytest.raises(DownloadError) as failed:
            await download(e.url(F), tmp_path / "f.bin", OPTS)
        message = is_one_line(failed.value)
        assert not (tmp_path / "f.bin").exists()
        assert f"{e.url(F)} answered 403" not in message
        assert "/signed/" in message and "redirect" in message


# -- gzip, multipart, unknown totals, wrong 416, shifted starts ------------------------------


async def test_gzip_ranges_end_in_one_decoded_stream(tmp_path: Path) -> None:
    """A server that always compresses its ranges: no gzip byte is ever written as the
    file's. A part of a coded stream is refused; asked for all of it ("bytes=0-"), the
    answer is all of the file gzipped (``bytes 0-N/N+1``), decoded as it arrives. (Every
    try was refused, and the download failed.)"""
    async with emu(faulty(Fault("gzip_range"))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert result.sha256 == e.sha256(F) and result.size == e.size(F)
        assert result.requests == 2  # the first range, then all of it
        assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]

        before = len(e.log)
        proc = await segfetch("get", e.url(F), "-o", str(tmp_path / "g.bin"))
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "g.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()
        assert len(await settled(e)) - before == 2


async def test_gzip_on_some_ranges_is_retried_and_verified(tmp_path: Path) -> None:
    """A proxy that compresses some answers: those are tried again, the file verified."""
    async with emu(faulty(Fault("gzip_range", rate=0.3))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS, sha256=e.sha256(F))
        assert result.sha256 == e.sha256(F)
        fired = count(await settled(e))["gzip_range"]
        assert fired == 0 or result.retries >= 1


async def test_multipart_completes_and_resumes(tmp_path: Path) -> None:
    async with emu(faulty(Fault("multipart"))) as e:
        result = await download(e.url(F), tmp_path / "a.bin", OPTS)
        assert result.sha256 == e.sha256(F) and result.retries == 0
        assert count(await settled(e)) == Counter({"multipart": result.requests})

        e.link = SLOW
        await interrupted(e.url(F), tmp_path / "b.bin")
        e.link = faulty(Fault("multipart"))
        result = await download(e.url(F), tmp_path / "b.bin", OPTS)
        assert result.sha256 == e.sha256(F) and result.resumed > 0


async def test_unknown_total_completes(tmp_path: Path) -> None:
    async with emu(faulty(Fault("unknown_total"))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS, sha256=e.sha256(F))
        # At most one retry: a bounded first request learns no size, an open-ended one does.
        assert result.size == SIZE and result.retries <= 1 and result.requests > 2
        log = await settled(e)
        assert count(log[:-1]) == Counter({"unknown_total": result.requests - 1})
        # and what follows its end is asked once: the 416 says it is the end
        assert (log[-1]["range"], log[-1]["status"]) == (f"bytes={SIZE}-", 416)


@pytest.mark.parametrize("sha256", [False, True])
async def test_unknown_total_cut_short(tmp_path: Path, sha256: bool) -> None:
    """A server that cuts every answer to 64 KiB and says "bytes a-b/*": the file is where
    a request for what follows gets 416, not where the first answer stopped (curl keeps
    64 KiB there, with exit 0). Its bytes come then from one request without Range."""
    async with emu(faulty(Fault("unknown_total", every=64 * 1024))) as e:
        dest = tmp_path / "f.bin"
        result = await download(e.url(F), dest, OPTS, sha256=e.sha256(F) if sha256 else None)
        assert result.size == SIZE and dest.read_bytes() == e.content(F)
        log = await settled(e)
        assert (log[-1]["range"], log[-1]["status"], log[-1]["fault"]) == (None, 200, None)


def test_unknown_total_on_a_rerun(tmp_path: Path) -> None:
    trio.run(unknown_total_on_a_rerun, tmp_path)


async def unknown_total_on_a_rerun(tmp_path: Path) -> None:
    async with emu(SLOW) as e:
        await interrupted(e.url(F), tmp_path / "f.bin")
        e.link = faulty(Fault("unknown_total"))
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert result.sha256 == e.sha256(F) and result.resumed > 0


@pytest.mark.parametrize("kind", ["short_range", "unknown_total"])
async def test_answers_cut_short_with_the_size_known(tmp_path: Path, kind: str) -> None:
    """Every answer at most 64 KiB of the range asked, its Content-Range saying so (with the
    total, or "*" where the index gave the size): each is written where it says, the rest
    asked for next, on every connection; no answer is a failure, none is asked twice."""
    cut = 64 * 1024
    async with emu(faulty(Fault(kind, every=cut))) as e:
        dest = tmp_path / "f.bin"
        result = await download(e.url(F), dest, OPTS, sha256=e.sha256(F), size=SIZE)
        assert dest.read_bytes() == e.content(F) and result.retries == 0
        log = await settled(e)
        assert {x["status"] for x in log} == {206} and sum(int(str(x["sent"])) for x in log) == SIZE
        assert result.requests == len(log) >= SIZE // cut and result.connections > 1


async def test_wrong_416_is_not_an_empty_file(tmp_path: Path) -> None:
    async with emu(faulty(Fault("wrong_416"))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert result.size == SIZE and (tmp_path / "f.bin").read_bytes() == e.content(F)
        log = await settled(e)
        assert [(x["status"], x["fault"]) for x in log[:2]] == [(416, "wrong_416"), (200, None)]


async def test_shifted_start_is_never_written(tmp_path: Path) -> None:
    async with emu(faulty(Fault("shifted_start", rate=0.5, limit=6))) as e:
        result = await download(e.url(F), tmp_path / "f.bin", OPTS)
        assert (tmp_path / "f.bin").read_bytes() == e.content(F)
        shifted = [x for x in await settled(e) if x["fault"] == "shifted_start"]
        assert shifted and result.retries >= len(shifted)
        for x in shifted:  # an earlier start than asked, the same end
            first, _, last = str(x["range"]).removeprefix("bytes=").partition("-")
            assert int(str(x["start"])) < int(first) and x["end"] == int(last) + 1


# -- a file changed between runs, with no validator or only a weak ETag ---------------------

BLIND = {
    "none": Link(etag=False, last_modified=False),
    "weak": Link(weak_etag=True, last_modified=False),
}


@pytest.mark.parametrize("validators", sorted(BLIND))
async def test_blind_change_starts_over(tmp_path: Path, validators: str) -> None:
    """Nothing tells the runs' files apart and nothing checks the result: the file comes
    as one answer from byte 0 (several would be several versions if it changed between
    them), nothing is kept for a rerun, and the rerun starts over."""
    dest = tmp_path / "f.bin"
    link = replace(BLIND[validators], rate=SLOW.rate)
    async with emu(link) as e:
        await cancelled_unkept(e.url(F), dest)
        e.link = faulty(Fault("change"), base=BLIND[validators])
        result = await download(e.url(F), dest, OPTS)
        assert result.resumed == 0 and dest.read_bytes() == e.content(F, version=1)
    # Each run: its probe from byte 0, then the file as one plain GET.
    ranges = [r["range"] for r in e.log if r["path"] == F]
    assert None in ranges and all(r is None or str(r).startswith("bytes=0-") for r in ranges)


@pytest.mark.parametrize("validators", sorted(BLIND))
async def test_blind_change_with_sha256_ends_verified(tmp_path: Path, validators: str) -> None:
    dest = tmp_path / "f.bin"
    async with emu(replace(BLIND[validators], rate=SLOW.rate)) as e:
        new = e.sha256(F, version=1)
        await interrupted(e.url(F), dest, sha256=new)  # checked: kept without validators
        e.link = faulty(Fault("change"), base=BLIND[validators])
        result = await download(e.url(F), dest, OPTS, sha256=new)
        assert result.sha256 == new and dest.read_bytes() == e.content(F, version=1)


@pytest.mark.parametrize("validators", sorted(BLIND))
async def test_blind_change_of_a_wheel_starts_over(tmp_path: Path, validators: str) -> None:
    """A .whl without validators nor sha256 is no exception (its CRCs skip bytes where
    builds of one size differ): nothing kept to resume, and it ends as the new wheel."""
    served, spare = tmp_path / "served", tmp_path / "spare"
    old = make_wheel(served, "blind", "1.0", payload=SIZE, seed=1)
    for seed in range(2, 40):  # the deflated RECORD's size varies with the payload's hash
        new = make_wheel(spare, "blind", "1.0", payload=SIZE, seed=seed)
        if new.stat().st_size == old.stat().st_size:
            break
    assert old.stat().st_size == new.stat().st_size and old.read_bytes() != new.read_bytes()
    dest = tmp_path / old.name
    path = "/" + old.name
    async with Emulator(root=served, link=replace(BLIND[validators], rate=SLOW.rate)) as e:
        await cancelled_unkept(e.url(path), dest)
        os.replace(new, old)  # same name, same size, other bytes
        e.link = BLIND[validators]
        result: Result = await download(e.url(path), dest, OPTS)
        assert dest.read_bytes() == old.read_bytes() and result.sha256 == e.sha256(path)
        assert result.resumed == 0
