import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine.retry import Budget, RetryPolicy, parse_retry_after

# Every test here holds the default policy to its numbers, written out: 0.25 s doubling to
# 10 s with equal jitter, 5 tries without progress, Retry-After capped at 120 s, a drop after
# 64 KiB retried at once. (test_timing.py holds the engine to the same on the mock clock.)
KIB = 1024


@given(st.integers(1, 60), st.integers(0, 2**32))
def test_backoff_grows_and_stays_in_bounds(failures: int, seed: int) -> None:
    d = RetryPolicy().delay(failures, random.Random(seed))
    ceiling = min(10.0, 0.25 * 2 ** (failures - 1))
    assert ceiling / 2 <= d <= ceiling


def test_backoff_is_reproducible_from_the_rng() -> None:
    policy = RetryPolicy()
    a = [policy.delay(k, random.Random(7)) for k in range(1, 6)]
    b = [policy.delay(k, random.Random(7)) for k in range(1, 6)]
    assert a == b


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy()
    rng = random.Random(0)
    assert policy.delay(1, rng, retry_after=3.0) == 3.0
    assert policy.delay(9, rng, retry_after=120.0) == 120.0
    assert policy.delay(9, rng, retry_after=3600.0) == 120.0


def test_budget_renews_on_progress() -> None:
    budget = Budget(RetryPolicy(), random.Random(0))
    for _ in range(10):  # four failures in a row, then a byte: it never gives up
        for _ in range(4):
            assert budget.fail() is not None
        budget.progressed(1)
    for _ in range(4):
        assert budget.fail() is not None
    assert budget.fail() is None  # the fifth in a row without a byte
    assert budget.failures == 5


def test_drop_after_progress_retries_at_once() -> None:
    budget = Budget(RetryPolicy(), random.Random(0))
    budget.progressed(64 * KIB)
    assert budget.fail() == 0.0  # a drop: reconnect now
    # no progress since: back off, as for a second failure
    assert (d := budget.fail()) is not None and 0.25 <= d <= 0.5
    budget.progressed(64 * KIB - 1)
    # a byte less is a trickle, not a drop: back off, as for a first failure
    assert (d := budget.fail()) is not None and 0.125 <= d <= 0.25
    budget.progressed(64 * KIB)
    assert budget.fail(retry_after=3.0) == 3.0  # the server's word wins


def test_parse_retry_after_seconds_and_date() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("9" * 400) == 10.0**9  # a float of 400 digits is inf
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or result >= 0
