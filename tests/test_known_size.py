"""A size known before the first answer (an index's PEP 700 size, a saved state, ``--size``):
every connection asks at once, and the first answer still has the last word. Over loopback
against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import one_line_error, segfetch

from segfetch.engine.download import download
from segfetch.engine.options import Options
from segfetch.engine.retry import RetryPolicy
from segfetch.engine.slots import Slots
from segfetch.errors import ServerError
from segfetch.testing.emulator import Emulator, Fault, Link, SyntheticFile

PATH = "/pkg.whl"
SIZE = 2_000_000
# The emulator waits this before each answer's head: the probe's cost in time; long, so that
# a loaded machine never takes as long to open four connections.
RTT = 1.0
OPTS = Options(connections=4, min_segment=64 * 1024, policy=RetryPolicy(max_tries=4, base=0.01))


def starts(emu: Emulator) -> list[float]:
    """When each GET of the file arrived, in order."""
    rows = [e for e in emu.log if e["path"] == PATH and e["method"] == "GET"]
    return sorted(float(str(e["t"])) for e in rows)


async def test_a_known_size_starts_every_connection_at_once(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=Link(rtt=RTT)) as emu:
        dest = tmp_path / "out.whl"
        result = await download(emu.url(PATH), dest, OPTS, size=SIZE, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH) and result.requests >= 4
        first = starts(emu)[:4]
        # All four asked before any answer could have come (each head waits one RTT).
        assert first[-1] - first[0] < RTT
        ranges = sorted(str(e["range"]) for e in emu.log)
        assert ranges[0] == "bytes=0-499999"  # the first request is a quarter, as the others

        emu.log.clear()
        (tmp_path / "out.whl").unlink()
        await download(emu.url(PATH), dest, OPTS, sha256=emu.sha256(PATH))
        later = starts(emu)
        # Without the size, the others wait for the first answer's head.
        assert later[1] - later[0] >= RTT


async def test_a_known_size_the_server_contradicts_fails_in_one_line(tmp_path: Path) -> None:
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        dest = tmp_path / "out.whl"
        with pytest.raises(ServerError) as failed:
            await download(emu.url(PATH), dest, OPTS, size=SIZE + 1)
        message = str(failed.value)
        assert "\n" not in message
        assert f"is {SIZE} bytes, but {SIZE + 1} were expected" in message
        assert not dest.exists()
        # Nothing of what the other connections received was written: no bytes, no state.
        assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", ["ignore_range", "unknown_total", "multipart"])
async def test_a_known_size_with_a_server_that_bends_ranges(tmp_path: Path, fault: str) -> None:
    """A 200 to the first request (one stream), a total of ``*`` (only an open-ended request
    learns the size: asked again the plain way), a multipart answer: each still gives the
    exact file."""
    link = Link(faults=(Fault(fault),))
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=link) as emu:
        dest = tmp_path / "out.whl"
        result = await download(emu.url(PATH), dest, OPTS, size=SIZE, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert result.size == SIZE and result.restarts == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.whl"]


async def test_get_size_option(tmp_path: Path) -> None:
    proc = await segfetch("get", "http://127.0.0.1:9/x.whl", "--size", "big")
    assert proc.returncode == 2 and "--size takes a count of bytes" in one_line_error(proc)
    proc = await segfetch("get", "http://127.0.0.1:9/x.whl", "--size", "1" + "0" * 27)
    assert proc.returncode == 2 and "is larger than any file" in one_line_error(proc)
    async with Emulator({PATH: SyntheticFile(SIZE)}) as emu:
        out = tmp_path / "x.whl"
        proc = await segfetch("get", emu.url(PATH), "-o", str(out), "--size", str(SIZE), "-q")
        assert proc.returncode == 0 and out.read_bytes() == emu.content(PATH)
        out.unlink()
        proc = await segfetch("get", emu.url(PATH), "-o", str(out), "--size", "7")
        line = one_line_error(proc)
        assert proc.returncode == 1 and "but 7 were expected (--size" in line
        assert "index and the file server" not in line  # (no index here)
        assert not out.exists()


async def test_with_no_place_free_a_known_size_is_one_request(tmp_path: Path) -> None:
    """In a shared budget every place of which is held, a file that starts is not cut into
    pieces waiting for places: its first request asks for all of it."""
    async with Emulator({PATH: SyntheticFile(SIZE)}, link=Link(rtt=0.05)) as emu:
        slots = Slots(2)
        await slots.acquire()  # another file's connection holds one of the two places
        dest = tmp_path / "out.whl"
        await download(emu.url(PATH), dest, OPTS, size=SIZE, slots=slots, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert [str(e["range"]) for e in emu.log] == [f"bytes=0-{SIZE - 1}"]

        emu.log.clear()
        dest.unlink()
        slots.release()  # a place is free: pieces again
        await download(emu.url(PATH), dest, OPTS, size=SIZE, slots=slots, sha256=emu.sha256(PATH))
        assert dest.read_bytes() == emu.content(PATH)
        assert min(str(e["range"]) for e in emu.log) == "bytes=0-499999"  # one of -n 4
