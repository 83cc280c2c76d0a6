"""pip install's options on segfetch's command line: a value is never read as a requirement
(pip 23.2 to 26.3 options), harmless flags pass through, options segfetch cannot honour and
options pip does not have stop before anything is fetched, in one line."""

from __future__ import annotations

import pytest
from helpers import one_line_error, segfetch

from segfetch.cli.main import _parser
from segfetch.cli.pipopts import check_passed_through, pip_args_of
from segfetch.errors import UsageError


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
        ("--uploaded-prior-to=2024-01-01", "does not take pip's --uploaded-prior-to yet"),
        ("--group", "does not take pip's --group yet"),
        ("--pypi-url", "takes --index-url for pip's --pypi-url"),
    ],
)
def test_what_segfetch_cannot_pass_on_stops(word: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        check_passed_through([word])


async def test_an_unknown_option_stops_before_its_value_is_read_as_a_requirement() -> None:
    proc = await segfetch(
        "install", "--system", "--frobnicate", "x", "--index-url", "http://127.0.0.1:9/"
    )
    assert proc.returncode == 2
    assert "no such option: --frobnicate" in one_line_error(proc)
