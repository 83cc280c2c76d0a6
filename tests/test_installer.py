"""The final install (`--installer auto|pip|uv`) and what `segfetch` loads before it works."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import one_line_error, running, segfetch
from packaging.version import Version

from segfetch.cli import reqset
from segfetch.errors import UsageError
from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.installer import (
    UV_FLAGS,
    Installer,
    choose_installer,
    find_uv,
    pip_command,
    uv_files,
    uv_options,
)
from segfetch.wheels.requirements import RequirementSet

UV = find_uv()
needs_uv = pytest.mark.skipif(
    UV is None, reason="uv is not installed: pip install uv (it is in the test extra)"
)
YANKED = {"sf_beta-1.2-py3-none-any.whl": "broken"}
SET = ["sf-alpha", "sf-gamma[fast]"]  # resolved: sf-alpha, sf-beta 1.1, sf-gamma, sf-delta


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-alpha", "1.0", requires=["sf-beta>=1"])
    make_wheel(d, "sf-beta", "1.0", payload=100_000)
    make_wheel(d, "sf-beta", "1.1", payload=300_000, seed=1)
    make_wheel(d, "sf-beta", "1.2", payload=1000, seed=2)  # yanked
    make_wheel(d, "sf-gamma", "1.0", extras={"fast": ["sf-delta"]})
    make_wheel(d, "sf-delta", "1.0", requires=['sf-beta==1.0; python_version < "3"'])
    make_wheel(d, "sf-eps", "1.0", extras={"use-delta": ["sf-delta"]})  # (PEP 685 spelling)
    return d


def index(index_dir: Path, link: Link | None = None) -> Emulator:
    return Emulator(index=index_dir, link=link or Link(), index_options=IndexOptions(yanked=YANKED))


@pytest.fixture
def make_venv(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        path = tmp_path / name
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        return path / "bin" / "python"

    return make


@pytest.fixture(autouse=True)
def _own_uv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv's cache in the test's folder, not the user's (UV_CACHE_DIR is one of the few uv
    variables segfetch passes on)."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))


def freeze(python: Path) -> list[str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return sorted(out.stdout.splitlines())


def installers(python: Path) -> dict[str, str]:
    """Project -> who installed it, from each .dist-info/INSTALLER ("pip" or "uv")."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return {
        d.name.split("-")[0]: (d / "INSTALLER").read_text().strip()
        for d in Path(site).glob("sf_*.dist-info")
    }


