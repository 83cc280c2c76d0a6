"""The `segfetch` command: parse, run one command, turn every failure into one line.

Each command lives in its own module and adds its own parser; they share options through
``segfetch.cli.options`` and never import each other.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from segfetch import __version__
from segfetch.cli import ReportLost, stdout_gone
from segfetch.cli.running import Terminated, stop_on_signals
from segfetch.errors import SegfetchError, first_error

# Each command's module and the function that adds its parsers, in the order --help lists them.
# Only the named command's module is loaded and its parser built (all of them cost 5-8 ms of
# every start-up); --help, a bad command and a bare `segfetch` build them all.
MODULES = {
    "get": ("get", "add_command"),
    "download": ("install", "add_commands"),
    "install": ("install", "add_commands"),
    "bench": ("bench", "add_command"),
    "emulate": ("emulate", "add_commands"),
    "demo": ("emulate", "add_commands"),
    "serve": ("serve", "add_command"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _Parser.json = "--json" in argv  # a usage error says it in JSON too
    # Ctrl-C lands between making a coroutine and awaiting it (trio delivers it anywhere
    # outside its own code): Python's warning about the one left unawaited is noise beside
    # the one line that says the command was interrupted.
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    parser = _parser(argv[0] if argv and argv[0] in MODULES else None)
    # Options segfetch does not know go to pip, for `install` and `download` only (--user,
    # --no-index, ...; checked by check_passed_through).
    args, pip_args = parser.parse_known_args(argv)
    args.pip_args = pip_args
    if args.pip_args and getattr(args, "command", None) not in ("install", "download"):
        if command := getattr(args, "subcommand", None):
            parser.prog += f" {command}"  # (its help names the options it takes)
        parser.error(f"unrecognized arguments: {' '.join(args.pip_args)}")
    try:
        try:
            # From here on SIGTERM and SIGHUP stop the command as Ctrl-C does (running.py),
            # also before and after trio runs: a probe, a uv or an installer started meanwhile
            # is stopped with it, and its temporary folders removed.
            with stop_on_signals():
                return int(args.run(args))
        except BaseExceptionGroup as group:  # from a nursery: say what caused it
            raise first_error(group) from None
    except ReportLost as exc:  # the work is done: one line, as pip's 'Pipe to stdout was broken'
        print(f"segfetch: error: {exc}", file=sys.stderr)
        return 1
    except SegfetchError as exc:
        return _failed(args, f"error: {exc}", exc.exit_code)
    except OSError as exc:  # a local file the command had to write or read
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno == errno.ENAMETOOLONG:  # the input's fault: say what to do
            where = where if len(where) < 200 else f"{where[:120]}...{where[-40:]}"
            # (a name taken from the URL: the user chose none, -o gives one)
            named = getattr(args, "subcommand", None) != "get" or args.output is not None
            how = "choose a shorter name" if named else "give a shorter one with -o PATH"
            message = f"error: {exc.strerror}{where}; {how} (255 bytes at most)"
            return _failed(args, message, 2)
        return _failed(args, f"error: {exc.strerror or exc}{where}", 1)
    except Exception as exc:  # (after OSError: a bare raise here skips the clauses below)
        # a URL built from the input that httpx cannot ask
        if type(exc).__name__ != "InvalidURL" or not type(exc).__module__.startswith("httpx"):
            raise
        return _failed(args, f"error: a URL made from the input is not valid: {exc}", 2)
    except KeyboardInterrupt:
        return _failed(args, f"interrupted; {_again(args)}", 130)
    except Terminated as exc:
        return _failed(args, f"stopped by {exc}; {_again(args)}", 128 + exc.signum)


def _again(args: argparse.Namespace) -> str:
    """What running the command again does: resume, unless it saw nothing was kept (get)."""
    # A rerun resumes what the control file claims; there is none before the first answer,
    # nor where nothing could prove a kept byte current (no ETag, Last-Modified, --sha256).
    if getattr(args, "subcommand", None) in ("bench", "emulate", "demo"):
        return "nothing was kept"  # (they keep nothing to resume)
    control = getattr(args, "control", None)
    if control is not None and not control.exists():
        return "nothing of the file was kept: the same command again starts it over"
    return "run the same command again to resume"


def _failed(args: argparse.Namespace, line: str, code: int) -> int:
    """One line on stderr; with --json, stdout's one document says it too (unless the
    command printed its own already)."""
    print(f"segfetch: {line}", file=sys.stderr)
    if getattr(args, "json", False) and not getattr(args, "json_printed", False):
        _json_error(line.removeprefix("error: "), code)
    return code


def _json_error(message: str, code: int) -> None:
    import json  # (only here: `segfetch --version` loads no more than it needs)

    try:
        print(json.dumps({"error": message, "exit_code": code}), flush=True)
    except OSError:  # stderr's line says it; the exit code stands
        stdout_gone()


class _Parser(argparse.ArgumentParser):
    json = False

    def error(self, message: str) -> Any:  # one line, not the usage block
        line = f"{message} (see {self.prog} --help)"
        if self.json:
            _json_error(line, 2)
        self.exit(2, f"segfetch: error: {line}\n")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` only (and those its module adds)."""
    parser = _Parser(
        prog="segfetch",
        description="Segmented, resumable, verified downloads for slow and flaky links.",
    )
    parser.add_argument("--version", action="version", version=f"segfetch {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND", dest="subcommand")
    wanted = [MODULES[command]] if command is not None else MODULES.values()
    for module, adder in dict.fromkeys(wanted):
        getattr(importlib.import_module(f"segfetch.cli.{module}"), adder)(sub)
    return parser
