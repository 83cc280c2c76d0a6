"""Requirement sets -> files -> verified files in the cache -> pip.

Fully pinned sets are resolved here, straight from the index; anything else is resolved by
the target's own pip (``--dry-run --report``), so the set is exactly the one pip would
install. Then every file is fetched at once through the engine under one connection budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.parser import BytesParser
from functools import partial
from pathlib import Path

import httpx
import trio
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from segfetch.engine.download import Progress, Result, Slots, download
from segfetch.engine.options import Options
from segfetch.errors import (
    HashMismatch,
    HTTPStatusError,
    SegfetchError,
    redact_url,
)
from segfetch.wheels.cache import Cache
from segfetch.wheels.dists import marker_applies, parse_filename, read_metadata
from segfetch.wheels.index import IndexFile, fetch_project
from segfetch.wheels.localindex import LocalIndex
from segfetch.wheels.requirements import RequirementSet, Wanted
from segfetch.wheels.select import choose
from segfetch.wheels.target import Target


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


class Session:
    """One requirement set's downloads: a shared client, cache and connection budget."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        cache: Cache,
        indexes: Sequence[str],
        *,
        budget: int,
        options: Options | None = None,
        progress: Callable[[Planned, Progress | None], None] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.client, self.cache, self.indexes = client, cache, indexes
        self.slots = Slots(budget)
        self.files_at_once = trio.CapacityLimiter(budget)
        self.options = options or Options()
        self.progress = progress
        self.notice = notice  # one line for the user (a damaged cache entry); None: silent
        self._pages: dict[str, list[IndexFile]] = {}
        self._fetching: dict[str, trio.Event] = {}
        self._guessed: set[str] = set()
        self._metadata: dict[str, bytes | None] = {}
        self._files: dict[str, IndexFile] = {}
        self._results: dict[
            str, Result
        ] = {}  # files this run fetched, by URL  # the index's entry behind each planned URL

    async def project(self, name: str) -> list[IndexFile]:
        """Files of a project over all indexes (a 404 on some of them is fine); each page is
        fetched once, however many ask for it at the same time."""
        key = canonicalize_name(name)
        while key in self._fetching:
            await self._fetching[key].wait()
        if key not in self._pages:
            self._fetching[key] = trio.Event()
            try:
                self._pages[key] = await self._fetch_project(name)
            finally:
                self._fetching.pop(key).set()
        return self._pages[key]

    async def _fetch_project(self, name: str) -> list[IndexFile]:
        files: list[IndexFile] = []
        found = False
        for index in self.indexes:
            try:
                files += await fetch_project(self.client, index, name, slots=self.slots)
                found = True
            except HTTPStatusError as exc:
                if exc.status != 404:
                    raise
        if not found:
            where = ", ".join(map(redact_url, self.indexes))
            raise HTTPStatusError(f"no project {name!r} on {where}", 404)
        return files

    async def plan_pinned(self, reqs: RequirementSet, target: Target) -> list[Planned]:
        """Each ``==`` pin straight from the index pages, all pages fetched at once."""
        wanted = [w for w in reqs.wanted if marker_applies(w.req.marker, target.markers)]
        async with trio.open_nursery() as nursery:
            for name in {canonicalize_name(w.req.name) for w in wanted}:
                nursery.start_soon(self.project, name)
        planned = []
        for w in wanted:
            f = choose(w, await self.project(w.req.name), target, pre=reqs.pre).file
            self._files[f.url] = f
            planned.append(_planned(f, w.hashes))
        return planned

    async def plan(
        self,
        python: str,
        reqs: RequirementSet,
        pip_reqs: Sequence[str],
        target: Target,
        on_resolve: Callable[[], None] | None = None,
    ) -> list[Planned]:
        """The files to install. A pinned set is taken as it is only when it is known to be
        complete: in hash-checking mode (pip itself then requires every dependency pinned
        and hashed), or when every file's Requires-Dist is satisfied inside the set.
        Anything else goes to pip's resolver."""
        if reqs.fully_pinned:
            planned = await self.plan_pinned(reqs, target)
            if all(w.hashes for w in reqs.wanted) or not await self.missing(planned, reqs, target):
                return planned
        if on_resolve is not None:
            on_resolve()
        return await self.plan_with_pip(python, reqs, pip_reqs, target)

    async def missing(
        self, planned: Sequence[Planned], reqs: RequirementSet, target: Target
    ) -> list[str]:
        """missing_dependencies of a pinned set, its metadata fetched all at once (a
        ``.metadata`` file each, or the wheel, which is then already in the cache)."""
        meta: dict[Planned, bytes | None] = {}

        async def one(p: Planned) -> None:
            f = self._files.get(p.url)
            meta[p] = await self.metadata_of(f) if f and p.filename.endswith(".whl") else None

        async with trio.open_nursery() as nursery:
            for p in planned:
                nursery.start_soon(one, p)
        extras: dict[str, frozenset[str]] = {}
        for w in reqs.wanted:
            key = canonicalize_name(w.req.name)
            extras[key] = extras.get(key, frozenset()) | frozenset(w.req.extras)
        return missing_dependencies(planned, [meta[p] for p in planned], extras, target)

    async def plan_with_pip(
        self, python: str, reqs: RequirementSet, pip_reqs: Sequence[str], target: Target
    ) -> list[Planned]:
        """The complete set from the target pip's resolver, run against a local index that
        gets every byte through segfetch (nothing is installed).

        pip walks the dependency graph one request at a time. Meanwhile segfetch guesses
        ahead: for every project it sees, the file pip will most likely pick, its metadata,
        its dependencies' pages, and the wheel itself, all at once; pip then finds most of
        what it asks for already here, and the wheels already in the cache.
        """
        async with trio.open_nursery() as nursery:
            guess = partial(self._guess, target=target, pre=reqs.pre, nursery=nursery)

            async def page(name: str) -> list[IndexFile]:
                nursery.start_soon(guess, name)
                return await self.project(name)

            local = LocalIndex(page, self.file_of, self.metadata_of)
            await nursery.start(local.serve)
            for w in reqs.wanted:
                nursery.start_soon(guess, w.req.name)
            try:
                urls = await trio.to_thread.run_sync(
                    _pip_report, python, pip_reqs, local.url, reqs.pre
                )
            except SegfetchError as exc:
                raise (local.error or exc) from None  # say why, not just "pip failed"
            # Guesses still running are cut short: a wheel half fetched stays in the
            # cache as a .part, and the real fetch resumes it.
            nursery.cancel_scope.cancel()
        planned = []
        for url in urls:
            f = local.upstream(url)
            if f is None:
                raise SegfetchError(f"pip chose {redact_url(url)}, which is not from the index")
            planned.append(_planned(f, frozenset()))
        return planned

    async def _guess(self, name: str, *, target: Target, pre: bool, nursery: trio.Nursery) -> None:
        key = canonicalize_name(name)
        if key in self._guessed:
            return
        self._guessed.add(key)
        try:
            files = await self.project(name)
            pick = choose(Wanted(Requirement(name)), files, target, pre=pre).file
            if not pick.filename.endswith(".whl"):
                return  # an sdist: pip builds it, we cannot read ahead
            nursery.start_soon(self._quietly, self.file_of, pick)
            metadata = await self.metadata_of(pick)
        except SegfetchError:
            return  # only a guess: pip will ask for what it really needs, and hear why not
        for dep in requirements_of(metadata or b"", target):
            nursery.start_soon(partial(self._guess, dep, target=target, pre=pre, nursery=nursery))

    @staticmethod
    async def _quietly(fn: Callable[[IndexFile], Awaitable[object]], f: IndexFile) -> None:
        with contextlib.suppress(SegfetchError):
            await fn(f)

    async def file_of(self, f: IndexFile) -> Path:
        return (await self.fetch(_planned(f, frozenset()))).path

    async def metadata_of(self, f: IndexFile) -> bytes | None:
        """METADATA of a wheel: the index's .metadata file if it has one, else from the wheel."""
        if f.url not in self._metadata:
            dest = self.cache.unverified_path(f.url, f.filename + ".metadata")
            try:
                async with self.cache.lock(dest.parent):
                    if not dest.exists():
                        await download(
                            f.url + ".metadata", dest, replace(self.options, connections=1),
                            client=self.client, slots=self.slots,
                        )  # fmt: skip
                self._metadata[f.url] = dest.read_bytes()
            except HTTPStatusError:
                self._metadata[f.url] = _wheel_metadata(await self.file_of(f))
        return self._metadata[f.url]

    async def fetch_all(self, planned: Sequence[Planned]) -> list[Fetched]:
        """Every file at once; each connection holds one place in the budget."""
        out: dict[Planned, Fetched] = {}

        async def one(p: Planned) -> None:
            out[p] = await self.fetch(p)

        async with trio.open_nursery() as nursery:
            for p in dict.fromkeys(planned):
                nursery.start_soon(one, p)
        return [out[p] for p in planned]

    async def fetch(self, p: Planned) -> Fetched:
        # A file in progress holds a lock and a .part open: no more files at once than
        # connections, so descriptors stay within the budget however long the list.
        async with self.files_at_once:
            got = await _fetch(
                p, self.cache, self.client, self.slots, self.options, self.progress, self.notice
            )
        # Fetched earlier in this run (by the look-ahead, say): report that fetch, not "cached".
        if got.result is not None:
            self._results[p.url] = got.result
        elif p.url in self._results:
            got = replace(got, result=self._results[p.url])
        return got


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


