"""The link as configured (Link, Fault) and the seeded draws that decide what each response
does (Dice.plan): no sockets, no clock.

Every draw comes from random.Random(f"{seed}:{path}:{start}:{attempt}:{i}:{kind}"), one
generator per (request, fault), never from accept order or timing, so that a run is
reproducible.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from segfetch.testing.emulator.files import BLOCK

BODY_FAULTS = frozenset({"reset", "close", "stall", "flip", "slow"})
# Answers instead of the file: a status, a captive portal's page, a wrong 416.
ANSWER_FAULTS = frozenset({"status", "portal", "wrong_416"})
# Answers to a ranged request that are not the plain 206 asked for.
RANGE_FAULTS = frozenset(
    {
        "ignore_range",
        "wrong_range",
        "shifted_start",
        "short_range",
        "unknown_total",
        "multipart",
        "gzip_range",
    }
)
REQUEST_FAULTS = ANSWER_FAULTS | RANGE_FAULTS
# Not drawn per request: the file's version (change), the ETag of each node of a load balancer
# (node_etag), redirects to expiring signed URLs (expire).
STANDING_FAULTS = frozenset({"change", "node_etag", "expire"})
FAULT_KINDS = BODY_FAULTS | REQUEST_FAULTS | STANDING_FAULTS
# Faults that end the body where they fire (expire: the signed URL's byte allowance ran out).
_CUTS = ("reset", "close", "stall", "expire")


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour.

    Body faults (reset, close, stall, flip, slow) fire at a body offset drawn in
    [every/2, 3*every/2) (offset 0 if every is None) when the body is that long. From there
    a slow body goes on at `slow_rate` bytes/s at most: a connection that was fast at first
    (a server's buffers, a CDN's allowance for a new connection, a path that congests).

    Request faults fire with probability `rate`, on requests with index >= `after`:
      status         answer `status` (with Retry-After: `retry_after`) instead of the file
      portal         200 text/html, a captive portal's small page
      wrong_416      416 with `Content-Range: bytes */0` though the file is not empty; only
                     the request with index == `after` (the path's first, by default)
    and, on ranged requests only:
      ignore_range   200 with the whole file
      wrong_range    206 with the same length, one byte early (not for a range from 0)
      shifted_start  206 from an earlier start (by `every` bytes, else 1..4096 drawn), same
                     end (not for a range from 0)
      short_range    206 with at most `every` bytes (else 4096) from the start asked, as its
                     Content-Range says (a server that cuts its answers short)
      unknown_total  206 with `Content-Range: bytes a-b/*`; with `every`, of at most `every`
                     bytes (a server that cuts its answers short, and never says the size)
      multipart      206 as multipart/byteranges with one part (RFC 9110, 14.6)
      gzip_range     206 with Content-Encoding: gzip, the range's bytes compressed (chunked),
                     whatever Accept-Encoding asked

    Standing faults, not drawn per request:
      change         the (synthetic) file's content is version 1 from request `after` on
      node_etag      each connection reaches one of `nodes` nodes (seeded), which send
                     different ETags for the same bytes; If-Range with another node's ETag
                     gets the whole file (200)
      expire         the file's URL answers 302 to /signed/<token>/<path>; a token serves at
                     most `after` requests (0: any number) and about `every` body bytes (None:
                     any; drawn in [every/2, 3*every/2) per token; a body that would go past
                     it is cut there); an expired token answers 403, the file's URL gives a
                     new one
    """

    kind: str
    every: int | None = None
    rate: float = 1.0
    status: int = 503
    retry_after: str | None = "1"
    after: int = 0  # only requests with index >= after on that path (0-based, all methods)
    limit: int | None = None  # at most this many firings server-wide
    stall_seconds: float = 3600.0
    slow_rate: float = 16 * 1024  # slow: bytes/s from the fault's offset on
    nodes: int = 2  # node_etag: nodes behind the load balancer

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.every is not None and self.every <= 0:
            raise ValueError("every= must be more than 0")
        if self.nodes < 1:
            raise ValueError("nodes= must be at least 1")
        if self.slow_rate <= 0:
            raise ValueError("slow_rate= must be more than 0")
        if self.after < 0:
            raise ValueError("after= must not be negative")
        if not 200 <= self.status <= 599:  # (h11 fails on others at the first request)
            raise ValueError("status= must be a final HTTP status, 200 to 599")


@dataclass(frozen=True)
class Link:
    rate: float | None = None  # bytes/s per connection
    shared_rate: float | None = None  # bytes/s across all connections
    rtt: float = 0.0  # once per new connection, and once before each response's headers
    max_connections: int | None = None  # beyond: 503 + Retry-After: 1, then close
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    etag: bool = True
    last_modified: bool = True
    weak_etag: bool = False  # send the ETag as W/"...": unusable in If-Range (RFC 9110)

    def standing(self, kind: str) -> Fault | None:
        """The first fault of a standing kind (node_etag, expire), if the link has one."""
        return next((f for f in self.faults if f.kind == kind), None)


