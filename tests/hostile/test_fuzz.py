"""Hostile and careless input at every step of every flow (hypothesis).

Each step is first reached with valid input, then sent arbitrary text (any Unicode, emoji,
right-to-left marks, control characters, up to 10 000 characters), date and time phrases,
arbitrary button data (malformed, overlong, other versions, other jobs, other people's records),
messages no step expects, and edits of earlier messages. After every update: no unhandled
exception, a reply the user can see (a press is always answered; an edit needs none), nothing
Telegram would refuse, and every open conversation in one of its flow's states.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.hostile.community import (
    FLOW_STATES,
    REPLY_METHODS,
    STEPS,
    UNLINKED,
    Community,
    Step,
    problems_with,
)
from tests.support_telegram import Chat

# Texts a careless or hostile user really sends, always tried first.
NASTY = (
    "",
    " ",
    "\x00",
    "\x00\x01\x02\x1b[31m\x7f",
    "\u202etext reversed\u202c",
    "\u200f\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # RTL: Hebrew, Arabic
    "🔧💧🚿" * 40,
    "👩‍👩‍👧‍👦🏳️‍🌈" * 30,
    "Z̴̢̛a̵̡͝l̸̨̛g̵̢͘o̶̧͝" * 20,
    "\ufeff\u200b\u2060",
    "<b>bold</b> *md* _it_ `code` [link](http://127.0.0.1)",
    "{description} {0} %s %(x)s {{}}",
    "' OR 1=1; DROP TABLE drafts; --",
    "/start",
    "/cancel@concierge_test_bot",
    "/nosuchcommand arg",
)
# The longest texts, kept out of the strategies so a failing example prints readably.
LONGEST = ("x" * 10_000, "明天上午" * 2_500)

# Pieces of date and time phrases, in both languages, sensible and not.
DATE_WORDS = (
    "today",
    "tomorrow",
    "yesterday",
    "tonight",
    "now",
    "noon",
    "midnight",
    "next friday",
    "last monday",
    "in 3 days",
    "in 400 years",
    "fri",
    "sunday",
    "9-12",
    "9am-5pm",
    "14:00 to 16:00",
    "16:00-14:00",
    "7pm",
    "19:30",
    "0:00",
    "23:59",
    "24:00",
    "25:61",
    "12",
    "for 1 hour",
    "for 0 minutes",
    "for 99999 hours",
    "1.5h",
    "-1 hour",
    "2099-12-31",
    "1900-01-01",
    "9999-99-99",
    "29 feb",
    "30 February",
    "明天",
    "后天",
    "今天",
    "昨天",
    "下周五",
    "上午",
    "下午",
    "晚上7点半",
    "凌晨",
    "星期八",
    "半小时",
    "两个小时",
    "十点半",
    "预约",
    "健身房",
    "gym",
)
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%H:%M", "%Y-%m-%d %H:%M", "%b %d", "%A %I%p", "%m月%d日")

JOBS = (
    "repair",
    "repairs",
    "book",
    "bookings",
    "tasks",
    "assign",
    "repairs_all",
    "bookings_pending",
    "acct",
    "menu",
    "alerts",
)
ACTIONS = (
    "cancel",
    "skip",
    "done",
    "clear",
    "when",
    "ok",
    "change",
    "confirm",
    "edit",
    "field",
    "back",
    "continue",
    "restart",
    "page",
    "open",
    "drop",
    "yes",
    "no",
    "am",
    "pic",
    "day",
    "at",
    "dur",
    "times",
    "otherday",
    "retry",
    "view",
    "select",
    "tog",
    "sel_done",
    "ack",
    "del",
    "delyes",
    "delno",
    "accept",
    "reopen",
    "resend",
    "filter",
    "w",
    "r",
    "rpage",
    "rdone",
    "rback",
    "d",
    "ddone",
    "dback",
    "create",
    "lang",
    "res",
    "unlink",
    "toggle",
    *JOBS,
)
ID_CHARS = string.ascii_letters + string.digits + "_.-"


@dataclass(frozen=True)
class Move:
    """One thing a user does: type, press, or send something else."""

    # text | press | shown (a button the bot showed lately) | photo | sticker | contact | edited
    kind: str
    value: str = ""

    async def play(self, chat: Chat, shown: list[str]) -> None:
        """Sends this move as an update from the chat's user."""
        if self.kind == "text":
            await chat.send(self.value)
        elif self.kind == "press":
            await chat.press(self.value)
        elif self.kind == "shown":
            await chat.press(shown[int(self.value) % len(shown)] if shown else "1:menu:repair")
        elif self.kind == "photo":
            await chat.send_photo(caption=self.value or None)
        elif self.kind == "edited":
            # Telegram sends an edit of an earlier message as its own kind of update.
            await chat.edit_last(self.value)
        elif self.kind == "contact":
            await chat.send_contact(self.value)
        else:
            await chat.send_sticker()


