"""Report a repair: `/repair` or the menu's "Report a repair".

describe (10–1000 characters; a photo with a caption counts as both) → photos (optional, up to
5, albums too; Done or Skip) → when a technician may come (a preset button or free text, always
echoed in words with Confirm / Change) → contact (the "Share my phone" button or typed text; the
last one is offered again) → summary with Confirm / Edit / Cancel → the repair is created.

```mermaid
flowchart LR
    describe --> photos --> when --> when_confirm --> contact --> summary
    when_confirm -- change --> when
    summary -- edit --> describe & photos & when & contact
    summary -- confirm --> created(["Repair #… created"])
    summary -- Akubela down --> kept(["kept, sent later"])
```

The draft is saved the moment the user types each part. A conversation left idle ends and keeps
the draft; `/repair` then offers to continue it. Akubela keeps no photos, so their Telegram file
ids are stored with the repair (`repair_reports`) for whoever handles it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, Field
from telegram import (
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from api.errors import InvalidRequest
from conversations import common, flowkit, keys, validation
from conversations.context import ConciergeContext
from conversations.i18n import LANGUAGES, N_, tr
from conversations.timewindow import (
    Preset,
    Refusal,
    ServiceHours,
    TimeWindow,
    available_presets,
    describe_window,
    parse_window,
    validate_window,
)
from conversations.writes import RepairCreate, Result

logger = logging.getLogger(__name__)

JOB: Final = keys.REPAIR
COMMAND: Final = "/repair"
MIN_DESCRIPTION: Final = 10
MAX_DESCRIPTION: Final = 1000
MAX_PHOTOS: Final = 5
MAX_CONTACT: Final = 100
SHORT_ID_LENGTH: Final = 6
CONTACT_KEY: Final = "contact"
"""Where the last contact a user gave is remembered in their `user_data`."""
OFFERED_KEY: Final = "repair.offered"
"""A problem typed outside any conversation, kept in `user_data` until its offer is taken."""
PRESETS_PER_ROW: Final = 3


class State(StrEnum):
    """The steps; values are persisted, so they are names, never numbers."""

    RESUME = "repair.resume"
    DESCRIBE = "repair.describe"
    PHOTOS = "repair.photos"
    WHEN = "repair.when"
    WHEN_CONFIRM = "repair.when_confirm"
    CONTACT = "repair.contact"
    SUMMARY = "repair.summary"


class Part(StrEnum):
    """What the summary's Edit can change."""

    DESCRIPTION = "description"
    PHOTOS = "photos"
    TIME = "time"
    CONTACT = "contact"


class RepairDraft(BaseModel):
    """What the resident has told so far; dumped to JSON in the drafts table."""

    command_id: str
    step: State = State.DESCRIBE
    description: str = ""
    photo_file_ids: list[str] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    window_confirmed: bool = False
    contact: str = ""
    editing: Part | None = None
    # The step a timed-out draft stopped at, while the resident chooses to continue it.
    paused_at: State | None = None
    # The album whose photos the last status message counts, so an album gets one message.
    album_id: str = ""
    status_message_id: int | None = None
    refused_photos: int = 0

    @property
    def has_content(self) -> bool:
        """Whether the resident has given anything worth resuming."""
        return bool(self.description or self.photo_file_ids)

    def window(self) -> TimeWindow | None:
        """The proposed visit window, if any."""
        if self.start is None or self.end is None:
            return None
        return TimeWindow(self.start, self.end)


# ---- rules (pure) ----------------------------------------------------------------------------


class Problem(StrEnum):
    """Why a description or contact was refused."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVISIBLE = "invisible"
    NOT_A_PHONE = "not_a_phone"


def clean_text(text: str | None) -> str:
    """The text with surrounding blanks removed and inner runs of spaces kept as typed."""
    return (text or "").strip()


def description_length(text: str) -> int:
    """How long a description reads: a Chinese character says about what three letters do,
    so "电梯坏了" (the lift is broken) is long enough and "漏水" (leaking) is not."""
    return sum(3 if "\u3400" <= c <= "\u9fff" else 1 for c in text)


def check_description(text: str | None) -> Problem | None:
    """None when `text` is a usable description (10–1000 characters), else why not."""
    cleaned = clean_text(text)
    if cleaned and validation.is_invisible(cleaned):
        return Problem.INVISIBLE
    if description_length(cleaned) < MIN_DESCRIPTION:
        return Problem.TOO_SHORT
    if len(cleaned) > MAX_DESCRIPTION:
        return Problem.TOO_LONG
    return None


def read_contact(text: str | None, region: str) -> str | Problem:
    """The phone number a contact is (international format), or why it is refused."""
    cleaned = clean_text(text)
    if cleaned and validation.is_invisible(cleaned):
        return Problem.INVISIBLE
    if len(cleaned) > MAX_CONTACT:
        return Problem.TOO_LONG
    phone = validation.read_phone(cleaned, region)
    return phone if phone is not None else Problem.NOT_A_PHONE


def check_contact(text: str | None, region: str) -> Problem | None:
    """None when `text` is a phone number, else why not."""
    contact = read_contact(text, region)
    return contact if isinstance(contact, Problem) else None


def add_photo(photos: list[str], file_id: str) -> bool:
    """Adds a photo unless the report already has the most it may carry; True when added."""
    if file_id in photos:
        return True
    if len(photos) >= MAX_PHOTOS:
        return False
    photos.append(file_id)
    return True


def short_id(repair_id: str) -> str:
    """The short form residents see: the last 6 characters of the vendor's id."""
    return repair_id[-SHORT_ID_LENGTH:]


