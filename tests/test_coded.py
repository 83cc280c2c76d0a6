"""Servers that send the file gzip-encoded though it was asked for as it is (Apache's
``SetOutputFilter DEFLATE`` with ``force-gzip``, a proxy or CDN that compresses everything):
the whole answer is decoded as it arrives, on one connection, and the decoded bytes are the
file (checked by a sha256 where one is known). Pure tests of the decoder and the rules, then
end to end over loopback."""

from __future__ import annotations

import gzip
import hashlib
import random
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from helpers import one_line_error, segfetch
from test_hostile import FAST, Handler, range_asked, read_head, serve

from segfetch.engine import rules, versions
from segfetch.engine.coding import PIECE, Damaged, Decoder
from segfetch.engine.download import download
from segfetch.engine.options import Options
from segfetch.engine.result import Progress, Result
from segfetch.errors import RetriesExhausted, ServerError

DATA = random.Random(5).randbytes(200_000) + bytes(300_000)  # 500 kB, half of it zeros
GZ = gzip.compress(DATA, mtime=0)
NAME = "http://h.example/pkg-1.0-py3-none-any.whl"


def decode(coding: str, blob: bytes, step: int) -> bytes:
    decoder, out = Decoder(coding), []
    for i in range(0, len(blob), step):
        out += list(decoder.feed(blob[i : i + step]))
    out.append(decoder.end())
    return b"".join(out)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("step", [1, 1000, 1 << 20])
def test_the_decoder_reads_gzip_and_both_kinds_of_deflate(step: int) -> None:
    """Several gzip members end to end (and zeros after them) are one stream, as gzip reads
    them; "deflate" with a zlib header, or raw (old IIS), as curl takes it."""
    more = gzip.compress(b"more", mtime=0)
    assert decode("gzip", GZ + more + bytes(10), step) == DATA + b"more"
    assert decode("deflate", zlib.compress(DATA), step) == DATA
    assert decode("deflate", raw_deflate(DATA), step) == DATA


@pytest.mark.parametrize(
    "blob",
    [GZ[:-4], GZ[:100], GZ[:1], GZ[:50] + b"x" * 100 + GZ[150:], GZ[:2] + b"x" * 100],
)
def test_a_stream_cut_short_or_damaged_is_never_taken(blob: bytes) -> None:
    with pytest.raises(Damaged):
        decode("gzip", blob, 1000)
    with pytest.raises(Damaged):
        decode("deflate", zlib.compress(DATA)[:10] + b"x" * 100, 1000)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("step", [1, 1000, 1 << 20])
def test_bytes_that_are_no_such_coding_are_the_file(coding: str, step: int) -> None:
    """A wrong label (an S3 object's metadata, a CDN rule: "gzip" on bytes as they are):
    the bytes are the file, as curl, wget and pip keep them; it was refused as damaged."""
    blob = b"PK\x03\x04" + DATA  # (a zip's first bytes: neither gzip's nor zlib's)
    assert decode(coding, blob, step) == blob


@pytest.mark.parametrize("step", [1, 1000])
@pytest.mark.parametrize("blob", [b"", b"x", b"x = 1\nprint(x)\n", b"80,90\n" * 50, b"x " + DATA])
def test_a_short_file_or_one_that_starts_as_zlib_labelled_gzip_is_the_file(
    blob: bytes, step: int
) -> None:
    """An empty file, one byte, text that begins as a zlib header would ("x ", "80"):
    labelled gzip, they were refused as damaged where curl and aria2c keep them."""
    assert decode("gzip", blob, step) == blob


def test_a_bomb_is_decoded_a_piece_at_a_time() -> None:
    """200 MB of zeros in a 200 kB gzip: never more than a piece in memory at once."""
    bomb = gzip.compress(bytes(200 << 20), mtime=0)
    pieces = Decoder("gzip").feed(bomb)
    assert len(next(pieces)) == PIECE
    assert max(len(p) for p in pieces) <= PIECE


def heads(**fields: str) -> httpx.Headers:
    return httpx.Headers({k.replace("_", "-"): v for k, v in fields.items()})


def test_only_all_of_a_file_in_one_known_coding_is_decoded() -> None:
    gz = heads(Content_Encoding="gzip", Content_Length="4000")
    assert rules.decoded_whole(gz, NAME, 200) == "gzip"
    assert rules.decoded_whole(heads(Content_Encoding="x-gzip"), NAME, 200) == "gzip"
    assert rules.decoded_whole(heads(Content_Encoding="Deflate"), NAME, 200) == "deflate"
    # A 206 of all of its coded bytes (Apache's mod_deflate, for a small file): all of it.
    whole = heads(Content_Encoding="gzip", Content_Range="bytes 0-3999/4000")
    assert rules.decoded_whole(whole, NAME, 206) == "gzip"
    part = heads(Content_Encoding="gzip", Content_Range="bytes 0-99/4000")
    assert rules.decoded_whole(part, NAME, 206) is None
    for other in ("br", "gzip, gzip", "compress"):
        assert rules.decoded_whole(heads(Content_Encoding=other), NAME, 200) is None
    # A gzip file labelled gzip is the file as it is (kept, not decoded).
    assert rules.decoded_whole(gz, "http://h.example/pkg-1.0.tar.gz", 200) is None


