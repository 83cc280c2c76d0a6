"""The HTTP client and the one way the engine sends a request, with the two signals that
steer the download loop: ``RetryLater`` (try this request again) and ``StartOver`` (the
file changed: begin the whole file again)."""

from __future__ import annotations

import httpx
import trio

from segfetch import __version__
from segfetch.engine import failures
from segfetch.engine.failures import Failure
from segfetch.engine.options import DEFAULT_CONNECTIONS, DEFAULT_TIMEOUT
from segfetch.engine.result import Stats
from segfetch.engine.retry import Budget
from segfetch.errors import DownloadError


class RetryLater(Exception):
    """A failure worth another try."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class StartOver(Exception):
    """Start the whole file over: it changed on the server, or our saved state is stale."""


def make_client(
    connections: int = DEFAULT_CONNECTIONS, timeout: float = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http1=True,
        http2=False,  # one TCP connection per segment is the point
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=10,
        # identity: the bytes on the wire are the bytes of the file, so ranges mean file offsets
        headers={"Accept-Encoding": "identity", "User-Agent": f"segfetch/{__version__}"},
        trust_env=True,  # HTTP(S)_PROXY, SSL_CERT_FILE
    )


async def send(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], timeout: float, name: str
) -> httpx.Response:
    """GET url, streamed. Returns 200, 206 and 416 answers for the rules to judge; any
    other status or transport failure is classified: RetryLater, or a final error."""
    request = client.build_request("GET", url, headers=headers, timeout=timeout)
    # httpx's read timeout is per read: a server trickling its headers a byte at a time
    # would never trip it. The whole head must arrive within one timeout.
    try:
        with trio.fail_after(timeout):
            response = await client.send(request, stream=True)
    except trio.TooSlowError:
        raise RetryLater(
            Failure(f"{name}: no complete answer within {timeout:g} s", retry=True)
        ) from None
    except httpx.TransportError as exc:
        raise RetryLater(classify(exc, url)) from None
    except httpx.TooManyRedirects:
        raise DownloadError(f"{name}: too many redirects") from None
    status = response.status_code
    if status in (200, 206, 416):
        return response
    await response.aclose()
    failure = failures.from_status(status, response.reason_phrase, response.headers, url, name)
    if failure.retry:
        raise RetryLater(failure)
    raise failure.error()


def classify(exc: RetryLater | httpx.TransportError, url: str) -> Failure:
    """What a caught failure means; a final one is raised here."""
    failure = exc.failure if isinstance(exc, RetryLater) else failures.from_transport(exc, url)
    if not failure.retry:
        raise failure.error() from None
    return failure


async def backoff(budget: Budget, failure: Failure, stats: Stats) -> None:
    """Wait before the next try of a failed request, or give up when the budget is spent."""
    wait = budget.fail(failure.retry_after)
    if wait is None:
        raise failures.exhausted(budget.failures, failure)
    stats.retries += 1
    await trio.sleep(wait)
