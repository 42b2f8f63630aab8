"""Every repair in the community, as a manager lives it, against the Akubela sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.akubela_models import ManagerMaintenance
from bot.desks import AkubelaProjectDesk, repair_of
from bot.persistence import DatabasePersistence
from conversations import callbacks
from conversations.domain import Role
from conversations.project_repairs import (
    detail_text,
    filter_counts,
    filter_label,
    filtered,
    home_of,
    list_text,
    state_badge,
)
from conversations.records import Repair
from sandbox.akubela_seed import DOC_REPAIR, DOC_REPAIR_TO_DELETE
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

PROJECT = "p-demo-garden-court"  # the Akubela project of the demo community
TUYA_PROJECT = "1233823965050001"
MANAGER, RESIDENT, STRANGER, TUYA_MANAGER, ADMIN = 1101, 1102, 1103, 1104, 1105
REPAIR = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c0{}".format  # the sandbox's seed repairs 1..6
# ... and, oldest, the two of the vendor documents' examples.
NEWEST_FIRST = [REPAIR(n) for n in (1, 5, 2, 6, 3, 4)] + [DOC_REPAIR, DOC_REPAIR_TO_DELETE]
MANAGER_PATH = "/akubela/api/v1.0/invoke/open-ability/method/manager-commands"
ZONE = ZoneInfo("Asia/Shanghai")


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
    async with started(database_url, sandbox_app, admin_telegram_ids=[ADMIN]) as running:
        yield running


async def join(
    bot: BotUnderTest, telegram_id: int, project_id: str = PROJECT, *, lang: str = "en"
) -> None:
    """A manager joins the way staff do: an invite and /start <code>."""
    code = await bot.services.invites.create(
        Role.MANAGER,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        project_id=project_id,
        community_ids=[1],
    )
    await bot.chat(telegram_id, language_code=lang).send(f"/start {code}")
    bot.telegram.clear()


def _last(bot: BotUnderTest) -> str:
    """The newest text the bot showed; a detail's photos follow it (the list becomes the
    detail in place, the album comes under it)."""
    texts = [c for c in bot.telegram.replies() if c.method not in ("sendMediaGroup", "sendPhoto")]
    return texts[-1].text or "" if texts else ""


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _listed(bot: BotUnderTest) -> list[str]:
    """The repair ids the latest list offers, in order."""
    return [
        press.arg
        for row in bot.telegram.last_buttons()
        for b in row
        if (press := callbacks.parse(b.get("callback_data"))) and press.action == "open"
    ]


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("repairs_all", action, arg)


# ---- pure rules ------------------------------------------------------------------------------


def _repair(state: str, **kw: Any) -> Repair:
    return repair_of(ManagerMaintenance(maintenance_id=f"m-{state or 'none'}", state=state, **kw))


REPAIRS = [
    _repair("wait for confirmation"),
    _repair("In Progress "),
    _repair("completed"),
    _repair("closed"),
    _repair("on hold"),
]


def test_each_state_filter_shows_its_repairs_and_unknown_states_go_under_other() -> None:
    assert [r.id for r in filtered(REPAIRS, "progress")] == ["m-In Progress "]
    assert [r.id for r in filtered(REPAIRS, "other")] == ["m-on hold"]
    assert filtered(REPAIRS, "all") == REPAIRS
    assert filtered(REPAIRS, "bogus") == REPAIRS
    counts = filter_counts(REPAIRS)
    assert counts == {
        "all": 5,
        "waiting": 1,
        "progress": 1,
        "completed": 1,
        "closed": 1,
        "other": 1,
    }
    assert "other" not in filter_counts(REPAIRS[:4])


def test_states_and_filters_in_words_in_both_languages() -> None:
    for state, lang, badge in [
        ("wait for confirmation", "en", "⏳ waiting for confirmation"),
        ("completed", "zh", "✅ 已完成"),
        ("on hold", "zh", "❔ on hold"),
    ]:
        repair = _repair(state)
        assert state_badge(repair.state, repair.state_text, lang) == badge
    assert filter_label("all", "en") == "all"
    assert filter_label("other", "en") == "❔ other states"
    assert filter_label("closed", "zh").startswith("🔒 ")
    assert filter_label("closed", "zh") != filter_label("closed", "en")


def test_a_residence_is_named_by_family_and_building_else_by_id() -> None:
    assert home_of(_repair("closed", family_name="Wang", building_name="A")) == "Wang, A"
    assert home_of(_repair("closed", residence_id="r9")) == "r9"
    assert home_of(_repair("closed")) == "—"


def test_the_detail_names_every_field_in_the_communitys_zone() -> None:
    repair = _repair(
        "completed",
        residence_id="r3",
        family_name="Wang Home",
        building_name="Building A",
        description="Front door lock is stiff.",
        contact="+86 138",
        feedback="Lock oiled.",
        created_time=datetime(2026, 5, 1, 23, 30, tzinfo=UTC),
        start_time=datetime(2026, 5, 3, 1, 0, tzinfo=UTC),
        finish_time=datetime(2026, 5, 3, 4, 0, tzinfo=UTC),
    )
    now = datetime(2026, 5, 2, 2, 0, tzinfo=UTC)
    text = detail_text(repair, "en", ZONE, now)
    for part in (
        "✅ completed",
        "Wang Home · Building A",
        "Front door lock is stiff.",
        "+86 138",
        "Reported: 2026-05-02 07:30",  # 23:30 UTC is the next morning in Shanghai
        "09:00–12:00",
        "💬 Feedback: Lock oiled.",
    ):
        assert part in text
    # No vendor id in chat, for managers either: the short id names the repair.
    assert "m-completed" not in text
    assert "r3" not in text
    chinese = detail_text(repair, "zh", ZONE, now)
    assert "反馈：Lock oiled." in chinese
    assert "r3" not in chinese
    bare = detail_text(_repair("closed"), "en", ZONE, now)
    assert "Visit: —" in bare
    assert "Feedback" not in bare


def test_the_list_text_says_when_a_filter_shows_nothing() -> None:
    assert list_text([], "closed", 0, 1, "en") == "🏠 No repairs in the community (🔒 closed)."
    text = list_text(REPAIRS[:1], "all", 1, 3, "en")
    assert text.startswith("🏠 Repairs in the community (all), newest first, page 2 of 3:")


# ---- the adapter -----------------------------------------------------------------------------


def _list_shape(sandbox_app: Starlette, shape: str) -> None:
    """The manager list as a page object, or as the bare array Akubela's V4 pages show."""
    sandbox_app.state.control.vendors["akubela"].manager_list_bare = shape == "array"


