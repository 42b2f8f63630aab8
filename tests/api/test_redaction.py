"""No credential survives into a log line, whoever logs it."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import pytest

from api.redaction import EXPIRY_GRACE_SECONDS, SecretsFilter


@pytest.fixture
def redacting_logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    log = logging.getLogger("test.redaction")
    secrets = SecretsFilter()
    secrets.add("s3cr3t-access-token-value")
    log.addFilter(secrets)
    caplog.set_level(logging.DEBUG, logger="test.redaction")
    return log


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("HTTP Request: POST https://api.telegram.org/bot123456:AAE-xyz_9/sendMessage", "AAE"),
        ("HTTP Request: GET https://t.example/v1.0/token/refresh-abc123 200", "refresh-abc123"),
        ("sent Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        ("form grant_type=password&password=hunter22&scope=user", "hunter22"),
        ("POST https://s.example/identity/users/login?apiKey=k3y-abcdef 200", "k3y-abcdef"),
        ('{"access_token": "tok-999999", "expires_in": 7200}', "tok-999999"),
        ("token is s3cr3t-access-token-value here", "s3cr3t-access-token-value"),
    ],
)
def test_credentials_are_masked(
    redacting_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    message: str,
    secret: str,
) -> None:
    redacting_logger.info(message)
    assert secret not in caplog.text
    assert "***" in caplog.text


def test_masked_inside_tracebacks(
    redacting_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise RuntimeError("failed with s3cr3t-access-token-value")
    except RuntimeError:
        redacting_logger.exception("call failed")
    assert "s3cr3t-access-token-value" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_ordinary_text_is_left_alone(
    redacting_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    redacting_logger.info("repair %s moved to %s", "m1", "in progress")
    assert "repair m1 moved to in progress" in caplog.text


def test_overlapping_and_repeated_secrets_are_masked_whole() -> None:
    secrets = SecretsFilter()
    secrets.add("abcdef123456")
    secrets.add("123456xyz789")
    secrets.add("short1")  # a six-character secret is found too
    redacted = secrets.redact("a abcdef123456xyz789 b abcdef123456 c short1 d")
    assert redacted == "a *** b *** c *** d"


def test_discarded_secrets_are_forgotten() -> None:
    secrets = SecretsFilter()
    secrets.add("refresh-token-value-1")
    secrets.discard("refresh-token-value-1")
    assert len(secrets) == 0
    assert secrets.redact("spent refresh-token-value-1") == "spent refresh-token-value-1"


def test_a_token_is_forgotten_once_it_has_expired() -> None:
    now = [1000.0]
    secrets = SecretsFilter(monotonic=lambda: now[0])
    secrets.add("client-secret-for-ever")
    secrets.add("access-token-two-hours", ttl=7200)
    secrets.add("access-token-one-minute", ttl=60)
    assert len(secrets) == 3
    now[0] += 60 + EXPIRY_GRACE_SECONDS + 1
    assert len(secrets) == 2
    assert "access-token-two-hours" not in secrets.redact("x access-token-two-hours y")
    now[0] += 7200
    assert len(secrets) == 1
    assert secrets.redact("old access-token-two-hours") == "old access-token-two-hours"
    assert secrets.redact("client-secret-for-ever") == "***"


def test_a_token_registered_again_lives_as_long_as_its_longest_registration() -> None:
    now = [0.0]
    secrets = SecretsFilter(monotonic=lambda: now[0])
    secrets.add("access-token-value-9", ttl=60)
    secrets.add("access-token-value-9", ttl=3600)
    secrets.add("access-token-value-9", ttl=10)
    now[0] += 600 + EXPIRY_GRACE_SECONDS
    assert secrets.redact("access-token-value-9") == "***"
    secrets.add("access-token-value-9")  # now a credential for good
    now[0] += 10**6
    assert secrets.redact("access-token-value-9") == "***"


def _work_per_line(count: int, line_of: Callable[[list[str]], str]) -> tuple[int, str]:
    secrets = SecretsFilter()
    values = [hashlib.sha256(f"secret {i}".encode()).hexdigest()[:32] for i in range(count)]
    for value in values:
        secrets.add(value, ttl=7200)
    line = line_of(values)
    lookups, comparisons = secrets.lookups, secrets.comparisons
    redacted = secrets.redact(line)
    return secrets.lookups - lookups + secrets.comparisons - comparisons, redacted


def _httpx_line(values: list[str]) -> str:
    # An httpx request line and a vendor message quoting two of the registered tokens.
    return (
        "HTTP Request: POST https://akubela.test/api/v1.0/invoke/open-ability/method/"
        f'user-commands "HTTP/1.1 401 Unauthorized" (token {values[7]} refused, '
        f"retrying with {values[-1]})"
    )


def test_the_work_per_line_does_not_grow_with_the_number_of_secrets() -> None:
    work = {}
    for count in (1_000, 10_000, 100_000):
        work[count], redacted = _work_per_line(count, _httpx_line)
        assert redacted.count("***") == 2
        assert "refused, retrying" in redacted
    # The same line costs the same at 1,000 and at 100,000 secrets: one look-up per window of
    # the line, and one comparison per secret that is really there.
    assert work[1_000] == work[10_000] == work[100_000]
    assert work[100_000] <= len(_httpx_line(["x" * 32] * 8)) + 2
