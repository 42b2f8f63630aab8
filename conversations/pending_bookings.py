"""Bookings waiting for approval: `/bookings_pending` or the menu's "Bookings waiting" (managers).

```mermaid
flowchart LR
    list -- Prev / Next --> list
    list -- a booking --> detail -- back --> list
    list -- Akubela down --> retry -- Try again --> list
```

Akubela documents no manager command for bookings, so the list is gathered from the residents
linked in the bot: each residence is read once, with the tokens of a resident who lives there,
and its `pending` bookings that have not ended are listed soonest first, five a page. A resident
whose login fails is skipped and counted, and the list says how many could not be read. The
detail says plainly that approving happens in the Akubela console (no approve command is
documented). The list remembers where each booking came from, so a press is answered only for a
booking it showed, read afresh from that residence.

Only the residences of the communities the manager serves are read; over several, a chip per
community picks one and each booking names its community (`conversations.staffscope`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
)

from api.errors import ApiError, NotFound, RateLimited, Unavailable
from conversations import common, flowkit, keys, staffscope
from conversations.community import FIRST_COMMUNITY
from conversations.context import ConciergeContext
from conversations.i18n import N_, tr
from conversations.my_bookings import amenity_label, state_words, when_words
from conversations.my_repairs import key_of
from conversations.ports import BookingDesk
from conversations.records import Booking, BookingState
from conversations.roles import Action, Target
from conversations.staffscope import Scope
from conversations.tasks import when

logger = logging.getLogger(__name__)

JOB: Final = keys.BOOKINGS_PENDING
PAGE_SIZE: Final = 5
PARALLEL_READS: Final = 8  # residences read at once: quick for the manager, gentle on Akubela


class State(StrEnum):
    """The one step; its value is persisted, so it is a name, never a number."""

    BROWSE = "bookings_pending.browse"


class Source(BaseModel):
    """Where a listed booking was read: whose tokens, which residence."""

    telegram_id: int
    residence_id: str
    booking_id: str
    community_id: int = FIRST_COMMUNITY  # lists from before there were several: the first's


class PendingDraft(BaseModel):
    """The page shown, the community chip and, by button key, where each listed booking came
    from."""

    page: int = 0
    listed: dict[str, Source] = Field(default_factory=dict)
    community: int = staffscope.ALL


# ---- gathering (no Telegram) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """A booking and where it was read."""

    booking: Booking
    telegram_id: int
    residence_id: str
    community_id: int = FIRST_COMMUNITY


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one look over every linked residence found."""

    found: list[Found]
    unreadable: int  # residents whose bookings could not be read
    read: int  # residences read
    vendor_down: bool  # a read failed because Akubela did not answer


DeskFor = Callable[[int, str], Awaitable[BookingDesk | None]]


def residences_of(
    residents: Sequence[tuple[int, Sequence[str]]],
) -> dict[str, list[int]]:
    """Each residence with the residents linked to it, in the order given."""
    homes: dict[str, list[int]] = {}
    for telegram_id, residence_ids in residents:
        for residence_id in residence_ids:
            people = homes.setdefault(residence_id, [])
            if telegram_id not in people:
                people.append(telegram_id)
    return homes


async def gather(residents: Sequence[tuple[int, Sequence[str]]], desk_for: DeskFor) -> Sweep:
    """Every booking of every linked residence, each residence read once."""
    failed: set[int] = set()
    down = False
    gate = asyncio.Semaphore(PARALLEL_READS)

    async def read(residence_id: str, people: list[int]) -> list[Found] | None:
        nonlocal down
        for telegram_id in people:
            async with gate:
                desk = await desk_for(telegram_id, residence_id)
                if desk is None:
                    failed.add(telegram_id)
                    continue
                try:
                    bookings = await desk.bookings()
                except ApiError as error:
                    # Their login or Akubela failed: someone else in the home may still do.
                    logger.info("bookings of a residence unreadable: %s", type(error).__name__)
                    failed.add(telegram_id)
                    down = down or isinstance(error, Unavailable | RateLimited)
                    continue
            return [Found(b, telegram_id, residence_id) for b in bookings]
        return None

    homes = residences_of(residents)
    results = await asyncio.gather(*(read(rid, people) for rid, people in homes.items()))
    found = [item for result in results if result for item in result]
    read_count = sum(result is not None for result in results)
    return Sweep(found, len(failed), read_count, down)


