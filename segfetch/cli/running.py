"""Run a command's trio code so that SIGTERM and SIGHUP (docker stop, a cancelled CI job,
a closed terminal) do what Ctrl-C does: cancel cleanly, saving resume state on the way."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from segfetch.errors import first_error

T = TypeVar("T")
SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def heeded(signals: tuple[int, ...]) -> tuple[int, ...]:
    """Those of ``signals`` the process does not ignore: one started under ``nohup`` (SIGHUP
    ignored), or in the background of a script (SIGINT ignored), keeps ignoring them, as
    the user asked, and a closed terminal or the script's Ctrl-C does not stop it."""
    return tuple(s for s in signals if signal.getsignal(s) != signal.SIG_IGN)


class Terminated(BaseException):
    """The process was asked to stop; like KeyboardInterrupt, not an error of the work."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run(fn: Callable[[], Awaitable[T]], *, last: bool = False) -> T:
    """trio.run(fn); on SIGTERM or SIGHUP, cancel it and raise Terminated; on a first
    Ctrl-C, cancel it too and raise KeyboardInterrupt. (trio's own Ctrl-C raises wherever
    a task runs, and once, in a CI run, that broke a nursery's bookkeeping in the middle of
    install's read-ahead: a traceback, exit 1.) A second Ctrl-C is trio's again.

    ``last``: fn is all the command's work. A signal that came while its last step could
    not be cancelled (get's rename into place), so that fn returned all the same, is then
    too late to stop anything: fn's result is returned, not the signal raised (else the
    command would say it was stopped, with its file complete)."""
    import trio  # here, not above: the parser and `--version` load no trio

    if threading.current_thread() is not threading.main_thread():
        return trio.run(fn)  # signals reach the main thread only (a test harness, say)
    received: list[int] = []
    results: list[T] = []
    watched = heeded((*SIGNALS, signal.SIGINT))

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def watch(task_status: trio.TaskStatus[None]) -> None:
                if not watched:  # (trio takes no empty set)
                    task_status.started()
                    return
                with trio.open_signal_receiver(*watched) as signals:
                    task_status.started()
                    if received:  # came before the receiver was open: stop now
                        nursery.cancel_scope.cancel()
                        return
                    async for signum in signals:
                        received.append(signum)
                        nursery.cancel_scope.cancel()
                        return

            await nursery.start(watch)
            results.append(await fn())
            nursery.cancel_scope.cancel()

    # While trio runs, a SIGTERM or SIGHUP outside the watcher's receiver (before it opens;
    # after the first signal, while the run is being cancelled: `timeout` sends two, to the
    # child and to its group) is noted, not raised: stop_on_signals' handler raising in
    # trio's own loop was a TrioInternalError traceback.
    def note(signum: int, _frame: object) -> None:
        received.append(signum)

    before = {s: signal.signal(s, note) for s in heeded(SIGNALS)}
    try:
        trio.run(main)
    except BaseExceptionGroup as group:  # Ctrl-C inside the nursery: say it plainly
        raise first_error(group) from None
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if results and last:
        return results[0]
    if received and received[0] == signal.SIGINT:
        raise KeyboardInterrupt
    if received:
        raise Terminated(received[0])
    return results[0]


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Outside trio: SIGTERM and SIGHUP raise Terminated where the main thread is, so that a
    child being waited for is stopped (subprocess.run kills it) and ``with`` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    before = {s: signal.signal(s, stop) for s in heeded(SIGNALS)}
    hook, sys.unraisablehook = sys.unraisablehook, _sent_again(sys.unraisablehook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for s, handler in before.items():
            signal.signal(s, handler)


def _sent_again(hook: Callable[[sys.UnraisableHookArgs], object]) -> Callable[..., None]:
    """An unraisable-exception hook that sends a lost stop again. A handler's exception
    raised inside a weakref callback or a __del__ is printed and dropped by Python: once,
    in CI, a SIGTERM came during an import's lock cleanup, and install went on to exit 0.
    Sent again a moment later, the handler runs where its exception can stop the command."""

    def hook_(unraisable: sys.UnraisableHookArgs) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, Terminated):
            signum = exc.signum
        elif isinstance(exc, KeyboardInterrupt):
            signum = signal.SIGINT
        else:
            hook(unraisable)
            return
        again = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        again.daemon = True
        again.start()

    return hook_
