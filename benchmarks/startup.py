"""`segfetch get`'s start-up over the link emulator on loopback (docs/benchmarks.md).

    python benchmarks/startup.py [--runs 9] [--rtt SECONDS] [--baseline DIR ...] [--out FILE]

Per run and per source tree (this one, and each --baseline, e.g. `git archive` of an earlier
commit unpacked in DIR), interleaved so that the machine's load hits all alike: spawn
`python -m segfetch get URL -q` for a 64 KiB file and record the seconds from the spawn to the
emulator's first request, the wall time of the whole command, and its CPU seconds (user +
system, from the children's rusage). Beside them, the floor: `python -c "import trio, httpx,
httpcore, os; os._exit(0)"` (the libraries every download needs, without the interpreter's
exit), wall and CPU. ``--rtt``: the emulator waits that long on each new connection and
before each answer's head (a server far away). All trees run with this interpreter and its
packages, as `python -m segfetch` from their own folder, with bytecode written and read as an
installed package has it (bench.peer_env drops PYTHONDONTWRITEBYTECODE). The first run of
each tree is not counted (it warms the page cache and writes the bytecode). Median, min and
max; not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from bench import HERE, add_baseline, peer_env
from installer import stats, table

from segfetch.testing.emulator import Emulator, Link, SyntheticFile

Record = dict[str, Any]
SIZE = 64 * 1024


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def one_get(emu: Emulator, tree: Path, work: Path) -> dict[str, float]:
    """Seconds to the first request, wall seconds and CPU seconds of one `segfetch get`."""
    dest = work / "f.bin"
    dest.unlink(missing_ok=True)
    env = peer_env() | {"PYTHONPATH": str(tree), "SEGFETCH_CONFIG": str(work / "config.json")}
    cmd = [sys.executable, "-m", "segfetch", "get", emu.url("/f.bin"), "-o", str(dest), "-q"]
    seen = len(emu.log)
    cpu0, t0 = children_cpu(), trio.current_time()
    proc = await trio.run_process(
        cmd, env=env, cwd=work, check=False, capture_stdout=True, capture_stderr=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wall, cpu = trio.current_time() - t0, children_cpu() - cpu0
    if proc.returncode != 0 or dest.stat().st_size != SIZE:
        raise SystemExit(f"{tree}: exit {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    rows = emu.log[seen:]
    # Entry.t is the request's arrival, on the emulator's clock (started at emu._t0)
    first = min(float(str(r["t"])) for r in rows) + emu._t0
    return {"first request": first - t0, "wall": wall, "cpu": cpu}


async def floor() -> dict[str, float]:
    """Wall and CPU seconds of importing the libraries alone."""
    cmd = [sys.executable, "-c", "import trio, httpx, httpcore, os; os._exit(0)"]
    cpu0, t0 = children_cpu(), trio.current_time()
    await trio.run_process(cmd, env=peer_env(), stdin=subprocess.DEVNULL)
    return {"wall": trio.current_time() - t0, "cpu": children_cpu() - cpu0}


async def startup(runs: int, work: Path, trees: dict[str, Path], rtt: float) -> Record:
    times: dict[str, list[float]] = {}
    async with Emulator({"/f.bin": SyntheticFile(SIZE)}, link=Link(rtt=rtt)) as emu:
        for run in range(runs + 1):
            for label, tree in [*trees.items(), ("floor: import trio, httpx, httpcore", None)]:
                took = await (floor() if tree is None else one_get(emu, tree, work))
                print(f"  run {run} {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in took.items()))
                if run:
                    for k, v in took.items():
                        times.setdefault(f"{label}: {k}", []).append(v)
    return {name: stats(xs) for name, xs in times.items()}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    ap.add_argument(
        "--rtt", type=float, default=0.0, help="seconds the emulator waits before each answer"
    )
    add_baseline(
        ap,
        "also time the segfetch package in DIR, interleaved with this tree's; repeatable",
    )
    args = ap.parse_args()
    trees = {d.name: d.resolve() for d in args.baseline} | {"now": HERE.parent}
    report: Record = {
        "python": sys.version.split()[0],
        "command": " ".join(sys.argv),
        "load": os.getloadavg(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with tempfile.TemporaryDirectory(prefix="segfetch-startup-") as tmp:
        report["startup"] = await startup(args.runs, Path(tmp), trees, args.rtt)
    report["load_after"] = os.getloadavg()
    print(table(report["startup"]))
    print(f"load average before / after: {report['load']} / {report['load_after']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    trio.run(main)
