"""A local Telegram Bot API server (as PTB uses it) with a web chat to talk to the bot."""

from sandbox.botapi.app import create_botapi_app
from sandbox.botapi.rules import Rules
from sandbox.botapi.state import BotApiError, BotApiState, Persona

__all__ = ["BotApiError", "BotApiState", "Persona", "Rules", "create_botapi_app"]
