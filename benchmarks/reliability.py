"""The reliability matrix: every fault of the link emulator alone, and all of them at once.

    python benchmarks/reliability.py [--seeds N] [--peer-seeds N] [--out FILE] [--json FILE]
                                     [--only FAULT ...] [--no-peers] [--no-crash]
                                     [--no-evidence]

The promise checked: a bad link may cost time, never a broken file. Each run ends in one of

- verified: the file(s) at the destination are byte-identical to what the server holds;
- clean error: a SegfetchError (library) or exactly one `segfetch: error: ` line on stderr with
  exit 1 (CLI), and nothing at the destination;
- BAD: anything else (wrong bytes, a traceback, a multi-line error, a file at the destination
  after a failure, leftovers beside a verified file, a run that does not end).

For each fault (see FAULTS) x command x seed: a fresh emulator (so fault draws depend only on
the seed), one run, the emulator log read for requests, bytes sent and faults fired.
`get` is the library call (segfetch.engine.download) on one 2 MB synthetic file; `download` is
the command line (`python -m segfetch download`) on a pinned set of 10 wheels (2 MB in all)
served by the emulator as a simple index. Then the crash/resume experiment (SIGKILL of
`segfetch get`, then a second run) and the evidence of selected tests (pytest -s), and the
whole thing is written to docs/reliability.md.

Peers on the same cases: the `get` case is also fetched by curl (plain, and `-C - --retry 5
--retry-all-errors`) and aria2c (plain, and with `--checksum=sha-256=...`), found on PATH
(skipped and reported if missing; `--no-peers` skips them), on the same link and seed, with
fewer seeds (`--peer-seeds`). Every run of every tool also records "exit 0 with a wrong file":
success reported while the destination is not the server's file. segfetch must have none;
the peers' are reported, not judged (the exit status counts segfetch's BAD runs only).

Stdlib + segfetch (+ pytest for the evidence section). No network beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from segfetch import __version__
from segfetch.engine.download import download
from segfetch.engine.options import Options
from segfetch.engine.ranges import RangeSet
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import HashMismatch, SegfetchError
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile
from segfetch.testing.emulator.faults import FAULT_KINDS
from segfetch.testing.wheelmaker import make_wheel

ROOT = Path(__file__).resolve().parent.parent
KIB, MIB = 1024, 1024 * 1024
RATE = 2 * MIB  # bytes/s per connection: a CDN that caps each connection
SIZE = 2_000_000  # the `get` file
PATH = "/file.bin"
CONNECTIONS = 8
MIN_SEGMENT = 64 * KIB
TIMEOUT = 2.0  # seconds of silence before a connection counts as stalled
OPTIONS = Options(CONNECTIONS, MIN_SEGMENT, TIMEOUT, RetryPolicy())
RUN_LIMIT = 180.0  # a run still going after this is BAD ("does not end")
# Body faults fire at an offset drawn in [E/2, 3E/2) of a response body; E is about half a
# segment, so that most requests meet one: the get file splits into ~250 KB segments, the
# wheels into ~64 KB ones.
EVERY = {"get": 128 * KIB, "download": 64 * KIB}
# (project, payload bytes): 10 wheels of 2 MB in all, pinned, one version each
WHEELS = [
    ("rel-a", 20_000),
    ("rel-b", 50_000),
    ("rel-c", 80_000),
    ("rel-d", 120_000),
    ("rel-e", 150_000),
    ("rel-f", 200_000),
    ("rel-g", 250_000),
    ("rel-h", 300_000),
    ("rel-i", 350_000),
    ("rel-j", 450_000),
]

Factory = Callable[[int, int], Link]  # (seed, E) -> the link


def _one(*faults: Fault, **link: Any) -> Factory:
    return lambda seed, e: Link(rate=RATE, seed=seed, faults=faults, **link)


def _body(kind: str, **kw: Any) -> Factory:
    return lambda seed, e: Link(rate=RATE, seed=seed, faults=(Fault(kind, every=e, **kw),))


def _server(kind: str, **kw: Any) -> Factory:
    """One fault, built when the link is: a kind this emulator lacks fails only if used."""
    return lambda seed, e: Link(rate=RATE, seed=seed, faults=(Fault(kind, **kw),))


def _chaos(seed: int, e: int) -> Link:
    return Link(
        rate=RATE,
        seed=seed,
        faults=(
            Fault("reset", every=2 * e),
            Fault("close", every=2 * e),
            Fault("stall", every=2 * e, stall_seconds=30, limit=2),
            Fault("status", status=503, rate=0.1, retry_after="1"),
            Fault("status", status=429, rate=0.05, retry_after="1"),
            Fault("wrong_range", rate=0.05),
            Fault("flip", every=4 * e, limit=1),
        ),
    )


# fault name -> (what the emulator does, in words; the link for (seed, E))
FAULTS: dict[str, tuple[str, Factory]] = {
    "none": ("no fault: the baseline for requests and wasted bytes", _one()),
    "reset": ("TCP RST mid-body, at ~E into each response", _body("reset")),
    "close": ("clean close before Content-Length, at ~E", _body("close")),
    "stall": (
        "3 responses per run go silent at ~E for 30 s (client timeout 2 s)",
        _body("stall", stall_seconds=30, limit=3),
    ),
    "flip": ("one byte flipped at ~E, once per run", _body("flip", limit=1)),
    "ignore_range": (
        "30 % of ranged requests answered 200 with the whole file",
        _one(Fault("ignore_range", rate=0.3)),
    ),
    "wrong_range": (
        "30 % of ranged requests (not starting at 0) answered one byte early",
        _one(Fault("wrong_range", rate=0.3)),
    ),
    "429": (
        "20 % of requests: 429, Retry-After: 1",
        _one(Fault("status", status=429, rate=0.2, retry_after="1")),
    ),
    "503": (
        "20 % of requests: 503, Retry-After: 1",
        _one(Fault("status", status=503, rate=0.2, retry_after="1")),
    ),
    "416": (
        "20 % of requests: 416 (a glitch: the range asked is valid)",
        _one(Fault("status", status=416, rate=0.2, retry_after=None)),
    ),
    "500": ("20 % of requests: 500", _one(Fault("status", status=500, rate=0.2, retry_after=None))),
    "change": (
        "content and ETag change from the 4th request on (get: no sha256 given, the new "
        "version is expected whole)",
        _one(Fault("change", after=3)),
    ),
    "max_connections": (
        "at most 3 connections open; more get 503, Retry-After: 1, and a close",
        _one(max_connections=3),
    ),
    "chaos": (
        "all at once: reset and close at ~2E, 2 stalls, 503 (10 %) and 429 (5 %) with "
        "Retry-After: 1, wrong_range 5 %, one flipped byte at ~4E",
        _chaos,
    ),
    # Links on which no client can succeed: the promise is then a clean error.
    "flip_always": (
        "a byte flipped at ~E in every response: no good copy exists (expect clean errors)",
        _body("flip"),
    ),
    "dies": (
        "chaos, and from the 8th request for a file on, every answer is 500 (expect clean "
        "errors; for get the resume state kept)",
        lambda seed, e: replace(
            _chaos(seed, e),
            faults=(
                *_chaos(seed, e).faults,
                Fault("status", status=500, after=7, retry_after=None),
            ),
        ),
    ),
    "chaos_hard": (
        "chaos, plus ignore_range 10 % and at most 4 connections (clean errors allowed)",
        lambda seed, e: replace(
            _chaos(seed, e),
            max_connections=4,
            faults=(*_chaos(seed, e).faults, Fault("ignore_range", rate=0.1)),
        ),
    ),
}
# Misbehaving servers seen in the wild, added when the emulator has the fault kind (FAULT_KINDS).
SERVERS: dict[str, tuple[str, Factory]] = {
    "portal": (
        "the run's first request for a file gets a captive portal's small page (200 "
        "text/html) instead of the file; later ones the file",
        _server("portal", limit=1),
    ),
    "node_etag": (
        "behind a load balancer: each connection reaches one of 2 nodes (seeded), which send "
        "different ETags for the same bytes; an If-Range naming the other node's ETag gets 200 "
        "with the whole file",
        _server("node_etag", nodes=2),
    ),
    "expire": (
        "the URL answers 302 to a signed URL that serves ~4E body bytes (drawn in [2E, 6E), a "
        "body going past it is cut there), then answers 403; the URL gives a new one",
        lambda seed, e: _server("expire", every=4 * e)(seed, e),
    ),
    "gzip_range": (
        "30 % of ranged requests answered 206 with Content-Encoding: gzip (the range's bytes "
        "compressed, chunked), whatever Accept-Encoding asked",
        _server("gzip_range", rate=0.3),
    ),
    "multipart": (
        "30 % of ranged requests answered 206 multipart/byteranges with the one part asked",
        _server("multipart", rate=0.3),
    ),
    "wrong_416": (
        "the first request for a file answered 416 with Content-Range: bytes */0 (the file is "
        "not empty)",
        _server("wrong_416"),
    ),
    "unknown_total": (
        "30 % of ranged requests answered 206 with Content-Range: bytes a-b/* (length unknown)",
        _server("unknown_total", rate=0.3),
    ),
    "shifted_start": (
        "30 % of ranged requests (not starting at 0) answered 206 from 1-4096 bytes earlier "
        "than asked, with the end asked (the Content-Range says so)",
        _server("shifted_start", rate=0.3),
    ),
}
MISSING = [k for k in SERVERS if k not in FAULT_KINDS]  # not in this emulator: left out
FAULTS.update({k: v for k, v in SERVERS.items() if k in FAULT_KINDS})
FAULTS["short_range"] = (
    "every ranged request answered 206 with at most E/2 bytes from the start asked, as its "
    "Content-Range says (a server that cuts its answers short)",
    lambda seed, e: _server("short_range", every=e // 2)(seed, e),
)
FAULTS["unknown_total_cut"] = (
    "every ranged request answered 206 with at most E/2 bytes and Content-Range: bytes a-b/* "
    "(a server that cuts its answers short and never says the size)",
    lambda seed, e: _server("unknown_total", every=e // 2)(seed, e),
)
COMMANDS = ("get", "download")
NOT_APPLICABLE = {("change", "download"): "the emulator changes synthetic files only"}


@dataclass
class Run:
    fault: str
    command: str
    seed: int
    outcome: str  # verified | clean error | BAD
    detail: str = ""  # the error line, or why BAD
    tool: str = "segfetch"  # or a peer's name (PEERS), on the get case
    wrong_file: bool = False  # exit 0 (returned), but the destination is not the server's file
    left: bool = False  # peers: failed, and a (partial) file is at the destination
    seconds: float = 0.0
    retries: int | None = None
    requests: int = 0
    sent: int = 0
    wasted: int = 0
    fired: int = 0
    resume: str | None = None  # get, after a clean error with state kept: "ok" or why BAD
    error: str | None = None  # get: the exception's class


@dataclass
class Cell:
    fault: str
    command: str
    runs: list[Run] = field(default_factory=list)
    tool: str = "segfetch"
    skipped: str = ""  # why this tool did not run this case


def is_get_file(path: str) -> bool:
    """The get file's path in the log, also under a signed URL (/signed/<token>/file.bin)."""
    return path == PATH or (path.startswith("/signed/") and path.endswith(PATH))


