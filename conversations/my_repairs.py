"""My repairs: `/repairs` or the menu's "My repairs".

```mermaid
flowchart LR
    list -- Prev / Next --> list
    list -- a repair --> detail -- back --> list
    detail -- cancel it --> confirm
    list -- clear closed and completed --> confirm
    confirm -- yes --> list
    confirm -- no --> list
```

The list is newest first, five a page, each repair with an emoji and its state in words. The
detail shows every field Akubela returns (times in the community's zone) and the photos: the
resident's own, kept as Telegram files when the repair was reported, and Akubela's pictures.
Every press that names a repair is checked against the resident's current list, fetched fresh,
before anything is shown or deleted. Deletions are writes: their command id is chosen once and
kept in the draft, they are recorded before they leave, and when Akubela cannot take them now
they are kept and sent later under that id (or found done, when only the answer was lost).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
)

from api.errors import ApiError, NotFound
from conversations import common, flowkit, keys
from conversations.context import ConciergeContext
from conversations.i18n import N_
from conversations.ports import ResidentDesk
from conversations.records import Repair, RepairState
from conversations.roles import Action, Target
from conversations.timewindow import TimeWindow, describe_window
from conversations.writes import RepairCancel, RepairClear, Result

logger = logging.getLogger(__name__)

JOB: Final = keys.REPAIRS
PAGE_SIZE: Final = 5
SNIPPET_LENGTH: Final = 28
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")
# The project-wide view lists the manager's richer repairs with these same rules.
R = TypeVar("R", bound=Repair)


class State(StrEnum):
    """The steps; values are persisted, so they are names, never numbers."""

    BROWSE = "repairs.browse"
    CONFIRM = "repairs.confirm"


class Pending(StrEnum):
    """The deletion waiting for the resident's yes."""

    CANCEL = "cancel"
    CLEAR = "clear"


class MyRepairsDraft(BaseModel):
    """Where the resident is in their list, and a deletion waiting for confirmation."""

    page: int = 0
    pending: Pending | None = None
    target_ids: list[str] = Field(default_factory=list)
    command_id: str = ""


# ---- rules (pure) ----------------------------------------------------------------------------

FINISHED: Final = frozenset({RepairState.COMPLETED, RepairState.CLOSED})

_STATE_BADGES: Final = {
    RepairState.WAITING: ("⏳", N_("waiting for confirmation")),
    RepairState.IN_PROGRESS: ("🔧", N_("in progress")),
    RepairState.COMPLETED: ("✅", N_("completed")),
    RepairState.CLOSED: ("🔒", N_("closed")),
}
UNKNOWN_EMOJI: Final = "❔"


def state_emoji(state: RepairState | None) -> str:
    """The emoji of a repair state; a state the community does not know gets a question mark."""
    return _STATE_BADGES[state][0] if state is not None else UNKNOWN_EMOJI


def state_words(state: RepairState | None, text: str) -> str:
    """The message id of a known state in words, or the vendor's own `text` of an unknown one."""
    return _STATE_BADGES[state][1] if state is not None else text.strip() or "?"


def newest_first(repairs: Sequence[R]) -> list[R]:
    """Newest first by creation time; repairs without one go last."""
    dated = sorted(
        (r for r in repairs if r.created is not None),
        key=lambda r: (r.created, r.id),
        reverse=True,
    )
    return dated + [r for r in repairs if r.created is None]


def page_of(items: Sequence[R], page: int) -> tuple[list[R], int, int]:
    """The items of `page` (clamped into range), the page shown and how many pages there are."""
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    return list(items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]), page, pages


def finished_ids(repairs: Sequence[Repair]) -> list[str]:
    """The ids of the closed and completed repairs, which "Clear" deletes."""
    return [r.id for r in repairs if r.state in FINISHED]


def key_of(repair_id: str) -> str:
    """The repair's name in a button: its id when that fits callback data, else a digest."""
    if _PLAIN_ID.match(repair_id):
        return repair_id
    return "x-" + hashlib.sha256(repair_id.encode()).hexdigest()[:24]


def find(repairs: Sequence[R], key: str) -> R | None:
    """The repair a button names, if it is in the list (a forged or stale key finds none)."""
    return next((r for r in repairs if r.id and key_of(r.id) == key), None)


def snippet(text: str, length: int = SNIPPET_LENGTH) -> str:
    """The start of a description, on one line."""
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"


def short_id(repair_id: str) -> str:
    """The short form residents see: the last 6 characters of the vendor's id."""
    return repair_id[-6:]


# ---- texts -----------------------------------------------------------------------------------


def badge(context: ConciergeContext, repair: Repair) -> str:
    """ "⏳ waiting for confirmation", in the user's language; unknown states as sent."""
    words = state_words(repair.state, repair.state_text)
    shown = context.t(words) if repair.state is not None else words
    return f"{state_emoji(repair.state)} {shown}"


