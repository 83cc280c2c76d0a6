"""What the emulator serves: one file at one version as a Source (size, validators, bytes on
demand), from synthetic bytes, in-memory bytes or a file on disk.

A synthetic file is made of 4 KiB blocks: block i is (i, version) as two big-endian u64, then a
tail drawn from (seed, path, version). A slice of a 1 GiB file costs only the slice.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

BLOCK = 4096
_BLOCK_HEAD = struct.Struct(">QQ")  # block index, version
_EPOCH = 1_700_000_000  # Last-Modified of version 0 of in-memory and synthetic files


@dataclass(frozen=True)
class SyntheticFile:
    size: int


@dataclass(frozen=True)
class Source:
    """One file at one version: size, validators, and bytes [a, b) on demand."""

    size: int
    etag: str
    last_modified: str
    read: Callable[[int, int], bytes]


Spec = SyntheticFile | bytes | Path
# Where paths that are neither in `files` nor below `root` are looked up: a file to serve, a
# ready Source, or None (not found).
Fallback = Callable[[str], Path | Source | None]


def synthetic_bytes(a: int, b: int, version: int, tail: bytes) -> bytes:
    """Bytes [a, b) of a synthetic file: block i is (i, version) as two big-endian u64, then
    `tail`. Built per call, so a slice of a 1 GiB file costs only the slice."""
    if a >= b:
        return b""
    first, last = a // BLOCK, (b - 1) // BLOCK
    data = b"".join(_BLOCK_HEAD.pack(i, version) + tail for i in range(first, last + 1))
    return data[a - first * BLOCK : b - first * BLOCK]


def _pread(path: Path, a: int, b: int) -> bytes:
    # Blocking, but one chunk (<= 64 KiB) from the page cache: not worth a thread.
    with open(path, "rb") as f:
        return os.pread(f.fileno(), max(0, b - a), a)


def memory_source(data: bytes, etag: str, last_modified: str) -> Source:
    return Source(len(data), etag, last_modified, lambda a, b: data[a:b])


def digest(src: Source) -> str:
    """sha256 of the whole source, read 1 MiB at a time."""
    h = hashlib.sha256()
    for a in range(0, src.size, 1 << 20):
        h.update(src.read(a, a + (1 << 20)))
    return h.hexdigest()


class Contents:
    """The files an emulator serves by path: `files` first, then files below `root`, then
    `fallback` (the simple index's /files/). Synthetic tails and digests are cached."""

    def __init__(
        self, files: Mapping[str, Spec], root: Path | None, fallback: Fallback | None = None
    ) -> None:
        self._files = dict(files)
        self._root = root.resolve() if root is not None else None
        self._fallback = fallback
        self._tails: dict[tuple[int, str, int], bytes] = {}
        self._digests: dict[tuple[int, str, int], str] = {}

    def is_synthetic(self, path: str) -> bool:
        """Only synthetic files have versions other than 0 (the `change` fault)."""
        return isinstance(self._files.get(path), SyntheticFile)

    def source(self, path: str, version: int, seed: int) -> Source | None:
        tag = hashlib.sha256(f"{seed}:{path}:{version}".encode()).hexdigest()[:24]
        date = formatdate(_EPOCH + 86400 * version, usegmt=True)
        spec: Spec | Source | None = self._files.get(path)
        if spec is None and self._root is not None:
            p = (self._root / path.lstrip("/")).resolve()
            if p.is_relative_to(self._root) and p.is_file():
                spec = p
        if spec is None and self._fallback is not None:
            spec = self._fallback(path)
        if isinstance(spec, Source):
            return spec
        if isinstance(spec, SyntheticFile):
            key, size = (seed, path, version), spec.size
            if key not in self._tails:
                rng = random.Random(f"{seed}:{path}:{version}")
                self._tails[key] = rng.randbytes(BLOCK - _BLOCK_HEAD.size)
            tail = self._tails[key]
            return Source(
                size, f'"{tag}"', date, lambda a, b: synthetic_bytes(a, min(b, size), version, tail)
            )
        if isinstance(spec, bytes):
            return memory_source(spec, f'"{tag}"', date)
        if isinstance(spec, Path):
            st, disk = spec.stat(), spec
            dtag = hashlib.sha256(f"{tag}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
            date = formatdate(st.st_mtime, usegmt=True)
            return Source(st.st_size, f'"{dtag[:24]}"', date, lambda a, b: _pread(disk, a, b))
        return None

    def must(self, path: str, version: int, seed: int) -> Source:
        src = self.source(path, version, seed)
        if src is None:
            raise KeyError(path)
        return src

    def sha256(self, path: str, version: int, seed: int) -> str:
        """Cached for synthetic files only: the others may change on disk."""
        src = self.must(path, version, seed)
        key = (seed, path, version)
        if key not in self._digests or not self.is_synthetic(path):
            self._digests[key] = digest(src)
        return self._digests[key]
