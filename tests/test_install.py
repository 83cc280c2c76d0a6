"""`segfetch download` / `install` against a local index served by the link emulator."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.errors import HTTPStatusError, RetriesExhausted, SegfetchError
from segfetch.testing.emulator import Emulator, Fault, IndexOptions, Link
from segfetch.testing.wheelmaker import make_sdist, make_wheel
from segfetch.wheels.dists import held_locally
from segfetch.wheels.index import IndexFile
from segfetch.wheels.localindex import LocalIndex

FLAKY = Link(rate=2 << 20, faults=(Fault("reset", every=150_000),))


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-alpha", "1.0", requires=["sf-beta>=1"])
    make_wheel(d, "sf-beta", "1.0", payload=100_000)
    make_wheel(d, "sf-beta", "1.1", payload=600_000, seed=1)
    make_wheel(d, "sf-beta", "1.2", payload=1000, seed=2)  # yanked below
    make_wheel(d, "sf-gamma", "1.0", extras={"fast": ["sf-delta"]})
    make_wheel(d, "sf-delta", "1.0", requires=['sf-beta==1.0; python_version < "3"'])
    make_wheel(d, "sf-old", "1.0", tag="cp27-cp27m-win32")
    return d


YANKED = {"sf_beta-1.2-py3-none-any.whl": "broken"}


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    yield path / "bin" / "python"


def file_requests(emu: Emulator) -> list[dict[str, object]]:
    return [e for e in emu.log if str(e["path"]).startswith("/files/")]


def index(index_dir: Path, link: Link = FLAKY, options: IndexOptions | None = None) -> Emulator:
    opts = replace(options or IndexOptions(), yanked=YANKED)
    return Emulator(index=index_dir, link=link, index_options=opts)


@pytest.mark.parametrize("json_api", [True, False])
async def test_pinned_set_with_hashes_downloads_verified(
    tmp_path: Path, index_dir: Path, json_api: bool
) -> None:
    alpha = index_dir / "sf_alpha-1.0-py3-none-any.whl"
    beta = index_dir / "sf_beta-1.1-py3-none-any.whl"
    req = tmp_path / "req.txt"
    lines = [
        f"sf-alpha==1.0 --hash=sha256:{_sha(alpha)}",
        f"sf-beta==1.1 \\\n  --hash=sha256:{_sha(beta)}",
    ]
    req.write_text("\n".join(lines) + "\n")
    async with index(index_dir, options=IndexOptions(json=json_api)) as emu:
        out = tmp_path / "out"
        proc = await segfetch(
            "download", "-r", str(req), "-d", str(out), "--index-url", emu.index_url,
            "--no-cache", "--json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        got = {p.name: p.read_bytes() for p in out.iterdir()}
        assert got == {alpha.name: alpha.read_bytes(), beta.name: beta.read_bytes()}
        report = json.loads(proc.stdout)
        assert {r["name"] for r in report} == {"sf-alpha", "sf-beta"}
    # Pinned: no resolver, so no metadata requests; the flaky link cost retries only.
    assert not any(str(e["path"]).endswith(".metadata") for e in emu.log)
    assert any(e["fault"] == "reset" for e in emu.log)


async def test_downloaded_files_are_copies_of_their_own(tmp_path: Path, index_dir: Path) -> None:
    """`download -d` linked its files to the cache's: a file edited in one folder changed
    every other folder's (the cache heals its own; a wheelhouse stayed damaged). pip
    download writes files of their own; so does segfetch now, the cache kept."""
    cache = ["--cache-dir", str(tmp_path / "cache")]
    async with index(index_dir) as emu:
        for out in ("one", "two"):
            proc = await segfetch("download", "sf-beta==1.1", "-d", str(tmp_path / out),
                                  "--index-url", emu.index_url, *cache)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
    name = "sf_beta-1.1-py3-none-any.whl"
    one, two = tmp_path / "one" / name, tmp_path / "two" / name
    assert one.stat().st_nlink == two.stat().st_nlink == 1
    with one.open("ab") as f:
        f.write(b"junk")
    assert two.read_bytes() == (index_dir / name).read_bytes()


async def test_unpinned_set_resolves_with_every_byte_through_segfetch(
    tmp_path: Path, index_dir: Path
) -> None:
    async with index(index_dir, options=IndexOptions(advertise_metadata=False)) as emu:
        out = tmp_path / "out"
        proc = await segfetch(
            "download", "sf-alpha", "-d", str(out), "--index-url", emu.index_url, "--no-cache"
        )
        assert proc.returncode == 0, proc.stderr
        # sf-beta 1.2 is yanked: pip took 1.1, as it would from the real index.
        assert sorted(p.name for p in out.iterdir()) == [
            "sf_alpha-1.0-py3-none-any.whl",
            "sf_beta-1.1-py3-none-any.whl",
        ]
    # The resolver read .metadata files, never whole wheels; every wheel request is ours
    # (the engine always sends Range; pip does not).
    assert any(str(e["path"]).endswith(".metadata") for e in emu.log)
    assert all(e["range"] for e in file_requests(emu))


async def test_install_into_fresh_venv_with_extras_and_markers(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "--index-url", emu.index_url,
            "--cache-dir", str(tmp_path / "cache"), "-q", "sf-alpha", "sf-gamma[fast]",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    check = "import sf_alpha, sf_beta, sf_gamma, sf_delta; print(sf_beta.__version__)"
    ran = subprocess.run([str(venv), "-c", check], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "1.1"


async def test_cache_hit_sends_no_file_request(tmp_path: Path, index_dir: Path) -> None:
    args = ["sf-alpha==1.0", "sf-beta==1.1", "--cache-dir", str(tmp_path / "cache")]
    async with index(index_dir) as emu:
        url = emu.index_url
        first = await segfetch("download", *args, "-d", str(tmp_path / "a"), "--index-url", url)
        assert first.returncode == 0, first.stderr
        seen = len(emu.log)
        second = await segfetch(
            "download", *args, "-d", str(tmp_path / "b"), "--index-url", emu.index_url, "--json"
        )
        assert second.returncode == 0, second.stderr
        assert all(r["cached"] for r in json.loads(second.stdout))
        again = await segfetch("download", *args, "-d", str(tmp_path / "a"), "--index-url", url)
        assert again.returncode == 0, again.stderr  # into a folder holding the files already
    assert not [e for e in emu.log[seen:] if str(e["path"]).startswith("/files/")]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        p.name for p in (tmp_path / "a").iterdir()
    )


async def test_two_processes_share_one_cache(tmp_path: Path, index_dir: Path) -> None:
    slow = Link(rate=512 * 1024, faults=(Fault("reset", every=200_000),))
    async with index(index_dir, link=slow) as emu:
        results: list[subprocess.CompletedProcess[bytes]] = []

        async def run(dest: str) -> None:
            args = ["sf-beta==1.1", "sf-gamma==1.0", "-d", str(tmp_path / dest)]
            args += ["--index-url", emu.index_url, "--cache-dir", str(tmp_path / "cache")]
            results.append(await segfetch("download", *args))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a")
            nursery.start_soon(run, "b")
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    for dest in ("a", "b"):
        for f in (tmp_path / dest).iterdir():
            assert f.read_bytes() == (index_dir / f.name).read_bytes()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["sf-nothing==1.0"], "no project 'sf-nothing'"),
        (["sf-beta==9.9"], "no version of sf-beta matches"),
        (["sf-old==1.0"], "fits Python"),
        (["sf-beta==1.1", "--hash-file"], "no such option: --hash-file"),
        (["sf-beta=="], "not a requirement"),
        (["sf-nothing"], "no project 'sf-nothing'"),
    ],
)
async def test_bad_requirements_are_one_line(
    tmp_path: Path, index_dir: Path, args: list[str], words: str
) -> None:
    async with index(index_dir, link=Link()) as emu:
        where = ["-d", str(tmp_path / "out"), "--index-url", emu.index_url, "--no-cache"]
        proc = await segfetch("download", *args, *where)
    assert proc.returncode in (1, 2)
    assert words in one_line_error(proc, only=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["download", "install"])
async def test_an_empty_requirements_file_is_nothing_to_do(tmp_path: Path, command: str) -> None:
    """As pip: a requirements file with only comments (or nothing) installs nothing, says
    nothing, and exits 0; with --json, an empty array."""
    empty = tmp_path / "req.txt"
    empty.write_text("# nothing yet\n\n")
    where = ["-d", str(tmp_path / "out")] if command == "download" else ["--system"]
    for extra in ([], ["--json"]):
        proc = await segfetch(command, "-r", str(empty), *where, *extra)
        assert (proc.returncode, proc.stderr) == (0, b"")
        assert proc.stdout.decode().split() == (["[]"] if extra else [])


async def test_a_requirements_file_at_a_url_is_read_as_pip_reads_it(
    tmp_path: Path, index_dir: Path
) -> None:
    """-r URL and -c URL, as pip takes them; one that cannot be read (itself, or one it
    names beside it) is one line and exit 1, as pip's. A local --find-links folder it names
    is taken from the current folder (pip's), and one that does not exist is warned of."""
    served = {
        "/req.txt": b"sf-alpha==1.0\n",
        "/c.txt": b"sf-beta==1.0\n",
        "/nested.txt": b"-r other.txt\n",
        "/links.txt": b"--find-links links\nsf-local\n",
    }
    async with Emulator(served, index=index_dir, link=Link()) as emu:
        where = ["-d", str(tmp_path / "out"), "--index-url", emu.index_url, "--no-cache"]
        got = await segfetch("download", "-r", emu.url("/req.txt"), "-c", emu.url("/c.txt"), *where)
        assert got.returncode == 0, got.stderr
        names = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert names == ["sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.0-py3-none-any.whl"]
        for url, words in [
            (emu.url("/nothing.txt"), "404"),
            (emu.url("/nested.txt"), f"{emu.url('/other.txt')}: the server answered 404"),
        ]:
            bad = await segfetch("download", "-r", url, *where)
            assert bad.returncode == 1 and words in one_line_error(bad)
        missing = await segfetch("download", "-r", emu.url("/links.txt"), *where, cwd=tmp_path)
        assert missing.returncode == 1
        said = missing.stderr.decode()
        assert "warning: Location 'links' is ignored: it is either a non-existing path" in said
        make_wheel(tmp_path / "links", "sf-local", "1.0")
        got = await segfetch("download", "-r", emu.url("/links.txt"), *where, cwd=tmp_path)
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "out" / "sf_local-1.0-py3-none-any.whl").exists()