# -- get: the library call ---------------------------------------------------------------------


async def run_get(fault: str, seed: int, work: Path) -> Run:
    link = FAULTS[fault][1](seed, EVERY["get"])
    dest = work / "out.bin"
    run = Run(fault, "get", seed, "BAD")
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=link) as emu:
        versions = [emu.content(PATH, v) for v in (0, 1)]
        sha = None if fault == "change" else emu.sha256(PATH)
        t0 = time.perf_counter()
        with trio.move_on_after(RUN_LIMIT) as scope:
            try:
                result = await download(
                    emu.url(PATH),
                    dest,
                    OPTIONS,
                    sha256=sha,
                    seed=seed,
                )
            except SegfetchError as exc:
                run.detail, run.error = str(exc), type(exc).__name__
                if "\n" in run.detail or not run.detail:
                    run.detail = f"BAD: error message is not one line: {run.detail!r}"
                elif dest.exists():
                    run.detail = f"BAD: a file at the destination after: {exc}"
                elif not isinstance(exc, HashMismatch) and not _state_kept(dest):
                    # by design when the server ignored ranges (one stream, no resume)
                    run.outcome, run.detail = "clean error", f"{exc} [no resume state]"
                else:
                    run.outcome = "clean error"
            except Exception:
                run.detail = "BAD: " + traceback.format_exc(limit=3).strip().replace("\n", " | ")
            else:
                run.retries = result.retries
                leftovers = sorted(p.name for p in work.iterdir() if p != dest)
                if not dest.is_file() or dest.read_bytes() not in versions:
                    run.wrong_file = True
                    run.detail = "BAD: returned, but the destination is not the server's file"
                elif leftovers:
                    run.detail = f"BAD: leftovers beside the verified file: {leftovers}"
                else:
                    run.outcome = "verified"
        run.seconds = time.perf_counter() - t0
        if scope.cancelled_caught:
            run.outcome, run.detail = "BAD", f"BAD: still running after {RUN_LIMIT:g} s"
        await _settle(emu)
        _account(run, emu, is_get_file, SIZE)
        if run.outcome == "clean error" and _state_kept(dest):
            await resume(run, emu, dest, sha, versions[0])  # a clean link serves version 0
    return run


