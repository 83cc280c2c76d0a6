"""spawn: a signal that arrives while a child starts stops the child too (and running.run: a
Ctrl-C cancels the work). The child itself
sends the signal before its exec (preexec_fn), so that it arrives while Popen waits for
the exec: the moment a SIGTERM came in CI and left the target's probe running."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from helpers import running

from segfetch.cli.running import Terminated, stop_on_signals
from segfetch.wheels.children import spawn

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers run in the main thread only",
)


def _signalling_parent(pid_file: Path, sig: int) -> object:
    def before_exec() -> None:  # in the child, between fork and exec
        pid_file.write_text(str(os.getpid()))
        os.kill(os.getppid(), sig)
        time.sleep(0.3)  # the parent is still inside Popen, waiting for the exec

    return before_exec


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not running(pid)


@pytest.fixture
def child_pid(tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "child.pid"
    yield pid_file
    if pid_file.exists() and running(pid := int(pid_file.read_text())):
        os.kill(pid, signal.SIGKILL)  # (the test failed: leave nothing behind)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_the_child_starts_stops_it(child_pid: Path, sig: int) -> None:
    cmd = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(Terminated), stop_on_signals():
        spawn(cmd, preexec_fn=_signalling_parent(child_pid, sig))
    assert _gone(int(child_pid.read_text()))


def test_ctrl_c_while_the_child_starts_stops_it(child_pid: Path) -> None:
    cmd = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(KeyboardInterrupt):
        spawn(cmd, preexec_fn=_signalling_parent(child_pid, signal.SIGINT))
    assert _gone(int(child_pid.read_text()))


def test_handlers_are_back_after_a_start(child_pid: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    with spawn([sys.executable, "-c", "pass"]) as proc:
        assert proc.wait(30) == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_with_a_child_that_cannot_start_still_stops(tmp_path: Path) -> None:
    """Popen fails (no such program) after the signal came: the signal is not lost."""
    pid_file = tmp_path / "child.pid"
    with pytest.raises(Terminated), stop_on_signals():
        spawn([str(tmp_path / "missing")], preexec_fn=_signalling_parent(pid_file, signal.SIGTERM))


def test_ctrl_c_cancels_the_work_rather_than_raising_inside_it() -> None:
    """running.run: a first Ctrl-C cancels as SIGTERM does, then raises KeyboardInterrupt
    (trio's own raises it wherever a task runs: once, in install's read-ahead, that broke a
    nursery's bookkeeping)."""
    from segfetch.cli import running

    seen: list[str] = []

    async def work() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep(5)
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    with pytest.raises(KeyboardInterrupt):
        running.run(work)
    assert seen == ["Cancelled"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_last_uncancellable_step_is_too_late(sig: int) -> None:
    """running.run(last=True): a signal that came while the last step could not be cancelled
    (get's fsync and rename into place) stops nothing: the work is done and its result
    returned; get used to exit 130/143 saying nothing of the file was kept, the file in
    place. Without last (install goes on to pip) the signal is raised as ever."""
    from segfetch.cli import running

    async def work() -> int:
        os.kill(os.getpid(), sig)
        await trio.to_thread.run_sync(time.sleep, 0.2)  # (not cancellable: as commit)
        return 7

    assert running.run(work, last=True) == 7
    with pytest.raises((KeyboardInterrupt, Terminated)):
        running.run(work)
