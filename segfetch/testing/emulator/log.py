"""The request log: one entry per request, in memory (`Emulator.log`) and optionally appended to
a file as JSON lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO


@dataclass
class Entry:
    t: float
    conn: int
    method: str = ""
    path: str = ""
    range: str | None = None
    if_range: str | None = None
    status: int = 0
    start: int | None = None
    end: int | None = None
    sent: int = 0
    fault: str | None = None
    version: int = 0
    duration: float = 0.0
    row: dict[str, object] | None = field(default=None, repr=False)  # once in the log

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "row"}


class RequestLog:
    def __init__(self, path: Path | None) -> None:
        self.rows: list[dict[str, object]] = []
        self._path = path
        self._file: IO[str] | None = None

    def open(self) -> None:
        if self._path is not None:
            self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def publish(self, e: Entry) -> None:
        """Called just before the last bytes of a response go out: a client that has seen
        the whole response (and the test driving it) always finds the entry in the log."""
        if e.row is None:
            e.row = e.as_dict()
            self.rows.append(e.row)

    def finish(self, e: Entry) -> None:
        """The request is over: its final figures, in memory and in the file."""
        self.publish(e)
        assert e.row is not None
        e.row.update(e.as_dict())  # final figures, if the last write failed
        if self._file is not None:
            self._file.write(json.dumps(e.row) + "\n")
            self._file.flush()
