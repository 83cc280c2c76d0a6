"""`segfetch download` and `segfetch install`: requirement sets through the engine to pip."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfetch.cli import dryrun, records, report, reqset, running
from segfetch.cli.environment import pip_config_list, which_python
from segfetch.cli.options import add_download_options, cache_folder, download_options
from segfetch.cli.pipopts import (
    add_pip_options,
    check_passed_through,
    check_values,
    pip_args_of,
)
from segfetch.errors import SegfetchError, UsageError

if TYPE_CHECKING:
    from segfetch.engine.options import Network, Options
    from segfetch.wheels.cache import Cache
    from segfetch.wheels.files import Fetched
    from segfetch.wheels.requirements import RequirementSet
    from segfetch.wheels.streaming import Early
    from segfetch.wheels.target import Pending, Probe, Target

# trio, httpx and the resolver side are imported when used: `segfetch --version` and the
# parser load none of them, and `install` starts the target's probe before loading them.

# S5 (30 wheels of 200 kB, 256 KiB/s per connection): 64 places and 96K pieces, each wheel
# on two connections: 1.69 s against 1.91 s at 32 and 256K, uv 1.74 s (10 runs,
# docs/benchmarks-history.md "The dawn round")
DEFAULT_BUDGET = 64
MIN_SEGMENT = 96 * 1024


def add_commands(sub: Any) -> None:
    for name, help_text in (
        ("download", "fetch the wheels of a requirement set into a folder, like pip download"),
        ("install", "fetch a requirement set through segfetch, then install it with pip"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "requirements",
            nargs="*",
            metavar="REQ",
            help="requirement strings, e.g. 'attrs==25.1.0'",
        )
        for flag, what in (("-r", "requirement"), ("-c", "constraint")):
            p.add_argument(
                flag, f"--{what}", action="append", default=[], metavar="FILE", help=f"{what}s file"
            )
        p.add_argument(
            "-i", "--index-url", metavar="URL", help="simple index (default: pip's own setting)"
        )
        p.add_argument(
            "-f",
            "--find-links",
            action="append",
            default=[],
            metavar="DIR|URL",
            help="a folder of files, or a page of links to them, as pip takes it",
        )
        if name == "install":
            p.add_argument(
                "-e",
                "--editable",
                action="append",
                default=[],
                metavar="PATH",
                help="a local project (or VCS URL) in editable mode, handed to pip",
            )
        p.add_argument(
            "--group",
            action="append",
            default=[],
            metavar="[PATH:]NAME",
            help="the requirements of a dependency group of ./pyproject.toml or PATH (PEP 735)",
        )
        p.add_argument(
            "--requirements-from-script",
            action="append",
            default=[],
            metavar="SCRIPT",
            help="the dependencies of a script's inline metadata (PEP 723)",
        )
        p.add_argument("--extra-index-url", action="append", default=[], metavar="URL")
        which = p.add_mutually_exclusive_group()
        which.add_argument(
            "--python",
            metavar="PATH",
            help="the interpreter to install for (default: the active virtual environment, "
            "else a .venv here or in a parent folder)",
        )
        which.add_argument(
            "--system",
            action="store_true",
            help="allow installing into the Python segfetch runs in",
        )
        p.add_argument("--pre", action="store_true", help="allow pre-releases")
        p.add_argument(
            "--uploaded-prior-to",
            metavar="WHEN",
            help="only files the index says were uploaded before WHEN: an ISO 8601 date or "
            "time, or PnD for n days ago (pip 26's option; PEP 700 indexes only)",
        )
        cache = p.add_mutually_exclusive_group()
        cache.add_argument(
            "--cache-dir",
            type=cache_folder,
            metavar="DIR",
            help="default $SEGFETCH_CACHE_DIR, else ~/.cache/segfetch (the user's cache folder)",
        )
        cache.add_argument("--no-cache", action="store_true", help="use a throw-away cache")
        p.add_argument(
            "--max-connections",
            type=int,
            default=DEFAULT_BUDGET,
            metavar="M",
            help=f"connections at most over all files (default {DEFAULT_BUDGET})",
        )
        p.add_argument("--json", action="store_true", help="print what was fetched as JSON")
        add_download_options(p, MIN_SEGMENT)
        if name == "download":
            p.add_argument(
                "-d",
                "--dest",
                type=Path,
                default=Path(),
                metavar="DIR",
                help="folder for the files (default: the current folder, as pip download)",
            )
            add_pip_options(p.add_argument_group("pip's options that change what is chosen"))
        else:
            p.add_argument(
                "--installer",
                choices=("auto", "pip", "uv"),
                default="auto",
                help="what installs the verified files: the target's pip, or uv pip install; "
                "auto (default): uv when it is on PATH or installed as a package and takes "
                "every pip option given, else pip",
            )
            pip = p.add_argument_group("passed to pip install (other pip options pass through too)")
            add_pip_options(pip, install=True)
        p.set_defaults(run=_run, command=name)


def _run(args: argparse.Namespace) -> int:
    from segfetch.config import default_cache_dir
    from segfetch.wheels.pipnet import may_read_config_files
    from segfetch.wheels.target import start_probe

    check_passed_through(args.pip_args, args.command)
    check_values(pip_args_of(args))
    if args.max_connections < 1:
        raise UsageError(f"--max-connections must be at least 1, not {args.max_connections}")
    options = download_options(args)
    if "--isolated" not in args.pip_args:  # (pip reads no configuration then)
        reqset.take_configured(args)
    reqs = reqset.requirement_set(args, options.timeout)
    reqset.check_foreign(reqs, args.command, pip_args_of(args))
    if reqs.empty:  # only empty requirements files: nothing to do, as pip says nothing
        if args.json:
            print("[]")
        return 0
    python = which_python(args)
    # The target's tags, and its pip's settings (the index when none is given, the
    # constraint files) are asked in a subprocess started now: it answers while trio and
    # httpx load and the first index pages arrive. Its answer is kept in the cache folder,
    # and used again while nothing it depends on changes (--no-cache: asked every time).
    keep = None if args.no_cache else args.cache_dir or default_cache_dir()
    # pip's settings cost the probe ~0.14 s (loading pip's internals): asked only where pip
    # may read a config file; else the environment says them (pip_config below). pip
    # --isolated reads no PIP_* variable nor the user's files, but the others all the same.
    files = may_read_config_files(python, os.environ, Path.home())
    isolated = "--isolated" in args.pip_args
    with start_probe(python, pip_config=files, keep=keep, isolated=isolated) as probe:
        if files:  # pip's config files may set what PIP_* may: the set is read again then
            from segfetch.wheels.pipnet import configured_options

            _load_engine()  # (~0.15 s, while the probe loads pip's: ~0.2 s)
            listing = _pip_config(probe, python, isolated)
            sections = (f"{args.command}.", "global.")
            if configured_options(listing, args.command, sources=sections):
                # All of pip's settings, ranked as pip ranks them (an environment variable
                # over a file's setting), in place of the environment's alone.
                reqset.take_configured(args, configured_options(listing, args.command))
                reqs = reqset.requirement_set(args, options.timeout)
                reqset.check_foreign(reqs, args.command, pip_args_of(args))
        return _run_started(args, options, reqs, python, probe, files)


def _load_engine() -> None:
    """trio, httpx and the engine, loaded while the target's probe answers: the first
    request then waits for the slower of the two, not for both one after the other."""
    for name in ("segfetch.wheels.install", "segfetch.cli.progress"):
        importlib.import_module(name)


def _pip_config(probe: Pending[Probe], python: str, isolated: bool) -> str:
    """The lines of `pip config list` (`pip --isolated` if ``isolated``): from the probe,
    or (a pip that keeps them elsewhere) from `pip config list` itself."""
    answer = probe.result()
    if (listing := answer.settings()) is not None:
        return listing
    return pip_config_list(python, answer.target.own_pip, isolated)


def _run_started(
    args: argparse.Namespace,
    options: Options,
    reqs: RequirementSet,
    python: str,
    probe: Pending[Probe],
    config_files: bool,
) -> int:
    from segfetch.cli.pipopts import check_managed, check_require_venv, check_user_site
    from segfetch.config import default_cache_dir
    from segfetch.wheels.installer import choose_installer
    from segfetch.wheels.pipnet import command_line_values, configured_options, environment_listing
    from segfetch.wheels.prelaunch import all_cached, prelaunch

    pip_args = [*pip_args_of(args), *(["--pre"] if reqs.pre else [])]  # for a -f folder's choice
    check_require_venv(python, pip_args, environment_listing(os.environ), args.command)  # (now)
    installer, dry = None, None
    if args.command == "install":  # a usage error here comes before any download
        # A dry run is pip's resolver's answer: no installer runs (--installer uv is fine)
        dry = dryrun.DryRun() if "--dry-run" in pip_args else None
        unlike = reqset.unlike_uv(reqs)
        installer = choose_installer("pip" if dry else args.installer, pip_args, unlike)

    @functools.cache
    def pip_config() -> str:
        """pip's settings as `pip config list` prints them. Where pip reads no config file
        (``config_files`` False: PIP_CONFIG_FILE=/dev/null, no file at any of pip's
        places), the environment says it all (nothing under --isolated): no wait for the
        target's probe. Else from the probe, or (a pip that keeps them elsewhere) from
        `pip config list` itself."""
        from segfetch.wheels.pipnet import environment_listing

        isolated = "--isolated" in args.pip_args
        if not config_files:
            return "" if isolated else environment_listing(os.environ)
        return _pip_config(probe, python, isolated)

    def network() -> Network:
        """pip's proxy, cert, client-cert, trusted-host, as pip would use them."""
        from segfetch.wheels.pipnet import pip_network

        trusted = [w for host in reqs.trusted_hosts for w in ("--trusted-host", host)]
        return pip_network([*pip_args, *trusted], pip_config(), args.command)

    @functools.cache
    def constrained() -> None:
        reqset.configured_constraints(args, reqs, pip_config)

    def ready() -> Target:
        """The target, once pip's configured constraints are in the set: run in a thread
        while the first index pages are fetched (constraints change choices, not pages).
        One the system manages is refused here for an install, before any file (and
        --user where pip refuses it)."""
        constrained()
        target = probe.result().target
        reqset.check_resolver_options(reqs, target, python)
        check_require_venv(python, pip_args, pip_config(), args.command)
        if installer is not None:
            check_user_site(python, pip_args)
        if installer is not None and target.managed is not None:
            configured = configured_options(pip_config(), "install")
            check_managed(target, python, [*pip_args, *configured], pip_config())
        return target

    def pip_files_now(folder: Path) -> list[str] | None:
        """The set as pip takes it, where that is known before the target's probe answers
        (pip reads no config file, so its constraints are known; no direct URL to fetch
        first): uv may then start before the plan. Else None."""
        if config_files or reqs.direct:
            return None
        constrained()
        return reqset.pip_files(reqs, {}, folder, installer)

    with contextlib.ExitStack() as stack:
        throwaway = stack.enter_context(tempfile.TemporaryDirectory(prefix="segfetch-cache-"))
        pip_files = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="segfetch-reqs-")))
        root = Path(throwaway) if args.no_cache else args.cache_dir or default_cache_dir()
        pip_reqs_now = pip_files_now(pip_files)
        # uv on its way before trio and httpx load, where the set will likely take uv's
        # streaming route (Early.ahead decides)
        pre = None
        if (
            installer is not None and installer.name == "uv" and pip_reqs_now is not None
            and reqs.fully_pinned and not all_cached(root, [w.hashes for w in reqs.wanted])
        ):  # fmt: skip
            uv = prelaunch(installer, python, pip_reqs_now, pip_args, args.quiet, root)
            pre = stack.enter_context(uv)
        indexes = reqset.indexes(args, reqs, pip_config)  # (its URL check loads httpx)
        from segfetch.wheels.cache import Cache
        from segfetch.wheels.complete import held_lacking_extras
        from segfetch.wheels.files import link_into
        from segfetch.wheels.pip import install, record_origins, report_origins, report_to_file
        from segfetch.wheels.streaming import Early

        installing = Early(installer, python, pip_args, args.quiet, pre=pre, json=args.json)
        cache = Cache(root)
        cache.check()  # before any network work
        # running.run: SIGTERM and SIGHUP cancel as Ctrl-C does, so pip's resolver is
        # stopped and these folders removed on the way out.
        fetched, pip_reqs, origins = running.run(
            functools.partial(
                _fetch_set, args, options, reqs, pip_files, ready, indexes, python, cache,
                network, installing, pip_reqs_now, dry,
            )
        )  # fmt: skip
        if dry is not None:
            return dryrun.show(dry, args, pip_args, pip_files, cache)
        if not args.json and not args.quiet:
            records.summary(fetched)
        wants_report = bool(command_line_values(pip_args, "--report"))  # (pip writes it)
        nothing = not (fetched or reqs.handed or installing.code is not None or wants_report)
        if installer is not None and (nothing or (installing.installer or installer).name == "uv"):
            for line in held_lacking_extras(reqs, probe.result().target):
                print(line, file=sys.stderr)  # (pip's words, -q or not; pip installing says them)
        if installer is None:
            link_into(fetched, args.dest, copy=True)  # (the user's: pip download's own files)
            code = 0
        elif nothing:
            code = 0  # the environment holds the set: pip would say so, and do nothing
            if not args.quiet and not args.json:
                said = f"nothing to install: every requirement is already satisfied ({python})"
                print(f"segfetch: {said}", file=sys.stderr)
        else:
            if installer.why_not_uv and not args.quiet:
                print(f"segfetch: installing with pip: {installer.why_not_uv}", file=sys.stderr)
            pip_args, shown = report_to_file(pip_args, pip_files)  # (--report -)
            code = installing.replay(args.json) if installing.code == 0 else install(
                installing.installer or installer, python, fetched, pip_reqs, pip_args,
                quiet_stdout=args.json, quiet=args.quiet, cached=cache.files,
                own_pip=probe.result().target.own_pip, constraints_read=reqs.configured,
            )  # fmt: skip
            if code == 0:
                by_uv = (installing.installer or installer).name == "uv"
                local = reqset.local_archives(reqs) if by_uv else []  # (pip records its own)
                record_origins(python, origins + local, pip_args)
            for path in command_line_values(pip_args, "--report") if code == 0 else ():
                report_origins(Path(path), fetched, {url for _, url, _ in origins})
            if shown is not None and shown.exists():  # where pip would have printed it
                print(shown.read_text(), end="", file=sys.stderr if args.json else sys.stdout)
        if args.json:  # one document: what was fetched, or why the install failed
            if code != 0:
                assert installer is not None  # (a download only links the files)
                failed = SegfetchError(f"{installer.name} install failed; its output is above")
                failed.exit_code = code
                raise failed
            args.json_printed = True
            done = f"the files are in {args.dest}" if installer is None else "the install is done"
            report(json.dumps([records.of(f) for f in fetched], indent=1), done)
        return code