def test_projects_held_in_local_find_links_places(tmp_path: Path) -> None:
    """Which projects a local -f place holds (a folder, a file: URL, one archive); None
    for a place that may hold any (a page) or cannot be read."""
    make_wheel(tmp_path / "a", "sf-alpha", "1.0")
    make_sdist(tmp_path / "b", "Sf.Src", "2.0")
    (tmp_path / "a" / "notes.txt").write_text("not a file of a project")
    page = tmp_path / "links.html"
    page.write_text("<a href='x-1.0.tar.gz'>x</a>")
    one = tmp_path / "b" / "sf_src-2.0.tar.gz"
    assert held_locally([str(tmp_path / "a"), (tmp_path / "b").as_uri()]) == {"sf-alpha", "sf-src"}
    assert held_locally([str(one)]) == {"sf-src"}
    assert held_locally([]) == set()
    assert held_locally([str(page)]) is None
    assert held_locally([str(tmp_path / "gone")]) is None


async def test_a_project_only_in_a_find_links_folder_is_not_said_missing(
    tmp_path: Path, index_dir: Path
) -> None:
    """A project no index has, whose -f folder holds only an sdist that --only-binary
    :all: excludes: pip's own words (no matching distribution), not "no project on the
    index" (the folder has it). A project neither has is still named as missing there."""
    make_sdist(tmp_path / "links", "sf-src", "1.0")
    async with Emulator({}, index=index_dir, link=Link()) as emu:
        where = ["-d", str(tmp_path / "out"), "--index-url", emu.index_url, "--no-cache"]
        links = ["-f", str(tmp_path / "links"), "--only-binary", ":all:"]
        got = await segfetch("download", "sf-src", *where, *links)
        assert got.returncode == 1
        said = one_line_error(got, only=False)
        assert "No matching distribution found for sf-src" in said and "no project" not in said
        gone = await segfetch("download", "sf-nowhere", *where, *links)
        assert gone.returncode == 1 and "no project 'sf-nowhere' on" in one_line_error(
            gone, only=False
        )


