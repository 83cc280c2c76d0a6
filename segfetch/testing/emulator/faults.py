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

BODY_FAULTS = frozenset({"reset", "close", "stall", "flip"})
REQUEST_FAULTS = frozenset({"ignore_range", "wrong_range", "status"})
FAULT_KINDS = BODY_FAULTS | REQUEST_FAULTS | {"change"}
_CUTS = ("reset", "close", "stall")  # body faults that end the body where they fire


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour. Body faults (reset, close, stall, flip) fire at a body offset
    drawn in [every/2, 3*every/2) (offset 0 if every is None) when the body is that long; request
    faults (ignore_range, wrong_range, status) fire with probability `rate`. ignore_range and
    wrong_range only apply to ranged requests (wrong_range not to one starting at 0)."""

    kind: str
    every: int | None = None
    rate: float = 1.0
    status: int = 503
    retry_after: str | None = "1"
    after: int = 0  # only requests with index >= after on that path (0-based, all methods)
    limit: int | None = None  # at most this many firings server-wide
    stall_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.every is not None and self.every <= 0:
            raise ValueError("Fault.every must be positive")


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


@dataclass
class Plan:
    """What one response will do, after the faults have been drawn."""

    status: int
    start: int
    end: int
    content_range: str | None = None
    fault: Fault | None = None  # the fault that fired, if any
    fault_at: int = -1  # body offset of a body fault

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
            if f.kind == "change" or index < f.after:
                continue
            if f.limit is not None and self.fired[f] >= f.limit:
                continue
            if f.kind in REQUEST_FAULTS:
                if plan.fault is not None or rng.random() >= f.rate:
                    continue
                if f.kind == "status":
                    plan.fault = f
                    self.fired[f] += 1
                    return plan
                if f.kind == "ignore_range" and asked:
                    plan = Plan(200, 0, size, None, f)
                elif f.kind == "wrong_range" and asked and start > 0:
                    s, t = start - 1, end - 1  # same length, one byte early
                    plan = Plan(206, s, t, f"bytes {s}-{t - 1}/{size}", f)
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
