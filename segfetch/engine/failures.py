"""The one classifier of failed requests: every layer (the engine, the index client, the
local index, `bench`) asks it, so the same failure gets the same answer everywhere. Pure.

A failure is either worth another try (after a backoff, or as long as the server's
Retry-After says) or final, with the one line to show the user.
"""

from __future__ import annotations

import ast
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from segfetch.engine.retry import parse_retry_after
from segfetch.errors import DownloadError, HTTPStatusError, RetriesExhausted, redact_url
from segfetch.units import plural

# 416 is here because ranges are asked only inside the known size: a 416 then is a glitch of
# the server (or a proxy), not a wrong request; so is a success without the file (a 204).
RETRYABLE_STATUS = frozenset({201, 202, 203, 204, 205, 408, 416, 425, 429, 500, 502, 503, 504})
# Statuses that say "too many of us": the host wants fewer connections.
BACKPRESSURE_STATUS = frozenset({429, 503})
# What OpenSSL says when the peer does not speak TLS at all (a plain-HTTP server's answer).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"})
# The server's alerts about our client certificate (none, or one it refuses: HAProxy, Envoy):
# every try gets the same.
_CLIENT_CERT = ("ALERT_CERTIFICATE_REQUIRED", "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA")
# Final statuses, with what the user can do about them.
_HINTS = {
    401: "check the credentials (in the URL, ~/.netrc or the index settings)",
    403: "check the credentials, or whether the URL has expired",
    404: "check the URL",
    407: "check the proxy's credentials (HTTP_PROXY / HTTPS_PROXY)",
    410: "check the URL",
    # (to a request that asked no condition: a cache or proxy on the way answers wrongly)
    304: "a 'not modified' to a request without a condition; try again later, or another mirror",
}


@dataclass(frozen=True)
class Failure:
    """One failed request: ``retry`` says whether another try may help."""

    message: str
    retry: bool
    status: int | None = None
    retry_after: float | None = None  # seconds, from the server's Retry-After
    # What to do once the tries are spent: an answer of the wrong shape (an encoding, a
    # malformed Content-Range) comes again however long one waits.
    advice: str = "check the link, or raise --max-tries / --timeout"

    @property
    def backpressure(self) -> bool:
        """The host asks for fewer connections: use fewer, not just wait."""
        return self.status in BACKPRESSURE_STATUS

    def error(self) -> DownloadError:
        """The exception that ends the command, for a final failure or the last try."""
        if self.status is not None:
            return HTTPStatusError(self.message, self.status)
        return DownloadError(self.message)


def exhausted(tries: int, failure: Failure) -> RetriesExhausted:
    """The error after the last try of a failure worth retrying."""
    # (one try is --max-tries 1: no retry even after bytes came, so no claim of no progress)
    why = "(--max-tries 1: no retry)" if tries == 1 else "with no progress"
    return RetriesExhausted(
        f"giving up after {plural(tries, 'try')} {why}: {failure.message}; " + failure.advice,
        failure.status,
    )


def too_long_to_wait(failure: Failure, limit: float) -> RetriesExhausted:
    """A Retry-After beyond what segfetch waits: stop now, not after minutes of silence."""
    return RetriesExhausted(
        f"{failure.message} and asks to be asked again in {failure.retry_after:.0f} s, "
        f"longer than segfetch waits ({limit:.0f} s); try again later"
    )


def from_status(
    status: int, reason: str, headers: Mapping[str, str], url: str, what: str | None = None
) -> Failure:
    """An HTTP answer that is not what was asked for. ``what`` names the thing fetched in the
    message (default: the URL, without credentials)."""
    name = what or redact_url(url)
    text = f"{name} answered {status}" + (f" {reason}" if reason else "")
    if status in RETRYABLE_STATUS:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return Failure(text, retry=True, status=status, retry_after=retry_after)
    return Failure(f"{text}; {_hint(status)}", retry=False, status=status)


def _hint(status: int) -> str:
    """What to do about a final status (a redirect here is one without a Location)."""
    if status in _HINTS:
        return _HINTS[status]
    if 300 <= status < 400:
        return "it redirects without saying where to (no Location); check the URL"
    if 400 <= status < 500:
        return "the server refused the request; check the URL"
    if 500 <= status < 600:
        return "the server failed; try again later, or tell its operators"
    return "not an answer segfetch can use; check the URL (curl -I shows the answer)"