async def resume(run: Run, emu: Emulator, dest: Path, sha: str | None, want: bytes) -> None:
    """After a clean error: a second run on a clean link must complete from the saved state
    without asking for a byte the control file records as done."""
    control = dest.with_name(dest.name + ".part.json")
    done = RangeSet((a, b) for a, b in json.loads(control.read_text())["done"])
    first = len(emu.log)
    # The same content and validators (a node's ETag included), no faults
    nodes = tuple(f for f in emu.link.faults if f.kind == "node_etag")
    emu.link = Link(rate=RATE, seed=run.seed, faults=nodes)
    try:
        with trio.fail_after(RUN_LIMIT):
            result = await download(
                emu.url(PATH), dest, OPTIONS, sha256=sha, seed=run.seed,
            )  # fmt: skip
        await _settle(emu)
    except Exception as exc:
        run.resume = f"BAD: the second run failed: {type(exc).__name__}: {exc}"
        run.outcome, run.detail = "BAD", f"{run.resume} (first run: {run.detail})"
        return
    again = [e for e in emu.log[first:] if is_get_file(str(e["path"])) and e["method"] == "GET"]
    inside = [
        e for e in again if e["start"] is None or done.covers(_n(e["start"]), _n(e["start"]) + 1)
    ]
    if dest.read_bytes() != want:
        run.resume = "BAD: the resumed file has wrong bytes"
    elif inside or result.resumed != done.total():
        n, got = len(inside), result.resumed
        run.resume = f"BAD: {n} requests inside done ranges; resumed {got} of {done.total()}"
    else:
        run.resume = "ok"
    if run.resume != "ok":
        run.outcome, run.detail = "BAD", f"{run.resume} (first run: {run.detail})"


def _n(value: object) -> int:
    """An integer field of an emulator log row."""
    assert isinstance(value, int), value
    return value


def _state_kept(dest: Path) -> bool:
    return all(dest.with_name(dest.name + s).is_file() for s in (".part", ".part.json"))


async def _settle(emu: Emulator) -> None:
    """Wait until the server has logged every answer (a stalled one ends when the client
    leaves)."""
    with trio.move_on_after(10):
        while emu.open_connections:
            await trio.sleep(0.02)


def _account(run: Run, emu: Emulator, is_file: Callable[[str], bool], size: int) -> None:
    rows = [e for e in emu.log if is_file(str(e["path"])) and e["method"] == "GET"]
    run.requests = len(rows)
    run.sent = sum(_n(e["sent"]) for e in rows)
    run.wasted = run.sent - size
    run.fired = sum(1 for e in emu.log if e["fault"] is not None)
    run.fired += any(_n(e["version"]) > 0 for e in rows)


# -- download: the command line against an index ------------------------------------------------


def build_index(folder: Path) -> dict[str, bytes]:
    for i, (name, payload) in enumerate(WHEELS):
        make_wheel(folder, name, "1.0", payload=payload, seed=i)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def run_download(
    fault: str, seed: int, work: Path, index: Path, wheels: dict[str, bytes]
) -> Run:
    link = FAULTS[fault][1](seed, EVERY["download"])
    out = work / "out"
    run = Run(fault, "download", seed, "BAD")
    env = {**os.environ, "SEGFETCH_CONFIG": str(work / "config.json")}
    cmd = [
        sys.executable, "-m", "segfetch", "download", *(f"{n}==1.0" for n, _ in WHEELS),
        "-d", str(out), "-n", str(CONNECTIONS), "--min-segment", f"{MIN_SEGMENT // KIB}K",
        "--timeout", f"{TIMEOUT:g}", "--no-cache", "--json", "-q",
    ]  # fmt: skip
    async with Emulator(index=index, link=link) as emu:
        cmd += ["--index-url", emu.index_url]
        t0 = time.perf_counter()
        proc = None
        with trio.move_on_after(RUN_LIMIT):
            proc = await trio.run_process(
                cmd, capture_stdout=True, capture_stderr=True, check=False, env=env
            )
        run.seconds = time.perf_counter() - t0
        if proc is None:
            run.detail = f"BAD: still running after {RUN_LIMIT:g} s"
        else:
            err = proc.stderr.decode(errors="replace")
            lines = err.strip().splitlines()
            got = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else {}
            if proc.returncode == 0:
                if got == wheels:
                    run.outcome = "verified"
                    report = json.loads(proc.stdout)
                    run.retries = sum(int(r.get("retries") or 0) for r in report)
                else:
                    run.wrong_file = True
                    differ = sorted(
                        set(got) ^ set(wheels) | {k for k in got if got[k] != wheels.get(k)}
                    )
                    run.detail = f"BAD: exit 0 but the files differ from the index's: {differ}"
            elif (
                proc.returncode == 1
                and len(lines) == 1
                and lines[0].startswith("segfetch: error: ")
                and "Traceback" not in err
                and not got
            ):
                run.outcome, run.detail = "clean error", lines[0]
            else:
                tail = " | ".join(lines[-3:])
                run.detail = f"BAD: exit {proc.returncode}, {len(got)} files in -d, stderr: {tail}"
        await _settle(emu)
        _account(run, emu, lambda p: p.endswith(".whl"), sum(len(b) for b in wheels.values()))
    return run


# -- peers: curl and aria2c on the get case ---------------------------------------------------

CURL, ARIA2C = shutil.which("curl"), shutil.which("aria2c")
PEER_SEEDS = 3  # seeds per peer cell (default): the peers' runs are the slow part
PEER_LIMIT = 120.0  # a peer's run still going after this counts as BAD ("does not end")
# Peer runs at a time: they mostly wait (stalls waited out, curl's backoff), and one at a time
# would take ~12 minutes per seed. segfetch's runs go one at a time.
PEER_PARALLEL = 6
ARIA2 = [
    "-x8", "-s8", "-k1M", "--allow-overwrite=true", "--auto-file-renaming=false",
    "--no-conf=true", "--console-log-level=error", "--summary-interval=0",
]  # fmt: skip


@dataclass(frozen=True)
class Peer:
    name: str  # as shown in the tables
    exe: str | None  # None: not installed
    args: Callable[[str, Path, str | None], list[str]]  # (url, dest, sha256) -> the argv
    checksum: bool = False  # needs the sha256 (not run where none is given: `change`)
    missing: str = ""  # why it is not run at all, beside "not installed"


@functools.cache
def _curl_retry_all() -> bool:
    """--retry-all-errors: curl 7.71 and later."""
    if CURL is None:
        return False
    out = subprocess.run([CURL, "--help", "all"], capture_output=True, text=True, check=False)
    return "--retry-all-errors" in out.stdout


