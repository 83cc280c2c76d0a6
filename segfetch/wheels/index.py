"""The simple repository API: PEP 691 JSON, PEP 503 HTML, PEP 592 yanks, PEP 658 metadata.

Parsing is pure; ``fetch_page`` (behind ``fetch_project`` and ``fetch_projects``) is the one
function here that does network I/O (and, with a page cache, disk I/O through ``pages.py``);
a ``file:`` index's pages it reads from disk.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import httpx
import trio
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from segfetch.engine.download import Slots

from segfetch.engine import failures
from segfetch.engine.retry import Budget, RetryPolicy
from segfetch.errors import DownloadError, HTTPStatusError, file_url_path, redact_url
from segfetch.units import OTHER_HASHES, is_digest, is_sha256
from segfetch.wheels.pages import Page, PageCache, page_of, storable

# The archive types pip's link evaluator considers (pip._internal.utils.filetypes); a link
# to anything else ("../", a folder, a .metadata or .asc file) is not a distribution.
DIST_EXTENSIONS: tuple[str, ...] = (".whl", ".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2")
DIST_EXTENSIONS += (".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


# Hashes pip checks besides sha256 (hashlib's guaranteed ones), the strongest first.
BIG_PAGE = 1 << 20  # bytes of a page parsed in a thread
T = TypeVar("T")
Parse = Callable[[bytes, str, str], T]  # (body, Content-Type, page URL) -> what the page says


class IndexPageError(DownloadError):
    """The index answered something that is not a usable project page."""


class _MalformedHash(IndexPageError):
    """One entry's sha256 is no sha256: that file is left out, the page stays usable (pip
    would fail on that file alone, and only if it chose it)."""


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None = None
    requires_python: str | None = None
    yanked: str | None = None  # the reason ("" if none given); None if not yanked
    size: int | None = None
    metadata: bool = False  # a PEP 658 .metadata file is advertised
    metadata_sha256: str | None = None  # what it must hash to, where the index says
    # "name=hex" of another hash where the index gives no sha256 (pip checks those too)
    other_hash: str | None = None
    upload_time: str | None = None  # ISO 8601, as the index wrote it (PEP 700: JSON only)


def project_url(index_url: str, name: str) -> str:
    return index_url.rstrip("/") + "/" + canonicalize_name(name) + "/"


def parse_page(body: bytes, content_type: str, page_url: str) -> list[IndexFile]:
    """Files of a project page, JSON or HTML by its Content-Type."""
    media = content_type.split(";")[0].strip().lower()
    try:
        if media == JSON_TYPE:
            return parse_json(json.loads(body), page_url)
        if media in ("text/html", "application/vnd.pypi.simple.v1+html"):
            return parse_html(body.decode("utf-8", errors="replace"), page_url)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise IndexPageError(
            f"{redact_url(page_url)} is not a valid project page ({exc})"
        ) from None
    raise IndexPageError(
        f"{redact_url(page_url)} answered {media or 'no content type'}, not an index page"
    )


def parse_root(body: bytes, content_type: str, page_url: str) -> list[str]:
    """Project names of an index's root page (PEP 691 ``projects``, or PEP 503 anchors)."""
    media = content_type.split(";")[0].strip().lower()
    try:
        if media == JSON_TYPE:
            return [str(p["name"]) for p in json.loads(body)["projects"]]
        if media in ("text/html", "application/vnd.pypi.simple.v1+html"):
            anchors, _ = _anchors(body.decode("utf-8", errors="replace"))
            return [_root_name(attrs.get("href") or "", text) for attrs, text in anchors if text]
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexPageError(f"{redact_url(page_url)} is not a valid root page ({exc})") from None
    raise IndexPageError(f"{redact_url(page_url)} answered {media or 'no content type'}")


def _root_name(href: str, text: str) -> str:
    """A project's name in a root page: the link's text (PEP 503), or where that is a
    folder listing's ("alpha/", and over 50 characters nginx's autoindex cuts it: "..>"),
    the link's last path segment."""
    if not text.endswith(("/", "..>")):
        return text
    return unquote(href.split("?")[0].rstrip("/").rpartition("/")[2])