async def install(python: Path, url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await segfetch(
        "install", "--python", str(python), "--index-url", url, "--no-cache", *args
    )


@needs_uv
async def test_uv_and_pip_leave_the_same_environment(
    index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    by_uv, by_pip = make_venv("by-uv"), make_venv("by-pip")
    async with index(index_dir) as emu:
        uv = await install(by_uv, emu.index_url, "--installer", "uv", *SET)
        assert uv.returncode == 0, uv.stderr
        pip = await install(by_pip, emu.index_url, "--installer", "pip", *SET)
        assert pip.returncode == 0, pip.stderr
    assert freeze(by_uv) == freeze(by_pip)
    assert "sf-beta==1.1" in freeze(by_uv)
    assert set(installers(by_uv).values()) == {"uv"}
    assert set(installers(by_pip).values()) == {"pip"}
    assert len(installers(by_uv)) == 4
    # Both installed exactly the verified files: every wheel request came from segfetch
    # (the engine always sends Range), none from pip or uv.
    wheels = [e for e in emu.log if str(e["path"]).endswith(".whl")]
    assert wheels and all(e["range"] for e in wheels)


@needs_uv
async def test_uv_installs_what_a_pip_before_23_3_resolved_for_an_extra(
    index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    """pip before 23.3 does not normalize extras (PEP 685): sf-eps[use_delta] selects no
    sf-delta from its Provides-Extra use-delta; uv, which wants sf-delta, failed against the
    plan's files (exit 1, where pip and uv each install). uv now installs pip's plan."""
    by_uv, by_pip = make_venv("by-uv"), make_venv("by-pip")
    pip_version = subprocess.run(
        [str(by_uv), "-c", "import pip; print(pip.__version__)"], capture_output=True, text=True
    ).stdout  # fmt: skip
    if Version(pip_version) >= Version("23.3"):
        pytest.skip(f"the venv's pip {pip_version.strip()} normalizes extras as uv does")
    async with index(index_dir) as emu:
        uv = await install(by_uv, emu.index_url, "-q", "sf-eps[use_delta]", "sf-alpha<2")
        assert uv.returncode == 0, uv.stderr
        pip = await install(by_pip, emu.index_url, "-q", "--installer", "pip", "sf-eps[use_delta]")
        assert pip.returncode == 0, pip.stderr
        await install(by_pip, emu.index_url, "-q", "--installer", "pip", "sf-alpha<2")
    assert freeze(by_uv) == freeze(by_pip)
    assert installers(by_uv) == {"sf_eps": "uv", "sf_alpha": "uv", "sf_beta": "uv"}


@needs_uv
async def test_auto_picks_uv_when_present(
    index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    python = make_venv("venv")
    async with index(index_dir) as emu:
        proc = await install(python, emu.index_url, "-q", "sf-alpha")
    assert proc.returncode == 0, proc.stderr
    assert installers(python) == {"sf_alpha": "uv", "sf_beta": "uv"}


def _hide_uv(tmp_path: Path) -> dict[str, str]:
    """An environment where segfetch finds no uv: none on PATH, and `import uv` fails."""
    stub = tmp_path / "no-uv"
    stub.mkdir()
    (stub / "uv.py").write_text("raise ImportError('hidden by the test')\n")
    path = [
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not Path(d, "uv").exists()
    ]
    return {**os.environ, "PATH": os.pathsep.join(path), "PYTHONPATH": str(stub)}


async def test_auto_without_uv_installs_with_pip(
    tmp_path: Path, index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    python = make_venv("venv")
    env = _hide_uv(tmp_path)
    async with index(index_dir) as emu:
        args = ["install", "--python", str(python), "--index-url", emu.index_url, "--no-cache"]
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *args, "-q", "sf-alpha"],
            env=env, capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert installers(python) == {"sf_alpha": "pip", "sf_beta": "pip"}
        # and asked for uv by name, it says there is none, before any request
        seen = len(emu.log)
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *args, "--installer", "uv", "sf-alpha"],
            env=env, capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert "no uv on PATH" in one_line_error(proc)
        assert len(emu.log) == seen


@needs_uv
@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["--user"], "--user"),
        (["--root", "/tmp/segfetch-never"], "--root"),
        (["--upgrade-strategy", "eager"], "--upgrade-strategy"),
        (["--no-compile", "--report=x.json"], "--report"),
    ],
)
async def test_a_pip_only_option_with_uv_is_one_line(option: list[str], named: str) -> None:
    """Refused before any download: the index here does not even exist."""
    proc = await segfetch(
        "install", "--installer", "uv", "--system", "--index-url", "http://127.0.0.1:9/simple/",
        "sf-alpha==1.0", *option,
    )  # fmt: skip
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert f"does not do what pip's {named} does;" in line and "--installer pip" in line


@needs_uv
async def test_auto_with_a_pip_only_option_installs_with_pip(
    tmp_path: Path, index_dir: Path
) -> None:
    root = tmp_path / "root"
    async with index(index_dir) as emu:
        proc = await segfetch(
            "install", "--index-url", emu.index_url, "--no-cache", "sf-beta==1.0",
            "--root", str(root), "--no-warn-script-location",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "installing with pip: uv pip install does not do what --root does" in proc.stderr.decode()
    )
    [installer] = root.rglob("sf_beta-1.0.dist-info/INSTALLER")
    assert installer.read_text().strip() == "pip"


