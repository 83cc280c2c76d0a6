"""pip install's options on segfetch's command line: a value is never read as a requirement
(pip 23.2 to 26.3 options), harmless flags pass through, options segfetch cannot honour and
options pip does not have stop before anything is fetched, in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from helpers import freeze, fresh, one_line_error, segfetch
from packaging.version import Version

from segfetch.cli.main import _parser
from segfetch.cli.pipopts import (
    check_passed_through,
    check_require_venv,
    check_user_site,
    check_values,
    pip_args_of,
)
from segfetch.cli.reqset import check_foreign
from segfetch.errors import PipRefusal, UsageError
from segfetch.testing.emulator import Emulator, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.requirements import RequirementSet


def parse(*argv: str) -> tuple[list[str], list[str]]:
    args, rest = _parser().parse_known_args(["install", *argv])
    args.pip_args = rest
    return args.requirements, pip_args_of(args)


def test_every_spelling_of_a_valued_option_keeps_its_value() -> None:
    reqs, pip = parse(
        "a", "--log-file", "l.txt", "--local-log", "m.txt", "--source-dir", "s",
        "--resume-retries", "3", "--refresh-package", "b", "--no-warn-script-location", "-vv",
    )  # fmt: skip
    assert reqs == ["a"]
    assert pip == [
        *("--log-file", "l.txt", "--local-log", "m.txt", "--source-dir", "s"),
        *("--resume-retries", "3", "--refresh-package", "b", "--no-warn-script-location", "-vv"),
    ]
    check_passed_through(["--no-warn-script-location", "-vv", "--dry-run"])  # no error


@pytest.mark.parametrize(
    ("word", "said"),
    [
        ("--frobnicate", "no such option: --frobnicate"),
        ("--frobnicate=3", "no such option: --frobnicate"),
        ("--only-deps", "does not take pip's --only-deps yet"),
        ("--pypi-url", "takes --index-url for pip's --pypi-url"),
    ],
)
def test_what_segfetch_cannot_pass_on_stops(word: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        check_passed_through([word])


def test_install_only_flags_stop_download_as_pip_download_stops_them() -> None:
    """pip download has no --dry-run: it was passed over, and the files downloaded."""
    check_passed_through(["--dry-run", "-vv"])  # install: no error
    for word in ("--dry-run", "--compile", "--no-warn-script-location"):
        with pytest.raises(UsageError, match=f"no such option: {word}"):
            check_passed_through([word], "download")
    check_passed_through(["--require-hashes", "-qq"], "download")


async def test_an_unknown_option_stops_before_its_value_is_read_as_a_requirement() -> None:
    proc = await segfetch(
        "install", "--system", "--frobnicate", "x", "--index-url", "http://127.0.0.1:9/"
    )
    assert proc.returncode == 2
    assert "no such option: --frobnicate" in one_line_error(proc)


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["--root-user-action", "bogus"], "takes warn or ignore, not 'bogus'"),
        (["--root-user-action=Ignore"], "takes warn or ignore"),
        (["--root-user-action", "ignore", "--no-deps"], None),
        (["--upgrade-strategy", "bogus"], "takes only-if-needed or eager, not 'bogus'"),
        (["--upgrade-strategy=eager"], None),
        (["--target", "{file}"], "exists and is not a folder"),
        (["-t", "{file}"], "exists and is not a folder"),
        (["--target={file}"], "exists and is not a folder"),
        (["--target", "{dir}"], None),
        (["--target", "{dir}/new"], None),  # pip makes it
    ],
)
def test_values_pip_refuses_before_it_resolves_are_refused(
    tmp_path: Path, words: list[str], said: str | None
) -> None:
    (tmp_path / "f").write_text("")
    _, pip = parse(*(w.format(file=tmp_path / "f", dir=tmp_path) for w in words))
    if said is None:
        check_values(pip)
    else:
        with pytest.raises(UsageError, match=said):
            check_values(pip)


async def test_a_target_that_is_a_file_stops_before_anything_is_fetched(tmp_path: Path) -> None:
    """pip refuses it before it resolves; segfetch fetched the whole set first."""
    (tmp_path / "f").write_text("")
    async with Emulator({}, link=Link()) as emu:
        proc = await segfetch(
            "install", "--system", "--target", str(tmp_path / "f"), "six",
            "--index-url", emu.index_url,
        )  # fmt: skip
    assert proc.returncode == 1 and not emu.log  # (pip's exit for it)
    assert "exists and is not a folder" in one_line_error(proc)


@pytest.mark.parametrize(
    ("venv", "words", "listing", "refused"),
    [
        (False, ["--require-virtualenv"], "", True),
        (False, ["-q", "--require-venv"], "", True),
        (False, [], ":env:.require-virtualenv='1'\n", True),  # PIP_REQUIRE_VIRTUALENV=1
        (False, [], "global.require-virtualenv='false'\n", False),
        (True, ["--require-virtualenv"], "", False),
        (False, [], "", False),
    ],
)
def test_require_virtualenv_is_pips_refusal(
    tmp_path: Path, venv: bool, words: list[str], listing: str, refused: bool
) -> None:
    """pip stops at once, exit 3, where the interpreter is no virtual environment;
    segfetch fetched the set first (install), or saved it with exit 0 (download)."""
    if venv:
        (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = str(tmp_path / "bin" / "python")
    if not refused:
        check_require_venv(python, words, listing, "install")
        return
    with pytest.raises(PipRefusal, match="no virtual environment") as caught:
        check_require_venv(python, words, listing, "download")
    assert caught.value.exit_code == 3


async def test_download_for_no_virtual_environment_stops_with_require_virtualenv(
    tmp_path: Path,
) -> None:
    make_wheel(tmp_path / "wheels", "rv-one", "1.0")
    base = tmp_path / "base" / "bin" / "python"  # the base interpreter: no pyvenv.cfg here
    base.parent.mkdir(parents=True)
    base.symlink_to(Path(sys.base_prefix) / "bin" / Path(sys.executable).name)
    out = tmp_path / "out"
    async with Emulator(index=tmp_path / "wheels", link=Link()) as emu:
        proc = await segfetch(
            "download", "--python", str(base), "--require-virtualenv", "rv-one", "-d", str(out),
            "--index-url", emu.index_url, "--cache-dir", str(tmp_path / "cache"),
        )  # fmt: skip
        asked = list(emu.log)
    assert proc.returncode == 3, proc.stderr
    assert "is no virtual environment" in one_line_error(proc)
    assert not asked and not list(out.glob("*.whl"))  # (pip asks nothing either)


@pytest.mark.parametrize(
    ("cfg", "words", "said"),
    [
        ("include-system-site-packages = false\n", ["--user"], "cannot --user install"),
        ("home = /usr/bin\n", ["-q", "--user"], "cannot --user install"),  # as pip: no line
        ("include-system-site-packages = true\n", ["--user"], None),  # it sees them
        ("include-system-site-packages = false\n", ["--user", "--no-user"], None),
        (None, ["--user"], None),  # no virtual environment: the user's site is there
        (None, ["--user", "--prefix", "p"], "cannot combine --user and --prefix"),
        (None, ["--user", "--target=t"], "cannot combine --user and --target"),
    ],
)
def test_user_installs_pip_refuses_are_refused(
    tmp_path: Path, cfg: str | None, words: list[str], said: str | None
) -> None:
    if cfg is not None:
        (tmp_path / "pyvenv.cfg").write_text(cfg)
    python = str(tmp_path / "bin" / "python")
    if said is None:
        check_user_site(python, words)
    else:
        with pytest.raises(UsageError, match=said) as refused:
            check_user_site(python, words)
        assert refused.value.exit_code == 1  # pip's


@pytest.mark.parametrize(
    ("command", "words", "said"),
    [
        ("download", ["--platform", "win_amd64"], "take --no-deps, or --only-binary :all:"),
        ("download", ["--platform", "win_amd64", "--no-deps"], None),
        ("download", ["--python-version", "3.8", "--only-binary", ":all:"], None),
        (
            "download",
            ["--abi", "cp38", "--only-binary", ":all:", "--no-binary", "six"],
            "take --no-deps",
        ),
        ("install", ["--platform", "win_amd64", "--no-deps"], "only with --target DIR"),
        ("install", ["--platform", "win_amd64", "--no-deps", "--target", "t"], None),
        ("install", ["--implementation", "pp", "--no-deps", "--dry-run"], None),
        ("install", ["--only-binary", ":all:"], None),  # this interpreter's files
    ],
)
def test_files_for_another_interpreter_as_pip_allows_them(
    command: str, words: list[str], said: str | None
) -> None:
    """pip refuses these before it resolves (exit 1); segfetch said "nothing to install"
    with exit 0, or fetched the wheel before pip refused."""
    reqs = RequirementSet()
    for option, value in zip(words, [*words[1:], None], strict=True):
        if option.startswith("-") and option not in ("--no-deps", "--dry-run"):
            reqs.add_pip_option(option, value)
        elif option == "--no-deps":
            reqs.add_pip_option(option)
    if said is None:
        check_foreign(reqs, command, words)
    else:
        with pytest.raises(PipRefusal, match=said):
            check_foreign(reqs, command, words)


@pytest.mark.parametrize("how", ["--user", "PIP_USER"])
async def test_user_into_a_venv_stops_before_any_file(
    tmp_path: Path, venv_template: Path, how: str
) -> None:
    """pip refuses --user in a virtual environment before it resolves; segfetch fetched the
    whole set first (every wheel, then pip's refusal, exit 1)."""
    python = fresh(venv_template, tmp_path / "venv")
    wheel = make_wheel(tmp_path / "wheels", "sf-user", "1.0")
    env = {"PIP_USER": "1"} if how == "PIP_USER" else {}
    proc = await segfetch(
        "install", "--python", python, "--installer", "pip", "--no-cache", "--no-index",
        "-f", str(wheel.parent), "sf-user", *([how] if how == "--user" else []), env=env,
    )  # fmt: skip
    assert proc.returncode == 1  # (pip's exit)
    assert "a virtual environment does not see the user's site-packages" in one_line_error(proc)


@pytest.mark.parametrize("how", ["PIP_NO_INDEX", "pip.conf"])
async def test_configured_no_index_asks_no_index(
    tmp_path: Path, venv_template: Path, how: str
) -> None:
    """PIP_NO_INDEX=1 (or pip.conf's no-index): pip looks at --find-links alone, and finds no
    sf-noidx; segfetch read it from the index all the same and installed it (exit 0)."""
    python = fresh(venv_template, tmp_path / "venv")
    make_wheel(tmp_path / "wheels", "sf-noidx", "1.0")
    conf = tmp_path / "pip.conf"
    conf.write_text("[install]\nno-index = true\n")
    env = {"PIP_NO_INDEX": "1"} if how == "PIP_NO_INDEX" else {"PIP_CONFIG_FILE": str(conf)}
    async with Emulator(index=tmp_path / "wheels", link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", python, "--installer", "pip", "--no-cache",
            "--index-url", emu.index_url, "sf-noidx", "-q", env=env,
        )  # fmt: skip
    assert proc.returncode == 1
    assert "no project 'sf-noidx' with no index (--no-index" in one_line_error(proc)
    assert await freeze(python) == []


@pytest.mark.parametrize("how", ["--refresh-package", "PIP_REFRESH_PACKAGE", "pip.conf"])
async def test_refresh_package_with_a_pip_older_than_26_2(
    tmp_path: Path, venv_template: Path, how: str
) -> None:
    """pip before 26.2 has no --refresh-package. On the command line it stops before any
    file, as that pip refuses it (segfetch fetched the whole pinned set, then exit 1); from
    pip's configuration it is passed over, as that pip passes it over (exit 1 too)."""
    python = fresh(venv_template, tmp_path / "venv")
    version = await trio.run_process([python, "-m", "pip", "--version"], capture_stdout=True)
    if Version(version.stdout.split()[1].decode()) >= Version("26.2"):
        pytest.skip("the test venvs' pip has --refresh-package")
    make_wheel(tmp_path / "wheels", "sf-old", "1.0", requires=["sf-dep"])
    make_wheel(tmp_path / "wheels", "sf-dep", "1.0")
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nrefresh-package = sf-old\n")
    env = {"PIP_REFRESH_PACKAGE": "sf-old"} if how == "PIP_REFRESH_PACKAGE" else {}
    env |= {"PIP_CONFIG_FILE": str(conf)} if how == "pip.conf" else {}
    async with Emulator(index=tmp_path / "wheels", link=Link()) as emu:
        proc = await segfetch(
            "install", "--python", python, "--installer", "pip", "--no-cache", "-q",
            "--index-url", emu.index_url, "sf-old==1.0", "sf-dep==1.0",
            *([how, "sf-old"] if how == "--refresh-package" else []), env=env,
        )  # fmt: skip
    if how == "--refresh-package":
        assert proc.returncode == 2
        assert "--refresh-package needs pip 26.2+" in one_line_error(proc)
        assert not [e for e in emu.log if str(e["path"]).endswith(".whl")]
    else:
        assert proc.returncode == 0, proc.stderr
        assert await freeze(python) == ["sf-dep==1.0", "sf-old==1.0"]


async def test_refresh_package_takes_names_not_options(tmp_path: Path) -> None:
    """pip 26.3 itself shows a traceback for --refresh-package=-x."""
    async with Emulator({}, link=Link()) as emu:
        proc = await segfetch(
            "download", "six", "-d", str(tmp_path), "--index-url", emu.index_url,
            "--refresh-package=-x",
        )  # fmt: skip
    assert proc.returncode == 2 and not emu.log
    assert "--refresh-package takes project names, not '-x'" in one_line_error(proc)


async def test_build_constraint_reaches_the_build_environment(tmp_path: Path) -> None:
    """pip 25.3's --build-constraint: the sdist's build takes bc-helper 1.0, not 2.0, as in
    pip download alone (it was refused as not supported yet)."""
    from segfetch.testing.wheelmaker import make_backend, make_sdist

    index = tmp_path / "index"
    make_backend(index, requires=["bc-helper"])
    make_wheel(index, "bc-helper", "1.0")
    make_wheel(index, "bc-helper", "2.0", seed=1)
    make_sdist(index, "bc-src", "1.0")
    (tmp_path / "bc.txt").write_text("bc-helper<2\n")
    common = ["download", "bc-src", "--build-constraint", str(tmp_path / "bc.txt")]
    built = []
    async with Emulator(index=index, link=Link()) as emu:
        for tool, cache in (["segfetch"], "--no-cache"), (["pip", "-q"], "--no-cache-dir"):
            seen = len(emu.log)
            proc = await trio.run_process(
                [sys.executable, "-m", *tool, *common, "--index-url", emu.index_url, cache,
                 "-d", str(tmp_path / tool[0])],
                capture_stderr=True, check=False,
            )  # fmt: skip
            if proc.returncode == 2 and b"no such option" in proc.stderr:
                pytest.skip("this pip has no --build-constraint")
            assert proc.returncode == 0, proc.stderr
            paths = {str(e["path"]).rsplit("/", 1)[1] for e in emu.log[seen:]}
            built.append(
                sorted(p for p in paths if p.startswith("bc_helper") and p.endswith("whl"))
            )
    assert built == [["bc_helper-1.0-py3-none-any.whl"]] * 2  # segfetch's, pip's