async def test_a_scheme_in_capitals_is_taken_as_pip_takes_it(
    tmp_path: Path, index_dir: Path
) -> None:
    """Schemes are case-insensitive (RFC 3986): HTTP:// for an index, an extra index, a
    direct URL or a requirements file's URL is fetched here, not refused or handed on."""
    async with Emulator({"/req.txt": b"sf-beta==1.0\n"}, index=index_dir, link=Link()) as emu:
        upper = emu.url("/").replace("http://", "HTTP://")
        direct = f"sf-gamma @ {upper}files/sf_gamma-1.0-py3-none-any.whl"
        got = await segfetch(
            "download", "-d", str(tmp_path / "out"), "--no-cache", "sf-alpha==1.0", direct,
            "--index-url", emu.index_url.replace("http://", "HTTP://"),
            "--extra-index-url", emu.index_url.replace("http://", "Http://"),
            "-r", f"{upper}req.txt",
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"sf_{n}-1.0-py3-none-any.whl" for n in ("alpha", "beta", "gamma")]
    gamma = [e for e in emu.log if e["path"] == "/files/sf_gamma-1.0-py3-none-any.whl"]
    assert gamma and all(e["range"] for e in gamma)  # segfetch's requests, not pip's


async def test_a_requirements_file_at_a_url_names_others_beside_it(
    tmp_path: Path, index_dir: Path
) -> None:
    """As pip: -r/-c in a file read from a URL are read from URLs beside it, and a local
    file's -r URL is read from there (both were refused)."""
    served = {
        "/reqs/top.txt": b"-r more.txt\n-c ../c/cons.txt\nsf-alpha\n",
        "/reqs/more.txt": b"sf-beta\n",
        "/c/cons.txt": b"sf-beta==1.0\n",
    }
    async with Emulator(served, index=index_dir, link=Link()) as emu:
        local = tmp_path / "req.txt"
        local.write_text(f"-r {emu.url('/reqs/top.txt')}\n")
        got = await segfetch(
            "download", "-d", str(tmp_path / "out"), "--no-cache", "-r", str(local),
            "--index-url", emu.index_url,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.0-py3-none-any.whl"]


async def test_wrong_hash_keeps_nothing_and_installs_nothing(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    req = tmp_path / "req.txt"
    req.write_text(f"sf-beta==1.1 --hash=sha256:{'0' * 64}\n")
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "-r", str(req), "--index-url", emu.index_url,
            "--cache-dir", str(tmp_path / "cache"),
        )  # fmt: skip
    assert proc.returncode == 1
    assert "--hash" in one_line_error(proc, only=False)
    ran = subprocess.run([str(venv), "-c", "import sf_beta"], capture_output=True)
    assert ran.returncode != 0


@pytest.mark.parametrize("command", ["install", "download"])
async def test_a_file_failing_its_pages_sha256_crosses_the_link_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """The engine's two tries, and no more: the look-ahead and each of pip's retries of the
    local index asked for it again (16 requests, and pip's pauses between its retries)."""
    from segfetch.testing.emulator import index as emulated

    real = emulated.describe

    def wrong(p: Path, size: int) -> emulated.IndexFile | None:
        f = real(p, size)
        return f and replace(f, sha256="0" * 64)

    monkeypatch.setattr(emulated, "describe", wrong)
    make_wheel(tmp_path / "index", "sf-bad", "1.0", payload=50_000)
    where = ["--target", str(tmp_path / "t")] if command == "install" else ["-d", str(tmp_path)]
    no_metadata = IndexOptions(metadata=False)  # (the look-ahead takes the wheel whole)
    async with Emulator(index=tmp_path / "index", link=Link(), index_options=no_metadata) as emu:
        got = await segfetch(
            command, "sf-bad", *where, "--index-url", emu.index_url,
            "--cache-dir", str(tmp_path / "cache"),
        )  # fmt: skip
    assert got.returncode == 1
    line = one_line_error(got, only=False)
    assert "sha256 mismatch" in line and "sf_bad-1.0-py3-none-any.whl" in line, line
    wheel = [e for e in file_requests(emu) if str(e["path"]).endswith(".whl")]
    tries = [e for e in wheel if str(e["range"]).startswith("bytes=0-")]
    assert len(tries) == 2, tries
    assert not list(tmp_path.glob("*.whl")) and not (tmp_path / "t").exists()


@pytest.mark.parametrize("command", ["install", "download"])
async def test_a_page_the_index_refuses_is_asked_for_once(tmp_path: Path, command: str) -> None:
    """A 404 is the index's answer for the run: the look-ahead and pip (each of its tries)
    had asked for the page up to 4 times. pip alone asks once."""
    make_wheel(tmp_path / "index", "sf-top", "1.0", requires=["sf-gone"])
    where = ["--target", str(tmp_path / "t")] if command == "install" else ["-d", str(tmp_path)]
    async with Emulator(index=tmp_path / "index", link=Link()) as emu:
        for wanted in ("sf-nosuch", "sf-top"):
            got = await segfetch(
                command, wanted, *where, "--index-url", emu.index_url,
                "--cache-dir", str(tmp_path / "cache"),
            )  # fmt: skip
            assert got.returncode == 1
            assert "no project" in one_line_error(got, only=False)
    asked = [str(e["path"]) for e in emu.log if str(e["path"]).startswith("/simple/sf-")]
    assert sorted(asked) == ["/simple/sf-gone/", "/simple/sf-nosuch/", "/simple/sf-top/"]


async def test_pips_warnings_of_the_set_are_shown_once(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    """As pip alone says it: an extra the project lacks. download and a dry run showed
    nothing (the resolver's words were dropped); an install has its installer say it."""
    said = "WARNING: sf-gamma 1.0 does not provide the extra 'nope'"
    async with index(index_dir, link=Link()) as emu:
        url = ["--index-url", emu.index_url, "--cache-dir", str(tmp_path / "c"), "sf-gamma[nope]"]
        pinned = [*url[:-1], "sf-gamma[nope]==1.0"]  # (no resolver: segfetch says it)
        wheel = index_dir / "sf_gamma-1.0-py3-none-any.whl"
        (lock := tmp_path / "lock.txt").write_text(f"{pinned[-1]} --hash=sha256:{_sha(wheel)}\n")
        runs = [
            await segfetch("download", "-d", str(tmp_path / "out"), *url),
            await segfetch("download", "-d", str(tmp_path / "out"), *pinned),
            await segfetch("download", "-d", str(tmp_path / "out"), *url[:-1], "-r", str(lock)),
            await segfetch("install", "--python", str(venv), "--dry-run", *url),
            await segfetch("install", "--python", str(venv), "--installer", "pip", *url),
        ]
    for got in runs:
        assert got.returncode == 0, got.stderr
        assert got.stderr.decode().count(said) == 1, got.stderr.decode()


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.network
def test_real_index_install(tmp_path: Path) -> None:
    """Off by default (-m network): a small real package from the real index."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    py = str(tmp_path / "v" / "bin" / "python")
    proc = subprocess.run(
        [sys.executable, "-m", "segfetch", "install", "--python", py, "--no-cache", "six==1.16.0"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([py, "-c", "import six"]).returncode == 0


async def test_pip_options_pass_through_and_markers_skip_lines(
    tmp_path: Path, index_dir: Path
) -> None:
    target = tmp_path / "target"
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--target", str(target), "--index-url", emu.index_url, "--no-cache",
            "-q", "sf-beta==1.0", 'sf-alpha==1.0; python_version < "3"', "--no-compile",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert (target / "sf_beta" / "__init__.py").exists()
    assert not (target / "sf_alpha").exists()  # its marker is false for this Python
    assert not any(str(e["path"]).startswith("/files/sf_alpha") for e in emu.log)


async def test_a_target_set_in_pip_conf_needs_no_environment(
    tmp_path: Path, index_dir: Path
) -> None:
    """As PIP_TARGET: pip.conf's target (no environment active or found) is where pip,
    run by segfetch's interpreter, installs."""
    target, conf = tmp_path / "target", tmp_path / "pip.conf"
    conf.write_text(f"[install]\ntarget = {target}\n")
    env = {"PIP_CONFIG_FILE": str(conf), "VIRTUAL_ENV": ""}
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--index-url", emu.index_url, "--no-cache", "-q", "sf-beta==1.0",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (target / "sf_beta" / "__init__.py").exists()


async def test_cache_removed_mid_run_is_one_line_or_success(
    tmp_path: Path, index_dir: Path
) -> None:
    import shutil

    cache = tmp_path / "cache"
    slow = Link(rate=256 * 1024)
    async with index(index_dir, link=slow) as emu:
        args = ["download", "sf-beta==1.1", "-d", str(tmp_path / "out"), "--cache-dir", str(cache)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "segfetch", *args, "--index-url", emu.index_url],
            stderr=subprocess.PIPE,
        )
        # The run keeps writing into the cache meanwhile (a control file replaced, a lock
        # taken): entries may vanish under the test's walk, which then looks again.
        with trio.fail_after(30):
            while True:
                with contextlib.suppress(FileNotFoundError):
                    if list(cache.rglob("*.part")):
                        break
                await trio.sleep(0.02)
        for _ in range(20):
            with contextlib.suppress(OSError):
                shutil.rmtree(cache)
                break
        else:
            shutil.rmtree(cache)  # the last try says why it fails
        with trio.fail_after(60):
            while proc.poll() is None:
                await trio.sleep(0.05)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        print(f"cache removed mid-run: exit {proc.returncode}: {err.strip()}")
        assert "Traceback" not in err
        if proc.returncode != 0:
            assert proc.returncode == 1 and err.strip().startswith("segfetch: error: ")
            assert len(err.strip().splitlines()) == 1
            assert not (tmp_path / "out").exists()
        # Either way a second run gives the verified file.
        again = await segfetch(*args, "--index-url", emu.index_url)
        assert again.returncode == 0, again.stderr
    wheel = "sf_beta-1.1-py3-none-any.whl"
    assert (tmp_path / "out" / wheel).read_bytes() == (index_dir / wheel).read_bytes()


async def test_killed_during_pip_the_next_run_completes(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    import psutil

    args = ["install", "--python", str(venv), "-q", "sf-alpha", "sf-gamma[fast]"]
    args += ["--cache-dir", str(tmp_path / "cache")]
    async with index(index_dir, link=Link()) as emu:
        args += ["--index-url", emu.index_url]
        proc = subprocess.Popen([sys.executable, "-m", "segfetch", *args])
        me = psutil.Process(proc.pid)
        killed = False
        with trio.fail_after(120):
            while proc.poll() is None and not killed:
                for child in me.children(recursive=True):
                    try:
                        cmd = child.cmdline()  # the installer is at work: pip, or uv
                        if "--no-index" in cmd or (cmd and Path(cmd[0]).name == "uv"):
                            child.kill()
                            me.kill()
                            killed = True
                    except psutil.Error:
                        pass
                await trio.sleep(0.005)
        proc.wait()
        again = await segfetch(*args)
        assert again.returncode == 0, again.stderr
    print(f"killed during pip: {killed}")
    check = "import sf_alpha, sf_beta, sf_gamma, sf_delta"
    assert subprocess.run([str(venv), "-c", check]).returncode == 0


def test_requirements_of_reads_metadata_for_the_target() -> None:
    from packaging.version import Version

    from segfetch.wheels.dists import requirements_of
    from segfetch.wheels.target import Target

    target = Target(Version("3.11.7"), ("py3-none-any",), {"python_version": "3.11"})
    metadata = (
        b"Metadata-Version: 2.1\nName: a\nVersion: 1\n"
        b"Requires-Dist: b>=1\nRequires-Dist: c; python_version < '3'\n"
        b"Requires-Dist: d; extra == 'fast'\nRequires-Dist: not a requirement!\n\nbody"
    )
    assert requirements_of(metadata, target) == ["b"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (HTTPStatusError("https://i.example/simple/a/ answered 404", 404), 404),
        (HTTPStatusError("https://i.example/simple/a/ answered 410 Gone", 410), 404),
        (HTTPStatusError("https://i.example/simple/a/ answered 403", 403), 502),
        (HTTPStatusError("https://i.example/simple/a/ answered 401", 401), 502),
        (RetriesExhausted("giving up after 5 tries with no progress"), 502),
    ],
)
async def test_local_index_tells_pip_the_upstream_failure(
    error: SegfetchError, status: int
) -> None:
    """Not there upstream: a 404, as pip expects of an index, kept to report instead of
    pip's only where pip's message names that project (with --find-links or --no-index, pip
    finds it elsewhere). Anything else: a 502 with our one-line reason, kept to report."""

    async def project(name: str, revalidate: bool) -> list[IndexFile]:
        raise error

    async def never(f: IndexFile) -> Path:
        raise AssertionError(f"asked for {f}")

    async def no_metadata(f: IndexFile) -> bytes | None:
        raise AssertionError(f"asked for {f}")

    local = LocalIndex(project, never, no_metadata)
    async with trio.open_nursery() as nursery:
        await nursery.start(local.serve)
        async with httpx.AsyncClient(trust_env=False) as client:
            r = await client.get(local.url + "a/")
        nursery.cancel_scope.cancel()
    assert (r.status_code, r.text) == (status, str(error))
    assert local.explain("No matching distribution found for A==1.0") is error
    if status == 404:
        assert local.explain("No matching distribution found for idna==3.4") is None
        # pip's version check asks for its own page; a build's failure names pip itself
        async with trio.open_nursery() as nursery:
            await nursery.start(local.serve)
            async with httpx.AsyncClient(trust_env=False) as client:
                await client.get(local.url + "pip/")
            nursery.cancel_scope.cancel()
        build = "pip subprocess to install build dependencies did not run successfully."
        assert local.explain(build) is None


@pytest.mark.parametrize(
    ("reqs", "expected"),
    [
        # A lone pin is not a lock: its dependencies are resolved (the newest sf-beta >= 1
        # that is not yanked).
        (["sf-alpha==1.0"], {"sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.1-py3-none-any.whl"}),
        # An extra's dependency is a dependency too.
        (
            ["sf-gamma[fast]==1.0"],
            {"sf_gamma-1.0-py3-none-any.whl", "sf_delta-1.0-py3-none-any.whl"},
        ),
        # Every Requires-Dist satisfied inside the set: taken as it is.
        (
            ["sf-alpha==1.0", "sf-beta==1.0"],
            {"sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.0-py3-none-any.whl"},
        ),
    ],
)
async def test_pinned_sets_are_complete_or_resolved(
    tmp_path: Path, index_dir: Path, reqs: list[str], expected: set[str]
) -> None:
    async with index(index_dir, link=Link()) as emu:
        out = tmp_path / "out"
        proc = await segfetch(
            "download", *reqs, "-d", str(out), "--index-url", emu.index_url, "--no-cache"
        )
        assert proc.returncode == 0, proc.stderr
        assert {p.name for p in out.iterdir()} == expected
        resolved = "resolving with pip" in proc.stderr.decode()
        assert resolved == (len(reqs) == 1)


def test_which_python_is_installed_into(tmp_path: Path) -> None:
    """--python, else the active virtual environment, else a .venv here or above."""
    from segfetch.wheels.target import environment_python, is_own_environment

    deep = tmp_path / "project" / "src"
    deep.mkdir(parents=True)
    assert environment_python(None, {}, deep) is None
    assert environment_python("/usr/bin/python3", {"VIRTUAL_ENV": "/v"}, deep) == "/usr/bin/python3"
    assert environment_python(None, {"VIRTUAL_ENV": "/v"}, deep) == "/v/bin/python"
    (tmp_path / "project" / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "project" / ".venv" / "bin" / "python").touch()
    assert environment_python(None, {}, deep) == str(tmp_path / "project" / ".venv/bin/python")
    venv = str(tmp_path / "project" / ".venv")  # an environment's folder, as pip and uv take
    assert environment_python(venv, {}, deep) == venv + "/bin/python"
    assert is_own_environment(sys.executable)
    assert not is_own_environment(str(tmp_path / "project" / ".venv/bin/python"))


async def test_install_never_picks_segfetchs_own_environment(tmp_path: Path) -> None:
    """With no environment to be found, install asks; its own environment needs --system; an
    activated one that is gone is named as VIRTUAL_ENV's."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}

    async def install() -> str:
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", "install", "sf-alpha"],
            cwd=tmp_path, env=env, capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        return one_line_error(proc)

    assert "give --python PATH, activate a virtual environment, or --system" in await install()
    env["VIRTUAL_ENV"] = sys.prefix  # segfetch's own environment, activated
    assert "the environment segfetch itself runs in" in await install()
    env["VIRTUAL_ENV"] = str(tmp_path / "gone")  # an environment removed since it was activated
    assert "VIRTUAL_ENV names it: activate another one, or give --python" in await install()


async def test_install_json_is_one_document_and_tells_the_truth(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    """stdout holds exactly the JSON (pip's own output goes to stderr), and a first run with
    no cache reports what it fetched, look-ahead included, never "cached"."""
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "--index-url", emu.index_url, "--no-cache",
            "--json", "--installer", "pip", "sf-alpha",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)  # nothing else on stdout
    assert {r["name"] for r in records} == {"sf-alpha", "sf-beta"}
    assert not any(r["cached"] for r in records)
    assert all(r["seconds"] > 0 and r["connections"] >= 1 for r in records)
    assert "Successfully installed" in proc.stderr.decode()


async def test_install_json_of_a_failed_install_is_the_error(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    """pip fails to install into a --target below a file once the files are fetched:
    stdout's one document says the install failed, with pip's exit code, not what was
    fetched. (A --user into a venv, and a --target that is a file, which this test gave
    before, are refused before any file now.)"""
    (tmp_path / "a-file").write_text("")
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "--index-url", emu.index_url, "--no-cache",
            "--json", "--installer", "pip", "--target", str(tmp_path / "a-file" / "below"),
            "sf-beta==1.0",
        )  # fmt: skip
    doc = json.loads(proc.stdout)  # (pip exits 2 for this OSError)
    assert proc.returncode == doc["exit_code"] != 0 and "pip install failed" in doc["error"]


async def test_a_pip_too_old_to_resolve_says_to_upgrade(tmp_path: Path) -> None:
    from segfetch.wheels.pip import pip_report as _pip_report

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Usage: pip install ...' >&2\n"
                    "echo 'no such option: --report' >&2\nexit 2\n")  # fmt: skip
    fake.chmod(0o755)
    with pytest.raises(SegfetchError, match=r"older than 22\.2.*pip install -U pip"):
        await _pip_report(str(fake), ["x"], "http://127.0.0.1:9/simple/", False)
    fake.write_text("#!/bin/sh\necho 'ERROR: Operation cancelled by user' >&2\nexit 1\n")
    with pytest.raises(KeyboardInterrupt):
        await _pip_report(str(fake), ["x"], "http://127.0.0.1:9/simple/", False)
    fake.write_text("#!/bin/sh\necho 'something broke' >&2\nexit 1\n")
    with pytest.raises(SegfetchError, match="something broke"):
        await _pip_report(str(fake), ["x"], "http://127.0.0.1:9/simple/", False)


async def test_a_build_that_fails_in_pips_resolver_shows_pips_account(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No ERROR line: pip's output (what the build printed) is shown as pip shows it, and
    the one line names the step that failed, not pip's closing note."""
    from segfetch.wheels.pip import pip_report as _pip_report

    account = (
        "  error: subprocess-exited-with-error\n"
        "  \N{MULTIPLICATION SIGN} Getting requirements to build wheel did not run successfully.\n"
        "  ╰─> AttributeError: cython_sources\n"
        "note: This error originates from a subprocess, and is likely not a problem with pip.\n"
    )
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{account}EOF\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SegfetchError) as failed:
        await _pip_report(str(fake), ["x"], "http://127.0.0.1:9/simple/", False)
    assert str(failed.value) == (
        "pip could not resolve the requirements: Getting requirements to build wheel did not "
        "run successfully. (pip's output is above)"
    )
    assert "AttributeError: cython_sources" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [
        pytest.param(signal.SIGTERM, 143, "stopped by SIGTERM", id="SIGTERM"),
        pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
    ],
)
@pytest.mark.parametrize(
    ("step", "stubborn"),
    [("--dry-run", False), ("--dry-run", True), ("--no-index", False)],
    ids=["resolver", "resolver-ignoring-SIGTERM", "installer"],
)
async def test_a_signal_while_pip_runs_stops_pip_and_cleans_up(
    tmp_path: Path,
    index_dir: Path,
    sig: signal.Signals,
    code: int,
    said: str,
    step: str,
    stubborn: bool,
) -> None:
    """A signal to segfetch's pid alone (not its process group) while pip's resolver runs,
    or pip's final install: pip is stopped (a resolver that ignores SIGTERM is killed, with
    no warning), the temporary folders removed, one line said, exit 128 + the signal."""
    import psutil

    # The target: this Python, except that pip's resolver (--dry-run) or its install of the
    # fetched files (--no-index) hangs, as pip does against a slow index or disk; exec, so
    # that pip is segfetch's own child.
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    ignore = "trap '' TERM; " if stubborn else ""  # ignored, it stays so across exec
    fake.write_text(
        f'#!/bin/sh\ncase "$*" in *{step}*) {ignore}exec sleep 300;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    async with index(index_dir, link=Link()) as emu:
        cmd = [sys.executable, "-m", "segfetch", "install", "-q", "--python", str(fake)]
        cmd += ["--installer", "pip"]
        cmd += ["--no-cache", "--index-url", emu.index_url, "sf-alpha"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmp)})
        me = psutil.Process(proc.pid)
        resolver: list[psutil.Process] = []
        with trio.fail_after(60):
            while not resolver and proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    resolver = [c for c in me.children() if c.cmdline()[:1] == ["sleep"]]
                await trio.sleep(0.02)
        assert resolver, f"pip ({step}) never started"
        assert list(tmp.iterdir())  # segfetch's temporary folders, while it runs
        proc.send_signal(sig)
        with trio.fail_after(30):
            while proc.poll() is None:
                await trio.sleep(0.05)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.returncode == code, err
    assert len(err.strip().splitlines()) == 1 and said in err, err
    assert not resolver[0].is_running()
    assert list(tmp.iterdir()) == []


