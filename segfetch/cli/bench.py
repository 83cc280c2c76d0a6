"""`segfetch bench`: measure a link (a real URL, or the built-in emulator) and suggest -n."""

from __future__ import annotations

import argparse
import json
import sys
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
    url = check_url(args.url) if args.url else None
    if args.save:  # a settings file it cannot add to: said before the measuring, not after
        from segfetch.config import settings_for_saving

        settings_for_saving()
    report = running.run(lambda: _measure(args, url, budget, seconds))
    if not report.steps:  # nothing to suggest, and nothing to --save
        raise SegfetchError(
            f"--time {args.time} ran out before the first measurement (opening a connection "
            f"took {report.first_byte * 1000:.0f} ms, a request {report.request * 1000:.0f} ms): "
            "give more --time"
        )
    if args.json:
        args.json_printed = True  # (one document, whether stdout takes it or not)
        cli_report(json.dumps(report.as_dict()), "the measurement is done")
    else:
        _print(report)
    if args.save:
        from segfetch.config import save_connections

        path = save_connections(report.recommended)
        print(f"saved: get and install now use -n {report.recommended} ({path})", file=sys.stderr)
    return 0


async def _measure(args: argparse.Namespace, url: str | None, budget: int, seconds: float) -> Any:
    from segfetch.cli.progress import ByteBar
    from segfetch.engine.download import make_client
    from segfetch.engine.measure import bench

    async with make_client(args.connections, timeout=30.0) as client:
        with ByteBar("measuring", budget, quiet=args.quiet or args.json) as bar:
            if url is not None:
                return await bench(
                    client, url, budget=budget, seconds=seconds,
                    max_connections=args.connections, progress=bar.add,
                )  # fmt: skip
            from segfetch.testing.emulator import Emulator, SyntheticFile

            files = {"/bench.bin": SyntheticFile(max(budget, 64 << 20))}
            async with Emulator(files, link=link_from_args(args)) as emu:
                return await bench(
                    client, emu.url("/bench.bin"), budget=budget, seconds=seconds,
                    max_connections=args.connections, progress=bar.add,
                )  # fmt: skip


def _print(report: Any) -> None:
    print(f"{report.url}: {human_bytes(report.size)}, ranges {'yes' if report.ranges else 'NO'}")
    print(
        f"first byte on a new connection {report.first_byte * 1000:.0f} ms, "
        f"a request on an open one {report.request * 1000:.0f} ms"
    )
    print("connections   rate         x one   bytes read")
    one = report.steps[0].rate if report.steps else 0.0
    for s in report.steps:
        times = s.rate / one if one else 0.0
        rate = human_bytes(s.rate) + "/s"
        print(f"{s.connections:>11}   {rate:>11}   {times:5.1f}   {human_bytes(s.bytes)}")
    n = report.recommended
    more = {
        "--time": "give more --time to measure more connections",
        "--budget": "give more --budget to measure more connections",
        "-n": f"measure more with -n {2 * n}" if n < 64 else None,
    }.get(report.unfinished)
    hint = f"at least {n}; {more}" if more else "segfetch bench --save keeps it"
    print(f"limit: {report.limit}; suggested: -n {n} ({hint})")
