"""What the command-line tests share: run segfetch as a user would, read its one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio


async def segfetch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "segfetch", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=cwd,
    )


def one_line_error(proc: subprocess.CompletedProcess[bytes], *, only: bool = True) -> str:
    """segfetch's one error line. ``only=False``: other programs (pip) may have written too."""
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if not only:
        lines = [ln for ln in lines if ln.startswith("segfetch: error: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("segfetch: error: "), err
    return lines[0]
