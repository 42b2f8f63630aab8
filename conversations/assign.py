"""/assign: a manager gives a worker a new maintenance task.

```mermaid
graph LR
  start(/assign) -- several communities --> community -- pick --> worker
  start -- one community --> worker -- pick --> rooms
  rooms -- toggle / page --> rooms
  rooms -- done --> devices -- toggle --> devices
  devices -- done, more rooms --> devices
  devices -- done, last room --> confirm
  confirm -- change --> rooms
  confirm -- create --> done((end))
```

The rooms and devices come from the task board (names cached briefly). Creating a task is a
write Tuya cannot de-duplicate, so it is never repeated blindly: before the call the draft
notes which tasks the worker already has, and when the answer is lost the list is searched
for a new task with exactly these rooms and devices before offering to try again. The
worker's Telegram accounts are told about the new task.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, Field
from telegram import Update
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
)

from api.errors import ApiError, InvalidRequest
from conversations import common, flowkit, keys, staffscope
from conversations.community import FIRST_COMMUNITY
from conversations.context import ConciergeContext
from conversations.i18n import N_
from conversations.my_repairs import find
from conversations.ports import TaskBoard
from conversations.records import Device, Room, Worker
from conversations.roles import REFUSAL_MESSAGES, Action, Refusal
from conversations.staffscope import Scope
from conversations.tasks import board_failure, board_target, places_lines
from conversations.writes import Outcome, Result, TaskCreate

logger = logging.getLogger(__name__)

JOB: Final = keys.ASSIGN
PAGE_SIZE: Final = 8
_FROM_REPAIR: Final = flowkit.on(JOB, "repair")


class State(StrEnum):
    """Steps of the conversation, persisted by value."""

    COMMUNITY = "assign.community"
    WORKER = "assign.worker"
    ROOMS = "assign.rooms"
    DEVICES = "assign.devices"
    CONFIRM = "assign.confirm"


class FromRepair(BaseModel):
    """The repair a task is made from (an alert's "Assign a task"): its description is the
    task's text, and the worker is told its visit window and contact. Tuya keeps no text on a
    task, so the bot does."""

    repair_id: str
    residence_id: str = ""
    note: str = ""
    repair_start: str = ""
    repair_finish: str = ""
    contact: str = ""

    def facts(self) -> dict[str, str]:
        """What the worker's alert carries, by the names the watcher keeps."""
        return self.model_dump(exclude={"repair_id"})


class AssignDraft(BaseModel):
    """The task being put together, and what is known about an attempt to create it."""

    repair: FromRepair | None = None
    # The community whose board the task goes on (drafts from before there were several
    # communities were the first's).
    community_id: int = FIRST_COMMUNITY
    worker_id: str | None = None
    worker_name: str = ""
    page: int = 0
    room_ids: list[str] = Field(default_factory=list)
    room_index: int = 0
    devices: dict[str, list[str]] = Field(default_factory=dict)


# ---- rules -----------------------------------------------------------------------------------


def toggled(selected: Sequence[str], item: str) -> list[str]:
    """The selection with `item` added, or removed when it was there."""
    return [i for i in selected if i != item] if item in selected else [*selected, item]


def in_list_order(selected: Sequence[str], order: Sequence[str]) -> list[str]:
    """The selected ids in the order the vendor lists them (unknown ones dropped)."""
    chosen = set(selected)
    return [i for i in order if i in chosen]


def relations_of(draft: AssignDraft) -> dict[str, list[str]]:
    """{room id: device ids} for the rooms picked, in order, without empty rooms."""
    return {r: list(draft.devices[r]) for r in draft.room_ids if draft.devices.get(r)}


def page_bounds(count: int, page: int, size: int = PAGE_SIZE) -> tuple[int, int, int]:
    """The first and last index of a page, and the page itself (clamped into range)."""
    pages = max(1, -(-count // size))
    page = min(max(page, 0), pages - 1)
    return page * size, min(count, (page + 1) * size), page


def worker_label(worker: Worker) -> str:
    """How a worker is shown on a button."""
    if worker.nickname and worker.username:
        return f"{worker.nickname} ({worker.username})"
    return worker.nickname or worker.username or worker.id


# ---- helpers ---------------------------------------------------------------------------------


async def _username(context: ConciergeContext, draft: AssignDraft, worker_id: str) -> str:
    """The worker's Tuya username (how tasks name their worker); "" when unknown now."""
    try:
        workers = await _board(context, draft).workers()
    except ApiError:
        return ""
    return next((w.username for w in workers if w.id == worker_id), "")


def _from_repair(context: ConciergeContext, repair: FromRepair) -> str:
    return context.t(
        "📝 From repair #{short_id}: “{note}”", short_id=repair.repair_id[-6:], note=repair.note
    )


def _pages(count: int) -> int:
    return max(1, -(-count // PAGE_SIZE))


async def _draft(context: ConciergeContext) -> AssignDraft:
    return await flowkit.load_draft(context, JOB, AssignDraft) or AssignDraft()


async def _failed(
    update: Update, context: ConciergeContext, error: ApiError, state: State
) -> State:
    """A read failed: say so, with Retry."""
    retry = [[flowkit.button(JOB, context.t("🔄 Retry"), "retry")]]
    await flowkit.show(
        update, board_failure(context, error), flowkit.keyboard(retry, JOB, context)
    )
    return state


def _board(context: ConciergeContext, draft: AssignDraft) -> TaskBoard:
    """The board of the draft's community (checked when it was picked and again at Create)."""
    return context.services.task_board_of(draft.community_id)


async def _allowed(
    update: Update, context: ConciergeContext, community_id: int | None = None
) -> Scope | None:
    """The communities on whose boards the user may assign tasks (`community_id` among them,
    when given); tells them when there is none."""
    assert context.user_id is not None
    actor = await context.services.directory.actor(context.user_id)
    found = await staffscope.scope_or_refusal(
        context, Action.TASK_ASSIGN, target_of=board_target(actor)
    )
    if isinstance(found, Scope) and (community_id is None or found.of(community_id)):
        return found
    refusal = found if isinstance(found, Refusal) else Refusal.NOT_YOURS
    logger.info("user %s may not assign tasks: %s", context.user_id, refusal)
    text = context.t(REFUSAL_MESSAGES[refusal])
    if update.callback_query is not None:
        await flowkit.notice(update, text)
    else:
        await flowkit.say(update, text)
    return None


# ---- worker ----------------------------------------------------------------------------------


async def _send_workers(
    update: Update, context: ConciergeContext, draft: AssignDraft, *, anew: bool = False
) -> State:
    await common.typing(update, context)
    try:
        workers = await _board(context, draft).workers()
    except ApiError as error:
        return await _failed(update, context, error, State.WORKER)
    first, last, draft.page = page_bounds(len(workers), draft.page)
    rows = [[flowkit.button(JOB, worker_label(w), "w", w.id)] for w in workers[first:last]]
    rows += flowkit.pager(JOB, context, draft.page, _pages(len(workers)), "wpage")
    await flowkit.save_draft(context, JOB, draft)
    text = (
        context.t("Who should do the work?")
        if workers
        else context.t("The task system lists no workers yet.")
    )
    if draft.repair is not None:
        text = _from_repair(context, draft.repair) + "\n" + text
    scope = await _allowed(update, context, draft.community_id)
    if scope is None:
        return State.WORKER
    tag = scope.tag(draft.community_id, context.lang)
    text = (tag + "\n" if tag else "") + text
    await flowkit.show(update, text, flowkit.keyboard(rows, JOB, context), in_place=not anew)
    return State.WORKER


async def start_assign(update: Update, context: ConciergeContext) -> State | int:
    """Starts a new task: asks which worker."""
    await flowkit.take(update)
    scope = await _allowed(update, context)
    if scope is None:
        return ConversationHandler.END
    if scope.several:
        return await _send_communities(update, context, scope)
    return await _send_workers(update, context, AssignDraft(community_id=scope.served[0].id))


async def _send_communities(update: Update, context: ConciergeContext, scope: Scope) -> State:
    """Asks in which community the task is (for a manager of several)."""
    await flowkit.clear_draft(context, JOB)
    rows = [
        [flowkit.button(JOB, c.name(context.lang), staffscope.ACTION, str(c.id))]
        for c in scope.served
    ]
    await flowkit.show(
        update, context.t("In which community is the work?"), flowkit.keyboard(rows, JOB, context)
    )
    return State.COMMUNITY


async def choose_community(update: Update, context: ConciergeContext) -> State:
    """Takes the community (one the manager serves), then asks which worker."""
    community_id = staffscope.picked(flowkit.arg(update, JOB))
    if await _allowed(update, context, community_id) is None:
        return State.COMMUNITY
    await flowkit.answer(update)
    return await _send_workers(update, context, AssignDraft(community_id=community_id))


async def start_from_repair(update: Update, context: ConciergeContext) -> State | int:
    """A new-repair alert's "Assign a task": the repair's flat already chosen as the room (when
    it is mapped to one), its description the task's text; asks which worker."""
    press = flowkit.pressed(update, JOB)
    scope = await _allowed(update, context)
    if scope is None:
        return ConversationHandler.END
    key = press.arg if press is not None else ""
    services = context.services
    repair, community = None, scope.served[0]
    try:
        # The repair's community is the one whose manager list has it, among the asker's.
        for community in scope.served:
            repair = find(await services.project_desk_of(community.id).repairs(), key)
            if repair is not None:
                break
        rooms = {room.id for room in await services.task_board_of(community.id).rooms()}
    except ApiError as error:
        await flowkit.notice(update, board_failure(context, error))
        return ConversationHandler.END
    if repair is None:
        logger.info("user %s pressed a repair not in the list", context.user_id)
        await flowkit.notice(
            update, context.t("Sorry, that repair is not in the list (any more).")
        )
        return ConversationHandler.END
    await flowkit.answer(update)
    room = community.tuya_room_of_residence.get(repair.residence_id)
    draft = AssignDraft(
        community_id=community.id,
        repair=FromRepair(
            repair_id=repair.id,
            residence_id=repair.residence_id,
            note=repair.description,
            repair_start=repair.start.isoformat() if repair.start else "",
            repair_finish=repair.finish.isoformat() if repair.finish else "",
            contact=repair.contact,
        ),
        room_ids=[room] if room in rooms else [],
    )
    return await _send_workers(update, context, draft, anew=True)


async def show_workers(update: Update, context: ConciergeContext) -> State:
    """Retry: the workers again."""
    await flowkit.answer(update)
    return await _send_workers(update, context, await _draft(context))


async def turn_workers(update: Update, context: ConciergeContext) -> State:
    """Previous or Next: that page of workers."""
    await flowkit.answer(update)
    draft = await _draft(context)
    draft.page = int(flowkit.arg(update, JOB))
    return await _send_workers(update, context, draft)


async def choose_worker(update: Update, context: ConciergeContext) -> State:
    """Takes the worker (checked against the worker list), then asks for the rooms."""
    draft = await _draft(context)
    worker_id = flowkit.arg(update, JOB)
    try:
        workers = await _board(context, draft).workers()
    except ApiError as error:
        await flowkit.notice(update, board_failure(context, error))
        return State.WORKER
    worker = next((w for w in workers if w.id == worker_id), None)
    if worker is None:
        logger.info("user %s pressed a worker not in the list", context.user_id)
        await flowkit.notice(update, context.t("That worker is not in the list (any more)."))
        return State.WORKER
    await flowkit.answer(update)
    draft = AssignDraft(
        repair=draft.repair,
        community_id=draft.community_id,
        worker_id=worker.id,
        worker_name=worker_label(worker),
        room_ids=draft.room_ids,
    )
    return await _send_rooms(update, context, draft)


# ---- rooms -----------------------------------------------------------------------------------


async def _rooms(
    update: Update, context: ConciergeContext, draft: AssignDraft, state: State
) -> list[Room] | None:
    await common.typing(update, context)
    try:
        return await _board(context, draft).rooms()
    except ApiError as error:
        await _failed(update, context, error, state)
        return None


async def _send_rooms(update: Update, context: ConciergeContext, draft: AssignDraft) -> State:
    rooms = await _rooms(update, context, draft, State.ROOMS)
    if rooms is None:
        return State.ROOMS
    first, last, draft.page = page_bounds(len(rooms), draft.page)
    rows = [
        [
            flowkit.button(
                JOB,
                ("☑ " if r.id in draft.room_ids else "☐ ") + (r.name or r.id),
                "r",
                r.id,
            )
        ]
        for r in rooms[first:last]
    ]
    rows += flowkit.pager(JOB, context, draft.page, _pages(len(rooms)), "rpage")
    rows.append(
        [
            flowkit.button(JOB, context.t("◀ Another worker"), "rback"),
            flowkit.button(
                JOB, context.t("Next: devices ({count})", count=len(draft.room_ids)), "rdone"
            ),
        ]
    )
    await flowkit.save_draft(context, JOB, draft)
    await flowkit.show(
        update,
        context.t(
            "Task for {worker}. Which rooms? Tap to pick one or more, then Next.",
            worker=draft.worker_name,
        ),
        flowkit.keyboard(rows, JOB, context),
    )
    return State.ROOMS


async def _with_worker(context: ConciergeContext) -> AssignDraft | None:
    """The draft, once a worker is chosen (a press from before that is stale)."""
    draft = await _draft(context)
    return draft if draft.worker_id is not None else None


async def show_rooms(update: Update, context: ConciergeContext) -> State:
    """Retry: the rooms again."""
    draft = await _with_worker(context)
    if draft is None:
        return await flowkit.stale(update, context, State.ROOMS)
    await flowkit.answer(update)
    return await _send_rooms(update, context, draft)


async def turn_rooms(update: Update, context: ConciergeContext) -> State:
    """Previous or Next: that page of rooms."""
    draft = await _with_worker(context)
    if draft is None:
        return await flowkit.stale(update, context, State.ROOMS)
    await flowkit.answer(update)
    draft.page = int(flowkit.arg(update, JOB))
    return await _send_rooms(update, context, draft)


async def back_to_workers(update: Update, context: ConciergeContext) -> State:
    """Another worker: the workers again, the rooms forgotten."""
    draft = await _draft(context)
    await flowkit.answer(update)
    return await _send_workers(
        update, context, AssignDraft(repair=draft.repair, community_id=draft.community_id)
    )


async def toggle_room(update: Update, context: ConciergeContext) -> State:
    """A room: picked, or no longer (checked against the room list)."""
    draft = await _with_worker(context)
    if draft is None:
        return await flowkit.stale(update, context, State.ROOMS)
    room_id = flowkit.arg(update, JOB)
    rooms = await _rooms(update, context, draft, State.ROOMS)
    if rooms is None:
        return State.ROOMS
    order = [r.id for r in rooms]
    if room_id not in order:
        logger.info("user %s pressed a room not in the list", context.user_id)
        await flowkit.notice(update, context.t("That room is not in the list (any more)."))
        return State.ROOMS
    await flowkit.answer(update)
    draft.room_ids = in_list_order(toggled(draft.room_ids, room_id), order)
    return await _send_rooms(update, context, draft)


async def finish_rooms(update: Update, context: ConciergeContext) -> State:
    """Next: the devices of the first picked room."""
    draft = await _with_worker(context)
    if draft is None:
        return await flowkit.stale(update, context, State.ROOMS)
    if not draft.room_ids:
        await flowkit.notice(update, context.t("Please pick at least one room first."))
        return State.ROOMS
    await flowkit.answer(update)
    draft.room_index = 0
    draft.devices = {r: draft.devices.get(r, []) for r in draft.room_ids}
    return await _send_devices(update, context, draft)


# ---- devices ---------------------------------------------------------------------------------


async def _devices(
    update: Update, context: ConciergeContext, draft: AssignDraft, room_id: str
) -> list[Device] | None:
    await common.typing(update, context)
    try:
        return await _board(context, draft).devices(room_id)
    except ApiError as error:
        await _failed(update, context, error, State.DEVICES)
        return None


async def _room_name(context: ConciergeContext, draft: AssignDraft, room_id: str) -> str:
    try:
        rooms = await _board(context, draft).rooms()
    except ApiError:
        return room_id
    return next((r.name for r in rooms if r.id == room_id and r.name), room_id)


async def _send_devices(update: Update, context: ConciergeContext, draft: AssignDraft) -> State:
    room_id = draft.room_ids[draft.room_index]
    devices = await _devices(update, context, draft, room_id)
    if devices is None:
        return State.DEVICES
    chosen = draft.devices.get(room_id, [])
    rows = [
        [
            flowkit.button(
                JOB,
                ("☑ " if d.id in chosen else "☐ ") + (d.name or d.id),
                "d",
                d.id,
            )
        ]
        for d in devices
    ]
    rows.append(
        [
            flowkit.button(JOB, context.t("◀ Back"), "dback"),
            flowkit.button(JOB, context.t("Done with this room"), "ddone"),
        ]
    )
    await flowkit.save_draft(context, JOB, draft)
    if devices:
        text = context.t(
            "Room {number} of {count}: {room}. Which devices should {worker} look at?",
            number=draft.room_index + 1,
            count=len(draft.room_ids),
            room=await _room_name(context, draft, room_id),
            worker=draft.worker_name,
        )
    else:
        text = context.t(
            "Room {number} of {count}: {room} has no devices, so a task cannot cover it. "
            "Go back and leave it out.",
            number=draft.room_index + 1,
            count=len(draft.room_ids),
            room=await _room_name(context, draft, room_id),
        )
    await flowkit.show(update, text, flowkit.keyboard(rows, JOB, context))
    return State.DEVICES


async def _in_room(context: ConciergeContext) -> tuple[AssignDraft, str] | None:
    """The draft and the room whose devices are being picked (None: a stale press)."""
    draft = await _with_worker(context)
    if draft is None or draft.room_index >= len(draft.room_ids):
        return None
    return draft, draft.room_ids[draft.room_index]


async def show_devices(update: Update, context: ConciergeContext) -> State:
    """Retry: the room's devices again."""
    found = await _in_room(context)
    if found is None:
        return await flowkit.stale(update, context, State.DEVICES)
    await flowkit.answer(update)
    return await _send_devices(update, context, found[0])


async def toggle_device(update: Update, context: ConciergeContext) -> State:
    """A device of the room: picked, or no longer (checked against the room's devices)."""
    found = await _in_room(context)
    if found is None:
        return await flowkit.stale(update, context, State.DEVICES)
    draft, room_id = found
    device_id = flowkit.arg(update, JOB)
    devices = await _devices(update, context, draft, room_id)
    if devices is None:
        return State.DEVICES
    order = [d.id for d in devices]
    if device_id not in order:
        logger.info("user %s pressed a device not in the room", context.user_id)
        await flowkit.notice(update, context.t("That device is not in this room (any more)."))
        return State.DEVICES
    await flowkit.answer(update)
    chosen = toggled(draft.devices.get(room_id, []), device_id)
    draft.devices[room_id] = in_list_order(chosen, order)
    return await _send_devices(update, context, draft)


async def finish_room(update: Update, context: ConciergeContext) -> State:
    """Next: the next picked room's devices, or the summary after the last."""
    found = await _in_room(context)
    if found is None:
        return await flowkit.stale(update, context, State.DEVICES)
    draft, room_id = found
    if not draft.devices.get(room_id):
        await flowkit.notice(update, context.t("Please pick at least one device in this room."))
        return State.DEVICES
    await flowkit.answer(update)
    if draft.room_index + 1 < len(draft.room_ids):
        draft.room_index += 1
        return await _send_devices(update, context, draft)
    return await _send_summary(update, context, draft)


async def back_a_room(update: Update, context: ConciergeContext) -> State:
    """Back: the previous room's devices, or the rooms from the first."""
    found = await _in_room(context)
    if found is None:
        return await flowkit.stale(update, context, State.DEVICES)
    draft, _ = found
    await flowkit.answer(update)
    if draft.room_index > 0:
        draft.room_index -= 1
        return await _send_devices(update, context, draft)
    draft.page = 0
    return await _send_rooms(update, context, draft)


# ---- summary and creation --------------------------------------------------------------------


async def _places(context: ConciergeContext, draft: AssignDraft) -> list[tuple[str, list[str]]]:
    """The picked rooms and devices by name."""
    places = []
    for room_id, device_ids in relations_of(draft).items():
        try:
            names = {d.id: d.name or d.id for d in await _board(context, draft).devices(room_id)}
        except ApiError:
            names = {}
        places.append(
            (await _room_name(context, draft, room_id), [names.get(d, d) for d in device_ids])
        )
    return places


async def _send_summary(update: Update, context: ConciergeContext, draft: AssignDraft) -> State:
    await flowkit.save_draft(context, JOB, draft)
    lines = [context.t("New task for {worker}:", worker=draft.worker_name)]
    lines += places_lines(await _places(context, draft))
    if draft.repair is not None:
        lines.append(_from_repair(context, draft.repair))
    rows = [
        [
            flowkit.button(JOB, context.t("✅ Create the task"), "create"),
            flowkit.button(JOB, context.t("✏ Change the rooms"), "change"),
        ]
    ]
    await flowkit.show(update, "\n".join(lines), flowkit.keyboard(rows, JOB, context))
    return State.CONFIRM


async def _complete(context: ConciergeContext) -> AssignDraft | None:
    """The draft, once it has a worker and its places (None: a stale press)."""
    draft = await _with_worker(context)
    return draft if draft is not None and relations_of(draft) else None


async def change_rooms(update: Update, context: ConciergeContext) -> State:
    """Change the rooms: back to them, from the first page."""
    draft = await _complete(context)
    if draft is None:
        return await flowkit.stale(update, context, State.CONFIRM)
    await flowkit.answer(update)
    draft.page = 0
    return await _send_rooms(update, context, draft)


async def create(update: Update, context: ConciergeContext) -> State | int:
    """Create (or Try again): the task is created."""
    draft = await _complete(context)
    if draft is None:
        return await flowkit.stale(update, context, State.CONFIRM)
    if await _allowed(update, context, draft.community_id) is None:
        return State.CONFIRM
    await flowkit.take(update)
    return await _create(update, context, draft)


async def _create(update: Update, context: ConciergeContext, draft: AssignDraft) -> State | int:
    """Creates the task; the draft is handed over to the recorded write meanwhile."""
    assert draft.worker_id is not None
    assert context.user_id is not None
    await common.typing(update, context)
    places = await _places(context, draft)
    facts = draft.repair.facts() if draft.repair is not None else {}
    facts["worker_username"] = await _username(context, draft, draft.worker_id)
    write = TaskCreate(
        community_id=draft.community_id,
        worker_id=draft.worker_id,
        rooms=relations_of(draft),
        room_names=[room for room, _ in places],
        facts=facts,
    )
    outcome = await context.services.writes.submit(
        context.user_id, write, command_id=common.new_command_id(), draft=JOB
    )
    if outcome.result is Result.REFUSED:
        # Nothing was created: the draft comes back, to try again or change the rooms.
        await flowkit.save_draft(context, JOB, draft)
        if isinstance(outcome.error, InvalidRequest):
            logger.info("tuya refused a new task: %s", outcome.error.message)
            text = context.t(
                "The task system refused this task: {reason}", reason=outcome.error.message
            )
        elif outcome.error is not None:
            text = board_failure(context, outcome.error)
        else:
            text = common.write_refused(context, outcome)
        return await _try_again(update, context, text)
    kept = N_(
        "The task system is not answering right now. The new task is kept and will be "
        "created as soon as it answers (or found, if it was created meanwhile); you "
        "will hear back here."
    )
    if await common.told_undecided(update, context, outcome, kept):
        return ConversationHandler.END
    return await _created(update, context, draft, outcome, places)


async def _try_again(update: Update, context: ConciergeContext, text: str) -> State:
    rows = [
        [
            flowkit.button(JOB, context.t("🔁 Try again"), "create"),
            flowkit.button(JOB, context.t("✏ Change the rooms"), "change"),
        ]
    ]
    await flowkit.say(update, text, flowkit.keyboard(rows, JOB, context))
    return State.CONFIRM


async def _created(
    update: Update,
    context: ConciergeContext,
    draft: AssignDraft,
    outcome: Outcome,
    places: list[tuple[str, list[str]]],
) -> int:
    """Tells the manager whether the worker heard of it (the alert goes out with the write's
    outcome, bot.alert_watcher), and ends."""
    assert draft.worker_id is not None
    task_id = outcome.record_id or "?"
    told = bool(await context.services.directory.telegram_ids_of_worker(draft.worker_id))
    lines = [context.t("✅ Task {task_id} is created.", task_id=task_id), *places_lines(places)]
    if told:
        lines.append(context.t("{worker} is told here.", worker=draft.worker_name))
    else:
        lines.append(
            context.t(
                "{worker} does not use this bot yet, so please let them know.",
                worker=draft.worker_name,
            )
        )
    await flowkit.say(update, "\n".join(lines))
    return ConversationHandler.END


# ---- the rest --------------------------------------------------------------------------------


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/assign and the menu's "Assign a task"; only buttons move it on."""

    def on(
        action: str, handler: flowkit.Callback
    ) -> CallbackQueryHandler[ConciergeContext, object]:
        return CallbackQueryHandler(handler, pattern=flowkit.on(JOB, action))

    return flowkit.build(
        job=JOB,
        command="assign",
        start=start_assign,
        aside=N_("The new task was not created (/assign to start again)."),
        entry_points=[CallbackQueryHandler(start_from_repair, pattern=_FROM_REPAIR)],
        states={
            State.COMMUNITY: [on(rf"{staffscope.ACTION}:\d+", choose_community)],
            State.WORKER: [
                on("retry", show_workers),
                on(r"wpage:\d+", turn_workers),
                on("w:.+", choose_worker),
            ],
            State.ROOMS: [
                on("retry", show_rooms),
                on(r"rpage:\d+", turn_rooms),
                on("rback", back_to_workers),
                on("r:.+", toggle_room),
                on("rdone", finish_rooms),
            ],
            State.DEVICES: [
                on("retry", show_devices),
                on("d:.+", toggle_device),
                on("ddone", finish_room),
                on("dback", back_a_room),
            ],
            State.CONFIRM: [on("change", change_rooms), on("create", create)],
        },
        timeout=timeout,
    )
