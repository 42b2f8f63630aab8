"""My bookings: upcoming and past bookings, a booking's PIN and QR, cancelling, /code.

```mermaid
graph LR
  start(/bookings) --> browse
  browse -- open --> browse
  browse -- page / past --> browse
  browse -- drop one --> confirm
  browse -- cancel several --> select -- toggle --> select
  select -- cancel selected --> confirm -- yes --> done((end))
  confirm -- no --> browse
  code(/code) -- code given --> done
  code -- no code --> wait[code] -- code or QR photo --> done
```

Every press naming a booking is checked against the resident's own booking list, fetched
fresh, before anything is shown or cancelled. Cancelling and booking by code are writes: their
command id is chosen once and kept in the draft, they are recorded before they leave, and when
Akubela cannot take them now they are kept and sent later under that id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import zxingcpp
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from api.errors import ApiError, InvalidRequest
from conversations import common, flowkit, keys
from conversations.context import ConciergeContext
from conversations.i18n import N_, tr
from conversations.ports import ResidentDesk
from conversations.records import Booking, BookingState
from conversations.roles import REFUSAL_MESSAGES, Action, Target, decide
from conversations.timewindow import TimeWindow, describe_window
from conversations.writes import BookingByCode, BookingCancel, BookingCancelMany, Result

logger = logging.getLogger(__name__)

JOB: Final = keys.BOOKINGS
PAGE_SIZE: Final = 5
MAX_SELECTABLE: Final = 20
MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_\-]{4,64}$")


class State(StrEnum):
    """Steps of the conversation, persisted by value."""

    BROWSE = "bookings.browse"
    SELECT = "bookings.select"
    CONFIRM = "bookings.confirm"
    CODE = "bookings.code"


class View(StrEnum):
    """Which bookings the list shows."""

    UPCOMING = "upcoming"
    PAST = "past"


class BookingsDraft(BaseModel):
    """Where the resident is in their list, what they chose to cancel, a code being used."""

    view: View = View.UPCOMING
    page: int = 0
    selected: list[str] = Field(default_factory=list)
    cancel_ids: list[str] = Field(default_factory=list)
    command_id: str | None = None
    code: str | None = None
    awaiting_code: bool = False


# ---- rules -----------------------------------------------------------------------------------

_HOLDING_STATES: Final = frozenset({BookingState.PENDING, BookingState.CONFIRMED})

STATE_WORDS: Final = {
    BookingState.PENDING: N_("waiting for approval"),
    BookingState.CONFIRMED: N_("confirmed"),
    BookingState.DECLINED: N_("declined"),
    BookingState.CANCELLED: N_("cancelled"),
}


def is_upcoming(booking: Booking, now: datetime) -> bool:
    """A booking that still holds its slot and has not ended."""
    if booking.state not in _HOLDING_STATES or booking.expired:
        return False
    end = booking.finish or booking.start
    return end is not None and end > now


def split_bookings(
    bookings: Sequence[Booking], now: datetime
) -> tuple[list[Booking], list[Booking]]:
    """Upcoming (soonest first) and past or cancelled ones (latest first)."""
    far_past = datetime.min.replace(tzinfo=UTC)
    upcoming = [b for b in bookings if is_upcoming(b, now)]
    past = [b for b in bookings if not is_upcoming(b, now)]
    upcoming.sort(key=lambda b: b.start or far_past)
    past.sort(key=lambda b: b.start or far_past, reverse=True)
    return upcoming, past


def page_of(
    items: Sequence[Booking], page: int, size: int = PAGE_SIZE
) -> tuple[list[Booking], int, int]:
    """The items of one page, that page (clamped into range) and the number of pages."""
    pages = max(1, -(-len(items) // size))
    page = min(max(page, 0), pages - 1)
    return list(items[page * size : (page + 1) * size]), page, pages


def toggled(selected: Sequence[str], booking_id: str) -> list[str]:
    """The selection with `booking_id` added, or removed when it was there."""
    if booking_id in selected:
        return [i for i in selected if i != booking_id]
    return [*selected, booking_id]


def amenity_label(name: str, lang: str) -> str:
    """The amenity's name in the user's language when the vendor gives both ("Gym / 健身房")."""
    parts = [p.strip() for p in name.split(" / ") if p.strip()]
    if len(parts) == 2:
        return parts[1] if lang == "zh" else parts[0]
    return name.strip() or tr(lang, "Amenity")


def state_words(booking: Booking, lang: str) -> str:
    """A booking's state in words; one the community does not know as the vendor wrote it."""
    words = STATE_WORDS.get(booking.state) if booking.state is not None else None
    return tr(lang, words) if words else booking.state_text