@pytest.mark.parametrize("shape", ["page", "array"])
async def test_the_project_desk_reads_every_page(
    bot: BotUnderTest, sandbox_app: Starlette, shape: str
) -> None:
    _list_shape(sandbox_app, shape)
    desk = AkubelaProjectDesk(
        bot.services.akubela,
        bot.services.manager_auth,
        PROJECT,
        images=bot.services.images,
        page_size=2,
    )
    repairs = await desk.repairs()
    assert [r.id for r in repairs] == NEWEST_FIRST
    assert {r.residence_id for r in repairs} >= {"r3f9a1c2d4e5b6a7980c1d2e3f4a5b603"}


# ---- the conversation ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["page", "array"])
async def test_a_manager_pages_through_every_repair_newest_first(
    bot: BotUnderTest, sandbox_app: Starlette, shape: str
) -> None:
    _list_shape(sandbox_app, shape)
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.press("1:menu:repairs_all")
    assert _last(bot).startswith("🏠 Repairs in the community (all), newest first, page 1 of 2:")
    assert _listed(bot) == NEWEST_FIRST[:5]
    labels = [b["text"] for row in bot.telegram.last_buttons() for b in row]
    assert "• all (8)" in labels
    assert "⏳ waiting for confirmation (2)" in labels
    await chat.press(bot.telegram.button("Next"))
    assert "page 2 of 2" in _last(bot)
    assert _listed(bot) == NEWEST_FIRST[5:]
    await chat.press(bot.telegram.button("Prev"))
    assert _listed(bot) == NEWEST_FIRST[:5]


