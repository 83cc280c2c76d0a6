"""The command line as a user runs it: real subprocesses against the emulator."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from helpers import hanging_tls_server, one_line_error, segfetch

from segfetch.engine.ranges import RangeSet
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile
from segfetch.testing.wheelmaker import make_wheel

PATH = "/pkg-1.0-py3-none-any.whl"


BAD_ARGS = [
    (["get", "not a url"], "URL"),
    (["get", "ftp://127.0.0.1/x.whl"], "http"),
    (["get", "http://127.0.0.1:9/x.whl", "--sha256", "zz"], "64 hex"),
    (["get", "http://127.0.0.1:9/x.whl", "-n", "0"], "-n"),
    (["get", "http://127.0.0.1:9/x.whl", "-n", "many"], "-n takes auto or a count"),
    (["get", "http://127.0.0.1:9/x.whl", "--min-segment", "big"], "size"),
    (["get", "http://127.0.0.1:9/x.whl", "--min-segment", "10"], "at least 1K"),
    (["get", "http://127.0.0.1:9/x.whl", "--timeout", "-1"], "--timeout"),
    (["get", "http://127.0.0.1:9/x.whl", "--max-tries", "0"], "--max-tries"),
    (["get", "http://127.0.0.1:9/x.whl", "-o", "/no/such/folder/x.whl"], "does not exist"),
    (["get", "http://127.0.0.1:9/"], "file name"),
    (["get"], "required"),
    (["get", "http://127.0.0.1:9/x.whl", "--bogus"], "unrecognized"),
    (["fetch"], "invalid choice"),
    (["emulate", "--rate", "fast"], "size"),
    (["emulate", "--fault", "meteor"], "unknown fault"),
    (["emulate", "--file", "x"], "PATH:SIZE"),
    (["demo", "--size", "huge"], "size"),
    (["get", "http://127.0.0.1:9/x.whl", "--timeout", "soon"], "duration"),
    (["get", "http://[::1/x.whl"], "URL"),
    (["get", "http://127.0.0.1:99999/x.whl"], "not a TCP port"),
    (["get", "http://[bad/x.whl"], "not a valid URL"),  # a lone bracket: was a traceback
    (["get", "http://x]/x.whl"], "not a valid URL"),
    (["get", "http://127.0.0.1:1\uff18/x.whl"], "not a valid URL"),  # was port 18
    (["get", "http://127.0.0.1:9/con%00null"], "give one with -o"),  # a NUL, a newline
    (["get", "http://127.0.0.1:9/a%0Ab.whl"], "give one with -o"),
    (["get", "http://127.0.0.1:9/x.whl", "-o", "/dev/null/x.whl"], "is a file, not a folder"),
    (["get", "http://127.0.0.1:9/x.whl", "--sha256", "a" * 63], "64 hex"),
    (["emulate", "/no/such/dir"], "not a folder"),
    (["emulate", "--index", "/no/such/dir"], "not a folder"),
    (["emulate", "--fault", "reset:every=oops"], "size"),
    (["emulate", "--fault", "status:colour=red"], "bad fault option"),
    # emulate's own words, not the Fault class's or float()'s; the --log file, not the port
    (["emulate", "--drop-every", "0"], "--drop-every must be at least 1K"),
    (["emulate", "--fault", "stall:every=0"], "--fault 'stall:every=0': every= must be more"),
    (["emulate", "--fault", "status:rate=x"], "--fault 'status:rate=x': rate= takes a number"),
    (["emulate", "--fault", "status:status=99"], "status= must be a final HTTP status, 200 to 599"),
    (["emulate", "--port", "0", "--log", "/nonexistent/x.log"], "cannot write --log /nonex"),
    (["download", "-d", "/tmp/x"], "nothing to do"),
    (["download", "x==1", "-d", "/tmp/x", "--max-connections", "0"], "--max-connections"),
    (["install", "x==1", "--python", "/no/such/python"], "no Python"),
    (["install", "x==1", "--python", "/etc/passwd"], "is not a Python interpreter"),
    (["install", "x==1", "--python", "/"], "is not a Python interpreter"),
    (["download", "x==1", "-d", "/tmp/x", "--cache-dir", "/proc/x"], "cannot use the cache folder"),
    (["download", "x==1", "-d", "/tmp/x", "--cache-dir", "/etc/passwd"], "give --cache-dir"),
    (["install", "-r", "/no/such/req.txt"], "cannot read"),
    (["install", "x==1", "--system", "--index-url", "ftp://mirror/simple"], "no http(s) or file:"),
    (["bench", "--emulate", "-n", "0"], "-n must be from 1 to 64, not 0"),
    (["bench", "--emulate", "--budget", "1K"], "--budget must be at least 64K, not 1K"),
    (["bench", "--emulate", "--time", "0"], "--time must be more than 0, not 0"),
    # Every option range-checked: no traceback, no runaway memory.
    (["get", "http://127.0.0.1:9/x.whl", "--timeout", "nan"], "duration"),
    (["get", "http://127.0.0.1:9/x.whl", "--timeout", "inf"], "duration"),
    (["get", "http://127.0.0.1:9/x.whl", "-n", "3000000"], "from 1 to 256"),
    (["get", "http://127.0.0.1:9/x.whl", "--max-tries", "99999"], "--max-tries"),
    (["get", "http://127.0.0.1:9/x.whl", "-o", "/dev/null"], "measure the link, `segfetch bench"),
    (["get", "http://127.0.0.1:9/x.whl", "-o", "newdir/"], "does not exist"),
    (["get", "http://127.0.0.1:9/x.whl", "-o", "-"], "cannot write to stdout"),  # not a file "-"
    (["emulate", "--rtt", "nan"], "duration"),
    (["get", "http://127.0.0.1:9/x.whl", "--bogus"], "--bogus (see segfetch get --help)"),
    (["install", "x", "--python", sys.executable, "--system"], "not allowed with argument"),
    (["emulate", "--rtt", "1h"], "duration"),
    (["emulate", "--rate", "0"], "more than 0"),
    (["emulate", "--port", "70000"], "--port"),
    (["emulate", "--drop-every", "10"], "at least 1K"),
    (["bench", "--emulate", "--time", "inf"], "duration"),
    # URLs that httpx cannot ask, wherever they come from: one line, before any request.
    (["download", "x==1", "-d", "/tmp/x", "--index-url", "http://[::1"], "not a valid index URL"),
    (["download", "x", "-d", "/tmp/x", "--extra-index-url", "http://[zz]/s/"], "not a valid"),
    (["download", "-r", "http://[::1/r.txt", "-d", "/tmp/x"], "not a valid requirements file"),
    (["download", "-c", "http://[::1/c.txt", "x", "-d", "/tmp/x"], "not a valid requirements"),
    (["download", "x @ http://[zz]/x-1.0-py3-none-any.whl", "-d", "/tmp/x"], "not a valid URL"),
    (["download", "http://[::1:80/x-1.0-py3-none-any.whl", "-d", "/tmp/x"], "not a valid URL"),
    (["download", "x @ http://h:99999/x-1.0-py3-none-any.whl", "-d", "/tmp/x"], "not a valid URL"),
    (["download", "a" * 70000, "-qd", "/tmp/x", "--index-url", "http://127.0.0.1:9/"], "not valid"),
    (["serve", "-i", "http://[::1"], "not a valid index URL"),
    # A host name DNS cannot take: said before any connection (was a traceback there)
    (["get", "http://a..b/x.bin"], "(check its host name: parts of 1-63"),
    (["get", "--json", f"http://{'a' * 64}.example/x.bin"], "not a valid URL"),
    (["download", "x==1", "-d", "/tmp/x", "-i", "http://xn--zz/simple/"], "not a valid index"),
    # An empty index URL ("$MIRROR", unset) is not the public index (pip finds none then)
    (["download", "x==1", "-d", "/tmp/x", "--index-url", ""], "--index-url is empty"),
    (["install", "x==1", "--system", "-i", " "], "--index-url is empty"),
    (["serve", "--index-url", ""], "--index-url is empty"),
    (["serve", "-i", "file:///no/such/simple/", "--port", "0"], "no such folder; give the"),
    (["serve", "--extra-index-url", ""], "'' is not an http(s) URL"),  # (began with a blank)
    (["get", "http://127.0.0.1:9/x.whl", "-o", ""], "-o is empty"),  # was: ./x.whl, exit 0
    # An empty --cache-dir made the current folder the cache; -d naming a file failed only
    # after every download, with 'File exists'
    (["download", "x==1", "-d", "/tmp/x", "--cache-dir", ""], "--cache-dir: names no folder"),
    (["serve", "--cache-dir", ""], "--cache-dir: names no folder"),
    (["download", "x==1", "-d", "/etc/passwd"], "'/etc/passwd' is not a folder"),
    (["download", "x==1", "-d", "/etc/passwd/x/y"], "'/etc/passwd' is not a folder"),
    (["download", "x==1", "-d", "/dev/null"], "is not a folder"),
    (["download", "x @ http://h/x-1.0-py3-none-any.whl#md5=zz", "-d", "/tmp/x"], "x @ http"),
]


async def test_an_empty_extra_index_url_is_said_as_empty(tmp_path: Path) -> None:
    """pip warns 'The index url "" seems invalid' and goes on; segfetch's warning of it began
    with a blank: 'segfetch: warning:  is not an http(s) or file: index'."""
    index = ["--index-url", "http://127.0.0.1:9/", "--extra-index-url", ""]
    proc = await segfetch("download", "x==1", "-d", str(tmp_path), *index, "--max-tries", "1")
    assert "segfetch: warning: '' is not an http(s) or file: index" in proc.stderr.decode()


@pytest.mark.parametrize(("args", "words"), BAD_ARGS)
async def test_bad_input_gets_one_line_and_exit_2(args: list[str], words: str) -> None:
    """Exit 2 for a bad command line; 1 for a requirement or file pip cannot read, as pip's."""
    proc = await segfetch(*args)
    assert proc.returncode == (1 if words in ("cannot read", "x @ http", "nothing to do") else 2)
    assert words in one_line_error(proc)


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("ALL_PROXY", "socks5://127.0.0.1:1", "SOCKS"),
        ("HTTPS_PROXY", "socks5h://127.0.0.1:1", "SOCKS"),
        ("HTTP_PROXY", "http://[::1", "not a URL"),
        ("http_proxy", "http://[zz]:80", "not a URL"),
        ("HTTP_PROXY", "http://127.0.0.1:99999", "proxy in HTTP_PROXY: 'http://127.0.0.1:99999' ("),
        ("https_proxy", "127.0.0.1:0", "proxy in https_proxy: 'http://127.0.0.1:0' (port 0 is not"),
    ],
)
@pytest.mark.parametrize("command", ["get", "download", "download -r", "serve"])
async def test_a_proxy_in_the_environment_segfetch_cannot_use_is_one_line(
    tmp_path: Path, variable: str, value: str, words: str, command: str
) -> None:
    """A SOCKS proxy (a desktop's or VPN's) or a malformed one: one line, exit 2."""
    args = {
        "get": ["http://127.0.0.1:9/x.whl", "-o", str(tmp_path / "x.whl")],
        "download": ["x==1", "-d", str(tmp_path), "--index-url", "http://127.0.0.1:9/"],
        "download -r": ["-r", "http://127.0.0.1:9/r.txt", "-d", str(tmp_path)],
        "serve": ["-i", "http://127.0.0.1:9/simple/", "--port", "0"],
    }[command]
    env = {variable: value, "NO_PROXY": "", "no_proxy": "", "PIP_CONFIG_FILE": os.devnull}
    with trio.fail_after(60):
        proc = await segfetch(command.split()[0], *args, env=env)
    assert proc.returncode == 2
    assert words in one_line_error(proc)


