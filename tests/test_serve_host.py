"""`segfetch serve --host`: an IPv6 address as a URL writes it ([::1]) is taken, an empty one
is a usage error, and a wildcard address prints a URL that works here and one for others."""

from __future__ import annotations

import pytest
from helpers import one_line_error, segfetch

from segfetch.cli.serve import _host, _loopback, _urls
from segfetch.errors import UsageError


@pytest.mark.parametrize(
    ("given", "host"),
    [("[::1]", "::1"), ("::1", "::1"), (" 127.0.0.1 ", "127.0.0.1"), ("[::]", "::"),
     ("0.0.0.0", "0.0.0.0"), ("build-cache.lan", "build-cache.lan")],
)  # fmt: skip
def test_an_ipv6_host_in_brackets_is_its_address(given: str, host: str) -> None:
    assert _host(given) == host


def test_a_bracketed_loopback_is_not_warned_about() -> None:
    assert _loopback(_host("[::1]"))


@pytest.mark.parametrize(
    ("host", "here", "elsewhere"),
    [
        ("127.0.0.1", "http://127.0.0.1:3141/simple/", None),
        ("::1", "http://[::1]:3141/simple/", None),
        ("0.0.0.0", "http://127.0.0.1:3141/simple/", "http://builder:3141/simple/"),
        # (trio listens on :: for IPv6 only: 127.0.0.1 would not answer)
        ("::", "http://[::1]:3141/simple/", "http://builder:3141/simple/"),
    ],
)
def test_the_printed_urls_work_where_they_say(
    host: str, here: str, elsewhere: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "builder")
    assert _urls(host, 3141) == (here, elsewhere)


async def test_an_empty_host_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--host is empty"):
        _host("  ")
    proc = await segfetch("serve", "--index-url", "http://127.0.0.1:1/simple/", "--host", "")
    assert proc.returncode == 2 and "--host is empty" in one_line_error(proc)
