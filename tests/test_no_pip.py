"""An environment without pip (as `uv venv` makes them): segfetch lends it its own pip."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import installed, segfetch
from test_installer import SET, index, index_dir, needs_uv

from segfetch.errors import UsageError
from segfetch.wheels.installer import pip_command
from segfetch.wheels.target import query_target

__all__ = ["index_dir"]  # (a fixture: pytest finds it here by name)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv made --without-pip (module-wide: the probe tests only read it)."""
    path = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def test_the_probe_tells_the_tags_of_a_python_without_pip(bare: Path) -> None:
    target = query_target(str(bare))
    assert not target.own_pip
    own = query_target(sys.executable)  # the same interpreter, with pip: the same tags
    assert own.own_pip
    assert target.tags == own.tags and target.python_version == own.python_version
    assert target.markers == own.markers


def test_the_lent_pip_runs_in_the_target_and_a_missing_one_is_one_line(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pip_command(str(bare)) == [str(bare), "-m", "pip"]
    cmd = pip_command(str(bare), own=False)
    assert cmd[0] == str(bare) and Path(cmd[1]).name == "__pip-runner__.py"
    where = subprocess.run(
        [*cmd, "--version"], capture_output=True, text=True, check=True
    ).stdout  # segfetch's pip, run by the target's interpreter
    assert f"from {Path(cmd[1]).parent} " in where
    assert f"(python {sys.version_info[0]}.{sys.version_info[1]})" in where
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match=r"has no pip, .* -m ensurepip"):
        pip_command(str(bare), own=False)


@pytest.mark.parametrize("which", ["pip", pytest.param("uv", marks=needs_uv)])
async def test_a_resolved_set_installs_into_a_venv_without_pip(
    tmp_path: Path, index_dir: Path, which: str
) -> None:
    """pip's resolver and (--installer pip) pip's install, lent: the set pip alone would
    install, and no pip left behind."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--python", str(python), "--index-url", emu.index_url, "--no-cache",
            "-q", "--installer", which, *SET,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert installed(python) == ["sf-alpha==1.0", "sf-beta==1.1", "sf-delta==1.0", "sf-gamma==1.0"]


@needs_uv
async def test_a_pip_older_than_22_2_has_segfetchs_resolve_for_it(
    tmp_path: Path, index_dir: Path
) -> None:
    """Ubuntu 22.04's venvs have pip 22.0, which has no --report: segfetch's own pip
    resolves for it (it stopped with "upgrade pip"). A stand-in for such a pip, which
    fails as pip 22.0 does whatever it is asked, shows that it is not asked."""
    import packaging

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    pip = Path(site, "pip")
    (pip / "_vendor").mkdir(parents=True)
    (pip / "__init__.py").write_text('__version__ = "22.0.4"\n')
    (pip / "_vendor" / "__init__.py").write_text("")
    (pip / "_vendor" / "packaging").symlink_to(Path(packaging.__file__).parent)
    (pip / "__main__.py").write_text(
        "import sys\nsys.exit('ERROR: no such option: --report (asked: %s)' % sys.argv[1:])\n"
    )
    assert not query_target(str(python)).pip_reports
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--python", str(python), "--index-url", emu.index_url, "--no-cache",
            "-q", "--installer", "uv", *SET,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sf-beta==1.1" in installed(python)
