"""`--uploaded-prior-to WHEN` (pip 26): files uploaded at WHEN or later are not seen, by
segfetch's own choices nor by the pip that resolves, whatever that pip's version; an index
that gives no upload time is an error, as in pip."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import trio
from helpers import freeze, fresh, one_line_error, segfetch

from segfetch.errors import SegfetchError, UsageError
from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.index import IndexFile
from segfetch.wheels.uploaded import prior_to, uploaded_before

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("P7D", NOW - timedelta(days=7)),
        ("P0D", NOW),
        ("2025-01-31T12:00:00Z", datetime(2025, 1, 31, 12, tzinfo=UTC)),
        ("2025-01-31T12:00:00+02:00", datetime(2025, 1, 31, 10, tzinfo=UTC)),
        ("2025-01-31", datetime(2025, 1, 31).astimezone()),  # local time, as pip reads it
    ],
)
def test_when_reads_as_pip_reads_it(value: str, moment: datetime) -> None:
    assert prior_to(value, NOW) == moment


@pytest.mark.parametrize("value", ["bogus", "P7W", "7D", "", "2025-13-01"])
def test_a_when_pip_refuses_is_one_line(value: str) -> None:
    with pytest.raises(UsageError, match="give an ISO 8601 date or time"):
        prior_to(value, NOW)


def _file(name: str, uploaded: str | None, url: str = "https://i.example/f/") -> IndexFile:
    return IndexFile(name, url + name, upload_time=uploaded)


def test_only_files_uploaded_before_are_seen() -> None:
    files = [
        _file("a-1-py3-none-any.whl", "2025-01-31T11:59:59.999999Z"),
        _file("a-2-py3-none-any.whl", "2025-01-31T12:00:00Z"),  # not before: as pip, out
        _file("a-3-py3-none-any.whl", "2025-01-31T13:00:00+02:00"),  # 11:00 UTC
        _file("a-4-py3-none-any.whl", None, url="file:///wheels/"),  # local: any time
        _file("a-5-py3-none-any.whl", "2025-01-31T12:30:00"),  # no offset: UTC
    ]
    when = datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert [f.filename[2] for f in uploaded_before(files, when)] == ["1", "3", "4"]
    assert uploaded_before(files, None) == files
    assert uploaded_before(files, when.astimezone(timezone(timedelta(hours=-5)))) == (
        uploaded_before(files, when)
    )


def test_a_file_without_an_upload_time_is_an_error() -> None:
    with pytest.raises(SegfetchError, match="the index gives no upload time for a-1"):
        uploaded_before([_file("a-1-py3-none-any.whl", None)], NOW)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sf-up 1.0 (Jan 2024) and 2.0 (June 2025); sf-dep 1.0 (Jan 2024): upload times are
    the files' mtimes on the emulator's JSON pages."""
    d = tmp_path_factory.mktemp("uploaded")
    old, new = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    for name, version, at in [("sf-up", "1.0", old), ("sf-up", "2.0", new), ("sf-dep", "1.0", old)]:
        wheel = make_wheel(d, name, version, requires=["sf-dep"] if name == "sf-up" else [])
        os.utime(wheel, (at.timestamp(), at.timestamp()))
    return d


