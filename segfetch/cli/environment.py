"""Which environment `install` and `download` choose files for and install into, and pip's
settings as the target's own pip lists them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from segfetch.cli.pipopts import ELSEWHERE, option_names, pip_args_of
from segfetch.errors import UsageError


def which_python(args: argparse.Namespace) -> str:
    """The interpreter to choose files for and install into (README: "Which Python")."""
    from segfetch.wheels.target import environment_python, is_own_environment

    found = environment_python(args.python, os.environ, Path.cwd())
    if found is not None and not Path(found).exists():  # (a .venv found has one)
        fix = "" if args.python else "VIRTUAL_ENV names it: activate another one, or "
        raise UsageError(f"no Python at {found!r}; {fix}give --python the path of an interpreter")
    elsewhere = args.command == "download" or any(
        a in (*ELSEWHERE, "--user") for a in option_names(pip_args_of(args))
    )
    if found is None:
        if args.system or elsewhere or _configured_elsewhere(args):
            return sys.executable
        raise UsageError(
            "no environment to install into: give --python PATH, activate a virtual "
            f"environment, or --system to install into {sys.executable}"
        )
    if is_own_environment(found) and not (args.system or elsewhere or args.python):
        raise UsageError(
            f"{found} is the environment segfetch itself runs in, and installing there may "
            "break segfetch: give --python PATH, or --system to install there anyway"
        )
    return found


def _configured_elsewhere(args: argparse.Namespace) -> bool:
    """pip's config files name a place to install into (target, prefix, root, user), as
    PIP_TARGET and the rest do: pip would install there, run by this interpreter."""
    from segfetch.wheels.pipnet import configured_options, may_read_config_files

    if args.command != "install":
        return False
    if not may_read_config_files(sys.executable, os.environ, Path.home()):
        return False
    listing = pip_config_list(sys.executable, isolated="--isolated" in args.pip_args)
    words = configured_options(listing, "install")
    return any(w in ("--target", "--prefix", "--root", "--user") for w in words)


def pip_config_list(python: str, own_pip: bool = True, isolated: bool = False) -> str:
    """The lines of the target's ``pip config list`` (``pip --isolated`` if ``isolated``;
    "" when pip cannot say, or there is no pip to ask: no settings of pip's to honour)."""
    from segfetch.wheels.target import start_pip_config

    try:
        pending = start_pip_config(python, own_pip, isolated)
    except (OSError, UsageError):
        return ""
    with pending:
        return pending.result()
