"""An interpreter the system manages (PEP 668, an EXTERNALLY-MANAGED file beside its standard
library): `install` refuses it before any download, as pip refuses before it resolves, and
takes what pip takes (--break-system-packages, its setting, another place to install)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import trio
from helpers import one_line_error, segfetch
from packaging.version import Version

from segfetch.cli.pipopts import check_managed
from segfetch.errors import UsageError
from segfetch.testing.emulator import Emulator
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.target import Target, query_target

MARKER = "/usr/lib/python3.11/EXTERNALLY-MANAGED"


def target(managed: str | None = MARKER) -> Target:
    return Target(Version("3.11"), ("py3-none-any",), {}, managed=managed)


@pytest.mark.parametrize(
    "words",
    [
        ["--break-system-packages"],
        ["--target", "/x"],
        ["--target=/x"],
        ["-t", "/x"],
        ["--prefix", "/x"],
        ["--root", "/x"],
        ["--dry-run", "--report", "-"],
    ],
)
def test_what_pip_takes_into_a_managed_interpreter(words: list[str]) -> None:
    check_managed(target(), "/usr/bin/python3", words, "")


@pytest.mark.parametrize("words", [[], ["--user"], ["--dry-run"], ["--upgrade"]])
def test_what_pip_refuses(words: list[str]) -> None:
    with pytest.raises(UsageError) as refused:
        check_managed(target(), "/usr/bin/python3", words, "")
    line = str(refused.value)
    assert "\n" not in line and MARKER in line and "--break-system-packages" in line


def test_the_setting_counts_as_pip_reads_it() -> None:
    check_managed(target(), "py", [], "global.break-system-packages='yes'\n")
    check_managed(target(), "py", [], ":env:.break-system-packages='1'\n")
    with pytest.raises(UsageError):
        check_managed(target(), "py", [], "global.break-system-packages='no'\n")
    check_managed(target(None), "py", [], "")  # not managed: nothing to say


@pytest.fixture(scope="module")
def managed_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This interpreter again, from a folder of its own: its binary copied, its standard
    library linked entry by entry (pip too, for the probe), and the marker beside them."""
    home = tmp_path_factory.mktemp("managed")
    stdlib = Path(sysconfig.get_path("stdlib"))
    version = f"python{sysconfig.get_python_version()}"
    lib = home / "lib" / version
    (lib / "site-packages").mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "EXTERNALLY-MANAGED"):
            (lib / entry.name).symlink_to(entry)
    import pip

    (lib / "site-packages" / "pip").symlink_to(Path(pip.__file__).parent)
    (home / "bin").mkdir()
    exe = home / "bin" / version
    shutil.copy2(os.path.realpath(sys.executable), exe)
    (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=managed here\n")
    said = subprocess.run(
        [str(exe), "-c", "import sys, sysconfig; print(sys.prefix, sysconfig.get_path('stdlib'))"],
        capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    if said.returncode != 0 or said.stdout.split() != [str(home), str(lib)]:
        pytest.skip(f"this interpreter does not run from a copy of its home: {said.stdout}")
    return str(exe)


def test_the_probe_finds_the_marker(managed_python: str) -> None:
    exe = Path(managed_python)
    marker = exe.parent.parent / "lib" / exe.name / "EXTERNALLY-MANAGED"
    assert query_target(managed_python).managed == str(marker)
    assert query_target(sys.executable).managed is None  # (the tests' venv)


async def test_install_refuses_before_any_download(tmp_path: Path, managed_python: str) -> None:
    make_wheel(tmp_path / "index", "mg-one", "1.0")
    async with Emulator(index=tmp_path / "index") as emu:
        proc = await segfetch(
            "install", "--python", managed_python, "--index-url", emu.index_url,
            "--installer", "pip", "mg-one==1.0",
        )  # fmt: skip
        line = one_line_error(proc)
        assert proc.returncode == 1 and "is managed by the system" in line  # (pip's exit)
        assert not [e for e in emu.log if str(e["path"]).endswith(".whl")]
        # Elsewhere (--target) it installs, as pip does.
        proc = await segfetch(
            "install", "--python", managed_python, "--index-url", emu.index_url,
            "--installer", "pip", "--target", str(tmp_path / "t"), "mg-one==1.0", "-q",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        assert await trio.to_thread.run_sync((tmp_path / "t" / "mg_one").exists)
