"""Every repair in the community: `/repairs_all` or the menu's "All repairs" (managers only).

```mermaid
flowchart LR
    list -- Prev / Next / a state --> list
    list -- a repair --> detail -- back --> list
    list -- Akubela down --> retry -- Try again --> list
```

The list comes from Akubela's manager list, every page of it, newest first, five a page, with a
filter per repair state (and "other" when Akubela sends a state the docs do not name). The detail
shows every field, times in the community's zone, the residence, building and family, the
feedback, and the photos: the resident's own when they reported through the bot (kept as
Telegram files) and Akubela's pictures. Every press is checked again (role, project and
community) and a press naming a repair is looked up in a fresh list of the asker's communities,
so an old or forged button, or one carrying another community's repair, shows nothing.

A manager of several communities sees all of theirs, each repair naming its community, and a
chip per community to show one (`conversations.staffscope`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
)

from api.errors import ApiError, AuthError
from conversations import common, flowkit, keys, staffscope
from conversations.community import Community
from conversations.context import ConciergeContext
from conversations.i18n import N_, tr
from conversations.my_repairs import (
    find,
    key_of,
    newest_first,
    page_of,
    repair_photos,
    short_id,
    snippet,
    state_emoji,
    state_words,
)
from conversations.records import Repair, RepairState
from conversations.roles import Action, Target
from conversations.staffscope import Scope
from conversations.tasks import when
from conversations.timewindow import TimeWindow, describe_window

logger = logging.getLogger(__name__)

JOB: Final = keys.REPAIRS_ALL
ALL: Final = "all"
OTHER: Final = "other"

# Filter codes travel in buttons (no spaces allowed there); each names one documented state.
STATE_FILTERS: Final = {
    "waiting": RepairState.WAITING,
    "progress": RepairState.IN_PROGRESS,
    "completed": RepairState.COMPLETED,
    "closed": RepairState.CLOSED,
}
OTHER_WORDS: Final = N_("other states")


class State(StrEnum):
    """The one step; its value is persisted, so it is a name, never a number."""

    BROWSE = "repairs_all.browse"


class ProjectRepairsDraft(BaseModel):
    """Which state the manager filters on and which page they are on."""

    state_filter: str = ALL
    page: int = 0
    community: int = staffscope.ALL


# ---- rules (pure) ----------------------------------------------------------------------------


def matches(repair: Repair, state_filter: str) -> bool:
    """Whether a repair is shown under a filter (an unknown filter code shows everything)."""
    if state_filter == OTHER:
        return repair.state is None
    wanted = STATE_FILTERS.get(state_filter)
    return wanted is None or repair.state is wanted


def filtered(repairs: Sequence[Repair], state_filter: str) -> list[Repair]:
    """The repairs a filter shows, in the order given."""
    return [r for r in repairs if matches(r, state_filter)]


def filter_counts(repairs: Sequence[Repair]) -> dict[str, int]:
    """How many repairs each filter shows; "other" only when there are such repairs."""
    counts = {ALL: len(repairs)}
    for code in STATE_FILTERS:
        counts[code] = len(filtered(repairs, code))
    others = len(filtered(repairs, OTHER))
    if others:
        counts[OTHER] = others
    return counts


def state_badge(state: RepairState | None, text: str, lang: str) -> str:
    """ "⏳ waiting for confirmation" in `lang`; an unknown state as the vendor wrote it."""
    words = state_words(state, text)
    shown = tr(lang, words) if state is not None else words
    return f"{state_emoji(state)} {shown}"


def filter_label(state_filter: str, lang: str) -> str:
    """A filter in words."""
    if state_filter == OTHER:
        return f"❔ {tr(lang, OTHER_WORDS)}"
    wanted = STATE_FILTERS.get(state_filter)
    return state_badge(wanted, "", lang) if wanted else tr(lang, N_("all"))


def home_of(repair: Repair) -> str:
    """The residence as people name it: family and building, else its id."""
    parts = [p for p in (repair.family_name.strip(), repair.building_name.strip()) if p]
    return ", ".join(parts) or repair.residence_id or "—"


def list_text(
    repairs: Sequence[Repair],
    state_filter: str,
    page: int,
    pages: int,
    lang: str,
    tags: Mapping[str, str] | None = None,
) -> str:
    """One page of the list: a title and one line per repair (after its community's tag, by
    repair id, where there are several)."""
    tags = tags or {}
    label = filter_label(state_filter, lang)
    if not repairs:
        return tr(lang, N_("🏠 No repairs in the community ({state})."), state=label)
    lines = [
        tr(
            lang,
            N_("🏠 Repairs in the community ({state}), newest first, page {page} of {pages}:"),
            state=label,
            page=page + 1,
            pages=pages,
        )
    ]
    for repair in repairs:
        tag = tags.get(repair.id, "")
        lines.append(
            (f"{tag} · " if tag else "")
            + f"{state_badge(repair.state, repair.state_text, lang)} · #{short_id(repair.id)} · "
            f"{home_of(repair)} · {snippet(repair.description)}"
        )
    lines.append(tr(lang, N_("Tap a repair to see it in full.")))
    return "\n".join(lines)


def detail_text(repair: Repair, lang: str, zone: ZoneInfo, now: datetime) -> str:
    """Every field of a repair from the manager list, times in the community's zone."""
    if repair.start and repair.finish:
        window = describe_window(TimeWindow(repair.start, repair.finish), lang, zone, now=now)
    else:
        window = "—"
    text = tr(
        lang,
        N_(
            "Repair #{short_id} — {state}\n"
            "🏠 {family} · {building}\n\n📝 {description}\n"
            "🕒 Visit: {window}\n📞 {contact}\n🗓 Reported: {created}"
        ),
        short_id=short_id(repair.id),
        state=state_badge(repair.state, repair.state_text, lang),
        family=repair.family_name or "—",
        building=repair.building_name or "—",
        description=repair.description or "—",
        window=window,
        contact=repair.contact or "—",
        created=when(repair.created, zone),
    )
    if repair.feedback:
        text += "\n" + tr(lang, N_("💬 Feedback: {feedback}"), feedback=repair.feedback)
    return text


