"""pip's network settings (proxy, cert, client-cert, trusted-host) from its command line and
its configuration, so that segfetch's own connections go where pip's would. Pure.

As pip ranks them: the command line over the environment (PIP_PROXY, ...) over the
command's section of the config files over ``global``; trusted hosts of the command line
add to the configuration's.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from segfetch.engine.options import Network
from segfetch.errors import UsageError, redact_url

PYPI = "https://pypi.org/simple/"  # pip's index when none is given
NETWORK_VALUED = ("--proxy", "--cert", "--client-cert", "--trusted-host")


def config_settings(listing: str, name: str, command: str) -> list[str]:
    """A setting's values from the lines of ``pip config list`` (``global.proxy='...'``,
    ``:env:.proxy=...``), the one pip uses first: the environment, the command's section,
    ``global`` (for pip's network settings here, and its ``constraint``)."""
    found: dict[str, str] = {}
    for section, key_name, value in _lines(listing):
        if key_name == name and section in (":env:", command, "global"):
            found[section] = value
    return [found[s] for s in (":env:", command, "global") if found.get(s)]


def _lines(listing: str) -> Iterator[tuple[str, str, str]]:
    """(section, name, value) of each setting in ``pip config list``'s lines, in order."""
    for line in listing.splitlines():
        key, eq, value = line.partition("=")
        section, _, name = key.strip().rpartition(".")
        if eq:
            yield section, name, _unrepr(value.strip())


def _unrepr(text: str) -> str:
    """A value as ``pip config list`` prints it (``%r``: a multi-line one, pip.conf's way to
    list several, as ``'a\\nb'``), back to its text; one not quoted as it is."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text.strip("'\"")
    return value if isinstance(value, str) else text


# pip's options that its configuration (PIP_* variables, pip.conf) may set and that change
# what is chosen or how it installs: taken as if given first on the command line. (Not
# no-build-isolation: pip reads its configured value backwards, as build_isolation.)
CONFIGURED_FLAGS: tuple[str, ...] = ("no-deps", "pre", "prefer-binary", "require-hashes")
CONFIGURED_FLAGS += ("ignore-requires-python",)
CONFIGURED_INSTALL_FLAGS = ("upgrade", "force-reinstall", "ignore-installed", "user")
# (--only-binary and --no-binary each undo the other's names: taken in pip's order, _in_order)
BINARY = ("only-binary", "no-binary")
CONFIGURED_VALUED = ("refresh-package", "uploaded-prior-to")
CONFIGURED_INSTALL_VALUED = ("upgrade-strategy",)
CONFIGURED_INSTALL_PLACES = ("target", "prefix", "root")  # where it installs: one value
_TRUE = frozenset({"1", "y", "yes", "t", "true", "on"})  # pip's strtobool


def config_flag(listing: str, name: str, command: str) -> bool:
    """A yes/no setting, as pip reads it (its strtobool), from ``pip config list``'s lines."""
    values = config_settings(listing, name, command)
    return bool(values) and values[0].lower() in _TRUE


def configured_options(listing: str, command: str, *, sources: tuple[str, ...] = ()) -> list[str]:
    """Those options, from the lines of ``pip config list``, as command-line words: a flag
    as its highest-ranked setting says (the environment over the command's section over
    global: PIP_NO_DEPS=false undoes a file's), a list in the order pip adds them up
    (global, the command's, the environment). Only the sections in ``sources`` count if
    given (":env:" for the environment alone)."""
    install = command == "install"
    flags = CONFIGURED_FLAGS + (CONFIGURED_INSTALL_FLAGS if install else ())
    valued = CONFIGURED_VALUED + (CONFIGURED_INSTALL_VALUED if install else ())
    if sources:
        listing = "".join(ln + "\n" for ln in listing.splitlines() if ln.startswith(sources))
    out: list[str] = []
    for name in flags:
        if config_flag(listing, name, command):
            out.append(f"--{name}")
    for name, value in [*_in_order(listing, BINARY, command), *_by_rank(listing, valued, command)]:
        out += [w for word in value.split() for w in (f"--{name}", word)]
    for name in CONFIGURED_INSTALL_PLACES if install else ():
        if values := config_settings(listing, name, command):
            out += [f"--{name}", values[0]]
    # find-links: the highest-ranked setting, split at spaces (pip's list option: a later
    # source replaces an earlier one's value); the command line's -f adds to it
    for link in next(iter(config_settings(listing, "find-links", command)), "").split():
        out += ["--find-links", link]
    return out


def _in_order(listing: str, names: Sequence[str], command: str) -> list[tuple[str, str]]:
    """Settings of ``names`` in the order pip applies them (its ConfigOptionParser runs
    each one's callback in turn): the global section, the command's, then the environment,
    each in the order pip read them (the listing keeps it)."""
    sections = ["global", command, ":env:"]
    rows = [
        (sections.index(section), name, text)
        for section, name, text in _lines(listing)
        if name in names and section in sections and text
    ]
    return [(name, text) for _, name, text in sorted(rows, key=lambda row: row[0])]


def _by_rank(listing: str, names: Sequence[str], command: str) -> list[tuple[str, str]]:
    """A list setting's values in the order pip adds them up: global, the command's, env."""
    return [
        (name, value)
        for name in names
        for value in reversed(config_settings(listing, name, command))
    ]


def command_line_values(pip_args: Sequence[str], option: str) -> list[str]:
    """Every value given to ``option`` (``--x V`` or ``--x=V``) among pip's arguments."""
    out = []
    for i, word in enumerate(pip_args):
        if word == option and i + 1 < len(pip_args):
            out.append(pip_args[i + 1])
        elif word.startswith(option + "="):
            out.append(word[len(option) + 1 :])
    return out


def pip_network(pip_args: Sequence[str], listing: str, command: str) -> Network:
    """The settings pip would use for ``pip <command>`` with these arguments and this
    configuration (``listing``: ``pip config list``; "" under --isolated)."""

    def configured(name: str) -> str | None:
        return next(iter(config_settings(listing, name, command)), None)

    def one(name: str) -> str | None:
        given = command_line_values(pip_args, f"--{name}")
        return given[-1] if given else configured(name)

    proxy = one("proxy")
    # pip 26.2+: a proxy given ("" too: no proxy at all), or --no-proxy-env, and pip reads
    # none from the environment (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY)
    no_env = "--no-proxy-env" in pip_args or config_flag(listing, "no-proxy-env", command)
    env_proxies = proxy is None and not no_env
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy  # as requests reads a proxy without a scheme
    if proxy:
        _check_proxy(proxy)
    trusted = (configured("trusted-host") or "").split()
    trusted += command_line_values(pip_args, "--trusted-host")
    return Network(
        proxy=proxy or None,
        cafile=one("cert"),
        client_cert=one("client-cert"),
        insecure=tuple(dict.fromkeys(trusted)),
        env_proxies=env_proxies,
    )


def environment_listing(environ: Mapping[str, str]) -> str:
    """pip's settings from the environment alone, as ``pip config list`` prints them:
    PIP_INDEX_URL is ``:env:.index-url``, as pip names it."""
    found = {
        k[4:].lower().replace("_", "-"): v
        for k, v in environ.items()  # (in its order, as pip reads it: _in_order)
        if k.startswith("PIP_") and k != "PIP_CONFIG_FILE" and v
    }
    return "".join(f":env:.{n}={v!r}\n" for n, v in found.items())


def may_read_config_files(python: str, environ: Mapping[str, str], home: Path) -> bool:
    """Whether pip (for the interpreter ``python``) may read a config file: one of the places
    it looks exists (a superset of pip's list, for Linux, macOS and Windows). When none does,
    pip's settings are the command line's and the environment's, known without asking it."""
    named = environ.get("PIP_CONFIG_FILE")
    if named == os.devnull:
        return False  # pip reads no file at all then
    prefix = Path(python).parent.parent  # sys.prefix: the venv, or /usr for /usr/bin/python3
    xdg = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    dirs = (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    places = [
        *([Path(named)] if named else []),
        prefix / "pip.conf",
        prefix / "pip.ini",
        Path("/etc/pip.conf"),
        *(Path(d) / "pip" / "pip.conf" for d in dirs if d),
        home / ".pip" / "pip.conf",
        Path(xdg) / "pip" / "pip.conf",
        home / "Library" / "Application Support" / "pip" / "pip.conf",
        Path("/Library/Application Support/pip/pip.conf"),
        Path(environ.get("APPDATA", home)) / "pip" / "pip.ini",
        home / "pip" / "pip.ini",
        Path(environ.get("ProgramData", "C:/ProgramData")) / "pip" / "pip.ini",
    ]
    return any(p.is_file() for p in places)


def _check_proxy(url: str) -> None:
    """One line now, not a traceback when the client is made."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"pip's proxy {redact_url(url)} is not an http(s)://HOST[:PORT] URL (segfetch "
            "speaks to HTTP proxies, not SOCKS): fix pip's proxy setting (--proxy, PIP_PROXY)"
        )


def constraints_in_config(listing: str, command: str) -> list[str]:
    """The constraint files of pip's configuration, from the lines of ``pip config list``
    (``global.constraint='a.txt b.txt'``): as pip ranks them, the environment
    (PIP_CONSTRAINT) over the command's section over ``global``; the value is split at
    spaces, as pip splits a list option's."""
    return next(iter(config_settings(listing, "constraint", command)), "").split()
