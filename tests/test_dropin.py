"""`segfetch install` is a drop-in for `pip install`: for every kind of requirement set, pip
alone and segfetch (with pip or uv installing) leave two fresh environments with the same
`pip freeze`. Everything is served by the emulator on 127.0.0.1; the wheels are tiny."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from helpers import freeze, fresh, one_line_error, segfetch

from segfetch.testing.emulator import Emulator
from segfetch.testing.wheelmaker import make_backend, make_project, make_sdist, make_wheel

DIRECT = "/direct/dr_direct-1.0-py3-none-any.whl"  # not on the index: only at its URL
B10 = "/direct/dr_b-1.0-py3-none-any.whl"  # a URL constraint's file


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dropin")
    d = root / "index"
    make_wheel(d, "dr-a", "1.0", requires=["dr-b>=1"])
    make_wheel(d, "dr-b", "1.0")
    make_wheel(d, "dr-b", "1.1", seed=1)
    make_wheel(d, "dr-c", "1.0", extras={"fast": ["dr-d"]})
    make_wheel(d, "dr-d", "1.0", requires=['dr-e; python_version < "3"', "dr-b<1.1"])
    make_wheel(d, "dr-e", "1.0")
    # An sdist whose build backend has a dependency of its own: both are build dependencies.
    make_backend(d, requires=["dr-helper"])
    make_wheel(d, "dr-helper", "1.0")
    src = make_sdist(d, "dr-src", "1.0", requires=["dr-a"])
    # A hash-checking lock with an sdist in it: the lock names no build dependency.
    locked = {
        "dr-src==1.0": src,
        "dr-a==1.0": d / "dr_a-1.0-py3-none-any.whl",
        "dr-b==1.1": d / "dr_b-1.1-py3-none-any.whl",
    }
    lines = [f"{pin} --hash=sha256:{sha256_of(path)}\n" for pin, path in locked.items()]
    (root / "hashed.txt").write_text("".join(lines))
    # pip's other two hashes (`pip hash -a sha512`), one line with a sha256 of another file
    a, b = (d / f"dr_{n}-py3-none-any.whl" for n in ("a-1.0", "b-1.1"))
    other = hashlib.sha256(b"another file").hexdigest()
    a_hash = hashlib.sha512(a.read_bytes()).hexdigest()
    b_hash = hashlib.sha384(b.read_bytes()).hexdigest()
    strong = [f"dr-a==1.0 --hash=sha512:{a_hash}", f"dr-b==1.1 --hash=sha256:{other}"]
    (root / "strong.txt").write_text("\n".join(strong) + f" --hash=sha384:{b_hash}\n")
    make_wheel(root / "direct", "dr-direct", "1.0", requires=["dr-c[fast]"])
    make_wheel(root / "direct", "dr-b", "1.0", seed=2)  # not the index's own 1.0
    make_wheel(root / "elsewhere", "dr-found", "1.0", requires=["dr-a"])  # a -f page's
    make_wheel(root / "links", "dr-local", "2.0", requires=["dr-b==1.0"])
    make_wheel(root / "links", "dr-solo", "1.0", requires=["dr-solo-dep"])
    make_wheel(root / "links", "dr-solo-dep", "1.0")
    make_wheel(root / "links", "dr-pre-app", "1.0", requires=["dr-pre-lib"])
    make_wheel(root / "links", "dr-pre-lib", "0.9")
    make_wheel(root / "links", "dr-pre-lib", "1.0rc1", seed=1)
    make_project(root / "src", "dr-proj", "0.1", requires=["dr-a", "dr-e"])
    make_project(root / "src two", "dr-spaced", "0.1", requires=["dr-b"])  # (a space)
    (root / "constraints.txt").write_text("dr-b==1.0\n")
    (root / "built.txt").write_text("dr-a --config-settings foo=bar\n")  # (pip: per line)
    if shutil.which("git"):  # a VCS requirement, cloned from a local repository
        repo = make_project(root / "vcs", "dr-vcs", "0.2", requires=["dr-b<1.1"])
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "v"]):
            subprocess.run([*git, *cmd], check=True)
    return {"root": root, "index": d}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


Args = Callable[[Emulator, Emulator, Path], list[str]]


def url_constraints(emu: Emulator, root: Path) -> str:
    """dr-b from its URL alone (the index has 1.1 too); dr-direct's file is not needed, and
    neither pip nor segfetch fetches it."""
    path = root / "url-constraints.txt"
    path.write_text(f"dr-b @ {emu.url(B10)}\ndr-direct @ {emu.url(DIRECT)}\n")
    return str(path)


def universal_lock(root: Path, hashed: bool) -> list[str]:
    """A lock written for several Pythons (uv export's shape): lines whose marker does not
    hold here pin, constrain and ask extras of nothing. dr-a needs dr-b, pinned only for
    Python 2 (the constraint, dr-b==1.1, excludes that pin); dr-c's extra only for Python 2
    too. pip takes dr-b 1.1 for dr-a, and dr-c without its extra's dr-d."""
    py2 = ' ; python_version < "3"'
    pins = [("dr-a", "1.0", ""), ("dr-b", "1.0", py2), ("dr-b", "1.1", ""), ("dr-c", "1.0", "")]
    pins += [("dr-c[fast]", "1.0", py2)]
    lines = []
    for name, version, marker in pins:
        if name == "dr-b" and not marker and not hashed:
            continue  # unhashed: pip's resolver takes dr-b for dr-a
        wheel = (
            root / "index" / f"{name.split('[')[0].replace('-', '_')}-{version}-py3-none-any.whl"
        )
        digest = f" --hash=sha256:{sha256_of(wheel)}" if hashed else ""
        lines.append(f"{name}=={version}{marker}{digest}\n")
    lock = root / f"universal-{hashed}.txt"
    lock.write_text("".join(lines))
    (root / "universal-c.txt").write_text("dr-b==1.1\n")
    return ["-r", str(lock), "-c", str(root / "universal-c.txt")]


CASES: dict[str, Args] = {
    "unpinned": lambda emu, other, root: ["dr-a"],
    "pinned": lambda emu, other, root: ["dr-a==1.0", "dr-b==1.0"],
    "lone-pin": lambda emu, other, root: ["dr-a==1.0"],
    "extras-markers": lambda emu, other, root: ["dr-c[fast]"],
    "constraints": lambda emu, other, root: ["dr-a", "-c", str(root / "constraints.txt")],
    "url-constraint": lambda emu, other, root: ["dr-a", "-c", url_constraints(emu, root)],
    "url-constraint-pinned": lambda e, o, root: [
        "dr-a==1.0",
        "dr-b==1.0",
        "-c",
        url_constraints(e, root),
    ],
    "direct-url": lambda emu, other, root: [f"dr-direct @ {emu.url(DIRECT)}"],
    "bare-url": lambda emu, other, root: [emu.url(DIRECT)],
    "sdist": lambda emu, other, root: ["dr-src"],
    "hashed-sdist": lambda emu, other, root: ["-r", str(root / "hashed.txt")],
    "hashed-sha512": lambda emu, other, root: ["-r", str(root / "strong.txt")],
    "editable": lambda emu, other, root: ["-e", "src/dr-proj-0.1"],  # from the cwd
    # Quoted in pip's file (an extra's brackets, a space): uv took the quotes for the path.
    "editable-extra": lambda emu, other, root: ["-e", "src/dr-proj-0.1[none]"],
    "config-settings": lambda emu, other, root: ["-r", str(root / "built.txt")],
    "editable-space": lambda emu, other, root: ["-e", str(root / "src two" / "dr-spaced-0.1")],
    # uv refuses an editable VCS URL: auto installs with pip
    "editable-vcs": lambda emu, other, root: [
        "-e",
        f"git+{(root / 'vcs' / 'dr-vcs-0.2').as_uri()}#egg=dr-vcs",
    ],
    "local-path": lambda emu, other, root: ["./src/dr-proj-0.1"],
    "local-wheel": lambda emu, other, root: [str(root / "links" / "dr_local-2.0-py3-none-any.whl")],
    "file-url-wheel": lambda emu, other, root: [
        f"dr-local @ {(root / 'links' / 'dr_local-2.0-py3-none-any.whl').as_uri()}"
    ],
    "vcs": lambda emu, other, root: [f"git+{(root / 'vcs' / 'dr-vcs-0.2').as_uri()}#egg=dr-vcs"],
    "find-links-dir": lambda emu, other, root: ["dr-local", "-f", "links"],  # from the cwd
    # one wheel as the place (pip takes it; uv read it as a page): auto installs with pip
    "find-links-file": lambda e, o, root: ["dr-local", "-f", "links/dr_local-2.0-py3-none-any.whl"],
    "no-index": lambda emu, other, root: ["--no-index", "-f", str(root / "links"), "dr-solo"],
    "find-links-url": lambda emu, other, root: ["dr-found", "-f", other.url("/simple/dr-found/")],
    # the installer chooses from the folder too: --pre reaches it (it took dr-pre-lib 0.9)
    "pre-find-links": lambda emu, other, root: ["--pre", "dr-pre-app", "-f", "links"],
    "universal-lock": lambda emu, other, root: universal_lock(root, hashed=False),
    "universal-hashed": lambda emu, other, root: universal_lock(root, hashed=True),
}
UV_TOO = ["unpinned", "direct-url", "sdist", "hashed-sdist", "hashed-sha512", "editable"]
UV_TOO += ["local-path", "local-wheel", "file-url-wheel"]  # (freeze: with its #sha256=)
UV_TOO += ["no-index", "pre-find-links", "url-constraint", "url-constraint-pinned"]
UV_TOO += ["universal-lock", "universal-hashed", "editable-extra", "editable-space"]
AUTO = [
    "editable-vcs",
    "find-links-file",
    "config-settings",
]  # (with uv there: the test extra installs it)


@pytest.mark.parametrize(
    ("case", "installer"),
    [(c, "pip") for c in CASES] + [(c, "uv") for c in UV_TOO] + [(c, "auto") for c in AUTO],
)
async def test_same_freeze_as_pip(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path, case: str, installer: str
) -> None:
    root = dirs["root"]
    if case in ("vcs", "editable-vcs") and not shutil.which("git"):
        pytest.skip("needs git")
    served = {path: root / path[1:] for path in (DIRECT, B10)}
    async with (
        Emulator(served, index=dirs["index"]) as emu,
        Emulator(index=root / "elsewhere") as other,
    ):
        args = CASES[case](emu, other, root)
        alone, ours = (
            fresh(venv_template, tmp_path / "pip"),
            fresh(venv_template, tmp_path / "ours"),
        )
        pip = [alone, "-m", "pip", "install", "-q", "--index-url", emu.index_url, *args]
        ran = await trio.run_process(pip, capture_stderr=True, check=False, cwd=root)
        assert ran.returncode == 0, ran.stderr.decode()
        emu.log.clear()
        other.log.clear()
        proc = await segfetch(
            "install", "--python", ours, "--index-url", emu.index_url, "-q",
            "--installer", installer, "--cache-dir", str(tmp_path / "cache"), *args, cwd=root,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        # Every file segfetch's run took came through the engine (it always asks a range):
        # neither pip's resolver nor the final install fetched one itself.
        log = [*emu.log, *other.log]
        if case == "no-index":
            assert log == []  # --find-links alone, as pip takes --no-index
        files = [e for e in log if str(e["path"]).startswith(("/direct/", "/files/"))]
        assert all(e["range"] for e in files if not str(e["path"]).endswith(".metadata")), files
        if case.startswith("url-constraint"):  # (a file the set does not need: not asked)
            assert {e["path"] for e in files if str(e["path"]).startswith("/direct/")} == {B10}
    expected = await freeze(alone)
    assert len(expected) >= 2, expected  # the set and a dependency at least
    # The editable's line names the same source folder in both: no difference to explain.
    assert await freeze(ours) == expected


async def test_a_cached_build_does_not_hide_an_sdists_build_dependencies(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path
) -> None:
    """pip's cache holds a wheel it built from a -f folder's sdist. pip's resolver, run with
    that cache, took the wheel and asked for no build dependency; the install, under
    --no-cache-dir, built the sdist again and found none: exit 1 where pip alone installs
    (drop-in review)."""
    links = tmp_path / "links"
    make_sdist(links, "dr-lsrc", "1.0", requires=["dr-a"])
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}  # pip's own cache, for both runs
    async with Emulator(index=dirs["index"]) as emu:
        first = fresh(venv_template, tmp_path / "first")
        pip = [first, "-m", "pip", "install", "-q", "--index-url", emu.index_url]
        ran = await trio.run_process(
            [*pip, "-f", str(links), "dr-lsrc"], capture_stderr=True, check=False,
            env={**os.environ, **env},
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr.decode()
        assert list((tmp_path / "xdg" / "pip").rglob("dr_lsrc-1.0-*.whl"))  # built, cached
        ours = fresh(venv_template, tmp_path / "ours")
        proc = await segfetch(
            "install", "--python", ours, "--index-url", emu.index_url, "-q", "--no-cache-dir",
            "-f", str(links), "dr-lsrc", "--cache-dir", str(tmp_path / "cache"), env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert "dr-lsrc==1.0" in await freeze(ours)


@pytest.mark.parametrize("installer", ["pip", "uv"])
async def test_an_install_resolves_against_what_is_installed(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path, installer: str
) -> None:
    """As pip does: a requirement already satisfied (dr-b 1.0, though 1.1 is out), pinned
    in a complete set or a dependency, costs no byte and stays; -U upgrades only what
    needs it (pip's only-if-needed)."""
    alone, ours = fresh(venv_template, tmp_path / "pip"), fresh(venv_template, tmp_path / "ours")
    async with Emulator(index=dirs["index"]) as emu:
        index = ["--index-url", emu.index_url]
        for python in (alone, ours):
            await trio.run_process([python, "-m", "pip", "install", "-q", *index, "dr-b==1.0"])
        for args in (["dr-a==1.0", "dr-b==1.0"], ["dr-a"], ["-U", "dr-a"]):
            await trio.run_process([alone, "-m", "pip", "install", "-q", *index, *args])
            emu.log.clear()
            proc = await segfetch(
                "install", "--python", ours, *index, "-q", "--installer", installer,
                "--cache-dir", str(tmp_path / "cache"), *args,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr.decode()
            paths = [str(e["path"]) for e in emu.log if str(e["path"]).startswith("/files/")]
            wheels = {p.removeprefix("/files/") for p in paths if not p.endswith(".metadata")}
            assert wheels <= {"dr_a-1.0-py3-none-any.whl"}, args
            assert await freeze(ours) == await freeze(alone), args
    assert "dr-b==1.0" in await freeze(ours)


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize(
    ("held", "asked"),
    [("dr-a==1.0", "dr-a==1.0"), ("dr-c==1.0", "dr-c[fast]==1.0")],
    ids=["its-dependency-missing", "an-extra-asked"],
)
async def test_a_held_pin_gets_what_it_needs_that_is_not_installed(
    tmp_path: Path,
    dirs: dict[str, Path],
    venv_template: Path,
    installer: str,
    held: str,
    asked: str,
) -> None:
    """A pin the environment holds, installed without its dependencies (pip --no-deps), or
    asked for now with an extra: pip installs what it lacks. segfetch said "nothing to
    install" (exit 0, the dependency missing): the held pin was left out of the plan, and
    its installed dependencies were never looked at; with uv, the uv started before the
    plan for the pinned set said "Checked 1 package", and that was taken as the install."""
    alone, ours = fresh(venv_template, tmp_path / "pip"), fresh(venv_template, tmp_path / "ours")
    async with Emulator(index=dirs["index"]) as emu:
        index = ["--index-url", emu.index_url]
        for python in (alone, ours):
            await trio.run_process(
                [python, "-m", "pip", "install", "-q", *index, "--no-deps", held]
            )
        await trio.run_process([alone, "-m", "pip", "install", "-q", *index, asked])
        proc = await segfetch(
            "install", "--python", ours, *index, "-q", "--installer", installer,
            "--cache-dir", str(tmp_path / "cache"), asked,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
    expected = await freeze(alone)
    assert len(expected) >= 2, expected
    assert await freeze(ours) == expected


async def test_direct_url_hashes_are_checked(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path
) -> None:
    """A direct URL's file is verified by its #sha256= fragment or --hash: a wrong one keeps
    and installs nothing; a right one is what `download` writes, byte for byte."""
    wheel = dirs["root"] / DIRECT[1:]
    ours = fresh(venv_template, tmp_path / "ours")
    async with Emulator({DIRECT: wheel}, index=dirs["index"]) as emu:
        where = ["--index-url", emu.index_url, "--cache-dir", str(tmp_path / "cache")]
        wrong = f"dr-direct @ {emu.url(DIRECT)}#sha256={'0' * 64}"
        proc = await segfetch("install", "--python", ours, *where, wrong)
        assert proc.returncode == 1
        assert "sha256" in one_line_error(proc, only=False)
        req = tmp_path / "req.txt"
        req.write_text(f"{emu.url(DIRECT)} --hash=sha256:{'1' * 64}\n")
        proc = await segfetch("install", "--python", ours, *where, "-r", str(req))
        assert proc.returncode == 1
        assert "sha256 mismatch" in one_line_error(proc, only=False)
        # pip's other link hashes: `#md5=` was not checked, and a wrong one installed
        md5 = hashlib.md5(wheel.read_bytes()).hexdigest()
        bad_md5 = f"dr-direct @ {emu.url(DIRECT)}#md5={'0' * 32}"
        proc = await segfetch("install", "--python", ours, *where, bad_md5)
        assert proc.returncode == 1
        assert f"gives md5 {'0' * 32}, the file has {md5}" in one_line_error(proc, only=False)
        sha = sha256_of(wheel)
        req.write_text(f"{emu.url(DIRECT)}#sha256={sha}\n")  # --hash: all pinned, as pip
        out = tmp_path / "out"
        proc = await segfetch("download", *where, "-r", str(req), "-d", str(out), "-q")
        assert proc.returncode == 0, proc.stderr.decode()
        req.write_text(f"dr-direct @ {emu.url(DIRECT)}#md5={md5.upper()}\n")
        proc = await segfetch("download", *where, "-r", str(req), "-d", str(tmp_path / "o2"))
        assert proc.returncode == 0, proc.stderr.decode()
    assert (out / wheel.name).read_bytes() == wheel.read_bytes()
    assert (tmp_path / "o2" / wheel.name).read_bytes() == wheel.read_bytes()
    assert {p.name for p in out.iterdir()} >= {wheel.name, "dr_c-1.0-py3-none-any.whl"}
    assert not [ln for ln in await freeze(ours) if ln.startswith("dr-")]


PYPI = "https://pypi.org/simple/"


async def _both(tmp_path: Path, venv_template: Path, *args: str) -> tuple[list[str], list[str]]:
    """pip alone and segfetch installing the same set from the real index: their freezes."""
    alone, ours = fresh(venv_template, tmp_path / "pip"), fresh(venv_template, tmp_path / "ours")
    pip = [alone, "-m", "pip", "install", "-q", "--index-url", PYPI, *args]
    ran = await trio.run_process(pip, capture_stderr=True, check=False)
    assert ran.returncode == 0, ran.stderr.decode()
    where = ["--index-url", PYPI, "--cache-dir", str(tmp_path / "cache"), "-q"]
    proc = await segfetch("install", "--python", ours, *where, *args)
    assert proc.returncode == 0, proc.stderr.decode()
    return await freeze(alone), await freeze(ours)


@pytest.mark.network
async def test_real_lone_pin_installs_and_downloads_as_pip(
    tmp_path: Path, venv_template: Path
) -> None:
    """Off by default (-m network): requests==2.32.3 brings its dependencies, as with pip."""
    expected, got = await _both(tmp_path, venv_template, "requests==2.32.3")
    assert got == expected and len(expected) >= 5, expected
    out, theirs = tmp_path / "out", tmp_path / "theirs"
    proc = await segfetch("download", "requests==2.32.3", "-d", str(out), "--index-url", PYPI)
    assert proc.returncode == 0, proc.stderr.decode()
    pip = [sys.executable, "-m", "pip", "download", "-q", "requests==2.32.3", "-d", str(theirs)]
    await trio.run_process([*pip, "--index-url", PYPI, "--no-cache-dir"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in theirs.iterdir())


@pytest.mark.network
async def test_real_sdist_only_package_installs(tmp_path: Path, venv_template: Path) -> None:
    """Off by default: docopt has only an sdist; its build dependencies (setuptools) come
    through segfetch too, so the offline install can build it."""
    expected, got = await _both(tmp_path, venv_template, "docopt==0.6.2")
    assert got == expected and "docopt==0.6.2" in expected


async def test_download_takes_pip_downloads_own_options(
    tmp_path: Path, dirs: dict[str, Path]
) -> None:
    """pip download's options (--no-index, --retries N, --exists-action, ...) are taken,
    not refused: the same files as pip download's."""
    root = dirs["root"]
    args = ["--no-index", "-f", str(root / "links"), "dr-solo", "--retries", "2"]
    args += ["--exists-action", "w", "--disable-pip-version-check", "-v"]
    pip = [sys.executable, "-m", "pip", "download", "-q", "-d", str(tmp_path / "pip"), *args]
    ran = await trio.run_process(pip, capture_stderr=True, check=False)
    assert ran.returncode == 0, ran.stderr.decode()
    ours = tmp_path / "ours"
    proc = await segfetch("download", "-d", str(ours), "--no-cache", *args)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(p.name for p in ours.iterdir()) == sorted(
        p.name for p in (tmp_path / "pip").iterdir()
    )
    bad = await segfetch("download", "-d", str(ours), "--no-cache", "dr-solo", "--hash-file")
    assert bad.returncode == 2 and "no such option: --hash-file" in one_line_error(bad)


async def both_install(
    emu: Emulator, tmp_path: Path, venv_template: Path, installer: str, env: dict[str, str]
) -> tuple[str, str]:
    """`dr-a` installed by pip alone and by segfetch, each in a fresh venv, with pip's
    settings ``env``; the emulator's log then holds segfetch's requests alone."""
    alone, ours = (fresh(venv_template, tmp_path / n) for n in ("pip", "ours"))
    pip = [alone, "-m", "pip", "install", "-q", "--index-url", emu.index_url, "dr-a"]
    ran = await trio.run_process(pip, capture_stderr=True, check=False, env={**os.environ, **env})
    assert ran.returncode == 0, ran.stderr.decode()
    emu.log.clear()
    proc = await segfetch(
        "install", "--python", ours, "--index-url", emu.index_url, "-q", "--installer",
        installer, "--no-cache", "dr-a", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return alone, ours


@pytest.mark.parametrize("where", ["environment", "config file"])
@pytest.mark.parametrize("installer", ["pip", "uv"])
async def test_pips_options_from_its_configuration_apply(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path, installer: str, where: str
) -> None:
    """no-deps and only-binary, set as PIP_* variables or in pip.conf, as pip reads them:
    the same freeze as pip's, and no byte of a dependency fetched."""
    env = {"PIP_NO_DEPS": "1", "PIP_ONLY_BINARY": ":all:", "PIP_PRE": "0"}
    if where == "config file":
        conf = tmp_path / "pip.conf"
        conf.write_text("[global]\nonly-binary = :all:\n[install]\nno-deps = true\n")
        env = {"PIP_CONFIG_FILE": str(conf)}
    async with Emulator(index=dirs["index"]) as emu:
        alone, ours = await both_install(emu, tmp_path, venv_template, installer, env)
        fetched = {str(e["path"]).rsplit("/", 1)[-1] for e in emu.log}
    assert not any(name.startswith("dr_b") for name in fetched), fetched
    assert await freeze(ours) == await freeze(alone) == ["dr-a==1.0"]


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("where", ["PIP_CONSTRAINT", "config file"])
async def test_a_configured_url_constraint_is_fetched_here_once(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path, installer: str, where: str
) -> None:
    """A constraint on a URL in pip's configuration: pip's resolver (and pip installing)
    had read the file itself, and fetched the URL behind segfetch's back (it stopped: "not
    from the index"). Now its file comes through the engine, once; freeze as pip's."""
    root = dirs["root"]
    async with Emulator({B10: root / B10[1:]}, index=dirs["index"]) as emu:
        env = {"PIP_CONSTRAINT": url_constraints(emu, tmp_path)}
        if where == "config file":
            conf = tmp_path / "pip.conf"
            conf.write_text(f"[global]\nconstraint = {env.pop('PIP_CONSTRAINT')}\n")
            env["PIP_CONFIG_FILE"] = str(conf)
        alone, ours = await both_install(emu, tmp_path, venv_template, installer, env)
        asked = [e for e in emu.log if e["path"] == B10]
    assert len(asked) == 1 and asked[0]["range"], asked  # (the engine's, and only once)
    assert await freeze(ours) == await freeze(alone)
    assert any(line.startswith("dr-b @ ") for line in await freeze(ours))


async def test_a_url_constraints_file_is_direct_in_the_report(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path
) -> None:
    """As in pip's --report: the file a URL constraint chose is a direct URL's."""
    root = dirs["root"]
    async with Emulator({B10: root / B10[1:]}, index=dirs["index"]) as emu:
        report = tmp_path / "report.json"
        proc = await segfetch(
            "install", "--python", fresh(venv_template, tmp_path / "v"), "-q", "--index-url",
            emu.index_url, "--no-cache", "--report", str(report), "-c",
            url_constraints(emu, tmp_path), "dr-a",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        items = json.loads(report.read_text())["install"]
        said = {i["metadata"]["name"]: (i["download_info"]["url"], i["is_direct"]) for i in items}
        assert said["dr-b"] == (emu.url(B10), True)
        assert said["dr-a"][1] is False


@pytest.mark.parametrize("place", ["--target", "--prefix"])
async def test_a_direct_url_installed_elsewhere_records_its_url(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path, place: str
) -> None:
    """Into a --target (or --prefix) folder, the project of a direct URL said it came
    from segfetch's cache (file:///...) where pip's says its URL."""
    root, python = dirs["root"], fresh(venv_template, tmp_path / "v")
    async with Emulator({DIRECT: root / DIRECT[1:]}, index=dirs["index"]) as emu:
        want = f"dr-direct @ {emu.url(DIRECT)}"
        for who, folder in (("pip", tmp_path / "alone"), ("ours", tmp_path / "ours")):
            args = ["install", "-q", "--index-url", emu.index_url, place, str(folder), want]
            if who == "pip":
                ran = await trio.run_process([python, "-m", "pip", *args], capture_stderr=True)
            else:
                ran = await segfetch(*args, "--python", python, "--no-cache")
            assert ran.returncode == 0, ran.stderr.decode()
    site = (
        ""
        if place == "--target"
        else f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    )
    lines = []
    for folder in (tmp_path / "alone", tmp_path / "ours"):
        cmd = [python, "-m", "pip", "freeze", "--path", str(folder / site)]
        lines.append((await trio.run_process(cmd, capture_stdout=True)).stdout.decode())
    assert lines[0] == lines[1] and f"{want}#sha256=" in lines[1], lines


async def test_a_conflict_names_the_requirements_not_segfetchs_files(
    tmp_path: Path, dirs: dict[str, Path]
) -> None:
    """dr-d needs dr-b<1.1: pip's resolver said "Cannot install -r /tmp/segfetch-reqs-.../
    requirements.txt (line 1) and ..." (the set as segfetch wrote it), where pip alone
    names the requirements."""
    async with Emulator(index=dirs["index"]) as emu:
        proc = await segfetch(
            "download", "-d", str(tmp_path), "--index-url", emu.index_url, "--no-cache", "-q",
            "dr-d", "dr-b==1.1",
        )  # fmt: skip
    said = proc.stderr.decode()
    assert proc.returncode == 1 and "Cannot install dr-d and dr-b==1.1 because" in said, said
    assert "segfetch-reqs" not in said, said  # (pip sorts the names it was given)
    # pip's cause, as pip alone shows it (it is pip's INFO: --quiet had dropped it)
    assert "The conflict is caused by:" in said and "depends on dr-b<1.1" in said, said


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("asked", ["dr-c[fast,nope]", "dr-c[nope]==1.0"])
async def test_a_held_projects_missing_extra_is_said_as_pip_says_it(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path, asked: str, installer: str
) -> None:
    """pip keeps dr-c (and dr-d for [fast]), installs nothing, and warns that dr-c has no
    extra 'nope'; segfetch installed nothing (or uv, started early, checked the set) and
    said nothing of it."""
    async with Emulator(index=dirs["index"]) as emu:
        python = fresh(venv_template, tmp_path / "v")
        pip = [python, "-m", "pip", "install", "-q", "--index-url", emu.index_url]
        await trio.run_process([*pip, "dr-c[fast]"], capture_stderr=True)
        alone = await trio.run_process([*pip, asked], capture_stderr=True)
        ours = await segfetch(
            "install", "--python", python, "--index-url", emu.index_url, "--installer",
            installer, asked,
        )  # fmt: skip
    warned = [ln for ln in alone.stderr.decode().splitlines() if ln.startswith("WARNING")]
    assert warned == ["WARNING: dr-c 1.0 does not provide the extra 'nope'"], warned
    assert ours.returncode == 0 and warned[0] in ours.stderr.decode().splitlines(), ours.stderr


async def test_a_refused_file_is_asked_once_a_run(tmp_path: Path, dirs: dict[str, Path]) -> None:
    """A URL constraint's file the server does not have: the look-ahead, pip's .metadata
    request and pip's file request each asked it (3 requests; pip alone: 1)."""
    async with Emulator(index=dirs["index"]) as emu:
        c = tmp_path / "c.txt"
        c.write_text(f"dr-b @ {emu.url(B10)}\n")  # (nothing is served there)
        proc = await segfetch(
            "download", "-d", str(tmp_path / "d"), "--index-url", emu.index_url, "--no-cache",
            "-q", "-c", str(c), "dr-a",
        )  # fmt: skip
        assert proc.returncode == 1 and "404" in one_line_error(proc)
        assert [e["status"] for e in emu.log if e["path"] == B10] == [404]


async def test_hash_mode_reaches_what_pips_resolver_adds(
    tmp_path: Path, dirs: dict[str, Path], venv_template: Path
) -> None:
    """--require-hashes and a direct URL with its #sha256: the URL counts as hashed, but
    the dependencies pip's resolver adds have no hash: refused, as pip refuses them."""
    root = dirs["root"]
    wheel = root / DIRECT[1:]
    async with Emulator({DIRECT: wheel}, index=dirs["index"]) as emu:
        req = tmp_path / "req.txt"
        req.write_text(
            f"--require-hashes\ndr-direct @ {emu.url(DIRECT)}#sha256={sha256_of(wheel)}\n"
        )
        alone, ours = (
            fresh(venv_template, tmp_path / "pip"),
            fresh(venv_template, tmp_path / "ours"),
        )
        pip = [alone, "-m", "pip", "install", "-q", "--index-url", emu.index_url, "-r", str(req)]
        ran = await trio.run_process(pip, capture_stderr=True, check=False)
        assert ran.returncode == 1, ran.stderr.decode()
        proc = await segfetch(
            "install", "--python", ours, "--index-url", emu.index_url, "--no-cache", "-r", str(req)
        )
        assert proc.returncode == 1 and "hash" in one_line_error(proc, only=False)
    assert await freeze(ours) == await freeze(alone)
