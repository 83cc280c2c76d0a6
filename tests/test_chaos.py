"""Chaos: a seeded mix of faults on one link, for `get`, `download` and `install`.

The promise checked: a bad link may cost time, never a broken file or a half-installed
environment. With a few tries per segment, a chaos link still ends verified (byte-identical
files, working imports), and the request log shows how: every answer the client could not use
(a status, a range one byte off) was followed by another request from the same byte (retried),
requests start exactly where a cut answer stopped (resumed, not started over), and the bytes
sent stay under twice the file. A server that dies ends with one clean error line and exit 1,
after the tries it allows, with nothing at the final path and the resume state (`<dest>.part` +
`<dest>.part.json`) kept, from which a run on a clean link asks for exactly the missing ranges.
No timing is asserted; benchmarks/reliability.py runs the long version (every fault kind alone,
more seeds) and writes docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.engine.download import Result, download
from segfetch.engine.options import Options
from segfetch.engine.ranges import RangeSet
from segfetch.engine.retry import RetryPolicy
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile
from segfetch.testing.wheelmaker import make_wheel

SIZE = 2_000_000
PATH = "/chaos.bin"
POLICY = RetryPolicy(max_tries=6, base=0.01, cap=0.05)
TIMEOUT = 0.5


def chaos(seed: int, every: int = 300_000, rate: float = 4 << 20, *extra: Fault) -> Link:
    """Resets, clean closes, two stalls (30 s, against a 0.5 s client timeout), 503s and
    Content-Ranges one byte early, all at once, drawn from the seed."""
    return Link(
        rate=rate,
        seed=seed,
        faults=(
            Fault("reset", every=every + every // 3),
            Fault("stall", every=every, stall_seconds=30, limit=2),
            Fault("status", status=503, rate=0.1, retry_after="0"),
            Fault("close", every=every),
            Fault("wrong_range", rate=0.05),
            *extra,
        ),
    )


def dying(seed: int) -> Link:
    """Chaos, and after its 6th request for the file every answer is a 500: a run must fail."""
    return chaos(seed, 300_000, 4 << 20, Fault("status", status=500, after=6, retry_after=None))


# -- helpers -------------------------------------------------------------------------------


def file_gets(rows: list[dict[str, Any]], path: str = PATH) -> list[dict[str, Any]]:
    return [e for e in rows if e["path"] == path and e["method"] == "GET"]


def asked(e: dict[str, Any], size: int) -> tuple[int, int]:
    """[start, end) a request asked for (its Range header; all of the file without one)."""
    if e["range"] is None:
        return 0, size
    first, _, last = e["range"].removeprefix("bytes=").partition("-")
    return int(first), int(last) + 1 if last else size


REFUSED = {"status", "wrong_range"}  # answers the client cannot use: a status, a range off
CUT = {"close", "stall"}  # bodies that stop at start + sent (a reset may drop what was sent)


def retried(gets: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The answers the client could not use, each followed by a request from the same byte
    (after a 503 maybe by another connection). In a verified run every such answer was seen
    and tried again: one that was not followed so fails."""
    refused = [e for e in gets if e["fault"] in REFUSED]
    for e in refused:
        start = asked(e, size)[0]
        again = [f for f in gets if f["t"] > e["t"] and asked(f, size)[0] == start]
        assert again, ("not tried again", e)
    return refused


