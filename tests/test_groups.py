"""`install --group [PATH:]NAME` / `download --group`: a pyproject.toml's dependency group
(PEP 735) is a set of requirement lines, read as pip reads it; bad groups are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio
from helpers import installed, one_line_error, segfetch
from test_installer import index, index_dir

from segfetch.errors import UsageError
from segfetch.wheels.groups import group_requirements
from segfetch.wheels.installer import pip_command

__all__ = ["index_dir"]  # (a fixture: pytest finds it here by name)

PYPROJECT = """\
[project]
name = "app"
version = "0"

[dependency-groups]
Test_Tools = ["sf-alpha", {include-group = "fast"}]
fast = ["sf-gamma[fast]; python_version >= '3'", "sf-beta==1.0; python_version < '3'"]
loop-a = [{include-group = "loop-b"}]
loop-b = [{include-group = "loop-a"}]
bad = ["sf-alpha", "not a requirement!"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path


def test_a_group_with_includes_and_markers_reads_as_pip_reads_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = ["sf-alpha", 'sf-gamma[fast]; python_version >= "3"']
    expected.append('sf-beta==1.0; python_version < "3"')
    path = str(project / "pyproject.toml")
    assert group_requirements(f"{path}:test-tools") == expected  # (names normalized)
    monkeypatch.chdir(project)
    assert group_requirements("Test.Tools") == expected  # ./pyproject.toml


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("nope", r"--group nope: pyproject.toml: Dependency group 'nope' not found"),
        ("loop-a", r"--group loop-a: pyproject.toml: Cyclic dependency group include"),
        ("missing/pyproject.toml:x", r"cannot read missing/pyproject.toml"),
        ("pylock.toml:x", r"segfetch reads groups from a pyproject.toml only"),
        ("bad", r"--group bad: pyproject.toml: not a requirement: 'not a requirement!' \("),
    ],
)
def test_a_group_that_cannot_be_read_is_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, value: str, said: str
) -> None:
    monkeypatch.chdir(project)
    with pytest.raises(UsageError, match=said) as raised:
        group_requirements(value)
    assert "\n" not in str(raised.value)


def test_a_pyproject_without_groups_or_not_toml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(UsageError, match=r"has no \[dependency-groups\] table"):
        group_requirements(f"{tmp_path / 'pyproject.toml'}:dev")
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        group_requirements(f"{tmp_path / 'pyproject.toml'}:dev")


async def test_install_group_leaves_what_pip_install_group_leaves(
    tmp_path: Path, project: Path, index_dir: Path
) -> None:
    """pip alone (26.3, lent to a venv without pip) and segfetch, each into a fresh venv:
    the same packages; a bad group is one line and exit 2, before any request."""
    venvs = []
    for name in ("pip", "segfetch"):
        venv = tmp_path / name
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        venvs.append(str(venv / "bin" / "python"))
    async with index(index_dir) as emu:
        alone = await trio.run_process(
            [*pip_command(venvs[0], own=False), "install", "-q", "--index-url", emu.index_url,
             "--group", "test-tools"],
            cwd=project, capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert alone.returncode == 0, alone.stderr
        proc = await segfetch(
            "install", "-q", "--python", venvs[1], "--index-url", emu.index_url, "--no-cache",
            "--installer", "pip", "--group", "test-tools", cwd=project,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        asked = len(emu.log)
        bad = await segfetch(
            "download", "--index-url", emu.index_url, "--group", "nope", "-d", "d", cwd=project
        )
        assert len(emu.log) == asked
    assert installed(Path(venvs[1])) == installed(Path(venvs[0]))
    assert "sf-delta==1.0" in installed(Path(venvs[1]))
    assert bad.returncode == 2
    assert "Dependency group 'nope' not found" in one_line_error(bad)
