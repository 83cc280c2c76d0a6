"""The simple index's pages: /simple/ and /simple/<project>/, PEP 691 JSON or PEP 503 HTML as
the client's Accept prefers (content negotiation as on PyPI)."""

from __future__ import annotations

import html
import json
import urllib.parse
from dataclasses import dataclass, field

from segfetch.testing.emulator.index import IndexFile, IndexOptions, normalize

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


@dataclass(frozen=True)
class Page:
    """An answer to a /simple/ path: a page (body), or a short status reply (body None)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None


def page(
    every: list[IndexFile], path: str, accept: str | None, opts: IndexOptions, files_url: str
) -> Page:
    """The answer to `path` (/simple or below) for an index of `every` file; `files_url` is the
    absolute URL of /files/ (for opts.absolute_urls)."""
    rest = path.removeprefix("/simple").strip("/")
    if "/" in rest:
        return Page(404)
    project = normalize(rest)
    files = [f for f in every if f.project == project]
    if rest and not files:
        return Page(404)
    canonical = f"/simple/{project}/" if rest else "/simple/"
    if path != canonical:  # as PyPI does for a non-normalized name or a missing slash
        return Page(301, [("Location", canonical)])
    media = negotiate(accept, opts)
    if not rest:
        names = sorted({f.project for f in every})
        body = render_list(names, media)
    else:
        base = files_url if opts.absolute_urls else "../../files/"
        body = render_project(project, files, media, opts, base)
    return Page(200, [("Content-Type", media), ("Vary", "Accept")], body)


def negotiate(accept: str | None, opts: IndexOptions) -> str:
    """The media type to answer: the offer with the highest q (JSON on a tie); HTML when the
    client accepts none (PEP 691 allows a default), or the one format enabled. A bare `*/*`
    (curl, browsers, httpx) gets HTML, as on PyPI: JSON must be asked for by name."""
    if not opts.html:
        return JSON_TYPE
    offers = [JSON_TYPE, "text/html", HTML_TYPE] if opts.json else ["text/html", HTML_TYPE]
    ranges = _parse_accept(accept or "text/html")
    best, best_q = "text/html", 0.0
    for offer in offers:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    return best


def _parse_accept(header: str) -> list[tuple[str, float]]:
    out = []
    for part in header.split(","):
        media, *params = (x.strip() for x in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not 0.0 <= q <= 1.0:  # also nan
            q = 0.0
        if media:
            out.append((media.lower().replace(".latest+", ".v1+"), q))
    return out


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """q of the most specific media range that matches the offer (RFC 9110 12.5.1)."""
    major = offer.partition("/")[0]
    matches = (
        {offer: 2, f"{major}/*": 1} if offer == JSON_TYPE else {offer: 2, f"{major}/*": 1, "*/*": 0}
    )
    best_spec, q = -1, 0.0
    for media, mq in ranges:
        spec = matches.get(media, -1)
        if spec > best_spec:
            best_spec, q = spec, mq
    return q


def render_list(names: list[str], media: str) -> bytes:
    if media == JSON_TYPE:
        doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
        return json.dumps(doc).encode()
    links = "".join(f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br>\n' for n in names)
    return _html_page("Simple index", links)


def render_project(
    project: str, files: list[IndexFile], media: str, opts: IndexOptions, base: str
) -> bytes:
    entries = []
    for f in files:
        url = base + urllib.parse.quote(f.filename)
        if opts.hashes_in in ("fragment", "both"):
            url += f"#sha256={f.sha256}"
        hashes = {"sha256": f.sha256} if opts.hashes_in in ("hashes", "both") else {}
        yanked = opts.yanked.get(f.filename)
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": url,
            "hashes": hashes,
            "requires-python": f.requires_python,
            "yanked": False if yanked is None else (yanked or True),
            "size": f.size,
            "upload-time": f.upload_time,
        }
        if opts.advertise_metadata:
            md = {"sha256": f.metadata_sha256} if opts.metadata and f.metadata_sha256 else False
            entry["core-metadata"] = entry["dist-info-metadata"] = md
        entries.append(entry)
    if media == JSON_TYPE:
        versions = sorted({f.version for f in files})
        doc = {
            "meta": {"api-version": "1.1"},
            "name": project,
            "files": entries,
            "versions": [str(v) for v in versions],
        }
        return json.dumps(doc).encode()
    links = []
    for entry in entries:
        attrs = [("href", str(entry["url"]))]
        if entry["requires-python"] is not None:
            attrs.append(("data-requires-python", str(entry["requires-python"])))
        if entry["yanked"] is not False:
            attrs.append(("data-yanked", opts.yanked[str(entry["filename"])]))
        advertised = entry.get("core-metadata")
        if isinstance(advertised, dict):
            value = f"sha256={advertised['sha256']}"
            attrs += [("data-core-metadata", value), ("data-dist-info-metadata", value)]
        text = " ".join(f'{k}="{html.escape(v)}"' for k, v in attrs)
        links.append(f"    <a {text}>{html.escape(str(entry['filename']))}</a><br>\n")
    return _html_page(f"Links for {project}", "".join(links))


def _html_page(title: str, body: str) -> bytes:
    t = html.escape(title)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>{t}</title>\n  </head>\n  <body>\n    <h1>{t}</h1>\n"
        f"{body}  </body>\n</html>\n"
    ).encode()
