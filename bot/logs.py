"""How the bot logs: quiet by default (real events only), as text or one JSON object a line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from api import redaction

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Libraries that narrate their routine at INFO; an operator needs only their warnings.
QUIET_LOGGERS = (
    # Every URL at INFO, and Telegram URLs carry the bot token.
    "httpx",
    # "Running job ..." and "Job ... executed successfully" for every repeating job.
    "apscheduler",
    # Every plugin it loads; the migrations themselves are what matter.
    "alembic",
)

# Attributes every LogRecord has; anything else was passed in `extra=` and goes into the JSON.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_FIELDS and not key.startswith("_")
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            # The secrets filter formats (and redacts) tracebacks before any formatter runs.
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(*, verbose: bool = False, json_lines: bool = False) -> None:
    """Sets up the root logger once, for every command."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    redaction.install()
