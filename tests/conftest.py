from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_settings(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the user's segfetch config or cache (subprocesses inherit this)."""
    home: Path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SEGFETCH_CONFIG", str(home / "config.json"))
    monkeypatch.setenv("SEGFETCH_CACHE_DIR", str(home / "cache"))
