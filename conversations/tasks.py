"""The task board: a worker's own maintenance tasks, and every task for managers.

```mermaid
graph LR
  start(/tasks) --> browse
  browse -- page / filter / open / acknowledge --> browse
  browse -- accept --> browse
  browse -- reopen --> reason -- reason typed --> browse
  browse -- delete --> confirm -- yes / no --> browse
  alert(Accept / Reopen in an alert) --> browse
```

Workers see the tasks Tuya gives their linked worker (the task list names the worker by
username and nickname, so a task is matched to a worker through the worker list), newest
first, five to a page; a new task can be acknowledged, which is recorded with who and when, in
the audit log, and told to the managers. Managers see every task with a status filter; a task
awaiting acceptance is accepted (then recorded in the maintenance log) or reopened with a
reason the worker is told. Every press naming a task reads the task afresh and is checked with
`roles.decide` before anything is shown or changed.

Each community has its own board. The list covers the communities the asker serves, with a chip
per community and each task naming its community where there are several
(`conversations.staffscope`); a press naming a task is looked up on the boards of the asker's
communities only, so another community's task id finds nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from conversations import callbacks, common, flowkit, keys, staffscope
from conversations.community import Community
from conversations.context import ConciergeContext
from conversations.domain import Actor, Role
from conversations.i18n import N_, tr
from conversations.ports import OwnWrite
from conversations.records import Task, TaskDetail, TaskState
from conversations.roles import REFUSAL_MESSAGES, Action, Refusal, Target, decide
from conversations.staffscope import Scope
from conversations.writes import (
    MaintenanceRecord,
    MaintenanceWorkRecord,
    Outcome,
    Result,
    TaskAccept,
    TaskDelete,
    TaskReopen,
    worker_id_of,
)

# Services are built by `bot`; only their type is named here.
if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

JOB: Final = keys.TASKS
PAGE_SIZE: Final = 5
MIN_REASON: Final = 3
MAX_REASON: Final = 500
ALL: Final = "all"


class State(StrEnum):
    """Steps of the conversation, persisted by value."""

    BROWSE = "tasks.browse"
    REASON = "tasks.reason"
    CONFIRM = "tasks.confirm"


class TasksDraft(BaseModel):
    """Where the user is on the board, and the task being reopened or deleted."""

    status: str = ALL
    page: int = 0
    task_id: str | None = None
    reason: str | None = None
    # The reopen's command id, chosen with the reason, so sending it again is the same write.
    command_id: str | None = None
    community: int = staffscope.ALL  # the community chip: all of the asker's, or one


# ---- rules -----------------------------------------------------------------------------------

STATUS_WORDS: Final = {
    TaskState.NEW: ("🆕", N_("new")),
    TaskState.IN_PROGRESS: ("🛠", N_("in progress")),
    TaskState.AWAITING_ACCEPTANCE: ("⏳", N_("awaiting acceptance")),
    TaskState.ACCEPTED: ("✅", N_("accepted")),
}
# The filter codes travel in buttons and drafts, so they stay as first released.
STATUS_FILTERS: Final = {
    "PENDING_MAINTENANCE": TaskState.NEW,
    "IN_MAINTENANCE": TaskState.IN_PROGRESS,
    "PENDING_ACCEPTANCE": TaskState.AWAITING_ACCEPTANCE,
    "ACCEPTANCE_COMPLETE": TaskState.ACCEPTED,
}
FILTERS: Final = (ALL, *STATUS_FILTERS)
REOPEN_FROM: Final = frozenset({TaskState.AWAITING_ACCEPTANCE, TaskState.ACCEPTED})
TASK_GONE: Final = N_("That task no longer exists; it may have been deleted meanwhile.")


def status_words(state: TaskState, lang: str) -> str:
    """A task state in words, with its emoji."""
    emoji, words = STATUS_WORDS[state]
    return f"{emoji} {tr(lang, words)}"


def filter_words(code: str, lang: str) -> str:
    """A status filter in words; an unknown code as it is."""
    state = STATUS_FILTERS.get(code)
    return status_words(state, lang) if state is not None else f"❔ {code or '?'}"


def task_status(task: Task, lang: str) -> str:
    """A task's state in words; one the community does not know as the vendor wrote it."""
    if task.state is None:
        return f"❔ {task.state_text or '?'}"
    return status_words(task.state, lang)


