"""The final install step and segfetch's start-up, over the link emulator on loopback.

    python benchmarks/installer.py [--runs 5] [--only startup|install|warm] [--out FILE]
                                   [--baseline DIR ...]

Start-up: `segfetch --version` (wall time), and the time from spawning `segfetch install`
to the emulator's first request (a pinned set, so the first request is an index page), with
the index given as --index-url, given through PIP_INDEX_URL, and with a pip config file
(PIP_CONFIG_FILE names one: segfetch asks the target's pip to read it, every run under
--no-cache; the answer is kept between runs otherwise).

Install: the 30 small wheels of S5 (benchmarks/bench.py) from the emulator with no rate limit
(a fast link), each peer into a fresh venv made before the clock starts, with a fresh cache
folder (XDG_CACHE_HOME) per run: `segfetch install --installer pip`, `--installer uv` (from
each tree with --baseline), and `uv pip install` straight from the emulator's index; the two
installers on the local files (`--no-index --find-links`) as floors.

Warm: a build script's next run: the pinned, hashed set again into a venv made afresh at the
same path, caches warm (segfetch's; uv's for both), `segfetch install --installer uv` per
tree (--baseline) against `uv pip install`. Median, min and max over --runs runs, peers
interleaved. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from bench import HERE, SEGFETCH, ReqSet, add_baseline, build_s5, install_env

from segfetch.testing.emulator import Emulator, Link
from segfetch.wheels.installer import find_uv

Record = dict[str, Any]


def fresh_venv(venv: Path, env: dict[str, str]) -> str:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    return str(venv / "bin" / "python")


def stats(xs: list[float]) -> Record:
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
        "runs": len(xs),
    }


# -- start-up ----------------------------------------------------------------------------------


async def first_request_seconds(
    emu: Emulator, cmd: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, int]:
    """Seconds from spawning ``cmd`` to the emulator's first request, and the exit code."""
    seen = len(emu.log)
    t0 = trio.current_time()
    proc = await trio.run_process(
        cmd, env=env, cwd=cwd, check=False, capture_stdout=True, capture_stderr=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        print(proc.stderr.decode()[-2000:], file=sys.stderr)
    rows = emu.log[seen:]
    # Entry.t is the request's arrival, on the emulator's clock (started at emu._t0)
    first = min(float(str(r["t"])) for r in rows) + emu._t0 if rows else float("nan")
    return first - t0, proc.returncode


def segfetch_cmd(tree: Path | None) -> tuple[list[str], dict[str, str]]:
    """segfetch as a command: the venv's own, or ``python -m segfetch`` from a source tree."""
    if tree is None:
        return [SEGFETCH], {}
    return [sys.executable, "-m", "segfetch"], {"PYTHONPATH": str(tree)}


async def startup(rs: ReqSet, runs: int, work: Path, trees: dict[str, Path | None]) -> Record:
    """Per tree (the code as it is, and a baseline to compare with), interleaved run by run
    so that the machine's load hits all alike; the first run of each is not counted (it
    warms the page cache and installs the set into the venv)."""
    env = install_env(work / "cache")
    python = fresh_venv(work / "venv", env)
    pip_conf = work / "pip.conf"  # (a setting that changes nothing here)
    pip_conf.write_text("[global]\ntimeout = 60\n")
    times: dict[str, list[float]] = {}
    async with Emulator(index=rs.wheels, link=Link()) as emu:
        for run in range(runs + 1):
            for label, tree in trees.items():
                prefix, extra = segfetch_cmd(tree)
                e = {**env, **extra}
                t0 = time.perf_counter()
                subprocess.run(  # from `work`: `-m` puts the cwd first on sys.path
                    [*prefix, "--version"], check=True, capture_output=True, env=e, cwd=work
                )
                took = {f"{label}: --version": time.perf_counter() - t0}
                # (held since run 0, the set would ask the index nothing, as pip alone)
                cmd = [*prefix, "install", "--python", python, "--no-cache", "-q"]
                cmd += ["--force-reinstall", "-r", str(rs.pinned)]
                conf = {**e, "PIP_CONFIG_FILE": str(pip_conf)}  # the target's pip reads it
                variants = {
                    "first request, --index-url": ([*cmd, "--index-url", emu.index_url], e),
                    "first request, PIP_INDEX_URL": (cmd, {**e, "PIP_INDEX_URL": emu.index_url}),
                    "first request, a pip.conf": ([*cmd, "--index-url", emu.index_url], conf),
                }
                for name, (argv, env_) in variants.items():
                    seconds, rc = await first_request_seconds(emu, argv, env_, work)
                    assert rc == 0, f"{label} {name}: exit {rc}"
                    took[f"{label}: {name}"] = seconds
                print(f"  run {run} " + ", ".join(f"{k} {v:.3f}" for k, v in took.items()))
                if run:
                    for k, v in took.items():
                        times.setdefault(k, []).append(v)
    return {name: stats(xs) for name, xs in sorted(times.items())}


# -- the install step --------------------------------------------------------------------------

Peer = Callable[[str, str, ReqSet, str], list[str]]  # (python, index url, set, uv) -> argv


def _segfetch(installer: str, tree: Path | None = None) -> Peer:
    def cmd(python: str, url: str, rs: ReqSet, uv: str) -> list[str]:
        prefix, extra = segfetch_cmd(tree)
        return [
            "env", *(f"{k}={v}" for k, v in extra.items()), *prefix, "install",
            "--installer", installer, "--python", python, "-q",  # a fresh cache: as uv's
            "-r", str(rs.pinned), "--index-url", url,
        ]  # fmt: skip

    return cmd


def _uv_from_index(python: str, url: str, rs: ReqSet, uv: str) -> list[str]:
    return [uv, "pip", "install", "--python", python, "-r", str(rs.pinned), "--index-url", url]


def _pip_local(python: str, url: str, rs: ReqSet, uv: str) -> list[str]:
    return [
        python, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
        "--find-links", str(rs.wheels), "-r", str(rs.pinned),
    ]  # fmt: skip


def _uv_local(python: str, url: str, rs: ReqSet, uv: str) -> list[str]:
    return [
        uv, "pip", "install", "--python", python, "--no-index", "--find-links", str(rs.wheels),
        "-r", str(rs.pinned),
    ]  # fmt: skip


PEERS: dict[str, Peer] = {
    "segfetch install --installer pip": _segfetch("pip"),
    "segfetch install --installer uv": _segfetch("uv"),
    "uv pip install (from the emulator)": _uv_from_index,
    "floor: pip install --no-index --find-links": _pip_local,
    "floor: uv pip install --no-index --find-links": _uv_local,
}


async def install(
    rs: ReqSet, runs: int, work: Path, uv: str, trees: dict[str, Path | None]
) -> Record:
    """Cold installs, peers interleaved run by run; with --baseline, `--installer uv` from
    each tree (all as `python -m segfetch`)."""
    imports = "import " + ", ".join(rs.imports)
    peers = dict(PEERS)
    if any(trees.values()):
        del peers["segfetch install --installer uv"]
        for label, tree in trees.items():
            peers[f"segfetch install --installer uv @{label}"] = _segfetch("uv", tree)
    seconds: dict[str, list[float]] = {name: [] for name in peers}
    async with Emulator(index=rs.wheels, link=Link()) as emu:
        for run in range(1, runs + 1):  # peers interleaved: drift hits all of them alike
            for name, peer in peers.items():
                here = work / "install"
                shutil.rmtree(here, ignore_errors=True)
                here.mkdir(parents=True)
                env = install_env(here / "cache")
                python = fresh_venv(here / "venv", env)
                cmd = peer(python, emu.index_url, rs, uv)
                t0 = time.perf_counter()
                proc = await trio.run_process(
                    cmd, env=env, cwd=here, check=False, capture_stdout=True,
                    capture_stderr=True, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                took = time.perf_counter() - t0
                check = subprocess.run([python, "-c", imports], capture_output=True, env=env)
                if proc.returncode != 0 or check.returncode != 0:
                    err = proc.stderr.decode()[-2000:] + check.stderr.decode()[-1000:]
                    raise SystemExit(f"{name}: exit {proc.returncode}: {err}")
                seconds[name].append(took)
                print(f"  run {run} {name:48} {took:6.2f} s", flush=True)
    return {name: stats(xs) for name, xs in seconds.items()}


async def warm(rs: ReqSet, runs: int, work: Path, uv: str, trees: dict[str, Path | None]) -> Record:
    """A build script's second run: the same pinned, hashed set into a venv made afresh at
    the same path, with the installer's caches warm (segfetch's, and uv's for both). The
    first run of each warms them and is not counted; peers interleaved run by run."""
    seconds: dict[str, list[float]] = {}
    async with Emulator(index=rs.wheels, link=Link()) as emu:
        for run in range(runs + 1):
            for label, tree in {**trees, "uv pip install": None}.items():
                here = work / "warm" / label.replace(" ", "-")  # its caches, kept run to run
                env = install_env(here / "cache")
                python = fresh_venv(here / "venv", env)
                if label == "uv pip install":
                    cmd = _uv_from_index(python, emu.index_url, rs, uv)
                    extra: dict[str, str] = {}
                else:
                    prefix, extra = segfetch_cmd(tree)
                    cmd = [*prefix, "install", "--installer", "uv", "--python", python, "-q"]
                    cmd += ["-r", str(rs.pinned), "--index-url", emu.index_url]
                t0 = time.perf_counter()
                proc = await trio.run_process(
                    cmd, env={**env, **extra}, cwd=here, check=False, capture_stdout=True,
                    capture_stderr=True, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                took = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"{label}: exit {proc.returncode}: {proc.stderr.decode()}")
                print(f"  run {run} {label:40} {took:6.2f} s", flush=True)
                if run:
                    seconds.setdefault(label, []).append(took)
    return {name: stats(xs) for name, xs in seconds.items()}


def table(rows: Record) -> str:
    lines = ["| | median s | min s | max s | runs |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        figures = f"{r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {r['runs']}"
        lines.append(f"| {name} | {figures} |")
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", choices=["startup", "install", "warm"])
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    add_baseline(
        ap,
        "start-up, install and warm: also time the segfetch package in DIR (e.g. "
        "`git archive` of an earlier commit), interleaved with this tree's; repeatable",
    )
    args = ap.parse_args()
    report: Record = {"python": sys.version.split()[0], "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(prefix="segfetch-installer-") as tmp:
        rs = build_s5(Path(tmp, "set"))
        print(f"{len(rs.files)} wheels, {rs.size:,} bytes; {args.runs} runs")
        trees: dict[str, Path | None] = {"now": None}
        if args.baseline:  # all as `python -m segfetch`, each from its own tree
            trees = {d.name: d.resolve() for d in args.baseline} | {"now": HERE.parent}
        if args.only in (None, "startup"):
            report["startup"] = await startup(rs, args.runs, Path(tmp, "startup"), trees)
            print(table(report["startup"]), flush=True)
        uv = find_uv()
        if uv is None:
            raise SystemExit("no uv: pip install uv")
        report["uv"] = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout
        if args.only in (None, "install"):
            report["install"] = await install(rs, args.runs, Path(tmp), uv, trees)
            print(table(report["install"]))
        if args.only in (None, "warm"):
            report["warm"] = await warm(rs, args.runs, Path(tmp), uv, trees)
            print(table(report["warm"]))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.pop("VIRTUAL_ENV", None)
    # segfetch from .pyc, as an installed package has it: with this machine's
    # PYTHONDONTWRITEBYTECODE every run would compile its modules again (~30 ms). The first,
    # uncounted run of each tree writes them.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    trio.run(main)
