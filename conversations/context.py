"""The typed context every handler receives: services and the user's language, never globals."""

from __future__ import annotations

from typing import Any, Self
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import Application, CallbackContext, ExtBot

from conversations.community import Community
from conversations.i18n import pick_language, tr
from conversations.ports import Announcer, OwnWrite, Ports
from conversations.validation import read_zone

SERVICES_KEY = "services"
ANNOUNCER_KEY = "alert_watcher"
LANGUAGE_KEY = "lang"
TIME_ZONE_KEY = "tz"


class ConciergeContext(
    CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
):
    """PTB's context plus `.services` (the ports) and `.lang`."""

    telegram_language: str | None = None
    user_id: int | None = None
    # The user's community, read once per update (`community()`); None until then.
    _community: Community | None = None

    @classmethod
    def from_update(
        cls,
        update: object,
        application: Application[Any, Any, Any, Any, Any, Any],
    ) -> Self:
        context = super().from_update(update, application)
        if isinstance(update, Update) and update.effective_user is not None:
            context.telegram_language = update.effective_user.language_code
            context.user_id = update.effective_user.id
        return context

    @property
    def services(self) -> Ports:
        """The ports the bot opened at start (`bot.services.Services` provides them)."""
        services: Ports = self.bot_data[SERVICES_KEY]
        return services

    async def announce(self, write: OwnWrite) -> int:
        """Tells the people the bot's write concerns, now; how many alerts that made."""
        announcer: Announcer | None = self.bot_data.get(ANNOUNCER_KEY)
        if announcer is None:
            return 0
        return await announcer.announce(self.application, write)

    @property
    def lang(self) -> str:
        """The user's language: their own choice, else their Telegram client's."""
        chosen = self.user_data.get(LANGUAGE_KEY) if self.user_data is not None else None
        return pick_language(chosen, self.telegram_language)

    @property
    def zone(self) -> ZoneInfo:
        """The user's time zone: their own choice (/timezone), else the community's."""
        chosen = self.user_data.get(TIME_ZONE_KEY) if self.user_data is not None else None
        zone = read_zone(chosen) if isinstance(chosen, str) else None
        if zone is not None:
            return zone
        return self.resolved_community.zone

    @property
    def resolved_community(self) -> Community:
        """The user's community as read this update (`remember_user` reads it before any
        flow), else the deployment's first (a job with no user)."""
        return self._community or self.services.communities()[0]

    async def community(self) -> Community:
        """The user's community (a resident's: that of the residence they act for), read once
        per update; `zone` follows it from then on."""
        if self._community is None:
            if self.user_id is None:
                self._community = self.services.communities()[0]
            else:
                self._community = await self.services.community_of(self.user_id)
        return self._community

    def t(self, message: str, /, **values: Any) -> str:
        """`message` in the user's language."""
        return tr(self.lang, message, **values)


# The running bot: its bot, this context and the three dicts of user, chat and bot data; the
# job queue is PTB's default one. Named here, beside the context it names, so the flows can
# be handed the application typed (bot/app_type.py gives the same name to the wiring).
ConciergeApp = Application[
    ExtBot[None],
    ConciergeContext,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    Any,
]