@dataclass
class Plan:
    """What one response will do, after the faults have been drawn."""

    status: int
    start: int
    end: int
    content_range: str | None = None
    fault: Fault | None = None  # the fault that fired, if any
    fault_at: int = -1  # body offset of a body fault
    shape: str | None = None  # "multipart" or "gzip_range": how the body is sent (answers)
    prefix: bytes = b""  # multipart: the part's head, before the bytes
    suffix: bytes = b""  # multipart: the closing delimiter, after them

    @property
    def kind(self) -> str | None:
        return self.fault.kind if self.fault is not None else None

    @property
    def cut(self) -> int:
        """Absolute offset of a body fault."""
        return self.start + self.fault_at

    @property
    def stop(self) -> int:
        """Where writing the body stops: the end, or where a reset, close or stall fires."""
        return self.cut if self.kind in _CUTS else self.end

    def flip_at(self, pos: int, n: int) -> int | None:
        """Index in the chunk [pos, pos + n) of the byte a flip fault inverts, if there."""
        if self.kind == "flip" and pos <= self.cut < pos + n:
            return self.cut - pos
        return None


def changed_version(index: int, faults: tuple[Fault, ...]) -> int:
    """The version a (synthetic) file has at the path's request number `index`."""
    changed = any(f.kind == "change" and index >= f.after for f in faults)
    return 1 if changed else 0


class Dice:
    """The draws, and the counts they depend on: requests per path, attempts per (path, range
    start), firings per fault (for Fault.limit)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # per path
        self.attempts: Counter[tuple[str, int]] = Counter()  # per (path, range start)
        self.fired: Counter[Fault] = Counter()

    def attempt(self, path: str, start: int) -> int:
        """The number of this attempt at (path, start), counting it."""
        n = self.attempts[path, start]
        self.attempts[path, start] += 1
        return n

    def plan(
        self,
        link: Link,
        path: str,
        index: int,
        attempt: int,
        asked: tuple[int, int] | None,
        size: int,
        method: str,
    ) -> Plan:
        """Draw the faults of one request for bytes `asked` ([start, end), None = all) of a file
        of `size` bytes; `index` is the request's number on the path."""
        start, end = asked or (0, size)
        plan = Plan(206 if asked else 200, start, end)
        if asked:
            plan.content_range = f"bytes {start}-{end - 1}/{size}"
        body_faults: list[tuple[int, int, Fault]] = []
        for i, f in enumerate(link.faults):
            # One generator per (request, fault): the draws do not depend on other faults.
            rng = random.Random(f"{link.seed}:{path}:{start}:{attempt}:{i}:{f.kind}")
            if f.kind in STANDING_FAULTS or index < f.after:
                continue
            if f.kind == "wrong_416" and index != f.after:
                continue
            if f.limit is not None and self.fired[f] >= f.limit:
                continue
            if f.kind in REQUEST_FAULTS:
                if plan.fault is not None or rng.random() >= f.rate:
                    continue
                if f.kind in ANSWER_FAULTS:
                    plan.fault = f
                    self.fired[f] += 1
                    return plan
                if asked:
                    plan = _misranged(f, rng, start, end, size) or plan
            else:
                at = 0 if f.every is None else int(f.every * (0.5 + rng.random()))
                body_faults.append((at, i, f))
        if plan.fault is not None:
            self.fired[plan.fault] += 1
        hits = [(at, i, f) for at, i, f in body_faults if at < plan.end - plan.start]
        if hits and method == "GET":
            # One body fault per response, the earliest; the log shows it rather than a
            # request fault that also fired (both count towards their limits).
            plan.fault_at, _, plan.fault = min(hits)
            self.fired[plan.fault] += 1
        return plan


def _misranged(f: Fault, rng: random.Random, start: int, end: int, size: int) -> Plan | None:
    """The answer of a range fault to a request for [start, end); None where it does not
    apply (a shift needs a range that does not start at 0)."""
    if f.kind == "ignore_range":
        return Plan(200, 0, size, None, f)
    if f.kind == "wrong_range" and start > 0:
        s, t = start - 1, end - 1  # same length, one byte early
        return Plan(206, s, t, f"bytes {s}-{t - 1}/{size}", f)
    if f.kind == "shifted_start" and start > 0:
        s = start - (min(start, f.every) if f.every else rng.randint(1, min(start, BLOCK)))
        return Plan(206, s, end, f"bytes {s}-{end - 1}/{size}", f)  # earlier start, same end
    if f.kind == "short_range":
        end = min(end, start + (f.every or BLOCK))
        return Plan(206, start, end, f"bytes {start}-{end - 1}/{size}", f)
    if f.kind == "unknown_total":
        end = min(end, start + f.every) if f.every else end
        return Plan(206, start, end, f"bytes {start}-{end - 1}/*", f)
    if f.kind in ("multipart", "gzip_range"):
        # Framed or encoded when sent (answers.py), even if a body fault also fires.
        return Plan(206, start, end, f"bytes {start}-{end - 1}/{size}", f, shape=f.kind)
    return None
