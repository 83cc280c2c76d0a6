"""One small hierarchy of errors that end a command with a one-line message.

    SegfetchError                 anything segfetch reports to the user (exit 1)
    ├── UsageError                bad input from the user: fix the command (exit 2)
    ├── DiskError                 the local file system refused (full, read-only, gone)
    ├── Busy                      another process is writing the same destination
    └── DownloadError             a download could not be completed
        ├── HTTPStatusError       the server answered with a final error status (404, 401, ...)
        ├── ServerError           the server broke the protocol (bad Content-Range, too many bytes)
        ├── RetriesExhausted      the link kept failing with no progress
        └── HashMismatch          the file arrived but its sha256 is not the one expected

Every message is one line that says what went wrong and, where it can, what to do.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pathlib import Path

    import httpx


class SegfetchError(Exception):
    exit_code = 1


class UsageError(SegfetchError):
    exit_code = 2


class RequirementError(UsageError):
    """A requirement, or a requirements file, that cannot be read: exit 1, as pip's."""

    exit_code = 1


class PipRefusal(UsageError):
    """What pip refuses before it resolves (no requirement, --user in a virtual environment,
    a system-managed Python): said before any download, exit 1 as pip's."""

    exit_code = 1


class DiskError(SegfetchError):
    @classmethod
    def from_os(cls, exc: OSError, what: str) -> DiskError:
        hints = {
            errno.ENOSPC: "free some space or choose another place",
            errno.EFBIG: "the file is larger than this place allows (its file system, or "
            "ulimit -f); choose another place",
            errno.EDQUOT: "free some space or choose another place",
            errno.ENOENT: "its folder went away, or takes no new files (/proc); run the command "
            "again, or choose another place",
        }
        hint = hints.get(exc.errno or 0, "choose a place you can write to")
        return cls(f"cannot write {what}: {exc.strerror or exc}; {hint}")


class Busy(SegfetchError):
    pass


class DownloadError(SegfetchError):
    pass


class HTTPStatusError(DownloadError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerError(DownloadError):
    pass


class RetriesExhausted(DownloadError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the last try's HTTP status; None: no answer (the host unreached)


class HashMismatch(DownloadError):
    def __init__(self, message: str, expected: str, got: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


def redact_url(url: str) -> str:
    """The URL with any user:password replaced, fit to print or log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:]  # (an @ in a query is no user's)
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}://{authority}{path}"


def is_http_url(text: str, *, secure: bool = False) -> bool:
    """Whether ``text`` begins http:// or https:// (only https:// if ``secure``), in any
    case: schemes are case-insensitive (RFC 3986), and pip and curl take HTTP:// too."""
    return text[:8].lower().startswith(("https://",) if secure else ("http://", "https://"))


def is_file_url(text: str) -> bool:
    """Whether ``text`` is a ``file:`` URL of this machine (``file:///p``, ``file://localhost/p``),
    as pip reads an index or a link there."""
    scheme, _, rest = text.partition(":")
    return scheme.lower() == "file" and (
        not rest.startswith("//") or rest[2:].startswith(("/", "localhost/"))
    )


def file_url_path(url: str) -> Path:
    """The path a ``file:`` URL names (POSIX: its path, percent-decoded)."""
    from pathlib import Path  # (here: `segfetch --version` loads only what it needs)
    from urllib.parse import unquote, urlsplit

    return Path(unquote(urlsplit(url).path))


def host_encodable(url: httpx.URL) -> bool:
    """Can the connection encode the host name, as it will ("a..b" and a part of 64
    characters it cannot: a UnicodeError there, a traceback)?"""
    try:
        url.raw_host.decode("ascii").encode("idna")
    except UnicodeError:
        return False
    return True


def check_url(url: str, what: str = "URL") -> str:
    """``url``, if it is an http(s) URL httpx can ask; else one line (``what`` it is)."""
    import httpx  # here: building the parser loads no httpx

    try:
        parsed = httpx.URL(url)
        urlsplit(url)  # (a lone "[" or "]" in the host: httpx escapes it, urlsplit refuses it)
    except (httpx.InvalidURL, ValueError):
        raise UsageError(f"not a valid {what}: {redact_url(url)!r}") from None
    try:  # "xn--" with no punycode behind it
        parsed.host  # noqa: B018
        encodable = host_encodable(parsed)
    except ValueError:
        encodable = False
    if not encodable:
        why = "check its host name: parts of 1-63 characters between dots"
        raise UsageError(f"not a valid {what}: {redact_url(url)!r} ({why})")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"not an http:// or https:// {what}: {redact_url(url)!r}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UsageError(
            f"not a valid {what}: {redact_url(url)!r} (port {parsed.port} is not a TCP port, "
            "1-65535)"
        )
    try:  # (a port in full-width digits: httpx reads it as ASCII; urlsplit refuses, as curl)
        urlsplit(url).port  # noqa: B018
    except ValueError:
        raise UsageError(f"not a valid {what}: {redact_url(url)!r} (its port)") from None
    return url


def first_error(
    group: BaseExceptionGroup[BaseException], *prefer: type[BaseException]
) -> BaseException:
    """The one exception that explains a failed nursery: ``prefer`` kinds first, then our
    own errors and Ctrl-C, then anything but the cancellations that followed it."""
    leaves = list(_leaves(group))
    for kind in (*prefer, SegfetchError, KeyboardInterrupt):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return next((e for e in leaves if type(e).__name__ != "Cancelled"), leaves[0])


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]
