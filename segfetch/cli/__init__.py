"""The command line. ``run`` is the entry point: it imports the rest inside its guard, so a
Ctrl-C while the program starts gives one line too, not a traceback."""

from __future__ import annotations

import gc
import sys


def run() -> int:
    try:
        from segfetch.cli.main import main

        return main()
    except KeyboardInterrupt:
        print("segfetch: interrupted", file=sys.stderr)
        return 130
    finally:
        # The interpreter's exit ends with a garbage collection over every object left, most
        # of them trio's and httpx's modules (30 ms of CPU, measured): frozen, they are left
        # to the OS as the rest of the process is. Exit handlers and flushes run as ever.
        gc.freeze()
