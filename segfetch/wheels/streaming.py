"""``segfetch install`` with uv on a cold cache: uv starts as soon as the set is planned,
against an index segfetch serves on 127.0.0.1 for this run, and unpacks each wheel as its
bytes arrive (``growing.py``), instead of starting once every file is verified.

The index lists, per project, exactly the planned files (sha256 in the link, PEP 700 size);
each file's last byte is held back until the engine verified the file, so uv never installs
another one. Local files (direct URLs already fetched, local paths) stay ``--find-links``
beside it. Not taken for a set the cache holds whole (uv keeps what it unpacked of a cached
file by its path: the find-links route is faster there), nor for sdists or build
dependencies (they install as before), nor for pip (it downloads everything first anyway).
If uv fails here, the install runs again the usual way once every file is verified: its
output and exit code are then the command's, as without this route.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio
from packaging.utils import canonicalize_name

from segfetch.engine.download import Progress
from segfetch.engine.store import side_names
from segfetch.errors import HTTPStatusError, SegfetchError
from segfetch.wheels.cache import Cache
from segfetch.wheels.files import Fetched, Planned, wheel_metadata
from segfetch.wheels.growing import Growing, stream
from segfetch.wheels.httpd import Reply, Request, send_file
from segfetch.wheels.index import IndexFile
from segfetch.wheels.install import Session
from segfetch.wheels.localindex import IndexApp
from segfetch.wheels.pip import Installer, command, find_links

# uv needs no network but loopback: no proxy of the environment may catch our index.
PROXIES = frozenset({"http_proxy", "https_proxy", "all_proxy"})


@dataclass
class Early:
    """uv's install, started while the files download (``fetch``); ``code`` None: it was
    not (no installer: a download; pip; or not ``worth`` it)."""

    installer: Installer | None
    python: str
    pip_args: Sequence[str]
    quiet: bool
    code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""

    def replay(self, quiet_stdout: bool) -> int:
        """What uv said, where the install after the downloads would have said it."""
        out = sys.stderr if quiet_stdout else sys.stdout
        out.write(self.stdout.decode(errors="replace"))
        out.flush()
        sys.stderr.write(self.stderr.decode(errors="replace"))
        sys.stderr.flush()
        return self.code or 0

    async def fetch(
        self, session: Session, planned: Sequence[Planned], reqs: Sequence[str]
    ) -> list[Fetched]:
        """``session.fetch_all(planned)``; and with uv (when ``worth`` it), uv installing
        ``reqs`` from the files as they arrive, until it is done too."""
        if self.installer is None or self.installer.name != "uv" or not worth(session, planned):
            return await session.fetch_all(planned)
        return await _fetch(session, planned, self, reqs)

    async def run(self, where: Sequence[str], reqs: Sequence[str], done: trio.Event) -> None:
        """uv, its output kept for ``replay``. Cancelled, uv is stopped and reaped (trio:
        SIGTERM, then SIGKILL after 5 s)."""
        assert self.installer is not None
        cmd, env = command(self.installer, self.python, where, reqs, self.pip_args, self.quiet)
        env = {k: v for k, v in (env or os.environ).items() if k.lower() not in PROXIES}
        proc = await trio.run_process(
            cmd, stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True,
            check=False, env=env,
        )  # fmt: skip
        self.code, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        done.set()


def expected(p: Planned) -> str | None:
    """The sha256 the file is cached under, as fetch_file takes it."""
    return p.sha256 or (next(iter(p.allowed)) if len(p.allowed) == 1 else None)


def cached(cache: Cache, p: Planned) -> bool:
    sha = expected(p)
    return sha is not None and cache.path(sha, p.filename).is_file()


def worth(session: Session, planned: Sequence[Planned]) -> bool:
    """Whether uv starts before the downloads end: only wheels, no build dependencies, and
    a file not in the cache yet."""
    if session.build_deps or not all(p.filename.endswith(".whl") for p in planned):
        return False
    return any(not p.url.startswith("file:") and not cached(session.cache, p) for p in planned)


async def _fetch(
    session: Session, planned: Sequence[Planned], early: Early, reqs: Sequence[str]
) -> list[Fetched]:
    local = [p for p in dict.fromkeys(planned) if p.url.startswith("file:")]
    web = [p for p in dict.fromkeys(planned) if not p.url.startswith("file:")]
    got = dict(zip(local, await session.fetch_all(local), strict=True))
    growing = {p.url: Growing(_part(session.cache, p), p.size) for p in web}
    shown = session.progress

    def progress(p: Planned, pr: Progress | None) -> None:
        if shown is not None:
            shown(p, pr)
        g = growing.get(p.url)
        if g is not None and pr is not None:
            g.update(pr.size, pr.prefix)

    session.progress = progress
    app = await _index(session, web, growing)

    async def one(p: Planned) -> None:
        try:
            f = got[p] = await session.fetch(p)
        except SegfetchError as exc:
            growing[p.url].fail(exc)
            raise
        growing[p.url].finish(f.path, f.sha256, f.size)

    # uv's own cache keys a download by its index URL, and ours has a fresh port each run:
    # a folder of its own for this run, beside segfetch's cache (so on the file system
    # uv's cache is usually on: hard links work as they do from it), removed after.
    with (
        tempfile.TemporaryDirectory(prefix="segfetch-") as tmp,
        tempfile.TemporaryDirectory(prefix="uv-", dir=session.cache.root) as uv_cache,
    ):
        links = find_links([got[p] for p in local], Path(tmp))
        uv_done = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(app.serve)
            url = f"http://127.0.0.1:{app.port}/simple/"
            where = ["--index-url", url, *links, "--cache-dir", uv_cache]
            nursery.start_soon(early.run, where, reqs, uv_done)
            async with trio.open_nursery() as fetching:
                for p in web:
                    fetching.start_soon(one, p)
            await uv_done.wait()
            nursery.cancel_scope.cancel()
    return [got[p] for p in planned]


def _part(cache: Cache, p: Planned) -> Path:
    """The .part the engine writes the file into (fetch_file's destination)."""
    sha = expected(p)
    dest = cache.path(sha, p.filename) if sha else cache.unverified_path(p.url, p.filename)
    return dest.with_name(side_names(dest.name)[0])


async def _index(session: Session, web: Sequence[Planned], growing: dict[str, Growing]) -> IndexApp:
    """The index of the planned files: one page per project, with them only."""
    listed: dict[str, list[IndexFile]] = {}
    for p in web:
        # The upstream's entry says whether it has a .metadata (its page is in memory: the
        # plan read it, for every file not cached).
        page = [] if cached(session.cache, p) else await session.project(p.name)
        advertised = any(f.url == p.url and f.metadata for f in page)
        f = IndexFile(p.filename, p.url, expected(p), size=p.size, metadata=advertised)
        listed.setdefault(canonicalize_name(p.name), []).append(f)

    async def listing(name: str) -> tuple[list[IndexFile], bool]:
        if name not in listed:
            raise HTTPStatusError(f"{name} is not in the set", 404)
        return listed[name], False

    async def metadata(f: IndexFile) -> bytes | None:
        """uv resolves first: the upstream's small .metadata if it has one (or what the
        plan read), else the wheel's own, once it is verified: never a second download."""
        g = growing[f.url]
        if f.metadata and not g.done.is_set():
            return await session.metadata_of(f)
        return wheel_metadata(await g.result())

    async def send(f: IndexFile, request: Request, reply: Reply) -> None:
        g = growing[f.url]
        if g.done.is_set() or "range" in request.headers:  # a range: from the verified file
            await send_file(request, reply, await g.result())
        else:
            await stream(g, reply)

    return IndexApp(listing, metadata, send)
