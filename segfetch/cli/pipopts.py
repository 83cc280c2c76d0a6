"""pip install's options on segfetch's command line: kept in order, with their values, for
pip; those segfetch cannot honour, and those pip does not have, stopped with one line.

An option argparse does not know would leave its value to be read as a requirement
(`--only-binary :all:`), so every pip option that takes a value is named here (pip 23.2 to
26.3). Those that change what pip chooses (wheels/requirements.py: RESOLVER_*) go to its
resolver too, and are the ones `download` takes; the rest are for `pip install` at the end.
Not here: segfetch's own -c/-r/-i/--extra-index-url/-f/--python/--cache-dir/--timeout/--pre.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segfetch.errors import PipRefusal, UsageError
from segfetch.wheels.pipnet import config_flag

if TYPE_CHECKING:
    from segfetch.wheels.target import Target

PIP_FLAGS: tuple[str, ...] = (
    *("--no-deps", "--no-dependencies", "--prefer-binary", "--ignore-requires-python"),
    *("--no-build-isolation", "--use-pep517", "--no-use-pep517", "--check-build-dependencies"),
    "--no-proxy-env",  # (pip 26.2) segfetch's own connections take it too (pipnet.py)
)
PIP_VALUED: tuple[str, ...] = (
    *("--only-binary", "--no-binary", "--platform", "--python-version", "--implementation"),
    *("--abi", "-C", "--config-settings", "--global-option"),
    "--progress-bar",  # for download: taken, and left to segfetch's own bar
    "--refresh-package",  # (pip 26.2) pages asked for again: the resolver's, and segfetch's
    *("--all-releases", "--only-final"),  # (pip 26.0) which projects may take a pre-release
    "--build-constraint",  # (pip 25.3) for the build environments: pip's resolver's own work
)
INSTALL_FLAGS: tuple[str, ...] = ("-U", "--upgrade", "--user", "--force-reinstall", "-I")
INSTALL_FLAGS += ("--ignore-installed",)
# pip's options with a value that pip download takes too (network, logging, ...)
GENERAL_VALUED: tuple[str, ...] = (
    *("--exists-action", "--src", "--source", "--source-dir", "--source-directory"),
    *("--log", "--log-file", "--local-log"),
    *("--proxy", "--cert", "--client-cert", "--trusted-host", "--keyring-provider"),
    *("--retries", "--resume-retries", "--use-feature", "--use-deprecated"),
)
INSTALL_VALUED: tuple[str, ...] = (
    *("-t", "--target", "--prefix", "--root", "--upgrade-strategy", "--root-user-action"),
    *("--report", *GENERAL_VALUED),
)
# pip install's flags that change nothing segfetch chooses or fetches: passed through as given.
PASSED_FLAGS = frozenset(
    {
        *("--break-system-packages", "--compile", "--no-compile", "--debug", "--dry-run"),
        *("--disable-pip-version-check", "--isolated", "--no-cache-dir", "--no-clean"),
        *("--no-color", "--no-input", "--no-python-version-warning", "--no-warn-conflicts"),
        *("--no-warn-script-location", "--require-virtualenv", "--require-venv", "--no-user"),
        *("--require-hashes", "--no-require-hashes", "--no-index", "--verbose", "--quiet"),
    }
)
# Passed flags that pip install has and pip download does not (pip 26.3's --help)
INSTALL_ONLY = frozenset(
    {
        *("--dry-run", "--compile", "--no-compile", "--break-system-packages"),
        *("--no-warn-script-location", "--no-warn-conflicts", "--no-user"),
    }
)
# pip's options that segfetch cannot honour yet (what they change is segfetch's own work):
# stopped, where passing them to pip alone would install something other than pip would.
NOT_YET = frozenset(
    {
        *("--only-deps", "--only-dependencies"),
    }
)
RENAMED = {"--pypi-url": "--index-url", "--default-timeout": "--timeout"}  # pip's old spellings
_REPEATED = re.compile(r"^-(v+|q+)$")  # -vv, -qqq
ELSEWHERE = ("--target", "--prefix", "--root", "-t")  # installs outside the environment
# What decides what pip takes given what the environment holds: an install into the
# target's environment is resolved against it, with these, as pip does.
INSTALLED_FLAGS = ("-U", "--upgrade", "--force-reinstall", "-I", "--ignore-installed")
INSTALLED_VALUED = ("--upgrade-strategy",)
# other spelling -> the one shown first (--help lists them side by side)
_ALIASES = {"--target": "-t", "--config-settings": "-C", "--no-dependencies": "--no-deps"}
_ALIASES |= {"--ignore-installed": "-I", "--log-file": "--log", "--local-log": "--log"}
_ALIASES |= {s: "--src" for s in ("--source", "--source-dir", "--source-directory")}


def add_pip_options(group: Any, install: bool = False) -> None:
    flags = PIP_FLAGS + (INSTALL_FLAGS if install else ())
    valued = PIP_VALUED + (INSTALL_VALUED if install else GENERAL_VALUED)
    for names in _spellings(flags):
        group.add_argument(*names, action=_PipOption, nargs=0)
    for names in _spellings(valued):
        group.add_argument(*names, action=_PipOption, metavar="VALUE")


def _spellings(options: tuple[str, ...]) -> list[list[str]]:
    """Options with their other spellings beside them (-t with --target)."""
    return [
        [o, *(a for a, first in _ALIASES.items() if first == o)]
        for o in options
        if o not in _ALIASES
    ]


def pip_args_of(args: argparse.Namespace) -> list[str]:
    """Every pip option given, known to segfetch's parser or passed through, in order."""
    return [*(getattr(args, "pip_kept", None) or []), *getattr(args, "pip_args", [])]


