"""Index pages kept between runs, beside the file cache, as an HTTP cache keeps them
(RFC 9111, the small part an index needs; pip keeps its pages the same way).

A page is used without a request while it is fresh (``Cache-Control: max-age``, less the
``Age`` it already had on the way); after that it is asked for again with the validators
it came with (``If-None-Match`` / ``If-Modified-Since``), and a 304 keeps the stored body.
A ``no-store`` page is never written (and an older copy of it is dropped); ``no-cache``
pages are stored but always revalidated. ``Expires`` and heuristic freshness are not used:
without ``max-age`` a page is revalidated on every run. For install and download, as for
pip: only pages of https and of trusted http hosts (``--trusted-host``) are taken fresh;
pip caches no other http page, so it sees a release of the last minutes there.

Each page is one JSON file, ``<root>/<sha256 of the page URL>.json``, written to a
temporary name and renamed over the old one, so two runs never see a torn entry (the last
writer wins). An entry that cannot be read is no entry. Credentials in the URL asked for
are never written: the stored URL is redacted, and the key is a hash.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from segfetch.errors import redact_url

FORMAT = 1  # bumped when the entry's layout changes: an entry of another layout is none
_DIRECTIVE = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("[^"]*"|[^,\s]*))?\s*')


@dataclass(frozen=True)
class Page:
    """One stored page and what HTTP said about keeping it."""

    url: str  # the URL asked for
    final_url: str | None  # where redirects led, when elsewhere (links are relative to it)
    content_type: str
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    max_age: float | None = None  # seconds fresh from `born`; None or 0: always revalidate
    born: float = 0.0  # when the server made it (time.time() at arrival, less its Age)

    @property
    def page_url(self) -> str:
        return self.final_url or self.url

    def fresh(self, now: float) -> bool:
        """Usable without asking: within its max-age (a clock set back makes it stale)."""
        return self.max_age is not None and 0 <= now - self.born < self.max_age

    def validators(self) -> dict[str, str]:
        """The headers of a conditional request for it. Not a validator that is not ASCII
        (an ETag may hold bytes 0x80-0xFF): httpx cannot send it back as it came."""
        headers = {}
        if self.etag is not None and self.etag.isascii():
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None and self.last_modified.isascii():
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def revalidated(self, headers: Mapping[str, str], now: float) -> Page:
        """The page after a 304: the stored body, with the freshness and validators the
        304 gives (RFC 9111 4.3.4: its headers replace the stored ones)."""
        cc = cache_control(headers.get("Cache-Control"))
        return replace(
            self,
            etag=headers.get("ETag") or self.etag,
            last_modified=headers.get("Last-Modified") or self.last_modified,
            max_age=_max_age(cc) if "Cache-Control" in headers else self.max_age,
            born=now - _age(headers.get("Age")),
        )


def cache_control(value: str | None) -> dict[str, str | None]:
    """Directives of a Cache-Control header, names lower-cased: ``{"max-age": "600"}``."""
    out: dict[str, str | None] = {}
    for part in (value or "").split(","):
        m = _DIRECTIVE.fullmatch(part)
        if m is None:
            continue
        name, arg = m[1].lower(), m[2]
        if arg is not None and len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1]
        out.setdefault(name, arg)
    return out


def _max_age(cc: Mapping[str, str | None]) -> float | None:
    if "no-cache" in cc or "no-store" in cc:
        return None
    arg = cc.get("max-age")
    return float(arg) if arg is not None and arg.isdigit() else None


def _age(value: str | None) -> float:
    return float(value.strip()) if value is not None and value.strip().isdigit() else 0.0


def storable(headers: Mapping[str, str]) -> bool:
    return "no-store" not in cache_control(headers.get("Cache-Control"))


def page_of(
    url: str, redirected_to: str | None, headers: Mapping[str, str], body: bytes, now: float
) -> Page:
    """A page as it arrived in a 200 (``body`` decoded: no Content-Encoding left);
    ``redirected_to``: the URL it came from when that is not ``url``."""
    cc = cache_control(headers.get("Cache-Control"))
    return Page(
        url,
        redirected_to,
        headers.get("Content-Type", ""),
        body,
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        # (as pip's cache: a page without a Date is never fresh, only revalidated)
        max_age=_max_age(cc) if "Date" in headers else None,
        born=now - _age(headers.get("Age")),
    )


class PageCache:
    """Stored pages under one folder (``<cache>/pages``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unasked: set[str] = set()  # URLs this run took fresh from here, with no request
        self.trusted: Sequence[str] | None = None  # pip's trusted hosts; None: any host's

    def takes_fresh(self, url: str) -> bool:
        """Whether a fresh page of ``url`` is used with no request: pip's trusted host
        "host" matches any port of an http URL, "host:port" that port."""
        parts = urlsplit(url)
        if self.trusted is None or parts.scheme.lower() != "http":
            return True
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        named = {host, f"{host}:{parts.port}"} if parts.port else {host}
        bare = [f"[{t}]" if t.count(":") > 1 and t[:1] != "[" else t for t in self.trusted]
        return any(t.lower() in named for t in bare)  # (an IPv6 address: bracketed)

    def path(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    def load(self, url: str) -> Page | None:
        """The stored page for ``url``, fresh or not; None if none can be read."""
        try:
            raw = json.loads(self.path(url).read_bytes())
            if raw.get("format") != FORMAT:
                return None
            return Page(
                url,
                _text(raw["final_url"]),
                str(raw["content_type"]),
                base64.b64decode(raw["body"], validate=True),
                etag=_text(raw["etag"]),
                last_modified=_text(raw["last_modified"]),
                max_age=float(raw["max_age"]) if raw["max_age"] is not None else None,
                born=float(raw["born"]),
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def save(self, page: Page) -> None:
        """Store (or replace) a page atomically; a failure to write only loses the entry."""
        doc = {
            "format": FORMAT,
            "url": redact_url(page.url),  # for people; the file name is the key
            "final_url": page.final_url,
            "content_type": page.content_type,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "max_age": page.max_age,
            "born": page.born,
            "body": base64.b64encode(page.body).decode("ascii"),
        }
        save_json(self.path(page.url), doc)

    def drop(self, url: str) -> None:
        with contextlib.suppress(OSError):
            self.path(url).unlink()


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def save_json(dest: Path, doc: object) -> None:
    """Write ``doc`` to ``dest`` atomically (temp + rename: a reader sees the old record or
    the new, never half of one); failing to write only loses the record."""
    with contextlib.suppress(OSError):
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(doc).encode())
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
