"""The words people use for dates, times, bookings and problems, one pack per language.

Each language's words live in its own module (`en`, `zh`); the readers (`datetext`,
`timewindow`, `booking_request`, `freetext`) join the packs into their patterns and keep only
the grammar that all languages share (numbers, clock notation, the order of a range). A third
language is one more module here, added to `PACKS`, plus its message catalog.

Every pattern is a regular-expression source, applied to text `datetext.normalize` already
folded (lower case, half-width, one space apart), so a pack writes its words in that form.
"""

from __future__ import annotations

from conversations.vocab import en, zh
from conversations.vocab.pack import Pack, joined, merged

# The languages in the order they are offered (the first is the default).
PACKS: tuple[Pack, ...] = (en.PACK, zh.PACK)
LANGUAGE_CODES: tuple[str, ...] = tuple(pack.code for pack in PACKS)
_BY_CODE = {pack.code: pack for pack in PACKS}


def pack_for(lang: str) -> Pack:
    """The pack of a language (English for one without a pack)."""
    return _BY_CODE.get(lang, en.PACK)


__all__ = ["LANGUAGE_CODES", "PACKS", "Pack", "joined", "merged", "pack_for"]