def next_step(draft: RepairDraft, finished: State) -> State:
    """Where to go after `finished`: back to the summary when editing, else onwards."""
    if draft.editing is not None:
        return State.SUMMARY
    order = [step.state for step in STEPS if step.in_order]
    finished = _STEP[finished].counts_as or finished
    return order[min(order.index(finished) + 1, len(order) - 1)] if finished in order else finished


def missing_step(draft: RepairDraft, region: str) -> State | None:
    """The first step a confirmed report still lacks (None when it is complete)."""
    return next(
        (step.state for step in STEPS if step.lacks is not None and step.lacks(draft, region)),
        None,
    )


def repair_write(draft: RepairDraft, residence_id: str) -> RepairCreate:
    """The write a confirmed draft becomes."""
    window = draft.window()
    assert window is not None  # only complete drafts are confirmed
    return RepairCreate(
        residence_id=residence_id,
        start=window.start,
        finish=window.end,
        description=draft.description,
        contact=draft.contact,
        photo_file_ids=list(draft.photo_file_ids),
    )


# ---- texts -----------------------------------------------------------------------------------

SHARE_PHONE_LABEL: Final = N_("📱 Share my phone")


def description_problem_text(context: ConciergeContext, problem: Problem, length: int) -> str:
    """Why the description was refused, with the numbers."""
    if problem is Problem.INVISIBLE:
        return context.t("I cannot see any text in that; please describe the problem in words.")
    if problem is Problem.TOO_SHORT:
        return context.t(
            "That is a bit short: please describe the problem in at least {minimum} characters.",
            minimum=MIN_DESCRIPTION,
        )
    return context.t(
        "That is {length} characters; please keep the description under {maximum}.",
        length=length,
        maximum=MAX_DESCRIPTION,
    )


def contact_problem_text(context: ConciergeContext, problem: Problem) -> str:
    """Why the contact was refused, with an example of what is taken."""
    return context.t(
        "That is not a phone number I can read. Please type one such as {example}, or tap "
        "“{share}”.",
        example=validation.PHONE_EXAMPLE,
        share=context.t(SHARE_PHONE_LABEL),
    )


def window_text(context: ConciergeContext, window: TimeWindow) -> str:
    """The visit window in words, in the user's language and zone."""
    return describe_window(window, context.lang, context.zone, now=context.services.clock())


def summary_text(context: ConciergeContext, draft: RepairDraft) -> str:
    """The whole report, for the resident to check before it is sent."""
    window = draft.window()
    return context.t(
        "📋 Please check your repair report:\n\n"
        "📝 {description}\n📷 Photos: {photos}\n🕒 {window}\n📞 {contact}",
        description=draft.description,
        photos=len(draft.photo_file_ids),
        window=window_text(context, window) if window else "—",
        contact=draft.contact,
    )


def _photo_status(context: ConciergeContext, draft: RepairDraft) -> str:
    text = context.t(
        "📷 {count} of {maximum} photos received. Send more, or tap Done.",
        count=len(draft.photo_file_ids),
        maximum=MAX_PHOTOS,
    )
    if draft.refused_photos:
        text += "\n" + context.t(
            "I can keep at most {maximum} photos; the others were not added.",
            maximum=MAX_PHOTOS,
        )
    return text


# ---- keyboards -------------------------------------------------------------------------------


