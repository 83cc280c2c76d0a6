"""Start-up's imports (the command line's, `get`'s trio, httpx and engine) run with the garbage
collector paused, then what they made is frozen (in a child process: freezing changes the
whole process)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from segfetch.cli import collector_paused
{setup}
before = gc.get_freeze_count()
with collector_paused():
    enabled_inside = gc.isenabled()
    made = [[] for _ in range(5000)]  # tracked objects, as imports make
print(enabled_inside, gc.isenabled(), gc.get_freeze_count() - before >= 5000)
"""


def child(setup: str = "") -> str:
    code = CHILD.format(setup=setup)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout.strip()


def test_the_imports_run_paused_and_what_they_made_is_frozen() -> None:
    assert child() == "False True True"


def test_a_collector_the_caller_disabled_stays_disabled_and_nothing_is_frozen() -> None:
    assert child("gc.disable()") == "False False False"
