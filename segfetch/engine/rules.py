"""The rules that judge a server's answer, apart from any I/O (as h11 keeps its state machine
apart from sockets): given what was asked and what is known of the file, what does this
status and these headers mean? Pure: no socket, no trio, no clock.

Each judgement returns one verdict, and the download loop only carries it out:
``Ranged`` / ``Whole`` use the body, ``WithoutRange`` asks it plainly; ``Retry`` tries the
same request again; ``Restart`` starts the whole file over; ``Fail`` ends the download with
one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from segfetch.engine.coding import codings, decodable
from segfetch.engine.failures import Failure
from segfetch.engine.ranges import parse_content_range, parse_unsatisfied_range
from segfetch.engine.versions import (
    Known,
    bare_other_size,
    changed,
    content_length,
    per_node_etag,
    same_version,
    validators,
    vouched,
)
from segfetch.errors import ServerError

Headers = Mapping[str, str]  # httpx.Headers, or a plain dict in tests


@dataclass(frozen=True)
class Ranged:
    """A usable 206: its body is exactly the bytes asked for."""

    first: int
    total: int
    etag: str | None
    last_modified: str | None
    # The total is only where a ``bytes a-b/*`` answer stopped: the server may cap its
    # answers and keep the size to itself (``end_confirmed`` checks it at the end).
    unsure: bool = False
    # Where the answer's bytes end, if before the end asked: a server that cuts its answers
    # short (its Content-Range says so). The rest is asked for next.
    end: int | None = None


@dataclass(frozen=True)
class Multipart:
    """A 206 as ``multipart/byteranges``: read the part's head from the body, then judge
    again with the part's Content-Range (see multipart.py)."""

    boundary: bytes


@dataclass(frozen=True)
class Whole:
    """A 200: the server ignores ranges; the body is the whole file from byte 0."""

    size: int | None  # from Content-Length, if it gave one (none with a coding)
    # The coding the body came in, to decode as it arrives (coding.py): "gzip" or "deflate"
    coding: str | None = None


@dataclass(frozen=True)
class WithoutRange:
    """Ask the file again without Range, which tells what there is: the file may have no
    bytes (416 with ``bytes */0`` to a first request), or fewer than the first request
    asked (a 416 ``bytes */N`` to a range past the end of a small file, which the server
    refuses where RFC 9110 has it clipped; or to any range: a server that refuses them
    all); or a 200 was just the bytes asked (a script that seeks to the range, but
    forgets the 206), or a file of that very length. ``total``: N, which that answer
    must then be."""

    total: int | None = None


@dataclass(frozen=True)
class Retry:
    """Try again, keeping every saved byte. ``drop_etag``: the ETag differs from node to
    node of a load-balanced server while size and Last-Modified agree; send If-Range with
    Last-Modified from now on. ``open``: the size is only learnt from an open-ended range."""

    failure: Failure
    drop_etag: bool = False
    drop_date: bool = False  # and Last-Modified too: no If-Range from now on (checked only)
    open: bool = False  # ask the rest of the file (``bytes=N-``) next time
    whole: bool = False  # a 200 of the very file (its validators say so): usable as one stream


@dataclass(frozen=True)
class Restart:
    """Start the whole file over: it changed, or the saved state does not fit it.
    ``one_node``: the size is the same (mid-run; before it, only the ETag differs) and
    nothing checks the result: another node of a load balancer (nginx's ETag and date come
    from each node's mtime), or a mirror's other bytes; start over on one connection, whose
    one request reaches one node."""

    reason: str
    one_node: bool = False
    lost: bool = False  # the answer had no validator at all (download._Download._pass)


def _restart(
    known: Known,
    etag: str | None,
    last_modified: str | None,
    size: int | None,
    reason: str,
    mid_run: bool = False,
) -> Restart:
    """``one_node`` where another node may be why: its own ETag for the same size and date,
    or, within one run, any other validators (or none) for the same size."""
    same_size = size is None or size == known.size
    lost = mid_run and etag is None and last_modified is None
    other_node = mid_run or per_node_etag(known._replace(checked=True), etag, last_modified)
    return Restart(reason, one_node=same_size and other_node, lost=same_size and lost)


