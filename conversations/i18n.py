"""English and Chinese for everything a user sees: gettext catalogs kept as Babel `.po` files.

Code writes the English text as the message id, `tr(lang, "...")`; the Chinese lives in
`conversations/locales/zh/LC_MESSAGES/concierge.po`. Strings defined away from where they are
shown (button tables, state names) are marked with `N_` so the extractor finds them. A test
extracts every id with Babel and fails if one has no Chinese.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path
from typing import Any, Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from conversations.vocab import LANGUAGE_CODES, PACKS

DOMAIN: Final = "concierge"
LOCALES_DIR: Final = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE: Final = "en"
# One per language pack: a language is offered once it has its words and its catalog.
LANGUAGES: Final = LANGUAGE_CODES
LANGUAGE_NAMES: Final = {pack.code: pack.name for pack in PACKS}


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; translate it with `tr` when shown."""
    return message


def normalize_language(code: str | None) -> str | None:
    """Maps a Telegram or user language code to one we speak, or None."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else None


def pick_language(chosen: str | None, telegram_code: str | None) -> str:
    """The user's own choice first, then their Telegram client's language, then English."""
    return normalize_language(chosen) or normalize_language(telegram_code) or DEFAULT_LANGUAGE


@cache
def _translations(language: str) -> gettext.NullTranslations:
    po_path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language, domain=DOMAIN)
    # Compiled in memory once per process, so the repository carries only the editable `.po`.
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def tr(language: str, message: str, /, **values: Any) -> str:
    """`message` in `language`, with `{name}` placeholders filled from `values`."""
    text = _translations(pick_language(language, None)).gettext(message)
    return text.format(**values) if values else text


def catalog_ids(language: str) -> dict[str, str]:
    """Every message id of a language's catalog with its translation (for tests and tools)."""
    po_path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in catalog if m.id and isinstance(m.id, str)}