def _photo_markup(context: ConciergeContext, draft: RepairDraft) -> InlineKeyboardMarkup:
    if not draft.photo_file_ids:
        row = [flowkit.button(JOB, context.t(N_("⏭ Skip")), "skip")]
    else:
        row = [flowkit.button(JOB, context.t(N_("✅ Done")), "done")]
        if draft.editing is Part.PHOTOS:
            row.append(flowkit.button(JOB, context.t(N_("🗑 Remove all photos")), "clear"))
    return flowkit.keyboard([row], JOB, context)


def _preset_markup(context: ConciergeContext) -> InlineKeyboardMarkup:
    zone, now = context.zone, context.services.clock()
    buttons = [
        flowkit.button(JOB, preset.label(context.lang, now, zone), "when", preset.key)
        for preset in available_presets(now, zone, _hours(context))
    ]
    rows = [buttons[i : i + PRESETS_PER_ROW] for i in range(0, len(buttons), PRESETS_PER_ROW)]
    return flowkit.keyboard(rows, JOB, context)


def _summary_markup(context: ConciergeContext) -> InlineKeyboardMarkup:
    return flowkit.keyboard(
        [
            [
                flowkit.button(JOB, context.t(N_("✅ Confirm")), "confirm"),
                flowkit.button(JOB, context.t(N_("✏️ Edit")), "edit"),
            ]
        ],
        JOB,
        context,
    )


def _edit_markup(context: ConciergeContext) -> InlineKeyboardMarkup:
    parts = [
        flowkit.button(JOB, context.t(step.part_label), "field", step.part.value)
        for step in STEPS
        if step.part is not None
    ]
    return flowkit.keyboard(
        [parts[:2], parts[2:], [flowkit.button(JOB, context.t(N_("⬅ Back")), "back")]],
        JOB,
        context,
    )


def _contact_markup(context: ConciergeContext) -> ReplyKeyboardMarkup:
    rows = [[KeyboardButton(context.t(SHARE_PHONE_LABEL), request_contact=True)]]
    last = _remembered_contact(context)
    if last:
        rows.append([KeyboardButton(last)])
    rows.append([KeyboardButton(context.t(flowkit.STOP_LABEL))])
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


def _remembered_contact(context: ConciergeContext) -> str:
    value = context.user_data.get(CONTACT_KEY) if context.user_data is not None else None
    # A contact kept before phone numbers were checked is offered again only if it is one.
    contact = read_contact(value if isinstance(value, str) else "", _region(context))
    return "" if isinstance(contact, Problem) else contact


def _region(context: ConciergeContext) -> str:
    return context.resolved_community.phone_region


def _hours(context: ConciergeContext) -> ServiceHours:
    community = context.resolved_community
    return ServiceHours(community.service_hours_start, community.service_hours_end)


# ---- the draft -------------------------------------------------------------------------------


async def _draft(context: ConciergeContext) -> RepairDraft:
    """The saved draft, or a fresh one when it is gone (e.g. cleared meanwhile)."""
    draft = await flowkit.load_draft(context, JOB, RepairDraft)
    return draft or RepairDraft(command_id=common.new_command_id())


async def _save(context: ConciergeContext, draft: RepairDraft) -> None:
    await flowkit.save_draft(context, JOB, draft)


# ---- asking each step ------------------------------------------------------------------------

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup
Prompt = tuple[str, Markup]


def _resume_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    text = context.t(
        "You have an unfinished repair report:\n“{description}”\nContinue it or start over?",
        description=draft.description or "📷",
    )
    markup = flowkit.keyboard(
        [
            [
                flowkit.button(JOB, context.t(N_("▶ Continue")), "continue"),
                flowkit.button(JOB, context.t(N_("🆕 Start over")), "restart"),
            ]
        ],
        JOB,
        context,
    )
    return text, markup


def _describe_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    text = context.t(
        "🔧 What needs repairing? Describe the problem in {minimum}–{maximum} characters. "
        "You can also send a photo with a caption.",
        minimum=MIN_DESCRIPTION,
        maximum=MAX_DESCRIPTION,
    )
    if draft.editing is Part.DESCRIPTION and draft.description:
        text += "\n" + context.t("Now: “{description}”", description=draft.description)
    return text, flowkit.keyboard([], JOB, context)


def _photos_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    text = context.t(
        "📷 You can add up to {maximum} photos of the problem (an album works too). "
        "Tap Done when you have finished, or Skip if you have none.",
        maximum=MAX_PHOTOS,
    )
    if draft.photo_file_ids:
        text += "\n" + _photo_status(context, draft)
    return text, _photo_markup(context, draft)


def _when_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    text = context.t(
        "🕒 When may a technician come? Tap a time, or write one, e.g. "
        "“tomorrow 9-12”, “Fri 14:00 to 16:00” or “明天上午”."
    )
    return text, _preset_markup(context)


