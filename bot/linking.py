"""Linking a resident's Akubela account: login link, callback, encrypted tokens, residences.

The login link carries an OAuth `state` that is encrypted and authenticated (Fernet, keyed from
SECRET_KEY), expires, names the Telegram user it was made for, and may be used once (its nonce
has a row that the callback claims). The callback exchanges the code and reads the account and
its residences, then links nothing yet: its page names both sides ("Akubela account alice@...
→ Telegram Alice Chen") and asks to confirm, so someone who completes another person's login
link sees whose Telegram they would hand their account to. The confirmation is a POST carrying
a token of its own (encrypted, expiring, single-use like the state); only then are the tokens
stored, encrypted, and the user told in Telegram, and so is any other Telegram user the same
Akubela account was already linked to.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from api.akubela import AkubelaClient, AkubelaTokens
from api.akubela_models import Family
from api.errors import ApiError
from bot.crypto import TokenCipher, derive_fernet
from bot.storage.accounts import Accounts, StoredTokens
from bot.storage.oauth_states import OAuthStates
from bot.storage.repositories import Users
from bot.tokens import TokenHolders, stored_tokens
from bot.web import OAUTH_CALLBACK_PATH, CallbackPage
from conversations.domain import Linked, Residence
from conversations.i18n import N_

logger = logging.getLogger(__name__)

_STATE_SALT = b"concierge/oauth-state/v1"
_STATE_INFO = b"fernet key for OAuth state"
_CONFIRM_SALT = b"concierge/oauth-confirm/v1"
_CONFIRM_INFO = b"fernet key for link confirmations"

PAGE_EXPIRED = N_(
    "This login link has expired or was already used. Send /start in Telegram for a new one."
)
PAGE_DECLINED = N_(
    "The login was cancelled. Send /start in Telegram whenever you want to try again."
)
PAGE_VENDOR_FAILED = N_(
    "Akubela did not complete the login. Please try again in a moment with /start in Telegram."
)
PAGE_CONFIRM = N_(
    "Link the Akubela account {email} to the Telegram account {name}? Confirm only if that "
    "Telegram account is yours."
)
PAGE_LINKED_BOTH = N_(
    "The Akubela account {email} is now linked to the Telegram account {name}. "
    "You can go back to Telegram now."
)
PAGE_NOT_LINKED = N_("Nothing was linked. You can close this page.")


Notify = Callable[[Linked], Awaitable[None]]


class Linker:
    """Hands out login links and completes them."""

    def __init__(
        self,
        *,
        oauth_states: OAuthStates,
        users: Users,
        accounts: Accounts,
        akubela: AkubelaClient,
        tokens: TokenHolders,
        cipher: TokenCipher,
        secret_key: str,
        public_base_url: str,
        state_ttl_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._oauth_states = oauth_states
        self._users = users
        self._accounts = accounts
        self._akubela = akubela
        self._tokens = tokens
        self._cipher = cipher
        self._state_fernet = derive_fernet(secret_key, salt=_STATE_SALT, info=_STATE_INFO)
        self._confirm_fernet = derive_fernet(secret_key, salt=_CONFIRM_SALT, info=_CONFIRM_INFO)
        self._redirect_uri = public_base_url.rstrip("/") + OAUTH_CALLBACK_PATH
        self._ttl = state_ttl_seconds
        self._clock = clock
        self._notify: Notify | None = None

    def on_linked(self, notify: Notify) -> None:
        """Sets how the user hears about a completed link (the bot sends a message)."""
        self._notify = notify

    async def login_url(self, telegram_id: int, *, resume: str | None = None) -> str:
        """A fresh, single-use login link for this Telegram user."""
        nonce = await self._new_nonce(telegram_id)
        state = self._seal(self._state_fernet, {"u": telegram_id, "n": nonce, "r": resume})
        return self._akubela.login_url(redirect_uri=self._redirect_uri, state=state)

    def _seal(self, fernet: Fernet, data: dict[str, Any]) -> str:
        """`data` encrypted, authenticated and stamped with the time, for a URL or a form."""
        payload = json.dumps(data, separators=(",", ":")).encode()
        return fernet.encrypt_at_time(payload, int(self._clock().timestamp())).decode("ascii")

    def _open(self, fernet: Fernet, token: str, strings: tuple[str, ...]) -> dict[str, Any] | None:
        """What `_seal` sealed, if it is ours, unexpired, names a user and has `strings`."""
        try:
            raw = fernet.decrypt_at_time(
                token.encode("ascii"), self._ttl, int(self._clock().timestamp())
            )
            data = json.loads(raw)
        except (InvalidToken, UnicodeError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), int):
            return None
        if not all(isinstance(data.get(key), str) for key in strings):
            return None
        return data

    async def _new_nonce(self, telegram_id: int) -> str:
        """A fresh single-use nonce with its row, for a login link or a confirmation."""
        nonce = secrets.token_urlsafe(24)
        await self._oauth_states.add(nonce, telegram_id, now=self._clock())
        return nonce

    async def _claim(self, nonce: str, telegram_id: int) -> bool:
        return await self._oauth_states.claim(nonce, telegram_id, now=self._clock())

    async def complete(
        self, code: str | None, state: str | None, error: str | None
    ) -> CallbackPage:
        """Finishes a login that came back to the callback; never raises to the browser."""
        if error:
            return CallbackPage(ok=False, message=PAGE_DECLINED)
        data = self._open(self._state_fernet, state, ("n",)) if state else None
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
        # Nothing is linked yet: the page names both sides and the person confirms.
        nonce = await self._new_nonce(telegram_id)
        pending = {
            "u": telegram_id,
            "n": nonce,
            "r": data.get("r") if isinstance(data.get("r"), str) else None,
            "a": account.account_id,
            "e": account.email or None,
            "f": [family.model_dump(mode="json") for family in families],
            "t": stored_tokens(self._cipher, auth.tokens or tokens).as_dict(),
        }
        token = self._seal(self._confirm_fernet, pending)
        return CallbackPage(
            ok=True,
            message=PAGE_CONFIRM,
            values={
                "email": account.email or account.account_id,
                "name": await self._name(telegram_id),
            },
            confirm_token=token,
        )

    async def _name(self, telegram_id: int) -> str:
        """How a Telegram user is named to people: their name in Telegram, else their id."""
        user = await self._users.get(telegram_id)
        return (user.display_name if user is not None else "") or f"#{telegram_id}"

    async def confirm(self, token: str | None, yes: bool) -> CallbackPage:
        """Links the account the callback page named, once, if the person said yes."""
        data = self._open(self._confirm_fernet, token, ("n", "a")) if token else None
        if data is None:
            logger.warning("link confirmation with a missing, forged or expired token refused")
            return CallbackPage(ok=False, message=PAGE_EXPIRED)
        telegram_id: int = data["u"]
        if not await self._claim(data["n"], telegram_id):
            logger.warning("link confirmation replay refused for user %s", telegram_id)
            return CallbackPage(ok=False, message=PAGE_EXPIRED)
        if not yes:
            logger.info("user %s's Akubela login was not confirmed; nothing linked", telegram_id)
            return CallbackPage(ok=True, message=PAGE_NOT_LINKED)
        account_id: str = data["a"]
        email = data.get("e") if isinstance(data.get("e"), str) else None
        families = [Family.model_validate(item) for item in data.get("f") or []]
        others = await self._accounts.holders_of(account_id)
        link = await self._accounts.link_resident(
            telegram_id,
            account_id=account_id,
            email=email,
            residences=[family.model_dump(mode="json") for family in families],
            tokens=StoredTokens.from_dict(data["t"]),
        )
        # Linked anew: the holder of the old tokens (if any) goes, and the next use makes one.
        self._tokens.forget(telegram_id)
        name = await self._name(telegram_id)
        logger.info(
            "user %s linked an Akubela account with %d residences", telegram_id, len(families)
        )
        if self._notify is not None:
            await self._notify(
                Linked(
                    telegram_id,
                    email or "",
                    [
                        Residence(f.residence_id, f.family_name, f.building_name, f.room_name)
                        for f in families
                    ],
                    link.residence_id,
                    data.get("r") if isinstance(data.get("r"), str) else None,
                    also_linked=tuple(other for other in others if other != telegram_id),
                    name=name,
                )
            )
        return CallbackPage(
            ok=True, message=PAGE_LINKED_BOTH, values={"email": email or account_id, "name": name}
        )
