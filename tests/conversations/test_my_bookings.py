"""My bookings and /code, as a resident lives them, against the Akubela sandbox."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import qrcode
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.akubela_models import Booking as AkubelaBooking
from bot.desks import booking_of
from bot.persistence import DatabasePersistence
from bot.storage.models import WriteRecord
from conversations import callbacks
from conversations.my_bookings import (
    amenity_label,
    booking_details,
    code_from_text,
    decode_qr,
    page_of,
    split_bookings,
    toggled,
)
from conversations.records import Booking
from sandbox.akubela_seed import GYM
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule, FaultWhen
from tests.support_bot import BotUnderTest, link_demo_resident, run_writes_job, running_bot

ALICE = 701  # two homes; her first has a gym booking tomorrow and a BBQ in two days
BOB = 702  # one home, with a meeting-room booking waiting for approval
ZONE = ZoneInfo("Asia/Shanghai")
ALICE_GYM = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"
ALICE_BBQ = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e06"
BOBS = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02"


@asynccontextmanager
async def started(
    database_url: str,
    sandbox_app: Starlette,
    sessions: async_sessionmaker[AsyncSession],
    **kw: Any,
) -> AsyncIterator[BotUnderTest]:
    """The bot as in production: persistent conversations, a running job queue (time-outs)."""
    kw.setdefault("persistence", DatabasePersistence(sessions))
    async with running_bot(database_url, sandbox_app, **kw) as bot:
        assert bot.app.job_queue is not None
        await bot.app.job_queue.start()
        try:
            yield bot
        finally:
            await bot.app.job_queue.stop(wait=False)


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[BotUnderTest]:
    async with started(database_url, sandbox_app, sessions) as running:
        yield running


def _akubela(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["akubela"]


def _state(sandbox_app: Starlette, booking_id: str) -> str:
    return str(_akubela(sandbox_app)._bookings[booking_id].state)


def _last(bot: BotUnderTest) -> str:
    return bot.telegram.last.text or ""


def _button_labels(bot: BotUnderTest) -> list[str]:
    return [b["text"] for row in bot.telegram.last_buttons() for b in row]


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("bookings", action, arg)


# ---- pure rules ------------------------------------------------------------------------------


def _booking(booking_id: str, start: datetime, state: str = "success", **kw: Any) -> Booking:
    return booking_of(
        AkubelaBooking(
            booking_id=booking_id,
            amenity_name="Gym / 健身房",
            start_time=start,
            finish_time=start + timedelta(hours=1),
            state=state,
            pin_code="123456",
            **kw,
        )
    )


NOW = datetime(2026, 5, 11, 4, 0, tzinfo=UTC)


def test_bookings_split_into_upcoming_soonest_first_and_the_rest_latest_first() -> None:
    later = _booking("a", NOW + timedelta(days=2))
    sooner = _booking("b", NOW + timedelta(hours=2), state="pending")
    cancelled = _booking("c", NOW + timedelta(days=1), state="canceled")
    over = _booking("d", NOW - timedelta(days=1))
    running = _booking("e", NOW - timedelta(minutes=30))
    expired = _booking("f", NOW + timedelta(hours=1), is_expired=True)
    upcoming, past = split_bookings([later, sooner, cancelled, over, running, expired], NOW)
    assert [b.id for b in upcoming] == ["e", "b", "a"]
    assert [b.id for b in past] == ["c", "f", "d"]


def test_pages_are_clamped_into_range() -> None:
    items = [_booking(str(i), NOW + timedelta(days=i)) for i in range(7)]
    assert [b.id for b in page_of(items, 1)[0]] == ["5", "6"]
    assert page_of(items, 9)[1:] == (1, 2)
    assert page_of(items, -3)[1] == 0
    assert page_of([], 0) == ([], 0, 1)


def test_toggling_adds_then_removes() -> None:
    assert toggled(["a"], "b") == ["a", "b"]
    assert toggled(["a", "b"], "a") == ["b"]


def test_amenity_names_follow_the_language() -> None:
    assert amenity_label("Gym / 健身房", "en") == "Gym"
    assert amenity_label("Gym / 健身房", "zh") == "健身房"
    assert amenity_label("Sauna", "zh") == "Sauna"


def test_the_pin_shows_only_for_a_confirmed_upcoming_booking() -> None:
    assert "123456" in booking_details(_booking("a", NOW + timedelta(days=1)), "en", ZONE, NOW)
    pending = booking_details(_booking("b", NOW + timedelta(days=1), "pending"), "en", ZONE, NOW)
    assert "123456" not in pending
    assert "hear back" in pending
    assert "123456" not in booking_details(_booking("c", NOW - timedelta(days=1)), "en", ZONE, NOW)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("  k4c3d2e1f0a9b8c7  ", "k4c3d2e1f0a9b8c7"),
        ("https://x.example/media/qr/kABC123.png", "kABC123"),
        ("https://x.example/join?booking_code=kXYZ99", "kXYZ99"),
        ("abc", None),
        ("two words", None),
        ("", None),
        ("x" * 65, None),
        ("预约码1234", None),
    ],
)
def test_booking_codes_are_read_from_text_or_links(typed: str, code: str | None) -> None:
    assert code_from_text(typed) == code


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_qr_code_is_decoded_from_a_picture_and_anything_else_gives_none() -> None:
    assert decode_qr(_png(qrcode.make("kHELLO42"))) == "kHELLO42"
    assert decode_qr(_png(Image.new("RGB", (64, 64), (200, 30, 30)))) is None
    assert decode_qr(b"not an image") is None


# ---- the conversation ------------------------------------------------------------------------


async def test_the_list_shows_upcoming_bookings_and_a_confirmed_one_opens_with_pin_and_qr(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    assert "Your upcoming bookings:" in _last(bot)
    labels = _button_labels(bot)
    assert any(label.startswith("Gym: Tomorrow") and "(confirmed)" in label for label in labels)
    assert any(label.startswith("BBQ terrace:") for label in labels)
    assert bot.telegram.sent("sendChatAction")
    await chat.press(_press("open", ALICE_GYM))
    photo = bot.telegram.sent("sendPhoto")[-1]
    pin = _akubela(sandbox_app)._bookings[ALICE_GYM].pin_code
    assert f"PIN code: {pin}" in (photo.text or "")
    assert "Status: confirmed" in (photo.text or "")
    assert [b["text"] for row in photo.buttons for b in row][:2] == [
        "🗑 Cancel this booking",
        "◀ Back to the list",
    ]


async def test_in_chinese(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(database_url, sandbox_app, sessions) as bot:
        await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
        chat = bot.chat(ALICE, language_code="zh")
        await chat.send("/bookings")
        assert "您即将进行的预约" in _last(bot)
        assert any(label.startswith("健身房：明天") for label in _button_labels(bot))
        await chat.press(_press("open", ALICE_GYM))
        assert "PIN 码" in (bot.telegram.sent("sendPhoto")[-1].text or "")


async def test_the_menu_button_opens_the_list(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await bot.chat(BOB).press(callbacks.build("menu", "bookings"))
    assert "Your upcoming bookings:" in _last(bot)
    assert any("waiting for approval" in label for label in _button_labels(bot))


async def test_an_unlinked_user_is_offered_the_link(bot: BotUnderTest) -> None:
    await bot.chat(709).send("/bookings")
    assert "link your Akubela account" in _last(bot)


async def _book_gym_days(bot: BotUnderTest, telegram_id: int, days: range) -> None:
    desk = await bot.services.resident_desk(telegram_id)
    assert desk is not None
    today = datetime.now(ZONE).date()
    for offset in days:
        start = datetime.combine(today + timedelta(days=offset), time(9, 0), tzinfo=ZONE)
        await desk.book(amenity_id=GYM, start=start, duration_minutes=30, command_id=f"c{offset}")


async def test_pages_and_past_bookings(
    bot: BotUnderTest, sandbox_app: Starlette, clock: Clock
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    await _book_gym_days(bot, ALICE, range(3, 8))
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    assert "Page 1 of 2" in _last(bot)
    assert len([label for label in _button_labels(bot) if ":" in label]) == 5
    await chat.press(bot.telegram.button("Next ▶"))
    assert bot.telegram.last.method == "editMessageText"
    assert "Page 2 of 2" in _last(bot)
    assert "◀ Previous" in _button_labels(bot)
    await chat.press(bot.telegram.button("Past bookings"))
    assert "You have no past bookings." in _last(bot)
    # Ten days on, every one of them is over.
    clock.advance(10 * 24 * 3600)
    bot.services.clock = clock.now
    await chat.press(bot.telegram.button("Upcoming bookings"))
    assert "You have no upcoming bookings" in _last(bot)
    await chat.press(_press("view", "past"))
    assert "Your past and cancelled bookings:" in _last(bot)
    assert "Page 1 of 2" in _last(bot)
    await chat.press(_press("open", ALICE_GYM))
    details = bot.telegram.last
    # A past booking has no QR code: the list becomes its detail in place.
    assert details.method == "editMessageText"
    assert "PIN" not in (details.text or "")
    assert "Cancel this booking" not in str(details.buttons)


async def test_cancel_one_booking_after_confirming(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(_press("open", ALICE_GYM))
    await chat.press(_press("drop", ALICE_GYM))
    assert _last(bot).startswith("Cancel this booking?\nGym:")
    assert _state(sandbox_app, ALICE_GYM) == "success"
    await chat.press(_press("yes"))
    assert _last(bot) == "Done: the booking is cancelled."
    assert _state(sandbox_app, ALICE_GYM) == "canceled"
    assert await bot.services.storage.drafts.load(ALICE, "bookings") is None


async def test_no_keeps_the_booking(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(_press("drop", ALICE_GYM))
    await chat.press(_press("no"))
    assert "Your upcoming bookings:" in _last(bot)
    await chat.press(_press("yes"))
    assert "This button is no longer active." in _alerts(bot)
    assert _state(sandbox_app, ALICE_GYM) == "success"


async def test_cancel_several_with_toggles(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(bot.telegram.button("Cancel several"))
    await chat.press(_press("sel_done"))
    assert "Choose at least one booking first." in _alerts(bot)
    await chat.press(_press("tog", ALICE_GYM))
    await chat.press(_press("tog", ALICE_BBQ))
    await chat.press(_press("tog", ALICE_BBQ))
    await chat.press(_press("tog", ALICE_BBQ))
    labels = _button_labels(bot)
    assert sum(label.startswith("☑") for label in labels) == 2
    assert "🗑 Cancel the selected (2)" in labels
    await chat.press(_press("sel_done"))
    assert _last(bot).startswith("Cancel these 2 bookings?")
    await chat.press(_press("yes"))
    assert _last(bot) == "Done: 2 bookings are cancelled."
    assert _state(sandbox_app, ALICE_GYM) == _state(sandbox_app, ALICE_BBQ) == "canceled"


async def test_a_booking_that_is_not_yours_is_neither_shown_nor_cancelled(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    shown = len(bot.telegram.replies())
    for forged in (_press("open", BOBS), _press("drop", BOBS)):
        await chat.press(forged)
    await chat.send("/bookings")
    await chat.press(_press("select"))
    await chat.press(_press("tog", BOBS))
    assert _alerts(bot).count("That booking is not in your list (any more).") == 3
    assert not any(BOBS in str(c.buttons) for c in bot.telegram.replies()[shown:])
    assert _state(sandbox_app, BOBS) == "pending"


async def test_stale_and_unknown_presses_and_typing_where_buttons_are_expected(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(_press("page", "x"))
    await chat.press("1:bookings:open")
    assert _alerts(bot)[-1] == "That booking is not in your list (any more)."
    # A list takes no typed text: it is read as it would be with no list open, and the list
    # stays open for its buttons.
    await chat.send("show me the gym")
    assert _last(bot).startswith("I did not understand that.")
    await chat.send_sticker()
    assert _last(bot).startswith("I did not understand that.")
    await chat.press(_press("cancel"))
    assert _last(bot) == "Closed."
    await chat.press(_press("open", ALICE_GYM))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."
    assert "This button is no longer active." in _alerts(bot)


async def test_slash_cancel_forgets_the_choice(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(_press("drop", ALICE_GYM))
    await chat.send("/cancel")
    assert _last(bot) == "Closed."
    assert await bot.services.storage.drafts.load(ALICE, "bookings") is None
    await chat.send("/bookings")
    assert "Your upcoming bookings:" in _last(bot)


async def test_silence_ends_the_conversation_and_bookings_picks_the_confirmation_up(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, sessions, conversation_timeout_minutes=0.002
    ) as bot:
        await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
        chat = bot.chat(ALICE)
        await chat.send("/bookings")
        await chat.press(_press("drop", ALICE_GYM))
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "I stopped waiting" in _last(bot):
                break
        assert "send /bookings to pick up where you left off" in _last(bot)
        await chat.press(_press("yes"))
        assert _alerts(bot)[-1].startswith("This button is no longer active.")
        await chat.send("/bookings")
        assert _last(bot).startswith("Cancel this booking?")
        await chat.press(_press("yes"))
        assert _last(bot) == "Done: the booking is cancelled."


async def test_akubela_down_while_listing_offers_a_retry(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    faults = sandbox_app.state.control.faults
    # A pause longer than the client will wait: it gives up at once instead of retrying.
    faults.add(FaultRule(FaultKind.RATE_LIMIT, path="/akubela/api", retry_after=120))
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    assert _last(bot) == "Akubela is busy right now. Please try again in a minute."
    faults.clear()
    await chat.press(bot.telegram.button("Retry"))
    assert "Your upcoming bookings:" in _last(bot)


async def _outbox(bot: BotUnderTest) -> list[WriteRecord]:
    return await bot.services.storage.writes.all()


async def test_a_cancel_whose_answer_is_lost_is_reported_as_done(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(_press("drop", ALICE_GYM))
    # Akubela cancels it, and the answer never arrives.
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.DROP, path="/akubela/api", times=1, when=FaultWhen.AFTER)
    )
    await chat.press(_press("yes"))
    await run_writes_job(bot)
    texts = [c.text or "" for c in bot.telegram.sent("sendMessage")]
    assert sum("Done: the booking is cancelled." in text for text in texts) == 1, texts
    assert not [t for t in texts if "not found" in t or "could not" in t.lower()], texts
    assert sandbox_app.state.control.vendors["akubela"]._bookings[ALICE_GYM].state == "canceled"


async def test_akubela_down_at_confirm_keeps_the_cancellation(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/bookings")
    await chat.press(_press("drop", ALICE_GYM))
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=503)
    )
    await chat.press(_press("yes"))
    assert "Your cancellation is kept" in _last(bot)
    [item] = await _outbox(bot)
    assert item.kind == "akubela.booking.cancel"
    assert item.write == {
        "kind": "akubela.booking.cancel",
        "residence_id": "r3f9a1c2d4e5b6a7980c1d2e3f4a5b601",
        "booking_id": ALICE_GYM,
    }
    assert len(item.command_id) == 32


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    persistence = DatabasePersistence(sessions)
    async with started(database_url, sandbox_app, sessions, persistence=persistence) as first:
        await link_demo_resident(first, sandbox_app, ALICE, homes=2)
        chat = first.chat(ALICE)
        await chat.send("/bookings")
        await chat.press(_press("select"))
        await chat.press(_press("tog", ALICE_GYM))
        await first.app.update_persistence()
    persistence = DatabasePersistence(sessions)
    async with started(
        database_url, sandbox_app, sessions, persistence=persistence, telegram=first.telegram
    ) as second:
        chat = second.chat(ALICE)
        await chat.press(_press("tog", ALICE_BBQ))
        assert "🗑 Cancel the selected (2)" in _button_labels(second)
        await chat.press(_press("sel_done"))
        await chat.press(_press("yes"))
        assert _last(second) == "Done: 2 bookings are cancelled."


# ---- /code -----------------------------------------------------------------------------------


def _code_of(sandbox_app: Starlette, booking_id: str) -> str:
    return str(_akubela(sandbox_app).booking_code(booking_id))


def _booking_of(sandbox_app: Starlette, residence_id: str, code_of: str) -> Any:
    origin = _akubela(sandbox_app)._bookings[code_of]
    return next(
        b
        for b in _akubela(sandbox_app)._bookings.values()
        if b.residence_id == residence_id and b.group == origin.group and b is not origin
    )


BOB_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b603"


async def test_code_with_the_code_typed_books_and_shows_pin_and_qr(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await bot.chat(BOB).send(f"/code {_code_of(sandbox_app, ALICE_GYM)}")
    joined = _booking_of(sandbox_app, BOB_HOME, ALICE_GYM)
    photo = bot.telegram.last
    assert photo.method == "sendPhoto"
    assert (photo.text or "").startswith("✅ Booked with the code.\nGym\nTomorrow")
    assert f"PIN code: {joined.pin_code}" in (photo.text or "")


async def _qr_png(sandbox_app: Starlette, code: str) -> bytes:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox_app), base_url="http://sandbox"
    ) as client:
        answer = await client.get(f"/akubela/media/qr/{code}.png")
    assert answer.status_code == 200
    return answer.content


def _serve_photo(bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    """Makes the Telegram stand-in hand out `content` when the bot downloads a photo."""
    original = bot.telegram.do_request

    async def do_request(url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if "/file/bot" in url:
            return 200, content
        return await original(url, method, *args, **kwargs)

    monkeypatch.setattr(bot.telegram, "do_request", do_request)


async def test_code_with_a_photo_of_the_qr(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    chat = bot.chat(BOB)
    await chat.send("/code")
    assert _last(bot) == ("Send me the booking code you were given, or a photo of its QR code.")
    _serve_photo(bot, monkeypatch, _png(Image.new("RGB", (80, 80), (10, 120, 200))))
    await chat.send_photo()
    assert "could not find a booking QR code" in _last(bot)
    _serve_photo(bot, monkeypatch, await _qr_png(sandbox_app, _code_of(sandbox_app, ALICE_BBQ)))
    await chat.send_photo()
    assert (_last(bot) or "").startswith("✅ Booked with the code.\nBBQ terrace")
    assert _booking_of(sandbox_app, BOB_HOME, ALICE_BBQ).state == "success"


async def test_a_photo_captioned_code_is_read_at_once(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    _serve_photo(bot, monkeypatch, await _qr_png(sandbox_app, _code_of(sandbox_app, ALICE_GYM)))
    await bot.chat(BOB).send_photo(caption="/code")
    assert (_last(bot) or "").startswith("✅ Booked with the code.")


async def test_bad_and_refused_codes_ask_again(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    chat = bot.chat(BOB)
    await chat.send("/code !!")
    assert "does not look like a booking code" in _last(bot)
    await chat.send_sticker()
    assert _last(bot) == "Please send the booking code as text, or a photo of its QR code."
    await chat.send("kDOESNOTEXIST")
    assert _last(bot) == (
        "Akubela refused that: booking code not recognised\nYou can send another code, or /cancel."
    )
    await chat.press(_press("open", BOBS))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.send(_code_of(sandbox_app, ALICE_GYM))
    assert (_last(bot) or "").startswith("✅ Booked with the code.")


async def test_a_pending_code_booking_says_they_will_hear_back(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    await bot.chat(ALICE).send(f"/code {_code_of(sandbox_app, BOBS)}")
    text = _last(bot) or ""
    assert bot.telegram.last.method == "sendMessage"
    assert "Status: waiting for approval" in text
    assert "you will hear back here" in text


async def test_akubela_down_keeps_the_code_booking(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    chat = bot.chat(BOB)
    await chat.send("/code")
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=502)
    )
    code = _code_of(sandbox_app, ALICE_GYM)
    await chat.send(code)
    assert "Your booking with the code is kept" in _last(bot)
    [item] = await _outbox(bot)
    assert item.kind == "akubela.booking.by_code"
    assert item.write == {
        "kind": "akubela.booking.by_code",
        "residence_id": BOB_HOME,
        "booking_code": code,
        # Akubela was down before the bookings could be read: nothing was sent yet.
        "known_booking_ids": None,
    }
    assert item.maybe_sent is False
