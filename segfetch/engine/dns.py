"""A host's name looked up once for all the connections of a run, not once per connection.

segfetch opens tens of connections to one host at once (``install``: up to its budget), and
httpcore looks the name up for each. A DNS forwarder (a home router's; this machine's) may
drop such a burst: 30 lookups at once here took 5 s for 11 of them (the resolver's retry),
and of 60 at once two failed ("Temporary failure in name resolution"). With the address
kept, 20 pinned wheels from the real index took 1.0-1.3 s, not 6.1 s (the 5 s retry;
docs/benchmarks-history.md). Lookups of one name at once share the first one's answer,
or its failure; answers are kept KEEP seconds. Installed through trio's own hook, for the
trio run (the CLI's, or a library caller's run that uses make_client).
"""

from __future__ import annotations

from socket import getaddrinfo, getnameinfo
from typing import Any

import trio

KEEP = 60.0  # seconds: a run's worth; `serve` runs for long and looks again after this

_Key = tuple[Any, ...]


class _Lookup:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.answer: list[Any] = []
        self.error: BaseException | None = None


class SharedLookups(trio.abc.HostnameResolver):
    def __init__(self) -> None:
        self._answers: dict[_Key, tuple[float, list[Any]]] = {}
        self._asking: dict[_Key, _Lookup] = {}

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        kind: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        key = (host, port, family, kind, proto, flags)
        kept = self._answers.get(key)
        if kept is not None and trio.current_time() < kept[0]:
            return list(kept[1])
        lookup = self._asking.get(key)
        if lookup is None:
            # In a task of its own: a caller cancelled (a connection given up) does not
            # throw away a lookup the others wait for.
            lookup = self._asking[key] = _Lookup()
            trio.lowlevel.spawn_system_task(self._look_up, key, lookup)
        await lookup.done.wait()
        if isinstance(lookup.error, OSError):
            raise type(lookup.error)(*lookup.error.args)  # each caller its own
        if lookup.error is not None:
            raise lookup.error
        return list(lookup.answer)

    async def _look_up(self, key: _Key, lookup: _Lookup) -> None:
        try:
            lookup.answer = await trio.to_thread.run_sync(getaddrinfo, *key, abandon_on_cancel=True)
            self._answers[key] = (trio.current_time() + KEEP, lookup.answer)
        except Exception as exc:  # a system task's error would end the run: the callers get it
            lookup.error = exc
        finally:
            del self._asking[key]
            lookup.done.set()

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        return await trio.to_thread.run_sync(getnameinfo, sockaddr, flags, abandon_on_cancel=True)


def share_lookups() -> None:
    """Use SharedLookups for the rest of this trio run, unless a resolver is set already
    (an earlier client's, or a caller's own). Outside a trio run: nothing."""
    try:
        old = trio.socket.set_custom_hostname_resolver(None)
    except RuntimeError:
        return
    trio.socket.set_custom_hostname_resolver(old if old is not None else SharedLookups())
