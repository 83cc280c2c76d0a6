"""segfetch's look-ahead while pip resolves: it guesses only versions every known specifier
allows, and fetches a whole file ahead only where it is certain to be installed. Measured
in the emulator's log: no byte of a wheel that is not in the result."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
from helpers import freeze, fresh, one_line_error, segfetch
from packaging.version import Version

from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.index import IndexFile
from segfetch.wheels.lookahead import Lookahead
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.target import Target


def _sdist(folder: Path, name: str, version: str) -> Path:
    """A small sdist; the tests that list one never let pip build it."""
    base = f"{name.replace('-', '_')}-{version}"
    data = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    path = folder / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lookahead-index")
    # The parent's Requires-Dist excludes the newest (and largest) version.
    make_wheel(d, "lk-app", "1.0", requires=["lk-lib<2"])
    make_wheel(d, "lk-lib", "1.0", payload=150_000)
    make_wheel(d, "lk-lib", "1.5", payload=200_000, seed=1)
    make_wheel(d, "lk-lib", "2.0", payload=1_000_000, seed=2)
    # The user's own specifier excludes the newest ("download 'numpy<2'").
    make_wheel(d, "lk-np", "1.26", payload=300_000)
    make_wheel(d, "lk-np", "2.1", payload=1_500_000, seed=1)
    # A constraint pins a dependency below the newest ("-c" with urllib3==2.2.3).
    make_wheel(d, "lk-web", "1.0", requires=["lk-url3<3,>=1.21.1"])
    make_wheel(d, "lk-url3", "2.2.3", payload=200_000)
    make_wheel(d, "lk-url3", "2.8.0", payload=800_000, seed=1)
    # Pins all the way down: certain, so fetched whole ahead of pip.
    make_wheel(d, "lk-top", "1.0", requires=["lk-exact==1.0", "lk-lib"])
    make_wheel(d, "lk-exact", "1.0", payload=100_000)
    make_wheel(d, "lk-exact", "1.1", payload=100_000, seed=1)
    # The newest release is an sdist only: --only-binary :all: takes the wheel before it.
    make_wheel(d, "lk-src", "1.0", payload=50_000)
    _sdist(d, "lk-src", "2.0")
    return d


def index(index_dir: Path, options: IndexOptions | None = None) -> Emulator:
    return Emulator(index=index_dir, link=Link(), index_options=options or IndexOptions())


def wheel_bytes(log: Sequence[dict[str, object]]) -> dict[str, int]:
    """Bytes of each distribution file sent, by file name (.metadata requests apart)."""
    out: dict[str, int] = {}
    for e in log:
        path = str(e["path"])
        if path.startswith("/files/") and path.endswith((".whl", ".tar.gz")):
            name = path.rsplit("/", 1)[1]
            out[name] = out.get(name, 0) + int(str(e["sent"]))
    return out


def metadata_requests(log: Sequence[dict[str, object]]) -> list[str]:
    return [str(e["path"]).rsplit("/", 1)[1] for e in log if str(e["path"]).endswith(".metadata")]


async def pip_download(url: str, dest: Path, args: Sequence[str]) -> set[str]:
    """What pip itself downloads from the same index (pip's own settings left out but for
    its constraints: PIP_CONSTRAINT, and the config file a test names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {k: v for k, v in os.environ.items() if k == "PIP_CONSTRAINT"}
    env["PIP_CONFIG_FILE"] = os.environ.get("PIP_CONFIG_FILE", os.devnull)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-cache-dir", "-d", str(dest)]
    proc = await trio.run_process(
        [*cmd, "--index-url", url, *args], env=env, capture_stdout=True, capture_stderr=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {p.name for p in dest.iterdir()}


async def download_and_compare(
    tmp_path: Path, index_dir: Path, args: Sequence[str], expected: set[str]
) -> dict[str, int]:
    """segfetch download, then pip download of the same: the same files, and not one byte of
    a wheel that is not among them."""
    async with index(index_dir) as emu:
        out = tmp_path / "out"
        proc = await segfetch(
            "download", *args, "-d", str(out), "--index-url", emu.index_url, "--no-cache"
        )
        assert proc.returncode == 0, proc.stderr
        ours = list(emu.log)
        theirs = await pip_download(emu.index_url, tmp_path / "pip", args)
    got = {p.name for p in out.iterdir()}
    assert got == expected == theirs
    fetched = wheel_bytes(ours)
    delivered = {p.name: p.stat().st_size for p in out.iterdir()}
    print(
        f"{' '.join(args)}: {sum(fetched.values())} bytes of files fetched, "
        f"{sum(delivered.values())} delivered, {len(metadata_requests(ours))} .metadata"
    )
    assert set(fetched) <= got, f"fetched files not in the result: {set(fetched) - got}"
    assert fetched == delivered
    return fetched


async def test_parent_specifier_keeps_the_newest_out(tmp_path: Path, index_dir: Path) -> None:
    await download_and_compare(
        tmp_path, index_dir, ["lk-app"],
        {"lk_app-1.0-py3-none-any.whl", "lk_lib-1.5-py3-none-any.whl"},
    )  # fmt: skip


async def test_users_specifier_keeps_the_newest_out(tmp_path: Path, index_dir: Path) -> None:
    await download_and_compare(tmp_path, index_dir, ["lk-np<2"], {"lk_np-1.26-py3-none-any.whl"})


async def test_constraint_file_keeps_the_newest_out(tmp_path: Path, index_dir: Path) -> None:
    constraints = tmp_path / "c.txt"
    constraints.write_text("lk-url3==2.2.3\nlk-np<1  # not wanted: constrains nothing here\n")
    await download_and_compare(
        tmp_path, index_dir, ["lk-web", "-c", str(constraints)],
        {"lk_web-1.0-py3-none-any.whl", "lk_url3-2.2.3-py3-none-any.whl"},
    )  # fmt: skip


async def test_pips_configured_constraint_applies(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip's own `constraint` setting (here PIP_CONSTRAINT) applies as pip applies it: to
    the look-ahead, to the resolver (which segfetch runs without pip's settings), to pins."""
    constraints = tmp_path / "configured.txt"
    constraints.write_text("lk-url3==2.2.3\n")
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    await download_and_compare(
        tmp_path, index_dir, ["lk-web"],
        {"lk_web-1.0-py3-none-any.whl", "lk_url3-2.2.3-py3-none-any.whl"},
    )  # fmt: skip
    async with index(index_dir) as emu:
        proc = await segfetch(
            "download", "lk-url3==2.8.0", "-d", str(tmp_path / "pinned"),
            "--index-url", emu.index_url, "--no-cache",
        )  # fmt: skip
    assert proc.returncode == 1
    assert "lk-url3==2.2.3" in one_line_error(proc)
    assert not wheel_bytes(emu.log)


async def test_a_constraint_in_pips_config_file_reaches_the_resolver(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same from a pip.conf: segfetch's resolver runs without pip's config files, so the
    constraint must be in the files segfetch names to it (known only once pip's settings
    are read: not before the target's probe answers)."""
    constraints = tmp_path / "configured.txt"
    constraints.write_text("lk-url3==2.2.3\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {constraints}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    await download_and_compare(
        tmp_path, index_dir, ["lk-web"],
        {"lk_web-1.0-py3-none-any.whl", "lk_url3-2.2.3-py3-none-any.whl"},
    )  # fmt: skip


async def test_isolated_reads_no_configured_constraint(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip's --isolated ignores its configuration, PIP_CONSTRAINT included: so does segfetch."""
    constraints = tmp_path / "configured.txt"
    constraints.write_text("lk-url3==2.2.3\n")
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "lk-url3==2.8.0", "--python", python, "--installer", "pip",
            "--isolated", "--index-url", emu.index_url, "--no-cache",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shown = subprocess.run([python, "-m", "pip", "show", "lk-url3"], capture_output=True, text=True)
    assert "Version: 2.8.0" in shown.stdout


async def test_isolated_reads_the_config_files_pip_reads(
    tmp_path: Path, index_dir: Path, venv_template: Path
) -> None:
    """pip --isolated skips PIP_* variables and the user's files only: PIP_CONFIG_FILE's file
    (and the global and the venv's pip.conf) still name its index and no-deps. segfetch
    asked the public index instead ('pip install --isolated lib' against a mirror named in
    pip.conf: pip installed from the mirror, segfetch went to pypi.org)."""
    python = fresh(venv_template, tmp_path / "venv")
    conf = tmp_path / "pip.conf"
    async with index(index_dir) as emu:
        conf.write_text(f"[global]\nindex-url = {emu.index_url}\n[install]\nno-deps = yes\n")
        env = {"PIP_CONFIG_FILE": str(conf), "PIP_NO_DEPS": "0"}  # (the variable: ignored)
        env["HTTPS_PROXY"] = "http://127.0.0.1:9"  # the public index: refused at once
        proc = await segfetch(
            "install", "lk-web", "--python", python, "--installer", "pip", "--isolated",
            "--no-cache", "-q", env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert await freeze(python) == ["lk-web==1.0"]


async def test_pins_are_fetched_ahead_and_nothing_else(tmp_path: Path, index_dir: Path) -> None:
    """lk-top==1.0 is pinned and so is its lk-exact==1.0: both certain, fetched whole while
    pip resolves; lk-lib is not pinned: metadata only until pip has chosen."""
    fetched = await download_and_compare(
        tmp_path, index_dir, ["lk-top==1.0"],
        {"lk_top-1.0-py3-none-any.whl", "lk_exact-1.0-py3-none-any.whl",
         "lk_lib-2.0-py3-none-any.whl"},
    )  # fmt: skip
    assert "lk_exact-1.1-py3-none-any.whl" not in fetched


@pytest.mark.parametrize("missing", [["lk-url3>=9"], ["lk-nowhere"]])
async def test_a_set_that_cannot_resolve_fetches_no_wheel(
    tmp_path: Path, index_dir: Path, missing: list[str]
) -> None:
    """A set (to pip's resolver: not all pinned) with a version or a project the index
    does not have: pip alone fails with .metadata files read and no wheel fetched;
    segfetch fetched the pinned ones whole first."""
    async with index(index_dir) as emu:
        proc = await segfetch(
            "download", "lk-web==1.0", "lk-np==1.26", *missing, "-d", str(tmp_path / "out"),
            "--index-url", emu.index_url, "--no-cache",
        )  # fmt: skip
    assert proc.returncode == 1
    assert missing[-1].split("==")[0] in one_line_error(proc, only=False)
    assert wheel_bytes(emu.log) == {}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


async def test_only_binary_with_a_separate_value(tmp_path: Path, index_dir: Path) -> None:
    """`--only-binary :all:` keeps its value (not read as a requirement ':all:') and reaches
    the resolver and the look-ahead: the newest lk-src, an sdist, is never fetched."""
    await download_and_compare(
        tmp_path, index_dir, ["lk-src", "--only-binary", ":all:"],
        {"lk_src-1.0-py3-none-any.whl"},
    )  # fmt: skip


async def test_no_metadata_upstream_means_no_wheel_ahead(tmp_path: Path, index_dir: Path) -> None:
    """An index without .metadata files: a guess would cost a whole wheel, so only what pip
    asks for is fetched (the wheels it chose, for their METADATA)."""
    opts = IndexOptions(metadata=False, advertise_metadata=False)
    async with index(index_dir, opts) as emu:
        out = tmp_path / "out"
        proc = await segfetch(
            "download", "lk-app", "-d", str(out), "--index-url", emu.index_url, "--no-cache"
        )
        assert proc.returncode == 0, proc.stderr
    got = {p.name: p.stat().st_size for p in out.iterdir()}
    assert wheel_bytes(emu.log) == got
    # A .metadata the pages do not advertise is guessed (a proxy may drop the key) until
    # the host answers one 404: then no more (it was a 404 and a round trip per wheel).
    guessed = [e for e in emu.log if str(e["path"]).endswith(".metadata")]
    assert len(guessed) == 1, guessed


async def test_a_pin_against_a_constraint_is_an_error(tmp_path: Path, index_dir: Path) -> None:
    constraints = tmp_path / "c.txt"
    constraints.write_text("lk-lib<2\n")
    async with index(index_dir) as emu:
        where = ["-d", str(tmp_path / "out"), "--index-url", emu.index_url, "--no-cache"]
        bad = await segfetch("download", "lk-lib==2.0", "-c", str(constraints), *where)
        good = await segfetch("download", "lk-lib==1.5", "-c", str(constraints), *where)
    assert bad.returncode == 1
    line = one_line_error(bad)
    assert "lk-lib==2.0" in line and "lk-lib<2" in line and "c.txt:1" in line
    assert good.returncode == 0, good.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"lk_lib-1.5-py3-none-any.whl"}


# -- the decisions, without a network ---------------------------------------------------------

TARGET = Target(Version("3.11.7"), ("py3-none-any",), {"python_version": "3.11"})


def files(*names: str, metadata: bool = True) -> list[IndexFile]:
    return [IndexFile(n, f"https://i.example/files/{n}", metadata=metadata) for n in names]


LIB = files("lib-1.0-py3-none-any.whl", "lib-1.5-py3-none-any.whl", "lib-2.0-py3-none-any.whl")


def lookahead(*reqs: str, constraints: Sequence[str] = ()) -> Lookahead:
    s = RequirementSet()
    for r in reqs:
        s.add_string(r)
    for c in constraints:
        s.add_string(c)
        s.constraints.append(s.wanted.pop())
    return Lookahead(s, TARGET)


def picked(la: Lookahead, name: str, found: list[IndexFile]) -> list[tuple[str, bool]]:
    return [(f.filename, certain) for f, certain in la.picks(name, found)]


def meta(name: str, version: str, *requires: str) -> bytes:
    lines = [f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    return ("\n".join(lines) + "\n\n").encode()


def test_a_guess_honours_every_specifier() -> None:
    la = lookahead("app", "lib>=1.0", constraints=["lib!=1.5", "other==3"])
    assert picked(la, "lib", LIB) == [("lib-2.0-py3-none-any.whl", False)]
    assert picked(la, "lib", LIB) == []  # handed out once
    app = files("app-1.0-py3-none-any.whl")[0]
    assert la.learn(app, meta("app", "1.0", "lib<2"), certain=False) == {"lib"}
    # lib<2 from the parent, >=1.0 from the user, !=1.5 from the constraint
    assert picked(la, "lib", LIB) == [("lib-1.0-py3-none-any.whl", False)]


def test_a_guess_no_file_satisfies_is_skipped() -> None:
    la = lookahead("lib>5")
    assert picked(la, "lib", LIB) == []


def test_certain_only_when_needed_and_one_version_is_left() -> None:
    la = lookahead("lib==1.5", constraints=["dep==1.0"])
    assert picked(la, "lib", LIB) == [("lib-1.5-py3-none-any.whl", True)]
    dep = files("dep-1.0-py3-none-any.whl", "dep-1.1-py3-none-any.whl")
    # Pinned by a constraint, but nothing needs dep yet: metadata only.
    assert picked(la, "dep", dep) == [("dep-1.0-py3-none-any.whl", False)]
    # A certain parent needs it: now it is certain, and handed out again to be fetched.
    la.learn(LIB[1], meta("lib", "1.5", "dep", "extra; extra == 'x'"), certain=True)
    assert picked(la, "dep", dep) == [("dep-1.0-py3-none-any.whl", True)]
    # An uncertain parent makes nothing certain.
    la2 = lookahead("lib")
    la2.learn(LIB[2], meta("lib", "2.0", "dep==1.1"), certain=False)
    assert picked(la2, "dep", dep) == [("dep-1.1-py3-none-any.whl", False)]


def test_a_certain_parents_pin_makes_the_child_certain() -> None:
    la = lookahead("lib==2.0")
    assert picked(la, "lib", LIB) == [("lib-2.0-py3-none-any.whl", True)]
    la.learn(LIB[2], meta("lib", "2.0", "dep==1.0", "dep[fast]"), certain=True)
    dep = files("dep-1.0-py3-none-any.whl", "dep-1.1-py3-none-any.whl")
    assert picked(la, "dep", dep) == [("dep-1.0-py3-none-any.whl", True)]
    # dep's own dependencies, with the extra its certain parent asked for
    assert la.learn(dep[0], meta("dep", "1.0", "x; extra == 'fast'"), certain=True) == {"x"}
    xs = files("x-1.0-py3-none-any.whl", "x-2.0-py3-none-any.whl")
    assert picked(la, "x", xs) == [("x-2.0-py3-none-any.whl", False)]
    # Needed for sure, and the index has one version that fits: certain too.
    assert picked(la, "x", xs[:1]) == [("x-1.0-py3-none-any.whl", True)]


@pytest.mark.parametrize(
    ("reqs", "constraints", "last"),
    [
        (["lib==2.0", "other==9.9"], [], files("other-1.0-py3-none-any.whl")),  # no 9.9
        (["lib==2.0", "other"], [], []),  # no page: not on the index
        (["lib==2.0", "other==1.0"], ["other<1"], files("other-1.0-py3-none-any.whl")),
    ],
)
def test_nothing_is_certain_in_a_set_that_cannot_resolve(
    reqs: list[str], constraints: list[str], last: list[IndexFile]
) -> None:
    """A pin of a version the index does not have, a project it does not have, a pin its
    constraint excludes: pip alone fails with no wheel fetched; segfetch fetched every
    other pinned wheel whole first. Nothing is certain before every root's page is in."""
    la = lookahead(*reqs, constraints=constraints)
    assert picked(la, "lib", LIB) == [("lib-2.0-py3-none-any.whl", False)]  # (other: unseen)
    assert picked(la, "other", last) == []  # no file fits: not even a guess
    assert picked(la, "lib", LIB) == []  # no more, and never whole
    la.learn(LIB[2], meta("lib", "2.0", "dep==1"), certain=False)
    assert picked(la, "dep", files("dep-1-py3-none-any.whl")) == [("dep-1-py3-none-any.whl", False)]


def test_the_last_roots_page_makes_the_others_certain() -> None:
    la = lookahead("lib==2.0", "other==1.0")
    assert picked(la, "lib", LIB) == [("lib-2.0-py3-none-any.whl", False)]
    other = files("other-1.0-py3-none-any.whl", "other-2.0-py3-none-any.whl")
    assert picked(la, "other", other) == [
        ("lib-2.0-py3-none-any.whl", True),
        ("other-1.0-py3-none-any.whl", True),
    ]


def test_sdists_and_foreign_targets() -> None:
    srcs = files("src-1.0-py3-none-any.whl", "src-2.0.tar.gz")
    assert picked(lookahead("src"), "src", srcs) == [("src-2.0.tar.gz", False)]
    binary = RequirementSet(only_binary={":all:"})
    binary.add_string("src")
    # only one version left that pip may take: certain
    assert picked(Lookahead(binary, TARGET), "src", srcs) == [("src-1.0-py3-none-any.whl", True)]
    # Files for another platform than this interpreter: nothing is certain.
    foreign = RequirementSet(foreign_target=True)
    foreign.add_string("lib==1.0")
    assert picked(Lookahead(foreign, TARGET), "lib", LIB) == [("lib-1.0-py3-none-any.whl", False)]


def test_an_installed_version_that_fits_is_kept_not_fetched() -> None:
    """A venv with lib 1.0 installed: ``install lib`` keeps it, as pip says "Requirement
    already satisfied" (the newest lib and its dependencies were fetched whole); an upgrade
    or a specifier it does not meet fetches the version pip installs."""
    one = LIB[2:]  # the index has one version: certain, were nothing installed

    def installing(*reqs: str, options: Sequence[str] = ()) -> Lookahead:
        s = RequirementSet(installed=list(options))
        for r in reqs:
            s.add_string(r)
        held = {"lib": "1.0", "dep": "1"}
        return Lookahead(s, Target(TARGET.python_version, TARGET.tags, TARGET.markers, held))

    assert picked(installing("lib"), "lib", one) == [("lib-2.0-py3-none-any.whl", False)]
    assert picked(installing("lib>=1.5"), "lib", one) == [("lib-2.0-py3-none-any.whl", True)]
    assert picked(installing("lib", options=["-U"]), "lib", one) == [
        ("lib-2.0-py3-none-any.whl", True)
    ]
    assert picked(installing("lib", options=["--force-reinstall"]), "lib", one) == [
        ("lib-2.0-py3-none-any.whl", True)
    ]
    # -U upgrades the user's projects only, unless the strategy is eager
    dep = files("dep-2-py3-none-any.whl")
    for options, certain in (
        (["-U"], False),
        (["-U", "--upgrade-strategy", "eager"], True),
        (["--upgrade", "--upgrade-strategy=eager"], True),
    ):
        la = installing("lib>=1.5", options=options)
        assert picked(la, "lib", one) == [("lib-2.0-py3-none-any.whl", True)]
        la.learn(LIB[2], meta("lib", "2.0", "dep"), certain=True)
        assert picked(la, "dep", dep) == [("dep-2-py3-none-any.whl", certain)]


def test_what_pip_keeps_without_a_look_at_the_index_needs_no_page() -> None:
    """pip takes an installed version that fits and that no upgrade applies to without
    asking the index: segfetch asked for its page (and its dependencies') all the same."""

    def keeps(req: str, options: Sequence[str] | None = (), held: str = "1.0") -> bool:
        s = RequirementSet(installed=None if options is None else list(options))
        s.add_string(req)
        target = Target(TARGET.python_version, TARGET.tags, TARGET.markers, {"lib": held})
        return Lookahead(s, target).keeps("lib")

    assert keeps("lib") and keeps("lib<2") and keeps("Lib>=1.0rc1")
    assert not keeps("lib>1.0")  # pip looks for one that fits
    assert not keeps("lib", options=["-U"]) and not keeps("lib", ["--force-reinstall"])
    assert not keeps("lib", options=None)  # download, --target: nothing is installed
    assert not keeps("lib", held="not a version")
    la = lookahead("app")
    la.learn(files("app-1.0-py3-none-any.whl")[0], meta("app", "1", "lib>5"), certain=False)
    assert not la.keeps("lib")  # (nothing installed, in any case)
    # A root kept counts as a page in, with nothing to fetch: the others' pins open.
    s = RequirementSet(installed=[])
    for r in ("lib", "other==1.0"):
        s.add_string(r)
    la = Lookahead(s, Target(TARGET.python_version, TARGET.tags, TARGET.markers, {"lib": "1"}))
    other = files("other-1.0-py3-none-any.whl")
    assert picked(la, "other", other) == [("other-1.0-py3-none-any.whl", False)]
    assert la.keeps("lib") and picked(la, "lib", []) == [("other-1.0-py3-none-any.whl", True)]


def test_a_venvs_folder_names_say_what_it_holds(tmp_path: Path) -> None:
    from segfetch.wheels.dists import seen_installed

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    for entry in ("Foo_Bar-1.2.dist-info", "pip-25.3.dist-info", "foo_bar", "x.pth"):
        (site / entry).mkdir(parents=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    assert seen_installed(python) == {}  # no pyvenv.cfg: not a venv, no guess
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert seen_installed(python) == {"foo-bar": "1.2", "pip": "25.3"}


async def test_a_set_the_venv_holds_asks_the_index_nothing(
    tmp_path: Path, index_dir: Path, venv_template: Path
) -> None:
    """As pip alone: a second install of the same unpinned set asks for no page (it asked
    for each root's page and each dependency's), and runs no installer after the resolver
    (which would do nothing); a new project beside them asks for its own page."""
    python = fresh(venv_template, tmp_path / "venv")
    async with Emulator(index=index_dir, link=Link()) as emu:
        for wanted, pages in ((["lk-app"], 2), (["lk-app"], 0), (["lk-app", "lk-np<2"], 1)):
            before = len(emu.log)
            got = await segfetch(
                "install", "--python", python, "--index-url", emu.index_url,
                "--cache-dir", str(tmp_path / "cache"), "--installer", "pip", *wanted,
            )  # fmt: skip
            assert got.returncode == 0, got.stderr
            asked = [e for e in emu.log[before:] if str(e["path"]).startswith("/simple/")]
            assert len(asked) == pages, asked
            held = b"nothing to install: every requirement is already satisfied" in got.stderr
            assert held == (pages == 0), got.stderr
            assert (b"Successfully installed" in got.stdout) == (pages > 0), got.stdout
            assert (b"resolving with pip" in got.stderr) == (pages > 0)  # (none to ask)
    assert await freeze(python) == ["lk-app==1.0", "lk-lib==1.5", "lk-np==1.26"]
    # A dependency gone from the environment: resolved and installed again, as by pip.
    await trio.run_process([python, "-m", "pip", "uninstall", "-y", "-q", "lk-lib"])
    async with Emulator(index=index_dir, link=Link()) as emu:
        got = await segfetch(
            "install", "--python", python, "--index-url", emu.index_url,
            "--cache-dir", str(tmp_path / "cache"), "--installer", "pip", "lk-app",
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    assert await freeze(python) == ["lk-app==1.0", "lk-lib==1.5", "lk-np==1.26"]
    assert await freeze(python) == ["lk-app==1.0", "lk-lib==1.5", "lk-np==1.26"]


def test_an_extra_spelled_with_underscores_makes_nothing_certain() -> None:
    """requests[use_chardet_on_py3]: a pip before 23.3 (as Python 3.11's venv has) matches
    no Provides-Extra use-chardet-on-py3 and installs no chardet, but chardet was fetched
    whole ahead of it (1.5 MB never installed)."""
    la = lookahead("lib[use_x,Socks]==2.0")
    assert picked(la, "lib", LIB) == [("lib-2.0-py3-none-any.whl", True)]
    requires = ("dep; extra == 'use-x'", "sk; extra == 'socks'")
    la.learn(LIB[2], meta("lib", "2.0", *requires), certain=True)
    assert picked(la, "dep", files("dep-1-py3-none-any.whl")) == [("dep-1-py3-none-any.whl", False)]
    assert picked(la, "sk", files("sk-1-py3-none-any.whl")) == [("sk-1-py3-none-any.whl", True)]


def test_pip_options_keep_their_values() -> None:
    from segfetch.cli.main import _parser

    args, rest = _parser().parse_known_args(
        ["download", "lk-src", "--only-binary", ":all:", "--no-binary", "lk-x", "-d", "out",
         "--prefer-binary", "--platform", "manylinux2014_x86_64", "--python-version", "3.9"]
    )  # fmt: skip
    assert rest == []
    assert args.requirements == ["lk-src"]
    from segfetch.cli.reqset import requirement_set

    reqs = requirement_set(args, 30.0)
    assert reqs.pip_lines({}) == (["lk-src"], [])
    assert reqs.only_binary == {":all:"} and reqs.no_binary == {"lk-x"}
    assert reqs.prefer_binary and reqs.foreign_target and not reqs.fully_pinned
    assert reqs.pip_options[:4] == ["--only-binary", ":all:", "--no-binary", "lk-x"]
    args, rest = _parser().parse_known_args(
        ["install", "a", "--progress-bar", "off", "-t", "dir", "-C", "k=v", "--no-compile",
         "--upgrade-strategy", "eager", "--root", "r", "--global-option", "x"]
    )  # fmt: skip
    assert args.requirements == ["a"] and rest == ["--no-compile"]
    assert args.pip_kept == [
        *("--progress-bar", "off", "-t", "dir", "-C", "k=v", "--upgrade-strategy", "eager"),
        *("--root", "r", "--global-option", "x"),
    ]


def test_requirement_sets_read_format_options_from_files(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("--only-binary=:all:\n--no-binary lk-x\n--prefer-binary\nlk-a\n")
    s = RequirementSet()
    s.add_file(req)
    assert (s.only_binary, s.no_binary, s.prefer_binary) == ({":all:"}, {"lk-x"}, True)
    assert s.formats("lk-x") == {"source"} and s.formats("lk-y") == {"binary"}
    assert s.pip_options == []  # pip reads the file itself
    assert [str(w.req) for w in s.wanted] == ["lk-a"]


def test_configured_constraints_are_read_as_pip_reads_them(tmp_path: Path) -> None:
    from segfetch.wheels.pipnet import constraints_in_config

    a, b, d = (tmp_path / n for n in ("a.txt", "b.txt", "d.txt"))
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {a} {b}\n[download]\nconstraint = {d}\n")
    env = {**os.environ, "PIP_CONFIG_FILE": str(conf)}
    env.pop("PIP_CONSTRAINT", None)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], env=env, capture_output=True, text=True
    ).stdout
    assert constraints_in_config(out, "install") == [str(a), str(b)]
    assert constraints_in_config(out, "download") == [str(d)]
    assert constraints_in_config(out + ":env:.constraint='e.txt'\n", "download") == ["e.txt"]
