"""`segfetch bench`: measure a link (a real URL, or the built-in emulator) and suggest -n."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

from segfetch.cli import report as cli_report
from segfetch.cli import running
from segfetch.cli.options import add_link_options, link_from_args
from segfetch.errors import SegfetchError, UsageError, check_url
from segfetch.units import human_bytes, parse_duration, parse_size


def add_command(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure how much more connections buy on a link")
    p.add_argument("url", nargs="?", metavar="URL", help="a large file on the server to measure")
    p.add_argument("--emulate", action="store_true", help="measure the built-in emulator instead")
    p.add_argument("--budget", default="16M", metavar="SIZE", help="bytes to read at most (16M)")
    p.add_argument("--time", default="30s", metavar="T", help="time to take at most (30s)")
    p.add_argument(
        "-n", "--connections", type=int, default=16, metavar="N", help="up to N (16; at most 64)"
    )
    p.add_argument("--save", action="store_true", help="make the suggested -n the default")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_link_options(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if (args.url is None) == (not args.emulate):
        raise UsageError("give a URL to measure, or --emulate (not both)")
    try:
        budget, seconds = parse_size(args.budget), parse_duration(args.time)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for wrong, line in [  # (one line naming the option that is wrong, with its value)
        (budget < 64 * 1024, f"--budget must be at least 64K, not {args.budget}"),
        (seconds <= 0, f"--time must be more than 0, not {args.time}"),
        (not 1 <= args.connections <= 64, f"-n must be from 1 to 64, not {args.connections}"),
    ]:
        if wrong:
            raise UsageError(line)
    if args.url and (shaped := _link_options(args)):
        verb = "shape" if "," in shaped else "shapes"
        raise UsageError(f"{shaped} {verb} the built-in emulator's link: give it with --emulate")
    if args.save and args.emulate:
        raise UsageError(
            "--save keeps what a real host's link allows; --emulate measures the emulator"
        )
    url = check_url(args.url) if args.url else None
    if args.save:  # a settings file it cannot add to: said before the measuring, not after
        from segfetch.config import settings_for_saving

        settings_for_saving()
    report = running.run(lambda: _measure(args, url, budget, seconds))
    if not report.steps:  # nothing to suggest, and nothing to --save
        request = f", a request {report.request * 1000:.0f} ms" if report.request else ""
        raise SegfetchError(
            f"--time {args.time} ran out before the first measurement (opening a connection "
            f"took {report.first_byte * 1000:.0f} ms{request}): give more --time"
        )
    if args.json:
        args.json_printed = True  # (one document, whether stdout takes it or not)
        cli_report(json.dumps(report.as_dict()), "the measurement is done")
    else:
        _print(report, _faster(report, budget))
    if args.save:
        if why := _unsure(report, budget):
            raise SegfetchError(f"not saved: {why}")
        from segfetch.config import save_connections

        path = save_connections(report.recommended)
        n = report.recommended
        print(f"saved: -n {n} is now the default of every command; -n auto or -n N "
              f"overrides it ({path})", file=sys.stderr)  # fmt: skip
    return 0


def _link_options(args: argparse.Namespace) -> str:
    """The emulator's link options given (they shape nothing on a real URL)."""
    given = [
        ("--rate", args.rate), ("--shared-rate", args.shared_rate),
        ("--rtt", args.rtt not in ("0", None)), ("--drop-every", args.drop_every),
        ("--fault", args.fault), ("--max-connections", args.max_connections),
        ("--no-etag", args.no_etag), ("--seed", args.seed != 1),
    ]  # fmt: skip
    return ", ".join(name for name, value in given if value)


def _unsure(report: Any, budget: int) -> str:
    """Why the suggestion is no figure to keep ("" where it is one)."""
    if report.short:
        return f"the steps were too short to tell; {_faster(report, budget)}"
    if report.unfinished in ("--time", "--budget"):
        return f"the climb was cut by {report.unfinished}; give more of it"
    return ""


async def _measure(args: argparse.Namespace, url: str | None, budget: int, seconds: float) -> Any:
    from segfetch.cli.progress import ByteBar
    from segfetch.engine.download import make_client
    from segfetch.engine.measure import bench

    clients = partial(make_client, args.connections, timeout=min(30.0, seconds))
    with ByteBar("measuring", budget, quiet=args.quiet or args.json) as bar:
        if url is not None:
            return await bench(
                clients, url, budget=budget, seconds=seconds,
                max_connections=args.connections, progress=bar.add,
            )  # fmt: skip
        from segfetch.testing.emulator import Emulator, SyntheticFile

        files = {"/bench.bin": SyntheticFile(max(budget, 64 << 20))}
        async with Emulator(files, link=link_from_args(args)) as emu:
            return await bench(
                clients, emu.url("/bench.bin"), budget=budget, seconds=seconds,
                max_connections=args.connections, progress=bar.add,
            )  # fmt: skip


def _faster(report: Any, budget: int) -> str:
    """What to give where the steps were too short: a larger budget, or a larger file (a
    step reads at most the file)."""
    if report.size and report.size * max(1, len(report.steps)) < budget:
        return "give the URL of a larger file (a step reads at most the file)"
    return f"give a larger --budget than {human_bytes(budget)}"


def _print(report: Any, faster: str) -> None:
    size = human_bytes(report.size) if report.size else "size unknown"
    print(f"{report.url}: {size}, ranges {'yes' if report.ranges else 'NO'}")
    request = f"{report.request * 1000:.0f} ms" if report.request is not None else "unmeasured"
    print(
        f"first byte on a new connection {report.first_byte * 1000:.0f} ms, "
        f"a request on an open one {request}"
    )
    print("connections   rate          x one   bytes read   seconds   refused")
    one = report.steps[0].rate if report.steps else 0.0
    for s in report.steps:
        times = s.rate / one if one else 0.0
        rate = human_bytes(s.rate) + "/s"
        print(
            f"{s.connections:>11}   {rate:>12}   {times:5.1f}   {human_bytes(s.bytes):>10}   "
            f"{s.seconds:7.2f}   {s.refused:>7}"
        )
    if not report.ranges:
        print("the server ignores Range: segfetch takes such a file on one connection")
    if refused := next((s for s in report.steps if s.refused), None):
        print(f"the host refused {refused.refused} of {refused.connections} connections")
    if report.short:
        print(f"steps lasted under 0.25 s: too short to tell this link; {faster}")
    n = report.recommended
    more = {
        "--time": "give more --time to measure more connections",
        "--budget": "give more --budget to measure more connections",
        "-n": f"measure more with -n {2 * n}" if n < 64 else None,
    }.get(report.unfinished)
    hint = f"at least {n}; {more}" if more else "segfetch bench --save keeps it"
    hint = "a guess: the steps were too short" if report.short else hint
    print(f"limit: {report.limit}; suggested: -n {n} ({hint})")
