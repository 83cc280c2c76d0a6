import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run (a red CI names a bug, not a dice roll); at a desk
# hypothesis keeps searching new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A suite started in the background (`cmd &` in a script, some CI runners) inherits SIGINT
# ignored, and so would every segfetch it starts: the tests of Ctrl-C would time out. A Python
# handler here is reset to the default in each child at exec, so they hear SIGINT as at a
# terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# So does SIGHUP under nohup (SIG_IGN survives exec): the tests of SIGHUP would see exit 0.
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _own_settings(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the user's segfetch config or cache (subprocesses inherit this)."""
    home: Path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SEGFETCH_CONFIG", str(home / "config.json"))
    monkeypatch.setenv("SEGFETCH_CACHE_DIR", str(home / "cache"))
    # Temporary folders of the commands a test starts: a run the test kills (SIGKILL leaves
    # no chance to clean up) leaves them in pytest's own folder, not in the machine's /tmp.
    (home / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    # Nor the machine's pip and uv settings (pip.conf here names extra indexes and
    # find-links) or their caches: each test's installers see only what it gives them.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("UV_CACHE_DIR", str(home / "uv-cache"))
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    for name in [n for n in os.environ if n.startswith("PIP_") and n != "PIP_CONFIG_FILE"]:
        monkeypatch.delenv(name)  # the machine's indexes, find-links, cert, proxy: none here
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


@pytest.fixture(scope="module")
def venv_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment with pip, for helpers.fresh to copy for each install."""
    path = tmp_path_factory.mktemp("template") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path
