"""Answers whose status and headers disagree, end to end over loopback."""

from __future__ import annotations

from pathlib import Path

import trio
from test_hostile import FAST, fetch_from, range_asked, read_head

from segfetch.engine.options import Options

DATA = bytes(range(256)) * 2000  # 512 kB


async def test_a_206_mislabelled_200_is_asked_again_whole(tmp_path: Path) -> None:
    """Every range answered right but with status 200 (a servlet that forgot setStatus): the
    whole file through "bytes=0-", never the first range kept as the file (it was, exit 0)."""

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(DATA))
            reply = b"HTTP/1.1 200 OK\r\n"
            reply += b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(DATA))
            reply += b"Content-Length: %d\r\n\r\n" % (end - start + 1)
            await stream.send_all(reply + DATA[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == DATA
