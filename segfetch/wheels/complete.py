"""Whether a pinned set is complete: every dependency its wheels' METADATA names (for the
target, with the extras asked for) satisfied inside the set or by what the environment
keeps. Install skips pip's resolver only for such a set; hash-checking mode requires one.
And whether the environment holds a set whole (``held_whole``): then nothing is resolved."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.parser import BytesParser

import trio
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from segfetch.errors import SegfetchError
from segfetch.wheels.dists import dependencies, marker_applies
from segfetch.wheels.files import Fetched, Planned, wheel_metadata
from segfetch.wheels.requirements import HashModeError, RequirementSet
from segfetch.wheels.select import misfit
from segfetch.wheels.target import Target


def extras_asked(reqs: RequirementSet, target: Target) -> dict[str, frozenset[str]]:
    """The extras asked for, by project, by the requirements whose marker holds there."""
    extras: dict[str, frozenset[str]] = {}
    for w in reqs.wanted_in(target.markers):
        key = canonicalize_name(w.req.name)
        extras[key] = extras.get(key, frozenset()) | frozenset(w.req.extras)
    return extras


async def check_hashed_set(
    fetched: Sequence[Fetched],
    reqs: RequirementSet,
    target: Target,
    warn: Callable[[str], None] | None = None,
) -> None:
    """A hashed set of wheels taken as complete (pip's hash mode requires every dependency
    pinned and hashed in it), checked from its verified wheels' METADATA: else stop as pip
    does. (A set with an sdist was planned by pip's resolver, which checked it.) ``warn``:
    given pip's warnings of the set (an extra a wheel does not provide); None: the
    installer says them."""
    if not all(f.path.name.endswith(".whl") for f in fetched):
        return
    metas = await trio.to_thread.run_sync(lambda: [wheel_metadata(f.path) for f in fetched])
    planned = [f.planned for f in fetched]
    read_as_pip(planned, metas, reqs, target, warn)
    if reqs.no_deps:  # pip looks at no dependency then, nor asks one to be hashed
        return
    # What the environment keeps (pins it holds already are not fetched) counts too.
    kept: Mapping[str, str] = target.installed if reqs.keeps_installed else {}
    if missing := missing_dependencies(planned, metas, extras_asked(reqs, target), target, kept):
        raise HashModeError(
            f"hash-checking mode: the set lacks {', '.join(missing)}; add each, pinned with "
            "== and with its --hash, as pip requires"
        )


def read_as_pip(
    planned: Sequence[Planned],
    metadata: Sequence[bytes | None],
    reqs: RequirementSet,
    target: Target,
    warn: Callable[[str], None] | None,
) -> None:
    """What pip's resolver says of a pinned set's wheels by their METADATA, where the set
    goes without it: a Requires-Python that excludes the target's Python stops the set (a
    pin skips the page's check where the page does not say it); an extra a wheel does not
    provide gets pip's warning (``warn``; None: the installer says it)."""
    version = target.python_version
    found = [misfit(p.filename, m, version) for p, m in zip(planned, metadata, strict=True)]
    if (why := sorted(w for w in found if w)) and not reqs.ignore_requires_python:
        raise SegfetchError(f"{'; '.join(why)}: pin a release that fits, or use another Python")
    if warn is not None:
        for line in lacking_extras(planned, metadata, extras_asked(reqs, target)):
            warn(line)


def upgrading(reqs: RequirementSet) -> bool:
    """-U among an install's options: pip takes the newest that fits of what it was asked
    for (all with --upgrade-strategy eager), not what is installed."""
    return bool({"-U", "--upgrade"} & set(reqs.installed or []))


def held_whole(reqs: RequirementSet, target: Target) -> bool:
    """Whether pip would install nothing, with no look at an index: every requirement, and
    every dependency of theirs (the installed Requires-Dist, with the extras asked for), is
    installed in a version that fits it and the constraints, and no upgrade or reinstall is
    asked. Where pip would stop on something (a constraint with extras, an installed
    Requires-Dist it cannot read) or must look further (an egg's unknown Requires-Dist,
    direct URLs, -e and paths), the resolver decides; so it does in hash-checking mode (the
    pinned set's rule). Pure."""
    if upgrading(reqs) or not reqs.keeps_installed or reqs.require_hashes or not reqs.wanted:
        return False
    if reqs.direct or reqs.handed or any(c.req.extras or c.req.url for c in reqs.constraints):
        return False
    return held_closure(reqs, target, [w.req for w in reqs.wanted_in(target.markers)])


def held_closure(
    reqs: RequirementSet,
    target: Target,
    roots: Iterable[Requirement],
    planned: Iterable[str] = (),
) -> bool:
    """Whether each of ``roots``, and each dependency of theirs (the installed Requires-Dist,
    with the extras asked for), is installed in a version that fits it and the constraints,
    or (a dependency) among the ``planned`` projects (canonical names), whose own
    dependencies the plan checks. Pure."""
    todo, fetched = list(roots), set(planned)
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in fetched:
            continue
        have, deps = target.installed.get(name), target.requires.get(name)
        spec = req.specifier
        for c in reqs.constraints_for(name, target.markers):
            spec &= c.req.specifier
        try:
            if have is None or deps is None or not spec.contains(Version(have), prereleases=True):
                return False
        except InvalidVersion:
            return False
        if (name, frozenset(req.extras)) not in seen:
            seen.add((name, frozenset(req.extras)))
            try:
                parsed = [Requirement(d) for d in deps]
            except InvalidRequirement:
                return False  # (pip stops at it: its words, from the resolver)
            todo += [d for d in parsed if marker_applies(d.marker, target.markers, req.extras)]
    return True


def lacking_extras(
    planned: Sequence[Planned],
    metadata: Sequence[bytes | None],
    extras: Mapping[str, frozenset[str]],
) -> list[str]:
    """pip's warning for each extra asked of a file whose METADATA provides no such extra
    (pip's resolver says it; a pinned set goes without the resolver). Pure."""
    said = []
    for p, meta in zip(planned, metadata, strict=True):
        name = canonicalize_name(p.name)
        if meta and (asked := extras.get(name)):
            headers = BytesParser().parsebytes(meta, headersonly=True)
            said += _lacking(name, p.version, asked, headers.get_all("Provides-Extra") or [])
    return said


def _lacking(name: str, version: str, asked: Iterable[str], provided: Iterable[str]) -> list[str]:
    """pip's words for each extra ``asked`` of a project that ``provided`` lacks."""
    known = {canonicalize_name(e) for e in provided}
    return [
        f"WARNING: {name} {version} does not provide the extra '{extra}'"
        for extra in sorted(e for e in asked if canonicalize_name(e) not in known)
    ]


def held_lacking_extras(reqs: RequirementSet, target: Target) -> list[str]:
    """pip's warning for each extra asked of a project the environment holds, and pip keeps,
    whose installed METADATA provides no such extra: pip says it though nothing is
    installed (uv says nothing). Pure."""
    if not reqs.keeps_installed or upgrading(reqs):
        return []
    said = []
    for w in reqs.wanted:
        name = canonicalize_name(w.req.name)
        have, provided = target.installed.get(name), target.extras.get(name)
        if have is None or provided is None or not marker_applies(w.req.marker, target.markers):
            continue
        with contextlib.suppress(InvalidVersion):
            if not w.req.specifier.contains(Version(have), prereleases=True):
                continue  # (not kept: the installer installs another version, and says it)
        said += _lacking(name, have, w.req.extras, provided)
    return said


def missing_dependencies(
    planned: Sequence[Planned],
    metadata: Sequence[bytes | None],
    extras: Mapping[str, frozenset[str]],
    target: Target,
    kept: Mapping[str, str] | None = None,
) -> list[str]:
    """What the pinned set leaves out: each dependency (for the target, with the extras
    asked for) that no file of the set satisfies, nor a version ``kept`` installed (by
    canonical name). A file whose metadata is unknown (an sdist) leaves the set unknown:
    ``["<name>: dependencies unknown"]``. Pure."""
    versions: dict[str, str] = dict(kept or {})
    versions.update((canonicalize_name(p.name), p.version) for p in planned)
    # A dependency's extras (selenium's urllib3[socks]) select that file's extra
    # dependencies too, as pip's resolver takes them: followed through the set until
    # nothing more is asked.
    wanted = dict(extras)
    grew = True
    while grew:
        grew = False
        for p, meta in zip(planned, metadata, strict=True):
            if meta is None:
                continue
            asked = wanted.get(canonicalize_name(p.name), frozenset())
            for dep in dependencies(meta, target, asked):
                key = canonicalize_name(dep.name)
                if dep.extras and not set(dep.extras) <= wanted.get(key, frozenset()):
                    wanted[key] = wanted.get(key, frozenset()) | frozenset(dep.extras)
                    grew = True
    missing = []
    for p, meta in zip(planned, metadata, strict=True):
        if meta is None:
            missing.append(f"{p.name}: dependencies unknown")
            continue
        for dep in dependencies(meta, target, wanted.get(canonicalize_name(p.name), frozenset())):
            have = versions.get(canonicalize_name(dep.name))
            if have is None or not dep.specifier.contains(have, prereleases=True):
                missing.append(f"{dep} (for {p.name})")
    return missing


def not_installed(
    planned: Sequence[Planned], reqs: RequirementSet, target: Target
) -> list[Planned]:
    """What pip takes of a complete pinned set: not a pin the target environment already
    holds at that version (pip's "Requirement already satisfied"), unless told to
    reinstall. Pure."""
    if not reqs.keeps_installed:
        return list(planned)
    return [p for p in planned if not target.holds(p.name, p.version)]
