"""The `segfetch` command: parse, run one command, turn every failure into one line.

Each command lives in its own module and adds its own parser; they share options through
``segfetch.cli.options`` and never import each other.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from segfetch import __version__
from segfetch.cli import bench, emulate, get, install, serve
from segfetch.cli.running import Terminated
from segfetch.errors import SegfetchError, first_error


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # Options segfetch does not know go to pip, for `install` only (--user, --target, ...).
    args, pip_args = parser.parse_known_args(argv)
    args.pip_args = pip_args
    if args.pip_args and getattr(args, "command", None) != "install":
        parser.error(f"unrecognized arguments: {' '.join(args.pip_args)}")
    try:
        try:
            return int(args.run(args))
        except BaseExceptionGroup as group:  # from a nursery: say what caused it
            raise first_error(group) from None
    except SegfetchError as exc:
        print(f"segfetch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a local file the command had to write or read
        where = f" {exc.filename}" if exc.filename else ""
        print(f"segfetch: error: {exc.strerror or exc}:{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("segfetch: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"segfetch: stopped by {exc}; run the same command again to resume", file=sys.stderr)
        return 128 + exc.signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not the usage block
        self.exit(2, f"segfetch: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="segfetch",
        description="Segmented, resumable, verified downloads for slow and flaky links.",
    )
    parser.add_argument("--version", action="version", version=f"segfetch {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    get.add_command(sub)
    install.add_commands(sub)
    bench.add_command(sub)
    emulate.add_commands(sub)
    serve.add_command(sub)
    return parser
