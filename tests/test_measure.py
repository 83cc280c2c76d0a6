"""`segfetch bench`: the decisions without sockets, the measurement against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.engine.measure import Report, Step, bench, classify, counts, recommend, unfinished
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile


async def measured(
    link: Link, size: int, budget: int, *, seconds: float = 20, **kwargs: Any
) -> tuple[Report, Emulator]:
    """bench of a file of ``size`` on the emulator at ``link`` (1 s steps unless told); the
    emulator, stopped, for its log."""
    emu = Emulator({"/b.bin": SyntheticFile(size)}, link=link)
    kwargs.setdefault("step_seconds", 1.0)
    async with emu:
        report = await bench(
            httpx.AsyncClient, emu.url("/b.bin"), budget=budget, seconds=seconds, **kwargs
        )
    return report, emu


def steps(*rates: float) -> list[Step]:
    return [Step(n, int(r * 2), 2.0) for n, r in zip((1, 2, 4, 8, 16), rates, strict=False)]


def test_classify_and_recommend() -> None:
    per_conn = steps(100, 200, 400, 800)
    assert classify(per_conn) == "per connection" and recommend(per_conn) == 8
    shared = steps(1000, 1050)
    assert classify(shared) == "shared" and recommend(shared) == 1
    mixed = steps(100, 190, 300, 320)
    assert classify(mixed) == "mixed" and recommend(mixed) == 4  # 300 >= 0.9 * 320
    assert classify(steps(100)) == "unknown" and recommend([]) == 1


def test_a_climb_cut_while_it_still_paid_is_unfinished() -> None:
    """The suggestion is a lower bound when time, budget or -n ended the climb while the
    last step still bought more; not at a knee, nor after a step that bought too little."""
    assert unfinished(steps(100, 200, 400), "--time") == "--time"
    assert unfinished(steps(100, 200), "-n") == "-n"
    assert unfinished(steps(100, 200, 210), "--budget") == ""  # flat already: the knee
    assert unfinished(steps(100, 200, 400), "") == ""  # stopped at a knee
    assert unfinished(steps(100), "--time") == "--time"  # one step: more may pay
    assert unfinished(steps(100), "-n") == ""  # -n 1: nothing more was asked


@pytest.mark.parametrize(
    ("link", "limit"),
    # (rates a loaded 2-core machine serves and reads in one process, over steps of a
    # second: at 512 KiB/s per connection, or 0.4 s steps at load 9, 8 read as "mixed")
    [(Link(rate=256 * 1024), "per connection"), (Link(shared_rate=1 << 20), "shared")],
)
async def test_bench_tells_per_connection_from_shared(link: Link, limit: str) -> None:
    read: list[int] = []
    report, _ = await measured(link, 32 << 20, 6 << 20, max_connections=8, progress=read.append)
    assert report.ranges and report.size == 32 << 20
    assert report.limit == limit
    assert sum(s.bytes for s in report.steps) == sum(read) <= 6 << 20
    if limit == "shared":
        assert report.recommended == 1 and len(report.steps) == 2  # stopped once flat
    else:
        assert report.recommended >= 4


async def test_bench_respects_the_time_budget() -> None:
    with trio.fail_after(10):  # a guard against hanging, not a speed assertion
        report, _ = await measured(
            Link(rate=64 * 1024), 8 << 20, 64 << 20, seconds=1.0, step_seconds=0.4
        )
    # At most what fits in the second (none, where a loaded machine took it all to open
    # connections: the command then says so, test_a_time_too_short_to_measure_is_one_line)
    assert len(report.steps) <= 3


async def test_bench_says_when_more_connections_may_still_pay(tmp_path: Path) -> None:
    """-n 2 on a link capped per connection: 2 doubled 1's rate, so 2 is a lower bound."""
    env = {"SEGFETCH_CONFIG": str(tmp_path / "config.json")}
    link = ["--rate", "256K", "--budget", "2M", "--time", "20s", "-q"]
    proc = await segfetch("bench", "--emulate", "-n", "2", *link, env=env)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.decode().splitlines()[-1]
    assert last.endswith("suggested: -n 2 (at least 2; measure more with -n 4)")


