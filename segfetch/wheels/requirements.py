"""Requirement files and strings, as pip reads them. Pure: no network, no subprocess.

Handles comments, line continuations, ``${VAR}``, nested ``-r`` / ``-c``, ``--hash``,
``--index-url`` / ``--extra-index-url`` / ``--pre`` / ``--only-binary`` / ``--no-binary`` /
``--prefer-binary`` / ``--find-links`` / ``--require-hashes`` / ``--no-index`` inside files,
markers and extras; pip's hash-checking mode (``check_hashes``). A requirement on
an http(s) URL of a distribution (``name @ https://host/x.whl``, or the bare URL) is
``direct``: segfetch fetches it. Editables, local paths, ``file:`` and VCS URLs are
``handed`` to pip as they are. pip's options that change which files it chooses are kept
too (``Choosing``). ``pip_lines`` writes the set back out for pip.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from segfetch.errors import (
    RequirementError,
    SegfetchError,
    check_url,
    file_url_path,
    is_file_url,
    is_http_url,
    redact_url,
)
from segfetch.wheels.releases import OPTIONS as RELEASES
from segfetch.wheels.releases import Releases
from segfetch.wheels.reqtext import (
    ARCHIVES,
    VCS,
    check_url_hashes,
    decode,
    for_pip,
    format_control,
    local_path,
    logical_lines,
    name_of_url,
    options,
    split_options,
)
from segfetch.wheels.wanted import HASH_FORM, Wanted, hash_option, parse_hash

_ENV = re.compile(r"\$\{([A-Z0-9_]+)\}")
BOTH = frozenset({"binary", "source"})
# pip options that choose files for another interpreter than the target's: segfetch's own
# choice (tags, Requires-Python, markers) is then not pip's.
FOREIGN = frozenset({"--platform", "--python-version", "--implementation", "--abi"})
# pip options, with a value or without, that change which files pip's resolver chooses (or
# how it builds an sdist for its metadata): given on the command line, they go to the
# resolver too. Others (--target, --progress-bar, ...) are for the install only.
RESOLVER_VALUED = frozenset({"--only-binary", "--no-binary", "-C", "--config-settings"})
RESOLVER_VALUED |= FOREIGN | {"--global-option", "--refresh-package"}
RESOLVER_VALUED |= {*RELEASES, "--build-constraint"}  # (pip 26.0, 25.3)
RESOLVER_FLAGS = frozenset(
    {
        *("--prefer-binary", "--no-deps", "--no-dependencies", "--ignore-requires-python"),
        *("--no-build-isolation", "--use-pep517", "--no-use-pep517", "--check-build-dependencies"),
        "--no-proxy-env",  # (for the pip version check: check_resolver_options)
    }
)


def _holds(w: Wanted, environment: dict[str, str]) -> bool:
    """A line's marker holds there, no extra selected (dists.marker_applies: not loaded yet)."""
    return w.req.marker is None or w.req.marker.evaluate({**environment, "extra": ""})


class ConstraintConflict(SegfetchError):
    """A pinned requirement that a constraint excludes (pip: ResolutionImpossible)."""


class HashModeError(SegfetchError):
    """A set pip's hash-checking mode refuses (exit 1, as pip's)."""


@dataclass(frozen=True)
class Choosing:
    """How pip chooses among a project's files, beyond the requirement: ``--pre``, the
    formats ``--only-binary`` / ``--no-binary`` leave ("binary", "source"),
    ``--prefer-binary``, ``--ignore-requires-python``."""

    pre: bool | None = None  # pre-releases: True allowed, False never, None pip's default
    formats: frozenset[str] = BOTH
    prefer_binary: bool = False
    ignore_requires_python: bool = False