# ---- keyboards -------------------------------------------------------------------------------


def list_markup(
    context: ConciergeContext,
    everything: Sequence[Repair],
    shown: Sequence[Repair],
    draft: ProjectRepairsDraft,
    pages: int,
    communities: Sequence[list[InlineKeyboardButton]] = (),
) -> InlineKeyboardMarkup:
    """A button per repair, Prev/Next, a button per state filter (with counts) and the
    community chips."""
    lang = context.lang
    rows = [
        [
            flowkit.button(
                JOB,
                f"{state_emoji(r.state)} #{short_id(r.id)} "
                f"{snippet(home_of(r), 16)} {snippet(r.description, 18)}",
                "open",
                key_of(r.id),
            )
        ]
        for r in shown
        if r.id
    ]
    rows += flowkit.pager(JOB, context, draft.page, pages)
    chips = [
        flowkit.button(
            JOB,
            ("• " if code == draft.state_filter else "") + f"{filter_label(code, lang)} ({count})",
            "filter",
            code,
        )
        for code, count in filter_counts(everything).items()
    ]
    rows += [chips[i : i + 2] for i in range(0, len(chips), 2)]
    rows += communities
    return flowkit.keyboard(rows, JOB, context)


def _back_markup(context: ConciergeContext, page: int) -> InlineKeyboardMarkup:
    return flowkit.keyboard(
        [[flowkit.button(JOB, context.t("⬅ Back to the list"), "page", str(page))]], JOB, context
    )


# ---- the draft and the vendor ----------------------------------------------------------------


