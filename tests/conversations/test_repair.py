"""Reporting a repair, as a resident lives it, against the Akubela sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from bot.persistence import DatabasePersistence
from bot.storage.models import RepairReport
from conversations import callbacks
from conversations.records import Repair, RepairState
from conversations.repair import (
    MAX_DESCRIPTION,
    MAX_PHOTOS,
    Part,
    Problem,
    RepairDraft,
    State,
    add_photo,
    check_contact,
    check_description,
    missing_step,
    next_step,
    repair_write,
    short_id,
)
from conversations.writes import dump_write
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot, vendor_writes
from tests.support_telegram import Chat

ZONE = ZoneInfo("Asia/Shanghai")
BOB = 801  # one home
DESCRIPTION = "The kitchen tap drips all night."


@asynccontextmanager
async def started(
    database_url: str, sandbox_app: Starlette, **kw: Any
) -> AsyncIterator[BotUnderTest]:
    """The bot with its job queue running, as in production (conversation time-outs need it)."""
    async with running_bot(database_url, sandbox_app, **kw) as bot:
        assert bot.app.job_queue is not None
        await bot.app.job_queue.start()
        try:
            yield bot
        finally:
            await bot.app.job_queue.stop(wait=False)


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with started(database_url, sandbox_app) as running:
        yield running


async def _resident(bot: BotUnderTest, sandbox_app: Starlette, *, lang: str = "en") -> Chat:
    await link_demo_resident(bot, sandbox_app, BOB)
    return bot.chat(BOB, language_code=lang)


async def _repairs(bot: BotUnderTest) -> list[Repair]:
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    return await desk.repairs()


def _last(bot: BotUnderTest) -> str:
    return bot.telegram.last.text or ""


def _labels(bot: BotUnderTest) -> list[str]:
    return [b["text"] for row in bot.telegram.last_buttons() for b in row]


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("repair", action, arg)


def _tomorrow_at(hour: int) -> datetime:
    day = datetime.now(ZONE).date() + timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=ZONE)


async def _up_to_summary(chat: Chat, *, contact: str = "+86 138 1234 5678") -> None:
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.press(_press("when", "1m"))
    await chat.press(_press("ok"))
    await chat.send(contact)


async def _draft_data(bot: BotUnderTest) -> dict[str, Any] | None:
    return await bot.services.storage.drafts.load(BOB, "repair")


# ---- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Problem.TOO_SHORT),
        ("", Problem.TOO_SHORT),
        ("   leak    ", Problem.TOO_SHORT),
        ("x" * 9, Problem.TOO_SHORT),
        ("x" * 10, None),
        ("  " + "x" * 10 + "  ", None),
        ("厨房水龙头一直在滴水啊", None),
        ("x" * MAX_DESCRIPTION, None),
        ("x" * (MAX_DESCRIPTION + 1), Problem.TOO_LONG),
    ],
)
def test_description_rules(text: str | None, expected: Problem | None) -> None:
    assert check_description(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b", Problem.INVISIBLE),
        ("\u3000\u2060\u00a0\u3164" * 5, Problem.INVISIBLE),
        ("电梯坏了", None),
        ("漏水", Problem.TOO_SHORT),
    ],
)
def test_invisible_and_chinese_descriptions(text: str, expected: Problem | None) -> None:
    """Zero-width text would make an invisible repair; four Chinese characters say enough."""
    assert check_description(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Problem.NOT_A_PHONE),
        (" 12 ", Problem.NOT_A_PHONE),
        ("call me maybe", Problem.NOT_A_PHONE),
        ("Ring room 302", Problem.NOT_A_PHONE),
        ("\u200b\u200b\u200b", Problem.INVISIBLE),
        ("+86 138 0000 0002", None),
        ("138 0000 0002", None),
        ("139-1234-5678", None),
        ("010 8888 1234", None),
        ("+49 30 1234567", None),
        ("9" * 101, Problem.TOO_LONG),
    ],
)
def test_contact_rules(text: str, expected: Problem | None) -> None:
    assert check_contact(text, "CN") == expected


def test_at_most_five_photos_and_no_duplicates() -> None:
    photos: list[str] = []
    assert all(add_photo(photos, f"p{n}") for n in range(MAX_PHOTOS))
    assert add_photo(photos, "p0")  # the same photo twice counts once
    assert not add_photo(photos, "p9")
    assert photos == [f"p{n}" for n in range(MAX_PHOTOS)]


def test_short_id_is_the_last_six_characters() -> None:
    assert short_id("m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c01") == "2d3c01"
    assert short_id("abc") == "abc"


@pytest.mark.parametrize(
    ("finished", "editing", "expected"),
    [
        (State.DESCRIBE, None, State.PHOTOS),
        (State.PHOTOS, None, State.WHEN),
        (State.WHEN_CONFIRM, None, State.CONTACT),
        (State.CONTACT, None, State.SUMMARY),
        (State.DESCRIBE, Part.DESCRIPTION, State.SUMMARY),
        (State.WHEN_CONFIRM, Part.TIME, State.SUMMARY),
    ],
)
def test_next_step(finished: State, editing: Part | None, expected: State) -> None:
    draft = RepairDraft(command_id="c", editing=editing)
    assert next_step(draft, finished) is expected


def test_a_confirmed_report_needs_every_part() -> None:
    start = _tomorrow_at(9)
    draft = RepairDraft(command_id="c")
    assert missing_step(draft, "CN") is State.DESCRIBE
    draft.description = DESCRIPTION
    assert missing_step(draft, "CN") is State.WHEN
    draft.start, draft.end = start, start + timedelta(hours=3)
    assert missing_step(draft, "CN") is State.WHEN  # echoed but not confirmed yet
    draft.window_confirmed = True
    assert missing_step(draft, "CN") is State.CONTACT
    draft.contact = "+86 138 0000 0002"
    assert missing_step(draft, "CN") is None


def test_the_recorded_write_is_plain_json_with_zoned_times() -> None:
    start = datetime(2026, 3, 1, 9, tzinfo=ZONE)
    draft = RepairDraft(
        command_id="c",
        description=DESCRIPTION,
        photo_file_ids=["a", "b"],
        start=start,
        end=start + timedelta(hours=3),
        window_confirmed=True,
        contact="+86 1",
    )
    assert dump_write(repair_write(draft, "r1")) == {
        "kind": "akubela.repair.create",
        "residence_id": "r1",
        "start": "2026-03-01T09:00:00+08:00",
        "finish": "2026-03-01T12:00:00+08:00",
        "description": DESCRIPTION,
        "contact": "+86 1",
        "photo_file_ids": ["a", "b"],
    }


def test_a_draft_survives_its_json_round_trip() -> None:
    start = datetime(2026, 3, 1, 1, tzinfo=UTC)
    draft = RepairDraft(command_id="c", start=start, end=start + timedelta(hours=1))
    again = RepairDraft.model_validate(draft.model_dump(mode="json"))
    assert again == draft


# ---- the conversation ------------------------------------------------------------------------


async def test_happy_path_in_english(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    assert "What needs repairing?" in _last(bot)
    await chat.send(DESCRIPTION)
    assert "You can add up to 5 photos" in _last(bot)
    assert _labels(bot) == ["⏭ Skip", "✖ Stop"]
    await chat.send_photo("leak-1")
    assert _last(bot).startswith("📷 1 of 5 photos received.")
    await chat.press(_press("done"))
    assert "When may a technician come?" in _last(bot)
    assert "Tomorrow morning" in _labels(bot)
    await chat.press(_press("when", "1m"))
    echo = _last(bot)
    assert echo.startswith("A technician may come: Tomorrow (")
    assert "09:00–12:00. Is that right?" in echo
    await chat.press(_press("ok"))
    ask_contact = bot.telegram.last
    assert "How can the technician reach you?" in (ask_contact.text or "")
    assert ask_contact.keyboard[0][0] == {"text": "📱 Share my phone", "request_contact": True}
    await chat.send_contact("+86 138 0000 0002")
    contact_noted = bot.telegram.replies()[-2]
    assert contact_noted.params["reply_markup"] == {"remove_keyboard": True}
    summary = _last(bot)
    assert DESCRIPTION in summary
    assert "📷 Photos: 1" in summary
    assert "📞 +86 138 0000 0002" in summary
    assert _labels(bot) == ["✅ Confirm", "✏️ Edit", "✖ Stop"]

    await chat.press(_press("confirm"))

    assert bot.telegram.sent("sendChatAction")
    (repair,) = [r for r in await _repairs(bot) if r.description == DESCRIPTION]
    assert repair.state is RepairState.WAITING
    assert repair.contact == "+86 138 0000 0002"
    assert repair.start == _tomorrow_at(9)
    assert repair.finish == _tomorrow_at(12)
    done = _last(bot)
    assert done.startswith(f"✅ Repair #{repair.id[-6:]} created — waiting")
    # Residents see the short id only, never the vendor's.
    assert repair.id not in done
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    report = await bot.services.repair_reports.get(repair.id, residence_id=desk.residence_id)
    assert report is not None
    assert report.telegram_id == BOB
    assert report.photo_file_ids == ["leak-1"]
    assert report.description == DESCRIPTION
    assert await _draft_data(bot) is None


async def test_happy_path_in_chinese_from_the_menu_with_an_album(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app, lang="zh")
    await chat.press(callbacks.build("menu", "repair"))
    assert "需要维修什么" in _last(bot)
    before = len(bot.telegram.replies())
    # An album: the caption of its first photo is the description, the rest follow one by one.
    await chat.send_photo("a-1", caption="卫生间的灯一直闪烁不停", media_group_id="album")
    await chat.send_photo("a-2", media_group_id="album")
    await chat.send_photo("a-3", media_group_id="album")
    status = bot.telegram.replies()[before:]
    assert [c.method for c in status] == ["sendMessage", "editMessageText", "editMessageText"]
    assert (status[-1].text or "").startswith("📷 已收到 3 张照片（最多 5 张）")
    await chat.press(_press("done"))
    await chat.send("明天上午")
    assert "明天（" in _last(bot)
    assert "09:00–12:00" in _last(bot)
    await chat.press(_press("ok"))
    await chat.send("请打 138 0000 0002")
    assert "请核对您的报修" in _last(bot)
    await chat.press(_press("confirm"))

    (repair,) = [r for r in await _repairs(bot) if r.description == "卫生间的灯一直闪烁不停"]
    assert repair.contact == "+86 138 0000 0002"
    assert repair.start == _tomorrow_at(9)
    assert _last(bot).startswith(f"✅ 报修单 #{repair.id[-6:]} 已创建")
    async with bot.services.storage.sessions() as session:
        stored = await session.get(RepairReport, repair.id)
    assert stored is not None
    assert stored.photo_file_ids == ["a-1", "a-2", "a-3"]


async def test_unlinked_residents_are_offered_the_link_first(bot: BotUnderTest) -> None:
    await bot.chat(802).send("/repair")
    last = bot.telegram.last
    assert "link your Akubela account" in (last.text or "")
    assert "url" in last.buttons[0][0]


async def test_descriptions_are_checked_and_nothing_else_passes(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.send("leak")
    assert _last(bot) == (
        "That is a bit short: please describe the problem in at least 10 characters."
    )
    await chat.send("x" * 1001)
    assert _last(bot) == ("That is 1001 characters; please keep the description under 1000.")
    await chat.send_sticker()
    assert _last(bot).startswith(
        "Please describe the problem in words (a photo with a caption works too)."
    )
    assert "What needs repairing?" in _last(bot)
    # A photo without a caption is kept while the description is still to come.
    await chat.send_photo("first")
    assert _last(bot).startswith("📷 Photo kept. Now please describe")
    await chat.send_photo("second", caption="tap")
    assert "at least 10 characters" in _last(bot)
    await chat.send(DESCRIPTION)
    assert "📷 2 of 5 photos received" in _last(bot)
    draft = await _draft_data(bot)
    assert draft is not None
    assert draft["description"] == DESCRIPTION
    assert draft["photo_file_ids"] == ["first", "second"]


async def test_photos_stop_at_five_and_text_is_refused(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.send("here it is")
    assert _last(bot).startswith("Please send photos, or tap Done")
    for n in range(7):
        await chat.send_photo(f"p{n}", media_group_id="big")
    status = _last(bot)
    assert status.startswith("📷 5 of 5 photos received.")
    assert "I can keep at most 5 photos; the others were not added." in status
    draft = await _draft_data(bot)
    assert draft is not None
    assert draft["photo_file_ids"] == [f"p{n}" for n in range(5)]


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("yesterday 9-12", "That time has already passed. Please choose a time in the future."),
        ("tomorrow 14:00-13:00", "The end of the window must be after its start."),
        ("tomorrow 10:00-10:15", "The window must be at least 30 minutes long."),
        ("2099-01-01 09:00-12:00", "Please choose a time within the next 60 days."),
        ("whenever suits", 'I could not read a time from that; try e.g. "tomorrow 9-12".'),
    ],
)
async def test_refused_windows_say_why_and_ask_again(
    bot: BotUnderTest, sandbox_app: Starlette, typed: str, reason: str
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.send(typed)
    text = _last(bot)
    assert text.startswith(reason)
    assert "When may a technician come?" in text
    assert "Tomorrow morning" in _labels(bot)


async def test_a_window_can_be_changed_before_it_is_confirmed(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.send("tomorrow 9-12")
    await chat.press(_press("change"))
    assert "When may a technician come?" in _last(bot)
    # Typing a new time while the echo waits is just as good as Change.
    await chat.send("tomorrow 9-12")
    await chat.send("tomorrow 14:00 to 16:00")
    assert "14:00–16:00. Is that right?" in _last(bot)
    await chat.press(_press("ok"))
    draft = await _draft_data(bot)
    assert draft is not None
    assert datetime.fromisoformat(draft["start"]) == _tomorrow_at(14)
    assert draft["window_confirmed"] is True


async def test_contacts_are_checked_remembered_and_offered_next_time(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.press(_press("when", "1a"))
    await chat.press(_press("ok"))
    refusal = (
        "That is not a phone number I can read. Please type one such as +86 139 1234 5678, "
        "or tap “📱 Share my phone”."
    )
    for not_a_phone in ("12", "9" * 101, "call me maybe", "\u200b\u200b\u200b"):
        await chat.send(not_a_phone)
        assert _last(bot) == refusal
    await chat.send_sticker()
    assert _last(bot).startswith("Please share your phone with the button")
    await chat.send("138 1234 5678")
    assert "📞 +86 138 1234 5678" in _last(bot)
    await chat.press(_press("confirm"))
    assert "created" in _last(bot)

    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.press(_press("when", "1a"))
    await chat.press(_press("ok"))
    assert "Or tap +86 138 1234 5678 to use it again." in _last(bot)
    assert [{"text": "+86 138 1234 5678"}] in bot.telegram.last.keyboard


async def test_a_contact_kept_before_phones_were_checked_is_not_offered_back(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    bot.app.user_data[BOB]["contact"] = "call me maybe"
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.press(_press("when", "1a"))
    await chat.press(_press("ok"))
    assert "How can the technician reach you?" in _last(bot)
    assert "Or tap" not in _last(bot)
    assert bot.telegram.last.keyboard == [
        [{"text": "📱 Share my phone", "request_contact": True}],
        [{"text": "✖ Stop"}],
    ]


async def test_the_summary_edits_one_part_and_comes_back(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await _up_to_summary(chat)
    await chat.press(_press("edit"))
    markup = bot.telegram.sent("editMessageReplyMarkup")[-1].params["reply_markup"]
    labels = [b["text"] for row in markup["inline_keyboard"] for b in row]
    assert labels == ["📝 Description", "📷 Photos", "🕒 Time", "📞 Contact", "⬅ Back", "✖ Stop"]
    await chat.press(_press("field", "description"))
    assert f"Now: “{DESCRIPTION}”" in _last(bot)
    await chat.send("The bathroom tap drips too.")
    assert "📝 The bathroom tap drips too." in _last(bot)
    await chat.press(_press("edit"))
    await chat.press(_press("field", "time"))
    await chat.send("tomorrow 15:00-17:00")
    await chat.press(_press("ok"))
    summary = _last(bot)
    assert "15:00–17:00" in summary
    assert "📞 +86 138 1234 5678" in summary
    await chat.press(_press("edit"))
    await chat.press(_press("field", "photos"))
    await chat.send_photo("late")
    await chat.press(_press("done"))
    assert "📷 Photos: 1" in _last(bot)
    await chat.press(_press("edit"))
    await chat.press(_press("back"))
    markup = bot.telegram.sent("editMessageReplyMarkup")[-1].params["reply_markup"]
    assert markup["inline_keyboard"][0][0]["text"] == "✅ Confirm"
    await chat.press(_press("confirm"))
    (repair,) = [r for r in await _repairs(bot) if r.description == "The bathroom tap drips too."]
    assert repair.start == _tomorrow_at(15)


async def test_cancel_with_the_button_and_with_the_command(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    before = len(await _repairs(bot))
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(_press("cancel"))
    assert _last(bot) == "Cancelled. Nothing was sent."
    assert await _draft_data(bot) is None
    await chat.send(DESCRIPTION)  # the conversation is over: the text is a new problem
    assert _last(bot).startswith("That sounds like something to repair:")
    assert await _draft_data(bot) is None

    await _up_to_summary(chat)
    await chat.press(_press("edit"))
    await chat.press(_press("field", "contact"))
    await chat.send("✖ Stop")  # the reply keyboard's Cancel
    assert _last(bot) == "Cancelled. Nothing was sent."
    assert bot.telegram.last.params["reply_markup"] == {"remove_keyboard": True}

    await chat.send("/repair")
    await chat.send("/cancel")
    assert _last(bot) == "Cancelled. Nothing was sent."
    assert len(await _repairs(bot)) == before


async def test_stale_and_forged_buttons_get_a_notice_and_the_same_step(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.press(_press("confirm"))  # a summary button while describing
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.send(DESCRIPTION)
    await chat.press(_press("skip"))
    await chat.press(_press("when", "9z"))  # forged preset
    assert _last(bot).startswith("This button is no longer active.")
    assert "When may a technician come?" in _last(bot)
    await chat.press(_press("when", "1m"))
    assert "Is that right?" in _last(bot)
    await chat.press(_press("ok"))
    await chat.send("+86 138 0000 0002")
    await chat.press(_press("field", "nonsense"))
    assert _last(bot).startswith("This button is no longer active.")
    await chat.send_sticker()
    assert _last(bot).startswith("Please use the buttons below the summary.")
    await chat.press(_press("confirm"))
    assert "created" in _last(bot)
    await chat.press(_press("confirm"))  # pressed twice: the second finds nothing to do
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."
    assert len([r for r in await _repairs(bot) if r.description == DESCRIPTION]) == 1


async def test_akubela_down_at_confirm_keeps_the_report_for_later(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.send_photo("kept-photo")
    await chat.press(_press("done"))
    await chat.press(_press("when", "1m"))
    await chat.press(_press("ok"))
    await chat.send("+86 138 0000 0002")
    draft = await _draft_data(bot)
    assert draft is not None
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=503)
    )

    await chat.press(_press("confirm"))

    assert _last(bot).startswith("⏳ Akubela is not answering right now.")
    assert "you will hear back here" in _last(bot)
    (item,) = await vendor_writes(bot)
    assert item.kind == "akubela.repair.create"
    assert item.status == "pending"
    assert item.command_id == draft["command_id"]
    assert item.telegram_id == BOB
    assert item.write["photo_file_ids"] == ["kept-photo"]
    assert item.write["description"] == DESCRIPTION
    assert datetime.fromisoformat(item.write["start"]) == _tomorrow_at(9)
    assert await _draft_data(bot) is None


async def test_a_failed_confirm_says_why_and_offers_a_retry(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await _up_to_summary(chat)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api", status=403))
    await chat.press(_press("confirm"))
    assert _last(bot) == (
        "Akubela no longer accepts your login. Please link your account again with /start."
    )
    assert _labels(bot) == ["🔁 Try again", "✖ Stop"]
    faults.clear()
    await chat.press(_press("confirm"))
    assert "created" in _last(bot)


async def test_a_refused_report_is_explained_and_the_summary_stays(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _resident(bot, sandbox_app)
    await _up_to_summary(chat)
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=400, times=1)
    )
    await chat.press(_press("confirm"))
    text = _last(bot)
    assert text.startswith("Akubela refused that:")
    assert "📋 Please check your repair report:" in text
    assert _labels(bot) == ["✅ Confirm", "✏️ Edit", "✖ Stop"]
    assert await _draft_data(bot) is not None


async def test_an_idle_report_times_out_and_is_resumed(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with started(database_url, sandbox_app, conversation_timeout_minutes=0.004) as bot:
        chat = await _resident(bot, sandbox_app)
        await chat.send("/repair")
        await chat.send(DESCRIPTION)
        await asyncio.sleep(0.5)
        assert _last(bot).startswith("I stopped waiting after a while")
        assert "/repair" in _last(bot)
        await chat.press(_press("done"))  # the conversation is over
        assert _alerts(bot)[-1].startswith("This button is no longer active.")

        await chat.send("/repair")
        assert "You have an unfinished repair report:" in _last(bot)
        assert DESCRIPTION in _last(bot)
        await chat.press(_press("continue"))
        assert "You can add up to 5 photos" in _last(bot)
        await chat.press(_press("skip"))
        assert "When may a technician come?" in _last(bot)

        await chat.send("/repair")
        await chat.press(_press("restart"))
        assert "What needs repairing?" in _last(bot)
        draft = await _draft_data(bot)
        assert draft is not None
        assert draft["description"] == ""


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, persistence=DatabasePersistence(sessions)
    ) as first:
        chat = await _resident(first, sandbox_app)
        await chat.send("/repair")
        await chat.send(DESCRIPTION)
        await chat.send_photo("before-restart")
        await chat.press(_press("done"))
        await chat.press(_press("when", "1m"))
        await first.app.update_persistence()
    async with started(
        database_url,
        sandbox_app,
        persistence=DatabasePersistence(sessions),
        telegram=first.telegram,
    ) as second:
        chat = second.chat(BOB)
        await chat.press(_press("ok"))
        assert "How can the technician reach you?" in _last(second)
        await chat.send("+86 138 0000 0002")
        await chat.press(_press("confirm"))
        assert "created" in _last(second)
        (repair,) = [r for r in await _repairs(second) if r.description == DESCRIPTION]
        async with second.services.storage.sessions() as session:
            stored = await session.get(RepairReport, repair.id)
        assert stored is not None
        assert stored.photo_file_ids == ["before-restart"]