@pytest.mark.parametrize(("given", "version"), [("2025-01-01", "1.0"), ("P0D", "2.0")])
async def test_download_takes_what_pip_download_takes(
    index_dir: Path, tmp_path: Path, given: str, version: str
) -> None:
    async with Emulator(index=index_dir, link=Link()) as emu:
        proc = await segfetch(
            "download", "sf-up", "--index-url", emu.index_url, "--no-cache",
            "-d", str(tmp_path / "ours"), "--uploaded-prior-to", given,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        alone = await trio.run_process(
            [sys.executable, "-m", "pip", "download", "-q", "sf-up", "--no-cache-dir",
             "--index-url", emu.index_url, "-d", str(tmp_path / "pip")],
            env=os.environ | {"PIP_UPLOADED_PRIOR_TO": given},
            capture_stderr=True, check=False,
        )  # fmt: skip
    ours = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert ours == ["sf_dep-1.0-py3-none-any.whl", f"sf_up-{version}-py3-none-any.whl"]
    if alone.returncode == 2 and b"no such option" in alone.stderr:
        pytest.skip("this pip has no --uploaded-prior-to")  # (ours is checked above)
    assert alone.returncode == 0, alone.stderr
    assert sorted(p.name for p in (tmp_path / "pip").iterdir()) == ours


@pytest.mark.parametrize("how", ["--uploaded-prior-to", "PIP_UPLOADED_PRIOR_TO", "pip.conf"])
async def test_install_with_any_pip(
    index_dir: Path, tmp_path: Path, venv_template: Path, how: str
) -> None:
    """The test venvs' pip (23.2 here) has no such option: segfetch gives it none, and the
    pages it serves that pip leave the later files out (a pinned set is planned without
    pip, from the same pages)."""
    python = fresh(venv_template, tmp_path / "venv")
    conf = tmp_path / "pip.conf"
    conf.write_text("[install]\nuploaded-prior-to = 2025-01-01\n")
    env = {"PIP_UPLOADED_PRIOR_TO": "2025-01-01"} if how.startswith("PIP_") else {}
    env |= {"PIP_CONFIG_FILE": str(conf)} if how == "pip.conf" else {}
    async with Emulator(index=index_dir, link=Link()) as emu:
        for reqs in (["sf-up"], ["sf-up==1.0", "sf-dep==1.0"]):
            proc = await segfetch(
                "install", "--python", python, "--installer", "pip", "--no-cache", "-q",
                "--index-url", emu.index_url, *reqs, "--force-reinstall",
                *([how, "2025-01-01"] if how.startswith("--") else []), env=env,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert await freeze(python) == ["sf-dep==1.0", "sf-up==1.0"]
        pinned = await segfetch(
            "install", "--python", python, "--no-cache", "--index-url", emu.index_url,
            "sf-up==2.0", "--uploaded-prior-to", "2025-01-01",
        )  # fmt: skip
    assert pinned.returncode == 1
    assert "sf-up" in one_line_error(pinned, only=False)


async def test_an_index_without_upload_times_is_one_line(index_dir: Path, tmp_path: Path) -> None:
    """PEP 503 HTML pages give no upload time: pip stops ("does not provide upload-time
    metadata"), and so does segfetch, before any file."""
    async with Emulator(
        index=index_dir, link=Link(), index_options=IndexOptions(json=False)
    ) as emu:
        proc = await segfetch(
            "download", "sf-up", "--index-url", emu.index_url, "--no-cache",
            "-d", str(tmp_path), "--uploaded-prior-to", "P1D",
        )  # fmt: skip
    assert proc.returncode == 1
    assert "the index gives no upload time for sf_up-" in one_line_error(proc, only=False)
    assert not [e for e in emu.log if str(e["path"]).endswith(".whl")]


async def test_pip_through_serve_keeps_its_upload_times(index_dir: Path, tmp_path: Path) -> None:
    """serve's pages carry the index's upload times (PEP 700): pip's own
    --uploaded-prior-to works through it (without them, pip stops: "does not provide
    upload-time metadata")."""
    from test_serve import serving

    async with (
        Emulator(index=index_dir, link=Link()) as emu,
        serving([emu.index_url], tmp_path / "cache") as (_, url),
    ):
        alone = await trio.run_process(
            [sys.executable, "-m", "pip", "download", "-q", "sf-up", "--no-cache-dir",
             "--index-url", url, "-d", str(tmp_path / "pip"), "--uploaded-prior-to", "2025-01-01"],
            capture_stderr=True, check=False,
        )  # fmt: skip
    if alone.returncode == 2 and b"no such option" in alone.stderr:
        pytest.skip("this pip has no --uploaded-prior-to")
    assert alone.returncode == 0, alone.stderr
    assert sorted(p.name for p in (tmp_path / "pip").iterdir()) == [
        "sf_dep-1.0-py3-none-any.whl", "sf_up-1.0-py3-none-any.whl",
    ]  # fmt: skip
