"""Choosing the file pip would choose for a requirement. Pure: tags and versions in, file out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from segfetch.errors import SegfetchError
from segfetch.wheels.dists import parse_filename
from segfetch.wheels.index import IndexFile
from segfetch.wheels.requirements import Choosing
from segfetch.wheels.target import Target
from segfetch.wheels.wanted import Wanted, sha256_only


class NoMatch(SegfetchError):
    """No file on the index fits the requirement and the target."""


@dataclass(frozen=True)
class Candidate:
    file: IndexFile
    version: Version
    rank: int | None  # tag rank for a wheel; None for an sdist


def choose(
    wanted: Wanted,
    files: Sequence[IndexFile],
    target: Target,
    *,
    pre: bool = False,
    how: Choosing | None = None,
) -> Candidate:
    """The highest allowed version; of it, the best-ranked wheel, else its sdist (as pip).
    ``how``: pip's options that change the choice (``pre`` is its ``--pre`` alone)."""
    how = how or Choosing(pre=pre or None)
    found = candidates(wanted, files, target, how=how)
    # Newest version first; within it a wheel (lowest rank, then highest build tag) before
    # the sdist. With --prefer-binary any wheel before any sdist (pip's binary_preference).
    # Of equals, the last listed (the last index's): pip's resolver takes its candidates
    # from the end of the finder's sorted list.
    return max(
        reversed(found),
        key=lambda c: (
            how.prefer_binary and c.rank is not None,
            c.version,
            c.rank is not None,
            -(c.rank or 0),
            _build_tag(c.file.filename),
        ),
    )


def _build_tag(filename: str) -> tuple[int, str] | tuple[()]:
    if not filename.endswith(".whl"):
        return ()
    try:
        return parse_wheel_filename(filename)[2]
    except InvalidWheelFilename:
        return ()


def candidates(
    wanted: Wanted, files: Sequence[IndexFile], target: Target, *, how: Choosing | None = None
) -> list[Candidate]:
    """Every file pip may choose for the requirement and the target (NoMatch if none)."""
    how = how or Choosing()
    name = canonicalize_name(wanted.req.name)
    versions_seen: set[Version] = set()
    tags_seen: set[str] = set()
    python_refused: set[str] = set()  # Requires-Python of matching files the target fails
    unwanted: set[str] = set()  # kinds of matching files --only-binary / --no-binary refuse
    found = []
    for f in files:
        parsed = parse_filename(f.filename)
        if parsed is None or parsed.name != name:
            continue
        version, tags = parsed.version, parsed.tags
        versions_seen.add(version)
        if not wanted.req.specifier.contains(version, prereleases=True):
            continue
        if not how.ignore_requires_python and not python_ok(
            f.requires_python, target.python_version
        ):
            python_refused.add(f.requires_python or "")
            continue
        if sha256_only(wanted.hashes) and f.sha256 is not None and f.sha256 not in wanted.hashes:
            continue
        if (kind := "source" if tags is None else "binary") not in how.formats:
            unwanted.add(kind)
            continue  # --only-binary / --no-binary
        if tags is None:
            found.append(Candidate(f, version, None))
            continue
        tags_seen.update(tags)
        rank = target.rank(tags)
        if rank is not None:
            found.append(Candidate(f, version, rank))
    # As packaging's SpecifierSet.filter (and so pip): pre-releases only when asked for,
    # when the specifier names one, or when nothing else fits; never with --only-final.
    if how.pre is False:
        found = [c for c in found if not c.version.is_prerelease]
    elif not (how.pre or wanted.req.specifier.prereleases):
        finals = [c for c in found if not c.version.is_prerelease]
        found = finals or found
    # PEP 592 as pip reads it: a yanked file only where every file left is yanked and the
    # specifier pins (any `==` without a wildcard, or `===`): `==1.1.0` pins 1.1, too.
    if not (_pins(wanted) and all(c.file.yanked is not None for c in found)):
        found = [c for c in found if c.file.yanked is None]
    if not found:
        why = _why_none(wanted, versions_seen, tags_seen, target, python_refused, unwanted)
        raise NoMatch(why)
    return found