async def _fetch_set(
    args: argparse.Namespace,
    options: Options,
    reqs: RequirementSet,
    pip_files: Path,
    ready: Callable[[], Target],
    indexes: list[str],
    python: str,
    cache: Cache,
    network_of: Callable[[], Network],
    installing: Early,
    pip_reqs_now: list[str] | None,
    dry: dryrun.DryRun | None,
) -> tuple[list[Fetched], list[str], list[tuple[str, str, str]]]:
    """The verified files to install (with what pip's build environments took, for
    `install`), the requirements as arguments for pip (files in ``pip_files``, or made
    already: ``pip_reqs_now``), and the direct URLs' (name, URL, sha256). A ``dry`` run
    fetches none of the files: it is given pip's plan instead."""
    import trio

    from segfetch.cli.progress import MultiProgress
    from segfetch.engine.download import make_client
    from segfetch.wheels.complete import check_hashed_set
    from segfetch.wheels.install import Session

    quiet = args.quiet or args.json
    network = await trio.to_thread.run_sync(network_of, abandon_on_cancel=True)
    async with make_client(args.max_connections, options.timeout, network) as client:
        session = Session(
            client, cache, indexes, budget=args.max_connections, options=options,
            # Warnings (a pinned yanked file, a damaged cached copy): shown with -q too, as
            # pip -q shows its warnings.
            notice=lambda line: print(f"segfetch: {line}", file=sys.stderr),
            find_links=reqs.find_links,
        )  # fmt: skip
        session.whole_ahead, session.refresh = dry is None, reqset.refreshed(args, reqs)
        session.before, session.warns = reqs.before, args.command == "download" or dry is not None
        session.pages.trusted = network.insecure  # (pip caches no other http page)

        def resolving() -> None:
            if not quiet:
                print("resolving with pip through segfetch ...", file=sys.stderr)

        async def page(name: str) -> None:
            with contextlib.suppress(SegfetchError):  # the plan asks again, and says why
                await session.project(name)
            start_uv()  # (installing.ahead's) a first answer is in: uv slows no first request

        pip_reqs = pip_reqs_now or []
        # (Not a hashed pin whose file is cached: a set of those asks nothing at all.)
        needs = [w for w in reqs.wanted if session.needs_page(w)]
        async with installing.ahead(session, reqs, pip_reqs_now, bool(needs)) as start_uv:
            async with trio.open_nursery() as nursery:
                # Index pages need no target: those of requirements without a marker are
                # fetched while the target's probe may still run.
                for name in reqset.early_pages(reqs, needs, python):
                    nursery.start_soon(page, name)
                target = await trio.to_thread.run_sync(ready, abandon_on_cancel=True)
                session.take_links(reqs.linked(target.markers))
                direct = await session.fetch_direct(reqs, target)
                if pip_reqs_now is None:  # with pip's constraints, the direct URLs' files
                    local = {url: f.path for url, f in direct.items()}
                    pip_reqs = reqset.pip_files(reqs, local, pip_files, installing.installer)
                if dry is not None:  # what pip's resolver would install: nothing more fetched
                    resolving()
                    dry.planned = await session.plan_with_pip(python, reqs, pip_reqs, target)
                    dry.report, dry.results = session.report, session.results
                    return [], pip_reqs, []
                planned = await session.plan(python, reqs, pip_reqs, target, on_resolve=resolving)
                uv = reqset.plan_for_uv(reqs, planned, target, pip_files, installing.installer)
                pip_reqs, installing.installer = uv or (pip_reqs, installing.installer)
            if args.command == "install":
                planned += session.build_deps
            sizes = [p.size for p in planned]
            total = sum(s for s in sizes if s is not None) if None not in sizes else None
            bars = MultiProgress(len(planned), total, quiet=quiet)
            session.progress = lambda p, pr: bars.update(p.filename, pr)
            try:
                fetched = await installing.fetch(session, planned, pip_reqs, reqs, target)
            finally:
                bars.close()
            # (uv's streaming route checked it before uv had a last byte: not again)
            if reqs.require_hashes and installing.code is None:
                await check_hashed_set(fetched, reqs, target, session.warn)
    # (pip's freeze names the URL of a file a URL constraint chose: as a direct URL's)
    origins = [(f.planned.name, url, f.sha256) for url, f in direct.items()]
    urls = {f.url for f in session.links.values()}
    origins += [(f.planned.name, f.planned.url, f.sha256) for f in fetched if f.planned.url in urls]
    return fetched, pip_reqs, origins
