"""Chinese (simplified and traditional): the words for dates, times, durations, bookings and
problems, and the folding of counting numerals into digits."""

from __future__ import annotations

import re
from typing import Final

from conversations.vocab.pack import Pack

_DIGITS: Final = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_RUN: Final = "[零〇一二两兩三四五六七八九十]+"
# Only numerals that count something (hours, minutes, dates, durations) become digits, so that
# weekday names like "周一" keep their meaning.
_NUMBER: Final = re.compile(
    rf"{_RUN}(?=\s*(?:点|點|时|時|个|個|小时|小時|钟|鐘|分|月|日|号|號|天|刻|周|週|h\b))"
    rf"|(?<=[点點月])(?:{_RUN})"
)


def _value(run: str) -> str:
    if "十" in run:
        tens_text, _, units_text = run.partition("十")
        if "十" in units_text or len(tens_text) > 1 or len(units_text) > 1:
            return run
        tens = _DIGITS[tens_text] if tens_text else 1
        units = _DIGITS[units_text] if units_text else 0
        return str(tens * 10 + units)
    return "".join(str(_DIGITS[c]) for c in run)


def fold_numerals(text: str) -> str:
    """Counting numerals to digits: "下午三点半" -> "下午3点半", "十二月" -> "12月"."""
    return _NUMBER.sub(lambda m: _value(m.group(0)), text)


PACK = Pack(
    code="zh",
    name="中文",
    day_format="M月d日 EEE",
    day_format_with_year="y年M月d日 EEE",
    fold=fold_numerals,
    rewrites=(
        (r"今晚", " 今天 晚上 "),
        (r"明晚", " 明天 晚上 "),
        (r"明早", " 明天 早上 "),
    ),
    weekday=(
        r"(?P<which>下下个?|下个?|这个?|本|上个?)?\s*(?:周|週|星期|礼拜|禮拜)"
        r"(?P<day>[一二三四五六日天末1-7])"
    ),
    weekdays={
        "一": 0,
        "二": 1,
        "三": 2,
        "四": 3,
        "五": 4,
        "六": 5,
        "日": 6,
        "天": 6,
        "末": 5,
        "1": 0,
        "2": 1,
        "3": 2,
        "4": 3,
        "5": 4,
        "6": 5,
        "7": 6,
    },
    weeks={
        "下下": 2,
        "下下个": 2,
        "下": 1,
        "下个": 1,
        "这": 0,
        "这个": 0,
        "本": 0,
        "上": -1,
        "上个": -1,
    },
    relative_days={3: r"大后天|大後天", 2: r"后天|後天", 1: r"明天|明日", 0: r"今天|今日"},
    day_parts={
        "morning": r"上午|早上|早晨|清晨",
        "afternoon": r"下午|午后",
        "evening": r"晚上|傍晚|夜里",
    },
    halves=r"上午|下午|晚上|早上|早晨|清晨|中午|凌晨|傍晚|午后|夜里|晚",
    am_words=frozenset({"上午", "早上", "早晨", "清晨"}),
    pm_words=frozenset({"下午", "晚上", "傍晚", "午后", "夜里", "晚"}),
    noon=r"中午",
    midnight=r"午夜|半夜",
    range_joiners=r"至|到",
    bounds={
        "after": r"以后|之后|以後|之後|起|(?<!大)[后後](?!天)",
        "before": r"以前|之前|前(?!天)",
    },
    filler=r"[从從在于於的请請]",
    booking_verbs=r"预约|预订|預約|預訂|订场|訂場|订(?=[\u4e00-\u9fff])",
    problem_words=(
        r"坏|壞|漏|堵|不亮|不能用|不工作|不灵|不靈|故障|维修|維修|修理|停电|停電|没电|沒電"
        r"|没水|沒水|没有热水|沒有熱水|裂|滴水|异味|異味|噪音|卡住|闪|閃|脏|髒"
    ),
    day_words=(
        r"今天|今晚|明天|明晚|明早|后天|後天|周[一二三四五六日天末]|星期[一二三四五六日天]"
        r"|礼拜[一二三四五六日天]"
    ),
    booking_command=r"预约|预订|預約|預訂|帮我|我想|我要|订",
    chatter=r"一下|吧|吗|嗎|呢|了|个|個|谢谢|謝謝|你好",
    half_hour=r"(?<![个個\d])半\s*个?\s*(?:小时|小時|钟头|鐘頭)",
    hour_units=r"小时|小時|钟头|鐘頭",
    minute_units=r"分钟|分鐘",
)
