"""The requirement set of `download` and `install` from their command line: requirement
strings, files (or http(s) URLs of them), pip's options given or set by PIP_* variables,
and the constraint files of pip's configuration; and the set written back out for pip."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from segfetch.cli.pipopts import (
    INSTALL_VALUED,
    INSTALLED_FLAGS,
    INSTALLED_VALUED,
    PIP_VALUED,
    option_names,
    pip_args_of,
)
from segfetch.errors import (
    PipRefusal,
    RequirementError,
    SegfetchError,
    UsageError,
    check_url,
    file_url_path,
    is_file_url,
    is_http_url,
    redact_url,
)

if TYPE_CHECKING:
    from segfetch.wheels.files import Planned
    from segfetch.wheels.installer import Installer
    from segfetch.wheels.requirements import RequirementSet
    from segfetch.wheels.target import Target
    from segfetch.wheels.wanted import Wanted


def take_configured(args: argparse.Namespace, words: list[str] | None = None) -> None:
    """pip's options that its configuration sets, as if given first on the command line:
    segfetch's choices and its installer follow them. ``words``: all pip's settings say
    (wheels/pipnet.py configured_options), in place of an earlier call's; None: those PIP_*
    variables set (PIP_NO_DEPS=1, PIP_ONLY_BINARY=:all:, ...)."""
    from segfetch.wheels.pipnet import configured_options, environment_listing

    if words is None:
        words = configured_options(environment_listing(os.environ), args.command)
    args.pre = args.pre or "--pre" in words
    if "--require-hashes" in words:
        args.pip_args = ["--require-hashes", *args.pip_args]
    kept, links, refresh, each = [], [], [], iter(words)
    for word in each:
        if word == "--find-links":
            links.append(next(each, ""))
        elif word == "--refresh-package":  # segfetch's pages only: an older pip ignores it
            refresh.append(next(each, ""))
        elif word == "--uploaded-prior-to":  # segfetch's own work (wheels/uploaded.py)
            args.configured_before = next(each, "")  # (the last: the highest ranked)
        elif word not in ("--pre", "--require-hashes"):
            kept.append(word)
    args.configured_links = links  # before the command line's -f, as pip adds them
    args.configured_refresh = refresh  # before the command line's too
    # In place of what an earlier call took (the environment's, before pip's files were read)
    earlier = (getattr(args, "pip_kept", None) or [])[getattr(args, "configured", 0) :]
    args.pip_kept, args.configured = kept + earlier, len(kept)


def requirement_set(args: argparse.Namespace, timeout: float) -> RequirementSet:
    from segfetch.wheels.requirements import RequirementSet

    if args.index_url is not None and not args.index_url.strip():  # "$MIRROR", unset: pip
        # finds no index then; the public one in its place is no mirror's
        raise UsageError("--index-url is empty: give the index's URL (--no-index: none)")
    _check_dest(getattr(args, "dest", None))
    links = [*getattr(args, "configured_links", []), *args.find_links]
    reqs = RequirementSet(pre=args.pre, find_links=links)
    reqs.read_url = partial(_read_url, timeout=timeout)
    _resolver_options(reqs, getattr(args, "pip_kept", None) or [], args.command == "install")
    if when := args.uploaded_prior_to or getattr(args, "configured_before", None):
        from segfetch.wheels.uploaded import prior_to

        reqs.before = prior_to(when, datetime.now(UTC))
    for text in args.requirements:
        reqs.add_string(text)
    for value in args.group:
        from segfetch.wheels.groups import group_requirements

        for text in group_requirements(value):
            reqs.add_string(text, f"--group {value}")
    if args.requirements_from_script:
        _add_script(reqs, args.requirements_from_script)
    for path in getattr(args, "editable", []):
        reqs.add_editable(path)
    for path in args.requirement:
        _add_file(reqs, path, constraint=False)
    for path in args.constraint:
        _add_file(reqs, path, constraint=True)
    if reqs.empty and not (args.requirement or args.group or args.requirements_from_script):
        raise PipRefusal("nothing to do: give requirements, or -r FILE")
    editable = [h for h in reqs.handed if h.startswith("-e ")]
    if editable and args.command == "download":  # (it was left out, exit 0)
        raise RequirementError(
            f"{editable[0]}: segfetch download saves no archive of an editable project, "
            "where pip download zips it: leave it out, or run pip download for it"
        )
    if reqs.pre and (reqs.releases.every or reqs.releases.final):
        raise UsageError("--pre cannot be used with --all-releases or --only-final (as in pip)")
    reqs.require_hashes |= "--require-hashes" in pip_args_of(args)
    reqs.check_hashes()
    for link in reqs.missing_links:  # (-q shows it, as pip -q shows warnings)
        # pip's own words (its resolver's stderr is not shown unless it fails)
        line = f"Location {link!r} is ignored: it is either a non-existing path or lacks a "
        print(f"segfetch: warning: {line}specific scheme.", file=sys.stderr)
    return reqs


def _check_dest(dest: Path | None) -> None:
    """download's -d, before any request: a file there (or above it) failed the command
    with 'File exists' once every file was fetched. A folder that is missing is made."""
    for there in [dest, *dest.parents] if dest is not None else []:
        if there.exists() or there.is_symlink():
            if not there.is_dir():
                raise UsageError(f"-d {str(dest)!r}: {str(there)!r} is not a folder; give one")
            return


def _add_file(reqs: RequirementSet, path: str, *, constraint: bool) -> None:
    """-r/-c FILE, or an http(s) or file: URL of one, as pip takes it."""
    if is_http_url(path) or is_file_url(path):
        reqs.add_url(path, constraint=constraint)
    else:
        reqs.add_file(Path(path), constraint=constraint)


def _read_url(url: str, timeout: float) -> bytes:
    """A requirements file at a URL, through the environment's proxies as every request."""
    import httpx

    from segfetch.engine.client import check_host, with_env_proxies

    hooks = {"request": [check_host]}  # ("a..b" redirected to: said, not a traceback)
    client = with_env_proxies(
        lambda: httpx.Client(follow_redirects=True, timeout=timeout, event_hooks=hooks)
    )
    why = ""
    with client:
        try:
            answer = client.get(url)
            if answer.status_code != 200:
                why = f"the server answered {answer.status_code} {answer.reason_phrase}"
        except httpx.HTTPError as exc:
            why = str(exc) or type(exc).__name__
    if why:  # (not a usage error: exit 1, as pip's)
        raise SegfetchError(f"cannot read requirements file {redact_url(url)}: {why}")
    return answer.content


