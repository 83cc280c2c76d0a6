"""Requirement sets -> files -> verified files in the cache -> pip. Complete pinned sets
are resolved here, from the index; any other by the target's own pip (``--dry-run
--report``): exactly the set pip would install. Every file is then fetched at once through
the engine under one connection budget. Direct URLs (``name @ https://.../x.whl``) first:
pip resolves against the verified local files. The files pip's build environments took (an
sdist's or an editable's build dependencies) are kept (``build_deps``) for an offline build.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
from packaging.utils import canonicalize_name

from segfetch.engine.download import Progress
from segfetch.engine.options import Options
from segfetch.errors import (
    HTTPStatusError,
    RetriesExhausted,
    SegfetchError,
    file_url_path,
    is_http_url,
    redact_url,
)
from segfetch.wheels import select
from segfetch.wheels.cache import Cache
from segfetch.wheels.complete import (
    extras_asked,
    held_closure,
    held_whole,
    missing_dependencies,
    not_installed,
    read_as_pip,
)
from segfetch.wheels.dists import held_locally, marker_applies, parse_filename
from segfetch.wheels.fetcher import Fetcher, final
from segfetch.wheels.files import (
    Fetched,
    Planned,
    planned_of,
)
from segfetch.wheels.index import (
    IndexFile,
    IndexPageError,
    fetch_page,
    fetch_project,
    parse_page,
    project_url,
    stored_project,
)
from segfetch.wheels.installer import pip_command
from segfetch.wheels.localindex import LocalIndex
from segfetch.wheels.lookahead import Lookahead
from segfetch.wheels.pages import PageCache
from segfetch.wheels.pip import pip_report, point_urls, report_urls
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.select import NoMatch, choose, for_python_version
from segfetch.wheels.target import Target
from segfetch.wheels.uploaded import uploaded_before
from segfetch.wheels.wanted import Wanted

Pick = Callable[[Wanted, Sequence[IndexFile]], IndexFile]  # the file pip would choose


class Session(Fetcher):
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
        find_links: Sequence[str] = (),
    ) -> None:
        super().__init__(
            client, cache, budget=budget, options=options, progress=progress, notice=notice
        )
        self.indexes = indexes
        # --find-links pages (http URLs; pip reads folders itself): their files join the
        # indexes' for every project, as pip's finder merges them.
        self.link_pages = [u for u in find_links if is_http_url(u)]
        self.held = held_locally([u for u in find_links if not is_http_url(u)])
        self._linked: list[IndexFile] | None = None
        self._linking = trio.Lock()
        self.build_deps: list[Planned] = []  # files pip's build environments took
        self._pages: dict[str, list[IndexFile]] = {}
        self._fetching: dict[str, trio.Event] = {}
        self._failed_pages: dict[str, SegfetchError] = {}  # by project: 4xx and the like
        self.pages = PageCache(cache.root / "pages")
        self._files: dict[str, IndexFile] = {}  # the index's entry behind each planned URL
        self.whole_ahead = True  # False: the look-ahead reads metadata only (a dry run)
        self.warns = False  # True: pip's resolver's warnings shown (no installer says them)
        self.refresh: frozenset[str] = frozenset()  # pages never taken fresh, or ":all:"
        self.report: dict[str, Any] = {}  # pip's, of plan_with_pip, with upstream URLs
        self.before: datetime | None = None  # --uploaded-prior-to: later files are not seen
        self.links: dict[str, IndexFile] = {}  # by project: a URL constraint's file, its page
        self._down: dict[str, RetriesExhausted] = {}  # indexes that gave no answer this run
        self._said_down: set[str] = set()  # (warned of once, where the run goes on)

    async def project(self, name: str, *, recheck: bool = False) -> list[IndexFile]:
        """Files of a project over all indexes (a 404 on some of them is fine); each page is
        fetched once, however many ask for it at the same time. ``recheck``: pages this run
        took fresh from the page cache, with no request, are asked for after all."""
        key = canonicalize_name(name)
        if key in self.links:
            return [self.links[key]]
        recheck = recheck or bool({key, ":all:"} & self.refresh)  # (--refresh-package)
        while key in self._fetching:
            await self._fetching[key].wait()
        urls = {project_url(index, key) for index in self.indexes}
        if recheck and urls & self.pages.unasked:
            self.pages.unasked -= urls
            self._pages.pop(key, None)
        if key in self._failed_pages:  # (pip's retries, the look-ahead: once a run)
            raise self._failed_pages[key].with_traceback(None)
        if key not in self._pages:
            self._fetching[key] = trio.Event()
            try:
                self._pages[key] = await self._fetch_project(name, recheck)
            except (HTTPStatusError, IndexPageError) as exc:
                if final(exc):  # asked again, it would answer the same
                    self._failed_pages[key] = exc
                raise
            finally:
                self._fetching.pop(key).set()
        return self._pages[key]

    def take_links(self, constraints: dict[str, Wanted]) -> None:
        """The files of constraints on URLs, each its project's whole page (wanted.py); no
        .metadata is guessed beside one (pip asks for none there)."""
        self.links = {k: IndexFile(c.filename, c.url, c.url_sha256) for k, c in constraints.items()}
        self._no_metadata |= {c.url for c in constraints.values()}

    async def _fetch_project(self, name: str, recheck: bool = False) -> list[IndexFile]:
        files = [f for f in await self._link_files() if _project_of(f) == canonicalize_name(name)]
        found = bool(files)
        failed: list[SegfetchError] = []
        notes: list[str] = []  # said where the project is found elsewhere (else: the error)
        for index in self.indexes:
            if index in self._down:  # no answer at all before: not waited for again
                failed.append(self._down[index])
                continue
            try:
                files += await fetch_project(
                    self.client, index, name, self.options.policy, self.slots, self.pages,
                    recheck=recheck,
                )  # fmt: skip
                found = True
            except HTTPStatusError as exc:
                if exc.status != 404:  # (a 401: skipped by pip too, said so)
                    failed.append(exc)
                    notes.append(f"warning: {name}: an index left out, as it failed: {exc}")
            except RetriesExhausted as exc:  # (down, or 5xx every time)
                failed.append(exc)
                if exc.status is None:  # as pip goes on without it, saying so (once)
                    self._down[index] = exc
        if failed and not found:
            raise failed[0]
        for index in self._down.keys() - self._said_down:
            self._said_down.add(index)
            notes.append(f"warning: {redact_url(index)} left out for this run: {self._down[index]}")
        if self.notice is not None:
            for note in notes:
                self.notice(note)
        if not found:
            where = "on " + (", ".join(map(redact_url, self.indexes)) or "the --find-links pages")
            if not self.indexes and not self.link_pages:  # (pip: "from versions: none")
                where = "with no index (--no-index, PIP_NO_INDEX): give -f a folder that has it"
            raise HTTPStatusError(f"no project {name!r} {where}", 404)
        return uploaded_before(files, self.before)

    async def _link_files(self) -> list[IndexFile]:
        """Every file of the --find-links pages, each page fetched once per run."""
        async with self._linking:
            if self._linked is None:
                self._linked = []
                for url in self.link_pages:
                    self._linked += await fetch_page(
                        self.client, url, f"--find-links {redact_url(url)}: not found (404)",
                        parse_page, self.options.policy, self.slots,
                    )  # fmt: skip
            return self._linked

    async def fetch_direct(self, reqs: RequirementSet, target: Target) -> dict[str, Fetched]:
        """The files of the direct URL requirements for the target, fetched and verified
        (sha256 of a ``#sha256=`` fragment or ``--hash``; else the zip's own check): by
        URL. pip then reads them from the cache as ``file:`` URLs."""
        wanted = [w for w in reqs.direct if marker_applies(w.req.marker, target.markers)]
        planned = [planned_of(_direct_file(w), w.hashes) for w in wanted]
        fetched = await self.fetch_all(planned)
        for f in fetched:
            self._local[f.path.resolve().as_uri()] = f
        return {w.url: f for w, f in zip(wanted, fetched, strict=True)}

    async def plan_pinned(self, reqs: RequirementSet, target: Target) -> list[Planned]:
        """Each ``==`` pin straight from the index pages, all pages fetched at once; a
        hashed pin whose file is cached needs no page at all (``_cached_choice``)."""
        reqs.check_pins(target.markers)  # a pin that a constraint excludes: pip's error
        reqs.check_hashes(target.markers)  # (the lines with a marker, now that it is known)
        wanted = reqs.wanted_in(target.markers)
        if reqs.keeps_installed:  # pip keeps a pin the environment holds: no page for it
            wanted = [w for w in wanted if not target.holds(w.req.name, w.pinned or "")]

        def pick(w: Wanted, files: Sequence[IndexFile]) -> IndexFile:  # the one choice
            return choose(w, files, target, how=reqs.choosing(w.req.name)).file

        cached = [self._cached_choice(w, pick) for w in wanted]
        asked = [w for w, f in zip(wanted, cached, strict=True) if f is None]
        async with trio.open_nursery() as nursery:
            for name in {canonicalize_name(w.req.name) for w in asked}:
                nursery.start_soon(self.project, name)
        planned = []
        for w, hit in zip(wanted, cached, strict=True):
            f = hit or await self._choose(w, pick)
            self._files[f.url] = f
            planned.append(planned_of(f, w.hashes))
            if f.yanked is not None and self.notice is not None:  # pip warns so too
                why = f" ({f.yanked})" if f.yanked else ""
                self.notice(f"warning: {f.filename} is yanked{why}; pinned, so taken")
        await self.check_python_version([self._files[p.url] for p in planned], reqs.pip_options)
        return planned

    async def check_python_version(
        self, files: Sequence[IndexFile], options: Sequence[str]
    ) -> None:
        """With --python-version X, a wheel whose page gave no Requires-Python is checked by
        its METADATA's (pip's resolver here checks the running Python's)."""
        if (version := select.python_version_in(options)) is None:
            return
        found: list[str | None] = []

        async def one(f: IndexFile) -> None:
            found.append(select.misfit(f.filename, await self.metadata_of(f), version))

        async with trio.open_nursery() as nursery:
            for f in files:
                if not f.requires_python and f.filename.endswith(".whl"):
                    nursery.start_soon(one, f)
        select.refuse_misfits(found)

    async def _choose(self, w: Wanted, pick: Pick) -> IndexFile:
        """The file pip would choose. A pin missing from a page the page cache gave with no
        request (released since the page was fetched) asks the index once more."""
        try:
            return pick(w, await self.project(w.req.name))
        except NoMatch:
            if not {project_url(i, w.req.name) for i in self.indexes} & self.pages.unasked:
                raise
        return pick(w, await self.project(w.req.name, recheck=True))

    def _cached_choice(self, w: Wanted, pick: Pick) -> IndexFile | None:
        """The file pip would choose for a hashed pin, with no request: the choice among
        the files of the stored pages, when they list every file the pin's hashes allow,
        and it is in the cache. Else None."""
        files = self._stored_files(w)
        if files is None:
            return None
        try:
            f = pick(w, files)
        except NoMatch:
            return None
        return f if f.sha256 and self.cache.path(f.sha256, f.filename).is_file() else None

    def _stored_files(self, w: Wanted) -> list[IndexFile] | None:
        """The files of a hashed pin's project on the stored pages, however old, if they list
        every file its hashes allow (none that fits better can be missing then). Else None."""
        if not w.hashes or self.before is not None:  # (upload times: the index's own page)
            return None
        name = canonicalize_name(w.req.name)
        files: list[IndexFile] = []
        for index in self.indexes:
            files += stored_project(self.pages, index, name) or []
        listed = {f.sha256 for f in files if (d := parse_filename(f.filename)) and d.name == name}
        return files if w.hashes <= listed else None

    def needs_page(self, w: Wanted) -> bool:
        """Whether planning this requirement will likely need its project's page: not for
        a hashed pin with ``_stored_files`` of which one is cached. For a caller that
        fetches pages before the target is known; plan_pinned still asks for the page if
        the target's choice turns out not to be cached."""
        files = self._stored_files(w)
        return files is None or not any(
            f.sha256 in w.hashes and self.cache.path(f.sha256, f.filename).is_file() for f in files
        )

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
        Anything else goes to pip's resolver, and so does a set with an sdist: the install
        builds it, with build dependencies no lock names; pip's resolver builds it too and
        so takes them (``build_deps``)."""
        if held_whole(reqs, target):  # pip would install nothing, and ask no index
            return []
        if reqs.fully_pinned:
            planned = await self.plan_pinned(reqs, target)
            wheels = all(p.filename.endswith(".whl") for p in planned)
            # Pins the environment holds are not planned: their installed dependencies (with
            # the extras asked) must be there too, or among the files; else pip resolves.
            names = {canonicalize_name(p.name) for p in planned}
            held = [w.req for w in reqs.wanted_in(target.markers)]
            held = [r for r in held if canonicalize_name(r.name) not in names]
            # (hash mode: checked from the verified wheels, check_hashed_set)
            if (
                wheels
                and (not held or held_closure(reqs, target, held, names))
                and (reqs.require_hashes or not await self.missing(planned, reqs, target))
            ):
                return not_installed(planned, reqs, target)
        if on_resolve is not None:
            on_resolve()
        return await self.plan_with_pip(python, reqs, pip_reqs, target)

    async def missing(
        self, planned: Sequence[Planned], reqs: RequirementSet, target: Target
    ) -> list[str]:
        """missing_dependencies of a pinned set, its metadata fetched at once (a .metadata
        each); a wheel whose Requires-Python excludes the target stops it, as in pip."""
        meta: dict[Planned, bytes | None] = {}

        async def one(p: Planned) -> None:
            f, wheel = self._files.get(p.url), p.filename.endswith(".whl")
            meta[p] = await self.metadata_of(f) if f and wheel else None

        async with trio.open_nursery() as nursery:
            for p in planned:
                nursery.start_soon(one, p)
        metas = [meta[p] for p in planned]
        read_as_pip(planned, metas, reqs, target, self.warn)  # (warn: where no installer does)
        kept = target.installed if reqs.keeps_installed else {}  # (pins held: not planned)
        return missing_dependencies(planned, metas, extras_asked(reqs, target), target, kept)

    async def plan_with_pip(
        self, python: str, reqs: RequirementSet, pip_reqs: Sequence[str], target: Target
    ) -> list[Planned]:
        """The complete set from the target pip's resolver, run against a local index that
        gets every byte through segfetch (nothing is installed), with the constraints of
        pip's configuration (``reqs.pip_options``: pip runs without its configuration).

        pip walks the dependency graph one request at a time. Meanwhile segfetch reads
        ahead (``lookahead.py``): the metadata of the file pip will most likely choose of
        every project it sees, within every specifier known, and its dependencies' pages;
        a whole file only where it is certain to be installed. pip then finds most of what
        it asks for already here, and no byte goes to a file it does not install.
        """
        options = list(reqs.pip_options)
        if reqs.installed is None or reqs.foreign_target:
            options.append("--ignore-installed")  # every file, whatever is installed
        else:
            options += reqs.installed
        if reqs.foreign_target:  # pip before 23.3 takes --platform & co. only with --target;
            options += ["--target", tempfile.gettempdir()]  # --dry-run writes nothing there
        if (cut := for_python_version(options)) is not None:
            options.append("--ignore-requires-python")  # (the pages hold only files that fit)
        ahead = Lookahead(reqs, target)
        # pip before 22.2 cannot say what it would install (--report): segfetch's own pip
        # resolves for it then; the install is still the target's pip's
        pip = pip_command(python, target.own_pip and target.pip_reports)  # (a UsageError: here)
        async with trio.open_nursery() as nursery:
            guess = partial(self._guess, ahead=ahead, nursery=nursery)

            async def page(name: str, revalidate: bool) -> list[IndexFile]:
                nursery.start_soon(guess, name)
                # pip revalidates every page: one the page cache gave fresh is asked again
                files = await self.project(name, recheck=revalidate)
                return files if cut is None else cut(files)

            served: dict[str, IndexFile] = {}  # every file pip took whole, by URL

            async def file(f: IndexFile) -> Path:
                served[f.url] = f
                return await self.file_of(f)

            local = LocalIndex(page, file, self.metadata_of)
            await nursery.start(local.serve)
            for name in ahead.roots:
                nursery.start_soon(guess, name)
            try:
                report = await pip_report(
                    python, [*options, *pip_reqs], local.url, reqs.pre, pip, self.warn
                )
            except SegfetchError as exc:
                raise (local.explain(str(exc), self.held) or exc) from None  # not "pip failed"
            # Reading ahead still under way is cut short: a certain file half fetched
            # stays in the cache as a .part, and the real fetch resumes it.
            nursery.cancel_scope.cancel()
        planned, files = [], []
        for url in report_urls(report):
            if url.startswith("file:"):  # a direct file, or one of a --find-links folder
                planned.append(self._local[url].planned if url in self._local else _on_disk(url))
                continue
            f = local.upstream(url)
            if f is None:
                raise SegfetchError(f"pip chose {redact_url(url)}, which is not from the index")
            planned.append(planned_of(f, frozenset()))
            files.append(f)
        await self.check_python_version(files, reqs.pip_options)
        # What else pip took whole: a build environment's files (setuptools for an sdist).
        # The offline install builds again, from the same files.
        chosen = {p.url for p in planned}
        self.build_deps = [
            planned_of(f, frozenset()) for f in served.values() if f.url not in chosen
        ]
        point_urls(report, partial(self._origin, local))
        self.report = report
        return planned

    def warn(self, line: str) -> None:
        """One of pip's warning lines, where no installer after segfetch says it."""
        if self.warns:
            print(line, file=sys.stderr)

    def _origin(self, local: LocalIndex, url: str) -> str | None:
        """Where a file pip chose comes from: the upstream file behind a local index URL,
        or the URL of a direct file (pip is given its copy in the cache)."""
        if (f := local.upstream(url)) is not None:
            return f.url
        return self._local[url].planned.url if url in self._local else None

    async def _guess(self, name: str, *, ahead: Lookahead, nursery: trio.Nursery) -> None:
        """Read ahead what ``ahead`` hands out for this project now (on first sight, and
        again whenever a file's metadata told something new about it)."""
        files: list[IndexFile] = []  # (pip keeps what is installed, and asks no page)
        with contextlib.suppress(SegfetchError):  # pip asks for what it needs, hears why not
            files = [] if ahead.keeps(name) else await self.project(name)
        for f, certain in ahead.picks(name, files):
            nursery.start_soon(self._read_ahead, f, certain, ahead, nursery)

    async def _read_ahead(
        self, f: IndexFile, certain: bool, ahead: Lookahead, nursery: trio.Nursery
    ) -> None:
        certain = certain and self.whole_ahead
        if certain:
            nursery.start_soon(self._file_quietly, f)  # to be installed: all of it now
        if not f.filename.endswith(".whl"):
            return  # an sdist: pip builds it for its metadata; we cannot read ahead
        if not (certain or f.metadata):
            return  # no .metadata upstream: its METADATA would cost the whole wheel
        try:
            metadata = await self.metadata_of(f)
        except SegfetchError:
            return
        for dep in ahead.learn(f, metadata, certain) if metadata else ():
            nursery.start_soon(partial(self._guess, dep, ahead=ahead, nursery=nursery))

    async def _file_quietly(self, f: IndexFile) -> None:
        with contextlib.suppress(SegfetchError):
            await self.file_of(f)


def _direct_file(w: Wanted) -> IndexFile:
    """A direct URL's file, with the hash its fragment names (checked after the fetch)."""
    return IndexFile(w.filename, w.url, w.url_sha256, other_hash=w.url_other_hash)


def _project_of(f: IndexFile) -> str | None:
    parsed = parse_filename(f.filename)
    return parsed.name if parsed else None


def _on_disk(url: str) -> Planned:
    """A local file pip chose (a --find-links folder's, or a path given)."""
    path = file_url_path(url)
    return planned_of(IndexFile(path.name, url), frozenset())
