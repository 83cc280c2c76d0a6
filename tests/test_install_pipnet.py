"""pip's network settings reach segfetch's own connections, as they reach pip's: an index
behind TLS from a private CA (``cert``), a host whose certificate is not checked
(``trusted-host``), an HTTP proxy (``proxy``), from the command line, the environment or a
config file. The local index segfetch runs for pip's resolver is never sent to the proxy.

Real loopback sockets: the emulator's index behind a TLS front (a trustme CA) and a CONNECT
proxy (tests/helpers.py); pip and segfetch install into copies of one venv."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from helpers import (
    connect_proxy,
    freeze,
    fresh,
    installed,
    one_line_error,
    segfetch,
    tls_front,
)
from test_installer import needs_uv

from segfetch.testing.emulator import Emulator
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.installer import find_uv


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "pn-a", "1.0", requires=["pn-b>=1"], payload=30_000)
    make_wheel(d, "pn-b", "1.0", payload=30_000)
    return d


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def bundle(tmp_path: Path, ca: trustme.CA) -> Path:
    """The test CA's certificate, as pip's ``cert`` names a bundle."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def https_index(index_dir: Path, ca: trustme.CA) -> AsyncIterator[tuple[Emulator, int]]:
    """The emulator's index, and the port of TLS in front of it (a certificate from ``ca``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with Emulator(index=index_dir) as emu, tls_front(emu.port, context) as port:
        yield emu, port


async def install(
    python: str, url: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """pn-a (and pn-b, by pip's resolver) with pip; ``--installer uv`` among ``args``
    replaces it (the last one given wins)."""
    return await segfetch(
        "install", "--python", python, "--index-url", url, "--installer", "pip",
        "--cache-dir", str(tmp_path / "cache"), "-q", *args, *(() if "uv" in args else ("pn-a",)),
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize("where", ["command line", "environment", "config file"])
async def test_an_index_behind_a_private_ca_with_pips_cert(
    tmp_path: Path, https_index: tuple[Emulator, int], venv_template: Path, bundle: Path, where: str
) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if where == "command line":
        args = ["--cert", str(bundle)]
    elif where == "environment":
        env = {"PIP_CERT": str(bundle)}
    else:
        conf = tmp_path / "pip.conf"
        conf.write_text(f"[global]\ncert = {bundle}\n")
        env = {"PIP_CONFIG_FILE": str(conf)}
    emu, port = https_index
    python = fresh(venv_template, tmp_path / "venv")
    proc = await install(python, f"https://127.0.0.1:{port}/simple/", tmp_path, *args, **env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert any(str(e["path"]).startswith("/files/") for e in emu.log)
    assert [line.split("==")[0] for line in await freeze(python)] == ["pn-a", "pn-b"]


async def test_without_the_ca_it_stops_in_one_line_saying_what_to_set(
    tmp_path: Path, https_index: tuple[Emulator, int], venv_template: Path
) -> None:
    python = fresh(venv_template, tmp_path / "venv")
    proc = await install(python, f"https://127.0.0.1:{https_index[1]}/simple/", tmp_path)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "certificate" in line and "cert" in line.split(";")[-1], line
    assert await freeze(python) == []


@pytest.mark.parametrize("where", ["command line", "requirement file"])
async def test_a_trusted_host_is_not_checked(
    tmp_path: Path, https_index: tuple[Emulator, int], venv_template: Path, where: str
) -> None:
    port = https_index[1]
    python = fresh(venv_template, tmp_path / "venv")
    url = f"https://127.0.0.1:{port}/simple/"
    given = ["--trusted-host", f"127.0.0.1:{port}"]
    if where == "requirement file":
        reqs = tmp_path / "reqs.txt"
        reqs.write_text(f"--trusted-host 127.0.0.1:{port}\n--use-feature=truststore\n")
        given = ["-r", str(reqs)]
    proc = await install(python, url, tmp_path, *given)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(await freeze(python)) == 2


@pytest.mark.parametrize("where", ["command line", "PIP_PROXY", "HTTPS_PROXY"])
async def test_connections_go_through_pips_proxy_but_the_local_index_does_not(
    tmp_path: Path, https_index: tuple[Emulator, int], venv_template: Path, bundle: Path, where: str
) -> None:
    port = https_index[1]
    async with connect_proxy() as (proxy_port, asked):
        proxy = f"http://127.0.0.1:{proxy_port}"
        # HTTP(S)_PROXY reach pip's resolver too (as they reach httpx and uv), which asks
        # segfetch's local index on 127.0.0.1: that must not go to the proxy (which
        # refuses all but CONNECT).
        args: list[str] = ["--proxy", proxy] if where == "command line" else []
        env = {} if args else {where: proxy, "HTTP_PROXY": proxy}
        python = fresh(venv_template, tmp_path / "venv")
        url = f"https://127.0.0.1:{port}/simple/"
        proc = await install(python, url, tmp_path, "--cert", str(bundle), *args, **env)
        assert proc.returncode == 0, proc.stderr.decode()
    assert asked, "nothing went through the proxy"
    assert set(asked) == {f"CONNECT 127.0.0.1:{port} HTTP/1.1"}, asked
    assert len(await freeze(python)) == 2


async def test_an_index_segfetch_cannot_read_is_said_not_skipped_silently(
    tmp_path: Path, index_dir: Path, venv_template: Path
) -> None:
    conf = tmp_path / "pip.conf"
    async with Emulator(index=index_dir) as emu:
        other = "ftp://127.0.0.1/simple"
        conf.write_text(f"[global]\nindex-url = {other}\nextra-index-url = {emu.index_url}\n")
        python = fresh(venv_template, tmp_path / "venv")
        proc = await segfetch(
            "install", "--python", python, "--installer", "pip", "pn-a",
            "--cache-dir", str(tmp_path / "cache"), env={"PIP_CONFIG_FILE": str(conf)},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    said = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("segfetch: warning")]
    assert said == [
        f"segfetch: warning: {other} is not an http(s) or file: index: segfetch does not read it"
    ]
    assert len(await freeze(python)) == 2


async def test_a_pip_configuration_pip_cannot_load_stops_it_before_any_request(
    tmp_path: Path, index_dir: Path, venv_template: Path
) -> None:
    """pip stops (exit 2) on a config file it cannot parse; segfetch read no setting and
    went on to the public index."""
    conf = tmp_path / "pip.conf"
    async with Emulator(index=index_dir) as emu:
        conf.write_text(f"[global]\nindex-url = {emu.index_url}\n[[[bad\n")
        python = fresh(venv_template, tmp_path / "venv")
        for command in (["install", "--python", python], ["download", "-d", str(tmp_path)]):
            proc = await segfetch(
                *command, "pn-a", "--cache-dir", str(tmp_path / "cache"),
                env={"PIP_CONFIG_FILE": str(conf)},
            )  # fmt: skip
            said = one_line_error(proc)
            assert proc.returncode == 2 and "pip's configuration cannot be loaded (" in said
            assert f"'{conf}' [line 3]: '[[[bad" in said and said.endswith("; fix it, as pip asks")
        assert emu.log == []
    assert await freeze(python) == []


@pytest.mark.skipif(find_uv() is None, reason="uv is not installed (the test extra has it)")
async def test_uv_installing_while_files_arrive_reaches_the_local_index_directly(
    tmp_path: Path, https_index: tuple[Emulator, int], venv_template: Path, bundle: Path
) -> None:
    port = https_index[1]
    async with connect_proxy() as (proxy_port, asked):
        proxy = f"http://127.0.0.1:{proxy_port}"
        python = fresh(venv_template, tmp_path / "venv")
        url = f"https://127.0.0.1:{port}/simple/"
        # A complete pinned set on a cold cache: uv installs from segfetch's loopback index
        # while the files arrive (wheels/streaming.py), with HTTP(S)_PROXY in its environment.
        args = ("--cert", str(bundle), "--installer", "uv", "pn-a==1.0", "pn-b==1.0")
        proc = await install(python, url, tmp_path, *args, HTTPS_PROXY=proxy, HTTP_PROXY=proxy)
        assert proc.returncode == 0, proc.stderr.decode()
    assert set(asked) == {f"CONNECT 127.0.0.1:{port} HTTP/1.1"}, asked
    assert len(await freeze(python)) == 2


@pytest.mark.parametrize("installer", ["pip", pytest.param("uv", marks=needs_uv)])
async def test_no_proxy_env_leaves_the_environments_proxy_out(
    tmp_path: Path, index_dir: Path, venv_template: Path, installer: str
) -> None:
    """pip 26.2's --no-proxy-env: HTTP(S)_PROXY name a proxy that refuses plain GETs, and
    nothing goes there (without the option, segfetch's requests do, and fail). The venv has
    no pip of its own: segfetch lends its own (26.2+). With the venv template's older pip
    the option stops at once, as that pip stops it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")

    async def install_a(python: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return await segfetch(
            "install", "--python", python, "--index-url", emu.index_url, "--no-cache", "-q",
            "--installer", installer, *args, "pn-a", env={**env, "HTTP_PROXY": proxy},
        )  # fmt: skip

    async with Emulator(index=index_dir) as emu, connect_proxy() as (proxy_port, asked):
        proxy = f"http://127.0.0.1:{proxy_port}"
        env = {"HTTPS_PROXY": proxy, "NO_PROXY": "", "no_proxy": ""}
        proc = await install_a(python, "--no-proxy-env")
        assert proc.returncode == 0, proc.stderr.decode()
        assert asked == []
        assert installed(Path(python)) == ["pn-a==1.0", "pn-b==1.0"]
        through = await install_a(python, "--force-reinstall")
        assert through.returncode != 0 and asked, through.stderr.decode()
        refused = await install_a(fresh(venv_template, tmp_path / "old"), "--no-proxy-env")
    assert refused.returncode == 2
    assert "--no-proxy-env needs pip 26.2+" in one_line_error(refused)
