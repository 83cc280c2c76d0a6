"""Byte-range bookkeeping.

Inside segfetch every range is half-open: ``[start, end)``. HTTP writes inclusive ends
(``bytes=0-99`` is the first 100 bytes); this module is the one place that converts.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple


class Span(NamedTuple):
    start: int
    end: int

    def length(self) -> int:
        return self.end - self.start


class RangeSet:
    """A set of bytes kept as sorted, disjoint, non-adjacent half-open spans."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in spans:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if start < 0 or end < start:
            raise ValueError(f"bad span [{start}, {end})")
        if start == end:
            return
        # Every span that touches or overlaps [start, end) merges into one.
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def remove(self, start: int, end: int) -> None:
        """Take [start, end) out of the set (bytes found damaged are no longer done)."""
        if start >= end:
            return
        kept = [(s, e) for s, e in self]
        self._starts, self._ends = [], []
        for s, e in kept:
            if s < start:
                self.add(s, min(e, start))
            if e > end:
                self.add(max(s, end), e)

    def __iter__(self) -> Iterator[Span]:
        return (Span(s, e) for s, e in zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RangeSet({[tuple(s) for s in self]})"

    def total(self) -> int:
        """How many bytes the set holds."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def prefix(self) -> int:
        """End of the run of bytes that starts at 0 (0 if byte 0 is missing)."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def covers(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        return start == end or (i >= 0 and self._ends[i] >= end)

    def gaps(self, size: int) -> list[Span]:
        """The spans of [0, size) not in the set."""
        out: list[Span] = []
        pos = 0
        for s, e in self:
            if s >= size:
                break
            if s > pos:
                out.append(Span(pos, s))
            pos = max(pos, e)
        if pos < size:
            out.append(Span(pos, size))
        return out


def range_header(start: int, end: int | None = None) -> str:
    """The Range header for [start, end); end None asks for the rest of the file."""
    if end is None:
        return f"bytes={start}-"
    if not 0 <= start < end:
        raise ValueError(f"bad span [{start}, {end})")
    return f"bytes={start}-{end - 1}"


# The largest offset a file may have (off_t): a larger size or position is no file's, and
# would fail the write with an OverflowError rather than an OSError.
MAX_OFFSET = 2**63 - 1
# (A range unit is case-insensitive, RFC 9110 14.1: "Bytes 0-99/100" is the same answer.)
# (At most 19 digits, as MAX_OFFSET has: int() refuses more than 4,300, with a ValueError
# that was a traceback from a 416, and a message about sys.set_int_max_str_digits.)
_CONTENT_RANGE = re.compile(
    r"bytes\s+(\d{1,19})-(\d{1,19})/(\d{1,19}|\*)", re.ASCII | re.IGNORECASE
)
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d{1,19})", re.ASCII | re.IGNORECASE)


def parse_content_range(value: str) -> tuple[int, int, int | None]:
    """Parse ``bytes a-b/total`` into (a, b + 1, total); total is None for ``*``."""
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if not m:
        raise ValueError(
            f"malformed Content-Range {_shown(value)}" if value else "no Content-Range"
        )
    start, last = int(m[1]), int(m[2])
    total = None if m[3] == "*" else int(m[3])
    if last < start or (total is not None and last >= total) or max(last, total or 0) > MAX_OFFSET:
        raise ValueError(f"impossible Content-Range {_shown(value)}")
    return start, last + 1, total


def _shown(value: str, most: int = 80) -> str:
    """A header's value for a message: a server's header may be thousands of characters."""
    return repr(value) if len(value) <= most else repr(value[:most]) + "..."


def parse_unsatisfied_range(value: str) -> int | None:
    """The total size in a 416's ``bytes */total``, or None if it is not of that form."""
    m = _UNSATISFIED.fullmatch(value.strip())
    return int(m[1]) if m else None
