"""Servers that misbehave on purpose: bounded time and memory, one clean error, nothing kept."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import random
import subprocess
import sys
import zipfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.engine.download import download
from segfetch.engine.options import Options
from segfetch.engine.result import Progress, Result
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import DiskError, DownloadError, HashMismatch, RetriesExhausted

FAST = RetryPolicy(max_tries=2, base=0.01, cap=0.02)
Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def serve(nursery: trio.Nursery, handler: Handler) -> int:
    async def guarded(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await handler(stream)

    listeners = await nursery.start(partial(trio.serve_tcp, guarded, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def read_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


async def slow_loris(stream: trio.SocketStream) -> None:
    await read_head(stream)
    await stream.send_all(b"HTTP/1.1 206 Partial Content\r\n")
    for _ in range(600):  # a header byte every 50 ms, never finishing
        await stream.send_all(b"X")
        await trio.sleep(0.05)


async def huge_header(stream: trio.SocketStream) -> None:
    await read_head(stream)
    await stream.send_all(b"HTTP/1.1 200 OK\r\nX-Big: ")
    block = b"a" * 65536
    for _ in range(20 * 16):  # 20 MiB of one header line
        await stream.send_all(block)


async def redirect_to_self(stream: trio.SocketStream) -> None:
    while head := await read_head(stream):
        path = head.split(b" ")[1]
        await stream.send_all(
            b"HTTP/1.1 302 Found\r\nLocation: " + path + b"\r\nContent-Length: 0\r\n\r\n"
        )


async def redirect_to_a_bad_host(stream: trio.SocketStream) -> None:
    """To a host name no connection can encode: an empty part between dots."""
    while await read_head(stream):
        head = b"HTTP/1.1 302 Found\r\nLocation: http://a..b/x.whl\r\nContent-Length: 0\r\n"
        await stream.send_all(head + b"\r\n")


async def endless_body(stream: trio.SocketStream) -> None:
    await read_head(stream)
    await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"z" * 0x10000 + b"\r\n"
    for _ in range(2000):  # would be 128 MiB; the client must stop far earlier
        await stream.send_all(chunk)


@pytest.mark.parametrize(
    ("handler", "error", "words"),
    [
        (slow_loris, RetriesExhausted, "no complete answer"),
        (huge_header, RetriesExhausted, "a broken HTTP answer"),
        (redirect_to_self, DownloadError, "too many redirects"),
        (redirect_to_a_bad_host, DownloadError, "cannot resolve host 'a..b'"),
    ],
)
async def test_hostile_server_fails_cleanly(
    tmp_path: Path, handler: Handler, error: type[Exception], words: str
) -> None:
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        with trio.fail_after(30), pytest.raises(error, match=words):
            await download(
                f"http://127.0.0.1:{port}/x.whl",
                tmp_path / "x.whl",
                Options(timeout=0.5, policy=FAST),
            )
        nursery.cancel_scope.cancel()
    assert not (tmp_path / "x.whl").exists()


async def test_a_chain_of_redirects_pip_follows_is_followed(tmp_path: Path) -> None:
    """25 redirects (a CDN's hops, a mirror's signed URL), then the file: pip follows up to
    30, so a link pip takes is not refused here (the limit was 10)."""
    body = bytes(range(256)) * 64

    async def chain(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            hop = int(head.split(b" ")[1].rsplit(b"/", 1)[1] or b"0")
            if hop < 25:
                where = b"/" + str(hop + 1).encode()
                head_out = b"HTTP/1.1 302 Found\r\nLocation: " + where
                await stream.send_all(head_out + b"\r\nContent-Length: 0\r\n\r\n")
            else:
                start, end = range_asked(head, len(body))
                await stream.send_all(head_206(start, end, len(body)) + body[start : end + 1])

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, chain)
        with trio.fail_after(30):
            await download(f"http://127.0.0.1:{port}/0", tmp_path / "x.whl", Options(policy=FAST))
        nursery.cancel_scope.cancel()
    assert (tmp_path / "x.whl").read_bytes() == body


async def test_body_longer_than_the_index_size_is_cut(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, endless_body)
        with trio.fail_after(30), pytest.raises(DownloadError, match="more than 100000 bytes"):
            await download(f"http://127.0.0.1:{port}/x.whl", tmp_path / "x.whl", size=100_000)
        nursery.cancel_scope.cancel()
    assert not (tmp_path / "x.whl").exists()


async def test_credentials_do_not_follow_a_redirect_to_another_host(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def other_host(stream: trio.SocketStream) -> None:
        head = await read_head(stream)
        seen.append(head)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    async with trio.open_nursery() as nursery:
        other = await serve(nursery, other_host)

        async def first_host(stream: trio.SocketStream) -> None:
            head = await read_head(stream)
            seen.append(head)
            # "localhost" is another origin than "127.0.0.1", on this machine only
            location = f"http://localhost:{other}/x.whl".encode()
            await stream.send_all(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\n\r\n")

        first = await serve(nursery, first_host)
        await download(f"http://user:secret@127.0.0.1:{first}/x.whl", tmp_path / "x.whl")
        nursery.cancel_scope.cancel()
    assert (tmp_path / "x.whl").read_bytes() == b"hello"
    assert b"authorization:" in seen[0].lower()
    assert b"authorization:" not in seen[1].lower()


async def test_a_redirect_that_refuses_at_once_is_not_asked_again(tmp_path: Path) -> None:
    """A 401 from the target a redirect led to just now (credentials are not sent to another
    host) was taken for an expired link: asked again through the first URL, 5 tries, then
    'raise --max-tries'. curl -L stops at once; only a target asked straight, from an
    earlier redirect, may have expired."""
    seen: list[bytes] = []

    async def other_host(stream: trio.SocketStream) -> None:
        seen.append(await read_head(stream))
        await stream.send_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")

    async with trio.open_nursery() as nursery:
        other = await serve(nursery, other_host)

        async def first_host(stream: trio.SocketStream) -> None:
            seen.append(await read_head(stream))
            location = f"http://localhost:{other}/x.whl".encode()
            await stream.send_all(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\n\r\n")

        first = await serve(nursery, first_host)
        with pytest.raises(DownloadError) as failed:
            await download(f"http://user:secret@127.0.0.1:{first}/x.whl", tmp_path / "x.whl")
        nursery.cancel_scope.cancel()
    assert len(seen) == 2
    message = str(failed.value)
    assert f"http://localhost:{other}/x.whl (a redirect of http://***@127.0.0.1:" in message
    assert "answered 401 Unauthorized; check the credentials" in message
    assert list(tmp_path.iterdir()) == []


def mirrors(versions: list[bytes], etags: list[bytes]) -> Handler:
    """Behind one URL, the first request meets the first version and every later one the
    second: the same size and Last-Modified, another strong ETag (a mirror switch behind a
    redirect). Each honours Range, and If-Range by its own ETag or by the date."""
    date = b"Mon, 01 Jan 2024 00:00:00 GMT"
    seen = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            which = min(seen[0], 1)
            seen[0] += 1
            body, etag = versions[which], etags[which]
            fields = dict(
                line.split(b": ", 1) for line in head.lower().split(b"\r\n")[1:] if b": " in line
            )
            wanted = fields.get(b"range", b"").removeprefix(b"bytes=")
            if_range = fields.get(b"if-range")
            start, end = 0, len(body) - 1
            ranged = bool(wanted) and if_range in (None, etag.lower(), date.lower())
            if ranged:
                a, _, b = wanted.partition(b"-")
                start, end = int(a), min(int(b or len(body) - 1), len(body) - 1)
            status = b"206 Partial Content" if ranged else b"200 OK"
            extra = (
                b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(body)) if ranged else b""
            )
            await stream.send_all(
                b"HTTP/1.1 " + status + b"\r\nETag: " + etag + b"\r\nLast-Modified: " + date
                + b"\r\n" + extra + b"Content-Length: %d\r\n\r\n" % (end - start + 1)
                + body[start : end + 1]
            )  # fmt: skip

    return handler


async def test_a_mirror_with_another_etag_is_never_spliced(tmp_path: Path) -> None:
    """Another ETag with the same size and Last-Modified may be a load balancer's node for
    the same bytes, but only a checked result (a sha256, a zip's CRCs) may take it so.
    Unchecked, it is another file: the download starts over, and ends as one version."""
    one, two = bytes(range(256)) * 4096, bytes(reversed(range(256))) * 4096  # 1 MiB each
    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    result = await fetch_from(
        mirrors([one, two], [b'"a"', b'"b"']), tmp_path / "f.bin", options, 30
    )
    assert (tmp_path / "f.bin").read_bytes() == two and result.restarts >= 1


def versions_without_validators(one: bytes, two: bytes, honour_if_range: bool) -> Handler:
    """The first request meets ``one`` under a strong ETag; every later one meets ``two``,
    of the same size, with no validator (a node configured otherwise during a deploy).
    ``honour_if_range``: an If-Range it cannot match gets the whole file (200), as nginx
    does with its ETag and Last-Modified off; else it answers the range regardless."""
    seen = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            first, seen[0] = seen[0] == 0, seen[0] + 1
            body = one if first else two
            start, end = range_asked(head, len(body))
            if not first and honour_if_range and b"\r\nif-range:" in head.lower():
                whole = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                await stream.send_all(whole + body)
                continue
            reply = head_206(start, end, len(body))
            if not first:
                reply = reply.replace(b'ETag: "x"\r\n', b"")
            await stream.send_all(reply + body[start : end + 1])

    return handler


async def test_bytes_sent_without_the_known_validators_are_never_spliced(tmp_path: Path) -> None:
    """Nothing shows that a range without the ETag the first answer gave is the same file:
    the download starts over (on one connection) and ends as one version."""
    one, two = bytes(range(256)) * 4096, bytes(reversed(range(256))) * 4096  # 1 MiB each
    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    handler = versions_without_validators(one, two, honour_if_range=False)
    result = await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == two and result.restarts >= 1


async def test_a_resume_answered_whole_without_validators_starts_over(tmp_path: Path) -> None:
    """A saved state with an ETag; the server now has another file of the same size and no
    validators, and answers the If-Range with the whole file (as nginx with its ETag and
    Last-Modified off): that is the new version, not a reason to fail run after run."""
    one, two = bytes(range(256)) * 4096, bytes(reversed(range(256))) * 4096  # 1 MiB each
    dest, later = tmp_path / "f.bin", versions_without_validators(two, two, honour_if_range=True)
    stalled = [True]

    async def handler(stream: trio.SocketStream) -> None:
        if not stalled[0]:
            return await later(stream)
        while head := await read_head(stream):  # 128 KiB of the first version, then silence
            start, end = range_asked(head, len(one))
            await stream.send_all(head_206(start, end, len(one)) + one[start : start + 131072])
            await trio.sleep_forever()

    options = Options(connections=1, policy=FAST)
    async with trio.open_nursery() as nursery:
        url = f"http://127.0.0.1:{await serve(nursery, handler)}/f.bin"
        with trio.move_on_after(1):  # the first run stops with part of the file: state saved
            await download(url, dest, options)
        assert Path(f"{dest}.part.json").exists() and not dest.exists()
        stalled[0] = False
        with trio.fail_after(30):
            result = await download(url, dest, options)
        nursery.cancel_scope.cancel()
    assert dest.read_bytes() == two and result.restarts == 1


def _zip_of(seed: int) -> bytes:
    """A 1 MiB stored (uncompressed) zip: two seeds give two files of one size."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i in range(16):
            z.writestr(f"m{i}.bin", random.Random(f"{seed}:{i}").randbytes(65536))
    return out.getvalue()


def without_validators(body: Callable[[], bytes], asked: list[int]) -> Handler:
    """Ranges of ``body()`` (what the server has at each request), with no ETag and no
    Last-Modified; ``asked`` gets each request's start."""

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            data = body()
            start, end = range_asked(head, len(data))
            asked.append(start)
            reply = head_206(start, end, len(data)).replace(b'ETag: "x"\r\n', b"")
            await stream.send_all(reply + data[start : end + 1])

    return handler


async def test_a_zip_that_changes_mid_download_without_validators_is_one_version(
    tmp_path: Path,
) -> None:
    """No ETag, no Last-Modified, no sha256: nothing tells the ranges of two versions apart
    (a zip's CRCs skip bytes where builds of one size differ): the file comes as one answer
    from byte 0, one version."""
    one, two = _zip_of(1), _zip_of(2)
    assert len(one) == len(two) and one != two
    asked: list[int] = []
    handler = without_validators(lambda: one if not asked else two, asked)
    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    result = await fetch_from(handler, tmp_path / "f.whl", options, 30)
    assert (tmp_path / "f.whl").read_bytes() == two and result.restarts == 0


async def test_a_stream_without_validators_cut_short_starts_over(tmp_path: Path) -> None:
    """No validator, no sha256: nothing proves a resumed byte is of the same version (a
    check of some bytes again misses a change elsewhere), so a stream cut short starts over
    from byte 0. Here the first stream is cut and the file replaced: the new one results,
    whole. Cut every time, it gives up after --max-tries, bounded (not a loop of restarts);
    a zip damaged on the server is taken as the server has it (nothing says otherwise)."""
    one, two = _zip_of(1), _zip_of(2)
    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    count = [0]

    async def replaced(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            count[0] += 1
            body = one if count[0] <= 2 else two
            start, end = range_asked(head, len(body))
            reply = head_206(start, end, len(body)).replace(b'ETag: "x"\r\n', b"")
            stop = start + 300_000 if count[0] == 2 else end + 1  # the first stream cut
            await stream.send_all(reply + body[start:stop])
            if count[0] == 2:
                return

    await fetch_from(replaced, tmp_path / "f.whl", options, 30)
    assert (tmp_path / "f.whl").read_bytes() == two
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, changing([(1, one, None)], cut=300_000))
        with trio.fail_after(30), pytest.raises(RetriesExhausted):
            await download(f"http://127.0.0.1:{port}/g.whl", tmp_path / "g.whl", options)
        nursery.cancel_scope.cancel()
    assert not (tmp_path / "g.whl").exists()
    damaged = bytearray(_zip_of(3))
    damaged[100_000] ^= 0xFF  # inside a member
    asked: list[int] = []
    result = await fetch_from(
        without_validators(lambda: bytes(damaged), asked), tmp_path / "h.whl", options, 30
    )
    assert (tmp_path / "h.whl").read_bytes() == damaged and result.restarts == 0


async def test_a_whole_stream_restarted_is_hashed_afresh_and_never_kept_for_another_version(
    tmp_path: Path,
) -> None:
    """A saved state (ETag A), then a server that ignores ranges: its 200 of the same file
    (A) is taken as one stream over the saved state, and cut; the next 200 is another
    version (B). It must not be taken under the saved state, nor hashed with the first
    stream's bytes: with the sha256 of A the result is A or an error, never B reported as A
    (it was: exit 0, the JSON's sha256 A's, the file B's)."""
    one = bytes(range(256)) * 4096  # 1 MiB
    two = bytes(1000) + one[1000:]  # another version, its head changed: a mixed hash is A's
    mode = ["ranged"]
    answers = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            if mode[0] == "ranged":
                start, end = range_asked(head, len(one))
                reply = head_206(start, end, len(one)).replace(b'"x"', b'"A"')
                await send_slowly(stream, reply + one[start : end + 1], 64 * 1024)
                continue
            answers[0] += 1
            body, tag = (one, b'"A"') if answers[0] == 1 else (two, b'"B"')
            head_200 = b"HTTP/1.1 200 OK\r\nETag: %s\r\nContent-Length: %d\r\n\r\n"
            await stream.send_all(head_200 % (tag, len(body)))
            await stream.send_all(body[: len(body) // 2] if answers[0] == 1 else body)
            if answers[0] == 1:
                return

    dest = tmp_path / "f.bin"
    options = Options(connections=1, min_segment=64 * 1024, policy=FAST)
    sha = hashlib.sha256(one).hexdigest()
    async with trio.open_nursery() as nursery:
        url = f"http://127.0.0.1:{await serve(nursery, handler)}/f.bin"
        with trio.move_on_after(10) as scope:

            def stop_early(p: Progress) -> None:
                if p.done >= 300_000:
                    scope.cancel()

            await download(url, dest, options, sha256=sha, progress=stop_early)
        assert scope.cancelled_caught and dest.with_name("f.bin.part.json").exists()
        mode[0] = "whole"
        try:
            with trio.fail_after(30):
                result = await download(url, dest, options, sha256=sha)
        except HashMismatch:
            assert not dest.exists()
        else:
            assert dest.read_bytes() == one and result.sha256 == sha
        nursery.cancel_scope.cancel()


async def test_a_206_that_claims_the_whole_file_but_sends_a_range_is_not_taken_whole(
    tmp_path: Path,
) -> None:
    """Every 206 labelled ``bytes 0-N/N+1`` while its Content-Length (and body) is only the
    range asked: never a file cut to the first range with exit 0; the file whole, or an
    error."""
    data = bytes(range(256)) * 4096  # 1 MiB

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(data))
            label = b"bytes 0-%d/%d" % (len(data) - 1, len(data))
            reply = b"HTTP/1.1 206 Partial Content\r\nContent-Range: %s\r\n" % label
            reply += b"Content-Length: %d\r\n\r\n" % (end - start + 1)
            await stream.send_all(reply + data[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    try:
        result = await fetch_from(handler, tmp_path / "f.bin", options, 30)
    except BaseExceptionGroup as group:
        assert group.subgroup(RetriesExhausted) is not None
        assert not (tmp_path / "f.bin").exists()
    else:
        assert (tmp_path / "f.bin").read_bytes() == data, result


async def test_validators_sent_now_and_then_cost_one_restart_at_most(tmp_path: Path) -> None:
    """Nodes configured apart: the answer from byte 0 carries the ETag, every other answer
    after it does not, each body is cut after 128 KiB. The file never changes: after one
    restart it is fetched as from a server that sends no validators, not started over until
    the restarts run out."""
    body = bytes(range(256)) * 4096  # 1 MiB
    count = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            count[0] += 1
            start, end = range_asked(head, len(body))
            reply = head_206(start, end, len(body))
            if start > 0 and count[0] % 2 == 0:
                reply = reply.replace(b'ETag: "x"\r\n', b"")
            cut = min(end + 1, start + 131072)
            await stream.send_all(reply + body[start:cut])
            if cut <= end:
                return

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    result = await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == body and result.restarts <= 1, result


def changing(
    versions: list[tuple[int, bytes, bytes | None]], cut: int, honour_if_range: bool = True
) -> Handler:
    """From request number ``n`` on (the first of ``versions`` whose n is reached), the
    server has those bytes under that ETag (None: no validator); every body is cut after
    ``cut`` bytes; If-Range with another ETag gets the whole file (200)."""
    count = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            count[0] += 1
            _, body, etag = [v for v in versions if v[0] <= count[0]][-1]
            start, end = range_asked(head, len(body))
            asked = head.lower().split(b"\r\nif-range: ")
            if_range = asked[1].split(b"\r\n")[0] if len(asked) > 1 else None
            tag = b"ETag: " + etag + b"\r\n" if etag else b""
            if honour_if_range and if_range is not None and if_range != (etag or b"").lower():
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\n" + tag + b"Content-Length: %d\r\n\r\n" % len(body)
                )
                start, end = 0, len(body) - 1
            else:
                reply = head_206(start, end, len(body)).replace(b'ETag: "x"\r\n', tag)
                await stream.send_all(reply)
            stop = min(end + 1, start + cut)
            await stream.send_all(body[start:stop])
            if stop <= end:
                return

    return handler


async def test_a_change_after_validators_went_missing_once_is_still_seen(
    tmp_path: Path,
) -> None:
    """One answer without validators makes bare answers acceptable; a new ETag shown later
    (the file really changed) still starts the file over: one version results."""
    one, two = b"A" * (4 << 20), b"B" * (4 << 20)
    handler = changing([(1, one, b'"a"'), (2, one, None), (3, one, b'"a"'), (8, two, b'"b"')],
                       cut=1_000_000, honour_if_range=False)  # fmt: skip
    options = Options(connections=2, min_segment=256 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 60)
    assert (tmp_path / "f.bin").read_bytes() in (one, two)


async def test_a_checked_download_takes_a_whole_answer_without_validators(
    tmp_path: Path,
) -> None:
    """From the third request on the server answers If-Range with the whole, unchanged file
    and no validators: the download starts over with it, never gives up on it."""
    body = bytes(range(256)) * 8192  # 2 MiB
    handler = changing([(1, body, b'"a"'), (3, body, None)], cut=300_000)
    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    sha = hashlib.sha256(body).hexdigest()
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        with trio.fail_after(60):
            url = f"http://127.0.0.1:{port}/f.bin"
            await download(url, tmp_path / "f.bin", options, sha256=sha)
        nursery.cancel_scope.cancel()
    assert (tmp_path / "f.bin").read_bytes() == body


async def fetch_from(
    handler: Handler, dest: Path, options: Options, limit: float, path: str = "/f.bin"
) -> Result:
    """A download of ``path`` from ``handler``'s server on loopback, within ``limit`` s."""
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        with trio.fail_after(limit):
            result = await download(f"http://127.0.0.1:{port}{path}", dest, options)
        nursery.cancel_scope.cancel()
    return result


async def send_slowly(stream: trio.SocketStream, data: bytes, step: int) -> None:
    """``step`` bytes every 0.1 s."""
    for i in range(0, len(data), step):
        await stream.send_all(data[i : i + step])
        await trio.sleep(0.1)


def range_asked(head: bytes, size: int) -> tuple[int, int]:
    """[start, end] (inclusive) of a request's Range header (none: the whole file)."""
    line = next((x for x in head.lower().split(b"\r\n") if x.startswith(b"range:")), None)
    if line is None:
        return 0, size - 1
    a, _, b = line.split(b"=", 1)[1].partition(b"-")
    return int(a), min(int(b or size - 1), size - 1)


def as_asked(head: bytes, data: bytes) -> bytes:
    """A right 206 of ``data`` for the range the request ``head`` asked."""
    start, end = range_asked(head, len(data))
    return head_206(start, end, len(data)) + data[start : end + 1]


def head_206(start: int, end: int, size: int) -> bytes:
    return range_head(start, end, size, extra=b'ETag: "x"\r\n')


def range_head(
    start: int, end: int, size: int, status: bytes = b"206 Partial Content", extra: bytes = b""
) -> bytes:
    """The head of an answer with bytes [start, end] (inclusive) of ``size``: ``status``,
    then ``extra`` header lines, Content-Range and Content-Length."""
    return b"HTTP/1.1 %s\r\n%sContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n" % (
        status,
        extra,
        start,
        end,
        size,
        end - start + 1,
    )


def ranged(
    body: bytes, first_odd: Callable[[trio.SocketStream, int, int], Awaitable[None]]
) -> Handler:
    """A server of ``body`` that honours Range on kept-alive connections, but answers the
    first request after the probe's with ``first_odd`` (its range), then closes."""
    count = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            n, count[0] = count[0], count[0] + 1
            start, end = range_asked(head, len(body))
            if n == 1:
                await first_odd(stream, start, end)
                return  # its connection ends with it
            await stream.send_all(head_206(start, end, len(body)) + body[start : end + 1])

    return handler


async def test_an_answer_that_never_comes_is_asked_again_while_others_flow(
    tmp_path: Path,
) -> None:
    """The second request gets no answer at all (a server that serves one connection at a
    time; a stuck worker): while the other connections bring bytes, its range is asked
    again on another connection, long before the 30 s timeout."""
    body = bytes(range(256)) * 16384  # 4 MiB

    async def stuck(stream: trio.SocketStream, start: int, end: int) -> None:
        await trio.sleep(60)

    options = Options(connections=4, min_segment=256 * 1024, timeout=30.0, policy=FAST)
    # Within 20 s, under the 30 s timeout: the hedge did it, not the timeout.
    await fetch_from(ranged(body, stuck), tmp_path / "f.bin", options, 20)
    assert (tmp_path / "f.bin").read_bytes() == body


async def test_a_trickling_connection_does_not_hold_up_the_end(tmp_path: Path) -> None:
    """One response trickles at about 2 kB/s, steadily (never silent), while the rest of
    the file came at loopback speed: its range is asked again on another connection,
    rather than waited for (its 256 kB would take minutes)."""
    body = bytes(range(256)) * 8192  # 2 MiB

    async def trickle(stream: trio.SocketStream, start: int, end: int) -> None:
        await stream.send_all(head_206(start, end, len(body)))
        await send_slowly(stream, body[start : end + 1], 200)

    options = Options(connections=4, min_segment=256 * 1024, timeout=30.0, policy=FAST)
    result = await fetch_from(ranged(body, trickle), tmp_path / "f.bin", options, 40)
    # Its range asked again on another connection: taken from it by a connection that
    # finished (its latest rate is known), or dropped (plan.hedge): one request more than
    # the probe and a piece per connection.
    assert (tmp_path / "f.bin").read_bytes() == body and result.requests >= 1 + 4 + 1


async def test_a_server_that_serves_two_at_once_is_waited_for_not_failed(tmp_path: Path) -> None:
    """Two requests served at a time, the rest wait their turn with no answer (a small
    worker pool): an unanswered request is dropped as for a 503 (one connection fewer, its
    range back to the others), never counted as a failed try until the download gives up."""
    body = bytes(range(256)) * 16384  # 4 MiB: pieces of ~700 kB, 4 s each
    turn = trio.Semaphore(2)

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(body))
            async with turn:
                await stream.send_all(head_206(start, end, len(body)))
                await send_slowly(stream, body[start : end + 1], 16384)  # ~160 kB/s

    options = Options(connections=6, min_segment=512 * 1024, timeout=30.0, policy=FAST)
    result = await fetch_from(handler, tmp_path / "f.bin", options, 60)
    assert (tmp_path / "f.bin").read_bytes() == body and result.retries >= 1


async def test_a_range_ignored_now_and_then_never_turns_into_one_stream(tmp_path: Path) -> None:
    """Every third answer is the whole file (a proxy that ignores some ranges), and every
    range is cut after 64 kB (many requests): over two connections never three whole ones in
    a row, so the download stays ranged, retrying those."""
    body = bytes(range(256)) * 4096  # 1 MiB
    ranges: list[bool] = []

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            asked = b"\r\nrange:" in head.lower()
            ranges.append(asked)
            if asked and len(ranges) % 3 == 0:  # the whole file, under the same ETag
                whole = b'HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: %d\r\n\r\n'
                await stream.send_all(whole % len(body) + body)
                continue
            start, end = range_asked(head, len(body))
            cut = min(end + 1, start + 65536)
            await stream.send_all(head_206(start, end, len(body)) + body[start:cut])
            if cut <= end:
                return  # the connection drops: the rest is asked again

    options = Options(connections=2, min_segment=64 * 1024, timeout=30.0)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == body and all(ranges)


async def test_a_redirect_to_another_mirror_is_never_spliced(tmp_path: Path) -> None:
    """/f.bin redirects to one mirror, which refuses after its first answer (an expired
    link), then to another that has other bytes of the same size; neither sends a
    validator: nothing tells them apart but where they are, and nothing checks the result.
    Such a file comes as one answer from byte 0 (a mirror's other bytes are never spliced
    in), and one version results."""
    one, two = bytes(range(256)) * 4096, bytes(reversed(range(256))) * 4096  # 1 MiB each
    asked = {b"/f.bin": 0, b"/a": 0}

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            path = head.split(b" ")[1]
            if path == b"/f.bin":
                mirror = b"/a" if asked[path] == 0 else b"/b"
                asked[path] += 1
                where = b"Location: " + mirror + b"/f.bin\r\nContent-Length: 0\r\n\r\n"
                await stream.send_all(b"HTTP/1.1 302 Found\r\n" + where)
                continue
            if path.startswith(b"/a/") and asked[b"/a"]:
                await stream.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                continue
            asked[b"/a"] += path.startswith(b"/a/")
            body = one if path.startswith(b"/a/") else two
            start, end = range_asked(head, len(body))
            reply = head_206(start, end, len(body)).replace(b'ETag: "x"\r\n', b"")
            await stream.send_all(reply + body[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    result = await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() in (one, two), result


@pytest.mark.parametrize("connections", [1, 4])
async def test_a_file_without_validators_changing_mid_run_is_one_version(
    tmp_path: Path, connections: int
) -> None:
    """No ETag, no Last-Modified, nothing checks the result, and the file is replaced
    after the first answer (a deploy), then every connection is cut once: answers of
    several requests would be several versions spliced. It comes as one answer from byte
    0, from byte 0 again after a cut: one version (Apache with its validators unset did
    this: exit 0, a splice)."""
    one, two = bytes(range(256)) * 4096, bytes(reversed(range(256))) * 4096  # 1 MiB each
    served = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            body = one if served[0] == 0 else two
            served[0] += 1
            start, end = range_asked(head, len(body))
            reply = head_206(start, end, len(body)).replace(b'ETag: "x"\r\n', b"")
            cut = served[0] == 2  # the second answer stops half-way
            await stream.send_all(reply + body[start : (start + end) // 2 if cut else end + 1])
            if cut:
                return

    options = Options(connections=connections, min_segment=64 * 1024, policy=FAST)
    result = await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() in (one, two), result


async def test_unwritable_destination_is_one_line(tmp_path: Path) -> None:
    from segfetch.testing.emulator import Emulator, SyntheticFile

    async with Emulator({"/x.whl": SyntheticFile(1000)}) as emu:
        (tmp_path / "x.whl.part").mkdir()  # the .part cannot be opened as a file
        with pytest.raises(DiskError, match="cannot write"):
            await download(emu.url("/x.whl"), tmp_path / "x.whl")


def test_file_size_limit_gives_one_line(tmp_path: Path) -> None:
    """RLIMIT_FSIZE, as a full disk: EFBIG on write, one line, no traceback."""
    script = f"""
import resource, sys, trio
from segfetch.cli.main import main
from segfetch.testing.emulator import Emulator, SyntheticFile
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
async def run():
    async with Emulator({{"/x.whl": SyntheticFile(1_000_000)}}) as emu:
        args = ["get", emu.url("/x.whl"), "-o", {str(tmp_path / "x.whl")!r}, "-q"]
        return await trio.to_thread.run_sync(main, args)
sys.exit(trio.run(run))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("segfetch: error: cannot write")
    assert "File too large" in proc.stderr
    assert "ulimit -f" in proc.stderr and "free some space" not in proc.stderr
    assert not (tmp_path / "x.whl").exists()


async def test_a_404_for_a_url_httpx_rewrites_is_not_taken_for_an_expired_redirect(
    tmp_path: Path,
) -> None:
    """A space (or an upper-case host, dot segments): httpx sends the URL in its own form;
    a 404 from it is the URL's own answer, given at once, not a redirect target's."""
    asked: list[bytes] = []

    async def not_found(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            asked.append(head.split(b" ")[1])
            await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, not_found)
        url = f"http://127.0.0.1:{port}/no such.bin"
        with pytest.raises(DownloadError, match="check the URL"), trio.fail_after(30):
            await download(url, tmp_path / "x.bin", Options(policy=FAST))
        nursery.cancel_scope.cancel()
    assert asked == [b"/no%20such.bin"]


@pytest.mark.parametrize("off", [-1000, +1000])
@pytest.mark.parametrize("validators", [True, False])
async def test_a_size_a_206_gave_holds_for_a_later_answer_without_length(
    tmp_path: Path, off: int, validators: bool
) -> None:
    """The first answer, a 206, gives the size; every later one ignores ranges: a 200 with
    no Content-Length, its end the connection's close, a body short (or long) of that
    size. Never kept at that length with exit 0 (it was: the one stream forgot the size)."""
    data = bytes(range(256)) * 1200  # 300 kB
    tag = b'ETag: "v1"\r\n' if validators else b""
    answers: list[int] = []

    async def handler(stream: trio.SocketStream) -> None:
        head = await read_head(stream)
        answers.append(len(answers))
        if len(answers) == 1:
            start, end = range_asked(head, len(data))
            reply = b"HTTP/1.1 206 Partial Content\r\n" + tag
            reply += b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(data))
            reply += b"Content-Length: %d\r\n\r\n" % (end - start + 1)
            await stream.send_all(reply + data[start : end + 1])
        else:
            body = data[: len(data) + off] + b"x" * max(off, 0)
            await stream.send_all(b"HTTP/1.1 200 OK\r\n" + tag + b"\r\n" + body)
        await stream.aclose()

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    with pytest.raises((DownloadError, BaseExceptionGroup)):
        await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert not (tmp_path / "f.bin").exists()


@pytest.mark.parametrize("off", [-1000, +1000])
@pytest.mark.parametrize("connections", [1, 4])
async def test_a_whole_206_without_length_must_end_at_its_range(
    tmp_path: Path, off: int, connections: int
) -> None:
    """A 206 ``bytes 0-N/N+1`` with no Content-Length, its body short or long of it and
    ended by the close: its Content-Range says the length (taken at any length before).
    The file whole (read up to the range's end), or an error."""
    data = bytes(range(256)) * 1200

    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        label = b"bytes 0-%d/%d" % (len(data) - 1, len(data))
        body = data[: len(data) + off] + b"x" * max(off, 0)
        reply = b'HTTP/1.1 206 Partial Content\r\nETag: "v1"\r\nContent-Range: %s\r\n\r\n' % label
        await stream.send_all(reply + body)
        await stream.aclose()

    options = Options(connections=connections, min_segment=64 * 1024, policy=FAST)
    try:
        await fetch_from(handler, tmp_path / "f.bin", options, 30)
    except (DownloadError, BaseExceptionGroup):
        assert not (tmp_path / "f.bin").exists()
    else:
        assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("extra", ["multipart", "stray_newline", "long_length"])
@pytest.mark.parametrize("connections", [1, 4])
async def test_bytes_after_a_shorter_answer_are_never_written(
    tmp_path: Path, extra: str, connections: int
) -> None:
    """A server that caps its answers (honestly: its Content-Range says where each ends),
    with more in the body after the range: a multipart answer's closing delimiter, a
    download script's stray newline (chunked), a Content-Length that counts it. Those bytes
    were written after the range, taken for the file's (exit 0, a wrong file)."""
    data = random.Random(7).randbytes(300_000)
    cap = 50_000

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(data))
            end = min(end, start + cap - 1)
            label = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(data))
            part = data[start : end + 1]
            reply = b'HTTP/1.1 206 Partial Content\r\nETag: "x"\r\n'
            if extra == "multipart":
                body = b"--B\r\n" + label + b"\r\n" + part + b"\r\n--B--\r\n"
                reply += b"Content-Type: multipart/byteranges; boundary=B\r\n"
                reply += b"Content-Length: %d\r\n\r\n" % len(body) + body
            elif extra == "stray_newline":
                chunk = part + b"\n"
                reply += label + b"Transfer-Encoding: chunked\r\n\r\n"
                reply += b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n"
            else:
                reply += label + b"Content-Length: %d\r\n\r\n" % (len(part) + 1) + part + b"\n"
            await stream.send_all(reply)

    options = Options(connections=connections, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("connections", [1, 4])
@pytest.mark.parametrize(("size", "refused"), [(1000, "past its end"), (300_000, "every")])
async def test_a_server_that_refuses_ranges_gives_the_file_whole(
    tmp_path: Path, connections: int, size: int, refused: str
) -> None:
    """A 416 ``bytes */N``, the file to a request without Range, as curl and aria2c get it
    (it was 'answered 416' after every try): to a range past the end of a file smaller than
    --min-segment (a server that refuses where RFC 9110 says clip), or to every range."""
    data = random.Random(8).randbytes(size)

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            line = next((x for x in head.split(b"\r\n") if x.lower().startswith(b"range:")), b"")
            if line and (refused == "every" or int(line.rpartition(b"-")[2] or 0) >= size):
                await stream.send_all(
                    b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%d\r\n"
                    b"Content-Length: 0\r\n\r\n" % size
                )
                continue
            if not line:
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                await stream.send_all(data)
                continue
            await stream.send_all(as_asked(head, data))

    options = Options(connections=connections, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("connections", [1, 4])
async def test_a_range_answered_with_more_than_asked_gives_the_file(
    tmp_path: Path, connections: int
) -> None:
    """Each range answered from its start to 64 KiB past its end (or the file's end), with
    a true Content-Range: RFC 9110 lets a server send more; curl and aria2c take it. Each
    try was 'answered bytes ... for ...', and the download failed."""
    data = random.Random(11).randbytes(400_000)

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(data))
            end = min(end + 65536, len(data) - 1)
            reply = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\n" % (
                start, end, len(data),
            )  # fmt: skip
            reply += b"Content-Length: %d\r\n\r\n" % (end - start + 1)
            await stream.send_all(reply + data[start : end + 1])

    options = Options(connections=connections, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == data


async def test_a_whole_answer_of_another_size_under_the_same_etag_is_not_the_file(
    tmp_path: Path,
) -> None:
    """Every range ends a byte short of its Content-Range, so the file is asked whole; that
    answer, under the ETag the ranges had, is 100 bytes shorter: the same ETag is the same
    bytes (RFC 9110 8.8.1), so it is a wrong answer, not the file. It was kept, 100 bytes
    short, exit 0 (hostile-server review)."""
    data = random.Random(12).randbytes(300_000)

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            if b"\r\nrange:" not in head.lower():
                body = data[:-100]
                await stream.send_all(
                    b'HTTP/1.1 200 OK\r\nETag: "v1"\r\nContent-Length: %d\r\n\r\n' % len(body)
                    + body
                )
                continue
            start, end = range_asked(head, len(data))
            reply = b'HTTP/1.1 206 Partial Content\r\nETag: "v1"\r\n'
            reply += b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(data))
            reply += b"Content-Length: %d\r\n\r\n" % (end - start)  # a byte short
            await stream.send_all(reply + data[start:end])

    tries = RetryPolicy(max_tries=5, base=0.01, cap=0.02)  # (3 short ranges: asked whole)
    options = Options(connections=4, min_segment=64 * 1024, policy=tries)
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        with trio.fail_after(30), pytest.raises(RetriesExhausted, match="under the ETag of"):
            await download(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", options)
        nursery.cancel_scope.cancel()
    assert not (tmp_path / "f.bin").exists()


async def test_an_answer_whose_end_never_comes_after_its_range_costs_no_try(
    tmp_path: Path,
) -> None:
    """Each range sent whole, chunked, but the last chunk never comes (a streaming proxy that
    keeps the answer open): the range is written, so its end is not waited for a --timeout,
    nor its silence a failed try (under max_tries=1 the download failed)."""
    data = random.Random(9).randbytes(300_000)

    async def handler(stream: trio.SocketStream) -> None:
        head = await read_head(stream)
        start, end = range_asked(head, len(data))
        part = data[start : end + 1]
        label = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(data))
        reply = b'HTTP/1.1 206 Partial Content\r\nETag: "x"\r\n' + label
        reply += b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(part) + part + b"\r\n"
        await stream.send_all(reply)
        await trio.sleep(30)

    options = Options(
        connections=4, min_segment=64 * 1024, timeout=5, policy=RetryPolicy(max_tries=1)
    )
    await fetch_from(handler, tmp_path / "f.bin", options, 20)
    assert (tmp_path / "f.bin").read_bytes() == data  # (the wait was a failed try: no file)


def lying_chunk_server(data: bytes, then: bytes) -> Handler:
    """206s sent chunked in 64 KiB chunks; in the first answer the third chunk's size line
    says 100 bytes more than it holds, then ``then`` and the close."""
    answers = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal answers
        while head := await read_head(stream):
            answers += 1
            start, end = range_asked(head, len(data))
            part = data[start : end + 1]
            reply = b'HTTP/1.1 206 Partial Content\r\nETag: "x"\r\nTransfer-Encoding: chunked\r\n'
            reply += b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (start, end, len(data))
            pieces = [part[i : i + 65536] for i in range(0, len(part), 65536)]
            for i, piece in enumerate(pieces):
                lie = 100 if answers == 1 and i == 2 else 0
                reply += b"%x\r\n" % (len(piece) + lie) + piece + b"\r\n"
                if lie:
                    await stream.send_all(reply + then)
                    return  # (closed: with ``then``, h11 fails at the CRLF first)
            await stream.send_all(reply + b"0\r\n\r\n")

    return handler


@pytest.mark.parametrize("then", [b"", b"x" * 200])
async def test_a_chunk_size_line_that_says_more_than_was_sent_is_never_written(
    tmp_path: Path, then: bytes
) -> None:
    """Found by fuzzing: a 206 sent chunked in 64 KiB chunks, one of whose size lines says
    100 bytes more than the chunk holds. h11 reads the CRLF and the next size line as data
    and fails only after it (at the next CRLF, or the close); the segment resumed after those
    bytes, so the file kept them: exit 0 with the wrong bytes, and no sha256 to catch it."""
    data = random.Random(12).randbytes(600_000)
    options = Options(connections=1, policy=FAST)
    await fetch_from(lying_chunk_server(data, then), tmp_path / "f.bin", options, 20)
    assert (tmp_path / "f.bin").read_bytes() == data


async def test_a_lying_chunk_in_get_s_early_answer_is_never_written(tmp_path: Path) -> None:
    """The same through `segfetch get -n 1`, whose first request goes out before httpx loads
    (engine/adopt.py reads its answer)."""
    data = random.Random(13).randbytes(600_000)
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, lying_chunk_server(data, b"x" * 200))
        url = f"http://127.0.0.1:{port}/f.bin"
        proc = await segfetch("get", url, "-o", str(tmp_path / "f.bin"), "-n", "1", "-q")
        nursery.cancel_scope.cancel()
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("length", [0, 300_100])
async def test_a_whole_answer_of_another_size_under_the_same_etag_is_not_a_new_file(
    tmp_path: Path, length: int
) -> None:
    """Found by fuzzing: 206s of a file under ETag "x", then a 200 with the same ETag but
    another length (an empty body, or 100 bytes more) to the first range with If-Range, and
    to every first request after it. The file "changed", its download started over, and the
    next answer was taken as the new file: exit 0 with an empty (or longer) file. The same
    strong ETag is the same bytes (RFC 9110 8.8.1): such an answer is wrong, and tried again."""
    data = random.Random(14).randbytes(300_000)
    asked: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            asked.append(head)
            ranged = [b"if-range:" in h.lower() for h in asked]
            if (ranged[-1] and ranged.count(True) == 1) or (len(asked) > 1 and not ranged[-1]):
                lie = b'HTTP/1.1 200 OK\r\nETag: "x"\r\nContent-Length: %d\r\n\r\n' % length
                await stream.send_all(lie + (data + bytes(100))[:length])
                continue
            await stream.send_all(as_asked(head, data))

    options = Options(connections=2, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 20)
    assert (tmp_path / "f.bin").read_bytes() == data


async def test_a_204_now_and_then_is_tried_again(tmp_path: Path) -> None:
    """Found by fuzzing: one 204 No Content among the 206s (a node or proxy that glitches)
    ended the whole download at once ("answered 204 No Content", exit 1); a rerun then
    completed. Like a 416 inside the file, it is an answer without the file: tried again."""
    data = random.Random(15).randbytes(300_000)
    answers = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal answers
        while head := await read_head(stream):
            answers += 1
            if answers == 2:
                await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                continue
            await stream.send_all(as_asked(head, data))

    options = Options(connections=2, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 20)
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("connections", [1, 4])
async def test_ranges_that_each_end_a_byte_short_give_the_file_whole(
    tmp_path: Path, connections: int
) -> None:
    """Every 206 one byte short of its Content-Range (Sharry, eikek/sharry#1163): the last
    byte of a range, asked again, never comes. It failed after --max-tries; curl gets the
    file without Range, and so does segfetch now."""
    data = random.Random(11).randbytes(300_000)

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            if b"range:" not in head.lower():
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data))
                await stream.send_all(data)
                continue
            start, end = range_asked(head, len(data))
            part = data[start:end]  # one byte short
            label = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(data))
            reply = b'HTTP/1.1 206 Partial Content\r\nETag: "x"\r\n' + label
            await stream.send_all(reply + b"Content-Length: %d\r\n\r\n" % len(part) + part)

    options = Options(
        connections=connections, min_segment=64 * 1024, policy=RetryPolicy(base=0.01, cap=0.02)
    )
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == data


@pytest.mark.parametrize("connections", [1, 4])
async def test_a_gzip_file_labelled_gzip_is_kept_as_it_is(tmp_path: Path, connections: int) -> None:
    """Apache's "AddEncoding x-gzip .gz" (or an S3 object's metadata) labels an sdist's
    bytes Content-Encoding: gzip: they are the file as it is (its sha256 is of them; pip,
    curl and aria2c keep them). It was refused on every try."""
    data = gzip.compress(random.Random(10).randbytes(300_000), mtime=0)

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(data))
            label = b'ETag: "x"\r\nContent-Encoding: gzip\r\n'
            await stream.send_all(range_head(start, end, len(data), extra=label))
            await stream.send_all(data[start : end + 1])

    options = Options(connections=connections, min_segment=64 * 1024, policy=FAST)
    dest = tmp_path / "pkg-1.0.tar.gz"
    await fetch_from(handler, dest, options, 30, path="/pkg-1.0.tar.gz")
    assert dest.read_bytes() == data


