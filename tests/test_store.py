"""The store's promise, each part checked where a deliberate bug would break it.

- The control file never claims a byte that is not durably in the .part: every save claims
  only bytes whose last write finished before an fdatasync of that .part began, a sync that
  returned before the save. ``Ledger`` records every write, fdatasync, truncation and save
  of a real download over loopback and checks this at each save: an exact check of the order
  of calls, not of timing.
- A rerun resumes only from a state that fits its .part.
- A file that keeps changing ends after MAX_RESTARTS restarts with one clear error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from segfetch.engine import transfer
from segfetch.engine.client import make_client
from segfetch.engine.download import MAX_RESTARTS, Result, download
from segfetch.engine.options import Options
from segfetch.engine.ranges import RangeSet
from segfetch.engine.retry import RetryPolicy
from segfetch.engine.store import HASH_CHUNK, PartFile, PrefixHasher, State
from segfetch.errors import DiskError, RetriesExhausted, ServerError, redact_url
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile

PATH = "/f.bin"
SIZE = 1_000_000
FAST = RetryPolicy(max_tries=6, base=0.01, cap=0.05)
ONE_TRY = RetryPolicy(max_tries=1)  # the first failure ends the run: an interrupted run
EVERYTHING = 1 << 62  # "to the end of the file", for truncations

Inode = tuple[int, int]


def minus(a: RangeSet, b: RangeSet) -> RangeSet:
    out = RangeSet(a)
    for start, end in b:
        out.remove(start, end)
    return out


class Track:
    """What one .part holds, as far as the test can tell."""

    def __init__(self) -> None:
        self.durable = RangeSet()  # last written before a completed fdatasync began
        self.dirty = RangeSet()  # written, not yet covered by such a sync
        self.syncing: list[RangeSet] = []  # per sync running now: bytes written since it began


class Ledger:
    """Writes, fdatasyncs, truncations and saves of every .part, in the order they happen
    (syncs run in worker threads: one lock orders them with the rest)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Inode, Track] = {}
        self.claims: list[RangeSet] = []  # what each save claimed, in order
        self.unsynced: list[str] = []  # saves that claimed bytes not durable yet

    def _track(self, fd: int, *, new: bool = False) -> Track | None:
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        if new and key not in self._files:
            self._files[key] = Track()
        return self._files.get(key)

    def wrote(self, fd: int, start: int, end: int) -> None:
        with self._lock:
            track = self._track(fd, new=True)
            assert track is not None
            track.durable.remove(start, end)  # the new bytes are not durable yet
            track.dirty.add(start, end)
            for since in track.syncing:
                since.add(start, end)

    def synced(self, real: Callable[[int], None], fd: int) -> None:
        with self._lock:
            track = self._track(fd)
            if track is not None:
                before, since = RangeSet(track.dirty), RangeSet()
                track.syncing.append(since)
        synced = False
        try:
            real(fd)
            synced = True
        finally:
            if track is not None:
                with self._lock:
                    track.syncing = [s for s in track.syncing if s is not since]
                    # What was written before the sync began and not since is on disk now.
                    for start, end in minus(before, since) if synced else ():
                        track.durable.add(start, end)
                        track.dirty.remove(start, end)

    def truncated(self, fd: int, length: int) -> None:
        with self._lock:
            track = self._track(fd)
            if track is not None:
                track.durable.remove(length, EVERYTHING)
                track.dirty.remove(length, EVERYTHING)
                for since in track.syncing:
                    since.add(length, EVERYTHING)

    def saving(self, part: Path, state: State) -> None:
        claim = RangeSet(state.done)
        with self._lock:
            self.claims.append(claim)
            try:
                st = os.stat(part)
                track = self._files.get((st.st_dev, st.st_ino))
            except FileNotFoundError:
                track = None
            durable = track.durable if track is not None else RangeSet()
            if missing := minus(claim, durable):
                self.unsynced.append(
                    f"save #{len(self.claims)} claims {missing} not yet synced (durable: {durable})"
                )


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    led = Ledger()
    write, save = PartFile.write, PartFile.save
    fdatasync, ftruncate = os.fdatasync, os.ftruncate

    def traced_write(self: PartFile, offset: int, data: bytes | memoryview) -> None:
        write(self, offset, data)
        assert self.fd is not None
        led.wrote(self.fd, offset, offset + len(data))

    def traced_save(self: PartFile, state: State) -> None:
        led.saving(self.part, state)
        save(self, state)

    def traced_fdatasync(fd: int) -> None:
        led.synced(fdatasync, fd)

    def traced_ftruncate(fd: int, length: int) -> None:
        ftruncate(fd, length)
        led.truncated(fd, length)

    monkeypatch.setattr(PartFile, "write", traced_write)
    monkeypatch.setattr(PartFile, "save", traced_save)
    monkeypatch.setattr(os, "fdatasync", traced_fdatasync)
    monkeypatch.setattr(os, "ftruncate", traced_ftruncate)
    yield led


