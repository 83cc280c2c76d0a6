"""running.run: a second SIGTERM while the first one's cancellation is under way (`timeout`
sends one to the child and one to its process group) stops the command as the first does,
with no traceback (it was a TrioInternalError: stop_on_signals' handler raised in trio's loop)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import weakref

import pytest

from segfetch.cli import running

SCRIPT = textwrap.dedent("""
    import os, signal, threading, trio
    from segfetch.cli import running
    async def work():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.sleep(10)
        finally:  # cleanup that takes a moment while the second comes, trio in epoll meanwhile
            threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGTERM)).start()
            with trio.CancelScope(shield=True):
                await trio.sleep(0.3)
    try:
        with running.stop_on_signals():
            running.run(work)
    except running.Terminated as exc:
        print("terminated", exc)
""")


def test_a_second_sigterm_while_stopping_is_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "terminated SIGTERM", proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


def test_a_stop_dropped_by_a_weakref_callback_is_sent_again() -> None:
    """Python drops an exception raised in a weakref callback (once in CI, the SIGTERM
    handler ran inside an import's lock cleanup, and install went on to exit 0): the stop
    still stops the command."""
    with pytest.raises(running.Terminated), running.stop_on_signals():
        thing = Thing()
        ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGTERM))
        del thing  # the handler's Terminated is raised inside the callback, and dropped
        assert ref() is None
        for _ in range(200):  # bounded: 10 s
            time.sleep(0.05)


class Thing:
    pass