async def _draft(context: ConciergeContext) -> ProjectRepairsDraft:
    return await flowkit.load_draft(context, JOB, ProjectRepairsDraft) or ProjectRepairsDraft()


async def _allowed(
    update: Update, context: ConciergeContext, chosen: int = staffscope.ALL
) -> Scope | None:
    """The communities whose repairs the asker may see (the manager list is Akubela's)."""
    return await staffscope.allowed_scope(
        update,
        context,
        Action.REPAIRS_VIEW_ALL,
        chosen=chosen,
        target_of=lambda community: Target(project_id=community.akubela_project_id),
    )


@dataclass(frozen=True, slots=True)
class Fetched:
    """Every repair of the communities shown, newest first, and whose each one is."""

    repairs: list[Repair]
    community_of: dict[str, int]  # repair id -> community id

    def tags(self, scope: Scope, lang: str) -> dict[str, str]:
        """Each repair's community tag (none over one community)."""
        return {rid: scope.tag(cid, lang) for rid, cid in self.community_of.items()}


def failure_text(context: ConciergeContext, error: ApiError) -> str:
    """What went wrong with the manager list, in plain words."""
    if isinstance(error, AuthError):
        # The manager's login is the bot's own setting, not something the user can redo.
        return context.t(
            "Akubela no longer accepts the bot's manager login. Please tell the administrator."
        )
    return common.vendor_failure(context, error)


async def _fetch(
    update: Update,
    context: ConciergeContext,
    communities: Sequence[Community],
    *,
    retry: tuple[str, str],
) -> Fetched | None:
    """Every repair of those communities, newest first; None after saying what went wrong."""
    await common.typing(update, context)
    repairs: list[Repair] = []
    community_of: dict[str, int] = {}
    try:
        for community in communities:
            listed = await context.services.project_desk_of(community.id).repairs()
            repairs += listed
            community_of.update((r.id, community.id) for r in listed)
    except ApiError as error:
        logger.info("manager repair list failed: %s", type(error).__name__)
        await flowkit.say(
            update, failure_text(context, error), flowkit.retry_keyboard(JOB, context, *retry)
        )
        return None
    return Fetched(newest_first(repairs), community_of)


async def _show_list(
    update: Update, context: ConciergeContext, draft: ProjectRepairsDraft, scope: Scope
) -> State:
    draft.community = scope.chosen
    fetched = await _fetch(update, context, scope.shown(), retry=("page", str(draft.page)))
    if fetched is None:
        return State.BROWSE
    repairs = fetched.repairs
    shown, draft.page, pages = page_of(filtered(repairs, draft.state_filter), draft.page)
    await flowkit.save_draft(context, JOB, draft)
    await flowkit.show(
        update,
        list_text(
            shown,
            draft.state_filter,
            draft.page,
            pages,
            context.lang,
            fetched.tags(scope, context.lang),
        ),
        list_markup(context, repairs, shown, draft, pages, staffscope.chips(JOB, context, scope)),
    )
    return State.BROWSE


# ---- handlers --------------------------------------------------------------------------------


async def start_list(update: Update, context: ConciergeContext) -> State | int:
    """/repairs_all or the menu button: the first page of every repair, for managers."""
    await flowkit.answer(update)
    scope = await _allowed(update, context)
    if scope is None:
        return ConversationHandler.END
    return await _show_list(update, context, ProjectRepairsDraft(), scope)


async def turn_page(update: Update, context: ConciergeContext) -> State | int:
    """Prev, Next, Back or Try again: that page, fetched fresh, same filter."""
    await flowkit.answer(update)
    draft = await _draft(context)
    scope = await _allowed(update, context, draft.community)
    if scope is None:
        return ConversationHandler.END
    arg = flowkit.arg(update, JOB)
    draft.page = int(arg) if arg.isdigit() else 0
    return await _show_list(update, context, draft, scope)


