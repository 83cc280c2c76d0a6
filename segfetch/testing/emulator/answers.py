"""The shape of an answer, once its faults are drawn: the validators a node sends (node_etag,
weak ETags), the headers of a file's answer (plain, multipart/byteranges, gzip-encoded), and
the small answers given instead of the file (a captive portal's page, a wrong 416). No
sockets."""

from __future__ import annotations

import hashlib
import random
import zlib

from segfetch.testing.emulator.faults import Fault, Link, Plan
from segfetch.testing.emulator.files import Source

Headers = list[tuple[str, str]]

PORTAL_TYPE = "text/html; charset=utf-8"
PORTAL_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Welcome to the network</title></head>\n"
    b"<body><h1>Welcome</h1><p>Please accept the terms of use to go online.</p>\n"
    b'<form method="post" action="/portal/accept"><button>Accept</button></form>\n'
    b"</body></html>\n"
)


def node_of(link: Link, conn: int, fault: Fault) -> int:
    """The node behind the load balancer that connection `conn` reached (seeded)."""
    return random.Random(f"{link.seed}:{conn}:node_etag").randrange(fault.nodes)


def node_etag(etag: str, node: int) -> str:
    """Node `node`'s ETag for the bytes whose ETag is `etag` (node 0 sends `etag` itself)."""
    if node == 0:
        return etag
    return '"' + hashlib.sha256(f"{etag}:{node}".encode()).hexdigest()[:24] + '"'


def node_validators(link: Link, src: Source, conn: int) -> Headers:
    """ETag and Last-Modified, as the link sends them on connection `conn`."""
    out: Headers = []
    if link.etag:
        etag = src.etag
        if (f := link.standing("node_etag")) is not None:
            etag = node_etag(etag, node_of(link, conn, f))
        out.append(("ETag", "W/" + etag if link.weak_etag else etag))
    if link.last_modified:
        out.append(("Last-Modified", src.last_modified))
    return out


def other_node(link: Link, src: Source, conn: int, if_range: str | None) -> bool:
    """Whether If-Range names the ETag another node sends for these very bytes."""
    f = link.standing("node_etag")
    if f is None or if_range is None or not link.etag:
        return False
    mine = node_etag(src.etag, node_of(link, conn, f))
    tags = {node_etag(src.etag, n) for n in range(f.nodes)} - {mine}
    return if_range.strip() in tags


def boundary(link: Link) -> str:
    return "segfetch-" + hashlib.sha256(f"{link.seed}:boundary".encode()).hexdigest()[:20]


def file_headers(link: Link, plan: Plan, validators: Headers) -> Headers:
    """The headers of a file's answer; a multipart plan gets its part's head and tail."""
    length = plan.end - plan.start
    content_type = "application/octet-stream"
    if plan.shape == "multipart":
        b = boundary(link)
        plan.prefix = (
            f"--{b}\r\nContent-Type: {content_type}\r\nContent-Range: {plan.content_range}\r\n\r\n"
        ).encode()
        plan.suffix = f"\r\n--{b}--\r\n".encode()
        content_type = f"multipart/byteranges; boundary={b}"
        length += len(plan.prefix) + len(plan.suffix)
    headers = [("Content-Type", content_type), ("Accept-Ranges", "bytes")]
    if plan.shape == "gzip_range":
        # Compressed on the fly, as a misconfigured server does: chunked, no length.
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
    else:
        headers.append(("Content-Length", str(length)))
    headers += validators
    if plan.content_range is not None and plan.shape != "multipart":
        headers.append(("Content-Range", plan.content_range))
    return headers


class Encoder:
    """What goes on the wire for a body's bytes: gzip for a gzip_range plan, else the bytes."""

    def __init__(self, plan: Plan) -> None:
        self._gzip = zlib.compressobj(wbits=31) if plan.shape == "gzip_range" else None

    def encode(self, data: bytes, last: bool) -> bytes:
        if self._gzip is None:
            return data
        out = self._gzip.compress(data)
        return out + self._gzip.flush() if last else out


def instead(plan: Plan, validators: Headers) -> tuple[int, Headers, bytes] | None:
    """An answer given instead of the file (portal, wrong_416): status, headers, body."""
    if plan.kind == "portal":
        headers = [("Content-Type", PORTAL_TYPE), ("Cache-Control", "no-store")]
        return 200, headers, PORTAL_PAGE
    if plan.kind == "wrong_416":
        headers = [("Content-Type", "text/plain"), ("Content-Range", "bytes */0"), *validators]
        return 416, headers, b"416 Range Not Satisfiable\n"
    return None
