"""`install/download --requirements-from-script SCRIPT` (pip 26.0, PEP 723): the script's
inline dependencies are requirement lines; its requires-python is checked against the
target; what cannot be read is one line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
from helpers import freeze, fresh, one_line_error, segfetch

from segfetch.errors import SegfetchError, UsageError
from segfetch.testing.emulator import Emulator, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.script import script_requirements

SCRIPT = """\
#!/usr/bin/env python3
# /// script
# requires-python = ">=3.8"
# dependencies = [
#   "sf-sa<2",  # a comment in the TOML
#   "sf-sb; python_version >= '3'",
# ]
# ///

# /// other
# x = 1
# ///
print("hello")
"""


def test_the_block_reads_as_pip_reads_it(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text(SCRIPT)
    deps, python = script_requirements(str(tmp_path / "s.py"))
    assert deps == ["sf-sa<2", "sf-sb; python_version >= '3'"] and python == ">=3.8"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("print(1)\n", "no '# /// script' metadata block"),
        (SCRIPT + SCRIPT, "more than one '# /// script' metadata block"),
        ("# /// script\n# dependencies = [\n# ///\n", "its metadata is not valid TOML"),
        ('# /// script\n# dependencies = "x"\n# ///\n', "'dependencies' is not a list"),
        (None, "cannot read it"),
    ],
)
def test_a_script_that_cannot_be_read_is_one_line(
    tmp_path: Path, text: str | None, said: str
) -> None:
    if text is not None:
        (tmp_path / "s.py").write_text(text)
    with pytest.raises(UsageError, match=said) as raised:
        script_requirements(str(tmp_path / "s.py"))
    assert "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("script")
    for name, version in [("sf-sa", "1.0"), ("sf-sa", "2.0"), ("sf-sb", "1.0")]:
        make_wheel(d, name, version)
    return d


async def test_download_takes_what_pip_download_takes(index_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text(SCRIPT)
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", "--requirements-from-script", str(tmp_path / "s.py"), "--no-cache",
            "--index-url", emu.index_url, "-d", str(tmp_path / "ours"),
        )  # fmt: skip
        alone = await trio.run_process(
            [sys.executable, "-m", "pip", "download", "-q", "--no-cache-dir",
             "--requirements-from-script", str(tmp_path / "s.py"),
             "--index-url", emu.index_url, "-d", str(tmp_path / "pip")],
            env=os.environ, capture_stderr=True, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ours = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert ours == ["sf_sa-1.0-py3-none-any.whl", "sf_sb-1.0-py3-none-any.whl"]
    if alone.returncode == 2 and b"no such option" in alone.stderr:
        pytest.skip("this pip has no --requirements-from-script")
    assert alone.returncode == 0, alone.stderr
    assert sorted(p.name for p in (tmp_path / "pip").iterdir()) == ours


@pytest.mark.parametrize(("python", "code"), [(">=3.8", 0), (">=3.99", 1)])
async def test_install_checks_the_scripts_python(
    index_dir: Path, tmp_path: Path, venv_template: Path, python: str, code: int
) -> None:
    """Into a venv whose own pip (23.2) has no such option: segfetch reads the script, and
    hands that pip requirement lines. A Python the script does not take stops before any
    file, as pip stops ("requires a different Python"), unless --ignore-requires-python."""
    venv = fresh(venv_template, tmp_path / "venv")
    (tmp_path / "s.py").write_text(SCRIPT.replace(">=3.8", python))
    args = ["install", "--python", venv, "--no-cache", "--requirements-from-script"]
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await segfetch(*args, str(tmp_path / "s.py"), "--index-url", emu.index_url, "-q")
        if code:
            assert proc.returncode == 1
            assert f"requires Python {python}, not 3." in one_line_error(proc)
            assert not [e for e in emu.log if str(e["path"]).endswith(".whl")]
            proc = await segfetch(
                *args, str(tmp_path / "s.py"), "--index-url", emu.index_url, "-q",
                "--ignore-requires-python",
            )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert await freeze(venv) == ["sf-sa==1.0", "sf-sb==1.0"]


async def test_given_twice_stops_as_in_pip(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text(SCRIPT)
    s = str(tmp_path / "s.py")
    proc = await segfetch(
        "download", "--requirements-from-script", s, "--requirements-from-script", s,
        "--index-url", "http://127.0.0.1:9/simple/", "-d", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--requirements-from-script can only be given once" in one_line_error(proc)


def test_a_bad_requires_python_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text('# /// script\n# requires-python = ">=3.x"\n# ///\n')
    with pytest.raises(SegfetchError, match=r"bad requires-python '>=3\.x'"):
        script_requirements(str(tmp_path / "s.py"))
