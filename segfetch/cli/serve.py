"""`segfetch serve`: a local simple index in front of the real ones, for pip, uv and any
other client: every file through the engine into the shared cache, streamed as it arrives."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from segfetch.cli import running
from segfetch.cli.options import add_download_options, cache_folder, download_options
from segfetch.errors import (
    UsageError,
    check_url,
    file_url_path,
    first_error,
    is_file_url,
    is_http_url,
    redact_url,
)

if TYPE_CHECKING:
    from segfetch.engine.options import Network

DEFAULT_PORT = 3141
AUTH_ENV = "SEGFETCH_SERVE_AUTH"
# Clients wait on a file's download: ride out an upstream outage of half a minute (tries in a
# row without a new byte, backoff 0.25 s doubling to 10 s) before failing their requests.
MAX_TRIES = 8


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="run a local package index: every file through segfetch, for pip and uv"
    )
    p.add_argument(
        "-i", "--index-url", metavar="URL", help="the index to serve (default: pip's own setting)"
    )
    p.add_argument("--extra-index-url", action="append", default=[], metavar="URL")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"(default {DEFAULT_PORT}; 0: any free one)"
    )
    p.add_argument(
        "--cache-dir", type=cache_folder, metavar="DIR", help="(default: segfetch's cache)"
    )
    p.add_argument(
        "--auth",
        metavar="USER:PASS",
        help=f"the user and password clients must give (or set {AUTH_ENV})",
    )
    p.add_argument("--max-connections", type=int, default=32, metavar="N",
                   help="upstream connections at once, over all files (default 32)")  # fmt: skip
    p.add_argument("--max-clients", type=int, default=64, metavar="N",
                   help="files sent at once, and apart pages; more wait (default 64)")  # fmt: skip
    add_download_options(p)
    p.set_defaults(run=_run, max_tries=MAX_TRIES)


def _run(args: argparse.Namespace) -> int:
    options = download_options(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {args.port}")
    for name in ("max_connections", "max_clients"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    auth = args.auth or os.environ.get(AUTH_ENV) or None
    if auth is not None and (":" not in auth or auth.startswith(":")):
        raise UsageError(f"--auth takes USER:PASS (or {AUTH_ENV}=USER:PASS)")
    args.host = _host(args.host)
    if not _loopback(args.host):
        print(
            f"segfetch: warning: listening on {_bracketed(args.host)}: whoever reaches this "
            "port may use the index"
            f"{'' if auth else ' (give --auth USER:PASS to require a password)'}",
            file=sys.stderr,
        )
    try:  # (asking pip for its indexes takes seconds: a stop meanwhile is a stop too)
        indexes, network = _indexes(args)
        running.run(lambda: _serve(args, options, indexes, auth, network))
    except (KeyboardInterrupt, running.Terminated):
        print("segfetch: serve stopped", file=sys.stderr)
    return 0


def _host(given: str) -> str:
    """The address to listen on: as given, or without the brackets of a URL's IPv6 host."""
    host = given.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise UsageError(
            "--host is empty: give the address to listen on "
            "(127.0.0.1; 0.0.0.0 for every IPv4 address, :: for every IPv6 one)"
        )
    return host


