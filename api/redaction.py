"""Keeps credentials out of log lines, whoever writes them (httpx logs every URL it requests).

Two layers: patterns that mask credential *shapes* wherever they appear (a bearer header, a
`password=` field, a Telegram bot token in a URL), and the registered secrets themselves
(tokens, client secrets, passwords), masked wherever they appear verbatim.

Finding registered secrets costs the same per log line however many there are: each secret is
filed under its last `KEY_LENGTH` characters, and a line is read once, window by window, with
one dictionary look-up per window; only a window that ends like a secret is compared with it.
(Scanning every secret per line, as before, cost 170 ms a line at 100,000 secrets.) Secrets of
tokens that expire are forgotten once they have expired, so the set stays the size of what is
alive: registered access tokens carry their lifetime, refresh tokens and other credentials stay
until `discard`, which their holders call once they are spent or replaced.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
from collections.abc import Callable

_MASK = "***"
MIN_SECRET_LENGTH = 6
KEY_LENGTH = 8  # secrets are filed by their last 8 characters; 6 and 7 long ones by themselves
# A token is still masked for a while after it expires: lines about it (a vendor refusing it,
# a retry) are written shortly after, and a dead token in a log is noise, not a leak.
EXPIRY_GRACE_SECONDS = 300.0

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
    """Rewrites log records so that no registered secret or credential-shaped value survives.

    `lookups` and `comparisons` count the work done by `redact` (dictionary look-ups of line
    windows, and comparisons of a window with a secret filed under it): what the per-line cost
    is made of, so that it can be checked without timing anything.
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._monotonic = monotonic
        # secret -> when it may be forgotten (monotonic seconds), or None: until discarded
        self._until: dict[str, float | None] = {}
        self._by_tail: dict[str, set[str]] = {}  # last KEY_LENGTH characters -> secrets
        self._short: dict[int, set[str]] = {}  # length (6, 7) -> secrets that short
        self._expiry: list[tuple[float, str]] = []  # a heap; stale entries are skipped
        self.lookups = 0
        self.comparisons = 0

    def __len__(self) -> int:
        with self._lock:
            self._forget_expired()
            return len(self._until)

    def add(self, secret: str | None, *, ttl: float | None = None) -> None:
        """Registers a value that must never appear in a log line (ignores short values).

        With `ttl`, the value is a token that stops working in `ttl` seconds: it is forgotten
        a grace period after that. Without, it stays until `discard`.
        """
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._forget_expired()
            until = None if ttl is None else self._monotonic() + ttl + EXPIRY_GRACE_SECONDS
            if secret in self._until:
                known = self._until[secret]
                # Registered twice: it lives as long as the longer of the two says.
                if known is None or (until is not None and until <= known):
                    return
            self._until[secret] = until
            self._file(secret)
            if until is not None:
                heapq.heappush(self._expiry, (until, secret))

    def discard(self, secret: str | None) -> None:
        """Forgets a value that is no credential any more (a spent or replaced token)."""
        if not secret:
            return
        with self._lock:
            if secret in self._until:
                del self._until[secret]
                self._unfile(secret)

    def _file(self, secret: str) -> None:
        if len(secret) >= KEY_LENGTH:
            self._by_tail.setdefault(secret[-KEY_LENGTH:], set()).add(secret)
        else:
            self._short.setdefault(len(secret), set()).add(secret)

    def _unfile(self, secret: str) -> None:
        if len(secret) >= KEY_LENGTH:
            key = secret[-KEY_LENGTH:]
            bucket = self._by_tail.get(key)
            if bucket is not None:
                bucket.discard(secret)
                if not bucket:
                    del self._by_tail[key]
        else:
            short = self._short.get(len(secret))
            if short is not None:
                short.discard(secret)
                if not short:
                    del self._short[len(secret)]

    def _forget_expired(self) -> None:
        """Drops the tokens whose time is up (the caller holds the lock)."""
        now = self._monotonic()
        heap = self._expiry
        while heap and heap[0][0] <= now:
            until, secret = heapq.heappop(heap)
            # A stale heap entry: the secret was discarded, or registered again for longer.
            if secret in self._until and self._until[secret] == until:
                del self._until[secret]
                self._unfile(secret)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where registered secrets occur in `text` (the caller holds the lock)."""
        spans: list[tuple[int, int]] = []
        size = len(text)
        by_tail = self._by_tail
        if by_tail and size >= KEY_LENGTH:
            self.lookups += size - KEY_LENGTH + 1
            for end in range(KEY_LENGTH, size + 1):
                bucket = by_tail.get(text[end - KEY_LENGTH : end])
                if bucket:
                    for secret in bucket:
                        self.comparisons += 1
                        start = end - len(secret)
                        if start >= 0 and text.startswith(secret, start):
                            spans.append((start, end))
        for length, short in self._short.items():
            if size < length:
                continue
            self.lookups += size - length + 1
            for end in range(length, size + 1):
                if text[end - length : end] in short:
                    spans.append((end - length, end))
        return spans

    def redact(self, text: str) -> str:
        """Returns `text` with every known secret and credential shape masked."""
        with self._lock:
            self._forget_expired()
            spans = self._spans(text)
        if spans:
            text = _mask(text, spans)
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


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each run of overlapping or touching spans replaced by one mask."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts: list[str] = []
    kept = 0
    for start, end in merged:
        parts += (text[kept:start], _MASK)
        kept = end
    parts.append(text[kept:])
    return "".join(parts)


# The process-wide filter: vendor clients register the tokens they obtain, and the bot installs
# it on every log handler at start (see `install`).
secrets_filter = SecretsFilter()


def install(logger: logging.Logger | None = None) -> None:
    """Attaches the process-wide filter to every handler of `logger` (root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if secrets_filter not in handler.filters:
            handler.addFilter(secrets_filter)
