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
    FIRST_EPOCH,
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
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile

PATH = "/pkg.whl"


def test_slow_start_measures_in_short_epochs_until_the_knee() -> None:
    c = Controller(cap=32)
    assert c.limit == START == 4
    assert c.period == FIRST_EPOCH < SLOW_START_EPOCH < EPOCH  # the first: the shortest
    assert c.settling
    c.settled()  # every connection streams: no settling epoch to wait out
    assert c.epoch(1e6, busy=3) == 4  # one of the four is not streaming yet: nothing shown
    assert c.period == FIRST_EPOCH
    assert c.epoch(1e6, busy=4) == 16  # the first step: 4x
    assert c.period == SLOW_START_EPOCH
    c.settled()
    assert c.epoch(1.2e6, busy=16) == 4  # it bought too little: the knee
    assert c.period == EPOCH


def test_a_step_on_trial_is_judged_by_the_connections_that_streamed() -> None:
    # A long round trip: of 16 on trial, 8 stream so far. On a link capped per connection
    # the rate doubled with them: the step pays, and it grows no further until all stream.
    c = Controller(cap=64)
    c.settled()
    assert c.epoch(1e6, busy=4) == 16
    c.settled()
    assert c.epoch(3e6, busy=4) == 16  # the new ones have not streamed all through: wait
    assert c.knee is None
    assert c.epoch(2e6, busy=8) == 16  # 2x with twice the connections: it pays
    assert c.knee is None
    assert c.epoch(8e6, busy=16) == 32  # all stream: the next step, 2x (the last one was
    # judged on half of its connections, not "almost in full")
    # A shared link: 8 of 16 streaming bring no more than 4 did: the knee, without waiting
    # for the other 8 to open.
    c = Controller(cap=64)
    c.settled()
    assert c.epoch(1e6, busy=4) == 16
    c.settled()
    assert c.epoch(1.05e6, busy=8) == 4
    assert c.knee == 4


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
    clock.jump(FIRST_EPOCH)
    slots.count(1000)
    return slots


async def test_measuring_begins_once_every_new_connection_streams(
    mock_clock: trio.testing.MockClock,
) -> None:
    slots = await first_step(mock_clock)
    assert slots.size == 16  # grown 0.03 s in (it took two 0.3 s epochs)


async def test_a_measurement_counts_only_the_connections_that_streamed_all_through_it(
    mock_clock: trio.testing.MockClock,
) -> None:
    slots = await first_step(mock_clock)  # 16 on trial after four measured: 2 kB in 0.03 s
    control = slots.controller
    assert control is not None and slots.size == 16
    for _ in range(2):  # two of the new ones stream
        await slots.acquire()
        slots.streaming(+1)
    slots.count(1000)  # six stream, not sixteen: a settling epoch
    mock_clock.jump(SLOW_START_EPOCH)
    slots.count(1000)
    slots.streaming(-1)  # one of the six stops for a moment (a reset), then streams again
    slots.streaming(+1)
    mock_clock.jump(SLOW_START_EPOCH)
    slots.count(7000)  # 70 kB/s against the four's 67: a shared link. Five streamed all
    # through the measurement, the other eleven are still opening (a long round trip): the
    # knee is found now, on five (75 kB/s wanted), without waiting for all sixteen to open
    assert control.knee == 4 and slots.size - slots._owed == 4


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


@pytest.mark.parametrize("auto", [True, False])
async def test_a_refusal_at_a_count_the_host_served_is_let_pass_once(
    mock_clock: trio.testing.MockClock, auto: bool
) -> None:
    """Four stream; one ends and its connection closes, and the one that replaces it is
    refused: a host that counts open connections had not yet seen ours close (S7 on
    loopback then ran on 2 of its 4 connections: 14.6 s for 8). The first such refusal since
    the last cut keeps the count; a second one halves it."""
    slots = Slots(4, Controller(cap=4) if auto else None)
    for _ in range(4):
        await slots.acquire()
        slots.streaming(+1)
    slots.streaming(-1)  # one answer ends, its connection closes, its place comes back
    slots.release()
    await slots.acquire()  # its replacement, refused: let pass, asked again after a while
    asked = trio.current_time()
    mock_clock.jump(0.01)
    assert slots.let_pass(asked)
    assert slots.places == 4
    asked = trio.current_time()
    mock_clock.jump(1.0)
    assert not slots.let_pass(asked)  # refused again: a host that serves fewer now
    slots.shrink(asked)
    slots.release()
    assert slots.places == 2


async def test_a_refusal_beyond_what_the_host_served_is_not_let_pass() -> None:
    slots = Slots(4)
    for _ in range(2):
        await slots.acquire()
        slots.streaming(+1)
    await slots.acquire()  # a third, where two at most streamed: refused, it cuts as ever
    assert not slots.let_pass()


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


def test_what_a_host_is_remembered_at_is_a_count_that_was_judged() -> None:
    c = Controller(cap=16)
    assert c.to_remember is None  # a small file: done before any measurement
    c.settled()
    assert c.epoch(1e6, busy=4) == 16
    assert c.to_remember is None  # 16 still on trial: slow start is not over
    c.settled()
    assert c.epoch(4e6, busy=16) == 16
    assert c.to_remember == 16  # the cap, paid for: nothing more to find (a capped link)
    c = Controller(cap=32)
    c.settled()
    assert c.epoch(1e6, busy=4) == 16
    assert c.to_remember is None  # 16 on trial, slow start not over: not a knee
    c.settled()
    assert c.epoch(1.2e6, busy=16) == 4
    assert c.to_remember == 4  # the knee (a shared link)
    c.settled()
    for _ in range(PROBE_EVERY):
        c.epoch(1.2e6, busy=4)
    assert c.limit == 5
    assert c.to_remember == 4  # not the probe still on trial when the file ended
    c = Controller(cap=16, limit=4)
    c.settled()
    c.epoch(1e6, busy=4)
    assert c.pushback(busy=6) == 4
    assert c.to_remember == 4  # the count that streamed without refusals


async def test_a_fixed_count_keeps_its_connections_through_one_refusal(tmp_path: Path) -> None:
    """-n 4 on its own: the first connection's next request (a steal, once its first range
    is done and the other three stream) is refused once. That worker asks again after the
    Retry-After instead of ending (it ended: three connections for the rest, 10.6 s for 8 in
    S7 whenever the host counted a closing connection of ours)."""
    refused = Fault("status", status=503, rate=1.0, after=4, limit=1, retry_after="0")
    link = Link(seed=1, rate=256 << 10, faults=(refused,))
    async with Emulator({PATH: SyntheticFile(4 << 20)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        options = Options(connections=4, policy=RetryPolicy(base=0.01))
        await download(emu.url(PATH), dest, options, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        log = list(emu.log)
    (when,) = [float(str(r["t"])) for r in log if r["status"] == 503]
    spans = [(float(str(r["t"])), float(str(r["t"])) + float(str(r["duration"]))) for r in log]
    after = [(max(a, when), b) for a, b in spans if b > when and a != when]
    most = max(sum(a <= t < b for a, b in after) for t, _ in after)
    assert most == 4, log  # four at once after it, not three
