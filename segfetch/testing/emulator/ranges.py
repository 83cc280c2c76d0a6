"""Range requests: which bytes a request asks for (Range, If-Range)."""

from __future__ import annotations

import re
from collections.abc import Iterable


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, total: int) -> tuple[int, int] | None:
    """Half-open [start, end) for one `bytes=` range; None = serve the whole file.

    Raises Unsatisfiable for a well-formed range that starts at or past the end.
    Multiple or malformed ranges give None, as many servers do.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    m = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if unit.strip().lower() != "bytes" or m is None or m.group(0).strip() == "-":
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0 or total == 0:
            raise Unsatisfiable
        return max(0, total - n), total
    a = int(first)
    b = int(last) if last else total - 1
    if last and b < a:
        return None
    if a >= total:
        raise Unsatisfiable
    return a, min(b, total - 1) + 1


def range_if(
    range_header: str | None, if_range: str | None, validators: Iterable[str]
) -> str | None:
    """The Range header to honour: none when If-Range names a validator the file no longer
    has (changed, or unknown): then the whole current file is served. Weak ETags never match
    (RFC 9110 13.1.5: If-Range compares strongly)."""
    strong = {v for v in validators if not v.startswith("W/")}
    if if_range is not None and if_range.strip() not in strong:
        return None
    return range_header
