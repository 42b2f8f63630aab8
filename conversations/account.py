"""Account commands: /start (menu, linking, invites), /help, /whoami, /language, /residence,
/unlink, and the polite answer to a button that no longer leads anywhere."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from conversations import callbacks, commands, freetext, repair, staffscope
from conversations.common import offer_link
from conversations.community import Community
from conversations.context import (
    LANGUAGE_KEY,
    SERVICES_KEY,
    TIME_ZONE_KEY,
    ConciergeApp,
    ConciergeContext,
)
from conversations.domain import Actor, Linked, Redeemed, RedeemOutcome, Residence, Role
from conversations.i18n import LANGUAGE_NAMES, LANGUAGES, N_, tr
from conversations.notify import BLOCKED_KEY, language_of, tell
from conversations.ports import Ports
from conversations.roles import REFUSAL_MESSAGES, Action, Target, decide
from conversations.validation import read_zone, zone_examples

logger = logging.getLogger(__name__)

JOB = "acct"
# `/start from_group`: the private chat opened from a group's button (not an invite code).
FROM_GROUP: Final = "from_group"

# (label, job): the menu buttons; each job's conversation starts on `menu:<job>`.
RESIDENT_MENU = (
    (N_("🔧 Report a repair"), "repair"),
    (N_("📋 My repairs"), "repairs"),
    (N_("📅 Book an amenity"), "book"),
    (N_("🎫 My bookings"), "bookings"),
)
RESUME_LABELS = {job: label for label, job in RESIDENT_MENU}
WORKER_MENU = ((N_("🧰 My tasks"), "tasks"),)
MANAGER_MENU = (
    (N_("🧰 Tasks"), "tasks"),
    (N_("➕ Assign a task"), "assign"),
    (N_("🏠 All repairs"), "repairs_all"),
    (N_("⏳ Bookings waiting"), "bookings_pending"),
)

ROLE_NAMES = {
    Role.RESIDENT: N_("resident"),
    Role.WORKER: N_("maintenance worker"),
    Role.MANAGER: N_("property manager"),
    Role.ADMIN: N_("administrator"),
}

HELP_LINES: dict[str, Sequence[str]] = {
    "everyone": (
        N_("/start – the menu"),
        N_("/whoami – your role and linked accounts"),
        N_("/language – English or Chinese"),
        N_("/cancel – leave what you are doing"),
    ),
    "resident": (
        N_("/repair – report a repair"),
        N_("/repairs – follow your repairs"),
        N_("/book – book an amenity"),
        N_("/bookings – your bookings"),
        N_("/code – book with a booking code"),
        N_("/residence – switch residence"),
        N_("/timezone – the time zone times are shown in"),
        N_("/unlink – unlink your Akubela account"),
    ),
    "typing": (
        N_("You can also just write to me, for example:"),
        N_(
            "• “gym tomorrow 7pm for an hour” or “book the meeting room friday 2-4pm”: "
            "I prepare the booking for you to confirm (/book works the same way)"
        ),
        N_("• “my kitchen tap is leaking”: I offer to report a repair"),
        N_(
            "Days: “next friday” is the Friday of next week, “this friday” this week's, "
            "and “friday” alone the next Friday to come."
        ),
    ),
    "worker": (N_("/tasks – your maintenance tasks"),),
    "manager": (
        N_("/tasks – all maintenance tasks"),
        N_("/assign – assign a new task"),
        N_("/repairs_all – every repair in the community"),
        N_("/bookings_pending – bookings waiting for approval"),
        N_("/alerts – choose which alerts you get"),
    ),
}


def menu_markup(actor: Actor, lang: str) -> InlineKeyboardMarkup:
    """The main menu for what this user can do."""
    entries: list[tuple[str, str]] = []
    if actor.residence_ids:
        entries += RESIDENT_MENU
    if actor.role is Role.WORKER:
        entries += WORKER_MENU
    if actor.role in (Role.MANAGER, Role.ADMIN):
        entries += MANAGER_MENU
    rows = [
        [InlineKeyboardButton(tr(lang, label), callback_data=callbacks.build("menu", job))]
        for label, job in entries
    ]
    return InlineKeyboardMarkup(rows)


async def actor_of(update: Update, context: ConciergeContext) -> Actor:
    """The user as authorisation sees them."""
    assert update.effective_user is not None
    return await context.services.directory.actor(update.effective_user.id)


async def refresh_commands(update: Update, context: ConciergeContext) -> None:
    """Sets this private chat's command menu for the user's role and language as they are now."""
    chat = update.effective_chat
    if chat is None or chat.type != chat.PRIVATE or update.effective_user is None:
        return
    actor = await actor_of(update, context)
    await commands.set_chat_commands(context.bot, chat.id, actor, context.lang)


KNOWN_KEY = "known"


async def remember_user(update: Update, context: ConciergeContext) -> None:
    """Stores the user on first contact, in their Telegram language; a write once per user."""
    user = update.effective_user
    if user is None or context.user_data is None:
        return
    data = context.user_data
    if not data.get(KNOWN_KEY) or data.get(BLOCKED_KEY):
        # Someone who blocked the bot and writes again has unblocked it: alerts reach them
        # again.
        await context.services.people.first_contact(
            user.id, language=context.lang, display_name=user.full_name
        )
        data.pop(BLOCKED_KEY, None)
        data[KNOWN_KEY] = True
    # Every handler after this one shows times in the user's community's zone. Read after the
    # write above: a write ends what the update remembered, so a read before it would be made
    # twice (the handler asks who the user is again).
    await context.community()


async def start(update: Update, context: ConciergeContext) -> None:
    """Greets the user: redeems an invite code, or offers linking, or shows the menu."""
    message = update.effective_message
    if message is None or update.effective_user is None:
        return
    if context.args and context.args[0] != FROM_GROUP:
        await _redeem(update, context, context.args[0])
        return
    # The role may have changed elsewhere (an admin id set, a worker bound): /start catches up.
    await refresh_commands(update, context)
    actor = await actor_of(update, context)
    if actor.residence_ids and await _login_lost(update, context):
        # Linked, but Akubela no longer takes the login: what they need is to sign in again.
        await offer_link(update, context, resume=None)
        return
    if not actor.residence_ids and actor.role is Role.RESIDENT:
        await message.reply_text(
            context.t(
                "Hello {name}! I am Concierge, your community's assistant: report repairs, "
                "book the gym or the meeting room, and follow it all from here.",
                name=update.effective_user.first_name,
            )
        )
        await offer_link(update, context, resume=None)
        return
    await message.reply_text(
        context.t("What would you like to do?"), reply_markup=menu_markup(actor, context.lang)
    )


async def _login_lost(update: Update, context: ConciergeContext) -> bool:
    assert update.effective_user is not None
    account = await context.services.directory.resident(update.effective_user.id)
    return account is not None and account.login_lost


INVITE_REFUSALS = {
    RedeemOutcome.UNKNOWN: N_("That invite code is not valid. Please check the link you got."),
    RedeemOutcome.USED: N_("That invite code was already used. Ask for a new one."),
    RedeemOutcome.EXPIRED: N_("That invite code has expired. Ask for a new one."),
    RedeemOutcome.LOCKED: N_("Too many wrong codes. Please wait a few minutes and try again."),
}
SWITCH_ROLE = N_("You are a {current} now. This invite makes you a {new} instead.")
SWITCH_WORKER = N_(
    "This invite binds you to maintenance worker {new} instead of {old}: the tasks of {old} "
    "will no longer reach you."
)
LOSE_COMMUNITIES = N_("You will stop managing {communities}, and manager alerts stop.")
LOSE_WORKER = N_("Your binding to maintenance worker {worker} ends, and its task alerts stop.")
KEEP_RESIDENCE = N_("Your Akubela account stays linked.")
SWITCH_QUESTION = N_("Go ahead?")
SWITCH_YES = N_("Yes, switch")
SWITCH_NO = N_("No, keep things as they are")
ALSO_LINKED = N_(
    "⚠️ Your Akubela account {email} was just linked to another Telegram account as well: "
    "{name}. If that was not you, tell your property manager and change your Akubela password."
)


def served_names(actor: Actor, communities: Sequence[Community], lang: str) -> str:
    """The communities a worker, manager or administrator serves, by name in `lang`."""
    return ", ".join(c.name(lang) for c in staffscope.scope_for(actor, communities).served)


def role_change(
    actor: Actor, grant: Redeemed, t: Callable[..., str], communities: str
) -> list[str]:
    """What redeeming `grant` would change for `actor` (who serves `communities`, named), in
    words (none: nothing is lost)."""
    assert grant.role is not None
    new = grant.role
    lines: list[str] = []
    if actor.worker_id and new is Role.WORKER and grant.worker_id != actor.worker_id:
        lines.append(t(SWITCH_WORKER, new=grant.worker_id or "", old=actor.worker_id))
    if actor.role is new or actor.role is Role.RESIDENT:
        return lines
    lines.append(t(SWITCH_ROLE, current=t(ROLE_NAMES[actor.role]), new=t(ROLE_NAMES[new])))
    if actor.role is Role.MANAGER and new is Role.WORKER:
        lines.append(t(LOSE_COMMUNITIES, communities=communities))
    if actor.worker_id and new is not Role.WORKER:
        lines.append(t(LOSE_WORKER, worker=actor.worker_id))
    if actor.residence_ids:
        lines.append(t(KEEP_RESIDENCE))
    return lines


async def _redeem(update: Update, context: ConciergeContext, code: str) -> None:
    """Checks an invite; asks first when it would take a role (or binding) away."""
    message = update.effective_message
    user = update.effective_user
    assert message is not None
    assert user is not None
    grant = await context.services.invite_desk.preview(code, user.id)
    if grant.outcome is not RedeemOutcome.VALID:
        logger.info("invite refused for user %s: %s", user.id, grant.outcome.value)
        await message.reply_text(context.t(INVITE_REFUSALS[grant.outcome]))
        return
    actor = await actor_of(update, context)
    served = served_names(actor, context.services.communities(), context.lang)
    lines = role_change(actor, grant, context.t, served)
    if not lines:
        await _join(update, context, code)
        return
    try:
        yes = callbacks.build(JOB, "join", code)
    except callbacks.CallbackDataError:
        # Not a code we ever made (ours fit a button); refused like any unknown one.
        await message.reply_text(context.t(INVITE_REFUSALS[RedeemOutcome.UNKNOWN]))
        return
    buttons = [
        [InlineKeyboardButton(context.t(SWITCH_YES), callback_data=yes)],
        [InlineKeyboardButton(context.t(SWITCH_NO), callback_data=callbacks.build(JOB, "stay"))],
    ]
    await message.reply_text(
        "\n".join([*lines, context.t(SWITCH_QUESTION)]), reply_markup=InlineKeyboardMarkup(buttons)
    )


async def _join(update: Update, context: ConciergeContext, code: str) -> None:
    """Redeems the invite: the new role replaces the old one whole."""
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None
    assert chat is not None
    outcome = await context.services.invite_desk.redeem(code, user.id, display_name=user.full_name)
    if outcome.outcome is not RedeemOutcome.BOUND:
        logger.info("invite refused for user %s: %s", user.id, outcome.outcome.value)
        await chat.send_message(context.t(INVITE_REFUSALS[outcome.outcome]))
        return
    assert outcome.role is not None
    logger.info("user %s joined as %s", user.id, outcome.role.value)
    await refresh_commands(update, context)
    actor = await actor_of(update, context)
    await chat.send_message(
        context.t("Welcome aboard! You are now a {role}.", role=context.t(ROLE_NAMES[actor.role])),
        reply_markup=menu_markup(actor, context.lang),
    )


async def show_help(update: Update, context: ConciergeContext) -> None:
    """Lists what this user's role can do."""
    message = update.effective_message
    if message is None:
        return
    actor = await actor_of(update, context)
    groups = ["everyone"]
    if actor.residence_ids or actor.role is Role.RESIDENT:
        groups += ["resident", "typing"]
    if actor.role is Role.WORKER:
        groups.append("worker")
    if actor.role in (Role.MANAGER, Role.ADMIN):
        groups.append("manager")
    lines = [context.t(line) for group in groups for line in HELP_LINES[group]]
    await message.reply_text(context.t("Here is what I can do for you:") + "\n" + "\n".join(lines))


