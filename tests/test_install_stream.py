"""`segfetch install --installer uv` on a cold cache: uv starts while the files download,
against segfetch's own index on 127.0.0.1 for the run (wheels/streaming.py)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from helpers import one_line_error, segfetch
from test_installer import freeze

from segfetch.testing.emulator import Emulator, Fault, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.installer import find_uv

UV = find_uv()
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed (the test extra has it)")
# A complete pinned set: planned from the pages (an unpinned one is resolved by pip while
# segfetch reads ahead, which has often fetched every file by the time the plan is made).
SET = ["sf-alpha==1.0", "sf-beta==1.0", "sf-gamma[fast]==1.0", "sf-delta==1.0"]
SLOW = Link(rate=400_000)  # uv starts long before the 600 kB wheel is in


WHEELS = [
    "sf_alpha-1.0-py3-none-any.whl",
    "sf_beta-1.0-py3-none-any.whl",
    "sf_gamma-1.0-py3-none-any.whl",
    "sf_delta-1.0-py3-none-any.whl",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-alpha", "1.0", requires=["sf-beta>=1"])
    make_wheel(d, "sf-beta", "1.0", payload=600_000)
    make_wheel(d, "sf-gamma", "1.0", extras={"fast": ["sf-delta"]})
    make_wheel(d, "sf-delta", "1.0", payload=100_000, seed=1)
    return d


@pytest.fixture
def uv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """uv on PATH is a shim that writes its process id and arguments to this file, then
    becomes the real uv (same process); uv's own cache is the test's."""
    shim_dir, log = tmp_path / "shim", tmp_path / "uv.log"
    shim_dir.mkdir()
    shim = shim_dir / "uv"
    shim.write_text(f'#!/bin/sh\necho "$$ $*" >> {shlex.quote(str(log))}\nexec {UV} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    return log


def runs(log: Path) -> list[tuple[int, list[str]]]:
    """Each uv started: its process id and arguments."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(ln.split()[0]), ln.split()[1:]) for ln in lines]


def streamed(args: list[str]) -> bool:
    i = args.index("--index-url") if "--index-url" in args else -1
    return i >= 0 and args[i + 1].startswith("http://127.0.0.1:") and "--offline" not in args


def venv(tmp_path: Path, name: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / name)], check=True)
    return tmp_path / name / "bin" / "python"


def installed_payload(python: Path, module: str) -> bytes:
    code = f"import {module}, pathlib; print({module}.__file__)"
    init = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    folder = Path(init.stdout.strip()).parent
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def wheel_payload(wheel: Path, module: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if n.startswith(f"{module}/"))
        return b"".join(z.read(n) for n in names)


