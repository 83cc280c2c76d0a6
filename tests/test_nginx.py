"""segfetch against a real web server: Debian's nginx, started by the fixture (tests/nginx.py).

Skipped, with the reason, where nginx is not installed. Each test has its own files, so its
lines in nginx's access log are told apart by URI.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
from helpers import one_line_error, segfetch
from nginx import NOT_INSTALLED, PASSWORD, USER, LogLine, Nginx, find_nginx, running_nginx

from segfetch import Options, download
from segfetch.testing.wheelmaker import make_wheel

MiB = 1 << 20
RUN_TIMEOUT = 40.0  # seconds for one segfetch run; each takes a few at most


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = find_nginx()
    if binary is None:
        pytest.skip(NOT_INSTALLED)
    with running_nginx(binary, tmp_path_factory.mktemp("nginx")) as server:
        yield server


@dataclass(frozen=True)
class Served:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def serve(server: Nginx, name: str, data: bytes) -> Served:
    """A file as a server holds one: written an hour ago. (One written within the second of
    an answer has no validator segfetch trusts: test_just_written_file_is_one_version.)"""
    path = server.files / name
    path.write_bytes(data)
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    return Served(name, data)


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def get(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`segfetch get ARGS` (quiet), bounded."""
    with trio.fail_after(RUN_TIMEOUT):
        return await segfetch("get", "-q", *args)


