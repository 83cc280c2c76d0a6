"""pip 26's `--all-releases` / `--only-final`: which projects may take a pre-release, read
as pip reads the two options, for segfetch's own choices and for the resolving pip."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
from helpers import fresh, one_line_error, segfetch
from packaging.version import Version

from segfetch.testing.emulator import Emulator, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.index import IndexFile
from segfetch.wheels.releases import Releases
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.select import choose
from segfetch.wheels.target import Target

TARGET = Target(Version("3.11.7"), ("py3-none-any",), {})
FILES = [
    IndexFile(f"sf_rel-{v}-py3-none-any.whl", f"https://i/sf_rel-{v}.whl") for v in ("1.0", "2.0b1")
]


def releases(*given: tuple[str, str]) -> Releases:
    r = Releases()
    for option, value in given:
        r.take(option, value)
    return r


@pytest.mark.parametrize(
    ("given", "a", "b"),
    [
        ((), None, None),
        ((("--all-releases", "a"),), True, None),
        ((("--all-releases", ":all:"), ("--only-final", "b")), True, False),
        ((("--only-final", ":all:"), ("--all-releases", "A_")), True, False),  # (names: a-)
        ((("--only-final", "a,b"), ("--all-releases", "a")), True, False),  # the last wins
        ((("--all-releases", ":all:,b"),), True, True),  # after :all:, only past :none:
        ((("--all-releases", ":all:,:none:,b"),), None, True),
        ((("--all-releases", "a"), ("--only-final", ":all:")), False, False),  # :all: clears
    ],
)
def test_the_options_read_as_pips(
    given: tuple[tuple[str, str], ...], a: bool | None, b: bool | None
) -> None:
    r = releases(*given)
    assert r.prereleases("a-" if "A_" in str(given) else "a", pre=False) == a
    assert r.prereleases("b", pre=False) == b


def test_pre_alone_is_all_releases() -> None:
    assert Releases().prereleases("x", pre=True) is True


@pytest.mark.parametrize(
    ("options", "spec", "version"),
    [
        ([], "sf-rel", "1.0"),
        ([], "sf-rel>=2.0b1", "2.0b1"),  # the specifier names one: pip's default takes it
        (["--all-releases", "sf-rel"], "sf-rel", "2.0b1"),
        (["--only-final", "sf-rel"], "sf-rel", "1.0"),
        (["--only-final", "sf-rel"], "sf-rel>=2.0b1", None),  # never, named or not
        (["--only-final", ":all:"], "sf-rel==2.0b1", None),
        (["--only-final", "other"], "sf-rel>=2.0b1", "2.0b1"),
    ],
)
def test_the_choice(options: list[str], spec: str, version: str | None) -> None:
    reqs = RequirementSet()
    if options:
        reqs.add_pip_option(*options)
    reqs.add_string(spec)
    w = reqs.wanted[0]
    if version is None:
        with pytest.raises(Exception, match="sf-rel"):
            choose(w, FILES, TARGET, how=reqs.choosing("sf-rel"))
    else:
        assert str(choose(w, FILES, TARGET, how=reqs.choosing("sf-rel")).version) == version


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("releases")
    make_wheel(d, "sf-rel", "1.0")
    make_wheel(d, "sf-rel", "2.0b1", seed=1)
    make_wheel(d, "sf-app", "1.0", requires=["sf-rel"])
    return d


@pytest.mark.parametrize(
    "options",
    [["--all-releases", "sf-rel"], ["--all-releases", ":all:"], ["--only-final", "sf-rel"], []],
)
@pytest.mark.parametrize("reqs", [["sf-app"], ["sf-rel"], ["sf-app==1.0", "sf-rel==1.0"]])
async def test_download_takes_what_pip_download_takes(
    index_dir: Path, tmp_path: Path, options: list[str], reqs: list[str]
) -> None:
    """Resolved by pip (sf-app: its dependency), planned by segfetch (sf-rel alone, whose
    look-ahead is segfetch's), and a complete pinned set: as pip download alone."""
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", *reqs, *options, "--index-url", emu.index_url, "--no-cache",
            "-d", str(tmp_path / "ours"),
        )  # fmt: skip
        alone = await trio.run_process(
            [sys.executable, "-m", "pip", "download", "-q", *reqs, *options, "--no-cache-dir",
             "--index-url", emu.index_url, "-d", str(tmp_path / "pip")],
            env=os.environ, capture_stderr=True, check=False,
        )  # fmt: skip
    if alone.returncode == 2 and b"no such option" in alone.stderr:
        pytest.skip("this pip has no --all-releases")
    assert (proc.returncode, alone.returncode) == (0, 0), (proc.stderr, alone.stderr)
    ours = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert ours == sorted(p.name for p in (tmp_path / "pip").iterdir())


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["--all-releases", "sf-rel"], "--all-releases needs pip 26.0+"),
        (["--only-final=sf-rel"], "--only-final needs pip 26.0+"),
        (["--build-constraint", "bc.txt"], "--build-constraint needs pip 25.3+"),
    ],
)
async def test_what_the_resolving_pip_refuses_stops_before_any_file(
    index_dir: Path, tmp_path: Path, venv_template: Path, words: list[str], said: str
) -> None:
    """The test venvs' pip (23.2) has neither option: it refuses them, so segfetch stops
    first (before, both were refused as not supported yet)."""
    python = fresh(venv_template, tmp_path / "venv")
    version = await trio.run_process([python, "-m", "pip", "--version"], capture_stdout=True)
    if Version(version.stdout.split()[1].decode()) >= Version("25.3"):
        pytest.skip("the test venvs' pip has these options")
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", python, "--no-cache", "--index-url", emu.index_url,
            "sf-app", *words,
        )  # fmt: skip
    assert proc.returncode == 2
    assert said in one_line_error(proc)
    assert not [e for e in emu.log if str(e["path"]).endswith(".whl")]


async def test_pre_with_either_stops_as_in_pip(index_dir: Path, tmp_path: Path) -> None:
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", "sf-app", "--pre", "--only-final", "sf-rel", "--no-cache",
            "--index-url", emu.index_url, "-d", str(tmp_path),
        )  # fmt: skip
    assert proc.returncode == 2
    assert "--pre cannot be used with --all-releases or --only-final" in one_line_error(proc)
    assert not [e for e in emu.log if str(e["path"]).endswith(".whl")]