# A file's options that uv's requirement files do not take: what they chose is chosen,
# and uv warned of "unsupported options" in segfetch's file.
UV_IGNORES = frozenset({"--pre", "--prefer-binary"})


def pip_files(
    reqs: RequirementSet, local: dict[str, Path], folder: Path, installer: Installer | None
) -> list[str]:
    """The set as pip reads it, in files of ``folder``: the same lines, flattened, with the
    direct URLs on their verified files (``local``), so pip fetches nothing itself. uv in
    hash-checking mode is given no constraints: it refuses any not pinned with ``==``
    (pip ignores those of projects not in the set), and the pins were checked against them
    already (``check_pins``)."""
    lines, constraints = reqs.pip_lines(local)
    if installer is not None and installer.name == "uv" and reqs.require_hashes:
        constraints = []
    if installer is not None and installer.name == "uv":  # (it warns that it ignores them)
        lines = [line for line in lines if line not in UV_IGNORES]
    out = []
    for name, flag, text in (("requirements", "-r", lines), ("constraints", "-c", constraints)):
        if text:
            path = folder / f"{name}.txt"
            path.write_text("".join(line + "\n" for line in text), encoding="utf-8")
            out += [flag, str(path)]
    return out


def unlike_uv(reqs: RequirementSet) -> str | None:
    """What of the set uv installs otherwise than pip, if anything: an editable VCS URL
    (uv refuses it), a --find-links file that is a wheel or sdist, not a page (uv reads
    it as a page), pip's options on a requirement's line (uv refuses them)."""
    import shlex

    from segfetch.wheels.reqtext import ARCHIVES, VCS

    editable = [shlex.split(h[3:])[0] for h in reqs.handed if h.startswith("-e ")]
    if any(e.lower().startswith(VCS) for e in editable):
        return "uv installs no VCS URL in editable mode (-e)"
    if any(f.lower().endswith(ARCHIVES) and not is_http_url(f) for f in reqs.find_links):
        return "uv reads a --find-links file as an HTML page, not as the wheel or sdist it is"
    if any(" --config-settings" in h or " --global-option" in h for h in reqs.handed):
        return "uv takes no --config-settings or --global-option on a requirement's line"
    return None


