"""Validators that cannot go back in an If-Range as they came: bytes 0x80-0xFF in an ETag
(RFC 9110's etagc allows them), which httpx decodes by a guess and refuses to send."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from test_hostile import FAST, fetch_from, range_asked, range_head, read_head

from segfetch.engine.options import Options
from segfetch.engine.store import parse_state

DATA = bytes(range(256)) * 2000  # 512 kB


@pytest.mark.parametrize(
    "validators",
    [
        b'ETag: "\xe9t\xe9"\r\n',
        b'ETag: "\xe9t\xe9"\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n',
    ],
    ids=["etag", "etag+date"],
)
async def test_a_non_ascii_etag_is_no_traceback(tmp_path: Path, validators: bytes) -> None:
    """Ranges of a file whose ETag is not ASCII: the file (before: UnicodeEncodeError from
    httpx building the second request's If-Range, a traceback)."""

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(DATA))
            reply = range_head(start, end, len(DATA), extra=validators)
            await stream.send_all(reply + DATA[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


@pytest.mark.parametrize("key", ["etag", "last_modified"])
def test_a_control_file_with_a_non_ascii_validator_is_not_resumed(key: str) -> None:
    """(As an earlier version wrote it before its traceback: its If-Range cannot be sent.)"""
    raw = {"url": "http://127.0.0.1/f.bin", "size": 10, "done": [[0, 5]], key: '"\xe9"'}
    with pytest.raises(ValueError):
        parse_state(raw)