@dataclass(frozen=True)
class Fail:
    error: ServerError


Verdict = Ranged | Multipart | Whole | WithoutRange | Retry | Restart | Fail


def multipart_boundary(headers: Headers) -> bytes | None:
    """The boundary of a ``multipart/byteranges`` answer, or None for any other type."""
    media, _, params = headers.get("Content-Type", "").partition(";")
    if media.strip().lower() != "multipart/byteranges":
        return None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value.strip('"'):
            # (in the bytes it came as: httpx decoded the head as ASCII, UTF-8 or Latin-1)
            boundary = value.strip('"')
            return boundary.encode(getattr(headers, "encoding", "latin-1"), "replace")
    return None


# After the last try of an answer of the wrong shape, which waiting does not mend.
ODD_SERVER = "the server (or a proxy on the way) answers so; try another mirror or proxy"


def decoded_whole(headers: Headers, name: str, status: int) -> str | None:
    """The coding to decode (coding.py) of an answer that is all of the file in one coding
    segfetch decodes: a 200, or a 206 of all of its bytes (``bytes 0-N/N+1``, Apache's
    mod_deflate answers a range of a small file so: its coded bytes, all of them). None for
    any other answer: a part of a coded stream fits no other answer's."""
    whole = status == 200 or (status == 206 and _whole_length(headers) is not None)
    return decodable(headers, name) if whole else None


def cannot_be_the_file(
    headers: Headers, name: str, html_ok: bool, status: int, decoded: bool = False
) -> Retry | None:
    """An answer whose body is not the file's bytes, whatever its status says: compressed
    though identity was asked (a range would be of the compressed bytes; ``decoded``: an
    answer that is all of the file in a coding segfetch decodes is usable here), or an HTML
    page (a captive portal, a login page) for a file that is not HTML. A 206 is no portal's
    page: its type is the server's guess (nginx's default_type is often text/html)."""
    encoding = headers.get("Content-Encoding", "identity").strip()
    whole = decoded_whole(headers, name, status) is not None
    if codings(headers, name) and not (decoded and whole):
        # Not the file's bytes, so never written; but worth another try, as a proxy may
        # compress only some answers. A server that always does runs out of tries quickly;
        # one that sends the whole file so to ranges (``whole``): one stream, decoded; a
        # part of a stream it would decode: asked for all of it ("bytes=0-") next time.
        message = (
            f"{name} sent {encoding}-encoded bytes though asked for the file as it is; "
            "they cannot be used as the file's bytes"
        )
        failure = Failure(message, retry=True, advice=ODD_SERVER)
        part = status == 206 and decodable(headers, name) is not None
        return Retry(failure, whole=whole, open=part)
    if status == 200 and (label := _part_label(headers)) is not None:
        # A 206 mislabelled (a servlet that forgot its status): never the whole file. Asked
        # again as "bytes=0-", such a server sends all of it.
        message = f"{name} answered 200 with only {label} of the file"
        return Retry(Failure(message, retry=True), open=True)
    media = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not html_ok and status not in (206, 416) and media in ("text/html", "application/xhtml+xml"):
        message = f"{name} answered with an HTML page, not the file (a captive portal or login?)"
        return Retry(Failure(message, retry=True, advice="check the URL, or log in to the network"))
    return None


def _part_label(headers: Headers) -> str | None:
    """A Content-Range that names less than the whole file ("bytes a-b/total"), or None."""
    value = headers.get("Content-Range", "")
    try:
        first, last, total = parse_content_range(value)
    except ValueError:
        return None  # (none, or meaningless: RFC 9110 has a 200 ignore it)
    return None if first == 0 and last in (total, None) else value.strip()


def same_etag_other_size(
    known: Known, etag: str | None, size: int | None, name: str
) -> Retry | None:
    """An answer of another size under the file's own strong ETag: the same ETag is the same
    bytes (RFC 9110 8.8.1), so the answer is wrong, not the file new; tried again."""
    if size in (None, known.size) or known.etag is None or etag != known.etag:
        return None
    message = f"{name} answered {size} bytes under the ETag of its {known.size}-byte file"
    return Retry(Failure(message, retry=True, advice=ODD_SERVER))


