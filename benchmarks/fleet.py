"""S10: a team's builders behind one slow uplink, with and without `segfetch serve`.

    python benchmarks/fleet.py [--runs 3] [--size 8M] [--rate 256K] [--out FILE]

The origin is the link emulator serving one wheel of --size (incompressible bytes) as an
index, capped at --rate per connection. Four cases per run, each with a fresh origin log,
fresh venvs (made before the clock starts) and, through serve, a fresh (cold) serve cache:

- uv alone, straight from the origin, and through `segfetch serve` (the issue's goal: through
  serve at most 0.35x the time of uv straight from the origin);
- three builders at once (uv, pip, uv), straight from the origin, and through one serve.

Per builder: wall time from its start to its exit. Per case: bytes the origin sent over the
file's size (each file should cross the slow link once: 1.0x through serve, one copy per
builder straight). Median, min and max over --runs. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import SEGFETCH, Emulator, build_wheel, free_port, install_env

from segfetch.units import parse_size
from segfetch.wheels.installer import find_uv

Record = dict[str, Any]
BUILDERS = ("uv", "pip", "uv")
WALL_LIMIT = 300.0  # seconds per builder; hitting it is a failure, not a figure


class Serve:
    """`segfetch serve` as a subprocess in front of ``upstream``, with its own cache."""

    def __init__(self, upstream: str, cache: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        cmd = [SEGFETCH, "serve", "--index-url", upstream, "--port", str(self.port)]
        self.log = cache.with_suffix(".serve.err")
        with self.log.open("w") as err:
            cmd += ["--cache-dir", str(cache)]
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        self.url = f"http://127.0.0.1:{self.port}/simple/"
        deadline = time.monotonic() + 15
        while not _answers(self.url + "benchpkg/"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"segfetch serve did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1):  # a page fetch: loopback only
            return True
    except OSError:
        return False


def builder_cmd(kind: str, venv: Path, url: str, uv: str) -> list[str]:
    if kind == "pip":
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir"]
        return [*pip, "--disable-pip-version-check", "--index-url", url, "benchpkg"]
    py = str(venv / "bin" / "python")
    return [uv, "pip", "install", "--python", py, "--no-cache", "--index-url", url, "benchpkg"]


def make_venv(kind: str, venv: Path, uv: str, env: dict[str, str]) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    # pip needs itself in the venv; uv does not (and `uv venv` takes 0.05 s, not 3)
    cmd = [sys.executable, "-m", "venv", str(venv)] if kind == "pip" else [uv, "venv", str(venv)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)


def run_builders(kinds: tuple[str, ...], url: str, work: Path, uv: str) -> list[float | None]:
    """Start every builder at once; each one's seconds to exit 0 (None: failed)."""
    env = install_env(work / "xdg")
    venvs = [work / f"venv{i}-{k}" for i, k in enumerate(kinds)]
    for k, v in zip(kinds, venvs, strict=True):
        make_venv(k, v, uv, env)
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(builder_cmd(k, v, url, uv), env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
        for k, v in zip(kinds, venvs, strict=True)
    ]  # fmt: skip
    ended: dict[int, float] = {}  # each builder's own exit, polled, not waited in turn
    while len(ended) < len(procs) and time.monotonic() - t0 < WALL_LIMIT:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic() - t0
        time.sleep(0.01)
    out: list[float | None] = []
    for i, p in enumerate(procs):
        if p.poll() is None:
            p.kill()
        _, err = p.communicate()
        if p.returncode != 0:
            print(err.decode()[-1500:], file=sys.stderr)
        out.append(ended[i] if p.returncode == 0 and i in ended else None)
    return out


def one_case(
    kinds: tuple[str, ...], through_serve: bool, wheels: Path, args: argparse.Namespace, uv: str
) -> Record:
    with tempfile.TemporaryDirectory(prefix="segfetch-fleet-") as tmp:
        work = Path(tmp)
        origin = Emulator(work, ["--rate", args.rate], work / "origin.log")
        origin.serve = ["--index", str(wheels)]
        with origin:
            upstream = origin.base + "/simple/"
            serve = (
                Serve(upstream, work / "cache", install_env(work / "xdg"))
                if through_serve
                else None
            )
            try:
                times = run_builders(kinds, serve.url if serve else upstream, work, uv)
            finally:
                if serve:
                    serve.stop()
        sent = sum(int(r.get("sent") or 0) for r in origin.rows())
    return {"times": times, "origin_sent": sent}


def stats(xs: list[float | None]) -> Record:
    ok = [x for x in xs if x is not None]
    if not ok:
        return {"median": None, "min": None, "max": None, "failed": len(xs)}
    return {
        "median": round(statistics.median(ok), 2),
        "min": round(min(ok), 2),
        "max": round(max(ok), 2),
        "failed": len(xs) - len(ok),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="8M", help="the wheel's payload, e.g. 8M")
    ap.add_argument("--rate", default="256K", help="origin's bytes/s per connection")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "s10.json")
    args = ap.parse_args()
    uv = find_uv()
    if uv is None:
        raise SystemExit("uv not found: pip install uv")
    with tempfile.TemporaryDirectory(prefix="segfetch-fleet-wheels-") as tmp:
        wheels = Path(tmp)
        size = build_wheel(wheels, parse_size(args.size)).stat().st_size
        cases = {
            "uv alone, straight": (("uv",), False),
            "uv alone, through serve": (("uv",), True),
            "3 builders, straight": (BUILDERS, False),
            "3 builders, through serve": (BUILDERS, True),
        }
        raw: dict[str, list[Record]] = {name: [] for name in cases}
        for run in range(args.runs):  # cases interleaved, so that load hits them alike
            for name, (kinds, served) in cases.items():
                raw[name].append(one_case(kinds, served, wheels, args, uv))
                print(f"run {run + 1} {name}: {raw[name][-1]}", file=sys.stderr)
    rows = []
    for name, (kinds, _) in cases.items():
        for i, kind in enumerate(kinds):
            rows.append({"case": name, "builder": f"{i + 1}: {kind}",
                         **stats([r["times"][i] for r in raw[name]]),
                         "origin_per_file": round(statistics.median(
                             r["origin_sent"] / size for r in raw[name]), 2)})  # fmt: skip
    report = {"size": size, "rate": args.rate, "runs": args.runs, "rows": rows, "raw": raw}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(table(report))


def table(report: Record) -> str:
    lines = [
        "| case | builder | seconds, median (min-max) | origin bytes / file |",
        "|---|---|---|---|",
    ]
    for r in report["rows"]:
        t = "failed" if r["median"] is None else f"{r['median']} ({r['min']}-{r['max']})"
        t += f", {r['failed']} failed" if r["failed"] else ""
        lines.append(f"| {r['case']} | {r['builder']} | {t} | {r['origin_per_file']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
