"""Command line: parse and check arguments, then trio.run. Progress bars live here."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import trio

from segfetch import __version__
from segfetch.config import saved_connections
from segfetch.engine import (
    DEFAULT_CONNECTIONS,
    DEFAULT_MIN_SEGMENT,
    DEFAULT_TIMEOUT,
    Result,
    download,
)
from segfetch.errors import SegfetchError, UsageError, first_error, redact_url
from segfetch.progress import ProgressBar
from segfetch.retry import RetryPolicy
from segfetch.units import human_bytes, parse_duration, parse_size

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


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

    get = sub.add_parser("get", help="download one URL over several connections")
    get.add_argument("url", metavar="URL")
    get.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file or folder to write (default: name from the URL)",
    )
    _add_download_options(get)
    get.add_argument(
        "--sha256", metavar="HEX", help="expected sha256; the file is kept only if it matches"
    )
    get.add_argument("--json", action="store_true", help="print the result as JSON")
    get.set_defaults(run=_run_get)

    from segfetch import bench_cli, emulate_cli, install_cli

    install_cli.add_commands(sub, _add_download_options)
    bench_cli.add_command(sub, emulate_cli.add_link_options)
    emulate_cli.add_commands(sub, _add_download_options)
    return parser


def _add_download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--connections",
        type=int,
        default=saved_connections(DEFAULT_CONNECTIONS),
        metavar="N",
        help="connections at most (default 8, or what `segfetch bench --save` chose)",
    )
    p.add_argument(
        "--min-segment",
        default=str(DEFAULT_MIN_SEGMENT),
        metavar="SIZE",
        help="smallest segment worth its own connection (default 256K)",
    )
    p.add_argument(
        "--timeout",
        default=str(DEFAULT_TIMEOUT),
        metavar="S",
        help="seconds of silence before a connection counts as stalled (default 30)",
    )
    p.add_argument(
        "--max-tries",
        type=int,
        default=RetryPolicy.max_tries,
        metavar="K",
        help="failures in a row without progress before giving up (default 5)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def download_options(args: argparse.Namespace) -> dict[str, Any]:
    """Checked keyword arguments for engine.download from the shared options."""
    if args.connections < 1:
        raise UsageError(f"-n must be at least 1, not {args.connections}")
    if args.max_tries < 1:
        raise UsageError(f"--max-tries must be at least 1, not {args.max_tries}")
    try:
        min_segment = parse_size(args.min_segment)
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if min_segment < 1024:
        raise UsageError("--min-segment must be at least 1K")
    if timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    return {
        "connections": args.connections,
        "min_segment": min_segment,
        "timeout": timeout,
        "policy": RetryPolicy(max_tries=args.max_tries),
    }


def check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise UsageError(f"not a valid URL: {redact_url(url)!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"not an http:// or https:// URL: {redact_url(url)!r}")
    return url


def _destination(url: str, output: str | None) -> Path:
    name = unquote(httpx.URL(url).path.rsplit("/", 1)[-1])
    if output is None or Path(output).is_dir():
        if not name or name in (".", ".."):
            raise UsageError("cannot tell a file name from the URL; give one with -o PATH")
        dest = Path(output or ".") / name
    else:
        dest = Path(output)
    parent = dest.parent
    if not parent.is_dir():
        raise UsageError(f"folder {str(parent)!r} does not exist; create it or choose another -o")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write to folder {str(parent)!r}; choose another -o")
    if dest.is_dir():
        raise UsageError(f"{str(dest)!r} is a folder; give a file path with -o")
    return dest


def _run_get(args: argparse.Namespace) -> int:
    url = check_url(args.url)
    if args.sha256 is not None and not _HEX64.fullmatch(args.sha256):
        raise UsageError("--sha256 takes 64 hex digits")
    options = download_options(args)
    dest = _destination(url, args.output)
    with ProgressBar(dest.name, quiet=args.quiet or args.json) as bar:
        result = trio.run(
            lambda: download(url, dest, sha256=args.sha256, progress=bar.update, **options)
        )
    if args.json:
        print(json.dumps(result_dict(result)))
    elif not args.quiet:
        print(summary(result), file=sys.stderr)
    return 0


def result_dict(result: Result) -> dict[str, Any]:
    out = asdict(result)
    out["path"] = str(result.path)
    out["url"] = redact_url(result.url)
    return out


def summary(result: Result) -> str:
    rate = result.size / result.seconds if result.seconds > 0 else 0.0
    return (
        f"{result.path}: {human_bytes(result.size)} in {result.seconds:.2f} s "
        f"({human_bytes(rate)}/s), sha256 {result.sha256}, {result.connections} connections, "
        f"{result.retries} retries"
    )
