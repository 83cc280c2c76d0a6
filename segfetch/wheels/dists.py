"""Facts about distribution files: what a wheel's or sdist's name says (and so which projects
a local folder holds), a wheel's METADATA, whether a requirement's marker holds, what a
venv's folder names say it holds. No network.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from email.parser import BytesParser
from pathlib import Path
from typing import NamedTuple

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from segfetch.errors import file_url_path, is_file_url
from segfetch.wheels.target import Target

_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")


class DistName(NamedTuple):
    """What a distribution's file name says."""

    name: NormalizedName
    version: Version
    tags: frozenset[str] | None  # a wheel's tags, as "py3-none-any"; None for an sdist


def parse_filename(filename: str) -> DistName | None:
    """Name, version and (for a wheel) tags from a wheel or sdist file name; None for any
    other file, or a name that breaks the spec (an index may list anything)."""
    try:
        if filename.endswith(".whl"):
            name, version, _, tags = parse_wheel_filename(filename)
            return DistName(name, version, frozenset(str(t) for t in tags))
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return DistName(name, version, None)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def held_locally(places: Sequence[str]) -> set[str] | None:
    """The projects with a file in the local --find-links places, which pip reads itself
    (None: one that may hold any, a page or a place that cannot be read)."""
    held: set[str] = set()
    for place in places:
        path = file_url_path(place) if is_file_url(place) else Path(place)
        try:
            names = [p.name for p in path.iterdir()] if path.is_dir() else [path.name]
        except OSError:
            return None
        parsed = [parse_filename(n) for n in names]
        if not path.is_dir() and parsed[0] is None:
            return None
        held |= {d.name for d in parsed if d is not None}
    return held


def read_metadata(wheel: Path) -> bytes:
    """The METADATA of a wheel: its one top-level ``*.dist-info/METADATA``.

    Raises ValueError when there is not exactly one (a wheel with two is as broken as one
    with none), zipfile.BadZipFile when the file is no zip, OSError when it cannot be read.
    """
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if _METADATA.fullmatch(n)]
        if len(names) != 1:
            raise ValueError(f"{wheel.name}: expected one .dist-info/METADATA, found {names}")
        return zf.read(names[0])


def marker_applies(
    marker: Marker | None, environment: Mapping[str, str], extras: Iterable[str] = ()
) -> bool:
    """Whether a requirement with this marker is for the interpreter with this marker
    environment (a target's): with no extra selected, as pip reads a requirement line, or
    with any one of ``extras`` (a dependency of ``pkg[extra]``)."""
    if marker is None:
        return True
    return any(marker.evaluate({**environment, "extra": e}) for e in ("", *extras))


def dependencies(metadata: bytes, target: Target, extras: Iterable[str] = ()) -> list[Requirement]:
    """The dependencies a METADATA declares for the target, with these extras selected."""
    message = BytesParser().parsebytes(metadata, headersonly=True)
    deps = []
    for line in message.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if marker_applies(req.marker, target.markers, extras):
            deps.append(req)
    return deps


def requirements_of(metadata: bytes, target: Target) -> list[str]:
    """Names of the dependencies a METADATA declares for the target (no extras)."""
    return [req.name for req in dependencies(metadata, target)]


def seen_installed(python: str) -> dict[NormalizedName, str]:
    """What the virtual environment of ``python`` holds, by version, as its site-packages'
    folder names say (``name-version.dist-info``): read in a moment, a guess made before
    the target's probe answers. Empty where ``python`` is not a venv's."""
    prefix = Path(os.path.abspath(python)).parent.parent  # (not resolved: a venv's links out)
    if not (prefix / "pyvenv.cfg").is_file():
        return {}
    found: dict[NormalizedName, str] = {}
    for site in prefix.glob("lib/python*/site-packages"):
        for entry in os.listdir(site):
            if entry.endswith(".dist-info"):
                name, _, version = entry.removesuffix(".dist-info").partition("-")
                found[canonicalize_name(name)] = version
    return found