def local_archives(reqs: RequirementSet) -> list[tuple[str, str, str]]:
    """(name, file: URL, sha256) of each local wheel or sdist the set names (a path, or
    `name @ file:...`): pip's freeze line of it carries its hash; uv records none."""
    import hashlib

    from segfetch.wheels.dists import parse_filename
    from segfetch.wheels.reqtext import ARCHIVES, local_path

    out = []
    for line in reqs.handed:
        text = line.split(" --")[0].strip()
        url = text.partition(" @ ")[2].split(";")[0].strip() if " @ " in text else ""
        path = file_url_path(url) if is_file_url(url) else Path(local_path(text) or "")
        parsed = parse_filename(path.name) if path.name.endswith(ARCHIVES) else None
        if parsed is not None and path.is_file():
            with path.open("rb") as f:  # (a large wheel: not all in memory at once)
                sha = hashlib.file_digest(f, "sha256").hexdigest()
            out.append((str(parsed.name), path.absolute().as_uri(), sha))
    return out


def plan_for_uv(
    reqs: RequirementSet,
    planned: Sequence[Planned],
    target: Target,
    folder: Path,
    installer: Installer | None,
) -> tuple[list[str], Installer] | None:
    """The plan's own files as uv's requirements, and uv told --no-deps, where uv would
    resolve the set otherwise than the target's pip did: pip before 23.3 does not normalize
    extras (PEP 685), so ``requests[use_chardet_on_py3]`` selects no chardet from a
    Provides-Extra ``use-chardet-on-py3``, and uv, which wants it, failed against the
    plan's files. None where uv takes the set as it is."""
    import dataclasses

    from packaging.requirements import Requirement

    from segfetch.wheels.lookahead import spelled_alike
    from segfetch.wheels.wanted import Wanted

    if installer is None or installer.name != "uv" or target.pip_normalizes_extras:
        return None
    if reqs.fully_pinned:  # uv is told --no-deps for it already
        return None
    extras = {e for w in (*reqs.wanted, *reqs.direct) for e in w.req.extras}
    if extras == spelled_alike(extras):
        return None

    def hashes(p: Planned) -> frozenset[str]:  # (uv checks a line's hash where it has one)
        if not reqs.require_hashes:
            return frozenset()
        return p.allowed or frozenset([p.sha256] if p.sha256 else [])

    pins = [
        Wanted(Requirement(f"{p.name}=={p.version}"), hashes(p)) for p in dict.fromkeys(planned)
    ]
    # The direct URLs' files are planned too, and uv finds them among its --find-links.
    pinned = dataclasses.replace(reqs, wanted=pins, direct=[], constraints=[])
    no_deps = installer if "--no-deps" in installer.uv_args else dataclasses.replace(
        installer, uv_args=(*installer.uv_args, "--no-deps")
    )  # fmt: skip
    (folder / "plan").mkdir(exist_ok=True)  # (beside the set's files, which stay as they are)
    return pip_files(pinned, {}, folder / "plan", no_deps), no_deps


