"""No credential survives into a log line, whoever logs it."""

from __future__ import annotations

import logging

import pytest

from api.redaction import SecretsFilter


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
