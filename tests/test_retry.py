import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine.retry import Budget, RetryPolicy, parse_retry_after


@given(st.integers(1, 60), st.integers(0, 2**32))
def test_backoff_grows_and_stays_in_bounds(failures: int, seed: int) -> None:
    policy = RetryPolicy(base=0.5, cap=8.0)
    d = policy.delay(failures, random.Random(seed))
    ceiling = min(8.0, 0.5 * 2 ** (failures - 1))
    assert ceiling / 2 <= d <= ceiling


def test_backoff_is_reproducible_from_the_rng() -> None:
    policy = RetryPolicy()
    a = [policy.delay(k, random.Random(7)) for k in range(1, 6)]
    b = [policy.delay(k, random.Random(7)) for k in range(1, 6)]
    assert a == b


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=30)
    rng = random.Random(0)
    assert policy.delay(1, rng, retry_after=3.0) == 3.0
    assert policy.delay(9, rng, retry_after=3600.0) == 30


def test_budget_renews_on_progress() -> None:
    budget = Budget(RetryPolicy(max_tries=3), random.Random(0))
    for _ in range(10):
        assert budget.fail() is not None
        assert budget.fail() is not None
        budget.progressed(1)
    assert budget.fail() is not None and budget.fail() is not None
    assert budget.fail() is None
    assert budget.failures == 3


def test_drop_after_progress_retries_at_once() -> None:
    policy = RetryPolicy(base=1.0, quick_retry_bytes=1000)
    budget = Budget(policy, random.Random(0))
    budget.progressed(1000)
    assert budget.fail() == 0.0  # a drop: reconnect now
    assert budget.fail() is not None  # no progress since: back off (two failures)
    assert (d := budget.fail()) is not None and d >= 0.5
    budget.progressed(10)
    assert (d := budget.fail()) is not None and d >= 0.5  # a trickle is not a drop
    budget.progressed(5000)
    assert budget.fail(retry_after=3.0) == 3.0  # the server's word wins


def test_parse_retry_after_seconds_and_date() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or result >= 0