def peers() -> list[Peer]:
    retry = ["-C", "-", "--retry", "5"] + (["--retry-all-errors"] if _curl_retry_all() else [])

    def curl(extra: list[str]) -> Callable[[str, Path, str | None], list[str]]:
        return lambda url, dest, sha: [str(CURL), "-sS", "-f", "-L", *extra, "-o", str(dest), url]

    def aria2c(checksum: bool) -> Callable[[str, Path, str | None], list[str]]:
        def args(url: str, dest: Path, sha: str | None) -> list[str]:
            extra = [f"--checksum=sha-256={sha}"] if checksum and sha else []
            return [str(ARIA2C), *ARIA2, *extra, "-d", str(dest.parent), "-o", dest.name, url]

        return args

    return [
        Peer("curl", CURL, curl([])),
        Peer("curl " + " ".join(retry), CURL, curl(retry)),
        Peer("aria2c", ARIA2C, aria2c(False)),
        Peer("aria2c --checksum", ARIA2C, aria2c(True), checksum=True),
    ]


def _what(data: bytes, versions: list[bytes]) -> str:
    """What a wrong file looks like, in a few words."""
    if not data:
        return "an empty file"
    if data.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if data[:2] == b"\x1f\x8b":
        return "gzip data"
    if data.startswith(b"--"):
        return "a multipart body"
    if data in versions:
        return "the right bytes"
    if any(v.startswith(data) for v in versions):
        return "the file's first bytes"
    if any(len(v) == len(data) for v in versions):
        differ = min(sum(a != b for a, b in zip(v, data, strict=True)) for v in versions)
        return f"{differ:,} byte{'s' if differ > 1 else ''} wrong"
    return "parts of the file, with holes or wrong bytes"


async def run_peer(peer: Peer, fault: str, seed: int, work: Path) -> Run:
    link = FAULTS[fault][1](seed, EVERY["get"])
    dest = work / "out.bin"
    run = Run(fault, "get", seed, "BAD", tool=peer.name)
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=link) as emu:
        versions = [emu.content(PATH, v) for v in (0, 1)]
        sha = None if fault == "change" else emu.sha256(PATH)
        t0 = time.perf_counter()
        proc = None
        with trio.move_on_after(PEER_LIMIT):
            proc = await trio.run_process(
                peer.args(emu.url(PATH), dest, sha),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=work,
            )
        run.seconds = time.perf_counter() - t0
        data = dest.read_bytes() if dest.is_file() else None
        if proc is None:
            run.detail = f"BAD: still running after {PEER_LIMIT:g} s"
        elif proc.returncode == 0:
            if data in versions:
                run.outcome = "verified"
            else:
                run.wrong_file = True
                run.detail = "BAD: exit 0 with a wrong file: " + (
                    "no file" if data is None else f"{len(data):,} bytes, {_what(data, versions)}"
                )
        else:
            out = (proc.stderr + proc.stdout).decode(errors="replace")
            why = _peer_error(out)
            if data is not None:
                run.left = True
                run.detail = (
                    f"BAD: exit {proc.returncode} with {len(data):,} bytes left at the "
                    f"destination ({_what(data, versions)}): " + why
                )
            else:
                run.outcome, run.detail = "clean error", f"exit {proc.returncode}: {why}"
        await _settle(emu)
        _account(run, emu, is_get_file, SIZE)
    return run


def _peer_error(out: str) -> str:
    """The line of a peer's output that says why it failed."""
    lines = [x.strip() for x in out.splitlines() if x.strip()]
    for key in ("curl: (", "errorCode=", "Exception:", "error"):
        hits = [x for x in lines if key in x]
        if hits:
            return re.sub(r"^\S+ \S+ \[\w+\] ", "", hits[-1])[:200]  # aria2c's time stamp
    return lines[-1][:200] if lines else "(no output)"


# -- crash and resume ------------------------------------------------------------------------


@dataclass
class Crash:
    kill_at: float  # fraction of the file done when SIGKILL was sent
    done_at_kill: int
    resumed: int  # what the second run reported as already on disk
    second_sent: int  # body bytes the server sent in the second run
    refetched: int  # bytes of the second run's responses inside ranges done before the kill
    starts_inside_done: int  # requests of the second run starting inside a done range
    verified: bool


async def crash_resume(kill_at: float, work: Path) -> Crash:
    size = 8_000_000
    dest = work / "crash.bin"
    control = work / "crash.bin.part.json"
    env = {**os.environ, "SEGFETCH_CONFIG": str(work / "config.json")}
    async with Emulator({PATH: SyntheticFile(size)}, link=Link(rate=512 * KIB)) as emu:
        cmd = [sys.executable, "-m", "segfetch", "get", emu.url(PATH), "-o", str(dest)]
        cmd += ["-n", "4", "-q", "--sha256", emu.sha256(PATH)]
        proc = subprocess.Popen(cmd, env=env)
        try:
            with trio.fail_after(60):
                while True:
                    await trio.sleep(0.05)
                    if control.exists():
                        with_done = RangeSet(json.loads(control.read_text())["done"])
                        if with_done.total() >= kill_at * size:
                            break
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        done = RangeSet(json.loads(control.read_text())["done"])
        await _settle(emu)
        first = len(emu.log)
        emu.link = Link()
        rerun = await trio.run_process(
            [*cmd[:-3], "--json", "--sha256", emu.sha256(PATH)],
            capture_stdout=True,
            check=False,
            env=env,
        )
        verified = rerun.returncode == 0 and dest.read_bytes() == emu.content(PATH)
        resumed = json.loads(rerun.stdout)["resumed"] if rerun.returncode == 0 else -1
        await _settle(emu)
    second = [e for e in emu.log[first:] if e["path"] == PATH]
    refetched = 0
    for e in second:
        a, n = _n(e["start"]), _n(e["sent"])
        refetched += sum(max(0, min(a + n, y) - max(a, x)) for x, y in done)
    return Crash(
        kill_at,
        done.total(),
        resumed,
        sum(_n(e["sent"]) for e in second),
        refetched,
        sum(done.covers(_n(e["start"]), _n(e["start"]) + 1) for e in second),
        verified,
    )


# -- evidence from the tests -----------------------------------------------------------------

KILLED = "tests/test_cli.py::test_killed_download_resumes_without_refetching"
GIB = "tests/test_cli.py::test_one_gib_download_keeps_memory_flat"
REPAIR = "tests/test_repair.py::test_flipped_byte_in_a_zip_refetches_only_that_member_over_loopback"
EVIDENCE_TESTS = [KILLED, GIB, REPAIR, "tests/test_hostile.py"]