@pytest.mark.parametrize("lying", [True, False])
async def test_a_total_that_is_the_end_of_the_range_asked_is_checked(
    tmp_path: Path, lying: bool
) -> None:
    """xrootd 4.8's Content-Range gives the end of the range asked as the file's size
    ("bytes 0-16384/16385"): the first --min-segment was kept as the whole file, exit 0.
    What follows is asked once: the file comes whole; a file of exactly that size still
    ends there, after a 416."""
    data = random.Random(10).randbytes(300_000 if lying else 64 * 1024)
    asked: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            line = next((x for x in head.split(b"\r\n") if x.lower().startswith(b"range:")), b"")
            asked.append(line)
            if not line:
                reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data)
                await stream.send_all(reply + data)
                continue
            start, end = range_asked(head, len(data))
            if start >= len(data):
                await stream.send_all(
                    b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%d\r\n"
                    b"Content-Length: 0\r\n\r\n" % len(data)
                )
                continue
            total = end + 1 if lying else len(data)
            reply = range_head(start, end, total, extra=b'ETag: "x"\r\n')
            await stream.send_all(reply + data[start : end + 1])

    options = Options(connections=4, min_segment=64 * 1024, policy=FAST)
    await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert len(asked) == (3 if lying else 2)  # the first range, what follows, (the file)


