"""The target's own pip: its resolver (``--dry-run --report``); and the final install from
the verified files only, by that pip or by uv (``--installer``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import trio

from segfetch.errors import SegfetchError, redact_url
from segfetch.wheels.children import spawn, stop
from segfetch.wheels.files import Fetched, link_into
from segfetch.wheels.installer import (
    Installer,
    command,
    loopback_direct,
    pip_command,
    req_files,
)
from segfetch.wheels.pipnet import command_line_values
from segfetch.wheels.reqtext import split_options


async def pip_report(
    python: str,
    pip_reqs: Sequence[str],
    index: str,
    pre: bool,
    pip: Sequence[str] = (),
    warn: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """pip's report (``--report``) of what it would install from this index (or from local
    files): ``report_urls`` reads the files' URLs from it. ``pip``: how pip runs for
    ``python`` (``pip_command``; by default its own). ``warn``: given pip's warnings of the
    set (an extra a project lacks), not those of the local index. Cancelled (Ctrl-C,
    SIGTERM), pip is stopped and waited for (``_stop_resolver``)."""
    # The report to a file, not --quiet: a conflict's cause is pip's INFO, on its stdout.
    folder = tempfile.TemporaryDirectory(prefix="segfetch-")
    out = Path(folder.name) / "report.json"
    cmd = [*(pip or pip_command(python)), "install", "--dry-run", "--report", str(out)]
    # No cache: a wheel pip built from an sdist before would stand in for the sdist's build,
    # and its build dependencies would never be fetched for an install that builds it
    # (--no-cache-dir, another cache folder, or another URL for the sdist there).
    cmd += ["--disable-pip-version-check", "--no-cache-dir"]
    cmd += ["--index-url", index, *(["--pre"] if pre else []), *pip_reqs]
    # Our local index stands for every index the user's pip would use: keep pip's own
    # index settings (files or environment) out, so it asks nothing behind our back.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull
    loopback_direct(env)
    with folder:
        proc = await trio.run_process(
            cmd, stdin=subprocess.DEVNULL, capture_stdout=True, capture_stderr=True,
            check=False, env=env, deliver_cancel=_stop_resolver,
        )  # fmt: skip
        told = out.read_text(encoding="utf-8") if out.exists() else ""
    said = as_given(_with_cause(proc.stderr.decode(), proc.stdout.decode()), pip_reqs)
    report = _read_report(python, proc.returncode, told, said)
    for line in said.splitlines():
        if line.startswith("WARNING:") and "Retrying" not in line and index not in line:
            warn(line)
    return report


def _with_cause(stderr: str, stdout: str) -> str:
    """pip's stderr, with a conflict's cause from its stdout where pip alone shows it:
    before its last ERROR line ("ResolutionImpossible")."""
    start = stdout.find("The conflict is caused by:")
    last = stderr.rfind("ERROR: ResolutionImpossible")
    if start < 0 or last < 0:
        return stderr
    return stderr[:last] + "\n" + stdout[start:].strip() + "\n\n" + stderr[last:]


def as_given(text: str, pip_reqs: Sequence[str]) -> str:
    """pip's words with the set's own files (those segfetch wrote for it, ``-r``/``-c`` in
    ``pip_reqs``) out of them: "-r /tmp/segfetch-reqs-.../requirements.txt (line 3)" is that
    line's requirement, as pip names one given on its command line."""
    for _, flag, path, lines in req_files(pip_reqs):

        def line(m: re.Match[str], lines: list[str] = lines) -> str:
            n = int(m.group(1))
            return split_options(lines[n - 1])[0] if 0 < n <= len(lines) else m.group(0)

        text = re.sub(re.escape(f"{flag} {path} (line ") + r"(\d+)\)", line, text)
    return text


async def _stop_resolver(proc: trio.Process) -> None:
    """SIGTERM, then SIGKILL if pip is still there after a second (not trio's 5 s and a
    warning): a --dry-run installs nothing, and a Ctrl-C should end the command now."""
    proc.terminate()
    await trio.sleep(1)
    proc.kill()


CROSS = "\N{MULTIPLICATION SIGN}"  # pip marks the step that failed with it


