"""httpcore's connection pool, with its assignment of requests to connections done in one pass.

httpcore 1.0 re-scans every connection for each connection and for each queued request, and
hands one idle HTTP/1.1 connection to every queued request at once: all but one then fail,
queue again and scan again. With the 30-64 connections of ``install`` that is most of a
request's CPU (64 requests on 64 kept-alive connections from the emulator: 0.32-0.36 s of
CPU; 0.063-0.067 s with this; docs/benchmarks-history.md). The fix upstream (encode/httpcore
#1035) is not released. ``assign`` makes the same choices in one pass, each idle connection
going to one request, and closes connections left behind by requests cancelled while
queued; ``speed_up`` puts it into a client's HTTP/1.1 pools, and leaves any pool it does not
recognise as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpcore
import httpx


class Conn(Protocol):
    def can_handle_request(self, origin: Any) -> bool: ...
    def is_available(self) -> bool: ...
    def has_expired(self) -> bool: ...
    def is_idle(self) -> bool: ...
    def is_closed(self) -> bool: ...


class Waiting(Protocol):
    """httpcore's pool request: a request, and the connection given to it (None: queued)."""

    @property
    def request(self) -> Any: ...
    @property
    def connection(self) -> Any: ...
    def assign_to_connection(self, connection: Any) -> None: ...


def assign(
    connections: list[Conn],
    requests: Sequence[Waiting],
    most: int,
    keep_idle: int,
    create: Callable[[Any], Conn],
) -> list[Conn]:
    """httpcore's rules, in one pass: drop closed connections, close expired ones and idle
    ones beyond ``keep_idle``; give each queued request an available connection to its
    origin, else a new one (below ``most``), else one made in place of an idle one. A
    connection already given to a request (queued or running) is not given again, nor closed
    unless it expired (its request then asks again). One that no request holds and that is
    neither idle nor closed was given to a request that left before using it (cancelled
    while queued; httpcore 1.0 keeps those forever, encode/httpcore#1093): it is closed.
    ``connections`` is updated in place; returns the connections to close."""
    held = {id(r.connection) for r in requests if r.connection is not None}
    closing: list[Conn] = []
    kept: list[Conn] = []
    idle = sum(1 for c in connections if c.is_idle() and id(c) not in held)
    for c in connections:
        if c.is_closed():
            continue
        if c.has_expired():
            closing.append(c)
        elif id(c) in held:
            kept.append(c)
        elif not c.is_idle():
            closing.append(c)  # left behind (HTTP/1.1: a connection in use is held)
        elif idle > keep_idle:
            closing.append(c)
            idle -= 1
        else:
            kept.append(c)
    connections[:] = kept
    queued = [r for r in requests if r.connection is None]
    if not queued:
        return closing
    free = [c for c in connections if id(c) not in held and c.is_available()]
    spare = [c for c in connections if id(c) not in held and c.is_idle()]
    for r in queued:
        origin = r.request.url.origin
        conn = next((c for c in free if c.can_handle_request(origin)), None)
        if conn is None and len(connections) >= most:
            if not spare:
                continue  # it waits for a connection to come back
            old = spare.pop(0)
            connections.remove(old)
            closing.append(old)
            if old in free:
                free.remove(old)
        if conn is None:
            conn = create(origin)
            connections.append(conn)
        else:
            free.remove(conn)  # HTTP/1.1: one request at a time (segfetch never asks HTTP/2)
            if conn in spare:
                spare.remove(conn)
        r.assign_to_connection(conn)
    return closing


class _OnePass:
    """Mixed into httpcore's pool classes (the plain pool, and its proxy subclasses)."""

    _connections: list[Conn]
    _requests: list[Waiting]
    _max_connections: int
    _max_keepalive_connections: int
    create_connection: Callable[[Any], Conn]

    def _assign_requests_to_connections(self) -> list[Conn]:
        return assign(
            self._connections,
            self._requests,
            self._max_connections,
            self._max_keepalive_connections,
            self.create_connection,
        )


_MIXED: dict[type, type] = {}
_STOCK = getattr(httpcore.AsyncConnectionPool, "_assign_requests_to_connections", None)
_STATE = ("_connections", "_requests", "_max_connections", "_max_keepalive_connections", "_http2")


def speed_up(client: httpx.AsyncClient) -> int:
    """Give the client's connection pools the one-pass assignment, where they are httpcore's
    own and look as this was written for (else they stay as they are). Returns how many."""
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    done = 0
    for t in transports:
        pool = getattr(t, "_pool", None)
        kind = type(pool)
        if (
            not isinstance(pool, httpcore.AsyncConnectionPool)
            or _STOCK is None
            or getattr(kind, "_assign_requests_to_connections", None) is not _STOCK
            or not all(hasattr(pool, a) for a in _STATE)
            or pool._http2  # one request per connection is HTTP/1.1's rule only
        ):
            continue
        if kind not in _MIXED:
            _MIXED[kind] = type(kind.__name__, (_OnePass, kind), {})
        pool.__class__ = _MIXED[kind]
        done += 1
    return done
