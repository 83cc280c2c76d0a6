"""`segfetch emulate` (serve a throttled, flaky loopback link) and `segfetch demo`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfetch.cli import running
from segfetch.cli.options import (
    add_download_options,
    add_link_options,
    download_options,
    link_from_args,
)
from segfetch.errors import SegfetchError, UsageError
from segfetch.units import human_bytes, parse_size, plural

if TYPE_CHECKING:
    from segfetch.testing.emulator import Link

# segfetch.testing is imported where used: `segfetch get` need not load a server.


def add_commands(sub: Any) -> None:
    emulate = sub.add_parser(
        "emulate", help="serve files over an emulated slow, flaky link on 127.0.0.1"
    )
    emulate.add_argument(
        "root", nargs="?", type=Path, metavar="DIR", help="serve the files below DIR"
    )
    emulate.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH:SIZE",
        help="a synthetic file, e.g. /big.whl:8M (repeatable)",
    )
    emulate.add_argument(
        "--index",
        type=Path,
        metavar="DIR",
        help="serve the wheels in DIR as a simple index at /simple/ (PEP 691/503)",
    )
    emulate.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    emulate.add_argument("--log", type=Path, metavar="FILE", help="append a JSON line per request")
    add_link_options(emulate)
    emulate.set_defaults(run=_run_emulate)

    demo = sub.add_parser(
        "demo", help="download one file over a flaky loopback link with 1 and with N connections"
    )
    demo.add_argument("--size", default="4M", help="file size (default 4M)")
    add_link_options(demo, rate="512K", drop_every="1M")
    add_download_options(demo)
    demo.set_defaults(run=_run_demo)


def _describe(link: Link) -> str:
    parts = [f"{human_bytes(link.rate)}/s per connection"] if link.rate else []
    if link.shared_rate:
        parts.append(f"{human_bytes(link.shared_rate)}/s shared")
    parts = parts or ["no rate limit"]
    if link.max_connections:
        parts.append(f"503 beyond {link.max_connections} connections")
    if not link.etag:
        parts.append("no ETag")
    if link.rtt:
        parts.append(f"{link.rtt * 1000:.0f} ms RTT")
    for f in link.faults:
        if f.kind == "slow":  # (a body slows once, and stays slow)
            after = f" after about {human_bytes(f.every)}" if f.every else ""
            parts.append(f"down to {human_bytes(f.slow_rate)}/s{after}")
        else:
            parts.append(f"{f.kind} about every {human_bytes(f.every)}" if f.every else f.kind)
    return ", ".join(parts)


def _run_emulate(args: argparse.Namespace) -> int:
    from segfetch.testing.emulator import Emulator, SyntheticFile

    link = link_from_args(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {args.port}")
    files: dict[str, SyntheticFile] = {}
    for spec in args.file:
        path, _, size = spec.rpartition(":")
        try:
            files["/" + path.lstrip("/")] = SyntheticFile(parse_size(size))
        except ValueError as exc:
            raise UsageError(f"--file {spec!r}: {exc}; write PATH:SIZE, e.g. /big.whl:8M") from None
    if args.root is not None and not args.root.is_dir():
        raise UsageError(f"{str(args.root)!r} is not a folder")
    if args.index is not None and not args.index.is_dir():
        raise UsageError(f"{str(args.index)!r} is not a folder")
    if not files and args.root is None and args.index is None:
        files["/file.bin"] = SyntheticFile(8 * 1024 * 1024)

    import trio

    async def serve() -> None:
        emu = Emulator(
            files, root=args.root, index=args.index, link=link, port=args.port, log_path=args.log
        )
        try:
            await emu.__aenter__()
        except OSError as exc:
            if exc.filename is not None:  # the --log file's (opened first): not the port's
                raise UsageError(f"cannot write --log {exc.filename}: {exc.strerror}") from None
            raise SegfetchError(
                f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; choose another --port"
            ) from None
        try:
            print(f"serving on http://127.0.0.1:{emu.port}/ ({_describe(link)}); Ctrl-C stops")
            for path in files:
                print(f"  {emu.url(path)}  sha256 {emu.sha256(path)}")
            if args.index is not None:
                print(f"  index: {emu.index_url}")
            sys.stdout.flush()
            await trio.sleep_forever()
        finally:
            await emu.__aexit__(None, None, None)

    try:
        running.run(serve)
    except (KeyboardInterrupt, running.Terminated):  # the ways to stop it: not an error
        print("segfetch emulate: stopped", file=sys.stderr)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from segfetch.cli.progress import ProgressBar
    from segfetch.engine.download import download
    from segfetch.testing.emulator import Emulator, SyntheticFile

    link = link_from_args(args)
    options = download_options(args)
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    n = options.connections

    async def run() -> None:
        async with Emulator({"/demo.whl": SyntheticFile(size)}, link=link) as emu:
            print(f"link: {_describe(link)} (emulated on 127.0.0.1, seed {link.seed})")
            print(f"file: {human_bytes(size)}, sha256 {emu.sha256('/demo.whl')}")
            times = []
            with tempfile.TemporaryDirectory() as tmp:
                for count in dict.fromkeys((1, n)):
                    label = "auto" if count is None else f"{count} conn"
                    dest = Path(tmp) / f"demo-{count}.whl"
                    with ProgressBar(label, quiet=args.quiet) as bar:
                        result = await download(
                            emu.url("/demo.whl"),
                            dest,
                            dataclasses.replace(options, connections=count),
                            sha256=emu.sha256("/demo.whl"),
                            progress=bar.update,
                        )
                    times.append(result.seconds)
                    most = plural(result.connections, "connection")
                    asked = plural(result.requests, "request")
                    tries = f"{plural(result.retries, 'retry')}, {asked}"
                    print(
                        f"{label:>7}: {result.seconds:6.2f} s "
                        f"({human_bytes(size / result.seconds)}/s), {tries}, "
                        f"at most {most}, sha256 verified"
                    )
            if len(times) == 2:
                what = "-n auto" if n is None else f"{n} connections"
                print(f"speed-up with {what}: {times[0] / times[1]:.1f}x")

    running.run(run)
    return 0
