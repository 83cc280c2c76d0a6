"""What a download reports: progress while it runs, counters, and the result. Pure values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Progress:
    url: str
    size: int | None
    done: int
    connections: int
    retries: int
    prefix: int = 0  # bytes from 0 written in a row to the .part (for a reader streaming it)


ProgressCallback = Callable[[Progress], None]


@dataclass
class Stats:
    """Every counter of one download, in one place."""

    requests: int = 0
    retries: int = 0
    restarts: int = 0  # the whole file started over (it changed, or failed its sha256)
    resumed: int = 0  # bytes already on disk from an earlier run
    repaired: int = 0  # bytes fetched again because a zip member failed its CRC
    received: int = 0  # bytes written in this pass
    size: int | None = None  # the file's size, as one stream's answer gave it (whole.py)
    live: int = 0  # connections streaming now
    peak: int = 0  # most connections streaming at once
    workers: int = 0  # worker tasks that hold a segment now
    # (strong ETag, Last-Modified) of the answers the file's bytes came in, for a cache that
    # asks later whether the server still has this very file
    validators: tuple[str | None, str | None] = (None, None)

    def streaming(self, delta: int) -> None:
        self.live += delta
        self.peak = max(self.peak, self.live)

    def result(
        self, url: str, path: Path, size: int, sha256: str, seconds: float, settled: int | None
    ) -> Result:
        return Result(
            url, path, size, sha256, seconds, connections=self.peak, requests=self.requests,
            retries=self.retries, resumed=self.resumed, restarts=self.restarts,
            repaired=self.repaired, settled=settled, validators=self.validators,
        )  # fmt: skip


@dataclass(frozen=True)
class Result:
    url: str
    path: Path
    size: int
    sha256: str
    seconds: float
    connections: int  # most connections open at once
    requests: int
    retries: int
    resumed: int  # bytes already on disk from an earlier run
    restarts: int
    repaired: int = 0  # bytes fetched again because a zip member failed its CRC
    settled: int | None = None  # -n auto: the count to begin with next time (to_remember)
    validators: tuple[str | None, str | None] = (None, None)  # (strong ETag, Last-Modified)
