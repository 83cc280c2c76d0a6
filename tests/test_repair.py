import hashlib
import io
import itertools
import random
import struct
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segfetch.engine.download as engine
import segfetch.engine.repair as repair_module
from segfetch.engine.client import make_client
from segfetch.engine.options import Options
from segfetch.engine.ranges import RangeSet
from segfetch.engine.repair import damaged_ranges
from segfetch.engine.retry import RetryPolicy
from segfetch.testing.emulator import Emulator, Fault, Link
from segfetch.testing.wheelmaker import make_wheel

_DATE = (1980, 1, 1, 0, 0, 0)


def _members() -> list[tuple[str, bytes, int]]:
    rng = random.Random(7)
    text = "".join(f"line {i}: {rng.random()}\n" for i in range(20_000)).encode()
    return [
        ("a/first.bin", rng.randbytes(300_000), zipfile.ZIP_STORED),
        ("a/text.txt", text, zipfile.ZIP_DEFLATED),
        ("a/empty", b"", zipfile.ZIP_STORED),
        ("a/second.bin", rng.randbytes(300_000), zipfile.ZIP_STORED),
        ("a/small.py", b"print('hi')\n" * 10, zipfile.ZIP_DEFLATED),
        ("a/third.bin", rng.randbytes(300_000), zipfile.ZIP_DEFLATED),
    ]


def _write_zip(path: Path, stream: bool = False) -> Path:
    buf = io.BytesIO()

    class Unseekable(io.RawIOBase):  # makes zipfile write data descriptors (flag bit 3)
        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            return buf.write(b)

    with zipfile.ZipFile(Unseekable() if stream else buf, "w") as zf:
        for name, data, method in _members():
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = method
            zf.writestr(info, data)
    path.write_bytes(buf.getvalue())
    return path


def _layout(path: Path) -> tuple[dict[str, tuple[int, int, int]], int]:
    """name -> (span start, data start, span end), and the central directory's start."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        cd_start = zf.start_dir
    ends = [i.header_offset for i in infos[1:]] + [cd_start]
    out = {}
    for info, end in zip(infos, ends, strict=True):
        name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
        out[info.filename] = (
            info.header_offset,
            info.header_offset + 30 + name_len + extra_len,
            end,
        )
    return out, cd_start


def _flip(good: Path, bad: Path, *offsets: int) -> bytes:
    data = bytearray(good.read_bytes())
    for o in offsets:
        data[o] ^= 0xFF
    bad.write_bytes(data)
    return bytes(data)


def _repaired_ok(good: Path, bad: bytes, ranges: list[tuple[int, int]]) -> bool:
    """Copying the good bytes over the ranges restores the file: what a re-fetch would do."""
    fixed, original = bytearray(bad), good.read_bytes()
    for start, end in ranges:
        fixed[start:end] = original[start:end]
    return hashlib.sha256(fixed).digest() == hashlib.sha256(original).digest()


@pytest.fixture(scope="module", params=["seekable", "streamed"])
def archive(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Six members; "streamed" ones carry their CRC and sizes in data descriptors."""
    folder = tmp_path_factory.mktemp("zip")
    return _write_zip(folder / "multi.zip", stream=request.param == "streamed")


def test_intact_archive_and_wheel_have_nothing_damaged(archive: Path, tmp_path: Path) -> None:
    assert damaged_ranges(archive) == []
    assert damaged_ranges(archive, size=archive.stat().st_size) == []
    assert damaged_ranges(make_wheel(tmp_path, "demo", "1.0", payload=300_000)) == []


@pytest.mark.parametrize("name", ["a/first.bin", "a/text.txt", "a/second.bin", "a/third.bin"])
def test_flip_in_member_data_gives_that_member_span(
    archive: Path, tmp_path: Path, name: str
) -> None:
    spans, _ = _layout(archive)
    start, data, end = spans[name]
    offset = (data + end) // 2
    bad = _flip(archive, tmp_path / "bad.zip", offset)
    ranges = damaged_ranges(tmp_path / "bad.zip")
    assert ranges == [(start, end)]
    assert end - start < archive.stat().st_size / 2
    assert ranges is not None and _repaired_ok(archive, bad, ranges)


def test_flip_in_wheel_members(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "demo", "1.0", payload=300_000, requires=["x>=1"])
    spans, _ = _layout(whl)
    for name in ["demo/data.bin", "demo-1.0.dist-info/METADATA"]:
        start, data, end = spans[name]
        bad = _flip(whl, tmp_path / "bad.whl", data + 5)
        assert damaged_ranges(tmp_path / "bad.whl") == [(start, end)]
        assert _repaired_ok(whl, bad, [(start, end)])
    start, _, end = spans["demo-1.0.dist-info/METADATA"]
    assert end - start < 1000  # a small member costs a small re-fetch


