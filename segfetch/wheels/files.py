"""The files of a requirement set: what to fetch (``Planned``), fetching one through the
cache and the engine (``fetch_file``), and handing them over (``link_into``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from segfetch.engine.download import Progress, Result, Slots, download
from segfetch.engine.options import Options
from segfetch.engine.store import fsync_dir, fsync_path
from segfetch.errors import DiskError, DownloadError, HashMismatch, file_url_path
from segfetch.wheels import unhashed
from segfetch.wheels.cache import Cache, digest_of, sha256_of
from segfetch.wheels.dists import parse_filename, read_metadata
from segfetch.wheels.index import IndexFile
from segfetch.wheels.wanted import hash_option, kept_hash, sha256_only


@dataclass(frozen=True)
class Planned:
    """One file of the set: what to fetch and what its bytes must hash to."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str | None  # from the index, if it gave one
    allowed: frozenset[str] = frozenset()  # --hash options (kept_hash): the file matches one
    size: int | None = None
    other_hash: str | None = None  # "name=hex" from an index that gives no sha256


@dataclass(frozen=True)
class Fetched:
    planned: Planned
    path: Path
    sha256: str
    size: int
    result: Result | None  # None: it was in the cache


def wheel_metadata(path: Path) -> bytes | None:
    """METADATA from the wheel itself; None from a broken wheel (pip then says why)."""
    try:
        return read_metadata(path)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def planned_of(f: IndexFile, allowed: frozenset[str]) -> Planned:
    parsed = parse_filename(f.filename)
    if parsed is None:  # named against the spec: still fetched, as pip chose it
        name, version = canonicalize_name(f.filename.split("-")[0]), "?"
    else:
        name, version = parsed.name, str(parsed.version)
    return Planned(name, version, f.filename, f.url, f.sha256, allowed, f.size, f.other_hash)


async def fetch_file(
    p: Planned,
    cache: Cache,
    client: httpx.AsyncClient,
    slots: Slots,
    options: Options,
    progress: Callable[[Planned, Progress | None], None] | None,
    notice: Callable[[str], None] | None = None,
) -> Fetched:
    expected = cache_key(p)
    if expected is not None and sha256_only(p.allowed) and expected not in p.allowed:
        raise HashMismatch(
            f"{p.filename}: the index says sha256 {expected}, which no --hash allows",
            expected=" or ".join(sorted(p.allowed)),
            got=expected,
        )
    folder = (
        cache.path(expected, p.filename).parent
        if expected
        else cache.unverified_path(p.url, p.filename).parent
    )

    damaged = damage_notice(notice, p.filename)
    async with cache.lock(folder):
        if expected is not None and (
            hit := await cache.get(expected, p.filename, size=p.size, damaged=damaged)
        ):
            if not await hashes_allow(p, hit, expected):
                raise _unallowed(p, expected)
            if progress:
                progress(p, None)
            return Fetched(p, hit, expected, hit.stat().st_size, None)
        if expected is None and (kept := await _kept(p, cache, client, options, damaged)):
            if progress:
                progress(p, None)
            return kept
        dest = folder / p.filename
        report = (lambda pr: progress(p, pr)) if progress else None
        result = await download(
            p.url, dest, options, sha256=expected, client=client,
            slots=slots, progress=report, size=p.size,
        )  # fmt: skip
        if not await hashes_allow(p, dest, result.sha256):
            dest.unlink()
            raise _unallowed(p, result.sha256)
        if not expected and p.other_hash:
            await _check_other_hash(dest, p)
        path = dest if expected else cache.adopt(dest, result.sha256)
        cache.verified(path)
        if not expected:  # what the next run asks the server about (_kept)
            record = unhashed.Kept(result.sha256, result.size, *result.validators)
            unhashed.save(unhashed.record_path(cache, p.url, p.filename), p.url, record)
            cache.confirmed.add(p.url)
        return Fetched(p, path, result.sha256, result.size, result)


async def _kept(
    p: Planned,
    cache: Cache,
    client: httpx.AsyncClient,
    options: Options,
    damaged: Callable[[str], None],
) -> Fetched | None:
    """A file its page lists without a sha256 that an earlier run fetched: the copy in the
    cache (checked against the sha256 then computed), once one byte with the validators
    it came with shows the server still has that very file (unhashed.py). Else None: it
    is fetched, as when the server gives no answer (nothing vouches for the copy then)."""
    record = unhashed.load(unhashed.record_path(cache, p.url, p.filename))
    if record is None or p.size not in (None, record.size):
        return None
    hit = await cache.get_locked(record.sha256, p.filename, size=record.size, damaged=damaged)
    if hit is None or not await hashes_allow(p, hit, record.sha256):
        return None
    if p.url not in cache.confirmed:  # (pip's resolver, the look-ahead and the install
        verdict, _ = await unhashed.check(client, p.url, record, options.timeout)  # all ask)
        if verdict is not unhashed.Verdict.SAME:
            return None
        cache.confirmed.add(p.url)
    return Fetched(p, hit, record.sha256, record.size, None)