def from_transport(exc: BaseException, url: str) -> Failure:
    """A connection that failed (httpx.TransportError and its causes). Name resolution,
    certificate and scheme failures are final: another try would fail the same way."""
    url = _asked(exc, url)  # (a redirect's target where it was that failed)
    host = _host(url)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return Failure(f"cannot resolve host {host!r}: check the URL", retry=False)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Failure(
                f"TLS certificate check failed for {host}: {cause.verify_message}; "
                "set SSL_CERT_FILE (or REQUESTS_CA_BUNDLE; to install, pip's cert: --cert, "
                "PIP_CERT) to your CA bundle",
                retry=False,
            )
        if isinstance(cause, ssl.SSLError):
            return _tls(cause, _authority(url))  # host:port: the port may be the mistake
        cause = cause.__cause__ or cause.__context__
    if (proxy := _proxy_refused(exc)) is not None:
        return proxy
    if type(exc).__name__ == "UnsupportedProtocol":  # httpx's, without importing httpx
        return Failure(
            f"{redact_url(url)}: only http:// and https:// URLs are supported", retry=False
        )
    plain = _PLAIN.get(type(exc).__name__, type(exc).__name__)
    text = _peer_bytes(str(exc))
    text = text[:-1] if text.endswith(".") and not text.endswith("..") else text
    connect = plain.startswith(("no connection", "cannot connect"))
    if connect and (named := _proxy_named(text, url)) is not None:
        plain = f"{plain} to the proxy {named} (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY)"
    return Failure(f"{plain} ({text})" if text else plain, retry=True)


def _proxy_named(text: str, url: str) -> str | None:
    """The environment's proxy whose host:port a connection failure names (it is the
    proxy that could not be reached, not the URL's host), without credentials."""
    import urllib.request  # (only on this path: 8 ms)

    for proxy in urllib.request.getproxies_environment().values():
        where = _authority(proxy)
        if ":" in where and where in text and where != _authority(url):
            return redact_url(proxy)
    return None


# httpx's transport errors, in words (its classes' names told users little)
_PLAIN = {
    "ConnectError": "cannot connect",
    "ConnectTimeout": "no connection in time",
    "ReadTimeout": "no data in time",
    "WriteTimeout": "could not send in time",
    "PoolTimeout": "no free connection in time",
    "ReadError": "the connection broke",
    "WriteError": "the connection broke while sending",
    "CloseError": "the connection broke while closing",
    "RemoteProtocolError": "a broken HTTP answer",
}


def _asked(exc: BaseException, url: str) -> str:
    """The URL of the request that failed, where httpx's error holds it; else ``url``."""
    try:
        return str(exc.request.url)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # (httpx's RuntimeError: no request set)
        return url


def _proxy_refused(exc: BaseException) -> Failure | None:
    """A proxy that answered CONNECT (an https URL through HTTP(S)_PROXY or pip's proxy) with
    a 4xx: httpx raises ProxyError("407 Proxy Authentication Required"). Every try gets the
    same answer: final, with what to do, as a 407 to a plain-http request through it."""
    if type(exc).__name__ != "ProxyError":  # httpx's (and httpcore's), without importing it
        return None
    status, _, reason = str(exc).partition(" ")
    if not (status.isdigit() and 400 <= int(status) < 500):
        return None
    code = int(status)
    hint = _HINTS[407] + ", or pip's --proxy" if code == 407 else "check the proxy settings"
    text = f"the proxy refused the tunnel: {code}" + (f" {reason}" if reason else "")
    return Failure(f"{text}; {hint}", retry=False, status=code)


def _peer_bytes(text: str, keep: int = 40) -> str:
    """h11 quotes all it got in its error ("illegal status line: bytearray(b'...')"): the
    raw body of a server that sends no status line (HTTP/0.9) would fill the screen. Keep
    its first ``keep`` bytes."""
    head, sep, dump = text.partition("bytearray(")
    if not sep:
        return text
    try:
        data = bytes(ast.literal_eval(dump.removesuffix(")")))
    except (ValueError, SyntaxError, TypeError):
        return f"{head}{dump[:keep]}..."
    return f"{head}{data[:keep]!r}" + ("..." if len(data) > keep else "")


def _tls(exc: ssl.SSLError, host: str) -> Failure:
    """A TLS failure. The answer of a plain-HTTP server to a TLS hello (https:// to an
    http:// port) fails the same way on every try."""
    reason = (exc.reason or type(exc).__name__).lower().replace("_", " ")
    if exc.reason in _NOT_TLS:
        return Failure(
            f"TLS handshake with {host} failed: {reason} (is it an https server?)", retry=False
        )
    if (exc.reason or "").endswith(_CLIENT_CERT):
        return Failure(
            f"TLS failed with {host}: {reason}: it wants a client certificate it accepts "
            "(install, download: pip's --client-cert)",
            retry=False,
        )
    return Failure(f"TLS failed with {host}: {reason}", retry=True)


def _authority(url: str) -> str:
    """host[:port], without credentials."""
    return url.partition("://")[2].split("/", 1)[0].rpartition("@")[2]


def _host(url: str) -> str:
    authority = _authority(url)
    if authority.startswith("["):
        return authority.partition("]")[0] + "]"
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
