"""Starting and stopping the subprocesses segfetch waits on (the target's probe, uv, the
installer) so that a signal never leaves one running. Only the standard library."""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import Any

# What stops the command: SIGTERM and SIGHUP (cli/running.py) and Ctrl-C.
STOPPING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen(cmd, **kw), where a signal that arrives while the child starts
    stops the child too. Raised inside Popen (which waits for the child's exec), the
    signal's exception would leave a child running that nobody knows of."""
    if threading.current_thread() is not threading.main_thread():
        return subprocess.Popen(cmd, **kw)  # (handlers run in the main thread only)
    held: list[int] = []
    handlers = {s: signal.getsignal(s) for s in STOPPING}
    # Only handlers Python runs: an ignored signal stays ignored, a default one (SIG_DFL
    # ends the process at once) is left alone.
    mine = [s for s, h in handlers.items() if callable(h)]
    proc = None
    try:
        try:
            for s in mine:
                signal.signal(s, lambda signum, _frame: held.append(signum))
            proc = subprocess.Popen(cmd, **kw)
        finally:
            # Blocked while the handlers go back: none may run with half of them back.
            before = signal.pthread_sigmask(signal.SIG_BLOCK, mine)
            for s in mine:
                signal.signal(s, handlers[s])
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
            for signum in held:  # now, to its own handler, with the child known
                signal.raise_signal(signum)
    except BaseException:
        if proc is not None:
            stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[Any]) -> None:
    """Ask the child to end, then make it, and reap it."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