def resumed(gets: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Requests that start exactly where an earlier answer was cut, inside the range that
    answer was for: the client went on from the byte where it stopped."""
    stops = [
        (e["t"], e["start"] + e["sent"])
        for e in gets
        if e["fault"] in CUT and e["start"] is not None and 0 < e["sent"] < e["end"] - e["start"]
    ]
    return [f for f in gets if any(f["t"] > t and asked(f, size)[0] == at for t, at in stops)]


def retried_and_resumed(gets: list[dict[str, Any]], size: int) -> tuple[int, int]:
    """What a bad link cost a verified run: (answers refused and retried, resumes)."""
    refused, resumes = retried(gets, size), resumed(gets, size)
    assert resumes, "no request resumed where a cut answer stopped"
    served = sum(e["sent"] for e in gets)
    assert size <= served < 2 * size, (served, size)  # some bytes twice, never the file
    return len(refused), len(resumes)


async def quiet(emu: Emulator) -> int:
    """Wait until the server has logged every answer of the run before; the log's length."""
    with trio.fail_after(10):
        while emu.open_connections:
            await trio.sleep(0.02)
    return len(emu.log)


def saved_done(dest: Path) -> RangeSet:
    """The failed run left its resume state: the .part and the ranges it holds."""
    part = dest.with_name(dest.name + ".part")
    control = dest.with_name(dest.name + ".part.json")
    assert part.is_file() and control.is_file(), sorted(p.name for p in dest.parent.iterdir())
    return RangeSet((a, b) for a, b in json.loads(control.read_text())["done"])


async def fetch(emu: Emulator, dest: Path) -> Result:
    """`get` of the file as every test here does it."""
    return await download(
        emu.url(PATH),
        dest,
        Options(connections=4, min_segment=64 * 1024, timeout=TIMEOUT, policy=POLICY),
        sha256=emu.sha256(PATH),
    )


async def resume_on_a_clean_link(emu: Emulator, dest: Path, seed: int) -> None:
    """The next run completes from the saved state and asks for no completed byte again."""
    done = saved_done(dest)
    first_run = await quiet(emu)
    emu.link = Link(rate=8 << 20, seed=seed)  # same seed: same content and validators
    result = await fetch(emu, dest)
    assert dest.read_bytes() == emu.content(PATH)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    assert result.resumed == done.total()
    second = file_gets(emu.log[first_run:])
    assert second
    gaps = done.gaps(SIZE)
    for e in second:  # each asks for missing bytes only, inside one gap
        start, end = asked(e, SIZE)
        assert any(a <= start < end <= b for a, b in gaps), (e, gaps)
    # Every gap is asked for from its first byte: resumed where the saved bytes end.
    assert {a for a, _ in gaps} <= {asked(e, SIZE)[0] for e in second}, gaps
    assert sum(e["sent"] for e in second) >= SIZE - done.total()


# -- get ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_get_under_chaos_retries_resumes_and_is_verified(tmp_path: Path, seed: int) -> None:
    """Six tries per segment, and every fault of the link lets bytes through or fails one
    request: the run completes (an error fails the test), by retrying and resuming."""
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=chaos(seed)) as emu:
        dest = tmp_path / "out.bin"
        result = await fetch(emu, dest)
        assert dest.read_bytes() == emu.content(PATH)
        assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]
        assert result.sha256 == emu.sha256(PATH) and result.size == SIZE
    gets = file_gets(emu.log)
    fired = {e["fault"] for e in gets} - {None}
    assert fired, "the chaos link fired no fault at all"
    refused, resumes = retried_and_resumed(gets, SIZE)
    # Each refused answer and each resume after a cut was one retry; a fresh run resumes
    # nothing from disk and starts nothing over.
    assert result.retries >= max(refused, 1) and result.retries >= resumes, result
    assert result.resumed == 0 and result.restarts == 0, result
    print(f"chaos get seed {seed}: {result.retries} retries, {resumes} resumes, faults {fired}")