@dataclass
class RequirementSet:
    wanted: list[Wanted] = field(default_factory=list)  # from the indexes
    direct: list[Wanted] = field(default_factory=list)  # name @ https://.../file: fetched here
    handed: list[str] = field(default_factory=list)  # lines for pip itself (-e, paths, VCS)
    find_links: list[str] = field(default_factory=list)  # -f: folders and pages, as given
    file_options: list[str] = field(default_factory=list)  # --pre & co. of files, for pip
    constraints: list[Wanted] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    trusted_hosts: list[str] = field(default_factory=list)  # files' --trusted-host
    pre: bool = False
    releases: Releases = field(default_factory=Releases)  # --all-releases, --only-final
    before: datetime | None = None  # --uploaded-prior-to (wheels/uploaded.py)
    script_python: str | None = None  # --requirements-from-script's requires-python
    # pip's format control, as pip keeps it: ":all:" or canonical names
    only_binary: set[str] = field(default_factory=set)
    no_binary: set[str] = field(default_factory=set)
    prefer_binary: bool = False
    ignore_requires_python: bool = False
    no_deps: bool = False
    require_hashes: bool = False  # pip's hash-checking mode (see check_hashes)
    no_index: bool = False  # --no-index in a file: the --find-links alone, as pip
    foreign_target: bool = False  # --platform & co.: files for another interpreter
    # Options for pip's resolver that the requirement strings and files do not carry:
    # those given on the command line, and the constraint files of pip's configuration
    # (pip's resolver runs without its configuration).
    pip_options: list[str] = field(default_factory=list)
    configured: bool = False  # the constraint files of pip's configuration are read in
    # An install into the target's environment: its resolver sees what is installed there
    # (nothing is fetched for a requirement already satisfied), with these options (-U,
    # ...). None: resolved as if nothing were installed (download, --target DIR, ...).
    installed: list[str] | None = None
    # How a requirements file at a URL is read (cli/reqset.py gives one): -r URL, and a
    # file of such a file naming another, relative to its URL, as pip reads them.
    read_url: Callable[[str], bytes] | None = field(default=None, repr=False)

    @property
    def fully_pinned(self) -> bool:
        """True when no resolver is needed: every line is ``==`` (dependencies listed too),
        and the files are for the target interpreter (else only pip knows which fit)."""
        only_index = not (self.direct or self.handed or self.find_links or self.foreign_target)
        return bool(self.wanted) and only_index and all(w.pinned for w in self.wanted)

    @property
    def keeps_installed(self) -> bool:
        """An install that keeps what the environment holds where it fits, as pip does."""
        reinstall = {"--force-reinstall", "-I", "--ignore-installed"}
        return self.installed is not None and not reinstall & set(self.installed)

    @property
    def empty(self) -> bool:
        return not (self.wanted or self.direct or self.handed)

    @property
    def missing_links(self) -> list[str]:
        """The -f folders that are not there (pip ignores them, with a warning)."""
        local = [f for f in self.find_links if "://" not in f and not is_file_url(f)]
        return [f for f in local if not Path(f).exists()]

    def formats(self, name: str) -> frozenset[str]:
        """The formats pip takes for a project (pip's FormatControl.get_allowed_formats)."""
        key = canonicalize_name(name)
        if key in self.only_binary:
            return frozenset({"binary"})
        if key in self.no_binary:
            return frozenset({"source"})
        if ":all:" in self.only_binary:
            return frozenset({"binary"})
        if ":all:" in self.no_binary:
            return frozenset({"source"})
        return BOTH

    def choosing(self, name: str) -> Choosing:
        pre = self.releases.prereleases(name, self.pre)
        return Choosing(pre, self.formats(name), self.prefer_binary, self.ignore_requires_python)

    def add_pip_option(
        self, option: str, value: str | None = None, *, from_file: bool = False
    ) -> None:
        """A pip option that changes what pip chooses; from the command line it is kept
        in ``pip_options`` for the resolver (pip reads a requirement file's itself)."""
        if option == "--only-binary" and value is not None:
            format_control(value, self.only_binary, self.no_binary)
        elif option == "--no-binary" and value is not None:
            format_control(value, self.no_binary, self.only_binary)
        elif option == "--prefer-binary":
            self.prefer_binary = True
        elif option == "--pre":
            self.pre = True
        elif option in RELEASES and value is not None:
            self.releases.take(option, value)
        elif option in ("--no-deps", "--no-dependencies"):
            self.no_deps = True
        elif option == "--ignore-requires-python":
            self.ignore_requires_python = True
        elif option in FOREIGN:
            self.foreign_target = True
        if not from_file:
            self.pip_options += [option] if value is None else [option, value]

    def add_constraint_file(self, path: Path) -> None:
        """A constraint file of pip's configuration: read here, and given to pip in the
        set's own constraints file (``pip_lines``), a constraint on a URL as a version."""
        self.add_file(path, constraint=True)
        self.configured = True

    def linked(self, environment: dict[str, str] | None = None) -> dict[str, Wanted]:
        """The constraints on a URL, by project (``wanted.py``): those that apply to this
        marker environment, or (None) under any marker."""
        return {
            canonicalize_name(c.req.name): c
            for c in self.constraints
            if c.req.url and (environment is None or _holds(c, environment))
        }

    def wanted_in(self, environment: dict[str, str]) -> list[Wanted]:
        """The requirements whose marker holds in this marker environment (pip skips the
        others: a universal lock's line for another Python pins nothing here)."""
        return [w for w in self.wanted if _holds(w, environment)]

    def constraints_for(self, name: str, environment: dict[str, str]) -> list[Wanted]:
        """The constraints on a project that apply to this marker environment."""
        key = canonicalize_name(name)
        mine = [c for c in self.constraints if canonicalize_name(c.req.name) == key]
        return [c for c in mine if _holds(c, environment)]

    def check_pins(self, environment: dict[str, str]) -> None:
        """A pin that a constraint excludes, or two pins of one project to other versions,
        is an error, as pip's resolver makes it (a line whose marker fails asks nothing)."""
        pins: dict[str, tuple[Version | str, Wanted]] = {}
        for w in self.wanted_in(environment):
            pinned = w.pinned
            if pinned is None:
                continue
            try:
                version: Version | str = Version(pinned)
            except InvalidVersion:
                version = pinned  # ===: compared as a string
            other, was = pins.setdefault(canonicalize_name(w.req.name), (version, w))
            if other != version:
                raise ConstraintConflict(
                    f"cannot install {was.req} ({was.where}) and {w.req} ({w.where}): "
                    "they pin different versions; keep one"
                )
            for c in self.constraints_for(w.req.name, environment):
                if not c.allowed.contains(version, prereleases=True):
                    raise ConstraintConflict(
                        f"cannot install {w.req} ({w.where}): the constraint "
                        f"{c.req} ({c.where}) excludes it"
                    )

    def check_hashes(self, environment: dict[str, str] | None = None) -> None:
        """pip's hash-checking mode, on with --require-hashes or as soon as a requirement
        or constraint has a --hash: every requirement must then be pinned with ==, and
        have a hash (its own, a constraint's, or a direct URL's #sha256); an editable has
        no file to hash. Else stop, as pip does, before anything is fetched. A requirement
        whose marker does not hold is skipped, as pip skips it: before the target's marker
        ``environment`` is known, every one with a marker waits for it."""
        every = [*self.wanted, *self.direct, *self.constraints]
        if not self.require_hashes and not any(w.hashes for w in every):
            return
        self.require_hashes = True
        # pip's resolver too, for what it adds (a URL's #sha256 alone does not say it there)
        if "--require-hashes" not in self.pip_options:
            self.pip_options.append("--require-hashes")
        mode = "hash-checking mode (a requirement has --hash, or --require-hashes)"
        if environment is None:
            wanted = [w for w in self.wanted if w.req.marker is None]
        else:
            wanted = self.wanted_in(environment)
        unpinned = [w for w in wanted if not _pinned_for_pip(w.req)]
        if unpinned:
            raise HashModeError(
                f"{mode}: every requirement must be pinned with ==; these are not: "
                f"{_listed(unpinned)}"
            )
        hashed = {canonicalize_name(c.req.name) for c in self.constraints if c.hashes}
        unhashed = [
            w
            for w in [*wanted, *self.direct]
            if not (w.hashes or w.url_sha256 or canonicalize_name(w.req.name) in hashed)
        ]
        if unhashed:
            raise HashModeError(
                f"{mode}: every requirement needs a --hash; these have none: "
                f"{_listed(unhashed)} (`pip hash FILE` prints one; or remove every --hash)"
            )
        if editable := [h for h in self.handed if h.startswith("-e ")]:
            raise HashModeError(f"{mode}: {editable[0]} has no single file to hash")

    def add_string(self, text: str, where: str = "command line") -> None:
        self._add_requirement(text, where, [], constraint=False)

    def add_editable(self, path: str) -> None:
        """``-e PATH`` (or a VCS URL), for pip; a path made absolute from the cwd, where pip
        reads it from (the file pip is given lives elsewhere; uv reads from its folder)."""
        local = "://" not in path and not path.startswith((*VCS, "file:"))
        self.handed.append(f"-e {shlex.quote(os.path.abspath(path) if local else path)}")

    def _add_requirement(
        self, text: str, where: str, options: list[str], *, constraint: bool
    ) -> None:
        """A requirement line (its ``--hash`` options apart): from an index, direct, or
        for pip itself (pip's own reading of it: pip's ``install_req_from_line``)."""
        if not constraint and for_pip(text, options):
            path = local_path(text)
            if path is not None and not Path(path).exists():  # as pip says it
                raise RequirementError(
                    f"{where}: {text!r} looks like a path; {path!r} does not exist"
                )
            if path is not None:  # from the cwd, as for -e
                text = os.path.abspath(path) + text.strip()[len(path) :]
            self.handed.append(" ".join([text, *options]))
            return
        if is_http_url(text):  # a bare URL: the name is the file's
            check_url(text, f"URL ({where})")
            text = f"{name_of_url(text, where)} @ {text}"
        wanted = _requirement(text, where, options)
        if wanted.req.url is not None and is_http_url(wanted.req.url):
            check_url(wanted.req.url, f"URL ({where})")
            check_url_hashes(wanted.req.url, wanted.req.name, where)
        url = wanted.req.url or ""
        file = wanted.filename.endswith(ARCHIVES)
        if not url or (constraint and file and (is_http_url(url) or is_file_url(url))):
            (self.constraints if constraint else self.wanted).append(wanted)
        elif constraint:  # (pip would fetch it itself, behind segfetch's back)
            raise RequirementError(f"{where}: a constraint's URL must name a wheel or sdist: {url}")
        elif file and is_http_url(url):
            self.direct.append(wanted)
        else:  # file:, VCS, an http URL of no distribution file: pip fetches it
            self.handed.append(" ".join([text, *options]))

    def pip_lines(self, local: Mapping[str, Path]) -> tuple[list[str], list[str]]:
        """The set as requirement and constraint files' lines for pip: the index
        requirements and constraints with their hashes, the options of the files, the
        direct requirements on their verified files (``local``: by URL), the rest as given.
        """

        def line(w: Wanted, req: str) -> str:
            return " ".join([req, *(hash_option(h) for h in sorted(w.hashes))])

        # Folders (pip reads them itself), from the cwd: the file pip reads is elsewhere.
        # One that is not there, pip ignores (cli/reqset.py said so); uv took it for a URL.
        missing = self.missing_links  # (a look at the disk for each)
        there = [f for f in self.find_links if f not in missing and not is_http_url(f)]
        folders = [f if "://" in f else os.path.abspath(f) for f in there]
        lines = [*self.file_options, *(f"--find-links {shlex.quote(f)}" for f in folders)]
        lines += [line(w, str(w.req)) for w in self.wanted]
        for w in self.direct:
            url = local[w.url].resolve().as_uri()
            if sha := w.url_sha256:
                url += f"#sha256={sha}"
            extras = f"[{','.join(sorted(w.req.extras))}]" if w.req.extras else ""
            marker = f" ; {w.req.marker}" if w.req.marker else ""
            lines.append(line(w, f"{w.req.name}{extras} @ {url}{marker}"))
        lines += self.handed
        return lines, [line(c, c.for_pip) for c in self.constraints]

    def add_file(
        self, path: Path, *, constraint: bool = False, _seen: tuple[Path | str, ...] = ()
    ) -> None:
        try:
            real = path.resolve()
            if real in _seen:
                raise RequirementError(f"{path}: includes itself through -r/-c")
            raw = path.read_bytes()
        except OSError as exc:
            raise RequirementError(
                f"cannot read requirements file {str(path)!r}: {exc.strerror}"
            ) from None
        self._add_text(decode(raw, path), str(path), path.parent, constraint, (*_seen, real))

    def add_url(
        self, url: str, *, constraint: bool = False, _seen: tuple[Path | str, ...] = ()
    ) -> None:
        """A requirements file at an http(s) URL (``-r https://...``), or a ``file:`` URL
        (read from disk, as pip's get_file_content reads it)."""
        if is_file_url(url):
            self.add_file(file_url_path(url), constraint=constraint, _seen=_seen)
            return
        if url in _seen:
            raise RequirementError(f"{redact_url(url)}: includes itself through -r/-c")
        if self.read_url is None:
            raise RequirementError(f"{redact_url(url)}: give a file at a URL on the command line")
        raw = self.read_url(check_url(url, "requirements file URL"))
        self._add_text(decode(raw, Path(redact_url(url))), url, url, constraint, (*_seen, url))

    def _add_text(
        self, text: str, name: str, base: Path | str, constraint: bool, seen: tuple[Path | str, ...]
    ) -> None:
        name = redact_url(name)
        for lineno, line in logical_lines(text):
            self._add_line(line, f"{name}:{lineno}", base, constraint, seen)

    def _add_line(
        self,
        line: str,
        where: str,
        base: Path | str,
        constraint: bool,
        seen: tuple[Path | str, ...],
    ) -> None:
        """``base``: the folder of the file (a Path), or the URL of a file read from one."""
        line = _ENV.sub(lambda m: os.environ.get(m[1], m[0]), line)
        if not line.startswith("-"):
            req_text, _, after = split_options(line)
            self._add_requirement(req_text, where, after, constraint=constraint)
            return
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise RequirementError(f"{where}: {exc}") from None
        for opt, value in options(words, where):
            self._add_option(opt, value, where, base, constraint, seen)

    def _add_option(
        self,
        opt: str,
        value: str,
        where: str,
        base: Path | str,
        constraint: bool,
        seen: tuple[Path | str, ...],
    ) -> None:
        includes = opt in ("-r", "--requirement", "-c", "--constraint")
        constraint |= opt in ("-c", "--constraint")
        if isinstance(base, str) and includes:  # relative to the URL, as pip joins it
            self.add_url(urljoin(base, value), constraint=constraint, _seen=seen)
            return
        if includes and (is_http_url(value) or is_file_url(value)):
            self.add_url(value, constraint=constraint, _seen=seen)
            return
        base = base if isinstance(base, Path) else Path()  # (a URL's -f folder: from here)
        if includes:
            self.add_file(base / value, constraint=constraint, _seen=seen)
        elif opt in ("-i", "--index-url"):  # as pip: in place of every index before it
            self.index_url = value
            self.extra_index_urls.clear()
        elif opt == "--extra-index-url":
            self.extra_index_urls.append(value)
        elif opt in ("--pre", "--prefer-binary", "--only-binary", "--no-binary"):
            self.add_pip_option(opt, value or None, from_file=True)
            self.file_options.append(f"{opt} {shlex.quote(value)}" if value else opt)
        elif opt == "--require-hashes":  # not for pip's files: their hashes say it there
            self.require_hashes = True
        elif opt == "--no-index":  # not for pip's files: pip would pass segfetch's index by
            self.no_index = True
        elif opt in ("-f", "--find-links"):  # a folder beside the file, as pip takes it
            self.find_links.append(str(base / value) if (base / value).exists() else value)
        elif opt in ("-e", "--editable") and constraint:  # (pip's words, and exit code)
            raise SegfetchError(f"{where}: editable requirements are not allowed as constraints")
        elif opt in ("-e", "--editable"):
            self.add_editable(value)
        elif opt == "--trusted-host":
            self.trusted_hosts.append(value)
        elif opt == "--use-feature":  # pip's own features (truststore, ...): pip's business
            pass
        elif opt == "--hash":  # (pip ignores it there, with a warning: its check lost)
            raise RequirementError(
                f"{where}: --hash goes on its requirement's line (or a \\ after it)"
            )
        else:
            raise RequirementError(
                f"{where}: option {opt} is not supported in requirement files here"
            )