@needs_uv
async def test_uv_json_keeps_stdout_one_document(
    index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    python = make_venv("venv")
    async with index(index_dir) as emu:
        proc = await install(python, emu.index_url, "--installer", "uv", "--json", "sf-alpha")
    assert proc.returncode == 0, proc.stderr
    assert {r["name"] for r in json.loads(proc.stdout)} == {"sf-alpha", "sf-beta"}
    assert "sf-alpha==1.0" in proc.stderr.decode()  # uv's own report, on stderr


@needs_uv
@pytest.mark.parametrize("installer", ["pip", "uv"])
async def test_quiet_is_quiet_as_pips_q(
    index_dir: Path, make_venv: Callable[[str], Path], installer: str
) -> None:
    """-q, as with pip install -q: nothing said on success, the installer's lines included."""
    python = make_venv("venv")
    async with index(index_dir) as emu:
        proc = await install(python, emu.index_url, "--installer", installer, "-q", "sf-alpha")
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == (b"", b"")
    assert "sf-alpha==1.0" in freeze(python)


@needs_uv
async def test_uv_ignores_the_users_uv_settings(
    tmp_path: Path, index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    """uv installs the verified files only: no index, find-links, constraint or Python of
    the user's uv configuration (variables, uv.toml, pyproject.toml) applies."""
    python = make_venv("venv")
    elsewhere = tmp_path / "elsewhere"
    make_wheel(elsewhere, "sf-beta", "9.0")
    conflict = tmp_path / "constraints.txt"
    conflict.write_text("sf-beta==1.0\n")
    project = tmp_path / "project"
    project.mkdir()
    async with index(index_dir) as emu, index(elsewhere) as other:
        config = f'index-url = "{other.index_url}"\nfind-links = ["{elsewhere}"]\n'
        (project / "uv.toml").write_text(config)
        (project / "pyproject.toml").write_text(f"[tool.uv]\n{config}")
        (tmp_path / "xdg" / "uv").mkdir(parents=True)
        (tmp_path / "xdg" / "uv" / "uv.toml").write_text(config)
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "UV_INDEX_URL": other.index_url,
            "UV_DEFAULT_INDEX": other.index_url,
            "UV_EXTRA_INDEX_URL": other.index_url,
            "UV_FIND_LINKS": str(elsewhere),
            "UV_CONSTRAINT": str(conflict),
            "UV_PYTHON": sys.executable,
        }
        args = ["install", "--installer", "uv", "--python", str(python), "--no-cache", "-q"]
        proc = await trio.run_process(
            [sys.executable, "-m", "segfetch", *args, "--index-url", emu.index_url, "-U",
             "sf-alpha"],
            env=env, cwd=project, capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sf-beta==1.1" in freeze(python)  # not 1.0 (the constraint), not 9.0 (elsewhere)
    assert other.log == []


def test_pip_options_as_uv_takes_them() -> None:
    args, refused = uv_options(["-U", "--no-compile", "--force-reinstall", "--compile"])
    assert refused is None
    assert args == ["--upgrade", "--reinstall", "--compile-bytecode"]
    assert uv_options(["--no-deps", "--user", "--upgrade"]) == (["--no-deps"], "--user")
    # uv's --target and --prefix check their folder for what is installed; pip does not
    # (a --target is installed anew; a --prefix looks at the environment)
    assert uv_options(["--target", "d"])[1] == "--target"
    assert uv_options(["--prefix=p"])[1] == "--prefix"
    assert uv_options(["--upgrade=yes"])[1] == "--upgrade"
    assert uv_options(["-Ux"])[1] == "-Ux"  # combined short flags: left to pip
    # pip's network settings are segfetch's own connections' (wheels/pipnet.py): uv, which
    # only reads local files or segfetch's loopback index, is given none of them
    net = ["--cert", "ca.pem", "--proxy=http://p:3128", "--trusted-host", "h", "--no-deps"]
    assert uv_options(net) == (["--no-deps"], None)
    assert uv_options(["--refresh-package", "a,b", "--refresh-package=:all:"]) == ([], None)
    assert "--user" not in UV_FLAGS


@needs_uv
def test_a_set_uv_installs_otherwise_goes_to_pip(tmp_path: Path) -> None:
    """An editable VCS URL (uv refuses it) or a -f wheel file (uv reads it as a page): auto
    takes pip, saying why; --installer uv is refused before any download. The lines pip
    splits as a shell does are given to uv unquoted (it took the quotes for the path)."""
    reqs = RequirementSet()
    reqs.add_editable("git+https://example.org/p.git#egg=p")
    why = reqset.unlike_uv(reqs)
    assert why is not None and "editable" in why
    assert choose_installer("auto", [], why) == Installer("pip", why_not_uv=why)
    with pytest.raises(UsageError, match="--installer uv: uv installs no VCS URL"):
        choose_installer("uv", [], why)
    links = RequirementSet(find_links=["w/x-1.0-py3-none-any.whl"])
    assert reqset.unlike_uv(links) is not None
    assert reqset.unlike_uv(RequirementSet(find_links=["w", "https://h/x.whl"])) is None
    pip_file = tmp_path / "requirements.txt"
    pip_file.write_text("-e '/a b/p[x]'\n--find-links '/my links'\nsf-a==1.0 --hash=sha256:ab\n")
    assert uv_files(["-r", str(pip_file)]) == ["-r", str(tmp_path / "uv-requirements.txt")]
    uv_read = (tmp_path / "uv-requirements.txt").read_text()
    assert uv_read == "-e /a b/p[x]\n--find-links /my links\nsf-a==1.0 --hash=sha256:ab\n"


# -- start-up --------------------------------------------------------------------------------

LOADED = """
import json, sys
from segfetch.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("argv", [["--version"], ["install", "--help"], ["get", "--help"]])
def test_version_and_help_load_no_trio_nor_httpx(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, check=True
    )
    loaded = {m.split(".")[0] for m in json.loads(proc.stdout.splitlines()[-1])}
    assert not loaded & {"trio", "httpx", "httpcore", "h11", "tqdm", "packaging"}


async def test_index_pages_are_fetched_while_the_probe_runs(
    tmp_path: Path, index_dir: Path
) -> None:
    """The target's probe answers only once an index page has been requested: segfetch
    must not wait for it before the first request (no clock involved: it would wait 20 s
    and the probe would say "late")."""
    flag, said = tmp_path / "page-seen", tmp_path / "probe-said"
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ]; then\n'
        "  i=0\n"
        f'  while [ ! -e "{flag}" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n'
        f'  if [ -e "{flag}" ]; then echo early > "{said}"; else echo late > "{said}"; fi\n'
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    async with index(index_dir) as emu, trio.open_nursery() as nursery:

        async def watch() -> None:
            while not any(str(e["path"]).startswith("/simple/") for e in emu.log):
                await trio.sleep(0.01)
            flag.touch()

        nursery.start_soon(watch)
        proc = await segfetch(
            "download", "--python", str(wrapper), "--index-url", emu.index_url, "--no-cache",
            "-d", str(tmp_path / "out"), "sf-alpha==1.0", "sf-beta==1.0",
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert proc.returncode == 0, proc.stderr
    assert said.read_text().strip() == "early"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "sf_alpha-1.0-py3-none-any.whl",
        "sf_beta-1.0-py3-none-any.whl",
    ]


def test_a_probe_that_is_no_python_is_one_line(tmp_path: Path) -> None:
    from segfetch.errors import UsageError
    from segfetch.wheels.target import query_target, start_probe

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho not json\n")
    fake.chmod(0o755)
    with pytest.raises(UsageError, match="did not answer as a Python; check --python"):
        query_target(str(fake))
    with pytest.raises(UsageError, match="no Python at"):
        start_probe(str(tmp_path / "missing"))
    not_executable = tmp_path / "passwd"
    not_executable.write_text("root:x:0:0:root:/root:/bin/sh\n")
    for path in (not_executable, tmp_path):  # a file that is no program, and a folder
        with pytest.raises(UsageError, match="is not a Python interpreter; check --python"):
            start_probe(str(path))
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with start_probe(str(slow)) as pending:  # left unread: closing it stops the process
        proc = pending._proc
    assert proc is not None and proc.poll() is not None


def test_the_probe_reads_pips_settings_as_pip_config_list_prints_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One subprocess asks for the tags and pip's settings; what it reads must be what
    `pip config list` says (the index and the constraint files are taken from it)."""
    from segfetch.wheels.target import index_urls_in_config, start_pip_config, start_probe

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://a.example/simple https://b.example/s")
    monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "c.txt"))
    with start_probe(sys.executable, pip_config=True) as probe:
        listing = probe.result().pip_config
    with start_pip_config(sys.executable) as pending:
        assert listing == pending.result()
    assert index_urls_in_config(listing) == (
        "https://mirror.example/simple",
        ["https://a.example/simple", "https://b.example/s"],
    )