def run_evidence() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-rA", "--durations=0", "-n", "0",
         "-p", "no:cacheprovider", *EVIDENCE_TESTS],  # -n 0: xdist's workers hide -s output
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out = proc.stdout
    status = dict(
        (m.group(2), m.group(1))
        for m in re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+)", out, re.M)
    )
    durations = {
        m.group(2): float(m.group(1)) for m in re.finditer(r"^([\d.]+)s call\s+(\S+)", out, re.M)
    }
    rss = re.search(r"peak RSS of `segfetch get` for 1 GiB: ([\d.]+) MiB", out)
    repair = re.search(r"repair: (\d+) of (\d+) bytes fetched again; (\d+) sent in all", out)
    summary = out.strip().splitlines()[-1] if out.strip() else proc.stderr.strip()[-200:]
    return {
        "status": status,
        "durations": durations,
        "rss_mib": float(rss.group(1)) if rss else None,
        "repair": [int(g) for g in repair.groups()] if repair else None,
        "summary": summary,
        "returncode": proc.returncode,
    }


# -- the report ------------------------------------------------------------------------------


def median(xs: list[int] | list[float]) -> str:
    return f"{statistics.median(xs):g}" if xs else "-"


def size_text(n: float) -> str:
    if abs(n) >= MIB:
        return f"{n / MIB:.2f} MiB"
    if abs(n) >= KIB:
        return f"{n / KIB:.0f} KiB"
    return f"{n:.0f} B"


def resumed(c: Cell) -> str:
    """get: second runs on a clean link that resumed without refetching, of those tried."""
    if c.command != "get":
        return "n/a (`--no-cache`)"
    errors = [r for r in c.runs if r.outcome != "verified"]
    if not errors:
        return "-"
    tried = [r for r in errors if r.resume is not None]
    mismatch = sum(r.error == "HashMismatch" for r in errors)  # nothing kept, by design
    lost = len(errors) - len(tried) - mismatch
    notes = [f"{sum(r.resume == 'ok' for r in tried)} of {len(tried)}"] if tried else []
    notes += [f"{lost} kept no state"] if lost else []
    notes += [f"{mismatch} sha256 mismatch: nothing kept"] if mismatch else []
    return "; ".join(notes)


def normalized(detail: str) -> str:
    detail = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", detail)
    detail = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", detail)
    return re.sub(r"received \d+ bytes", "received N bytes", detail)


def spread(xs: list[float]) -> str:
    """The median, with min-max when there are several values."""
    if not xs:
        return "-"
    m = f"{statistics.median(xs):.2f}"
    return m if len(xs) == 1 else f"{m} ({min(xs):.2f}-{max(xs):.2f})"


def counts(c: Cell) -> dict[str, int]:
    n = {o: sum(r.outcome == o for r in c.runs) for o in ("verified", "clean error", "BAD")}
    n["wrong"] = sum(r.wrong_file for r in c.runs)
    n["left"] = sum(r.left for r in c.runs)
    return n


def strong(n: int) -> str:
    return f"**{n}**" if n else "0"


def matrix_table(cells: list[Cell]) -> str:
    head = (
        "| fault | command | verified | clean error | BAD | exit 0 with a wrong file "
        "| median retries | median wasted | median requests | median faults fired "
        "| median s (min-max) | resumed after the error |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    rows = []
    for c in cells:
        if (c.fault, c.command) in NOT_APPLICABLE:
            why = NOT_APPLICABLE[c.fault, c.command]
            rows.append(f"| {c.fault} | {c.command} | n/a: {why} |||||||||| ")
            continue
        n = counts(c)
        ok = [r for r in c.runs if r.outcome == "verified"]
        retries = median([r.retries for r in ok if r.retries is not None])
        wasted = size_text(statistics.median([r.wasted for r in ok])) if ok else "-"
        rows.append(
            f"| {c.fault} | {c.command} | {n['verified']} | {n['clean error']} | "
            f"{strong(n['BAD'])} | {strong(n['wrong'])} | "
            f"{retries} | {wasted} | {median([r.requests for r in c.runs])} | "
            f"{median([r.fired for r in c.runs])} | "
            f"{spread([r.seconds for r in c.runs])} | {resumed(c)} |"
        )
    return head + "\n".join(rows) + "\n"


def peer_table(cells: list[Cell]) -> str:
    head = (
        "| fault | tool | verified | clean error | BAD | exit 0 with a wrong file "
        "| failed, a file left at the destination | did not end | median requests "
        "| median s (min-max) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for c in cells:
        if c.skipped:
            rows.append(f"| {c.fault} | {c.tool} | n/a: {c.skipped} ||||||| ")
            continue
        n = counts(c)
        hung = sum("still running" in r.detail for r in c.runs)
        rows.append(
            f"| {c.fault} | {c.tool} | {n['verified']} | {n['clean error']} | {n['BAD']} | "
            f"{strong(n['wrong'])} | {n['left']} | {hung} | "
            f"{median([r.requests for r in c.runs])} | {spread([r.seconds for r in c.runs])} |"
        )
    return head + "\n".join(rows) + "\n"


def summary_table(cells: list[Cell], peer_cells: list[Cell]) -> str:
    """One line per fault: verified / clean error / BAD / exit 0 with a wrong file, per tool."""
    tools = ["segfetch get", "segfetch download"]
    tools += list(dict.fromkeys(c.tool for c in peer_cells))
    table: dict[tuple[str, str], Cell] = {}
    for c in cells:
        table[c.fault, f"segfetch {c.command}"] = c
    for c in peer_cells:
        table[c.fault, c.tool] = c
    out = "| fault | " + " | ".join(f"`{t}`" for t in tools) + " |\n"
    out += "|---|" + "---:|" * len(tools) + "\n"
    for fault in dict.fromkeys(c.fault for c in cells):
        row = []
        for t in tools:
            cell = table.get((fault, t))
            if cell is None or cell.skipped or (cell.fault, cell.command) in NOT_APPLICABLE:
                row.append("n/a")
                continue
            n = counts(cell)
            row.append(f"{n['verified']} / {n['clean error']} / {n['BAD']} / {strong(n['wrong'])}")
        out += f"| {fault} | " + " | ".join(row) + " |\n"
    return out


def version(exe: str | None, *args: str) -> str:
    if exe is None:
        return "not installed"
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, check=False).stdout
    except OSError as exc:
        return f"not runnable ({exc})"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:  # Linux; other systems keep platform's answer
        m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        cpu = m.group(1) if m else cpu
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM; {platform.platform()}; "
        f"Python {platform.python_version()}; trio {trio.__version__}; segfetch {__version__} "
        f"(git {commit}); loopback only (emulator and client on the same machine)"
    )


