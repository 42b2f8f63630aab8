"""Parse modes: the entities Telegram would produce, and the text it would refuse."""

from __future__ import annotations

import pytest

from sandbox.botapi.entities import EntityParseError, parse, utf16_len


def test_html_nested_tags_links_and_escapes() -> None:
    text, found = parse(
        '<b>Repair <i>#12</i></b> &lt;done&gt; <a href="https://x.test/r?a=1&amp;b=2">open</a>',
        "HTML",
    )
    assert text == "Repair #12 <done> open"
    assert found == [
        {"type": "bold", "offset": 0, "length": 10},
        {"type": "italic", "offset": 7, "length": 3},
        {"type": "text_link", "offset": 18, "length": 4, "url": "https://x.test/r?a=1&b=2"},
    ]


def test_offsets_count_utf16_units() -> None:
    text, found = parse("🏋️ <b>Gym</b> 健身房", "html")
    assert text == "🏋️ Gym 健身房"
    assert found == [{"type": "bold", "offset": utf16_len("🏋️ "), "length": 3}]


def test_surrounding_whitespace_is_stripped_with_entities_kept_aligned() -> None:
    text, found = parse("  <code>PIN 4821</code>  \n", "HTML")
    assert text == "PIN 4821"
    assert found == [{"type": "code", "offset": 0, "length": 8}]


def test_pre_with_language_and_spoiler() -> None:
    _, found = parse(
        '<pre><code class="language-python">x</code></pre> <tg-spoiler>s</tg-spoiler>', "HTML"
    )
    assert found == [
        {"type": "pre", "offset": 0, "length": 1, "language": "python"},
        {"type": "spoiler", "offset": 2, "length": 1},
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("<b", "Unclosed start tag at byte offset 0"),
    ],
)
def test_html_refusals(source: str, message: str) -> None:
    with pytest.raises(EntityParseError, match=message):
        parse(source, "HTML")


def test_markdown_v2_entities_and_escapes() -> None:
    text, found = parse(
        r"*Booked* for 9\.30 \- _gym_ __u__ ~s~ ||sp|| [map](https://m.test/a\)b)", "MarkdownV2"
    )
    assert text == "Booked for 9.30 - gym u s sp map"
    assert [(e["type"], e["offset"], e["length"]) for e in found] == [
        ("bold", 0, 6),
        ("italic", 18, 3),
        ("underline", 22, 1),
        ("strikethrough", 24, 1),
        ("spoiler", 26, 2),
        ("text_link", 29, 3),
    ]
    assert found[-1]["url"] == "https://m.test/a)b"


def test_markdown_v2_code_keeps_reserved_characters() -> None:
    text, found = parse("`a.b-c` ```python\nprint(1)```", "MarkdownV2")
    assert text == "a.b-c print(1)"
    assert found[1] == {"type": "pre", "offset": 6, "length": 8, "language": "python"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi!", r"Character '!' is reserved"),
        ("_open", "Can't find end of Italic entity at byte offset 0"),
        ("ok *bold _it*", "Bold entity can't be nested"),
    ],
)
def test_markdown_v2_refusals(source: str, message: str) -> None:
    with pytest.raises(EntityParseError, match=message):
        parse(source, "MarkdownV2")


def test_legacy_markdown() -> None:
    text, found = parse("*bold* and [link](https://l.test) 9.30!", "Markdown")
    assert text == "bold and link 9.30!"
    assert [e["type"] for e in found] == ["bold", "text_link"]
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte"):
        parse("*open", "Markdown")


def test_unknown_parse_mode_is_refused() -> None:
    with pytest.raises(EntityParseError):
        parse("x", "BBCode")