async def test_a_proxy_with_no_valid_port_is_unused_under_no_proxy_star(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(1000)}) as emu:
        env = {"HTTP_PROXY": "http://127.0.0.1:99999", "NO_PROXY": "*", "no_proxy": "*"}
        proc = await segfetch("get", emu.url(PATH), "-o", str(tmp_path / "x.whl"), env=env)
    assert proc.returncode == 0, proc.stderr


async def test_get_writes_verified_file_and_json(tmp_path: Path) -> None:
    link = Link(faults=(Fault("reset", every=100_000),))
    async with Emulator({PATH: SyntheticFile(600_000)}, link=link) as emu:
        proc = await segfetch(
            "get", emu.url(PATH), "-n", "4", "--sha256", emu.sha256(PATH), "--json", cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["sha256"] == emu.sha256(PATH) and result["size"] == 600_000
        assert (tmp_path / PATH.lstrip("/")).read_bytes() == emu.content(PATH)


async def test_output_folder_takes_name_from_url(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(1000)}) as emu:
        proc = await segfetch("get", emu.url(PATH), "-o", str(tmp_path), "-q")
        assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
        assert (tmp_path / PATH.lstrip("/")).read_bytes() == emu.content(PATH)


async def test_output_through_a_symlink_writes_where_it_points(tmp_path: Path) -> None:
    """As curl and wget: the link stays a link (it was replaced by a file)."""
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "x.whl").write_bytes(b"old")
    (tmp_path / "x.whl").symlink_to(tmp_path / "disk" / "x.whl")
    (tmp_path / "y.whl").symlink_to(tmp_path / "disk" / "y.whl")  # dangling: made there
    async with Emulator({PATH: SyntheticFile(1000)}) as emu:
        for name in ("x.whl", "y.whl"):
            proc = await segfetch("get", emu.url(PATH), "-o", str(tmp_path / name), "-q")
            assert proc.returncode == 0, proc.stderr
            assert (tmp_path / name).is_symlink()
            assert (tmp_path / "disk" / name).read_bytes() == emu.content(PATH)
        (tmp_path / "a.whl").symlink_to(tmp_path / "b.whl")  # a loop: bad input (was exit 1)
        (tmp_path / "b.whl").symlink_to(tmp_path / "a.whl")
        proc = await segfetch("get", emu.url(PATH), "-o", str(tmp_path / "a.whl"))
        assert proc.returncode == 2 and "a loop of symbolic links" in one_line_error(proc)


