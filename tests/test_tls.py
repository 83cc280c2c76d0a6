"""The client's TLS context is httpx's own, made on the first https connection: a plain
http download never loads the CA bundle, https and a redirect to https are verified as
before, and an unreadable bundle is one line. pip's cert, client-cert and trusted-host
(install) change what it trusts."""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import certifi
import httpx
import pytest
import trio
import trustme
from helpers import hanging_tls_server, one_line_error, tls_front

from segfetch.engine.client import make_client
from segfetch.engine.download import download
from segfetch.engine.options import Network
from segfetch.engine.tls import tls_context
from segfetch.errors import DownloadError
from segfetch.testing.emulator import Emulator, SyntheticFile

needs_openssl = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


async def run(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "segfetch", *args],
        env={**os.environ, **env},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def test_the_context_is_httpx_default_made_on_first_use() -> None:
    lazy, plain = tls_context(), httpx.create_ssl_context()
    assert object.__getattribute__(lazy, "_context") is None
    assert lazy.verify_mode == plain.verify_mode == ssl.CERT_REQUIRED
    assert lazy.check_hostname is plain.check_hostname is True
    assert lazy.get_ca_certs() == plain.get_ca_certs()
    real = object.__getattribute__(lazy, "_context")
    assert isinstance(real, ssl.SSLContext)
    lazy.set_alpn_protocols(["http/1.1"])  # what httpcore does: calls reach the real one
    lazy.minimum_version = ssl.TLSVersion.TLSv1_3  # and so do settings
    assert real.minimum_version == ssl.TLSVersion.TLSv1_3


async def test_plain_http_never_loads_the_ca_bundle(tmp_path: Path) -> None:
    # Loading /nonexistent would fail: a download that succeeds never loaded it.
    async with Emulator({"/f.bin": SyntheticFile(300_000)}) as emu:
        dest = tmp_path / "f.bin"
        proc = await run("get", emu.url("/f.bin"), "-o", str(dest), SSL_CERT_FILE="/nonexistent")
        assert proc.returncode == 0, proc.stderr
        assert dest.read_bytes() == emu.content("/f.bin")


@pytest.fixture
async def tls_port(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A TLS server on 127.0.0.1 (a self-signed certificate, which it returns) that hangs up
    after the handshake."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    async with hanging_tls_server(tmp_path) as (port, cert):
        yield port, cert


@needs_openssl
async def test_https_with_an_unreadable_ca_bundle_is_one_line(
    tmp_path: Path, tls_port: tuple[int, Path]
) -> None:
    port, _ = tls_port
    url = f"https://127.0.0.1:{port}/x.whl"
    proc = await run("get", url, "-o", str(tmp_path / "x.whl"), SSL_CERT_FILE="/nonexistent")
    assert proc.returncode == 1
    assert "cannot load the CA certificates" in one_line_error(proc)


@needs_openssl
async def test_a_redirect_to_https_is_verified(tmp_path: Path, tls_port: tuple[int, Path]) -> None:
    port, cert = tls_port
    target = f"https://127.0.0.1:{port}/x.whl"

    async def redirect(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        head = f"HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(head.encode())
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, redirect, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/x.whl"
        args = ["get", url, "-o", str(tmp_path / "x.whl"), "--max-tries", "1"]
        proc = await run(*args)
        assert proc.returncode == 1
        assert "TLS certificate check failed" in one_line_error(proc)
        # Trusting the certificate through SSL_CERT_FILE gets past the handshake.
        proc = await run(*args, SSL_CERT_FILE=str(cert))
        assert proc.returncode == 1
        line = one_line_error(proc)
        assert "TLS" not in line and "giving up" in line
        # So does REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE), as for pip, where neither
        # SSL_CERT_FILE nor SSL_CERT_DIR is set; both set, SSL_CERT_FILE comes first.
        unset = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": ""}
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            bundles = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", name: str(cert)}
            proc = await run(*args, **unset, **bundles)
            assert "TLS" not in one_line_error(proc), name
        proc = await run(*args, REQUESTS_CA_BUNDLE=str(cert), SSL_CERT_FILE=certifi.where())
        assert "TLS certificate check failed" in one_line_error(proc)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def private_ca_server() -> AsyncIterator[tuple[str, trustme.CA]]:
    """https://127.0.0.1:PORT/f.bin with a certificate from a CA nobody trusts by default."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with (
        Emulator({"/f.bin": SyntheticFile(20_000)}) as emu,
        tls_front(emu.port, context) as port,
    ):
        yield f"https://127.0.0.1:{port}/f.bin", ca


async def fetch(url: str, network: Network) -> int:
    async with make_client(4, 10, network) as client:
        return (await client.get(url)).status_code


async def test_pips_cert_is_the_ca_bundle_and_a_trusted_host_goes_unchecked(
    tmp_path: Path, private_ca_server: tuple[str, trustme.CA]
) -> None:
    url, ca = private_ca_server
    with pytest.raises(httpx.ConnectError):
        await fetch(url, Network())  # the default bundle does not know this CA
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    assert await fetch(url, Network(cafile=str(bundle))) == 200
    port = url.split(":")[2].split("/")[0]
    assert await fetch(url, Network(insecure=(f"127.0.0.1:{port}",))) == 200
    assert await fetch(url, Network(insecure=("127.0.0.1",))) == 200
    with pytest.raises(httpx.ConnectError):
        await fetch(url, Network(insecure=("localhost",)))  # another host: still checked


async def test_an_unreadable_cert_or_client_cert_is_one_line(
    tmp_path: Path, private_ca_server: tuple[str, trustme.CA]
) -> None:
    url, _ = private_ca_server
    with pytest.raises(DownloadError, match="pip's cert setting"):
        await fetch(url, Network(cafile=str(tmp_path / "missing.pem")))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(DownloadError, match="client certificate"):
        await fetch(url, Network(insecure=("127.0.0.1",), client_cert=str(tmp_path / "junk.pem")))


async def test_a_redirect_from_https_to_http_is_refused_in_capitals_too(tmp_path: Path) -> None:
    """HTTPS:// is https (schemes are case-insensitive): its redirect to plain http is the
    same downgrade, refused."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ports: list[int] = []

    async def plain(stream: trio.SocketStream) -> None:
        asked = await stream.receive_some(65536)
        head = f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{ports[0]}/plain\r\n"
        if b" /plain " in asked:
            head = "HTTP/1.1 200 OK\r\n"
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(f"{head}Content-Length: 0\r\n\r\n".encode())

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, plain, 0, host="127.0.0.1"))
        ports.append(listeners[0].socket.getsockname()[1])
        async with (
            tls_front(ports[0], context) as port,
            make_client(4, 10, Network(cafile=str(tmp_path / "ca.pem"))) as client,
        ):
            with pytest.raises(DownloadError, match="refusing the downgrade"):
                await download(f"HTTPS://127.0.0.1:{port}/f.whl", tmp_path / "f.whl", client=client)
        nursery.cancel_scope.cancel()
