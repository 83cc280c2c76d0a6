"""Files an index lists without a sha256 (a find-links page, a plain directory listing, some
private indexes), kept from one run to the next (``serve``; ``fetch_file`` for install and
download, which use a copy only once the server confirms it).

Such a file is known only by its URL. After its download a record is written beside the
cache's by-URL folder: the sha256 segfetch computed, the size, and the ETag / Last-Modified
the upstream sent with the bytes. A later run serves the copy in the sha256 cache (checked
against the recorded sha256) once one cheap request shows the upstream still has that very
file: a GET of one byte with ``If-None-Match`` / ``If-Modified-Since``; a 304, or the same
size and validators, is the same file (a download that came with no validator is fetched
anew: a size alone does not tell two builds apart). With no answer (the upstream is down,
or answers 5xx) the copy is served all the same, as proxpi and devpi-server serve theirs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import httpx
import trio

from segfetch.engine import failures, versions
from segfetch.engine.ranges import parse_content_range
from segfetch.errors import redact_url
from segfetch.wheels.cache import Cache
from segfetch.wheels.pages import save_json

FORMAT = 1  # an entry of another layout is no entry


@dataclass(frozen=True)
class Kept:
    """What a run downloaded from one URL."""

    sha256: str
    size: int
    etag: str | None = None  # strong, as the engine keeps it
    last_modified: str | None = None


class Verdict(Enum):
    SAME = "the same file"
    CHANGED = "another file"
    NO_ANSWER = "no answer"


def record_path(cache: Cache, url: str, filename: str) -> Path:
    """Where the record of the file at ``url`` is kept (beside its by-URL folder)."""
    return cache.unverified_path(url, filename + ".kept.json")


def load(path: Path) -> Kept | None:
    """The record at ``path``; None if there is none this version could have written."""
    try:
        raw = json.loads(path.read_bytes())
        if raw.get("format") != FORMAT:
            return None
        sha256, size = raw["sha256"], raw["size"]
        etag, modified = raw.get("etag"), raw.get("last_modified")
        texts = all(v is None or isinstance(v, str) for v in (etag, modified))
        if not (isinstance(sha256, str) and len(sha256) == 64 and texts):
            return None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        return Kept(sha256, size, etag, modified)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def save(path: Path, url: str, kept: Kept) -> None:
    """Write the record atomically (temp + rename); failing to write only loses it."""
    doc = {"format": FORMAT, "url": redact_url(url), **kept.__dict__}  # (the URL for people)
    save_json(path, doc)


def conditional(kept: Kept | None) -> dict[str, str]:
    """The headers of the check: one byte (a server that ignores the conditions sends no
    more), and the validators the file came with (a 304 where it is unchanged)."""
    headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
    if kept is None:
        return headers
    if kept.etag is not None and kept.etag.isascii():
        headers["If-None-Match"] = kept.etag
    if kept.last_modified is not None and kept.last_modified.isascii():
        headers["If-Modified-Since"] = kept.last_modified
    return headers


def size_of(status: int, headers: Mapping[str, str]) -> int | None:
    """The whole file's size in an answer to ``bytes=0-0``: a 206's Content-Range total, a
    200's Content-Length; None where it does not say. Pure."""
    if status == 206:
        try:
            return parse_content_range(headers.get("Content-Range", ""))[2]
        except ValueError:
            return None
    return versions.content_length(headers) if status == 200 else None


def verdict(kept: Kept, status: int, headers: Mapping[str, str]) -> Verdict:
    """Whether an answer to ``conditional(kept)`` shows the kept file. Pure.

    A 304 is the same file. A 200 or 206 is, with the same size and validators, judged as
    the engine judges a resumed answer (a validator it lacks, where one was known, is a
    change). Where the download came with no validator, a size cannot tell one build from
    another of the same length: fetched anew, as pip fetches it. A 5xx or a 429 is no
    answer; anything else (404, 403, a 416, a size not said) is fetched anew, and that
    download says what the upstream says."""
    if status == 304:
        return Verdict.SAME
    if status >= 500 or status == 429:
        return Verdict.NO_ANSWER
    size = size_of(status, headers)
    if size is None or (kept.etag is None and kept.last_modified is None):
        return Verdict.CHANGED
    etag, modified = versions.validators(headers)
    known = versions.Known(kept.size, kept.etag, kept.last_modified)
    return Verdict.CHANGED if versions.changed(known, etag, modified, size) else Verdict.SAME


async def ask(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], timeout: float
) -> tuple[int, httpx.Headers] | str:
    """One small GET (redirects followed), its body not read: (status, headers), or why
    there was no answer."""
    try:
        with trio.fail_after(timeout):
            async with client.stream("GET", url, headers=headers, follow_redirects=True) as r:
                return r.status_code, r.headers
    except trio.TooSlowError:
        return f"no answer within {timeout:g} s"
    except httpx.TransportError as exc:
        return failures.from_transport(exc, url).message
    except httpx.TooManyRedirects:
        return "too many redirects"


async def check(
    client: httpx.AsyncClient, url: str, kept: Kept, timeout: float
) -> tuple[Verdict, str]:
    """Whether the upstream still has the kept file, and why not where it does not say."""
    answer = await ask(client, url, conditional(kept), timeout)
    if isinstance(answer, str):
        return Verdict.NO_ANSWER, answer
    status, headers = answer
    return verdict(kept, status, headers), f"answered {status}"