def options(connections: int = 4, policy: RetryPolicy = FAST) -> Options:
    return Options(connections=connections, min_segment=64 * 1024, timeout=5.0, policy=policy)


def file_gets(emu: Emulator) -> list[dict[str, Any]]:
    """Requests for the file in the order they arrived."""
    rows = (e for e in emu.log if e["path"] == PATH and e["method"] == "GET")
    return sorted(rows, key=lambda e: e["t"])


async def interrupted_run(emu: Emulator, dest: Path) -> RangeSet:
    """A run that fails at its first cut connection; the ranges its control file claims."""
    emu.link = Link(faults=(Fault("close", every=200_000),))
    with pytest.raises(RetriesExhausted):
        await download(emu.url(PATH), dest, options(2, ONE_TRY), sha256=emu.sha256(PATH))
    part, control = dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")
    assert part.is_file() and control.is_file() and not dest.exists()
    state = PartFile(dest).load(emu.url(PATH), emu.sha256(PATH))
    assert state is not None and 0 < state.done.total() < SIZE, state
    emu.link = Link()
    return state.done


async def test_a_failure_before_any_byte_leaves_nothing(tmp_path: Path) -> None:
    """Reset right after the head: no empty .part, no control file claiming nothing."""
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        emu.link = Link(faults=(Fault("reset"),))
        with pytest.raises(RetriesExhausted):
            await download(emu.url(PATH), tmp_path / "out.bin", options(2, ONE_TRY))
    assert list(tmp_path.iterdir()) == []


async def test_a_part_no_control_file_describes_is_not_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: the control file cannot be written, so the .part could never be
    resumed; left, it would keep the disk full."""

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("segfetch.engine.store._write_new", full)
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        emu.link = Link(faults=(Fault("close", every=200_000),))
        with pytest.raises(DiskError, match="No space left"):
            await download(emu.url(PATH), tmp_path / "out.bin", options(2, ONE_TRY))
    assert list(tmp_path.iterdir()) == []


# -- the control file claims only synced bytes -----------------------------------------------


async def test_periodic_saves_claim_only_bytes_synced_before(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saves every 5 ms of a transfer that takes about half a second: workers write while
    the saver syncs, so a save that claims bytes without (or before) its own sync fails."""
    monkeypatch.setattr(transfer, "SAVE_EVERY", 0.005)
    link = Link(rate=512 << 10)  # per connection: 1 MB over 4 of them, about 0.5 s
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=link) as emu:
        dest = tmp_path / "out.bin"
        result = await download(emu.url(PATH), dest, options(), sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH) and result.size == SIZE
    assert ledger.unsynced == []
    # The saver ran while bytes came in (else this test proves nothing), and the last save
    # (save_now, on the way out) claims the whole file.
    partial = [c for c in ledger.claims if 0 < c.total() < SIZE]
    assert len(partial) >= 2, ledger.claims
    assert ledger.claims[-1] == RangeSet([(0, SIZE)])