async def whoami(update: Update, context: ConciergeContext) -> None:
    """Shows the user's role and what they are linked to."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    directory = context.services.directory
    actor = await actor_of(update, context)
    lines = [context.t("You are a {role}.", role=context.t(ROLE_NAMES[actor.role]))]
    account = await directory.resident(user.id)
    if account is None:
        lines.append(context.t("No Akubela account is linked."))
    else:
        lines.append(context.t("Akubela account: {email}", email=account.email or "—"))
        chosen = account.chosen()
        lines.append(
            context.t(
                "Residence: {residence}",
                residence=chosen.label() if chosen else context.t("not chosen yet"),
            )
        )
        if chosen is not None:
            community = await context.community()
            lines.append(
                context.t("Community: {community}", community=community.name(context.lang))
            )
    worker = await directory.worker_name(user.id)
    if worker is not None:
        lines.append(context.t("Maintenance worker: {name}", name=worker))
    if actor.role is not Role.RESIDENT:
        served = served_names(actor, context.services.communities(), context.lang)
        if served:
            lines.append(context.t("Communities you serve: {communities}", communities=served))
    lines.append(context.t("Language: {language}", language=LANGUAGE_NAMES[context.lang]))
    lines.append(context.t("Time zone: {zone}", zone=str(context.zone)))
    await message.reply_text("\n".join(lines))


async def choose_language(update: Update, context: ConciergeContext) -> None:
    """Offers English and Chinese."""
    message = update.effective_message
    if message is None:
        return
    buttons = [
        InlineKeyboardButton(
            LANGUAGE_NAMES[code], callback_data=callbacks.build(JOB, "lang", code)
        )
        for code in LANGUAGES
    ]
    await message.reply_text(
        " / ".join(tr(code, "Which language?") for code in LANGUAGES),
        reply_markup=InlineKeyboardMarkup([buttons]),
    )


async def set_time_zone(update: Update, context: ConciergeContext) -> None:
    """Shows or sets the user's own time zone (`/timezone Europe/Berlin`, `/timezone reset`)."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or context.user_data is None:
        return
    community = str((await context.community()).zone)
    if not context.args:
        await message.reply_text(
            context.t(
                "Times are shown in {zone}. To change it, send /timezone and a zone name "
                "such as Europe/Berlin, or /timezone reset for the community's ({community}).",
                zone=str(context.zone),
                community=community,
            )
        )
        return
    wanted = context.args[0].strip()
    if wanted.lower() == "reset":
        context.user_data.pop(TIME_ZONE_KEY, None)
        await context.services.people.set_time_zone(user.id, None)
    else:
        zone = read_zone(wanted)
        if zone is None:
            await message.reply_text(
                context.t(
                    "I do not know the time zone “{zone}”. Send a full name such as: {examples}",
                    zone=wanted[:64],
                    examples=", ".join(zone_examples(wanted)),
                )
            )
            return
        context.user_data[TIME_ZONE_KEY] = zone.key
        await context.services.people.set_time_zone(user.id, zone.key)
    await message.reply_text(
        context.t("Done: times are now shown in {zone}.", zone=str(context.zone))
    )


