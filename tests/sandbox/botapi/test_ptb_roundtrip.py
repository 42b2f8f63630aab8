"""A real PTB Application polls the local Bot API while a persona chats through the JSON API."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.sandbox.botapi.conftest import MANAGER, RESIDENT, LiveBotApi, png_bytes, polling

Context = ContextTypes.DEFAULT_TYPE


async def test_get_me_answers_the_demo_bot(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        me = await bot.get_me()
    assert me.username == "concierge_demo_bot"
    assert me.is_bot
    assert me.id == 123456


async def test_polling_picks_up_a_page_message_and_the_reply_shows(botapi: LiveBotApi) -> None:
    seen: list[Update] = []

    async def echo(update: Update, context: Context) -> None:
        seen.append(update)
        assert update.message is not None
        await update.message.reply_text(
            f"<b>You said</b> {update.message.text}", parse_mode="HTML"
        )

    application = botapi.builder().build()
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with polling(application):
        sent = await botapi.say(RESIDENT.user_id, "hello there")
        replies = await botapi.bot_messages(RESIDENT.user_id)

    assert sent["from"] == "user"
    assert seen[0].effective_user is not None
    assert seen[0].effective_user.id == RESIDENT.user_id
    assert seen[0].effective_user.language_code == "zh"
    assert replies[0]["text"] == "You said hello there"
    assert replies[0]["entities"] == [{"type": "bold", "offset": 0, "length": 8}]
    # Confirmed updates are gone: nothing is delivered twice.
    assert botapi.state.updates == []


async def test_commands_carry_their_entity_and_deep_link_argument(botapi: LiveBotApi) -> None:
    arguments: list[list[str]] = []

    async def start(update: Update, context: Context) -> None:
        arguments.append(list(context.args or []))
        assert update.message is not None
        await update.message.reply_text("welcome")

    application = botapi.builder().build()
    application.add_handler(CommandHandler("start", start))
    async with polling(application):
        await botapi.say(MANAGER.user_id, "/start inv-42")
        await botapi.bot_messages(MANAGER.user_id)

    assert arguments == [["inv-42"]]


async def test_inline_button_round_trip_edits_in_place_and_toasts(botapi: LiveBotApi) -> None:
    async def start(update: Update, context: Context) -> None:
        assert update.message is not None
        keyboard = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton("Accept", callback_data="task:accept:7")],
                [InlineKeyboardButton("Docs", url="https://example.org/help")],
            ]
        )
        await update.message.reply_text("Task 7 is waiting", reply_markup=keyboard)

    async def pressed(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        assert query.data == "task:accept:7"
        await query.answer("Accepted", show_alert=False)
        await query.edit_message_text("Task 7 accepted")

    application = botapi.builder().build()
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(pressed, pattern=r"^task:"))
    async with polling(application):
        await botapi.say(MANAGER.user_id, "/start")
        [menu] = await botapi.bot_messages(MANAGER.user_id)
        assert menu["buttons"] == [
            [{"text": "Accept", "callback_data": "task:accept:7"}],
            [{"text": "Docs", "url": "https://example.org/help"}],
        ]
        press = await botapi.http.post(
            f"/api/chats/{MANAGER.user_id}/callbacks",
            json={"message_id": menu["message_id"], "data": "task:accept:7"},
        )
        assert press.status_code == 200

        async def edited() -> Any:
            bot_side = await botapi.bot_messages(MANAGER.user_id)
            return bot_side[0]["edited"] and bot_side

        [after] = await botapi.wait_for(edited)

    assert after["message_id"] == menu["message_id"]
    assert after["text"] == "Task 7 accepted"
    # editMessageText without reply_markup drops the keyboard, as on Telegram.
    assert after["buttons"] == []
    chat = (await botapi.http.get(f"/api/chats/{MANAGER.user_id}")).json()
    assert chat["toasts"] == [{"seq": 1, "text": "Accepted", "show_alert": False}]


async def test_a_press_on_data_that_is_not_on_the_keyboard_is_refused(
    botapi: LiveBotApi,
) -> None:
    async with botapi.bot() as bot:
        message = await bot.send_message(
            RESIDENT.user_id,
            "Pick",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]]),
        )
    forged = await botapi.http.post(
        f"/api/chats/{RESIDENT.user_id}/callbacks",
        json={"message_id": message.message_id, "data": "admin:delete-all"},
    )
    missing = await botapi.http.post(
        f"/api/chats/{RESIDENT.user_id}/callbacks", json={"message_id": 999, "data": "a"}
    )
    assert forged.status_code == 400
    assert missing.status_code == 404
    assert botapi.state.updates == []


async def test_a_page_photo_reaches_the_bot_which_downloads_it(botapi: LiveBotApi) -> None:
    original = png_bytes()
    downloaded: list[bytes] = []

    async def photo(update: Update, context: Context) -> None:
        assert update.message is not None
        largest = update.message.photo[-1]
        assert (largest.width, largest.height) == (120, 80)
        assert update.message.caption == "leaking tap"
        file = await largest.get_file()
        downloaded.append(bytes(await file.download_as_bytearray()))
        await update.message.reply_text("Got your photo")

    application = botapi.builder().build()
    application.add_handler(MessageHandler(filters.PHOTO, photo))
    async with polling(application):
        response = await botapi.http.post(
            f"/api/chats/{RESIDENT.user_id}/messages",
            files={"photo": ("tap.png", original, "image/png")},
            data={"caption": "leaking tap"},
        )
        assert response.status_code == 200
        await botapi.bot_messages(RESIDENT.user_id)

    assert downloaded == [original]
    shown = (await botapi.messages(RESIDENT.user_id))[0]
    assert shown["caption"] == "leaking tap"
    page_copy = await botapi.http.get(shown["photo"])
    assert page_copy.content == original


async def test_bot_photo_upload_shows_as_a_url_and_can_be_resent_by_file_id(
    botapi: LiveBotApi,
) -> None:
    image = png_bytes(300, 200, "orange")
    async with botapi.bot() as bot:
        first = await bot.send_photo(RESIDENT.user_id, image, caption="Your gym QR")
        again = await bot.send_photo(MANAGER.user_id, first.photo[-1].file_id)

    assert [(p.width, p.height) for p in first.photo] == [(90, 60), (300, 200)]
    assert again.photo[-1].file_id == first.photo[-1].file_id
    [shown] = await botapi.messages(RESIDENT.user_id)
    assert shown["caption"] == "Your gym QR"
    assert (await botapi.http.get(shown["photo"])).content == image


@pytest.mark.telegram_refusals("wrong file identifier", "bad webhook")
async def test_send_photo_by_url_fetches_loopback_only(botapi: LiveBotApi) -> None:
    image = png_bytes(50, 50)
    response = await botapi.http.post(
        f"/api/chats/{RESIDENT.user_id}/messages",
        files={"photo": ("p.png", image, "image/png")},
    )
    local_url = botapi.url + response.json()["photo"]
    async with botapi.bot() as bot:
        sent = await bot.send_photo(MANAGER.user_id, local_url)
        with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/HTTP URL specified"):
            await bot.send_photo(MANAGER.user_id, "https://example.org/cat.jpg")
    assert sent.photo[-1].width == 50


async def test_reply_keyboard_shares_the_contact_and_goes_away(botapi: LiveBotApi) -> None:
    contacts: list[Any] = []

    async def ask(update: Update, context: Context) -> None:
        assert update.message is not None
        keyboard = ReplyKeyboardMarkup(
            [[KeyboardButton("Share my number", request_contact=True)], ["Type it instead"]],
            one_time_keyboard=True,
            resize_keyboard=True,
        )
        await update.message.reply_text("How can the technician reach you?", reply_markup=keyboard)

    async def contact(update: Update, context: Context) -> None:
        assert update.message is not None
        contacts.append(update.message.contact)
        await update.message.reply_text("Thanks", reply_markup=ReplyKeyboardRemove())

    application = botapi.builder().build()
    application.add_handler(CommandHandler("start", ask))
    application.add_handler(MessageHandler(filters.CONTACT, contact))
    async with polling(application):
        await botapi.say(RESIDENT.user_id, "/start")
        [question] = await botapi.bot_messages(RESIDENT.user_id)
        chat = (await botapi.http.get(f"/api/chats/{RESIDENT.user_id}")).json()
        assert chat["reply_keyboard"]["keyboard"][0][0] == {
            "text": "Share my number",
            "request_contact": True,
        }
        assert question["reply_keyboard"]["one_time_keyboard"] is True
        shared = await botapi.http.post(
            f"/api/chats/{RESIDENT.user_id}/messages", json={"contact": {}}
        )
        assert shared.status_code == 200
        await botapi.bot_messages(RESIDENT.user_id, 2)

    assert contacts[0].user_id == RESIDENT.user_id
    assert contacts[0].phone_number == RESIDENT.phone
    chat = (await botapi.http.get(f"/api/chats/{RESIDENT.user_id}")).json()
    assert chat["reply_keyboard"] is None


async def test_typing_shows_until_the_bot_speaks(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        await bot.send_chat_action(RESIDENT.user_id, ChatAction.TYPING)
        typing = (await botapi.http.get(f"/api/chats/{RESIDENT.user_id}")).json()
        await bot.send_message(RESIDENT.user_id, "Done")
        after = (await botapi.http.get(f"/api/chats/{RESIDENT.user_id}")).json()
    assert typing["typing"] is True
    assert 0 < typing["typing_for"] <= 5
    assert after["typing"] is False
