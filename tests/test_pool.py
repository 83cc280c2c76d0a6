"""engine/pool.py: requests assigned to connections in one pass, each idle connection to one
request (pure, with stand-in connections); and the client's pools, plain and through a
proxy, using it over loopback."""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpcore
import httpx
import pytest
import trio
from helpers import connect_proxy
from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine import pool
from segfetch.engine.client import make_client
from segfetch.engine.options import Network
from segfetch.testing.emulator import Emulator, Link


@dataclass(eq=False)
class Conn:
    origin: str
    state: str = "idle"  # idle, busy, opening, closed, expired

    def can_handle_request(self, origin: Any) -> bool:
        return bool(origin == self.origin)

    def is_available(self) -> bool:
        return self.state == "idle"

    def is_idle(self) -> bool:
        return self.state == "idle"

    def is_closed(self) -> bool:
        return self.state == "closed"

    def has_expired(self) -> bool:
        return self.state == "expired"


@dataclass(eq=False)
class Req:
    origin: str
    connection: Any = None

    @property
    def request(self) -> Any:
        return SimpleNamespace(url=SimpleNamespace(origin=self.origin))

    def assign_to_connection(self, connection: Any) -> None:
        self.connection = connection


def run(conns: list[Conn], reqs: list[Req], most: int, keep_idle: int = 100) -> list[Any]:
    def create(origin: Any) -> Conn:
        return Conn(origin, "opening")

    return pool.assign(conns, reqs, most, keep_idle, create)  # type: ignore[arg-type]


def test_each_idle_connection_goes_to_one_request() -> None:
    conns = [Conn("a"), Conn("a")]
    reqs = [Req("a") for _ in range(5)]
    assert run(conns, reqs, most=2) == []
    given = [r.connection for r in reqs if r.connection is not None]
    assert len(given) == 2 and given[0] is not given[1]  # httpcore 1.0 gives one to all 5
    assert conns == given


def test_new_connections_up_to_the_most() -> None:
    conns: list[Conn] = []
    reqs = [Req("a") for _ in range(3)]
    run(conns, reqs, most=2)
    assert len(conns) == 2 and [r.connection for r in reqs] == [*conns, None]


def test_a_connection_given_to_a_queued_request_is_not_given_again_nor_closed() -> None:
    held = Conn("a")  # given, its request not yet started on it: still idle
    conns = [held]
    reqs = [Req("a", connection=held), Req("a"), Req("b")]
    assert run(conns, reqs, most=1, keep_idle=0) == []
    assert conns == [held] and reqs[1].connection is None and reqs[2].connection is None


def test_at_the_most_an_idle_connection_elsewhere_makes_room() -> None:
    other = Conn("b")
    conns = [other]
    reqs = [Req("a")]
    assert run(conns, reqs, most=1) == [other]
    assert len(conns) == 1 and conns[0].origin == "a" and reqs[0].connection is conns[0]


def test_closed_go_expired_and_surplus_idle_are_closed() -> None:
    closed, expired, busy = Conn("a", "closed"), Conn("a", "expired"), Conn("a", "busy")
    idle = [Conn("a"), Conn("a"), Conn("a")]
    conns = [closed, expired, busy, *idle]
    running = [Req("a", connection=busy)]
    assert run(conns, running, most=10, keep_idle=1) == [expired, idle[0], idle[1]]
    assert conns == [busy, idle[2]]


def test_a_connection_left_by_a_cancelled_request_is_closed() -> None:
    """Given to a queued request that was cancelled before it used it: no request holds it,
    and it is neither idle nor closed. httpcore 1.0 kept it, counting against the most."""
    left = Conn("a", "opening")
    conns = [left]
    reqs = [Req("a")]
    assert run(conns, reqs, most=1) == [left]
    assert len(conns) == 1 and conns[0] is not left and reqs[0].connection is conns[0]


STATES = st.sampled_from(["idle", "busy", "opening", "closed", "expired"])


