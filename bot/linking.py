"""Linking a resident's Akubela account: login link, callback, encrypted tokens, residences.

The login link carries an OAuth `state` that is encrypted and authenticated (Fernet, keyed from
SECRET_KEY), expires, names the Telegram user it was made for, and may be used once (its nonce
has a row that the callback claims). The callback exchanges the code, reads the account and its
residences, stores the tokens encrypted, and tells the user in Telegram.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.akubela import AkubelaClient, AkubelaTokens
from api.akubela_models import Family
from api.errors import ApiError
from bot.crypto import TokenCipher, derive_fernet
from bot.storage.accounts import Accounts
from bot.storage.db import upsert
from bot.storage.models import OAuthState, TelegramUser
from bot.tokens import TokenHolders, stored_tokens
from bot.web import OAUTH_CALLBACK_PATH, CallbackPage
from conversations.i18n import N_

logger = logging.getLogger(__name__)

_STATE_SALT = b"concierge/oauth-state/v1"
_STATE_INFO = b"fernet key for OAuth state"

PAGE_LINKED = N_("Your Akubela account is linked. You can go back to Telegram now.")
PAGE_EXPIRED = N_(
    "This login link has expired or was already used. Send /start in Telegram for a new one."
)
PAGE_DECLINED = N_(
    "The login was cancelled. Send /start in Telegram whenever you want to try again."
)
PAGE_VENDOR_FAILED = N_(
    "Akubela did not complete the login. Please try again in a moment with /start in Telegram."
)


@dataclass(frozen=True, slots=True)
class Linked:
    """What the bot tells the user after a successful link."""

    telegram_id: int
    email: str
    residences: list[Family]
    chosen_residence_id: str | None
    resume: str | None  # the job the user wanted before linking, to bring them back to it


Notify = Callable[[Linked], Awaitable[None]]


def residence_label(residence: dict[str, Any] | Family) -> str:
    """A residence in words: family, building and room, as far as the vendor told us."""
    data = residence.model_dump() if isinstance(residence, Family) else residence
    parts = [str(data.get(key) or "") for key in ("family_name", "building_name", "room_name")]
    return " · ".join(part for part in parts if part) or str(data.get("residence_id", ""))


class Linker:
    """Hands out login links and completes them."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        accounts: Accounts,
        akubela: AkubelaClient,
        tokens: TokenHolders,
        cipher: TokenCipher,
        secret_key: str,
        public_base_url: str,
        state_ttl_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._akubela = akubela
        self._tokens = tokens
        self._cipher = cipher
        self._state_fernet = derive_fernet(secret_key, salt=_STATE_SALT, info=_STATE_INFO)
        self._redirect_uri = public_base_url.rstrip("/") + OAUTH_CALLBACK_PATH
        self._ttl = state_ttl_seconds
        self._clock = clock
        self._notify: Notify | None = None

    def on_linked(self, notify: Notify) -> None:
        """Sets how the user hears about a completed link (the bot sends a message)."""
        self._notify = notify

    async def login_url(self, telegram_id: int, *, resume: str | None = None) -> str:
        """A fresh, single-use login link for this Telegram user."""
        nonce = secrets.token_urlsafe(24)
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            await session.execute(
                upsert(
                    dialect,
                    TelegramUser,
                    {"telegram_id": telegram_id},
                    key=["telegram_id"],
                    update=[],
                )
            )
            session.add(OAuthState(nonce=nonce, telegram_id=telegram_id, created_at=self._clock()))
        payload = json.dumps({"u": telegram_id, "n": nonce, "r": resume}, separators=(",", ":"))
        state = self._state_fernet.encrypt_at_time(
            payload.encode(), int(self._clock().timestamp())
        ).decode("ascii")
        return self._akubela.login_url(redirect_uri=self._redirect_uri, state=state)

    def _read_state(self, state: str) -> dict[str, Any] | None:
        try:
            raw = self._state_fernet.decrypt_at_time(
                state.encode("ascii"), self._ttl, int(self._clock().timestamp())
            )
            data = json.loads(raw)
        except (InvalidToken, UnicodeError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), int):
            return None
        if not isinstance(data.get("n"), str):
            return None
        return data

    async def _claim(self, nonce: str, telegram_id: int) -> bool:
        async with self._sessions.begin() as session:
            claimed = await session.execute(
                update(OAuthState)
                .where(
                    OAuthState.nonce == nonce,
                    OAuthState.telegram_id == telegram_id,
                    OAuthState.used_at.is_(None),
                )
                .values(used_at=self._clock())
            )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    async def complete(
        self, code: str | None, state: str | None, error: str | None
    ) -> CallbackPage:
        """Finishes a login that came back to the callback; never raises to the browser."""
        if error:
            return CallbackPage(ok=False, message=PAGE_DECLINED)
        data = self._read_state(state) if state else None
        if data is None or not code:
            logger.warning("OAuth callback with a missing, forged or expired state refused")
            return CallbackPage(ok=False, message=PAGE_EXPIRED)
        telegram_id: int = data["u"]
        if not await self._claim(data["n"], telegram_id):
            logger.warning("OAuth state replay refused for user %s", telegram_id)
            return CallbackPage(ok=False, message=PAGE_EXPIRED)
        try:
            tokens = await self._akubela.exchange_code(code, redirect_uri=self._redirect_uri)
            auth = AkubelaTokens(self._akubela, tokens)
            account = await self._akubela.get_account_info(auth)
            families = await self._akubela.get_family_list(auth)
        except ApiError as exc:
            logger.warning("Akubela login for user %s failed: %s", telegram_id, exc)
            return CallbackPage(ok=False, message=PAGE_VENDOR_FAILED)
        link = await self._accounts.link_resident(
            telegram_id,
            account_id=account.account_id,
            email=account.email or None,
            residences=[family.model_dump(mode="json") for family in families],
            tokens=stored_tokens(self._cipher, auth.tokens or tokens),
        )
        # Linked anew: the holder of the old tokens (if any) goes, and the next use makes one.
        self._tokens.forget(telegram_id)
        logger.info(
            "user %s linked an Akubela account with %d residences", telegram_id, len(families)
        )
        if self._notify is not None:
            resume = data.get("r") if isinstance(data.get("r"), str) else None
            await self._notify(
                Linked(telegram_id, account.email, families, link.residence_id, resume)
            )
        return CallbackPage(ok=True, message=PAGE_LINKED)
