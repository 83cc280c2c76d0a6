"""The simple index's folder: which wheels and sdists it holds (name, version, sha256,
Requires-Python, metadata digest), their files and their PEP 658 .metadata, and how the index
answers (IndexOptions). The pages themselves are in pages.py."""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import formatdate
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from segfetch.testing.emulator.files import Source, memory_source
from segfetch.testing.wheelmaker import metadata_of

HASHES_IN = frozenset({"hashes", "fragment", "both", "none"})


@dataclass(frozen=True)
class IndexOptions:
    """How the simple index (`Emulator(index=folder)`) answers; each knob mimics a real index."""

    json: bool = True  # answer PEP 691 JSON when the client's Accept prefers it
    html: bool = True  # answer PEP 503 HTML
    metadata: bool = True  # serve <file URL>.metadata (PEP 658) for wheels
    # False: like the proxy that drops the key; the .metadata files are still served.
    advertise_metadata: bool = True
    yanked: Mapping[str, str] = field(default_factory=dict)  # filename -> reason (PEP 592)
    hashes_in: str = "both"  # sha256 in JSON `hashes`, in the URL `#sha256=`, both, or none
    absolute_urls: bool = False  # http://127.0.0.1:PORT/files/... rather than ../../files/...

    def __post_init__(self) -> None:
        if not (self.json or self.html):
            raise ValueError("IndexOptions: enable json, html or both")
        if self.hashes_in not in HASHES_IN:
            raise ValueError(f"hashes_in must be one of {sorted(HASHES_IN)}")


@dataclass(frozen=True)
class IndexFile:
    filename: str
    project: str  # PEP 503 normalized
    version: Version
    size: int
    sha256: str
    requires_python: str | None
    metadata_sha256: str | None  # wheels only
    upload_time: str = ""  # PEP 700, in JSON pages: the file's mtime, as ISO 8601 UTC


def normalize(name: str) -> str:
    """PEP 503 project name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def describe(p: Path, size: int) -> IndexFile | None:
    """What the index says about one file; None if it is not a wheel or sdist."""
    rp: str | None = None
    md_sha: str | None = None
    try:
        if p.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(p.name)
            try:
                md = metadata_of(p)
            except (OSError, ValueError, zipfile.BadZipFile):
                pass  # listed, but without metadata: a broken wheel is a fault worth serving
            else:
                md_sha = hashlib.sha256(md).hexdigest()
                value = BytesHeaderParser().parsebytes(md).get("Requires-Python")
                rp = str(value).strip() if value is not None else None
        else:
            name, version = parse_sdist_filename(p.name)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
    with open(p, "rb") as f:
        h = hashlib.file_digest(f, "sha256")
    mtime = datetime.fromtimestamp(p.stat().st_mtime, UTC).isoformat().replace("+00:00", "Z")
    return IndexFile(p.name, str(name), version, size, h.hexdigest(), rp, md_sha, mtime)


class IndexFolder:
    """The files directly in one folder (no sub-folders, no dot files), read afresh on every
    listing so that files may be added while serving; digests are cached by (name, size,
    mtime)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._cache: dict[tuple[str, int, int], IndexFile | None] = {}

    def path(self, filename: str) -> Path | None:
        if "/" in filename or filename.startswith("."):
            return None
        p = self.folder / filename
        return p if p.is_file() else None

    def lookup(self, path: str, metadata: bool) -> Path | Source | None:
        """What /files/<name> serves: the file, or with `metadata` the METADATA of a wheel for
        /files/<wheel>.metadata."""
        if not path.startswith("/files/"):
            return None
        name = path.removeprefix("/files/")
        if metadata and name.endswith(".whl.metadata"):
            return self.metadata_source(name.removesuffix(".metadata"))
        return self.path(name)

    def metadata_source(self, filename: str) -> Source | None:
        p = self.path(filename)
        if p is None:
            return None
        try:
            data = metadata_of(p)
        except (OSError, ValueError, zipfile.BadZipFile):
            return None
        tag = hashlib.sha256(data).hexdigest()[:24]
        date = formatdate(p.stat().st_mtime, usegmt=True)
        return memory_source(data, f'"{tag}"', date)

    def files(self) -> list[IndexFile]:
        """Every wheel and sdist in the folder. Blocking (hashes new files): run in a thread."""
        out = []
        for p in sorted(self.folder.iterdir()):
            if p.name.startswith(".") or not p.is_file():
                continue
            st = p.stat()
            key = (p.name, st.st_size, st.st_mtime_ns)
            if key not in self._cache:
                self._cache[key] = describe(p, st.st_size)
            if (info := self._cache[key]) is not None:
                out.append(info)
        return out
