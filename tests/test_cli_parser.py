"""The command line builds only the named command's parser: each name must still find its
own, and the whole parser (help, a bad command) must list every command."""

from __future__ import annotations

import argparse

import pytest

from segfetch.cli.main import MODULES, _parser


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_the_whole_parser_lists_every_command_in_order() -> None:
    assert list(commands(_parser())) == list(MODULES)


@pytest.mark.parametrize("name", list(MODULES))
def test_each_command_builds_its_own_parser(name: str) -> None:
    alone = commands(_parser(name))
    assert name in alone and set(alone) < set(MODULES)  # its own, not all of them
    assert alone[name].format_help() == commands(_parser())[name].format_help()


@pytest.mark.parametrize("command", ["install", "download"])
def test_cache_dir_and_no_cache_are_one_or_the_other(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: `[--cache-dir DIR | --no-cache]`; both at once was taken, --cache-dir unused."""
    from segfetch.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main([command, "attrs", "--cache-dir", "c", "--no-cache"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "segfetch: error: argument --no-cache: not allowed with argument --cache-dir"
    )


@pytest.mark.parametrize(
    ("argv", "tries"),
    [
        (["install", "x", "--retries", "1"], 2),  # pip's: 1 retry, 2 tries (was 5 tries)
        (["download", "x", "--retries=0"], 1),
        (["install", "x", "--retries", "1", "--max-tries", "9"], 9),  # segfetch's own wins
        (["install", "x"], 5),
        (["get", "http://h/x"], 5),
        (["serve"], 8),
    ],
)
def test_pips_retries_set_the_tries_of_segfetchs_connections(argv: list[str], tries: int) -> None:
    from segfetch.cli.options import download_options

    assert download_options(_parser().parse_args(argv)).policy.max_tries == tries
