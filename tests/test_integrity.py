"""Never a wrong file, never lost progress: one writer per destination, destinations that are
not files, long names, signals, reruns that change --sha256, a full disk."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.engine import store
from segfetch.engine.download import download
from segfetch.engine.names import check_destination, side_names
from segfetch.engine.options import Options
from segfetch.engine.ranges import RangeSet
from segfetch.engine.store import PartFile, State
from segfetch.errors import Busy, DiskError, UsageError
from segfetch.testing.emulator import Emulator, Link, SyntheticFile

PATH = "/pkg.whl"
SLOW = Link(rate=256 * 1024)


async def _wait_for(path: Path, seconds: float = 30) -> None:
    with trio.fail_after(seconds):
        while not path.exists():
            await trio.sleep(0.02)


async def _exited(proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    with trio.fail_after(seconds):
        while proc.poll() is None:
            await trio.sleep(0.05)


def _get(url: str, dest: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "segfetch", "get", url, "-o", str(dest), "-n", "4", *extra]


async def test_two_runs_on_one_destination(tmp_path: Path) -> None:
    """The second run stops at once, naming the first; the first ends verified."""
    dest = tmp_path / "pkg.whl"
    # Slow enough that the first is still running when the second has started, however
    # loaded the machine (the suite runs in parallel).
    slower = Link(rate=96 * 1024)
    async with Emulator({PATH: SyntheticFile(2_000_000)}, link=slower) as emu:
        first = subprocess.Popen(_get(emu.url(PATH), dest, "--sha256", emu.sha256(PATH), "-q"))
        try:
            await _wait_for(tmp_path / "pkg.whl.part.json")
            second = await segfetch("get", emu.url(PATH), "-o", str(dest), "-q")
            assert second.returncode == 1
            line = one_line_error(second)
            assert f"another segfetch (pid {first.pid})" in line
            await _exited(first)
        finally:
            first.kill()
            first.wait()
        assert first.returncode == 0
        assert dest.read_bytes() == emu.content(PATH)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.whl"]


def _verified(dest: Path) -> PartFile:
    """A run about to commit ``dest``: its whole .part written and claimed."""
    part = PartFile(dest)
    part.open(State("http://h/f", 0))
    part.write(0, b"verified")
    part.save(State("http://h/f", 8, done=RangeSet([(0, 8)])))
    return part


def test_a_part_committed_between_open_and_lock_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run opens the .part, the first renames it onto the destination, then the
    second locks what it opened: it must take a new .part, never the committed file."""
    dest = tmp_path / "f"
    first, second = _verified(dest), PartFile(dest)
    flock = fcntl.flock

    def first_commits_now(fd: int, op: int) -> None:
        if first.fd is not None:
            first.commit(8)
        flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", first_commits_now)
    second.acquire()
    assert second.load("http://h/f", None) is None
    second.open(State("http://h/f", 0))
    second.write(0, b"other")
    assert dest.read_bytes() == b"verified"
    second.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_the_lock_is_held_until_the_part_is_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run during the first one's commit finds it busy; it cannot resume the
    verified .part and commit it under the first (which then failed: 'folder went away')."""
    dest = tmp_path / "f"
    first = _verified(dest)
    replace = os.replace

    def second_run_meanwhile(src: Path, dst: Path) -> None:
        with pytest.raises(Busy, match="another segfetch"):
            PartFile(dest).acquire()
        replace(src, dst)

    monkeypatch.setattr(os, "replace", second_run_meanwhile)
    first.commit(8)
    assert dest.read_bytes() == b"verified"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize("name", ["c.part", "c.part.json"])
async def test_a_symlink_beside_the_destination_is_never_followed(
    tmp_path: Path, name: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / name).symlink_to(victim)
    if name != "c.part":
        (tmp_path / "c.part").write_bytes(b"x")
    dest = tmp_path / "c"
    got = await segfetch("get", "http://127.0.0.1:9/c", "-o", str(dest), "-q")
    assert got.returncode == 1
    assert one_line_error(got).endswith(
        f"{tmp_path / name} is a symbolic link; segfetch never "
        "writes through one: remove it, or choose another destination"
    )
    assert victim.read_bytes() == b"keep me"
    assert (tmp_path / name).is_symlink() and not dest.exists()


def test_a_symlink_at_the_control_files_tmp_is_replaced(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / "c.part.json.tmp").symlink_to(victim)
    PartFile(tmp_path / "c").save(State("http://h/c", 10))
    assert victim.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.part.json", "victim"]


async def test_two_downloads_in_one_process_do_not_share_a_part(tmp_path: Path) -> None:
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(1_000_000)}, link=SLOW) as emu:
        errors: list[BaseException] = []

        async def one() -> None:
            try:
                await download(emu.url(PATH), dest, Options(connections=2))
            except Busy as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            await _wait_for(tmp_path / "pkg.whl.part")
            nursery.start_soon(one)
        assert len(errors) == 1
        assert dest.read_bytes() == emu.content(PATH)


async def test_a_fifo_is_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        await download("http://127.0.0.1:9/x.whl", fifo)
    assert fifo.is_fifo() and sorted(tmp_path.iterdir()) == [fifo]


@pytest.mark.parametrize("length", [246, 250, 255])
async def test_names_near_the_file_system_limit(tmp_path: Path, length: int) -> None:
    name = "p" * (length - 4) + ".whl"
    part, control = side_names(name)
    assert all(len(n.encode()) + len(".tmp") <= 255 for n in (part, control))
    async with Emulator({PATH: SyntheticFile(600_000)}) as emu:
        await download(emu.url(PATH), tmp_path / name, Options(connections=3, min_segment=64 << 10))
        assert (tmp_path / name).read_bytes() == emu.content(PATH)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_name_past_the_file_system_limit_is_one_line(tmp_path: Path) -> None:
    """256 bytes: bad input (exit 2), and the line says what to do; nothing is asked."""
    dest = tmp_path / ("p" * 252 + ".whl")
    proc = subprocess.run(_get("http://127.0.0.1:9/pkg.whl", dest), capture_output=True)
    assert proc.returncode == 2, proc.stderr
    assert one_line_error(proc).endswith("choose a shorter name (255 bytes at most)")
    assert list(tmp_path.iterdir()) == []


def test_a_name_from_the_url_past_the_limit_says_to_give_one(tmp_path: Path) -> None:
    """A 10,000-character name taken from the URL: the line said 'choose a shorter name'
    (the user chose none) and held all of it."""
    url = f"http://127.0.0.1:9/{'p' * 10_000}.whl"
    command = [sys.executable, "-m", "segfetch", "get", url]
    proc = subprocess.run(command, capture_output=True)  # (fails before any file is made)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert line.endswith("give a shorter one with -o PATH (255 bytes at most)")
    assert len(line) < 400


def test_side_names_are_beside_the_file_when_they_fit() -> None:
    assert side_names("pkg.whl") == ("pkg.whl.part", "pkg.whl.part.json")
    long = side_names("é" * 125)  # 250 bytes in UTF-8
    assert long[0].startswith(".segfetch-") and long[0] != side_names("è" * 125)[0]
    # A name that is not UTF-8 (legal on Linux; Python holds it with surrogates).
    odd = os.fsdecode(b"bad\xff.bin")
    assert side_names(odd) == (odd + ".part", odd + ".part.json")


async def test_a_destination_named_in_no_encoding_is_written(tmp_path: Path) -> None:
    dest = tmp_path / os.fsdecode(b"bad\xff.bin")
    async with Emulator({PATH: SyntheticFile(300_000)}) as emu:
        await download(emu.url(PATH), dest, Options(connections=2, min_segment=64 << 10))
        assert dest.read_bytes() == emu.content(PATH)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_termination_signals_save_state_like_ctrl_c(tmp_path: Path, sig: int) -> None:
    dest = tmp_path / "pkg.whl"
    control = tmp_path / "pkg.whl.part.json"
    async with Emulator({PATH: SyntheticFile(3_000_000)}, link=SLOW) as emu:
        proc = subprocess.Popen(_get(emu.url(PATH), dest, "-q"), stderr=subprocess.PIPE)
        try:
            await _wait_for(control)
            await trio.sleep(0.3)  # bytes arrive after the first save
            proc.send_signal(sig)
            await _exited(proc, 10)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 128 + sig
        assert proc.stderr is not None
        err = proc.stderr.read().decode().strip()
        assert err.splitlines() == [
            f"segfetch: stopped by {signal.Signals(sig).name}; run the same command again to resume"
        ]
        claimed = sum(b - a for a, b in json.loads(control.read_text())["done"])
        assert claimed > 0 and not dest.exists()
        # Adding --sha256 on the rerun keeps the progress.
        rerun = await segfetch(
            *_get(emu.url(PATH), dest, "--sha256", emu.sha256(PATH))[3:], "--json"
        )
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["resumed"] >= claimed
        assert dest.read_bytes() == emu.content(PATH)


def _ignore_hangup_and_ctrl_c() -> None:
    """What `nohup cmd &` in a script leaves a child: SIGHUP and SIGINT ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def test_signals_ignored_at_start_stay_ignored(tmp_path: Path) -> None:
    """Under nohup a closed terminal's SIGHUP does not stop the download, nor a script's
    Ctrl-C one it ran in the background; SIGTERM still does."""
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(1_500_000)}, link=SLOW) as emu:
        proc = subprocess.Popen(
            _get(emu.url(PATH), dest, "-q"),
            stderr=subprocess.PIPE,
            preexec_fn=_ignore_hangup_and_ctrl_c,
        )
        try:
            await _wait_for(tmp_path / "pkg.whl.part.json")
            proc.send_signal(signal.SIGHUP)
            proc.send_signal(signal.SIGINT)
            await _exited(proc)
        finally:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        assert proc.returncode == 0, proc.stderr.read()
        assert dest.read_bytes() == emu.content(PATH)


