"""Every text a user can see exists in English and in every other offered language."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from conversations.i18n import DEFAULT_LANGUAGE, LANGUAGES, catalog_ids, pick_language, tr

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"tr": (2,), "t": None, "N_": None}
# The messages are written in English; every other language has a catalog.
TRANSLATED = [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]


def _extracted() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("bot", "conversations"):
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(message, str):
                found.setdefault(message, f"{package}/{filename}:{lineno}")
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_chinese_is_offered() -> None:
    assert TRANSLATED == ["zh"]


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_in_the_code_has_a_translation(lang: str) -> None:
    extracted = _extracted()
    assert extracted, "the extractor found no messages at all"
    translated = catalog_ids(lang)
    missing = {text: where for text, where in extracted.items() if not translated.get(text)}
    assert missing == {}


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_the_same_placeholders(lang: str) -> None:
    wrong = {
        msgid: msgstr
        for msgid, msgstr in catalog_ids(lang).items()
        if _fields(msgid) != _fields(msgstr)
    }
    assert wrong == {}


@pytest.mark.parametrize("lang", TRANSLATED)
def test_catalog_has_no_stale_entries(lang: str) -> None:
    stale = set(catalog_ids(lang)) - set(_extracted())
    assert stale == set()


@pytest.mark.parametrize(
    ("chosen", "telegram", "expected"),
    [
        (None, None, "en"),
        (None, "zh-hans", "zh"),
        (None, "zh_TW", "zh"),
        (None, "fr", "en"),
        ("en", "zh-hans", "en"),
        ("zh", "en", "zh"),
        ("xx", "zh", "zh"),
    ],
)
def test_language_choice(chosen: str | None, telegram: str | None, expected: str) -> None:
    assert pick_language(chosen, telegram) == expected


def test_tr_translates_and_fills_placeholders() -> None:
    assert tr("zh", "Sorry, that record is not yours.") == "抱歉，这条记录不属于您。"
    assert tr("en", "Sorry, that record is not yours.") == "Sorry, that record is not yours."
    assert tr("fr", "Sorry, that record is not yours.") == "Sorry, that record is not yours."
