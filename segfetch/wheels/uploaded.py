"""pip's ``--uploaded-prior-to WHEN`` (pip 26): only files the index says were uploaded
before WHEN, an ISO 8601 date or time (local time where it gives no offset) or ``PnD``
(n days ago). segfetch applies it to every page it reads, pip's resolver's too, so it
works whatever the target's pip; no pip is given it. As in pip: a local file counts
whatever its time, and a file of an index that gives no upload time (PEP 700: the JSON
pages) is an error, not a guess. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from segfetch.errors import SegfetchError, UsageError, redact_url
from segfetch.wheels.index import IndexFile


def prior_to(value: str, now: datetime) -> datetime:
    """The moment ``WHEN`` names (``now``: aware, for ``PnD``)."""
    if days := re.fullmatch(r"P(\d+)D", value, re.ASCII):
        return now - timedelta(days=int(days[1]))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--uploaded-prior-to {value!r}: give an ISO 8601 date or time (2025-01-31, "
            "2025-01-31T12:00:00Z) or a number of days ago (P7D)"
        ) from None
    return when if when.tzinfo else when.astimezone()


def uploaded_before(files: list[IndexFile], when: datetime | None) -> list[IndexFile]:
    """The files uploaded before ``when`` (None: all)."""
    if when is None:
        return files
    kept = []
    for f in files:
        if f.url[:5].lower() == "file:":
            kept.append(f)
            continue
        try:
            at = datetime.fromisoformat(f.upload_time or "")
        except ValueError:
            raise SegfetchError(
                f"--uploaded-prior-to: the index gives no upload time for {f.filename} "
                f"({redact_url(f.url)}): only an index whose JSON pages do (PEP 700, as "
                "PyPI's) can answer it"
            ) from None
        if (at if at.tzinfo else at.replace(tzinfo=UTC)) < when:
            kept.append(f)
    return kept
