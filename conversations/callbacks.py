"""Callback data: `"<version>:<job>:<action>[:<arg>]"`, ASCII, at most 64 bytes.

Only ids travel in a button, never objects; a press is re-checked against who pressed it when
it arrives (see `conversations.roles`). A press that does not parse, or carries another version,
is stale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

VERSION: Final = "1"
MAX_BYTES: Final = 64
_PART = re.compile(r"^[A-Za-z0-9_.\-]*$")


class CallbackDataError(ValueError):
    """The callback data would not fit Telegram's rules."""


@dataclass(frozen=True, slots=True)
class Press:
    """A decoded button press."""

    job: str
    action: str
    arg: str = ""


def build(job: str, action: str, arg: str = "") -> str:
    """Encodes a button's data; refuses anything Telegram or our parser would choke on."""
    for part in (job, action, arg):
        if not _PART.match(part):
            raise CallbackDataError(f"callback part {part!r} is not plain ASCII")
    if not job or not action:
        raise CallbackDataError("a callback needs a job and an action")
    data = f"{VERSION}:{job}:{action}" + (f":{arg}" if arg else "")
    if len(data.encode("ascii")) > MAX_BYTES:
        raise CallbackDataError(f"callback data is {len(data)} bytes, over {MAX_BYTES}")
    return data


def parse(data: str | None, *, job: str | None = None) -> Press | None:
    """Decodes a press, or None when it is malformed, stale or for another job."""
    if not data or len(data.encode("utf-8", "replace")) > MAX_BYTES:
        return None
    parts = data.split(":", 3)
    if len(parts) < 3 or parts[0] != VERSION:
        return None
    _, press_job, action, *rest = parts
    arg = rest[0] if rest else ""
    if not all(_PART.match(part) for part in (press_job, action, arg)) or not action:
        return None
    if job is not None and press_job != job:
        return None
    return Press(press_job, action, arg)


def pattern(job: str) -> str:
    """The regex a CallbackQueryHandler uses to receive this job's presses."""
    return rf"^{VERSION}:{re.escape(job)}:"
