"""What the command-line tests share: run segfetch as a user would, read its one-line error."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import trio


async def segfetch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "segfetch", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=cwd,
    )


def one_line_error(proc: subprocess.CompletedProcess[bytes], *, only: bool = True) -> str:
    """segfetch's one error line. ``only=False``: other programs (pip) may have written too."""
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if not only:
        lines = [ln for ln in lines if ln.startswith("segfetch: error: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("segfetch: error: "), err
    return lines[0]


@contextlib.asynccontextmanager
async def hanging_tls_server(folder: Path) -> AsyncIterator[tuple[int, Path]]:
    """A TLS server on 127.0.0.1 with a self-signed certificate (made by the openssl command
    in ``folder``) that hangs up after the handshake: its port and the certificate."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hang_up(stream: trio.SSLStream[trio.SocketStream]) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.do_handshake()
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, hang_up, 0, context, host="127.0.0.1")
        )
        yield listeners[0].transport_listener.socket.getsockname()[1], cert
        nursery.cancel_scope.cancel()
