"""Which version of the file an answer is: its validators (strong ETag, Last-Modified) and
size against what earlier answers established. Pure, as rules.py, which judges with these."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import NamedTuple

Headers = Mapping[str, str]


class Known(NamedTuple):
    """What an earlier answer (or the control file) established about the file."""

    size: int
    etag: str | None  # strong ETags only
    last_modified: str | None
    # A sha256 checks every byte of the result: only then do other validators for the same
    # size (another node's names for its bytes) not count as a change. (A zip's CRCs skip
    # bytes where nodes' builds of one size differ: they are no such check.)
    checked: bool = False
    # Some answers of this server came without validators where others had them: such an
    # answer no longer counts as a change (other validators still do).
    lenient: bool = False


def validators(headers: Headers) -> tuple[str | None, str | None]:
    """(strong ETag, Last-Modified). A weak ETag may not be used in If-Range (RFC 9110), nor
    one not ASCII (httpx decoded it by a guess, cannot send it back): such counts as none.
    Neither counts for a file modified within the second of the answer's Date: it may be
    replaced again in that second under the same Last-Modified and the same ETag, which
    servers make from the time and size (nginx's, Apache's): RFC 9110 8.8.2.2."""
    etag = headers.get("ETag")
    if etag is not None and (etag.startswith("W/") or not etag.isascii()):
        etag = None
    modified = headers.get("Last-Modified")
    if modified is not None and not modified.isascii():
        modified = None
    ahead = _ahead(modified, headers.get("Date")) if modified is not None else None
    if ahead is not None and ahead >= 0:  # (whole seconds: not at least one before Date)
        return None, None
    return etag, modified


def settle_wait(headers: Headers) -> float | None:
    """Seconds until the second of a file just written is past on the server's clock (its
    validators count then), for a Last-Modified at most a second past the answer's Date;
    None for any other answer (one further ahead: a clock or mtime that is wrong)."""
    modified = headers.get("Last-Modified")
    ahead = _ahead(modified, headers.get("Date")) if modified is not None else None
    return ahead + 1.1 if ahead is not None and 0 <= ahead <= 1 else None


def _ahead(modified: str, date: str | None) -> float | None:
    """Seconds Last-Modified is past Date (negative: before it); None where either is
    missing or unreadable, or one has a zone and the other none."""
    try:
        return (parsedate_to_datetime(modified) - parsedate_to_datetime(date or "")).total_seconds()
    except (TypeError, ValueError):
        return None


def content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def changed(
    known: Known,
    etag: str | None,
    last_modified: str | None,
    size: int | None = None,
    body: bool = True,
) -> bool:
    """Whether an answer may be another version of the file than ``known``: another size,
    Last-Modified or strong ETag, or, for an answer with the file's bytes (``body``), none of
    the known validators (a node or proxy that drops them: nothing shows its If-Range was
    honoured). Where none was known, a missing validator proves nothing. Where a sha256
    checks the result (``checked``), no validator proves a change of a file of the same size:
    nodes of a load balancer each have their own ETag and date; the sha256 finds a splice."""
    if size is not None and size != known.size:
        return True
    if size is not None and known.checked:
        return False
    if known.last_modified and last_modified and last_modified != known.last_modified:
        return True
    unproven = body and not known.checked and not _taken_bare(known, etag, last_modified)
    return other_etag(known, etag) or unproven


def _taken_bare(known: Known, etag: str | None, last_modified: str | None) -> bool:
    """Vouched for, or bare (no validator at all) from a server known to send some bare."""
    return vouched(known, etag, last_modified) or (known.lenient and not (etag or last_modified))


def vouched(known: Known, etag: str | None, last_modified: str | None) -> bool:
    """The answer carries one of the known validators, or none was known."""
    if known.etag is None and known.last_modified is None:
        return True
    return (known.etag is not None and etag == known.etag) or (
        known.last_modified is not None and last_modified == known.last_modified
    )


def other_etag(known: Known, etag: str | None) -> bool:
    """Both have a strong ETag, and they differ."""
    return bool(known.etag and etag and etag != known.etag)


def same_version(
    known: Known, etag: str | None, last_modified: str | None, size: int | None
) -> bool:
    """Positive evidence that an answer is the known file: its strong ETag, or its size and
    Last-Modified."""
    if known.etag and etag == known.etag:
        return True
    return bool(known.last_modified and last_modified == known.last_modified and size == known.size)


def per_node_etag(known: Known, etag: str | None, last_modified: str | None) -> bool:
    """Another ETag for the same size and Last-Modified, where the result is checked."""
    other = other_etag(known, etag)
    same_date = known.last_modified is not None and last_modified == known.last_modified
    return other and known.checked and same_date


def bare_other_size(
    known: Known, etag: str | None, last_modified: str | None, size: int | None
) -> bool:
    """Another size, and none of the validators the file came with: an error's body (an
    expired signed link, a proxy's notice), not a new version, which brings its own. Taken
    as the file, it was saved with exit 0."""
    if size in (None, known.size) or etag or last_modified:
        return False
    return bool(known.etag or known.last_modified)
