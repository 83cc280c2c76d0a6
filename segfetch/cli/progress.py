"""Progress on the terminal with tqdm: one line per active file plus a total.

Silent when asked (``quiet``) and when stderr is not a terminal, so logs stay clean; tqdm
is only imported when a bar is drawn.
"""

from __future__ import annotations

import sys
from typing import Any

from segfetch.engine.download import Progress
from segfetch.units import plural

_BAR: dict[str, Any] = {
    "unit": "iB",  # with unit_divisor 1024 and unit_scale: KiB, MiB (tqdm would say MB)
    "unit_scale": True,
    "unit_divisor": 1024,
    "dynamic_ncols": True,
}


def _bar(quiet: bool, **options: Any) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(**_BAR, **options)


class ProgressBar:
    """One line: bytes, rate, ETA and live connections."""

    def __init__(self, name: str, *, quiet: bool, position: int = 0) -> None:
        self.bar = _bar(quiet, desc=name, leave=False, position=position)

    def update(self, p: Progress) -> None:
        if self.bar is None:
            return
        if p.size is not None and self.bar.total != p.size:
            self.bar.total = p.size
        said = f"{p.connections} conn, {plural(p.retries, 'retry')}"
        self.bar.set_postfix_str(said, refresh=False)
        self.bar.update(p.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MultiProgress:
    """A total line (files, bytes, rate, ETA) and a line per file while it downloads."""

    def __init__(self, files: int, total_bytes: int | None, *, quiet: bool) -> None:
        self.quiet = quiet
        self.files = files
        self.finished = 0
        self.total = _bar(quiet, desc=f"0/{plural(files, 'file')}", total=total_bytes)
        self.bars: dict[str, ProgressBar] = {}
        self.done: dict[str, int] = {}

    def update(self, name: str, p: Progress | None) -> None:
        """p None: the file is complete (or was cached)."""
        if self.total is None:
            return
        if p is not None:
            bar = self.bars.get(name)
            if bar is None:
                bar = self.bars[name] = ProgressBar(
                    name, quiet=self.quiet, position=len(self.bars) + 1
                )
            bar.update(p)
            self.total.update(p.done - self.done.get(name, 0))
            self.done[name] = p.done
            if p.size is None or p.done < p.size:
                return
        if (bar := self.bars.pop(name, None)) is not None:
            bar.close()
        self.finished += 1
        self.total.set_description(f"{self.finished}/{plural(self.files, 'file')}", refresh=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        if self.total is not None:
            self.total.close()


class ByteBar:
    """A plain byte counter against a budget."""

    def __init__(self, name: str, total: int, *, quiet: bool) -> None:
        self.bar = _bar(quiet, desc=name, total=total, leave=False)

    def add(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> ByteBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