def parse_json(data: dict[str, object], page_url: str) -> list[IndexFile]:
    files = data["files"]
    if not isinstance(files, list):
        raise ValueError("'files' is not a list")
    out = []
    for f in files:
        hashes = f.get("hashes") or {}
        yanked = f.get("yanked", False)
        size = f.get("size")
        metadata = f.get("core-metadata", f.get("dist-info-metadata", False))
        hashes = hashes if isinstance(hashes, dict) else {}
        sha = hashes.get("sha256")
        other = next((f"{n}={hashes[n]}" for n in OTHER_HASHES if hashes.get(n)), None)
        out += _unless_malformed(
            partial(
                _file,
                str(f["filename"]),
                str(f["url"]),
                page_url,
                # The JSON's hashes win over the URL's #sha256=, even when empty.
                sha256=None if sha is None else str(sha or ""),
                requires_python=f.get("requires-python") or None,
                yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
                size=size if isinstance(size, int) and size >= 0 else None,
                metadata=metadata,
                other_hash=None if sha is not None else other,
                upload_time=f.get("upload-time") or None,
            )
        )
    return out


def _unless_malformed(entry: Callable[[], IndexFile]) -> list[IndexFile]:
    """The entry, or none where its sha256 is malformed."""
    try:
        return [entry()]
    except _MalformedHash:
        return []