async def choose_filter(update: Update, context: ConciergeContext) -> State | int:
    """A state button: the first page of the repairs in that state."""
    await flowkit.answer(update)
    draft = await _draft(context)
    scope = await _allowed(update, context, draft.community)
    if scope is None:
        return ConversationHandler.END
    code = flowkit.arg(update, JOB)
    if code not in (ALL, OTHER, *STATE_FILTERS):
        logger.warning("user %s pressed an unknown repair filter %r", context.user_id, code)
        code = ALL
    draft.state_filter, draft.page = code, 0
    return await _show_list(update, context, draft, scope)


async def choose_community(update: Update, context: ConciergeContext) -> State | int:
    """A community chip: the first page of that community's repairs (or of all of theirs); a
    community the asker does not serve shows all of theirs."""
    await flowkit.answer(update)
    scope = await _allowed(update, context, staffscope.picked(flowkit.arg(update, JOB)))
    if scope is None:
        return ConversationHandler.END
    draft = await _draft(context)
    draft.page = 0
    return await _show_list(update, context, draft, scope)


async def open_repair(update: Update, context: ConciergeContext) -> State | int:
    """A repair of the list: its photos and every field, once found in a fresh list."""
    await flowkit.answer(update)
    return await _open(update, context, in_place=True)


async def open_from_alert(update: Update, context: ConciergeContext) -> State | int:
    """An alert's "Open the repair": the same, and the alert stays as it was."""
    await flowkit.answer(update)
    return await _open(update, context, in_place=False)


async def _open(update: Update, context: ConciergeContext, *, in_place: bool) -> State | int:
    draft = await _draft(context)
    scope = await _allowed(update, context, draft.community)
    if scope is None:
        return ConversationHandler.END
    key = flowkit.arg(update, JOB)
    # Looked up in every community the asker serves, whichever one the list shows: an alert
    # may name a repair of another of theirs; one of a community they do not serve is not found.
    fetched = await _fetch(update, context, scope.served, retry=("open", key))
    if fetched is None:
        return State.BROWSE
    repair = find(fetched.repairs, key)
    if repair is None:
        logger.warning("user %s pressed repair %r, which is not in the list", context.user_id, key)
        await flowkit.say(update, context.t("Sorry, that repair is not in the list (any more)."))
        return await _show_list(update, context, draft, scope)
    community_id = fetched.community_of[repair.id]
    media = await repair_photos(
        context,
        repair,
        residence_id=repair.residence_id,
        download=context.services.project_desk_of(community_id).download,
    )
    caption = context.t("📷 Photos of repair #{short_id}", short_id=short_id(repair.id))
    text = detail_text(repair, context.lang, context.zone, context.services.clock())
    tag = scope.tag(community_id, context.lang)
    text = f"{tag}\n{text}" if tag else text
    await flowkit.show(update, text, _back_markup(context, draft.page), in_place=in_place)
    await common.send_album(update, media, caption)
    return State.BROWSE


# ---- wiring ----------------------------------------------------------------------------------


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/repairs_all and the menu's "All repairs"."""
    states: dict[object, flowkit.Handlers] = {
        State.BROWSE: [
            CallbackQueryHandler(turn_page, pattern=flowkit.on(JOB, "page")),
            CallbackQueryHandler(choose_filter, pattern=flowkit.on(JOB, "filter")),
            CallbackQueryHandler(open_repair, pattern=flowkit.on(JOB, "open")),
            CallbackQueryHandler(choose_community, pattern=flowkit.on(JOB, staffscope.ACTION)),
        ],
    }
    return flowkit.build(
        job=JOB,
        views=states.keys(),
        command="repairs_all",
        start=start_list,
        states=states,
        timeout=timeout,
        aside=N_("Closed the list of all repairs (/repairs_all opens it again)."),
        # A new-repair alert's "Open the repair" works with no list open.
        entry_points=[CallbackQueryHandler(open_from_alert, pattern=flowkit.on(JOB, "show"))],
    )
