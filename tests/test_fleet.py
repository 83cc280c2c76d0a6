"""docs/fleet.md's set-up (b): an existing pull-through cache (proxpi) whose upstream is
`segfetch serve`, in front of a slow origin (the link emulator). Marked slow: it installs
proxpi from the package index into a venv of its own (kept in pytest's cache folder), with the
machine's pip settings, the one step here that is not on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from segfetch.testing.emulator import Emulator, Link
from segfetch.testing.wheelmaker import make_wheel

pytestmark = pytest.mark.slow
MACHINE_ENV = dict(os.environ)  # read at import, before conftest isolates pip from its config
START = 60.0  # seconds a server may take to answer its first request


@pytest.fixture(scope="session")
def proxpi(pytestconfig: pytest.Config) -> Path:
    """proxpi's `flask` command, in a venv made once (pytest's cache folder keeps it)."""
    assert pytestconfig.cache is not None
    venv = pytestconfig.cache.mkdir("proxpi-venv")
    flask = venv / "bin" / "flask"
    if not flask.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        got = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "proxpi"],
            env=MACHINE_ENV, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if got.returncode != 0:
            pytest.skip(f"proxpi is not installable here: {got.stderr.strip()[-300:]}")
    return flask


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running(cmd: list[str], url: str, env: dict[str, str]) -> AsyncIterator[None]:
    """Run ``cmd`` until the block ends; enter once ``url`` answers at all."""
    proc = await trio.lowlevel.open_process(cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        with trio.fail_after(START):
            async with httpx.AsyncClient(trust_env=False) as client:
                while True:
                    assert proc.poll() is None, f"{cmd[0]} exited with {proc.returncode}"
                    try:
                        await client.get(url)
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.1)
        yield
    finally:
        proc.terminate()
        with trio.move_on_after(10):
            await proc.wait()
        proc.kill()


async def pip_install(venv: Path, index: str, name: str) -> None:
    await trio.run_process([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--no-cache-dir", "--index-url", index, name]
    done = await trio.run_process(pip, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    await trio.run_process([python, "-c", "import sf_fleet, sf_fleet_dep"])


async def test_proxpi_in_front_of_serve_fetches_each_file_once(
    tmp_path: Path, proxpi: Path
) -> None:
    wheels = tmp_path / "wheels"
    files = [
        make_wheel(wheels, "sf-fleet", "1.0", requires=["sf-fleet-dep"], payload=600_000),
        make_wheel(wheels, "sf-fleet-dep", "1.0", payload=300_000, seed=1),
    ]
    serve_port, proxpi_port = free_port(), free_port()
    serve_url = f"http://127.0.0.1:{serve_port}/simple/"
    proxpi_url = f"http://127.0.0.1:{proxpi_port}/index/"
    env = dict(os.environ)
    env.update(PROXPI_INDEX_URL=serve_url, PROXPI_CACHE_DIR=str(tmp_path / "proxpi-cache"))
    async with Emulator(index=wheels, link=Link(rate=512 * 1024)) as emu:
        serve = [sys.executable, "-m", "segfetch", "serve", "--index-url", emu.index_url]
        serve += ["--port", str(serve_port), "--cache-dir", str(tmp_path / "serve-cache")]
        flask = [str(proxpi), "--app", "proxpi.server", "run", "--port", str(proxpi_port)]
        async with running(serve, serve_url, env), running(flask, proxpi_url, env):
            await pip_install(tmp_path / "builder1", proxpi_url, "sf-fleet")
            await pip_install(tmp_path / "builder2", proxpi_url, "sf-fleet")
    for f in files:
        sent = sum(int(str(e["sent"] or 0)) for e in emu.log if str(e["path"]).endswith(f.name))
        size = f.stat().st_size
        # every byte crossed the slow link, and once: two builders did not make it twice
        assert size <= sent < 1.5 * size, (f.name, sent, size)
