"""The connection budget shared by every download to a host (and the index pages)."""

from __future__ import annotations

import trio

from segfetch.engine.control import Controller

# Beyond the most places that ever streamed at once, at most this many may wait for their
# first answer: a host that allows 4 connections then refuses 2, not the 12 of a step to 16.
OPENING = 2


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
        self._streaming = 0  # places whose answer's bytes are flowing
        self._low = 0  # the fewest that streamed during the current measurement
        self._proven = self.size  # the most places that streamed at once
        self._moved = trio.Event()  # a place began streaming or came back
        self._opening = 0  # places beyond _proven still waiting for their first answer
        self._cut = float("-inf")  # when the host last pushed back (-n auto)
        self._served = 0  # the most places that streamed at once, as seen (not as assumed)
        self._forgiven = False  # a refusal was let pass since the last cut (shrink)

    @property
    def busy(self) -> int:
        return self.size - self.free

    @property
    def free(self) -> int:
        """Places no connection holds now."""
        return self._free.value

    @property
    def places(self) -> int:
        """How many connections the budget allows now (some may be free)."""
        return self.size - self._owed

    async def acquire(self) -> None:
        while True:
            await self._free.acquire()
            if self.controller is None:
                return
            try:
                while self.busy > self._proven and self._opening >= OPENING:
                    if self.busy > self.places:
                        break  # the count was cut meanwhile: this place goes
                    await self._moved.wait()  # grow step by step into an unknown host
            except BaseException:
                self.release()
                raise
            if self.busy > self.places:
                self.release()
                continue
            if self.busy > self._proven:
                self._opening += 1
            return

    def streaming(self, delta: int) -> None:
        """A connection holding a place began (+1) or stopped (-1) streaming bytes."""
        self._streaming += delta
        self._low = min(self._low, self._streaming)
        self._proven = max(self._proven, self._streaming)
        self._served = max(self._served, self._streaming)
        if delta > 0:
            self._wake()

    def _wake(self, answered: bool = True) -> None:
        """A place streams or came back (``answered``: one fewer may still be waiting for
        its answer), or the count changed."""
        if answered:
            self._opening = max(0, self._opening - 1)
        self._moved.set()
        self._moved = trio.Event()

    def release(self) -> None:
        self._wake()
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
        control = self.controller
        if control.settling and self._streaming >= self.places:
            control.settled()
            self._since = None
        if self._since is None:
            self._since, self._bytes, self._low = now, 0, self._streaming
        self._bytes += n
        if (elapsed := now - self._since) >= control.period:
            # the connections that streamed all along: not those still waiting for an answer
            self._resize(self.controller.epoch(self._bytes / elapsed, self._low))
            self._since, self._bytes, self._low = now, 0, self._streaming

    def shrink(self, asked: float | None = None) -> None:
        """The host pushed back: halve the places in use, as TCP halves its window; free
        ones go at once, the others as they come back. Under ``-n auto``, a refusal of a
        request ``asked`` before the last cut is of the same burst: that cut answered it
        (bytes arriving between two refusals must not make the second one a new cut)."""
        self._forgiven = False
        if self.controller is not None:
            if asked is not None and asked < self._cut:
                return
            self._cut = trio.current_time()
            self._resize(self.controller.pushback(self.busy))
        else:
            self._resize(max(1, self.busy // 2))

    def let_pass(self, asked: float | None = None) -> bool:
        """Whether a refusal (429, 503) of a request ``asked`` then is let pass, without a
        cut: the first since the last cut, of a request that cut did not answer, at a count
        the host has served at once. A host that counts open connections may not have seen
        one of ours close yet when its replacement asks (on loopback the two cross: S7 fell
        to 2 of its 4 connections that way, 14.6 s for 8). It is asked again after the
        server's Retry-After; a second refusal cuts."""
        if self._forgiven or self.busy > self._served or (asked or 0.0) < self._cut:
            return False
        self._forgiven = True
        return True

    def _resize(self, target: int) -> None:
        self._wake(answered=False)
        while self.places < target:
            if self._owed:
                self._owed -= 1  # a place due to retire stays
            else:
                self.size += 1
                self._free.release()
        while self.places > target:
            try:
                self._free.acquire_nowait()
                self.size -= 1
            except trio.WouldBlock:
                self._owed += 1
