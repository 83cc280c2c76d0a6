"""What a run says of its files: each one's record in ``--json`` (an install's, a
download's or a dry run's), and the summary line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from segfetch.errors import redact_url
from segfetch.units import human_bytes, plural

if TYPE_CHECKING:
    from segfetch.engine.result import Result
    from segfetch.wheels.files import Fetched, Planned


def record(
    p: Planned, sha256: str | None, size: int | None, cached: bool, result: Result | None = None
) -> dict[str, Any]:
    """A file's record in ``--json``, an install's or a dry run's (``result``: of this run's
    fetch of it)."""
    return {
        "name": p.name,
        "version": p.version,
        "filename": p.filename,
        "url": redact_url(p.url),
        "sha256": sha256,
        "bytes": size,
        "cached": cached,
        "local": local(p),
        "seconds": result.seconds if result else 0.0,
        "connections": result.connections if result else 0,
        "retries": result.retries if result else 0,
    }


def local(p: Planned) -> bool:
    """A file on disk (a --find-links folder, a path): never fetched."""
    return p.url[:5].lower() == "file:"


def of(f: Fetched) -> dict[str, Any]:
    """A file of an install or a download."""
    cached = f.result is None and not local(f.planned)
    return record(f.planned, f.sha256, f.size, cached, f.result)


def summary(fetched: list[Fetched]) -> None:
    """One line: how many files, from where, how many bytes fetched."""
    got = [f for f in fetched if f.result is not None]
    on_disk = sum(1 for f in fetched if local(f.planned))
    size = sum(f.size for f in got)
    retries = sum(f.result.retries for f in got if f.result)
    where = f"{on_disk} local, " if on_disk else ""
    print(
        f"{plural(len(fetched), 'file')} verified ({len(fetched) - len(got) - on_disk} from the "
        f"cache, {where}{human_bytes(size)} fetched, {plural(retries, 'retry')})",
        file=sys.stderr,
    )