async def choose_residence(update: Update, context: ConciergeContext) -> None:
    """Offers the resident's residences to switch between."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    account = await context.services.directory.resident(user.id)
    if account is None:
        await offer_link(update, context, resume=None)
        return
    await message.reply_text(
        context.t("Which residence do you want to use?"),
        reply_markup=_residence_markup(account.residences, account.chosen_residence_id),
    )


def _residence_markup(residences: Sequence[Residence], chosen: str | None) -> InlineKeyboardMarkup:
    rows = []
    for residence in residences:
        residence_id = residence.residence_id
        label = ("✅ " if residence_id == chosen else "") + residence.label()
        try:
            data = callbacks.build(JOB, "res", residence_id)
        except callbacks.CallbackDataError:
            logger.warning("a residence id does not fit in a button; it is left out")
            continue
        rows.append([InlineKeyboardButton(label, callback_data=data)])
    return InlineKeyboardMarkup(rows)


async def confirm_unlink(update: Update, context: ConciergeContext) -> None:
    """Asks before forgetting the resident's Akubela tokens."""
    message = update.effective_message
    if message is None or update.effective_user is None:
        return
    if await context.services.directory.resident(update.effective_user.id) is None:
        await message.reply_text(context.t("No Akubela account is linked."))
        return
    buttons = [
        InlineKeyboardButton(
            context.t("Yes, unlink"), callback_data=callbacks.build(JOB, "unlink", "yes")
        ),
        InlineKeyboardButton(
            context.t("Keep it"), callback_data=callbacks.build(JOB, "unlink", "no")
        ),
    ]
    await message.reply_text(
        context.t("Unlink your Akubela account? I will forget its tokens."),
        reply_markup=InlineKeyboardMarkup([buttons]),
    )


