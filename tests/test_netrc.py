"""Credentials from the netrc file (NETRC, else ~/.netrc), as pip reads them: a server on
loopback that answers 401 without the right Basic credentials; `segfetch get` as a user runs
it, with its own netrc file."""

from __future__ import annotations

import base64
import random
from functools import partial
from pathlib import Path

import pytest
import trio
from helpers import one_line_error, segfetch

from segfetch.engine.early import request_line
from segfetch.engine.netrcauth import credentials

DATA = random.Random(5).randbytes(50_000)


async def _server(seen: list[bytes], stream: trio.SocketStream) -> None:
    """f.bin for user "reader", password "pw"; 401 to anyone else."""
    head = b""
    while b"\r\n\r\n" not in head:
        if not (more := await stream.receive_some(65536)):
            return
        head += more
    good = b"Authorization: Basic " + base64.b64encode(b"reader:pw")
    auth = [x for x in head.split(b"\r\n") if x.lower().startswith(b"authorization:")]
    seen.append(auth[0] if auth else b"")
    if auth != [good]:
        reply = b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="r"\r\n'
        await stream.send_all(reply + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    else:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        await stream.send_all(reply % len(DATA) + DATA)
    await stream.aclose()


def _netrc(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "netrc"
    path.write_text(text)
    path.chmod(0o600)
    return {"NETRC": str(path)}


async def test_the_netrc_file_gives_credentials_the_url_does_not(tmp_path: Path) -> None:
    seen: list[bytes] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, partial(_server, seen), 0))
        port = listeners[0].socket.getsockname()[1]
        url = f"http://127.0.0.1:{port}/f.bin"
        out = tmp_path / "f.bin"
        env = _netrc(tmp_path, "machine 127.0.0.1 login reader password pw\n")
        proc = await segfetch("get", url, "-o", str(out), "-q", env=env)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == DATA
        out.unlink()
        # The URL's own credentials come first, as httpx and pip take them.
        wrong = _netrc(tmp_path, "machine 127.0.0.1 login reader password nope\n")
        good_url = url.replace("http://", "http://reader:pw@")
        proc = await segfetch("get", good_url, "-o", str(out), "-q", env=wrong)
        assert proc.returncode == 0, proc.stderr
        out.unlink()
        # Another host's entry is not sent; without credentials, one line, the hint.
        other = _netrc(tmp_path, "machine elsewhere.example login reader password pw\n")
        proc = await segfetch("get", url, "-o", str(out), "-q", env=other)
        assert proc.returncode == 1 and "401" in one_line_error(proc)
        assert not out.exists()
        nursery.cancel_scope.cancel()
    assert seen[-1] == b""  # (nothing sent for another host's entry)


def test_the_early_request_is_not_sent_to_a_host_the_netrc_file_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:8080/f.bin"
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert request_line(url) is not None
    monkeypatch.setenv("NETRC", _netrc(tmp_path, "machine 127.0.0.1 login a password b\n")["NETRC"])
    assert request_line(url) is None  # (it would go without the credentials)
    assert credentials(str(tmp_path / "netrc"), "127.0.0.1") == ("a", "b")
    (tmp_path / "netrc").write_text("nonsense 127.0.0.1")  # unreadable: none, as for pip
    assert credentials(str(tmp_path / "netrc"), "127.0.0.1") is None
    assert request_line(url) is not None
