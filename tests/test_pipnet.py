"""pip's network settings as segfetch reads them (pure): the command line over the
environment over the command's section over global, as pip ranks them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segfetch.engine.options import Network
from segfetch.errors import UsageError
from segfetch.wheels.pipnet import (
    command_line_values,
    config_settings,
    configured_options,
    constraints_in_config,
    environment_listing,
    may_read_config_files,
    pip_network,
)
from segfetch.wheels.target import index_urls_in_config

LISTING = """\
global.cert='/etc/ssl/global.pem'
global.proxy='http://global-proxy:3128'
global.trusted-host='a.example b.example'
install.proxy='install-proxy:8080'
download.client-cert='/keys/download.pem'
"""


def test_nothing_set_is_the_environment_alone() -> None:
    assert pip_network([], "", "install") == Network()


def test_the_command_section_wins_over_global_and_a_bare_proxy_is_http() -> None:
    net = pip_network([], LISTING, "install")
    assert net.proxy == "http://install-proxy:8080"
    assert net.cafile == "/etc/ssl/global.pem"
    assert net.client_cert is None  # that one is for pip download only
    assert net.insecure == ("a.example", "b.example")
    assert pip_network([], LISTING, "download").client_cert == "/keys/download.pem"
    assert pip_network([], LISTING, "download").proxy == "http://global-proxy:3128"


def test_the_environment_wins_over_the_files() -> None:
    listing = LISTING + ":env:.proxy='http://env-proxy:1'\n:env:.trusted-host='c.example'\n"
    net = pip_network([], listing, "install")
    assert net.proxy == "http://env-proxy:1"
    assert net.insecure == ("c.example",)  # PIP_TRUSTED_HOST replaces the files' list


def test_the_command_line_wins_and_its_trusted_hosts_add_to_the_configured() -> None:
    args = ["--proxy", "https://cli:3129", "--cert=/cli.pem", "--trusted-host", "x:8443"]
    args += ["--no-deps", "--trusted-host=a.example"]
    net = pip_network(args, LISTING, "install")
    assert net == Network(
        proxy="https://cli:3129",
        cafile="/cli.pem",
        insecure=("a.example", "b.example", "x:8443"),
        env_proxies=False,  # a proxy given: pip 26.2+ reads none from the environment
    )


@pytest.mark.parametrize(
    ("args", "listing"),
    [
        (["--no-proxy-env"], ""),
        ([], "global.no-proxy-env='true'\n"),
        ([], ":env:.no-proxy-env='1'\n"),  # PIP_NO_PROXY_ENV=1
        (["--proxy", ""], ""),  # pip 26.2+: "" is no proxy at all
    ],
)
def test_the_environments_proxies_are_left_where_pip_leaves_them(
    args: list[str], listing: str
) -> None:
    net = pip_network(args, listing, "install")
    assert net == Network(env_proxies=False)


def test_the_environments_proxies_count_unless_told_otherwise() -> None:
    listing = "global.no-proxy-env='false'\n:env:.no-proxy-env='no'\n"
    assert pip_network(["--no-deps"], listing, "install").env_proxies


def test_reading_values() -> None:
    assert command_line_values(["--cert", "a", "--cert=b", "--cert"], "--cert") == ["a", "b"]
    assert command_line_values(["--certify", "x"], "--cert") == []
    assert config_settings("global.cert=\"/q.pem\"\nfoo.cert='/no'\n", "cert", "install") == [
        "/q.pem"
    ]


@pytest.mark.parametrize(
    "proxy", ["socks5://127.0.0.1:1080", "http://foo:bar", "ftp://x:1", "http://[::1", "http://"]
)
def test_a_proxy_segfetch_cannot_use_is_one_line(proxy: str) -> None:
    with pytest.raises(UsageError, match="pip's proxy"):
        pip_network(["--proxy", proxy], "", "install")


def test_the_environment_alone_reads_as_pips_listing() -> None:
    environ = {
        "PIP_INDEX_URL": "https://mirror.example/simple/",
        "PIP_EXTRA_INDEX_URL": "https://a.example/simple/ https://b.example/simple/",
        "PIP_CONSTRAINT": "c.txt",
        "PIP_PROXY": "http://p:3128",
        "PIP_CONFIG_FILE": os.devnull,  # where pip looks, not a setting
        "HOME": "/root",
    }
    listing = environment_listing(environ)
    assert index_urls_in_config(listing) == (
        "https://mirror.example/simple/",
        ["https://a.example/simple/", "https://b.example/simple/"],
    )
    assert constraints_in_config(listing, "install") == ["c.txt"]
    assert pip_network([], listing, "install").proxy == "http://p:3128"
    assert "config-file" not in listing and "home" not in listing


def test_pip_may_read_a_config_file_unless_it_is_told_not_to_or_there_is_none(
    tmp_path: Path,
) -> None:
    python = str(tmp_path / "venv" / "bin" / "python")
    home = tmp_path / "home"
    bare = {"XDG_CONFIG_DIRS": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(home / ".config")}
    assert may_read_config_files(python, {**bare, "PIP_CONFIG_FILE": os.devnull}, home) is False
    if not Path("/etc/pip.conf").exists():  # this machine's own would count
        assert may_read_config_files(python, bare, home) is False
        (tmp_path / "venv").mkdir()
        (tmp_path / "venv" / "pip.conf").write_text("[global]\n")
        assert may_read_config_files(python, bare, home) is True  # the venv's own
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\n")
    assert may_read_config_files(python, bare, home) is True


def test_the_index_is_pips_the_environment_over_the_files() -> None:
    listing = (
        ":env:.index-url='https://env.example/simple/'\n"
        "download.extra-index-url='https://dl.example/simple/'\n"
        "global.extra-index-url='https://g.example/simple/'\n"
        "global.index-url='https://global.example/simple/'\n"
        "install.index-url='https://install.example/simple/'\n"
    )  # as the probe prints them: sorted, so the environment comes first
    assert index_urls_in_config(listing, "install") == (
        "https://env.example/simple/",
        ["https://g.example/simple/"],  # download's section is not install's
    )
    assert index_urls_in_config(listing, "download")[1] == ["https://dl.example/simple/"]
    no_env = listing.split("\n", 1)[1]
    assert index_urls_in_config(no_env, "install")[0] == "https://install.example/simple/"
    assert index_urls_in_config(no_env, "download")[0] == "https://global.example/simple/"


def test_a_list_on_several_lines_of_pip_conf_is_every_value() -> None:
    """pip.conf lists several values one a line; ``pip config list`` prints them with %r
    ('a\\nb'): each is a find-link, an extra index, as pip splits them."""
    conf = {
        "download.find-links": "/w/one\nhttps://h.example/links/",
        "global.extra-index-url": "\nhttps://a.example/s/\n  https://b.example/s/",
    }
    listing = "".join(f"{k}={v!r}\n" for k, v in sorted(conf.items()))
    assert configured_options(listing, "download") == [
        "--find-links",
        "/w/one",
        "--find-links",
        "https://h.example/links/",
    ]
    assert index_urls_in_config(listing, "download")[1] == [
        "https://a.example/s/",
        "https://b.example/s/",
    ]
    assert config_settings(":env:.cert='/it\\'s.pem'\n", "cert", "install") == ["/it's.pem"]


def test_binary_settings_are_taken_in_the_order_pip_applies_them() -> None:
    """no-binary then only-binary = :all: in a section (or PIP_NO_BINARY before
    PIP_ONLY_BINARY in the environment): pip runs each setting's callback in turn, and the
    later :all: clears no-binary, so pip installs the wheel; segfetch took only-binary
    first, no-binary won, and an sdist was built and installed, exit 0."""
    from segfetch.wheels.pipnet import configured_options, environment_listing

    no_first = "global.prefer-binary='1'\ninstall.no-binary='mix'\ninstall.only-binary=':all:'\n"
    assert configured_options(no_first, "install") == [
        "--prefer-binary", "--no-binary", "mix", "--only-binary", ":all:"
    ]  # fmt: skip
    only_first = "install.only-binary=':all:'\n:env:.no-binary='mix'\nglobal.no-binary='x'\n"
    assert configured_options(only_first, "install") == [
        "--no-binary",
        "x",
        "--only-binary",
        ":all:",
        "--no-binary",
        "mix",
    ]  # fmt: skip (global, then the command's section, then the environment)
    env = {"PIP_NO_BINARY": "mix", "PIP_ONLY_BINARY": ":all:"}
    assert configured_options(environment_listing(env), "install")[-2:] == [
        "--only-binary", ":all:"
    ]  # fmt: skip
    env = {"PIP_ONLY_BINARY": ":all:", "PIP_NO_BINARY": "mix"}
    assert configured_options(environment_listing(env), "install")[-2:] == ["--no-binary", "mix"]


def test_configured_options_read_as_pip_ranks_them() -> None:
    """PIP_* variables and pip.conf's sections: the environment first, then the command's
    section, then global; pip's true/false words; install's own options for install only."""
    from segfetch.wheels.pipnet import configured_options, environment_listing

    env = {"PIP_NO_DEPS": "yes", "PIP_PRE": "0", "PIP_ONLY_BINARY": ":all:", "PIP_UPGRADE": "1"}
    listing = environment_listing(env)
    assert configured_options(listing, "install") == [
        "--no-deps", "--upgrade", "--only-binary", ":all:"
    ]  # fmt: skip
    assert configured_options(listing, "download") == ["--no-deps", "--only-binary", ":all:"]
    files = "install.no-deps='false'\nglobal.no-deps='true'\nglobal.no-binary='a b'\n"
    assert configured_options(files, "install") == ["--no-binary", "a", "--no-binary", "b"]
    # PIP_NO_DEPS=false undoes a file's no-deps; lists add up: global, the command's, env.
    both = "install.no-deps='true'\nglobal.only-binary='numpy'\ninstall.only-binary='scipy'\n"
    both += ":env:.no-deps='false'\n:env:.only-binary='lxml'\n"
    assert configured_options(both, "install") == [
        "--only-binary", "numpy", "--only-binary", "scipy", "--only-binary", "lxml"
    ]  # fmt: skip
    # no-build-isolation is not taken: pip reads its configured value backwards
    assert configured_options(":env:.no-build-isolation='true'\n", "install") == []
    assert configured_options(files, "download") == [
        "--no-deps",
        "--no-binary",
        "a",
        "--no-binary",
        "b",
    ]
    assert configured_options(files + listing, "install", sources=(":env:",))[0] == "--no-deps"


def test_where_pip_is_configured_to_install_is_taken() -> None:
    """PIP_TARGET / PIP_PREFIX / PIP_ROOT / PIP_USER, or pip.conf's target = ...: as the
    command-line option, one value, the highest-ranked (uv put them in the venv)."""
    from segfetch.wheels.pipnet import configured_options, environment_listing

    env = environment_listing({"PIP_TARGET": "/t", "PIP_USER": "1"})
    assert configured_options(env, "install") == ["--user", "--target", "/t"]
    files = "global.prefix='/g'\ninstall.prefix='/i'\nglobal.root='/r'\n"
    assert configured_options(files, "install") == ["--prefix", "/i", "--root", "/r"]
    assert configured_options(env + files, "download") == []


def test_indexes_as_pip_ranks_them() -> None:
    """A requirement file's -i replaces the command line's indexes (pip reads the file
    after them); each command-line option replaces its configured value alone."""
    import argparse
    from collections.abc import Mapping
    from types import SimpleNamespace
    from typing import cast

    from segfetch.cli import reqset
    from segfetch.wheels.requirements import RequirementSet

    def indexes(cli: Mapping[str, object], file: Mapping[str, object], config: str) -> list[str]:
        args = argparse.Namespace(
            pip_args=[], command="install", quiet=True,
            **{"index_url": None, "extra_index_url": [], **cli},
        )  # fmt: skip
        reqs = SimpleNamespace(**{"index_url": None, "extra_index_urls": [], **file})
        reqs.no_index = False
        return reqset.indexes(args, cast(RequirementSet, reqs), lambda: config)

    conf = "global.index-url='https://conf/'\nglobal.extra-index-url='https://conf-x/'\n"
    assert indexes({}, {}, conf) == ["https://conf/", "https://conf-x/"]
    assert indexes({"index_url": "https://cli/"}, {}, conf) == ["https://cli/", "https://conf-x/"]
    cli = {"index_url": "https://cli/", "extra_index_url": ["https://cli-x/"]}
    assert indexes(cli, {"extra_index_urls": ["https://f-x/"]}, conf) == [
        "https://cli/", "https://conf-x/", "https://cli-x/", "https://f-x/"
    ]  # fmt: skip
    assert indexes(cli, {"index_url": "https://f/"}, conf) == ["https://f/"]
    assert indexes({}, {}, "") == ["https://pypi.org/simple/"]
