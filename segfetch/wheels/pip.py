"""The target's own pip: its resolver (``--dry-run --report``) and the final install from
the verified files only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from segfetch.errors import SegfetchError, redact_url
from segfetch.wheels.files import Fetched, link_into


def pip_report(python: str, pip_reqs: Sequence[str], index: str, pre: bool) -> list[str]:
    """The URL of every file pip would install from this index."""
    cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--disable-pip-version-check"]
    cmd += ["--report", "-", "--index-url", index, *(["--pre"] if pre else []), *pip_reqs]
    # Our local index stands for every index the user's pip would use: keep pip's own
    # index settings (files or environment) out, so it asks nothing behind our back.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    old_pip = SegfetchError(
        f"the pip of {python} is older than 22.2, which segfetch needs to resolve requirements: "
        f"upgrade it ({python} -m pip install -U pip), or give a complete pinned set"
    )
    if proc.returncode != 0:
        if "Operation cancelled by user" in proc.stderr:
            raise KeyboardInterrupt  # Ctrl-C reached pip too: exit as interrupted, not failed
        if "no such option: --report" in proc.stderr or "no such option: --dry-run" in proc.stderr:
            raise old_pip
        said = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in said if ln.startswith("ERROR")]
        why = (errors or said or ["no reason given"])[-1].removeprefix("ERROR:").strip()
        raise SegfetchError(f"pip could not resolve the requirements: {redact_url(why)}")
    try:
        return [item["download_info"]["url"] for item in json.loads(proc.stdout)["install"]]
    except (ValueError, KeyError, TypeError):
        raise old_pip from None


def pip_install(
    python: str,
    fetched: Sequence[Fetched],
    pip_reqs: Sequence[str],
    pip_args: Sequence[str],
    quiet_stdout: bool = False,
) -> int:
    """Run the target pip on the verified files only: it never touches the network for them.
    ``quiet_stdout``: pip's output goes to stderr (stdout holds one JSON document)."""
    with tempfile.TemporaryDirectory(prefix="segfetch-") as tmp:
        link_into(fetched, Path(tmp))
        cmd = [
            python,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            tmp,
            *pip_args,
            *pip_reqs,
        ]
        out = sys.stderr if quiet_stdout else None
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out).returncode
