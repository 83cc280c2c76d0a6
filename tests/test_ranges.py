import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine.ranges import (
    RangeSet,
    Span,
    parse_content_range,
    parse_unsatisfied_range,
    range_header,
)

spans = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=20,
)


@given(spans)
def test_rangeset_holds_exactly_the_bytes_added(added: list[tuple[int, int]]) -> None:
    rs = RangeSet(added)
    expected = {b for s, e in added for b in range(s, e)}
    got = {b for s, e in rs for b in range(s, e)}
    assert got == expected
    assert rs.total() == len(expected)
    # Kept sorted, disjoint and merged: every gap between spans is real.
    listed = list(rs)
    for (_, e1), (s2, _) in itertools.pairwise(listed):
        assert e1 < s2


@given(spans, st.integers(0, 260))
def test_gaps_and_set_tile_the_file(added: list[tuple[int, int]], size: int) -> None:
    rs = RangeSet(added)
    inside = {b for s, e in rs for b in range(s, e) if b < size}
    gap_bytes = [b for s, e in rs.gaps(size) for b in range(s, e)]
    assert len(gap_bytes) == len(set(gap_bytes))
    assert set(gap_bytes) | inside == set(range(size))
    assert not set(gap_bytes) & inside


@given(spans)
def test_prefix_and_covers(added: list[tuple[int, int]]) -> None:
    rs = RangeSet(added)
    have = {b for s, e in added for b in range(s, e)}
    p = rs.prefix()
    assert all(b in have for b in range(p)) and p not in have
    for s, e in [(0, 5), (10, 30), (50, 51), (7, 7)]:
        assert rs.covers(s, e) == all(b in have for b in range(s, e))


def test_rangeset_rejects_bad_span() -> None:
    with pytest.raises(ValueError):
        RangeSet([(5, 3)])


def test_range_header_uses_inclusive_ends() -> None:
    assert range_header(0, 100) == "bytes=0-99"
    assert range_header(100) == "bytes=100-"
    with pytest.raises(ValueError):
        range_header(5, 5)


@given(st.integers(0, 10**12), st.integers(1, 10**9), st.integers(0, 10**9))
def test_content_range_round_trip(start: int, length: int, extra: int) -> None:
    total = start + length + extra
    value = f"bytes {start}-{start + length - 1}/{total}"
    assert parse_content_range(value) == (start, start + length, total)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "bytes 5-4/10",
        "bytes 0-10/10",
        "bytes */10",
        "items 0-1/2",
        "bytes -1-5/10",
        "bytes 0-1",
        f"bytes 0-99/{10**30}",  # no file's size: its offsets fail a write (OverflowError)
        f"bytes {2**63}-{2**63 + 9}/*",
        f"bytes 0-9/{'9' * 5000}",  # (int() refuses it: a message about Python's limits)
    ],
)
def test_bad_content_range_is_refused(value: str) -> None:
    words = "^no Content-Range$" if not value else "(malformed|impossible) Content-Range"
    with pytest.raises(ValueError, match=words):
        parse_content_range(value)


def test_content_range_with_unknown_total() -> None:
    assert parse_content_range("bytes 0-9/*") == (0, 10, None)


def test_unsatisfied_range() -> None:
    assert parse_unsatisfied_range("bytes */0") == 0
    assert parse_unsatisfied_range("bytes 0-1/2") is None


def test_span_length() -> None:
    assert Span(3, 10).length() == 7


@given(spans, st.integers(0, 250), st.integers(0, 60))
def test_remove_takes_exactly_those_bytes_out(added: list[tuple[int, int]], a: int, n: int) -> None:
    rs = RangeSet(added)
    before = {b for s, e in rs for b in range(s, e)}
    rs.remove(a, a + n)
    after = {b for s, e in rs for b in range(s, e)}
    assert after == before - set(range(a, a + n))
    listed = list(rs)
    assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(listed))


def test_the_range_unit_is_case_insensitive() -> None:
    """RFC 9110 14.1: a server that writes "Bytes" (it failed every try)."""
    assert parse_content_range("Bytes 0-9/10") == (0, 10, 10)
    assert parse_content_range("BYTES 0-9/*") == (0, 10, None)


def test_an_unsatisfied_range_with_no_file_size_is_none() -> None:
    """A 416 whose size has 5,000 digits: none (it was a traceback from int())."""
    from segfetch.engine.ranges import parse_unsatisfied_range

    assert parse_unsatisfied_range("bytes */" + "9" * 5000) is None
    assert parse_unsatisfied_range("bytes */12") == 12
