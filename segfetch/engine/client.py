"""The HTTP client and the one way the engine sends a request, with the two signals that
steer the download loop: ``RetryLater`` (try this request again) and ``StartOver`` (the
file changed: begin the whole file again)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import AsyncIterator, Callable, Generator
from typing import TypeVar
from urllib.parse import urlsplit

import httpcore
import httpx
import trio

from segfetch.engine import dns, failures, pool, rules, versions
from segfetch.engine.adopt import adopt
from segfetch.engine.body import READ_SIZE as READ_SIZE  # tests/test_malloc.py uses it here
from segfetch.engine.body import body_chunks
from segfetch.engine.early import CLIENT_HEADERS, Early
from segfetch.engine.failures import Failure
from segfetch.engine.multipart import PartHead
from segfetch.engine.netrcauth import credentials, netrc_file
from segfetch.engine.options import AUTO_CAP, DEFAULT_TIMEOUT, Network
from segfetch.engine.result import Stats
from segfetch.engine.retry import Budget
from segfetch.engine.tls import tls_context
from segfetch.errors import (
    DownloadError,
    UsageError,
    check_url,
    host_encodable,
    is_http_url,
    redact_url,
)


class RetryLater(Exception):
    """A failure worth another try."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class StartOver(Exception):
    """Start the whole file over: it changed on the server, or our saved state is stale.
    ``one_node``: on one connection from now on (see rules.Restart)."""

    def __init__(self, reason: str = "", one_node: bool = False, lost: bool = False) -> None:
        super().__init__(reason)
        self.one_node, self.lost = one_node, lost


class Unranged(Exception):
    """The server stopped answering ranges of the file (it sends the very file whole):
    fetch the rest as one stream."""


# A redirect target that answers these has most likely expired (presigned URLs, release
# assets): the URL asked for gives a fresh one.
EXPIRED_STATUS = frozenset({401, 403, 404, 410})


class Location:
    """Where requests go: the URL asked for, and the redirect target it last led to. Shared
    by every connection of a download."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.current = origin
        self.name = redact_url(origin)  # for messages: never print credentials


# httpcore reads a response 64 KiB at a time, and each read costs a trio wakeup, an h11
# event and a cancel scope: on a fast link that overhead is most of segfetch's CPU. A
# read returns what the socket has, so a larger size costs a slow link nothing (measured:
# 2.9 -> 2.0-2.5 CPU-s per GB from nginx on loopback, docs/benchmarks-history.md). Ranged bodies
# are read by engine/body.py with the same size; this is for the rest (heads, pages).
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE


# Those reads hand out buffers of up to READ_SIZE (the socket's bytes, then h11's and
# httpcore's copies of them), each freed soon after. glibc gives the top of its heap back to
# the kernel past 2x the largest such buffer and takes it again on the next read: a page
# fault and a zeroed page per 4 KiB: 40-50 thousand faults per 500 MB from nginx on loopback,
# 14 thousand once tuned (docs/benchmarks-history.md S8). Fixed thresholds keep that heap instead.
MALLOC_KEEP = 8 * READ_SIZE  # at most this much freed heap is kept
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters


def tune_malloc() -> None:
    """Keep freed read buffers' memory for the next read (glibc only; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        mallopt = ctypes.CDLL(None).mallopt  # AttributeError: not glibc (musl, macOS)
        # Setting any threshold turns glibc's adaptive ones off: all three are set.
        mallopt(_M_MMAP_THRESHOLD, 4 * READ_SIZE)
        mallopt(_M_TOP_PAD, 4 * READ_SIZE)
        mallopt(_M_TRIM_THRESHOLD, MALLOC_KEEP)


def make_client(
    connections: int = AUTO_CAP, timeout: float = DEFAULT_TIMEOUT, network: Network | None = None
) -> httpx.AsyncClient:
    """``network``: pip's proxy, CA bundle, client certificate and trusted hosts (install),
    over what the environment says. Also sets the trio run's name lookups to dns.py's,
    shared and kept 60 s, unless the run has a resolver of its own already."""
    tune_malloc()
    dns.share_lookups()  # one lookup per host for all connections, not one each
    net = network or Network()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    # (pip's proxy, checked by pipnet, is used in place of the environment's)
    client = with_env_proxies(lambda: _client(limits, timeout, net), net.env_proxies)
    pool.speed_up(client)
    return client