async def test_download_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(1000)}) as emu:
        missing = emu.url("/missing.whl").replace("http://", "http://user:s3cret@")
        proc = await segfetch("get", missing, "-o", str(tmp_path / "m.whl"))
        assert proc.returncode == 1
        line = one_line_error(proc)
        assert "404" in line and "s3cret" not in line

        bad_hash = "0" * 64
        proc = await segfetch(
            "get", emu.url(PATH), "-o", str(tmp_path / "x.whl"), "--sha256", bad_hash
        )
        assert proc.returncode == 1
        line = one_line_error(proc)
        assert f"expected {bad_hash}, got {emu.sha256(PATH)}" in line
        assert list(tmp_path.iterdir()) == []
        url = emu.url(PATH)
    # The server is gone: bounded retries, then one line.
    proc = await segfetch("get", url, "-o", str(tmp_path / "x.whl"), "--max-tries", "2")
    assert proc.returncode == 1
    assert "giving up after 2 tries" in one_line_error(proc)


async def test_sha256_takes_pips_prefixed_form(tmp_path: Path) -> None:
    """`--sha256 sha256:HEX` (as pip's --hash and the index pages write it) was a usage
    error; it is the digest after the prefix, checked as ever."""
    async with Emulator({PATH: SyntheticFile(1000)}) as emu:
        dest = tmp_path / "x.whl"
        proc = await segfetch("get", emu.url(PATH), "-o", str(dest), "-q", "--sha256",
                              f"SHA256:{emu.sha256(PATH)}")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert dest.read_bytes() == emu.content(PATH)
        proc = await segfetch("get", emu.url(PATH), "-o", str(tmp_path / "y.whl"), "--sha256",
                              "sha256:" + "0" * 64)  # fmt: skip
        assert proc.returncode == 1 and "expected 0000" in one_line_error(proc)