async def test_a_fast_transfer_is_synced_and_saved_as_it_goes_not_all_at_the_end(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SAVE_BYTES, however soon: the disk writes them while the rest arrives (a
    500 MB file's one fdatasync at the end took 0.85 s), and a crash loses less."""
    monkeypatch.setattr(transfer, "SAVE_EVERY", 3600.0)  # never by the clock here
    monkeypatch.setattr(transfer, "SAVE_BYTES", SIZE // 8)
    monkeypatch.setattr(transfer, "SAVE_POLL", 0.005)
    link = Link(rate=512 << 10)  # about half a second
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=link) as emu:
        dest = tmp_path / "out.bin"
        await download(emu.url(PATH), dest, options(), sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
    partial = [c for c in ledger.claims if 0 < c.total() < SIZE]
    assert len(partial) >= 3, ledger.claims
    assert ledger.unsynced == []


async def test_save_on_the_way_out_claims_only_synced_bytes(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No periodic save at all: the save made when a run fails, and the one made when the
    rerun ends, are the only ones, and each needs its own sync first."""
    monkeypatch.setattr(transfer, "SAVE_EVERY", 3600.0)
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        dest = tmp_path / "out.bin"
        done = await interrupted_run(emu, dest)
        assert ledger.claims == [done]
        assert ledger.unsynced == []
        result = await download(emu.url(PATH), dest, options(), sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
    assert result.resumed == done.total()
    assert ledger.claims == [done, RangeSet([(0, SIZE)])]
    assert ledger.unsynced == []


# -- a rerun resumes only from a state that fits its .part -----------------------------------


def test_load_refuses_a_part_shorter_than_its_claims(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    store = PartFile(dest)
    store.open(State("http://h/f", 0))
    try:
        store.write(0, b"x" * 1000)
        store.save(State("http://h/f", 5000, etag='"e"', done=RangeSet([(0, 400), (600, 1000)])))
        assert store.load("http://h/f", None) is not None
        assert store.fd is not None
        os.ftruncate(store.fd, 999)  # the end of the last claimed range is gone
        assert store.load("http://h/f", None) is None
        os.ftruncate(store.fd, 0)
        assert store.load("http://h/f", None) is None
        store.write(0, b"x" * 5000)
        assert store.load("http://h/f", None) is not None
        # A claim past the file's size fits no .part.
        store.save(State("http://h/f", 800, etag='"e"', done=RangeSet([(0, 1000)])))
        assert store.load("http://h/f", None) is None
    finally:
        store.close()


def test_the_control_file_keeps_no_password_and_is_the_owners(tmp_path: Path) -> None:
    """No password and no query (a signed URL's token) on disk; yet another query or user
    is another file (?id=1 and ?id=2 of one path, or two users' homes, may have the same
    size and validators: nginx's ETag is the mtime and size), so it resumes nothing."""
    url = "http://user:secret@h/f?X-Amz-Signature=tok1#frag"
    store = PartFile(tmp_path / "f")
    store.open(State("http://h/f", 0))
    try:
        store.write(0, b"x" * 10)
        store.save(State(url, 10, etag='"e"', done=RangeSet([(0, 10)])))
        text = store.control.read_text()
        assert "secret" not in text and "tok1" not in text and "frag" not in text
        assert store.control.stat().st_mode & 0o777 == 0o600
        assert store.load(url, None) is not None  # the same URL resumes
        assert store.load("http://other:pw@h/f?X-Amz-Signature=tok1", None) is None  # a user
        assert store.load("http://user:secret@h/f?X-Amz-Signature=tok2", None) is None
        assert store.load("http://user:secret@h/f", None) is None
        assert store.load("http://user:secret@h/g", None) is None
        # A control file from before (its url whole, no url_id) still resumes its own URL.
        old = {"url": "http://h/f?a=1", "size": 10, "etag": '"e"', "done": [[0, 10]]}
        store.control.write_text(json.dumps(old))
        assert store.load("http://h/f?a=1", None) is not None
        assert store.load("http://h/f?a=2", None) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h/f?q=1", "http://***@h/f?q=1"),
        ("http://h?id=1@x", "http://h?id=1@x"),  # an @ in a query is no user's
        ("http://u:p@h?q=a@b", "http://***@h?q=a@b"),
        ("https://h#a@b", "https://h#a@b"),
    ],
)
def test_only_the_user_part_of_a_url_is_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


GOOD = {"url": "http://h/f", "size": 5000, "last_modified": "x", "done": [[0, 1000]]}


@pytest.mark.parametrize(
    "change",
    [
        {"size": 0},
        {"size": -5},
        {"size": 1e400},
        {"size": 5000.0},
        {"size": True},
        {"size": "5000"},
        {"size": 1 << 80},
        {"url": 7},
        {"last_modified": [1]},
        {"etag": {}},
        {"sha256": 5},
        {"done": [[0, 1000, 5]]},
        {"done": [[5, 5]]},
        {"done": [[-1, 10]]},
        {"done": [[0, 6000]]},
        {"done": [[0, "9"]]},
        {"done": [[False, 9]]},
        {"done": [0, 1000]},
        {"done": {"0": 1000}},
        {"done": None},
    ],
)
def test_a_control_file_that_does_not_validate_is_not_resumed(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    store = PartFile(tmp_path / "f")
    store.open(State("http://h/f", 0))
    try:
        store.write(0, b"x" * 5000)
        store.control.write_text(json.dumps({**GOOD, **change}))
        assert store.load("http://h/f", None) is None
        store.control.write_text(json.dumps(GOOD))
        assert store.load("http://h/f", None) is not None
    finally:
        store.close()


async def test_a_control_file_of_size_zero_is_started_over(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        url = emu.url(PATH)
        (tmp_path / "f.bin.part").write_bytes(emu.content(PATH)[:1000])
        state = {"url": url, "size": 0, "last_modified": "x", "done": []}
        (tmp_path / "f.bin.part.json").write_text(json.dumps(state))
        result = await download(url, dest, Options(connections=4))
    assert result.resumed == 0 and dest.read_bytes() == emu.content(PATH)


async def test_read_back_hashes_the_part_and_refuses_a_short_one(tmp_path: Path) -> None:
    """The prefix hash reads back what arrived out of order, through one reused buffer,
    across reads of several sizes; a .part shorter than the bytes to hash is an error."""
    data = os.urandom(2 * HASH_CHUNK + 12345)
    store = PartFile(tmp_path / "out.bin")
    store.open(State("http://h/f", 0))
    try:
        store.write(0, data)
        hasher = PrefixHasher(store)
        hasher.feed(0, data[:100])  # in order: hashed from memory
        hasher.feed(500, data[500:600])  # past the prefix: left for the read-back
        await hasher.advance(HASH_CHUNK + 7)
        await hasher.advance(len(data))
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
        short = PrefixHasher(store)
        with pytest.raises(OSError, match="shorter than the bytes recorded"):
            await short.advance(len(data) + 1)
    finally:
        store.close()


async def test_rerun_does_not_resume_from_a_truncated_part(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        dest = tmp_path / "out.bin"
        done = await interrupted_run(emu, dest)
        last_end = list(done)[-1].end
        part = dest.with_name(dest.name + ".part")
        os.truncate(part, last_end - 1)  # one byte the control file claims is gone
        assert PartFile(dest).load(emu.url(PATH), emu.sha256(PATH)) is None
        first_run = len(file_gets(emu))
        result = await download(emu.url(PATH), dest, options(), sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]
        rerun = file_gets(emu)[first_run:]
    assert result.resumed == 0 and result.restarts == 0, result
    # The rerun started from byte 0, as a fresh download: no If-Range, nothing kept.
    assert rerun[0]["range"].startswith("bytes=0-") and rerun[0]["if_range"] is None, rerun[0]


# -- a file that keeps changing: MAX_RESTARTS restarts, then one clear error ------------------


class ChangingFile:
    """A file on disk served by the emulator that becomes a new version (new ETag and
    Last-Modified: its mtime moves a day on; with ``grow``, 1000 bytes longer too) just
    before each of the first ``changes`` requests for it leaves the client. Counting on the
    client side makes it exact whatever the server's timing: every request sent after an
    answer sees a newer version than that answer. More than ``limit`` requests raise: an
    engine that never stops restarting fails at once instead of hanging."""

    def __init__(self, path: Path, changes: int, limit: int, grow: bool = True) -> None:
        self.path, self.changes, self.limit, self.grow = path, changes, limit, grow
        path.write_bytes(os.urandom(200_000))
        self.mtime = path.stat().st_mtime_ns
        self.requests: list[httpx.Request] = []

    async def on_request(self, request: httpx.Request) -> None:
        if request.url.path != PATH:
            return
        self.requests.append(request)
        if len(self.requests) > self.limit:
            raise RuntimeError(f"{len(self.requests)} requests: the restart limit is gone")
        if len(self.requests) <= self.changes:
            if self.grow:
                with self.path.open("ab") as f:
                    f.write(os.urandom(1000))
            self.mtime += 86_400 * 10**9
            os.utime(self.path, ns=(self.mtime, self.mtime))


async def fetch_changing(tmp_path: Path, changing: ChangingFile) -> tuple[Result | None, str]:
    """Two connections, two 100 kB pieces, none worth stealing from: each pass is exactly
    one probe and one request with If-Range. The result, or the error's message."""
    dest = tmp_path / "out" / "f.bin"
    dest.parent.mkdir()
    opts = Options(connections=2, min_segment=100_000, timeout=5.0, policy=FAST)
    async with Emulator({PATH: changing.path}) as emu, make_client(2, 5.0) as client:
        client.event_hooks = {"request": [changing.on_request], "response": []}
        with trio.fail_after(30):
            try:
                result = await download(emu.url(PATH), dest, opts, client=client)
            except ServerError as exc:
                assert list(dest.parent.iterdir()) == []  # nothing kept of a file in flux
                return None, str(exc)
        assert dest.read_bytes() == changing.path.read_bytes()
        return result, ""


async def test_a_file_changing_at_every_request_ends_after_max_restarts(tmp_path: Path) -> None:
    passes = MAX_RESTARTS + 1
    changing = ChangingFile(tmp_path / "src.bin", changes=10**9, limit=4 * passes)
    result, error = await fetch_changing(tmp_path, changing)
    assert result is None
    assert f"changed {passes} times" in error and "\n" not in error, error
    # Exactly MAX_RESTARTS + 1 passes, each a probe from byte 0 (no saved state: no
    # If-Range) and one request that found the file changed.
    probes = [r for r in changing.requests if "if-range" not in r.headers]
    assert len(probes) == passes and len(changing.requests) == 2 * passes
    assert all(r.headers["range"].startswith("bytes=0-") for r in probes)
    assert [("if-range" in r.headers) for r in changing.requests] == [False, True] * passes


async def test_a_change_of_the_same_size_starts_over_on_one_connection(tmp_path: Path) -> None:
    """Other validators for the same size mid-run (a new version, or another node's names
    for the same bytes): once more on one connection, whose one request gets one version
    whole, however often the file changes."""
    changing = ChangingFile(tmp_path / "src.bin", changes=10**9, limit=10, grow=False)
    result, error = await fetch_changing(tmp_path, changing)
    assert result is not None, error
    assert result.restarts == 1 and result.connections == 1
    assert [("if-range" in r.headers) for r in changing.requests] == [False, True, False]
    assert changing.requests[-1].headers["range"] == "bytes=0-"


async def test_a_file_that_changes_max_restarts_times_is_fetched(tmp_path: Path) -> None:
    """The limit is on restarts, not on passes: MAX_RESTARTS changes still end verified."""
    changes = 2 * MAX_RESTARTS  # each of the first MAX_RESTARTS passes sees a change
    changing = ChangingFile(tmp_path / "src.bin", changes=changes, limit=changes + 2)
    result, error = await fetch_changing(tmp_path, changing)
    assert result is not None, error
    assert result.restarts == MAX_RESTARTS and result.resumed == 0
    assert len(changing.requests) == 2 * (MAX_RESTARTS + 1)


@pytest.mark.parametrize("step", ["save_synced", "commit"])
async def test_a_slow_disk_sync_of_one_file_stalls_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The last save and the commit of a file (fdatasync, fsync: tens of milliseconds on an
    SD card) run off the event loop: here the slow file's sync waits until another file has
    downloaded whole, which could never happen if the sync held the loop."""
    other_done = threading.Event()
    waited: list[bool] = []
    slow_step = getattr(PartFile, step)

    def slow(self: PartFile, *args: Any) -> None:
        if self.dest.name == "slow.whl" and not waited:
            waited.append(other_done.wait(timeout=10))
        slow_step(self, *args)

    monkeypatch.setattr(PartFile, step, slow)
    files = {"/slow.whl": SyntheticFile(50_000), "/other.whl": SyntheticFile(3_000_000)}
    async with Emulator(files, link=Link(rate=1_000_000)) as emu, make_client() as client:

        async def other() -> None:
            await download(emu.url("/other.whl"), tmp_path / "other.whl", client=client)
            other_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(download, emu.url("/slow.whl"), tmp_path / "slow.whl")
            nursery.start_soon(other)
    assert waited == [True]
    assert (tmp_path / "slow.whl").read_bytes() == emu.content("/slow.whl")
    assert (tmp_path / "other.whl").read_bytes() == emu.content("/other.whl")


def test_a_second_ctrl_c_during_the_save_on_the_way_out_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a first Ctrl-C, a second is trio's again (a way out of a hang): it came in the
    middle of the save on the way out (a double press, 2-4 ms apart), before the control
    file was written, and then the .part went too: tens of MB lost, "nothing was kept".
    The save and the release after it finish first; the Ctrl-C is raised after them."""
    import signal

    part = PartFile(tmp_path / "f.bin")
    state = State("http://127.0.0.1/f.bin", 10, '"e"', None, None, RangeSet([(0, 4)]))
    synced = os.fdatasync

    def fdatasync(fd: int) -> None:
        signal.raise_signal(signal.SIGINT)  # (Python runs trio's handler right after this)
        synced(fd)

    async def main() -> None:
        part.acquire()
        part.open(state)
        assert part.fd is not None
        os.pwrite(part.fd, b"abcd", 0)
        monkeypatch.setattr("segfetch.engine.store.os.fdatasync", fdatasync)
        try:
            part.save_synced(state)
        finally:
            part.release()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    saved = part.load(state.url, None)
    assert saved is not None and saved.done == state.done and part.part.read_bytes()[:4] == b"abcd"
