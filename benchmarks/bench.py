"""segfetch benchmarks against peers over the built-in link emulator (docs/benchmarks.md).

    python benchmarks/bench.py [--quick] [--runs N] [--slow-runs K] [--out DIR]
                               [--scenario S1..S9]... [--peer TEXT]... [--skip TEXT]...
                               [--no-trace] [--plot-only] [--baseline DIR]...

Per scenario: build the file(s), then for run k = 1..N and each peer: start a fresh
`segfetch emulate` (seed k, its own JSON-lines log) so every peer meets the same seeded faults
in run k, run the peer under a hard wall limit, check the sha256 of what it wrote, read the
emulator log (requests, bytes sent), stop the emulator. A fresh emulator per measurement
matters: fault draws depend on a per-process attempt counter per (path, range start).

S8 is served by a real nginx (Debian's, on 127.0.0.1, its own config in a temporary folder,
`daemon off`, started and stopped here); bytes on the wire are the sum of `$body_bytes_sent`
of its access log over the requests of one run.

Scenarios marked `trace` (S1, S4, S7) end with library runs (`segfetch.download_sync` with a
progress callback, in this process) of -n auto and of the best fixed -n: done bytes and
connections streaming every 0.1 s, plotted as rate and connections over time
(OUT/bench-<scenario>-auto.png).

S5 is an install, not a download: 30 small wheels with dependencies served as a simple index
(`segfetch emulate --index`), each peer installing into a fresh venv made before the clock
starts; success = exit 0 and all 30 packages import in that venv.

Writes OUT/<scenario>.json (raw results), OUT/<scenario>.md (the table) and, for the one-file
scenarios, OUT/bench-<scenario>.png (matplotlib, the `bench` extra; skipped without it).
Otherwise stdlib only (and segfetch itself for S5's wheels and the traces); segfetch, aria2c,
axel, curl, wget, pip and uv run as subprocesses, each under GNU time (peak RSS) and reaped with
os.wait4 (CPU seconds).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from resource import struct_rusage

HERE = Path(__file__).resolve().parent
KIB = 1024
WALL_LIMIT = 120.0  # seconds per download; hitting it counts as a failure
# GNU time measures peak RSS: os.wait4 reports at least the RSS of the process that forked the
# peer (Linux keeps the pre-exec high-water mark: this script, ~26 MiB), GNU time forks from ~2 MiB
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None
BIN = Path(sys.executable).parent
SEGFETCH = str(BIN / "segfetch") if (BIN / "segfetch").exists() else "segfetch"
PIP = os.environ.get("BENCH_PIP", str(Path(".bench-venv/bin/pip").resolve()))
ARIA2C = shutil.which("aria2c") or "aria2c"
# S5: uv and the current pip's wheel live in a tool venv (docs/benchmarks.md, "S5")
TOOLS = Path(os.environ.get("BENCH_TOOLS", ".bench-tools")).resolve()
UV = str(TOOLS / "bin" / "uv")
# the interpreter fresh venvs are made from (`python3 -m venv`), not this script's venv
BASE_PYTHON = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"

# A JSON object of a report: one run's result, a summary row, the report itself. Reports are
# written to OUT/<scenario>.json and read back by --plot-only, so a value is whatever JSON holds.
Record = dict[str, Any]


class LogRow(TypedDict):
    """One line of `segfetch emulate --log`: a request and its response, as the emulator's
    docstring lists them."""

    t: float
    conn: int
    method: str
    path: str
    range: str | None
    if_range: str | None
    status: int
    start: int | None
    end: int | None
    sent: int
    fault: str | None
    version: int
    duration: float


class ProcResult(TypedDict):
    """What run_proc measured of one peer's run."""

    rc: int | str  # exit code, or "timeout"
    seconds: float
    cpu: float
    maxrss_kib: int
    wait4_maxrss_kib: int
    out: str
    err: str


# -- files -------------------------------------------------------------------------------------


def seeded_bytes(size: int, seed: int) -> bytes:
    """random.Random(seed).randbytes(size), in 64 MiB pieces above 256 MiB (randbytes cannot
    make more than 2**28 bytes at once); the same bytes as before for the smaller sizes."""
    rng = random.Random(seed)
    if size <= 1 << 28:
        return rng.randbytes(size)
    step = 1 << 26
    return b"".join(rng.randbytes(min(step, size - i)) for i in range(0, size, step))