def missing_dependencies(
    planned: Sequence[Planned],
    metadata: Sequence[bytes | None],
    extras: Mapping[str, frozenset[str]],
    target: Target,
) -> list[str]:
    """What the pinned set leaves out: each dependency (for the target, with the extras
    asked for) that no file of the set satisfies. A file whose metadata is unknown (an
    sdist) leaves the set unknown: ``["<name>: dependencies unknown"]``. Pure."""
    versions = {canonicalize_name(p.name): p.version for p in planned}
    missing = []
    for p, meta in zip(planned, metadata, strict=True):
        if meta is None:
            missing.append(f"{p.name}: dependencies unknown")
            continue
        for dep in dependencies(meta, target, extras.get(canonicalize_name(p.name), frozenset())):
            have = versions.get(canonicalize_name(dep.name))
            if have is None or not dep.specifier.contains(have, prereleases=True):
                missing.append(f"{dep} (for {p.name})")
    return missing


def _wheel_metadata(path: Path) -> bytes | None:
    """METADATA from the wheel itself; None from a broken wheel (pip then says why)."""
    try:
        return read_metadata(path)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def _planned(f: IndexFile, allowed: frozenset[str]) -> Planned:
    parsed = parse_filename(f.filename)
    if parsed is None:  # named against the spec: still fetched, as pip chose it
        name, version = canonicalize_name(f.filename.split("-")[0]), "?"
    else:
        name, version = parsed.name, str(parsed.version)
    return Planned(name, version, f.filename, f.url, f.sha256, allowed, f.size)