async def press_account_button(update: Update, context: ConciergeContext) -> None:
    """Handles the language, residence and unlink buttons."""
    query = update.callback_query
    user = update.effective_user
    if query is None or user is None:
        return
    press = callbacks.parse(query.data, job=JOB)
    if press is None:
        await answer_stale(update, context)
        return
    services = context.services
    if press.action == "lang" and press.arg in LANGUAGES:
        if context.user_data is not None:
            context.user_data[LANGUAGE_KEY] = press.arg
        await services.people.set_language(user.id, press.arg)
        await query.answer()
        await refresh_commands(update, context)
        await query.edit_message_text(
            context.t(
                "From now on I will speak {language} with you.",
                language=LANGUAGE_NAMES[press.arg],
            )
        )
        return
    if press.action == "res":
        actor = await actor_of(update, context)
        refusal = decide(actor, Action.RESIDENCE_SWITCH, Target(residence_id=press.arg))
        if refusal is not None:
            logger.warning("user %s pressed a residence that is not theirs", user.id)
            await query.answer(context.t(REFUSAL_MESSAGES[refusal]), show_alert=True)
            return
        await services.directory.choose_residence(user.id, press.arg)
        await query.answer()
        account = await services.directory.resident(user.id)
        chosen = account.chosen() if account is not None else None
        await query.edit_message_text(
            context.t(
                "Done: you are now using {residence}.",
                residence=chosen.label() if chosen else press.arg,
            ),
            reply_markup=menu_markup(await actor_of(update, context), context.lang),
        )
        return
    if press.action == "join" and press.arg:
        await query.answer()
        await _drop_buttons(query)
        await _join(update, context, press.arg)
        return
    if press.action == "stay":
        await query.answer()
        await query.edit_message_text(context.t("Nothing changed."))
        return
    if press.action == "unlink" and press.arg in ("yes", "no"):
        await query.answer()
        if press.arg == "yes" and await services.directory.unlink(user.id):
            await refresh_commands(update, context)
            await query.edit_message_text(context.t("Your Akubela account is unlinked."))
        else:
            await query.edit_message_text(context.t("Nothing changed."))
        return
    await answer_stale(update, context)


