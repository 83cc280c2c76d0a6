"""Locate the damaged byte ranges of a zip (a wheel) whose sha256 came out wrong.

A proxy that flips bytes in one segment should cost that segment, not the whole file. Every zip
member carries a CRC-32 in the central directory, and its local header repeats most of the
central entry, so a member whose header disagrees or whose data fails its CRC can be re-fetched
alone:

    ranges = damaged_ranges(part)   # None: re-fetch everything; []: nothing found
    for start, end in ranges: ...   # re-fetch [start, end), then check the sha256 again

Not covered, so a flip there gives [] (with a wrong sha256 the caller must re-fetch the whole
file): the central directory's version-made-by, attributes, extra and comment fields, the local
extra field, bytes between members, and the archive comment. ZIP64 archives,
methods other than stored and deflate, and encrypted members give None.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, NamedTuple

import trio

from segfetch.engine.ranges import RangeSet
from segfetch.engine.store import PartFile, State

__all__ = ["damaged_ranges", "forget_damaged"]

# sig, disk, directory's disk, entries on this disk, entries, directory size, offset, comment
_EOCD = struct.Struct("<IHHHHIIH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_SIG, _LOCAL_SIG, _DESCRIPTOR_SIG = 0x02014B50, 0x04034B50, 0x08074B50
_STORED, _DEFLATED = 0, 8
_CHUNK = 1 << 20


class _Unlocatable(ValueError):
    """The archive's own index cannot be trusted, so no damage can be placed."""


class _Member(NamedTuple):
    offset: int  # of the local header
    name: bytes
    # version needed, flags, method, time, date, crc, compressed size, size: the fields the
    # local header repeats, in the same order.
    fields: tuple[int, ...]


def damaged_ranges(path: Path, size: int | None = None) -> list[tuple[int, int]] | None:
    """Half-open byte ranges of `path` (a zip) that must be fetched again, or None when the
    damage cannot be located (the end of central directory record or the central directory is
    unreadable or inconsistent, ZIP64, an unsupported member, or `size` is not the file's size),
    in which case the caller re-downloads the whole file.

    A member whose data fails its CRC gives its span: from its local header to the next member's
    (or to the central directory). When its local header (or data descriptor) disagrees with its
    central entry, either copy may be the damaged one, so the span of the central directory to
    the end of the file is added too (small). [] means every checked byte is sound; with a wrong
    sha256 the damage is where no check reaches, and the whole file must be fetched again.
    """
    try:
        with path.open("rb") as f:
            actual = os.fstat(f.fileno()).st_size
            if size is not None and size != actual:
                return None
            count, cd_start, cd_end = _end_record(f, actual)
            members = _central_directory(f, count, cd_start, cd_end)
            offsets = sorted(m.offset for m in members)
            if len(set(offsets)) != len(offsets) or (offsets and offsets[-1] >= cd_start):
                raise _Unlocatable("local header offsets overlap the central directory")
            ends = dict(zip(offsets, [*offsets[1:], cd_start], strict=True))
            damaged = RangeSet()
            for m in members:
                for start, end in _check(f, m, ends[m.offset], (cd_start, actual)):
                    damaged.add(start, end)
    except (OSError, ValueError, struct.error):
        return None
    return [(start, end) for start, end in damaged]


async def forget_damaged(part: PartFile, state: State | None) -> list[tuple[int, int]]:
    """Mark the ranges of a bad zip's failing members as missing in ``state`` (saved); []
    if none is found, or if the file came as one stream (no state: nothing to fetch in part)."""
    if state is None:
        return []
    holes = await trio.to_thread.run_sync(damaged_ranges, part.part, state.size) or []
    for start, end in holes:
        state.done.remove(start, end)
    if holes:
        part.save(state)
    return holes