def newest_first(tasks: Sequence[Task]) -> list[Task]:
    """Tasks by creation time, newest first; tasks without a time last."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(tasks, key=lambda t: (t.created or oldest, t.id), reverse=True)


def with_status(tasks: Sequence[Task], status: str) -> list[Task]:
    """The tasks a status filter shows: those in its state, or all of them."""
    if status == ALL:
        return list(tasks)
    wanted = STATUS_FILTERS.get(status)
    return [t for t in tasks if wanted is not None and t.state is wanted]


def page_of(
    items: Sequence[Task], page: int, size: int = PAGE_SIZE
) -> tuple[list[Task], int, int]:
    """The items of one page, that page (clamped into range) and the number of pages."""
    pages = max(1, -(-len(items) // size))
    page = min(max(page, 0), pages - 1)
    return list(items[page * size : (page + 1) * size]), page, pages


def board_project(actor: Actor, project_ids: Sequence[str]) -> str:
    """The project a manager's decision is checked against: the one of theirs that is ours.

    The task board is the community's Tuya project; a manager linked to either the Tuya or
    the Akubela project of the community manages it.
    """
    first = project_ids[0] if project_ids else ""
    return next((p for p in project_ids if p in actor.project_ids), first)


def reason_problem(text: str) -> str | None:
    """Why a typed reopen reason cannot be used (a message id), or None when it is fine."""
    stripped = text.strip()
    if len(stripped) < MIN_REASON or not any(c.isalnum() for c in stripped):
        return N_("Please give a short reason in words (at least {minimum} characters).")
    if len(stripped) > MAX_REASON:
        return N_("That is too long: please keep the reason under {maximum} characters.")
    return None


def short_id(task_id: str) -> str:
    """The tail of a task id, enough to tell tasks apart on a button."""
    return task_id[-6:]


def when(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment in the community's zone, the same in every language."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


Places = list[tuple[str, list[str]]]


def places_lines(places: Places) -> list[str]:
    """One line per room: its name and the devices to look at."""
    return [f"• {room}: {', '.join(devices) or '—'}" for room, devices in places]


def worker_name(task: Task) -> str:
    """How a task names its worker."""
    return task.worker_nickname or task.worker_username or "?"


def task_details(
    task: TaskDetail,
    places: Places,
    acknowledged_at: datetime | None,
    lang: str,
    zone: ZoneInfo,
) -> str:
    """The detail view of one task."""
    lines = [
        tr(lang, N_("Task {task_id}"), task_id=task.id),
        tr(lang, N_("Status: {status}"), status=task_status(task, lang)),
        tr(lang, N_("Worker: {worker}"), worker=worker_name(task)),
        tr(lang, N_("Created: {when}"), when=when(task.created, zone)),
    ]
    if acknowledged_at is not None:
        lines.append(tr(lang, N_("👍 Acknowledged: {when}"), when=when(acknowledged_at, zone)))
    lines.append(tr(lang, N_("Rooms and devices:")))
    lines += places_lines(places) or ["—"]
    return "\n".join(lines)


def maintenance_notes(
    task: TaskDetail, places: Places, accepted_at: datetime, zone: ZoneInfo
) -> str:
    """The summary written to the maintenance log (for the office, in English)."""
    rooms = "; ".join(f"{room} ({', '.join(devices) or '-'})" for room, devices in places)
    return "\n".join(
        [
            f"Maintenance task {task.id}, accepted {when(accepted_at, zone)}.",
            f"Worker: {worker_name(task)}",
            f"Rooms and devices: {rooms or '-'}",
        ]
    )


# ---- talking to people outside this chat -------------------------------------------------------


def community_projects(community: Community) -> list[str]:
    """A community's projects: the task board's first, then Akubela's."""
    ids = [community.tuya_project_id, community.akubela_project_id]
    return list(dict.fromkeys(i for i in ids if i))


def board_target(actor: Actor) -> Callable[[Community], Target]:
    """What a decision on a community's board is checked against: a manager's project there (a
    worker's tasks are checked by worker)."""

    def target(community: Community) -> Target:
        if not _is_manager(actor):
            return Target()
        return Target(project_id=board_project(actor, community_projects(community)))

    return target


async def board_scope(
    context: ConciergeContext, action: Action, chosen: int = staffscope.ALL
) -> Scope | Refusal:
    """The communities on whose boards the asker may do `action`, or why none."""
    actor = await _actor(context)
    return await staffscope.scope_or_refusal(
        context, action, chosen=chosen, target_of=board_target(actor)
    )


# ---- helpers ---------------------------------------------------------------------------------


def board_failure(context: ConciergeContext, error: ApiError) -> str:
    """What went wrong with the task system, in plain words."""
    if isinstance(error, NotFound):
        return context.t(TASK_GONE)
    if isinstance(error, AuthError):
        return context.t(
            "The task system no longer accepts the bot's credentials. "
            "Please tell the administrator."
        )
    if isinstance(error, RateLimited):
        return context.t("The task system is busy right now. Please try again in a minute.")
    if isinstance(error, Unavailable):
        return context.t("The task system is not answering right now. Please try again soon.")
    return context.t("The task system could not do that right now. Please try again soon.")