def _when_confirm_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    window = draft.window()
    text = context.t(
        "A technician may come: {window}. Is that right?",
        window=window_text(context, window) if window else "—",
    )
    markup = flowkit.keyboard(
        [
            [
                flowkit.button(JOB, context.t(N_("✅ Confirm")), "ok"),
                flowkit.button(JOB, context.t(N_("✏️ Change")), "change"),
            ]
        ],
        JOB,
        context,
    )
    return text, markup


def _contact_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    text = context.t(
        "📞 How can the technician reach you? Tap “{share}” or type a phone number.",
        share=context.t(SHARE_PHONE_LABEL),
    )
    last = _remembered_contact(context)
    if last:
        text += "\n" + context.t("Or tap {contact} to use it again.", contact=last)
    return text, _contact_markup(context)


def _summary_prompt(context: ConciergeContext, draft: RepairDraft) -> Prompt:
    return summary_text(context, draft), _summary_markup(context)


async def ask(
    update: Update, context: ConciergeContext, draft: RepairDraft, step: State, note: str = ""
) -> State:
    """Sends the prompt of `step` (after `note`, when given), remembers it, returns it."""
    draft.step = step
    await _save(context, draft)
    prefix = f"{note}\n\n" if note else ""
    chat = update.effective_chat
    if chat is None:
        return step
    text, markup = _STEP[step].prompt(context, draft)
    await chat.send_message(prefix + text, reply_markup=markup)
    return step


async def _advance(
    update: Update, context: ConciergeContext, draft: RepairDraft, finished: State, note: str = ""
) -> State:
    step = next_step(draft, finished)
    if step is State.SUMMARY:
        draft.editing = None
    return await ask(update, context, draft, step, note)


# ---- entry -----------------------------------------------------------------------------------


async def start_report(update: Update, context: ConciergeContext) -> State | int:
    """/repair or the menu button: offers to resume a draft, else asks for the description."""
    await flowkit.take(update)
    desk = await common.resident_desk(update, context, resume=JOB)
    if desk is None:
        return ConversationHandler.END
    draft = await flowkit.load_draft(context, JOB, RepairDraft)
    if draft is not None and draft.has_content:
        if draft.step is not State.RESUME:
            draft.paused_at = draft.step
        return await ask(update, context, draft, State.RESUME)
    return await ask(
        update, context, RepairDraft(command_id=common.new_command_id()), State.DESCRIBE
    )


async def offer_report(update: Update, context: ConciergeContext, text: str) -> None:
    """A problem typed outside any conversation: offers to report it, the text as description."""
    message = update.effective_message
    if message is None or context.user_data is None:
        return
    description = clean_text(text)[:MAX_DESCRIPTION]
    context.user_data[OFFERED_KEY] = description
    markup = InlineKeyboardMarkup(
        [[flowkit.button(JOB, context.t(N_("🔧 Report this repair")), "fromtext")]]
    )
    await message.reply_text(
        context.t(
            "That sounds like something to repair:\n“{description}”\nShall I report it?",
            description=description,
        ),
        reply_markup=markup,
    )


async def start_from_text(update: Update, context: ConciergeContext) -> State | int:
    """The offer's button: a new report whose description is the text that was typed."""
    await flowkit.take(update)
    desk = await common.resident_desk(update, context, resume=JOB)
    if desk is None:
        return ConversationHandler.END
    offered = context.user_data.pop(OFFERED_KEY, None) if context.user_data is not None else None
    draft = RepairDraft(command_id=common.new_command_id())
    if not isinstance(offered, str):
        return await ask(update, context, draft, State.DESCRIBE)
    problem = check_description(offered)
    if problem is not None:
        draft.description = offered
        note = description_problem_text(context, problem, len(offered))
        return await ask(update, context, draft, State.DESCRIBE, note)
    draft.description = offered
    return await _advance(update, context, draft, State.DESCRIBE)


async def choose_resume(update: Update, context: ConciergeContext) -> State:
    """Continue: back to the step the draft stopped at. Start over: a fresh draft."""
    await flowkit.take(update)
    press = flowkit.pressed(update, JOB)
    draft = await _draft(context)
    if press is not None and press.action == "continue" and draft.has_content:
        step, draft.paused_at = draft.paused_at or State.DESCRIBE, None
        return await ask(update, context, draft, step)
    return await ask(
        update, context, RepairDraft(command_id=common.new_command_id()), State.DESCRIBE
    )


# ---- describe --------------------------------------------------------------------------------