C = TypeVar("C")


def with_env_proxies(make: Callable[[], C], ports: bool = True) -> C:
    """``make()``, an httpx client for the environment's proxies; one line, not a traceback,
    for a proxy segfetch cannot use: a SOCKS proxy (socksio is not installed), one that is
    not a URL, or (``ports``) one whose port is no TCP port."""
    try:
        client = make()
    except (ImportError, ValueError, httpx.InvalidURL) as exc:
        what = "is a SOCKS proxy" if isinstance(exc, ImportError) else f"is not a URL ({exc})"
        raise UsageError(
            f"a proxy set in the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) {what}: "
            "segfetch speaks to HTTP proxies; fix or unset it"
        ) from None
    if ports:
        _check_proxy_ports()
    return client


def _check_proxy_ports() -> None:
    """The environment's http(s) proxies, as httpx reads them: one whose port is no TCP port
    (httpx takes it) failed every connection as if the server could not be reached."""
    from urllib.request import getproxies  # (httpx has imported it)

    proxies = getproxies()
    if "*" in [host.strip() for host in proxies.get("no", "").split(",")]:
        return  # NO_PROXY=*: httpx uses none of them
    for key, value in proxies.items():
        url = value if "://" in value else f"http://{value}"
        if key in ("http", "https", "all") and is_http_url(url):
            variables = (n for n in os.environ if n.lower() == f"{key}_proxy")
            name = next((n for n in variables if os.environ[n] == value), f"{key}_proxy")
            try:
                check_url(url, f"proxy in {name}")
            except UsageError as exc:
                raise UsageError(f"{exc}; fix or unset it") from None


class NetrcAuth(httpx.Auth):
    """The URL's own user and password first, as httpx takes them; else the netrc file's
    for the request's host, read at the first request to it. (httpx's NetRCAuth would
    override credentials in the URL.)"""

    def __init__(self, path: str) -> None:
        self.path = path
        self._found: dict[str, tuple[str, str] | None] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        if url.username or url.password:
            found: tuple[str, str] | None = (url.username, url.password)
        else:
            if url.host not in self._found:
                self._found[url.host] = credentials(self.path, url.host)
            found = self._found[url.host]
        if found is None:
            yield request
        else:
            yield from httpx.BasicAuth(*found).auth_flow(request)


def check_host(request: httpx.Request) -> None:
    """A host name the connection cannot encode ("a..b", a part of 64 characters: a
    redirect's or an index link's) fails as a name that does not resolve, not with the
    connection's UnicodeError (a traceback)."""
    if not host_encodable(request.url):
        host = request.url.raw_host.decode("ascii")
        error = socket.gaierror(f"not a valid host name: {host!r}")
        raise httpx.ConnectError(str(error), request=request) from error


async def check_host_async(request: httpx.Request) -> None:
    check_host(request)
    # A redirect's port that is no TCP port (the URL given was checked): httpx would take
    # port 0 for 80, and try 99999 as a connection that fails, again and again.
    if (port := request.url.port) is not None and not 0 < port < 65536:
        where = redact_url(str(request.url))
        raise DownloadError(f"redirected to {where}, whose port {port} is not a TCP port")


def check_location(response: httpx.Response) -> None:
    """A redirect that leads nowhere: an empty Location (httpx asks the same URL again, 30
    times), or one with no host (httpx asks this host's port 80). The server's fault, said
    after one request; curl -L does not follow either."""
    location = response.headers.get("Location")
    if location is None or response.status_code not in (301, 302, 303, 307, 308):
        return
    try:
        hostless = "://" in location and not urlsplit(location.strip()).hostname
    except ValueError:
        return  # (httpx refuses it: InvalidURL, said by send)
    if not location.strip() or hostless:
        raise DownloadError(
            f"{redact_url(str(response.request.url))} answered {response.status_code} with "
            f"a Location that leads nowhere ({location!r})"
        )


async def check_location_async(response: httpx.Response) -> None:
    check_location(response)


MAX_REDIRECTS = 30  # pip's (requests'); httpx's own is 20, curl's 50