async def _drop_buttons(query: Any) -> None:
    """Takes the buttons off a question once it is answered, so it is not answered twice."""
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except TelegramError:
        logger.debug("could not remove answered buttons")


async def answer_stale(update: Update, context: ConciergeContext) -> None:
    """Any press nobody handles: an old or forged button gets a polite notice."""
    query = update.callback_query
    if query is None:
        return
    # Old buttons are pressed all the time and harm nothing: not worth an operator's attention.
    logger.debug(
        "stale or unknown button pressed by user %s",
        update.effective_user.id if update.effective_user else None,
    )
    # A toast, not a pop-up: an old button is nothing to be alarmed about.
    await query.answer(context.t("This button is no longer active. Send /start for the menu."))
    if query.message is not None:
        # Take the dead buttons away so they are not pressed again.
        try:
            await query.edit_message_reply_markup(reply_markup=None)
        except TelegramError:
            # The message may be too old to edit; the notice above is what matters.
            logger.debug("could not remove stale buttons")


async def answer_unhandled(update: Update, context: ConciergeContext) -> None:
    """A message no command or step takes (an unknown command, text out of the blue): a hint,
    so the user never talks into silence."""
    message = update.effective_message
    if message is None:
        return
    if message.text is not None and message.text.startswith("/"):
        text = context.t("I do not know that command. Send /help to see what I can do.")
    elif message.text is not None and freetext.classify(message.text) is freetext.Kind.PROBLEM:
        await repair.offer_report(update, context, message.text)
        return
    elif message.text is not None:
        # Text that is neither a booking (the booking conversation took those) nor a problem.
        await _show_menu(update, context, context.t("I did not understand that."))
        return
    else:
        text = context.t("I did not understand that. Send /start for the menu or /help.")
    await message.reply_text(text)