def _requirement(text: str, where: str, options: list[str] | None = None) -> Wanted:
    try:
        req = Requirement(text)
    except (InvalidRequirement, ValueError) as exc:  # (a URL's bad IP address: ValueError)
        reason = str(exc).splitlines()[0]  # packaging adds lines that draw a caret
        if unset := _ENV.search(text):  # (pip leaves ${VAR} as it is too, then finds nothing)
            reason = f"${{{unset[1]}}} is not set in the environment"
        raise RequirementError(f"{where}: not a requirement: {text!r} ({reason})") from None
    hashes = set()
    words = iter(options or [])
    for opt in words:
        name, eq, value = opt.partition("=")
        if name != "--hash":
            alone = name not in ("--config-settings", "-C", "--global-option")  # pip: per req.
            why = f"put {name} on {'a line of its own' if alone else 'the command line'}"
            raise RequirementError(f"{where}: only --hash goes after a requirement; {why}")
        if not eq:
            value = next(words, "")
        if (kept := parse_hash(value)) is None:
            raise RequirementError(f"{where}: --hash takes {HASH_FORM}, not {value!r}")
        hashes.add(kept)
    return Wanted(req, frozenset(hashes), where)


def _pinned_for_pip(req: Requirement) -> bool:
    """pip's is_pinned: one specifier, == or === (a wildcard counts)."""
    specs = list(req.specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===")


def _listed(wanted: list[Wanted]) -> str:
    return ", ".join(f"{w.req} ({w.where})" for w in wanted)
