"""`segfetch install --dry-run`: what pip would install, said as pip says it, with no file
fetched. pip's resolver reads each wheel's metadata only (PEP 658); so does the look-ahead
then, and no wheel is fetched after the plan. What the resolver takes whole all the same
(a wheel without ``.metadata`` upstream, an sdist to build, a direct URL) is cached."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfetch.cli import report
from segfetch.cli.records import local, record
from segfetch.errors import SegfetchError

if TYPE_CHECKING:
    from segfetch.engine.result import Result
    from segfetch.wheels.cache import Cache
    from segfetch.wheels.files import Planned


@dataclass
class DryRun:
    """The plan of a dry run: the files pip would install, and pip's report of them."""

    planned: list[Planned] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)  # what pip took whole, by URL


def show(
    dry: DryRun, args: argparse.Namespace, pip_args: Sequence[str], folder: Path, cache: Cache
) -> int:
    """pip's output of a dry run: its ``--report`` (a file, or ``-`` for stdout) with each
    file's own URL, then "Would install ..." (not with ``-q``); with ``--json`` the set's
    records on stdout and pip's words on stderr, as for an install. ``folder``: for a
    report to stdout."""
    from segfetch.wheels.pip import report_to_file
    from segfetch.wheels.pipnet import command_line_values

    quiet, json_out = args.quiet, args.json
    args.json_printed = json_out  # (one document, whether stdout takes it or not)
    out = sys.stderr if json_out else sys.stdout
    words, shown = report_to_file(pip_args, folder)
    text = json.dumps(dry.report, indent=2, ensure_ascii=False) + "\n"
    for path in command_line_values(words, "--report"):
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise SegfetchError(f"cannot write the report to {path}: {exc.strerror}") from None
    if shown is not None:
        print(text, end="", file=out)
    if not quiet and (names := would_install(dry.report)):
        print(f"Would install {names}", file=out)
    elif not quiet:  # (pip says "Requirement already satisfied" of each, and no more)
        print("Would install nothing: every requirement is already satisfied", file=out)
    if json_out:
        records = [_as_dict(p, cache, dry.results.get(p.url)) for p in dry.planned]
        report(json.dumps(records, indent=1), "it was a dry run")
    return 0


def would_install(report: dict[str, Any]) -> str:
    """pip's "Would install" list: name-version of each item, by its METADATA, sorted as
    pip sorts them. Pure."""
    items = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"])
    return " ".join(f"{name}-{version}" for name, version in items)


def _as_dict(p: Planned, cache: Cache, result: Result | None) -> dict[str, Any]:
    """A file as the index said it, and whether the cache held it already; ``result``:
    this run fetched it after all (pip before 25.3 takes each file whole for a dry run)."""
    there = p.sha256 is not None and cache.path(p.sha256, p.filename).is_file()
    return record(p, p.sha256, p.size, there and not local(p) and result is None, result)
