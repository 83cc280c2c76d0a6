"""cli.run ends a successful `get` without the interpreter's teardown, after flushing what it
printed; a failed `get` and other commands exit as ever (their exit handlers run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import trio

from segfetch.testing.emulator import Emulator, SyntheticFile

# An exit handler that prints: it runs only where the interpreter's ordinary exit does.
PRELUDE = "import atexit, sys\natexit.register(print, 'teardown ran')\n"
# stdout to a pipe buffered, as it is for users (this machine sets PYTHONUNBUFFERED)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


async def segfetch(*args: str) -> subprocess.CompletedProcess[str]:
    """`segfetch ARGS` through cli.run, as the console script runs it."""
    code = PRELUDE + f"sys.argv = ['segfetch', *{list(args)!r}]\n"
    code += "from segfetch.cli import run\nsys.exit(run())\n"
    with trio.fail_after(60):
        proc = await trio.run_process(
            [sys.executable, "-c", code],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=ENV,
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, *_text(proc))


def _text(proc: subprocess.CompletedProcess[bytes]) -> tuple[str, str]:
    return proc.stdout.decode(), proc.stderr.decode()


def test_quick_exit_flushes_stdout_and_skips_the_teardown() -> None:
    code = PRELUDE + "sys.stdout.write('x' * 100)\n"  # held in the buffer on a pipe
    code += "from segfetch.cli import quick_exit\nquick_exit()\nprint('after')\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV,
    )
    assert proc.returncode == 0
    assert proc.stdout == "x" * 100  # flushed before the process ended


async def test_a_successful_get_exits_quickly_with_its_output(tmp_path: Path) -> None:
    async with Emulator({"/f.bin": SyntheticFile(300_000)}) as emu:
        dest = tmp_path / "f.bin"
        proc = await segfetch("get", emu.url("/f.bin"), "-o", str(dest), "--json")
        assert proc.returncode == 0, proc.stderr
        assert "teardown ran" not in proc.stdout
        result = json.loads(proc.stdout)
        assert result["size"] == 300_000 == dest.stat().st_size
        assert result["sha256"] == emu.sha256("/f.bin")
        assert os.listdir(tmp_path) == ["f.bin"]  # no .part or control file left


async def test_a_failed_get_and_other_commands_exit_as_ever(tmp_path: Path) -> None:
    proc = await segfetch(
        "get", "http://127.0.0.1:9/f.bin", "-o", str(tmp_path / "f"), "--max-tries", "1"
    )
    assert proc.returncode != 0 and proc.stdout == "teardown ran\n"
    proc = await segfetch("emulate", "--help")
    assert proc.returncode == 0 and proc.stdout.endswith("teardown ran\n")


def test_a_ctrl_c_while_an_interrupted_command_exits_is_no_traceback() -> None:
    """A burst of Ctrl-C: one more came while the interpreter ended (threading's shutdown)
    after the one line and exit code were settled, and printed a traceback. An
    interrupted command ignores Ctrl-C from then on; here one comes from an exit handler."""
    code = "import atexit, signal, sys\natexit.register(signal.raise_signal, signal.SIGINT)\n"
    code += "import segfetch.cli.main\nsegfetch.cli.main.main = lambda: 130\n"
    code += "from segfetch.cli import run\nsys.exit(run())\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (proc.returncode, proc.stderr) == (130, "")