def _pip_report(python: str, pip_reqs: Sequence[str], index: str, pre: bool) -> list[str]:
    """The URL of every file pip would install from this index."""
    cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--disable-pip-version-check"]
    cmd += ["--report", "-", "--index-url", index, *(["--pre"] if pre else []), *pip_reqs]
    # Our local index stands for every index the user's pip would use: keep pip's own
    # index settings (files or environment) out, so it asks nothing behind our back.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    old_pip = SegfetchError(
        f"the pip of {python} is older than 22.2, which segfetch needs to resolve requirements: "
        f"upgrade it ({python} -m pip install -U pip), or give a complete pinned set"
    )
    if proc.returncode != 0:
        if "Operation cancelled by user" in proc.stderr:
            raise KeyboardInterrupt  # Ctrl-C reached pip too: exit as interrupted, not failed
        if "no such option: --report" in proc.stderr or "no such option: --dry-run" in proc.stderr:
            raise old_pip
        said = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in said if ln.startswith("ERROR")]
        why = (errors or said or ["no reason given"])[-1].removeprefix("ERROR:").strip()
        raise SegfetchError(f"pip could not resolve the requirements: {redact_url(why)}")
    try:
        return [item["download_info"]["url"] for item in json.loads(proc.stdout)["install"]]
    except (ValueError, KeyError, TypeError):
        raise old_pip from None


async def _fetch(
    p: Planned,
    cache: Cache,
    client: httpx.AsyncClient,
    slots: Slots,
    options: Options,
    progress: Callable[[Planned, Progress | None], None] | None,
    notice: Callable[[str], None] | None = None,
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

    def damaged(why: str) -> None:
        if notice is not None:
            notice(f"{p.filename}: the cached copy is damaged ({why}); fetching it again")

    async with cache.lock(folder):
        if expected is not None and (
            hit := await cache.get(expected, p.filename, size=p.size, damaged=damaged)
        ):
            if progress:
                progress(p, None)
            return Fetched(p, hit, expected, hit.stat().st_size, None)
        dest = folder / p.filename
        report = (lambda pr: progress(p, pr)) if progress else None
        result = await download(
            p.url, dest, options, sha256=expected, client=client,
            slots=slots, progress=report, size=p.size,
        )  # fmt: skip
        if p.allowed and result.sha256 not in p.allowed:
            dest.unlink()
            raise HashMismatch(
                f"{p.filename}: sha256 {result.sha256} matches no --hash given",
                expected=" or ".join(sorted(p.allowed)),
                got=result.sha256,
            )
        path = dest if expected else cache.adopt(dest, result.sha256)
        cache.verified(path)
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
    python: str,
    fetched: Sequence[Fetched],
    pip_reqs: Sequence[str],
    pip_args: Sequence[str],
    quiet_stdout: bool = False,
) -> int:
    """Run the target pip on the verified files only: it never touches the network for them.
    ``quiet_stdout``: pip's output goes to stderr (stdout holds one JSON document)."""
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
        out = sys.stderr if quiet_stdout else None
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out).returncode
