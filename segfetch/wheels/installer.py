"""What runs the final install (``--installer``): the target's pip or uv, and its command
line. Only the standard library: ``prelaunch`` starts uv from here before trio and httpx
load."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import packaging

from segfetch.errors import UsageError
from segfetch.wheels.pipnet import NETWORK_VALUED
from segfetch.wheels.releases import OPTIONS as RELEASES

# pip install options that uv pip install takes, in uv's spelling (None: nothing to pass,
# uv does that anyway). Checked against `uv pip install --help` of uv 0.13; any other
# option (--user, --root, --upgrade-strategy, ...) keeps the install with pip.
UV_FLAGS: dict[str, str | None] = {
    "-U": "--upgrade",
    "--upgrade": "--upgrade",
    "--force-reinstall": "--reinstall",
    "--no-deps": "--no-deps",
    "--no-dependencies": "--no-deps",
    "--compile": "--compile-bytecode",
    "--no-compile": None,  # uv's default: no .pyc at install time
    "--break-system-packages": "--break-system-packages",
    "--require-hashes": "--require-hashes",
    "--no-build-isolation": "--no-build-isolation",
    "--no-warn-script-location": None,  # uv does not warn
    "--no-warn-conflicts": None,
    "--disable-pip-version-check": None,
    "--no-index": None,  # uv is given --no-index anyway
    "--no-proxy-env": None,  # uv asks only segfetch's loopback index and local files
    "--pre": "--prerelease=allow",
}
# (Not --target nor --prefix: uv takes them, but as a folder of its own that it checks for
# what is installed; pip installs anew into a --target, and checks the environment's
# packages for a --prefix. Those stay with pip.)
UV_VALUED = {
    "--only-binary": "--only-binary",  # :all:, :none: or names, as pip writes them
    "--no-binary": "--no-binary",
}
# The user's uv settings that only shape how files land (cache, links, bytecode); every
# other UV_* variable (an index, find-links, constraints, a Python) is left out.
UV_ENV_KEPT = frozenset(
    {
        "UV_CACHE_DIR",
        "UV_NO_CACHE",
        "UV_LINK_MODE",
        "UV_COMPILE_BYTECODE",
        "UV_CONCURRENT_INSTALLS",
        "UV_NO_PROGRESS",
    }
)


@dataclass(frozen=True)
class Installer:
    """What runs the final install: the target's ``pip``, or ``uv``."""

    name: Literal["pip", "uv"]
    uv: str = ""  # the uv binary
    uv_args: tuple[str, ...] = ()  # the pip options, as uv takes them
    why_not_uv: str | None = None  # auto chose pip although uv was found: the reason


def pip_command(python: str, own: bool = True) -> list[str]:
    """How pip runs for ``python``: its own pip; or, for an environment without one (as
    ``uv venv`` makes them), segfetch's, run in that interpreter by the runner file that
    pip's own ``--python`` runs (pip 22.3+; ``pip --python`` itself would start a
    second Python first)."""
    if own:
        return [python, "-m", "pip"]
    spec = importlib.util.find_spec("pip")
    runner = Path(spec.origin).parent / "__pip-runner__.py" if spec and spec.origin else None
    if runner is None or not runner.is_file():
        raise UsageError(
            f"{python} has no pip, and segfetch's environment has no pip 22.3+ to lend it: "
            f"run {python} -m ensurepip, or upgrade the pip beside segfetch"
        )
    return [python, str(runner)]


def lent_folder() -> str:
    """The folder of the pip segfetch lends a Python without one, else of its packaging."""
    spec = importlib.util.find_spec("pip")
    return os.path.dirname(os.path.dirname((spec and spec.origin) or packaging.__file__))


def lent_version() -> str | None:
    """The version of the pip segfetch lends, if it has one."""
    import importlib.metadata  # (20 ms: only once the probe answers)

    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version("pip")
    return None


def find_uv() -> str | None:
    """uv on PATH, else the binary of the ``uv`` package; None when there is neither."""
    if found := shutil.which("uv"):
        return found
    try:
        return str(importlib.import_module("uv").find_uv_bin())
    except (ImportError, AttributeError, OSError):  # not installed, or no binary beside it
        return None


def uv_options(pip_args: Sequence[str]) -> tuple[list[str], str | None]:
    """pip install options as uv pip install takes them, and the first option it does not
    take (None when it takes them all)."""
    out: list[str] = []
    words = iter(pip_args)
    for word in words:
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        # segfetch's own fetches and plan took these; uv, installing local files, needs none
        if name in NETWORK_VALUED or name in ("--refresh-package", *RELEASES):
            if not eq:
                next(words, "")
        elif name in UV_VALUED:
            if not eq:
                value = next(words, "")
            if not value:
                return out, name
            out += [UV_VALUED[name], value]
        elif name in UV_FLAGS and not eq:
            flag = UV_FLAGS[name]
            out += [flag] if flag else []
        else:
            return out, name
    return out, None


