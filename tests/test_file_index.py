"""A ``file:`` index (pip's ``index-url`` or ``extra-index-url = file:///...``, a folder of
project folders each with an index.html) is read from disk as pip reads it, its files
checked in place. The pages without sockets; the install beside pip, over loopback."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import trio
from helpers import file_index, freeze, fresh, one_line_error, segfetch

from segfetch.errors import HTTPStatusError
from segfetch.testing.emulator import Emulator
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.index import fetch_project


async def test_a_file_index_page_is_its_folders_index_html(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "fi-c", "1.0")
    url = file_index(tmp_path / "mirror", wheel)
    (f,) = await fetch_project(None, url, "fi-c")  # type: ignore[arg-type]  # (no client)
    assert f.filename == "fi_c-1.0-py3-none-any.whl"
    assert f.url == (tmp_path / "mirror" / "files" / f.filename).as_uri()
    assert (
        f.sha256
        == hashlib.sha256((tmp_path / "mirror/files" / f.filename).read_bytes()).hexdigest()
    )
    with pytest.raises(HTTPStatusError) as missing:
        await fetch_project(None, url, "nowhere")  # type: ignore[arg-type]
    assert missing.value.status == 404


@pytest.fixture
def sets(tmp_path: Path) -> tuple[Path, str]:
    """fi-a on the emulator's index needs fi-c, which only the file: index has."""
    web = tmp_path / "web"
    web.mkdir()
    make_wheel(web, "fi-a", "1.0", requires=["fi-c>=1"], payload=20_000)
    return web, file_index(tmp_path / "mirror", make_wheel(tmp_path, "fi-c", "1.0"))


async def test_install_reads_a_file_index_from_pips_config_as_pip_does(
    tmp_path: Path, sets: tuple[Path, str], venv_template: Path
) -> None:
    web, local = sets
    conf = tmp_path / "pip.conf"
    async with Emulator(index=web) as emu:
        conf.write_text(f"[global]\nindex-url = {emu.index_url}\nextra-index-url = {local}\n")
        env = {"PIP_CONFIG_FILE": str(conf)}
        ours = fresh(venv_template, tmp_path / "ours")
        proc = await segfetch(
            "install", "--python", ours, "--installer", "pip", "fi-a",
            "--cache-dir", str(tmp_path / "cache"), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        assert "warning" not in proc.stderr.decode()
        theirs = fresh(venv_template, tmp_path / "theirs")
        assert await pip_alone(theirs, env, "fi-a") == 0
    assert await freeze(ours) == await freeze(theirs) == ["fi-a==1.0", "fi-c==1.0"]
    # Checked in place: the cache holds no copy of the file: index's wheel.
    assert not [p for p in (tmp_path / "cache").rglob("fi_c*.whl")]


async def test_a_file_index_file_that_fails_its_hash_is_not_installed(
    tmp_path: Path, venv_template: Path
) -> None:
    wheel = make_wheel(tmp_path, "fi-c", "1.0")
    local = file_index(tmp_path / "mirror", wheel, sha256="0" * 64)
    python = fresh(venv_template, tmp_path / "venv")
    proc = await segfetch(
        "install", "--python", python, "--installer", "pip", "--index-url", local,
        "fi-c==1.0", "--cache-dir", str(tmp_path / "cache"), "-q",
    )  # fmt: skip
    assert proc.returncode != 0
    line = one_line_error(proc)
    assert "fi_c-1.0-py3-none-any.whl" in line and "0" * 64 in line, line
    assert await freeze(python) == []


async def pip_alone(python: str, env: dict[str, str], *reqs: str) -> int:
    proc = await trio.run_process(
        [python, "-m", "pip", "install", "-q", "--no-cache-dir", *reqs],
        env={**os.environ, **env},
        check=False,
    )
    return proc.returncode


async def test_a_file_index_named_with_localhost_is_read_and_its_file_copied_out(
    tmp_path: Path,
) -> None:
    """`download -d` of a pinned file from file://localhost/...: the file lands in -d, the
    same bytes, and the mirror keeps its own."""
    wheel = make_wheel(tmp_path, "fi-c", "1.0", payload=5_000)
    local = file_index(tmp_path / "mirror", wheel).replace("file://", "file://localhost", 1)
    out = tmp_path / "out"
    proc = await segfetch(
        "download", "-d", str(out), "--index-url", local, "fi-c==1.0",
        "--cache-dir", str(tmp_path / "cache"), "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    kept = tmp_path / "mirror" / "files" / wheel.name
    assert (out / wheel.name).read_bytes() == kept.read_bytes()


@pytest.mark.parametrize("where", ["PIP_FIND_LINKS", "pip.conf"])
async def test_find_links_of_pips_configuration_are_used_as_pip_uses_them(
    tmp_path: Path, where: str
) -> None:
    """A folder that only pip's configuration names (this machine sets PIP_FIND_LINKS): its
    files join the index's, for a lone pin and for the resolver (both failed: "no project")."""
    web, folder = tmp_path / "web", tmp_path / "wheels"
    web.mkdir()
    folder.mkdir()
    make_wheel(web, "fl-a", "1.0", requires=["fl-x>=1"])
    make_wheel(folder, "fl-x", "1.0")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {folder}\n" if where == "pip.conf" else "")
    env = {"PIP_CONFIG_FILE": str(conf)}
    if where == "PIP_FIND_LINKS":
        env["PIP_FIND_LINKS"] = str(folder)
    async with Emulator(index=web) as emu:
        for n, reqs in enumerate([["fl-a"], ["fl-x==1.0"]]):
            out = tmp_path / f"out{n}"
            proc = await segfetch(
                "download", "-d", str(out), "--index-url", emu.index_url, *reqs,
                "--cache-dir", str(tmp_path / "cache"), "-q", env=env,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr.decode()
            names = sorted(p.name for p in out.iterdir())
            assert "fl_x-1.0-py3-none-any.whl" in names, names