async def test_a_urls_sha256_fragment_is_checked_as_sha256_is(tmp_path: Path) -> None:
    """`get URL#sha256=HEX` (a link copied from an index page) dropped the fragment: a file
    of another hash was kept, exit 0."""
    async with Emulator({PATH: SyntheticFile(1000)}) as emu:
        url, right = emu.url(PATH), emu.sha256(PATH)
        proc = await segfetch("get", f"{url}#sha256={'0' * 64}", "-o", str(tmp_path / "x.whl"))
        assert proc.returncode == 1 and f"expected {'0' * 64}, got {right}" in one_line_error(proc)
        assert list(tmp_path.iterdir()) == []
        dest = tmp_path / "y.whl"
        proc = await segfetch("get", f"{url}#sha256={right.upper()}", "-o", str(dest), "-q")
        assert proc.returncode == 0 and dest.read_bytes() == emu.content(PATH)
        asked = len(emu.log)
        for args, words in (
            ([f"{url}#sha256=abc"], "the URL's #sha256= takes 64 hex digits"),
            ([f"{url}#sha256={right}", "--sha256", "0" * 64], "--sha256 and the URL's #sha256="),
        ):
            proc = await segfetch("get", *args, "-o", str(tmp_path / "z.whl"))
            assert proc.returncode == 2 and words in one_line_error(proc)
        assert len(emu.log) == asked  # said before any request


async def test_a_urls_other_hash_fragment_is_checked(tmp_path: Path) -> None:
    """`get URL#md5=HEX` (a link as an index that gives no sha256 writes it; pip checks
    it) dropped the fragment: a file of another md5 was kept, exit 0. Now checked along
    the same bytes, the out-of-order ones of several connections too."""
    content = SyntheticFile(3_000_000)
    async with Emulator({PATH: content}) as emu:
        url, data = emu.url(PATH), emu.content(PATH)
        md5, sha512 = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
        pieces = ["-n", "4", "--min-segment", "256K"]
        for fragment in (f"md5={'0' * 32}", f"sha256={emu.sha256(PATH)}&md5={'0' * 32}"):
            proc = await segfetch("get", f"{url}#{fragment}", "-o", str(tmp_path / "x.whl"),
                                  *pieces)  # fmt: skip
            assert proc.returncode == 1, proc.stderr
            line = one_line_error(proc)
            assert line.startswith("segfetch: error: md5 mismatch") and f"got {md5}" in line
            assert list(tmp_path.iterdir()) == []
        for fragment in (f"md5={md5.upper()}", f"sha512={sha512}"):
            dest = tmp_path / "y.whl"
            proc = await segfetch("get", f"{url}#{fragment}", "-o", str(dest), "-q", *pieces)
            assert proc.returncode == 0, proc.stderr
            assert dest.read_bytes() == data
            dest.unlink()
        asked = len(emu.log)
        proc = await segfetch("get", f"{url}#md5=abc", "-o", str(tmp_path / "z.whl"))
        assert proc.returncode == 2
        assert "the URL's #md5= takes 32 hex digits" in one_line_error(proc)
        assert len(emu.log) == asked  # said before any request


