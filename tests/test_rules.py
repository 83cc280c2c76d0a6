"""The rules that judge an answer, tested without sockets (as h11 tests its state machine)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine import failures, rules, versions
from segfetch.engine.ranges import range_header
from segfetch.engine.versions import Known

NAME = "https://h.example/x.whl"
sizes = st.integers(min_value=1, max_value=10**12)
etags = st.none() | st.sampled_from(['"a"', '"b"', 'W/"a"'])
dates = st.none() | st.sampled_from(
    ["Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 00:00:00 GMT"]
)


def _headers(first: int, last: int, total: int | str, **extra: str | None) -> httpx.Headers:
    """Case-insensitive, as the engine gets them from httpx."""
    h = httpx.Headers({"Content-Range": f"bytes {first}-{last}/{total}"})
    h.update({k.replace("_", "-"): v for k, v in extra.items() if v is not None})
    return h


@st.composite
def asked(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(sizes)
    start = draw(st.integers(0, size - 1))
    end = draw(st.integers(start + 1, size))
    return start, end, size


@given(asked(), st.integers(0, 10**12), st.integers(0, 10**12), st.integers(1, 10**12))
def test_a_206_is_used_only_for_the_range_asked_or_its_start(
    a: tuple[int, int, int], first: int, last: int, total: int
) -> None:
    """The range asked, or a shorter one from its start (a server that cuts its answers
    short: its bytes are where its Content-Range says, and the rest is asked next), or a
    longer one from its start (RFC 9110 lets a server send more: the bytes asked are used)."""
    start, end, size = a
    known = Known(size, '"a"', None)
    verdict = rules.judge_segment(
        206, _headers(first, last, total, etag='"a"'), start, end, known, NAME
    )
    usable = first == start and first <= last < total == size
    assert isinstance(verdict, rules.Ranged) == usable
    if usable:
        assert verdict == rules.Ranged(
            start, size, '"a"', None, end=last + 1 if last + 1 < end else None
        )
    # (another size under the same strong ETag: the same bytes, RFC 9110 8.8.1; the answer
    # is wrong, not the file new)
    if not usable:
        assert isinstance(verdict, rules.Retry)


@pytest.mark.parametrize("etag", [None, '"b"'])
def test_another_size_without_the_same_etag_is_another_version(etag: str | None) -> None:
    known = Known(100, '"a"' if etag else None, "Mon, 01 Jan 2024 00:00:00 GMT")
    headers = _headers(0, 9, 200, etag=etag)
    headers["Last-Modified"] = known.last_modified or ""
    verdict = rules.judge_segment(206, headers, 0, 10, known, NAME)
    assert isinstance(verdict, rules.Restart)


def test_another_size_under_the_same_etag_is_a_wrong_answer() -> None:
    """A whole answer of 0 bytes (or a Content-Range of another total) under the file's own
    strong ETag was taken for a new version: the file started over and became that answer."""
    known = Known(100, '"a"', None)
    whole = rules.judge_segment(200, {"ETag": '"a"', "Content-Length": "0"}, 10, 20, known, NAME)
    ranged = rules.judge_segment(206, _headers(10, 19, 200, etag='"a"'), 10, 20, known, NAME)
    for verdict in (whole, ranged):
        assert isinstance(verdict, rules.Retry)
        assert "bytes under the ETag of its 100-byte file" in verdict.failure.message


def test_a_shorter_range_from_the_start_asked_is_used() -> None:
    known = Known(100, None, None)
    verdict = rules.judge_segment(206, _headers(10, 19, 100), 10, 50, known, NAME)
    assert verdict == rules.Ranged(10, 100, None, None, end=20)
    # a longer one from the start asked: its first bytes are used (RFC 9110 allows more;
    # curl and aria2c take it); one from elsewhere is tried again
    longer = rules.judge_segment(206, _headers(10, 59, 100), 10, 50, known, NAME)
    assert longer == rules.Ranged(10, 100, None, None)
    assert isinstance(
        rules.judge_segment(206, _headers(9, 59, 100), 10, 50, known, NAME), rules.Retry
    )
    # the first request too; with the size from the index, "bytes a-b/*" is of that size
    probe = rules.judge_probe(206, _headers(0, 9, 100), 0, 50, None, None, NAME)
    assert probe == rules.Ranged(0, 100, None, None, end=10)
    unknown = rules.judge_probe(206, _headers(0, 9, "*"), 0, 50, None, 100, NAME)
    assert unknown == rules.Ranged(0, 100, None, None, end=10)
    assert isinstance(
        rules.judge_probe(206, _headers(0, 9, "*"), 0, 50, None, None, NAME), rules.Retry
    )


@given(asked())
def test_a_206_that_starts_elsewhere_but_ends_right_is_refused(a: tuple[int, int, int]) -> None:
    start, end, size = a
    if start == 0:
        return
    known = Known(size, None, None)
    for first in (start - 1, 0):
        verdict = rules.judge_segment(206, _headers(first, end - 1, size), start, end, known, NAME)
        assert isinstance(verdict, rules.Retry)


@given(asked(), etags, dates, etags, dates)
def test_a_segment_from_another_version_restarts_and_is_never_used(
    a: tuple[int, int, int],
    old_etag: str | None,
    old_date: str | None,
    etag: str | None,
    date: str | None,
) -> None:
    start, end, size = a
    known = Known(size, old_etag if old_etag and not old_etag.startswith("W/") else None, old_date)
    headers = _headers(start, end - 1, size, etag=etag, last_modified=date)
    verdict = rules.judge_segment(206, headers, start, end, known, NAME)
    strong, modified = versions.validators(headers)
    if versions.changed(known, strong, modified, size):
        assert isinstance(verdict, rules.Restart)
    else:
        assert isinstance(verdict, rules.Ranged)


@given(asked(), st.sampled_from([200, 416]))
def test_a_segment_answered_without_its_range_is_retried(
    a: tuple[int, int, int], status: int
) -> None:
    start, end, size = a
    verdict = rules.judge_segment(status, {}, start, end, Known(size, None, None), NAME)
    assert isinstance(verdict, rules.Retry)
    assert verdict.failure.retry


def test_weak_etags_are_not_validators() -> None:
    assert versions.validators({"ETag": 'W/"x"', "Last-Modified": "d"}) == (None, "d")
    assert versions.validators({"ETag": '"x"'}) == ('"x"', None)


@given(etags, dates)
def test_a_missing_validator_proves_no_change(etag: str | None, date: str | None) -> None:
    assert not versions.changed(Known(1, None, None), etag, date)


@given(sizes, st.integers(0, 10**12))
def test_probe_of_a_new_file(size: int, expected: int) -> None:
    headers = _headers(0, size - 1, size, etag='"e"')
    verdict = rules.judge_probe(206, headers, 0, None, None, None, NAME)
    assert verdict == rules.Ranged(0, size, '"e"', None)
    verdict = rules.judge_probe(206, headers, 0, None, None, expected, NAME)
    assert isinstance(verdict, rules.Ranged if expected == size else rules.Fail)


@given(sizes)
def test_probe_with_saved_state(size: int) -> None:
    """Saved bytes are given up only on evidence of another version, never for an answer
    that merely cannot be used (a stray 200, a portal's page, a 416)."""
    known = Known(size, '"e"', None)

    def probe(status: int, headers: dict[str, str]) -> rules.Verdict:
        return rules.judge_probe(status, httpx.Headers(headers), 0, 1, known, None, NAME)

    assert isinstance(probe(200, {"ETag": '"other"'}), rules.Restart)
    other = {"Content-Length": str(size + 1), "Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"}
    assert isinstance(probe(200, other), rules.Restart)
    # Another size with no validator at all: an error's body, not a new version.
    assert isinstance(probe(200, {"Content-Length": str(size + 1)}), rules.Retry)
    assert probe(200, {"ETag": '"e"'}) == rules.Whole(size)  # the same bytes, as one stream
    # No validator at all, where one was known: If-Range was not met (or not checked).
    lost = probe(200, {})
    assert isinstance(lost, rules.Restart) and not lost.one_node
    assert probe(200, {"ETag": '"e"', "Content-Length": str(size)}) == rules.Whole(size)
    portal = probe(200, {"Content-Type": "text/html", "ETag": '"portal"'})
    assert isinstance(portal, rules.Retry)
    other_size = {"Content-Range": f"bytes 0-0/{size + 1}", "ETag": '"e"'}
    assert isinstance(probe(206, other_size), rules.Restart)
    assert isinstance(probe(416, {}), rules.Retry)
    assert isinstance(probe(416, {"Content-Range": f"bytes */{size + 1}"}), rules.Restart)


def test_per_node_etags_are_not_a_new_file_where_the_result_is_checked() -> None:
    """Nodes of a load balancer: other ETag, same size and Last-Modified. Only where the
    result is checked (a sha256, a zip): else a mirror's other bytes could be spliced in."""
    date = "Mon, 01 Jan 2024 00:00:00 GMT"
    unchecked = Known(100, '"node-a"', date)
    for status, head in [
        (200, {"Content-Length": "100"}),
        (206, {"Content-Range": "bytes 10-19/100"}),
    ]:
        other = httpx.Headers({"ETag": '"node-b"', "Last-Modified": date, **head})
        verdict = rules.judge_segment(status, other, 10, 20, unchecked, NAME)
        assert verdict == rules.Restart(f"{NAME} changed during the download", one_node=True)
        probe = rules.judge_probe(status, other, 10, 20, unchecked, None, NAME)
        assert isinstance(probe, rules.Restart) and probe.one_node
    known = Known(100, '"node-a"', date, checked=True)
    node_b = httpx.Headers({"ETag": '"node-b"', "Last-Modified": date, "Content-Length": "100"})
    verdict = rules.judge_segment(200, node_b, 10, 20, known, NAME)
    assert isinstance(verdict, rules.Retry) and verdict.drop_etag and not verdict.whole
    assert not verdict.drop_date  # If-Range by the date all nodes share
    # The whole file under our own ETag: a server that ignores ranges (one stream, in time).
    node_a = httpx.Headers({"ETag": '"node-a"', "Last-Modified": date, "Content-Length": "100"})
    verdict = rules.judge_segment(200, node_a, 10, 20, known, NAME)
    assert isinstance(verdict, rules.Retry) and verdict.whole and not verdict.drop_etag
    ranged = httpx.Headers(
        {"ETag": '"node-b"', "Last-Modified": date, "Content-Range": "bytes 10-19/100"}
    )
    assert isinstance(rules.judge_segment(206, ranged, 10, 20, known, NAME), rules.Ranged)


def test_nodes_with_their_own_dates() -> None:
    """Nodes deployed apart: the same bytes under each node's own ETag and Last-Modified
    (nginx makes both from the mtime), one node per request behind the balancer. Within a
    run, any other validators for the same size start an unchecked file over on one
    connection (one request, one node); a checked one keeps its bytes and asks without
    If-Range from then on (its sha256 finds a splice). Another size is a new file."""
    date, later = "Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 00:00:00 GMT"
    node_b = {"ETag": '"node-b"', "Last-Modified": later}
    whole = httpx.Headers({**node_b, "Content-Length": "100"})
    ranged = httpx.Headers({**node_b, "Content-Range": "bytes 10-19/100"})
    unchecked = Known(100, '"node-a"', date)
    for status, head in [(200, whole), (206, ranged), (200, httpx.Headers(node_b))]:
        verdict = rules.judge_segment(status, head, 10, 20, unchecked, NAME)
        assert isinstance(verdict, rules.Restart) and verdict.one_node
    no_date = httpx.Headers({"ETag": '"b"', "Content-Range": "bytes 10-19/100"})
    verdict = rules.judge_segment(206, no_date, 10, 20, Known(100, '"a"', None), NAME)
    assert isinstance(verdict, rules.Restart) and verdict.one_node
    bigger = httpx.Headers({**node_b, "Content-Range": "bytes 10-19/200"})
    verdict = rules.judge_segment(206, bigger, 10, 20, unchecked, NAME)
    assert isinstance(verdict, rules.Restart) and not verdict.one_node
    # Between runs: a new file as likely as another node; all of it again, at full width.
    probe = rules.judge_probe(200, whole, 10, 20, unchecked, None, NAME)
    assert isinstance(probe, rules.Restart) and not probe.one_node

    checked = Known(100, '"node-a"', date, checked=True)
    verdict = rules.judge_segment(200, whole, 10, 20, checked, NAME)
    assert isinstance(verdict, rules.Retry) and verdict.drop_etag and verdict.drop_date
    assert isinstance(rules.judge_segment(206, ranged, 10, 20, checked, NAME), rules.Ranged)
    # No size to compare (no Content-Length), or another size: started over.
    no_size = rules.judge_segment(200, httpx.Headers(node_b), 10, 20, checked, NAME)
    assert isinstance(no_size, rules.Restart)
    assert isinstance(rules.judge_segment(206, bigger, 10, 20, checked, NAME), rules.Restart)
    probe = rules.judge_probe(200, whole, 10, 20, checked, None, NAME)
    assert isinstance(probe, rules.Restart)
    # Once neither validator is sent, every answer of that size is taken; the check decides.
    blind = Known(100, None, None, checked=True)
    assert isinstance(rules.judge_segment(206, ranged, 10, 20, blind, NAME), rules.Ranged)


def test_answers_that_cannot_be_the_file() -> None:
    gzip = httpx.Headers({"Content-Range": "bytes 0-9/100", "Content-Encoding": "gzip"})
    assert isinstance(
        rules.judge_segment(206, gzip, 0, 10, Known(100, None, None), NAME), rules.Retry
    )
    refused = rules.judge_probe(206, gzip, 0, None, None, None, NAME)
    assert isinstance(refused, rules.Retry)
    # Waiting does not mend it: the last try's line says so, not "raise --max-tries".
    line = str(failures.exhausted(5, refused.failure))
    assert "another mirror or proxy" in line and "--max-tries" not in line, line
    # "none" (PHP scripts send it to keep mod_deflate off) and "binary" name no coding: the
    # bytes are the file's, as curl and aria2c take them; a list with a coding in it is not.
    for value, usable in [
        ("none", True),
        ("Binary", True),
        ("identity", True),
        ("gzip, identity", False),
        ("none, br", False),
        ("x-gzip", False),
    ]:
        enc = httpx.Headers({"Content-Range": "bytes 0-9/100", "Content-Encoding": value})
        verdict = rules.judge_probe(206, enc, 0, None, None, None, NAME)
        assert isinstance(verdict, rules.Ranged) == usable, value
    # A gzip file labelled gzip is the file as it is (pip, curl and aria2c keep it): only
    # a name that says gzip, and only that one coding.
    for name, value, usable in [
        ("pkg-1.0.tar.gz", "gzip", True),
        ("https://h.example/f/pkg-1.0.TGZ?sig=a.b", "x-gzip", True),
        ("pkg-1.0.tar.gz", "gzip, br", False),
        ("pkg-1.0.tar.gz", "br", False),
        ("https://h.example/pkg-1.0-py3-none-any.whl?f=x.gz", "gzip", False),
    ]:
        enc = httpx.Headers({"Content-Range": "bytes 0-9/100", "Content-Encoding": value})
        verdict = rules.judge_probe(206, enc, 0, None, None, None, name)
        assert isinstance(verdict, rules.Ranged) == usable, (name, value)
    html = httpx.Headers({"Content-Type": "text/html; charset=utf-8", "Content-Length": "87"})
    assert isinstance(rules.judge_probe(200, html, 0, None, None, None, NAME), rules.Retry)
    page = rules.judge_probe(200, html, 0, None, None, None, NAME, html_ok=True)
    assert page == rules.Whole(87)
    # The exact range asked, typed text/html by a server's default: no portal's page.
    typed = _headers(0, 9, 100, content_type="text/html")
    assert isinstance(rules.judge_probe(206, typed, 0, 10, None, None, NAME), rules.Ranged)
    assert isinstance(
        rules.judge_segment(206, typed, 0, 10, Known(100, None, None), NAME), rules.Ranged
    )


def test_multipart_answers_are_judged_by_their_part() -> None:
    mp = httpx.Headers({"Content-Type": 'multipart/byteranges; boundary="B1"'})
    assert rules.judge_probe(206, mp, 0, None, None, None, NAME) == rules.Multipart(b"B1")
    assert rules.judge_segment(206, mp, 0, 10, Known(100, None, None), NAME) == rules.Multipart(
        b"B1"
    )


def test_probe_answers_without_ranges() -> None:
    assert rules.judge_probe(
        200, {"Content-Length": "5"}, 0, None, None, None, NAME
    ) == rules.Whole(5)
    assert rules.judge_probe(
        200, {"Content-Length": "²"}, 0, None, None, None, NAME
    ) == rules.Whole(None)
    assert isinstance(
        rules.judge_probe(200, {"Content-Length": "5"}, 0, None, None, 6, NAME), rules.Fail
    )
    # A 200 of just the bytes a bounded range asked (a script that seeks, but forgets the
    # 206; exit 0 with the first 256 KiB) or of a file that long; or of a length not said:
    # asked again without Range. Not where the range asked is the file's known size.
    for said in ({"Content-Length": "10"}, {}, {"Transfer-Encoding": "chunked"}):
        assert rules.judge_probe(200, said, 0, 10, None, None, NAME) == rules.WithoutRange()
    assert rules.judge_probe(200, {}, 0, 10, None, 10, NAME) == rules.WithoutRange()
    assert rules.judge_probe(200, {"Content-Length": "10"}, 0, 10, None, 10, NAME) == rules.Whole(
        10
    )
    assert rules.judge_probe(200, {"Content-Length": "7"}, 0, 10, None, None, NAME) == rules.Whole(
        7
    )
    empty = {"Content-Range": "bytes */0"}
    assert rules.judge_probe(416, empty, 0, None, None, None, NAME) == rules.WithoutRange()
    # A 206 that says no range: asked plainly (curl, wget and aria2c get such a file), but
    # retried where saved bytes would be given up for it, or where it says a wrong one.
    bare = {"Content-Length": "10"}
    assert rules.judge_probe(206, bare, 0, 10, None, None, NAME) == rules.WithoutRange()
    assert isinstance(
        rules.judge_probe(206, bare, 0, 10, Known(100, '"e"', None), None, NAME), rules.Retry
    )
    odd = {"Content-Range": "bytes x-y/z"}
    assert isinstance(rules.judge_probe(206, odd, 0, 10, None, None, NAME), rules.Retry)
    # No size at all, as an HTML error page (RangeHTTPServer's empty file): a plain GET
    # tells, not "an HTML page, not the file".
    page = {"Content-Type": "text/html"}
    assert rules.judge_probe(416, page, 0, None, None, None, NAME) == rules.WithoutRange()
    # A range past the end of a small file, refused where RFC 9110 has it clipped, or any
    # range refused (a server that refuses them all): a plain GET, which must be that size.
    nine = {"Content-Range": "bytes */9"}
    assert rules.judge_probe(416, nine, 0, None, None, None, NAME) == rules.WithoutRange(9)
    assert rules.judge_probe(416, nine, 0, 100, None, None, NAME) == rules.WithoutRange(9)
    assert rules.judge_probe(416, nine, 0, 5, None, None, NAME) == rules.WithoutRange(9)
    assert isinstance(rules.judge_probe(416, nine, 0, 100, None, 50, NAME), rules.Fail)
    # The whole file to a smaller range: a server that ignores ranges (one stream).
    whole_206 = {"Content-Range": "bytes 0-99/100"}
    assert rules.judge_probe(206, whole_206, 0, 10, None, None, NAME) == rules.Whole(100)
    assert isinstance(rules.judge_probe(206, whole_206, 0, 200, None, None, NAME), rules.Ranged)
    unknown = {"Content-Range": "bytes 0-9/*"}  # to "bytes=0-": what it sent, so far
    assert rules.judge_probe(206, unknown, 0, None, None, None, NAME) == rules.Ranged(
        0, 10, None, None, unsure=True
    )
    assert isinstance(rules.judge_probe(206, unknown, 0, 5, None, None, NAME), rules.Retry)
    # The size from the index, or a saved state: known, or only as sure as that state's
    assert rules.judge_probe(206, unknown, 0, None, None, 10, NAME) == rules.Ranged(
        0, 10, None, None
    )
    resumed = rules.judge_probe(206, unknown, 0, 10, Known(10, None, None), None, NAME)
    assert resumed == rules.Ranged(0, 10, None, None, unsure=True)
    sized = {"Content-Range": "bytes 0-9/10"}
    assert rules.judge_probe(206, sized, 0, None, None, None, NAME) == rules.Ranged(
        0, 10, None, None
    )


def test_end_confirmed() -> None:
    """What follows the last byte of "bytes a-b/*" answers: a 416 (naming no other size), or
    the whole file of that size, ends the file there; more bytes, or another size, mean the
    answers were cut short."""
    assert rules.end_confirmed(416, {}, 10)
    assert rules.end_confirmed(416, {"Content-Range": "bytes */*"}, 10)
    assert rules.end_confirmed(416, {"Content-Range": "bytes */10"}, 10)
    assert not rules.end_confirmed(416, {"Content-Range": "bytes */20"}, 10)
    assert not rules.end_confirmed(206, {"Content-Range": "bytes 10-19/*"}, 10)
    assert not rules.end_confirmed(200, {"Content-Length": "20"}, 10)
    assert rules.end_confirmed(200, {"Content-Length": "10"}, 10)
    assert not rules.end_confirmed(200, {}, 10)  # (to its end: no telling)


@given(asked())
def test_range_header_and_content_range_agree(a: tuple[int, int, int]) -> None:
    """What we ask for is what judge_segment accepts: the one place of inclusive ends."""
    start, end, size = a
    last = int(range_header(start, end).split("-")[1])
    verdict = rules.judge_segment(
        206, _headers(start, last, size), start, end, Known(size, None, None), NAME
    )
    assert isinstance(verdict, rules.Ranged)


def test_whole_answers() -> None:
    assert isinstance(rules.judge_whole(503, {}, None, NAME), rules.Retry)
    assert rules.judge_whole(200, {}, 7, NAME) == rules.Whole(None)
    # A 206 of the whole file says its length in its Content-Range, with no Content-Length
    whole = {"Content-Range": "bytes 0-99/100"}
    assert rules.judge_whole(206, whole, None, NAME) == rules.Whole(100)
    assert rules.judge_whole(206, {**whole, "Content-Length": "100"}, None, NAME) == rules.Whole(
        100
    )


def test_an_answer_without_the_known_validators_is_not_taken_for_the_file() -> None:
    """A node or proxy that drops validators (or sends a weak ETag) gives no evidence that
    its If-Range was honoured: within a run the file starts over on one connection (one
    node); a known date alone still vouches."""
    date = "Mon, 01 Jan 2024 00:00:00 GMT"
    tagged = Known(100, '"a"', None)
    for etag in (None, 'W/"a"', 'W/"b"'):
        head = _headers(10, 19, 100, etag=etag)
        verdict = rules.judge_segment(206, head, 10, 20, tagged, NAME)
        assert isinstance(verdict, rules.Restart) and verdict.one_node
        probe = rules.judge_probe(206, head, 10, 20, tagged, None, NAME)
        assert isinstance(probe, rules.Restart) and not probe.one_node
    # Checked (a sha256, a zip's CRCs): the check finds a splice; the bytes are taken.
    checked = Known(100, '"a"', None, checked=True)
    head = _headers(10, 19, 100)
    assert isinstance(rules.judge_segment(206, head, 10, 20, checked, NAME), rules.Ranged)
    assert isinstance(rules.judge_probe(206, head, 10, 20, checked, None, NAME), rules.Ranged)
    # ... but a 200 to If-Range without them starts over: it did not match, or is not read.
    whole = httpx.Headers({"Content-Length": "100"})
    assert isinstance(rules.judge_probe(200, whole, 10, 20, checked, None, NAME), rules.Restart)
    lenient = Known(100, '"a"', None, lenient=True)  # bare answers taken from now on...
    assert isinstance(rules.judge_segment(206, head, 10, 20, lenient, NAME), rules.Ranged)
    # ... but not a bare 200 to If-Range: the whole file, started over with
    assert isinstance(rules.judge_segment(200, whole, 10, 20, lenient, NAME), rules.Restart)
    # A 416 carries none of the file's bytes: its validators say nothing.
    refused = httpx.Headers({"Content-Range": "bytes */100"})
    assert isinstance(rules.judge_segment(416, refused, 10, 20, tagged, NAME), rules.Retry)
    dated = Known(100, None, date)
    assert isinstance(
        rules.judge_segment(206, _headers(10, 19, 100), 10, 20, dated, NAME), rules.Restart
    )
    both = Known(100, '"a"', date)
    by_date = _headers(10, 19, 100, last_modified=date)
    assert isinstance(rules.judge_segment(206, by_date, 10, 20, both, NAME), rules.Ranged)
    assert not versions.changed(Known(100, None, None), None, None, 100)


def test_a_given_size_holds_on_a_resumed_run_too() -> None:
    known = Known(1000, '"e"', None)
    other = _headers(0, 9, 1000, etag='"e"')
    verdict = rules.judge_probe(206, other, 0, 10, known, 12345, NAME)
    assert isinstance(verdict, rules.Fail) and "12345 were expected" in str(verdict.error)
    whole = httpx.Headers({"ETag": '"e"', "Content-Length": "1000"})
    assert isinstance(rules.judge_probe(200, whole, 0, 10, known, 12345, NAME), rules.Fail)
    assert isinstance(rules.judge_probe(206, other, 0, 10, known, 1000, NAME), rules.Ranged)


def test_a_whole_answer_continues_a_saved_state_only_as_its_own_file() -> None:
    """whole.py takes an answer over the saved bytes only with their validators and size:
    a strong ETag named again for another size is another file (its bytes past the end
    would stay on disk)."""
    from segfetch.engine.ranges import RangeSet
    from segfetch.engine.store import State
    from segfetch.engine.whole import _same

    keep = State("http://h/f", 100, '"A"', None, done=RangeSet([(0, 50)]))
    assert _same(keep, httpx.Headers({"ETag": '"A"'}), 100)
    assert _same(keep, httpx.Headers({"ETag": '"A"'}), None)
    assert not _same(keep, httpx.Headers({"ETag": '"A"'}), 90)
    assert not _same(keep, httpx.Headers({"ETag": '"B"'}), 100)
    assert not _same(keep, httpx.Headers({}), 100)


def test_a_range_answered_for_another_is_said_as_http_writes_ranges() -> None:
    head = _headers(0, 99, 300)  # bytes 0-99/300 for a request of bytes 100-199
    verdict = rules.judge_segment(206, head, 100, 200, Known(300, None, None), NAME)
    assert isinstance(verdict, rules.Retry)
    assert "answered bytes 0-99 for 100-199" in verdict.failure.message


def test_a_multipart_boundary_is_the_bytes_it_came_as() -> None:
    """A boundary outside Latin-1 (httpx decoded the head as UTF-8): its bytes, not a
    UnicodeEncodeError (a traceback)."""
    raw = "multipart/byteranges; boundary=\u20ac".encode()
    headers = httpx.Headers([(b"Content-Type", raw)])
    assert rules.multipart_boundary(headers) == "\u20ac".encode()
    latin = httpx.Headers([(b"Content-Type", b"multipart/byteranges; boundary=\xe9")])
    assert rules.multipart_boundary(latin) == b"\xe9"


def test_a_200_that_says_it_holds_a_part_is_not_the_file() -> None:
    """A 206 mislabelled 200 (its Content-Range a part of the file): asked again open-ended,
    never taken whole (it was: a 256 KiB piece kept as the file, exit 0)."""
    part = httpx.Headers({"Content-Range": "bytes 0-262143/3000007", "Content-Length": "262144"})
    for verdict in (
        rules.judge_probe(200, part, 0, 262144, None, None, NAME),
        rules.judge_segment(200, part, 0, 262144, Known(3000007, '"a"', None), NAME),
    ):
        assert isinstance(verdict, rules.Retry) and verdict.open
        assert "200 with only bytes 0-262143/3000007" in verdict.failure.message
    whole = httpx.Headers({"Content-Range": "bytes 0-99/100", "Content-Length": "100"})
    assert rules.judge_probe(200, whole, 0, None, None, None, NAME) == rules.Whole(100)
    bogus = httpx.Headers({"Content-Range": "pages 1-2", "Content-Length": "100"})
    assert rules.judge_probe(200, bogus, 0, None, None, None, NAME) == rules.Whole(100)


def test_another_size_without_the_files_validators_is_not_a_new_version() -> None:
    """A short 200 with no validator, where the file had an ETag: an error's body (an
    expired link), asked again; with validators of its own, or where the file had none,
    it is a new version."""
    known = Known(1000, '"e"', None)
    bare = httpx.Headers({"Content-Length": "19"})
    for verdict in [
        rules.judge_segment(200, bare, 100, 200, known, NAME),
        rules.judge_probe(200, bare, 100, None, known, None, NAME),
        rules.judge_segment(
            206, httpx.Headers({"Content-Range": "bytes 0-18/19"}), 0, 100, known, NAME
        ),
    ]:
        assert isinstance(verdict, rules.Retry), verdict
        assert "19 bytes without the validators of its 1000-byte file" in verdict.failure.message
        assert verdict.failure.advice == rules.ODD_SERVER
    own = httpx.Headers({"Content-Length": "19", "ETag": '"new"'})
    assert isinstance(rules.judge_segment(200, own, 100, 200, known, NAME), rules.Restart)
    blind = Known(1000, None, None)
    assert isinstance(rules.judge_segment(200, bare, 100, 200, blind, NAME), rules.Restart)


@pytest.mark.parametrize(
    ("modified", "date", "kept"),
    [
        ("Sun, 29 Nov 2026 22:33:41 GMT", "Sun, 29 Nov 2026 22:33:42 GMT", True),
        ("Sun, 29 Nov 2026 22:33:42 GMT", "Sun, 29 Nov 2026 22:33:42 GMT", False),  # same second
        ("Sun, 29 Nov 2026 22:40:00 GMT", "Sun, 29 Nov 2026 22:33:42 GMT", False),  # ahead
        ("Sun, 29 Nov 2026 22:33:42 GMT", None, True),  # no Date: nothing to judge by
        ("Sun, 29 Nov 2026 22:33:42 GMT", "yesterday", True),
    ],
)
def test_validators_of_a_file_modified_in_the_answers_second_count_for_nothing(
    modified: str, date: str | None, kept: bool
) -> None:
    """RFC 9110 8.8.2.2: a Last-Modified not a second before Date is weak; the ETag nginx
    and Apache make from the same time goes with it."""
    headers = {"ETag": '"6a-5f1"', "Last-Modified": modified}
    if date is not None:
        headers["Date"] = date
    expected = ('"6a-5f1"', modified) if kept else (None, None)
    assert versions.validators(headers) == expected


@pytest.mark.parametrize(
    ("modified", "wait"),
    [
        ("Sun, 29 Nov 2026 22:33:42 GMT", 1.1),  # the answer's second: wait it out
        ("Sun, 29 Nov 2026 22:33:43 GMT", 2.1),  # a second ahead (a clock a little off)
        ("Sun, 29 Nov 2026 22:33:45 GMT", None),  # further: a wrong clock, no waiting
        ("Sun, 29 Nov 2026 22:33:41 GMT", None),  # a second before: it counts now
    ],
)
def test_a_just_written_file_is_asked_again_once_its_second_is_past(
    modified: str, wait: float | None
) -> None:
    headers = {"Last-Modified": modified, "Date": "Sun, 29 Nov 2026 22:33:42 GMT"}
    assert versions.settle_wait(headers) == wait
    assert versions.settle_wait({"Last-Modified": modified}) is None  # (no Date: no telling)
