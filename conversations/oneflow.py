"""One conversation at a time per user: starting a flow puts the others aside.

Every flow (repair, booking, the lists, the task board, assigning a task...) is a
ConversationHandler, and PTB lets a user be in all of them at once. Then every open one
competes for the same typed text, the first registered wins, and `/cancel` ends whichever
that is. A `Flow` is a ConversationHandler that keeps to three rules:

- **One open flow per user.** Whenever a flow takes an update for a conversation key (a
  command, a menu button, an alert's button, a typed booking request, a step's answer), every
  other flow's conversation for that key ends first, and the user is told in one line what was
  put aside and how to come back ("Your repair draft is kept: /repair to continue."). The
  flow's draft stays in the drafts table, so its own command picks it up again.
- **Read-only views never take typed text.** A state listed in `views` (a list, a detail, a
  yes/no question) lets any message other than a command go on to the handlers after it: the
  free-text handling, or the flow the text belongs to. Presses and commands still reach it.
- **A typed entry never takes what an open flow waits for.** An entry point that matches a
  plain message (a booking request typed as "gym tomorrow 7pm") does not fire while another
  flow waits for text, whatever order the flows are registered in.

How another handler's conversation is ended: PTB has no public call for it. A Flow ends its
own conversation for a key the way ConversationHandler itself does outside a callback (its
`_initialize_persistence` ends stored END states so): `_update_state(END, key)`, which deletes
the key from the handler's conversation dict. Under persistence that dict is PTB's
TrackingDict, so the deletion is recorded and the next `Application.update_persistence`
writes it (`update_conversation(name, key, None)`, our row deleted), exactly like a callback
returning END; after a restart the flow is not open. The flow's time-out job for the key is
removed under the handler's own lock first (as `handle_update` does), so a flow put aside
never announces a time-out later. The alternative, making each conversation end itself by
routing a synthetic update through it, would run its callbacks and reply to the user; ending
the state directly is silent and touches nothing but the state. Updates of one user run one
at a time (`bot.concurrency`), so no callback of the flow being ended is running meanwhile.

A flow put aside loses its buttons: while a Flow handles an update, the bot reports each
message it shows (`note_shown`, called by the bot for every message it sends or edits), and
the flow's newest message with a keyboard is kept in the user's data (persisted, so it holds
after a restart). Putting the flow aside takes that keyboard off, so no live button is left
that belongs to a flow the user is no longer in.

Keyboards follow the conversation the same way: when an update shows a newer prompt with
buttons (the answer to a typed or pressed step), the one before loses its buttons; when the
flow ends (finished, /cancel, Cancel) or times out, its last prompt loses them. So a flow
has at most one live keyboard, and a resident's chat never gathers old Cancel buttons.

The flows find each other through `connect`, called once by the application factory with
every registered handler; the Application owns the handlers, the Flows only refer to them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, BaseHandler, CommandHandler, ConversationHandler

from conversations.context import ConciergeContext

logger = logging.getLogger(__name__)

ConversationKey = tuple[int | str, ...]
Resumable = Callable[[ConciergeContext], Awaitable[bool]]

# user_data key: the open flow's newest message with buttons, {"flow", "chat", "message"}.
PROMPT_KEY = "oneflow.prompt"
# What the bot showed while the current task handles a Flow's update: (chat, message, buttons).
_shown: ContextVar[list[tuple[int, int, bool]] | None] = ContextVar("oneflow_shown", default=None)


def note_shown(chat_id: int, message_id: int, *, has_buttons: bool) -> None:
    """Called by the bot for every message it sends or edits; recorded only while a Flow
    handles an update (alerts and other handlers are not any flow's prompt)."""
    shown = _shown.get()
    if shown is not None:
        shown.append((chat_id, message_id, has_buttons))


class Flow(ConversationHandler[ConciergeContext]):
    """A ConversationHandler that is one of a user's flows; see the module docstring."""

    __slots__ = ("_aside", "_aside_in", "_kept", "_peers", "_resumable", "_views")

    def __init__(
        self,
        *,
        aside: str,
        kept: str | None = None,
        resumable: Resumable | None = None,
        aside_in: Mapping[object, str] | None = None,
        views: Collection[object] = (),
        **options: Any,
    ) -> None:
        """`aside` is the line said when the flow is put aside; `kept` replaces it when
        `resumable` says there is a draft to come back to; `aside_in` replaces it in the
        states it names. `views` are the read-only states. The rest is ConversationHandler's."""
        super().__init__(**options)
        self._aside = aside
        self._kept = kept
        self._resumable = resumable
        self._aside_in = dict(aside_in or {})
        self._views = frozenset(views)
        self._peers: tuple[Flow, ...] = ()

    # ---- routing -------------------------------------------------------------------------

    def check_update(self, update: object) -> Any:
        """ConversationHandler's choice, except that views and typed entries let plain
        messages pass (see the module docstring)."""
        found = super().check_update(update)
        if found is None or not isinstance(update, Update) or update.message is None:
            return found
        state, key, handler, _check = found
        if isinstance(handler, CommandHandler):
            return found
        if handler in self.entry_points:
            return None if self._waited_on_elsewhere(key) else found
        if state in self._views:
            return None
        return found

    def _waited_on_elsewhere(self, key: ConversationKey) -> bool:
        """Whether another flow is open for `key` in a state that takes typed text."""
        for peer in self._peers:
            if peer is self:
                continue
            state = peer._conversations.get(key)
            if state is not None and state not in peer._views:
                return True
        return False

    async def handle_update(
        self,
        update: Update,
        application: Application[Any, ConciergeContext, Any, Any, Any, Any],
        check_result: Any,
        context: ConciergeContext,
    ) -> object | None:
        """Puts every other open flow of this user aside, handles the update, then lets the
        keyboards follow: only the flow's newest prompt keeps its buttons."""
        key: ConversationKey = check_result[1]
        await self._put_others_aside(update, context, key)
        shown: list[tuple[int, int, bool]] = []
        token = _shown.set(shown)
        try:
            result = await super().handle_update(update, application, check_result, context)
        finally:
            _shown.reset(token)
        await self._follow(context, shown, ended=key not in self._conversations)
        return result

    async def _follow(
        self, context: ConciergeContext, shown: list[tuple[int, int, bool]], *, ended: bool
    ) -> None:
        """Takes the buttons off every prompt of this flow but the newest one: a prompt shown
        earlier in this update, the prompt an answer (typed or pressed) superseded, and, once
        the flow has ended (done, /cancel, Cancel), its last prompt. Messages shown by the
        update that ended the flow keep theirs (a login link, a receipt)."""
        if context.user_data is None:
            return
        latest: dict[tuple[int, int], bool] = {}
        for chat_id, message_id, has_buttons in shown:
            latest.pop((chat_id, message_id), None)
            latest[(chat_id, message_id)] = has_buttons
        live = [message for message, has_buttons in latest.items() if has_buttons]
        newest = live[-1] if live and not ended else None
        stale = [] if ended else live[:-1]
        kept = context.user_data.get(PROMPT_KEY)
        if isinstance(kept, dict) and kept.get("flow") == self.name:
            where = (kept["chat"], kept["message"])
            if where not in latest and (ended or newest is not None):
                stale.append(where)
            if ended or newest is not None or not latest.get(where, True):
                context.user_data.pop(PROMPT_KEY, None)
        if newest is not None:
            context.user_data[PROMPT_KEY] = {
                "flow": self.name,
                "chat": newest[0],
                "message": newest[1],
            }
        for chat_id, message_id in stale:
            await _strip(context, chat_id, message_id)

    # ---- putting aside -------------------------------------------------------------------

    async def _put_others_aside(
        self, update: Update, context: ConciergeContext, key: ConversationKey
    ) -> None:
        for peer in self._peers:
            if peer is self:
                continue
            state = await peer.end(key)
            if state is None:
                continue
            logger.info("user %s: %s put aside for %s", context.user_id, peer.name, self.name)
            await take_prompt_off(context, peer.name)
            line = await peer._aside_line(context, state)
            if update.effective_chat is not None:
                await update.effective_chat.send_message(line)

    async def end(self, key: ConversationKey) -> object | None:
        """Ends this flow's conversation for `key` (its draft stays); the state it was in,
        or None when it was not open."""
        state = self._conversations.get(key)
        if state is None:
            return None
        async with self._timeout_jobs_lock:
            job = self.timeout_jobs.pop(key, None)
            if job is not None:
                job.schedule_removal()
        self._update_state(self.END, key)
        return state

    async def _aside_line(self, context: ConciergeContext, state: object) -> str:
        """What the user is told when this flow is put aside in `state`."""
        resumable = self._resumable is not None and await self._resumable(context)
        if self._kept is not None and resumable:
            return context.t(self._kept)
        return context.t(self._aside_in.get(state, self._aside))


async def take_prompt_off(context: ConciergeContext, flow: str | None) -> None:
    """Removes the keyboard of the newest prompt of `flow` (a flow's persistence name), if
    it is known; called when the flow is put aside or times out."""
    kept = context.user_data.get(PROMPT_KEY) if context.user_data is not None else None
    if not isinstance(kept, dict) or kept.get("flow") != flow:
        return
    if context.user_data is not None:
        context.user_data.pop(PROMPT_KEY, None)
    await _strip(context, kept["chat"], kept["message"])


async def _strip(context: ConciergeContext, chat_id: int, message_id: int) -> None:
    try:
        await context.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=None
        )
    except TelegramError:
        # Too old to edit (48 h), or deleted: its buttons answer as stale anyway.
        logger.debug("an answered prompt kept its buttons")


def connect(handlers: Iterable[BaseHandler[Any, Any, Any]]) -> tuple[Flow, ...]:
    """Lets every Flow among `handlers` put the others aside; returns the flows."""
    flows = tuple(handler for handler in handlers if isinstance(handler, Flow))
    for flow in flows:
        flow._peers = flows
    return flows