def _bare_other_size(
    known: Known, etag: str | None, last_modified: str | None, size: int | None, name: str
) -> Retry | None:
    if not bare_other_size(known, etag, last_modified, size):
        return None
    message = f"{name} answered {size} bytes without the validators of its {known.size}-byte file"
    return Retry(Failure(message, retry=True, advice=ODD_SERVER))


def judge_probe(
    status: int,
    headers: Headers,
    start: int,
    end: int | None,
    known: Known | None,
    expected_size: int | None,
    name: str,
    html_ok: bool = False,
) -> Verdict:
    """The first answer of a pass: bytes ``[start, end)`` (``end`` None: to the end) were
    asked, with If-Range if ``known`` (the saved state) is not None. Saved bytes are given
    up (Restart) only on evidence that the file changed, never for an answer that merely
    cannot be used."""
    if (bad := cannot_be_the_file(headers, name, html_ok, status, decoded=True)) is not None:
        return bad
    if decoded_whole(headers, name, status):  # decoded from byte 0: nothing saved fits
        return judge_whole(status, headers, expected_size, name, html_ok)
    etag, modified = validators(headers)
    if status == 200:
        if known is None:
            length = content_length(headers)  # (the range's length, or none said: unclear)
            if end is not None and (length is None or end - start == length != expected_size):
                return WithoutRange()
            return judge_whole(status, headers, expected_size, name, html_ok)
        size = content_length(headers)
        if expected_size is not None and size is not None and size != expected_size:
            return _not_the_size(name, size, expected_size)
        if (odd := _bare_other_size(known, etag, modified, size, name)) is not None:
            return odd
        # (A 200 to If-Range without the known validators: not matched, or not looked at.)
        if changed(known, etag, modified, size) or not vouched(known, etag, modified):
            return _restart(known, etag, modified, size, "the file changed since the last run")
        if per_node_etag(known, etag, modified):  # another node: If-Range by date instead
            message = f"{name} sent another node's ETag; asking again by Last-Modified"
            return Retry(Failure(message, retry=True), drop_etag=True)
        if same_version(known, etag, modified, size):
            return Whole(known.size)  # the same bytes: usable as one stream, state kept
        message = f"{name} ignored the range asked for; the saved bytes are kept"
        return Retry(Failure(message, retry=True), drop_etag=per_node_etag(known, etag, modified))
    if status == 412 and known is not None and (known.etag or known.last_modified):
        return _if_range_refused(known, name)
    if status == 416:
        total = parse_unsatisfied_range(headers.get("Content-Range", ""))
        if known is not None:
            if total is not None and total != known.size:
                return Restart("the file changed since the last run")
            return Retry(Failure(f"{name} answered 416 to a range inside the file", retry=True))
        if total in (0, None) and not expected_size:
            # "bytes */0", or no size at all (RangeHTTPServer's empty file): a request
            # without Range tells what there is.
            return WithoutRange()
        if total is not None and expected_size and total != expected_size:
            return _not_the_size(name, total, expected_size)
        if total is not None and start == 0:
            # A small file, and a range that runs past its end: refused, not clipped; or a
            # server that refuses every range (curl and aria2c get such a file whole).
            return WithoutRange(total)
        message = f"{name} answered 416 to a request for the start of the file"
        return Retry(Failure(message, retry=True, status=416))
    if status != 206:
        return Retry(Failure(f"{name} answered {status}", retry=True, status=status))
    if (boundary := multipart_boundary(headers)) is not None:
        return Multipart(boundary)
    try:
        first, last, total = parse_content_range(headers.get("Content-Range", ""))
    except ValueError as exc:
        if known is None and "Content-Range" not in headers:  # (curl and aria2c take it
            return WithoutRange()  # as the bytes asked; a plain GET gives all of them)
        return Retry(Failure(f"{name}: {exc}", retry=True, advice=ODD_SERVER))
    said = total is not None  # (not "bytes a-b/*")
    if total is None:  # "bytes a-b/*": on a rerun, or from the index, the size is known
        total = known.size if known is not None else expected_size
    if total is None:
        if end is not None:  # "bytes a-b/*": only an open-ended request learns the size
            return Retry(Failure(f"{name} did not say the file's size", retry=True), open=True)
        total = last  # "bytes a-b/*" to an open-ended request: what it sent, so far
    whole = _whole_length(headers) is not None
    if known is None and whole and end is not None and end < last:
        return Whole(total)  # the whole file to a smaller range: the server ignores ranges
    # A bounded first request past the end of a small file gets what there is.
    asked_end = min(end, total) if end is not None else total
    if first != start:  # (more than asked, from the start asked: the bytes asked are used)
        message = f"{name} answered a different range than asked"
        return Retry(Failure(message, retry=True, advice=ODD_SERVER))
    if expected_size is not None and total != expected_size:  # a saved state's size too
        return _not_the_size(name, total, expected_size)
    odd = None if known is None else _bare_other_size(known, etag, modified, total, name)
    if odd is not None:
        return odd
    if known is not None and changed(known, etag, modified, total):
        return _restart(known, etag, modified, total, "the file changed since the last run")
    unsure = not said and expected_size is None
    # A first answer whose file ends just where the bounded request did: a file of exactly
    # that size, or a server that gives the range's end as the total (xrootd 4.8's
    # "bytes 0-16384/16385"): the 256 KiB were kept as the file, exit 0. What follows is
    # asked once (end_confirmed), as after "bytes a-b/*".
    unsure = unsure or (known is None and expected_size is None and last == total == end)
    return Ranged(first, total, etag, modified, unsure, last if last < asked_end else None)


