"""`segfetch install --dry-run`: pip's answer, with no wheel fetched where pip fetches none.

pip reads only each wheel's ``.metadata`` (PEP 658) on a dry run since 25.3; the test extras
ask for such a pip, and a venv made --without-pip is lent segfetch's own (test_no_pip)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pip
import pytest
import trio
from helpers import fresh, installed, segfetch
from packaging.version import Version
from test_installer import SET, index, index_dir

from segfetch.wheels.installer import pip_command

__all__ = ["index_dir"]  # (a fixture: pytest finds it here by name)

WOULD = "Would install sf-alpha-1.0 sf-beta-1.1 sf-delta-1.0 sf-gamma-1.0"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A venv without pip, so that segfetch lends it its own (one that reads metadata only)."""
    assert Version(pip.__version__) >= Version("25.3"), "pip install -e '.[test]' brings it"
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def wheels_asked(log: list[dict[str, object]]) -> list[str]:
    return [str(e["path"]) for e in log if str(e["path"]).endswith(".whl")]


async def test_a_dry_run_says_what_pip_says_and_fetches_no_wheel(
    bare: Path, index_dir: Path
) -> None:
    """The resolver's answer is the command's: "Would install ..." as pip alone prints it
    for the same index, each wheel's metadata read and no wheel fetched (it fetched them
    all, for a final `pip install --dry-run` of the local copies), nothing installed."""
    async with index(index_dir) as emu:
        alone = await trio.run_process(
            [*pip_command(str(bare), own=False), "install", "--dry-run",
             "--index-url", emu.index_url, *SET],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert alone.returncode == 0, alone.stderr
        assert WOULD in alone.stdout.decode().splitlines()
        assert not wheels_asked(emu.log)  # (pip alone: metadata only)
        seen = len(emu.log)
        proc = await segfetch(
            "install", "--python", str(bare), "--index-url", emu.index_url, "--no-cache",
            "--installer", "pip", "--dry-run", *SET,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [WOULD]
    asked = [str(e["path"]) for e in emu.log[seen:]]
    assert not wheels_asked(emu.log[seen:]), asked
    assert sum(p.endswith(".whl.metadata") for p in asked) == 4, asked
    assert installed(bare) == []


@pytest.mark.parametrize("to_stdout", [True, False])
async def test_a_dry_runs_report_names_the_index_files(
    tmp_path: Path, bare: Path, index_dir: Path, to_stdout: bool
) -> None:
    """--report (a file, or - for stdout with -q): pip's report, each file's URL the
    index's (pip was pointed at segfetch's local index), as pip alone reports it."""
    where = "-" if to_stdout else str(tmp_path / "report.json")
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--python", str(bare), "--index-url", emu.index_url, "--no-cache", "-q",
            "--installer", "pip", "--dry-run", "--report", where, *SET,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode() if to_stdout else Path(where).read_text()
    assert not to_stdout or "Would install" not in text  # (-q: the report alone)
    items = json.loads(text)["install"]
    urls = sorted(i["download_info"]["url"] for i in items)
    assert urls == [
        emu.url(f"/files/{name}")
        for name in (
            "sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.1-py3-none-any.whl",
            "sf_delta-1.0-py3-none-any.whl", "sf_gamma-1.0-py3-none-any.whl",
        )
    ]  # fmt: skip
    assert all(i["download_info"]["archive_info"]["hashes"]["sha256"] for i in items)
    assert sorted(i["metadata"]["name"] for i in items) == [
        "sf-alpha", "sf-beta", "sf-delta", "sf-gamma",
    ]  # fmt: skip


@pytest.mark.parametrize("own_pip", [False, True])
async def test_a_dry_run_with_json_lists_the_files_as_not_fetched(
    bare: Path, index_dir: Path, venv_template: Path, tmp_path: Path, own_pip: bool
) -> None:
    """--json: one JSON document on stdout, a record per file pip would install, none of
    them fetched (nor in the throw-away cache); pip's words on stderr. No installer runs,
    so --installer uv is no error (it once was: uv has no --dry-run of pip's). A venv's
    own pip before 25.3 takes each wheel whole for its dry run: then each record says it
    was fetched (they said "cached")."""
    python = fresh(venv_template, tmp_path / "own") if own_pip else str(bare)
    if own_pip:
        said = await trio.run_process([python, "-m", "pip", "--version"], capture_stdout=True)
        if Version(said.stdout.split()[1].decode()) >= Version("25.3"):
            pytest.skip("the test venvs' pip reads metadata only")
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--python", python, "--index-url", emu.index_url, "--no-cache",
            "--installer", "uv", "--dry-run", "--json", *SET,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert sorted(r["filename"] for r in records) == [
        "sf_alpha-1.0-py3-none-any.whl", "sf_beta-1.1-py3-none-any.whl",
        "sf_delta-1.0-py3-none-any.whl", "sf_gamma-1.0-py3-none-any.whl",
    ]  # fmt: skip
    assert not any(r["cached"] or r["local"] for r in records)
    assert [bool(r["connections"]) for r in records] == [own_pip] * 4
    assert WOULD in proc.stderr.decode()


async def test_a_dry_run_of_what_is_installed_says_so(bare: Path, index_dir: Path) -> None:
    """Everything already installed: pip says "Requirement already satisfied" of each;
    segfetch printed nothing on stdout (not even "nothing to install")."""
    async with index(index_dir) as emu:
        where = ["--python", str(bare), "--index-url", emu.index_url, "--installer", "pip"]
        done = await segfetch("install", *where, "-q", *SET)
        assert done.returncode == 0, done.stderr
        proc = await segfetch("install", *where, "--dry-run", *SET)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        "Would install nothing: every requirement is already satisfied"
    ]