async def test_the_state_filter_narrows_the_list(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.send("/repairs_all")
    await chat.press(_press("filter", "waiting"))
    assert _last(bot).startswith("🏠 Repairs in the community (⏳ waiting for confirmation)")
    assert _listed(bot) == [REPAIR(1), REPAIR(5)]
    # The office moves a repair on: the next look shows it where it is now.
    sandbox_app.state.control.vendors["akubela"].advance("repair", REPAIR(1))
    await chat.press(_press("filter", "progress"))
    assert _listed(bot) == [REPAIR(1), REPAIR(2), REPAIR(6)]
    await chat.press(_press("filter", "closed"))
    assert _listed(bot) == [REPAIR(4), DOC_REPAIR_TO_DELETE]
    await chat.press(_press("filter", "other"))
    assert _last(bot) == "🏠 No repairs in the community (❔ other states)."
    await chat.press(_press("filter", "all"))
    assert len(_listed(bot)) == 5


async def test_the_detail_shows_every_field_and_the_residents_photos(bot: BotUnderTest) -> None:
    await join(bot, MANAGER)
    # Alice reported the leak through the bot with two photos.
    for file_id in ["alice-photo-1", "alice-photo-2"]:  # photos the resident sent through Telegram
        bot.telegram.photo(file_id)
    await bot.services.repair_reports.add(
        maintenance_id=REPAIR(1),
        telegram_id=RESIDENT,
        residence_id="r3f9a1c2d4e5b6a7980c1d2e3f4a5b601",
        photo_file_ids=["alice-photo-1", "alice-photo-2"],
        description="Kitchen tap drips all night.",
    )
    chat = bot.chat(MANAGER)
    await chat.send("/repairs_all")
    await chat.press(_press("open", REPAIR(1)))
    albums = bot.telegram.sent("sendMediaGroup")
    assert len(albums) == 1
    media = albums[0].params["media"]
    # Her two Telegram photos and Akubela's own picture of the repair.
    assert [m["media"] for m in media[:2]] == ["alice-photo-1", "alice-photo-2"]
    assert len(media) == 3
    assert media[0]["caption"] == "📷 Photos of repair #2d3c01"
    text = _last(bot)
    assert text.startswith("Repair #2d3c01 — ⏳ waiting for confirmation")
    assert "Chen Home / 陈家 · Building A / A栋" in text
    assert "Kitchen tap drips all night." in text
    # A repair reported elsewhere has no photos of ours, and shows its feedback.
    await chat.press(bot.telegram.button("Back to the list"))
    await chat.press(_press("open", REPAIR(3)))
    assert len(bot.telegram.sent("sendMediaGroup", "sendPhoto")) == 1
    assert "💬 Feedback: Lock cleaned and oiled." in _last(bot)
    assert "Wang Home / 王家" in _last(bot)


async def test_a_single_photo_goes_as_a_photo(bot: BotUnderTest) -> None:
    await join(bot, MANAGER)
    for file_id in ["dave-photo"]:  # photos the resident sent through Telegram
        bot.telegram.photo(file_id)
    await bot.services.repair_reports.add(
        maintenance_id=REPAIR(5),
        telegram_id=RESIDENT,
        residence_id="r3f9a1c2d4e5b6a7980c1d2e3f4a5b605",
        photo_file_ids=["dave-photo"],
        description="Air conditioner makes a noise.",
    )
    chat = bot.chat(MANAGER)
    await chat.send("/repairs_all")
    await chat.press(_press("open", REPAIR(5)))
    photos = bot.telegram.sent("sendPhoto")
    assert [p.params["photo"] for p in photos] == ["dave-photo"]


async def test_the_views_in_chinese(bot: BotUnderTest) -> None:
    await join(bot, MANAGER, lang="zh")
    chat = bot.chat(MANAGER, language_code="zh")
    await chat.send("/repairs_all")
    assert _last(bot).startswith("🏠 社区报修（全部），最新的在前，第 1 / 2 页：")
    await chat.press(_press("open", REPAIR(3)))
    assert _last(bot).startswith("报修单 #2d3c03 — ✅ 已完成")
    assert "💬 反馈：Lock cleaned and oiled." in _last(bot)


async def test_only_managers_of_this_community_and_admins_see_it(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, RESIDENT)
    await join(bot, TUYA_MANAGER, TUYA_PROJECT)
    await bot.chat(RESIDENT).send("/repairs_all")
    assert _last(bot) == "Sorry, that is not available to you."
    await bot.chat(STRANGER).press("1:menu:repairs_all")
    assert _last(bot) == "Sorry, that is not available to you."
    await bot.chat(TUYA_MANAGER).send("/repairs_all")
    assert _last(bot) == "Sorry, that record is not yours."
    # A forged press by someone who was refused opens nothing.
    await bot.chat(RESIDENT).press(_press("open", REPAIR(1)))
    assert not any("Kitchen tap" in (c.text or "") for c in bot.telegram.replies())
    await bot.chat(ADMIN).send("/repairs_all")
    assert _last(bot).startswith("🏠 Repairs in the community (all)")


async def test_stale_forged_and_typed_input_change_nothing(bot: BotUnderTest) -> None:
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.send("/repairs_all")
    await chat.press(_press("open", "m-not-a-repair"))
    texts = [c.text for c in bot.telegram.replies()[-2:]]
    assert texts[0] == "Sorry, that repair is not in the list (any more)."
    assert (texts[1] or "").startswith("🏠 Repairs in the community (all)")
    await chat.press(_press("filter", "everything"))
    assert _last(bot).startswith("🏠 Repairs in the community (all)")
    await chat.press(_press("zap", "1"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.send("show me the leaks")
    # A list takes no typed text: it is read as with no list open (issue 15).
    assert _last(bot).startswith("That sounds like something to repair")
    await chat.press(_press("cancel"))
    assert _last(bot) == "Closed."
    await chat.press(_press("page", "1"))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."


async def test_cancel_by_command(bot: BotUnderTest) -> None:
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.send("/repairs_all")
    await chat.send("/cancel")
    assert _last(bot) == "Closed."


async def test_akubela_down_offers_a_retry(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await join(bot, MANAGER)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path=MANAGER_PATH, status=503))
    chat = bot.chat(MANAGER)
    await chat.send("/repairs_all")
    assert _last(bot) == "Akubela is not answering right now. Please try again in a moment."
    await chat.press(bot.telegram.button("Try again"))
    assert _last(bot) == "Akubela is not answering right now. Please try again in a moment."
    faults.clear()
    await chat.press(bot.telegram.button("Try again"))
    assert _last(bot).startswith("🏠 Repairs in the community (all)")
    # Down again while opening one: the retry opens that same repair.
    faults.add(FaultRule(FaultKind.RATE_LIMIT, path=MANAGER_PATH, retry_after=0))
    await chat.press(_press("open", REPAIR(2)))
    assert _last(bot) == "Akubela is busy right now. Please try again in a minute."
    faults.clear()
    await chat.press(bot.telegram.button("Try again"))
    assert _last(bot).startswith("Repair #2d3c02")


async def test_a_refused_manager_login_is_for_the_administrator(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with started(
        database_url, sandbox_app, akubela_manager_password=SecretStr("not-the-password")
    ) as bot:
        await join(bot, MANAGER)
        await bot.chat(MANAGER).send("/repairs_all")
        assert _last(bot) == (
            "Akubela no longer accepts the bot's manager login. Please tell the administrator."
        )
        assert "not-the-password" not in str(bot.telegram.calls)


async def test_silence_closes_the_list(database_url: str, sandbox_app: Starlette) -> None:
    async with started(database_url, sandbox_app, conversation_timeout_minutes=0.002) as bot:
        await join(bot, MANAGER)
        chat = bot.chat(MANAGER)
        await chat.send("/repairs_all")
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "I stopped waiting" in _last(bot):
                break
        assert "send /repairs_all to pick up where you left off" in _last(bot)
        await chat.press(_press("page", "1"))
        assert _alerts(bot)[-1].startswith("This button is no longer active.")


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, persistence=DatabasePersistence(sessions)
    ) as first:
        await join(first, MANAGER)
        chat = first.chat(MANAGER)
        await chat.send("/repairs_all")
        await chat.press(_press("filter", "closed"))
        await first.app.update_persistence()
    async with started(
        database_url,
        sandbox_app,
        persistence=DatabasePersistence(sessions),
        telegram=first.telegram,
    ) as second:
        await second.chat(MANAGER).press(_press("open", REPAIR(4)))
        assert _last(second).startswith("Repair #2d3c04 — 🔒 closed")
        await second.chat(MANAGER).press(_press("page", "0"))
        # The filter chosen before the restart is still the one applied.
        assert _last(second).startswith("🏠 Repairs in the community (🔒 closed)")
