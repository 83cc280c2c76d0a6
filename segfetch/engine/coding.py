"""The content codings of an answer, and the body of a whole-file answer sent with one though
none was asked for (Apache's ``SetOutputFilter DEFLATE`` with ``force-gzip``, a proxy or CDN
that compresses everything) decoded as it arrives, as aria2c does. Pure: zlib, no I/O.

Ranges of such an answer address the compressed bytes, so it is only ever used whole and
from its first byte (whole.py); a 206 with a coding stays refused (rules.py)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

PIECE = 1024 * 1024  # the most decoded bytes held at once: a small gzip may decode to GBs
GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # the header says which
RAW_DEFLATE = -zlib.MAX_WBITS  # "deflate" as some servers (old IIS) send it: no zlib header
HEAD = 1024  # bytes of a "deflate" body kept until it decodes, to read them again as raw

# Content-Encoding values that name no coding: "none" is what PHP download scripts send to
# keep mod_deflate off (curl and aria2c take those bytes as they are), "binary" another such.
NO_CODING = frozenset({"", "identity", "none", "binary"})
# A gzip file labelled gzip (Apache's "AddEncoding x-gzip .gz", an S3 object's metadata):
# the label says what the file is, not a coding applied on the way; pip, curl and aria2c
# keep those bytes as they are (an sdist's sha256 is of them).
GZIP_FILE = (".gz", ".tgz")
# Codings a whole-file answer may come in though identity was asked, decoded as it arrives
# (Decoder), by the name the decoder knows them by.
DECODED = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


def codings(headers: Mapping[str, str], name: str) -> list[str]:
    """The content codings of an answer's body, in the order applied (none for a gzip
    file labelled gzip: GZIP_FILE)."""
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    found = [c for c in (c.strip() for c in encoding.split(",")) if c not in NO_CODING]
    if found in (["gzip"], ["x-gzip"]) and urlsplit(name).path.lower().endswith(GZIP_FILE):
        return []
    return found


def decodable(headers: Mapping[str, str], name: str) -> str | None:
    """The coding to decode of an answer in one coding segfetch decodes; None for any other
    (whether it is all of the file is for the rules to say)."""
    found = codings(headers, name)
    return DECODED.get(found[0]) if len(found) == 1 else None


class Damaged(ValueError):
    """A coded stream that is not what it says (cut short, or damaged): worth another try."""


class Decoder:
    """``feed`` the body's bytes, take the decoded pieces; ``end`` once the body ended.
    Damaged, its message for the user, for a stream that is not what it says.
    ``coding``: "gzip" (several gzip members end to end are one stream) or "deflate"."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._z = zlib.decompressobj(GZIP_OR_ZLIB)
        # What came until a byte decoded: read again as raw deflate ("deflate" as old IIS
        # sends it), then as the file itself (the label is wrong: an S3 object's metadata,
        # a CDN rule; curl, wget and pip keep such bytes as they are, and so does this).
        self._head: bytes | None = b""
        self._again = [RAW_DEFLATE] if coding == "deflate" else []
        self.plain = False  # the label was wrong: the bytes are passed on as they came

    def feed(self, data: bytes | memoryview) -> Iterator[bytes]:
        data = bytes(data)
        if self.plain:
            yield data
            return
        if self._head is not None:
            self._head = self._head + data if len(self._head) < HEAD else None
        while True:
            if self._z.eof:
                if self.coding == "gzip":
                    data = data.lstrip(b"\0")  # zeros may pad a gzip stream (as gzip reads it)
                if not data:
                    return
                if self.coding != "gzip":
                    raise Damaged(f"its {self.coding} stream has bytes after its end")
                self._z = zlib.decompressobj(GZIP_OR_ZLIB)  # the next gzip member
            try:
                out = self._z.decompress(data, PIECE)
            except zlib.error as exc:
                if self._head is not None and self._again:
                    data, self._z = self._head, zlib.decompressobj(self._again.pop())
                    continue
                if self._head is None or _looks_coded(self._head, self.coding):
                    raise Damaged(f"its {self.coding} stream is damaged ({exc})") from None
                data, self._head, self.plain = self._head, None, True
                yield data
                return
            if out:
                self._head = None
                yield out
            data = self._z.unused_data if self._z.eof else self._z.unconsumed_tail
            if not data and len(out) < PIECE:  # (a full piece: more may be held inside)
                return

    def end(self) -> bytes:
        """The body ended: so must the stream (else it was cut short). What is still held:
        a body too short to fail, that never began as its coding does (an empty file
        labelled gzip), is the file itself, as for a longer one."""
        if self._z.eof or self.plain:
            return b""
        if self._head is not None and not _looks_coded(self._head, self.coding):
            self.plain = True
            return self._head
        raise Damaged(f"its {self.coding} stream ended before its end")


def _looks_coded(head: bytes, coding: str) -> bool:
    """Whether bytes begin as the coding does (then a failure to decode them is damage, not
    a wrong label): a gzip member's two bytes (or the first of them), or for "deflate" a
    zlib header too. (Two bytes of text are a zlib header one time in 31: "x = 1".)"""
    if head[:2] == b"\x1f\x8b" or head == b"\x1f":
        return True
    zlib_header = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return coding == "deflate" and zlib_header
