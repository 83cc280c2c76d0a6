"""Requirement sets -> files -> verified files in the cache -> pip.

Fully pinned sets are resolved here, straight from the index; anything else is resolved by
the target's own pip (``--dry-run --report``), so the set is exactly the one pip would
install. Then every file is fetched at once through the engine under one connection budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from packaging.utils import canonicalize_name

from segfetch.cache import Cache
from segfetch.engine import Progress, Result, download
from segfetch.errors import DownloadError, HashMismatch, SegfetchError, UsageError, redact_url
from segfetch.index import IndexFile, fetch_project
from segfetch.reqs import RequirementSet, Wanted
from segfetch.select import Target, choose


@dataclass(frozen=True)
class Planned:
    """One file of the set: what to fetch and what its bytes must hash to."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str | None  # from the index, if it gave one
    allowed: frozenset[str] = frozenset()  # from --hash options: the file must match one
    size: int | None = None


@dataclass(frozen=True)
class Fetched:
    planned: Planned
    path: Path
    sha256: str
    size: int
    result: Result | None  # None: it was in the cache


def applies(wanted: Wanted, target: Target) -> bool:
    marker = wanted.req.marker
    return marker is None or marker.evaluate({**target.markers, "extra": ""})


async def plan_pinned(
    client: httpx.AsyncClient, reqs: RequirementSet, target: Target, indexes: Sequence[str]
) -> list[Planned]:
    """Each ``==`` pin straight from the index pages, all pages fetched at once."""
    wanted = [w for w in reqs.wanted if applies(w, target)]
    pages: dict[str, list[IndexFile]] = {}

    async def page(name: str) -> None:
        files: list[IndexFile] = []
        found = False
        for index in indexes:
            try:
                files += await fetch_project(client, index, name)
                found = True
            except DownloadError as exc:
                if getattr(exc, "status", None) != 404:
                    raise
        if not found:
            raise DownloadError(f"no project {name!r} on {', '.join(map(redact_url, indexes))}")
        pages[name] = files

    async with trio.open_nursery() as nursery:
        for name in {canonicalize_name(w.req.name) for w in wanted}:
            nursery.start_soon(page, name)
    planned = []
    for w in wanted:
        pick = choose(w, pages[canonicalize_name(w.req.name)], target, pre=reqs.pre)
        f = pick.file
        planned.append(
            Planned(
                canonicalize_name(w.req.name),
                str(pick.version),
                f.filename,
                f.url,
                f.sha256,
                w.hashes,
                f.size,
            )
        )
    return planned


def plan_with_pip(
    python: str, pip_reqs: Sequence[str], indexes: Sequence[str], pre: bool
) -> list[Planned]:
    """The complete set from the target pip's resolver (nothing is installed)."""
    cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--report", "-", "--index-url", indexes[0]]
    for extra in indexes[1:]:
        cmd += ["--extra-index-url", extra]
    if pre:
        cmd.append("--pre")
    proc = subprocess.run([*cmd, *pip_reqs], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("ERROR")]
        why = lines[-1].removeprefix("ERROR:").strip() if lines else "see pip's output"
        raise SegfetchError(f"pip could not resolve the requirements: {redact_url(why)}")
    try:
        report = json.loads(proc.stdout)
        items = report["install"]
    except (ValueError, KeyError):
        raise SegfetchError(
            "pip gave no installation report; is the target pip older than 22.2?"
        ) from None
    planned = []
    for item in items:
        info = item["download_info"]
        url = info["url"]
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        meta = item["metadata"]
        planned.append(
            Planned(
                canonicalize_name(meta["name"]),
                meta["version"],
                url.rsplit("/", 1)[-1].split("#")[0],
                url,
                hashes.get("sha256"),
            )
        )
    return planned


async def fetch_all(
    planned: Sequence[Planned],
    cache: Cache,
    client: httpx.AsyncClient,
    *,
    budget: int,
    connections: int,
    progress: Callable[[Planned, Progress | None], None] | None = None,
    **engine: object,
) -> list[Fetched]:
    """Every file at once; each connection holds one of ``budget`` slots."""
    slots = trio.Semaphore(budget)
    out: dict[Planned, Fetched] = {}

    async def one(p: Planned) -> None:
        out[p] = await _fetch(p, cache, client, slots, connections, progress, engine)

    async with trio.open_nursery() as nursery:
        for p in dict.fromkeys(planned):
            nursery.start_soon(one, p)
    return [out[p] for p in planned]


async def _fetch(
    p: Planned,
    cache: Cache,
    client: httpx.AsyncClient,
    slots: trio.Semaphore,
    connections: int,
    progress: Callable[[Planned, Progress | None], None] | None,
    engine: dict[str, object],
) -> Fetched:
    expected = p.sha256
    if expected is None and len(p.allowed) == 1:
        expected = next(iter(p.allowed))
    if expected is not None and p.allowed and expected not in p.allowed:
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
    async with cache.lock(folder):
        if expected is not None and (hit := cache.get(expected, p.filename)):
            if progress:
                progress(p, None)
            return Fetched(p, hit, expected, hit.stat().st_size, None)
        dest = folder / p.filename
        report = (lambda pr: progress(p, pr)) if progress else None
        result = await download(
            p.url, dest, connections=connections, sha256=expected, client=client,
            slots=slots, progress=report, **engine,  # type: ignore[arg-type]
        )  # fmt: skip
        if p.size is not None and result.size != p.size:
            dest.unlink()
            raise DownloadError(f"{p.filename}: got {result.size} bytes, the index says {p.size}")
        if p.allowed and result.sha256 not in p.allowed:
            dest.unlink()
            raise HashMismatch(
                f"{p.filename}: sha256 {result.sha256} matches no --hash given",
                expected=" or ".join(sorted(p.allowed)),
                got=result.sha256,
            )
        path = dest if expected else cache.adopt(dest, result.sha256)
        return Fetched(p, path, result.sha256, result.size, result)


def link_into(fetched: Sequence[Fetched], folder: Path) -> None:
    """Put the files in folder: a hard link where the file system allows, else a copy."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in fetched:
        target = folder / f.planned.filename
        tmp = target.with_name(target.name + ".segfetch-tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(f.path, tmp)
        except OSError:
            import shutil

            shutil.copyfile(f.path, tmp)
        os.replace(tmp, target)


def pip_install(
    python: str, fetched: Sequence[Fetched], pip_reqs: Sequence[str], pip_args: Sequence[str]
) -> int:
    """Run the target pip on the verified files only: it never touches the network for them."""
    with tempfile.TemporaryDirectory(prefix="segfetch-") as tmp:
        link_into(fetched, Path(tmp))
        cmd = [
            python,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            tmp,
            *pip_args,
            *pip_reqs,
        ]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode


def python_or_default(python: str | None) -> str:
    if python is None:
        return sys.executable
    if not Path(python).exists():
        raise UsageError(f"no Python at {python!r}; give --python the path of an interpreter")
    return python