async def test_max_tries_applies_to_index_pages(tmp_path: Path) -> None:
    """--max-tries counts the index pages' tries too, not only the files'."""
    proc = await segfetch(
        "download", "sf-alpha==1.0", "-d", str(tmp_path / "out"), "--no-cache",
        "--index-url", "http://127.0.0.1:9/simple/", "--max-tries", "1",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "after 1 tr" in one_line_error(proc, only=False)


async def test_download_writes_to_the_current_folder_by_default(
    tmp_path: Path, index_dir: Path
) -> None:
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", "--index-url", emu.index_url, "--no-cache", "-q", "sf-beta==1.0",
            cwd=tmp_path,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.glob("*.whl")] == ["sf_beta-1.0-py3-none-any.whl"]


async def test_a_pinned_yanked_release_is_taken_with_a_warning(
    tmp_path: Path, index_dir: Path
) -> None:
    """As pip: a yanked release that a pin names exactly is taken, and said so, with -q
    too (pip -q shows its warnings)."""
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", "--index-url", emu.index_url, "--no-cache", "sf-beta==1.2",
            "-d", str(tmp_path), "-q",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sf_beta-1.2-py3-none-any.whl is yanked" in proc.stderr.decode()


async def test_pips_report_names_the_index_url_not_the_cache(
    tmp_path: Path, index_dir: Path, venv: Path
) -> None:
    """--report FILE (pip's): each file's URL as the index gave it, as pip's own report;
    not the verified copy in segfetch's cache that pip installed from."""
    report = tmp_path / "report.json"
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "--index-url", emu.index_url, "--no-cache", "-q",
            "--installer", "pip", "--report", str(report), "sf-beta==1.0",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [item] = json.loads(report.read_text())["install"]
    url = item["download_info"]["url"]
    assert url.startswith(emu.url("/")) and url.endswith("sf_beta-1.0-py3-none-any.whl"), url