def _read_report(python: str, returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    old_pip = SegfetchError(
        f"the pip of {python} is older than 22.2, which segfetch needs to resolve requirements: "
        f"upgrade it ({python} -m pip install -U pip), or give a complete pinned set"
    )
    if returncode != 0:
        if "Operation cancelled by user" in stderr:
            raise KeyboardInterrupt  # Ctrl-C reached pip too: exit as interrupted, not failed
        if "no such option: --report" in stderr or "no such option: --dry-run" in stderr:
            raise old_pip
        said = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        errors = [ln for ln in said if ln.startswith("ERROR")]
        if errors:
            # (pip's last line of a conflict is a link; the line before it names the pins)
            last = -2 if len(errors) > 1 and "ResolutionImpossible" in errors[-1] else -1
            why = errors[last].removeprefix("ERROR:").strip()
            lines = stderr.splitlines()
            # (pip before 23.3 indents a build's ERROR lines: "  ERROR: ...")
            first = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ERROR"))
            account = lines[first:]
            if any(ln.strip() and not ln.lstrip().startswith("ERROR") for ln in account):
                sys.stderr.write("".join(ln + "\n" for ln in account))  # causes, a crash
                why += " (pip's output is above)"
        else:  # a build that failed: pip's own account of it (its cross line says which step)
            sys.stderr.write(stderr)
            step = [ln.lstrip(CROSS + " ").strip() for ln in said if ln.startswith(CROSS)]
            why = (step or said or ["no reason given"])[-1] + " (pip's output is above)"
        raise SegfetchError(f"pip could not resolve the requirements: {redact_url(why)}")
    try:
        report = json.loads(stdout)
        report_urls(report)
    except (ValueError, KeyError, TypeError):
        raise old_pip from None
    return report  # type: ignore[no-any-return]


def report_urls(report: dict[str, Any]) -> list[str]:
    """The URL of every file a pip report says it would install. A local folder (-e, a
    path) or a VCS checkout is pip's to build at the install: not among them."""
    infos = [item["download_info"] for item in report["install"]]
    return [i["url"] for i in infos if "dir_info" not in i and "vcs_info" not in i]


def install(
    installer: Installer,
    python: str,
    fetched: Sequence[Fetched],
    reqs: Sequence[str],
    pip_args: Sequence[str],
    quiet_stdout: bool = False,
    quiet: bool = False,
    cached: Path | None = None,
    own_pip: bool = True,
    constraints_read: bool = False,
) -> int:
    """Install the verified files only into ``python``'s environment, with the target's pip
    or with uv. Neither touches the network for them (--no-index; uv also --offline, and
    none of the user's uv configuration). The installer's output and exit code are the
    command's; ``quiet_stdout``: its output goes to stderr (stdout holds one JSON document);
    ``quiet``: the installer is told -q, as pip install -q would be. ``cached``: the
    folder of segfetch's verified files (``Cache.files``), each alone in its own folder;
    ``own_pip``: False when ``python`` has no pip of its own (``pip_command``);
    ``constraints_read``: the constraint files of pip's configuration are in ``reqs``."""
    with tempfile.TemporaryDirectory(prefix="segfetch-") as tmp:
        # The cache's folders are given as they are: they stay at one path run after run,
        # and uv keeps what it unpacked of a local wheel by its path (30 small wheels
        # again: 0.08 s instead of 0.2 s). The rest (local files, whose folders may hold
        # files the installer must not see) are linked into a folder of their own.
        own = [f for f in fetched if cached is not None and f.path.is_relative_to(cached)]
        links = find_links([f for f in fetched if f not in own], Path(tmp))
        links += [
            a for d in dict.fromkeys(str(f.path.parent) for f in own) for a in ("--find-links", d)
        ]
        offline = ["--no-index"] if installer.name == "pip" else ["--offline", "--no-index"]
        cmd, env = command(installer, python, [*offline, *links], reqs, pip_args, quiet, own_pip)
        if installer.name == "pip" and constraints_read:  # (not again: a URL's would be
            env = {**os.environ, "PIP_CONSTRAINT": os.devnull}  # fetched by pip itself)
        out = sys.stderr if quiet_stdout else None
        with spawn(cmd, stdin=subprocess.DEVNULL, stdout=out, env=env) as proc:
            try:
                return proc.wait()
            except BaseException:  # Ctrl-C, SIGTERM: the installer stops too, and is reaped
                stop(proc)  # (subprocess.run would leave it unreaped after a Ctrl-C)
                raise


def find_links(local: Sequence[Fetched], folder: Path) -> list[str]:
    """The installer's ``--find-links`` to ``local`` files, linked into ``folder`` of their
    own (a local file's folder may hold files the installer must not see)."""
    link_into(local, folder)
    return ["--find-links", str(folder)]


# Run in the target: each direct requirement's direct_url.json (PEP 610) names the URL it
# came from, as pip writes it, not the cached file the installer was given; RECORD follows.
_ORIGINS = """
import base64, hashlib, importlib.metadata as md, json, os, sys, sysconfig
places = json.loads(sys.argv[2])  # --target, --prefix, --root as pip was given them
path = sys.path
if places.get("target"):
    path = [places["target"]]
elif places.get("prefix") or places.get("root"):
    base = places.get("prefix")
    path = [sysconfig.get_paths(vars={"base": base, "platbase": base} if base else None)[k]
            for k in ("purelib", "platlib")]
    if places.get("root"):
        path = [os.path.join(places["root"], p.lstrip(os.sep)) for p in path]
for name, url, sha in json.loads(sys.argv[1]):
    dist = next(iter(md.distributions(name=name, path=path)), None)
    if dist is None:
        continue
    files = {str(f).replace(chr(92), "/"): f for f in dist.files or ()}
    where = [f for k, f in files.items() if k.endswith(".dist-info/direct_url.json")]
    record = [f for k, f in files.items() if k.endswith(".dist-info/RECORD")]
    if not (where or record):
        continue
    place = where[0] if where else record[0].parent / "direct_url.json"  # (a constraint's)
    info = {"archive_info": {"hash": "sha256=" + sha, "hashes": {"sha256": sha}}, "url": url}
    data = json.dumps(info, sort_keys=True).encode()
    dist.locate_file(place).write_bytes(data)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    if record:
        rpath = dist.locate_file(record[0])
        key = str(place).replace(chr(92), "/")
        rows = [r for r in rpath.read_text().splitlines() if r.split(",")[0] != key]
        rows.append(f"{key},sha256={digest},{len(data)}")
        rpath.write_text("".join(r + chr(10) for r in rows))
"""


def report_to_file(pip_args: Sequence[str], folder: Path) -> tuple[list[str], Path | None]:
    """pip's ``--report -`` (on stdout) made ``--report folder/report.json``, for
    report_origins to put each file's own URL in before it is shown: pip's arguments so,
    and that file (None where no report goes to stdout)."""
    out, path = list(pip_args), folder / "report.json"
    for i, word in enumerate(out):
        if word == "--report=-" or (word == "-" and i and out[i - 1] == "--report"):
            out[i] = f"--report={path}" if word == "--report=-" else str(path)
            return out, path
    return out, None


def report_origins(report: Path, fetched: Sequence[Fetched], direct: Collection[str] = ()) -> None:
    """pip's ``--report`` names the verified local copy it installed from: each file's own
    URL instead, as pip's report of an install from the index has it (SBOM and audit tools
    read it); one of ``direct`` (a URL constraint's) is a direct URL's, as for pip. Left as
    it is if it cannot be read."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return
    where = {f.planned.filename: f.planned.url for f in fetched}

    def origin(url: str) -> str | None:
        if not url.startswith("file:"):
            return None
        found = where.get(unquote(urlsplit(url).path).rpartition("/")[2], "file:")
        return None if found.startswith("file:") else found

    point_urls(data, origin)
    direct = {redact_url(url) for url in direct}
    for item in data.get("install", []) if isinstance(data, dict) else ():
        if isinstance(item, dict) and item.get("download_info", {}).get("url") in direct:
            item["is_direct"] = True
    report.write_text(json.dumps(data, indent=2) + "\n")


def point_urls(report: object, origin: Callable[[str], str | None]) -> None:
    """Each file's URL in a pip report (``download_info.url``) replaced by ``origin(url)``
    (credentials redacted), where that is not None. Pure; anything unexpected is left."""
    items = report.get("install") if isinstance(report, dict) else None
    for item in items if isinstance(items, list) else ():
        info = item.get("download_info") if isinstance(item, dict) else None
        url = info.get("url") if isinstance(info, dict) else None
        if isinstance(info, dict) and isinstance(url, str) and (found := origin(url)):
            info["url"] = redact_url(found)


_PLACES = {"target": ("-t", "--target"), "prefix": ("--prefix",), "root": ("--root",)}


def record_origins(
    python: str, origins: Sequence[tuple[str, str, str]], pip_args: Sequence[str] = ()
) -> None:
    """After the install: the installed projects of direct URLs (name, URL, sha256) say,
    as pip's own install would, that they came from their URL (``pip freeze`` shows it;
    ``pip freeze --path`` for a --target). ``pip_args``: where pip installed them."""
    if origins:
        places = {}
        for key, options in _PLACES.items():
            if values := [v for o in options for v in command_line_values(pip_args, o)]:
                places[key] = values[-1]
        cmd = [python, "-c", _ORIGINS, json.dumps(list(origins)), json.dumps(places)]
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