# Any character Telegram can carry (UTF-8 has no lone surrogates).
UNICODE = st.characters(codec="utf-8")
any_text = st.text(UNICODE, max_size=300)
long_text = st.builds(
    lambda unit, size: (unit * size)[:size],
    st.text(UNICODE, min_size=1, max_size=5),
    st.integers(1_000, 10_000),
)
date_phrase = st.lists(
    st.one_of(
        st.sampled_from(DATE_WORDS),
        st.integers(-(10**6), 10**6).map(str),
        st.builds(
            lambda moment, fmt: moment.strftime(fmt),
            st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
            st.sampled_from(DATE_FORMATS),
        ),
    ),
    min_size=1,
    max_size=4,
).map(" ".join)
texts = st.one_of(st.sampled_from(NASTY), any_text, long_text, date_phrase)


def presses(ids: list[str]) -> st.SearchStrategy[str]:
    """Button data: forged presses on any job and id, other versions, and garbage."""
    arg = st.one_of(
        st.sampled_from(ids),
        st.text(ID_CHARS, max_size=70),
        st.integers(-(10**12), 10**12).map(str),
        st.just(""),
    )
    shaped = st.builds(
        lambda job, action, value: f"1:{job}:{action}" + (f":{value}" if value else ""),
        st.sampled_from(JOBS),
        st.sampled_from(ACTIONS),
        arg,
    )
    other_version = st.builds(
        lambda version, rest: f"{version}:{rest}",
        st.sampled_from(["0", "2", "v1", "", "1 "]),
        st.text(ID_CHARS + ":", max_size=40),
    )
    garbage = st.text(UNICODE, max_size=100)
    return st.one_of(shaped, other_version, garbage)


def moves(ids: list[str]) -> st.SearchStrategy[Move]:
    """Any update a user can send; the strategy never depends on what the bot showed, which
    hypothesis needs to replay an example."""
    return st.one_of(
        texts.map(lambda text: Move("text", text)),
        st.integers(0, 99).map(lambda index: Move("shown", str(index))),
        presses(ids).map(lambda data: Move("press", data)),
        st.one_of(st.just(""), any_text).map(lambda caption: Move("photo", caption)),
        st.one_of(st.just("+86 138 0000 0000"), any_text).map(lambda p: Move("contact", p)),
        st.just(Move("sticker")),
        texts.map(lambda text: Move("edited", text)),
    )


async def at_step(town: Community, step: Step) -> None:
    """Brings the user to `step` with valid input unless they are there already."""
    if town.state(step.user, step.job) == step.state and len(town.conversations(step.user)) == 1:
        return
    await step.reach(town)
    said = [call.text for call in town.bot.telegram.replies()[-3:]]
    assert town.state(step.user, step.job) == step.state, (
        f"valid input did not reach {step.state}: {town.conversations(step.user)}, {said}"
    )
    assert not town.errors, f"reaching {step.state} failed: {town.errors!r}"


async def play_and_check(town: Community, user: int, move: Move) -> None:
    """Plays one move and checks what every update must leave behind."""
    before = len(town.calls)
    await move.play(town.chat(user), town.buttons(max(0, before - 20)))
    sent = town.calls[before:]
    assert not town.errors, f"{move!r} raised {town.errors!r}"
    methods = {call.method for call in sent}
    if move.kind in ("press", "shown"):
        assert "answerCallbackQuery" in methods, f"{move!r} was not answered: {methods}"
    elif move.kind == "edited":  # editing an old message asks nothing of the bot
        assert sent == [], f"{move!r} made the bot do {methods}"
    elif move.kind != "text" or move.value.strip():  # a blank text is never sent
        assert methods & REPLY_METHODS, f"{move!r} got no reply: {methods}"
    assert problems_with(sent) == [], move
    for job, state in town.conversations(user).items():
        assert str(state) in FLOW_STATES[job], f"{job} is in {state!r} after {move!r}"


# Examples share one bot on purpose (starting one per example would cost seconds): each example
# first brings the user back to the step, so what an earlier example did cannot leak into it.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "12")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
@FUZZ
@given(data=st.data())
@example(data=None)
async def test_any_input_at_any_step(
    town: Community, figures: Counter[str], step: Step, data: st.DataObject | None
) -> None:
    await at_step(town, step)
    if data is None:
        # The nasty texts, each at this very step, every run.
        for text in NASTY + LONGEST:
            await at_step(town, step)
            await play_and_check(town, step.user, Move("text", text))
            figures["fuzz_cases"] += 1
        return
    for _ in range(data.draw(st.integers(1, 3), label="updates")):
        move = data.draw(moves(town.records.all_ids()), label="move")
        await play_and_check(town, step.user, move)
        figures["fuzz_cases"] += 1


async def test_a_message_nothing_expects_still_gets_an_answer(town: Community) -> None:
    chat = town.chat(UNLINKED)
    said = []
    await chat.send("hello?")
    # Stray text gets the menu; an unlinked user's menu starts with linking.
    assert town.bot.telegram.replies()[-2].text == "I did not understand that."
    assert (town.bot.telegram.last.text or "").startswith("To report repairs and book amenities")
    for text in ("/nosuchcommand", "/cancel"):
        await chat.send(text)
        said.append(town.bot.telegram.last.text)
    assert said == [
        "I do not know that command. Send /help to see what I can do.",
        "There is nothing to cancel. Send /start for the menu.",
    ]
    assert town.conversations(UNLINKED) == {}
