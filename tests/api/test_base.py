"""The shared client base: retry policy, status mapping, transport failures."""

from __future__ import annotations

import httpx
import pytest

from api.base import (
    NO_RETRY,
    RetryPolicy,
    error_for_status,
    parse_retry_after,
    unavailable_from_transport,
)
from api.errors import AuthError, InvalidRequest, NotFound, RateLimited, Unavailable


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequest),
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (408, Unavailable),
        (409, InvalidRequest),
        (429, RateLimited),
        (500, Unavailable),
        (503, Unavailable),
    ],
)
def test_status_maps_to_meaning(status: int, expected: type[Exception]) -> None:
    error = error_for_status(status, "nope", vendor="v", code="c")
    assert type(error) is expected
    assert error.status == status
    assert "nope" in str(error)


def test_server_errors_leave_the_outcome_unknown() -> None:
    error = error_for_status(502, "bad gateway", vendor="v")
    assert isinstance(error, Unavailable)
    assert error.outcome_unknown is True


def test_rate_limit_keeps_retry_after() -> None:
    error = error_for_status(429, "slow", vendor="v", retry_after=3.0)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


def test_retry_policy_backs_off_within_bounds_and_gives_up() -> None:
    policy = RetryPolicy(retries=2, base_delay=0.5, max_delay=8.0)
    first = policy.delay(0)
    second = policy.delay(1)
    assert first is not None
    assert 0.25 <= first <= 0.5
    assert second is not None
    assert 0.5 <= second <= 1.0
    assert policy.delay(2) is None
    assert NO_RETRY.delay(0) is None


def test_retry_after_is_honoured_but_not_beyond_the_cap() -> None:
    policy = RetryPolicy(max_delay=8.0)
    assert policy.delay(0, retry_after=2.0) == 2.0
    # A vendor asking for minutes: give up now rather than hold a user that long.
    assert policy.delay(0, retry_after=120.0) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("3", 3.0), ("-4", 0.0), ("soon", None)],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_refused_connection_proves_nothing_was_sent() -> None:
    refused = unavailable_from_transport(httpx.ConnectError("refused"), vendor="v")
    assert refused.outcome_unknown is False
    timed_out = unavailable_from_transport(httpx.ReadTimeout("slow"), vendor="v")
    assert timed_out.outcome_unknown is True
    assert "timed out" in timed_out.message