def end_confirmed(status: int, headers: Headers, size: int) -> bool:
    """The answer to ``bytes=size-``, asked after ``bytes a-b/*`` answers that ended at
    ``size``: a 416 (that names no other size) says the file ends there, as does a 200 of
    ``size`` bytes (a server that ignores a range past the end); anything else (more bytes)
    that the server cut its answers short and never said the size."""
    if status == 200:
        return content_length(headers) == size
    total = parse_unsatisfied_range(headers.get("Content-Range", ""))
    return status == 416 and total in (None, size)


def _if_range_refused(known: Known, name: str) -> Retry | Fail:
    """A 412 to a request with If-Range, which is no precondition (RFC 9110 13.1.5): a
    server that takes it for one. Checked by a sha256, the rest is asked without it;
    unchecked, If-Range is what keeps a changed file from being spliced."""
    if known.checked:
        message = f"{name} answered 412 to If-Range; asking without it"
        return Retry(Failure(message, retry=True), drop_etag=True, drop_date=True)
    why = f"{name} answered 412 Precondition Failed to If-Range"
    return Fail(ServerError(f"{why}; give --sha256 to download it without If-Range"))


def judge_whole(
    status: int, headers: Headers, expected_size: int | None, name: str, html_ok: bool = False
) -> Whole | Retry | Fail:
    """An answer to a request without Range, from a server that ignores ranges; or a 206
    of the whole file (``bytes 0-N/N+1``)."""
    coding = decoded_whole(headers, name, status)
    size = content_length(headers)
    if status == 206 and (whole := _whole_length(headers)) is not None:
        status, size = 200, whole  # (its Content-Range says the length, with none given)
    if status != 200:
        return Retry(Failure(f"{name} answered {status}", retry=True))
    if (bad := cannot_be_the_file(headers, name, html_ok, status, coding is not None)) is not None:
        return bad
    if coding is not None:
        return Whole(None, coding)  # (its length is the compressed bytes')
    if expected_size is not None and size is not None and size != expected_size:
        return _not_the_size(name, size, expected_size)
    return Whole(size)


def _whole_length(headers: Headers) -> int | None:
    """The file's length, where a 206 is all of it: ``bytes 0-N/N+1``, and a Content-Length
    that does not say less (or more). Else None."""
    try:
        first, last, total = parse_content_range(headers.get("Content-Range", ""))
    except ValueError:
        return None
    whole = first == 0 and last == total and content_length(headers) in (None, total)
    return total if whole else None


