"""Telegram's parse modes (HTML, MarkdownV2, Markdown): plain text plus entities, or a refusal.

The point of parsing here rather than passing text through is to refuse what Telegram refuses
("can't parse entities"), so a bot that sends an unescaped `<` or `.` fails in the demo and not
in production. Offsets and lengths are in UTF-16 code units, as the Bot API counts them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

Entity = dict[str, Any]


class EntityParseError(ValueError):
    """The text cannot be parsed in the requested parse mode; the message is Telegram's."""


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


@dataclass
class _Builder:
    """Accumulates output text and entities while a parser walks its input."""

    parts: list[str] = field(default_factory=list)
    units: int = 0
    entities: list[Entity] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.units += utf16_len(text)

    def close(self, kind: str, start: int, **extra: Any) -> None:
        if self.units > start:
            self.entities.append({"type": kind, "offset": start, "length": self.units - start})
            self.entities[-1].update({k: v for k, v in extra.items() if v})

    def result(self) -> tuple[str, list[Entity]]:
        return _strip("".join(self.parts), self.entities)


def _strip(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Drops leading and trailing whitespace as Telegram does, keeping entities aligned."""
    stripped_left = text.lstrip()
    shift = utf16_len(text) - utf16_len(stripped_left)
    result = stripped_left.rstrip()
    end = utf16_len(result)
    kept: list[Entity] = []
    for entity in entities:
        start = max(0, entity["offset"] - shift)
        stop = min(end, entity["offset"] + entity["length"] - shift)
        if stop > start:
            kept.append({**entity, "offset": start, "length": stop - start})
    kept.sort(key=lambda e: (e["offset"], -e["length"]))
    return result, kept


def parse(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Parses `text` in `parse_mode` (case-insensitive; None for plain text)."""
    mode = (parse_mode or "").strip().lower()
    if not mode:
        return _strip(text, [])
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise EntityParseError(f"Unsupported parse_mode {parse_mode!r}")


# --- HTML -----------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_NAME = re.compile(r"[a-zA-Z0-9-]*")
_ATTRIBUTE = re.compile(
    r"""\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"""
)
_HTML_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")


@dataclass
class _OpenTag:
    name: str
    start: int
    attributes: dict[str, str]


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Parses Telegram's HTML subset."""
    out = _Builder()
    stack: list[_OpenTag] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "&":
            match = _HTML_ENTITY.match(text, i)
            if match:
                out.add(html.unescape(match.group(0)))
                i = match.end()
            else:
                # Telegram keeps an ampersand that starts no known entity.
                out.add(char)
                i += 1
            continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        offset = _byte_offset(text, i)
        end = text.find(">", i)
        if end < 0:
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        if text.startswith("</", i):
            name = text[i + 2 : end].strip().lower()
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
            top = stack.pop()
            if name and name != top.name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {offset}, expected "</{top.name}>", '
                    f'found "</{name}>"'
                )
            language = top.attributes.get("class", "")
            if top.name == "code" and stack and stack[-1].name == "pre" and language:
                # <pre><code class="language-x"> is one pre entity with a language.
                stack[-1].attributes["language"] = language.removeprefix("language-")
            else:
                _close_html(out, top)
            i = end + 1
            continue
        name_match = _TAG_NAME.match(text, i + 1)
        name = name_match.group(0).lower() if name_match else ""
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
        attributes: dict[str, str] = {}
        rest = text[i + 1 + len(name) : end]
        for attr in _ATTRIBUTE.finditer(rest):
            value = attr.group(2) or attr.group(3) or attr.group(4) or ""
            attributes[attr.group(1).lower()] = html.unescape(value)
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        stack.append(_OpenTag(name, out.units, attributes))
        i = end + 1
    if stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"'
        )
    return out.result()


def _close_html(out: _Builder, tag: _OpenTag) -> None:
    kind = _HTML_TAGS[tag.name]
    if kind == "text_link":
        url = tag.attributes.get("href", "")
        if url:
            out.close("text_link", tag.start, url=url)
        return
    if kind == "blockquote" and "expandable" in tag.attributes:
        kind = "expandable_blockquote"
    if kind == "pre":
        out.close(kind, tag.start, language=tag.attributes.get("language"))
        return
    if kind == "custom_emoji":
        out.close(kind, tag.start, custom_emoji_id=tag.attributes.get("emoji-id"))
        return
    out.close(kind, tag.start)


# --- MarkdownV2 -----------------------------------------------------------------------------