def _pins(wanted: Wanted) -> bool:
    """pip's test of a pin for yanked files (its factory's ``is_pinned``)."""
    return any(
        s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*"))
        for s in wanted.req.specifier
    )


def for_python_version(
    options: Sequence[str],
) -> Callable[[Sequence[IndexFile]], list[IndexFile]] | None:
    """With pip's ``--python-version`` among ``options``, pip download checks
    Requires-Python against that version, but the resolver here (pip install --dry-run)
    against the Python running it. The pages its local index gives it are then cut to the
    files for that version, with no Requires-Python left (pip is given
    --ignore-requires-python for the metadata's). None: nothing to cut."""
    if (version := python_version_in(options)) is None:
        return None

    def cut(files: Sequence[IndexFile]) -> list[IndexFile]:
        fit = [f for f in files if python_ok(f.requires_python, version)]
        return [replace(f, requires_python=None) for f in fit]

    return cut


def python_version_in(options: Sequence[str]) -> Version | None:
    """pip's ``--python-version`` among ``options`` (not with --ignore-requires-python)."""
    if "--python-version" not in options or "--ignore-requires-python" in options:
        return None
    value = options[options.index("--python-version") + 1]  # "3", "3.7", "3.7.3" or "37"
    try:
        return Version(value if "." in value else f"{value[0]}.{value[1:]}".rstrip("."))
    except (InvalidVersion, IndexError):
        return None  # pip says what is wrong with it


def misfit(filename: str, metadata: bytes | None, version: Version) -> str | None:
    """Why a file whose page gives no Requires-Python does not fit ``version``, by its
    METADATA's (pip's resolver checks both); None where it fits."""
    if metadata is None:
        return None
    value = BytesHeaderParser().parsebytes(metadata).get("Requires-Python")
    rp = str(value).strip() if value is not None else None
    if python_ok(rp, version):
        return None
    return f"{filename} requires Python {rp}, not {version}"


def refuse_misfits(found: Sequence[str | None]) -> None:
    """One line for the files that do not fit (``misfit``'s reasons), not files the version
    cannot install, with exit 0. (pip download would take an older release instead.)"""
    if why := sorted(w for w in found if w):
        raise SegfetchError(
            f"{'; '.join(why)}: the index's pages do not say which Python a file needs, "
            "so the newest was taken; pin an older release that fits"
        )


def python_ok(requires_python: str | None, version: Version) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores a malformed requires-python too


def _why_none(
    wanted: Wanted,
    versions: set[Version],
    tags: set[str],
    target: Target,
    python_refused: set[str],
    unwanted: set[str],
) -> str:
    req = str(wanted.req)
    if not versions:
        return f"{wanted.where}: the index has no files for {wanted.req.name}"
    matching = [v for v in versions if wanted.req.specifier.contains(v, prereleases=True)]
    if not matching:
        newest = ", ".join(str(v) for v in sorted(versions)[-5:])
        name = wanted.req.name
        return f"{wanted.where}: no version of {name} matches {req!r} (the index has {newest})"
    if sha256_only(wanted.hashes):
        return f"{wanted.where}: no file of {req} has the sha256 given with --hash"
    if python_refused and not tags:  # every matching file asks for another Python
        needs = " or ".join(sorted(python_refused))
        return (
            f"{wanted.where}: {req} requires Python {needs} (its Requires-Python), not "
            f"{target.python_version}: ask for an older version, or use another Python"
        )
    if not tags and "binary" in unwanted:  # (its wheels: refused)
        return f"{wanted.where}: the index has only wheels of {req}, and --no-binary refuses them"
    if not tags:  # (its matching versions have files: none of them a wheel)
        why = "none is taken here (--only-binary, or yanked)"
        return f"{wanted.where}: the index has only sdists of {req}, and {why}"
    ours = ", ".join(target.tags[:3])
    theirs = ", ".join(sorted(tags)[:6])
    return (
        f"{wanted.where}: no file of {req} fits Python {target.python_version} "
        f"(it accepts {ours}, ...; the index has wheels for {theirs})"
    )
