"""A warm run asks the index for nothing it already holds: the METADATA of a wheel in the
cache is read from the wheel, not asked for as a ``.metadata`` file (which a mirror without
PEP 658 files answers with a 404, one request and connection per wheel, every run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segfetch.engine.client import make_client
from segfetch.testing.emulator import Emulator, IndexOptions, Link
from segfetch.testing.wheelmaker import make_wheel, metadata_of
from segfetch.wheels.cache import Cache
from segfetch.wheels.install import Session

WHEEL = "sf_warm-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-warm", "1.0", requires=["sf-other>=1"], payload=20_000)
    return d


@pytest.mark.parametrize("upstream_metadata", [True, False])
async def test_metadata_of_a_cached_wheel_needs_no_request(
    tmp_path: Path, index_dir: Path, upstream_metadata: bool
) -> None:
    options = IndexOptions(metadata=upstream_metadata)
    async with (
        Emulator(index=index_dir, link=Link(), index_options=options) as emu,
        make_client(4, 30) as client,
    ):
        cold = Session(client, Cache(tmp_path / "cache"), [emu.index_url], budget=4)
        [f] = await cold.project("sf-warm")
        await cold.file_of(f)  # an earlier run installed it: the wheel is in the cache
        seen = len(emu.log)
        warm = Session(client, Cache(tmp_path / "cache"), [emu.index_url], budget=4)
        [f] = await warm.project("sf-warm")
        got = await warm.metadata_of(f)
    assert got == metadata_of(index_dir / WHEEL)
    asked = [e["path"] for e in emu.log[seen:]]
    assert asked == ["/simple/sf-warm/"], asked  # the page (no validators here), nothing else