def test_flip_in_local_header_name_gives_its_span_and_the_directory(
    archive: Path, tmp_path: Path
) -> None:
    spans, cd_start = _layout(archive)
    start, _, end = spans["a/second.bin"]
    bad = _flip(archive, tmp_path / "bad.zip", start + 30 + 2)
    ranges = damaged_ranges(tmp_path / "bad.zip")
    # Local header and central entry disagree; either may be the damaged copy.
    size = archive.stat().st_size
    assert ranges == [(start, end), (cd_start, size)]
    assert end - start + size - cd_start < size / 2
    assert _repaired_ok(archive, bad, ranges)


def test_flip_in_central_crc_is_placed_in_the_directory(archive: Path, tmp_path: Path) -> None:
    _, cd_start = _layout(archive)
    bad = _flip(archive, tmp_path / "bad.zip", cd_start + 16)  # the first entry's CRC-32
    ranges = damaged_ranges(tmp_path / "bad.zip")
    assert ranges is not None and ranges[-1] == (cd_start, archive.stat().st_size)
    assert _repaired_ok(archive, bad, ranges)


@pytest.mark.parametrize("where", ["entry signature", "name length", "eocd count", "eocd offset"])
def test_flip_that_breaks_the_directory_gives_none(
    archive: Path, tmp_path: Path, where: str
) -> None:
    _, cd_start = _layout(archive)
    eocd = archive.stat().st_size - 22
    offset = {
        "entry signature": cd_start + 46 + len("a/first.bin"),  # the second entry's
        "name length": cd_start + 28,
        "eocd count": eocd + 10,
        "eocd offset": eocd + 16,
    }[where]
    _flip(archive, tmp_path / "bad.zip", offset)
    assert damaged_ranges(tmp_path / "bad.zip") is None


def test_two_flips_give_two_spans_merged_when_adjacent(archive: Path, tmp_path: Path) -> None:
    spans, _ = _layout(archive)
    first, text, second = spans["a/first.bin"], spans["a/text.txt"], spans["a/second.bin"]
    bad = _flip(archive, tmp_path / "bad.zip", first[1] + 9, second[1] + 9)
    assert damaged_ranges(tmp_path / "bad.zip") == [(first[0], first[2]), (second[0], second[2])]
    bad = _flip(archive, tmp_path / "bad.zip", first[1] + 9, text[1] + 9)
    ranges = damaged_ranges(tmp_path / "bad.zip")
    assert ranges == [(first[0], text[2])]
    assert _repaired_ok(archive, bad, ranges)


def test_truncated_missing_or_wrong_size_gives_none(archive: Path, tmp_path: Path) -> None:
    raw = archive.read_bytes()
    for cut in (len(raw) - 1, len(raw) - 30, len(raw) // 2, 10, 0):
        (tmp_path / "cut.zip").write_bytes(raw[:cut])
        assert damaged_ranges(tmp_path / "cut.zip") is None
    assert damaged_ranges(archive, size=len(raw) + 1) is None
    assert damaged_ranges(tmp_path / "absent.zip") is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_single_flip_is_located_or_given_up_on(archive: Path, data: st.DataObject) -> None:
    spans, cd_start = _layout(archive)
    size = archive.stat().st_size
    # Headers, descriptors and the directory are a few hundred bytes of a 1 MB file: aim there.
    boundary = st.sampled_from([s for s, _, _ in spans.values()] + [cd_start])
    near = st.tuples(boundary, st.integers(-40, 80)).map(lambda t: min(max(sum(t), 0), size - 1))
    offset = data.draw(st.integers(0, size - 1) | st.integers(cd_start, size - 1) | near)
    bad_path = archive.with_name("flipped.zip")
    bad = _flip(archive, bad_path, offset)
    ranges = damaged_ranges(bad_path)
    if ranges is None or ranges == []:
        # Only the directory can be unparseable or hold bytes no CRC covers (attributes).
        # A single flipped byte in member data always changes its CRC-32.
        assert offset >= cd_start
        return
    assert ranges == sorted(ranges)
    assert all(0 <= s < e <= size for s, e in ranges)
    assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(ranges))
    assert any(s <= offset < e for s, e in ranges)
    assert _repaired_ok(archive, bad, ranges)


