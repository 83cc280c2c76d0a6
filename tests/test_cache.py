"""The sha256 cache checks an entry before using it: a damaged one is removed and fetched
again, under the entry's lock; an intact one costs no request."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import trio
from helpers import count_hashes, segfetch
from packaging.version import Version

from segfetch.engine.client import make_client
from segfetch.errors import DiskError
from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.cache import Cache
from segfetch.wheels.files import Planned
from segfetch.wheels.install import Session
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.target import Target

NAME = "sf_beta-1.1-py3-none-any.whl"
TARGET = Target(Version("3.11.7"), ("py3-none-any",), {})


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-beta", "1.1", payload=600_000, seed=1)
    return d


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the cache hashes, in order."""
    return count_hashes(monkeypatch, "segfetch.wheels.cache.sha256_of")


def put(root: Path, data: bytes, damaged: bytes | None = None) -> tuple[Path, str]:
    """An entry for ``data`` (holding ``damaged`` instead, if given)."""
    sha = hashlib.sha256(data).hexdigest()
    path = Cache(root).path(sha, NAME)
    path.parent.mkdir(parents=True)
    path.write_bytes(data if damaged is None else damaged)
    return path, sha


def flip(data: bytes, at: int = 1000) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


async def test_an_entry_is_hashed_once_per_run(tmp_path: Path, hashed: list[Path]) -> None:
    data = os.urandom(50_000)
    path, sha = put(tmp_path, data)
    run = Cache(tmp_path)
    assert await run.get(sha, NAME, size=len(data)) == path
    assert await run.get(sha, NAME) == path
    assert hashed == [path]
    assert await Cache(tmp_path).get(sha, NAME) == path  # the next run checks it again
    assert hashed == [path, path]
    assert await run.get("0" * 64, NAME) is None and len(hashed) == 2  # a miss costs nothing


@pytest.mark.parametrize(
    ("damage", "size_known", "why"),
    [
        ("flip", True, "its sha256 does not match"),
        ("truncate", True, "49999 bytes, not 50000"),
        ("truncate", False, "its sha256 does not match"),
        ("append", True, "50001 bytes, not 50000"),
    ],
)
async def test_a_damaged_entry_is_removed_and_said_once(
    tmp_path: Path, hashed: list[Path], damage: str, size_known: bool, why: str
) -> None:
    data = os.urandom(50_000)
    bad = {"flip": flip(data), "truncate": data[:-1], "append": data + b"\0"}[damage]
    path, sha = put(tmp_path, data, bad)
    told: list[str] = []
    size = len(data) if size_known else None
    assert await Cache(tmp_path).get(sha, NAME, size=size, damaged=told.append) is None
    assert not path.exists()
    assert told == [why]
    assert len(hashed) == (0 if "bytes" in why else 1)  # a wrong size needs no hashing