@given(
    st.lists(st.tuples(st.sampled_from("ab"), STATES), max_size=8),
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(-1, 7)), max_size=12),
    st.integers(1, 8),
    st.integers(0, 8),
)
def test_invariants(
    conn_specs: list[tuple[str, str]],
    req_specs: list[tuple[str, int]],
    most: int,
    keep_idle: int,
) -> None:
    conns = [Conn(o, s) for o, s in conn_specs]
    live = [c for c in conns if c.state in ("idle", "busy", "opening")]
    reqs: list[Req] = []
    for origin, which in req_specs:
        # a request may already hold a live connection (running on it, or given it)
        owner = live[which] if 0 <= which < len(live) else None
        if owner is not None and any(r.connection is owner for r in reqs):
            owner = None
        reqs.append(Req(origin if owner is None else owner.origin, connection=owner))
    original = list(conns)  # kept alive: no new connection may take a dropped one's id
    before = {id(c) for c in original}
    held = {id(r.connection) for r in reqs if r.connection is not None}
    queued = [r for r in reqs if r.connection is None]
    closing = run(conns, reqs, most, keep_idle)
    assert not any(c.state == "closed" for c in conns)
    assert not {id(c) for c in closing} & held  # a connection in use is never closed
    assert not {id(c) for c in closing} & {id(c) for c in conns}
    owners = [id(r.connection) for r in reqs if r.connection is not None]
    assert len(owners) == len(set(owners))  # one request per connection
    given_now = {id(r.connection) for r in queued if r.connection is not None}
    for r in queued:
        if r.connection is None:  # left waiting only when nothing could take it
            assert len(conns) >= most
            assert not any(c.state == "idle" and id(c) not in held | given_now for c in conns)
        else:
            c = r.connection
            assert c.origin == r.origin
            assert c.state == "opening" or (id(c) in before and c.state == "idle")
    assert len(conns) <= max(most, len(before))
    for c in conns:  # kept: in use, idle, or made now
        assert id(c) in held or c.state == "idle" or id(c) not in before


async def test_many_requests_share_few_connections_over_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 requests at once over 4 connections, twice: each request gets a connection of its
    own the first time (httpcore 1.0 gives an idle one to all that wait, and all but one
    then fail with ConnectionNotAvailable and queue again)."""
    data = bytes(range(256)) * 64
    refused: list[int] = []
    send = httpcore.AsyncHTTPConnection.handle_async_request

    async def counting(self: Any, request: Any) -> Any:
        try:
            return await send(self, request)
        except httpcore.ConnectionNotAvailable:
            refused.append(1)
            raise

    monkeypatch.setattr(httpcore.AsyncHTTPConnection, "handle_async_request", counting)
    async with Emulator({"/f.bin": data}) as emu, make_client(4, 10) as client:
        assert type(client._transport._pool).__mro__[1] is pool._OnePass  # type: ignore[attr-defined]

        async def one(i: int) -> None:
            r = await client.get(emu.url("/f.bin"), headers={"Range": f"bytes={i}-{i + 99}"})
            assert r.status_code == 206 and r.content == data[i : i + 100]

        for _ in range(2):  # the second round on kept-alive connections
            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(one, i)
        conns = {row["conn"] for row in emu.log}
    assert len(emu.log) == 80 and len(conns) == 4  # none closed and opened again
    assert refused == []


async def test_requests_cancelled_while_queued_leave_no_connection_behind() -> None:
    """Many requests to two origins, cancelled at random, some while they wait for a
    connection: the pool still serves the next ones. httpcore 1.0 keeps a connection given to
    a request that left before using it, and may end with every place so taken: the next
    requests then wait forever (encode/httpcore#1093)."""
    data = bytes(range(256)) * 4096
    rng = random.Random(1)
    link = Link(rate=2_000_000)
    async with (
        Emulator({"/f.bin": data}, link=link) as one_host,
        Emulator({"/f.bin": data}, link=link) as other_host,
        make_client(4, 10) as client,
    ):
        urls = [one_host.url("/f.bin"), other_host.url("/f.bin")]

        async def one(i: int) -> None:
            with trio.move_on_after(rng.random() * 0.05):
                headers = {"Range": f"bytes={i}-{i + rng.randrange(1, 200_000)}"}
                async with client.stream("GET", rng.choice(urls), headers=headers) as r:
                    async for _ in r.aiter_raw():
                        pass

        async with trio.open_nursery() as nursery:
            for i in range(400):
                nursery.start_soon(one, i)
                if i % 10 == 0:
                    await trio.sleep(0.005)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(client.get, urls[i % 2])


async def test_the_proxy_pool_assigns_in_one_pass_too() -> None:
    """(test_body.py sends ranges through such a pool, over a CONNECT tunnel.)"""
    async with connect_proxy() as (port, _):
        client = make_client(4, 10, Network(proxy=f"http://127.0.0.1:{port}"))
        async with client:
            pools = [t._pool for t in client._mounts.values() if t is not None]  # type: ignore[attr-defined]
            assert pools and all(isinstance(p, pool._OnePass) for p in pools)


def test_a_pool_it_does_not_know_is_left_alone() -> None:
    class Own(httpx.AsyncBaseTransport):
        pass

    client = httpx.AsyncClient(transport=Own())
    assert pool.speed_up(client) == 0
