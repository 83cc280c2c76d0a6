"""-n auto: the controller's pace (pure), the connection budget's step-by-step growth (trio,
no sockets, the mock clock) and a host that allows four connections (loopback, emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from segfetch.engine.control import (
    EPOCH,
    FAST_CONNECTION,
    PROBE_EVERY,
    QUIET_AFTER_REFUSAL,
    SLOW_START_EPOCH,
    START,
    Controller,
)
from segfetch.engine.download import download
from segfetch.engine.options import Options
from segfetch.engine.retry import RetryPolicy
from segfetch.engine.slots import OPENING, Slots
from segfetch.testing.emulator import Emulator, Link, SyntheticFile

PATH = "/pkg.whl"


def test_slow_start_measures_in_short_epochs_until_the_knee() -> None:
    c = Controller(cap=32)
    assert c.limit == START == 4
    assert c.period == SLOW_START_EPOCH < EPOCH
    assert c.settling
    c.settled()  # every connection streams: no settling epoch to wait out
    assert c.epoch(1e6, busy=4) == 16  # the first step: 4x
    c.settled()
    assert c.epoch(1.2e6, busy=16) == 4  # it bought too little: the knee
    assert c.period == EPOCH


def test_connections_already_fast_end_slow_start_where_they_are() -> None:
    c = Controller(cap=16)
    c.settled()
    assert c.epoch(4 * FAST_CONNECTION, busy=4) == 4  # the CPU's pace, not a cap per connection
    assert c.knee == 4 and c.period == EPOCH
    for _ in range(PROBE_EVERY - 1):
        assert c.epoch(4 * FAST_CONNECTION, busy=4) == 4
    assert c.epoch(4 * FAST_CONNECTION, busy=4) == 5  # one more, now and then


def test_slow_start_grows_4x_after_a_step_that_paid_and_2x_after_one_that_half_paid() -> None:
    c = Controller(cap=256, limit=4)
    c.settled()
    assert c.epoch(1e6, busy=4) == 16
    c.settled()
    assert c.epoch(3e6, busy=16) == 32  # 3x of an ideal 4x: it paid, not almost in full
    c.settled()
    assert c.epoch(6e6, busy=32) == 128  # 2x of an ideal 2x: in full


def test_a_refused_count_is_not_probed_again_for_a_long_while() -> None:
    c = Controller(cap=16, limit=4)
    c.settled()
    assert c.epoch(1e6, busy=4) == 16  # on trial
    assert c.pushback(busy=6) == 4  # refused: the count that streamed
    c.epoch(1e6, busy=4)  # settling
    for _ in range(QUIET_AFTER_REFUSAL + 7):
        assert c.epoch(1e6, busy=4) == 4
    assert c.epoch(1e6, busy=4) == 5  # only after that: one more, in case the host changed


async def test_growth_opens_at_most_two_unproven_connections_at_a_time(
    mock_clock: trio.testing.MockClock,
) -> None:
    slots = Slots(0, Controller(cap=16, limit=4))
    for _ in range(4):  # four places stream: four are proven
        await slots.acquire()
        slots.streaming(+1)
    slots.count(1000)
    mock_clock.jump(SLOW_START_EPOCH)
    slots.count(1000)
    assert slots.size == 16  # the count on trial
    passed: list[int] = []

    async def want(i: int) -> None:
        await slots.acquire()
        passed.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(want, i)
        await trio.testing.wait_all_tasks_blocked()
        assert len(passed) == OPENING  # two ask; two wait for their answers
        slots.streaming(+1)  # one of them streams: one more may ask
        await trio.testing.wait_all_tasks_blocked()
        assert len(passed) == OPENING + 1
        # Another is refused (a 503): back to the four that streamed, and the place still
        # waiting is given back instead of asking into the host's limit.
        slots.shrink()
        slots.release()
        await trio.testing.wait_all_tasks_blocked()
        assert len(passed) == OPENING + 1
        assert slots.controller is not None and slots.controller.limit == 4
        nursery.cancel_scope.cancel()


async def first_step(clock: trio.testing.MockClock) -> Slots:
    """Auto's first four connections streaming, and one slow-start epoch measured."""
    slots = Slots(0, Controller(cap=16))
    for _ in range(4):
        await slots.acquire()
        slots.streaming(+1)
    slots.count(1000)  # all stream: the measurement starts now, not after a settling epoch
    clock.jump(SLOW_START_EPOCH)
    slots.count(1000)
    return slots


async def test_measuring_begins_once_every_new_connection_streams(
    mock_clock: trio.testing.MockClock,
) -> None:
    slots = await first_step(mock_clock)
    assert slots.size == 16  # grown 0.1 s in (it took two 0.3 s epochs)


async def test_refusals_of_one_burst_cut_once_though_bytes_come_between_them(
    mock_clock: trio.testing.MockClock,
) -> None:
    slots = await first_step(mock_clock)
    assert slots.size == 16
    asked = trio.current_time()  # two more ask at once; the host allows four
    for _ in range(2):
        await slots.acquire()
    mock_clock.jump(0.005)
    slots.shrink(asked)  # the first refusal: back to the four that streamed
    slots.release()
    assert slots.size - slots._owed == 4
    slots.count(1000)  # the four still stream: the new count settles
    mock_clock.jump(0.002)
    slots.shrink(asked)  # the second refusal of the same burst changes nothing
    slots.release()
    assert slots.size - slots._owed == 4
    mock_clock.jump(1.0)
    slots.shrink(trio.current_time())  # a refusal of a later request: a new cut
    assert slots.size - slots._owed == 2


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_host_that_allows_four_gives_the_whole_file(tmp_path: Path, seed: int) -> None:
    link = Link(seed=seed, rate=256 << 10, max_connections=4)
    async with Emulator({PATH: SyntheticFile(2_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        options = Options(min_segment=64 * 1024, policy=RetryPolicy(base=0.01))
        result = await download(emu.url(PATH), dest, options, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        # The file, whole, from a host that refuses beyond four connections. Where auto
        # settles and how many refusals it meets on the way are not asserted here: on a loaded
        # machine the server counts closing connections as open for a while and the rates
        # are noise (a run under load 10 settled at 7). The rules that bound them are pinned
        # on the mock clock above; S7 in docs/benchmarks.md measures them (2 x 503 a run).
        assert result.settled is not None