async def test_a_time_too_short_to_measure_is_one_line(tmp_path: Path) -> None:
    """Opening connections (3 of them, 2 round trips each) takes longer than --time: no
    rate was measured, so there is no count to suggest, nor to --save."""
    config = tmp_path / "config.json"
    env = {"SEGFETCH_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    async with Emulator({"/b.bin": SyntheticFile(4 << 20)}, link=Link(rtt=0.2)) as emu:
        args = ["bench", emu.url("/b.bin"), "--time", "0.3s", "--save"]
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *args], env=env, capture_stdout=True,
            capture_stderr=True, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert "--time 0.3s ran out before" in one_line_error(proc)
    assert not config.exists()


async def test_save_makes_the_default_of_get(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    env = {"SEGFETCH_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    async with Emulator({"/b.bin": SyntheticFile(4 << 20)}, link=Link(shared_rate=1 << 20)) as emu:
        args = ["bench", emu.url("/b.bin"), "--budget", "2M", "--time", "8s", "-n", "4", "--save"]
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *args], env=env, capture_stdout=True,
            capture_stderr=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        saved = json.loads(config.read_text())["connections"]
        assert 1 <= saved <= 4
        get = [
            "get",
            emu.url("/b.bin"),
            "-o",
            str(tmp_path / "b.bin"),
            "--json",
            "--min-segment",
            "64K",
        ]
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *get], env=env, capture_stdout=True, check=False
        )
        assert proc.returncode == 0
        assert json.loads(proc.stdout)["connections"] <= saved


