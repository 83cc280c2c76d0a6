"""The connection budget shared by every download to a host (and the index pages)."""

from __future__ import annotations

import trio


class Slots:
    """Each open connection holds one place.

    It shrinks when a host pushes back (429/503), so a host that allows four connections
    soon sees about four, however many files want them. It never grows back.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = trio.Semaphore(size)
        self._owed = 0  # places to retire as they come back

    async def acquire(self) -> None:
        await self._free.acquire()

    def release(self) -> None:
        if self._owed:
            self._owed -= 1
            self.size -= 1
        else:
            self._free.release()

    def shrink(self) -> None:
        """Halve the places in use, as TCP halves its window: free ones go at once, the
        others as they come back."""
        target = max(1, (self.size - self._free.value) // 2)
        while self.size - self._owed > target:
            try:
                self._free.acquire_nowait()
                self.size -= 1
            except trio.WouldBlock:
                self._owed += 1