@pytest.mark.parametrize("pip", ["own", "lent"])
def test_a_setting_in_two_pip_config_files_is_the_one_pip_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pip: str
) -> None:
    """The venv's pip.conf and PIP_CONFIG_FILE's both set index-url: pip takes the latter
    (its order of override). pip 23.3+ keeps settings by file, and `pip config list`
    prints both, the files sorted by path; the probe once printed pip 23.3+'s settings as
    one line per file, which named no index at all. Checked against pip itself: the index
    it looks in (a loopback port that refuses, so pip stops at once)."""
    from segfetch.wheels.target import index_urls_in_config, start_pip_config, start_probe

    venv = tmp_path / "venv"  # "own": pip 23.2 (venv's); "lent": segfetch's, 25.3+
    bare = ["--without-pip"] if pip == "lent" else []
    subprocess.run([sys.executable, "-m", "venv", *bare, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    (venv / "pip.conf").write_text("[global]\nindex-url = http://127.0.0.1:9/site/\n")
    env_file = tmp_path / "a.conf"  # sorted before the venv's file by path
    env_file.write_text("[global]\nindex-url = http://127.0.0.1:9/env/\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(env_file))
    own = pip == "own"
    said = subprocess.run(
        [*pip_command(python, own), "install", "--dry-run", "--retries", "0", "sf-x"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    assert "Looking in indexes: http://127.0.0.1:9/env/" in said, said
    with start_probe(python, pip_config=True) as probe:
        listing = probe.result().pip_config
    assert (listing is None) == (not own)  # (a Python without pip: asked on its own)
    with start_pip_config(python, own) as pending:
        listings = [pending.result(), *([listing] if listing is not None else [])]
    for lines in listings:
        assert index_urls_in_config(lines) == ("http://127.0.0.1:9/env/", [])
    with start_probe(sys.executable) as probe:
        assert probe.result().pip_config is None  # not asked for


def test_the_probes_marker_environment_is_packagings() -> None:
    """The probe writes PEP 508's environment out instead of loading pip's markers module:
    for this interpreter it must equal packaging's own ``default_environment()``."""
    from packaging.markers import default_environment

    from segfetch.wheels.target import start_probe

    with start_probe(sys.executable) as probe:
        assert probe.result().target.markers == default_environment()


def test_the_probe_finds_what_importlib_metadata_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe reads Name and Version from the metadata headers itself (importlib.metadata
    costs ~35 ms to load): the same answer for this environment, the first of a name on
    sys.path winning, and distutils' .egg-info files and folders read too."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    from segfetch.wheels.target import start_probe

    first, later = tmp_path / "first", tmp_path / "later"
    for folder, entry, name, version in [
        (first, "shadow-1.0.dist-info/METADATA", "Shadow", "1.0"),
        (later, "shadow-2.0.dist-info/METADATA", "shadow", "2.0"),
        (first, "a_b-1.0.dist-info/METADATA", "A..b", "1.0"),  # PEP 503: one name
        (later, "a_b-2.0.dist-info/METADATA", "a_b", "2.0"),
        (first, "old_tool-0.3.egg-info", "old_tool", "0.3"),  # a file: distutils
        (later, "dev.egg-info/PKG-INFO", "dev", "0.1.dev0"),
        (later, "broken-1.dist-info/RECORD", "", ""),  # no METADATA: not installed
    ]:
        path = folder / entry
        path.parent.mkdir(parents=True, exist_ok=True)
        body = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not this\n"
        path.write_text(body if name else "")
    monkeypatch.setenv("PYTHONPATH", f"{first}{os.pathsep}{later}")
    expected: dict[str, str] = {}
    for d in metadata.distributions(path=[str(first), str(later)]):
        if d.metadata["Name"]:  # not "broken"
            expected.setdefault(canonicalize_name(d.metadata["Name"]), d.version)
    assert expected == {"shadow": "1.0", "a-b": "1.0", "old-tool": "0.3", "dev": "0.1.dev0"}
    for d in metadata.distributions():  # this environment's own, as the probe sees it
        if d.metadata["Name"]:
            expected.setdefault(canonicalize_name(d.metadata["Name"]), d.version)
    with start_probe(sys.executable) as probe:
        assert probe.result().target.installed == expected


def test_the_probes_answer_is_kept_until_what_it_depends_on_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept answer is used with no process started; a changed pip configuration file, a
    PIP_* variable, a changed probe, or a question about pip's settings the kept answer
    lacks asks again."""
    from segfetch.wheels import target

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://one.example/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    keep = tmp_path / "cache"
    started: list[list[str]] = []

    class Counted(subprocess.Popen[str]):
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            started.append(cmd)
            super().__init__(cmd, **kw)

    monkeypatch.setattr(subprocess, "Popen", Counted)

    def probe(pip_config: bool = True) -> target.Probe:
        with target.start_probe(sys.executable, pip_config=pip_config, keep=keep) as pending:
            return pending.result()

    first = probe()
    assert "one.example" in (first.pip_config or "") and len(started) == 1
    again = probe()
    assert again == first and len(started) == 1  # kept: no process
    assert probe(pip_config=False).target == first.target and len(started) == 1

    conf.write_text("[global]\nindex-url = https://second.example/simple\n")
    assert "second.example" in (probe().pip_config or "") and len(started) == 2
    monkeypatch.setenv("PIP_INDEX_URL", "https://three.example/simple")
    assert "three.example" in (probe().pip_config or "") and len(started) == 3
    assert probe() is not None and len(started) == 3
    monkeypatch.setattr(target, "_PROBE_ID", "a newer segfetch's probe")
    assert probe() is not None and len(started) == 4

    other = tmp_path / "other-cache"  # an answer without pip's settings does not stand
    with target.start_probe(sys.executable, keep=other) as pending:  # in for one with them
        pending.result()
    with target.start_probe(sys.executable, pip_config=True, keep=other) as pending:
        assert pending.result().pip_config is not None
    assert len(started) == 6


def test_a_venv_made_afresh_at_the_same_place_keeps_the_probes_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI makes its venv anew on every run: the same interpreter, pip and settings at the
    same path give the same answer, so the kept one is used."""
    import shutil

    from segfetch.wheels import target

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    venv, keep = tmp_path / "venv", tmp_path / "cache"
    started: list[list[str]] = []

    class Counted(subprocess.Popen[str]):
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            started.append(cmd)
            super().__init__(cmd, **kw)

    answers = []

    def probe() -> None:
        with monkeypatch.context() as m:
            m.setattr(subprocess, "Popen", Counted)
            with target.start_probe(str(venv / "bin" / "python"), True, keep) as pending:
                answers.append(pending.result())

    for _ in range(2):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        probe()
    assert answers[0] == answers[1] and len(started) == 1
    # Something installed since: the answer says what is installed, so it is asked again.
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "extra-1.0.dist-info").mkdir()
    (site / "extra-1.0.dist-info" / "METADATA").write_text("Name: extra\nVersion: 1.0\n")
    probe()
    assert len(started) == 2 and answers[-1].target.holds("extra", "1.0")


@pytest.mark.parametrize("name", ["pip", "uv"])
def test_the_installer_is_given_the_caches_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Cached files are given where they are (one stable path each, which uv's own cache
    keys on); a local file is linked into a folder of its own, so the installer never sees
    what else lies beside it."""
    from segfetch.wheels import pip
    from segfetch.wheels.cache import Cache
    from segfetch.wheels.files import Fetched, Planned

    cache = Cache(tmp_path / "cache")
    kept = cache.path("ab" * 32, "kept-1.0-py3-none-any.whl")
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"zip")
    local = tmp_path / "mine" / "mine-1.0-py3-none-any.whl"
    local.parent.mkdir()
    local.write_bytes(b"zip")
    (local.parent / "other-9.0-py3-none-any.whl").write_bytes(b"zip")  # not to be seen
    fetched = [
        Fetched(Planned(p.name.split("-")[0], "1.0", p.name, p.as_uri(), None), p, "", 3, None)
        for p in (kept, local)
    ]
    seen: dict[str, list[str]] = {}

    class Recorded:
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            links = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--find-links"]
            seen["links"] = links
            seen["files"] = sorted(f for d in links for f in os.listdir(d))

        def __enter__(self) -> Recorded:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    installer = Installer("pip") if name == "pip" else Installer("uv", "uv")
    assert pip.install(installer, sys.executable, fetched, [], [], cached=cache.files) == 0
    assert str(kept.parent) in seen["links"] and str(local.parent) not in seen["links"]
    assert seen["files"] == ["kept-1.0-py3-none-any.whl", "mine-1.0-py3-none-any.whl"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
async def test_a_signal_while_the_target_is_probed_is_one_line_and_stops_the_probe(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """Before trio runs (the target's probe starts first): SIGTERM and SIGHUP stop the
    command as later, one line, 128 + the signal, the probe stopped with it (the default
    action killed segfetch silently and left the probe behind)."""
    pids = tmp_path / "probe.pid"
    wrapper = tmp_path / "python"  # the target; its probe says its pid, then waits
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{pids}"\nsleep 30\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    cmd = [sys.executable, "-m", "segfetch", "install", "--python", str(wrapper), "-q"]
    cmd += ["--no-cache", "--index-url", "http://127.0.0.1:9/simple/", "x==1"]
    (tmp_path / "pip.conf").write_text("")  # a config file: segfetch waits for the probe
    env = {**os.environ, "PIP_CONFIG_FILE": str(tmp_path / "pip.conf")}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env)
    with trio.fail_after(30):
        while not (pids.exists() and pids.read_text().strip()):
            await trio.sleep(0.02)
    proc.send_signal(sig)
    _, said = await trio.to_thread.run_sync(proc.communicate, None, 30)  # bounded
    err = said.decode()
    assert proc.returncode == code, err
    assert len(err.strip().splitlines()) == 1 and "stopped by" in err, err
    (probe,) = map(int, pids.read_text().split())
    with trio.fail_after(10):
        while running(probe):
            await trio.sleep(0.05)


@needs_uv
async def test_uv_in_hash_checking_mode_takes_constraints_as_pip_does(
    tmp_path: Path, index_dir: Path, make_venv: Callable[[str], Path]
) -> None:
    """uv refuses, in hash-checking mode, a constraint not pinned with == (pip.conf's
    `constraint = ...` file often holds such); pip ignores one on a project not in the set,
    and checks the others against the pins: so does segfetch, and uv installs."""
    python = make_venv("venv")
    sha = hashlib.sha256((index_dir / "sf_beta-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    (tmp_path / "req.txt").write_text(f"sf-beta==1.0 --hash=sha256:{sha}\n")
    (tmp_path / "c.txt").write_text("sf-elsewhere<=2\nsf-beta<2\n")
    (tmp_path / "bad.txt").write_text("sf-beta<1\n")
    args = ["--installer", "uv", "-q", "--require-hashes", "-r", str(tmp_path / "req.txt")]
    async with index(index_dir) as emu:
        bad = await install(python, emu.index_url, *args, "-c", str(tmp_path / "bad.txt"))
        assert bad.returncode == 1
        assert "the constraint sf-beta<1" in one_line_error(bad)
        proc = await install(python, emu.index_url, *args, "-c", str(tmp_path / "c.txt"))
    assert proc.returncode == 0, proc.stderr
    assert installers(python) == {"sf_beta": "uv"}