def waiting(found: Sequence[Found], now: datetime) -> list[Found]:
    """The pending bookings that have not ended, each once, soonest first."""
    far_future = datetime.max.replace(tzinfo=UTC)
    unique: dict[str, Found] = {}
    for item in found:
        booking = item.booking
        end = booking.finish or booking.start
        pending = booking.state is BookingState.PENDING
        # One that has ended or expired waits for nothing any more.
        over = booking.expired or (end is not None and end <= now)
        if booking.id and pending and not over:
            unique.setdefault(booking.id, item)
    return sorted(
        unique.values(),
        key=lambda f: (f.booking.start or far_future, f.booking.id),
    )


def page_of(items: Sequence[Found], page: int) -> tuple[list[Found], int, int]:
    """The items of `page` (clamped into range), the page shown and how many pages there are."""
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    return list(items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]), page, pages


# ---- texts (pure) ----------------------------------------------------------------------------

CONSOLE_NOTE: Final = N_(
    "Approving or declining happens in the Akubela console: Akubela documents no approve "
    "command for the bot."
)


def home_of(booking: Booking) -> str:
    """The residence as people name it."""
    parts = [p for p in (booking.family_name.strip(), booking.building_name.strip()) if p]
    return ", ".join(parts) or "—"


def booking_line(booking: Booking, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """One waiting booking on one line: amenity, when, residence."""
    return tr(
        lang,
        N_("{amenity}: {when} · {home}"),
        amenity=amenity_label(booking.amenity_name, lang),
        when=when_words(booking, lang, zone, now),
        home=home_of(booking),
    )


def unreadable_note(count: int, lang: str) -> str:
    """Says how many residents could not be read, or nothing."""
    if not count:
        return ""
    return tr(
        lang,
        N_(
            "⚠ The bookings of {count} linked resident(s) could not be read just now; "
            "theirs may be missing here."
        ),
        count=count,
    )


def list_text(
    shown: Sequence[Found],
    page: int,
    pages: int,
    unreadable: int,
    lang: str,
    zone: ZoneInfo,
    now: datetime,
    tags: Mapping[str, str] | None = None,
) -> str:
    """One page of waiting bookings, with what could not be read and where to approve; each
    after its community's tag (by booking id) where there are several."""
    tags = tags or {}
    if shown:
        lines = [
            tr(
                lang,
                N_("⏳ Bookings waiting for approval, soonest first (page {page} of {pages}):"),
                page=page + 1,
                pages=pages,
            )
        ]
        lines += [
            "• "
            + (f"{tags[f.booking.id]} · " if tags.get(f.booking.id) else "")
            + booking_line(f.booking, lang, zone, now)
            for f in shown
        ]
    else:
        lines = [tr(lang, N_("⏳ No bookings are waiting for approval."))]
    note = unreadable_note(unreadable, lang)
    if note:
        lines.append(note)
    lines.append(tr(lang, CONSOLE_NOTE))
    return "\n".join(lines)


def detail_text(booking: Booking, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """Every field of one booking, times in the community's zone, and where to approve it."""
    text = tr(
        lang,
        N_(
            "{amenity} — {state}\n🕒 {when}\n🏠 {family} · {building}\n"
            "🗓 Requested: {created}\nBooking id: {booking_id}"
        ),
        amenity=amenity_label(booking.amenity_name, lang),
        state=state_words(booking, lang),
        when=when_words(booking, lang, zone, now),
        family=booking.family_name or "—",
        building=booking.building_name or "—",
        created=when(booking.created, zone),
        booking_id=booking.id or "—",
    )
    return text + "\n\n" + tr(lang, CONSOLE_NOTE)


# ---- keyboards -------------------------------------------------------------------------------


def list_markup(
    context: ConciergeContext,
    shown: Sequence[Found],
    page: int,
    pages: int,
    communities: Sequence[list[InlineKeyboardButton]] = (),
) -> InlineKeyboardMarkup:
    """A button per booking, Prev/Next, Refresh and the community chips."""
    zone, now = context.zone, context.services.clock()
    rows = [
        [
            flowkit.button(
                JOB,
                booking_line(f.booking, context.lang, zone, now),
                "open",
                key_of(f.booking.id),
            )
        ]
        for f in shown
    ]
    rows += flowkit.pager(JOB, context, page, pages)
    rows.append([flowkit.button(JOB, context.t("🔄 Refresh"), "page", str(page))])
    rows += communities
    return flowkit.keyboard(rows, JOB, context)


# ---- the draft and the vendor ----------------------------------------------------------------


async def _draft(context: ConciergeContext) -> PendingDraft:
    return await flowkit.load_draft(context, JOB, PendingDraft) or PendingDraft()


async def _allowed(
    update: Update, context: ConciergeContext, chosen: int = staffscope.ALL
) -> Scope | None:
    """The communities whose bookings the asker may see (bookings are Akubela's)."""
    return await staffscope.allowed_scope(
        update,
        context,
        Action.BOOKINGS_VIEW_PENDING,
        chosen=chosen,
        target_of=lambda community: Target(project_id=community.akubela_project_id),
    )


async def _sweep(context: ConciergeContext, scope: Scope) -> Sweep:
    """One look over the linked residences of the communities shown, each booking knowing
    its community."""
    services = context.services
    found: list[Found] = []
    unreadable = read = 0
    down = False
    for community in scope.shown():
        residents = await services.directory.residences_of_residents(community.id)
        sweep = await gather(residents, services.desk_for_residence)
        found += [replace(f, community_id=community.id) for f in sweep.found]
        unreadable, read = unreadable + sweep.unreadable, read + sweep.read
        down = down or sweep.vendor_down
    return Sweep(found, unreadable, read, down)


async def _show_list(
    update: Update, context: ConciergeContext, page: int, scope: Scope
) -> State | int:
    await common.typing(update, context)
    sweep = await _sweep(context, scope)
    if sweep.vendor_down and sweep.read == 0:
        await flowkit.say(
            update,
            context.t("Akubela is not answering right now. Please try again in a moment."),
            flowkit.retry_keyboard(JOB, context, "page", str(page)),
        )
        return State.BROWSE
    if sweep.read == 0 and sweep.unreadable == 0:
        await flowkit.clear_draft(context, JOB)
        await flowkit.say(
            update,
            context.t(
                "No resident has linked their Akubela account in the bot yet, so there are "
                "no bookings to gather."
            ),
        )
        return ConversationHandler.END
    now = context.services.clock()
    everything = waiting(sweep.found, now)
    shown, page, pages = page_of(everything, page)
    draft = PendingDraft(
        page=page,
        listed={
            key_of(f.booking.id): Source(
                telegram_id=f.telegram_id,
                residence_id=f.residence_id,
                booking_id=f.booking.id,
                community_id=f.community_id,
            )
            for f in everything
        },
        community=scope.chosen,
    )
    await flowkit.save_draft(context, JOB, draft)
    tags = {f.booking.id: scope.tag(f.community_id, context.lang) for f in shown}
    text = list_text(shown, page, pages, sweep.unreadable, context.lang, context.zone, now, tags)
    markup = list_markup(context, shown, page, pages, staffscope.chips(JOB, context, scope))
    await flowkit.show(update, text, markup)
    return State.BROWSE


# ---- handlers --------------------------------------------------------------------------------


async def start_list(update: Update, context: ConciergeContext) -> State | int:
    """/bookings_pending or the menu button: the first page of waiting bookings, for managers."""
    await flowkit.answer(update)
    scope = await _allowed(update, context)
    if scope is None:
        return ConversationHandler.END
    return await _show_list(update, context, 0, scope)


async def turn_page(update: Update, context: ConciergeContext) -> State | int:
    """Prev, Next, Back, Refresh or Try again: that page, gathered afresh."""
    await flowkit.answer(update)
    scope = await _allowed(update, context, (await _draft(context)).community)
    if scope is None:
        return ConversationHandler.END
    arg = flowkit.arg(update, JOB)
    return await _show_list(update, context, int(arg) if arg.isdigit() else 0, scope)


async def choose_community(update: Update, context: ConciergeContext) -> State | int:
    """A community chip: the first page of that community's waiting bookings (or of all of
    the asker's); one the asker does not serve shows all of theirs."""
    await flowkit.answer(update)
    scope = await _allowed(update, context, staffscope.picked(flowkit.arg(update, JOB)))
    if scope is None:
        return ConversationHandler.END
    return await _show_list(update, context, 0, scope)


async def open_booking(update: Update, context: ConciergeContext) -> State | int:
    """A booking of the list: read afresh from its residence and shown in full."""
    await flowkit.answer(update)
    draft = await _draft(context)
    scope = await _allowed(update, context, draft.community)
    if scope is None:
        return ConversationHandler.END
    key = flowkit.arg(update, JOB)
    source = draft.listed.get(key)
    # Listed, and still of a community the asker serves (they may have lost one since).
    if source is None or scope.of(source.community_id) is None:
        logger.warning("user %s pressed booking %r, which was not listed", context.user_id, key)
        await flowkit.say(update, context.t("Sorry, that booking is not in the list (any more)."))
        return await _show_list(update, context, draft.page, scope)
    await common.typing(update, context)
    desk = await context.services.desk_for_residence(source.telegram_id, source.residence_id)
    if desk is None:
        await flowkit.say(
            update,
            context.t("That resident's link is gone, so the booking cannot be read now."),
        )
        return await _show_list(update, context, draft.page, scope)
    try:
        booking = await desk.booking(source.booking_id)
    except NotFound as error:
        await flowkit.say(update, common.vendor_failure(context, error))
        return await _show_list(update, context, draft.page, scope)
    except ApiError as error:
        logger.info("pending booking unreadable: %s", type(error).__name__)
        await flowkit.say(
            update,
            common.vendor_failure(context, error),
            flowkit.retry_keyboard(JOB, context, "open", key),
        )
        return State.BROWSE
    text = detail_text(booking, context.lang, context.zone, context.services.clock())
    tag = scope.tag(source.community_id, context.lang)
    text = (tag + "\n" if tag else "") + text
    back = [[flowkit.button(JOB, context.t("⬅ Back to the list"), "page", str(draft.page))]]
    await flowkit.show(update, text, flowkit.keyboard(back, JOB, context))
    return State.BROWSE


# ---- wiring ----------------------------------------------------------------------------------


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/bookings_pending and the menu's "Bookings waiting"."""
    states: dict[object, flowkit.Handlers] = {
        State.BROWSE: [
            CallbackQueryHandler(turn_page, pattern=flowkit.on(JOB, "page")),
            CallbackQueryHandler(open_booking, pattern=flowkit.on(JOB, "open")),
            CallbackQueryHandler(choose_community, pattern=flowkit.on(JOB, staffscope.ACTION)),
        ],
    }
    return flowkit.build(
        job=JOB,
        views=states.keys(),
        command="bookings_pending",
        start=start_list,
        states=states,
        timeout=timeout,
        aside=N_("Closed the pending bookings (/bookings_pending opens them again)."),
    )