# -- over the wire: a flipped byte in a zip costs its member, not the file ---------------------


def _asked(request: httpx.Request) -> tuple[int, int]:
    """[start, end) of a request's bounded Range header."""
    first, _, last = request.headers["range"].removeprefix("bytes=").partition("-")
    return int(first), int(last) + 1


async def test_flipped_byte_in_a_zip_refetches_only_that_member_over_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip of 40 members of 100 kB, one byte flipped on the way: the sha256 fails, and
    the requests made after it are exactly the damaged member's bytes.

    The repair's requests are told from the first pass's by order, not by length (short
    work-stealing requests of the first pass look like them): the client records each
    request as it leaves, and damaged_ranges notes how many had left when it was asked."""
    rng = random.Random(7)
    source = tmp_path / "source.whl"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_STORED) as zf:
        for i in range(40):
            zf.writestr(f"pkg/part{i:02}.bin", rng.randbytes(100_000))
    wheel = source.read_bytes()
    spans, _ = _layout(source)
    members = {(start, end) for start, _, end in spans.values()}

    requests: list[httpx.Request] = []
    asked: list[tuple[int, list[tuple[int, int]] | None, bytes]] = []  # (requests, ranges, part)

    async def on_request(request: httpx.Request) -> None:
        requests.append(request)

    def spy(path: Path, size: int | None = None) -> list[tuple[int, int]] | None:
        ranges = damaged_ranges(path, size)
        asked.append((len(requests), ranges, path.read_bytes()))
        return ranges

    monkeypatch.setattr(repair_module, "damaged_ranges", spy)
    link = Link(rate=8 << 20, faults=(Fault("flip", every=300_000, limit=1),))
    dest = tmp_path / "out" / "out.whl"
    dest.parent.mkdir()
    options = Options(4, 64 * 1024, 30.0, RetryPolicy(max_tries=6, base=0.01, cap=0.05))
    sha = hashlib.sha256(wheel).hexdigest()
    async with Emulator({"/pkg.whl": wheel}, link=link) as emu, make_client(4, 30.0) as client:
        client.event_hooks = {"request": [on_request], "response": []}
        result = await engine.download(
            emu.url("/pkg.whl"), dest, options, sha256=sha, client=client
        )
    assert dest.read_bytes() == wheel
    assert list(dest.parent.iterdir()) == [dest]
    assert [e["fault"] for e in emu.log].count("flip") == 1

    # Asked once, after the first pass: one member's span, the one with the flipped byte.
    assert len(asked) == 1, [a[:2] for a in asked]
    first_pass, ranges, part = asked[0]
    assert ranges is not None and len(ranges) == 1 and ranges[0] in members, ranges
    start, end = ranges[0]
    diff = [i for i in range(start, end) if part[i] != wheel[i]]
    assert len(diff) == 1 and part[:start] == wheel[:start] and part[end:] == wheel[end:]
    assert result.restarts == 0 and result.repaired == end - start

    # The repair: requests sent after the check, with If-Range, inside the span, covering it.
    repair = requests[first_pass:]
    assert repair and all("if-range" in r.headers for r in repair)
    spans_asked = [_asked(r) for r in repair]
    assert all(start <= a < b <= end for a, b in spans_asked), (ranges, spans_asked)
    assert RangeSet(spans_asked) == RangeSet([(start, end)])
    # (Which of them leaves first is not fixed: the size being known, the other connections
    # ask for the rest of the gap beside the request for its start.)
    # On the server: the file sent about once, plus the member.
    file_gets: list[dict[str, Any]] = [
        e for e in emu.log if e["path"] == "/pkg.whl" and e["method"] == "GET"
    ]
    served = sum(e["sent"] for e in file_gets)
    assert served - len(wheel) < len(wheel) * 0.1, served
    # benchmarks/reliability.py reads this line (pytest -s) for docs/reliability.md.
    print(f"repair: {end - start} of {len(wheel)} bytes fetched again; {served} sent in all")


def test_a_zip64_member_is_not_taken_for_damage(tmp_path: Path) -> None:
    """Its local header's sizes say "see the ZIP64 extra": not readable here, so the zip
    cannot be checked (None), never "damaged" (a valid zip fetched again and again)."""
    path = tmp_path / "z64.zip"
    with zipfile.ZipFile(path, "w") as z, z.open("a.bin", "w", force_zip64=True) as f:
        f.write(bytes(range(256)) * 400)
    assert damaged_ranges(path) is None