def render(
    cells: list[Cell], peer_cells: list[Cell], args: argparse.Namespace,
    crashes: list[Crash], evidence: dict[str, Any] | None, started: str, elapsed: float,
) -> str:  # fmt: skip
    seeds, argv = args.seeds, args.argv
    bad = [r for c in cells for r in c.runs if r.outcome == "BAD"]
    wrong = sum(r.wrong_file for c in cells for r in c.runs)
    errors = Counter(
        (r.fault, r.command, normalized(r.detail))
        for c in cells for r in c.runs if r.outcome == "clean error"
    )  # fmt: skip
    total = sum(len(c.runs) for c in cells)
    faults = "\n".join(f"| {k} | {v[0]} |" for k, v in FAULTS.items())
    parts = [
        "# Reliability\n",
        "Generated by `benchmarks/reliability.py` (see the end for how to run it again); "
        "every figure below comes from the run recorded here.\n",
        "## What is promised\n",
        "A bad link can cost time, never a broken file or a half-installed environment. "
        "Every run ends in one of two ways:\n",
        "- **verified**: the file at the destination is byte-identical to the server's "
        "(sha256 checked before the rename), or the environment holds exactly the requested "
        "packages;",
        "- **clean error**: one line `segfetch: error: ...` on stderr and exit 1 (the library "
        "raises one `SegfetchError` with a one-line message), nothing at the final path, and "
        "for `get` the resume state (`<dest>.part` + `<dest>.part.json`) kept so that the next "
        "run fetches only what is missing.\n",
        "Anything else is **BAD**: wrong bytes, a traceback, a multi-line error, a file at the "
        "destination after a failure, leftovers beside a verified file, a run that does not end "
        f"(limit {RUN_LIMIT:g} s).\n",
        "## How it is checked\n",
        "- `tests/test_chaos.py` (in the default test run): a seeded chaos link (resets, clean "
        "closes, stalls against a 0.5 s timeout, 503s, Content-Ranges one byte early) for the "
        "library `get` (4 seeds), the `download` command (a pinned set and a set resolved by "
        "pip through segfetch's local index), and `install` into a fresh `python -m venv`. "
        "Each run must end verified or clean; a failed `get` must leave `.part` and "
        "`.part.json`, and a second run on a clean link must complete without any request "
        "starting inside a range the control file records as done. A server that answers 500 "
        "to everything after its 6th request makes the failure path certain (CLI `get`, 2 "
        "seeds).",
        "- `benchmarks/reliability.py` (`nox -s reliability`): the matrix below, every fault "
        "kind alone and all at once, for both commands, several seeds, each run on a fresh "
        "emulator so that its faults depend only on the seed; and curl and aria2c on the "
        "same `get` cases (*Peers on the same cases*).\n",
        "## The matrix\n",
        f"Link: {RATE / MIB:g} MiB/s per connection, no RTT, emulator on 127.0.0.1. Body faults "
        f"fire at an offset drawn in [E/2, 3E/2) of a response, E = {EVERY['get'] // KIB} KiB "
        f"for `get` and {EVERY['download'] // KIB} KiB for `download` (about half a segment). "
        f"`get`: the library call `segfetch.engine.download` on one {SIZE:,} byte synthetic "
        f"file, `--sha256` given (except for `change`), {CONNECTIONS} connections, "
        f"min segment {MIN_SEGMENT // KIB} KiB, timeout {TIMEOUT:g} s, the default retry "
        "policy (5 tries without progress, backoff from 0.25 s). `download`: `python -m "
        f"segfetch download` of {len(WHEELS)} pinned wheels "
        f"({sum(p for _, p in WHEELS):,} bytes of payload) from the emulator's simple index, "
        f"`-n {CONNECTIONS} --min-segment {MIN_SEGMENT // KIB}K --timeout {TIMEOUT:g} "
        "--no-cache`. Seeds 1.." + str(seeds) + " per cell.\n",
        "| fault | what the emulator does |\n|---|---|\n" + faults + "\n",
        *(
            [
                "Not in this run (the emulator has no such fault kind yet): "
                + ", ".join(f"`{k}`" for k in MISSING)
                + ".\n"
            ]
            if MISSING
            else []
        ),
        "Columns: outcome counts; *exit 0 with a wrong file*: runs that reported success "
        "(exit 0; for the library, `download` returned) while the destination is not "
        "byte-identical to the server's file (for `change`, to one whole version): the one "
        "failure that a caller cannot see, counted apart from BAD (which includes it) and "
        "required to read 0; over the verified runs, median retries (the engine's count; "
        "for `download` summed over the files) and median wasted bytes (the emulator log's "
        "`sent` for the file(s) minus their size: bytes that crossed the wire twice, or that "
        "the server wrote after the client had stopped reading, e.g. the rest of the "
        "open-ended first request; after a reset the client may have received less than "
        "`sent`); over all runs, median requests for the file(s), median faults fired (log "
        "entries with a fault, plus one when a changed version was served; a fault may fire "
        "on bytes the client no longer wanted) and wall seconds, median and min-max "
        "(informative only).\n",
        matrix_table(cells),
        "*Resumed after the error* (`get` only; `download --no-cache` keeps its resume state "
        "in a throw-away cache): after a clean error with `.part` + `.part.json` kept, a second "
        "run on a clean link must complete with `resumed` equal to the bytes the control file "
        "records as done and no request starting inside them (else the run counts as BAD). "
        "*Kept no state*: a server that ignores ranges altogether is fetched as one stream, "
        "which has no resume state (docs/architecture.md, step 8); a 200 to one ranged "
        "request is retried and keeps the state. A sha256 mismatch deletes the `.part` by "
        "design.\n",
        "Reading the table: `flip` on `get` costs one whole refetch because the synthetic file "
        "is not a zip (a wheel costs one member: see *Repair* below). The `none` row is the "
        "baseline of wasted bytes: the first request of each file is open-ended, and the "
        "server writes ahead into the socket after the client has read its first segment.\n",
        f"{total} segfetch runs, {len(bad)} BAD, {wrong} exit 0 with a wrong file. Run started "
        f"{started}, took {elapsed / 60:.1f} min (peers, crash runs and evidence included).\n",
    ]
    if bad:
        parts.append("### BAD outcomes\n")
        parts += [f"- {r.fault} / {r.command} / seed {r.seed}: {r.detail}" for r in bad]
        parts.append("")
    if errors:
        parts.append("### The clean errors seen\n")
        parts += [f"- {f} / {c} ({n}x): `{d}`" for (f, c, d), n in sorted(errors.items())]
        parts.append("")
    if peer_cells:
        parts += peer_sections(cells, peer_cells, args)
    parts += [
        "## Crash and resume\n",
        "`segfetch get` of an 8,000,000 byte file (512 KiB/s per connection, `-n 4`) is killed "
        "with SIGKILL once the control file records the given share as done; the same command "
        "then runs again on a clean link. *Refetched* counts bytes of the second run's "
        "responses that fall inside ranges recorded as done before the kill.\n",
        "| killed at | done at kill | resumed (reported) | sent in the 2nd run | refetched "
        "| requests starting in done ranges | verified |\n|---:|---:|---:|---:|---:|---:|---|",
    ]
    parts += [
        f"| {c.kill_at:.0%} | {c.done_at_kill:,} | {c.resumed:,} | {c.second_sent:,} | "
        f"{c.refetched:,} | {c.starts_inside_done} | {'yes' if c.verified else '**no**'} |"
        for c in crashes
    ]
    parts.append(
        "\nThe same property is a test: tests/test_cli.py::"
        "test_killed_download_resumes_without_refetching (SIGKILL, then no request of the "
        "second run starts inside a completed range, and `resumed` equals the done bytes)"
        + (
            f"; in the evidence run below it {str(_lookup(evidence['status'], KILLED)).lower()}"
            if evidence is not None
            else ""
        )
        + ".\n"
    )
    if evidence is not None:
        parts += evidence_sections(evidence)
    parts += [
        "## The machine\n",
        machine() + "\n",
        f"Peers: {version(CURL, '--version')}; {version(ARIA2C, '--version')}.\n",
        "## Reproduce\n",
        "```sh",
        "pip install -e '.[test]'",
        "python benchmarks/reliability.py              # the whole matrix: this file",
        "nox -s reliability                            # the same in a nox venv",
        "python benchmarks/reliability.py --seeds 2 --only reset chaos --no-evidence "
        "--out /tmp/r.md",
        "python benchmarks/reliability.py --no-peers ...  # segfetch only (no curl, aria2c)",
        "pytest -q tests/test_chaos.py                 # the short version, in the default run",
        "```\n",
        f"This file was written by: `python benchmarks/reliability.py {' '.join(argv)}`. "
        "A BAD run is reproduced by its fault, command and seed: the emulator draws faults "
        "from (seed, path, range start, attempt), and `FAULTS` in the script gives the link.\n",
    ]
    return "\n".join(parts)


