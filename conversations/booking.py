"""Book an amenity: amenity → date → free start → duration → summary → Confirm.

```mermaid
graph LR
  start(/book) --> amenity -- tap or type --> date -- tap or "next friday" --> start_time
  start_time -- tap or "7pm" --> duration --> confirm -- Confirm --> done((booked))
  start_time -- nothing free --> date
  confirm -- refused: taken meanwhile --> start_time
  onemsg("/book gym tomorrow 7pm for 1 hour", "预约健身房 明天晚上7点 1小时") --> confirm
```

One step, `advance`, decides what to ask next from the draft, so a request typed in one
message goes straight to the summary when its slot is free and asks only for what is missing,
unclear or taken. Every choice is checked against what Akubela offers right now: the amenity
list, the free starts of the date (`conversations.slots`) and the durations that fit. The
confirming write keeps its command id in the draft and is recorded before it leaves
(`conversations.writes`); when Akubela cannot take it now, it is kept and sent later under
that id.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from api.errors import ApiError, InvalidRequest
from conversations import callbacks, common, datetext, flowkit, freetext, keys, slots
from conversations.booking_request import AmenityNames, Part, parse_booking_request, take_duration
from conversations.community import AmenityRules
from conversations.context import ConciergeContext
from conversations.i18n import N_, tr
from conversations.my_bookings import amenity_label, booking_details, send_booking
from conversations.ports import ResidentDesk
from conversations.records import Amenity, BookingState, DayTimes
from conversations.timewindow import TimeWindow, describe_day, describe_window
from conversations.writes import BookingCreate, Result

logger = logging.getLogger(__name__)

JOB: Final = keys.BOOK
# Akubela's amenity list says nothing about how long a booking may last, so every amenity gets
# this ceiling (the longest the demo community allows for most amenities); Akubela still
# refuses a longer booking for an amenity with a lower limit, and the resident is told why.
STARTS_PER_ROW: Final = 4
# Buttons offer starts and lengths on this many minutes (or the amenity's coarser grid).
BUTTON_STEP_MINUTES: Final = 30
NEAREST: Final = 4
LOOKAHEAD_DAYS: Final = 7
_AT_FORMAT: Final = "%Y%m%dT%H%M"


class State(StrEnum):
    """Steps of the conversation, persisted by value."""

    AMENITY = "book.amenity"
    DATE = "book.date"
    START = "book.start"
    DURATION = "book.duration"
    CONFIRM = "book.confirm"


class BookDraft(BaseModel):
    """What the resident chose so far; the command id once the summary was shown."""

    amenity_id: str | None = None
    amenity_name: str = ""
    day: date | None = None
    start: datetime | None = None
    duration_minutes: int | None = None
    # A time said before the date was known ("/book gym 7pm"): used once the date is chosen.
    wanted_time: time | None = None
    command_id: str | None = None


# ---- rules -----------------------------------------------------------------------------------


def duration_words(minutes: int, lang: str) -> str:
    """A duration in words: "30 min", "1 h", "1 h 30 min"."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return tr(lang, N_("{minutes} min"), minutes=rest)
    if not rest:
        return tr(lang, N_("{hours} h"), hours=hours)
    return tr(lang, N_("{hours} h {minutes} min"), hours=hours, minutes=rest)


def at_arg(start: datetime) -> str:
    """A start as button data: its UTC minute, unambiguous on a fall-back night."""
    return start.astimezone(UTC).strftime(_AT_FORMAT)