async def local_file(p: Planned) -> Fetched:
    """A file on disk (a ``file:`` index's, a --find-links folder's, a path given), held to
    the same hashes as a fetched one: the index's and any --hash. Never moved or removed."""
    path = file_url_path(p.url)
    try:
        digest, size = await sha256_of(path), path.stat().st_size
    except OSError as exc:
        raise DownloadError(f"{p.filename}: {exc.strerror or exc}: {path}") from None
    if p.sha256 is not None and digest != p.sha256:
        raise HashMismatch(f"{path}: sha256 {digest}, the index says {p.sha256}", p.sha256, digest)
    if not await hashes_allow(p, path, digest):
        raise _unallowed(p, digest, path)
    if not p.sha256 and p.other_hash:
        await _check_other_hash(path, p, remove=False)
    return Fetched(p, path, digest, size, None)


def cache_key(p: Planned) -> str | None:
    """The sha256 the file must have, known before it is fetched (the cache files it under
    that): the index's, else the one sha256 its --hash gives."""
    if p.sha256 is None and len(p.allowed) == 1 and sha256_only(p.allowed):
        return next(iter(p.allowed))
    return p.sha256


async def hashes_allow(p: Planned, path: Path, sha256: str) -> bool:
    """Whether the file meets its --hash options as pip checks them: any one of them (a
    sha384 or sha512 read from the file, only where no sha256 of them matched)."""
    if not p.allowed or sha256 in p.allowed:
        return True
    for algorithm in sorted({h.partition(":")[0] for h in p.allowed if ":" in h}):
        if kept_hash(algorithm, await digest_of(path, algorithm)) in p.allowed:
            return True
    return False


def _unallowed(p: Planned, sha256: str, path: Path | None = None) -> HashMismatch:
    want = " or ".join(hash_option(h).removeprefix("--hash=") for h in sorted(p.allowed))
    what = path or p.filename
    return HashMismatch(f"{what}: sha256 {sha256}, which matches no --hash given", want, sha256)


def damage_notice(notice: Callable[[str], None] | None, filename: str) -> Callable[[str], None]:
    """What the cache calls when a cached copy fails its check: one line for the user."""

    def damaged(why: str) -> None:
        if notice is not None:
            notice(f"{filename}: the cached copy is damaged ({why}); fetching it again")

    return damaged


def digest_matches(path: Path, sha256: str | None) -> bool:
    """A small file (a .metadata) against the sha256 it must have, if one is known."""
    return sha256 is None or hashlib.sha256(path.read_bytes()).hexdigest() == sha256


async def _check_other_hash(path: Path, p: Planned, remove: bool = True) -> None:
    """The hash the index gave instead of a sha256 (md5, sha512, ...), as pip checks it."""
    name, _, want = p.other_hash.partition("=") if p.other_hash else ("", "", "")
    got = await digest_of(path, name)
    if got != want:
        if remove:
            path.unlink()
        raise HashMismatch(
            f"{p.filename}: the index gives {name} {want}, the file has {got}",
            expected=want,
            got=got,
        )


def link_into(fetched: Sequence[Fetched], folder: Path, *, copy: bool = False) -> None:
    """Put the files in folder: a hard link where the file system allows, else a copy
    (``copy``: a copy always, for a folder that is the user's: a linked file edited there
    changed the cache's, and every other folder's link to it, as pip download's never
    do). (The cache checks its files' sha256 on every run: a linked file edited in the
    folder is never installed from the cache.)"""
    folder.mkdir(parents=True, exist_ok=True)
    for f in fetched:
        target = folder / f.planned.filename
        with contextlib.suppress(OSError):
            if os.path.samefile(f.path, target):
                continue  # there already (a rename between two links of it would do nothing)
        # A name of this writer's own: under one shared name, a second download into the
        # same folder removed the first one's copy and made its own there, which the first
        # then renamed into place half written.
        tmp = folder / f".segfetch-{os.getpid()}-{secrets.token_hex(4)}.tmp"  # (any name fits)
        try:
            linked = False
            if not copy:
                with contextlib.suppress(OSError):
                    os.link(f.path, tmp)
                    linked = True
            if not linked:
                shutil.copyfile(f.path, tmp)
                fsync_path(tmp)  # on disk before its name is the file's
            os.replace(tmp, target)
        except BaseException as exc:  # a full or read-only folder, a Ctrl-C: no copy left
            tmp.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            # (one line that says what to do: "free some space or choose another place")
            raise DiskError.from_os(exc, str(target)) from None
    fsync_dir(folder)  # the new names on disk: once for them all
