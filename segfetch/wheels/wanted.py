"""A requirement or constraint as segfetch keeps it: its text, its ``--hash`` values, and
where it was written. Pure: no network.

A constraint on a URL (``name @ https://host/name-1.0-py3-none-any.whl`` in a constraints
file) makes pip take that project from that file alone wherever the set needs it, and fetch
nothing for a project the set does not need. Here the file stands in for the project's
index page (``Session.project``), so it is fetched through the engine only where the plan
or pip's resolver asks for the project; pip itself is told ``name==version`` (``for_pip``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from segfetch.units import link_hashes


@dataclass
class Wanted:
    req: Requirement
    hashes: frozenset[str] = frozenset()  # sha256 hex digests; any one may match
    where: str = "command line"  # file:line, for messages

    @property
    def url(self) -> str:
        """A direct requirement's URL, without its ``#fragment``."""
        return (self.req.url or "").partition("#")[0]

    @property
    def url_sha256(self) -> str | None:
        """The sha256 a direct URL's ``#sha256=`` fragment names, if any."""
        return link_hashes(self.req.url or "").get("sha256")

    @property
    def url_other_hash(self) -> str | None:
        """ "md5=hex" (or another of pip's link hashes) where the fragment names no sha256."""
        found = link_hashes(self.req.url or "")
        return None if "sha256" in found else next((f"{k}={v}" for k, v in found.items()), None)

    @property
    def filename(self) -> str:
        """A direct requirement's file name: the URL's last path segment."""
        return unquote(urlsplit(self.req.url or "").path.rsplit("/", 1)[-1])

    @property
    def pinned(self) -> str | None:
        """The version if the requirement is exactly one version (``==X``, no wildcard)."""
        specs = list(self.req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return specs[0].version
        return None

    @property
    def allowed(self) -> SpecifierSet:
        """The versions it allows: a URL's, its file's version alone (any, if the file's
        name says none)."""
        if self.req.url is None:
            return self.req.specifier
        try:
            if self.filename.endswith(".whl"):
                version = str(parse_wheel_filename(self.filename)[1])
            else:
                version = str(parse_sdist_filename(self.filename)[1])
        except (InvalidWheelFilename, InvalidSdistFilename):
            return SpecifierSet()
        return SpecifierSet(f"=={version}")

    @property
    def for_pip(self) -> str:
        """A constraint as pip is told it: one on a URL as ``name==version`` (the project's
        page then holds that one file, and pip fetches nothing itself)."""
        if self.req.url is None:
            return str(self.req)
        marker = f" ; {self.req.marker}" if self.req.marker else ""
        return f"{self.req.name}{self.allowed}{marker}"
