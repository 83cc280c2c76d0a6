"""`segfetch get URL`: one file over several connections."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import hashlib
import json
import os
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from segfetch.cli import collector_paused, report, running
from segfetch.cli.options import add_download_options, download_options
from segfetch.config import host_start, save_host_start
from segfetch.engine.early import Early, request_line
from segfetch.engine.early import start as start_early
from segfetch.engine.names import check_destination, side_names
from segfetch.engine.options import Options
from segfetch.errors import UsageError, check_url, redact_url
from segfetch.units import human_bytes, is_sha256, link_hashes, plural

if TYPE_CHECKING:
    from segfetch.engine.download import Result

# The engine (trio, httpx) is imported when the command runs: the parser loads none of it.


def add_command(sub: Any) -> None:
    get = sub.add_parser("get", help="download one URL over several connections")
    get.add_argument("url", metavar="URL")
    get.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file or folder to write (default: name from the URL)",
    )
    add_download_options(get)
    get.add_argument(
        "--sha256", metavar="HEX", help="expected sha256; the file is kept only if it matches"
    )
    get.add_argument(
        "--size",
        metavar="BYTES",
        type=_size,
        help="the file's size, if known: every connection starts at once (a server that "
        "disagrees fails the download)",
    )
    get.add_argument("--json", action="store_true", help="print the result as JSON")
    get.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.sha256 is not None and args.sha256[:7].lower() in ("sha256:", "sha256="):
        args.sha256 = args.sha256[7:]  # as pip's --hash and PyPI's pages write it
    if args.sha256 is not None and not is_sha256(args.sha256):
        raise UsageError("--sha256 takes 64 hex digits")
    listed, other_hash = _fragment_hash(args.url)
    if listed is not None:
        if args.sha256 is not None and args.sha256.lower() != listed:
            raise UsageError("--sha256 and the URL's #sha256= differ; give one of them")
        args.sha256 = listed
    if args.output == "":  # ("$OUT", unset: curl refuses it too)
        raise UsageError("-o is empty: give a file path, or no -o for the URL's file name")
    options = download_options(args)
    url = args.url
    args.control = _control(url, args.output)  # (main.py's _again)
    if (done := _already_there(url, args.output, args.sha256, other_hash)) is not None:
        return _said(args, done)
    early = _early(url, args.output, options) if args.size is None else None
    try:
        with collector_paused():  # the engine's imports: trio, httpx
            check_url(url)
            from segfetch.cli.progress import ProgressBar
            from segfetch.engine.download import download

        dest = _destination(_httpx_path(url), args.output)
        args.control = dest.with_name(side_names(dest.name)[1])
    except BaseException:  # (from here on the download closes it)
        if early is not None:
            early.close()
        raise
    host = _host(url)
    if options.connections is None:  # auto: begin where this host settled last time
        options = dataclasses.replace(options, start=host_start(host))
    with ProgressBar(dest.name, quiet=args.quiet or args.json) as bar:
        result = running.run(
            partial(
                download, url, dest, options, sha256=args.sha256, other_hash=other_hash,
                size=args.size, progress=bar.update, early=early,
            ),
            last=True,
        )  # fmt: skip
    if result.settled is not None:
        save_host_start(host, result.settled)
    return _said(args, result)


def _said(args: argparse.Namespace, result: Result) -> int:
    if args.json:
        report(json.dumps(result_dict(result)), f"{result.path} is complete")
    elif not args.quiet:
        print(summary(result), file=sys.stderr)
    return 0


def _already_there(
    url: str, output: str | None, sha256: str | None, other_hash: str | None
) -> Result | None:
    """The destination, if it is already the file its hash names (a build script run
    again): checked on disk, and nothing is asked of the server. Without a hash nothing
    says the file there is the server's: it is fetched and replaced."""
    try:
        dest = _destination(unquote(urlsplit(url).path), output)
    except (UsageError, OSError, ValueError):
        return None  # (said where the download checks it)
    control = dest.with_name(side_names(dest.name)[1])
    if sha256 is None or not dest.is_file() or control.exists():
        return None
    from segfetch.engine.result import Result

    wanted = [("sha256", sha256), *([other_hash.split("=", 1)] if other_hash else [])]
    with dest.open("rb") as f:  # (a second hash, rare, reads the file again)
        for name, want in wanted:
            f.seek(0)
            if hashlib.file_digest(f, name).hexdigest() != want:
                return None
    size = dest.stat().st_size
    return Result(url, dest, size, sha256, 0.0, 0, 0, 0, resumed=size, restarts=0)


