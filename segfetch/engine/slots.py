"""The connection budget shared by every download to a host (and the index pages)."""

from __future__ import annotations

import trio

from segfetch.engine.control import EPOCH, Controller


class Slots:
    """Each open connection holds one place.

    Fixed (``Slots(n)``): it shrinks when a host pushes back (429/503), so a host that
    allows four connections soon sees about four, however many files want them. With a
    ``Controller`` (``-n auto``) it also grows and shrinks with the total rate measured over
    every connection that holds a place (see control.py).
    """

    def __init__(self, size: int, controller: Controller | None = None) -> None:
        self.controller = controller
        self.size = controller.limit if controller else size
        self._free = trio.Semaphore(self.size)
        self._owed = 0  # places to retire as they come back
        self._since: float | None = None  # start of the current measurement
        self._bytes = 0

    @property
    def busy(self) -> int:
        return self.size - self._free.value

    async def acquire(self) -> None:
        await self._free.acquire()

    def release(self) -> None:
        if self._owed:
            self._owed -= 1
            self.size -= 1
        else:
            self._free.release()

    def count(self, n: int) -> None:
        """Bytes arrived on a connection holding a place: the controller's measurement."""
        if self.controller is None:
            return
        now = trio.current_time()
        if self._since is None:
            self._since = now
        self._bytes += n
        if (elapsed := now - self._since) >= EPOCH:
            self._resize(self.controller.epoch(self._bytes / elapsed, self.busy))
            self._since, self._bytes = now, 0

    def shrink(self) -> None:
        """The host pushed back: halve the places in use, as TCP halves its window; free
        ones go at once, the others as they come back."""
        if self.controller is not None:
            self._resize(self.controller.pushback(self.busy))
        else:
            self._resize(max(1, self.busy // 2))

    def _resize(self, target: int) -> None:
        while self.size - self._owed < target:
            if self._owed:
                self._owed -= 1  # a place due to retire stays
            else:
                self.size += 1
                self._free.release()
        while self.size - self._owed > target:
            try:
                self._free.acquire_nowait()
                self.size -= 1
            except trio.WouldBlock:
                self._owed += 1
