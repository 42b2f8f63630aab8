"""What residents type that must be checked before it is kept: blank-looking text, phone
numbers, time zone names. Pure functions, no Telegram.

* `is_invisible` is True for text made only of spaces, zero-width and other format or control
  characters (Unicode categories Z*, Cc, Cf, Mn) and the few letters that draw nothing (Hangul
  fillers, the blank Braille pattern): such text looks empty in the chat and in alerts.
* `read_phone` reads a phone number with `phonenumbers` in international form ("+86 139 1234
  5678", "+49 30 1234567") or the community's own ("139-1234-5678", "010 8888 1234"), and
  returns it in international form ("+86 139 1234 5678"), or None.
* `read_zone` reads an IANA time zone name (any case); an area alone ("Asia", "Etc") or an
  unknown name gives None, and `zone_examples` offers names to try.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers

# Letters and symbols that draw nothing, though their category says otherwise.
_BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES: Final = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})

PHONE_EXAMPLE: Final = "+86 139 1234 5678"
ZONE_EXAMPLES: Final = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Etc/UTC",
)
MAX_ZONE_EXAMPLES: Final = 5


def is_invisible(text: str | None) -> bool:
    """True when `text` shows nothing: empty, or only spaces and zero-width characters."""
    return all(
        c in _BLANK_LETTERS or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text or ""
    )


def read_phone(text: str | None, region: str) -> str | None:
    """The phone number `text` is, written internationally, or None when it is not one."""
    if not text or is_invisible(text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def read_zone(text: str) -> ZoneInfo | None:
    """The time zone named `text` (case does not matter), or None for an unknown or partial
    name; never raises, whatever the text (an area such as "Asia" is a folder on disk)."""
    name = _zones_by_folded_name().get(text.strip().casefold())
    return ZoneInfo(name) if name is not None else None


def zone_examples(text: str) -> list[str]:
    """Zone names to suggest for what was typed: the area's own when an area was named."""
    area = text.strip().split("/", 1)[0].casefold()
    in_area = sorted(
        z for z in _zones_by_folded_name().values() if z.casefold().startswith(area + "/")
    )
    common = [z for z in ZONE_EXAMPLES if z in in_area]
    picked = common + [z for z in in_area if z not in common]
    return (picked or list(ZONE_EXAMPLES))[:MAX_ZONE_EXAMPLES]
