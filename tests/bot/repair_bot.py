"""A tiny persistent repair conversation on a fake Bot API, for the persistence tests.

Also runnable as a process (`python -m tests.bot.repair_bot DATABASE_URL INTERVAL`) that reads
one message per stdin line, answers `done <n>` when it has handled it, and is killed by a test.
"""

from __future__ import annotations

import asyncio
import enum
import json
import sys
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest, RequestData

from bot.persistence import DatabasePersistence, PersistentApplication
from bot.storage.db import create_engine, make_session_factory
from bot.storage.repositories import Drafts

BOT_USER = {"id": 1, "is_bot": True, "first_name": "Concierge", "username": "concierge_bot"}
RESIDENT = {"id": 100, "is_bot": False, "first_name": "Ann", "language_code": "en"}


class Step(enum.StrEnum):
    """States of the little repair conversation used here."""

    DESCRIBE = "repair.describe"
    CONTACT = "repair.contact"
    CONFIRM = "repair.confirm"


class FakeBotApi(BaseRequest):
    """Answers the Bot API calls the test bot makes and records the messages it sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    @property
    def read_timeout(self) -> float | None:
        """Nothing here waits."""
        return 1.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Returns what Telegram would for getMe and sendMessage."""
        endpoint = url.rsplit("/", 1)[-1]
        parameters = request_data.parameters if request_data is not None else {}
        result: object = True
        if endpoint == "getMe":
            result = BOT_USER
        elif endpoint == "sendMessage":
            self.sent.append(dict(parameters))
            result = {
                "message_id": len(self.sent) + 1000,
                "date": 1_700_000_000,
                "chat": {"id": parameters["chat_id"], "type": "private"},
                "from": BOT_USER,
                "text": parameters["text"],
            }
        return 200, json.dumps({"ok": True, "result": result}).encode()

    @property
    def texts(self) -> list[str]:
        """The texts sent so far."""
        return [str(message["text"]) for message in self.sent]


async def start_repair(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Step:
    """Asks what is broken."""
    assert update.effective_message is not None
    await update.effective_message.reply_text("What needs repairing?")
    return Step.DESCRIBE


async def _keep(update: Update, context: ContextTypes.DEFAULT_TYPE, field: str) -> None:
    # What the user typed is saved in the drafts table before we answer: a crash after this
    # line loses no input, whatever the persistence interval.
    assert update.effective_user is not None
    assert update.effective_message is not None
    assert context.user_data is not None
    draft = context.user_data.setdefault("repair", {})
    draft[field] = update.effective_message.text
    drafts: Drafts = context.bot_data["drafts"]
    await drafts.save(update.effective_user.id, "repair", draft)


async def receive_description(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Step:
    """Keeps the description and asks how to reach the resident."""
    await _keep(update, context, "description")
    assert update.effective_message is not None
    await update.effective_message.reply_text("How can the technician reach you?")
    return Step.CONTACT


async def receive_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Step:
    """Keeps the contact and shows the summary."""
    await _keep(update, context, "contact")
    assert update.effective_message is not None
    assert context.user_data is not None
    draft = context.user_data["repair"]
    await update.effective_message.reply_text(
        f"Create repair '{draft['description']}', contact {draft['contact']}? (yes/no)"
    )
    return Step.CONFIRM


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Creates the repair from the draft and ends the conversation."""
    assert update.effective_user is not None
    assert update.effective_message is not None
    assert context.user_data is not None
    draft = context.user_data.pop("repair")
    drafts: Drafts = context.bot_data["drafts"]
    await drafts.clear(update.effective_user.id, "repair")
    await update.effective_message.reply_text(f"Created: {draft['description']}")
    return ConversationHandler.END


def build_app(
    persistence: DatabasePersistence, request: FakeBotApi, drafts: Drafts
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The test bot: one persistent repair conversation."""
    app = (
        Application.builder()
        .application_class(PersistentApplication)
        .token("123456:TEST-token")
        .request(request)
        .get_updates_request(FakeBotApi())
        .persistence(persistence)
        .build()
    )
    text_only = filters.TEXT & ~filters.COMMAND
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("repair", start_repair)],
            states={
                Step.DESCRIBE: [MessageHandler(text_only, receive_description)],
                Step.CONTACT: [MessageHandler(text_only, receive_contact)],
                Step.CONFIRM: [MessageHandler(filters.Regex("^yes$"), confirm)],
            },
            fallbacks=[],
            name="repair",
            persistent=True,
        )
    )
    app.bot_data["drafts"] = drafts
    return app


class Chat:
    """Makes the updates one resident sends in a private chat."""

    def __init__(self, resident: dict[str, Any] | None = None, first_id: int = 1) -> None:
        self._resident = resident or RESIDENT
        self._ids = iter(range(first_id, first_id + 10_000))

    def says(self, app: Application[Any, Any, Any, Any, Any, Any], words: str) -> Update:
        """An update carrying the text (a command when it starts with '/')."""
        number = next(self._ids)
        message: dict[str, Any] = {
            "message_id": number,
            "date": 1_700_000_000 + number,
            "chat": {"id": self._resident["id"], "type": "private"},
            "from": self._resident,
            "text": words,
        }
        if words.startswith("/"):
            command = words.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        update = Update.de_json({"update_id": number, "message": message}, app.bot)
        assert update is not None
        return update


async def serve_stdin(database_url: str, update_interval: float) -> None:
    """Runs the bot as a process would, handling one message per stdin line until killed."""
    engine = create_engine(database_url)
    sessions = make_session_factory(engine)
    persistence = DatabasePersistence(sessions, update_interval=update_interval)
    app = build_app(persistence, FakeBotApi(), Drafts(sessions))
    chat = Chat()
    loop = asyncio.get_running_loop()
    await app.initialize()
    await app.start()  # starts PTB's timed persistence writer
    handled = 0
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        await app.process_update(chat.says(app, line.rstrip("\n")))
        handled += 1
        print(f"done {handled}", flush=True)
    await app.stop()
    await app.shutdown()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(serve_stdin(sys.argv[1], float(sys.argv[2])))