def peer_sections(cells: list[Cell], peer_cells: list[Cell], args: argparse.Namespace) -> list[str]:
    ran = [c for c in peer_cells if not c.skipped]
    runs = [r for c in ran for r in c.runs]
    wrong = sum(r.wrong_file for r in runs)
    missing = sorted({c.tool for c in peer_cells if c.skipped == "not installed"})
    details = Counter((r.fault, r.tool, normalized(r.detail)) for r in runs if r.detail)
    commands = (
        "\n".join(
            f"- `{p.name}`: `{' '.join(p.args('URL', Path('DIR/out.bin'), 'HEX'))}`"
            for p in peers()
        )
        .replace(str(CURL), "curl")
        .replace(str(ARIA2C), "aria2c")
    )
    out = [
        "## Peers on the same cases\n",
        "The `get` case (one 2,000,000 byte file, the same link and seed, a fresh emulator per "
        "run) fetched by curl and aria2c as a user would, measured in the same run as "
        f"segfetch. Seeds 1..{args.peer_seeds} per cell (segfetch: 1..{args.seeds}); fewer "
        "seeds because a peer's run is slower (one connection, curl's backoff of 1, 2, 4, 8, "
        f"16 s, stalls waited out) and the whole run must stay near 20 minutes; for the same "
        f"reason {PEER_PARALLEL} peer runs go at a time, each with its own emulator (segfetch's "
        "runs go one at a time), so a peer's seconds include that load. A peer's run "
        f"still going after {PEER_LIMIT:g} s is stopped and counted as BAD.\n",
        commands + "\n",
        "Notes on the commands: `-L` is added to the curl commands given in the issue "
        "(`curl -sS -f -o FILE URL`): without it curl saves the body of a 302 and no redirect "
        "is followed, which would make the `expire` row say nothing about a download. With "
        "`-k1M` aria2c splits the 2 MB file into at most 2 pieces, so it opens 2 connections, "
        "not 8. `--no-conf` keeps a local aria2.conf out; the log options only change what it "
        "prints. `aria2c --checksum` is not run on `change` (no single sha256 exists; segfetch "
        "`get` runs without one there too). curl 7.88 works out `-C -` once, before the first "
        "try: its retries start again from that offset (here byte 0, a request without a "
        "Range header, as the emulator's log shows), so `--retry` does not resume what an "
        "earlier try received.\n",
        "The peers are judged by the same rules as segfetch: **verified** = exit 0 and the "
        "file byte-identical to the server's (for `change`, to one whole version); **clean "
        "error** = a non-zero exit and nothing at the destination path (side files such as "
        "`out.bin.aria2` allowed, as segfetch's `.part`); everything else **BAD**, split into "
        "*exit 0 with a wrong file* (success reported, wrong bytes kept: the failure a script "
        "cannot see), *failed, a file left at the destination* (a non-zero exit, but a "
        "partial or wrong file sits under the final name: curl and aria2c keep partial files "
        "there by design, to resume them, so this is a difference of design that a caller "
        "checking the exit code can handle) and *did not end*. A peer's error output is not "
        "held to one line.\n",
        "### Summary: verified / clean error / BAD / exit 0 with a wrong file\n",
        f"segfetch's counts are from the matrix above ({args.seeds} seeds per cell; `download` "
        f"is {len(WHEELS)} wheels through the CLI, so it has no peer here); the peers' from "
        f"the table below ({args.peer_seeds} seeds per cell).\n",
        summary_table(cells, peer_cells),
        f"{len(runs)} peer runs; {wrong} of them exited 0 with a wrong file.\n",
    ]
    if missing:
        out.append(f"Not installed, so not run: {', '.join(missing)}.\n")
    out += ["### Each peer\n", peer_table(peer_cells)]
    if details:
        out.append("### What the peers' errors and BAD runs were\n")
        out += [f"- {f} / `{t}` ({n}x): {d}" for (f, t, d), n in sorted(details.items())]
        out.append("")
    return out


HOSTILE = {
    "test_hostile_server_fails_cleanly[slow_loris-": (
        "slow loris: a header byte every 50 ms, never finishing"
    ),
    "test_hostile_server_fails_cleanly[huge_header-": ("a 20 MiB header line"),
    "test_hostile_server_fails_cleanly[redirect_to_self-": ("a redirect loop"),
    "test_body_longer_than_the_index_size_is_cut": (
        "an endless chunked body (would be 128 MiB) for a file the index says is 100,000 bytes"
    ),
    "test_credentials_do_not_follow_a_redirect_to_another_host": (
        "credentials in the URL, redirect to another host: Authorization not sent there"
    ),
    "test_unwritable_destination_is_one_line": ("the .part cannot be opened: one line"),
    "test_file_size_limit_gives_one_line": (
        "RLIMIT_FSIZE 200 kB (as a full disk): EFBIG, one line, nothing at the path"
    ),
}