async def receive_description(update: Update, context: ConciergeContext) -> State:
    """Stores a valid description and moves on; explains a refusal and asks again."""
    message = update.effective_message
    text = clean_text(message.text if message else None)
    problem = check_description(text)
    draft = await _draft(context)
    if problem is not None:
        note = description_problem_text(context, problem, len(text))
        await flowkit.say(update, note)
        return State.DESCRIBE
    draft.description = text
    return await _advance(update, context, draft, State.DESCRIBE)


async def receive_photo_while_describing(update: Update, context: ConciergeContext) -> State:
    """Keeps the photo; its caption, when it is a valid description, completes this step."""
    message = update.effective_message
    if message is None or not message.photo:
        return State.DESCRIBE
    draft = await _draft(context)
    added = add_photo(draft.photo_file_ids, message.photo[-1].file_id)
    caption = clean_text(message.caption)
    problem = check_description(caption) if caption else None
    if caption and problem is None:
        draft.description = caption
        draft.album_id = message.media_group_id or ""
        draft.refused_photos = 0 if added else 1
        step = next_step(draft, State.DESCRIBE)
        if step is State.PHOTOS:
            draft.step = State.PHOTOS
            await _save(context, draft)
            await _send_photo_status(update, context, draft, message, fresh=True)
            return State.PHOTOS
        return await _advance(update, context, draft, State.DESCRIBE)
    same_album = bool(message.media_group_id) and message.media_group_id == draft.album_id
    draft.album_id = message.media_group_id or ""
    await _save(context, draft)
    if same_album and not caption:
        # One answer per album: the first photo of it already asked for the description.
        return State.DESCRIBE
    note = context.t("📷 Photo kept.")
    if problem is not None:
        note += " " + description_problem_text(context, problem, len(caption))
    else:
        note += " " + context.t("Now please describe the problem in words.")
    await flowkit.say(update, note, flowkit.keyboard([], JOB, context))
    return State.DESCRIBE


# ---- photos ----------------------------------------------------------------------------------


async def _send_photo_status(
    update: Update,
    context: ConciergeContext,
    draft: RepairDraft,
    message: Message,
    *,
    fresh: bool,
) -> None:
    """One status message per album, edited as its photos arrive, else a new message."""
    text, markup = _photo_status(context, draft), _photo_markup(context, draft)
    chat = update.effective_chat
    if chat is None:
        return
    if not fresh and draft.status_message_id is not None:
        try:
            await context.bot.edit_message_text(
                text, chat_id=chat.id, message_id=draft.status_message_id, reply_markup=markup
            )
            return
        except BadRequest as error:
            if "not modified" in str(error).lower():
                return
            logger.debug("photo status could not be edited; sending it anew")
        except TelegramError:
            logger.debug("photo status could not be edited; sending it anew")
    sent = await chat.send_message(text, reply_markup=markup)
    draft.status_message_id = sent.message_id
    await _save(context, draft)


async def receive_photo(update: Update, context: ConciergeContext) -> State:
    """Adds a photo (up to 5) and shows how many there are."""
    message = update.effective_message
    if message is None or not message.photo:
        return State.PHOTOS
    draft = await _draft(context)
    album = message.media_group_id or ""
    same_album = bool(album) and album == draft.album_id
    if not same_album:
        draft.refused_photos = 0
    draft.album_id = album
    if not add_photo(draft.photo_file_ids, message.photo[-1].file_id):
        draft.refused_photos += 1
    await _save(context, draft)
    await _send_photo_status(update, context, draft, message, fresh=not same_album)
    return State.PHOTOS


async def finish_photos(update: Update, context: ConciergeContext) -> State:
    """Done or Skip: on to the visit time (or back to the summary when editing)."""
    await flowkit.take(update)
    draft = await _draft(context)
    draft.album_id, draft.status_message_id, draft.refused_photos = "", None, 0
    return await _advance(update, context, draft, State.PHOTOS)


async def clear_photos(update: Update, context: ConciergeContext) -> State:
    """Removes every photo of the report and asks again."""
    await flowkit.take(update)
    draft = await _draft(context)
    draft.photo_file_ids = []
    return await ask(update, context, draft, State.PHOTOS, context.t("🗑 Photos removed."))


# ---- when ------------------------------------------------------------------------------------


async def _propose(
    update: Update, context: ConciergeContext, draft: RepairDraft, result: TimeWindow | Refusal
) -> State:
    if isinstance(result, Refusal):
        return await ask(update, context, draft, State.WHEN, result.message(context.lang))
    draft.start, draft.end, draft.window_confirmed = result.start, result.end, False
    return await ask(update, context, draft, State.WHEN_CONFIRM)


