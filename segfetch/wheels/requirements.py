"""Requirement files and strings, as pip reads them. Pure: no network, no subprocess.

Handles comments, line continuations, ``${VAR}``, nested ``-r`` / ``-c``, ``--hash``,
``--index-url`` / ``--extra-index-url`` / ``--pre`` / ``--only-binary`` / ``--no-binary`` /
``--prefer-binary`` inside files, markers and extras. Editable, URL and path requirements
are refused: they are not on an index. pip's options that change which files it chooses
are kept too (``Choosing``), and so are the ``constraint`` files of pip's configuration
(``constraints_in_config``).
"""

from __future__ import annotations

import codecs
import contextlib
import locale
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from segfetch.errors import SegfetchError, UsageError
from segfetch.units import is_sha256

_ENV = re.compile(r"\$\{([A-Z0-9_]+)\}")
_COMMENT = re.compile(r"(^|\s+)#.*$")
# As pip's auto_decode, but UTF-32 first: a UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32-LE"),
    (codecs.BOM_UTF32_BE, "UTF-32-BE"),
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16-LE"),
    (codecs.BOM_UTF16_BE, "UTF-16-BE"),
)
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")  # PEP 263, as pip reads it
BOTH = frozenset({"binary", "source"})
# pip options that choose files for another interpreter than the target's: segfetch's own
# choice (tags, Requires-Python, markers) is then not pip's.
FOREIGN = frozenset({"--platform", "--python-version", "--implementation", "--abi"})
# pip options, with a value or without, that change which files pip's resolver chooses (or
# how it builds an sdist for its metadata): given on the command line, they go to the
# resolver too. Others (--target, --progress-bar, ...) are for the install only.
RESOLVER_VALUED = frozenset({"--only-binary", "--no-binary", "-C", "--config-settings"})
RESOLVER_VALUED |= FOREIGN | {"--global-option"}
RESOLVER_FLAGS = frozenset(
    {
        "--prefer-binary",
        "--no-deps",
        "--no-dependencies",
        "--ignore-requires-python",
        "--no-build-isolation",
        "--use-pep517",
        "--no-use-pep517",
        "--check-build-dependencies",
    }
)


class ConstraintConflict(SegfetchError):
    """A pinned requirement that a constraint excludes (pip: ResolutionImpossible)."""


@dataclass(frozen=True)
class Choosing:
    """How pip chooses among a project's files, beyond the requirement: ``--pre``, the
    formats ``--only-binary`` / ``--no-binary`` leave ("binary", "source"),
    ``--prefer-binary``, ``--ignore-requires-python``."""

    pre: bool = False
    formats: frozenset[str] = BOTH
    prefer_binary: bool = False
    ignore_requires_python: bool = False