@pytest.mark.parametrize("words", [["--report", "-"], ["--report=-"]])
async def test_pips_report_on_stdout_names_the_index_url_too(
    index_dir: Path, venv: Path, words: list[str]
) -> None:
    """--report - (pip's report on stdout, with --dry-run -q as scripts take it) named the
    verified copy in segfetch's cache (file:///.../sha256/...), where pip's names the index."""
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", str(venv), "--index-url", emu.index_url, "--no-cache", "-q",
            "--installer", "pip", "--dry-run", *words, "sf-beta==1.0",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [item] = json.loads(proc.stdout)["install"]
    url = item["download_info"]["url"]
    assert url.startswith(emu.url("/")) and url.endswith("sf_beta-1.0-py3-none-any.whl"), url


async def test_download_json_to_a_full_stdout_still_writes_the_files(
    tmp_path: Path, index_dir: Path
) -> None:
    """The files are put in -d first; a stdout that cannot take the JSON then gets one
    line saying so (exit 1, as get and pip), never a traceback or a misleading error."""
    out = os.open("/dev/full", os.O_WRONLY)
    try:
        async with index(index_dir, link=Link()) as emu:
            proc = await trio.run_process(
                [sys.executable, "-m", "segfetch", "download", "--index-url", emu.index_url,
                 "--no-cache", "--json", "sf-beta==1.0", "-d", str(tmp_path / "d")],
                stdout=out, capture_stderr=True, check=False,
            )  # fmt: skip
    finally:
        os.close(out)
    assert proc.returncode == 1
    assert "cannot write the result to stdout" in one_line_error(proc)
    assert (tmp_path / "d" / "sf_beta-1.0-py3-none-any.whl").exists()


