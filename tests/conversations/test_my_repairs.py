"""Following one's repairs, as a resident lives it, against the Akubela sandbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.akubela_models import Maintenance
from bot.desks import repair_of
from bot.persistence import DatabasePersistence
from conversations import callbacks
from conversations.my_repairs import (
    find,
    finished_ids,
    key_of,
    newest_first,
    page_of,
    snippet,
    state_emoji,
    state_words,
)
from conversations.ports import ResidentDesk
from conversations.records import Repair
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule, FaultWhen
from tests.support_bot import (
    BotUnderTest,
    link_demo_resident,
    run_writes_job,
    running_bot,
    vendor_writes,
)
from tests.support_telegram import Chat

ALICE = 901  # two homes; her first has a repair waiting (with a picture) and one in progress
BOB = 902  # one home, with one completed repair
ALICE_WAITING = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c01"
ALICE_IN_PROGRESS = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c02"
BOB_COMPLETED = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c03"


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


async def _alice(bot: BotUnderTest, sandbox_app: Starlette, *, lang: str = "en") -> Chat:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    return bot.chat(ALICE, language_code=lang)


async def _bob(bot: BotUnderTest, sandbox_app: Starlette, *, lang: str = "en") -> Chat:
    await link_demo_resident(bot, sandbox_app, BOB)
    return bot.chat(BOB, language_code=lang)


async def _desk(bot: BotUnderTest, telegram_id: int) -> ResidentDesk:
    desk = await bot.services.resident_desk(telegram_id)
    assert desk is not None
    return desk


async def _ids(bot: BotUnderTest, telegram_id: int) -> set[str]:
    return {r.id for r in await (await _desk(bot, telegram_id)).repairs()}


async def _report(bot: BotUnderTest, telegram_id: int, description: str) -> str:
    start = datetime.now(UTC) + timedelta(days=1)
    repair_id = await (await _desk(bot, telegram_id)).report_repair(
        start=start,
        finish=start + timedelta(hours=2),
        description=description,
        contact="+86 138 0000 0002",
        command_id=f"test-{description[-1]}",
    )
    assert repair_id is not None
    return repair_id


def _vendor(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["akubela"]


def _last(bot: BotUnderTest) -> str:
    """The newest text the bot showed; a detail's photos follow it (the list becomes the
    detail in place, the album comes under it)."""
    texts = [c for c in bot.telegram.replies() if c.method not in ("sendMediaGroup", "sendPhoto")]
    return texts[-1].text or "" if texts else ""


def _labels(bot: BotUnderTest) -> list[str]:
    return [b["text"] for row in bot.telegram.last_buttons() for b in row]


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("repairs", action, arg)


# ---- pure rules ------------------------------------------------------------------------------


def _repair(repair_id: str, state: str = "in progress", minutes: int | None = 0) -> Repair:
    created = (
        None if minutes is None else datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    )
    return repair_of(Maintenance(maintenance_id=repair_id, state=state, created_time=created))


@pytest.mark.parametrize(
    ("state", "emoji", "words"),
    [
        ("wait for confirmation", "⏳", "waiting for confirmation"),
        ("in progress", "🔧", "in progress"),
        ("completed", "✅", "completed"),
        ("Closed", "🔒", "closed"),
        ("on hold", "❔", "on hold"),
        ("", "❔", "?"),
    ],
)
def test_each_state_has_an_emoji_and_words(state: str, emoji: str, words: str) -> None:
    repair = _repair("r", state)
    assert state_emoji(repair.state) == emoji
    assert state_words(repair.state, repair.state_text) == words


def test_newest_first_with_undated_repairs_last() -> None:
    repairs = [_repair("a", minutes=1), _repair("b", minutes=None), _repair("c", minutes=5)]
    assert [r.id for r in newest_first(repairs)] == ["c", "a", "b"]


def test_pages_of_five_are_clamped_into_range() -> None:
    items = [_repair(str(n), minutes=n) for n in range(7)]
    assert [r.id for r in page_of(items, 1)[0]] == ["5", "6"]
    assert page_of(items, 9)[1:] == (1, 2)
    assert page_of(items, -1)[1] == 0
    assert page_of([], 0) == ([], 0, 1)


def test_clear_takes_only_closed_and_completed() -> None:
    repairs = [
        _repair("a", "completed"),
        _repair("b", "closed"),
        _repair("c", "wait for confirmation"),
        _repair("d", "on hold"),
    ]
    assert finished_ids(repairs) == ["a", "b"]


def test_buttons_name_repairs_by_a_key_found_only_in_the_list() -> None:
    odd = "id with spaces/and:colons"
    repairs = [_repair(ALICE_WAITING), _repair(odd)]
    assert key_of(ALICE_WAITING) == ALICE_WAITING
    assert len(callbacks.build("repairs", "open", key_of(odd))) <= 64
    assert find(repairs, key_of(odd)) is repairs[1]
    assert find(repairs, BOB_COMPLETED) is None
    assert find(repairs, "") is None


def test_snippets_stay_on_one_short_line() -> None:
    assert snippet("Kitchen\ntap drips") == "Kitchen tap drips"
    assert snippet("x" * 40, 10) == "x" * 9 + "…"


# ---- the conversation ------------------------------------------------------------------------


async def test_the_list_is_newest_first_and_paged_by_five(
    bot: BotUnderTest, sandbox_app: Starlette, clock: Clock
) -> None:
    chat = await _bob(bot, sandbox_app)
    for n in range(1, 7):
        clock.advance(60)
        await _report(bot, BOB, f"Report number {n}")
    await chat.send("/repairs")
    first = _last(bot)
    assert first.startswith("📋 Your repairs (page 1 of 2):")
    lines = first.split("\n")[1:6]
    assert [line.rsplit(" · ", 1)[1] for line in lines] == [
        f"Report number {n}" for n in (6, 5, 4, 3, 2)
    ]
    assert lines[0].startswith("⏳ waiting for confirmation · #")
    assert "Next ▶" in _labels(bot)
    assert "◀ Previous" not in _labels(bot)
    await chat.press(_press("page", "1"))
    second = _last(bot)
    assert second.startswith("📋 Your repairs (page 2 of 2):")
    assert "Report number 1" in second
    assert f"✅ completed · #{BOB_COMPLETED[-6:]} · Front door lock is stiff." in second
    assert "◀ Previous" in _labels(bot)
    assert "🧹 Clear closed and completed (1)" in _labels(bot)
    await chat.press(_press("page", "0"))
    assert _last(bot).startswith("📋 Your repairs (page 1 of 2):")


async def test_the_list_and_detail_in_chinese(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = await _bob(bot, sandbox_app, lang="zh")
    await chat.press(callbacks.build("menu", "repairs"))
    assert _last(bot).startswith("📋 您的报修（第 1 页，共 1 页）：")
    assert "✅ 已完成 · #" in _last(bot)
    await chat.press(_press("open", BOB_COMPLETED))
    detail = _last(bot)
    assert detail.startswith(f"报修单 #{BOB_COMPLETED[-6:]} — ✅ 已完成")
    assert "💬 反馈：Lock cleaned and oiled." in detail
    assert "🧹 从我的列表中移除" in _labels(bot)


async def test_the_detail_shows_every_field_and_the_photos(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _bob(bot, sandbox_app)
    desk = await _desk(bot, BOB)
    for file_id in ["lock-1", "lock-2"]:  # photos the resident sent through Telegram
        bot.telegram.photo(file_id)
    await bot.services.repair_reports.add(
        maintenance_id=BOB_COMPLETED,
        telegram_id=BOB,
        residence_id=desk.residence_id,
        photo_file_ids=["lock-1", "lock-2"],
        description="Front door lock is stiff.",
    )
    repair = await desk.repair(BOB_COMPLETED)
    assert repair.start is not None
    assert repair.created is not None
    await chat.send("/repairs")
    await chat.press(_press("open", BOB_COMPLETED))
    (album,) = bot.telegram.sent("sendMediaGroup")
    assert [m["media"] for m in album.params["media"]] == ["lock-1", "lock-2"]
    assert album.params["media"][0]["caption"] == f"📷 Photos of repair #{BOB_COMPLETED[-6:]}"
    detail = _last(bot)
    local_created = repair.created.astimezone(bot.settings.zone).strftime("%Y-%m-%d %H:%M")
    local_start = repair.start.astimezone(bot.settings.zone).strftime("%H:%M")
    assert detail.startswith(f"Repair #{BOB_COMPLETED[-6:]} — ✅ completed")
    assert BOB_COMPLETED not in detail
    assert "📝 Front door lock is stiff." in detail
    assert "🕒 Visit: " in detail
    assert local_start in detail
    assert f"🗓 Reported: {local_created}" in detail
    assert "📞 +86 138 0000 0003" in detail
    assert "💬 Feedback: Lock cleaned and oiled. 门锁已清洁上油。" in detail
    assert _labels(bot) == ["🧹 Remove from my list", "⬅ Back to the list", "✖ Close"]
    await chat.press(_press("page", "0"))
    assert _last(bot).startswith("📋 Your repairs")


async def test_akubela_pictures_are_sent_as_photos(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _alice(bot, sandbox_app)
    await chat.send("/repairs")
    await chat.press(_press("open", ALICE_WAITING))
    (photo,) = bot.telegram.sent("sendPhoto")
    assert photo.params["caption"] == f"📷 Photos of repair #{ALICE_WAITING[-6:]}"
    assert _last(bot).startswith(f"Repair #{ALICE_WAITING[-6:]} — ⏳ waiting for confirmation")


async def test_an_unknown_state_is_shown_as_sent(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    _vendor(sandbox_app)._repairs[BOB_COMPLETED].state = "on hold"
    chat = await _bob(bot, sandbox_app)
    await chat.send("/repairs")
    assert "❔ on hold · #" in _last(bot)
    assert "🧹 Clear closed and completed (1)" not in _labels(bot)


async def test_cancel_one_after_a_confirmation(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = await _alice(bot, sandbox_app)
    await chat.send("/repairs")
    await chat.press(_press("open", ALICE_WAITING))
    await chat.press(_press("drop", ALICE_WAITING))
    assert _last(bot) == (
        f"Cancel repair #{ALICE_WAITING[-6:]} “Kitchen tap drips all night.”? "
        "This cannot be undone."
    )
    await chat.press(_press("no"))
    assert _last(bot).startswith("Nothing was deleted.")
    assert ALICE_WAITING in await _ids(bot, ALICE)
    await chat.press(_press("drop", ALICE_WAITING))
    await chat.press(_press("yes"))
    assert _last(bot).startswith(f"🗑 Repair #{ALICE_WAITING[-6:]} is cancelled.")
    assert "📋 Your repairs (page 1 of 1):" in _last(bot)
    assert await _ids(bot, ALICE) == {ALICE_IN_PROGRESS}


async def test_a_finished_repair_is_removed_from_the_list_not_cancelled(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    """A completed repair cannot be called off any more; its detail offers to tidy it away."""
    chat = await _bob(bot, sandbox_app, lang="zh")
    await chat.send("/repairs")
    await chat.press(_press("open", BOB_COMPLETED))
    assert _labels(bot)[0] == "🧹 从我的列表中移除"
    await chat.press(_press("drop", BOB_COMPLETED))
    assert _last(bot).startswith(f"要从您的列表中移除报修单 #{BOB_COMPLETED[-6:]}")
    assert _labels(bot)[0] == "🧹 是的，移除"
    await chat.press(_press("yes"))
    assert _last(bot).startswith("🧹 已清除已关闭和已完成的报修：1 条。")
    assert BOB_COMPLETED not in await _ids(bot, BOB)


async def test_clear_closed_and_completed_says_how_many(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _bob(bot, sandbox_app)
    closed = await _report(bot, BOB, "Hall light is broken 1")
    _vendor(sandbox_app).advance("repair", closed, "close")
    waiting = await _report(bot, BOB, "Hall light is broken 2")
    await chat.send("/repairs")
    await chat.press(_press("clear"))
    assert _last(bot) == (
        "Delete the closed and completed repairs from your list (2)? This cannot be undone."
    )
    assert _labels(bot)[0] == "🧹 Yes, delete 2"
    await chat.press(_press("yes"))
    assert _last(bot).startswith("🧹 Closed and completed repairs cleared: 2.")
    assert await _ids(bot, BOB) == {waiting}
    await chat.press(_press("clear"))  # from the old list: nothing left to clear
    assert _last(bot).startswith("No closed or completed repairs to clear.")


async def test_presses_naming_someone_elses_or_forged_repairs_are_refused(
    bot: BotUnderTest, sandbox_app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    chat = await _bob(bot, sandbox_app)
    await chat.send("/repairs")
    with caplog.at_level(logging.WARNING, logger="conversations.my_repairs"):
        await chat.press(_press("open", ALICE_WAITING))
        assert _last(bot) == "Sorry, that repair is not in your list (any more)."
        await chat.press(_press("drop", ALICE_WAITING))
        assert _last(bot) == "Sorry, that repair is not in your list (any more)."
        await chat.press(_press("open", "forged"))
        assert _last(bot) == "Sorry, that repair is not in your list (any more)."
    assert sum("not in their list" in r.getMessage() for r in caplog.records) == 3
    assert not bot.telegram.sent("sendPhoto", "sendMediaGroup")
    assert ALICE_WAITING in {r for r in _vendor(sandbox_app)._repairs}


async def test_stale_buttons_and_typing_get_a_notice(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _bob(bot, sandbox_app)
    await chat.press(_press("yes"))  # no conversation at all
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."
    await chat.send("/repairs")
    await chat.press(_press("yes"))  # a confirmation button while browsing
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.send("show me")
    # A list takes no typed text: it is read as with no list open (issue 15).
    assert _last(bot).startswith("I did not understand that.")
    await chat.send_sticker()
    assert _last(bot).startswith("I did not understand that.")
    await chat.press(_press("cancel"))
    assert _last(bot) == "Closed."
    assert BOB_COMPLETED in await _ids(bot, BOB)


async def test_no_repairs_and_not_linked(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = await _bob(bot, sandbox_app)
    await (await _desk(bot, BOB)).cancel_repair(BOB_COMPLETED, command_id="test-empty")
    await chat.send("/repairs")
    assert _last(bot) == "You have no repairs. Send /repair to report one."
    await bot.chat(903).send("/repairs")
    assert "link your Akubela account" in _last(bot)


async def test_a_failed_list_offers_a_retry(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = await _bob(bot, sandbox_app)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api", status=503))
    await chat.send("/repairs")
    assert _last(bot) == "Akubela is not answering right now. Please try again in a moment."
    assert _labels(bot) == ["🔁 Try again", "✖ Close"]
    faults.clear()
    await chat.press(_press("page", "0"))
    assert _last(bot).startswith("📋 Your repairs (page 1 of 1):")


async def test_a_cancel_whose_answer_is_lost_is_reported_as_done(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _alice(bot, sandbox_app)
    await chat.send("/repairs")
    await chat.press(_press("drop", ALICE_WAITING))
    # Akubela deletes it, and the answer never arrives.
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.DROP, path="/akubela/api", times=1, when=FaultWhen.AFTER)
    )
    await chat.press(_press("yes"))
    await run_writes_job(bot)
    texts = [c.text or "" for c in bot.telegram.sent("sendMessage", "editMessageText")]
    cancelled = f"🗑 Repair #{ALICE_WAITING[-6:]} is cancelled."
    assert sum(cancelled in text for text in texts) == 1, texts
    assert not [t for t in texts if "not found" in t or "could not" in t.lower()], texts
    [write] = await vendor_writes(bot)
    assert (write.status, write.record_id) == ("done", ALICE_WAITING)


async def test_akubela_down_at_delete_keeps_it_for_later(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _alice(bot, sandbox_app)
    await chat.send("/repairs")
    await chat.press(_press("drop", ALICE_WAITING))
    draft = await bot.services.storage.drafts.load(ALICE, "repairs")
    assert draft is not None
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=503)
    )
    await chat.press(_press("yes"))
    assert _last(bot) == (
        "⏳ Akubela is not answering right now. Your request is kept and will be sent as soon "
        "as Akubela answers; you will hear back here."
    )
    (item,) = await vendor_writes(bot)
    assert item.kind == "akubela.repair.cancel"
    assert item.command_id == draft["command_id"]
    assert item.write == {
        "kind": "akubela.repair.cancel",
        "residence_id": (await _desk(bot, ALICE)).residence_id,
        "repair_id": ALICE_WAITING,
    }
    sandbox_app.state.control.faults.clear()
    assert ALICE_WAITING in await _ids(bot, ALICE)


async def test_a_repair_gone_meanwhile_is_explained_with_the_fresh_list(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = await _alice(bot, sandbox_app)
    await chat.send("/repairs")
    await chat.press(_press("drop", ALICE_WAITING))
    await (await _desk(bot, ALICE)).cancel_repair(ALICE_WAITING, command_id="elsewhere")
    await chat.press(_press("yes"))
    assert _last(bot).startswith(
        "That record no longer exists; it may have been removed meanwhile."
    )
    assert "📋 Your repairs (page 1 of 1):" in _last(bot)


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, persistence=DatabasePersistence(sessions)
    ) as first:
        chat = await _alice(first, sandbox_app)
        await chat.send("/repairs")
        await chat.press(_press("drop", ALICE_WAITING))
        await first.app.update_persistence()
    async with started(
        database_url,
        sandbox_app,
        persistence=DatabasePersistence(sessions),
        telegram=first.telegram,
    ) as second:
        await second.chat(ALICE).press(_press("yes"))
        assert _last(second).startswith(f"🗑 Repair #{ALICE_WAITING[-6:]} is cancelled.")
        assert await _ids(second, ALICE) == {ALICE_IN_PROGRESS}


async def test_an_idle_list_times_out(database_url: str, sandbox_app: Starlette) -> None:
    async with started(database_url, sandbox_app, conversation_timeout_minutes=0.004) as bot:
        chat = await _bob(bot, sandbox_app)
        await chat.send("/repairs")
        await asyncio.sleep(0.5)
        assert _last(bot).startswith("I stopped waiting after a while")
        await chat.press(_press("open", BOB_COMPLETED))
        assert _alerts(bot)[-1].startswith("This button is no longer active.")