async def test_a_change_after_the_check_is_noticed(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    path, sha = put(tmp_path, data)
    run = Cache(tmp_path)
    assert await run.get(sha, NAME) == path
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(bytes([data[1000] ^ 0x01]))
    os.utime(path, ns=(1, 1))  # the clock's tick may not have moved: make the change plain
    assert await run.get(sha, NAME) is None
    assert not path.exists()


async def test_a_damaged_entry_is_replaced_under_its_lock(
    tmp_path: Path, index_dir: Path, hashed: list[Path]
) -> None:
    good = (index_dir / NAME).read_bytes()
    reqs = RequirementSet()
    reqs.add_string("sf-beta==1.1")
    async with Emulator(index=index_dir, link=Link()) as emu, make_client(4, 30) as client:
        cache = Cache(tmp_path / "cache")
        told: list[str] = []
        session = Session(client, cache, [emu.index_url], budget=4, notice=told.append)
        [p] = await session.plan_pinned(reqs, TARGET)
        assert p.sha256 is not None
        path, _ = put(cache.root, good, flip(good))
        got: list[Path] = []

        async def fetch(p: Planned) -> None:
            got.append((await session.fetch(p)).path)

        # Another process holds the entry: nothing is checked, removed or fetched meanwhile.
        fd = os.open(path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch, p)
            await trio.sleep(0.5)
            assert path.read_bytes() == flip(good)
            assert not told and not hashed and not _requests(emu.log)
            os.close(fd)
        assert got == [path] and path.read_bytes() == good
        assert told == [f"{NAME}: the cached copy is damaged (its sha256 does not match); "
                        "fetching it again"]  # fmt: skip
        assert len(_requests(emu.log)) >= 1
        # Fetched and verified by the engine in this run: used again with no hash, no request.
        seen, checked = len(emu.log), len(hashed)
        await fetch(p)
        assert got == [path, path] and len(hashed) == checked and not _requests(emu.log[seen:])


def _requests(log: list[dict[str, object]], name: str = NAME) -> list[dict[str, object]]:
    return [e for e in log if str(e["path"]) == f"/files/{name}"]


@pytest.mark.parametrize(
    ("damage", "json_api", "hash_option"),
    [
        ("flip", False, False),  # an HTML page gives no size: the sha256 finds it
        ("truncate", True, False),  # the JSON page's size finds it
        ("flip", True, True),  # the index gives no hash: --hash's finds it
    ],
)
async def test_download_fetches_a_damaged_entry_again(
    tmp_path: Path, index_dir: Path, damage: str, json_api: bool, hash_option: bool
) -> None:
    source = (index_dir / NAME).read_bytes()
    req = tmp_path / "req.txt"
    pin = f"sf-beta==1.1 --hash=sha256:{hashlib.sha256(source).hexdigest()}"
    req.write_text((pin if hash_option else "sf-beta==1.1") + "\n")
    options = IndexOptions(json=json_api, html=not json_api)
    if hash_option:
        options = IndexOptions(hashes_in="none")
    async with Emulator(index=index_dir, link=Link(), index_options=options) as emu:
        args = ["download", "-r", str(req), "--index-url", emu.index_url]
        args += ["--cache-dir", str(tmp_path / "cache")]
        first = await segfetch(*args, "-d", str(tmp_path / "a"))
        assert first.returncode == 0, first.stderr
        [entry] = (tmp_path / "cache" / "sha256").rglob(NAME)

        seen = len(emu.log)  # intact: no request at all, as before
        intact = await segfetch(*args, "-d", str(tmp_path / "b"), "--json")
        assert intact.returncode == 0, intact.stderr
        assert [r["cached"] for r in json.loads(intact.stdout)] == [True]
        assert not _requests(emu.log[seen:])

        if damage == "flip":
            entry.write_bytes(flip(source, len(source) // 2))
        else:
            with entry.open("r+b") as f:
                f.truncate(len(source) - 100)
        seen = len(emu.log)
        again = await segfetch(*args, "-d", str(tmp_path / "c"))
        assert again.returncode == 0, again.stderr
        assert _requests(emu.log[seen:])
    assert again.stdout == b""  # stdout stays for --json
    assert b"1 file verified (0 from the cache" in again.stderr
    assert (tmp_path / "c" / NAME).read_bytes() == source
    assert entry.read_bytes() == source


def test_check_makes_the_folder_and_refuses_one_it_cannot_use(tmp_path: Path) -> None:
    from segfetch.errors import UsageError

    Cache(tmp_path / "new" / "cache").check()
    assert (tmp_path / "new" / "cache").is_dir()
    assert list((tmp_path / "new" / "cache").iterdir()) == []  # its test file removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"cache folder '.*file': a file is there; give"):
        Cache(tmp_path / "file").check()
    with pytest.raises(UsageError, match=r"cache folder .*Not a directory"):
        Cache(tmp_path / "file" / "below").check()


def test_a_folder_that_cannot_take_a_file_keeps_no_half_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download -d onto a full disk: the error names the file in the folder (not the cache's
    copy), and no half-written temporary file is left there to fill it further."""
    from segfetch.wheels import files

    src = tmp_path / "cache" / "p-1.0-py3-none-any.whl"
    src.parent.mkdir()
    src.write_bytes(b"x" * 1000)
    planned = Planned("p", "1.0", src.name, "http://h/p.whl", None)
    out = tmp_path / "out"

    def other_fs(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    def full(src: object, dst: str) -> None:
        Path(dst).write_bytes(b"x" * 10)  # some of it, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", other_fs)  # another file system: a copy
    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(DiskError) as caught:
        files.link_into([files.Fetched(planned, src, "0" * 64, 1000, None)], out)
    assert str(caught.value) == (
        f"cannot write {out / src.name}: No space left on device; "
        "free some space or choose another place"
    )
    assert list(out.iterdir()) == []


def test_two_downloads_into_one_folder_never_rename_a_half_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download -d of one file by two runs at once into a folder on another file system
    (copies): while the first copies, the second starts its own copy and is stopped half
    way. Under one shared temporary name the second removed the first one's copy and the
    first renamed the second's 10 bytes into place, exit 0."""
    from segfetch.wheels import files

    src = tmp_path / "cache" / "p-1.0-py3-none-any.whl"
    src.parent.mkdir()
    src.write_bytes(b"x" * 1000)
    planned = Planned("p", "1.0", src.name, "http://h/p.whl", None)
    fetched = [files.Fetched(planned, src, "0" * 64, 1000, None)]
    out = tmp_path / "out"
    real_copy = shutil.copyfile
    calls: list[str] = []

    def other_fs(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    def copy(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 1:  # the first run, meanwhile the second one starts
            real_copy(src, dst)
            with pytest.raises(KeyboardInterrupt):
                files.link_into(fetched, out)
        else:  # the second run, stopped half way
            Path(dst).write_bytes(b"x" * 10)
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", other_fs)
    monkeypatch.setattr(shutil, "copyfile", copy)
    files.link_into(fetched, out)
    assert len(calls) == 2
    assert (out / src.name).read_bytes() == b"x" * 1000
    assert [p.name for p in out.iterdir()] == [src.name]  # no copy of either left


async def test_a_file_listed_without_a_sha256_crosses_once(tmp_path: Path) -> None:
    """download, then again: a file its page gives no sha256 for (find-links pages, plain
    listings) comes from the cache once one byte shows the server still has it (it was
    fetched whole every run); replaced on the server, it is fetched anew."""
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, "sf-beta", "1.1", payload=600_000, seed=1)
    # no .metadata either (a plain listing): pip's resolver reads the wheel itself
    options = IndexOptions(hashes_in="none", metadata=False, html=True, json=False)
    async with Emulator(index=index, link=Link(), index_options=options) as emu:
        args = ["download", "sf-beta==1.1", "--index-url", emu.index_url, "--json"]
        args += ["--cache-dir", str(tmp_path / "cache")]
        first = await segfetch(*args, "-d", str(tmp_path / "a"))
        assert first.returncode == 0, first.stderr
        assert [r["cached"] for r in json.loads(first.stdout)] == [False]
        # once in the run, though pip's resolver and the download both ask for the file
        # (it crossed whole 4 times in a run against nginx before)
        sent = sum(int(str(e["sent"])) for e in _requests(emu.log))
        assert sent <= 1.02 * (index / NAME).stat().st_size

        seen = len(emu.log)
        again = await segfetch(*args, "-d", str(tmp_path / "b"))
        assert again.returncode == 0, again.stderr
        assert [r["cached"] for r in json.loads(again.stdout)] == [True]
        [check] = _requests(emu.log[seen:])  # one check a run
        assert int(str(check["sent"])) <= 1
        assert (tmp_path / "b" / NAME).read_bytes() == (index / NAME).read_bytes()

        make_wheel(index, "sf-beta", "1.1", payload=600_000, seed=2)  # replaced, same name
        os.utime(index / NAME, (1e9, 1e9))  # (another Last-Modified, however fast the test)
        seen = len(emu.log)
        new = await segfetch(*args, "-d", str(tmp_path / "c"))
        assert new.returncode == 0, new.stderr
        assert [r["cached"] for r in json.loads(new.stdout)] == [False]
        assert (tmp_path / "c" / NAME).read_bytes() == (index / NAME).read_bytes()
        assert (tmp_path / "c" / NAME).read_bytes() != (tmp_path / "b" / NAME).read_bytes()