def list_text(context: ConciergeContext, shown: Sequence[Repair], page: int, pages: int) -> str:
    """The page of the list: one line per repair."""
    lines = [context.t("📋 Your repairs (page {page} of {pages}):", page=page + 1, pages=pages)]
    for repair in shown:
        lines.append(
            f"{badge(context, repair)} · #{short_id(repair.id)} · {snippet(repair.description)}"
        )
    lines.append(context.t("Tap a repair to see it in full."))
    return "\n".join(lines)


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


def detail_text(context: ConciergeContext, repair: Repair) -> str:
    """Every field Akubela returns for a repair, times in the community's zone."""
    zone = context.zone
    if repair.start and repair.finish:
        window = describe_window(
            TimeWindow(repair.start, repair.finish),
            context.lang,
            zone,
            now=context.services.clock(),
        )
    else:
        window = "—"
    text = context.t(
        "Repair #{short_id} — {state}\n\n📝 {description}\n"
        "🕒 Visit: {window}\n📞 {contact}\n🗓 Reported: {created}",
        short_id=short_id(repair.id),
        state=badge(context, repair),
        description=repair.description or "—",
        window=window,
        contact=repair.contact or "—",
        created=_local(repair.created, zone),
    )
    if repair.feedback:
        text += "\n" + context.t("💬 Feedback: {feedback}", feedback=repair.feedback)
    return text


# ---- keyboards -------------------------------------------------------------------------------


def list_markup(
    context: ConciergeContext,
    everything: Sequence[Repair],
    shown: Sequence[Repair],
    page: int,
    pages: int,
) -> InlineKeyboardMarkup:
    """A button per repair, Prev/Next, and "Clear closed and completed" when there are any."""
    rows = [
        [
            flowkit.button(
                JOB,
                f"{state_emoji(r.state)} #{short_id(r.id)} {snippet(r.description, 20)}",
                "open",
                key_of(r.id),
            )
        ]
        for r in shown
        if r.id
    ]
    rows += flowkit.pager(JOB, context, page, pages)
    finished = len(finished_ids(everything))
    if finished:
        label = context.t("🧹 Clear closed and completed ({count})", count=finished)
        rows.append([flowkit.button(JOB, label, "clear")])
    return flowkit.keyboard(rows, JOB, context)


def detail_markup(context: ConciergeContext, repair: Repair, page: int) -> InlineKeyboardMarkup:
    """Cancel this repair (or, once it is finished, remove it from the list), or back to the list
    page it came from. A finished repair cannot be called off any more: the same vendor delete
    only tidies the list, and the button says so."""
    drop_label = (
        context.t("🧹 Remove from my list")
        if repair.state in FINISHED
        else context.t("🗑 Cancel this repair")
    )
    return flowkit.keyboard(
        [
            [flowkit.button(JOB, drop_label, "drop", key_of(repair.id))],
            [flowkit.button(JOB, context.t("⬅ Back to the list"), "page", str(page))],
        ],
        JOB,
        context,
    )


# ---- the draft and the vendor ----------------------------------------------------------------


async def _draft(context: ConciergeContext) -> MyRepairsDraft:
    return await flowkit.load_draft(context, JOB, MyRepairsDraft) or MyRepairsDraft()


async def _save(context: ConciergeContext, draft: MyRepairsDraft) -> None:
    await flowkit.save_draft(context, JOB, draft)


async def _allowed(
    update: Update, context: ConciergeContext, action: Action, desk: ResidentDesk
) -> bool:
    """Whether the resident may do `action` in the desk's residence (told when not)."""
    return await common.allowed(update, context, action, Target(residence_id=desk.residence_id))


async def _fetch(
    update: Update, context: ConciergeContext, desk: ResidentDesk, *, retry_arg: str = "0"
) -> list[Repair] | None:
    """The residence's repairs newest first, or None after saying what went wrong."""
    await common.typing(update, context)
    try:
        return newest_first(await desk.repairs())
    except ApiError as error:
        logger.info("repair list failed: %s", type(error).__name__)
        await flowkit.say(
            update,
            common.vendor_failure(context, error),
            flowkit.retry_keyboard(JOB, context, "page", retry_arg),
        )
        return None


async def _refuse_press(update: Update, context: ConciergeContext, key: str) -> None:
    """A press naming a repair that is not in the resident's list: logged, politely refused."""
    logger.warning("user %s pressed repair %r, which is not in their list", context.user_id, key)
    await flowkit.say(update, context.t("Sorry, that repair is not in your list (any more)."))


