"""A page the page cache holds fresh (an index's ``Cache-Control: max-age=600``, as PyPI's)
is still checked with the index when the client asks for that: pip before 26.2 sends
``max-age=0`` for every page, pip 26.2+ for those of ``--refresh-package``, so a release
of the last ten minutes is seen where pip alone sees it.
(PageServer and its fixtures are test_pages.py's.)"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from helpers import segfetch
from test_pages import BETA, PageServer, Served, index_dir, served

from segfetch.engine.client import make_client
from segfetch.testing.emulator import Emulator
from segfetch.wheels.cache import Cache
from segfetch.wheels.index import JSON_TYPE
from segfetch.wheels.serve import run

__all__ = ["index_dir", "served"]  # fixtures


def _before_release(server: PageServer) -> Served:
    """Leave sf-beta 1.1 off its page (fresh for 600 s); return the page with it."""
    new = server.pages["/simple/sf-beta/"]
    doc = json.loads(new.body)
    doc["files"] = [f for f in doc["files"] if f["filename"] != BETA]
    server.pages["/simple/sf-beta/"] = Served(json.dumps(doc).encode(), cache_control="max-age=600")
    return replace(new, etag='"v2"', cache_control="max-age=600")


async def test_serve_revalidates_a_fresh_page_when_the_client_asks(
    served: tuple[Emulator, PageServer], tmp_path: Path
) -> None:
    _, server = served
    released = _before_release(server)
    async with (
        make_client(8, 10) as client,
        trio.open_nursery() as nursery,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        app = await nursery.start(partial(run, [server.url], Cache(tmp_path / "c"), client))
        url = f"http://127.0.0.1:{app.port}/simple/sf-beta/"

        async def listed(headers: dict[str, str]) -> set[str]:
            r = await http.get(url, headers={"Accept": JSON_TYPE, **headers})
            return {f["filename"] for f in r.json()["files"]}

        assert BETA not in await listed({})
        server.pages["/simple/sf-beta/"] = released
        assert BETA not in await listed({})  # fresh: not asked for
        assert BETA in await listed({"Cache-Control": "max-age=0"})  # as pip asks
        nursery.cancel_scope.cancel()
    assert [e["status"] for e in server.log] == [200, 200]
    assert server.log[1]["headers"]["if-none-match"] == '"v1"'  # type: ignore[index]


@pytest.mark.parametrize("dated", [True, False])
@pytest.mark.parametrize("trusted", [[], ["--trusted-host", "127.0.0.1"]])
@pytest.mark.parametrize("refresh", [[], ["--refresh-package", "sf-x,sf-beta"]])
async def test_download_sees_a_release_newer_than_a_fresh_page_as_pip_does(
    served: tuple[Emulator, PageServer],
    tmp_path: Path,
    refresh: list[str],
    trusted: list[str],
    dated: bool,
) -> None:
    """pip before 26.2 asks for every page again (``max-age=0``); pip 26.2+ takes a page its
    cache holds fresh, unless told --refresh-package NAMES (or :all:). pip caches pages of
    https and of trusted http hosts only: another http index's page is always asked for
    (segfetch took it fresh). Nor is a page without a Date header ever fresh in pip's
    cache. pip download alone runs beside segfetch download, whose resolver is that same
    pip."""
    from pip._internal.cli import cmdoptions

    always = not hasattr(cmdoptions, "refresh_package")  # (pip before 26.2)
    if always and refresh:
        pytest.skip("this pip has no --refresh-package")
    _, server = served
    released = replace(_before_release(server), dated=dated)
    server.pages["/simple/sf-beta/"] = replace(server.pages["/simple/sf-beta/"], dated=dated)

    async def both(folder: str, *more: str) -> list[list[str]]:
        names = []
        for tool, cache in (["-m", "segfetch"], "c"), (["-m", "pip", "-q"], "pip-c"):
            args = ["download", "sf-beta", "--index-url", server.url, *trusted, *more]
            args += ["--cache-dir", str(tmp_path / cache), "-d", str(tmp_path / cache / folder)]
            with trio.fail_after(60):
                proc = await trio.run_process(
                    [sys.executable, *tool, *args], capture_stderr=True, check=False
                )
            assert proc.returncode == 0, proc.stderr
            names.append(sorted(p.name for p in (tmp_path / cache / folder).iterdir()))
        return names

    assert await both("a") == [["sf_beta-1.0-py3-none-any.whl"]] * 2
    server.pages["/simple/sf-beta/"] = released
    fresh = not (always or refresh) and trusted and dated
    seen = "sf_beta-1.0-py3-none-any.whl" if fresh else BETA
    assert await both("b", *refresh) == [[seen]] * 2  # segfetch's, pip's


@pytest.mark.parametrize("given", ["command line", "PIP_REFRESH_PACKAGE", "pip.conf"])
@pytest.mark.parametrize("refresh", [":all:", "sf-beta", "sf-beta,:none:"])
async def test_refresh_package_asks_for_a_pinned_sets_fresh_pages_again(
    served: tuple[Emulator, PageServer], tmp_path: Path, refresh: str, given: str
) -> None:
    """A pinned set is planned without pip: segfetch itself asks for the pages that
    --refresh-package names (with the page's validator), and takes the others fresh. pip
    takes the option from its environment variable and its config file too."""
    _, server = served
    _before_release(server)
    args = ["download", "sf-beta==1.0", "--index-url", server.url, "--no-deps"]
    args += ["--trusted-host", "127.0.0.1"]  # (pip takes no other http page fresh)
    args += ["--cache-dir", str(tmp_path / "c"), "-d", str(tmp_path / "d")]
    first = await segfetch(*args)
    assert first.returncode == 0, first.stderr
    asked = len(server.log)
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nrefresh-package = {refresh}\n")
    if given == "command line":
        again = await segfetch(*args, "--refresh-package", refresh)
    elif given == "pip.conf":
        again = await segfetch(*args, env={"PIP_CONFIG_FILE": str(conf)})
    else:
        again = await segfetch(*args, env={"PIP_REFRESH_PACKAGE": refresh})
    assert again.returncode == 0, again.stderr
    pages = [e for e in server.log[asked:] if e["path"] == "/simple/sf-beta/"]
    assert len(pages) == (0 if refresh.endswith(":none:") else 1), server.log[asked:]
