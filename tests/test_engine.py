"""The engine over real loopback sockets against the link emulator, with seeded faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from segfetch.engine.download import Progress, Result, Slots, download
from segfetch.engine.options import Options
from segfetch.engine.ranges import RangeSet
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import HashMismatch, HTTPStatusError, RetriesExhausted, ServerError
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile

FAST = RetryPolicy(max_tries=6, base=0.01, cap=0.05)
SEEDS = [1, 2, 3]
PATH = "/pkg.whl"


async def fetch(
    emu: Emulator,
    dest: Path,
    connections: int = 8,
    *,
    min_segment: int = 64 * 1024,
    policy: RetryPolicy = FAST,
    timeout: float = 30.0,
    **kw: Any,
) -> Result:
    options = Options(connections, min_segment, timeout, policy)
    return await download(emu.url(PATH), dest, options, **kw)


def assert_clean(dest: Path) -> None:
    """Only the final file remains: no .part, no control file."""
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]


def assert_nothing_at(dest: Path) -> None:
    assert not dest.exists()


def file_requests(emu: Emulator) -> list[dict[str, Any]]:
    """Requests for the file in the order they arrived (the log is in order of ending)."""
    rows = (e for e in emu.log if e["path"] == PATH and e["method"] == "GET")
    return sorted(rows, key=lambda e: e["t"])


@pytest.mark.parametrize("size", [0, 1, 4095, 300_000, 1_000_003])
@pytest.mark.parametrize("connections", [1, 3, 8])
async def test_clean_link_gives_identical_file(tmp_path: Path, size: int, connections: int) -> None:
    async with Emulator({PATH: SyntheticFile(size)}) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=connections, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert result.size == size and result.sha256 == emu.sha256(PATH)
        assert_clean(dest)
    assert result.requests == len(file_requests(emu))


async def test_probe_is_the_first_segment(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(1 << 20)}, link=Link(rate=2 << 20)) as emu:
        result = await fetch(emu, tmp_path / "out.whl", connections=4, min_segment=128 * 1024)
    log = file_requests(emu)
    # No HEAD, no extra round trip; bounded, so that nothing is sent twice.
    assert log[0]["range"] == f"bytes=0-{128 * 1024 - 1}"
    assert result.connections == 4 and result.requests == len(log)
    # Every later request is a bounded range inside the file.
    for entry in log[1:]:
        assert entry["status"] == 206 and entry["end"] <= 1 << 20


async def test_small_file_takes_one_request(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(100_000)}) as emu:
        result = await fetch(emu, tmp_path / "out.whl", connections=8, min_segment=256 * 1024)
        assert result.requests == 1 and len(file_requests(emu)) == 1


@pytest.mark.parametrize("seed", SEEDS)
async def test_resets_are_survived(tmp_path: Path, seed: int) -> None:
    link = Link(seed=seed, faults=(Fault("reset", every=200_000),))
    async with Emulator({PATH: SyntheticFile(2_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=4, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert result.retries >= 1 and any(e["fault"] == "reset" for e in emu.log)
        assert_clean(dest)


@pytest.mark.parametrize("seed", SEEDS)
async def test_truncated_segment_resumes_from_the_byte_it_stopped(
    tmp_path: Path, seed: int
) -> None:
    link = Link(seed=seed, faults=(Fault("close", every=150_000),))
    async with Emulator({PATH: SyntheticFile(1_500_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=1)
        assert dest.read_bytes() == emu.content(PATH)
        log = file_requests(emu)
        closes = [e for e in log if e["fault"] == "close"]
        assert closes
        # One connection, clean closes: every byte crossed the wire exactly once.
        assert sum(e["sent"] for e in log) == 1_500_000
        starts = {e["start"] for e in log}
        assert all(e["start"] + e["sent"] in starts for e in closes)


@pytest.mark.parametrize("seed", SEEDS)
async def test_truncations_with_many_connections_resume(tmp_path: Path, seed: int) -> None:
    link = Link(seed=seed, faults=(Fault("close", every=100_000),))
    async with Emulator({PATH: SyntheticFile(1_200_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=6)
        assert dest.read_bytes() == emu.content(PATH)
        log = file_requests(emu)
        for e in log:
            if e["fault"] == "close":  # a later request asked for the bytes it did not send
                stop = e["start"] + e["sent"]
                assert any(r["start"] <= stop < r["end"] for r in log if r is not e)


@pytest.mark.parametrize("seed", SEEDS)
async def test_stalled_connection_times_out_and_resumes(tmp_path: Path, seed: int) -> None:
    fault = Fault("stall", every=300_000, stall_seconds=30, limit=2)
    async with Emulator(
        {PATH: SyntheticFile(800_000)}, link=Link(seed=seed, faults=(fault,))
    ) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=2, timeout=0.3)
        assert dest.read_bytes() == emu.content(PATH)
        assert result.retries >= 1


@pytest.mark.parametrize("seed", SEEDS)
async def test_flipped_bytes_every_time_fail_the_hash_and_leave_nothing(
    tmp_path: Path, seed: int
) -> None:
    link = Link(seed=seed, faults=(Fault("flip", every=100_000),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        with pytest.raises(HashMismatch) as info:
            await fetch(emu, dest, connections=4, sha256=emu.sha256(PATH))
        assert info.value.expected == emu.sha256(PATH) and info.value.got in str(info.value)
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", SEEDS)
async def test_one_flipped_byte_in_a_non_zip_costs_one_full_refetch(
    tmp_path: Path, seed: int
) -> None:
    link = Link(seed=seed, faults=(Fault("flip", every=100_000, limit=1),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=4, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert result.restarts == 1 and result.repaired == 0
        assert_clean(dest)


async def test_server_ignoring_ranges_gives_one_stream(tmp_path: Path) -> None:
    link = Link(faults=(Fault("ignore_range"),))
    async with Emulator({PATH: SyntheticFile(700_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=8)
        assert dest.read_bytes() == emu.content(PATH)
        assert result.requests == 1 and file_requests(emu)[0]["status"] == 200
        assert_clean(dest)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_range_ignored_midway_is_retried_never_spliced(tmp_path: Path, seed: int) -> None:
    link = Link(seed=seed, rate=4 << 20, faults=(Fault("ignore_range", after=1, limit=2),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=4)
        assert dest.read_bytes() == emu.content(PATH)
        assert result.retries >= 1 and result.restarts == 0


async def test_server_that_stops_honouring_ranges_midway_goes_one_stream(
    tmp_path: Path,
) -> None:
    """After two ranges the server sends the whole file (same ETag) to every request: three
    such answers in a row and the rest comes as one plain stream, not a failure."""
    link = Link(rate=4 << 20, faults=(Fault("ignore_range", after=2),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        seen: list[Progress] = []
        result = await fetch(emu, dest, connections=4, progress=seen.append)
        assert dest.read_bytes() == emu.content(PATH) and result.restarts == 0
        assert (seen[-1].done, seen[-1].prefix) == (1_000_000, 1_000_000)  # the stream's bytes
        last = file_requests(emu)[-1]
        assert last["status"] == 200 and not last["range"]  # the one stream: no Range
        assert_clean(dest)


async def test_server_that_stops_honouring_ranges_keeps_state_then_goes_one_stream(
    tmp_path: Path,
) -> None:
    # The first four ranges are answered: the first one to end asks for more and gets a 200.
    link = Link(rate=4 << 20, faults=(Fault("ignore_range", after=4),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        policy = RetryPolicy(max_tries=1, base=0.01, cap=0.02)  # gives up at the first 200
        with pytest.raises(RetriesExhausted, match="ignored a Range request"):
            await fetch(emu, dest, connections=4, policy=policy)
        state = json.loads((tmp_path / "out.whl.part.json").read_text())  # the state is kept
        assert state["done"]
        # The probe now sees a 200 with the same ETag: the same bytes, taken as one stream.
        # (The saved size let the other connections ask beside it; they are dropped unread.)
        result = await fetch(emu, dest, connections=4)
        assert dest.read_bytes() == emu.content(PATH)
        assert result.restarts == 0 and result.retries == 0 and result.requests <= 4
        assert_clean(dest)


@pytest.mark.parametrize("seed", SEEDS)
async def test_wrong_content_range_is_never_written(tmp_path: Path, seed: int) -> None:
    link = Link(seed=seed, faults=(Fault("wrong_range", rate=0.4), Fault("reset", every=150_000)))
    # At this rate one range in 250 meets six wrong answers in a row and FAST gives up on
    # it: which one does depends on where the ranges fall. The test is about what is written.
    patient = RetryPolicy(max_tries=12, base=0.01, cap=0.05)
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=4, policy=patient)
        assert dest.read_bytes() == emu.content(PATH)
        # Counted where drawn: the log names a reset that cut the same answer instead.
        assert emu.fired("wrong_range") > 0


async def test_always_wrong_range_fails_cleanly(tmp_path: Path) -> None:
    link = Link(faults=(Fault("wrong_range", after=1),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        policy = RetryPolicy(max_tries=3, base=0.01, cap=0.02)
        with pytest.raises(RetriesExhausted, match=r"different range|answered bytes"):
            await fetch(emu, dest, connections=4, policy=policy)
        assert_nothing_at(dest)
        # The resume state is kept for the next run.
        assert (tmp_path / "out.whl.part.json").exists()


@pytest.mark.parametrize("status", [429, 503, 416, 500])
@pytest.mark.parametrize("seed", SEEDS)
async def test_error_statuses_are_retried(tmp_path: Path, status: int, seed: int) -> None:
    fault = Fault("status", status=status, rate=0.3, retry_after="0")
    async with Emulator(
        {PATH: SyntheticFile(900_000)}, link=Link(seed=seed, faults=(fault,))
    ) as emu:
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=4)
        assert dest.read_bytes() == emu.content(PATH)


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    fault = Fault("status", status=503, retry_after="1", limit=1)
    async with Emulator({PATH: SyntheticFile(10_000)}, link=Link(faults=(fault,))) as emu:
        await fetch(emu, tmp_path / "out.whl", connections=1)
        first, second = file_requests(emu)
        assert first["status"] == 503 and second["status"] == 206
        assert second["t"] - first["t"] >= 0.9  # the server asked for a second


async def test_a_retry_after_longer_than_segfetch_waits_stops_at_once(tmp_path: Path) -> None:
    """Retry-After: a day. Not minutes of silence and then "raise --max-tries": one try,
    one line saying what the server asked, nothing kept."""
    fault = Fault("status", status=429, retry_after="86400")
    async with Emulator({PATH: SyntheticFile(10_000)}, link=Link(faults=(fault,))) as emu:
        with trio.fail_after(10), pytest.raises(RetriesExhausted) as failed:
            await fetch(emu, tmp_path / "out.whl", connections=1)
        assert len(file_requests(emu)) == 1
    assert "asks to be asked again in 86400 s" in str(failed.value)
    assert "--max-tries" not in str(failed.value) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("after", [1, 3])
async def test_file_changing_midway_restarts_whole(tmp_path: Path, after: int) -> None:
    link = Link(rate=4 << 20, faults=(Fault("change", after=after),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        result = await fetch(emu, dest, connections=4)
        assert dest.read_bytes() == emu.content(PATH, version=1)
        assert result.restarts == 1


@pytest.mark.parametrize("seed", SEEDS)
async def test_connection_limit_makes_fewer_connections(tmp_path: Path, seed: int) -> None:
    link = Link(seed=seed, rate=2 << 20, max_connections=2)
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=8)
        assert dest.read_bytes() == emu.content(PATH)
        refused = [e for e in emu.log if e["fault"] == "max_connections"]
        assert len(refused) <= 8  # it backs off instead of hammering the limit


@pytest.mark.parametrize(("etag", "modified"), [(False, True), (False, False)])
async def test_resume_without_etag(tmp_path: Path, etag: bool, modified: bool) -> None:
    link = Link(etag=etag, last_modified=modified, faults=(Fault("reset", every=200_000),))
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=3, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        later = file_requests(emu)[1:]
        if modified:
            assert all(e["if_range"] and "GMT" in str(e["if_range"]) for e in later)
        else:
            assert all(e["if_range"] is None for e in later)


async def test_404_is_final(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(10)}) as emu:
        dest = tmp_path / "out.whl"
        with pytest.raises(HTTPStatusError, match="404"):
            await download(emu.url("/missing.whl"), dest, Options(policy=FAST))
        assert list(tmp_path.iterdir()) == []


async def test_dead_server_fails_in_bounded_tries(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(10)}) as emu:
        url = emu.url(PATH)
    with pytest.raises(RetriesExhausted, match="giving up after 3 tries"):
        await download(
            url, tmp_path / "out.whl", Options(policy=RetryPolicy(max_tries=3, base=0.01))
        )
    assert list(tmp_path.iterdir()) == []


async def test_resume_from_saved_state_skips_done_ranges(tmp_path: Path) -> None:
    """A control file from an earlier run: only the missing bytes are asked for."""
    async with Emulator({PATH: SyntheticFile(1_000_000)}) as emu:
        dest = tmp_path / "out.whl"
        content = emu.content(PATH)
        part = tmp_path / "out.whl.part"
        part.write_bytes(content[:300_000] + bytes(400_000) + content[700_000:])
        etag = (await _head(emu))["etag"]
        control = {
            "url": emu.url(PATH),
            "size": 1_000_000,
            "etag": etag,
            "last_modified": None,
            "sha256": None,
            "done": [[0, 300_000], [700_000, 1_000_000]],
        }
        (tmp_path / "out.whl.part.json").write_text(json.dumps(control))
        result = await fetch(emu, dest, connections=3)
        assert dest.read_bytes() == content
        assert result.resumed == 600_000
        done = RangeSet([(0, 300_000), (700_000, 1_000_000)])
        for e in file_requests(emu):
            assert not done.covers(e["start"], e["start"] + 1)


async def test_stale_state_of_a_changed_file_is_discarded(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(500_000)}) as emu:
        dest = tmp_path / "out.whl"
        (tmp_path / "out.whl.part").write_bytes(bytes(200_000))
        control = {
            "url": emu.url(PATH),
            "size": 500_000,
            "etag": '"old"',
            "last_modified": None,
            "sha256": None,
            "done": [[0, 200_000]],
        }
        (tmp_path / "out.whl.part.json").write_text(json.dumps(control))
        result = await fetch(emu, dest, connections=2)
        assert dest.read_bytes() == emu.content(PATH)
        assert result.restarts == 1


async def _head(emu: Emulator) -> dict[str, str]:
    import httpx

    async with httpx.AsyncClient() as client:
        r = await client.head(emu.url(PATH))
        return dict(r.headers)


async def test_size_from_the_index_must_match(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(50_000)}) as emu:
        with pytest.raises(ServerError, match="50000 bytes, but 40000 were expected"):
            await fetch(emu, tmp_path / "out.whl", size=40_000)
    assert list(tmp_path.iterdir()) == []


async def test_size_is_enforced_on_a_single_stream(tmp_path: Path) -> None:
    link = Link(faults=(Fault("ignore_range"),))
    async with Emulator({PATH: SyntheticFile(50_000)}, link=link) as emu:
        with pytest.raises(ServerError, match="but 40000 were expected"):
            await fetch(emu, tmp_path / "out.whl", size=40_000)
    assert not (tmp_path / "out.whl").exists()


async def test_http_proxy_from_the_environment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is honoured: the emulator plays the proxy; the host never resolves."""
    async with Emulator({PATH: SyntheticFile(300_000)}) as emu:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{emu.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        dest = tmp_path / "out.whl"
        await fetch(emu, dest, connections=2)  # the URL is emu's, so it would work anyway
        await download("http://files.invalid" + PATH, tmp_path / "via.whl", Options(policy=FAST))
        assert (tmp_path / "via.whl").read_bytes() == emu.content(PATH)


async def test_many_files_share_a_small_budget_without_deadlock(tmp_path: Path) -> None:
    """Each connection holds a place in the budget; nobody holds one while waiting for one."""
    import httpx
    import trio

    files = {f"/f{i}.whl": SyntheticFile(300_000 + i) for i in range(8)}
    async with Emulator(files, link=Link(rate=4 << 20)) as emu, httpx.AsyncClient() as client:
        slots = Slots(2)
        done: list[Result] = []

        async def one(path: str) -> None:
            dest = tmp_path / path.strip("/")
            done.append(
                await download(
                    emu.url(path),
                    dest,
                    Options(connections=4, min_segment=64 * 1024, policy=FAST),
                    client=client,
                    slots=slots,
                )
            )
            assert dest.read_bytes() == emu.content(path)

        with trio.fail_after(60):  # a guard against the deadlock, not a speed claim
            async with trio.open_nursery() as nursery:
                for path in files:
                    nursery.start_soon(one, path)
    assert len(done) == 8 and slots.size == 2


async def test_slots_halve_what_is_in_use_when_a_host_pushes_back() -> None:
    slots = Slots(32)
    for _ in range(10):
        await slots.acquire()
    slots.shrink()  # 10 in use: 5 is the new budget; the 22 free places go at once
    assert slots.size == 10
    for _ in range(10):
        slots.release()
    assert slots.size == 5
    for _ in range(5):
        await slots.acquire()  # all five can be had again
    slots.shrink()
    slots.shrink()  # the same five in use: still half of them
    for _ in range(5):
        slots.release()
    assert slots.size == 2
    await slots.acquire()
    slots.shrink()
    slots.release()
    assert slots.size == 1  # never below one


async def test_a_silent_connection_is_hedged_long_before_the_timeout(tmp_path: Path) -> None:
    """Each connection goes quiet once (no reset: a fading link) while others flow: its
    worker asks again on a new connection from the byte where it stopped, so the 30 s
    timeout never has to fire."""
    fault = Fault("stall", every=400_000, stall_seconds=60, limit=4)
    link = Link(rate=512 * 1024, seed=3, faults=(fault,))
    async with Emulator({PATH: SyntheticFile(4_000_000)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        with trio.fail_after(25):  # under the 30 s timeout: hedging, not the timeout, did it
            result = await fetch(emu, dest, connections=4, timeout=30.0)
        assert dest.read_bytes() == emu.content(PATH)
    log = file_requests(emu)
    stalled = [e for e in log if e["fault"] == "stall"]
    assert stalled and result.retries >= len(stalled) - 1
    # Each stalled range was asked again from where its bytes stopped, not from its start.
    starts = {int(e["start"]) for e in log}
    assert all(any(int(s["start"]) < a < int(s["end"]) for a in starts) for s in stalled[:1])


async def test_a_connection_that_slows_after_a_fast_start_gives_up_its_range(
    tmp_path: Path,
) -> None:
    """One answer slows to 16 KiB/s after a fast start (a server's buffers, a CDN's allowance
    for a new connection). The connections that finish meanwhile come back for it, by its
    latest rate, and take its range (the more, the slower it is): no retry, and it ends
    about when they do."""
    from segfetch.engine.plan import SLOW_LEFT
    from segfetch.engine.transfer import RECHECK

    slow = Fault("slow", every=256 * 1024, slow_rate=16 * 1024, limit=1, after=1)
    link = Link(rate=512 * 1024, seed=1, faults=(slow,))
    async with Emulator({PATH: SyntheticFile(4 << 20)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        with trio.fail_after(60):  # (bounded)
            result = await fetch(emu, dest, connections=4, min_segment=256 * 1024)
        assert dest.read_bytes() == emu.content(PATH)
    log = file_requests(emu)
    (slowed,) = [e for e in log if e["fault"] == "slow"]
    start, end = int(slowed["start"]), int(slowed["end"])
    taken = [e for e in log if start < int(e["start"]) < end]
    assert len(taken) >= 2 and result.retries == 0
    # Taken so that the slow one ends about when its takers do: within the SLOW_LEFT
    # seconds a range may keep and a look or two, not the ~10 s it held at 16 KiB/s (the
    # average since its fast start made it look nearly done: nothing was taken after the
    # first round).
    ends = [float(e["t"]) + float(e["duration"]) for e in log]
    slow_end = float(slowed["t"]) + float(slowed["duration"])
    assert slow_end - max(x for x in ends if x != slow_end) < SLOW_LEFT + 4 * RECHECK


async def test_an_answer_left_unread_shows_as_a_backlog() -> None:
    # What keeps a steal from a connection whose server waits for us (plan.BACKLOG): its
    # socket's receive queue, measured on a real loopback socket, fills as nobody reads.
    import httpx

    from segfetch.engine.body import unread
    from segfetch.engine.plan import BACKLOG

    async with (
        Emulator({PATH: SyntheticFile(8 << 20)}) as emu,
        httpx.AsyncClient() as client,
        client.stream("GET", emu.url(PATH)) as response,
    ):
        queue, room = unread(response)
        for _ in range(100):  # (bounded: the server fills it in milliseconds)
            if queue * BACKLOG > room > 0:
                break
            await trio.sleep(0.02)
            queue, room = unread(response)
        assert room > 0 and queue * BACKLOG > room
        async for _chunk in response.aiter_raw():
            break
    assert unread(response) == (0, 0)  # closed: nothing to ask