def _not_the_size(name: str, total: int, expected: int) -> Fail:
    return Fail(
        ServerError(
            f"{name} is {total} bytes, but {expected} were expected (--size, the index's page "
            "or the saved state said so); check the size or the URL"
        )
    )


def judge_segment(
    status: int,
    headers: Headers,
    start: int,
    end: int,
    known: Known,
    name: str,
    html_ok: bool = False,
    if_range: bool = True,
) -> Ranged | Multipart | Retry | Restart | Fail:
    """An answer to ``Range: bytes=start-(end-1)`` (with If-Range unless it was dropped),
    once the file is known."""
    if (bad := cannot_be_the_file(headers, name, html_ok, status)) is not None:
        return bad
    etag, modified = validators(headers)
    size = content_length(headers) if status == 200 else None
    span = None  # (first, end) of a plain 206
    if status == 206 and multipart_boundary(headers) is None:
        try:
            first, last, size = parse_content_range(headers.get("Content-Range", ""))
        except ValueError as exc:
            return Retry(Failure(f"{name}: {exc}", retry=True, advice=ODD_SERVER))
        span = (first, last)
    if (wrong := same_etag_other_size(known, etag, size, name)) is not None:
        return wrong
    if (odd := _bare_other_size(known, etag, modified, size, name)) is not None:
        return odd
    if changed(known, etag, modified, size, body=status in (200, 206)):
        reason = f"{name} changed during the download"
        return _restart(known, etag, modified, size, reason, mid_run=True)
    if status == 200 and not vouched(known, etag, modified):
        if known.checked and size == known.size:
            # Another node's validators (If-Range with ours is bound to fail there): ask
            # without If-Range from now on; the sha256 finds a splice.
            message = f"{name}'s servers name the file differently; asking without If-Range"
            return Retry(Failure(message, retry=True), drop_etag=True, drop_date=True)
        # The whole file, without the validators If-Range named: it did not match, or is
        # not read. Start over (with this body, as from a first request).
        reason = f"{name} answered a range with the whole file, without its validators"
        return _restart(known, etag, modified, size, reason, mid_run=True)
    if (
        status == 200
        and if_range
        and known.checked
        and not known.etag
        and same_version(known, etag, modified, size)
    ):
        # If-Range by date, answered with the same file whole: a date the server takes as
        # weak (Apache's, for a file changed within the last minute). Checked, ask without it.
        message = f"{name} ignored If-Range by date; asking without it"
        return Retry(Failure(message, retry=True), drop_date=True)
    if status == 200:
        # Same file, but this answer ignored the range: drop the body, never splice it, and
        # try again. Where the ETag differs from node to node, If-Range with it fails on the
        # other nodes: from now on it carries Last-Modified.
        failure = Failure(f"{name} ignored a Range request", retry=True)
        # (Not another node's ETag: If-Range with ours was bound to get the whole file there.)
        other_node = per_node_etag(known, etag, modified)
        # (If-Range dropped, checked by the sha256: the same size is the file whole.)
        bare = known.checked and not if_range and size == known.size
        whole = not other_node and (same_version(known, etag, modified, size) or bare)
        return Retry(failure, drop_etag=other_node, whole=whole)
    if status == 412 and (known.etag or known.last_modified):
        return _if_range_refused(known, name)
    if status != 206:
        return Retry(Failure(f"{name} answered {status}", retry=True, status=status))
    if span is None:
        return Multipart(multipart_boundary(headers) or b"")
    if span[0] != start:  # (a shorter or a longer range from the start: its first bytes
        # are the ones asked, and no more are written; RFC 9110 lets a server send more)
        # (as HTTP writes them: the last byte, not the end)
        message = f"{name} answered bytes {span[0]}-{span[1] - 1} for {start}-{end - 1}"
        return Retry(Failure(message, retry=True, advice=ODD_SERVER))
    return Ranged(start, known.size, etag, modified, end=span[1] if span[1] < end else None)
