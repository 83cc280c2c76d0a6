"""What an install takes given what the target environment holds, as pip does: not the
pins of a complete set it already holds at that version, and no whole wheel read ahead
for them; all of them when told to reinstall, or when nothing installed counts
(download, --target). Pure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio
from helpers import freeze, fresh, segfetch
from packaging.version import Version

from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.complete import not_installed
from segfetch.wheels.files import planned_of
from segfetch.wheels.index import IndexFile
from segfetch.wheels.lookahead import Lookahead
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.target import Target

FILES = ["sf_a-1.0-py3-none-any.whl", "sf_b-2.0-py3-none-any.whl", "sf_c-3.0-py3-none-any.whl"]
INDEXED = [IndexFile(n, f"https://i.example/files/{n}", metadata=True) for n in FILES]
PLANNED = [planned_of(f, frozenset()) for f in INDEXED]
# sf-a as pip spells it, at the same version written longer; sf-b at another version
TARGET = Target(Version("3.11.7"), ("py3-none-any",), {}, {"sf-a": "1.0.0", "sf-b": "1.9"})


def taken(installed: list[str] | None) -> list[str]:
    return [p.filename for p in not_installed(PLANNED, RequirementSet(installed=installed), TARGET)]


def test_a_pin_installed_at_its_version_is_not_taken() -> None:
    assert taken([]) == FILES[1:]
    assert taken(["-U"]) == FILES[1:]  # an == pin already satisfied: -U changes nothing


def test_everything_is_taken_to_reinstall_or_elsewhere() -> None:
    for options in (["--force-reinstall"], ["-I"], ["--ignore-installed"]):
        assert taken(options) == FILES
    assert taken(None) == FILES  # download, --target DIR: what is installed does not count


def test_an_installed_pin_is_not_read_ahead_whole() -> None:
    def certain(installed: list[str] | None, pin: str) -> list[bool]:
        reqs = RequirementSet(installed=installed)
        reqs.add_string(pin)
        name = pin.split("==")[0]
        return [sure for _, sure in Lookahead(reqs, TARGET).picks(name, INDEXED)]

    assert certain([], "sf-a==1.0") == [False]  # metadata only: pip will likely keep it
    assert certain([], "sf-b==2.0") == [True]  # installed at 1.9: 2.0 will be installed
    assert certain(["--force-reinstall"], "sf-a==1.0") == [True]
    assert certain(None, "sf-a==1.0") == [True]


def test_a_set_the_environment_holds_whole_needs_no_resolver() -> None:
    """As pip decides with no look at an index: each requirement and its dependencies (the
    installed Requires-Dist, extras included) installed in a version that fits."""
    from segfetch.wheels.complete import held_whole

    installed = {"app": "1.0", "lib": "2.0", "fast": "1.0", "egg": "0.1"}
    requires: dict[str, list[str] | None] = {
        "app": ["lib>=2", "fast; extra == 'speed'", "old; python_version < '3'"],
        "lib": [],
        "fast": ["gone; extra == 'more'"],
        "egg": None,  # an egg's PKG-INFO: its dependencies unknown
    }
    target = Target(Version("3.11.7"), ("py3-none-any",), {"python_version": "3.11"})
    target.installed, target.requires = installed, requires

    def held(*lines: str, options: list[str] | None = None, constraints: str = "") -> bool:
        reqs = RequirementSet(installed=[] if options is None else options)
        for line in lines:
            reqs.add_string(line)
        if constraints:
            reqs.add_string(constraints)
            reqs.constraints.append(reqs.wanted.pop())
        return held_whole(reqs, target)

    assert held("app") and held("App[speed]<2") and held("lib", "app")
    assert held("app", 'nowhere; python_version < "3"')  # (a marker this Python fails)
    assert not held("app", "nowhere")  # not installed
    assert not held("app>1")  # installed, but does not fit
    assert not held("app", constraints="lib<2")  # a constraint the dependency does not fit
    assert not held("app[speed]", "fast[more]")  # an extra's dependency not installed
    assert not held("egg")  # an egg: its dependencies unknown
    # Where pip stops ("Constraints cannot have extras", a Requires-Dist it cannot read),
    # pip's resolver says so: not "nothing to install" with exit 0.
    assert not held("app", constraints="app[speed]>=1")
    requires["lib"] = ["foo >>> 1"]
    assert not held("app") and not held("lib")
    assert not held("app", options=["-U"]) and not held("app", options=["--force-reinstall"])
    download = RequirementSet()  # (download, --target: nothing installed counts)
    download.add_string("app")
    assert not held_whole(download, target)
    hashed = RequirementSet(installed=[], require_hashes=True)
    hashed.add_string("app==1.0")
    assert not held_whole(hashed, target)  # (the pinned set's own rule decides)


@pytest.mark.parametrize("hashed", [False, True])
async def test_a_pinned_set_already_installed_asks_the_index_nothing(
    tmp_path: Path, venv_template: Path, hashed: bool
) -> None:
    """pip alone sends nothing for a pin the venv holds ("Requirement already satisfied").
    On an index without .metadata files (a static PEP 503 one) checking that the set is
    complete read the wheel whole, and the summary said "0 B fetched"; then each held
    pin's page was still asked for. A pin beside them that is not held asks for its own."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "sf-held", "1.0", payload=200_000)
    new = make_wheel(wheels, "sf-new", "1.0", payload=2_000)
    python = fresh(venv_template, tmp_path / "venv")
    pre = await trio.run_process(
        [python, "-m", "pip", "install", "-q", "--no-index", "-f", str(wheels), "sf-held"],
        check=False,
    )
    assert pre.returncode == 0
    held = wheels / "sf_held-1.0-py3-none-any.whl"
    lines = [f"sf-held==1.0 --hash=sha256:{_sha(held)}", f"sf-new==1.0 --hash=sha256:{_sha(new)}"]
    if not hashed:
        lines = [line.split()[0] for line in lines]
    bare = IndexOptions(metadata=False, advertise_metadata=False)
    async with Emulator(index=wheels, link=Link(), index_options=bare) as emu:
        for n in (1, 2):
            (req := tmp_path / "req.txt").write_text("\n".join(lines[:n]) + "\n")
            proc = await segfetch(
                "install", "--python", python, "--no-cache", "--index-url", emu.index_url,
                "--installer", "pip", "-r", str(req),
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            if n == 1:
                assert emu.log == []
    asked = sorted(str(e["path"]) for e in emu.log if not str(e["path"]).endswith(".metadata"))
    assert asked == ["/files/sf_new-1.0-py3-none-any.whl", "/simple/sf-new/"], asked
    assert await freeze(python) == ["sf-held==1.0", "sf-new==1.0"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
