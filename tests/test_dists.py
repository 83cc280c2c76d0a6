"""What distribution file names say, where a wheel's METADATA is, and whether a marker holds
for a target: without sockets."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from segfetch.testing import wheelmaker
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.dists import DistName, marker_applies, parse_filename, read_metadata
from segfetch.wheels.files import wheel_metadata as _wheel_metadata

names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True)
versions = st.builds(
    lambda release, pre, post, dev: Version(
        ".".join(map(str, release))
        + (f"{pre[0]}{pre[1]}" if pre else "")
        + (f".post{post}" if post is not None else "")
        + (f".dev{dev}" if dev is not None else "")
    ),
    st.lists(st.integers(0, 2000), min_size=1, max_size=4),
    st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(0, 9)),
    st.none() | st.integers(0, 9),
    st.none() | st.integers(0, 9),
)
tags = st.builds(
    Tag,
    st.sampled_from(["py3", "cp311", "pp310", "py2.py3"]),
    st.sampled_from(["none", "abi3", "cp311"]),
    st.sampled_from(["any", "manylinux_2_17_x86_64", "win_amd64", "macosx_11_0_arm64"]),
)


@given(names, versions, tags, st.sampled_from(["", "-1", "-2_b"]))
def test_wheel_names_round_trip(name: str, version: Version, tag: Tag, build: str) -> None:
    escaped = canonicalize_name(name).replace("-", "_")
    filename = f"{escaped}-{version}{build}-{tag}.whl"
    # A compressed tag set ("py2.py3") is one tag per interpreter.
    expected = frozenset(f"{py}-{tag.abi}-{tag.platform}" for py in tag.interpreter.split("."))
    assert parse_filename(filename) == DistName(canonicalize_name(name), version, expected)


@given(names, versions, st.sampled_from([".tar.gz", ".zip"]))
def test_sdist_names_round_trip(name: str, version: Version, ext: str) -> None:
    got = parse_filename(f"{name}-{version}{ext}")
    assert got == DistName(canonicalize_name(name), version, None)


@given(st.text(max_size=80))
def test_any_name_parses_or_is_none(filename: str) -> None:
    got = parse_filename(filename)
    assert got is None or got.name == canonicalize_name(got.name)


@pytest.mark.parametrize(
    "filename",
    [
        "README.txt",
        "foo-1.0.exe",
        "foo.whl",
        "foo-1.0.whl",
        "foo-not.a.version.tar.gz",
        "foo__bar-1.0-py3-none-any.whl",
        "foo-1.0-py3-none-any.whl.metadata",
        "-1.0.tar.gz",
    ],
)
def test_names_that_break_the_spec_are_none(filename: str) -> None:
    assert parse_filename(filename) is None


def test_metadata_of_is_the_one_reader() -> None:
    assert wheelmaker.metadata_of is read_metadata


def test_read_metadata_of_a_real_wheel(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "Foo.Bar", "1.0", requires=["b"])
    with zipfile.ZipFile(whl) as zf:
        assert read_metadata(whl) == zf.read("foo_bar-1.0.dist-info/METADATA")
    assert _wheel_metadata(whl) == read_metadata(whl)


def _zip(path: Path, *names: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(n, f"Name: {n}\n")
    return path


@pytest.mark.parametrize(
    "names",
    [
        (),
        ("a-1.dist-info/WHEEL",),
        ("a/b-1.dist-info/METADATA",),  # not top-level
        (".dist-info/METADATA",),  # no distribution name
        ("a-1.dist-info/METADATA", "b-1.dist-info/METADATA"),  # which one?
    ],
)
def test_not_exactly_one_metadata_is_refused(tmp_path: Path, names: tuple[str, ...]) -> None:
    whl = _zip(tmp_path / "a-1-py3-none-any.whl", *names)
    with pytest.raises(ValueError, match="expected one"):
        read_metadata(whl)
    assert _wheel_metadata(whl) is None  # the installer falls back to pip's own reading


def test_one_metadata_among_other_files(tmp_path: Path) -> None:
    whl = _zip(tmp_path / "a.whl", "a/x.dist-info/METADATA", "a-1.dist-info/METADATA", "a/x.py")
    assert read_metadata(whl) == b"Name: a-1.dist-info/METADATA\n"


def test_broken_or_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        read_metadata(junk)
    with pytest.raises(OSError):
        read_metadata(tmp_path / "missing.whl")
    assert _wheel_metadata(junk) is None and _wheel_metadata(tmp_path / "missing.whl") is None


# The target's environment, not this interpreter's: a Windows 3.11 wherever the tests run.
WINDOWS_311 = {"python_version": "3.11", "sys_platform": "win32"}


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (None, True),
        ('python_version >= "3.8"', True),
        ('python_version < "3"', False),
        ('sys_platform == "win32"', True),
        ('sys_platform == "linux"', False),
        ('extra == "fast"', False),  # a requirement line selects no extra
        ('python_version >= "3.8" or extra == "fast"', True),
    ],
)
def test_markers_are_read_for_the_target(marker: str | None, expected: bool) -> None:
    assert marker_applies(None if marker is None else Marker(marker), WINDOWS_311) is expected


@given(st.integers(0, 20), st.integers(0, 20))
def test_python_version_markers_compare_as_versions(ours: int, theirs: int) -> None:
    applies = marker_applies(
        Marker(f'python_version >= "3.{theirs}"'), {"python_version": f"3.{ours}"}
    )
    assert applies is (ours >= theirs)


def test_missing_dependencies_of_a_pinned_set() -> None:
    from segfetch.wheels.complete import missing_dependencies
    from segfetch.wheels.files import Planned
    from segfetch.wheels.target import Target

    target = Target(Version("3.11"), ("py3-none-any",), {"python_version": "3.11"})
    meta = b"Metadata-Version: 2.1\nName: app\nVersion: 1\nRequires-Dist: lib>=2\n"
    meta += b'Requires-Dist: old; python_version < "3"\nRequires-Dist: fast; extra == "speed"\n'
    app = Planned("app", "1", "app-1-py3-none-any.whl", "u", None)
    lib = Planned("lib", "2.5", "lib-2.5-py3-none-any.whl", "u2", None)
    lib_meta = b"Metadata-Version: 2.1\nName: lib\nVersion: 2.5\n"
    assert missing_dependencies([app, lib], [meta, lib_meta], {}, target) == []
    assert missing_dependencies([app], [meta], {}, target) == ["lib>=2 (for app)"]
    old_lib = Planned("lib", "1.0", "lib-1.0-py3-none-any.whl", "u3", None)
    assert missing_dependencies([app, old_lib], [meta, lib_meta], {}, target) == [
        "lib>=2 (for app)"
    ]
    with_extra = missing_dependencies(
        [app, lib], [meta, lib_meta], {"app": frozenset({"speed"})}, target
    )
    assert with_extra == ['fast; extra == "speed" (for app)']
    sdist = Planned("lib", "2.5", "lib-2.5.tar.gz", "u4", None)
    assert missing_dependencies([app, sdist], [meta, None], {}, target) == [
        "lib: dependencies unknown"
    ]


def test_missing_dependencies_follow_a_dependencys_extras() -> None:
    """selenium names urllib3[socks]: a set without PySocks is not complete (pip's resolver
    adds it), though urllib3 itself is there."""
    from segfetch.wheels.complete import missing_dependencies
    from segfetch.wheels.files import Planned
    from segfetch.wheels.target import Target

    target = Target(Version("3.11"), ("py3-none-any",), {"python_version": "3.11"})
    app = Planned("app", "1", "app-1-py3-none-any.whl", "u", None)
    lib = Planned("lib", "2", "lib-2-py3-none-any.whl", "u2", None)
    socks = Planned("PySocks", "1.7.1", "PySocks-1.7.1-py3-none-any.whl", "u3", None)
    meta = b"Metadata-Version: 2.1\nName: app\nVersion: 1\nRequires-Dist: lib[socks]==2\n"
    lib_meta = b"Metadata-Version: 2.1\nName: lib\nVersion: 2\nProvides-Extra: socks\n"
    lib_meta += b'Requires-Dist: pysocks>=1.5; extra == "socks"\n'
    socks_meta = b"Metadata-Version: 2.1\nName: PySocks\nVersion: 1.7.1\n"
    assert missing_dependencies([app, lib], [meta, lib_meta], {}, target) == [
        'pysocks>=1.5; extra == "socks" (for lib)'
    ]
    assert missing_dependencies([app, lib, socks], [meta, lib_meta, socks_meta], {}, target) == []


def test_an_extra_the_metadata_does_not_provide_gets_pips_warning() -> None:
    from segfetch.wheels.complete import lacking_extras
    from segfetch.wheels.files import planned_of
    from segfetch.wheels.index import IndexFile

    (p,) = [planned_of(IndexFile("Foo_Bar-1.0-py3-none-any.whl", "u"), frozenset())]
    meta = b"Name: Foo_Bar\nVersion: 1.0\nProvides-Extra: fast\nProvides-Extra: Big_Set\n\n"
    asked = {"foo-bar": frozenset({"fast", "big-set", "nope", "x"})}
    assert lacking_extras([p], [meta], asked) == [
        "WARNING: foo-bar 1.0 does not provide the extra 'nope'",
        "WARNING: foo-bar 1.0 does not provide the extra 'x'",
    ]
    assert lacking_extras([p], [None], asked) == []  # (an sdist: pip builds it and says)
    assert lacking_extras([p], [meta], {}) == []
