"""Chaos: a seeded mix of faults on one link, for `get`, `download` and `install`.

The promise checked: a bad link may cost time, never a broken file or a half-installed
environment. Every run ends either verified (byte-identical files, working imports) or with one
clean error line and exit 1, nothing at the final path, and for `get` the resume state
(`<dest>.part` + `<dest>.part.json`) kept, from which a run on a clean link completes without
fetching a completed range again. No timing is asserted; benchmarks/reliability.py runs the
long version (every fault kind alone, more seeds) and writes docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
from segfetch.errors import HashMismatch, SegfetchError
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
    for e in second:
        assert e["start"] is not None, e
        assert not done.covers(e["start"], e["start"] + 1), (e, list(done))


# -- get ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_get_under_chaos_is_verified_or_one_clean_error(tmp_path: Path, seed: int) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=chaos(seed)) as emu:
        dest = tmp_path / "out.bin"
        try:
            result: Result | None = await fetch(emu, dest)
        except SegfetchError as exc:  # anything else is a bug and fails the test as it is
            result = None
            assert "\n" not in str(exc) and str(exc)
            assert not dest.exists()
            if isinstance(exc, HashMismatch):  # by design: a bad file is not kept to resume
                assert list(tmp_path.iterdir()) == []
            else:
                await resume_on_a_clean_link(emu, dest, seed)
        if result is not None:
            assert dest.read_bytes() == emu.content(PATH)
            assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]
            assert result.sha256 == emu.sha256(PATH) and result.size == SIZE
    fired = {e["fault"] for e in emu.log} - {None}
    assert fired, "the chaos link fired no fault at all"
    print(f"chaos get seed {seed}: {'verified' if result else 'clean error'}, faults {fired}")


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
        assert "giving up" in line or "answered 500" in line, line
        assert not dest.exists()
        assert saved_done(dest).total() > 0  # the test below would prove nothing otherwise
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


@pytest.mark.parametrize(("seed", "pinned"), [(11, True), (12, False)])
async def test_download_under_chaos_is_verified_or_one_clean_error(
    tmp_path: Path, index_dir: Path, seed: int, pinned: bool
) -> None:
    reqs = [f"{n}=={v}" for n, v, _, _ in WHEELS] if pinned else ["sf-chaos-app"]
    out = tmp_path / "out"
    async with Emulator(index=index_dir, link=index_link(seed)) as emu:
        proc = await segfetch(
            "download", *reqs, "-d", str(out), "--index-url", emu.index_url,
            "--timeout", str(TIMEOUT), "--no-cache", "-q",
        )  # fmt: skip
    if proc.returncode == 0:
        got = {p.name: p.read_bytes() for p in out.iterdir()}
        assert got == source_bytes(index_dir)  # every file, byte-identical, nothing else
    else:
        assert proc.returncode == 1, proc.stderr
        one_line_error(proc)
        assert not out.exists() or list(out.iterdir()) == []
    fired = {e["fault"] for e in emu.log} - {None}
    assert fired, "the chaos link fired no fault at all"
    outcome = "verified" if proc.returncode == 0 else "clean error"
    print(f"chaos download seed {seed}: {outcome}, faults {fired}")


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    yield path / "bin" / "python"


@pytest.mark.parametrize("seed", [21])
async def test_install_under_chaos_is_complete_or_untouched(
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
    if proc.returncode == 0:
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split() == [v for _, v, _, _ in WHEELS]
        # pip verified each RECORD; the payloads are also what the index served
        listing = subprocess.run(
            [str(venv), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
        )
        have = {d["name"]: d["version"] for d in json.loads(listing.stdout)}
        assert all(have.get(n) == v for n, v, _, _ in WHEELS), have
    else:
        assert proc.returncode == 1, proc.stderr
        one_line_error(proc)
        for m in modules:  # not one of them: nothing half-installed
            imported = subprocess.run([str(venv), "-c", f"import {m}"], capture_output=True)
            assert imported.returncode != 0, m
    fired = {e["fault"] for e in emu.log} - {None}
    assert fired, "the chaos link fired no fault at all"
    outcome = "installed" if proc.returncode == 0 else "clean error"
    print(f"chaos install seed {seed}: {outcome}, faults {fired}")