@pytest.mark.parametrize(
    "args",
    [
        ["bench"],
        ["bench", "http://127.0.0.1:9/x", "--emulate"],
        ["bench", "--emulate", "--budget", "1K"],
    ],
)
def test_bench_bad_input(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "segfetch", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("segfetch: error: ") and "Traceback" not in proc.stderr


async def test_a_dropped_connection_does_not_end_the_bench() -> None:
    """A link that resets a connection every 256 KiB (the flaky links segfetch is for): each
    connection opens again where it stopped, and the rates are measured all the same."""
    link = Link(rate=1 << 20, faults=(Fault("reset", every=256 * 1024),))
    report, _ = await measured(link, 32 << 20, 8 << 20, max_connections=2)
    assert [s.connections for s in report.steps] == [1, 2]
    assert all(s.bytes > 256 * 1024 for s in report.steps)


async def test_a_host_that_allows_four_connections_gets_four() -> None:
    """A host that refuses beyond 4 connections: bench suggested 2 (the step before counted
    our own idle connections against the limit) or 8 (nginx's limit_conn: half of them
    refused), and never said so. Each step now opens its own connections, a refused one
    is asked again, and the climb ends at the step the host kept refusing."""
    link = Link(rate=256 * 1024, max_connections=4)
    report, _ = await measured(link, 32 << 20, 8 << 20, seconds=30, max_connections=16)
    assert [(s.connections, s.refused) for s in report.steps] == [(1, 0), (2, 0), (4, 0), (8, 4)]
    assert report.recommended == 4 and report.unfinished == ""


@pytest.mark.parametrize("fault", ["ignore_range", "multipart", "unknown_total"])
async def test_a_server_without_ranges_costs_the_budget_not_the_file(fault: str) -> None:
    """A server that answers Range with all of the file: the probe's seven requests each
    read all of it (7 x 16 MiB for --budget 2M, 106 s for --time 10s; a 2 GiB file ended
    in MemoryError), and a multipart answer was a traceback. Now a probe reads at most
    64 KiB of an answer, and the one step reads the budget."""
    report, emu = await measured(Link(faults=(Fault(fault),)), 64 << 20, 2 << 20)
    assert not report.ranges and [s.connections for s in report.steps] == [1]
    sent = sum(int(str(e["sent"])) for e in emu.log)
    assert sent <= (2 << 20) + 4 * (1 << 20), sent  # the budget, and what sockets held


@pytest.mark.parametrize(
    ("files", "fault", "words"),
    [
        ({"/b.bin": SyntheticFile(300_000)}, None, "too small to measure a link"),
        ({"/b.bin": SyntheticFile(0)}, None, "is 0 B: too small to measure a link"),
        ({"/b.bin": SyntheticFile(8 << 20)}, "portal", "answered with an HTML page, not a file"),
    ],
)
async def test_what_is_no_file_to_measure_is_one_line(
    tmp_path: Path, files: dict[str, SyntheticFile], fault: str | None, words: str
) -> None:
    """A 300 kB file (bursts, not the link: "109 MiB/s, 436x one" behind limit_rate 256k)
    and a login page were measured as files and --save kept their counts."""
    config = tmp_path / "config.json"
    link = Link(faults=(Fault(fault),) if fault else ())
    async with Emulator(files, link=link) as emu:
        proc = await segfetch(
            "bench", emu.url("/b.bin"), "--save", env={"SEGFETCH_CONFIG": str(config)}
        )
    assert proc.returncode == 1 and words in one_line_error(proc)
    assert not config.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["http://127.0.0.1:9/b.bin", "--rate", "256K"], "--rate shapes the built-in emulator"),
        (["--emulate", "--save"], "--save keeps what a real host"),
    ],
)
def test_emulator_options_go_with_the_emulator(args: list[str], words: str) -> None:
    """--rate with a real URL was silently ignored; --save kept the emulator's figure as
    the default for real hosts."""
    proc = subprocess.run(
        [sys.executable, "-m", "segfetch", "bench", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


async def test_steps_too_short_to_tell_are_said_and_not_saved(tmp_path: Path) -> None:
    """On a fast link the budget's share of a step was read in milliseconds, and the verdict
    flipped from run to run; --save kept it."""
    config = tmp_path / "config.json"
    async with Emulator({"/b.bin": SyntheticFile(8 << 20)}) as emu:
        proc = await segfetch(
            "bench", emu.url("/b.bin"), "--budget", "1M", "-n", "2", "--save",
            env={"SEGFETCH_CONFIG": str(config)},
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "not saved: the steps were too short to tell" in one_line_error(proc)
    out = proc.stdout.decode()
    assert "steps lasted under 0.25 s: too short to tell this link; give a larger" in out
    assert out.rstrip().endswith("(a guess: the steps were too short)")
    assert not config.exists()


async def test_a_trickle_that_outlasts_the_time_is_one_line() -> None:
    """An answer that trickles (a byte per 0.1 s) past --time: no request time was
    measured, and the line that says so was a TypeError traceback (verification review)."""
    from test_hostile import read_head, serve

    async def trickle(stream: trio.SocketStream) -> None:
        while await read_head(stream):
            head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-65535/4194304\r\n"
            await stream.send_all(head + b"Content-Length: 65536\r\n\r\n")
            for _ in range(600):  # (a minute at most)
                await stream.send_all(b"x")
                await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, trickle)
        proc = await segfetch("bench", f"http://127.0.0.1:{port}/b.bin", "--time", "1s", "-q")
        nursery.cancel_scope.cancel()
    assert proc.returncode == 1
    assert "--time 1s ran out before the first measurement" in one_line_error(proc)


def test_durations_take_minutes_and_an_interrupted_bench_keeps_nothing() -> None:
    """`--time 2m` was refused; Ctrl-C on bench said "run again to resume"."""
    import argparse

    from segfetch.cli.main import _again
    from segfetch.units import parse_duration

    assert (parse_duration("2m"), parse_duration("250ms"), parse_duration("3")) == (120, 0.25, 3)
    assert _again(argparse.Namespace(subcommand="bench")) == "nothing was kept"


def test_bench_measures_up_to_the_n_it_takes() -> None:
    """`bench -n 64` was taken, yet no step went past 16 connections."""
    assert counts(16) == [1, 2, 4, 8, 16]
    assert counts(64) == [1, 2, 4, 8, 16, 32, 64]
    assert counts(3) == [1, 2]