async def test_a_destination_download_cannot_write_is_one_line(tmp_path: Path) -> None:
    """An OSError from writing the result (a folder where the file goes) is one line,
    exit 1, not a traceback."""
    make_wheel(tmp_path / "index", "sf-dest", "1.0")
    taken = tmp_path / "out" / "sf_dest-1.0-py3-none-any.whl"
    taken.mkdir(parents=True)
    async with Emulator(index=tmp_path / "index", link=Link()) as emu:
        proc = await segfetch(
            "download", "sf-dest==1.0", "--index-url", emu.index_url, "-q",
            "--cache-dir", str(tmp_path / "cache"), "-d", str(tmp_path / "out"),
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"cannot write {taken}: Is a directory" in one_line_error(proc)


async def _killed_midway(emu: Emulator, dest: Path) -> RangeSet:
    """`get -n 4` of PATH to dest, SIGKILLed once 600 kB are saved: what its control file
    says is done, once the server logged every answer."""
    control = dest.with_name(dest.name + ".part.json")
    args = [sys.executable, "-m", "segfetch", "get", emu.url(PATH), "-o", str(dest), "-n", "4"]
    proc = subprocess.Popen([*args, "-q"])
    try:
        with trio.fail_after(30):
            while True:
                await trio.sleep(0.1)
                if control.exists():
                    done = RangeSet(json.loads(control.read_text())["done"])
                    if done.total() > 600_000:
                        break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not dest.exists()
    with trio.fail_after(10):  # until the server has logged every answer of the first run
        while emu.open_connections:
            await trio.sleep(0.05)
    return RangeSet(json.loads(control.read_text())["done"])


async def test_killed_download_resumes_without_refetching(tmp_path: Path) -> None:
    """SIGKILL mid-transfer; the next run fetches only what the control file lacks."""
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(3_000_000)}, link=Link(rate=256 * 1024)) as emu:
        done = await _killed_midway(emu, dest)
        first_run = len(emu.log)
        emu.link = Link(rate=4 << 20)
        rerun = await segfetch("get", emu.url(PATH), "-o", str(dest), "-n", "4", "--json")
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["resumed"] == done.total()
        assert dest.read_bytes() == emu.content(PATH)
    second = emu.log[first_run:]
    assert second
    for e in second:  # no request of the second run starts inside a completed range
        start = e["start"]
        assert isinstance(start, int), e
        assert not done.covers(start, start + 1)


@pytest.mark.parametrize("ranges", [True, False])
async def test_a_part_longer_than_the_file_is_cut_before_it_is_the_file(
    tmp_path: Path, ranges: bool
) -> None:
    """A .part made longer by another program (a leftover of a larger version, a copy),
    its control file intact: the rerun resumed it and renamed it with its tail, exit 0,
    a wrong file at PATH even with --sha256 (the hash covers the file's bytes only)."""
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(3_000_000)}, link=Link(rate=256 * 1024)) as emu:
        await _killed_midway(emu, dest)
        with dest.with_name("pkg.whl.part").open("ab") as part:
            part.write(b"junk" * 1_000_000)
        faults = () if ranges else (Fault("ignore_range"),)  # (the one-stream path)
        emu.link = Link(rate=4 << 20, faults=faults)
        rerun = await segfetch("get", emu.url(PATH), "-o", str(dest), "--sha256", emu.sha256(PATH))
        assert rerun.returncode == 0, rerun.stderr
        assert dest.read_bytes() == emu.content(PATH)


async def test_a_control_file_that_is_a_folder_is_said_before_any_request(
    tmp_path: Path,
) -> None:
    """`PATH.part.json` a folder: the download started over, failed when it saved its
    progress ("Is a directory"), and removed the .part of an earlier run."""
    dest = tmp_path / "pkg.whl"
    dest.with_name("pkg.whl.part").write_bytes(b"x" * 1000)
    dest.with_name("pkg.whl.part.json").mkdir()
    async with Emulator({PATH: SyntheticFile(300_000)}) as emu:
        proc = await segfetch("get", emu.url(PATH), "-o", str(dest))
        assert proc.returncode == 1
        line = one_line_error(proc)
        assert "pkg.whl.part.json: Is a directory" in line, line
        assert not emu.log
    assert dest.with_name("pkg.whl.part").read_bytes() == b"x" * 1000


