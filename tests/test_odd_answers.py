"""Answers whose status and headers disagree, end to end over loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from test_hostile import FAST, fetch_from, range_asked, range_head, read_head, serve

from segfetch.engine.download import download
from segfetch.engine.options import Options

DATA = bytes(range(256)) * 2000  # 512 kB


async def test_a_206_mislabelled_200_is_asked_again_whole(tmp_path: Path) -> None:
    """Every range answered right but with status 200 (a servlet that forgot setStatus): the
    whole file through "bytes=0-", never the first range kept as the file (it was, exit 0)."""

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(DATA))
            reply = range_head(start, end, len(DATA), status=b"200 OK")
            await stream.send_all(reply + DATA[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == DATA


async def test_a_412_to_if_range_is_asked_without_it_where_a_sha256_checks(
    tmp_path: Path,
) -> None:
    """If-Range is no precondition (RFC 9110 13.1.5), but a server may answer it with 412
    (curl and aria2c never send it). Checked by a sha256: the rest asked without If-Range;
    unchecked: one line that says so (If-Range is what keeps a changed file unspliced)."""
    import hashlib

    from segfetch.errors import ServerError

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            if b"if-range:" in head.lower():
                refused = b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n"
                await stream.send_all(refused)
                continue
            start, end = range_asked(head, len(DATA))
            reply = range_head(start, end, len(DATA), extra=b'ETag: "v1"\r\n')
            await stream.send_all(reply + DATA[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    sha = hashlib.sha256(DATA).hexdigest()
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        url = f"http://127.0.0.1:{port}/f.bin"
        with trio.fail_after(30):
            await download(url, tmp_path / "f.bin", options, sha256=sha)
            assert (tmp_path / "f.bin").read_bytes() == DATA
            with pytest.raises(ServerError, match=r"412 .* give --sha256 to download it"):
                await download(url, tmp_path / "g.bin", options)
        nursery.cancel_scope.cancel()


async def test_a_200_to_if_range_by_date_is_asked_without_it_where_a_sha256_checks(
    tmp_path: Path,
) -> None:
    """Apache takes a Last-Modified in If-Range as weak for a file changed within the last
    minute (and sends no ETag with `FileETag None`): the whole file, same validators, to
    every range after the first. Checked by a sha256, the rest is asked without If-Range
    on every connection; it fell back to one stream (aria2c -x8: 3.9 s, segfetch -n 8: 27 s)."""
    modified = b"Last-Modified: Sat, 28 Nov 2026 09:38:10 GMT\r\n"
    whole: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            lower = head.lower()
            if b"if-range:" in lower or b"range:" not in lower:
                whole.append(head)
                reply = b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n" % (modified, len(DATA))
                await stream.send_all(reply + DATA)
                continue
            start, end = range_asked(head, len(DATA))
            await stream.send_all(
                range_head(start, end, len(DATA), extra=modified) + DATA[start : end + 1]
            )

    await _fetch_checked(
        tmp_path, handler, Options(connections=4, min_segment=64 * 1024, policy=FAST)
    )
    assert not [h for h in whole if b"range:" not in h.lower()]  # never one stream


async def test_ranges_ignored_after_if_range_was_dropped_come_as_one_stream(
    tmp_path: Path,
) -> None:
    """After If-Range by date is dropped (above), a server that ignores every range from
    then on still gives the file as one stream, checked by the sha256, not a failure."""
    modified = b"Last-Modified: Sat, 28 Nov 2026 09:38:10 GMT\r\n"
    asked = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            asked[0] += 1
            start, end = range_asked(head, len(DATA))
            if asked[0] > 1:
                start, end = 0, len(DATA) - 1
                reply = b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n" % (modified, len(DATA))
            else:
                reply = range_head(start, end, len(DATA), extra=modified)
            await stream.send_all(reply + DATA[start : end + 1])

    # (--max-tries 5, as by default)
    await _fetch_checked(tmp_path, handler, Options(connections=4, min_segment=64 * 1024))


async def _fetch_checked(tmp_path: Path, handler: Any, options: Options) -> None:
    """DATA from ``handler``'s server, with its sha256 given: the file as it is."""
    import hashlib

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        with trio.fail_after(30):
            await download(
                f"http://127.0.0.1:{port}/f.bin",
                tmp_path / "f.bin",
                options,
                sha256=hashlib.sha256(DATA).hexdigest(),
            )
        nursery.cancel_scope.cancel()
    assert (tmp_path / "f.bin").read_bytes() == DATA


async def test_progress_counts_a_whole_stream_after_an_eager_first_request(
    tmp_path: Path,
) -> None:
    """The size known (--size, the index), the first request goes beside the others; a
    server that ignores ranges then sends the file as one stream. Its progress said 0 bytes
    done to the end (the eager pass's count), and a reader of the growing .part (install's
    uv) saw no prefix."""
    from segfetch.engine.result import Progress

    async def handler(stream: trio.SocketStream) -> None:
        while await read_head(stream):
            reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(DATA)
            await stream.send_all(reply + DATA)

    seen: list[Progress] = []
    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        url = f"http://127.0.0.1:{port}/f.bin"
        with trio.fail_after(30):
            await download(url, tmp_path / "f.bin", options, size=len(DATA), progress=seen.append)
        nursery.cancel_scope.cancel()
    assert (tmp_path / "f.bin").read_bytes() == DATA
    last = seen[-1]
    assert (last.size, last.done, last.prefix) == (len(DATA),) * 3
