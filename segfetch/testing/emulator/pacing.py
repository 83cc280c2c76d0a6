"""Pacing: virtual-scheduling token buckets (tat = max(tat, now) + n / rate), chunks of about
rate x 10 ms, and the round-trip time."""

from __future__ import annotations

import trio

_CHUNK_MIN, _CHUNK_MAX = 1024, 64 * 1024
_SLACK = 0.05  # a bucket this far behind `now` restarts from now (idle); less is timer overshoot


def chunk_size(*rates: float | None) -> int:
    """Bytes per write: about 10 ms at the slowest of the rates set (None or 0: unpaced)."""
    set_rates = [r for r in rates if r]
    if not set_rates:
        return _CHUNK_MAX
    return max(_CHUNK_MIN, min(_CHUNK_MAX, int(min(set_rates) * 0.01)))


def reserve(tat: float, n: int, rate: float, now: float) -> float:
    """Virtual scheduling: the time by which n more bytes may have been sent.

    A bucket that fell behind by less than _SLACK keeps its virtual time, so sleep overshoot
    is made up on the next chunk instead of adding up; further behind, the link was idle.
    """
    if tat < now - _SLACK:
        tat = now
    return tat + n / rate


class Bucket:
    """One token bucket: per connection, or shared by all of them."""

    def __init__(self) -> None:
        self.tat = 0.0  # theoretical arrival time

    async def take(self, n: int, rate: float | None) -> None:
        """Wait until n more bytes may go at `rate`; at once (no checkpoint) if it is not set."""
        if rate:
            self.tat = reserve(self.tat, n, rate, trio.current_time())
            await trio.sleep_until(self.tat)


async def pace(
    n: int, rate: float | None, shared_rate: float | None, own: Bucket, shared: Bucket
) -> None:
    await own.take(n, rate)
    # Reserved only after the per-connection wait, so a waiting connection does not hold
    # shared bandwidth it cannot use yet.
    await shared.take(n, shared_rate)


async def round_trip(rtt: float) -> None:
    if rtt:
        await trio.sleep(rtt)