async def test_a_file_already_there_with_its_hash_is_not_fetched_again(tmp_path: Path) -> None:
    """A build script run again: the destination already holds the file --sha256 names.
    All of it was fetched again (curl -C - and wget -c ask one request); now it is hashed
    on disk and nothing is asked. A file there with another hash is replaced."""
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(300_000)}) as emu:
        url, sha = emu.url(PATH), emu.sha256(PATH)
        asked = []
        for _ in range(2):
            proc = await segfetch("get", url, "-o", str(dest), "--sha256", sha, "--json")
            assert proc.returncode == 0, proc.stderr
            asked.append((json.loads(proc.stdout)["requests"], len(emu.log)))
        assert asked[1] == (0, asked[0][1]) and asked[0][0] > 0
        with dest.open("ab") as f:
            f.write(b"x")
        proc = await segfetch("get", f"{url}#sha256={sha}", "-o", str(dest))
        assert proc.returncode == 0, proc.stderr
        assert dest.read_bytes() == emu.content(PATH) and len(emu.log) > asked[0][1]


async def test_one_gib_download_keeps_memory_flat(tmp_path: Path) -> None:
    size = 1 << 30
    dest = tmp_path / "big.bin"
    async with Emulator({"/big.bin": SyntheticFile(size)}) as emu:
        expected = emu.sha256("/big.bin")
        args = ["get", emu.url("/big.bin"), "-o", str(dest), "-n", "8", "--sha256", expected, "-q"]
        rc, peak_kib = await trio.to_thread.run_sync(
            _run_measuring_rss, args, abandon_on_cancel=True
        )
    assert rc == 0
    assert dest.stat().st_size == size
    print(f"peak RSS of `segfetch get` for 1 GiB: {peak_kib / 1024:.1f} MiB")
    assert peak_kib < 100 * 1024