def check_passed_through(words: Sequence[str], command: str = "install") -> None:
    """The options argparse left over (``install``, ``download``): pip flags that change
    nothing segfetch does pass through; anything else stops here, before any download."""
    for word in words:
        name = word.partition("=")[0]
        if name in RENAMED:
            raise UsageError(f"segfetch {command} takes {RENAMED[name]} for pip's {name}")
        if name in NOT_YET:
            raise UsageError(
                f"segfetch {command} does not take pip's {name} yet: run pip {command} for this set"
            )
        install_only = command == "download" and name in INSTALL_ONLY
        if word.startswith("-") and (name not in PASSED_FLAGS or install_only):
            if _REPEATED.match(word):
                continue
            raise UsageError(
                f"no such option: {name} (segfetch {command} --help lists segfetch's options "
                f"and the pip {command} options it takes)"
            )


_CHOICES = {
    "--root-user-action": ("warn", "ignore"),
    "--upgrade-strategy": ("only-if-needed", "eager"),
}


def check_values(words: Sequence[str]) -> None:
    """Values pip refuses before it resolves anything, refused here before any download:
    a --root-user-action or --upgrade-strategy it does not know, a --target that is a file.
    ``words``: as ``pip_args_of`` gives them (each of these options, then its value)."""
    for name, value in pairwise(words):
        if (choices := _CHOICES.get(name)) and value not in choices:
            raise UsageError(f"{name} takes {' or '.join(choices)}, not {value!r} (pip's choices)")
        if name in ("-t", "--target") and os.path.lexists(value) and not os.path.isdir(value):
            raise PipRefusal(
                f"--target {value} exists and is not a folder: pip will not install there; "
                "give a folder (or a path that does not exist yet)"
            )


class _PipOption(argparse.Action):
    """Keep a pip option, in order, for the pip install at the end."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        kept = getattr(namespace, "pip_kept", None) or []
        kept += [option, *([values] if isinstance(values, str) else [])]
        namespace.pip_kept = kept


def option_names(words: Sequence[str]) -> list[str]:
    """pip's options as named, without their ``=value`` (in order, as given)."""
    return [w.split("=")[0] for w in words]


def check_managed(target: Target, python: str, words: Sequence[str], listing: str) -> None:
    """pip's rule for an interpreter the OS manages (PEP 668), applied before any download
    as pip applies it before it resolves: installing into it takes --break-system-packages
    (or that setting); --target, --prefix, --root and --dry-run with --report install
    nowhere in it. ``words``: pip's options, given and configured; ``listing``: pip's
    settings as ``pip config list`` prints them."""
    if target.managed is None:
        return
    given = set(option_names(words))
    if given & {"--target", "-t", "--prefix", "--root", "--break-system-packages"} or (
        {"--dry-run", "--report"} <= given
    ):
        return
    if config_flag(listing, "break-system-packages", "install"):
        return
    raise PipRefusal(
        f"{python} is managed by the system ({target.managed}), and pip and uv refuse to "
        "install into it: use a virtual environment (--python PATH), or add "
        "--break-system-packages"
    )


def check_require_venv(python: str, words: Sequence[str], listing: str, command: str) -> None:
    """pip's --require-virtualenv (or PIP_REQUIRE_VIRTUALENV, pip.conf's): a target that is
    no virtual environment (no pyvenv.cfg beside or above its python, PEP 405) is refused
    before any file, exit 3, as pip refuses it before it resolves."""
    given = set(option_names(words)) & {"--require-virtualenv", "--require-venv"}
    if not (given or config_flag(listing, "require-virtualenv", command)):
        return
    exe = Path(os.path.abspath(python))
    if any((folder / "pyvenv.cfg").is_file() for folder in (exe.parent, exe.parent.parent)):
        return
    refusal = PipRefusal(
        f"{python} is no virtual environment, and --require-virtualenv (or its setting) asks "
        "pip for one: give --python of a virtual environment, or activate one"
    )
    refusal.exit_code = 3  # pip's VIRTUALENV_NOT_FOUND
    raise refusal


def check_user_site(python: str, words: Sequence[str]) -> None:
    """pip's refusals of ``--user`` (given, or set as PIP_USER or pip.conf's user; the last of
    it and --no-user counts), applied before any download as pip applies them before it
    resolves: with --prefix or --target, and in a virtual environment that does not see
    the user's site-packages (pyvenv.cfg without include-system-site-packages = true)."""
    given = option_names(words)
    if [w for w in given if w in ("--user", "--no-user")][-1:] != ["--user"]:
        return
    for option in ("--prefix", "--target", "-t"):
        if option in given:
            raise PipRefusal(f"pip cannot combine --user and {option}: give one of them")
    cfg = Path(os.path.abspath(python)).parent.parent / "pyvenv.cfg"
    try:
        lines = cfg.read_text(errors="replace").splitlines()
    except OSError:
        return  # no virtual environment: the user's site-packages are there
    settings = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines)}
    if settings.get("include-system-site-packages") != "true":
        raise PipRefusal(
            f"pip cannot --user install into {cfg.parent}: a virtual environment does not see "
            "the user's site-packages; drop --user (or PIP_USER, pip.conf's user)"
        )
