"""What crosses the link where little or nothing should: segfetch against pip alone.

    python benchmarks/waste.py [--runs 3] [--baseline DIR ...] [--out FILE]

Over the link emulator at S5's link (256 KiB/s per connection, 100 ms RTT), an index of
200 kB wheels without .metadata files (a static PEP 503 tree, as nginx serves one):

- held: `install wb-app` into a venv that holds it and its dependency (pip: "Requirement
  already satisfied");
- held, pinned: the same as `==` pins;
- wrong sha256: `download wb-bad`, whose page gives another sha256 than its file's;
- missing dependency: `download wb-top`, whose dependency the index does not have.

Per case and peer (this tree, each --baseline tree, the venv's pip alone): the requests
and bytes the emulator answered, wall seconds, exit code. Median (min-max) over --runs runs,
peers interleaved run by run. Not a test: nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio
from bench import HERE, add_baseline, install_env
from installer import fresh_venv, segfetch_cmd, stats

from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.emulator import index as emulated
from segfetch.testing.wheelmaker import make_wheel

LINK = Link(rate=256 * 1024, rtt=0.1)
BARE = IndexOptions(metadata=False, advertise_metadata=False)
CASES = {  # name: (command, requirements)
    "held": ("install", ["wb-app"]),
    "held, pinned": ("install", ["wb-app==1.0", "wb-lib==1.0"]),
    "wrong sha256": ("download", ["wb-bad"]),
    "missing dependency": ("download", ["wb-top"]),
}


def build(folder: Path) -> None:
    make_wheel(folder, "wb-app", "1.0", payload=200_000, requires=["wb-lib"])
    make_wheel(folder, "wb-lib", "1.0", payload=200_000, seed=1)
    make_wheel(folder, "wb-bad", "1.0", payload=200_000, seed=2)
    make_wheel(folder, "wb-top", "1.0", payload=200_000, seed=3, requires=["wb-gone"])
    real = emulated.describe

    def wrong(p: Path, size: int) -> emulated.IndexFile | None:  # wb-bad's page lies
        f = real(p, size)
        return replace(f, sha256="0" * 64) if f and f.project == "wb-bad" else f

    emulated.describe = wrong


def command(peer: str, tree: Path | None, case: str, python: str, url: str, out: Path) -> list[str]:
    verb, reqs = CASES[case]
    where = ["-d", str(out)] if verb == "download" else []
    if peer == "pip alone":
        pip = [python, "-m", "pip", verb, "-q", "--no-cache-dir", "--disable-pip-version-check"]
        return [*pip, "--index-url", url, *where, *reqs]
    prefix, _ = segfetch_cmd(tree)
    target = ["--python", python] if verb == "install" else []
    return [*prefix, verb, "-q", "--no-cache", "--index-url", url, *target, *where, *reqs]


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env = install_env(work / "cache")
    build(work / "index")
    python = fresh_venv(work / "venv", env)
    trees: dict[str, Path | None] = {"now": None}
    if args.baseline:
        trees = {d.name: d.resolve() for d in args.baseline} | {"now": HERE.parent}
    peers = [*trees, "pip alone"]
    seen: dict[str, dict[str, list[float]]] = {}
    codes: dict[str, set[int]] = {}
    async with Emulator(index=work / "index", link=LINK, index_options=BARE) as emu:
        held = [python, "-m", "pip", "install", "-q", "--index-url", emu.index_url, "wb-app"]
        await trio.run_process(held, env=env, capture_stdout=True)  # (not timed)
        for n in range(args.runs):
            for case in CASES:
                for peer in peers:
                    tree = trees.get(peer)
                    out = work / "out" / f"{n}-{peer}-{case}".replace(" ", "-")
                    argv = command(peer, tree, case, python, emu.index_url, out)
                    extra = segfetch_cmd(tree)[1] if peer != "pip alone" else {}
                    before, t0 = len(emu.log), time.perf_counter()
                    proc = await trio.run_process(
                        argv, env={**env, **extra}, cwd=work, check=False,
                        capture_stdout=True, capture_stderr=True, stdin=subprocess.DEVNULL,
                    )  # fmt: skip
                    took = time.perf_counter() - t0
                    rows = emu.log[before:]
                    sent = sum(int(str(r["sent"])) for r in rows)
                    key = f"{case} | {peer}"
                    figures = seen.setdefault(key, {"requests": [], "bytes": [], "seconds": []})
                    figures["requests"].append(len(rows))
                    figures["bytes"].append(sent)
                    figures["seconds"].append(took)
                    codes.setdefault(key, set()).add(proc.returncode)
                    print(f"  run {n} {key:40} {len(rows):3} requests {sent:>9,} B "
                          f"{took:6.2f} s exit {proc.returncode}", flush=True)  # fmt: skip
    return {
        key: {name: stats(xs) for name, xs in figures.items()} | {"exit": sorted(codes[key])}
        for key, figures in seen.items()
    }


def table(rows: dict[str, Any]) -> str:
    lines = [
        "| case | peer | requests | bytes sent | seconds | exit |",
        "|---|---|---:|---:|---:|---|",
    ]
    for key, r in rows.items():
        case, peer = key.split(" | ")
        s = r["seconds"]
        seconds = f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"
        cells = f"{r['requests']['median']:g} | {r['bytes']['median']:,.0f} | {seconds}"
        lines.append(f"| {case} | {peer} | {cells} | {', '.join(map(str, r['exit']))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    add_baseline(ap, "also run the segfetch package in DIR (e.g. `git archive` of a commit)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="segfetch-waste-") as tmp:
        rows = trio.run(run, args, Path(tmp))
    print(table(rows))
    if args.out:
        report = {"python": sys.version.split()[0], "command": " ".join(sys.argv), "cases": rows}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    os.environ.pop("VIRTUAL_ENV", None)
    main()
