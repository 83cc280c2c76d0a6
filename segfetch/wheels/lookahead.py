"""What segfetch reads ahead of pip's resolver, decided with no I/O.

pip walks the dependency graph one request at a time; segfetch reads ahead so that pip finds
what it asks for already here. But bytes read ahead for a file pip does not install are
lost, so (``Lookahead.picks``):

- A *guess* (the file pip will most likely choose) honours every specifier known for the
  project: the user's requirements, every constraint, and the Requires-Dist of each parent
  whose metadata named it, intersected (should the parents disagree, the latest one alone;
  if no file fits, no guess). Of a guess only its metadata is read ahead, a small
  ``.metadata`` file, and only where the index has one: reading a wheel's METADATA costs
  the whole wheel, so there the guess stops, and pip asks for what it really needs.
- A whole file is fetched ahead only where it is *certain* to be installed: the project is
  needed for sure (the user asked for it, or a certain file requires it: its Requires-Dist
  for the target, with the extras asked for) and what surely applies to it (the user's
  specifiers, the constraints, certain parents' Requires-Dist) leaves exactly one version.
  Any successful resolution then holds that file. Not when pip chooses for another
  interpreter (``--platform`` & co.): its tags are not the target's. And not before the
  page of every project the user asked for is in, each with a file that fits: a set where
  one does not (a pin with no such version, a project the index does not have) fails to
  resolve, and pip alone fetches no wheel of it.

``learn`` takes a file's metadata and answers the projects that it told something new about;
the caller asks ``picks`` for each again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from segfetch.wheels.complete import upgrading
from segfetch.wheels.dists import dependencies, marker_applies, parse_filename
from segfetch.wheels.index import IndexFile
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.select import NoMatch, candidates, choose
from segfetch.wheels.target import Target
from segfetch.wheels.wanted import Wanted


@dataclass
class _Known:
    """What is known of one project before pip says."""

    base: SpecifierSet  # the user's requirements and the constraints
    hashes: frozenset[str] = frozenset()  # the user's --hash, if any
    declared: SpecifierSet = field(default_factory=SpecifierSet)  # every parent's, intersected
    last: SpecifierSet | None = None  # the latest parent's
    extras: set[str] = field(default_factory=set)  # asked for by anyone
    needed: bool = False  # for sure in the result
    sure: SpecifierSet = field(default_factory=SpecifierSet)  # from certain parents
    sure_extras: set[str] = field(default_factory=set)  # asked for by the user or certain parents


def spelled_alike(extras: set[str]) -> set[str]:
    """The extras every pip matches alike: one word of letters and digits. pip before 23.3
    does not normalize extras (PEP 685), so ``requests[use_chardet_on_py3]`` selects
    nothing of a wheel whose Provides-Extra is ``use-chardet-on-py3``, where a newer pip
    (PEP 685) takes chardet: no file is certain by an extra with ``-``, ``_`` or ``.``."""
    return {e for e in extras if e.isascii() and e.isalnum()}


class Lookahead:
    def __init__(self, reqs: RequirementSet, target: Target) -> None:
        self.reqs, self.target = reqs, target
        self._known: dict[NormalizedName, _Known] = {}
        self._handed: dict[str, bool] = {}  # URL -> handed out as certain
        self._learned: dict[str, tuple[NormalizedName, bytes]] = {}  # URL -> metadata
        self._sure_urls: set[str] = set()  # files learned as certain
        self._edges: set[tuple[str, str, bool]] = set()  # (URL, dependency, certain) seen
        self.roots: list[str] = []  # the user's projects, in order
        self._fits: dict[NormalizedName, bool] = {}  # a root's page: has a file that fits?
        self._files: dict[NormalizedName, Sequence[IndexFile]] = {}  # each page, as last seen
        for w in reqs.wanted:
            if not marker_applies(w.req.marker, target.markers):
                continue
            k = self._project(w.req.name)
            if not k.needed:
                self.roots.append(w.req.name)
            k.needed = True
            k.base &= w.req.specifier
            k.extras |= w.req.extras
            k.sure_extras |= spelled_alike(w.req.extras)
            k.hashes = k.hashes & w.hashes if k.hashes and w.hashes else k.hashes or w.hashes
        self._root_keys = {canonicalize_name(r) for r in self.roots}

    def _project(self, name: str) -> _Known:
        key = canonicalize_name(name)
        if key not in self._known:
            base = SpecifierSet()
            for c in self.reqs.constraints_for(key, self.target.markers):
                base &= c.req.specifier
            self._known[key] = _Known(base)
        return self._known[key]

    def picks(self, name: str, files: Sequence[IndexFile]) -> list[tuple[IndexFile, bool]]:
        """What to read ahead now, each file once (and once more when it becomes certain):
        ``(file, certain)``. Certain: fetch it whole. Else: its metadata only. ``files``:
        this project's (none: it has no page); the last root page to come in may make
        files of other projects certain too."""
        key = canonicalize_name(name)
        self._files[key] = files
        if key in self._root_keys and key not in self._fits:
            self._fits[key] = self._fit(key, files)
            if self._open():  # the last root page: what waited for it may be certain now
                return [p for n, fs in self._files.items() for p in self._pick(n, fs)]
        return self._pick(key, files)

    def _open(self) -> bool:
        """Every root's page is in, each with a file that fits: certain files may be
        fetched whole."""
        return self._fits.keys() >= self._root_keys and all(self._fits.values())

    def _fit(self, name: str, files: Sequence[IndexFile]) -> bool:
        """Whether a file on the page fits the user's specifiers and the constraints, or
        what is installed does where pip keeps it."""
        k = self._project(name)
        req = Requirement(name)
        req.specifier = k.base
        try:
            return bool(
                candidates(Wanted(req, k.hashes), files, self.target, how=self.reqs.choosing(name))
            )
        except NoMatch:
            have = self.target.installed.get(name)
            try:
                return (
                    self.reqs.keeps_installed
                    and have is not None
                    and k.base.contains(Version(have), prereleases=True)
                )
            except InvalidVersion:
                return False

    def _pick(self, name: str, files: Sequence[IndexFile]) -> list[tuple[IndexFile, bool]]:
        k = self._project(name)
        sure = self._certain(name, k, files)
        if sure is not None:
            if self._handed.get(sure.url):
                return []
            self._handed[sure.url] = True
            return [(sure, True)]
        guess = self._guess(name, k, files)
        if guess is None or guess.url in self._handed:
            return []
        self._handed[guess.url] = False
        return [(guess, False)]

    def _choose(
        self, name: str, k: _Known, spec: SpecifierSet, files: Sequence[IndexFile]
    ) -> IndexFile | None:
        req = Requirement(canonicalize_name(name))
        req.specifier = spec
        try:
            return choose(
                Wanted(req, k.hashes), files, self.target, how=self.reqs.choosing(name)
            ).file
        except NoMatch:
            return None

    def _guess(self, name: str, k: _Known, files: Sequence[IndexFile]) -> IndexFile | None:
        pick = self._choose(name, k, k.base & k.declared, files)
        if pick is None and k.last is not None:
            pick = self._choose(name, k, k.base & k.last, files)
        return pick

    def _certain(self, name: str, k: _Known, files: Sequence[IndexFile]) -> IndexFile | None:
        if not k.needed or self.reqs.foreign_target or not self._open():
            return None
        req = Requirement(canonicalize_name(name))
        req.specifier = k.base & k.sure
        how = self.reqs.choosing(name)
        try:
            found = candidates(Wanted(req, k.hashes), files, self.target, how=how)
        except NoMatch:
            return None
        if len({c.version for c in found}) != 1:
            return None
        if self._kept(name, req.specifier, found[0].version):
            return None  # pip keeps what is installed, fetches nothing
        return choose(Wanted(req, k.hashes), files, self.target, how=how).file

    def keeps(self, name: str) -> bool:
        """Whether pip keeps the installed version of this project without a look at the
        index (it fits every specifier known, and no upgrade applies to it): its page is
        not asked for, and it counts as a page with none to fetch."""
        k = self._project(name)
        return self._kept(name, k.base & k.declared, None)

    def _kept(self, name: str, spec: SpecifierSet, best: Version | None) -> bool:
        """Whether pip keeps the installed version of this project: it fits the specifiers
        and no upgrade applies to it (-U for the user's projects, all with
        --upgrade-strategy eager), or it is no older than ``best``, the best the index has."""
        have = self.target.installed.get(canonicalize_name(name))
        if not self.reqs.keeps_installed or have is None:
            return False
        try:
            version = Version(have)
        except InvalidVersion:
            return False
        if not spec.contains(version, prereleases=True):
            return False
        return (best is not None and version >= best) or not self._upgrades(name)

    def _upgrades(self, name: str) -> bool:
        if not upgrading(self.reqs):
            return False
        options = self.reqs.installed or []
        eager = any(
            word == "--upgrade-strategy=eager" or (word, nxt) == ("--upgrade-strategy", "eager")
            for word, nxt in zip(options, [*options[1:], ""], strict=True)
        )
        roots = {canonicalize_name(r) for r in self.roots}
        return eager or canonicalize_name(name) in roots

    def learn(self, f: IndexFile, metadata: bytes, certain: bool) -> set[str]:
        """A file's METADATA (``certain``: the file is): what it requires is now known.
        Returns the projects this told something new about."""
        parsed = parse_filename(f.filename)
        if parsed is None or self.reqs.no_deps:
            return set()  # --no-deps: pip looks at no dependency
        self._learned[f.url] = (parsed.name, metadata)
        if certain:
            self._sure_urls.add(f.url)
        changed: set[str] = set()
        work = [f.url]
        while work:
            url = work.pop()
            name, meta = self._learned[url]
            k = self._project(name)
            edges = [(dep, False) for dep in dependencies(meta, self.target, k.extras)]
            if url in self._sure_urls:
                edges += [(dep, True) for dep in dependencies(meta, self.target, k.sure_extras)]
            for dep, sure in edges:
                if (url, str(dep), sure) in self._edges:
                    continue
                self._edges.add((url, str(dep), sure))
                key = canonicalize_name(dep.name)
                d = self._project(key)
                grew = not (spelled_alike(dep.extras) if sure else dep.extras) <= (
                    d.sure_extras if sure else d.extras
                )
                if sure:
                    d.needed = True
                    d.sure &= dep.specifier
                    d.sure_extras |= spelled_alike(dep.extras)
                else:
                    d.declared &= dep.specifier
                    d.last = dep.specifier
                    d.extras |= dep.extras
                changed.add(key)
                if grew:  # more of its files' Requires-Dist apply now
                    work += [u for u, (n, _) in self._learned.items() if n == key]
        return changed