_RESERVED_V2 = set("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}


@dataclass
class _OpenMark:
    kind: str
    start: int
    byte_offset: int
    language: str | None = None


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parses MarkdownV2, refusing unescaped reserved characters as Telegram does."""
    out = _Builder()
    stack: list[_OpenMark] = []
    i = 0
    at_line_start = True
    quote_start: int | None = None
    while i < len(text):
        char = text[i]
        top = stack[-1].kind if stack else None
        if char == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) < 127:
            out.add(text[i + 1])
            i += 2
            at_line_start = False
            continue
        if top in ("code", "pre"):
            fence = "```" if top == "pre" else "`"
            if text.startswith(fence, i):
                mark = stack.pop()
                out.close(top, mark.start, language=mark.language)
                i += len(fence)
            else:
                out.add(char)
                i += 1
            continue
        if char == "\n":
            if quote_start is not None and not text.startswith(">", i + 1):
                out.close("blockquote", quote_start)
                quote_start = None
            out.add(char)
            i += 1
            at_line_start = True
            continue
        if char == ">" and at_line_start:
            if quote_start is None:
                quote_start = out.units
            i += 1
            at_line_start = False
            continue
        at_line_start = False
        if top is not None and _ends_v2(top, text, i):
            mark = stack.pop()
            if top == "text_link":
                i += 1
                url = ""
                if text.startswith("(", i):
                    close = _find_unescaped(text, ")", i + 1)
                    if close < 0:
                        raise EntityParseError(
                            f"Can't find end of a URL at byte offset {_byte_offset(text, i)}"
                        )
                    url = re.sub(r"\\(.)", r"\1", text[i + 1 : close])
                    i = close + 1
                if url:
                    out.close("text_link", mark.start, url=url)
                continue
            out.close(top, mark.start)
            i += 2 if top in ("underline", "spoiler") else 1
            continue
        opened = _opens_v2(text, i)
        if opened is not None:
            kind, width = opened
            if any(m.kind == kind for m in stack):
                raise EntityParseError(f"{_V2_NAMES[kind]} entity can't be nested")
            mark = _OpenMark(kind, out.units, _byte_offset(text, i))
            i += width
            if kind == "pre":
                # A first line holding one word names the language (```python\n...```).
                language = re.match(r"([\w+#.-]+)\n", text[i:])
                if language:
                    mark.language = language.group(1)
                    i += language.end()
            stack.append(mark)
            continue
        if char in _RESERVED_V2:
            raise EntityParseError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        out.add(char)
        i += 1
    if stack:
        mark = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_V2_NAMES[mark.kind]} entity at byte offset {mark.byte_offset}"
        )
    if quote_start is not None:
        out.close("blockquote", quote_start)
    return out.result()


def _find_unescaped(text: str, char: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == char:
            return i
        i += 1
    return -1


def _ends_v2(kind: str, text: str, i: int) -> bool:
    char = text[i]
    if kind == "bold":
        return char == "*"
    if kind == "italic":
        return char == "_" and not text.startswith("__", i)
    if kind == "underline":
        return text.startswith("__", i)
    if kind == "strikethrough":
        return char == "~"
    if kind == "spoiler":
        return text.startswith("||", i)
    if kind == "text_link":
        return char == "]"
    return False


def _opens_v2(text: str, i: int) -> tuple[str, int] | None:
    if text.startswith("```", i):
        return "pre", 3
    if text.startswith("__", i):
        return "underline", 2
    if text.startswith("||", i):
        return "spoiler", 2
    return {
        "*": ("bold", 1),
        "_": ("italic", 1),
        "~": ("strikethrough", 1),
        "`": ("code", 1),
        "[": ("text_link", 1),
    }.get(text[i])


# --- Markdown (legacy) ----------------------------------------------------------------------

_LEGACY = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Parses legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out = _Builder()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise _legacy_unclosed(text, i)
            start = out.units
            out.add(text[i + 3 : end])
            out.close("pre", start)
            i = end + 3
            continue
        if char in _LEGACY:
            end = text.find(char, i + 1)
            if end < 0:
                raise _legacy_unclosed(text, i)
            start = out.units
            out.add(text[i + 1 : end])
            out.close(_LEGACY[char], start)
            i = end + 1
            continue
        if char == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise _legacy_unclosed(text, i)
            label = text[i + 1 : end]
            url = ""
            after = end + 1
            if text.startswith("(", after):
                close = text.find(")", after)
                if close < 0:
                    raise _legacy_unclosed(text, i)
                url = text[after + 1 : close]
                after = close + 1
            start = out.units
            out.add(label)
            if url:
                out.close("text_link", start, url=url)
            i = after
            continue
        out.add(char)
        i += 1
    return out.result()


def _legacy_unclosed(text: str, i: int) -> EntityParseError:
    return EntityParseError(
        f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
    )