async def choose_preset(update: Update, context: ConciergeContext) -> State:
    """A preset button: echoes its window in words for confirmation."""
    await flowkit.take(update)
    press = flowkit.pressed(update, JOB)
    preset = Preset.from_key(press.arg) if press is not None else None
    draft = await _draft(context)
    if preset is None:
        return await ask(update, context, draft, State.WHEN, context.t(flowkit.STALE))
    now = context.services.clock()
    hours = _hours(context)
    return await _propose(
        update,
        context,
        draft,
        validate_window(preset.window(now, context.zone, hours), now, hours),
    )


async def receive_time(update: Update, context: ConciergeContext) -> State:
    """Free text: parsed relative to now in the user's zone; echoed, or refused with why."""
    message = update.effective_message
    text = clean_text(message.text if message else None)
    draft = await _draft(context)
    result = parse_window(text, context.services.clock(), context.zone, hours=_hours(context))
    return await _propose(update, context, draft, result)


async def confirm_time(update: Update, context: ConciergeContext) -> State:
    """The echoed window is right: on to the contact."""
    await flowkit.take(update)
    draft = await _draft(context)
    window = draft.window()
    now = context.services.clock()
    checked = validate_window(window, now, _hours(context)) if window else None
    if not isinstance(checked, TimeWindow):
        # Time went by since the echo (or the window is gone): ask again, saying why.
        note = checked.message(context.lang) if checked else ""
        return await ask(update, context, draft, State.WHEN, note)
    draft.window_confirmed = True
    return await _advance(update, context, draft, State.WHEN_CONFIRM)


async def change_time(update: Update, context: ConciergeContext) -> State:
    """Change: asks for the time again."""
    await flowkit.take(update)
    draft = await _draft(context)
    draft.window_confirmed = False
    return await ask(update, context, draft, State.WHEN)


# ---- contact ---------------------------------------------------------------------------------


async def _take_contact(update: Update, context: ConciergeContext, contact: str) -> State:
    draft = await _draft(context)
    draft.contact = contact
    if context.user_data is not None:
        context.user_data[CONTACT_KEY] = contact
    chat = update.effective_chat
    if chat is not None:
        # The reply keyboard goes away with this message; inline buttons follow in the next.
        await chat.send_message(
            context.t("📞 Contact: {contact}", contact=contact),
            reply_markup=ReplyKeyboardRemove(),
        )
    return await _advance(update, context, draft, State.CONTACT)


async def receive_shared_contact(update: Update, context: ConciergeContext) -> State:
    """The "Share my phone" button: its phone number is the contact."""
    message = update.effective_message
    shared = message.contact.phone_number if message and message.contact else None
    # Telegram sends the number without "+"; it is always international.
    digits = clean_text(shared).lstrip("+")
    phone = read_contact("+" + digits if digits else "", _region(context))
    if isinstance(phone, Problem):
        await flowkit.say(update, context.t(_STEP[State.CONTACT].unexpected))
        return State.CONTACT
    return await _take_contact(update, context, phone)


async def receive_contact(update: Update, context: ConciergeContext) -> State:
    """A typed contact: stored when it is a phone number, else refused with an example."""
    message = update.effective_message
    contact = read_contact(message.text if message else None, _region(context))
    if isinstance(contact, Problem):
        await flowkit.say(update, contact_problem_text(context, contact))
        return State.CONTACT
    return await _take_contact(update, context, contact)


# ---- summary ---------------------------------------------------------------------------------


async def edit_report(update: Update, context: ConciergeContext) -> State:
    """Edit: the summary's buttons become the parts to change."""
    await flowkit.answer(update)
    query = update.callback_query
    if query is not None:
        try:
            await query.edit_message_reply_markup(reply_markup=_edit_markup(context))
        except TelegramError:
            await flowkit.say(
                update, context.t("What do you want to change?"), _edit_markup(context)
            )
    return State.SUMMARY


async def choose_part(update: Update, context: ConciergeContext) -> State:
    """A part to change: its step is asked again, then back to the summary."""
    await flowkit.take(update)
    press = flowkit.pressed(update, JOB)
    draft = await _draft(context)
    try:
        part = Part(press.arg if press else "")
    except ValueError:
        return await ask(update, context, draft, State.SUMMARY, context.t(flowkit.STALE))
    draft.editing = part
    return await ask(update, context, draft, _PART_STEP[part])


