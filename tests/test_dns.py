"""engine/dns.py: lookups of one name at once are one lookup, sharing its answer or its
failure; answers are kept; a client's connections to one host look its name up once."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import trio

from segfetch.engine import dns
from segfetch.engine.client import make_client
from segfetch.testing.emulator import Emulator

ANSWER = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]


class Resolver:
    """Stands in for socket.getaddrinfo: counts calls, answers (or fails) slowly."""

    def __init__(self, error: OSError | None = None) -> None:
        self.calls: list[Any] = []
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, host: Any, *rest: Any) -> list[Any]:
        with self.lock:
            self.calls.append(host)
        time.sleep(0.05)  # long enough for every other lookup to arrive meanwhile
        if self.error is not None:
            raise self.error
        return list(ANSWER)


async def lookups(n: int, resolver: dns.SharedLookups | None = None) -> list[Any]:
    """n lookups of one name at once: each one's answer, or the OSError it raised."""
    resolver = resolver or dns.SharedLookups()
    results: list[Any] = []

    async def one() -> None:
        try:
            results.append(await resolver.getaddrinfo(b"files.example", 443, 0, socket.SOCK_STREAM))
        except OSError as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return results


async def test_lookups_at_once_are_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Resolver()
    monkeypatch.setattr(dns, "getaddrinfo", fake)
    results = await lookups(50)
    assert fake.calls == [b"files.example"] and results == [ANSWER] * 50


async def test_a_failure_is_shared_then_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Resolver(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    monkeypatch.setattr(dns, "getaddrinfo", fake)
    resolver = dns.SharedLookups()
    errors = await lookups(10, resolver)
    assert all(isinstance(e, socket.gaierror) for e in errors) and len(errors) == 10
    assert len(fake.calls) == 1 and {e.errno for e in errors} == {socket.EAI_AGAIN}
    fake.error = None
    again = await resolver.getaddrinfo(b"files.example", 443, 0, socket.SOCK_STREAM)
    assert again == ANSWER  # the failure was not kept: asked again
    assert len(fake.calls) == 2


async def test_answers_are_kept_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Resolver()
    monkeypatch.setattr(dns, "getaddrinfo", fake)
    resolver = dns.SharedLookups()
    for _ in range(3):
        await resolver.getaddrinfo(b"files.example", 443)
    assert len(fake.calls) == 1
    monkeypatch.setattr(dns, "KEEP", 0.0)
    await resolver.getaddrinfo(b"other.example", 443)
    await resolver.getaddrinfo(b"other.example", 443)
    assert fake.calls == [b"files.example", b"other.example", b"other.example"]


async def test_a_resolver_set_already_is_kept() -> None:
    own = dns.SharedLookups()
    trio.socket.set_custom_hostname_resolver(own)
    dns.share_lookups()
    assert trio.socket.set_custom_hostname_resolver(None) is own


def test_outside_a_trio_run_nothing_happens() -> None:
    dns.share_lookups()


async def test_a_clients_connections_look_the_name_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names: list[Any] = []
    real = socket.getaddrinfo

    def counting(host: Any, *rest: Any) -> Any:
        names.append(host)
        return real("127.0.0.1", *rest)  # "segfetch.test" is 127.0.0.1: nothing leaves

    monkeypatch.setattr(dns, "getaddrinfo", counting)
    data = bytes(1000)
    async with Emulator({"/f.bin": data}) as emu, make_client(16, 10) as client:
        url = emu.url("/f.bin").replace("127.0.0.1", "segfetch.test")

        async def one(i: int) -> None:
            r = await client.get(url, headers={"Range": f"bytes={i}-{i + 9}"})
            assert r.status_code == 206

        async with trio.open_nursery() as nursery:
            for i in range(16):
                nursery.start_soon(one, i)
        assert len({row["conn"] for row in emu.log}) > 1  # several connections were opened
    assert names == [b"segfetch.test"]


async def test_a_cancelled_caller_does_not_throw_the_lookup_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = Resolver()
    monkeypatch.setattr(dns, "getaddrinfo", fake)
    resolver = dns.SharedLookups()
    results: list[Any] = []

    async def one(patience: float) -> None:
        with trio.move_on_after(patience):
            results.append(await resolver.getaddrinfo(b"files.example", 443))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, 0.01)  # asks first, and gives up before the answer
        await trio.sleep(0.001)
        for _ in range(5):
            nursery.start_soon(one, 10.0)
    assert fake.calls == [b"files.example"] and results == [ANSWER] * 5