def _client(limits: httpx.Limits, timeout: float, net: Network) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http1=True,
        http2=False,  # one TCP connection per segment is the point
        limits=limits,
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers=CLIENT_HEADERS,
        trust_env=net.env_proxies,  # HTTP(S)_PROXY, NO_PROXY (verify= is our own context)
        proxy=net.proxy,  # pip's: over the environment's, as pip takes it
        # made on the first https connection; pip's trusted hosts are not checked
        verify=tls_context(net.cafile, net.client_cert, net.insecure),
        auth=NetrcAuth(path) if (path := netrc_file()) else None,
        event_hooks={"request": [check_host_async], "response": [check_location_async]},
    )


async def send_settled(
    client: httpx.AsyncClient,
    where: Location,
    headers: dict[str, str],
    timeout: float,
    early: Early | None,
    settle: Stats | None,
) -> httpx.Response:
    """send(); an answer for a file written within its second is asked again once that
    second is past (``settle``: where no sha256 checks the file; counted there). Bytes of
    one version only then: one written later has another Last-Modified (versions.py). Not
    an open-ended range: read to its end as one stream instead, none of it thrown away."""
    response = await send(client, where, headers, timeout, early)
    bounded = not headers.get("Range", "-").endswith("-")
    if settle is not None and bounded and (wait := versions.settle_wait(response.headers)):
        await response.aclose()
        await trio.sleep(wait)
        settle.requests += 1
        response = await send(client, where, headers, timeout)
    return response


async def send(
    client: httpx.AsyncClient,
    where: Location,
    headers: dict[str, str],
    timeout: float,
    early: Early | None = None,
) -> httpx.Response:
    """GET the current URL, streamed. Returns 200, 206 and 416 answers (and a 412 to If-Range)
    for the rules to judge; any other status or transport failure is classified: RetryLater,
    or a final error.
    ``early``: the answer to this request if it was sent already (adopt.py)."""
    url, name = where.current, where.name
    request = client.build_request("GET", url, headers=headers, timeout=timeout)
    # httpx's read timeout is per read: a server trickling its headers a byte at a time
    # would never trip it. The whole head must arrive within one timeout.
    try:
        with trio.fail_after(timeout):
            response = await adopt(early, request, timeout) if early else None
            # (has_redirect_location, as httpx's own loop: a 3xx without Location is an
            # answer, not a redirect to follow)
            if response is not None and response.has_redirect_location and client.follow_redirects:
                response = await _redirected(client, response)
            if response is None:
                response = await client.send(request, stream=True)
    except trio.TooSlowError:
        raise RetryLater(
            Failure(f"{name}: no complete answer within {timeout:g} s", retry=True)
        ) from None
    except httpx.TransportError as exc:
        raise RetryLater(classify(exc, url)) from None
    except httpx.TooManyRedirects:
        raise DownloadError(f"{name}: too many redirects (over {MAX_REDIRECTS})") from None
    except httpx.InvalidURL as exc:  # (the URL given was checked: a Location's)
        raise DownloadError(f"{name} redirected to a URL that is not valid ({exc})") from None
    final = str(response.url)
    if is_http_url(where.origin, secure=True) and not is_http_url(final, secure=True):
        await response.aclose()
        raise DownloadError(f"{name} redirected to plain http; refusing the downgrade")
    status = response.status_code
    # (a 412 to If-Range too: a server that takes it for a precondition, rules.py)
    if status in (200, 206, 416) or (status == 412 and "If-Range" in response.request.headers):
        where.current = _with_credentials(final, where.origin)
        return response
    await response.aclose()
    # (Compared as URLs: httpx's form of the very URL asked differs from its text when that
    # has spaces, an upper-case host or dot segments: no redirect.)
    if status in EXPIRED_STATUS and response.url != httpx.URL(where.origin):
        # A redirect target refused. One asked straight, from an earlier redirect, may have
        # expired (a presigned URL): ask again where the redirect came from. Judged by this
        # answer's own URL: other connections may have moved `where` meanwhile. One the
        # URL asked for led to just now refuses for good, as it would for curl -L.
        target = redact_url(final).split("?")[0]
        name = f"{target} (a redirect of {name})"
        if httpx.URL(url) != httpx.URL(where.origin):
            where.current = where.origin
            raise RetryLater(Failure(f"{name} answered {status}; asking again", True))
    failure = failures.from_status(status, response.reason_phrase, response.headers, url, name)
    if failure.retry:
        raise RetryLater(failure)
    raise failure.error()