async def install(python: Path, url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await segfetch("install", "--python", str(python), "--index-url", url, *args)


async def test_a_cold_install_streams_to_uv_and_leaves_what_the_usual_route_does(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    streaming, usual = venv(tmp_path, "streaming"), venv(tmp_path, "usual")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    async with Emulator(index=index_dir, link=SLOW) as emu:
        cold = await install(streaming, emu.index_url, "--installer", "uv", *cache, *SET)
        assert cold.returncode == 0, cold.stderr
        # The same set again, every file now cached: the find-links route.
        warm = await install(usual, emu.index_url, "--installer", "uv", *cache, *SET)
        assert warm.returncode == 0, warm.stderr
    # (A warm run of a set without hashes starts uv before its plan too, as a cold one
    # does, and stops it once the plan finds every file cached: the last uv is the one.)
    (_, first), *_, (_, second) = runs(uv_log)
    assert streamed(first) and not streamed(second)
    assert "--offline" in second and "--no-index" in second
    assert freeze(streaming) == freeze(usual) and "sf-beta==1.0" in freeze(streaming)
    # uv said what it installed, where it says it without streaming (stderr), after
    # segfetch's summary; stdout stays empty as before.
    err = cold.stderr.decode()
    assert err.index("4 files verified") < err.index("+ sf-beta==1.0")
    assert cold.stdout == warm.stdout == b""
    # Every wheel byte came from the engine (it always sends Range), none from uv.
    wheels = [e for e in emu.log if str(e["path"]).endswith(".whl")]
    assert wheels and all(e["range"] for e in wheels)
    # uv's cache for the streaming run was a folder of the run, gone with it: uv's own
    # cache holds nothing of the index served on a port that changes every run.
    assert "--no-deps" in first  # a complete pinned set: uv asks no metadata
    assert f"--cache-dir {tmp_path / 'cache' / 'uv-runs'}" in " ".join(first)


async def test_uv_keeps_one_runs_cache_not_one_per_run(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """uv's cache of a streaming run is its own folder (uv keys downloads by the index
    URL, whose port changes): the next run removes it, uv's own cache holds nothing."""
    cache = tmp_path / "cache"
    async with Emulator(index=index_dir, link=SLOW) as emu:
        for n in range(3):
            shutil.rmtree(cache / "sha256", ignore_errors=True)  # cold again
            python = venv(tmp_path, f"v{n}")
            proc = await install(python, emu.index_url, "--cache-dir", str(cache), *SET)
            assert proc.returncode == 0, proc.stderr
            assert [p.suffix for p in (cache / "uv-runs").iterdir()].count(".lock") == 1
    assert [streamed(args) for _, args in runs(uv_log)] == [True] * 3
    folders = [p for p in (cache / "uv-runs").iterdir() if p.is_dir()]
    assert len(folders) == 1 and str(folders[0]) in " ".join(runs(uv_log)[-1][1])
    assert not (tmp_path / "uv-cache").exists() or not list((tmp_path / "uv-cache").rglob("*.py"))


async def test_a_hashed_set_streams_and_an_incomplete_one_fails_as_pip_does(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """A hashed set is not checked for completeness when planned (pip's hash mode would
    fail on a missing dependency): uv, told --no-deps, gets no last byte until the
    wheels' METADATA say the set is complete; an incomplete one stops with one line,
    exit 1 as pip's, with uv or with pip as the installer."""
    lines = [f"{w.split('-')[0].replace('_', '-')}==1.0 --hash=sha256:{_sha(index_dir / w)}"
             for w in WHEELS]  # fmt: skip
    whole, partial = tmp_path / "whole.txt", tmp_path / "partial.txt"
    whole.write_text("\n".join(lines) + "\n")
    partial.write_text("\n".join(ln for ln in lines if not ln.startswith("sf-beta")) + "\n")
    good, bad = venv(tmp_path, "good"), venv(tmp_path, "bad")
    async with Emulator(index=index_dir, link=SLOW) as emu:
        ok = await install(good, emu.index_url, "--no-cache", "-r", str(whole))
        assert ok.returncode == 0, ok.stderr
        before = await install(
            bad, emu.index_url, "--no-cache", "--installer", "pip", "-r", str(partial)
        )
        failed = await install(bad, emu.index_url, "--no-cache", "-r", str(partial))
    assert "sf-beta==1.0" in freeze(good)
    assert before.returncode == 1 and failed.returncode == 1, failed.stderr
    assert "hash-checking mode: the set lacks sf-beta>=1 (for sf-alpha)" in one_line_error(failed)
    assert not any(ln.startswith("sf-") for ln in freeze(bad))
    streamed_runs = [args for _, args in runs(uv_log) if streamed(args)]
    assert len(streamed_runs) == 2 and all("--no-deps" in a for a in streamed_runs)


async def test_a_hashed_set_without_its_dependencies_installs_under_no_deps(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """`pip install --no-deps --require-hashes -r FILE` (a build script's pattern) takes a
    hashed set without its dependencies; segfetch stopped: "the set lacks sf-beta>=1"."""
    lines = [f"{w.split('-')[0].replace('_', '-')}==1.0 --hash=sha256:{_sha(index_dir / w)}"
             for w in WHEELS]  # fmt: skip
    partial = tmp_path / "partial.txt"
    partial.write_text("\n".join(ln for ln in lines if not ln.startswith("sf-beta")) + "\n")
    async with Emulator(index=index_dir, link=Link()) as emu:
        for how in ("uv", "pip"):
            python = venv(tmp_path, how)
            proc = await install(
                python, emu.index_url, "--no-cache", "--installer", how, "--no-deps",
                "--require-hashes", "-r", str(partial),
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            got = {ln.split("==")[0] for ln in freeze(python) if ln.startswith("sf-")}
            assert "sf-alpha" in got and "sf-beta" not in got


async def test_hash_checking_mode_stops_as_pip_does(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """One --hash puts the whole set in pip's hash-checking mode: a line without one stops
    the command before any request; a download of a hashed set that lacks a dependency
    writes nothing into its folder (pip download fails there too)."""
    lines = [f"{w.split('-')[0].replace('_', '-')}==1.0 --hash=sha256:{_sha(index_dir / w)}"
             for w in WHEELS]  # fmt: skip
    unhashed, partial = tmp_path / "unhashed.txt", tmp_path / "partial.txt"
    unhashed.write_text("\n".join([*lines[:-1], "sf-delta==1.0"]) + "\n")
    partial.write_text("\n".join(ln for ln in lines if not ln.startswith("sf-beta")) + "\n")
    python, dest = venv(tmp_path, "v"), tmp_path / "dest"
    async with Emulator(index=index_dir, link=Link()) as emu:
        for how in (["--installer", "uv"], ["--installer", "pip"]):
            refused = await install(python, emu.index_url, "--no-cache", *how, "-r", str(unhashed))
            assert refused.returncode == 1, refused.stderr
            assert "sf-delta==1.0 (" in one_line_error(refused)
        assert emu.log == []  # refused before any request
        got = await segfetch(
            "download", "--index-url", emu.index_url, "--no-cache", "-d", str(dest),
            "-r", str(partial),
        )  # fmt: skip
    assert got.returncode == 1 and "lacks sf-beta>=1" in one_line_error(got)
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not any(ln.startswith("sf-") for ln in freeze(python)) and runs(uv_log) == []


async def test_json_and_quiet_say_as_before(tmp_path: Path, index_dir: Path, uv_log: Path) -> None:
    python = venv(tmp_path, "v")
    async with Emulator(index=index_dir, link=SLOW) as emu:
        proc = await install(python, emu.index_url, "--no-cache", "--json", "-q", *SET)
    assert proc.returncode == 0, proc.stderr
    assert all(streamed(args) for _, args in runs(uv_log))
    import json

    assert {r["name"] for r in json.loads(proc.stdout)} == {
        "sf-alpha", "sf-beta", "sf-gamma", "sf-delta",
    }  # fmt: skip
    assert proc.stderr == b""


async def test_bytes_damaged_upstream_are_never_installed(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """A byte flipped in the big wheel: uv may have been sent the damaged bytes, but never
    the last one; the engine fetches the file again, and what is installed is the wheel."""
    python = venv(tmp_path, "v")
    flip = Link(rate=400_000, faults=(Fault("flip", every=60_000, limit=1),))
    async with Emulator(index=index_dir, link=flip) as emu:
        proc = await install(python, emu.index_url, "--no-cache", *SET)
    assert any(e["fault"] == "flip" for e in emu.log)
    assert runs(uv_log) and streamed(runs(uv_log)[0][1])
    if proc.returncode == 0:
        wheel = index_dir / "sf_beta-1.0-py3-none-any.whl"
        assert installed_payload(python, "sf_beta") == wheel_payload(wheel, "sf_beta")
    else:
        assert "sf_beta" in one_line_error(proc, only=False)
        assert subprocess.run([str(python), "-c", "import sf_beta"]).returncode != 0


async def test_a_failed_download_is_one_line_and_stops_uv(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """The big wheel's connection is reset half way, and every later request of a file
    is a 404: the download fails while uv waits for it."""
    python = venv(tmp_path, "v")
    faults = (Fault("reset", every=400_000, limit=1), Fault("status", status=404, after=1))
    async with Emulator(index=index_dir, link=Link(rate=400_000, faults=faults)) as emu:
        proc = await install(python, emu.index_url, "--no-cache", "-n", "1", *SET)
    assert proc.returncode == 1
    line = one_line_error(proc)
    print(f"failed download: {line}; uv runs: {runs(uv_log)}")
    assert "sf_beta-1.0-py3-none-any.whl" in line, line
    assert subprocess.run([str(python), "-c", "import sf_beta"]).returncode != 0
    with trio.fail_after(10):  # uv was stopped and reaped: its process is gone
        for pid, args in runs(uv_log):
            assert streamed(args)
            while _alive(pid):
                await trio.sleep(0.05)
    assert emu.log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_pip_and_local_files_take_the_usual_route(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """--installer pip never starts uv; a set of local files only needs no index."""
    python = venv(tmp_path, "v")
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await install(python, emu.index_url, "--no-cache", "--installer", "pip", *SET)
        assert proc.returncode == 0, proc.stderr
        assert not runs(uv_log)
        wheel = index_dir / "sf_delta-1.0-py3-none-any.whl"
        local = await install(venv(tmp_path, "w"), emu.index_url, "--no-cache", str(wheel))
        assert local.returncode == 0, local.stderr
    (_, args), *_ = runs(uv_log)
    assert not streamed(args) and "--offline" in args
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()  # (as pip's freeze line: uv's had none)
    assert f"sf-delta @ {wheel.as_uri()}#sha256={sha}" in freeze(tmp_path / "w" / "bin" / "python")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_a_signal_while_uv_streams_stops_uv(
    tmp_path: Path, index_dir: Path, uv_log: Path, sig: signal.Signals, code: int
) -> None:
    """A signal to segfetch alone (not its process group) while uv waits for the files:
    uv is stopped and reaped, nothing is installed, exit 128 + the signal."""
    python = venv(tmp_path, "v")
    slower = Link(rate=100_000)
    async with Emulator(index=index_dir, link=slower) as emu:
        cmd = [sys.executable, "-m", "segfetch", "install", "-q", "--python", str(python)]
        cmd += ["--no-cache", "--index-url", emu.index_url, *SET]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        with trio.fail_after(60):
            while not runs(uv_log) and proc.poll() is None:
                await trio.sleep(0.02)
        assert runs(uv_log), "uv never started"
        proc.send_signal(sig)
        _, said = await trio.to_thread.run_sync(proc.communicate, None, 30)  # bounded
    err = said.decode()
    assert proc.returncode == code, err
    assert len(err.strip().splitlines()) == 1, err
    ((pid, args),) = runs(uv_log)
    assert streamed(args)
    with trio.fail_after(10):
        while _alive(pid):
            await trio.sleep(0.05)
    assert subprocess.run([str(python), "-c", "import sf_beta"]).returncode != 0


async def test_uv_starts_before_the_plan_is_in(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """For a pinned set, uv starts before the plan (its own start and its look at the
    interpreter overlap segfetch's): the target's probe answers only once uv has started
    (no clock involved: it would wait 20 s and the probe would say "late")."""
    python = venv(tmp_path, "v")
    said = tmp_path / "probe-said"
    wrapper = tmp_path / "bin" / "python"  # the venv's python; its probe waits for uv
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *pip._vendor*)\n'
        "  i=0\n"
        f'  while [ ! -s "{uv_log}" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n'
        f'  if [ -s "{uv_log}" ]; then echo early > "{said}"; else echo late > "{said}"; fi\n'
        "esac\n"
        f'exec "{python}" "$@"\n'
    )
    wrapper.chmod(0o755)
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await install(wrapper, emu.index_url, "--installer", "uv", "--no-cache", *SET)
    assert proc.returncode == 0, proc.stderr
    assert said.read_text().strip() == "early"
    ((_, args),) = runs(uv_log)
    assert streamed(args) and "--no-deps" in args
    assert {"sf-alpha==1.0", "sf-beta==1.0", "sf-delta==1.0"} <= set(freeze(python))


async def test_a_uv_started_for_pins_that_need_the_resolver_is_stopped(
    tmp_path: Path, index_dir: Path, uv_log: Path
) -> None:
    """A lone pin looks like a lock, so uv starts before the plan with --no-deps; the plan
    finds a dependency beyond the pins (pip's resolver), so that uv is stopped and the
    one that installs (here from the cache: the resolver's look-ahead fetched every file)
    is not told --no-deps: the dependency is installed."""
    python = venv(tmp_path, "v")
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await install(
            python, emu.index_url, "--installer", "uv", "--no-cache", "sf-alpha==1.0"
        )
    assert proc.returncode == 0, proc.stderr
    (first_pid, first), (_, second) = runs(uv_log)
    assert streamed(first) and "--no-deps" in first
    assert "--no-deps" not in second
    assert not _alive(first_pid)
    assert {"sf-alpha==1.0", "sf-beta==1.0"} <= set(freeze(python))


def failing_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: str) -> Path:
    """uv on PATH is a shim that fails with ``words`` for the streamed install (INDEX in
    them: the index URL it was given), and is the real uv otherwise; each run logged."""
    shim_dir, log = tmp_path / "shim", tmp_path / "uv.log"
    shim_dir.mkdir()
    shim = shim_dir / "uv"
    shim.write_text(
        f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n'
        'case "$*" in *"--index-url http://127.0.0.1:"*)\n'
        '  INDEX=$(echo "$*" | sed "s/.*--index-url \\([^ ]*\\).*/\\1/")\n'
        f'  echo "{words}" >&2; exit 2;;\nesac\n'
        f'exec {UV} "$@"\n'
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
    return log


async def test_a_uv_that_fails_before_asking_stops_the_downloads(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv refusing at once (a real one refuses an externally managed interpreter so): its
    words and exit code at once, not after every file is in, and no second run of it."""
    log = failing_uv(tmp_path, monkeypatch, "error: this interpreter is externally managed")
    python = venv(tmp_path, "v")
    async with Emulator(index=index_dir, link=Link(rate=100_000)) as emu:
        proc = await install(python, emu.index_url, "--installer", "uv", *SET)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "error: this interpreter is externally managed" in err
    assert one_line_error(proc, only=False).startswith("segfetch: error: uv failed before")
    assert len(log.read_text().splitlines()) == 1  # not run again on the fetched files
    # The 600 kB wheel at 100 kB/s: stopped long before it was in.
    sent = sum(int(str(e["sent"])) for e in emu.log if str(e["path"]).endswith(".whl"))
    assert sent < 300_000
    assert "sf-beta" not in freeze(python)


async def test_a_uv_that_could_not_reach_the_index_leaves_the_usual_route(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A uv that names the index in its failure may do from local files what it could not
    from the index: the files come in, and uv installs them the usual way."""
    log = failing_uv(tmp_path, monkeypatch, "error: Failed to fetch: ${INDEX}sf-alpha/")
    python = venv(tmp_path, "v")
    async with Emulator(index=index_dir) as emu:
        proc = await install(python, emu.index_url, "--installer", "uv", *SET)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(log.read_text().splitlines()) == 2 and "sf-beta==1.0" in freeze(python)
