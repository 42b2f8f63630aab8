"""Keeps credentials out of log lines, whoever writes them (httpx logs every URL it requests)."""

from __future__ import annotations

import logging
import re
import threading

_MASK = "***"

# Shapes of credentials that appear inside URLs and headers regardless of which value they hold.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram: https://api.telegram.org/bot<token>/method and /file/bot<token>/path
    (re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"), r"\1" + _MASK),
    # Tuya refresh: GET /v1.0/token/<refresh_token>
    (re.compile(r"(/v1\.0/token/)[^/?\s\"']+"), r"\1" + _MASK),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + _MASK),
    (
        re.compile(
            r"(?i)((?:access_token|refresh_token|client_secret|password|code|sign|token|apikey)"
            r"[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
        ),
        r"\1" + _MASK,
    ),
)


class SecretsFilter(logging.Filter):
    """Rewrites log records so that no registered secret or credential-shaped value survives."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        """Registers a value that must never appear in a log line (ignores short values)."""
        if secret and len(secret) >= 6:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """Returns `text` with every known secret and credential shape masked."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, so handlers never see the raw one.
            formatter = logging.Formatter()
            record.exc_text = self.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


# The process-wide filter: vendor clients register the tokens they obtain, and the bot installs
# it on every log handler at start (see `install`).
secrets_filter = SecretsFilter()


def install(logger: logging.Logger | None = None) -> None:
    """Attaches the process-wide filter to every handler of `logger` (root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if secrets_filter not in handler.filters:
            handler.addFilter(secrets_filter)
