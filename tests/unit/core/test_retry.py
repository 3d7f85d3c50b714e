"""RetryPolicy: a pure function from (error, attempts, rate-limit waits) to a delay or giving up."""

from __future__ import annotations

import random

import pytest

from mlconnector.errors import (
    AuthenticationError,
    ConfigError,
    ConnectorError,
    FrozenRecordError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RemoteValidationError,
    TransientError,
)
from mlconnector.http.retry import RetryPolicy, full_jitter


def test_backoff_is_exactly_exponential_without_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, multiplier=2.0, max_delay=1000)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_backoff_honours_another_multiplier() -> None:
    policy = RetryPolicy(base_delay=1.0, multiplier=3.0, max_delay=1000)
    assert [policy.backoff(n) for n in range(1, 5)] == [1.0, 3.0, 9.0, 27.0]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, multiplier=2.0, max_delay=10.0)
    assert [policy.backoff(n) for n in range(4, 9)] == [4.0, 8.0, 10.0, 10.0, 10.0]
    # A huge attempt number does not overflow into nonsense.
    assert policy.backoff(500) == 10.0


def test_injected_jitter_gives_exact_delays() -> None:
    seen: list[float] = []

    def half(delay: float) -> float:
        seen.append(delay)
        return delay / 2

    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=half)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]
    # Jitter sees the capped delay, never more than the cap.
    assert seen == [1.0, 2.0, 4.0, 5.0]


def test_jitter_cannot_exceed_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=lambda d: d * 10)
    assert policy.backoff(1) == 5.0


def test_full_jitter_replays_a_seeded_random_source() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=full_jitter(random.Random(7)))
    reference = random.Random(7)
    expected = [reference.uniform(0.0, d) for d in (1.0, 2.0, 4.0, 8.0)]
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == expected


@pytest.mark.parametrize(
    "error",
    [TransientError("503"), InvalidResponseError("garbage")],
    ids=["transient", "invalid-response"],
)
def test_retryable_errors_back_off_until_max_attempts(error: ConnectorError) -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=0.5)
    delays = [policy.next_delay(error, attempts=n, rate_limit_waits=0) for n in (1, 2, 3, 4)]
    assert delays == [0.5, 1.0, 2.0, None]


def test_retry_after_wins_over_a_shorter_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5)
    error = TransientError("503", status=503, retry_after=30.0)
    assert policy.next_delay(error, attempts=1, rate_limit_waits=0) == 30.0


def test_longer_backoff_is_kept_when_retry_after_is_shorter_on_a_5xx() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=60)
    error = TransientError("503", status=503, retry_after=1.0)
    assert policy.next_delay(error, attempts=4, rate_limit_waits=0) == 4.0


def test_rate_limit_waits_exactly_retry_after_even_when_shorter_than_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5, jitter=lambda d: d * 0.9)
    error = RateLimitedError("429", status=429, retry_after=0.25)
    assert policy.next_delay(error, attempts=4, rate_limit_waits=0) == 0.25
    # No jitter on a server-given wait: the server resets its window at that instant.
    assert (
        policy.next_delay(RateLimitedError("429", retry_after=17.0), attempts=0, rate_limit_waits=3)
        == 17.0
    )


def test_rate_limit_without_retry_after_falls_back_to_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5)
    error = RateLimitedError("429", status=429)
    assert policy.next_delay(error, attempts=2, rate_limit_waits=0) == policy.backoff(3) == 2.0


def test_rate_limits_do_not_count_against_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=2, max_rate_limit_waits=50)
    error = RateLimitedError("429", retry_after=5.0)
    # attempts is already at the maximum: a 5xx would give up, a 429 still waits.
    assert policy.next_delay(TransientError("503"), attempts=2, rate_limit_waits=0) is None
    assert policy.next_delay(error, attempts=2, rate_limit_waits=0) == 5.0
    assert policy.next_delay(error, attempts=2, rate_limit_waits=49) == 5.0


def test_rate_limit_waits_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=5, max_rate_limit_waits=3)
    error = RateLimitedError("429", retry_after=5.0)
    delays = [policy.next_delay(error, attempts=0, rate_limit_waits=n) for n in range(5)]
    assert delays == [5.0, 5.0, 5.0, None, None]


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("401", status=401),
        PermissionDeniedError("403", status=403),
        NotFoundError("404", status=404),
        RemoteValidationError("422", status=422),
        FrozenRecordError("shipped"),
        ConfigError("bad key"),
        ConnectorError("base"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_retryable_errors_give_up_at_once(error: ConnectorError) -> None:
    policy = RetryPolicy()
    assert policy.next_delay(error, attempts=0, rate_limit_waits=0) is None
    assert policy.next_delay(error, attempts=1, rate_limit_waits=0) is None