def test_the_probe_takes_a_coded_whole_file_whatever_its_length_says() -> None:
    """Its Content-Length is the compressed size: not checked against the file's size, nor
    against a saved state (nothing saved fits a stream decoded from byte 0)."""
    gz = heads(Content_Encoding="gzip", Content_Length="4000", ETag='"v1-gzip"')
    known = versions.Known(9000, '"v1"', None)
    for saved in (None, known):
        verdict = rules.judge_probe(200, gz, 0, 1000, saved, 9000, NAME)
        assert verdict == rules.Whole(None, "gzip")
    # A part of a coded stream: refused, and all of it asked next ("bytes=0-").
    part = heads(Content_Encoding="gzip", Content_Range="bytes 0-99/4000")
    refused = rules.judge_probe(206, part, 0, 100, None, None, NAME)
    assert isinstance(refused, rules.Retry) and refused.open
    assert rules.judge_whole(200, gz, 9000, NAME) == rules.Whole(None, "gzip")
    # Mid-run, ranges answered with the whole file coded: one stream (after three in a row).
    segment = rules.judge_segment(200, gz, 1000, 2000, known, NAME)
    assert isinstance(segment, rules.Retry) and segment.whole


def always_gzip(body: bytes, chunked: bool = False, coding: bytes = b"gzip") -> Handler:
    """Every answer is 200 with all of ``body`` (the file coded), whatever Range asked."""

    async def handler(stream: trio.SocketStream) -> None:
        while await read_head(stream):
            head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nVary: Accept-Encoding\r\n" % coding
            if not chunked:
                await stream.send_all(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                continue
            await stream.send_all(head + b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 50_000):
                part = body[i : i + 50_000]
                await stream.send_all(b"%x\r\n%s\r\n" % (len(part), part))
            await stream.send_all(b"0\r\n\r\n")

    return handler


async def fetch(handler: Handler, dest: Path, **kwargs: Any) -> Result:
    options = kwargs.pop("options", Options(connections=4, min_segment=64 * 1024, policy=FAST))
    failed: Exception | None = None
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        try:  # (raised out of the nursery, it would come in a group)
            with trio.fail_after(30):
                result = await download(f"http://127.0.0.1:{port}/f.whl", dest, options, **kwargs)
        except Exception as exc:
            failed = exc
        nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed
    return result


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("known", [False, True])
async def test_a_server_that_always_gzips_gives_the_file_decoded(
    tmp_path: Path, chunked: bool, known: bool
) -> None:
    """Apache's force-gzip: a 200 with all of the file gzipped, to ranges too. The file
    decoded, its sha256 checked; progress counts decoded bytes against the file's size
    where it is known (--size, the index), and names no size where only the compressed
    one was said. (Refused on every try: exit 1.)"""
    seen: list[Progress] = []
    sha = hashlib.sha256(DATA).hexdigest() if known else None
    size = len(DATA) if known else None
    result = await fetch(
        always_gzip(GZ, chunked), tmp_path / "f.whl", sha256=sha, size=size, progress=seen.append
    )
    assert (tmp_path / "f.whl").read_bytes() == DATA
    assert (result.size, result.sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert result.connections == 1 and result.retries == 0
    assert {p.size for p in seen} == {size}
    assert (seen[-1].done, seen[-1].prefix) == (len(DATA), len(DATA))
    assert [p.name for p in tmp_path.iterdir()] == ["f.whl"]


@pytest.mark.parametrize("body", [zlib.compress(DATA), raw_deflate(DATA)], ids=["zlib", "raw"])
async def test_deflate_is_decoded_too(tmp_path: Path, body: bytes) -> None:
    await fetch(always_gzip(body, coding=b"deflate"), tmp_path / "f.whl")
    assert (tmp_path / "f.whl").read_bytes() == DATA


@pytest.mark.parametrize("how", ["closed", "cut"])
async def test_a_stream_cut_short_is_asked_again_from_its_start(tmp_path: Path, how: str) -> None:
    """The first answer's connection closes mid-body, or its gzip stream is cut short (its
    Content-Length the cut one's): asked again from the start, the file written once from
    byte 0, never a splice nor a truncated file."""
    answers = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while await read_head(stream):
            answers[0] += 1
            body = GZ[: len(GZ) // 2] if answers[0] == 1 else GZ
            length = len(body) if how == "cut" or answers[0] > 1 else len(GZ)
            head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            await stream.send_all(head % length + body)
            if answers[0] == 1:
                return

    result = await fetch(handler, tmp_path / "f.whl")
    assert (tmp_path / "f.whl").read_bytes() == DATA
    assert result.retries == 1 and answers[0] == 2


async def test_a_damaged_stream_every_time_fails_with_one_line(tmp_path: Path) -> None:
    damaged = GZ[:1000] + bytes(5000) + GZ[6000:]
    with pytest.raises(RetriesExhausted) as failed:
        await fetch(always_gzip(damaged), tmp_path / "f.whl")
    assert "gzip stream is damaged" in str(failed.value) and "\n" not in str(failed.value)
    assert list(tmp_path.iterdir()) == []


async def test_a_bomb_stops_at_the_size_the_index_gave(tmp_path: Path) -> None:
    """A small gzip that decodes to far more than the file's known size: stopped there."""
    bomb = gzip.compress(bytes(50 << 20), mtime=0)
    with pytest.raises(ServerError, match="sent more than 500000 bytes once its gzip"):
        await fetch(always_gzip(bomb), tmp_path / "f.whl", size=len(DATA))
    assert list(tmp_path.iterdir()) == []


def labelled_gzip(body: bytes) -> Handler:
    """Ranges answered as asked, each labelled gzip though its bytes are the file's."""

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(body))
            reply = b"HTTP/1.1 206 Partial Content\r\nContent-Encoding: gzip\r\n"
            reply += b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(body))
            reply += b"Content-Length: %d\r\n\r\n" % (end - start + 1)
            await stream.send_all(reply + body[start : end + 1])

    return handler


@pytest.mark.parametrize("known", [False, True])
async def test_a_file_labelled_gzip_that_is_not_is_kept_as_it_came(
    tmp_path: Path, known: bool
) -> None:
    """Every range labelled gzip, its bytes the file's (hostile-server review): 5 tries
    failed with "its gzip stream is damaged", where curl and wget keep the bytes."""
    blob = b"PK\x03\x04" + DATA
    sha = hashlib.sha256(blob).hexdigest() if known else None
    await fetch(labelled_gzip(blob), tmp_path / "f.whl", sha256=sha)
    assert (tmp_path / "f.whl").read_bytes() == blob


@pytest.mark.parametrize("body", [b"", b"x", b"x = 1\nprint(x)\n"])
async def test_a_short_file_labelled_gzip_is_kept_as_it_came(tmp_path: Path, body: bytes) -> None:
    """nginx's add_header Content-Encoding gzip on an empty file, a byte, a line of Python:
    too short to fail decoding, each failed 5 tries as a gzip stream ended before its end
    (hostile-server review); curl and aria2c keep the bytes."""
    await fetch(always_gzip(body), tmp_path / "f.whl")
    assert (tmp_path / "f.whl").read_bytes() == body


def compressed_ranges(cap: int | None) -> Handler:
    """Apache's mod_deflate for a small file: a range is of the gzipped bytes (206, their
    Content-Range), answered in full up to ``cap`` bytes (None: all asked)."""

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(GZ))
            end = end if cap is None else min(end, start + cap - 1)
            label = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(GZ))
            reply = b"HTTP/1.1 206 Partial Content\r\nContent-Encoding: gzip\r\n" + label
            reply += b"Content-Length: %d\r\n\r\n" % (end - start + 1)
            await stream.send_all(reply + GZ[start : end + 1])

    return handler


