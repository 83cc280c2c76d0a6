"""The command line. ``run`` is the entry point: it imports the rest inside its guard, so a
Ctrl-C while the program starts gives one line too, not a traceback. (So this module imports
only what the interpreter has loaded already: contextlib and typing cost 8-20 ms, a window
in which a Ctrl-C would be a traceback.)"""

from __future__ import annotations

import gc
import os
import sys

# Commands whose work is all done when main() returns 0: the file renamed into place after
# its fsync, the control file gone, every file closed, no threads working, no exit handler
# or finalizer with work to do (checked for `get`). Others (install's pip and uv, temporary
# folders) keep the interpreter's ordinary exit.
QUICK_EXIT = frozenset({"get"})


def run() -> int:
    standard_streams_open()
    try:
        with collector_paused():
            from segfetch.cli.main import main
        code = main()
    except KeyboardInterrupt:
        code = 130
        print("segfetch: interrupted", file=sys.stderr)
    finally:
        # The interpreter's exit ends with a garbage collection over every object left, most
        # of them trio's and httpx's modules (30 ms of CPU, measured): frozen, they are left
        # to the OS as the rest of the process is. Exit handlers and flushes run as ever.
        gc.freeze()
    if code == 0 and sys.argv[1:2] and sys.argv[1] in QUICK_EXIT:
        quick_exit()
    if code >= 128:  # stopped, and said so: one more Ctrl-C (of a burst) would be a
        import signal  # traceback from the interpreter's exit (loaded by now: no cost)

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def standard_streams_open() -> None:
    """A standard stream closed before segfetch started (`2>&-`, `>&-`, `<&-`) gets
    /dev/null in its place: no file or socket segfetch opens takes its number (pip's output,
    or a line for stderr, would go into it), and stderr's lines have somewhere to go (with
    none, the progress bar's check of it failed the download). ``sys.stdout`` stays None:
    report() says a result could not be written."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # (the lowest free number: fd itself)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 (for the life of the process)


class ReportLost(Exception):
    """stdout could not take the result of a command whose work is done."""


def report(text: str, done: str) -> None:
    """Print a command's result on stdout, flushed now. A stdout that cannot take it (a full
    disk, a closed pipe) raises ReportLost, saying ``done``: the work is not undone by it.
    So does a stdout closed before segfetch started (``>&-``: print would write nowhere)."""
    if sys.stdout is None:
        raise ReportLost(f"cannot write the result to stdout (it is closed); {done}")
    try:
        print(text, flush=True)
    except OSError as exc:
        stdout_gone()
        why = exc.strerror or exc
        raise ReportLost(f"cannot write the result to stdout ({why}); {done}") from None


def stdout_gone() -> None:
    """Point stdout at /dev/null: the exit's own flush of what is left in its buffer would
    fail again, with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def quick_exit() -> None:
    """Flush stdout and stderr and end the process without the interpreter's teardown (the
    modules' objects freed one by one: 5-6 ms of CPU and wall after a `get`, measured). If a
    flush fails (a closed pipe) the ordinary exit runs and reports it as ever."""
    try:
        for stream in (sys.stdout, sys.stderr):  # (None: closed before segfetch started)
            if stream is not None:
                stream.flush()
    except OSError:
        return
    os._exit(0)


class collector_paused:  # (lower case: it reads `with collector_paused():`)
    """For start-up's imports. Importing trio, httpx and the engine makes some 45,000
    objects that live as long as the process; the garbage collector scanned them again and
    again as they came (8-10 ms of a `get`'s CPU, measured). Paused meanwhile, they are
    frozen once made: never scanned again (as gc.freeze's documentation suggests after
    start-up). A collector the caller disabled stays disabled."""

    def __enter__(self) -> None:
        self.paused = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.freeze()
            gc.enable()