@dataclass
class Wanted:
    req: Requirement
    hashes: frozenset[str] = frozenset()  # sha256 hex digests; any one may match
    where: str = "command line"  # file:line, for messages

    @property
    def pinned(self) -> str | None:
        """The version if the requirement is exactly one version (``==X``, no wildcard)."""
        specs = list(self.req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return specs[0].version
        return None


@dataclass
class RequirementSet:
    wanted: list[Wanted] = field(default_factory=list)
    constraints: list[Wanted] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    pre: bool = False
    # pip's format control, as pip keeps it: ":all:" or canonical names
    only_binary: set[str] = field(default_factory=set)
    no_binary: set[str] = field(default_factory=set)
    prefer_binary: bool = False
    ignore_requires_python: bool = False
    no_deps: bool = False
    foreign_target: bool = False  # --platform & co.: files for another interpreter
    # Options for pip's resolver that the requirement strings and files do not carry:
    # those given on the command line, and the constraint files of pip's configuration
    # (pip's resolver runs without its configuration).
    pip_options: list[str] = field(default_factory=list)

    @property
    def fully_pinned(self) -> bool:
        """True when no resolver is needed: every line is ``==`` (dependencies listed too),
        and the files are for the target interpreter (else only pip knows which fit)."""
        return bool(self.wanted) and all(w.pinned for w in self.wanted) and not self.foreign_target

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
        return Choosing(
            self.pre, self.formats(name), self.prefer_binary, self.ignore_requires_python
        )

    def add_pip_option(
        self, option: str, value: str | None = None, *, from_file: bool = False
    ) -> None:
        """A pip option that changes what pip chooses; from the command line it is kept
        in ``pip_options`` for the resolver (pip reads a requirement file's itself)."""
        if option == "--only-binary" and value is not None:
            _format_control(value, self.only_binary, self.no_binary)
        elif option == "--no-binary" and value is not None:
            _format_control(value, self.no_binary, self.only_binary)
        elif option == "--prefer-binary":
            self.prefer_binary = True
        elif option == "--pre":
            self.pre = True
        elif option in ("--no-deps", "--no-dependencies"):
            self.no_deps = True
        elif option == "--ignore-requires-python":
            self.ignore_requires_python = True
        elif option in FOREIGN:
            self.foreign_target = True
        if not from_file:
            self.pip_options += [option] if value is None else [option, value]

    def add_constraint_file(self, path: Path) -> None:
        """A constraint file of pip's configuration: read here, and named to the resolver."""
        self.add_file(path, constraint=True)
        self.pip_options += ["-c", str(path)]

    def constraints_for(self, name: str, environment: dict[str, str]) -> list[Wanted]:
        """The constraints on a project that apply to this marker environment."""
        key = canonicalize_name(name)
        return [
            c
            for c in self.constraints
            if canonicalize_name(c.req.name) == key
            and (c.req.marker is None or c.req.marker.evaluate({**environment, "extra": ""}))
        ]

    def check_pins(self, environment: dict[str, str]) -> None:
        """A pin that a constraint excludes is an error, as pip's resolver makes it."""
        for w in self.wanted:
            pinned = w.pinned
            if pinned is None:
                continue
            try:
                version: Version | str = Version(pinned)
            except InvalidVersion:
                version = pinned  # ===: compared as a string
            for c in self.constraints_for(w.req.name, environment):
                if not c.req.specifier.contains(version, prereleases=True):
                    raise ConstraintConflict(
                        f"cannot install {w.req} ({w.where}): the constraint "
                        f"{c.req} ({c.where}) excludes it"
                    )

    def add_string(self, text: str, where: str = "command line") -> None:
        self.wanted.append(_requirement(text, where))

    def add_file(
        self, path: Path, *, constraint: bool = False, _seen: tuple[Path, ...] = ()
    ) -> None:
        try:
            real = path.resolve()
            if real in _seen:
                raise UsageError(f"{path}: includes itself through -r/-c")
            raw = path.read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read requirements file {str(path)!r}: {exc.strerror}"
            ) from None
        text = decode(raw, path)
        for lineno, line in _logical_lines(text):
            self._add_line(line, f"{path}:{lineno}", path.parent, constraint, (*_seen, real))

    def _add_line(
        self, line: str, where: str, base: Path, constraint: bool, seen: tuple[Path, ...]
    ) -> None:
        line = _ENV.sub(lambda m: os.environ.get(m[1], m[0]), line)
        if not line.startswith("-"):
            req_text, _, options = _split_options(line)
            wanted = _requirement(req_text, where, options)
            (self.constraints if constraint else self.wanted).append(wanted)
            return
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        opt, value = _option(words, where)
        if opt in ("-r", "--requirement", "-c", "--constraint"):
            nested = base / value
            self.add_file(
                nested, constraint=constraint or opt in ("-c", "--constraint"), _seen=seen
            )
        elif opt in ("-i", "--index-url"):
            self.index_url = value
        elif opt == "--extra-index-url":
            self.extra_index_urls.append(value)
        elif opt in ("--pre", "--prefer-binary", "--only-binary", "--no-binary"):
            self.add_pip_option(opt, value or None, from_file=True)
        elif opt in ("-e", "--editable"):
            raise UsageError(
                f"{where}: editable requirements are not on an index; install them with pip"
            )
        else:
            raise UsageError(f"{where}: option {opt} is not supported in requirement files here")