def _back(context: ConciergeContext) -> InlineKeyboardMarkup:
    return flowkit.keyboard(
        [[flowkit.button(JOB, context.t("◀ Back to the list"), "back")]], JOB, context
    )


async def _draft(context: ConciergeContext) -> TasksDraft:
    return await flowkit.load_draft(context, JOB, TasksDraft) or TasksDraft()


async def _actor(context: ConciergeContext) -> Actor:
    assert context.user_id is not None
    return await context.services.directory.actor(context.user_id)


def _is_manager(actor: Actor) -> bool:
    return actor.role in (Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A task someone may act on, as read just now."""

    task: TaskDetail
    worker_id: str | None
    community: Community
    scope: Scope  # the asker's communities for the action, to name the task's among them


async def load_task(
    update: Update, context: ConciergeContext, task_id: str, action: Action
) -> Loaded | None:
    """The task when it exists on the board of one of the user's communities and the user may
    do `action` on it; else None, user told."""
    actor = await _actor(context)
    scope = await board_scope(context, action)
    if not isinstance(scope, Scope):
        logger.warning("user %s refused %s: %s", context.user_id, action.value, scope.value)
        await flowkit.notice(update, context.t(REFUSAL_MESSAGES[scope]))
        return None
    await common.typing(update, context)
    for community in scope.served:
        board = context.services.task_board_of(community.id)
        try:
            task = await board.task(task_id)
            workers = await board.workers()
        except NotFound:
            continue  # not this community's: perhaps another of theirs
        except ApiError as error:
            await flowkit.notice(update, board_failure(context, error))
            return None
        worker_id = worker_id_of(task, workers)
        # An unmatched worker is nobody's: a worker never reaches a task we cannot place.
        target = Target(
            worker_id=worker_id or "",
            project_id=board_project(actor, community_projects(community)),
            community_id=community.id,
        )
        refusal = decide(actor, action, target)
        if refusal is not None:
            logger.warning(
                "user %s refused %s on task %s: %s",
                context.user_id,
                action.value,
                task_id,
                refusal,
            )
            await flowkit.notice(update, context.t(REFUSAL_MESSAGES[refusal]))
            return None
        return Loaded(task, worker_id, community, scope)
    # On no board of theirs: gone, or another community's (which is not said).
    logger.warning("user %s pressed task %s, on none of their boards", context.user_id, task_id)
    await flowkit.notice(update, context.t(TASK_GONE))
    return None


async def places_of(context: ConciergeContext, task: TaskDetail, community_id: int) -> Places:
    """The task's rooms and devices by name (ids where the names cannot be read now)."""
    board = context.services.task_board_of(community_id)
    try:
        rooms = {r.id: r.name or r.number or r.id for r in await board.rooms()}
    except ApiError:
        logger.info("room names unavailable; showing ids")
        rooms = {}
    found: Places = []
    for relation in task.rooms:
        try:
            names = {d.id: d.name or d.id for d in await board.devices(relation.room_id)}
        except ApiError:
            logger.info("device names unavailable; showing ids")
            names = {}
        found.append(
            (
                rooms.get(relation.room_id, relation.room_id),
                [names.get(device_id, device_id) for device_id in relation.device_ids],
            )
        )
    return found


# ---- the list --------------------------------------------------------------------------------


def _task_button(
    context: ConciergeContext, task: Task, manager: bool, community: str = ""
) -> InlineKeyboardButton | None:
    parts = [task_status(task, context.lang), when(task.created, context.zone)]
    if community:
        parts.insert(0, community)
    if manager:
        parts.append(worker_name(task))
    parts.append(f"#{short_id(task.id)}")
    try:
        return flowkit.button(JOB, " · ".join(parts), "open", task.id)
    except callbacks.CallbackDataError:
        logger.warning("a task id does not fit in a button; it is left out")
        return None


def list_view(
    tasks: Sequence[Task],
    draft: TasksDraft,
    manager: bool,
    context: ConciergeContext,
    names: Mapping[str, str] | None = None,
    communities: Sequence[list[InlineKeyboardButton]] = (),
) -> tuple[str, InlineKeyboardMarkup, int]:
    """The text and buttons of one page of the board, and the page actually shown; `names`
    gives each task's community (by task id) where there are several, `communities` the
    chips."""
    names = names or {}
    shown = newest_first(with_status(tasks, draft.status) if manager else tasks)
    items, page, pages = page_of(shown, draft.page)
    if manager:
        chosen = (
            context.t("all") if draft.status == ALL else filter_words(draft.status, context.lang)
        )
        title = (
            context.t("Maintenance tasks ({status}), newest first:", status=chosen)
            if items
            else context.t("No maintenance tasks ({status}).", status=chosen)
        )
    else:
        title = (
            context.t("Your maintenance tasks, newest first:")
            if items
            else context.t("You have no maintenance tasks right now.")
        )
    if pages > 1:
        title += "\n" + context.t("Page {page} of {pages}", page=page + 1, pages=pages)
    buttons = (_task_button(context, t, manager, names.get(t.id, "")) for t in items)
    rows = [[b] for b in buttons if b is not None]
    rows += flowkit.pager(JOB, context, page, pages)
    if manager:
        choices = [
            flowkit.button(
                JOB,
                ("• " if status == draft.status else "")
                + (context.t("All") if status == ALL else filter_words(status, context.lang)),
                "filter",
                status,
            )
            for status in FILTERS
        ]
        rows += [choices[:3], choices[3:]]
    rows += communities
    return title, flowkit.keyboard(rows, JOB, context), page


async def _send_list(update: Update, context: ConciergeContext, draft: TasksDraft) -> State:
    """Shows the board page the draft points at, over the communities it covers."""
    actor = await _actor(context)
    manager = _is_manager(actor)
    scope = await board_scope(context, Action.TASK_VIEW, draft.community)
    if not isinstance(scope, Scope):
        await flowkit.say(update, context.t(REFUSAL_MESSAGES[scope]))
        return State.BROWSE
    draft.community = scope.chosen
    await common.typing(update, context)
    tasks: list[Task] = []
    names: dict[str, str] = {}
    try:
        for community in scope.shown():
            board = context.services.task_board_of(community.id)
            listed = await board.tasks()
            if not manager:
                workers = await board.workers()
                listed = [t for t in listed if worker_id_of(t, workers) == actor.worker_id]
            tasks += listed
            if scope.several:
                names.update((t.id, community.name(context.lang)) for t in listed)
    except ApiError as error:
        retry = [[flowkit.button(JOB, context.t("🔄 Retry"), "retry")]]
        await flowkit.show(
            update, board_failure(context, error), flowkit.keyboard(retry, JOB, context)
        )
        return State.BROWSE
    chips = staffscope.chips(JOB, context, scope)
    text, markup, draft.page = list_view(tasks, draft, manager, context, names, chips)
    draft.task_id, draft.reason = None, None
    await flowkit.save_draft(context, JOB, draft)
    await flowkit.show(update, text, markup)
    return State.BROWSE


async def start_tasks(update: Update, context: ConciergeContext) -> State | int:
    """Shows the board: a worker's own tasks, or every task for a manager."""
    await flowkit.take(update)
    scope = await board_scope(context, Action.TASK_VIEW)
    if not isinstance(scope, Scope):
        await flowkit.say(update, context.t(REFUSAL_MESSAGES[scope]))
        return ConversationHandler.END
    return await _send_list(update, context, TasksDraft())


async def show_board(update: Update, context: ConciergeContext) -> State | int:
    """Back or Retry: the board, read afresh."""
    await flowkit.answer(update)
    return await _send_list(update, context, await _draft(context))


async def turn_page(update: Update, context: ConciergeContext) -> State | int:
    """Previous or Next: that page of the board."""
    await flowkit.answer(update)
    draft = await _draft(context)
    draft.page = int(flowkit.arg(update, JOB))
    return await _send_list(update, context, draft)


async def choose_filter(update: Update, context: ConciergeContext) -> State | int:
    """A status: the board's tasks in it, from the first page."""
    await flowkit.answer(update)
    draft = await _draft(context)
    draft.status, draft.page = flowkit.arg(update, JOB), 0
    return await _send_list(update, context, draft)


async def choose_community(update: Update, context: ConciergeContext) -> State | int:
    """A community chip: that community's tasks (or all of the asker's), from the first page;
    one the asker does not serve shows all of theirs."""
    await flowkit.answer(update)
    draft = await _draft(context)
    draft.community, draft.page = staffscope.picked(flowkit.arg(update, JOB)), 0
    return await _send_list(update, context, draft)


# ---- one task --------------------------------------------------------------------------------


async def _detail_markup(
    context: ConciergeContext, task: TaskDetail, manager: bool, acknowledged: bool
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if manager:
        if task.state == TaskState.AWAITING_ACCEPTANCE:
            rows.append(
                [
                    flowkit.button(JOB, context.t("✅ Accept"), "accept", task.id),
                    flowkit.button(JOB, context.t("🔁 Reopen"), "reopen", task.id),
                ]
            )
        elif task.state in REOPEN_FROM:
            rows.append([flowkit.button(JOB, context.t("🔁 Reopen"), "reopen", task.id)])
        rows.append([flowkit.button(JOB, context.t("🗑 Delete"), "del", task.id)])
    elif task.state == TaskState.NEW and not acknowledged:
        rows.append([flowkit.button(JOB, context.t("👍 Acknowledge"), "ack", task.id)])
    rows.append([flowkit.button(JOB, context.t("◀ Back to the list"), "back")])
    return flowkit.keyboard(rows, JOB, context)


async def _send_task(
    update: Update,
    context: ConciergeContext,
    loaded: Loaded,
    prefix: str = "",
    *,
    anew: bool = False,
) -> State:
    """Shows one task with the buttons this user may use on it."""
    task = loaded.task
    actor = await _actor(context)
    acks = await context.services.acknowledgements.get_many([task.id])
    ack = acks.get(task.id)
    places = await places_of(context, task, loaded.community.id)
    text = task_details(
        task, places, ack.acknowledged_at if ack else None, context.lang, context.zone
    )
    tag = loaded.scope.tag(loaded.community.id, context.lang)
    text = (tag + "\n" if tag else "") + text
    markup = await _detail_markup(context, task, _is_manager(actor), ack is not None)
    text = (prefix + "\n\n" if prefix else "") + text
    await flowkit.show(update, text, markup, in_place=not anew)
    return State.BROWSE


async def open_task(
    update: Update, context: ConciergeContext, *, anew: bool = False
) -> State | int:
    """Shows the pressed task, after checking it is the user's to see; `anew` in a message of
    its own (from an alert, which stays as it was)."""
    press = flowkit.pressed(update, JOB)
    if press is None or not press.arg:
        return await flowkit.stale(update, context, State.BROWSE)
    loaded = await load_task(update, context, press.arg, Action.TASK_VIEW)
    if loaded is None:
        return State.BROWSE
    await flowkit.answer(update)
    return await _send_task(update, context, loaded, anew=anew)


async def acknowledge(update: Update, context: ConciergeContext) -> State:
    """Records that the worker has seen a new task, and tells the managers."""
    task_id = flowkit.arg(update, JOB)
    loaded = await load_task(update, context, task_id, Action.TASK_ACKNOWLEDGE)
    if loaded is None:
        return State.BROWSE
    task = loaded.task
    if task.state != TaskState.NEW:
        await flowkit.notice(
            update, context.t("This task is no longer new, so there is nothing to acknowledge.")
        )
        return await _send_task(update, context, loaded)
    await flowkit.answer(update)
    assert context.user_id is not None
    services = context.services
    now = services.clock()
    fresh = await services.acknowledgements.acknowledge(task_id, context.user_id, at=now)
    if not fresh:
        return await _send_task(
            update, context, loaded, context.t("This task was already acknowledged.")
        )
    await services.audit.append(
        telegram_id=context.user_id,
        vendor="tuya",
        action="task.acknowledge",
        target=task_id,
        request_summary={"task_id": task_id, "worker_id": loaded.worker_id},
        result="acknowledged",
        at=now,
    )
    places = await places_of(context, task, loaded.community.id)
    rooms = ", ".join(room for room, _ in places) or "—"
    await context.announce(
        OwnWrite(
            "tuya.task.acknowledge",
            context.user_id,
            (task_id,),
            {"worker": worker_name(task), "rooms": rooms, "community_id": loaded.community.id},
        )
    )
    return await _send_task(
        update, context, loaded, context.t("Thanks! The manager knows you have seen it.")
    )


# ---- manager decisions -----------------------------------------------------------------------


async def show_task(update: Update, context: ConciergeContext) -> State | int:
    """An alert's "Open the task": the task in a message of its own; the alert stays."""
    return await open_task(update, context, anew=True)


async def _refused(
    update: Update, context: ConciergeContext, loaded: Loaded, verb: str, error: ApiError
) -> State:
    """Explains a refused move with the task's state as it is now."""
    task_id = loaded.task.id
    logger.info("tuya refused to %s task %s: %s", verb, task_id, error.message)
    board = context.services.task_board_of(loaded.community.id)
    try:
        status = task_status(await board.task(task_id), context.lang)
    except ApiError:
        status = "?"
    if verb == "accept":
        text = context.t(
            "The task system refused to accept task {task_id}: it is {status}, and only a "
            "task awaiting acceptance can be accepted.",
            task_id=task_id,
            status=status,
        )
    else:
        text = context.t(
            "The task system refused to reopen task {task_id}: it is {status}, and only a "
            "task awaiting acceptance or accepted can be reopened.",
            task_id=task_id,
            status=status,
        )
    await flowkit.say(update, text, _back(context))
    return State.BROWSE


async def accept(update: Update, context: ConciergeContext) -> State:
    """Accepts a finished task, records the work in the maintenance log, tells the worker."""
    task_id = flowkit.arg(update, JOB)
    loaded = await load_task(update, context, task_id, Action.TASK_ACCEPT)
    if loaded is None:
        return State.BROWSE
    await flowkit.take(update)
    assert context.user_id is not None
    services = context.services
    write = TaskAccept(
        task_id=task_id,
        worker_id=loaded.worker_id,
        community_id=loaded.community.id,
        then=await log_writes(context, loaded, services.clock()),
    )
    outcome = await services.writes.submit(
        context.user_id, write, command_id=common.new_command_id()
    )
    if outcome.result is Result.REFUSED:
        if isinstance(outcome.error, InvalidRequest):
            return await _refused(update, context, loaded, "accept", outcome.error)
        retry = [[flowkit.button(JOB, context.t("🔄 Retry"), "accept", task_id)]]
        await flowkit.say(
            update, _write_failure(context, outcome), flowkit.keyboard(retry, JOB, context)
        )
        return State.BROWSE
    if outcome.result is not Result.DONE:
        await flowkit.say(update, _not_done(context, outcome), _back(context))
        return State.BROWSE
    lines = [context.t("✅ Task {task_id} is accepted.", task_id=task_id)]
    line = followed_line(outcome.followed)
    if line is not None:
        lines.append(context.t(line[0], **line[1]))
    elif not write.then:
        lines.append(
            context.t(
                "None of its rooms is mapped to the maintenance log, so nothing was recorded "
                "there."
            )
        )
    await flowkit.say(update, "\n".join(lines), _back(context))
    return State.BROWSE


async def log_writes(
    context: ConciergeContext, loaded: Loaded, accepted_at: datetime
) -> list[MaintenanceRecord | MaintenanceWorkRecord]:
    """What the task's community's maintenance log gets once the task is accepted: one record
    per mapped place."""
    task, community = loaded.task, loaded.community
    log = context.services.maintenance_log_of(community.id)
    room_ids = [r.room_id for r in task.rooms]
    places = log.places(room_ids)
    if not places:
        return []
    places_named = await places_of(context, task, community.id)
    notes = maintenance_notes(task, places_named, accepted_at, context.zone)
    fields: dict[str, Any] = {
        "community_id": community.id,
        "reference": task.id,
        "start": min(task.created or accepted_at, accepted_at),
        "end": accepted_at,
        "notes": notes,
    }
    writes: list[MaintenanceRecord | MaintenanceWorkRecord] = []
    for place in places:
        writes.append(MaintenanceRecord(place=place, **fields))
        if log.deprecated_works:
            writes.append(MaintenanceWorkRecord(place=place, **fields))
    return writes


def followed_line(outcomes: Sequence[Outcome]) -> tuple[str, dict[str, Any]] | None:
    """What became of the maintenance log's records after an accept (a message id)."""
    if not outcomes:
        return None
    if all(o.done for o in outcomes):
        return N_("The work is recorded in the maintenance log."), {}
    if all(o.result in (Result.DONE, Result.KEPT) for o in outcomes):
        return (
            N_(
                "The maintenance log is not answering right now; the record is kept and will "
                "be written as soon as it answers."
            ),
            {},
        )
    return (
        N_(
            "The maintenance log could not be written just now; please record this work there "
            "by hand."
        ),
        {},
    )


def _write_failure(context: ConciergeContext, outcome: Outcome) -> str:
    if outcome.error is not None:
        return board_failure(context, outcome.error)
    return common.write_refused(context, outcome)


def _not_done(context: ConciergeContext, outcome: Outcome) -> str:
    """A decision kept for later (the task system did not answer), or whose end is unknown."""
    if outcome.result is Result.UNKNOWN:
        return common.write_unknown(context)
    if outcome.reason:
        return context.t(outcome.reason)
    return context.t(
        "The task system is not answering right now. Your decision is kept and will be sent "
        "as soon as it answers; you will hear back here."
    )


async def ask_reason(update: Update, context: ConciergeContext) -> State:
    """Asks the manager why the task goes back to the worker."""
    task_id = flowkit.arg(update, JOB)
    loaded = await load_task(update, context, task_id, Action.TASK_REOPEN)
    if loaded is None:
        return State.BROWSE
    task = loaded.task
    if task.state not in REOPEN_FROM:
        await flowkit.notice(
            update,
            context.t(
                "Task {task_id} cannot be reopened: it is {status}.",
                task_id=task_id,
                status=task_status(task, context.lang),
            ),
        )
        return State.BROWSE
    await flowkit.take(update)
    draft = await _draft(context)
    draft.task_id, draft.reason = task_id, None
    await flowkit.save_draft(context, JOB, draft)
    await flowkit.say(
        update,
        context.t(
            "Why does task {task_id} go back to {worker}? Type the reason; they will read it.",
            task_id=task_id,
            worker=worker_name(task),
        ),
        flowkit.keyboard([], JOB, context),
    )
    return State.REASON


async def receive_reason(update: Update, context: ConciergeContext) -> State:
    """Reads the reopen reason, then reopens the task and tells the worker why."""
    message = update.effective_message
    text = (message.text if message else None) or ""
    problem = reason_problem(text)
    if problem is not None:
        await flowkit.say(
            update,
            context.t(problem, minimum=MIN_REASON, maximum=MAX_REASON),
            flowkit.keyboard([], JOB, context),
        )
        return State.REASON
    draft = await _draft(context)
    if draft.task_id is None:
        return await _send_list(update, context, draft)
    draft.reason, draft.command_id = text.strip(), common.new_command_id()
    await flowkit.save_draft(context, JOB, draft)
    return await _reopen_now(update, context, draft)


async def resend_reopen(update: Update, context: ConciergeContext) -> State:
    """Sends the reopen again after the task system refused it."""
    draft = await _draft(context)
    if not draft.reason or not draft.task_id:
        return await flowkit.stale(update, context, State.REASON)
    await flowkit.take(update)
    return await _reopen_now(update, context, draft)


async def _reopen_now(update: Update, context: ConciergeContext, draft: TasksDraft) -> State:
    assert draft.task_id is not None
    assert draft.reason is not None
    task_id, reason = draft.task_id, draft.reason
    loaded = await load_task(update, context, task_id, Action.TASK_REOPEN)
    if loaded is None:
        return State.REASON
    assert context.user_id is not None
    services = context.services
    outcome = await services.writes.submit(
        context.user_id,
        TaskReopen(
            task_id=task_id,
            worker_id=loaded.worker_id,
            reason=reason,
            community_id=loaded.community.id,
        ),
        command_id=draft.command_id or common.new_command_id(),
    )
    if outcome.result is Result.REFUSED:
        if isinstance(outcome.error, InvalidRequest):
            return await _refused(update, context, loaded, "reopen", outcome.error)
        again = [[flowkit.button(JOB, context.t("🔄 Send again"), "resend")]]
        await flowkit.say(
            update,
            _write_failure(context, outcome) + "\n" + context.t("Your reason is kept."),
            flowkit.keyboard(again, JOB, context),
        )
        return State.REASON
    draft.task_id, draft.reason, draft.command_id = None, None, None
    await flowkit.save_draft(context, JOB, draft)
    if outcome.result is not Result.DONE:
        await flowkit.say(update, _not_done(context, outcome), _back(context))
        return State.BROWSE
    # The worker's alert goes out with the write's outcome (bot.alert_watcher); here only whether
    # they use the bot at all.
    told = bool(
        loaded.worker_id and await services.directory.telegram_ids_of_worker(loaded.worker_id)
    )
    worker = worker_name(loaded.task)
    text = (
        context.t(
            "🔁 Task {task_id} is reopened; {worker} is told why.", task_id=task_id, worker=worker
        )
        if told
        else context.t(
            "🔁 Task {task_id} is reopened. {worker} does not use this bot, so please tell "
            "them why yourself.",
            task_id=task_id,
            worker=worker,
        )
    )
    await flowkit.say(update, text, _back(context))
    return State.BROWSE


# ---- deleting --------------------------------------------------------------------------------


async def ask_delete(update: Update, context: ConciergeContext) -> State:
    """Asks the manager to confirm deleting a task."""
    task_id = flowkit.arg(update, JOB)
    loaded = await load_task(update, context, task_id, Action.TASK_DELETE)
    if loaded is None:
        return State.BROWSE
    await flowkit.answer(update)
    draft = await _draft(context)
    draft.task_id = task_id
    await flowkit.save_draft(context, JOB, draft)
    task = loaded.task
    rows = [
        [
            flowkit.button(JOB, context.t("🗑 Yes, delete"), "delyes"),
            flowkit.button(JOB, context.t("No, keep it"), "delno"),
        ]
    ]
    await flowkit.show(
        update,
        context.t(
            "Delete task {task_id} ({worker}, {status})? This cannot be undone.",
            task_id=task_id,
            worker=worker_name(task),
            status=task_status(task, context.lang),
        ),
        flowkit.keyboard(rows, JOB, context),
    )
    return State.CONFIRM


async def keep_task(update: Update, context: ConciergeContext) -> State:
    """No: nothing is deleted; the task again."""
    draft = await _draft(context)
    if draft.task_id is None:
        return await flowkit.stale(update, context, State.CONFIRM)
    loaded = await load_task(update, context, draft.task_id, Action.TASK_DELETE)
    if loaded is None:
        return State.CONFIRM
    await flowkit.answer(update)
    return await _send_task(update, context, loaded)


async def confirm_delete(update: Update, context: ConciergeContext) -> State:
    """Yes: deletes the task in the draft."""
    draft = await _draft(context)
    if draft.task_id is None:
        return await flowkit.stale(update, context, State.CONFIRM)
    task_id = draft.task_id
    loaded = await load_task(update, context, task_id, Action.TASK_DELETE)
    if loaded is None:
        return State.CONFIRM
    await flowkit.answer(update)
    assert context.user_id is not None
    outcome = await context.services.writes.submit(
        context.user_id,
        TaskDelete(task_id=task_id, community_id=loaded.community.id),
        command_id=common.new_command_id(),
    )
    if outcome.result is Result.REFUSED:
        await flowkit.say(update, _write_failure(context, outcome))
        return State.CONFIRM
    draft.task_id = None
    await flowkit.save_draft(context, JOB, draft)
    if outcome.result is not Result.DONE:
        await flowkit.say(update, _not_done(context, outcome), _back(context))
        return State.BROWSE
    await flowkit.show(
        update, context.t("🗑 Task {task_id} is deleted.", task_id=task_id), _back(context)
    )
    return State.BROWSE


# ---- the rest --------------------------------------------------------------------------------


async def receive_other_for_reason(update: Update, context: ConciergeContext) -> State:
    """Anything but text while the reason is awaited."""
    await flowkit.say(
        update,
        context.t("Please type the reason as text, or send /cancel to stop."),
        flowkit.keyboard([], JOB, context),
    )
    return State.REASON


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/tasks, the menu's "Tasks", and the Accept / Reopen / open buttons of alerts."""
    not_command = ~filters.COMMAND
    filters_shown = "|".join(re.escape(f) for f in FILTERS)
    return flowkit.build(
        job=JOB,
        command="tasks",
        start=start_tasks,
        aside=N_("Closed the task board (/tasks opens it again)."),
        aside_in={State.REASON: N_("The task was not reopened (/tasks to come back to it).")},
        views=(State.BROWSE, State.CONFIRM),
        # Alerts carry these buttons into chats where no board is open, so they start one.
        entry_points=[
            CallbackQueryHandler(open_task, pattern=flowkit.on(JOB, "open:.+")),
            CallbackQueryHandler(show_task, pattern=flowkit.on(JOB, "show:.+")),
            CallbackQueryHandler(accept, pattern=flowkit.on(JOB, "accept:.+")),
            CallbackQueryHandler(ask_reason, pattern=flowkit.on(JOB, "reopen:.+")),
        ],
        states={
            State.BROWSE: [
                CallbackQueryHandler(show_board, pattern=flowkit.on(JOB, "(retry|back)")),
                CallbackQueryHandler(turn_page, pattern=flowkit.on(JOB, r"page:\d+")),
                CallbackQueryHandler(
                    choose_filter, pattern=flowkit.on(JOB, f"filter:({filters_shown})")
                ),
                CallbackQueryHandler(acknowledge, pattern=flowkit.on(JOB, "ack:.+")),
                CallbackQueryHandler(ask_delete, pattern=flowkit.on(JOB, "del:.+")),
                CallbackQueryHandler(
                    choose_community, pattern=flowkit.on(JOB, rf"{staffscope.ACTION}:\d+")
                ),
            ],
            State.REASON: [
                MessageHandler(filters.TEXT & not_command, receive_reason),
                MessageHandler(not_command, receive_other_for_reason),
                CallbackQueryHandler(resend_reopen, pattern=flowkit.on(JOB, "resend")),
            ],
            State.CONFIRM: [
                CallbackQueryHandler(confirm_delete, pattern=flowkit.on(JOB, "delyes")),
                CallbackQueryHandler(keep_task, pattern=flowkit.on(JOB, "delno")),
            ],
        },
        timeout=timeout,
    )
