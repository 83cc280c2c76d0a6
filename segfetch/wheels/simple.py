"""What segfetch's index server answers, without sockets: the route of a request target,
the page format an Accept header asks for, and the pages (PEP 503 HTML, PEP 691 JSON, with
PEP 592 yanks and PEP 658/714 metadata). Pure.

The URL layout, stable across restarts (a file's URL names no upstream):

    /simple/                              the projects the indexes list, and those seen
    /simple/<project>/                    a project's page (HTML or JSON by Accept)
    /files/<project>/<filename>           a file listed on that page
    /files/<project>/<filename>.metadata  its METADATA (PEP 658)
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from packaging.utils import canonicalize_name

from segfetch.errors import is_file_url
from segfetch.wheels.dists import parse_filename
from segfetch.wheels.index import JSON_TYPE, IndexFile

HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"
_LATEST = {
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508


@dataclass(frozen=True)
class Root:
    pass


@dataclass(frozen=True)
class Page:
    project: str  # canonical


@dataclass(frozen=True)
class File:
    project: str
    filename: str
    metadata: bool = False  # the .metadata beside it


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class Refused:
    status: int  # 400: a target we never accept; 404: nothing there
    why: str


Route = Root | Page | File | Redirect | Refused


def route(target: str) -> Route:
    """Where a request target leads. Only origin-form targets (``/path``); every path
    segment is one plain name once percent-decoded (no ``..``, no slash, no NUL)."""
    if not target.startswith("/"):
        return Refused(400, "only /path request targets are served")
    path = target.partition("?")[0].partition("#")[0]
    try:
        parts = [unquote(p, errors="strict") for p in path.split("/")[1:]]
    except UnicodeDecodeError:
        return Refused(400, "a path that is not UTF-8")
    if any(_unsafe(p) for p in parts[:-1]) or (parts[-1] and _unsafe(parts[-1])):
        return Refused(400, "a path segment that is not a plain name")
    trailing = parts[-1] == ""
    parts = parts[:-1] if trailing and len(parts) > 1 else parts
    if parts == ["simple"]:
        return Root() if trailing else Redirect("/simple/")
    if len(parts) == 2 and parts[0] == "simple" and _NAME.match(parts[1]):
        name = canonicalize_name(parts[1])
        if name != parts[1] or not trailing:
            return Redirect(f"/simple/{name}/")
        return Page(name)
    if len(parts) == 4 and parts[0] == "files" and _SHA256.fullmatch(parts[2]):
        parts = [*parts[:2], f"{parts[2]}/{parts[3]}"]  # (a second file of that name: keys)
    if len(parts) == 3 and parts[0] == "files" and not trailing:
        project, filename = parts[1], parts[2]
        if _NAME.match(project) and canonicalize_name(project) == project:
            if filename.endswith(".metadata"):  # no distribution's name ends so
                return File(project, filename.removesuffix(".metadata"), metadata=True)
            return File(project, filename)
    return Refused(404, "not found")


def _unsafe(segment: str) -> bool:
    return segment in ("", ".", "..") or any(c in segment for c in "/\\\0")


def negotiate(accept: str | None) -> str | None:
    """The page format for an Accept header: JSON_TYPE, HTML_V1 or HTML; None: none of them
    is acceptable (a 406). No header: HTML, as PEP 503 clients expect. Equal preference
    (``*/*``: curl, requests): HTML, as PyPI answers it (pip and uv give each type a q)."""
    if not accept or not accept.strip():
        return HTML
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q = q if 0.0 <= q <= 1.0 else 0.0  # also NaN
        media = media.lower()
        ranges.append((_LATEST.get(media, media), q))
    best, best_q = None, 0.0
    for candidate in (HTML, HTML_V1, JSON_TYPE):
        q = _quality(candidate, ranges)
        if q > best_q:
            best, best_q = candidate, q
    return best


def _quality(media: str, ranges: Sequence[tuple[str, float]]) -> float:
    """q of the most specific range that matches (RFC 9110 12.5.1)."""
    kind = media.split("/")[0]
    for pattern in (media, f"{kind}/*", "*/*"):
        qs = [q for m, q in ranges if m == pattern]
        if qs:
            return max(qs)
    return 0.0


def content_type(media: str) -> str:
    return "text/html; charset=utf-8" if media == HTML else media


def unique(files: Iterable[IndexFile]) -> list[IndexFile]:
    """One entry per file name: the one pip would take of the links of that name. pip
    sorts equal candidates stably and takes the last, so of links alike it takes the last
    listed (the extra index's over the index's, the later of two links on one page); a
    yanked link gives way to one that is not. Before them, each other file of such a name
    and another sha256 (two indexes, other bytes under one name), its URL by its sha256
    (``keys``): pip, given both, takes the one its --hash names, as from the indexes, and
    else the last, as ever."""
    seen: dict[str, IndexFile] = {}
    every: dict[tuple[str, str | None], IndexFile] = {}
    for f in files:
        kept = seen.get(f.filename)
        if kept is None or f.yanked is None or kept.yanked is not None:
            seen[f.filename] = f
        if f.sha256:
            every.setdefault((f.filename, f.sha256), f)
    other = [f for (name, sha), f in every.items() if seen[name].sha256 not in (None, sha)]
    return [*other, *seen.values()]


def keys(files: Sequence[IndexFile]) -> list[str]:
    """Each file's name in our URLs: its file name; one listed before another file of that
    name (unique's others), its sha256 and name."""
    last = {f.filename: i for i, f in enumerate(files)}
    return [f.filename if last[f.filename] == i else f"{f.sha256}/{f.filename}"
            for i, f in enumerate(files)]  # fmt: skip


def file_href(project: str, key: str) -> str:
    """A file's URL relative to its project page (``key``: see keys)."""
    return f"../../files/{project}/{quote(key)}"


def _fragment(f: IndexFile) -> str:
    """The hash a client checks: the sha256, else the index's other one (md5, ...)."""
    if f.sha256:
        return f"#sha256={f.sha256}"
    return f"#{f.other_hash}" if f.other_hash else ""


def any_wheel(f: IndexFile) -> bool:
    return f.filename.endswith(".whl")  # from the upstream's .metadata, or the wheel itself


def metadata_at_once(f: IndexFile) -> bool:
    """Whether a .metadata is advertised: where the upstream has one, or the wheel is on a
    disk here (serve). Else the METADATA would come from the whole wheel, a client's request
    silent all the while (a large wheel on a slow uplink: past uv's and pip's timeouts);
    a client without it reads the wheel itself, which streams as it arrives."""
    return f.filename.endswith(".whl") and (bool(f.metadata) or is_file_url(f.url))


def render_page(
    media: str,
    project: str,
    files: Sequence[IndexFile],
    has_metadata: Callable[[IndexFile], bool] = any_wheel,
) -> bytes:
    """``has_metadata``: the files whose .metadata is advertised (PEP 658/714)."""
    if media == JSON_TYPE:
        sized = all(f.size is not None for f in files)  # PEP 700's 1.1 asks each file's
        doc: dict[str, object] = {"meta": {"api-version": "1.1" if sized else "1.0"}}
        doc["name"] = project
        if sized:  # (and the project's versions)
            parsed = (parse_filename(f.filename) for f in files)
            doc["versions"] = [str(v) for v in sorted({d.version for d in parsed if d})]
        named = zip(files, keys(files), strict=True)
        doc["files"] = [_json(project, f, key, has_metadata(f)) for f, key in named]
        return json.dumps(doc).encode()
    rows = []
    for f, key in zip(files, keys(files), strict=True):
        href = file_href(project, key) + _fragment(f)
        attrs = [f'href="{html.escape(href)}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
        if f.yanked is not None:
            attrs.append(f'data-yanked="{html.escape(f.yanked)}"')
        if has_metadata(f):
            attrs += ['data-dist-info-metadata="true"', 'data-core-metadata="true"']
        rows.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
    return _html(html.escape(project), rows)


def _json(project: str, f: IndexFile, key: str, metadata: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "filename": f.filename,
        "url": file_href(project, key),
        "hashes": dict([_fragment(f)[1:].split("=", 1)]) if _fragment(f) else {},
        "yanked": (f.yanked or True) if f.yanked is not None else False,
        # PEP 714's name only: pip 22.3 to 23.1 crash on a JSON "dist-info-metadata"
        # (they take its value for a "sha256=..." string).
        "core-metadata": metadata,
    }
    if f.requires_python:
        out["requires-python"] = f.requires_python
    if f.size is not None:
        out["size"] = f.size
    if f.upload_time:  # (pip's --uploaded-prior-to needs it)
        out["upload-time"] = f.upload_time
    return out


def render_root(media: str, projects: Iterable[str]) -> bytes:
    """The root page: each valid project name once (as first listed), linked canonically;
    an upstream's root is not trusted to hold only names."""
    names: dict[str, str] = {}
    for n in projects:
        if _NAME.match(n):
            names.setdefault(canonicalize_name(n), n)
    listed = sorted(names.items())
    if media == JSON_TYPE:
        doc = {"meta": {"api-version": "1.0"}, "projects": [{"name": n} for _, n in listed]}
        return json.dumps(doc).encode()
    rows = [f'<a href="{c}/">{html.escape(n)}</a><br/>' for c, n in listed]
    return _html("Simple index", rows)


def _html(title: str, rows: Sequence[str]) -> bytes:
    head = '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0">'
    return f"{head}<title>{title}</title></head><body>{''.join(rows)}</body></html>".encode()
