"""The command line. ``run`` is the entry point: it imports the rest inside its guard, so a
Ctrl-C while the program starts gives one line too, not a traceback."""

from __future__ import annotations

import sys


def run() -> int:
    try:
        from segfetch.cli.main import main

        return main()
    except KeyboardInterrupt:
        print("segfetch: interrupted", file=sys.stderr)
        return 130