def from_at_arg(arg: str) -> datetime | None:
    """The start a button carries, or None for a malformed one."""
    try:
        return datetime.strptime(arg, _AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def same_moment(a: datetime, b: datetime) -> bool:
    """Equal instants (two wall times of one zone compare on the wall clock otherwise)."""
    return a.astimezone(UTC) == b.astimezone(UTC)


def bookable_day(day: date, today: date, rules: AmenityRules) -> bool:
    """A date the resident may pick: today or later, within the amenity's horizon."""
    return today <= day <= today + rules.horizon


def typed_start(text: str, day: date, zone: ZoneInfo) -> datetime | str | None:
    """A start time typed for `day`: the moment, None when unreadable, "unsure" without am/pm."""
    start, _end, _rest, bad = datetext.take_times(datetext.normalize(text))
    if bad or start is None:
        return None
    part, _ = datetext.take_day_part(datetext.normalize(text))
    if not start.certain and part is None:
        return "unsure"
    minutes = datetext.resolve_single(start, part)
    if minutes is None or not 0 <= minutes < 24 * 60:
        return None
    return datetext.local_moment(day, minutes, zone)


# ---- helpers ---------------------------------------------------------------------------------


def _today(context: ConciergeContext) -> date:
    return context.services.clock().astimezone(context.zone).date()


async def _draft(context: ConciergeContext) -> BookDraft:
    return await flowkit.load_draft(context, JOB, BookDraft) or BookDraft()


async def _desk(update: Update, context: ConciergeContext) -> ResidentDesk | None:
    return await common.resident_desk(update, context, resume=JOB)


async def _failed_read(
    update: Update, context: ConciergeContext, error: ApiError, state: State
) -> State:
    """Akubela failed a read: say so in words and offer Retry, same step."""
    await flowkit.answer(update)
    rows = [[flowkit.button(JOB, context.t("🔄 Retry"), "retry")]]
    await flowkit.say(
        update, common.vendor_failure(context, error), flowkit.keyboard(rows, JOB, context)
    )
    return state


async def _amenities(
    update: Update, context: ConciergeContext, desk: ResidentDesk
) -> list[Amenity] | ApiError:
    await common.typing(update, context)
    try:
        return await desk.amenities()
    except ApiError as error:
        return error


async def _times(
    update: Update, context: ConciergeContext, desk: ResidentDesk, amenity_id: str, day: date
) -> DayTimes | ApiError:
    await common.typing(update, context)
    try:
        return await desk.booking_times(amenity_id, slots.vendor_date(day))
    except ApiError as error:
        return error


def _rules(context: ConciergeContext, draft: BookDraft) -> AmenityRules:
    """The amenity's rules in the resident's community (its defaults before one is chosen)."""
    return context.resolved_community.rules_for(draft.amenity_id or "")


def _starts(
    context: ConciergeContext, times: DayTimes, day: date, rules: AmenityRules
) -> list[datetime]:
    return slots.free_starts(
        times,
        day,
        context.zone,
        now=context.services.clock(),
        step_minutes=rules.grid_minutes,
        min_minutes=rules.min_minutes,
    )


def _on_buttons(starts: list[datetime], zone: ZoneInfo, rules: AmenityRules) -> list[datetime]:
    # A grid finer than this makes more buttons than Telegram takes: those starts are typed.
    if rules.grid_minutes >= BUTTON_STEP_MINUTES:
        return starts
    every = BUTTON_STEP_MINUTES
    return [s for i, s in enumerate(starts) if i == 0 or s.astimezone(zone).minute % every == 0]


# ---- deciding the next question --------------------------------------------------------------


async def advance(
    update: Update,
    context: ConciergeContext,
    desk: ResidentDesk,
    draft: BookDraft,
    note: str = "",
    *,
    near: datetime | None = None,
) -> State:
    """Asks for the first thing the draft still lacks, or shows the summary.

    `near`: offer the free starts nearest to this one (a refused or taken start).
    """
    today = _today(context)
    rules = _rules(context, draft)
    if draft.day is not None and not bookable_day(draft.day, today, rules):
        draft.day, draft.start, draft.duration_minutes = None, None, None
    if draft.amenity_id is None:
        return await _ask_amenity(update, context, desk, draft, note)
    if draft.day is None:
        return await _ask_date(update, context, draft, note)
    times = await _times(update, context, desk, draft.amenity_id, draft.day)
    if isinstance(times, ApiError):
        await flowkit.save_draft(context, JOB, draft)
        return await _failed_read(update, context, times, State.START)
    starts = _starts(context, times, draft.day, rules)
    if not starts:
        return await _no_free_time(update, context, desk, draft, note)
    if draft.start is None and draft.wanted_time is not None:
        wanted = draft.wanted_time.hour * 60 + draft.wanted_time.minute
        draft.start, draft.wanted_time = (
            datetext.local_moment(draft.day, wanted, context.zone),
            None,
        )
    if draft.start is None and near is not None:
        nearest = slots.nearest_free_starts(near, starts, NEAREST)
        return await _ask_start(update, context, draft, nearest, note, full=False)
    if draft.start is None:
        return await _ask_start(
            update, context, draft, _on_buttons(starts, context.zone, rules), note
        )
    chosen = draft.start
    if not any(same_moment(chosen, s) for s in starts):
        draft.start, draft.duration_minutes = None, None
        nearest = slots.nearest_free_starts(chosen, starts, NEAREST)
        text = _not_free_text(context, draft, chosen, times)
        return await _ask_start(update, context, draft, nearest, _join(note, text), full=False)
    durations = slots.durations_for(
        chosen,
        times,
        draft.day,
        context.zone,
        now=context.services.clock(),
        max_minutes=rules.max_minutes,
        step_minutes=rules.grid_minutes,
        min_minutes=rules.min_minutes,
    )
    if draft.duration_minutes not in durations:
        if draft.duration_minutes is not None:
            note = _join(
                note,
                context.t(
                    "{duration} does not fit at that time.",
                    duration=duration_words(draft.duration_minutes, context.lang),
                ),
            )
        draft.duration_minutes = None
        shown = (
            durations
            if rules.grid_minutes >= BUTTON_STEP_MINUTES
            else slots.on_buttons(durations, BUTTON_STEP_MINUTES)
        )
        return await _ask_duration(update, context, draft, shown, note)
    return await _show_summary(update, context, draft, note)


_UNFREE_TEXTS: Final = {
    slots.Unfree.CLOSED: N_(
        "{amenity} is closed at {time} (open {opens}–{closes}). The nearest free times:"
    ),
    slots.Unfree.TAKEN: N_("{time} is taken. The nearest free times:"),
    slots.Unfree.PAST: N_("{time} has already passed. The nearest free times:"),
    slots.Unfree.OFF_GRID: N_("{time} can't be booked. The nearest free times:"),
}


def _not_free_text(
    context: ConciergeContext, draft: BookDraft, chosen: datetime, times: DayTimes
) -> str:
    """Why the wanted start is not offered: closed then, booked by someone, gone, or not a
    start the amenity takes (off its grid, or too close to the next booking)."""
    assert draft.day is not None
    zone = context.zone
    why = slots.why_not_free(chosen, times, draft.day, zone, now=context.services.clock())
    opening = slots.opening(times, draft.day, zone)
    return context.t(
        _UNFREE_TEXTS[why],
        amenity=draft.amenity_name,
        time=chosen.astimezone(zone).strftime("%H:%M"),
        opens=opening.start.astimezone(zone).strftime("%H:%M") if opening else "",
        closes=opening.end.astimezone(zone).strftime("%H:%M") if opening else "",
    )


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


async def _ask_amenity(
    update: Update, context: ConciergeContext, desk: ResidentDesk, draft: BookDraft, note: str
) -> State:
    amenities = await _amenities(update, context, desk)
    if isinstance(amenities, ApiError):
        await flowkit.save_draft(context, JOB, draft)
        return await _failed_read(update, context, amenities, State.AMENITY)
    await flowkit.save_draft(context, JOB, draft)
    if not amenities:
        await flowkit.say(update, _join(note, context.t("There is no amenity to book here.")))
        return State.AMENITY
    lang = context.lang
    lines = [context.t("Which amenity would you like to book?")]
    rows = []
    for amenity in amenities:
        name = amenity_label(amenity.name, lang)
        lines.append(f"• {name}: {amenity.description}".rstrip(": "))
        row = [flowkit.button(JOB, name, "am", amenity.id)]
        if amenity.picture_url:
            row.append(flowkit.button(JOB, context.t("🖼 Picture"), "pic", amenity.id))
        rows.append(row)
    await flowkit.say(update, _join(note, "\n".join(lines)), flowkit.keyboard(rows, JOB, context))
    return State.AMENITY


async def _ask_date(
    update: Update, context: ConciergeContext, draft: BookDraft, note: str
) -> State:
    await flowkit.save_draft(context, JOB, draft)
    today = _today(context)
    days = slots.next_dates(today)
    rows = [
        [flowkit.button(JOB, describe_day(d, context.lang, today), "day", d.isoformat())]
        for d in days
    ]
    text = context.t(
        '{amenity}: which day? Tap one, or write a date such as "next friday" or "12/25".',
        amenity=draft.amenity_name,
    )
    await flowkit.say(update, _join(note, text), flowkit.keyboard(rows, JOB, context))
    return State.DATE


async def _no_free_time(
    update: Update, context: ConciergeContext, desk: ResidentDesk, draft: BookDraft, note: str
) -> State:
    """Says the date is full and offers the next dates that have free time."""
    assert draft.day is not None
    assert draft.amenity_id is not None
    full_day = draft.day
    draft.day, draft.start, draft.duration_minutes = None, None, None
    await flowkit.save_draft(context, JOB, draft)
    today = _today(context)
    offered: list[date] = []
    for offset in range(1, LOOKAHEAD_DAYS + 1):
        candidate = full_day + timedelta(days=offset)
        times = await _times(update, context, desk, draft.amenity_id, candidate)
        if isinstance(times, ApiError):
            break
        if _starts(context, times, candidate, _rules(context, draft)):
            offered.append(candidate)
        if len(offered) == 3:
            break
    text = context.t(
        "{amenity} has no free time on {day}.",
        amenity=draft.amenity_name,
        day=describe_day(full_day, context.lang, today),
    )
    if offered:
        text += "\n" + context.t("These days have free time; or write another date:")
    else:
        text += "\n" + context.t("Please write another date.")
    rows = [
        [flowkit.button(JOB, describe_day(d, context.lang, today), "day", d.isoformat())]
        for d in offered
    ]
    await flowkit.say(update, _join(note, text), flowkit.keyboard(rows, JOB, context))
    return State.DATE


async def _ask_start(
    update: Update,
    context: ConciergeContext,
    draft: BookDraft,
    starts: list[datetime],
    note: str,
    *,
    full: bool = True,
) -> State:
    assert draft.day is not None
    await flowkit.save_draft(context, JOB, draft)
    zone = context.zone
    buttons = [
        flowkit.button(JOB, s.astimezone(zone).strftime("%H:%M"), "at", at_arg(s)) for s in starts
    ]
    rows = [buttons[i : i + STARTS_PER_ROW] for i in range(0, len(buttons), STARTS_PER_ROW)]
    if not full:
        rows.append([flowkit.button(JOB, context.t("🕒 All free times"), "times")])
    rows.append([flowkit.button(JOB, context.t("📅 Another day"), "otherday")])
    text = context.t(
        '{amenity}, {day}: when would you like to start? Tap a time or write one, e.g. "7pm".',
        amenity=draft.amenity_name,
        day=describe_day(draft.day, context.lang, _today(context)),
    )
    await flowkit.say(update, _join(note, text), flowkit.keyboard(rows, JOB, context))
    return State.START


async def _ask_duration(
    update: Update, context: ConciergeContext, draft: BookDraft, durations: list[int], note: str
) -> State:
    await flowkit.save_draft(context, JOB, draft)
    buttons = [
        flowkit.button(JOB, duration_words(m, context.lang), "dur", str(m)) for m in durations
    ]
    rows = [buttons[i : i + STARTS_PER_ROW] for i in range(0, len(buttons), STARTS_PER_ROW)]
    rows.append([flowkit.button(JOB, context.t("🕒 Another time"), "times")])
    text = context.t("For how long?")
    await flowkit.say(update, _join(note, text), flowkit.keyboard(rows, JOB, context))
    return State.DURATION


def summary_text(draft: BookDraft, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """The booking in words, to confirm."""
    assert draft.start is not None
    assert draft.duration_minutes is not None
    finish = draft.start + timedelta(minutes=draft.duration_minutes)
    return tr(
        lang,
        N_("Please check your booking:\n{amenity}\n{when} ({duration})"),
        amenity=draft.amenity_name,
        when=describe_window(TimeWindow(draft.start, finish), lang, zone, now=now),
        duration=duration_words(draft.duration_minutes, lang),
    )


async def _show_summary(
    update: Update, context: ConciergeContext, draft: BookDraft, note: str
) -> State:
    if draft.command_id is None:
        draft.command_id = common.new_command_id()
    await flowkit.save_draft(context, JOB, draft)
    text = summary_text(draft, context.lang, context.zone, context.services.clock())
    rows = [
        [
            flowkit.button(JOB, context.t("✅ Confirm"), "confirm"),
            flowkit.button(JOB, context.t("🕒 Change the time"), "times"),
        ]
    ]
    await flowkit.say(update, _join(note, text), flowkit.keyboard(rows, JOB, context))
    return State.CONFIRM


# ---- entry -----------------------------------------------------------------------------------


async def start_booking(update: Update, context: ConciergeContext) -> State | int:
    """Starts afresh from a one-message request, or picks up the kept draft."""
    await flowkit.take(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    message = update.effective_message
    text = ""
    if context.args:
        text = " ".join(context.args)
    elif update.callback_query is None and message is not None and message.text:
        # A typed request ("预约健身房 明天…"); a menu press carries the menu's text instead.
        text = "" if message.text.startswith("/") else message.text
    if not text:
        draft = await _draft(context)
        note = context.t("Picking up your unfinished booking.") if draft.amenity_id else ""
        return await advance(update, context, desk, draft, note)
    return await _from_request(update, context, desk, BookDraft(), text)


async def _from_request(
    update: Update,
    context: ConciergeContext,
    desk: ResidentDesk,
    draft: BookDraft,
    text: str,
    *,
    unknown_amenity: str = "",
) -> State:
    """Fills the draft with what a typed request says; asks about unclear parts."""
    amenities = await _amenities(update, context, desk)
    if isinstance(amenities, ApiError):
        await flowkit.save_draft(context, JOB, draft)
        return await _failed_read(update, context, amenities, State.AMENITY)
    now, zone = context.services.clock(), context.zone
    request = parse_booking_request(text, [AmenityNames.of(a) for a in amenities], now, zone)
    notes: list[str] = []
    if request.amenity_id is not None:
        found = next(a for a in amenities if a.id == request.amenity_id)
        _choose_amenity(draft, found, context.lang)
    elif Part.AMENITY in request.ambiguous:
        notes.append(context.t("Several amenities match that; please tap the one you mean."))
    elif draft.amenity_id is None and unknown_amenity:
        notes.append(unknown_amenity)
    if request.date is not None:
        if request.date != draft.day:
            draft.start, draft.duration_minutes = None, None
        draft.day = request.date
    elif request.date_in_past:
        notes.append(context.t("That date has already passed."))
    elif request.impossible_date:
        notes.append(
            context.t("“{date}” is not a date on the calendar.", date=request.impossible_date)
        )
    if request.leftover and not (unknown_amenity in notes and request.amenity_id is None):
        notes.append(context.t("I did not understand “{words}”.", words=request.leftover))
    start = request.start(zone)
    if start is not None:
        draft.start = start
    elif request.start_time is not None:
        draft.start, draft.wanted_time = None, request.start_time
    elif Part.START in request.ambiguous:
        notes.append(context.t("I was not sure which time you meant (morning or evening?)."))
    if request.duration_minutes is not None:
        draft.duration_minutes = request.duration_minutes
    return await advance(update, context, desk, draft, "\n".join(notes))


def _choose_amenity(draft: BookDraft, amenity: Amenity, lang: str) -> None:
    if draft.amenity_id not in (None, amenity.id):
        # Another amenity has other free times: what was chosen for the first no longer holds.
        draft.start, draft.duration_minutes = None, None
    draft.amenity_id = amenity.id
    draft.amenity_name = amenity_label(amenity.name, lang)


# ---- step handlers ---------------------------------------------------------------------------


def _press_arg(update: Update) -> str:
    press = flowkit.pressed(update, JOB)
    return press.arg if press is not None else ""


async def choose_amenity(update: Update, context: ConciergeContext) -> State | int:
    """Takes the amenity button (checked against the amenity list) and asks for the date."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    amenities = await _amenities(update, context, desk)
    if isinstance(amenities, ApiError):
        return await _failed_read(update, context, amenities, State.AMENITY)
    found = next((a for a in amenities if a.id == _press_arg(update)), None)
    if found is None:
        await flowkit.notice(update, context.t("That amenity is not offered to you (any more)."))
        return State.AMENITY
    await flowkit.take(update)
    draft = await _draft(context)
    _choose_amenity(draft, found, context.lang)
    return await advance(update, context, desk, draft)


async def show_picture(update: Update, context: ConciergeContext) -> State | int:
    """Sends an amenity's picture with its description; the amenity buttons stay."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    amenities = await _amenities(update, context, desk)
    if isinstance(amenities, ApiError):
        return await _failed_read(update, context, amenities, State.AMENITY)
    found = next((a for a in amenities if a.id == _press_arg(update)), None)
    if found is None or not found.picture_url:
        await flowkit.notice(update, context.t("That amenity is not offered to you (any more)."))
        return State.AMENITY
    try:
        picture = await desk.download(found.picture_url)
    except ApiError:
        await flowkit.notice(update, context.t("The picture could not be loaded just now."))
        return State.AMENITY
    await flowkit.answer(update)
    name = amenity_label(found.name, context.lang)
    markup = InlineKeyboardMarkup(
        [[flowkit.button(JOB, context.t("Book {amenity}", amenity=name), "am", found.id)]]
    )
    chat = update.effective_chat
    if chat is not None:
        await chat.send_photo(picture, caption=_join(name, found.description), reply_markup=markup)
    return State.AMENITY


async def receive_amenity_text(update: Update, context: ConciergeContext) -> State | int:
    """Reads a typed amenity, or a whole request ("gym tomorrow 7pm"), and moves on."""
    desk = await _desk(update, context)
    message = update.effective_message
    if desk is None or message is None or not message.text:
        return ConversationHandler.END if desk is None else State.AMENITY
    unknown = context.t("I did not recognise an amenity in that; please tap one.")
    return await _from_request(
        update, context, desk, await _draft(context), message.text, unknown_amenity=unknown
    )


async def choose_date(update: Update, context: ConciergeContext) -> State | int | None:
    """Takes a date button and asks for the start."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    try:
        day = date.fromisoformat(_press_arg(update))
    except ValueError:
        await flowkit.stale(update, context, None)
        return None
    draft = await _draft(context)
    if not bookable_day(day, _today(context), _rules(context, draft)):
        await flowkit.notice(
            update, context.t("That day can no longer be booked; please pick another.")
        )
        return State.DATE
    await flowkit.take(update)
    if draft.day != day:
        draft.start, draft.duration_minutes = None, None
    draft.day = day
    return await advance(update, context, desk, draft)


async def receive_date_text(update: Update, context: ConciergeContext) -> State | int:
    """Reads a typed date ("next friday", "下周五", "12/25") and asks for the start."""
    desk = await _desk(update, context)
    message = update.effective_message
    if desk is None or message is None or not message.text:
        return ConversationHandler.END if desk is None else State.DATE
    draft = await _draft(context)
    found = slots.parse_date(message.text, context.services.clock(), context.zone)
    if isinstance(found, slots.DateRefusal):
        await flowkit.say(update, found.message(context.lang))
        return State.DATE
    rules = _rules(context, draft)
    if not bookable_day(found, _today(context), rules):
        await flowkit.say(
            update,
            context.t(
                "Please choose a date within the next {days} days.", days=rules.horizon_days
            ),
        )
        return State.DATE
    if draft.day != found:
        draft.start, draft.duration_minutes = None, None
    draft.day = found
    return await advance(update, context, desk, draft)


async def choose_start(update: Update, context: ConciergeContext) -> State | int | None:
    """Takes a start button; advance checks it is still free and asks for the duration."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    start = from_at_arg(_press_arg(update))
    if start is None:
        await flowkit.stale(update, context, None)
        return None
    await flowkit.take(update)
    draft = await _draft(context)
    draft.start, draft.duration_minutes = start.astimezone(context.zone), None
    draft.day = draft.day or draft.start.date()
    return await advance(update, context, desk, draft)


async def receive_start_text(update: Update, context: ConciergeContext) -> State | int:
    """Reads a typed start ("7pm", "19:30", "晚上7点") on the chosen date."""
    desk = await _desk(update, context)
    message = update.effective_message
    if desk is None or message is None or not message.text:
        return ConversationHandler.END if desk is None else State.START
    draft = await _draft(context)
    if draft.day is None:
        return await advance(update, context, desk, draft)
    found = typed_start(message.text, draft.day, context.zone)
    if found == "unsure":
        await flowkit.say(update, context.t('Please add am or pm (e.g. "7pm"), or tap a time.'))
        return State.START
    if not isinstance(found, datetime):
        await flowkit.say(
            update, context.t('I could not read a time from that; try e.g. "7pm" or "19:30".')
        )
        return State.START
    draft.start, draft.duration_minutes = found, None
    return await advance(update, context, desk, draft)


async def choose_duration(update: Update, context: ConciergeContext) -> State | int | None:
    """Takes a duration button; advance checks it still fits and shows the summary."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    arg = _press_arg(update)
    if not arg.isdigit():
        await flowkit.stale(update, context, None)
        return None
    await flowkit.take(update)
    draft = await _draft(context)
    draft.duration_minutes = int(arg)
    return await advance(update, context, desk, draft)


async def receive_duration_text(update: Update, context: ConciergeContext) -> State | int:
    """Reads a typed duration ("1 hour", "90 min", "一个半小时")."""
    desk = await _desk(update, context)
    message = update.effective_message
    if desk is None or message is None or not message.text:
        return ConversationHandler.END if desk is None else State.DURATION
    minutes, _ = take_duration(datetext.normalize(message.text))
    if minutes is None:
        await flowkit.say(
            update, context.t('Please tap a duration, or write one such as "1 hour" or "90 min".')
        )
        return State.DURATION
    draft = await _draft(context)
    draft.duration_minutes = minutes
    return await advance(update, context, desk, draft)


async def show_times(update: Update, context: ConciergeContext) -> State | int:
    """Back to every free start of the chosen date."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    await flowkit.take(update)
    draft = await _draft(context)
    draft.start, draft.duration_minutes, draft.command_id = None, None, None
    return await advance(update, context, desk, draft)


async def other_day(update: Update, context: ConciergeContext) -> State | int:
    """Back to choosing the date."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    await flowkit.take(update)
    draft = await _draft(context)
    draft.day, draft.start, draft.duration_minutes, draft.command_id = None, None, None, None
    return await advance(update, context, desk, draft)


async def retry(update: Update, context: ConciergeContext) -> State | int:
    """Tries the failed read again."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    await flowkit.take(update)
    return await advance(update, context, desk, await _draft(context))


# ---- confirming ------------------------------------------------------------------------------


async def confirm_booking(update: Update, context: ConciergeContext) -> State | int | None:
    """Books the slot under the draft's command id, and says how it went."""
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    draft = await _draft(context)
    if (
        draft.amenity_id is None
        or draft.start is None
        or draft.duration_minutes is None
        or draft.command_id is None
    ):
        await flowkit.stale(update, context, None)
        return None
    assert context.user_id is not None
    await flowkit.take(update)
    await common.typing(update, context)
    # The draft is handed over to the recorded write: a bot killed before Akubela answers
    # finds the booking at start instead of offering the slot (now taken by it) again.
    outcome = await context.services.writes.submit(
        context.user_id,
        BookingCreate(
            residence_id=desk.residence_id,
            amenity_id=draft.amenity_id,
            start=draft.start,
            duration_minutes=draft.duration_minutes,
        ),
        command_id=draft.command_id,
        draft=JOB,
    )
    kept = N_(
        "Akubela is not answering right now. Your booking request is kept and will be "
        "sent as soon as Akubela answers; you will hear back here."
    )
    if await common.told_undecided(update, context, outcome, kept):
        return ConversationHandler.END
    if outcome.result is Result.REFUSED:
        note = common.write_refused(context, outcome)
        if isinstance(outcome.error, InvalidRequest):
            # A refused command did nothing: the next attempt goes out under a new id, at a
            # start chosen again from the nearest free ones (the refused one may be taken).
            refused = draft.start
            draft.start, draft.duration_minutes, draft.command_id = None, None, None
            return await advance(update, context, desk, draft, note, near=refused)
        await flowkit.save_draft(context, JOB, draft)
        await flowkit.say(update, note)
        return State.CONFIRM
    await _tell_booked(update, context, desk, outcome.record_id, draft)
    return ConversationHandler.END


async def _tell_booked(
    update: Update,
    context: ConciergeContext,
    desk: ResidentDesk,
    booking_id: str | None,
    draft: BookDraft,
) -> None:
    """The booking's state in words; its PIN and QR code when it is confirmed."""
    booking = None
    if booking_id:
        try:
            booking = await desk.booking(booking_id)
        except ApiError:
            logger.info("the new booking could not be read back")
    if booking is None:
        await flowkit.say(
            update, context.t("✅ Your booking was sent. Send /bookings to see how it stands.")
        )
        return
    now = context.services.clock()
    if booking.state is BookingState.CONFIRMED:
        headline = context.t("✅ Booked!")
    elif booking.state is BookingState.PENDING:
        headline = context.t("📨 Booking requested.")
    else:
        headline = context.t("Akubela answered:")
    text = _join(headline, booking_details(booking, context.lang, context.zone, now))
    await send_booking(update, context, desk, booking, text, None)


# ---- the rest --------------------------------------------------------------------------------


def _restarts() -> flowkit.Handlers:
    """/book and the menu's button mid-flow: a booking from the start. They sit among the
    fallbacks rather than re-entering through the entry points, because the typed entry ("gym
    tomorrow 7pm") must not take a date or a time typed as an answer to a step."""
    return [
        CommandHandler("book", start_booking),
        CallbackQueryHandler(start_booking, pattern=rf"^{callbacks.build(keys.MENU, JOB)}$"),
    ]


async def _resumable(context: ConciergeContext) -> bool:
    """Whether /book would pick up a draft (an amenity was chosen)."""
    return (await _draft(context)).amenity_id is not None


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/book, the menu's "Book an amenity", and booking requests typed outside any flow."""
    text = filters.TEXT & ~filters.COMMAND
    times = CallbackQueryHandler(show_times, pattern=flowkit.on(JOB, "times"))
    another_day = CallbackQueryHandler(other_day, pattern=flowkit.on(JOB, "otherday"))
    return flowkit.build(
        job=JOB,
        command="book",
        start=start_booking,
        aside=N_("Your booking is closed; nothing was booked."),
        kept=N_("Your booking draft is kept: /book to continue."),
        resumable=_resumable,
        entry_points=[
            # Typed outside any conversation: "gym tomorrow 7pm", "预约健身房 明天晚上7点".
            MessageHandler(
                freetext.BOOKING_TEXT & filters.ChatType.PRIVATE & ~filters.COMMAND,
                start_booking,
            ),
        ],
        states={
            State.AMENITY: [
                CallbackQueryHandler(choose_amenity, pattern=flowkit.on(JOB, "am")),
                CallbackQueryHandler(show_picture, pattern=flowkit.on(JOB, "pic")),
                MessageHandler(text, receive_amenity_text),
            ],
            State.DATE: [
                CallbackQueryHandler(choose_date, pattern=flowkit.on(JOB, "day")),
                MessageHandler(text, receive_date_text),
            ],
            State.START: [
                CallbackQueryHandler(choose_start, pattern=flowkit.on(JOB, "at")),
                times,
                another_day,
                MessageHandler(text, receive_start_text),
            ],
            State.DURATION: [
                CallbackQueryHandler(choose_duration, pattern=flowkit.on(JOB, "dur")),
                times,
                MessageHandler(text, receive_duration_text),
            ],
            State.CONFIRM: [
                CallbackQueryHandler(confirm_booking, pattern=flowkit.on(JOB, "confirm")),
                times,
            ],
        },
        fallbacks=[
            CallbackQueryHandler(retry, pattern=flowkit.on(JOB, "retry")),
            *_restarts(),
        ],
        timeout=timeout,
        allow_reentry=False,
    )