def choose_installer(wanted: str, pip_args: Sequence[str], unlike: str | None = None) -> Installer:
    """``auto``: uv when it is found and takes every pip option and requirement (``unlike``:
    what uv does otherwise than pip, if anything), else the target's pip. ``uv``: uv, or a
    UsageError saying why not. ``pip``: the target's pip."""
    if wanted == "pip":
        return Installer("pip")
    uv = find_uv()
    args, refused = uv_options(pip_args)
    if wanted == "uv":
        if uv is None:
            raise UsageError(
                "--installer uv: no uv on PATH and no uv package beside segfetch; "
                "pip install uv, or use --installer pip"
            )
        if refused is not None:
            raise UsageError(
                f"--installer uv: uv pip install does not do what pip's {refused} does; "
                "use --installer pip for it"
            )
        if unlike is not None:
            raise UsageError(f"--installer uv: {unlike}; use --installer pip for it")
    if uv is None:
        return Installer("pip")
    if refused is not None:
        return Installer("pip", why_not_uv=f"uv pip install does not do what {refused} does")
    if unlike is not None:
        return Installer("pip", why_not_uv=unlike)
    return Installer("uv", uv, tuple(args))


def command(
    installer: Installer,
    python: str,
    where: Sequence[str],
    reqs: Sequence[str],
    pip_args: Sequence[str],
    quiet: bool,
    own_pip: bool = True,
) -> tuple[list[str], dict[str, str] | None]:
    """The installer's command line and environment (None: segfetch's); ``where``: the
    options saying where the files are (find-links folders, an index); ``own_pip``: False
    when ``python`` has no pip of its own (``pip_command``)."""
    if installer.name == "pip":
        cmd = [*pip_command(python, own_pip), "install", *where, *pip_args, *reqs]
        return cmd + (["-q"] if quiet else []), None
    cmd = [installer.uv, "pip", "install", "--python", python, "--no-config", *where]
    cmd += [*installer.uv_args, *uv_files(reqs), *(["-q"] if quiet else [])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env |= {k: v for k, v in os.environ.items() if k in UV_ENV_KEPT}
    env["UV_NO_CONFIG"] = "1"
    return cmd, env


def uv_files(reqs: Sequence[str]) -> list[str]:
    """segfetch's requirement files (``-r``/``-c`` FILE) as uv reads them: an option's value
    runs to the line's end, as it is. pip splits such a line as a shell does (`-e '/a b/p[x]'`);
    uv took the quotes for part of the path. A file with such lines is written anew beside
    it; one that cannot be read is left to uv to say so."""
    out = list(reqs)
    for i, _, path, lines in req_files(reqs):
        unquoted = [_unquoted(line) for line in lines]
        if unquoted != lines:
            out[i + 1] = str(Path(path).with_name("uv-" + Path(path).name))
            Path(out[i + 1]).write_text("".join(x + "\n" for x in unquoted), encoding="utf-8")
    return out


def req_files(reqs: Sequence[str]) -> Iterator[tuple[int, str, str, list[str]]]:
    """Each ``-r``/``-c`` FILE of an installer's arguments that can be read: the flag's
    place, the flag, the path, and the file's lines."""
    for i, (flag, path) in enumerate(itertools.pairwise(reqs)):
        if flag in ("-r", "-c"):
            try:
                yield i, flag, path, Path(path).read_text(encoding="utf-8").splitlines()
            except OSError:
                continue


def _unquoted(line: str) -> str:
    import shlex

    option, _, value = line.partition(" ")
    if option.startswith("-") and value:
        with contextlib.suppress(ValueError):  # (not pip's quoting: as it is)
            return f"{option} {' '.join(shlex.split(value))}"
    return line


def loopback_direct(env: dict[str, str]) -> None:
    """segfetch's own index on 127.0.0.1 is asked directly, whatever proxy the environment
    names for everything else (HTTP_PROXY, ALL_PROXY: pip and uv would send it there)."""
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(x for x in (env.get(key, ""), "127.0.0.1,localhost,::1") if x)


def uv_from_loopback(
    installer: Installer,
    python: str,
    url: str,
    links: Sequence[str],
    cache_dir: str,
    no_deps: bool,
    reqs: Sequence[str],
    pip_args: Sequence[str],
    quiet: bool,
) -> tuple[list[str], dict[str, str]]:
    """uv's command line and environment for an install from segfetch's own index at
    ``url`` (and ``links``), with a uv cache folder of the run's."""
    where = ["--index-url", url, *links, "--cache-dir", cache_dir]
    where += ["--no-deps"] if no_deps else []
    cmd, env = command(installer, python, where, reqs, pip_args, quiet)
    env = dict(env or os.environ)
    loopback_direct(env)  # uv needs no network but loopback: no proxy may catch our index
    return cmd, env