async def test_download_for_another_python_version_checks_requires_python_against_it(
    tmp_path: Path,
) -> None:
    """As pip download: --python-version X takes the files whose Requires-Python admits X,
    not the Python running segfetch (pip install --dry-run, the resolver here, checks that
    one: it took an older release, or refused a pin)."""
    d = tmp_path / "index"
    make_wheel(d, "sf-rp", "1.0")
    make_wheel(d, "sf-rp", "3.0", requires_python=">=3.99", seed=1)
    make_wheel(d, "sf-rp", "4.0", requires_python="<3", seed=2)
    out = tmp_path / "out"
    foreign = ["--python-version", "3.99", "--only-binary", ":all:", "--no-cache", "-d", str(out)]
    async with Emulator(index=d, link=Link()) as emu:
        for wanted in ("sf-rp", "sf-rp==3.0"):
            got = await segfetch("download", "--index-url", emu.index_url, *foreign, wanted)
            assert got.returncode == 0, got.stderr
            assert [p.name for p in out.iterdir()] == ["sf_rp-3.0-py3-none-any.whl"]
        here = await segfetch("download", "--index-url", emu.index_url, "-d", str(out), "sf-rp")
        assert here.returncode == 0, here.stderr  # this Python's: 1.0
        assert sorted(p.name for p in out.iterdir())[0] == "sf_rp-1.0-py3-none-any.whl"
        old = await segfetch("download", "--index-url", emu.index_url, *foreign, "sf-rp==4.0")
        assert old.returncode == 1 and "sf-rp==4.0" in old.stderr.decode()