def result_of(proc: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr.decode()
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def no_side_files(dest: Path) -> None:
    assert not dest.with_name(dest.name + ".part").exists()
    assert not dest.with_name(dest.name + ".part.json").exists()
    assert not dest.with_name(dest.name + ".part.json.tmp").exists()


def segfetch_lines(server: Nginx, uri: str) -> list[LogLine]:
    lines = [ln for ln in server.log(uri) if ln.user_agent.startswith("segfetch")]
    assert lines, f"no request of segfetch's for {uri} in {server.access_log}"
    return lines


def test_listens_on_loopback_only(nginx: Nginx) -> None:
    listening = [
        c
        for pid in nginx.pids()
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert {c.laddr.port for c in listening} == {nginx.port, nginx.tls_port}
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


@pytest.mark.parametrize("n", [1, 4, 16])
async def test_plain_file(nginx: Nginx, tmp_path: Path, n: int) -> None:
    f = serve(nginx, f"plain-{n}.bin", random_bytes(4 * MiB, seed=n))
    dest = tmp_path / f.name
    proc = await get(
        nginx.url("plain", f.name), "-o", str(dest), "-n", str(n), "--sha256", f.sha256, "--json"
    )
    result = result_of(proc)
    assert result["sha256"] == f.sha256
    assert dest.read_bytes() == f.data
    no_side_files(dest)
    lines = segfetch_lines(nginx, f"/plain/{f.name}")
    assert {ln.status for ln in lines} <= {200, 206}
    assert {ln.accept_encoding for ln in lines} == {"identity"}
    assert len(lines) == result["requests"]
    assert 1 <= result["connections"] <= n  # at once; a cut-short response costs its connection
    if n == 1:
        assert [(ln.range, ln.sent) for ln in lines] in (
            [("", len(f.data))],
            [("bytes=0-", len(f.data))],
        )


async def test_credentials_in_the_url_reach_its_redirect_within_the_host(
    nginx: Nginx, tmp_path: Path
) -> None:
    """user:password in the URL, and a redirect to another path of the same host that asks
    for them (curl -L and aria2c send them there): httpx sent them on the redirect it
    followed, but the segments asked the target URL without them: a 401 each, asked again
    through the first URL; with --max-tries 1 the download failed."""
    f = serve(nginx, "auth.bin", random_bytes(2 * MiB, seed=7))
    dest = tmp_path / f.name
    url = nginx.url("to-auth", f.name).replace("://", f"://{USER}:{PASSWORD}@")
    proc = await get(url, "-o", str(dest), "-n", "8", "--max-tries", "1", "--sha256", f.sha256)
    assert proc.returncode == 0, proc.stderr.decode()
    assert dest.read_bytes() == f.data
    lines = segfetch_lines(nginx, f"/auth/{f.name}")
    assert len(lines) > 1 and {ln.status for ln in lines} == {206}


async def test_wheel_with_the_library(nginx: Nginx, tmp_path: Path) -> None:
    whl = make_wheel(nginx.files, "Nginx-Probe", "1.0", payload=2 * MiB)
    data = whl.read_bytes()
    dest = tmp_path / whl.name
    with trio.fail_after(RUN_TIMEOUT):
        result = await download(
            nginx.url("plain", whl.name),
            dest,
            Options(connections=4),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    assert result.size == len(data)
    assert dest.read_bytes() == data
    no_side_files(dest)


async def test_limit_rate_several_connections(nginx: Nginx, tmp_path: Path) -> None:
    f = serve(nginx, "rate.bin", random_bytes(4 * MiB, seed=10))
    dest = tmp_path / f.name
    proc = await get(
        nginx.url("slow", f.name), "-o", str(dest), "-n", "8", "--sha256", f.sha256, "--json"
    )
    result = result_of(proc)
    assert dest.read_bytes() == f.data
    no_side_files(dest)
    lines = segfetch_lines(nginx, f"/slow/{f.name}")
    assert {ln.status for ln in lines} == {206}
    connections = {ln.conn for ln in lines}
    assert len(connections) >= 2, lines
    assert result["connections"] >= 2


async def test_limit_conn_503(nginx: Nginx, tmp_path: Path) -> None:
    f = serve(nginx, "conn2.bin", random_bytes(4 * MiB, seed=11))
    dest = tmp_path / f.name
    proc = await get(
        nginx.url("conn2", f.name), "-o", str(dest), "-n", "8", "--sha256", f.sha256, "--json"
    )
    result_of(proc)
    assert dest.read_bytes() == f.data
    no_side_files(dest)
    lines = segfetch_lines(nginx, f"/conn2/{f.name}")
    refused = [ln for ln in lines if ln.status == 503]
    print(f"limit_conn 2, -n 8: {len(refused)} answers 503 of {len(lines)} requests")
    assert {ln.status for ln in lines} <= {206, 503}
    assert len(refused) <= 40, f"{len(refused)} answers 503: segfetch did not back off"


async def test_tls_with_the_test_ca(
    nginx: Nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = serve(nginx, "tls.bin", random_bytes(2 * MiB, seed=12))
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.ca_file))
    dest = tmp_path / f.name
    proc = await get(
        nginx.url("", f.name, tls=True), "-o", str(dest), "-n", "4", "--sha256", f.sha256
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert dest.read_bytes() == f.data
    no_side_files(dest)
    lines = segfetch_lines(nginx, f"/{f.name}")
    assert all(ln.port == nginx.tls_port and ln.tls.startswith("TLS") for ln in lines)


async def test_tls_without_the_test_ca(
    nginx: Nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = serve(nginx, "tls-untrusted.bin", random_bytes(MiB, seed=13))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    dest = tmp_path / f.name
    proc = await get(nginx.url("", f.name, tls=True), "-o", str(dest))
    assert proc.returncode == 1
    assert "certificate" in one_line_error(proc)
    assert not dest.exists()
    no_side_files(dest)


def curl_with_http2() -> str | None:
    curl = shutil.which("curl")
    if curl is None:
        return None
    version = subprocess.run([curl, "-V"], capture_output=True, text=True, timeout=10)
    return curl if "HTTP2" in version.stdout.partition("Features:")[2] else None


async def test_http2_port_segfetch_speaks_http11(
    nginx: Nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = serve(nginx, "h2.bin", random_bytes(2 * MiB, seed=14))
    url = nginx.url("", f.name, tls=True)
    # The port does offer HTTP/2: ALPN picks h2 for a client that offers it, and curl,
    # asking for it, gets it.
    context = ssl.create_default_context(cafile=str(nginx.ca_file))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", nginx.tls_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
    curl = curl_with_http2()
    if curl is not None:
        cmd = [curl, "-sS", "--http2", "--cacert", str(nginx.ca_file), "-o", os.devnull]
        cmd += ["-w", "%{http_version}", "-r", "0-99", url]
        with trio.fail_after(RUN_TIMEOUT):
            h2 = await trio.run_process(cmd, capture_stdout=True, check=False)
        assert h2.returncode == 0
        assert h2.stdout == b"2"
        assert any(ln.proto == "HTTP/2.0" and ln.h2 == "h2" for ln in nginx.log(f"/{f.name}"))
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.ca_file))
    dest = tmp_path / f.name
    proc = await get(url, "-o", str(dest), "-n", "4", "--sha256", f.sha256)
    assert proc.returncode == 0, proc.stderr.decode()
    assert dest.read_bytes() == f.data
    lines = segfetch_lines(nginx, f"/{f.name}")
    assert {(ln.proto, ln.h2) for ln in lines} == {("HTTP/1.1", "")}


async def test_gzip_location_gives_raw_bytes(nginx: Nginx, tmp_path: Path) -> None:
    rng = random.Random(15)
    words = [b"wheel", b"segment", b"range", b"nginx", b"gzip", b"byte", b"\n"]
    f = serve(nginx, "text.txt", b" ".join(rng.choice(words) for _ in range(400_000)))
    url = nginx.url("gzip", f.name)
    # The location does compress for a client that asks for gzip.
    async with httpx.AsyncClient() as client:
        probe = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert probe.headers.get("Content-Encoding") == "gzip"
    assert probe.content == f.data
    dest = tmp_path / f.name
    proc = await get(url, "-o", str(dest), "-n", "4", "--sha256", f.sha256)
    assert proc.returncode == 0, proc.stderr.decode()
    assert dest.read_bytes() == f.data
    lines = segfetch_lines(nginx, f"/gzip/{f.name}")
    assert {(ln.accept_encoding, ln.content_encoding) for ln in lines} == {("identity", "")}


async def start_and_kill(url: str, dest: Path, n: int) -> dict[str, Any]:
    """Run `segfetch get URL` until its control file records bytes done, then SIGKILL it.
    Returns the control file as it was left."""
    control = dest.with_name(dest.name + ".part.json")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "segfetch", "get", "-q", url, "-o", str(dest), "-n", str(n)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with trio.fail_after(RUN_TIMEOUT):
            while True:
                assert proc.poll() is None, "segfetch ended before it could be killed"
                try:
                    saved: dict[str, Any] = json.loads(control.read_text())
                except (OSError, ValueError):
                    saved = {}
                if sum(end - start for start, end in saved.get("done", [])) > 0:
                    break
                await trio.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: nothing of segfetch's runs after this
        with trio.move_on_after(10):
            await proc.wait()
    assert proc.returncode == -9
    assert not dest.exists()
    saved = json.loads(control.read_text())
    return saved


async def test_resume_after_sigkill(nginx: Nginx, tmp_path: Path) -> None:
    f = serve(nginx, "resume.bin", random_bytes(3 * MiB, seed=16))
    url = nginx.url("slow", f.name)
    dest = tmp_path / f.name
    saved = await start_and_kill(url, dest, 4)
    done = sum(end - start for start, end in saved["done"])
    assert 0 < done < len(f.data)
    proc = await get(url, "-o", str(dest), "-n", "4", "--sha256", f.sha256, "--json")
    result = result_of(proc)
    assert result["resumed"] > 0
    assert result["restarts"] == 0
    assert dest.read_bytes() == f.data
    no_side_files(dest)


async def test_file_replaced_between_runs_is_not_spliced(nginx: Nginx, tmp_path: Path) -> None:
    old = serve(nginx, "replaced.bin", random_bytes(3 * MiB, seed=17))
    url = nginx.url("slow", old.name)
    dest = tmp_path / old.name
    saved = await start_and_kill(url, dest, 4)
    assert saved["etag"]
    new = Served(old.name, random_bytes(len(old.data), seed=18))  # same size, new bytes
    replace_file(nginx.files / old.name, new.data)
    async with httpx.AsyncClient() as client:
        etag = (await client.head(url)).headers["ETag"]
    assert etag != saved["etag"]
    proc = await get(url, "-o", str(dest), "-n", "4", "--json")
    result = result_of(proc)
    assert dest.read_bytes() == new.data  # all new: no old range kept
    assert result["sha256"] == new.sha256
    assert result["restarts"] == 1  # noticed: If-Range with the old ETag got a 200
    no_side_files(dest)
    lines = segfetch_lines(nginx, f"/slow/{old.name}")
    assert any(ln.if_range == saved["etag"] and ln.status == 200 for ln in lines)


@pytest.mark.parametrize("checked", ["sha256", "zip", None])
async def test_load_balanced_nodes_with_their_own_validators(
    nginx: Nginx, tmp_path: Path, checked: str | None
) -> None:
    """Two nodes with the same bytes but other mtimes behind a load balancer that picks a
    node per request: each answer carries its node's ETag and Last-Modified, and If-Range
    with one node's gets the whole file from the other. A file with a sha256 keeps its
    connections and asks without If-Range; any other starts over on one connection (a
    zip too: its CRCs skip some bytes, where nodes' builds of one size may differ). Either
    way the file is the nodes' bytes, exit 0 (it failed with 'changed 4 times' before)."""
    if checked == "zip":
        whl = make_wheel(nginx.files, "Lb-Probe", "1.0", payload=3 * MiB)
        f = Served(whl.name, whl.read_bytes())
    else:
        f = serve(nginx, f"lb-{checked}.bin", random_bytes(3 * MiB, seed=31))
    nginx.on_both_nodes(f.name)
    dest = tmp_path / f.name
    sha = ["--sha256", f.sha256] if checked == "sha256" else []
    proc = await get(nginx.url("lb", f.name), "-o", str(dest), "-n", "4", "--json", *sha)
    result = result_of(proc)
    assert dest.read_bytes() == f.data
    no_side_files(dest)
    tags = {ln.etag for ln in segfetch_lines(nginx, f"/lb/{f.name}") if ln.etag}
    assert len(tags) == 2, tags  # both nodes answered (a request cut before its head: none)
    if checked == "sha256":
        assert result["restarts"] == 0
        assert result["connections"] > 1
    else:
        assert result["restarts"] >= 1


@pytest.mark.parametrize("sha256", [False, True])
async def test_load_balanced_nodes_with_other_bytes_of_one_size(
    nginx: Nginx, tmp_path: Path, sha256: bool
) -> None:
    """Nodes mid-deploy whose zips differ only where the CRCs do not look (an extra field
    of each member's header, as a build's uid and gid): the result is one node's zip
    whole, never a splice of both; with a sha256, node A's or one clear error (the refetch
    is one request, to one node)."""
    name = f"lb-other-{sha256}.whl"
    a, b = _zip_with_extra(b"nodA"), _zip_with_extra(b"nodB")
    serve(nginx, name, a)
    nginx.on_both_nodes(name)
    older = (nginx.node_b / name).stat().st_mtime
    (nginx.node_b / name).write_bytes(b)
    os.utime(nginx.node_b / name, (older, older))
    dest = tmp_path / name
    check = ["--sha256", hashlib.sha256(a).hexdigest()] if sha256 else []
    proc = await get(nginx.url("lb", name), "-o", str(dest), "-n", "4", *check)
    if proc.returncode == 0:
        assert dest.read_bytes() in ((a,) if sha256 else (a, b))
    else:
        assert sha256 and not dest.exists()
        one_line_error(proc)


def _zip_with_extra(mark: bytes) -> bytes:
    """Three members of 1 MiB, each header with an extra field (id 0xCAFE) holding mark."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for i in range(3):
            info = zipfile.ZipInfo(f"pkg/data{i}.bin", (2024, 1, 1, 0, 0, 0))
            info.extra = b"\xfe\xca" + len(mark).to_bytes(2, "little") + mark
            zf.writestr(info, random_bytes(MiB, seed=41 + i))
    return out.getvalue()


def replace_file(path: Path, data: bytes) -> None:
    """New content renamed over ``path``, as a deploy does, with a later mtime: nginx's ETag
    is mtime-size in whole seconds, so only a later mtime tells same-size versions apart."""
    mtime = path.stat().st_mtime
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.utime(tmp, (mtime + 10, mtime + 10))
    os.replace(tmp, path)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_just_written_file_is_one_version(nginx: Nginx, tmp_path: Path, seed: int) -> None:
    """A file replaced within the second it was written has the same ETag and Last-Modified
    as before (nginx makes both from the mtime in whole seconds, and the size): segfetch
    trusts no validator whose Last-Modified is not a second before the answer's Date, so it
    fetches one version whole, never a splice of the two (it spliced them, exit 0). The
    mtime is a minute ahead (a wrong clock, as good as none): no validator counts then, and
    the file comes as one answer."""
    name = f"fresh-{seed}.bin"
    one, two = (random_bytes(3 * MiB, seed=60 + 2 * seed + i) for i in (0, 1))
    path = nginx.files / name
    path.write_bytes(one)
    soon = time.time() + 60
    os.utime(path, (soon, soon))
    dest = tmp_path / name
    # (same second, same size: the same ETag and date)
    assert await _get_while_replacing(nginx, path, dest, two, soon) == 0
    assert dest.read_bytes() in (one, two)


async def test_just_written_file_comes_in_segments_once_its_second_is_past(
    nginx: Nginx, tmp_path: Path
) -> None:
    """A file written within the second of the first answer: asked again once that second
    is past (a replacement from then on has another Last-Modified), then in segments as
    any file, not on one connection to its end. With one connection its first answer,
    open-ended, is the file: read to its end, none of it thrown away. With its size given,
    the other ranges are asked beside the first: each is asked again after the second too,
    not taken for another version (it started over on one connection)."""
    f = Served("settle.bin", random_bytes(2 * MiB, seed=70))
    path = nginx.files / f.name
    sized = ("--size", str(len(f.data)))
    for n, more in (("4", ()), ("1", ()), ("4", sized)):
        path.write_bytes(f.data)
        soon = time.time() + 0.5  # (its second is the answer's or the next: both settled)
        os.utime(path, (soon, soon))
        seen = len(nginx.log(f"/slow/{f.name}"))
        dest = tmp_path / f"{n}{len(more)}.bin"
        args = ("-o", str(dest), "-n", n, *more, "--json")
        result = result_of(await get(nginx.url("slow", f.name), *args))
        assert dest.read_bytes() == f.data and result["sha256"] == f.sha256
        lines = segfetch_lines(nginx, f"/slow/{f.name}")[seen:]
        if n == "1":
            assert [ln.sent - len(f.data) < 1024 for ln in lines] == [True]  # (+ its head)
        else:  # (as one stream: 1 or 2 answers, one of them the whole file)
            assert len(lines) > 2 and max(ln.sent for ln in lines) < len(f.data)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_file_replaced_just_after_it_was_written_is_one_version(
    nginx: Nginx, tmp_path: Path, seed: int
) -> None:
    """Written, fetched, replaced 0.3 s later (same size, real mtimes: in the same second
    or the next): one version whole, whichever second each fell in."""
    name = f"again-{seed}.bin"
    one, two = (random_bytes(2 * MiB, seed=80 + 2 * seed + i) for i in (0, 1))
    path = nginx.files / name
    path.write_bytes(one)
    dest = tmp_path / name
    assert await _get_while_replacing(nginx, path, dest, two, None) == 0
    assert dest.read_bytes() in (one, two)


async def _get_while_replacing(
    nginx: Nginx, path: Path, dest: Path, new: bytes, mtime: float | None
) -> int:
    """`segfetch get -n 4` of the file at ``path`` (nginx's /slow/), which is replaced by
    ``new`` 0.3 s after the start (the first answers in), with ``mtime`` if given; its
    exit code."""
    cmd = [sys.executable, "-m", "segfetch", "get", "-q", nginx.url("slow", path.name)]
    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, [*cmd, "-o", str(dest), "-n", "4"], check=False)
        proc: list[subprocess.CompletedProcess[bytes]] = []
        nursery.start_soon(lambda: _into(proc, run))
        await trio.sleep(0.3)
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(new)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    return proc[0].returncode


async def _into(out: list[subprocess.CompletedProcess[bytes]], run: Any) -> None:
    with trio.fail_after(RUN_TIMEOUT):
        out.append(await run())


async def test_discarded_bytes_are_not_reported_resumed(nginx: Nginx, tmp_path: Path) -> None:
    old = serve(nginx, "discarded.bin", random_bytes(2 * MiB, seed=20))
    url = nginx.url("plain", old.name)
    async with httpx.AsyncClient() as client:
        old_etag = (await client.head(url)).headers["ETag"]
    # What a killed run leaves: the first MiB of the old version, done, under its ETag.
    dest = tmp_path / old.name
    dest.with_name(dest.name + ".part").write_bytes(old.data[:MiB] + bytes(MiB))
    control = {"url": url, "size": 2 * MiB, "etag": old_etag, "last_modified": None}
    control |= {"sha256": None, "done": [[0, MiB]]}
    dest.with_name(dest.name + ".part.json").write_text(json.dumps(control))
    new = random_bytes(2 * MiB, seed=21)
    replace_file(nginx.files / old.name, new)
    result = result_of(await get(url, "-o", str(dest), "-n", "4", "--json"))
    assert dest.read_bytes() == new
    assert result["restarts"] == 1
    assert result["resumed"] == 0


@pytest.fixture
def peer_file(nginx: Nginx) -> Served:
    return serve(nginx, "peer.bin", random_bytes(4 * MiB, seed=19))


async def test_curl_reads_ranges(nginx: Nginx, tmp_path: Path, peer_file: Served) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl not installed")
    out = tmp_path / "range"
    cmd = [curl, "-sS", "-r", "0-99", "-o", str(out), "-w", "%{http_code}"]
    cmd.append(nginx.url("plain", peer_file.name))
    with trio.fail_after(RUN_TIMEOUT):
        proc = await trio.run_process(cmd, capture_stdout=True, check=False)
    assert proc.returncode == 0
    assert proc.stdout == b"206"
    assert out.read_bytes() == peer_file.data[:100]


async def test_aria2c_segments(nginx: Nginx, tmp_path: Path, peer_file: Served) -> None:
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.skip("aria2c not installed")
    cmd = [aria2c, "-q", "-x4", "-s4", "-k1M", "--file-allocation=none"]
    cmd += ["--allow-overwrite=true", "--auto-file-renaming=false"]
    cmd += ["--checksum", f"sha-256={peer_file.sha256}"]
    cmd += ["-d", str(tmp_path), "-o", peer_file.name, nginx.url("plain", peer_file.name)]
    with trio.fail_after(RUN_TIMEOUT):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / peer_file.name).read_bytes() == peer_file.data
    aria = [ln for ln in nginx.log(f"/plain/{peer_file.name}") if "aria2" in ln.user_agent]
    assert any(ln.status == 206 for ln in aria)
