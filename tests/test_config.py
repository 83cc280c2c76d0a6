"""segfetch's settings file: a fixed -n from `bench --save`, and where -n auto settled."""

from __future__ import annotations

from pathlib import Path

import pytest

from segfetch import config
from segfetch.errors import UsageError


def test_host_starts_are_remembered_beside_the_fixed_count(tmp_path: Path) -> None:
    assert config.host_start("files.example:443") is None
    config.save_connections(6)
    config.save_host_start("files.example:443", 3)
    config.save_host_start("other:80", 12)
    assert config.host_start("files.example:443") == 3
    assert config.host_start("other:80") == 12
    assert config.saved_connections("auto") == "6"
    assert not list(Path(config.config_path()).parent.glob("*.tmp"))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"hosts": {"h:1": "lots"}, "connections": 9999}', "9999"),
        ('{"hosts": {"h:1": true}, "connections": true}', "true"),  # a bool is no count
    ],
)
def test_a_broken_settings_file_is_no_settings(
    tmp_path: Path, text: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A count hand-edited out of range is taken as auto, and said (the hosts' counts are a
    cache of what links rewarded: ignored without a word)."""
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    config._warn.cache_clear()
    assert config.host_start("h:1") is None
    assert capsys.readouterr().err == ""
    assert config.saved_connections("auto") == "auto"
    assert capsys.readouterr().err.splitlines() == [
        f'segfetch: ignoring "connections": {said} in {path}: '
        "not a count of 1 to 64 (-n takes its default): fix or delete it"
    ]


async def test_get_remembers_where_auto_settled_for_the_host(tmp_path: Path) -> None:
    import json

    from helpers import segfetch

    from segfetch.testing.emulator import Emulator, Link, SyntheticFile

    # (8 MB: on a loaded machine 3 MB ended while the count still grew, and nothing settled)
    async with Emulator({"/f.bin": SyntheticFile(8_000_000)}, link=Link(rate=1 << 20)) as emu:
        first = await segfetch("get", emu.url("/f.bin"), "-o", str(tmp_path / "a"), "--json")
        assert first.returncode == 0, first.stderr
        settled = json.loads(first.stdout)["settled"]
        assert config.host_start(f"127.0.0.1:{emu.port}") == settled >= 1
        fixed = await segfetch("get", emu.url("/f.bin"), "-o", str(tmp_path / "b"), "-n", "3")
        assert fixed.returncode == 0, fixed.stderr  # a fixed -n neither reads nor writes it
        assert config.host_start(f"127.0.0.1:{emu.port}") == settled


BROKEN = '{"connections": 4,\n "hosts": {"a:1": 3,}\n}\n'  # a trailing comma: line 2


def test_a_settings_file_that_is_not_json_is_warned_of_and_never_written_over(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BROKEN)
    config._warn.cache_clear()
    assert config.host_start("a:1") is None
    assert config.saved_connections("auto") == "auto"
    config.save_host_start("a:1", 5)
    with pytest.raises(UsageError, match=f"cannot save to the settings file {path}: not valid"):
        config.save_connections(6)
    assert path.read_text() == BROKEN
    warned = f"segfetch: ignoring settings file {path}: not valid JSON (line 2): fix or delete it"
    assert capsys.readouterr().err.splitlines() == [warned]  # once


async def test_get_and_bench_leave_a_broken_settings_file_alone(tmp_path: Path) -> None:
    from helpers import one_line_error, segfetch

    from segfetch.testing.emulator import Emulator, SyntheticFile

    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BROKEN)
    async with Emulator({"/f.bin": SyntheticFile(300_000)}) as emu:
        got = await segfetch("get", emu.url("/f.bin"), "-o", str(tmp_path / "f"), "-q")
        bench = await segfetch("bench", emu.url("/f.bin"), "--save", "--time", "1s")
    assert got.returncode == 0, got.stderr
    assert got.stderr.decode().splitlines() == [
        f"segfetch: ignoring settings file {path}: not valid JSON (line 2): fix or delete it"
    ]
    assert bench.returncode == 2
    assert "not valid JSON (line 2); fix or delete it" in one_line_error(bench)
    assert path.read_text() == BROKEN


def test_help_names_the_saved_count_as_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `bench --save`, -n's default is the saved count: --help says so, not auto."""
    from segfetch.cli.main import main

    config.save_connections(6)
    with pytest.raises(SystemExit):
        main(["get", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a fixed count (default 6, saved by `segfetch bench --save`)" in text
    assert "auto (the default" not in text