def decode(raw: bytes, path: Path) -> str:
    """A requirements file's text, read as pip reads it: by its BOM, else by a coding line
    in its first two lines, else as the locale's encoding. UTF-8 is tried before the locale,
    as segfetch has always read these files."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return _decode(raw, encoding, path, len(bom))
    for line in raw.split(b"\n")[:2]:
        if line.startswith(b"#") and (m := _CODING.search(line)):
            return _decode(raw, m[1].decode("ascii"), path)
    for encoding in ("utf-8", locale.getpreferredencoding(False) or sys.getdefaultencoding()):
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return raw.decode(encoding)
    return _decode(raw, "UTF-8", path)  # to say where it is not UTF-8


def _decode(raw: bytes, encoding: str, path: Path, start: int = 0) -> str:
    try:
        return raw[start:].decode(encoding)
    except LookupError:
        raise UsageError(f"{path}: unknown encoding {encoding!r} in its coding line") from None
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {start + exc.start}"
        raise UsageError(f"{path}: not {encoding} text ({where}); save it as UTF-8") from None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with comments removed and continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def _split_options(line: str) -> tuple[str, str, list[str]]:
    """'foo==1 --hash=sha256:ab' -> ('foo==1', '', ['--hash=sha256:ab'])."""
    head, sep, tail = line.partition(" --")
    options = ("--" + tail).split() if sep else []
    return head.strip(), sep, options


def _option(words: list[str], where: str) -> tuple[str, str]:
    first = words[0]
    if first.startswith("--") and "=" in first:
        name, _, value = first.partition("=")
        return name, value
    if first in ("--pre", "--prefer-binary"):
        return first, ""
    if len(words) >= 2:
        return first, words[1]
    if first.startswith("-") and not first.startswith("--") and len(first) > 2:
        return first[:2], first[2:]  # -rfile.txt
    raise UsageError(f"{where}: option {first} needs a value")


def _requirement(text: str, where: str, options: list[str] | None = None) -> Wanted:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]  # packaging adds lines that draw a caret
        raise UsageError(f"{where}: not a requirement: {text!r} ({reason})") from None
    if req.url:
        raise UsageError(f"{where}: {req.name} @ URL is not on an index; install it with pip")
    hashes = set()
    words = iter(options or [])
    for opt in words:
        name, eq, value = opt.partition("=")
        if name != "--hash":
            raise UsageError(f"{where}: option {name} is not supported after a requirement")
        if not eq:
            value = next(words, "")
        algo, _, digest = value.partition(":")
        if algo != "sha256" or not is_sha256(digest):
            raise UsageError(f"{where}: --hash takes sha256:<64 hex digits>, not {value!r}")
        hashes.add(digest.lower())
    return Wanted(req, frozenset(hashes), where)


def _format_control(value: str, target: set[str], other: set[str]) -> None:
    """``--only-binary`` / ``--no-binary`` VALUE, as pip's handle_mutual_excludes."""
    for word in value.split(","):
        word = word.strip()
        if word == ":all:":
            target.clear()
            other.clear()
            target.add(":all:")
        elif word == ":none:":
            target.clear()
        elif word:
            key = canonicalize_name(word)
            other.discard(key)
            target.add(key)


def constraints_in_config(listing: str, command: str) -> list[str]:
    """The constraint files of pip's configuration, from the lines of ``pip config list``
    (``global.constraint='a.txt b.txt'``): as pip ranks them, the environment
    (PIP_CONSTRAINT) over the command's section over ``global``; the value is split at
    spaces, as pip splits a list option's."""
    found: dict[str, str] = {}
    for line in listing.splitlines():
        key, eq, value = line.partition("=")
        section, _, name = key.strip().rpartition(".")
        if eq and name == "constraint" and section in ("global", command, ":env:"):
            found[section] = value.strip().strip("'\"")
    for section in (":env:", command, "global"):
        if found.get(section):
            return found[section].split()
    return []
