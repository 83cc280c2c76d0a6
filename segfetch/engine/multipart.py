"""The head of a single-part ``multipart/byteranges`` body (RFC 9110, 14.6): some servers
answer one range that way. Pure: bytes in, the part's headers and its first payload out."""

from __future__ import annotations

MAX_HEAD = 16 * 1024  # a part's head is a few lines; more is not a part


class PartHead:
    """Feed body bytes until ``feed`` returns the part's payload start (bytes, maybe empty);
    then ``headers`` holds the part's headers."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"--" + boundary
        self.headers: dict[str, str] = {}
        self._buf = b""

    def feed(self, data: bytes) -> bytes | None:
        self._buf += data
        start = self._buf.find(self.delimiter)
        end = self._buf.find(b"\r\n\r\n", start + len(self.delimiter)) if start >= 0 else -1
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise ValueError("no multipart part head within 16 KiB")
            return None
        lines = self._buf[start + len(self.delimiter) : end].decode("latin-1").split("\r\n")
        if lines and lines[0].strip():
            raise ValueError("malformed multipart boundary line")
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"malformed multipart header {line!r}")
            self.headers[key.strip().title()] = value.strip()
        return self._buf[end + 4 :]