def build_wheel(folder: Path, data_size: int = 8 * KIB * KIB, seed: int = 0) -> Path:
    """A real, installable wheel `benchpkg-1.0-py3-none-any.whl` holding `data_size` seeded
    random (incompressible) bytes, stored uncompressed. Byte-identical for the same arguments."""
    files = {
        "benchpkg/__init__.py": b'"""Benchmark payload for segfetch."""\n__version__ = "1.0"\n',
        "benchpkg/data.bin": seeded_bytes(data_size, seed),
        "benchpkg-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: benchpkg\nVersion: 1.0\n"
            b"Summary: segfetch benchmark payload\n"
        ),
        "benchpkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: segfetch-bench\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("benchpkg-1.0.dist-info/RECORD,,")
    files["benchpkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / "benchpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return path


# -- scenarios and peers -------------------------------------------------------------------------


@dataclass
class Scenario:
    id: str
    title: str
    link: list[str]  # `segfetch emulate` options
    rate: int  # bytes/s per connection, for the physical limit (0: none)
    make_file: object = build_wheel  # (folder) -> Path
    kind: str = "file"  # "file": one download (S2); "install": a requirement set (S5)
    data_size: int = 8 * KIB * KIB  # payload of the wheel (quick: QUICK_SIZE)
    shared_rate: int = 0  # bytes/s shared by all connections (S4): the limit is size / this
    max_conns: int = 0  # the server's connection limit (S7): more connections do not help
    ns: tuple[int, ...] = (1, 2, 4, 8, 16)  # segfetch -n (and -n auto, always)
    extra: tuple[str, ...] = ()  # more segfetch -n 8 variants (option strings)
    sized: bool = False  # a row of -n auto given the size (--size), as an index gives it
    max_runs: int = 0  # at most this many runs (0: --runs)
    server: str = "emulator"  # "nginx": a real server on loopback, no link options (S8)
    others: tuple[str, ...] | None = None  # the peers besides segfetch (None: all that apply)
    wall_limit: float = 0.0  # per download (0: WALL_LIMIT)
    trace: bool = False  # library runs of -n auto with progress: rate and connections over time
    # a row of -n auto starting warm: the count the host settled at in the previous run
    warm: bool = False

    def limit(self, size: int, conns: float) -> float | None:
        """Physical limit in seconds: size / link rate for `conns` connections."""
        if self.shared_rate:
            return size / self.shared_rate
        if not self.rate:
            return None
        n = min(conns, self.max_conns) if self.max_conns else conns
        return size / (n * self.rate)


QUICK_SIZE = 2 * KIB * KIB  # --quick: a 2 MiB wheel (S6, S8: QUICK_SIZE_S6)
QUICK_SIZE_S6 = 50 * KIB * KIB
S6_SIZE = 500 * 1000 * 1000  # "one 500 MB file"
SMALL_SIZE = 4 * KIB * KIB  # S1, S2, S9: "a 4 MB file", where the ramp-up of -n auto shows

SCENARIOS = {
    "S1": Scenario(
        "S1",
        "256 KiB/s per connection; one 4 MiB wheel",
        ["--rate", "256K"],
        rate=256 * KIB,
        data_size=SMALL_SIZE,
        trace=True,
        sized=True,
        warm=True,
    ),
    "S2": Scenario(
        "S2",
        "256 KiB/s per connection, a reset about every 1 MiB; one 4 MiB wheel",
        ["--rate", "256K", "--drop-every", "1M"],
        rate=256 * KIB,
        data_size=SMALL_SIZE,
        warm=True,
    ),
    "S3": Scenario(
        "S3",
        "512 KiB/s per connection, a reset about every 300 kB; one 8 MiB wheel",
        ["--rate", "512K", "--drop-every", "300K"],
        rate=512 * KIB,
    ),
    "S4": Scenario(
        "S4",
        "1 MB/s shared by all connections, 100 ms RTT; one 8 MiB wheel",
        ["--shared-rate", "1M", "--rtt", "100ms"],
        rate=0,
        shared_rate=1 * KIB * KIB,  # what `--shared-rate 1M` means (1M = 1 MiB, as 256K = 256 KiB)
        trace=True,
        warm=True,
    ),
    "S5": Scenario(
        "S5",
        "256 KiB/s per connection, 100 ms RTT; 30 wheels of about 200 kB with dependencies",
        ["--rate", "256K", "--rtt", "100ms"],
        rate=256 * KIB,
        kind="install",
    ),
    "S6": Scenario(
        "S6",
        "no limit (loopback); one 500 MB wheel: CPU and throughput",
        [],
        rate=0,
        data_size=S6_SIZE,
        ns=(1, 4, 8),
        max_runs=3,
    ),
    "S7": Scenario(
        "S7",
        "256 KiB/s per connection, the server allows 4 connections (503 beyond); one 8 MiB wheel",
        ["--rate", "256K", "--max-connections", "4"],
        rate=256 * KIB,
        max_conns=4,
        trace=True,
        sized=True,
        warm=True,
    ),
    "S8": Scenario(
        "S8",
        "fast link: nginx on loopback (sendfile on), no limit; one 500 MB wheel",
        [],
        rate=0,
        data_size=S6_SIZE,
        ns=(1, 4, 8, 16),
        server="nginx",
        others=("curl -C - --retry 50", "aria2c -x8 -s8 -k1M"),
        warm=True,
    ),
    "S9": Scenario(
        "S9",
        "stalls: 256 KiB/s per connection, 8 responses go silent for 60 s; one 4 MiB wheel",
        # a response stalls at a seeded offset in [128, 384) KiB of its body (if it is that
        # long), silent for 60 s unless the client closes; the server stalls 8 responses in all:
        # about once per connection of an 8-connection client
        ["--rate", "256K", "--fault", "stall:every=256K,stall_seconds=60,limit=8"],
        rate=256 * KIB,
        data_size=SMALL_SIZE,
        ns=(8,),
        others=("aria2c -x8 -s8 -k1M", "axel -n 8"),
        wall_limit=150.0,  # aria2c waits out two 60 s stalls (its --timeout is 60 s)
        sized=True,
        warm=True,
    ),
}

ARIA2_OPTS = (
    "--allow-overwrite=true --auto-file-renaming=false -d {dir} -o {name} --max-tries=0"
    " --retry-wait=0 --file-allocation=none --console-log-level=warn --summary-interval=0"
)
AXEL = shutil.which("axel") or "axel"
CURL = shutil.which("curl") or "curl"
WGET = shutil.which("wget") or "wget"


@dataclass
class Peer:
    name: str
    cmd: str  # template: {url} {dir} {name} {path} {sha256}
    conns: int  # nominal connections, for the physical limit
    quick: bool = False  # part of --quick
    n: int = 0  # segfetch -n N (the x axis of the plot); 0: not a plain segfetch -n N
    warm: bool = False  # its settings file is kept from run to run (-n auto remembers the host)

    @property
    def exe(self) -> str:
        return self.cmd.split()[0]


AUTO = "segfetch -n auto"  # the default of `segfetch get`; -n is given so a saved -n cannot win
# -n auto has no fixed count: its physical limit is taken at 8 connections, the count of
# aria2c -x8 and axel -n 8 (the auto row's "% of limit" compares it with them)
AUTO_LIMIT_CONNECTIONS = 8
# -n auto as a user's next download from the same host runs it: beginning at the count the
# host settled at in the previous run (a warm-up run, not timed, before the first)
WARM = f"{AUTO} (warm)"


SIZED = "--size {size}"  # the size known before the first answer: all connections ask at once


def segfetch_peer(n: int | None, extra: str = "") -> Peer:
    count = "auto" if n is None else str(n)
    return Peer(
        f"segfetch -n {count}" + (f" {extra}" if extra else ""),
        SEGFETCH + f" get {{url}} -o {{path}} -n {count} {extra} --sha256 {{sha256}} -q --json",
        AUTO_LIMIT_CONNECTIONS if n is None else n,
        quick=n in (None, 8) and not extra,
        n=0 if extra or n is None else n,
    )


def warm_peer() -> Peer:
    peer = segfetch_peer(None)
    peer.name, peer.warm = WARM, True
    return peer


def peers_for(sc: Scenario) -> list[Peer]:
    """Every peer that applies to a one-file scenario (uv has no "download a URL" command)."""
    others = [p for p in _other_peers() if sc.others is None or p.name in sc.others]
    return (
        [segfetch_peer(n) for n in sc.ns]
        + [segfetch_peer(None)]
        + [segfetch_peer(8, x) for x in sc.extra]
        + ([segfetch_peer(None, SIZED)] if sc.sized else [])
        + ([warm_peer()] if sc.warm else [])
        + others
    )


def _other_peers() -> list[Peer]:
    return (
        [
            Peer(
                f"aria2c -x{n} -s{n} -k1M",
                f"{ARIA2C} -x{n} -s{n} -k1M " + ARIA2_OPTS + " {url}",
                n,
                quick=n == 8,
            )
            for n in (8, 16)
        ]
        + [
            Peer("axel -n 8", AXEL + " -q -n 8 -o {path} {url}", 8),
            Peer(
                "curl -C - --retry 50",
                CURL + " -sS -f -o {path} --retry 50 --retry-all-errors --retry-delay 0 -C - {url}",
                1,
            ),
            Peer(
                "wget --continue --tries=50",
                WGET
                + " -q -O {path} --tries=50 --continue --retry-connrefused --waitretry=0 {url}",
                1,
                quick=True,  # the one-connection reference of --quick (curl fails S2/S3: 120 s)
            ),
            Peer(
                "pip download --resume-retries 50",
                PIP + " --isolated download --no-deps --no-index --no-cache-dir --resume-retries 50"
                " --timeout 30 -d {dir} {url}",
                1,
            ),
        ]
    )


PEERS = peers_for(SCENARIOS["S2"])  # S2's peers (kept for importers of PEERS)
BASELINE = AUTO  # the ratio column: time / the time of segfetch's default


# -- runner ------------------------------------------------------------------------------------


@dataclass
class Emulator:
    """`segfetch emulate` as a subprocess, on a free port, logging to `log`."""

    root: Path
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    base: str = ""
    serve: list[str] | None = None  # what to serve instead of the folder `root`

    def __enter__(self) -> Emulator:
        what = self.serve if self.serve is not None else [str(self.root)]
        cmd = [SEGFETCH, "emulate", *what, "--port", "0", "--log", str(self.log)]
        out, err = self.log.with_suffix(".out"), self.log.with_suffix(".err")
        with out.open("w") as o, err.open("w") as e:
            self.proc = proc = subprocess.Popen([*cmd, *self.args], stdout=o, stderr=e)
        deadline = time.monotonic() + 10
        while not (line := out.read_text()).startswith("serving on "):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"emulator did not start: {line!r} {err.read_text()!r}")
            time.sleep(0.02)
        self.base = line.split()[2].rstrip("/")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        wait_still(self.log)
        self.proc.terminate()  # SIGTERM: quiet (SIGINT printed a traceback in 1e33aad)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rows(self) -> list[LogRow]:
        return [json.loads(x) for x in self.log.read_text().splitlines() if x.strip()]

    def figures(self, size: int) -> dict[str, int]:
        return log_figures(self.rows(), size)

    def stderr_tail(self) -> str:
        return self.log.with_suffix(".err").read_text()[-3000:]


def log_figures(rows: list[LogRow], size: int) -> dict[str, int]:
    sent = sum(int(r.get("sent") or 0) for r in rows)
    faults = sum(1 for r in rows if r.get("fault"))  # responses the log marks with a fault
    return {"requests": len(rows), "sent": sent, "wasted": sent - size, "faults": faults}


def wait_still(path: Path, quiet: float = 0.3, most: float = 3.0) -> None:
    """A request's log line is written once its last bytes are on the wire (or the client
    closed), which can be just after the client has exited: wait until `path` has not grown
    for `quiet` seconds, `most` seconds at most."""
    deadline, last, still_since = time.monotonic() + most, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - still_since < quiet:
        if (n := path.stat().st_size if path.exists() else 0) != last:
            last, still_since = n, time.monotonic()
        time.sleep(0.05)


