"""500 wheels in one `segfetch download` with 64 connections: descriptors stay within the
budget, memory stays flat, every file verifies."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
from pathlib import Path

import psutil
import trio

from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel

FILES = 500
BUDGET = 64


async def test_five_hundred_wheels_within_the_connection_budget(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    lines = []
    for i in range(FILES):
        wheel = make_wheel(index, f"load-{i:03}", "1.0", payload=20_000, seed=i)
        lines.append(
            f"load-{i:03}==1.0 --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
        )
    req = tmp_path / "req.txt"
    req.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    emu = Emulator(index=index, link=Link(rate=4 << 20), index_options=IndexOptions(json=False))
    async with emu:
        args = ["download", "-r", str(req), "-d", str(out), "--index-url", emu.index_url]
        args += ["--max-connections", str(BUDGET), "--no-cache", "-q"]
        proc = subprocess.Popen([sys.executable, "-m", "segfetch", *args])
        watch = psutil.Process(proc.pid)
        peak_fds = peak_rss = peak_conns = 0
        with trio.fail_after(300):  # a guard against hanging, not a speed claim
            while proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    peak_fds = max(peak_fds, watch.num_fds())
                    peak_rss = max(peak_rss, watch.memory_info().rss)
                peak_conns = max(peak_conns, emu.open_connections)
                await trio.sleep(0.02)
    assert proc.returncode == 0
    print(
        f"load: {FILES} files, {BUDGET} connections: peak fds {peak_fds}, "
        f"peak RSS {peak_rss / 2**20:.0f} MiB, peak server connections {peak_conns}"
    )
    # Per connection at most a socket, a cache lock and a .part; plus the interpreter's own.
    assert peak_fds <= 3 * BUDGET + 30
    assert peak_rss < 150 * 2**20
    got = sorted(p.name for p in out.iterdir())
    assert len(got) == FILES
    for name in got[:: FILES // 20]:
        assert (out / name).read_bytes() == (index / name).read_bytes()