def _with_credentials(final: str, origin: str) -> str:
    """``final`` with the user:password of ``origin`` where both are one origin (scheme,
    host, port): httpx sends them on a redirect it follows within one origin, and the
    requests that go straight to the target need them as much."""
    first, last = httpx.URL(origin), httpx.URL(final)
    same = (first.scheme, first.host, first.port) == (last.scheme, last.host, last.port)
    if not same or not first.userinfo or last.userinfo:
        return final
    return str(last.copy_with(userinfo=first.userinfo))


async def _redirected(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """The answer at the end of an adopted answer's redirect, followed as httpx follows one
    (its own request for the Location): the URL first asked is not asked again, as a link
    that redirects once (a one-time token) answers no second time. An httpx without that
    method asks the first URL again."""
    build = getattr(client, "_build_redirect_request", None)
    try:
        check_location(response)
        request = response.request if build is None else build(response.request, response)
    finally:
        await response.aclose()
    return await client.send(request, stream=True)


Usable = rules.Ranged | rules.Whole | rules.WithoutRange


async def carry_out(
    response: httpx.Response,
    judge: Callable[[rules.Headers], rules.Verdict],
    on_retry: Callable[[rules.Retry], None],
    name: str,
) -> tuple[AsyncIterator[bytes], Usable]:
    """The one place a verdict on an answer is carried out: a usable answer gives its body's
    chunks (a multipart one judged again by its part's head); Restart, Fail and Retry are
    raised, ``on_retry`` seeing a Retry first (to change what the next request asks)."""
    verdict = judge(response.headers)
    chunks: AsyncIterator[bytes] | None = None
    if isinstance(verdict, rules.Multipart):
        headers, chunks = await part_body(response, verdict.boundary)
        verdict = judge(headers)
    if isinstance(verdict, rules.Ranged | rules.Whole | rules.WithoutRange):
        return chunks or body_chunks(response), verdict
    if isinstance(verdict, rules.Restart):
        raise StartOver(verdict.reason, verdict.one_node, verdict.lost)
    if isinstance(verdict, rules.Fail):
        raise verdict.error
    if isinstance(verdict, rules.Retry):
        on_retry(verdict)
        raise RetryLater(verdict.failure)
    raise RetryLater(Failure(f"{name}: a multipart answer inside a multipart", True))


async def part_body(
    response: httpx.Response, boundary: bytes
) -> tuple[httpx.Headers, AsyncIterator[bytes]]:
    """A single-part ``multipart/byteranges`` answer: the headers to judge it by (the part's
    Content-Range and Content-Type over the response's) and the part's bytes."""
    head = PartHead(boundary)
    raw = response.aiter_raw()
    rest = None
    try:
        async for chunk in raw:
            if (rest := head.feed(chunk)) is not None:
                break
    except ValueError as exc:
        raise RetryLater(Failure(f"{redact_url(str(response.url))}: {exc}", True)) from None
    if rest is None:
        raise RetryLater(Failure("a multipart answer ended before its part began", True))
    headers = httpx.Headers(response.headers)
    del headers["Content-Type"]
    headers.update(head.headers)

    async def body() -> AsyncIterator[bytes]:
        if rest:
            yield rest
        async for chunk in raw:
            yield chunk

    return headers, body()


def classify(exc: RetryLater | httpx.TransportError, url: str) -> Failure:
    """What a caught failure means; a final one is raised here."""
    failure = exc.failure if isinstance(exc, RetryLater) else failures.from_transport(exc, url)
    if not failure.retry:
        raise failure.error() from None
    return failure


async def backoff(budget: Budget, failure: Failure, stats: Stats) -> None:
    """Wait before the next try of a failed request, or give up when the budget is spent
    (or the server asks for a longer wait than segfetch makes)."""
    if failure.retry_after is not None and failure.retry_after > budget.policy.max_retry_after:
        raise failures.too_long_to_wait(failure, budget.policy.max_retry_after)
    wait = budget.fail(failure.retry_after)
    if wait is None:
        raise failures.exhausted(budget.failures, failure)
    stats.retries += 1
    await trio.sleep(wait)