# Started from a small process of its own: Linux counts in a child's ru_maxrss the memory
# of the process it was forked from, up to its exec, and a test worker may hold 120 MiB.
_LAUNCH = """
import os, sys
argv = [sys.executable, "-m", "segfetch", *sys.argv[1:]]
_, status, usage = os.wait4(os.posix_spawn(sys.executable, argv, os.environ), 0)
print(usage.ru_maxrss)  # KiB on Linux
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measuring_rss(args: list[str]) -> tuple[int, int]:
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, *args], capture_output=True, text=True)
    return proc.returncode, int(proc.stdout.split()[-1])


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
async def test_tls_is_verified_and_honours_ssl_cert_file(tmp_path: Path) -> None:
    async with hanging_tls_server(tmp_path) as (port, cert):
        url = f"https://127.0.0.1:{port}/x.whl"
        args = ["get", url, "-o", str(tmp_path / "x.whl"), "--max-tries", "1"]
        proc = await segfetch(*args)
        assert proc.returncode == 1
        assert "TLS certificate check failed" in one_line_error(proc)
        # Trusting the certificate through SSL_CERT_FILE gets past the handshake.
        env = {**os.environ, "SSL_CERT_FILE": str(cert)}
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *args], env=env, capture_stderr=True, check=False
        )
        assert proc.returncode == 1
        line = one_line_error(proc)
        assert "TLS" not in line and "giving up" in line


async def test_emulate_on_a_busy_port_is_one_line() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    proc = await segfetch("emulate", "--port", str(port))
    assert proc.returncode == 1
    assert "choose another --port" in one_line_error(proc)
    await listeners[0].aclose()


async def test_ctrl_c_keeps_resume_state_and_exits_130(tmp_path: Path) -> None:
    dest = tmp_path / "pkg.whl"
    control = tmp_path / "pkg.whl.part.json"
    async with Emulator({PATH: SyntheticFile(3_000_000)}, link=Link(rate=256 * 1024)) as emu:
        args = [sys.executable, "-m", "segfetch", "get", emu.url(PATH), "-o", str(dest), "-n", "4"]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE)
        try:
            with trio.fail_after(30):
                while not control.exists():
                    await trio.sleep(0.05)
            sent = trio.current_time()
            proc.send_signal(signal.SIGINT)
            with trio.fail_after(10):  # a guard against hanging; the figure is printed
                while proc.poll() is None:
                    await trio.sleep(0.01)
            print(f"Ctrl-C to exit: {trio.current_time() - sent:.3f} s")
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 130
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        assert "Traceback" not in err and "run the same command again to resume" in err
        assert not dest.exists() and control.exists()
        rerun = await segfetch("get", emu.url(PATH), "-o", str(dest), "--json")
        assert rerun.returncode == 0
        assert json.loads(rerun.stdout)["resumed"] > 0
        assert dest.read_bytes() == emu.content(PATH)


@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "stopped by SIGTERM")]
)
async def test_a_stop_says_a_file_without_validators_starts_over(
    tmp_path: Path, signum: int, said: str
) -> None:
    """No ETag, no Last-Modified, no --sha256: nothing is kept, so no resume is promised."""
    dest = tmp_path / "pkg.whl"
    part = tmp_path / "pkg.whl.part"
    link = Link(rate=256 * 1024, etag=False, last_modified=False)
    async with Emulator({PATH: SyntheticFile(3_000_000)}, link=link) as emu:
        args = [sys.executable, "-m", "segfetch", "get", emu.url(PATH), "-o", str(dest), "-n", "4"]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE)
        try:
            with trio.fail_after(30):
                while not part.exists() or part.stat().st_size < 100_000:
                    await trio.sleep(0.05)
            proc.send_signal(signum)
            _, err = await trio.to_thread.run_sync(proc.communicate, None, 10)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum if signum != signal.SIGINT else 130
    line = err.decode().strip()
    assert (
        line
        == f"segfetch: {said}; nothing of the file was kept: the same command again starts it over"
    )
    assert not list(tmp_path.iterdir())


def test_a_stop_promises_a_resume_only_where_a_control_file_is(tmp_path: Path) -> None:
    """A Ctrl-C before the download began (while httpx loads: 0.2-0.7 s in) said "run the
    same command again to resume" with no .part to resume. What is said is decided by the
    control file of the destination, found from the URL before httpx loads."""
    from argparse import Namespace

    from segfetch.cli.get import _control
    from segfetch.cli.main import _again

    control = _control("http://h/a%20b.whl?x=1", str(tmp_path))
    assert control == tmp_path / "a b.whl.part.json"
    assert "nothing of the file was kept" in _again(Namespace(control=control))
    control.write_text("{}")
    assert _again(Namespace(control=control)) == "run the same command again to resume"
    assert _control("http://[bad", None) is None and _control("http://h/", None) is None
    assert _again(Namespace(subcommand="download")) == "run the same command again to resume"


async def test_killed_at_the_rename_the_next_run_only_renames(tmp_path: Path) -> None:
    """SIGKILL at the moment of the final rename: the next run finds every byte on disk."""
    dest = tmp_path / "pkg.whl"
    async with Emulator({PATH: SyntheticFile(700_000)}) as emu:
        script = (
            "import os, signal, sys\n"
            "import segfetch.engine.store as store\n"
            "real = os.replace\n"
            f"def replace(a, b):\n    if str(b) == {str(dest)!r}:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n    real(a, b)\n"
            "store.os.replace = replace\n"
            "from segfetch.cli.main import main\n"
            f"sys.exit(main(['get', {emu.url(PATH)!r}, '-o', {str(dest)!r}, '-q']))\n"
        )
        killed = await trio.run_process([sys.executable, "-c", script], check=False)
        assert killed.returncode == -signal.SIGKILL
        assert not dest.exists() and (tmp_path / "pkg.whl.part.json").exists()
        seen = len(emu.log)
        rerun = await segfetch("get", emu.url(PATH), "-o", str(dest), "--json")
        assert rerun.returncode == 0
        assert json.loads(rerun.stdout)["resumed"] == 700_000
        assert dest.read_bytes() == emu.content(PATH)
    # The rerun only checked the validator with a one-byte request.
    assert [e["range"] for e in emu.log[seen:]] == ["bytes=699999-699999"]


def test_progress_counts_read_as_english(monkeypatch: pytest.MonkeyPatch) -> None:
    """'0/1 file' and '1 retry' on the bars, as the summary says '1 file verified'."""
    import io

    from segfetch.cli.progress import MultiProgress
    from segfetch.engine.result import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    bars = MultiProgress(1, 100, quiet=False)
    bars.update("a.whl", Progress("http://x/a.whl", 100, 50, 2, 1))
    assert bars.total is not None and bars.total.desc == "0/1 file"
    assert bars.bars["a.whl"].bar.postfix == "2 conn, 1 retry"
    bars.update("a.whl", None)
    assert bars.total.desc.rstrip(": ") == "1/1 file"  # tqdm adds ": "
    bars.close()


async def test_json_failure_is_one_document_on_stdout(tmp_path: Path) -> None:
    """With --json, stdout holds exactly one JSON document on failure too (`| jq` works):
    the error line and the exit code; stderr keeps the one line."""
    async with Emulator({PATH: SyntheticFile(1000)}, link=Link()) as emu:
        cases = [
            ["get", emu.url("/nothing.whl"), "-o", str(tmp_path / "x.whl"), "--json"],
            ["download", "sf-none==1.0", "-d", str(tmp_path / "d"), "--no-cache", "--json",
             "--index-url", emu.index_url],
        ]  # fmt: skip
        for args in cases:
            proc = await segfetch(*args)
            doc = json.loads(proc.stdout)
            assert proc.returncode == doc["exit_code"] == 1
            assert f"segfetch: error: {doc['error']}" == one_line_error(proc)
    for args in (["get", "http://127.0.0.1:99999/x.whl"], ["get"], ["get", "x", "--size", "y"]):
        usage = await segfetch(*args, "--json")  # bad input, some found by the parser
        assert json.loads(usage.stdout)["exit_code"] == usage.returncode == 2


@pytest.mark.parametrize("stdout", ["full", "closed pipe", "closed"])
async def test_a_stdout_that_cannot_take_the_json_is_one_line(tmp_path: Path, stdout: str) -> None:
    """The file is complete: one line says so and that its result was lost (exit 1, as
    pip's 'Pipe to stdout was broken'); a failure's own exit code stands. No traceback.
    "closed": `>&-`, no stdout at all (Python's print then writes nowhere)."""
    if stdout == "full":
        out = os.open("/dev/full", os.O_WRONLY)
    elif stdout == "closed":
        out = os.open(os.devnull, os.O_WRONLY)  # (closed again in the child)
    else:
        reader, out = os.pipe()
        os.close(reader)
    try:
        async with Emulator({PATH: SyntheticFile(300_000)}) as emu:
            for path, code in [(PATH, 1), ("/nothing.whl", 1), (PATH, 2)]:
                dest = tmp_path / "x.whl"
                args = ["get", emu.url(path), "-o", str(dest), "--json"]
                args += ["--sha256", "zz"] if code == 2 else []
                proc = await trio.run_process(
                    [sys.executable, "-m", "segfetch", *args],
                    stdout=out,
                    capture_stderr=True,
                    check=False,
                    preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None,
                )
                assert proc.returncode == code
                line = one_line_error(proc)
                if path == PATH and code == 1:
                    reason = {"full": "No space left on device", "closed pipe": "Broken pipe"}
                    reason["closed"] = "it is closed"
                    assert line == (
                        f"segfetch: error: cannot write the result to stdout ({reason[stdout]}); "
                        f"{dest} is complete"
                    )
                    assert dest.read_bytes() == emu.content(PATH)
                    dest.unlink()
                else:
                    assert "stdout" not in line
    finally:
        os.close(out)


@pytest.mark.parametrize("closed", [(2,), (1, 2), (0, 1, 2)])
async def test_a_closed_stderr_or_stdin_does_not_fail_the_download(
    tmp_path: Path, closed: tuple[int, ...]
) -> None:
    """`2>&-` (a cron line, a daemon): the progress bar's look at stderr (None then) failed
    every `get` with exit 1 and a traceback nobody saw; nothing was downloaded."""
    async with Emulator({PATH: SyntheticFile(300_000)}) as emu:
        dest = tmp_path / "x.whl"
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", "get", emu.url(PATH), "-o", str(dest)],
            check=False,
            preexec_fn=lambda: os.closerange(closed[0], closed[-1] + 1),
        )
        assert proc.returncode == 0
        assert dest.read_bytes() == emu.content(PATH)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/dl/..%252F..%252Fevil.bin", "..%2F..%2Fevil.bin"),
        ("/dl/a%2F..%2F..%2Fevil.bin", "evil.bin"),
        ("/a%2525.bin", "a%25.bin"),
        ("/pkg%2Dx.whl", "pkg-x.whl"),
    ],
)
def test_the_name_from_the_url_is_decoded_once_and_stays_in_its_folder(
    tmp_path: Path, path: str, name: str
) -> None:
    """A second decoding made "..%252F..%252Fevil.bin" the name "../../evil.bin": written
    two folders up (curl -O keeps the name as it is in the URL)."""
    from urllib.parse import unquote, urlsplit

    from segfetch.cli.get import _destination, _httpx_path

    url = f"http://127.0.0.1:9{path}"
    for decoded in (_httpx_path(url), unquote(urlsplit(url).path)):  # (get, and _early's)
        dest = _destination(decoded, str(tmp_path))
        assert dest == tmp_path / name and dest.parent == tmp_path


async def test_download_of_an_editable_project_is_refused_not_left_out(tmp_path: Path) -> None:
    """pip download zips an -e project of a requirements file; segfetch left it out, exit 0."""
    (tmp_path / "proj").mkdir()
    (tmp_path / "r.txt").write_text(f"-e {tmp_path / 'proj'}\nsix\n")
    proc = await segfetch(
        "download", "-d", str(tmp_path / "d"), "-r", str(tmp_path / "r.txt"),
        "--index-url", "http://127.0.0.1:9/",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "saves no archive of an editable project" in one_line_error(proc)
    assert not (tmp_path / "d").exists()