async def test_a_range_of_the_compressed_bytes_is_asked_again_for_all_of_them(
    tmp_path: Path,
) -> None:
    """A part of the gzip stream is no part of the file: refused; "bytes=0-" then gets all
    of it, decoded. (Apache 2.4 with force-gzip answers so for files up to about 100 kB.)"""
    result = await fetch(compressed_ranges(None), tmp_path / "f.whl")
    assert (tmp_path / "f.whl").read_bytes() == DATA
    assert result.requests == 2


async def test_ranges_of_compressed_bytes_only_fail_within_the_tries(tmp_path: Path) -> None:
    """Never all of the coded stream at once: never a byte of it written as the file."""
    with pytest.raises(RetriesExhausted, match="gzip-encoded bytes"):
        await fetch(compressed_ranges(64 * 1024), tmp_path / "f.whl")
    assert list(tmp_path.iterdir()) == []


async def test_get_saves_the_decoded_file(tmp_path: Path) -> None:
    """``segfetch get`` from a server that always gzips: exit 0, the file as it is, its
    decoded size and sha256 in the summary (curl saves the gzip bytes; aria2c decodes only
    answers without a Content-Length)."""
    sha = hashlib.sha256(DATA).hexdigest()
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, always_gzip(GZ))
        url = f"http://127.0.0.1:{port}/f.whl"
        dest = tmp_path / "f.whl"
        proc = await segfetch("get", url, "-o", str(dest), "--sha256", sha, "--json")
        assert proc.returncode == 0, one_line_error(proc)
        assert dest.read_bytes() == DATA
        assert f'"size": {len(DATA)}' in proc.stdout.decode()
        bad = await segfetch("get", url, "-o", str(tmp_path / "g.whl"), "--size", "1000")
        assert bad.returncode == 1 and "sent more than 1000 bytes" in one_line_error(bad)
        nursery.cancel_scope.cancel()
    assert [p.name for p in tmp_path.iterdir()] == ["f.whl"]
