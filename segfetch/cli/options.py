"""Options shared by several commands, each defined and checked in one place."""

from __future__ import annotations

import argparse
import dataclasses
import math
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfetch.config import saved_connections
from segfetch.engine.options import (
    AUTO_CAP,
    DEFAULT_MIN_SEGMENT,
    DEFAULT_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_TIMEOUT,
    Options,
)
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import UsageError
from segfetch.units import parse_duration, parse_size

if TYPE_CHECKING:
    from segfetch.testing.emulator import Fault, Link

# segfetch.testing is imported where used: `segfetch get` need not load a server.


def add_download_options(
    p: argparse.ArgumentParser, min_segment: int = DEFAULT_MIN_SEGMENT
) -> None:
    saved = saved_connections("auto")
    auto = f"as many as the link rewards, up to {AUTO_CAP}"
    p.add_argument(
        "-n",
        "--connections",
        default=saved,
        metavar="N|auto",
        help=f"connections per file: auto (the default: {auto}) or a fixed count"
        if saved == "auto"
        else f"connections per file: a fixed count (default {saved}, saved by `segfetch bench "
        f"--save`) or auto ({auto})",
    )
    p.add_argument(
        "--min-segment",
        default=str(min_segment),
        metavar="SIZE",
        help=f"smallest segment worth its own connection (default {min_segment // 1024}K)",
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
        metavar="K",
        help="failures in a row without progress before giving up (default "
        f"{RetryPolicy.max_tries}; install: pip's --retries N, if given, makes it N+1)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar (install: a quiet installer too)",
    )


def download_options(args: argparse.Namespace) -> Options:
    """The engine's options from the shared command-line options, checked."""
    connections = _connections(str(args.connections))
    if args.max_tries is None:
        args.max_tries = _pip_retries(args) or RetryPolicy.max_tries
    if not 1 <= args.max_tries <= 1000:
        raise UsageError(f"--max-tries must be from 1 to 1000, not {args.max_tries}")
    try:
        min_segment = parse_size(args.min_segment)
    except ValueError as exc:
        raise UsageError(f"--min-segment: {exc}") from None
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    if min_segment < 1024:
        raise UsageError("--min-segment must be at least 1K")
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise UsageError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return Options(
        connections=connections,
        min_segment=min_segment,
        timeout=timeout,
        policy=RetryPolicy(max_tries=args.max_tries),
    )


def _pip_retries(args: argparse.Namespace) -> int | None:
    """The tries pip's ``--retries N`` (its last) asks for: N + 1, as urllib3 counts them."""
    kept = getattr(args, "pip_kept", None) or []
    values = [v for o, v in pairwise(kept) if o == "--retries"]
    if not values or not values[-1].isascii() or not values[-1].isdigit():
        return None  # (not a count: pip says so)
    return min(int(values[-1]) + 1, 1000)


def _connections(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_CONNECTIONS:
        raise UsageError(f"-n takes auto or a count from 1 to {MAX_CONNECTIONS}, not {text!r}")
    return int(text)


def cache_folder(text: str) -> Path:
    """--cache-dir: an empty one ("$CACHE", unset) made the current folder the cache."""
    if not text.strip():
        raise argparse.ArgumentTypeError("names no folder; give one")
    return Path(text)


def add_link_options(
    p: argparse.ArgumentParser, rate: str | None = None, drop_every: str | None = None
) -> None:
    """The emulated link: `emulate`, `demo` and `bench --emulate`."""
    p.add_argument(
        "--rate",
        default=rate,
        metavar="RATE",
        help=f"bytes/s per connection, e.g. 256K (default {rate or 'unlimited'})",
    )
    p.add_argument("--shared-rate", metavar="RATE", help="bytes/s shared by all connections")
    p.add_argument("--rtt", default="0", metavar="T", help="added round-trip time, e.g. 100ms")
    p.add_argument(
        "--drop-every",
        default=drop_every,
        metavar="SIZE",
        help=f"reset the connection about every SIZE bytes (default {drop_every or 'never'})",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:k=v,...]",
        help="a seeded fault, e.g. stall:every=2M,stall_seconds=5 or status:status=503,rate=0.1",
    )
    p.add_argument(
        "--max-connections", type=int, metavar="N", help="answer 503 beyond N connections"
    )
    p.add_argument("--no-etag", action="store_true", help="send no ETag")
    p.add_argument("--seed", type=int, default=1, help="seed of content and faults (default 1)")


def link_from_args(args: argparse.Namespace) -> Link:
    from segfetch.testing.emulator import Fault, Link

    try:
        faults = [parse_fault(spec) for spec in args.fault]
        rate = parse_size(args.rate) if args.rate else None
        shared = parse_size(args.shared_rate) if args.shared_rate else None
        rtt = parse_duration(args.rtt)
        if args.drop_every:
            if (every := parse_size(args.drop_every)) < 1024:  # (0: no Fault, whose line is)
                raise UsageError("--drop-every must be at least 1K")
            faults.append(Fault("reset", every=every))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if 0 in (rate, shared):
        raise UsageError("--rate and --shared-rate must be more than 0")
    if rtt > 10:
        raise UsageError("--rtt must be at most 10s")
    if any(f.every is not None and f.every < 1024 for f in faults):
        raise UsageError("a fault's every= must be at least 1K")
    if args.max_connections is not None and not 1 <= args.max_connections <= 10_000:
        raise UsageError("--max-connections must be from 1 to 10000")
    return Link(
        rate=rate,
        shared_rate=shared,
        rtt=rtt,
        max_connections=args.max_connections,
        faults=tuple(faults),
        seed=args.seed,
        etag=not args.no_etag,
    )


def parse_fault(spec: str) -> Fault:
    """'reset:every=1M' or 'status:status=429,rate=0.2,retry_after=2' -> Fault."""
    from segfetch.testing.emulator import Fault

    options = [f.name for f in dataclasses.fields(Fault) if f.name != "kind"]
    kind, _, rest = spec.partition(":")
    values: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in options:
            raise ValueError(f"bad fault option {item!r}; options: {', '.join(options)}")
        if key in ("every", "slow_rate"):  # sizes: 2M, 16K
            values[key] = parse_size(value)
        elif key == "retry_after":
            values[key] = value or None
        else:
            try:
                values[key] = (float if key in ("rate", "stall_seconds") else int)(value)
            except ValueError:  # (float's and int's words name neither the option nor --fault)
                why = f"{key}= takes a number, not {value!r}"
                raise ValueError(f"--fault {spec!r}: {why}") from None
    try:
        return Fault(kind, **values)
    except ValueError as exc:
        raise ValueError(f"--fault {spec!r}: {exc}") from None