def _end_record(f: BinaryIO, size: int) -> tuple[int, int, int]:
    """(entry count, central directory start and end) from the end of central directory record."""
    tail_start = max(0, size - _EOCD.size - 0xFFFF)  # the record plus the longest comment
    f.seek(tail_start)
    tail = f.read()
    pos = tail.rfind(b"PK\x05\x06")
    # The signature can occur inside a comment: the real record is the one whose comment ends
    # exactly at the end of the file.
    while pos >= 0:
        if len(tail) - pos >= _EOCD.size:
            eocd = _EOCD.unpack_from(tail, pos)
            if pos + _EOCD.size + eocd[7] == len(tail):
                break
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    else:
        raise _Unlocatable("no end of central directory record")
    _, disk, cd_disk, here, count, cd_size, cd_start, _ = eocd
    # ZIP64 puts its own record between the directory and this one, so it fails the last test.
    if disk or cd_disk or here != count or cd_start + cd_size != tail_start + pos:
        raise _Unlocatable("end of central directory record is inconsistent")
    return count, cd_start, cd_start + cd_size


def _central_directory(f: BinaryIO, count: int, start: int, end: int) -> list[_Member]:
    f.seek(start)
    cd = f.read(end - start)
    members: list[_Member] = []
    pos = 0
    for _ in range(count):
        h = _CENTRAL.unpack_from(cd, pos)  # struct.error when the directory is short
        if h[0] != _CENTRAL_SIG or h[13] != 0 or 0xFFFFFFFF in (h[8], h[9], h[16]):
            raise _Unlocatable("bad central directory entry (or ZIP64)")
        name = cd[pos + _CENTRAL.size : pos + _CENTRAL.size + h[10]]
        members.append(_Member(h[16], name, h[2:10]))
        pos += _CENTRAL.size + h[10] + h[11] + h[12]
    if pos != len(cd):
        raise _Unlocatable("central directory size does not match its entries")
    return members


_ZIP64 = 0xFFFFFFFF  # a size field that says "see the ZIP64 extra"


def _check(f: BinaryIO, m: _Member, end: int, central: tuple[int, int]) -> list[tuple[int, int]]:
    """The ranges to re-fetch for one member: none, its span, or its span and the directory."""
    span = (m.offset, end)
    f.seek(m.offset)
    h = _LOCAL.unpack(f.read(_LOCAL.size).ljust(_LOCAL.size, b"\0"))
    name = f.read(len(m.name))
    data = m.offset + _LOCAL.size + len(m.name) + h[10]
    local = h[1:9]
    if _ZIP64 in local[6:]:  # its sizes are in a ZIP64 extra field: not read here
        raise _Unlocatable("a ZIP64 member")
    if m.fields[1] & 8:  # CRC and sizes follow the data in a descriptor; the header may hold 0s
        f.seek(data + m.fields[6])
        d = struct.unpack("<4I", f.read(16).ljust(16, b"\0"))
        if local[5:] == (0, 0, 0):
            local = local[:5] + (d[1:] if d[0] == _DESCRIPTOR_SIG else d[:3])
    if (
        h[0] != _LOCAL_SIG
        or local != m.fields
        or h[9] != len(m.name)
        or name != m.name
        or data + m.fields[6] > end
    ):
        return [span, central]
    return [] if _data_ok(f, data, m.fields) else [span]


def _data_ok(f: BinaryIO, start: int, fields: tuple[int, ...]) -> bool:
    """Whether the member's data inflates to exactly its size and CRC, one chunk at a time."""
    _, flags, method, _, _, crc, csize, usize = fields
    if method not in (_STORED, _DEFLATED) or flags & 1:
        raise _Unlocatable("cannot check this member")  # encrypted, or bzip2/lzma/...
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if method == _DEFLATED else None
    f.seek(start)
    left, total, got = csize, 0, 0
    try:
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                return False
            left -= len(chunk)
            while chunk:  # max_length keeps a highly compressed member from filling memory
                if inflater is None:
                    out, chunk = chunk, b""
                else:
                    out = inflater.decompress(chunk, _CHUNK)
                    chunk = inflater.unconsumed_tail
                total += len(out)
                if total > usize:
                    return False
                got = zlib.crc32(out, got)
        if inflater is not None:
            out = inflater.flush()
            total += len(out)
            got = zlib.crc32(out, got)
            if not inflater.eof or inflater.unused_data:
                return False
    except zlib.error:
        return False
    return total == usize and got == crc
