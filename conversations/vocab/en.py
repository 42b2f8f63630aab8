"""English: the words for dates, times, durations, bookings and problems."""

from __future__ import annotations

from conversations.vocab.pack import Pack

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

_WEEKDAYS = {
    name: number
    for number, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "weds", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
} | {"weekend": 5}

PACK = Pack(
    code="en",
    name="English",
    rewrites=(
        (r"\btonight\b", " today evening "),
        (r"\bthis (morning|afternoon|evening)\b", r" today \1 "),
        # Said as one word so that its "after" is not read as "after a time"; the Chinese
        # pack reads it.
        (r"\b(?:the )?day after tomorrow\b", " 后天 "),
        (r"\bnoon\b|\bmidday\b", " noon "),
    ),
    months=_MONTHS,
    weekday=(
        r"\b(?:(?P<which>next|this|coming)\s+)?(?P<day>"
        + "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
        + r")\b"
    ),
    weekdays=_WEEKDAYS,
    # "next friday" is the Friday of next week, "this friday" this week's; "coming friday"
    # and a bare "friday" the next Friday to come.
    weeks={"next": 1, "this": 0},
    relative_days={1: r"tomorrow\b", 0: r"\btoday\b"},
    day_parts={
        "morning": r"\bmorning\b",
        "afternoon": r"\bafternoon\b",
        "evening": r"\bevening\b|\bnight\b",
    },
    am_words=frozenset({"am"}),
    pm_words=frozenset({"pm"}),
    noon=r"(?<![a-z])noon",
    midnight=r"(?<![a-z])midnight",
    range_joiners=r"to|till|until|til|thru|through|and",
    bounds={
        "after": r"\b(?:after|from|later than|not before|any ?time after)\b",
        "before": r"\b(?:before|until|till|by|no later than)\b",
    },
    filler=r"\b(?:at|on|from|between|for|around|about|by|please|pls|starting|start|and)\b|@",
    booking_verbs=r"\b(?:book|booking|reserve|reservation)\b",
    problem_words=(
        r"\b(?:leak\w*|broken|broke|break\w*|not working|doesn'?t work|does not work|won'?t \w+"
        r"|stopped working|blocked|clogged|flood\w*|no (?:hot )?water|no power|power cut"
        r"|no electricity|stuck|crack\w*|drip\w*|mou?ld\w*|faulty|fault|repair|fix|damaged"
        r"|smells?|noisy|flicker\w*|burst|dirty)\b"
    ),
    # Whole weekday names only: "sun" or "sat" alone say nothing about a day.
    day_words=(
        r"\b(?:today|tonight|tomorrow|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
        r"|weekend|next week)\b"
    ),
    booking_command=(
        r"^/book(?:@\w+)?\b|\b(?:i\s+(?:want|would\s+like)\s+to\s+|please\s+)?"
        r"(?:book(?:ing)?|reserve)\b"
    ),
    chatter=(
        r"\b(?:the|a|an|i|i'd|me|my|we|us|our|to|want|would|like|could|can|you|some|time|slot"
        r"|thanks|thank|pls|please|hi|hello|hey|in|of|with)\b"
    ),
    number_words={"a": 1.0, "an": 1.0, "one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0},
    half_hour=r"(?:for\s+)?half\s+an?\s+hour\b",
    hour_units=r"hours?|hrs?|h",
    minute_units=r"minutes?|mins?|m",
    and_a_half=r"hours?\s+and\s+a\s+half|and\s+a\s+half\s+hours?",
)