async def _show_list(
    update: Update, context: ConciergeContext, desk: ResidentDesk, page: int, note: str = ""
) -> State | int:
    repairs = await _fetch(update, context, desk, retry_arg=str(page))
    if repairs is None:
        return State.BROWSE
    draft = await _draft(context)
    if not repairs:
        await flowkit.clear_draft(context, JOB)
        text = context.t("You have no repairs. Send /repair to report one.")
        await flowkit.show(update, f"{note}\n\n{text}" if note else text)
        return ConversationHandler.END
    shown, page, pages = page_of(repairs, page)
    draft.page, draft.pending, draft.target_ids = page, None, []
    await _save(context, draft)
    text = list_text(context, shown, page, pages)
    await flowkit.show(
        update,
        f"{note}\n\n{text}" if note else text,
        list_markup(context, repairs, shown, page, pages),
    )
    return State.BROWSE


async def _desk(update: Update, context: ConciergeContext) -> ResidentDesk | None:
    desk = await common.resident_desk(update, context, resume=JOB)
    if desk is not None and await _allowed(update, context, Action.REPAIR_VIEW, desk):
        return desk
    return None


# ---- handlers --------------------------------------------------------------------------------


async def start_list(update: Update, context: ConciergeContext) -> State | int:
    """/repairs or the menu button: the first page of the list."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    return await _show_list(update, context, desk, 0)


async def turn_page(update: Update, context: ConciergeContext) -> State | int:
    """Prev, Next, Back or Try again: that page of the list, fetched fresh."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    arg = flowkit.arg(update, JOB)
    page = int(arg) if arg.isdigit() else 0
    return await _show_list(update, context, desk, page)


async def open_repair(update: Update, context: ConciergeContext) -> State | int:
    """A repair of the list: its detail and photos, once it is checked to be the resident's."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    key = flowkit.arg(update, JOB)
    repairs = await _fetch(update, context, desk)
    if repairs is None:
        return State.BROWSE
    listed = find(repairs, key)
    if listed is None:
        await _refuse_press(update, context, key)
        return State.BROWSE
    try:
        repair = await desk.repair(listed.id)
    except NotFound as error:
        return await _show_list(update, context, desk, 0, common.vendor_failure(context, error))
    except ApiError as error:
        await flowkit.say(
            update,
            common.vendor_failure(context, error),
            flowkit.retry_keyboard(JOB, context, "open", key),
        )
        return State.BROWSE
    draft = await _draft(context)
    await flowkit.show(
        update, detail_text(context, repair), detail_markup(context, repair, draft.page)
    )
    await _send_photos(update, context, desk, repair)
    return State.BROWSE


async def repair_photos(
    context: ConciergeContext,
    repair: Repair,
    *,
    residence_id: str,
    download: Callable[[str], Awaitable[bytes]],
) -> list[str | bytes]:
    """The resident's own photos (Telegram file ids kept at reporting) and Akubela's pictures."""
    report = await context.services.repair_reports.get(repair.id, residence_id=residence_id)
    media: list[str | bytes] = [str(f) for f in (report.photo_file_ids if report else [])]
    for url in repair.picture_urls[: common.MEDIA_GROUP_MAX - len(media)]:
        try:
            media.append(await download(url))
        except ApiError as error:
            # A picture Akubela cannot hand over now is left out; the details still follow.
            logger.info("repair picture not loaded: %s", type(error).__name__)
    return media


async def _send_photos(
    update: Update, context: ConciergeContext, desk: ResidentDesk, repair: Repair
) -> None:
    """The repair's photos as one album."""
    media = await repair_photos(
        context, repair, residence_id=desk.residence_id, download=desk.download
    )
    caption = context.t("📷 Photos of repair #{short_id}", short_id=short_id(repair.id))
    await common.send_album(update, media, caption)


async def ask_cancel(update: Update, context: ConciergeContext) -> State | int:
    """Cancel this repair: asks for a confirmation naming it."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    key = flowkit.arg(update, JOB)
    repairs = await _fetch(update, context, desk)
    if repairs is None:
        return State.BROWSE
    repair = find(repairs, key)
    if repair is None:
        await _refuse_press(update, context, key)
        return State.BROWSE
    draft = await _draft(context)
    names = {"short_id": short_id(repair.id), "description": snippet(repair.description, 60)}
    if repair.state in FINISHED:
        draft.pending, draft.target_ids = Pending.CLEAR, [repair.id]
        text = context.t(
            "Remove repair #{short_id} “{description}” from your list? This cannot be undone.",
            **names,
        )
        yes_label = context.t("🧹 Yes, remove it")
    else:
        draft.pending, draft.target_ids = Pending.CANCEL, [repair.id]
        text = context.t(
            "Cancel repair #{short_id} “{description}”? This cannot be undone.", **names
        )
        yes_label = context.t("🗑 Yes, cancel it")
    draft.command_id = common.new_command_id()
    await _save(context, draft)
    await flowkit.show(update, text, _confirm_markup(context, yes_label))
    return State.CONFIRM


async def ask_clear(update: Update, context: ConciergeContext) -> State | int:
    """Clear closed and completed: asks for a confirmation that says how many."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    repairs = await _fetch(update, context, desk)
    if repairs is None:
        return State.BROWSE
    ids = finished_ids(repairs)
    draft = await _draft(context)
    if not ids:
        return await _show_list(
            update,
            context,
            desk,
            draft.page,
            context.t("No closed or completed repairs to clear."),
        )
    draft.pending, draft.target_ids = Pending.CLEAR, ids
    draft.command_id = common.new_command_id()
    await _save(context, draft)
    text = context.t(
        "Delete the closed and completed repairs from your list ({count})? This cannot be undone.",
        count=len(ids),
    )
    label = context.t("🧹 Yes, delete {count}", count=len(ids))
    await flowkit.show(update, text, _confirm_markup(context, label))
    return State.CONFIRM