@pytest.mark.parametrize("seed", [1, 2])
async def test_get_when_the_server_dies_keeps_state_and_resumes(tmp_path: Path, seed: int) -> None:
    """The CLI as a user runs it: one line, exit 1, nothing at the path, state kept."""
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=dying(seed)) as emu:
        dest = tmp_path / "out.bin"
        proc = await segfetch(
            "get", emu.url(PATH), "-o", str(dest), "-n", "4", "--sha256", emu.sha256(PATH),
            "--timeout", str(TIMEOUT), "--min-segment", "64K", "--max-tries", "3", "-q",
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        line = one_line_error(proc)
        assert "giving up after 3 tries" in line, line
        assert not dest.exists()
        assert saved_done(dest).total() > 0  # the test below would prove nothing otherwise
        # It gave up only after three failed tries in a row at one byte: answers refused
        # from that byte, and the cut answer that stopped there, if any. (A stalled answer
        # is logged once the emulator sees its connection closed: after the exit, at times.)
        for _ in range(100):
            if emu.open_connections == 0:
                break
            await trio.sleep(0.02)
        gets = file_gets(emu.log)
        tries = Counter(asked(e, SIZE)[0] for e in gets if e["fault"] in REFUSED)
        for e in gets:
            if e["fault"] in CUT | {"reset"} and e["start"] is not None:
                for at in tries:
                    tries[at] += e["start"] < at <= e["start"] + e["sent"]
        assert max(tries.values(), default=0) >= 3, tries
        await resume_on_a_clean_link(emu, dest, seed)


# -- download / install ---------------------------------------------------------------------

# (project, version, payload, requirements): one version each, so the resolver has one answer.
WHEELS = [
    ("sf-chaos-app", "1.0", 40_000, ["sf-chaos-lib1", "sf-chaos-lib2", "sf-chaos-lib3"]),
    ("sf-chaos-lib1", "2.0", 450_000, ["sf-chaos-lib4>=1"]),
    ("sf-chaos-lib2", "0.3", 300_000, []),
    ("sf-chaos-lib3", "1.1", 120_000, []),
    ("sf-chaos-lib4", "1.5", 600_000, ["sf-chaos-lib5"]),
    ("sf-chaos-lib5", "3.0", 5_000, []),
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("chaos-index")
    for i, (name, version, payload, requires) in enumerate(WHEELS):
        make_wheel(d, name, version, requires=requires, payload=payload, seed=i)
    return d


def index_link(seed: int) -> Link:
    # Smaller files than the get test's: denser faults, so that they fire.
    return chaos(seed, every=120_000, rate=2 << 20)


def source_bytes(index_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in index_dir.iterdir()}


def wheels_retried_and_resumed(rows: list[dict[str, Any]], index_dir: Path) -> str:
    """retried_and_resumed over every wheel the engine fetched (one resume in all suffices)."""
    refused = resumes = 0
    for name, data in source_bytes(index_dir).items():
        gets = file_gets(rows, f"/files/{name}")
        assert gets, name
        refused += len(retried(gets, len(data)))
        resumes += len(resumed(gets, len(data)))
        served = sum(e["sent"] for e in gets)
        assert len(data) <= served < 2 * len(data), (name, served, len(data))
    assert resumes, "no request resumed where a cut answer stopped"
    return f"{refused} refused answers retried, {resumes} resumes"


@pytest.mark.parametrize(("seed", "pinned"), [(11, True), (12, False)])
async def test_download_under_chaos_retries_resumes_and_is_verified(
    tmp_path: Path, index_dir: Path, seed: int, pinned: bool
) -> None:
    reqs = [f"{n}=={v}" for n, v, _, _ in WHEELS] if pinned else ["sf-chaos-app"]
    out = tmp_path / "out"
    async with Emulator(index=index_dir, link=index_link(seed)) as emu:
        proc = await segfetch(
            "download", *reqs, "-d", str(out), "--index-url", emu.index_url,
            "--timeout", str(TIMEOUT), "--no-cache", "-q",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # tries enough for this link: no error
    got = {p.name: p.read_bytes() for p in out.iterdir()}
    assert got == source_bytes(index_dir)  # every file, byte-identical, nothing else
    fired = {e["fault"] for e in emu.log} - {None}
    assert fired, "the chaos link fired no fault at all"
    how = wheels_retried_and_resumed(emu.log, index_dir)
    print(f"chaos download seed {seed}: verified, {how}, faults {fired}")


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    yield path / "bin" / "python"


@pytest.mark.parametrize("seed", [21])
async def test_install_under_chaos_retries_resumes_and_installs(
    tmp_path: Path, index_dir: Path, venv: Path, seed: int
) -> None:
    async with Emulator(index=index_dir, link=index_link(seed)) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "--index-url", emu.index_url,
            "--timeout", str(TIMEOUT), "--no-cache", "-q", "sf-chaos-app",
        )  # fmt: skip
    modules = [n.replace("-", "_") for n, _, _, _ in WHEELS]
    check = "; ".join(f"import {m}; print({m}.__version__)" for m in modules)
    ran = subprocess.run([str(venv), "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # tries enough for this link: no error
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [v for _, v, _, _ in WHEELS]
    # pip verified each RECORD; the payloads are also what the index served
    listing = subprocess.run(
        [str(venv), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    have = {d["name"]: d["version"] for d in json.loads(listing.stdout)}
    assert all(have.get(n) == v for n, v, _, _ in WHEELS), have
    fired = {e["fault"] for e in emu.log} - {None}
    assert fired, "the chaos link fired no fault at all"
    how = wheels_retried_and_resumed(emu.log, index_dir)
    print(f"chaos install seed {seed}: installed, {how}, faults {fired}")


def test_the_reliability_reports_evidence_tests_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/reliability.md's evidence section runs these tests by id; one stale id (a test
    renamed or moved) made pytest run none, and the report said 'not run' for all of them."""
    import importlib.util

    root = Path(__file__).parent.parent
    spec = importlib.util.spec_from_file_location(
        "reliability", root / "benchmarks" / "reliability.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reliability", script)  # (its dataclasses look it up)
    spec.loader.exec_module(script)
    for test in script.EVIDENCE_TESTS:
        path, _, name = test.partition("::")
        text = (root / path).read_text()
        assert not name or f"def {name}(" in text, test