async def test_download_for_another_python_version_reads_metadata_where_pages_say_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages without Requires-Python (a plain file tree behind nginx): the METADATA's is
    checked against X, as pip download checks it. One line and exit 1, never a file X
    cannot install with exit 0 (resolved, lone pin, hashed lock)."""
    from segfetch.testing.emulator import index as emulated

    real = emulated.describe

    def silent(p: Path, size: int) -> emulated.IndexFile | None:
        f = real(p, size)
        return f and replace(f, requires_python=None)

    monkeypatch.setattr(emulated, "describe", silent)
    d = tmp_path / "index"
    make_wheel(d, "sf-rp", "1.0")
    new = make_wheel(d, "sf-rp", "3.0", requires_python=">=3.99", seed=1)
    lock = tmp_path / "lock.txt"
    lock.write_text(f"sf-rp==3.0 --hash=sha256:{hashlib.sha256(new.read_bytes()).hexdigest()}\n")
    out = tmp_path / "out"
    foreign = ["--only-binary", ":all:", "--no-cache", "-d", str(out)]
    async with Emulator(index=d, link=Link()) as emu:
        url = ["--index-url", emu.index_url]
        for wanted in (["sf-rp"], ["sf-rp==3.0"], ["-r", str(lock)]):
            got = await segfetch("download", *url, "--python-version", "3.10", *foreign, *wanted)
            assert got.returncode == 1, got.stderr
            line = one_line_error(got, only=False)
            assert "sf_rp-3.0-py3-none-any.whl requires Python >=3.99, not 3.10" in line
            assert line.endswith("pin an older release that fits")
            assert not out.exists() or not any(out.iterdir())
        fits = await segfetch("download", *url, "--python-version", "3.99", *foreign, "sf-rp")
        assert fits.returncode == 0, fits.stderr
        assert [p.name for p in out.iterdir()] == ["sf_rp-3.0-py3-none-any.whl"]


@pytest.mark.parametrize("hashed", [False, True])
async def test_a_pin_whose_metadata_excludes_this_python_stops_as_in_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashed: bool
) -> None:
    """Pages without Requires-Python (a plain file tree behind nginx): a pinned wheel whose
    METADATA excludes the running Python stops the set, as pip's resolver stops it (segfetch
    kept the file and exited 0); --ignore-requires-python takes it, as pip does."""
    from segfetch.testing.emulator import index as emulated

    real = emulated.describe

    def silent(p: Path, size: int) -> emulated.IndexFile | None:
        f = real(p, size)
        return f and replace(f, requires_python=None)

    monkeypatch.setattr(emulated, "describe", silent)
    new = make_wheel(tmp_path / "index", "sf-rp", "3.0", requires_python=">=3.99")
    pin = "sf-rp==3.0"
    if hashed:
        (lock := tmp_path / "lock.txt").write_text(f"{pin} --hash=sha256:{_sha(new)}\n")
    wanted = ["-r", str(lock)] if hashed else [pin]
    out = tmp_path / "out"
    async with Emulator(index=tmp_path / "index", link=Link()) as emu:
        args = ["download", "--index-url", emu.index_url, "--no-cache", "-d", str(out), *wanted]
        got = await segfetch(*args)
        pip_alone = await trio.run_process(
            [sys.executable, "-m", "pip", "download", "-q", "--no-cache-dir", "-d",
             str(tmp_path / "pip"), "--index-url", emu.index_url, *wanted],
            check=False, capture_stderr=True,
        )  # fmt: skip
        ignored = await segfetch(*args, "--ignore-requires-python")
    assert got.returncode == pip_alone.returncode == 1, got.stderr
    line = one_line_error(got, only=False)
    running = ".".join(map(str, sys.version_info[:3]))
    assert f"sf_rp-3.0-py3-none-any.whl requires Python >=3.99, not {running}" in line, line
    assert ignored.returncode == 0, ignored.stderr
    assert [p.name for p in out.iterdir()] == [new.name]


async def test_a_local_file_is_counted_as_local_not_as_from_the_cache(
    tmp_path: Path, venv_template: Path
) -> None:
    """A --find-links folder's wheel was never fetched nor cached: the summary and --json
    say it is local (they said "1 from the cache", "cached": true, with --no-cache)."""
    from helpers import fresh

    python = fresh(venv_template, tmp_path / "venv")
    wheel = make_wheel(tmp_path / "wheels", "sf-local", "1.0")
    args = ["install", "--python", python, "--installer", "pip", "--no-cache", "--no-index"]
    args += ["-f", str(wheel.parent), "sf-local"]
    proc = await segfetch(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(proc.stdout)
    assert record["local"] and not record["cached"]
    proc = await segfetch(*args, "--force-reinstall")
    assert b"1 file verified (0 from the cache, 1 local, 0 B fetched" in proc.stderr


async def test_the_only_index_refusing_is_said_once(tmp_path: Path) -> None:
    """A 401 from the one index: its line came twice, as a warning that the index was left
    out and as the error; the warning is for a run that goes on with other indexes."""
    from test_hostile import read_head, serve

    async def refuse(stream: trio.SocketStream) -> None:
        while await read_head(stream):
            await stream.send_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\n"
                b"Content-Length: 0\r\n\r\n"
            )

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, refuse)
        proc = await segfetch(
            "download", "sf-alpha", "-d", str(tmp_path / "out"), "--no-cache",
            "--index-url", f"http://127.0.0.1:{port}/simple/",
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert err.count("401") == 1 and "left out" not in err, err


@pytest.mark.parametrize("unpinned", [True, False])
async def test_an_extra_index_that_does_not_answer_is_left_out_as_pip_leaves_it(
    tmp_path: Path, index_dir: Path, unpinned: bool
) -> None:
    """pip warns and goes on with the indexes that answer; segfetch stopped, exit 1
    ("giving up after 5 tries ... cannot connect"). Such an index is asked once a run."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/simple/"
    wanted = ["sf-alpha", "sf-beta"] if unpinned else ["sf-alpha==1.0", "sf-beta==1.1"]
    async with index(index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", *wanted, "-d", str(tmp_path / "out"), "--index-url", emu.index_url,
            "--extra-index-url", dead, "--no-cache", "--max-tries", "2",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "Traceback" not in err and err.count(f"{dead} left out for this run") == 1, err
    assert {p.name.split("-")[0] for p in (tmp_path / "out").iterdir()} >= {"sf_alpha", "sf_beta"}