async def back_to_summary(update: Update, context: ConciergeContext) -> State:
    """Back from the Edit choices: the summary with its buttons again."""
    await flowkit.answer(update)
    query = update.callback_query
    if query is not None:
        try:
            await query.edit_message_reply_markup(reply_markup=_summary_markup(context))
            return State.SUMMARY
        except TelegramError:
            logger.debug("summary buttons could not be restored; sending the summary again")
    return await ask(update, context, await _draft(context), State.SUMMARY)


async def confirm_report(update: Update, context: ConciergeContext) -> State | int:
    """Confirm: creates the repair; when Akubela cannot take it now, it is kept and sent later.

    The draft is handed over to the recorded write in the same step, so a bot killed before
    Akubela's answer arrives never offers it again: at start it finds the repair instead.
    """
    await flowkit.take(update)
    draft = await _draft(context)
    missing = missing_step(draft, _region(context))
    if missing is not None:
        return await ask(update, context, draft, missing)
    desk = await common.resident_desk(update, context, resume=JOB)
    if desk is None or context.user_id is None:
        return ConversationHandler.END
    await common.typing(update, context)
    outcome = await context.services.writes.submit(
        context.user_id,
        repair_write(draft, desk.residence_id),
        command_id=draft.command_id,
        draft=JOB,
    )
    if outcome.result is Result.REFUSED:
        # Nothing was created: the draft comes back for the resident to change or resend.
        if isinstance(outcome.error, InvalidRequest):
            logger.info("Akubela refused a repair report: %s", outcome.error.code)
            return await ask(
                update, context, draft, State.SUMMARY, common.write_refused(context, outcome)
            )
        await _save(context, draft)
        retry = flowkit.keyboard(
            [[flowkit.button(JOB, context.t(N_("🔁 Try again")), "confirm")]], JOB, context
        )
        await flowkit.say(update, common.write_refused(context, outcome), retry)
        return State.SUMMARY
    kept = N_(
        "⏳ Akubela is not answering right now. Your report is kept and will be sent "
        "as soon as Akubela answers; you will hear back here."
    )
    if await common.told_undecided(update, context, outcome, kept):
        return ConversationHandler.END
    repair_id = outcome.record_id
    if repair_id:
        text = context.t(
            "✅ Repair #{short_id} created — waiting for confirmation.\n"
            "Send /repairs to follow it.",
            short_id=short_id(repair_id),
        )
    else:
        text = context.t(
            "✅ Your repair was reported — waiting for confirmation. Send /repairs to follow it."
        )
    await flowkit.say(update, text)
    return ConversationHandler.END


# ---- at any step -----------------------------------------------------------------------------


async def receive_unexpected(update: Update, context: ConciergeContext) -> State:
    """Anything the step does not take (a sticker, a file, …): says what it needs, asks again."""
    draft = await _draft(context)
    step = draft.step
    return await ask(update, context, draft, step, context.t(_STEP[step].unexpected))


# ---- the steps -------------------------------------------------------------------------------

_MESSAGES: Final = filters.UpdateType.MESSAGE & ~filters.COMMAND
_TEXT: Final = filters.TEXT & _MESSAGES
_PHOTO: Final = filters.PHOTO & _MESSAGES


def _lacks_description(draft: RepairDraft, region: str) -> bool:
    return check_description(draft.description) is not None


def _lacks_window(draft: RepairDraft, region: str) -> bool:
    return draft.window() is None or not draft.window_confirmed


def _lacks_contact(draft: RepairDraft, region: str) -> bool:
    return check_contact(draft.contact, region) is not None


def _contact_handlers() -> flowkit.Handlers:
    exit_labels = filters.Text([tr(lang, flowkit.STOP_LABEL) for lang in LANGUAGES])
    return [
        MessageHandler(filters.CONTACT & _MESSAGES, receive_shared_contact),
        # The reply keyboard's Stop arrives as text; it must not be read as a contact.
        MessageHandler(exit_labels & _MESSAGES, flowkit.leave(JOB)),
        MessageHandler(_TEXT, receive_contact),
    ]


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the report, declared once: everything else (the order, the check before
    sending, the Edit menu, the prompts, the handlers, the reply to stray input) is read from
    `STEPS`, so adding a step is one record plus its prompt and its parser."""

    state: State
    prompt: Callable[[ConciergeContext, RepairDraft], Prompt]
    # Built per conversation: PTB handlers are not shared between applications.
    handlers: Callable[[], flowkit.Handlers]
    unexpected: str
    """What the step says to input it does not take (marked for translation)."""
    in_order: bool = True
    """Whether the step is on the way from the description to the summary."""
    counts_as: State | None = None
    """The step this one completes (a confirmation finishes the step it confirms)."""
    part: Part | None = None
    """What the summary's Edit calls the step, when it offers it."""
    part_label: str = ""
    lacks: Callable[[RepairDraft, str], bool] | None = None
    """For a required step: whether a draft (in a phone region) still lacks its answer."""


