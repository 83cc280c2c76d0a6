"""What the command-line tests share: run segfetch as a user would, read its one-line error."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

RUN_LIMIT = 600  # seconds: far beyond any run's time on a loaded machine


async def segfetch(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``env``: variables to set on top of this process's environment. A run that never
    ends (a command that should have refused its input, and serves instead) is killed and
    fails its test, not the whole suite."""
    with trio.fail_after(RUN_LIMIT):
        return await trio.run_process(
            [sys.executable, "-m", "segfetch", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
        )


def fresh(template: Path, dest: Path) -> str:
    """A copy of the ``venv_template`` environment at dest (a copy works as well as a new
    one): its python."""
    shutil.copytree(template, dest, symlinks=True)
    return str(dest / "bin" / "python")


async def freeze(python: str) -> list[str]:
    """``pip freeze`` of that environment, sorted."""
    proc = await trio.run_process([python, "-m", "pip", "freeze"], capture_stdout=True)
    return sorted(proc.stdout.decode().splitlines())


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


async def _relay(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
    """Bytes both ways until either side ends; then both are closed."""
    async with trio.open_nursery() as nursery:

        async def one_way(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while data := await src.receive_some(65536):
                    await dst.send_all(data)
            nursery.cancel_scope.cancel()

        nursery.start_soon(one_way, a, b)
        nursery.start_soon(one_way, b, a)
    for s in (a, b):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await s.aclose()


@contextlib.asynccontextmanager
async def tls_front(port: int, context: ssl.SSLContext) -> AsyncIterator[int]:
    """TLS on 127.0.0.1 (``context``: the server's certificate) in front of a plain server
    on ``port`` (an emulator): the port to use with https."""

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        with contextlib.suppress(trio.BrokenResourceError, OSError):
            await _relay(stream, await trio.open_tcp_stream("127.0.0.1", port))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, handle, 0, context, host="127.0.0.1")
        )
        yield listeners[0].transport_listener.socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def connect_proxy() -> AsyncIterator[tuple[int, list[str]]]:
    """An HTTP proxy on 127.0.0.1 that tunnels CONNECT to 127.0.0.1 only (anything else is
    refused with 405): its port, and the request line of every request it got."""
    asked: list[str] = []

    async def handle(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            if not (data := await stream.receive_some(4096)):
                return
            head += data
        line = head.split(b"\r\n")[0].decode(errors="replace")
        asked.append(line)
        method, target = [*line.split(" "), "", ""][:2]
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host != "127.0.0.1" or not port.isdigit():
            await stream.send_all(b"HTTP/1.1 405 Not Allowed\r\nContent-Length: 0\r\n\r\n")
            await stream.aclose()
            return
        upstream = await trio.open_tcp_stream("127.0.0.1", int(port))
        await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await _relay(stream, upstream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1], asked
        nursery.cancel_scope.cancel()


def running(pid: int) -> bool:
    """Still running: a zombie counts as ended (its parent may be gone, and
    whoever inherits it may never reap it; test_install_stream's _alive asks for reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def count_hashes(monkeypatch: pytest.MonkeyPatch, where: str) -> list[Path]:
    """The files hashed through ``where`` (a module's ``sha256_of``, as dotted path), in
    order: the cache's own sha256_of, counted."""
    from segfetch.wheels.cache import sha256_of

    calls: list[Path] = []

    async def counting(path: Path) -> str:
        calls.append(path)
        return await sha256_of(path)

    monkeypatch.setattr(where, counting)
    return calls


def file_index(root: Path, wheel: Path, sha256: str | None = None) -> str:
    """An index at root/simple listing ``wheel`` (kept in root/files) by a relative link,
    as a mirror tool writes one; its file: URL."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    kept = files / wheel.name
    wheel.rename(kept)
    digest = sha256 or hashlib.sha256(kept.read_bytes()).hexdigest()
    project = root / "simple" / wheel.name.split("-")[0].replace("_", "-")
    project.mkdir(parents=True)
    link = f'<a href="../../files/{kept.name}#sha256={digest}">{kept.name}</a>'
    (project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{link}\n</body></html>\n")
    return (root / "simple").as_uri()


def installed(python: Path) -> list[str]:
    """name==version of every distribution in the environment (its pip cannot say)."""
    code = "import importlib.metadata as m, json\n"
    code += "print(json.dumps(sorted(f'{d.name}=={d.version}' for d in m.distributions())))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))
