"""What an install takes given what the target environment holds, as pip does: not the
pins of a complete set it already holds at that version, and no whole wheel read ahead
for them; all of them when told to reinstall, or when nothing installed counts
(download, --target). Pure."""

from __future__ import annotations

from packaging.version import Version

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