STEPS: Final[tuple[Step, ...]] = (
    Step(
        state=State.RESUME,
        prompt=_resume_prompt,
        handlers=lambda: [
            CallbackQueryHandler(choose_resume, pattern=flowkit.on(JOB, "(continue|restart)"))
        ],
        unexpected=N_("Please tap Continue or Start over."),
        in_order=False,
    ),
    Step(
        state=State.DESCRIBE,
        prompt=_describe_prompt,
        handlers=lambda: [
            MessageHandler(_TEXT, receive_description),
            MessageHandler(_PHOTO, receive_photo_while_describing),
        ],
        unexpected=N_("Please describe the problem in words (a photo with a caption works too)."),
        part=Part.DESCRIPTION,
        part_label=N_("📝 Description"),
        lacks=_lacks_description,
    ),
    Step(
        state=State.PHOTOS,
        prompt=_photos_prompt,
        handlers=lambda: [
            MessageHandler(_PHOTO, receive_photo),
            CallbackQueryHandler(finish_photos, pattern=flowkit.on(JOB, "(done|skip)")),
            CallbackQueryHandler(clear_photos, pattern=flowkit.on(JOB, "clear")),
        ],
        unexpected=N_("Please send photos, or tap Done when you have finished."),
        part=Part.PHOTOS,
        part_label=N_("📷 Photos"),
    ),
    Step(
        state=State.WHEN,
        prompt=_when_prompt,
        handlers=lambda: [
            CallbackQueryHandler(choose_preset, pattern=flowkit.on(JOB, "when")),
            MessageHandler(_TEXT, receive_time),
        ],
        unexpected=N_('Please tap a time, or write one such as "tomorrow 9-12".'),
        part=Part.TIME,
        part_label=N_("🕒 Time"),
        lacks=_lacks_window,
    ),
    Step(
        state=State.WHEN_CONFIRM,
        prompt=_when_confirm_prompt,
        handlers=lambda: [
            CallbackQueryHandler(confirm_time, pattern=flowkit.on(JOB, "ok")),
            CallbackQueryHandler(change_time, pattern=flowkit.on(JOB, "change")),
            MessageHandler(_TEXT, receive_time),
        ],
        unexpected=N_("Please tap Confirm or Change, or write another time."),
        in_order=False,
        counts_as=State.WHEN,
    ),
    Step(
        state=State.CONTACT,
        prompt=_contact_prompt,
        handlers=_contact_handlers,
        unexpected=N_("Please share your phone with the button, or type how to reach you."),
        part=Part.CONTACT,
        part_label=N_("📞 Contact"),
        lacks=_lacks_contact,
    ),
    Step(
        state=State.SUMMARY,
        prompt=_summary_prompt,
        handlers=lambda: [
            CallbackQueryHandler(confirm_report, pattern=flowkit.on(JOB, "confirm")),
            CallbackQueryHandler(edit_report, pattern=flowkit.on(JOB, "edit")),
            CallbackQueryHandler(choose_part, pattern=flowkit.on(JOB, "field")),
            CallbackQueryHandler(back_to_summary, pattern=flowkit.on(JOB, "back")),
        ],
        unexpected=N_("Please use the buttons below the summary."),
    ),
)
_STEP: Final = {step.state: step for step in STEPS}
_PART_STEP: Final = {step.part: step.state for step in STEPS if step.part is not None}


# ---- wiring ----------------------------------------------------------------------------------


async def _resumable(context: ConciergeContext) -> bool:
    """Whether /repair would offer to continue a draft."""
    draft = await flowkit.load_draft(context, JOB, RepairDraft)
    return draft is not None and draft.has_content


def build_conversation(*, timeout: timedelta) -> ConversationHandler[ConciergeContext]:
    """/repair and the menu's "Report a repair"."""
    states: dict[object, flowkit.Handlers] = {step.state: step.handlers() for step in STEPS}
    return flowkit.build(
        job=JOB,
        command="repair",
        start=start_report,
        states=states,
        timeout=timeout,
        aside=N_("Your repair report is closed; nothing was sent."),
        kept=N_("Your repair draft is kept: /repair to continue."),
        resumable=_resumable,
        entry_points=[CallbackQueryHandler(start_from_text, pattern=flowkit.on(JOB, "fromtext"))],
        unexpected=receive_unexpected,
    )
