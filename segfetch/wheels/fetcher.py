"""A run's files and their METADATA: each fetched once through one connection budget, and a
file whose bytes failed their hash not fetched again (for the run, or ``rest`` seconds)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from segfetch.engine.download import Progress, Result, Slots, download
from segfetch.engine.options import Options
from segfetch.errors import HashMismatch, HTTPStatusError, RetriesExhausted, SegfetchError
from segfetch.wheels.cache import Cache
from segfetch.wheels.files import (
    Fetched,
    Planned,
    digest_matches,
    fetch_file,
    local_file,
    planned_of,
    wheel_metadata,
)
from segfetch.wheels.index import IndexFile, IndexPageError


class Fetcher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        cache: Cache,
        *,
        budget: int,
        options: Options | None = None,
        progress: Callable[[Planned, Progress | None], None] | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.client, self.cache = client, cache
        self.slots = Slots(budget)
        self.files_at_once = trio.CapacityLimiter(budget)
        self.options, self.progress = options or Options(), progress
        self.notice = notice  # one line for the user (a damaged cache entry); None: silent
        self._local: dict[str, Fetched] = {}  # direct files, by the file: URL pip is given
        self.results: dict[str, Result] = {}  # files this run fetched, by URL
        self._metadata: dict[str, bytes | None] = {}
        self._asking_metadata: dict[str, trio.Event] = {}  # by URL: asked once at a time
        self._no_metadata: set[str] = set()  # URLs whose .metadata the index refused
        self._no_guess: set[str] = set()  # hosts where a .metadata not advertised was not there
        # Bytes that failed their hash (the engine fetched them twice), or a file the server
        # refused (a 404): asked again, by the look-ahead or pip's .metadata and file
        # requests, each would cross the link again, and fail the same way.
        self.rest = math.inf  # seconds such a file is not fetched again (serve: a while)
        self._in_flight: dict[tuple[str, str | None, frozenset[str]], trio.Event] = {}
        self._refused: dict[tuple[str, str | None, frozenset[str]], tuple[float, Exception]] = {}

    def not_again(self, p: Planned) -> None:
        """Raise for a file whose bytes just failed its hash, that was refused (see
        _refused), or (serve) whose upstream gave up on every try just now."""
        bad = self._refused.get(_key(p))
        if bad is not None and trio.current_time() < bad[0]:
            raise bad[1].with_traceback(None)

    async def file_of(self, f: IndexFile) -> Path:
        return (await self.fetch(planned_of(f, frozenset()))).path

    async def metadata_of(self, f: IndexFile) -> bytes | None:
        """METADATA of a wheel: the index's .metadata file if it has one, else from the wheel.
        Asked for once per file and run, however many ask at the same time (pip and the
        look-ahead do); a .metadata the index refused (a 404) is not asked for again."""
        while f.url in self._asking_metadata:
            await self._asking_metadata[f.url].wait()
        if f.url not in self._metadata:
            self._asking_metadata[f.url] = trio.Event()
            try:
                self._metadata[f.url] = await self._read_metadata(f)
            finally:
                self._asking_metadata.pop(f.url).set()
        return self._metadata[f.url]

    async def _read_metadata(self, f: IndexFile) -> bytes | None:
        """An advertised .metadata is checked by its sha256. One not advertised (a proxy
        may drop the key) is asked for too, but only where the URL has no query (pip's
        rule would put ".metadata" after a signed URL's token), and kept only if it reads as
        METADATA: another server answers any path with the wheel, or with an error. Once
        one is not there, no other is guessed on that host in the run."""
        if f.url[:5].lower() == "file:":  # on disk: its own METADATA
            return wheel_metadata(await self.file_of(f))
        dest = self.cache.unverified_path(f.url, f.filename + ".metadata")
        # A wheel already in the cache (a warm run) is read, not asked about again.
        in_cache = f.sha256 is not None and self.cache.path(f.sha256, f.filename).is_file()
        host = urlsplit(f.url).netloc
        guess = not f.metadata and "?" not in f.url and host not in self._no_guess
        if (f.metadata or guess) and f.url not in self._no_metadata and not in_cache:
            try:
                async with self.cache.lock(dest.parent):
                    if dest.exists() and not digest_matches(dest, f.metadata_sha256):
                        dest.unlink()  # kept unchecked by an older segfetch, or changed since
                    if not dest.exists():
                        await download(
                            f.url + ".metadata", dest, replace(self.options, connections=1),
                            sha256=f.metadata_sha256, client=self.client, slots=self.slots,
                        )  # fmt: skip
                    data = dest.read_bytes()
                    if f.metadata or data.startswith(b"Metadata-Version:"):
                        return data
                    dest.unlink()
            except SegfetchError as exc:  # (a guess's failure of any kind, an advertised 404)
                if f.metadata and not isinstance(exc, (HTTPStatusError, HashMismatch)):
                    raise
                if f.metadata and self.notice is not None:  # the wheel holds the true METADATA
                    bad = f"answered {exc.status}" if isinstance(exc, HTTPStatusError) else ""
                    why = bad or "does not match its sha256"  # (a whole wheel crosses the link)
                    self.notice(f"warning: the index's metadata of {f.filename} {why}; "
                                "read from the wheel instead")  # fmt: skip
            self._no_metadata.add(f.url)
            if not f.metadata:  # a host that keeps none: a 404 per wheel, and a round trip
                self._no_guess.add(host)
        return wheel_metadata(await self.file_of(f))

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
        if p.url.startswith("file:"):  # a direct file already fetched, or a local one
            return self._local.get(p.url) or await local_file(p)
        while _key(p) in self._in_flight:  # (its outcome decides whether to ask at all)
            await self._in_flight[_key(p)].wait()
        self.not_again(p)
        self._in_flight[key := _key(p)] = trio.Event()
        try:
            got = await self._fetch(p)
        finally:
            self._in_flight.pop(key).set()
        # Fetched earlier in this run (by the look-ahead, say): report that fetch, not "cached".
        if got.result is not None:
            self.results[p.url] = got.result
        elif p.url in self.results:
            got = replace(got, result=self.results[p.url])
        return got

    async def _fetch(self, p: Planned) -> Fetched:
        # A file in progress holds a lock and a .part open: no more files at once than
        # connections, so descriptors stay within the budget however long the list.
        async with self.files_at_once:
            try:
                got = await fetch_file(
                    p, self.cache, self.client, self.slots, self.options, self.progress,
                    self.notice,
                )  # fmt: skip
            except HashMismatch as exc:
                again = exc  # (for the run: the same words; for a while: say how long)
                if self.rest < math.inf:
                    why = f"{exc}; not fetched again for {self.rest:.0f} s"
                    again = HashMismatch(why, exc.expected, exc.got)
                self._refused[_key(p)] = (trio.current_time() + self.rest, again)
                raise
            except HTTPStatusError as exc:
                if final(exc):
                    self._refused[_key(p)] = (trio.current_time() + self.rest, exc)
                raise
            except RetriesExhausted as exc:
                if self.rest < math.inf:  # serve: each client's retry waited out ours again
                    why = f"{exc}; not asked again for {self.rest:.0f} s"
                    later = RetriesExhausted(why, exc.status)
                    self._refused[_key(p)] = (trio.current_time() + self.rest, later)
                raise
        return got


def final(exc: HTTPStatusError | IndexPageError) -> bool:
    """A 4xx (not 408 or 429) or a page that is not one; not a failure on the way."""
    status = exc.status if isinstance(exc, HTTPStatusError) else 400
    return 400 <= status < 500 and status not in (408, 429)


def _key(p: Planned) -> tuple[str, str | None, frozenset[str]]:
    return p.url, p.sha256, p.allowed