def _resolver_options(reqs: RequirementSet, kept: list[str], install: bool) -> None:
    """The pip options given that change what pip chooses, for segfetch's own choices and
    for pip's resolver (``reqs.pip_options``; ``reqs.installed`` for an install into the
    target's environment)."""
    from segfetch.wheels.requirements import RESOLVER_FLAGS, RESOLVER_VALUED

    installed: list[str] = []
    words = iter(kept)  # as _PipOption keeps them: an option, then its value if it has one
    for word in words:
        if word in ("--target", "-t"):  # pip ignores what is installed there (not so for
            install = False  # --prefix, --root, --user: it looks at the environment's)
        if word in PIP_VALUED or word in INSTALL_VALUED:
            value = next(words, "")
            if word in RESOLVER_VALUED:
                reqs.add_pip_option(word, value)
            elif word in INSTALLED_VALUED:
                installed += [word, value]
        elif word in RESOLVER_FLAGS:
            reqs.add_pip_option(word)
        elif word in INSTALLED_FLAGS:
            installed.append(word)
    reqs.installed = installed if install else None


def refreshed(args: argparse.Namespace, reqs: RequirementSet) -> frozenset[str]:
    """The projects of pip's ``--refresh-package`` (pip 26.2: their pages are asked for
    again, never taken fresh from a cache), or ":all:"; read as pip reads the values:
    pip's configuration's first, names joined by commas, ":all:" for every project,
    ":none:" for none of those before. Pure."""
    from packaging.utils import canonicalize_name

    from segfetch.wheels.pipnet import command_line_values

    names: set[str] = set()
    given = command_line_values(reqs.pip_options, "--refresh-package")
    for value in [*getattr(args, "configured_refresh", []), *given]:
        if value.startswith("-"):  # (pip 26.3 shows a traceback)
            raise UsageError(f"--refresh-package takes project names, not {value!r}")
        for name in value.split(","):
            if name in (":all:", ":none:"):
                names = {name} - {":none:"}
            elif ":all:" not in names:
                names.add(canonicalize_name(name))
    return frozenset(names)


# pip's options that the resolving pip must know (pip_options: the command line's), and the
# pip that brought each
# (from pip's own wheels of each version)
_NEWER = {
    "--refresh-package": "26.2",
    "--all-releases": "26.0",
    "--only-final": "26.0",
    "--build-constraint": "25.3",
    "--no-proxy-env": "26.2",
}


def _add_script(reqs: RequirementSet, paths: list[str]) -> None:
    """The dependencies of ``--requirements-from-script`` (given once, as pip takes it), and
    its requires-python, for the target to be checked against (check_resolver_options)."""
    from segfetch.wheels.script import script_requirements

    if len(paths) > 1:
        raise UsageError("--requirements-from-script can only be given once (as in pip)")
    deps, reqs.script_python = script_requirements(paths[0])
    for text in deps:
        reqs.add_string(text, f"--requirements-from-script {paths[0]}")


def check_resolver_options(reqs: RequirementSet, target: Target, python: str) -> None:
    """An option the resolving pip is too old to know: refused before any download, as
    that pip refuses it."""
    from packaging.version import Version

    have = target.resolver_pip
    for option, since in _NEWER.items():
        if option in reqs.pip_options and have is not None and have < Version(since):
            raise UsageError(
                f"{option} needs pip {since}+, and the pip that resolves for {python} is "
                f"{have}: upgrade it ({python} -m pip install -U pip), or leave the option out"
            )
    from segfetch.wheels.select import python_ok, python_version_in

    script = reqs.script_python
    version = python_version_in(reqs.pip_options) or target.python_version  # (as pip)
    if script and not reqs.ignore_requires_python and not python_ok(script, version):
        raise SegfetchError(
            f"the script of --requirements-from-script requires Python {script}, not "
            f"{version} ({python}): choose another with --python"
        )