def _bracketed(host: str) -> str:
    """The host as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _spoken(host: str) -> str:
    """The address, said for the operator: what a wildcard listens on."""
    if host == "0.0.0.0":
        return "every IPv4 address (0.0.0.0)"
    if host == "::":
        return "every IPv6 address (::; for IPv4 clients, --host 0.0.0.0)"
    return host


def _urls(host: str, port: int) -> tuple[str, str | None]:
    """The index URL that works on this machine, and for a wildcard address the one other
    machines may use (this machine's name; its address works too). Pure but for the name."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{_bracketed(local)}:{port}/simple/"
    other = f"http://{socket.gethostname()}:{port}/simple/" if local != host else None
    return url, other


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def _indexes(args: argparse.Namespace) -> tuple[list[str], Network | None]:
    """The indexes to serve, and pip's network settings (proxy, cert, client-cert,
    trusted-host) where they come from pip's configuration: reached as pip reaches them."""
    from segfetch.wheels.pipnet import PYPI, pip_network
    from segfetch.wheels.target import index_urls_in_config, pip_config_listing

    index, extras = args.index_url, args.extra_index_url
    if index is not None and not index.strip():  # ("$MIRROR", unset): not the public index
        raise UsageError("--index-url is empty: give the URL of the index to serve")
    network = None
    if index is None and not extras:
        listing = pip_config_listing()
        index, extras = index_urls_in_config(listing)  # as pip install's
        network = pip_network([], listing, "install")
        # pip's settings may name indexes of other kinds: extra ones are passed over, and
        # said; its index-url is not replaced by the public index behind the user's back.
        if index is not None and not _usable(index):
            raise UsageError(
                f"pip's index-url setting {redact_url(index) or repr(index)} is not an http(s) "
                "or file: index; fix it, or name the index to serve with --index-url"
            )
        for url in [u for u in extras if not _usable(u)]:
            line = f"pip's setting {redact_url(url)} is not an http(s) or file: index; not served"
            print(f"segfetch: warning: {line} (name the indexes with --index-url)", file=sys.stderr)
        extras = [u for u in extras if _usable(u)]
    urls = [index or PYPI, *extras]
    for url in urls:
        if not _usable(url):
            raise UsageError(
                f"{redact_url(url) or repr(url)} is not an http(s) URL with a host, or a file: URL"
            )
        if not is_file_url(url):  # (a file: index is read from disk, its files served from there)
            check_url(url, "index URL")
        elif not file_url_path(url).is_dir():  # (every page would be a 404, unsaid)
            raise UsageError(f"{url}: no such folder; give the folder of the index to serve")
    return urls, network


def _usable(url: str) -> bool:
    return _http(url) or is_file_url(url)


def _http(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # "http://[::1": then said as not a valid URL
        return is_http_url(url)


async def _serve(
    args: argparse.Namespace,
    options: Any,
    indexes: list[str],
    auth: str | None,
    network: Network | None,
) -> None:
    import trio

    from segfetch.engine.download import make_client
    from segfetch.wheels import serve
    from segfetch.wheels.cache import Cache, default_cache_dir

    cache = Cache(args.cache_dir or default_cache_dir())
    cache.check()  # one line now, not a 500 on every file later
    async with (
        make_client(args.max_connections, options.timeout, network) as client,
        trio.open_nursery() as nursery,
    ):
        try:
            app = await nursery.start(
                lambda task_status: serve.run(
                    indexes, cache, client, host=args.host, port=args.port,
                    budget=args.max_connections, max_clients=args.max_clients, options=options,
                    auth=auth, notice=lambda line: print(f"segfetch: {line}", file=sys.stderr),
                    task_status=task_status,
                )
            )  # fmt: skip
        except (OSError, BaseExceptionGroup) as caught:
            # the host does not resolve, the port is taken or not ours (from serve's nursery)
            exc = first_error(caught, OSError) if isinstance(caught, BaseExceptionGroup) else caught
            if not isinstance(exc, OSError):
                raise
            why = exc.strerror or str(exc)
            raise UsageError(
                f"cannot listen on {_bracketed(args.host)}:{args.port}: {why}; "
                "choose another --host or --port"
            ) from None
        here, elsewhere = _urls(args.host, app.port)
        print(here, flush=True)
        login = f"{auth.partition(':')[0]}:PASS@" if auth else ""  # the password is not echoed
        url = here.replace("http://", f"http://{login}", 1)
        print(f"  PIP_INDEX_URL={url} pip install ...   UV_INDEX_URL={url} uv pip install ...",
              flush=True)  # fmt: skip
        if not args.quiet:
            upstream = ", ".join(map(redact_url, indexes))
            print(f"segfetch: serve: files from {upstream} (Ctrl-C stops)", file=sys.stderr,
                  flush=True)  # fmt: skip
        if elsewhere is not None:  # (said even with --quiet: the URL above is this machine's)
            print(f"segfetch: serve: listening on {_spoken(args.host)}; from other machines: "
                  f"{elsewhere}", file=sys.stderr, flush=True)  # fmt: skip
