"""The rules that judge a server's answer, apart from any I/O (as h11 keeps its state machine
apart from sockets): given what was asked and what is known of the file, what does this
status and these headers mean? Pure: no socket, no trio, no clock.

Each judgement returns one verdict, and the download loop only carries it out:
``Ranged`` / ``Whole`` / ``Empty`` use the body; ``Retry`` tries the same request again;
``Restart`` starts the whole file over; ``Fail`` ends the download with one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from segfetch.engine.failures import Failure
from segfetch.engine.ranges import parse_content_range, parse_unsatisfied_range
from segfetch.errors import ServerError

Headers = Mapping[str, str]  # httpx.Headers, or a plain dict in tests


class Known(NamedTuple):
    """What an earlier answer (or the control file) established about the file."""

    size: int
    etag: str | None  # strong ETags only
    last_modified: str | None


@dataclass(frozen=True)
class Ranged:
    """A usable 206: its body is exactly the bytes asked for."""

    first: int
    total: int
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class Whole:
    """A 200: the server ignores ranges; the body is the whole file from byte 0."""

    size: int | None  # from Content-Length, if it gave one


@dataclass(frozen=True)
class Empty:
    """The file has no bytes (416 with ``bytes */0`` to a first request)."""


@dataclass(frozen=True)
class Retry:
    failure: Failure


@dataclass(frozen=True)
class Restart:
    """Start the whole file over: it changed, or the saved state does not fit it."""

    reason: str


@dataclass(frozen=True)
class Fail:
    error: ServerError


Verdict = Ranged | Whole | Empty | Retry | Restart | Fail


def validators(headers: Headers) -> tuple[str | None, str | None]:
    """(strong ETag, Last-Modified). A weak ETag may not be used in If-Range (RFC 9110)."""
    etag = headers.get("ETag")
    if etag is not None and etag.startswith("W/"):
        etag = None
    return etag, headers.get("Last-Modified")


def content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def changed(known: Known, etag: str | None, last_modified: str | None) -> bool:
    """Whether an answer's validators show another version of the file than ``known``.
    A missing validator proves nothing; the ETag decides where both sides have one."""
    if known.etag and etag:
        return etag != known.etag
    if not known.etag and known.last_modified:
        return last_modified != known.last_modified
    return False


def judge_probe(
    status: int,
    headers: Headers,
    start: int,
    end: int | None,
    known: Known | None,
    expected_size: int | None,
    name: str,
) -> Verdict:
    """The first answer of a pass: bytes ``[start, end)`` (``end`` None: to the end) were
    asked, with If-Range if ``known`` (the saved state) is not None."""
    if status == 200:
        if known is not None:  # If-Range answered with the whole file: it changed
            return Restart("the file changed since the last run")
        return judge_whole(status, headers, expected_size, name)
    if status == 416:
        total = parse_unsatisfied_range(headers.get("Content-Range", ""))
        if known is not None:
            return Restart("the saved state does not fit the file")
        if total == 0:
            return Empty()
        message = f"{name} answered 416 to a request for the start of the file"
        return Retry(Failure(message, retry=True, status=416))
    if status != 206:
        return Retry(Failure(f"{name} answered {status}", retry=True, status=status))
    try:
        first, last, total = parse_content_range(headers.get("Content-Range", ""))
    except ValueError as exc:
        return Retry(Failure(f"{name}: {exc}", retry=True))
    if total is None or first != start or last != (end if end is not None else total):
        return Retry(Failure(f"{name} answered a different range than asked", retry=True))
    etag, modified = validators(headers)
    if known is not None:
        if total != known.size or (known.etag and etag and etag != known.etag):
            return Restart("the file changed since the last run")
    elif expected_size is not None and total != expected_size:
        return Fail(
            ServerError(
                f"{name} is {total} bytes, but {expected_size} were expected; "
                "the index and the file server disagree"
            )
        )
    return Ranged(first, total, etag, modified)


def judge_whole(
    status: int, headers: Headers, expected_size: int | None, name: str
) -> Whole | Retry | Fail:
    """An answer to a request without Range, from a server that ignores ranges."""
    if status != 200:
        return Retry(Failure(f"{name} answered {status}", retry=True))
    size = content_length(headers)
    if expected_size is not None and size not in (None, expected_size):
        return Fail(ServerError(f"{name} is {size} bytes, but {expected_size} were expected"))
    return Whole(size)


def judge_segment(
    status: int, headers: Headers, start: int, end: int, known: Known, name: str
) -> Ranged | Retry | Restart:
    """An answer to ``Range: bytes=start-(end-1)`` with If-Range, once the file is known."""
    etag, modified = validators(headers)
    if changed(known, etag, modified):
        return Restart(f"{name} changed during the download")
    if status == 200:
        # Same file, but this answer ignored the range (the probe showed the server can do
        # ranges): drop the body, never splice it, and try again. A server that stopped for
        # good runs out of tries with the state kept; the next run's probe then sees the 200
        # and takes one stream.
        return Retry(Failure(f"{name} ignored a Range request", retry=True))
    if status != 206:
        return Retry(Failure(f"{name} answered {status}", retry=True, status=status))
    try:
        first, last, total = parse_content_range(headers.get("Content-Range", ""))
    except ValueError as exc:
        return Retry(Failure(f"{name}: {exc}", retry=True))
    if (first, last, total) != (start, end, known.size):
        return Retry(Failure(f"{name} answered bytes {first}-{last} for {start}-{end}", retry=True))
    return Ranged(first, known.size, etag, modified)
