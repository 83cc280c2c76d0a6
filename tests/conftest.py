import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run (a red CI names a bug, not a dice roll); at a desk
# hypothesis keeps searching new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _own_settings(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the user's segfetch config or cache (subprocesses inherit this)."""
    home: Path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SEGFETCH_CONFIG", str(home / "config.json"))
    monkeypatch.setenv("SEGFETCH_CACHE_DIR", str(home / "cache"))
