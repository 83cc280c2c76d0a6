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

from segfetch.units import is_digest, link_hashes

STRONG_HASHES = ("sha256", "sha384", "sha512")  # what pip's --hash takes
HASH_FORM = "sha256:, sha384: or sha512: and the digest's hex digits"


def kept_hash(algorithm: str, digest: str) -> str:
    """A --hash value as segfetch keeps it: a sha256 as its hex digits alone (as index pages
    give it and the cache files it), pip's other two as "sha512:hex"."""
    digest = digest.lower()
    return digest if algorithm == "sha256" else f"{algorithm}:{digest}"


def parse_hash(value: str) -> str | None:
    """A --hash value ("sha512:hex") as kept_hash keeps it; None where pip refuses it."""
    algorithm, _, digest = value.partition(":")
    ok = algorithm in STRONG_HASHES and is_digest(algorithm, digest)
    return kept_hash(algorithm, digest) if ok else None


def hash_option(kept: str) -> str:
    """'--hash=sha256:hex' back from kept_hash's value, for pip's requirement lines."""
    return f"--hash={kept}" if ":" in kept else f"--hash=sha256:{kept}"


def sha256_only(hashes: frozenset[str]) -> bool:
    """Whether hashes are all sha256s (and some): then the index's sha256 for a file tells
    whether it may match; a sha384 or sha512 only the file's own bytes can tell."""
    return bool(hashes) and not any(":" in h for h in hashes)


@dataclass
class Wanted:
    req: Requirement
    hashes: frozenset[str] = frozenset()  # kept_hash values; any one may match
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
