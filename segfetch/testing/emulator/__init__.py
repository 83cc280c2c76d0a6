"""A slow, flaky HTTP/1.1 file server on 127.0.0.1, for tests, benchmarks and `segfetch emulate`.

One trio task per connection, h11 on the server side. It serves synthetic files (deterministic
from the seed, never held whole in memory), in-memory bytes or files below a folder, honours
byte ranges and If-Range, paces every connection through token buckets, and injects faults
seeded from (seed, path, range start, attempt), so that a run is reproducible whatever the
accept order or the timing (node_etag alone draws per connection). Every request is logged
when its response ends.

Besides a bad link (resets, stalls, flipped bits) it misbehaves as real servers do (see
Fault): a captive portal's page, load-balanced nodes with ETags of their own, redirects to
signed URLs that expire, a range answered gzip-encoded or as multipart/byteranges, a wrong
416, `bytes a-b/*`, a range from an earlier start, ranges ignored or one byte off; and a file
may change between runs with no validator or only a weak ETag (Link.etag, last_modified,
weak_etag, and the change fault).

    async with Emulator({"/f.bin": SyntheticFile(8 << 20)}, link=Link(rate=256 << 10)) as emu:
        ...  # GET emu.url("/f.bin"); compare with emu.sha256("/f.bin"); inspect emu.log

With `index=folder` it is also a simple index of the wheels and sdists in that folder (PEP 503
HTML and PEP 691 JSON at emu.index_url, files at /files/<name>, PEP 658 metadata at
/files/<name>.metadata), shaped by IndexOptions; the files go through the same pacing and
faults, the pages do not.

From the command line, run `serve_forever(emulator)` under trio.run.

The modules, each importing only those above it:

    files    what is served: synthetic, in-memory and on-disk files, their validators
    faults   Link, Fault and the seeded draws: what each response does (no sockets)
    answers  the shape of an answer: node ETags, multipart and gzip bodies, portal pages
    signed   the expire fault's redirects to signed URLs that run out
    pacing   token buckets and the round-trip time
    ranges   Range and If-Range
    log      the request log
    index    the simple index's folder and IndexOptions
    pages    the simple index's pages (PEP 691 JSON, PEP 503 HTML)
    conn     one h11 connection: read a request, write a response
    server   Emulator: listening, connections, one request from the parts above
"""

from segfetch.testing.emulator.answers import PORTAL_PAGE
from segfetch.testing.emulator.faults import (
    ANSWER_FAULTS,
    BODY_FAULTS,
    FAULT_KINDS,
    RANGE_FAULTS,
    REQUEST_FAULTS,
    STANDING_FAULTS,
    Fault,
    Link,
)
from segfetch.testing.emulator.files import BLOCK, SyntheticFile, synthetic_bytes
from segfetch.testing.emulator.index import HASHES_IN, IndexOptions
from segfetch.testing.emulator.pages import HTML_TYPE, JSON_TYPE
from segfetch.testing.emulator.ranges import parse_range
from segfetch.testing.emulator.server import Emulator, serve_forever

__all__ = [
    "ANSWER_FAULTS",
    "BLOCK",
    "BODY_FAULTS",
    "FAULT_KINDS",
    "HASHES_IN",
    "HTML_TYPE",
    "JSON_TYPE",
    "PORTAL_PAGE",
    "RANGE_FAULTS",
    "REQUEST_FAULTS",
    "STANDING_FAULTS",
    "Emulator",
    "Fault",
    "IndexOptions",
    "Link",
    "SyntheticFile",
    "parse_range",
    "serve_forever",
    "synthetic_bytes",
]