async def test_dropping_sha256_on_a_rerun_keeps_progress(tmp_path: Path) -> None:
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(3_000_000)}, link=SLOW) as emu:
        with trio.move_on_after(1.5):
            await download(emu.url(PATH), dest, Options(connections=2), sha256=emu.sha256(PATH))
        assert (tmp_path / "pkg.whl.part.json").exists()
        result = await download(emu.url(PATH), dest, Options(connections=4))
        assert result.resumed > 0
        assert dest.read_bytes() == emu.content(PATH)


def test_a_failed_control_file_save_leaves_no_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = PartFile(tmp_path / "x.whl")

    def full(path: Path, data: str) -> None:
        path.write_text(data[:10])  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_new", full)
    with pytest.raises(OSError):
        part.save(State("http://h/x.whl", 10))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_then_the_rerun_resumes(tmp_path: Path) -> None:
    """EFBIG (as a full disk) mid-download: one line; the rerun resumes what was synced and
    nothing stray is left."""
    dest = tmp_path / "x.whl"
    script = f"""
import resource, sys, trio
from segfetch.cli.main import main
from segfetch.testing.emulator import Emulator, Link, SyntheticFile
limit, port = int(sys.argv[1]), int(sys.argv[2])
async def run():
    files = {{"/x.whl": SyntheticFile(2_000_000)}}
    async with Emulator(files, link=Link(rate=1 << 20), port=port) as emu:
        if limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        args = ["get", emu.url("/x.whl"), "-o", {str(dest)!r}, "-q", "-n", "2", "--json"]
        code = await trio.to_thread.run_sync(main, args)
        if code == 0:
            assert open({str(dest)!r}, "rb").read() == emu.content("/x.whl")
        return code
sys.exit(trio.run(run))
"""
    with socket.socket() as sock:  # the same URL on both runs: the state's key
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    run = [sys.executable, "-c", script]
    full = subprocess.run([*run, "1500000", port], capture_output=True, text=True)
    assert full.returncode == 1, full.stderr
    assert full.stderr.strip().startswith("segfetch: error: cannot write")
    rerun = subprocess.run([*run, "0", port], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["resumed"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["x.whl"]


def test_a_part_replaced_by_another_program_is_never_committed(tmp_path: Path) -> None:
    """A second download whose destination is our .part's name renames its file there: our
    commit (a rename by name) would make that file the destination, with our exit 0."""
    dest = tmp_path / "f"
    part = _verified(dest)
    other = tmp_path / "other"
    other.write_bytes(b"another file")
    os.replace(other, part.part)
    with pytest.raises(DiskError, match="replaced by another program"):
        part.commit(8)
    assert not dest.exists() and part.part.read_bytes() == b"another file"
    assert not part.control.exists()  # no rerun resumes that file as ours
    part.release()
    assert part.part.read_bytes() == b"another file"


def test_another_downloads_part_is_no_destination(tmp_path: Path) -> None:
    """A destination that is the .part another download holds: refused at the start, and at
    the commit if that download began meanwhile (its file would have become that one's)."""
    first = _verified(tmp_path / "f")
    with pytest.raises(Busy, match="another download"):
        check_destination(first.part)
    # Nor its control file (unlocked itself): the second wrote it, exit 0, and the first
    # wrote over it, then removed it.
    for side in (first.control, first.control.with_name(first.control.name + ".tmp")):
        with pytest.raises(Busy, match=f"{side} is being written .* its control file"):
            check_destination(side)
    first.discard()
    check_destination(first.control)  # (nobody's: a file as any other)
    second = PartFile(tmp_path / "f.part")
    second.open(State("http://h/f", 0))
    second.write(0, b"second")
    first = _verified(tmp_path / "f")  # begun after the second's start
    with pytest.raises(Busy, match="another download"):
        second.commit(6)
    assert first.part.read_bytes() == b"verified"
    first.commit(8)
    assert (tmp_path / "f").read_bytes() == b"verified"


def test_room_is_what_the_file_system_lets_the_user_write() -> None:
    fs = os.statvfs_result((4096, 1024, 1000, 100, 50, 0, 0, 0, 0, 255))  # frsize 1024
    assert store.room(fs, root=False) == 50 * 1024  # (blocks kept for root left out)
    assert store.room(fs, root=True) == 100 * 1024
    unknown = os.statvfs_result((4096, 1024, 0, 0, 0, 0, 0, 0, 0, 255))
    assert store.room(unknown, root=False) is None  # (some network file systems)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system (tmpfs), where the machine lets the tests mount one."""
    where = tmp_path / "small"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)]
    if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_file_larger_than_the_free_space_stops_at_the_start(small_disk: Path) -> None:
    """A 4 MB file for a place with 1 MiB free: one line saying so, before any byte is
    written (the disk is not filled, then left full), and no file."""
    dest = small_disk / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(4_000_000)}, link=SLOW) as emu:
        proc = await segfetch("get", emu.url(PATH), "-o", str(dest))
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "still to come" in line and "free some space or choose another place" in line, line
    assert not dest.exists()
    assert sum(f.stat().st_size for f in small_disk.iterdir()) < 100_000


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    """A private file fetched anew stayed world-readable (the .part's umask mode); curl,
    wget and aria2c, writing in place, keep it. A new file takes the umask's, as any."""
    dest = tmp_path / "secret.key"
    dest.write_bytes(b"old")
    dest.chmod(0o600)
    _verified(dest).commit(8)
    assert dest.read_bytes() == b"verified" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    fresh = tmp_path / "new.key"
    _verified(fresh).commit(8)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