async def _show_menu(update: Update, context: ConciergeContext, note: str) -> None:
    """The menu after `note`; an unlinked resident is asked to link first."""
    message = update.effective_message
    assert message is not None
    actor = await actor_of(update, context)
    if not actor.residence_ids and actor.role is Role.RESIDENT:
        await message.reply_text(note)
        await offer_link(update, context, resume=None)
        return
    await message.reply_text(
        note + "\n" + context.t("What would you like to do? Send /help for examples."),
        reply_markup=menu_markup(actor, context.lang),
    )


async def nothing_to_cancel(update: Update, context: ConciergeContext) -> None:
    """/cancel outside any conversation: says there was nothing to leave."""
    message = update.effective_message
    if message is not None:
        await message.reply_text(
            context.t("There is nothing to cancel. Send /start for the menu.")
        )


async def tell_linked(application: ConciergeApp, linked: Linked) -> None:
    """Tells the user in Telegram that their account is linked, and what comes next; and
    anyone else the same Akubela account was linked to, that it now is to this user too."""
    services: Ports = application.bot_data[SERVICES_KEY]
    for other in linked.also_linked:
        await tell(application, services, other, ALSO_LINKED, email=linked.email, name=linked.name)
    lang = await language_of(application, services, linked.telegram_id)
    bot = application.bot
    role = await services.directory.actor(linked.telegram_id)
    await commands.set_chat_commands(bot, linked.telegram_id, role, lang)
    text = tr(lang, "✅ Your Akubela account {email} is linked.", email=linked.email or "")
    if len(linked.residences) > 1 and linked.chosen_residence_id is None:
        await bot.send_message(
            linked.telegram_id,
            text + "\n" + tr(lang, "Which residence do you want to use?"),
            reply_markup=_residence_markup(linked.residences, None),
        )
        return
    if not linked.residences:
        await bot.send_message(
            linked.telegram_id,
            text
            + "\n"
            + tr(
                lang,
                "Akubela lists no residence for this account yet, so there is nothing to book.",
            ),
        )
        return
    actor = Actor(
        linked.telegram_id, residence_ids=frozenset(r.residence_id for r in linked.residences)
    )
    await bot.send_chat_action(linked.telegram_id, ChatAction.TYPING)
    menu = menu_markup(actor, lang)
    resume = RESUME_LABELS.get(linked.resume or "")
    if resume is not None:
        # They were on their way somewhere when we asked them to link: offer that first.
        carry_on = InlineKeyboardButton(
            tr(lang, "▶ Carry on: {job}", job=tr(lang, resume)),
            callback_data=callbacks.build("menu", str(linked.resume)),
        )
        menu = InlineKeyboardMarkup([[carry_on], *menu.inline_keyboard])
    await bot.send_message(
        linked.telegram_id,
        text + "\n" + tr(lang, "What would you like to do?"),
        reply_markup=menu,
    )


def build_first_contact_handlers() -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """Run before every other handler (a group of their own): remember who wrote."""
    return [TypeHandler(Update, remember_user)]


def build_handlers() -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """The account commands and buttons."""
    return [
        CommandHandler("start", start),
        CommandHandler("help", show_help),
        CommandHandler("whoami", whoami),
        CommandHandler("language", choose_language),
        CommandHandler("residence", choose_residence),
        CommandHandler("timezone", set_time_zone),
        CommandHandler("unlink", confirm_unlink),
        CallbackQueryHandler(press_account_button, pattern=callbacks.pattern(JOB)),
    ]


def build_fallback_handlers() -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """Registered last: whatever button or message nobody else took."""
    # Only in private chats: in a group, other people's messages are not meant for the bot.
    private = filters.ChatType.PRIVATE
    return [
        CallbackQueryHandler(answer_stale),
        # Each conversation takes /cancel while it is open; here nothing was.
        CommandHandler("cancel", nothing_to_cancel, filters=private),
        MessageHandler(private & filters.UpdateType.MESSAGE, answer_unhandled),
    ]