def _anchors(text: str) -> tuple[list[tuple[dict[str, str | None], str]], str | None]:
    """The <a> elements of a page (attributes and text), and its <base href> if any.
    (html.parser is loaded only for an HTML page: JSON pages, most of them, never need it.)"""
    from html.parser import HTMLParser

    class Anchors(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.anchors: list[tuple[dict[str, str | None], str]] = []
            self._open: dict[str, str | None] | None = None
            self._text = ""
            self.base: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self._open, self._text = dict(attrs), ""
            elif tag == "base" and self.base is None:
                self.base = dict(attrs).get("href")

        def handle_data(self, data: str) -> None:
            if self._open is not None:
                self._text += data

        def handle_endtag(self, tag: str) -> None:
            if tag == "a" and self._open is not None:
                self.anchors.append((self._open, self._text.strip()))
                self._open = None

    parser = Anchors()
    parser.feed(text)
    return parser.anchors, parser.base


def parse_html(text: str, page_url: str) -> list[IndexFile]:
    """Files of a PEP 503 page, or of any page of links such as a server's folder listing:
    links that are not distribution files are skipped, as pip skips them."""
    out = []
    anchors, base = _anchors(text)
    base = urljoin(page_url, base) if base else page_url  # an HTML <base href>, as pip
    for attrs, label in anchors:
        href = attrs.get("href")
        if not href:
            continue
        filename = _link_filename(label, urljoin(base, href))
        if filename is None:
            continue
        # (bare, it is yanked, with no reason: PEP 592 asks only that it be there, as uv
        # reads it; pip's parser sees None there and misses it)
        yanked = (attrs["data-yanked"] or "") if "data-yanked" in attrs else None
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        out += _unless_malformed(
            partial(
                _file,
                filename,
                urljoin(base, href),
                page_url,
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                metadata=metadata if metadata != "false" else False,
            )
        )
    return out


def _link_filename(label: str, url: str) -> str | None:
    """The file name a link stands for: the last part of its URL, as pip reads links (the
    text may say otherwise, or be cut, as nginx's autoindex cuts texts over 50 characters
    to "...>"); its text only where the URL names no file. None when neither is a
    distribution file."""
    path = urlsplit(url).path
    for name in (unquote(path.rstrip("/").rpartition("/")[2]), label):
        if name.lower().endswith(DIST_EXTENSIONS):
            return name  # _file refuses it if it would escape its folder
    return None


def _unsafe(filename: str) -> bool:
    """A name that is no single file name in a folder: it could write outside it."""
    return (
        not filename
        or "/" in filename
        or "\\" in filename
        or "\0" in filename
        or filename in (".", "..")
    )


def _file(
    filename: str,
    href: str,
    page_url: str,
    *,
    sha256: str | None = None,
    requires_python: str | None = None,
    yanked: str | None = None,
    size: int | None = None,
    metadata: object = False,
    other_hash: str | None = None,
    upload_time: object = None,
) -> IndexFile:
    """One file entry, checked: a safe file name, no https -> http downgrade, well-formed
    hashes. ``metadata``: PEP 658/714's value (true, "sha256=HEX", {"sha256": HEX})."""
    if _unsafe(filename):
        raise IndexPageError(f"{redact_url(page_url)} lists an unsafe file name {filename!r}")
    url, fragment = urldefrag(urljoin(page_url, href))
    if urlsplit(page_url).scheme == "https" and urlsplit(url).scheme != "https":
        raise IndexPageError(
            f"{redact_url(page_url)} links {filename} over plain http; refusing the downgrade"
        )
    if sha256 is None and fragment.startswith("sha256="):
        sha256 = fragment.removeprefix("sha256=")
    sha = sha256.lower() if sha256 else None
    if sha is not None and not is_sha256(sha):
        raise _MalformedHash(f"{redact_url(page_url)} gives {filename} a malformed sha256")
    if sha is None and other_hash is None:
        other_hash = fragment if fragment.partition("=")[0] in OTHER_HASHES else None
    if other_hash is not None and not _well_formed(other_hash):
        other_hash = None  # as pip: a hash it cannot read is no hash (the sha256 is checked)
    advertised, metadata_sha = _metadata(metadata)
    return IndexFile(
        filename, url, sha, requires_python, yanked, size, advertised, metadata_sha,
        other_hash and other_hash.lower(), upload_time if isinstance(upload_time, str) else None,
    )  # fmt: skip


def _metadata(value: object) -> tuple[bool, str | None]:
    """Whether a .metadata is advertised, and its sha256 where the index gives it."""
    if isinstance(value, dict):
        digest = value.get("sha256")
    elif isinstance(value, str):
        algorithm, _, digest = value.partition("=")
        digest = digest if algorithm.strip().lower() == "sha256" else None
    else:
        return bool(value), None
    digest = digest.strip().lower() if isinstance(digest, str) else None
    return True, digest if digest and is_sha256(digest) else None


def _well_formed(named: str) -> bool:
    """ "name=hex" of one of OTHER_HASHES, of that hash's length."""
    name, _, digest = named.lower().partition("=")
    return name in OTHER_HASHES and is_digest(name, digest)


async def fetch_project(
    client: httpx.AsyncClient,
    index_url: str,
    name: str,
    policy: RetryPolicy | None = None,
    slots: Slots | None = None,
    pages: PageCache | None = None,
    *,
    recheck: bool = False,
) -> list[IndexFile]:
    """The files an index lists for a project, retried over a flaky link. A request holds a
    place in ``slots`` (the connection budget shared with the downloads) while it runs.

    Pages are asked for compressed (the client's default, identity, is for file ranges).
    With ``pages``, a stored page still fresh is used with no request (``recheck``: ask
    anyway), an older one is revalidated (a 304 keeps it), and a new one replaces it."""
    return await fetch_page(
        client, project_url(index_url, name), f"no project {name!r} on {redact_url(index_url)}",
        parse_page, policy, slots, pages, recheck=recheck,
    )  # fmt: skip


async def fetch_projects(
    client: httpx.AsyncClient,
    index_url: str,
    policy: RetryPolicy | None = None,
    slots: Slots | None = None,
    pages: PageCache | None = None,
) -> list[str]:
    """The project names an index's root page lists."""
    url = index_url.rstrip("/") + "/"
    where = f"{redact_url(url)} lists no projects"
    return await fetch_page(client, url, where, parse_root, policy, slots, pages)


async def fetch_page(
    client: httpx.AsyncClient,
    url: str,
    not_found: str,
    parse: Parse[T],
    policy: RetryPolicy | None = None,
    slots: Slots | None = None,
    pages: PageCache | None = None,
    *,
    recheck: bool = False,
) -> T:
    """What ``parse`` reads in a page: the files a page of links lists (``parse_page``:
    fetch_project's, or a ``--find-links`` page), or an index's projects (``parse_root``);
    ``not_found``: what a 404 says."""
    if url[:5].lower() == "file:":
        return await _local_page(url, not_found, parse)
    stored: Page | None = None
    stored_files: T | None = None
    if pages is not None and (stored := pages.load(url)) is not None:
        stored_files = await _off_loop(_parse_stored, stored, parse, size=len(stored.body))
        if stored_files is None:
            stored = None  # unreadable now (the parser changed): as if none
        elif not recheck and stored.fresh(time.time()) and pages.takes_fresh(url):
            pages.unasked.add(url)
            return stored_files
    headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
    if stored is not None:
        headers.update(stored.validators())
    budget = Budget(policy or RetryPolicy(), random.Random())
    while True:
        try:
            if slots is not None:
                await slots.acquire()
            try:
                response = await client.get(url, headers=headers, follow_redirects=True)
            finally:
                if slots is not None:
                    slots.release()
        except httpx.TransportError as exc:
            failure = failures.from_transport(exc, url)
            if failure.retry:  # ("ConnectError: ...": which page, and so that it is the index)
                failure = replace(failure, message=f"page {redact_url(url)}: {failure.message}")
        except httpx.DecodingError:  # a compressed page damaged on the way: ask again
            failure = failures.Failure(f"{redact_url(url)}: a damaged compressed page", True)
        else:
            status = response.status_code
            if status == 304 and stored is not None and stored_files is not None:
                assert pages is not None  # a stored page came from it
                await _keep(pages, stored.revalidated(response.headers, time.time()), response)
                return stored_files
            if status == 200:
                kind = response.headers.get("Content-Type", "")
                body = response.content
                files: T = await _off_loop(parse, body, kind, str(response.url), size=len(body))
                if pages is not None:
                    moved = str(response.url) if response.history else None
                    page = page_of(url, moved, response.headers, response.content, time.time())
                    await _keep(pages, page, response)
                return files
            if status == 404:
                raise HTTPStatusError(not_found, 404)
            failure = failures.from_status(status, response.reason_phrase, response.headers, url)
            if slots is not None and failure.backpressure:
                slots.shrink()
        if not failure.retry:
            raise failure.error()
        wait = budget.fail(failure.retry_after)
        if wait is None:
            raise failures.exhausted(budget.failures, failure)
        await trio.sleep(wait)


async def _local_page(url: str, not_found: str, parse: Parse[T]) -> T:
    """A ``file:`` index's page, read as pip reads one: a folder's index.html (pip reads
    no PEP 691 JSON from disk). Its relative links are then the files beside it."""
    path = file_url_path(url)
    if path.is_dir():
        url, path = urljoin(url.rstrip("/") + "/", "index.html"), path / "index.html"
    try:
        body = await trio.to_thread.run_sync(path.read_bytes)
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPStatusError(not_found, 404) from None
    except OSError as exc:
        raise IndexPageError(f"{redact_url(url)}: {exc.strerror or exc}") from None
    return await _off_loop(parse, body, "text/html", url, size=len(body))


def stored_project(pages: PageCache, index_url: str, name: str) -> list[IndexFile] | None:
    """The files of the stored page of a project, however old it is; None if none."""
    page = pages.load(project_url(index_url, name))
    return _parse_stored(page, parse_page) if page is not None else None


def stored_projects(pages: PageCache, index_url: str) -> list[str] | None:
    """The project names of an index's stored root page, however old; None if none."""
    page = pages.load(index_url.rstrip("/") + "/")
    return _parse_stored(page, parse_root) if page is not None else None


async def _off_loop(fn: Callable[..., T], *args: object, size: int) -> T:
    """Parsing a large page (an index's root lists 700,000 projects) takes seconds: in a
    thread, so that the event loop goes on serving and downloading meanwhile."""
    if size < BIG_PAGE:
        return fn(*args)
    return await trio.to_thread.run_sync(partial(fn, *args))


def _parse_stored(page: Page, parse: Parse[T]) -> T | None:
    try:
        return parse(page.body, page.content_type, page.page_url)
    except IndexPageError:
        return None


async def _keep(pages: PageCache, page: Page, response: httpx.Response) -> None:
    """In a thread: a file made and renamed costs ~1 ms of the event loop on a busy disk,
    times every page of a set."""
    if storable(response.headers):
        await trio.to_thread.run_sync(pages.save, page)
    else:
        await trio.to_thread.run_sync(pages.drop, page.url)  # no-store: not even the old copy