def _confirm_markup(context: ConciergeContext, yes_label: str) -> InlineKeyboardMarkup:
    return flowkit.keyboard(
        [
            [
                flowkit.button(JOB, yes_label, "yes"),
                flowkit.button(JOB, context.t("✋ No, keep"), "no"),
            ]
        ],
        JOB,
        context,
    )


async def keep(update: Update, context: ConciergeContext) -> State | int:
    """No: nothing is deleted; back to the list."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    draft = await _draft(context)
    return await _show_list(update, context, desk, draft.page, context.t("Nothing was deleted."))


async def delete_confirmed(update: Update, context: ConciergeContext) -> State | int:
    """Yes: deletes what was confirmed; when Akubela is down the deletion is kept for later."""
    await flowkit.answer(update)
    desk = await _desk(update, context)
    if desk is None:
        return ConversationHandler.END
    draft = await _draft(context)
    if draft.pending is None or not draft.target_ids:
        await flowkit.say(update, context.t(flowkit.STALE))
        return await _show_list(update, context, desk, draft.page)
    action = Action.REPAIR_CANCEL if draft.pending is Pending.CANCEL else Action.REPAIR_CLEAR
    if not await _allowed(update, context, action, desk):
        return ConversationHandler.END
    # The ids were checked against the resident's list when the question was asked, and they
    # come from the draft, not from the button, so a press cannot name others.
    ids = list(draft.target_ids)
    assert context.user_id is not None
    await common.typing(update, context)
    write: RepairCancel | RepairClear = (
        RepairCancel(residence_id=desk.residence_id, repair_id=ids[0])
        if draft.pending is Pending.CANCEL
        else RepairClear(residence_id=desk.residence_id, repair_ids=ids)
    )
    outcome = await context.services.writes.submit(
        context.user_id, write, command_id=draft.command_id
    )
    kept = N_(
        "⏳ Akubela is not answering right now. Your request is kept and will be sent "
        "as soon as Akubela answers; you will hear back here."
    )
    if await common.told_undecided(update, context, outcome, kept):
        await flowkit.clear_draft(context, JOB)
        return ConversationHandler.END
    if outcome.result is Result.REFUSED:
        if isinstance(outcome.error, NotFound):
            return await _show_list(
                update, context, desk, draft.page, common.write_refused(context, outcome)
            )
        logger.warning("repair deletion failed: %s", type(outcome.error).__name__)
        retry = _confirm_markup(context, context.t("🔁 Try again"))
        await flowkit.show(update, common.write_refused(context, outcome), retry)
        return State.CONFIRM
    if draft.pending is Pending.CANCEL:
        note = context.t("🗑 Repair #{short_id} is cancelled.", short_id=short_id(ids[0]))
    else:
        note = context.t("🧹 Closed and completed repairs cleared: {count}.", count=len(ids))
    return await _show_list(update, context, desk, draft.page, note)


# ---- wiring ----------------------------------------------------------------------------------


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/repairs and the menu's "My repairs"."""
    states: dict[object, flowkit.Handlers] = {
        State.BROWSE: [
            CallbackQueryHandler(turn_page, pattern=flowkit.on(JOB, "page")),
            CallbackQueryHandler(open_repair, pattern=flowkit.on(JOB, "open")),
            CallbackQueryHandler(ask_cancel, pattern=flowkit.on(JOB, "drop")),
            CallbackQueryHandler(ask_clear, pattern=flowkit.on(JOB, "clear")),
        ],
        State.CONFIRM: [
            CallbackQueryHandler(delete_confirmed, pattern=flowkit.on(JOB, "yes")),
            CallbackQueryHandler(keep, pattern=flowkit.on(JOB, "no")),
        ],
    }
    return flowkit.build(
        job=JOB,
        views=states.keys(),
        command="repairs",
        start=start_list,
        states=states,
        timeout=timeout,
        aside=N_("Closed your repairs list (/repairs opens it again)."),
    )