# -- S8: nginx ---------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# One JSON object a line, every value a string; `sent` is what counts as bytes on the wire.
NGINX_LOG = (
    '{"conn":"$connection","status":"$status","method":"$request_method","uri":"$uri",'
    '"range":"$http_range","sent":"$body_bytes_sent","duration":"$request_time"}'
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (nginx binds it a moment later; a lost race is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@dataclass
class Nginx:
    """Debian's nginx serving `files` on 127.0.0.1 (one worker, sendfile on), its config, pid
    file, logs and temp paths in `folder`; `daemon off`, so it is our child: stopped (SIGQUIT,
    then SIGKILL to its process group) on exit. The approach of tests/nginx.py, without TLS."""

    folder: Path
    files: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0

    @property
    def access_log(self) -> Path:
        return self.folder / "access.log"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    def config(self, port: int) -> Path:
        temp = self.folder / "temp"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers as nobody cannot read /tmp/x
        conf = f"""\
daemon off;
master_process on;
worker_processes 1;
{user}pid {self.folder}/nginx.pid;
lock_file {self.folder}/nginx.lock;
error_log {self.error_log} warn;
worker_shutdown_timeout 3s;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    log_format bench escape=json '{NGINX_LOG}';
    access_log {self.access_log} bench;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30s;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {self.files}; }}
    }}
}}
"""
        path = self.folder / "nginx.conf"
        path.write_text(conf)
        return path

    def __enter__(self) -> Nginx:
        cmd = [NGINX, "-p", f"{self.folder}/", "-e", str(self.error_log)]
        for _ in range(3):  # a port taken by someone else meanwhile: pick another
            port = free_port()
            conf = self.config(port)
            test = subprocess.run([*cmd, "-t", "-q", "-c", str(conf)], capture_output=True,
                                  text=True, timeout=30, check=False)  # fmt: skip
            if test.returncode != 0:
                raise RuntimeError(f"nginx -t rejects the config: {test.stderr.strip()}")
            with (self.folder / "stderr.log").open("ab") as err:
                self.proc = proc = subprocess.Popen(
                    [*cmd, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    start_new_session=True,
                )  # fmt: skip
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline and not accepts(port):
                time.sleep(0.05)
            if proc.poll() is None and accepts(port):
                self.port = port
                return self
            self.__exit__()
            if "Address already in use" not in self.stderr_tail():
                break
        raise RuntimeError(f"nginx did not start: {self.stderr_tail()}")

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # a worker left behind: its group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.proc = None

    def stderr_tail(self) -> str:
        return self.error_log.read_text(errors="replace")[-3000:] if self.error_log.exists() else ""

    def version(self) -> str:
        return version([NGINX, "-v"])


@dataclass
class NginxRun:
    """One measurement's part of nginx's access log: the lines written after __enter__."""

    nginx: Nginx
    offset: int = 0
    base: str = ""

    def __enter__(self) -> NginxRun:
        log = self.nginx.access_log
        self.offset = log.stat().st_size if log.exists() else 0
        self.base = f"http://127.0.0.1:{self.nginx.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        wait_still(self.nginx.access_log)

    def rows(self) -> list[LogRow]:
        """The access log's lines as the emulator's log rows (the fields nginx has)."""
        with self.nginx.access_log.open("rb") as f:
            f.seek(self.offset)
            lines = f.read().decode(errors="replace").splitlines()
        rows: list[LogRow] = []
        for text in filter(str.strip, lines):
            raw = json.loads(text)
            rows.append(
                {
                    "t": 0.0,
                    "conn": int(raw["conn"]),
                    "method": raw["method"],
                    "path": raw["uri"],
                    "range": raw["range"] or None,
                    "if_range": None,
                    "status": int(raw["status"]),
                    "start": None,
                    "end": None,
                    "sent": int(raw["sent"] or 0),
                    "fault": None,
                    "version": 0,
                    "duration": float(raw["duration"] or 0),
                }
            )
        return rows

    def figures(self, size: int) -> dict[str, int]:
        return log_figures(self.rows(), size)

    def stderr_tail(self) -> str:
        return self.nginx.stderr_tail()


def sha256_of(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _text(b: bytes | str | None) -> str:  # TimeoutExpired carries bytes even with text=True
    return b.decode(errors="replace") if isinstance(b, bytes) else b or ""


def peer_env() -> dict[str, str]:
    """The caller's environment without proxies or pip settings: loopback only, same for all."""
    drop = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    env = {
        k: v for k, v in os.environ.items() if k.lower() not in drop and not k.startswith("PIP_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # segfetch as installed, its modules read from bytecode: with PYTHONDONTWRITEBYTECODE
    # (set on the benchmark machine) a source checkout compiled them again in every run,
    # 0.025-0.035 CPU s of each (measured)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class _Reaped(TypedDict, total=False):
    t: float
    status: int
    ru: struct_rusage


def run_proc(cmd: list[str], timeout: float, env: dict[str, str], cwd: Path) -> ProcResult:
    """Run `cmd` to its end or `timeout`; wall time, and the child's CPU seconds (user +
    system) and peak RSS from os.wait4's rusage. Output goes to files (no pipe to drain)."""
    out_f, err_f, rss_f = cwd / "peer.out", cwd / "peer.err", cwd / "peer.rss"
    rss_f.unlink(missing_ok=True)
    if GNU_TIME:
        cmd = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_f), *cmd]
    done: _Reaped = {}
    with out_f.open("w") as o, err_f.open("w") as e:
        t0 = time.monotonic()
        p = subprocess.Popen(
            cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip

        def reap() -> None:
            _, status, ru = os.wait4(p.pid, 0)
            done.update({"t": time.monotonic(), "status": status, "ru": ru})

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout)
        timed_out = waiter.is_alive()
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            waiter.join()
        p.returncode = 0  # reaped by os.wait4: keep Popen from waiting again
    ru = done["ru"]
    status = int(done["status"])
    rss = ru.ru_maxrss
    with contextlib.suppress(OSError, ValueError, IndexError):
        rss = int(rss_f.read_text().split()[-1])
    return {
        "rc": "timeout" if timed_out else os.waitstatus_to_exitcode(status),
        "seconds": float(done["t"]) - t0,
        "cpu": ru.ru_utime + ru.ru_stime,
        "maxrss_kib": rss,
        "wait4_maxrss_kib": ru.ru_maxrss,
        "out": out_f.read_text(errors="replace"),
        "err": err_f.read_text(errors="replace"),
    }


def run_once(
    sc: Scenario,
    peer: Peer,
    run: int,
    file: Path,
    work: Path,
    digest: str | None,
    nginx: Nginx | None = None,
    kept: Path | None = None,
) -> dict[str, object]:
    """One timed download; `kept`: a settings file kept from run to run (a warm peer's)."""
    size = file.stat().st_size
    dest = work / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    log = work / "emulator.jsonl"
    log.unlink(missing_ok=True)
    served: Emulator | NginxRun = (
        NginxRun(nginx)
        if nginx is not None
        else Emulator(file.parent, [*sc.link, "--seed", str(run)], log)
    )
    with served as emu:
        fields = {
            "url": f"{emu.base}/{file.name}",
            "dir": str(dest),
            "name": file.name,
            "path": str(dest / file.name),
            "sha256": digest,
            "size": str(size),
        }
        cmd = peer.cmd.format(**fields).split()
        env = peer_env()
        # a settings file of its own, empty: no saved -n, and -n auto starts cold in every run
        # (it may record where it settled per host:port; nginx keeps its port for all runs);
        # a warm peer's is kept, the count it saved moved to this run's host:port
        env["SEGFETCH_CONFIG"] = str(config := kept or work / "segfetch-config.json")
        start = None
        if kept is None:
            config.unlink(missing_ok=True)
        else:
            start = remember(config, urlsplit(str(fields["url"])).netloc)
        pr = run_proc(cmd, sc.wall_limit or WALL_LIMIT, env, work)
    rc, out, err = pr["rc"], str(pr["out"]), str(pr["err"])
    got = sha256_of(dest / file.name)
    shutil.rmtree(dest, ignore_errors=True)  # 500 MB in S6/S8: not kept between runs
    rows = emu.rows()
    statuses = dict(sorted(Counter(str(r.get("status")) for r in rows).items()))
    result: dict[str, object] = {
        "peer": peer.name,
        "run": run,
        "seed": run,
        "seconds": round(float(pr["seconds"]), 3),
        "cpu": round(float(pr["cpu"]), 3),
        "maxrss_kib": pr["maxrss_kib"],
        "rc": rc,
        "ok": rc == 0 and got == digest,
        "sha256_ok": got == digest,
        **emu.figures(size),
        "statuses": statuses,
        "connections": len({r.get("conn") for r in rows if r.get("conn") is not None}),
    }
    result["n503"] = statuses.get("503", 0)
    if kept is not None:
        result["start"], result["saved"] = start, remembered(kept)
    if peer.name.startswith("segfetch"):
        with contextlib.suppress(ValueError, IndexError):  # its --json result
            result["segfetch"] = reply = json.loads(out.strip().splitlines()[-1])
            result["retries"] = reply["retries"]
            result["peak"] = reply["connections"]  # most connections streaming at once
    if not result["ok"]:
        result["stdout_tail"], result["stderr_tail"] = out[-3000:], err[-3000:]
        result["emulator_log"] = rows[:200]  # the requests of the failed run
        result["emulator_stderr"] = emu.stderr_tail()
    return result


def remembered(config: Path) -> int | None:
    """The count -n auto saved in the settings file (one host in a bench run)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        hosts = json.loads(config.read_text()).get("hosts") or {}
        return next((int(v) for v in hosts.values()), None)
    return None


def remember(config: Path, host: str) -> int | None:
    """A warm peer's next run: the count saved by its previous run, under this run's
    host:port (the emulator takes a free port each run; to the user it is the same host)."""
    n = remembered(config)
    config.write_text(json.dumps({"hosts": {host: n}} if n else {}) + "\n")
    return n


def _median(xs: list[float | None]) -> float | None:
    got = [x for x in xs if x is not None]
    return statistics.median(got) if got else None


def _timings(rs: list[Record]) -> Record:
    """What every scenario reports of a peer's runs: success, wall time, requests, bytes."""
    ok = [r for r in rs if r["ok"]]
    secs = [r["seconds"] for r in ok]
    return {
        "runs": len(rs),
        "success": len(ok),
        "median": statistics.median(secs) if secs else None,
        "min": min(secs) if secs else None,
        "max": max(secs) if secs else None,
        "requests": statistics.median(r["requests"] for r in rs),
        "sent": statistics.median(r["sent"] for r in rs),
    }


def summarize(sc: Scenario, peers: list[Peer], results: list[Record], size: int) -> list[Record]:
    rows: list[Record] = []
    for peer in peers:
        rs = [r for r in results if r["peer"] == peer.name]
        if not rs:
            continue
        ok = [r for r in rs if r["ok"]]
        cpu = _median([r.get("cpu") for r in ok])
        rows.append(
            {
                "peer": peer.name,
                "n": peer.n,
                **_timings(rs),
                # wasted = sent - size, over the successful runs (a failed run sent less)
                "wasted": statistics.median(r["wasted"] for r in ok) if ok else None,
                "retries": _median([r.get("retries") for r in rs]),
                "n503": statistics.median(r.get("n503", 0) for r in rs),
                "cpu": cpu,
                "own_seconds": _median(  # segfetch's own `seconds` (--json): no start-up
                    [
                        r["segfetch"].get("seconds")
                        for r in ok
                        if isinstance(r.get("segfetch"), dict)
                    ]
                ),
                "cpu_per_gb": cpu / (size / 1e9) if cpu is not None else None,
                "maxrss_mib": (rss := _median([r.get("maxrss_kib") for r in ok])) and rss / KIB,
                "limit": sc.limit(size, peer.conns),
                # connections the server saw (refused ones too), and segfetch's most at once
                "conns": _median([r.get("connections") for r in rs]),
                "peak": _median([r.get("peak") for r in ok]),
                # bytes on the wire per byte of the file, over the successful runs
                "wire": statistics.median(r["sent"] / size for r in ok) if ok else None,
                "wire_max": max(r["sent"] / size for r in ok) if ok else None,
                # -n auto: where each run ended (what it saved); warm: where each began
                "settled": [(r.get("segfetch") or {}).get("settled") for r in rs],
                "starts": [r.get("start") for r in rs] if peer.warm else None,
            }
        )
    base = next((r["median"] for r in rows if r["peer"] == BASELINE), None)
    for r in rows:
        r["vs_base"] = r["median"] / base if r["median"] and base else None
        r["of_limit"] = r["limit"] / r["median"] if r["median"] and r["limit"] else None
        r["mb_s"] = size / 1e6 / r["median"] if r["median"] else None
    return rows


def table(rows: list[Record], sc: Scenario | None = None) -> str:
    def f(x: float | None, fmt: str) -> str:
        return "—" if x is None else format(x, fmt)

    s6 = sc is not None and not sc.rate and not sc.shared_rate
    tail = "MB/s | CPU s per GB | wire / size" if s6 else "limit s | % of limit"
    lines = [
        "| peer | median s | min s | max s | success | requests | conns (most at once) "
        "| wasted bytes | retries | 503s "
        f"| CPU s | peak RSS MiB | × {BASELINE} | {tail} |",  # noqa: RUF001
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if s6 else ""),
    ]
    for r in rows:
        end = (
            f"{f(r['mb_s'], '.0f')} | {f(r['cpu_per_gb'], '.2f')} | {f(r.get('wire'), '.3f')}"
            if s6
            else f"{f(r['limit'], '.2f')} | {f(r['of_limit'] and 100 * r['of_limit'], '.0f')}"
        )
        conns = f(r.get("conns"), "g") + (f" ({r['peak']:g})" if r.get("peak") is not None else "")
        sent = r.get("sent")
        wasted = (
            f(r["wasted"], ",.0f")
            if r["wasted"] is not None or sent is None
            else (f"— (sent {sent:,.0f})")
        )
        lines.append(
            f"| {r['peer']} | {f(r['median'], '.2f')} | {f(r['min'], '.2f')} "
            f"| {f(r['max'], '.2f')} | {r['success']}/{r['runs']} | {r['requests']:g} "
            f"| {conns} | {wasted} | {f(r['retries'], 'g')} | {r['n503']:g} "
            f"| {f(r['cpu'], '.2f')} | {f(r['maxrss_mib'], '.0f')} "
            f"| {f(r['vs_base'], '.2f')} | {end} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: Record, png: Path) -> None:
    """Time against connections for segfetch (median, min-max bars), peers as horizontal
    lines, the link's physical limit as a line."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = SCENARIOS[report["scenario"]]
    rows = [r for r in report["summary"] if r["median"] is not None]
    seg = sorted((r for r in rows if r.get("n")), key=lambda r: r["n"])
    fig, ax = plt.subplots(figsize=(8, 5))
    if seg:
        xs = [r["n"] for r in seg]
        ys = [r["median"] for r in seg]
        err = [
            [y - r["min"] for y, r in zip(ys, seg, strict=True)],
            [r["max"] - y for y, r in zip(ys, seg, strict=True)],
        ]
        ax.errorbar(xs, ys, yerr=err, marker="o", lw=2, color="black", capsize=3,
                    label="segfetch -n N (median, min-max)", zorder=5)  # fmt: skip
    nmax = max(16, *(r["n"] for r in seg)) if seg else 16
    grid = [1, 2, 4, 8, 16] if nmax <= 16 else [1, 2, 4, 8, 16, nmax]
    size = report["size"]
    if sc.rate or sc.shared_rate:
        fine = [1 + i * (nmax - 1) / 200 for i in range(201)]
        limits = cast("list[float]", [sc.limit(size, n) for n in fine])  # a rate: no None
        ax.plot(fine, limits, ls="--", color="gray",
                label="physical limit of the link")  # fmt: skip
    cmap = plt.get_cmap("tab10")
    others = [r for r in rows if not r.get("n")]
    for i, r in enumerate(others):
        ax.axhline(r["median"], color=cmap(i % 10), lw=1.2, ls="-." if "segfetch" in r["peer"]
                   else "-", label=f"{r['peer']}: {r['median']:.2f} s")  # fmt: skip
    failed = [r["peer"] for r in report["summary"] if r["median"] is None]
    ax.set_xscale("log", base=2)
    ax.set_xticks(grid, [str(g) for g in grid])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("connections (segfetch -n)")
    ax.set_ylabel("wall time, s (log)")
    title = f"{report['scenario']}: {report['title']}"
    title += f"\n{size:,} bytes; {report['runs']} run(s)" + (
        " (--quick)" if report.get("quick") else ""
    )
    if failed:
        title += "\nno successful run: " + ", ".join(failed)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=peer_env())
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def machine() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "cpu": next(
            (
                x.split(":", 1)[1].strip()
                for x in Path("/proc/cpuinfo").read_text().splitlines()
                if x.startswith("model name")
            ),
            "?",
        )
        if Path("/proc/cpuinfo").exists()
        else "?",
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),  # other work on the machine: it shares the 2 CPUs
        "python": platform.python_version(),
        "segfetch": version([sys.executable, "-c", "import segfetch; print(segfetch.__version__)"]),
        "commit": version(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"]),
        "aria2c": version([ARIA2C, "--version"]),
        "axel": version([AXEL, "--version"]),
        "curl": version([CURL, "--version"]),
        "wget": version([WGET, "--version"]),
        "pip": version([PIP, "--version"]),
        "uv": version([UV, "--version"]),
    }


# -- S5: installing a requirement set of 30 small wheels -----------------------------------------

S5_PAYLOAD = 200_000  # seeded random bytes per wheel, stored: each wheel is about 201 kB
# pip needs about 30 s on this link; a peer that hangs costs this much per run
S5_WALL_LIMIT = 60.0


def s5_graph() -> dict[str, list[str]]:
    """5 top-level projects each needing 5 of the 25 others; each even-numbered one of those
    needs one more, (k + 7) mod 25: chains up to 4 deep (top3 -> dep18 -> dep00 -> dep07)."""
    graph = {f"s5-top{i}": [f"s5-dep{5 * i + j:02d}" for j in range(5)] for i in range(5)}
    for k in range(25):
        graph[f"s5-dep{k:02d}"] = [f"s5-dep{(k + 7) % 25:02d}"] if k % 2 == 0 else []
    return graph


@dataclass
class ReqSet:
    wheels: Path  # the folder served with `--index`
    pinned: Path  # all 30 with == and --hash, as pip-compile writes it
    unpinned: Path  # the 5 top-level names only
    files: list[Path]
    imports: list[str]  # the import name of every project

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def build_s5(folder: Path) -> ReqSet:
    from segfetch.testing.wheelmaker import make_wheel, wheel_name  # the venv's segfetch

    graph = s5_graph()
    wheels = folder / "wheels"
    files = [
        make_wheel(
            wheels, name, "1.0", requires=[f"{d}>=1.0" for d in deps], payload=S5_PAYLOAD, seed=i
        )
        for i, (name, deps) in enumerate(graph.items())
    ]
    via: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for d in deps:
            via[d].append(name)
    lines = [
        "#",
        "# This file is autogenerated by pip-compile with Python 3.11",
        "# by the following command:",
        "#",
        "#    pip-compile --generate-hashes unpinned.txt",
        "#",
    ]
    for name, f in sorted(zip(graph, files, strict=True)):
        lines += [f"{name}==1.0 \\", f"    --hash=sha256:{sha256_of(f)}"]
        parents = sorted(via[name]) or ["-r unpinned.txt"]
        lines += ["    # via " + parents[0]] if len(parents) == 1 else ["    # via"]
        lines += [f"    #   {p}" for p in parents] if len(parents) > 1 else []
    pinned, unpinned = folder / "pinned.txt", folder / "unpinned.txt"
    pinned.write_text("\n".join(lines) + "\n")
    unpinned.write_text("".join(f"{n}\n" for n in graph if n.startswith("s5-top")))
    return ReqSet(wheels, pinned, unpinned, files, [wheel_name(n) for n in graph])


@dataclass
class InstallPeer:
    name: str
    cmd: str  # template: {python} {venv} {url} {pinned} {unpinned} {wheels}
    conns: int  # connections at most, for the simple bound
    pip: str | None = None  # pip version to put in the fresh venv before timing (None: as is)
    reference: bool = False  # not a peer: a floor, no network


PIP_FLAGS = "--disable-pip-version-check --no-cache-dir"
S5_PEERS = [
    InstallPeer(  # defaults: -n auto, --max-connections 64, --min-segment 96K
        "segfetch install (pinned)",
        SEGFETCH + " install --python {python} --no-cache -q -r {pinned} --index-url {url}",
        32,
    ),
    # the defaults before a447cd7..: each wheel on one connection (what splitting buys here)
    InstallPeer(
        "segfetch install (pinned) --max-connections 32 --min-segment 256K",
        SEGFETCH + " install --python {python} --no-cache -q -r {pinned} --index-url {url}"
        " --max-connections 32 --min-segment 256K",
        32,
    ),
    InstallPeer(
        "segfetch install (unpinned)",
        SEGFETCH + " install --python {python} --no-cache -q -r {unpinned} --index-url {url}",
        32,
    ),
    InstallPeer(
        "pip 23.2.1 (venv's own)",
        "{venv}/bin/pip install " + PIP_FLAGS + " -r {pinned} --index-url {url}",
        1,
    ),
    InstallPeer(
        "pip 26.3",
        "{venv}/bin/pip install " + PIP_FLAGS + " -r {pinned} --index-url {url}",
        1,
        pip="26.3",
    ),
    InstallPeer(
        "uv pip install",
        UV + " pip install --python {python} --no-cache -r {pinned} --index-url {url}",
        16,
    ),
    InstallPeer(
        "pip 23.2.1, local files (no network)",
        "{venv}/bin/pip install " + PIP_FLAGS + " --no-index --find-links {wheels} -r {pinned}",
        1,
        reference=True,
    ),
]
S5_BASELINE = "segfetch install (pinned)"


def install_env(cache: Path) -> dict[str, str]:
    """No proxies, no pip or uv settings (variables or files), no active venv; a fresh cache
    folder for anything that would cache behind our back (pip's http cache of the resolver
    segfetch runs, for one)."""
    drop = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in drop
        and not k.startswith(("PIP_", "UV_"))
        and k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["XDG_CACHE_HOME"] = str(cache)
    return env


def pip_wheel(version: str) -> Path:
    found = sorted(TOOLS.glob(f"wheels/pip-{version}-*.whl"))
    if not found:
        raise SystemExit(
            f"no pip {version} wheel in {TOOLS}/wheels: "
            f"{TOOLS}/bin/pip download --no-deps pip=={version} -d {TOOLS}/wheels"
        )
    return found[0]


def fresh_venv(venv: Path, pip: str | None, env: dict[str, str]) -> str:
    """`python3 -m venv`, then pip upgraded from the tool folder's wheel if asked; returns
    the venv's `pip --version`. Not timed."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True, env=env)
    py = str(venv / "bin" / "python")
    if pip is not None:
        cmd = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index"]
        subprocess.run([*cmd, str(pip_wheel(pip))], check=True, env=env)
    out = subprocess.run([py, "-m", "pip", "--version"], capture_output=True, text=True, env=env)
    return out.stdout.split(" from ")[0]


def kinds(rows: list[LogRow]) -> dict[str, int]:
    """Requests by kind: index pages, .metadata files, wheels, anything else (a 404 ...)."""
    out = {"pages": 0, "metadata": 0, "wheels": 0, "other": 0}
    for r in rows:
        path, status = str(r.get("path")), r.get("status")
        kind = (
            "other"
            if status not in (200, 206)
            else "pages"
            if path.startswith("/simple/")
            else "metadata"
            if path.endswith(".metadata")
            else "wheels"
            if path.endswith(".whl")
            else "other"
        )
        out[kind] += 1
    return out


def peak_wheels(rows: list[LogRow]) -> int:
    """Most wheel responses on the wire at once (a log line is written at a response's end,
    `duration` after its start)."""
    events = []
    for r in rows:
        if str(r.get("path")).endswith(".whl") and r.get("status") in (200, 206):
            end = float(r["t"])
            events += [(end - float(r["duration"]), 1), (end, -1)]
    peak = live = 0
    for _, step in sorted(events):
        live += step
        peak = max(peak, live)
    return peak


def run_install_once(
    sc: Scenario, peer: InstallPeer, run: int, rs: ReqSet, work: Path
) -> dict[str, object]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = install_env(work / "cache")
    venv = work / "venv"
    pip_version = fresh_venv(venv, peer.pip, env)
    log = work / "emulator.jsonl"
    serve = ["--index", str(rs.wheels)]
    with Emulator(rs.wheels, [*sc.link, "--seed", str(run)], log, serve=serve) as emu:
        fields = {
            "python": str(venv / "bin" / "python"),
            "venv": str(venv),
            "url": f"{emu.base}/simple/",
            "pinned": str(rs.pinned),
            "unpinned": str(rs.unpinned),
            "wheels": str(rs.wheels),
        }
        cmd = peer.cmd.format(**fields).split()
        t0 = time.monotonic()
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=S5_WALL_LIMIT, env=env, cwd=work,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            rc: int | str = p.returncode
            out, err = p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "timeout", _text(e.stdout), _text(e.stderr)
        seconds = time.monotonic() - t0
    check = subprocess.run(
        [fields["python"], "-c", "import " + ", ".join(rs.imports)],
        capture_output=True, text=True, env=env, cwd=work,
    )  # fmt: skip
    rows = emu.rows()
    result: dict[str, object] = {
        "peer": peer.name,
        "run": run,
        "seed": run,
        "seconds": round(seconds, 3),
        "rc": rc,
        "ok": rc == 0 and check.returncode == 0,
        "imports_ok": check.returncode == 0,
        "pip_in_venv": pip_version,
        "requests": len(rows),
        "sent": sum(int(r.get("sent") or 0) for r in rows),
        "kinds": kinds(rows),
        "statuses": dict(sorted(Counter(str(r.get("status")) for r in rows).items())),
        "max_conn": max((int(r.get("conn") or 0) for r in rows), default=-1) + 1,
        "peak_wheels": peak_wheels(rows),
    }
    if rows:  # emulator clock: first request to the end of the last response
        ends = [float(r["t"]) for r in rows]  # t: when the log line was written (response end)
        result["emulator_span"] = round(max(ends) - min(ends) + float(rows[0]["duration"]), 3)
    if not result["ok"]:
        result["stdout_tail"], result["stderr_tail"] = out[-3000:], err[-3000:]
        result["import_error"] = check.stderr[-2000:]
        result["emulator_stderr"] = log.with_suffix(".err").read_text()[-3000:]
    return result


def summarize_install(
    sc: Scenario, peers: list[InstallPeer], results: list[Record], size: int
) -> list[Record]:
    rows: list[Record] = []
    for peer in peers:
        rs = [r for r in results if r["peer"] == peer.name]
        rows.append(
            {
                "peer": peer.name,
                "reference": peer.reference,
                **_timings(rs),
                "kinds": {
                    k: statistics.median(r["kinds"][k] for r in rs)
                    for k in ("pages", "metadata", "wheels", "other")
                },
                "connections": statistics.median(r["max_conn"] for r in rs),
                "peak_wheels": statistics.median(r["peak_wheels"] for r in rs),
                "pip_in_venv": sorted({r["pip_in_venv"] for r in rs}),
            }
        )
    base = next((r["median"] for r in rows if r["peer"] == S5_BASELINE), None)
    for r in rows:
        r["vs_base"] = r["median"] / base if r["median"] and base else None
    return rows


def install_table(rows: list[Record], size: int, rate: int) -> str:
    def f(x: float | None, fmt: str) -> str:
        return "—" if x is None else format(x, fmt)

    lines = [
        f"Wheel bytes {size:,}; bound with 16 connections {size / (16 * rate):.2f} s, "
        f"with 32 {size / (32 * rate):.2f} s, "
        f"with one connection {size / rate:.2f} s (bytes / rate, no RTT).",
        "",
        "| peer | median s | min s | max s | success | requests (pages/metadata/wheels/other) "
        "| bytes sent | connections | wheels at once | × segfetch pinned |",  # noqa: RUF001
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        k = r["kinds"]
        lines.append(
            f"| {r['peer']} | {f(r['median'], '.2f')} | {f(r['min'], '.2f')} "
            f"| {f(r['max'], '.2f')} | {r['success']}/{r['runs']} "
            f"| {r['requests']:g} "
            f"({k['pages']:g}/{k['metadata']:g}/{k['wheels']:g}/{k['other']:g}) "
            f"| {r['sent']:,.0f} | {r['connections']:g} | {r['peak_wheels']:g} "
            f"| {f(r['vs_base'], '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def bench_install(
    sc: Scenario, runs: int, quick: bool, only: list[str] | None, out: Path, trees: list[Path]
) -> None:
    peers = [p for p in S5_PEERS if not only or any(x in p.name for x in only)]
    peers += map(baseline_install_peer, trees)
    for p in peers:  # fail before the first run, not in the middle
        if p.pip is not None:
            pip_wheel(p.pip)
        if p.cmd.startswith(UV) and not Path(UV).exists():
            raise SystemExit(f"no uv at {UV}: {TOOLS}/bin/pip install uv")
    mach = {k: v for k, v in machine().items() if k not in ("aria2c", "pip")}
    git = ["git", "-C", str(HERE.parent)]
    mach["commit_full"] = version([*git, "rev-parse", "HEAD"])  # at the start: the tree moves
    mach["segfetch_uncommitted"] = subprocess.run(
        [*git, "status", "--short", "--", "segfetch"], capture_output=True, text=True
    ).stdout.splitlines()
    mach["uv"] = version([UV, "--version"])
    mach["venv_python"] = version([BASE_PYTHON, "--version"])
    with tempfile.TemporaryDirectory(prefix="segfetch-bench-") as tmp:
        rs = build_s5(Path(tmp, "set"))
        size = rs.size
        print(f"{sc.id}: {sc.title}; {len(rs.files)} wheels, {size} bytes; {runs} run(s)")
        results = []
        for run in range(1, runs + 1):  # peers interleaved: drift hits all of them alike
            for peer in peers:
                r = run_install_once(sc, peer, run, rs, Path(tmp, "work"))
                results.append(r)
                print(
                    f"  run {run} {peer.name:38} {r['seconds']:7.2f} s ok={r['ok']} "
                    f"requests={r['requests']} sent={r['sent']} kinds={r['kinds']} "
                    f"conns={r['max_conn']} peak={r['peak_wheels']}",
                    flush=True,
                )
                if not r["ok"]:
                    tail = str(r.get("stderr_tail") or "")[-600:]
                    print(f"    rc={r['rc']} stderr: {tail!r}", flush=True)
        pinned_text = rs.pinned.read_text()
        unpinned_text = rs.unpinned.read_text()
        files = {f.name: {"size": f.stat().st_size, "sha256": sha256_of(f)} for f in rs.files}
    rows = summarize_install(sc, peers, results, size)
    md = install_table(rows, size, sc.rate)
    mach["commit_at_end"] = version([*git, "rev-parse", "HEAD"])
    report = {
        "scenario": sc.id,
        "title": sc.title,
        "link": sc.link,
        "files": files,
        "size": size,
        "bound_16_connections": size / (16 * sc.rate),
        "bound_32_connections": size / (32 * sc.rate),
        "bound_1_connection": size / sc.rate,
        "graph": s5_graph(),
        "pinned_txt": pinned_text,
        "unpinned_txt": unpinned_text,
        "runs": runs,
        "wall_limit": S5_WALL_LIMIT,
        "machine": mach,
        "command": " ".join(sys.argv),
        "peers": {p.name: {"cmd": p.cmd, "pip": p.pip, "reference": p.reference} for p in peers},
        "summary": rows,
        "results": results,
    }
    (out / f"{sc.id.lower()}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{sc.id.lower()}.md").write_text(md)
    print(md)


SLOW_LIMIT = 10.0  # s: peers whose physical limit is above this run at most --slow-runs times
S5_QUICK = ("segfetch install (pinned)", "uv pip install", "pip 23.2.1, local files (no network)")


def write_outputs(report: Record, out: Path) -> str:
    sid = report["scenario"].lower()
    md = table(report["summary"], SCENARIOS[report["scenario"]]) + "\n" + goals(report)
    (out / f"{sid}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{sid}.md").write_text(md)
    try:
        plot(report, out / f"bench-{sid}.png")
        if report.get("traces"):
            plot_trace(report, out / f"bench-{sid}-auto.png")
    except ImportError:
        print("no matplotlib: no plot (pip install -e '.[bench]')", file=sys.stderr)
    return md


def have(exe: str) -> bool:
    return bool(shutil.which(exe)) or Path(exe).is_file()


def baseline_peer(tree: Path) -> Peer:
    """`segfetch get -n auto` from the source tree in DIR (e.g. `git archive` of an earlier
    commit), with this interpreter: before and after a change, interleaved in one run."""
    return Peer(
        f"{AUTO} @{tree.name}",
        f"env PYTHONPATH={tree.resolve()} {sys.executable} -m segfetch get {{url}} -o {{path}} "
        "-n auto --sha256 {sha256} -q --json",
        AUTO_LIMIT_CONNECTIONS,
        quick=True,
    )


def baseline_install_peer(tree: Path) -> InstallPeer:
    """S5's `segfetch install (pinned)` from the source tree in DIR, as ``baseline_peer``."""
    first = S5_PEERS[0]
    here = f"env PYTHONPATH={tree.resolve()} {sys.executable} -m segfetch"
    return InstallPeer(f"{first.name} @{tree.name}", first.cmd.replace(SEGFETCH, here, 1), 32)


def bench_file(sc: Scenario, args: argparse.Namespace, runs: int) -> None:
    peers = [*peers_for(sc), *map(baseline_peer, args.baseline)]
    peers = [p for p in peers if p.quick or not args.quick or args.peer]
    if args.quick and not args.peer and sc.wall_limit > WALL_LIMIT:
        # S9's peers wait out 60 s stalls (aria2c: two of them): not in a quick look
        peers = [p for p in peers if p.name.startswith("segfetch")]
    peers = [p for p in peers if not args.peer or any(x in p.name for x in args.peer)]
    peers = [p for p in peers if not args.skip or not any(x in p.name for x in args.skip)]
    skipped = {p.name: f"not installed: {p.exe}" for p in peers if not have(p.exe)}
    skipped["uv"] = "no plain 'download a URL' command"
    if sc.server == "nginx" and not have(NGINX):
        raise SystemExit(f"no nginx at {NGINX}: apt-get install nginx-light")
    peers = [p for p in peers if p.name not in skipped]
    if sc.max_runs:
        runs = min(runs, sc.max_runs)
    slow_runs = args.slow_runs or runs
    big = sc.data_size > 100 * KIB * KIB
    size_wanted = (QUICK_SIZE_S6 if big else QUICK_SIZE) if args.quick else sc.data_size
    mach = machine()
    with tempfile.TemporaryDirectory(prefix="segfetch-bench-") as tmp:
        served = Path(tmp, "served")
        served.mkdir()
        file = build_wheel(served, size_wanted)
        hour_ago = time.time() - 3600  # as a server's files are: nginx's answers for a file
        os.utime(file, (hour_ago, hour_ago))  # written in their second wait it out (1.1 s)
        size, digest = file.stat().st_size, sha256_of(file)
        print(f"{sc.id}: {sc.title}; {file.name} {size} bytes; {runs} run(s)", flush=True)
        for name, why in skipped.items():
            print(f"  skipped {name}: {why}", flush=True)
        results: list[Record] = []
        slow: set[str] = set()  # peers limited to --slow-runs: limit or a run above SLOW_LIMIT
        with contextlib.ExitStack() as stack:
            nginx = None
            if sc.server == "nginx":
                folder = Path(tmp, "nginx")
                folder.mkdir()
                nginx = stack.enter_context(Nginx(folder, served))
                mach["nginx"] = nginx.version()
                print(f"  nginx ({mach['nginx']}) on 127.0.0.1:{nginx.port}", flush=True)
            kept = {p.name: Path(tmp, f"warm-{i}.json") for i, p in enumerate(peers) if p.warm}
            for peer in peers:  # a warm peer's previous run, not timed (seed 0)
                if peer.warm:
                    work = Path(tmp, "work")
                    r = run_once(sc, peer, 0, file, work, digest, nginx, kept[peer.name])
                    print(f"  warm-up {peer.name:34} {r['seconds']:7.2f} s ok={r['ok']} "
                          f"saved {r['saved']}", flush=True)  # fmt: skip
            for run in range(1, runs + 1):  # peers interleaved: drift hits all of them alike
                for peer in peers:
                    limit = sc.limit(size, peer.conns)
                    if limit is not None and limit > SLOW_LIMIT:
                        slow.add(peer.name)
                    if run > slow_runs and peer.name in slow:
                        continue
                    r = run_once(
                        sc, peer, run, file, Path(tmp, "work"), digest, nginx, kept.get(peer.name)
                    )
                    results.append(r)
                    if cast("float", r["seconds"]) > SLOW_LIMIT:
                        slow.add(peer.name)
                    print(
                        f"  run {run} {peer.name:34} {r['seconds']:7.2f} s ok={r['ok']} "
                        f"requests={r['requests']} wasted={r['wasted']} 503s={r['n503']} "
                        f"retries={r.get('retries', '-')} cpu={r['cpu']:.2f} "
                        f"conns={r['connections']}/{r.get('peak', '-')} "
                        f"rss={r['maxrss_kib']} KiB"
                        + (f" start={r['start']} saved={r['saved']}" if peer.warm else ""),
                        flush=True,
                    )
                    if not r["ok"]:
                        tail = (str(r.get("stderr_tail")) or "")[-400:]
                        print(f"    rc={r['rc']} stderr: {tail!r}", flush=True)
        rows = summarize(sc, peers, results, size)
        traces: list[Record] = []
        if sc.trace and not args.no_trace and sc.server == "emulator":
            best = best_fixed(rows)
            for n in (None, best and best["n"]):
                for seed in range(1, args.trace_runs + 1):
                    t = trace_once(sc, n or None, file, digest, Path(tmp, "trace"), seed)
                    traces.append(t)
                    print(
                        f"  trace -n {t['n']} seed {seed}: {t['seconds']:.2f} s ok={t['ok']} "
                        f"samples={len(t['samples'])} most connections={t.get('connections')} "
                        f"503s={len(t['refused'])}",
                        flush=True,
                    )
                if n is None and best is None:
                    break
    mach["loadavg_end"] = os.getloadavg()
    mach["commit_at_end"] = version(
        ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"]
    )
    report = {
        "scenario": sc.id,
        "title": sc.title,
        "link": sc.link,
        "server": sc.server,
        "file": file.name,
        "size": size,
        "sha256": digest,
        "runs": runs,
        "slow_runs": slow_runs,
        "slow_limit": SLOW_LIMIT,
        "slow_peers": sorted(slow),
        "quick": args.quick,
        "wall_limit": sc.wall_limit or WALL_LIMIT,
        "machine": mach,
        "command": " ".join(sys.argv),
        "peers": {p.name: p.cmd for p in peers},
        "skipped": skipped,
        "summary": rows,
        "results": results,
        "traces": traces,
    }
    print(write_outputs(report, args.out), flush=True)


# -- -n auto: goals and traces -------------------------------------------------------------------


def best_fixed(rows: list[Record]) -> Record | None:
    """The plain `segfetch -n N` row with the lowest median."""
    fixed = [r for r in rows if r.get("n") and r["median"] is not None]
    return min(fixed, key=lambda r: float(r["median"])) if fixed else None


def goals(report: Record) -> str:
    """The issue's checks of -n auto in one scenario, as text under its table."""
    rows = {r["peer"]: r for r in report["summary"]}
    auto = rows.get(AUTO)
    if auto is None or auto["median"] is None:
        return "-n auto: no successful run\n"
    a = float(auto["median"])
    lines = [f"-n auto: median {a:.2f} s, {auto['success']}/{auto['runs']} runs"]
    best = best_fixed(report["summary"])
    if best is not None:
        ratio = a / float(best["median"])
        lines.append(
            f"best fixed: {best['peer']} {best['median']:.2f} s; auto / best = {ratio:.3f} "
            f"({'within' if ratio <= 1.05 else 'NOT within'} 5 %)"
        )
    one = rows.get("segfetch -n 1")
    if one is not None and one["median"] is not None:
        ratio = a / float(one["median"])
        lines.append(
            f"-n 1: {one['median']:.2f} s; auto / -n 1 = {ratio:.3f} "
            f"({'not slower' if ratio <= 1 else 'SLOWER'})"
        )
    for name in ("aria2c -x8 -s8 -k1M", "axel -n 8", "curl -C - --retry 50"):
        if (r := rows.get(name)) is not None and r["median"] is not None:
            lines.append(f"{name}: {r['median']:.2f} s; auto / it = {a / float(r['median']):.3f}")
    if auto.get("of_limit"):
        lines.append(f"% of limit (at {AUTO_LIMIT_CONNECTIONS} connections): "
                     f"{100 * auto['of_limit']:.1f}")  # fmt: skip
    sc = SCENARIOS[report["scenario"]]
    if auto.get("wire") is not None and not sc.rate and not sc.shared_rate:  # fast link
        lines.append(f"wire / size {auto['wire']:.4f} (max {auto['wire_max']:.4f}); "
                     f"CPU s per GB {auto['cpu_per_gb']:.2f}")  # fmt: skip
    lines.append(f"503s (median) {auto['n503']:g}; most connections at once {auto.get('peak')}; "
                 f"settled at {auto.get('settled')}")  # fmt: skip
    if (warm := rows.get(WARM)) is not None and warm["median"] is not None:
        w = float(warm["median"])
        vs = f"; warm / best = {w / float(best['median']):.3f}" if best is not None else ""
        lines.append(f"{WARM}: median {w:.2f} s{vs}; began at {warm['starts']}, "
                     f"settled at {warm['settled']}; 503s (median) {warm['n503']:g}")  # fmt: skip
    return "".join(f"- {x}\n" for x in lines)


def trace_once(
    sc: Scenario, n: int | None, file: Path, digest: str | None, work: Path, seed: int
) -> Record:
    """One download through the library (not the CLI), recording (seconds, bytes done,
    connections streaming) at every progress callback (at most every 0.1 s, while bytes come)."""
    from segfetch import Options, Progress, SegfetchError, download_sync

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "emulator.jsonl"
    samples: list[tuple[float, int, int]] = []
    out: Record = {"n": "auto" if n is None else n, "seed": seed}
    with Emulator(file.parent, [*sc.link, "--seed", str(seed)], log) as emu:
        t0 = time.monotonic()

        def progress(p: Progress) -> None:
            samples.append((round(time.monotonic() - t0, 4), p.done, p.connections))

        try:
            res = download_sync(
                f"{emu.base}/{file.name}",
                work / file.name,
                Options(connections=n),
                sha256=digest,
                progress=progress,
                seed=seed,
            )
            out.update(ok=True, connections=res.connections, requests=res.requests,
                       retries=res.retries, own_seconds=res.seconds)  # fmt: skip
        except SegfetchError as exc:
            out.update(ok=False, error=str(exc))
        out["seconds"] = round(time.monotonic() - t0, 3)
    rows = emu.rows()
    first = min((float(r["t"]) for r in rows), default=0.0)
    out["refused"] = [round(float(r["t"]) - first, 3) for r in rows if r.get("status") == 503]
    out["samples"] = samples
    shutil.rmtree(work, ignore_errors=True)
    return out


def rate_series(samples: list[list[float]], window: float = 0.5) -> tuple[list[float], list[float]]:
    """(times, MiB/s over the `window` seconds before each sample) from (t, done, conns)."""
    pts = [(0.0, 0.0), *((float(t), float(d)) for t, d, _ in samples)]
    ts, rs = [], []
    j = 0
    for i in range(1, len(pts)):
        t, d = pts[i]
        while j + 1 < i and pts[j + 1][0] <= t - window:
            j += 1
        dt = t - pts[j][0]
        if dt > 0:
            ts.append(t)
            rs.append((d - pts[j][1]) / dt / (KIB * KIB))
    return ts, rs


def plot_trace(report: Record, png: Path) -> None:
    """Rate over time (left axis) and connections streaming (right axis) of the -n auto trace,
    with the best fixed -n's rate for reference and the link's capacity at auto's count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = SCENARIOS[report["scenario"]]
    traces = [t for t in report.get("traces", []) if t.get("samples")]
    autos = [t for t in traces if t["n"] == "auto"]
    if not autos:
        return
    auto = autos[0]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax2 = ax.twinx()
    for t in traces:
        if t["n"] == "auto" and t is not auto:
            ts, rs = rate_series(t["samples"])
            ax.plot(ts, rs, color="tab:blue", lw=0.8, alpha=0.35)
    for t in traces:
        if t["n"] != "auto":
            ts, rs = rate_series(t["samples"])
            label = f"-n {t['n']} (best fixed): {t['seconds']:.2f} s" if t["seed"] == 1 else None
            ax.plot(ts, rs, color="gray", lw=1, alpha=0.7, label=label)
    ts, rs = rate_series(auto["samples"])
    ax.plot(ts, rs, color="tab:blue", lw=2, label=f"-n auto: {auto['seconds']:.2f} s (rate)")
    times = [float(s[0]) for s in auto["samples"]]
    conns = [int(s[2]) for s in auto["samples"]]
    ax2.step(times, conns, where="post", color="tab:orange", lw=1.5,
             label="-n auto: connections streaming")  # fmt: skip
    if sc.rate or sc.shared_rate:
        cap = [(sc.shared_rate or min(c, sc.max_conns or c) * sc.rate) / (KIB * KIB) for c in conns]
        ax.step(times, cap, where="post", ls="--", color="gray", lw=1,
                label="link capacity at auto's connections")  # fmt: skip
    refused = auto.get("refused", [])
    for i, t503 in enumerate(refused):
        label = f"-n auto: 503 (refused), {len(refused)} in all" if i == 0 else None
        ax.axvline(t503, color="red", lw=0.8, alpha=0.6, label=label)
    ax.set_xlabel("seconds since the start of the download")
    ax.set_ylabel("rate, MiB/s (over the last 0.5 s)")
    ax2.set_ylabel("connections streaming")
    ax2.set_ylim(0, max([*conns, 4]) + 1)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{report['scenario']}: {report['title']}\n-n auto through the library "
                 f"(progress every 0.1 s), seed {auto['seed']}", fontsize=9)  # fmt: skip
    ax.grid(True, alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def add_baseline(ap: argparse.ArgumentParser, help_text: str) -> None:
    """--baseline DIR (repeatable): another source tree of segfetch, timed beside this one."""
    ap.add_argument(
        "--baseline", type=Path, action="append", default=[], metavar="DIR", help=help_text
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1 run, fewer peers (S9: segfetch only), 2 MiB files (S6, S8: 50 MiB)",
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--slow-runs",
        type=int,
        default=0,
        help=f"at most this many runs of peers whose limit is above {SLOW_LIMIT:g} s (0: --runs)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--peer", action="append", help="only peers whose name contains this")
    ap.add_argument("--skip", action="append", help="no peers whose name contains this")
    ap.add_argument("--no-trace", action="store_true", help="no library runs for the plots")
    add_baseline(
        ap,
        "one-file scenarios: also `segfetch -n auto` from the source tree in DIR "
        "(e.g. `git archive` of an earlier commit); repeatable",
    )
    ap.add_argument(
        "--trace-runs", type=int, default=1, help="library runs (seeds 1..K) per traced -n"
    )
    ap.add_argument(
        "--plot-only", action="store_true", help="redo tables and plots from OUT/*.json"
    )
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    if args.quick:
        global WALL_LIMIT
        WALL_LIMIT = 30.0  # a 2 MiB file takes 8 s on one connection at 256 KiB/s
    args.out.mkdir(parents=True, exist_ok=True)
    for sid in args.scenario or sorted(SCENARIOS):
        sc = SCENARIOS[sid]
        if args.plot_only:
            src = args.out / f"{sid.lower()}.json"
            if sc.kind == "file" and src.exists():
                report = json.loads(src.read_text())
                peers = [p for p in peers_for(sc) if p.name in report["peers"]]
                report["summary"] = summarize(sc, peers, report["results"], report["size"])
                print(write_outputs(report, args.out))
            continue
        if sc.kind == "install":
            only = args.peer or (list(S5_QUICK) if args.quick else None)
            bench_install(sc, runs, args.quick, only, args.out, args.baseline)
            continue
        bench_file(sc, args, runs)


if __name__ == "__main__":
    main()
