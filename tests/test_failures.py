"""The one classifier of failed requests: pure, and the same answer in every layer."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import TypeVar

import httpcore
import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine import failures
from segfetch.engine.download import download
from segfetch.engine.failures import BACKPRESSURE_STATUS, RETRYABLE_STATUS
from segfetch.engine.options import Options
from segfetch.engine.retry import RetryPolicy
from segfetch.errors import DownloadError, HTTPStatusError, RetriesExhausted
from segfetch.testing.emulator import Emulator, SyntheticFile
from segfetch.wheels.index import fetch_project

E = TypeVar("E", bound=BaseException)


@given(st.integers(min_value=300, max_value=599))
def test_every_status_gets_one_answer(status: int) -> None:
    failure = failures.from_status(status, "Reason", {}, "https://u:pw@h.example/x.whl")
    assert failure.retry == (status in RETRYABLE_STATUS)
    assert failure.backpressure == (status in BACKPRESSURE_STATUS)
    assert failure.status == status
    assert "pw" not in failure.message and "\n" not in failure.message
    assert f"answered {status} Reason" in failure.message
    assert isinstance(failure.error(), HTTPStatusError)


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "credentials"), (403, "expired"), (404, "check the URL"), (407, "proxy"),
        # (the statuses without a word of their own said only "answered 302 Found")
        (302, "no Location"), (400, "refused"), (501, "try again later"), (999, "curl -I"),
        (304, "'not modified' to a request without a condition"),  # (was "no Location")
    ],
)  # fmt: skip
def test_final_statuses_say_what_to_do(status: int, hint: str) -> None:
    failure = failures.from_status(status, "", {}, "https://h.example/x.whl")
    assert not failure.retry
    assert hint in failure.message


def test_retry_after_is_read_for_retryable_statuses_only() -> None:
    assert failures.from_status(503, "", {"Retry-After": "7"}, "http://h/x").retry_after == 7.0
    assert failures.from_status(404, "", {"Retry-After": "7"}, "http://h/x").retry_after is None


def _with_cause(exc: E, cause: BaseException) -> E:
    exc.__cause__ = cause
    return exc


def test_transport_failures() -> None:
    dns = _with_cause(httpx.ConnectError("no"), socket.gaierror(-2, "Name or service not known"))
    failure = failures.from_transport(dns, "https://u:pw@nowhere.invalid:8443/x.whl")
    assert not failure.retry
    assert failure.message == "cannot resolve host 'nowhere.invalid': check the URL"

    cert = ssl.SSLCertVerificationError("bad")
    cert.verify_message = "self-signed certificate"
    failure = failures.from_transport(_with_cause(httpx.ConnectError("x"), cert), "https://h/x")
    assert not failure.retry and "SSL_CERT_FILE" in failure.message

    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    plain.reason = "WRONG_VERSION_NUMBER"  # as OpenSSL sets it
    broken = _with_cause(trio.BrokenResourceError(), plain)  # trio's SSLStream wraps it
    failure = failures.from_transport(
        _with_cause(httpx.ConnectError(""), _with_cause(httpcore.ConnectError(broken), broken)),
        "https://u:pw@h.example:8080/x",
    )
    assert not failure.retry
    assert failure.message == (
        "TLS handshake with h.example:8080 failed: wrong version number (is it an https server?)"
    )
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    eof.reason = "UNEXPECTED_EOF_WHILE_READING"
    failure = failures.from_transport(_with_cause(httpx.ConnectError(""), eof), "https://h/x")
    assert failure.retry and failure.message == "TLS failed with h: unexpected eof while reading"
    # A server that wants a client certificate (HAProxy, Envoy: an alert, not a 400): final.
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert ...")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    failure = failures.from_transport(_with_cause(httpx.ConnectError(""), alert), "https://h/x")
    assert not failure.retry and "--client-cert" in failure.message, failure.message

    failure = failures.from_transport(httpx.UnsupportedProtocol("ftp"), "ftp://h/x")
    assert not failure.retry and "only http:// and https://" in failure.message

    raw = bytearray(b"\x00raw body of a server with no status line, " * 20)
    failure = failures.from_transport(
        httpx.RemoteProtocolError(f"illegal status line: {raw!r}"), "http://h/x"
    )
    assert failure.retry and failure.message == (
        "a broken HTTP answer (illegal status line: "
        "b'\\x00raw body of a server with no status lin'...)"
    )

    failure = failures.from_transport(httpx.ReadError(""), "https://h/x")
    assert failure.retry and failure.message == "the connection broke"
    failure = failures.from_transport(httpx.RemoteProtocolError("Server disconnected."), "h")
    assert failure.message == "a broken HTTP answer (Server disconnected)"
    assert isinstance(failures.exhausted(3, failure), RetriesExhausted)


async def test_https_to_a_plain_http_port_fails_at_once(tmp_path: Path) -> None:
    policy = RetryPolicy(max_tries=5, base=1.0, cap=1.0)  # retried, it would take 4 s
    async with Emulator({"/x.whl": SyntheticFile(1000)}) as emu:
        url = emu.url("/x.whl").replace("http://", "https://")
        with trio.fail_after(3), pytest.raises(DownloadError) as got:
            await download(url, tmp_path / "x.whl", Options(policy=policy))
    authority = url.split("/")[2]
    assert str(got.value) == (
        f"TLS handshake with {authority} failed: wrong version number (is it an https server?)"
    )


def _transport(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


async def _messages(exc: Exception, tmp_path: Path) -> tuple[str, str]:
    """The engine's and the index client's one line for the same failure."""
    policy = RetryPolicy(max_tries=2, base=0.0, cap=0.0)
    async with httpx.AsyncClient(transport=_transport(exc)) as client:
        with pytest.raises(DownloadError) as engine:
            await download(
                "https://files.invalid/x.whl", tmp_path / "x.whl", Options(policy=policy),
                client=client,
            )  # fmt: skip
        with pytest.raises(DownloadError) as index:
            await fetch_project(client, "https://files.invalid/simple/", "x", policy=policy)
    return str(engine.value), str(index.value)


@pytest.mark.parametrize(
    "exc",
    [
        _with_cause(httpx.ConnectError("dns"), socket.gaierror(-2, "Name or service not known")),
        httpx.ConnectError("[Errno 111] Connection refused"),
    ],
    ids=["dns", "refused"],
)
async def test_engine_and_index_client_agree(exc: Exception, tmp_path: Path) -> None:
    with trio.fail_after(10):
        engine, index = await _messages(exc, tmp_path)
    # The same line, except that the index client's names the page it asked for
    page = "page https://files.invalid/simple/x/: "
    assert engine == index.replace(page, ""), (engine, index)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (httpx.ProxyError("407 Proxy Authentication Required"), "proxy's credentials"),
        (httpcore.ProxyError("407 Proxy Authentication Required"), "proxy's credentials"),
        (httpx.ProxyError("403 Forbidden"), "proxy settings"),
    ],
)
def test_a_proxy_refusing_connect_is_final(exc: Exception, words: str) -> None:
    # An https URL through an HTTP proxy: a 407 (or 403) to CONNECT is the same on every try;
    # it was retried 5 times per connection (6-12 s) with "raise --max-tries" as the advice.
    failure = failures.from_transport(exc, "https://127.0.0.1:1/simple/x/")
    assert not failure.retry
    assert words in failure.message and "tunnel" in failure.message


def test_a_proxy_that_cannot_be_reached_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "cannot connect (... to 127.0.0.1:18599 failed); check the link" never said it was the
    environment's proxy that could not be reached."""
    monkeypatch.setenv("HTTP_PROXY", "http://me:pw@127.0.0.1:18599")
    said = "all attempts to connect to 127.0.0.1:18599 failed"
    failure = failures.from_transport(httpx.ConnectError(said), "http://h.example/x")
    assert failure.message.startswith("cannot connect to the proxy http://***@127.0.0.1:18599")
    other = failures.from_transport(
        httpx.ConnectError("... h.example:80 failed"), "http://h.example/x"
    )
    assert other.message.startswith("cannot connect (")  # (the host itself)


def test_a_proxy_that_cannot_connect_onwards_is_retried() -> None:
    failure = failures.from_transport(httpx.ProxyError("502 Bad Gateway"), "https://h/x")
    assert failure.retry


def test_one_try_is_not_said_to_have_made_no_progress() -> None:
    """--max-tries 1 gives up at the first failure even after bytes came: 'with no progress'
    was wrong there (a reset after 1 MB of 8 said it)."""
    failure = failures.from_status(503, "Service Unavailable", {}, "http://h/f")
    one = str(failures.exhausted(1, failure))
    assert (
        one.startswith("giving up after 1 try (--max-tries 1: no retry): ")
        and "progress" not in one
    )
    assert str(failures.exhausted(5, failure)).startswith(
        "giving up after 5 tries with no progress: "
    )