def check_foreign(reqs: RequirementSet, command: str, words: Sequence[str]) -> None:
    """pip's rules for files of another interpreter (--platform, --python-version, --abi,
    --implementation), applied before any download as pip applies them before it resolves:
    no sdist can be built for it, so --no-deps or --only-binary :all:; and an install goes
    only to --target (or is a --dry-run). ``words``: pip's options, given."""
    if not reqs.foreign_target:
        return
    if not (reqs.no_deps or (reqs.only_binary == {":all:"} and not reqs.no_binary)):
        raise PipRefusal(
            "--platform, --python-version, --abi and --implementation take --no-deps, or "
            "--only-binary :all: (and no --no-binary), as pip requires"
        )
    if command == "install" and not set(option_names(words)) & {"--target", "-t", "--dry-run"}:
        raise PipRefusal(
            "pip installs files for another interpreter (--platform, --python-version, "
            "--abi, --implementation) only with --target DIR, or as a --dry-run"
        )


def configured_constraints(
    args: argparse.Namespace, reqs: RequirementSet, pip_config: Callable[[], str]
) -> None:
    """The constraint files of the target pip's configuration (``constraint`` in pip.conf,
    PIP_CONSTRAINT; ``pip_config``: the lines of ``pip config list``): pip applies them to
    every install, so segfetch applies them too, and names them to its resolver, which runs
    without pip's configuration."""
    from segfetch.wheels.pipnet import constraints_in_config

    for path in constraints_in_config(pip_config(), args.command):
        if is_http_url(path):
            raise UsageError(
                f"pip's configuration names the constraints file {redact_url(path)}: segfetch "
                "reads constraints from disk only; save it and give it with -c"
            )
        reqs.add_constraint_file(Path(path))


def indexes(
    args: argparse.Namespace,
    reqs: RequirementSet,
    pip_config: Callable[[], str],
) -> list[str]:
    """As pip sees it: --index-url in place of its configured value, --extra-index-url
    added to the configured ones (pip's list options extend their configured default),
    then the requirement files' extra indexes; a requirement file's -i replaces them all,
    as pip reads the file after the command line."""
    from segfetch.wheels.pipnet import PYPI, config_flag
    from segfetch.wheels.target import index_urls_in_config

    if "--no-index" in args.pip_args or reqs.no_index:  # pip's: the --find-links alone
        return []
    if config_flag(pip_config(), "no-index", args.command):  # PIP_NO_INDEX=1, pip.conf's
        return []

    if reqs.index_url is not None:
        urls = [reqs.index_url, *reqs.extra_index_urls]
    else:
        configured_index, configured_extras = index_urls_in_config(pip_config(), args.command)
        index = args.index_url or configured_index
        extras = [*configured_extras, *args.extra_index_url, *reqs.extra_index_urls]
        urls = [index or PYPI, *dict.fromkeys(extras)]
    # A file: index (a folder of project folders, each with an index.html) is read from
    # disk, as pip reads it; its files are checked there, not copied.
    usable = [
        check_url(u, "index URL") if is_http_url(u) else u
        for u in urls
        if is_http_url(u) or is_file_url(u)
    ]
    if not usable:
        raise UsageError(f"no http(s) or file: index among {', '.join(map(redact_url, urls))}")
    for url in [redact_url(u) or repr(u) for u in urls if u not in usable and not args.quiet]:
        line = f"{url} is not an http(s) or file: index: segfetch does not read it"
        print(f"segfetch: warning: {line}", file=sys.stderr)
    return usable


def early_pages(reqs: RequirementSet, wanted: list[Wanted], python: str) -> list[str]:
    """The projects whose pages are fetched while the target's probe runs: those asked for
    with no marker, but not one the environment seems to hold in a version that fits
    where pip keeps it (pip then asks the index nothing: ``Lookahead.keeps``)."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion

    from segfetch.wheels.complete import upgrading
    from segfetch.wheels.dists import seen_installed

    held = seen_installed(python) if reqs.keeps_installed and not upgrading(reqs) else {}
    names, urls = [], reqs.linked()  # (a URL constraint's file is its page)
    for w in wanted:
        if canonicalize_name(w.req.name) in urls:
            continue
        have = held.get(canonicalize_name(w.req.name))
        try:
            kept = have is not None and w.req.specifier.contains(have, prereleases=True)
        except InvalidVersion:
            kept = False
        if w.req.marker is None and not kept:
            names.append(w.req.name)
    return list(dict.fromkeys(names))
