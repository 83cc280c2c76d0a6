"""Retry policy: how long to wait, when to give up. Pure. (What is worth retrying at all:
failures.py.)

The budget counts failures in a row *without progress*: a retry that brought bytes renews
it, so a link that drops every 300 KB still completes, while a dead server runs out of
tries after a bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random
    from datetime import datetime

LONGEST_RETRY_AFTER = 10.0**9  # seconds: a longer one (999... digits) says no more


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 5  # tries in a row with no new byte before giving up
    base: float = 0.25  # first backoff, seconds
    cap: float = 10.0  # longest backoff, seconds
    max_retry_after: float = 120.0  # a longer Retry-After ends the download at once
    # A connection that brought this much before it failed was dropped, not refused:
    # reconnect at once, as a drop says nothing about the server being overloaded.
    quick_retry_bytes: int = 64 * 1024

    def delay(self, failures: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``failures`` (1-based)."""
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), self.max_retry_after)
        # "Equal jitter": half fixed, half random, so retries spread out yet never fire at once.
        ceiling = min(self.cap, self.base * 2.0 ** (failures - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Budget:
    """Tries of one segment: failures in a row without progress, and the wait before each."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self.failures = 0
        self.gained = 0  # bytes since the last failure

    def progressed(self, n: int) -> None:
        self.failures = 0
        self.gained += n

    def fail(self, retry_after: float | None = None) -> float | None:
        """Count a failure: seconds to wait before the next try, or None to give up."""
        self.failures += 1
        gained, self.gained = self.gained, 0
        if self.failures >= self.policy.max_tries:
            return None
        if retry_after is None and gained >= self.policy.quick_retry_bytes:
            return 0.0
        return self.policy.delay(self.failures, self.rng, retry_after)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        return min(float(value), LONGEST_RETRY_AFTER)  # (never "inf s" in a message)
    # (imported here: the parser loads this module, and `get` sends its first request
    # before they would be needed)
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