def _control(url: str, output: str | None) -> Path | None:
    """The control file of the destination, as far as it can be told before httpx loads:
    where an interrupt finds none, a rerun has nothing to resume."""
    try:
        dest = _destination(unquote(urlsplit(url).path), output)
    except (UsageError, OSError, ValueError):
        return None
    return dest.with_name(side_names(dest.name)[1])


def _fragment_hash(url: str) -> tuple[str | None, str | None]:
    """The hash of a URL's ``#sha256=HEX`` (as index pages and pip's requirements write
    one) and of another that pip reads there (``#md5=HEX``: "md5=hex"), each None where
    not given: checked as --sha256 is, not dropped with the fragment."""
    try:
        found = link_hashes(url, strict=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sha256 = found.pop("sha256", None)
    return sha256, next((f"{k}={v}" for k, v in found.items()), None)


def _size(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--size takes a count of bytes, not {text!r}")
    if len(text) > 19:  # (2^62, past any disk, has 19 digits: not "free some space")
        raise argparse.ArgumentTypeError(f"--size {text} is larger than any file; check it")
    return int(text)


def _host(url: str) -> str:
    """host:port, the key under which -n auto remembers a host."""
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].rpartition("@")[2].lower()
    if authority.rsplit(":", 1)[-1].isdigit() and not authority.endswith("]"):
        return authority
    return f"{authority}:{443 if scheme.lower() == 'https' else 80}"


def _early(url: str, output: str | None, options: Options) -> Early | None:
    """The first request, sent now (early.py) where it may be: once -o passed the checks
    that need no httpx (a mistyped -o spends no one-time link), and not where a control file
    says the download resumes (it then asks for what is missing)."""
    if request_line(url) is None:
        return None
    # What httpx.URL(url).path is for such a URL: its path, decoded
    dest = _destination(unquote(urlsplit(url).path), output)
    check_destination(dest)
    if dest.with_name(side_names(dest.name)[1]).exists():
        return None
    return start_early(url, options.connections, options.min_segment, options.timeout)


def _httpx_path(url: str) -> str:
    import httpx

    return httpx.URL(url).path


def _destination(path: str, output: str | None) -> Path:
    """Where to write: -o, or the last segment of the URL's (decoded) ``path`` in -o's
    folder or here; checked."""
    if output == "-":  # curl's and wget's stdout: not a file named "-"
        raise UsageError("-o -: segfetch cannot write to stdout, only a file; give a file path")
    name = path.rsplit("/", 1)[-1]  # (decoded once already: a second decoding made
    # "..%252F..%252Fx" a name that climbs out of the folder, "../../x")
    if output is not None and output.endswith(("/", os.sep)) and not Path(output).is_dir():
        raise UsageError(f"folder {output!r} does not exist; create it or choose another -o")
    if output is None or Path(output).is_dir():
        if not name or name in (".", "..") or not name.isprintable():  # a NUL, a newline
            raise UsageError("cannot tell a file name from the URL; give one with -o PATH")
        dest = Path(output or ".") / name
    else:
        dest = Path(output)
    if dest.is_symlink():  # written where it points, as curl and wget write through it
        try:
            os.stat(dest)
        except OSError as exc:  # (a dangling link is written through: ENOENT)
            if exc.errno == errno.ELOOP:
                raise UsageError(f"{str(dest)!r} is a loop of symbolic links; fix -o") from None
        dest = Path(os.path.realpath(dest))
    parent = dest.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{str(parent)!r} is a file, not a folder; choose another -o")
    if not parent.is_dir():
        raise UsageError(f"folder {str(parent)!r} does not exist; create it or choose another -o")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write to folder {str(parent)!r}; choose another -o")
    if dest.is_dir():
        raise UsageError(f"{str(dest)!r} is a folder; give a file path with -o")
    return dest


def result_dict(result: Result) -> dict[str, Any]:
    out = asdict(result)
    out["path"] = str(result.path)
    out["url"] = redact_url(result.url)
    return out


def summary(result: Result) -> str:
    if not result.requests:
        return f"{result.path}: already complete, sha256 {result.sha256} (nothing fetched)"
    fetched = result.size - result.resumed
    rate = fetched / result.seconds if result.seconds > 0 else 0.0
    kept = f" ({human_bytes(result.resumed)} of it from an earlier run)" if result.resumed else ""
    return (
        f"{result.path}: {human_bytes(result.size)}{kept} in {result.seconds:.2f} s "
        f"({human_bytes(rate)}/s), sha256 {result.sha256}, "
        f"{plural(result.connections, 'connection')}, {plural(result.retries, 'retry')}"
    )