@pytest.mark.parametrize(
    "command", [["get", "-o", "x.whl"], ["bench"], ["download", "-d", ".", "-r"]]
)
async def test_a_redirect_to_a_bad_host_name_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """Was a UnicodeError traceback from the connection (-r: exit 1 all the same)."""
    paths = {"x.whl": str(tmp_path / "x.whl"), ".": str(tmp_path)}  # (no cwd: this clone's)
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, redirect_to_a_bad_host)
        url = f"http://127.0.0.1:{port}/x.whl"
        proc = await segfetch(*[paths.get(a, a) for a in command], url)
        nursery.cancel_scope.cancel()
    assert proc.returncode == 1
    assert "'a..b'" in one_line_error(proc)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        (b"http://127.0.0.1:0/x.whl", "whose port 0 is not a TCP port"),  # was: port 80
        (b"http://127.0.0.1:99999/x.whl", "whose port 99999 is not a TCP port"),  # 5 tries
        (b"javascript:alert(1)", "redirected to a URL that is not valid ("),  # was exit 2
        (b"", "with a Location that leads nowhere ('')"),  # was 31 requests to itself
        (b"http:///x.whl", "with a Location that leads nowhere ('http:///x.whl')"),  # port 80
    ],
)
async def test_a_redirect_to_a_url_no_connection_can_ask_is_the_servers_fault(
    tmp_path: Path, location: bytes, words: str
) -> None:
    """One line, exit 1 (the server's answer, not the input), after one request."""
    asked: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        asked.append(await read_head(stream))
        await stream.send_all(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\n\r\n")

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        proc = await segfetch("get", f"http://127.0.0.1:{port}/x.whl", "-o", str(tmp_path / "x"))
        nursery.cancel_scope.cancel()
    assert proc.returncode == 1 and words in one_line_error(proc)
    assert len(asked) == 1 and list(tmp_path.iterdir()) == []


def expired_after_first(data: bytes, every: int) -> Handler:
    """The first request gets its range under an ETag; later ones get a short 200 with no
    validator (an expired signed link's JSON) where ``every`` divides their count, else
    their range."""
    seen = [0]
    error = b'{"error":"expired"}'

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            seen[0] += 1
            if seen[0] > 1 and seen[0] % every == 0:
                kind = b"Content-Type: application/json\r\n"
                await stream.send_all(b"HTTP/1.1 200 OK\r\n%sContent-Length: 19\r\n\r\n" % kind)
                await stream.send_all(error)
                continue
            await stream.send_all(as_asked(head, data))

    return handler


@pytest.mark.parametrize("connections", [2, 4])
async def test_a_short_body_without_validators_is_never_the_file(
    tmp_path: Path, connections: int
) -> None:
    """Another size and none of the validators the file came with: an error's body, not a
    new version (which brings its own). It was saved as the file, exit 0. Now it is asked
    again; where every answer is that, the download fails and nothing is kept."""
    data = random.Random(5).randbytes(1 << 20)
    dest = tmp_path / "f.bin"
    policy = RetryPolicy(max_tries=4, base=0.01, cap=0.02)
    options = Options(connections=connections, min_segment=64 * 1024, policy=policy)
    result = await fetch_from(expired_after_first(data, every=3), dest, options, 30)
    assert dest.read_bytes() == data and result.restarts == 0
    dest.unlink()
    async with trio.open_nursery() as nursery:
        port = await serve(nursery, expired_after_first(data, every=1))
        with trio.fail_after(30), pytest.raises(RetriesExhausted, match="19 bytes without the"):
            await download(f"http://127.0.0.1:{port}/f.bin", dest, options)
        nursery.cancel_scope.cancel()
    assert not dest.exists()


async def test_a_refusal_for_a_day_on_one_connection_leaves_the_others_going(
    tmp_path: Path,
) -> None:
    """One request of several answered 429 with Retry-After: 100000, while the others
    stream: that connection is dropped and the rest finish the file (it stopped the whole
    download when the refusal was the first, let pass to be asked again after the wait)."""
    data = random.Random(7).randbytes(1 << 20)
    seen = [0]

    async def handler(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            seen[0] += 1
            if seen[0] == 2:
                await stream.send_all(
                    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 100000\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
                continue
            reply = as_asked(head, data)
            await send_slowly(stream, reply, 128 * 1024)

    options = Options(connections=2, min_segment=64 * 1024, policy=FAST)
    result = await fetch_from(handler, tmp_path / "f.bin", options, 30)
    assert (tmp_path / "f.bin").read_bytes() == data and result.size == len(data)


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_200_of_just_the_range_asked_is_not_taken_for_the_file(
    tmp_path: Path, chunked: bool
) -> None:
    """A download script that seeks to the range asked but forgets the 206: a 200 with
    those bytes alone (its length, or chunked). The first 256 KiB were kept as the whole
    file, exit 0 (curl, wget, aria2c and axel get it whole). Now asked again without Range:
    the whole file, from -n auto, -n 4 and with its size given."""
    data = random.Random(5).randbytes(1_000_000)

    async def seeks(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            start, end = range_asked(head, len(data))
            body = data[start : end + 1]
            if chunked:
                framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                out = b'HTTP/1.1 200 OK\r\nETag: "s"\r\nTransfer-Encoding: chunked\r\n\r\n' + framed
            else:
                out = b'HTTP/1.1 200 OK\r\nETag: "s"\r\nContent-Length: %d\r\n\r\n' % len(body)
                out += body
            await stream.send_all(out)

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, seeks)
        url = f"http://127.0.0.1:{port}/f.bin"
        for i, more in enumerate(([], ["-n", "4"], ["--size", str(len(data))])):
            dest = tmp_path / f"{i}.bin"
            proc = await segfetch("get", url, "-o", str(dest), "-q", *more)
            assert proc.returncode == 0, proc.stderr
            assert dest.read_bytes() == data
        nursery.cancel_scope.cancel()


async def test_a_206_without_content_range_is_asked_plainly(tmp_path: Path) -> None:
    """A 206 to every range with no Content-Range: 5 tries, then "try another mirror"
    (curl, wget and aria2c get the file). The first such answer sends a plain GET."""
    data = random.Random(6).randbytes(700_000)

    async def bare(stream: trio.SocketStream) -> None:
        while head := await read_head(stream):
            if b"range:" in head.lower():
                start, end = range_asked(head, len(data))
                body = data[start : end + 1]
                out = b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(body)
            else:
                body = data
                out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            await stream.send_all(out + body)

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, bare)
        dest = tmp_path / "f.bin"
        proc = await segfetch("get", f"http://127.0.0.1:{port}/f.bin", "-o", str(dest), "-q")
        assert proc.returncode == 0, proc.stderr
        assert dest.read_bytes() == data
        nursery.cancel_scope.cancel()