def when_words(booking: Booking, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """When a booking takes place, in the user's zone."""
    if booking.start is None:
        return tr(lang, "time not given")
    finish = booking.finish or booking.start
    return describe_window(TimeWindow(booking.start, finish), lang, zone, now=now)


def booking_line(booking: Booking, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """One booking on one line: amenity, when, state."""
    return tr(
        lang,
        N_("{amenity}: {when} ({state})"),
        amenity=amenity_label(booking.amenity_name, lang),
        when=when_words(booking, lang, zone, now),
        state=state_words(booking, lang),
    )


def booking_details(booking: Booking, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """The detail view: what, when, state, and the PIN for a confirmed upcoming booking."""
    lines = [
        amenity_label(booking.amenity_name, lang),
        when_words(booking, lang, zone, now),
        tr(lang, N_("Status: {state}"), state=state_words(booking, lang)),
    ]
    if booking.state == BookingState.CONFIRMED and is_upcoming(booking, now) and booking.pin_code:
        lines.append(tr(lang, N_("PIN code: {pin}"), pin=booking.pin_code))
    elif booking.state == BookingState.PENDING and is_upcoming(booking, now):
        lines.append(tr(lang, N_("The office has not approved it yet; you will hear back here.")))
    return "\n".join(lines)


def code_from_text(text: str) -> str | None:
    """The booking code in what was typed or scanned: a bare code or a link carrying one."""
    value = text.strip()
    if value.lower().startswith(("http://", "https://")):
        parts = urlsplit(value)
        query = parse_qs(parts.query)
        candidates = query.get("booking_code", []) + query.get("code", [])
        value = candidates[0] if candidates else parts.path.rstrip("/").rsplit("/", 1)[-1]
        value = value.removesuffix(".png")
    return value if CODE_PATTERN.match(value) else None


def decode_qr(data: bytes) -> str | None:
    """The text of the first QR code in an image, or None when there is none."""
    if len(data) > MAX_PHOTO_BYTES:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            found = zxingcpp.read_barcodes(
                image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
            )
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    for barcode in found:
        if barcode.text:
            return str(barcode.text)
    return None


# ---- helpers ---------------------------------------------------------------------------------


async def _draft(context: ConciergeContext) -> BookingsDraft:
    return await flowkit.load_draft(context, JOB, BookingsDraft) or BookingsDraft()


async def _desk(update: Update, context: ConciergeContext) -> ResidentDesk | None:
    return await common.resident_desk(update, context, resume=JOB)


async def _fetch(
    update: Update, context: ConciergeContext, desk: ResidentDesk
) -> list[Booking] | None:
    """The resident's bookings, or None after telling them Akubela failed (with Retry)."""
    await common.typing(update, context)
    try:
        return await desk.bookings()
    except ApiError as error:
        await flowkit.answer(update)
        retry = [[flowkit.button(JOB, context.t("🔄 Retry"), "retry")]]
        await flowkit.show(
            update, common.vendor_failure(context, error), flowkit.keyboard(retry, JOB, context)
        )
        return None


async def _own(
    update: Update, context: ConciergeContext, desk: ResidentDesk, booking_id: str
) -> tuple[Booking | None, list[Booking] | None]:
    """The pressed booking when it is the resident's own (else None), and their list."""
    assert context.user_id is not None
    actor = await context.services.directory.actor(context.user_id)
    refusal = decide(actor, Action.BOOKING_VIEW, Target(residence_id=desk.residence_id))
    if refusal is not None:
        await flowkit.notice(update, context.t(REFUSAL_MESSAGES[refusal]))
        return None, None
    bookings = await _fetch(update, context, desk)
    if bookings is None:
        return None, None
    found = next((b for b in bookings if b.id == booking_id), None)
    if found is None:
        logger.info("user %s pressed a booking that is not in their list", context.user_id)
        await flowkit.notice(update, context.t("That booking is not in your list (any more)."))
    return found, bookings


# ---- the list --------------------------------------------------------------------------------


def list_view(
    bookings: Sequence[Booking], draft: BookingsDraft, context: ConciergeContext
) -> tuple[str, InlineKeyboardMarkup, int]:
    """The text and buttons of one page of the list, and the page actually shown."""
    lang, zone, now = context.lang, context.zone, context.services.clock()
    upcoming, past = split_bookings(bookings, now)
    shown = upcoming if draft.view is View.UPCOMING else past
    items, page, pages = page_of(shown, draft.page)
    if draft.view is View.UPCOMING:
        title = (
            context.t("Your upcoming bookings:")
            if items
            else context.t("You have no upcoming bookings. Send /book to book an amenity.")
        )
    else:
        title = (
            context.t("Your past and cancelled bookings:")
            if items
            else context.t("You have no past bookings.")
        )
    if pages > 1:
        title += "\n" + context.t("Page {page} of {pages}", page=page + 1, pages=pages)
    rows = [
        [flowkit.button(JOB, booking_line(b, lang, zone, now), "open", b.id)]
        for b in items
        if b.id
    ]
    rows += flowkit.pager(JOB, context, page, pages)
    if draft.view is View.UPCOMING:
        rows.append([flowkit.button(JOB, context.t("🕘 Past bookings"), "view", View.PAST.value)])
        if len(upcoming) > 1:
            rows.append([flowkit.button(JOB, context.t("🗑 Cancel several…"), "select")])
    else:
        rows.append(
            [flowkit.button(JOB, context.t("📅 Upcoming bookings"), "view", View.UPCOMING.value)]
        )
    return title, flowkit.keyboard(rows, JOB, context), page


async def _send_list(
    update: Update,
    context: ConciergeContext,
    desk: ResidentDesk,
    draft: BookingsDraft,
) -> State:
    bookings = await _fetch(update, context, desk)
    if bookings is None:
        return State.BROWSE
    text, markup, draft.page = list_view(bookings, draft, context)
    draft.selected, draft.cancel_ids, draft.command_id = [], [], None
    await flowkit.save_draft(context, JOB, draft)
    await flowkit.show(update, text, markup)
    return State.BROWSE


async def start_bookings(update: Update, context: ConciergeContext) -> State | int:
    """Shows the upcoming bookings, or the pending cancel confirmation after a time-out."""
    await flowkit.take(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    draft = await _draft(context)
    if draft.cancel_ids and draft.command_id:
        bookings = await _fetch(update, context, desk)
        if bookings is None:
            return State.BROWSE
        return await _ask_cancel(update, context, bookings, draft)
    return await _send_list(update, context, desk, BookingsDraft())


async def _ready(
    update: Update, context: ConciergeContext
) -> tuple[ResidentDesk, BookingsDraft] | None:
    """The resident's desk and draft for a press; None (the press answered) when unlinked."""
    desk = await _desk(update, context)
    if desk is None:
        await flowkit.answer(update)
        return None
    return desk, await _draft(context)


async def show_list(update: Update, context: ConciergeContext) -> State | int:
    """Back or Retry: the list, fetched fresh."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    await flowkit.answer(update)
    return await _send_list(update, context, *ready)


async def turn_page(update: Update, context: ConciergeContext) -> State | int:
    """Previous or Next: that page of the list."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    await flowkit.answer(update)
    draft.page = int(flowkit.arg(update, JOB))
    return await _send_list(update, context, desk, draft)


async def switch_view(update: Update, context: ConciergeContext) -> State | int:
    """Upcoming or past bookings, from their first page."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    await flowkit.answer(update)
    draft.view, draft.page = View(flowkit.arg(update, JOB)), 0
    return await _send_list(update, context, desk, draft)


async def open_booking(update: Update, context: ConciergeContext) -> State | int:
    """A booking of the list: its details."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    return await _open(update, context, ready[0], flowkit.arg(update, JOB))


async def ask_drop(update: Update, context: ConciergeContext) -> State | int:
    """Cancel this booking: asks to confirm, once it is checked to be upcoming and theirs."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    booking, bookings = await _own(update, context, desk, flowkit.arg(update, JOB))
    if booking is None or bookings is None:
        return State.BROWSE
    if not is_upcoming(booking, context.services.clock()):
        await flowkit.notice(update, context.t("That booking can no longer be cancelled."))
        return State.BROWSE
    await flowkit.answer(update)
    draft.cancel_ids, draft.command_id = [booking.id], common.new_command_id()
    return await _ask_cancel(update, context, bookings, draft)


async def start_selection(update: Update, context: ConciergeContext) -> State | int:
    """Cancel several: the upcoming bookings as toggles."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    await flowkit.answer(update)
    draft.selected = []
    return await _send_selection(update, context, desk, draft)


async def _open(
    update: Update, context: ConciergeContext, desk: ResidentDesk, booking_id: str
) -> State:
    """Shows one booking: details, PIN, and its QR code as a photo when it is confirmed."""
    booking, _ = await _own(update, context, desk, booking_id)
    if booking is None:
        return State.BROWSE
    await flowkit.answer(update)
    now, lang = context.services.clock(), context.lang
    text = booking_details(booking, lang, context.zone, now)
    rows = []
    if is_upcoming(booking, now):
        rows.append([flowkit.button(JOB, context.t("🗑 Cancel this booking"), "drop", booking.id)])
    rows.append([flowkit.button(JOB, context.t("◀ Back to the list"), "back")])
    markup = flowkit.keyboard(rows, JOB, context)
    await send_booking(update, context, desk, booking, text, markup)
    return State.BROWSE


async def send_booking(
    update: Update,
    context: ConciergeContext,
    desk: ResidentDesk,
    booking: Booking,
    text: str,
    markup: InlineKeyboardMarkup | None,
) -> None:
    """The booking as a photo of its QR code when it has one to show (a new message: a text
    cannot become a photo), else as text, in place of the pressed view."""
    chat = update.effective_chat
    now = context.services.clock()
    wants_qr = booking.state == BookingState.CONFIRMED and is_upcoming(booking, now)
    if chat is not None and wants_qr and booking.qr_code_url:
        await common.typing(update, context)
        try:
            picture = await desk.download(booking.qr_code_url)
        except ApiError:
            logger.info("could not download the QR code of a booking")
            text += "\n" + context.t("(The QR code could not be loaded just now; the PIN works.)")
        else:
            await chat.send_photo(picture, caption=text, reply_markup=markup)
            return
    await flowkit.show(update, text, markup)


# ---- cancelling ------------------------------------------------------------------------------


def selection_view(
    bookings: Sequence[Booking], draft: BookingsDraft, context: ConciergeContext
) -> tuple[str, InlineKeyboardMarkup]:
    """The toggles for choosing several upcoming bookings to cancel."""
    lang, zone, now = context.lang, context.zone, context.services.clock()
    upcoming, _ = split_bookings(bookings, now)
    rows = []
    for booking in upcoming[:MAX_SELECTABLE]:
        mark = "☑" if booking.id in draft.selected else "☐"
        label = f"{mark} {booking_line(booking, lang, zone, now)}"
        rows.append([flowkit.button(JOB, label, "tog", booking.id)])
    count = len(draft.selected)
    rows.append(
        [
            flowkit.button(
                JOB, context.t("🗑 Cancel the selected ({count})", count=count), "sel_done"
            )
        ]
    )
    rows.append([flowkit.button(JOB, context.t("◀ Back to the list"), "back")])
    text = context.t("Tap the bookings to cancel, then “Cancel the selected”.")
    return text, flowkit.keyboard(rows, JOB, context)


async def _send_selection(
    update: Update, context: ConciergeContext, desk: ResidentDesk, draft: BookingsDraft
) -> State:
    bookings = await _fetch(update, context, desk)
    if bookings is None:
        return State.BROWSE
    text, markup = selection_view(bookings, draft, context)
    await flowkit.save_draft(context, JOB, draft)
    await flowkit.show(update, text, markup)
    return State.SELECT


async def toggle(update: Update, context: ConciergeContext) -> State | int:
    """A booking in the selection: chosen, or no longer."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    booking, _ = await _own(update, context, desk, flowkit.arg(update, JOB))
    if booking is None:
        return State.SELECT
    if not is_upcoming(booking, context.services.clock()):
        await flowkit.notice(update, context.t("That booking can no longer be cancelled."))
        return State.SELECT
    await flowkit.answer(update)
    draft.selected = toggled(draft.selected, booking.id)
    return await _send_selection(update, context, desk, draft)


async def finish_selection(update: Update, context: ConciergeContext) -> State | int:
    """Cancel the selected: asks to confirm them."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    if not draft.selected:
        await flowkit.notice(update, context.t("Choose at least one booking first."))
        return State.SELECT
    bookings = await _fetch(update, context, desk)
    if bookings is None:
        return State.SELECT
    await flowkit.answer(update)
    draft.cancel_ids, draft.command_id = list(draft.selected), common.new_command_id()
    return await _ask_cancel(update, context, bookings, draft)


async def _ask_cancel(
    update: Update, context: ConciergeContext, bookings: Sequence[Booking], draft: BookingsDraft
) -> State:
    """Asks to confirm cancelling the bookings in the draft."""
    now, lang, zone = context.services.clock(), context.lang, context.zone
    chosen = [b for b in bookings if b.id in draft.cancel_ids]
    lines = [booking_line(b, lang, zone, now) for b in chosen]
    if len(chosen) == 1:
        text = context.t("Cancel this booking?")
        yes = context.t("🗑 Yes, cancel the booking")
    else:
        text = context.t("Cancel these {count} bookings?", count=len(chosen))
        yes = context.t("🗑 Yes, cancel {count} bookings", count=len(chosen))
    await flowkit.save_draft(context, JOB, draft)
    rows = [
        [
            flowkit.button(JOB, yes, "yes"),
            flowkit.button(JOB, context.t("No, keep"), "no"),
        ]
    ]
    await flowkit.show(update, "\n".join([text, *lines]), flowkit.keyboard(rows, JOB, context))
    return State.CONFIRM


async def confirm_cancel(update: Update, context: ConciergeContext) -> State | int:
    """Cancels the chosen bookings (each was checked against the list when it was chosen)."""
    ready = await _ready(update, context)
    if ready is None:
        return ConversationHandler.END
    desk, draft = ready
    if not draft.cancel_ids or draft.command_id is None:
        return await flowkit.stale(update, context, State.CONFIRM)
    assert context.user_id is not None
    actor = await context.services.directory.actor(context.user_id)
    refusal = decide(actor, Action.BOOKING_CANCEL, Target(residence_id=desk.residence_id))
    if refusal is not None:
        await flowkit.notice(update, context.t(REFUSAL_MESSAGES[refusal]))
        return State.CONFIRM
    await flowkit.take(update)
    return await _cancel_now(update, context, desk, draft)


async def _cancel_now(
    update: Update, context: ConciergeContext, desk: ResidentDesk, draft: BookingsDraft
) -> State | int:
    assert draft.command_id is not None
    assert context.user_id is not None
    ids, command_id = draft.cancel_ids, draft.command_id
    await common.typing(update, context)
    write: BookingCancel | BookingCancelMany = (
        BookingCancel(residence_id=desk.residence_id, booking_id=ids[0])
        if len(ids) == 1
        else BookingCancelMany(residence_id=desk.residence_id, booking_ids=list(ids))
    )
    outcome = await context.services.writes.submit(context.user_id, write, command_id=command_id)
    kept = N_(
        "Akubela is not answering right now. Your cancellation is kept and will be "
        "sent as soon as Akubela answers; you will hear back here."
    )
    if await common.told_undecided(update, context, outcome, kept):
        await flowkit.clear_draft(context, JOB)
        return ConversationHandler.END
    if outcome.result is Result.REFUSED:
        if isinstance(outcome.error, InvalidRequest):
            await flowkit.say(update, common.write_refused(context, outcome))
            bookings = await _fetch(update, context, desk)
            if bookings is None:
                return State.CONFIRM
            return await _ask_cancel(update, context, bookings, draft)
        await flowkit.clear_draft(context, JOB)
        await flowkit.say(update, common.write_refused(context, outcome))
        return ConversationHandler.END
    await flowkit.clear_draft(context, JOB)
    if len(ids) == 1:
        await flowkit.say(update, context.t("Done: the booking is cancelled."))
    else:
        await flowkit.say(
            update, context.t("Done: {count} bookings are cancelled.", count=len(ids))
        )
    return ConversationHandler.END


# ---- booking with a code -----------------------------------------------------------------------


async def start_code(update: Update, context: ConciergeContext) -> State | int:
    """Books with the code after /code, or asks for the code or a photo of its QR."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    message = update.effective_message
    typed = " ".join(context.args or [])
    await flowkit.save_draft(context, JOB, BookingsDraft(awaiting_code=True))
    if message is not None and message.photo:
        return await receive_code_photo(update, context)
    if typed:
        return await receive_code_text(update, context, typed)
    await flowkit.say(
        update,
        context.t("Send me the booking code you were given, or a photo of its QR code."),
        flowkit.keyboard([], JOB, context),
    )
    return State.CODE


async def receive_code_text(
    update: Update, context: ConciergeContext, typed: str | None = None
) -> State | int:
    """Reads a typed booking code and books with it."""
    message = update.effective_message
    text = typed if typed is not None else (message.text if message else None) or ""
    code = code_from_text(text)
    if code is None:
        await flowkit.say(
            update,
            context.t(
                "That does not look like a booking code (4 to 64 letters, digits, - or _). "
                "Please send the code again, or a photo of its QR code."
            ),
            flowkit.keyboard([], JOB, context),
        )
        return State.CODE
    return await _book_with_code(update, context, code)


async def receive_code_photo(update: Update, context: ConciergeContext) -> State | int:
    """Decodes the QR code in a photo and books with the code it carries."""
    message = update.effective_message
    if message is None:
        return State.CODE
    await common.typing(update, context)
    data: bytes | None = None
    try:
        if message.photo:
            data = bytes(await (await message.photo[-1].get_file()).download_as_bytearray())
        elif message.document is not None:
            data = bytes(await (await message.document.get_file()).download_as_bytearray())
    except TelegramError:
        logger.info("could not download a photo of a QR code")
    decoded = await asyncio.to_thread(decode_qr, data) if data else None
    code = code_from_text(decoded) if decoded else None
    if code is None:
        await flowkit.say(
            update,
            context.t(
                "I could not find a booking QR code in that picture. Please try a sharper "
                "photo, or type the code."
            ),
            flowkit.keyboard([], JOB, context),
        )
        return State.CODE
    return await _book_with_code(update, context, code)


async def receive_other_for_code(update: Update, context: ConciergeContext) -> State:
    """Anything but text or a picture while a code is awaited."""
    await flowkit.say(
        update,
        context.t("Please send the booking code as text, or a photo of its QR code."),
        flowkit.keyboard([], JOB, context),
    )
    return State.CODE


async def _book_with_code(update: Update, context: ConciergeContext, code: str) -> State | int:
    """Books with `code` under a command id kept in the draft, so a retry is the same write."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    assert context.user_id is not None
    draft = await _draft(context)
    if draft.code != code or draft.command_id is None:
        draft.code, draft.command_id = code, common.new_command_id()
    draft.awaiting_code = True
    await flowkit.save_draft(context, JOB, draft)
    await common.typing(update, context)
    outcome = await context.services.writes.submit(
        context.user_id,
        BookingByCode(residence_id=desk.residence_id, booking_code=code),
        command_id=draft.command_id,
        draft=JOB,
    )
    kept = N_(
        "Akubela is not answering right now. Your booking with the code is kept and "
        "will be sent as soon as Akubela answers; you will hear back here."
    )
    if await common.told_undecided(update, context, outcome, kept):
        return ConversationHandler.END
    if outcome.result is Result.REFUSED:
        if isinstance(outcome.error, InvalidRequest):
            # A refused command did nothing: the next code goes out under a new id.
            draft.code, draft.command_id = None, None
            await flowkit.save_draft(context, JOB, draft)
            await flowkit.say(
                update,
                common.write_refused(context, outcome)
                + "\n"
                + context.t("You can send another code, or /cancel."),
                flowkit.keyboard([], JOB, context),
            )
            return State.CODE
        await flowkit.say(update, common.write_refused(context, outcome))
        return ConversationHandler.END
    await _tell_booked(update, context, desk, outcome.record_id)
    return ConversationHandler.END


async def _tell_booked(
    update: Update, context: ConciergeContext, desk: ResidentDesk, booking_id: str | None
) -> None:
    """What the code booked, with the PIN and QR when it is confirmed."""
    booking: Booking | None = None
    if booking_id:
        try:
            booking = await desk.booking(booking_id)
        except ApiError:
            logger.info("the new booking could not be read back")
    if booking is None:
        await flowkit.say(
            update, context.t("✅ Booked with the code. Send /bookings to see your bookings.")
        )
        return
    if not booking.id and booking_id:
        booking = dataclasses.replace(booking, id=booking_id)
    now = context.services.clock()
    text = (
        context.t("✅ Booked with the code.")
        + "\n"
        + booking_details(booking, context.lang, context.zone, now)
    )
    await send_booking(update, context, desk, booking, text, None)


# ---- the rest --------------------------------------------------------------------------------


async def _resume(context: ConciergeContext) -> str:
    """The command that picks up where the user was: /code while a code was awaited."""
    return "/code" if (await _draft(context)).awaiting_code else "/bookings"


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/bookings, the menu's "My bookings" and /code."""
    not_command = ~filters.COMMAND
    return flowkit.build(
        job=JOB,
        command="bookings",
        start=start_bookings,
        aside=N_("Closed your bookings (/bookings shows them again)."),
        aside_in={State.CODE: N_("Stopped waiting for a booking code (/code to try again).")},
        views=(State.BROWSE, State.SELECT, State.CONFIRM),
        entry_points=[
            CommandHandler("code", start_code),
            MessageHandler(filters.PHOTO & filters.CaptionRegex(r"^/code\b"), start_code),
        ],
        states={
            State.BROWSE: [
                CallbackQueryHandler(show_list, pattern=flowkit.on(JOB, "(retry|back)")),
                CallbackQueryHandler(turn_page, pattern=flowkit.on(JOB, r"page:\d+")),
                CallbackQueryHandler(switch_view, pattern=flowkit.on(JOB, "view:(upcoming|past)")),
                CallbackQueryHandler(open_booking, pattern=flowkit.on(JOB, "open")),
                CallbackQueryHandler(ask_drop, pattern=flowkit.on(JOB, "drop")),
                CallbackQueryHandler(start_selection, pattern=flowkit.on(JOB, "select")),
            ],
            State.SELECT: [
                CallbackQueryHandler(toggle, pattern=flowkit.on(JOB, "tog")),
                CallbackQueryHandler(finish_selection, pattern=flowkit.on(JOB, "sel_done")),
                CallbackQueryHandler(show_list, pattern=flowkit.on(JOB, "back")),
            ],
            State.CONFIRM: [
                CallbackQueryHandler(confirm_cancel, pattern=flowkit.on(JOB, "yes")),
                CallbackQueryHandler(show_list, pattern=flowkit.on(JOB, "no")),
            ],
            State.CODE: [
                MessageHandler(filters.TEXT & not_command, receive_code_text),
                MessageHandler(filters.PHOTO | filters.Document.IMAGE, receive_code_photo),
                MessageHandler(not_command, receive_other_for_code),
            ],
        },
        timeout=timeout,
        resume=_resume,
    )