def _lookup(table: dict[str, Any], test: str) -> Any:
    # pytest's summary lines cut a parametrized id at its first space: match the start
    return next((v for k, v in table.items() if test.startswith(k) or k.startswith(test)), None)


def evidence_sections(ev: dict[str, Any]) -> list[str]:
    st, du = ev["status"], ev["durations"]

    def res(test: str) -> str:
        return str(_lookup(st, test) or "not run").lower()

    def dur(test: str) -> str:
        d = _lookup(du, test)
        return f"{d:.2f} s" if d is not None else "-"

    rss, repair = ev["rss_mib"], ev["repair"]
    gib, rep = GIB, REPAIR
    out = [
        "## Memory: 1 GiB\n",
        f"`{gib}` ({res(gib)}): `segfetch get -n 8 --sha256 ...` of a 1 GiB synthetic file "
        "on an unthrottled loopback link, peak RSS of the process (ru_maxrss): "
        + (f"**{rss:.1f} MiB**" if rss is not None else "not printed")
        + f" (the test asserts < 100 MiB); the test took {dur(gib)}.\n",
        "## Repair of a flipped byte inside a wheel\n",
        f"`{rep}` ({res(rep)}): a 40-member stored zip of 100 kB members, one byte flipped on "
        "the way. ",
    ]
    if repair is not None:
        again, size, sent = repair
        out[-1] += (
            f"The sha256 fails, the members that fail their CRC are fetched again: "
            f"**{again:,} of {size:,} bytes** ({again / size:.1%}) fetched again, "
            f"{sent:,} bytes sent in all ({(sent - size) / size:.1%} over the file size).\n"
        )
    out += [
        "## Hostile servers\n",
        "tests/test_hostile.py: each must end with one clean error (or, for credentials, not "
        "leak them) in bounded time and memory, with nothing at the destination.\n",
        "| server | result | test time |\n|---|---|---:|",
    ]
    for name, what in HOSTILE.items():
        test = f"tests/test_hostile.py::{name}"
        out.append(f"| {what} | {res(test)} | {dur(test)} |")
    out.append(f"\nThe evidence run: `{ev['summary']}`.\n")
    return out


# -- main ------------------------------------------------------------------------------------


async def run_peers(fault: str, seeds: int, tmpdir: Path) -> list[Cell]:
    """Every peer on one fault, PEER_PARALLEL runs at a time (each with its own emulator)."""
    cells = []
    limiter = trio.CapacityLimiter(PEER_PARALLEL)

    async def one(peer: Peer, cell: Cell, seed: int) -> None:
        async with limiter:
            work = tmpdir / f"{fault}-{peer.name.replace(' ', '_')}-{seed}"
            work.mkdir()
            run = await run_peer(peer, fault, seed, work)
        cell.runs.append(run)
        _progress(run)

    async with trio.open_nursery() as nursery:
        for peer in peers():
            cell = Cell(fault, "get", tool=peer.name)
            cells.append(cell)
            if peer.exe is None:
                cell.skipped = "not installed"
            elif peer.checksum and fault == "change":
                cell.skipped = "no single sha256 (the file changes)"
            else:
                for seed in range(1, seeds + 1):
                    nursery.start_soon(one, peer, cell, seed)
    for cell in cells:
        cell.runs.sort(key=lambda r: r.seed)
    return cells


def _progress(run: Run) -> None:
    mark = run.outcome if run.outcome != "BAD" else f"BAD {run.detail}"
    print(
        f"{run.fault:>15} {run.command:>8} {run.tool:>20} seed {run.seed}: {mark} "
        f"({run.seconds:.2f} s, {run.requests} requests, {run.fired} faults)",
        file=sys.stderr,
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> int:
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.perf_counter()
    faults = args.only or list(FAULTS)
    cells: list[Cell] = []
    peer_cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="segfetch-reliability-") as tmp:
        tmpdir = Path(tmp)
        index = tmpdir / "index"
        wheels = build_index(index)
        for fault in faults:
            for command in COMMANDS:
                cell = Cell(fault, command)
                cells.append(cell)
                if (fault, command) in NOT_APPLICABLE:
                    continue
                for seed in range(1, args.seeds + 1):
                    work = tmpdir / f"{fault}-{command}-{seed}"
                    work.mkdir()
                    if command == "get":
                        run = await run_get(fault, seed, work)
                    else:
                        run = await run_download(fault, seed, work, index, wheels)
                    cell.runs.append(run)
                    _progress(run)
            if not args.no_peers:
                peer_cells += await run_peers(fault, args.peer_seeds, tmpdir)
        crashes = []
        if not args.no_crash:
            for kill_at in (0.25, 0.5, 0.75):
                work = tmpdir / f"crash-{kill_at}"
                work.mkdir()
                crashes.append(await crash_resume(kill_at, work))
                print(f"crash at {kill_at:.0%}: {crashes[-1]}", file=sys.stderr, flush=True)
    evidence = None
    if not args.no_evidence:
        print("running the evidence tests ...", file=sys.stderr, flush=True)
        evidence = await trio.to_thread.run_sync(run_evidence)
        print(evidence["summary"], file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    text = render(cells, peer_cells, args, crashes, evidence, started, elapsed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if args.json is not None:
        raw = {
            "cells": [{"fault": c.fault, "command": c.command, "tool": c.tool,
                       "skipped": c.skipped, "runs": [asdict(r) for r in c.runs]}
                      for c in cells + peer_cells],
            "crashes": [asdict(c) for c in crashes],
            "evidence": evidence,
        }  # fmt: skip
        args.json.write_text(json.dumps(raw, indent=1))
    print(matrix_table(cells))
    if peer_cells:
        print(summary_table(cells, peer_cells))
    bad = sum(r.outcome == "BAD" for c in cells for r in c.runs)
    wrong = sum(r.wrong_file for c in cells for r in c.runs)
    print(
        f"segfetch: {bad} BAD, {wrong} exit 0 with a wrong file (peers' outcomes are "
        f"reported, not judged); written to {args.out}",
        file=sys.stderr,
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seeds", type=int, default=5, help="seeds per cell (default 5)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--only", nargs="+", choices=list(FAULTS), help="these faults only")
    p.add_argument(
        "--peer-seeds",
        type=int,
        default=PEER_SEEDS,
        help=f"seeds per peer cell (default {PEER_SEEDS})",
    )
    p.add_argument("--no-peers", action="store_true", help="skip curl and aria2c")
    p.add_argument("--no-crash", action="store_true", help="skip the crash/resume runs")
    p.add_argument("--no-evidence", action="store_true", help="skip running the tests")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    return trio.run(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
