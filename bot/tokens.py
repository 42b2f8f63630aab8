"""One Akubela token holder per linked resident account, per process.

Every desk, the alert watcher, the outbox and a manager's sweep reach a resident's account
through the one `AkubelaTokens` this registry keeps for it, so in a process their calls share
one renewal. Between processes the holders share the account's row: each renewal reads the
stored tokens under a row lock (`Accounts.locked_tokens`), uses tokens another process has
already renewed, and writes its own back before the lock is released, so a single-use refresh
token is spent once.

When Akubela no longer takes the refresh token (it was spent by a refresh whose answer was
lost), the row is marked, once: the resident is asked to link again, desks for the account are
no longer handed out (so the watcher stops polling it), and linking again clears the mark.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from api.akubela import AkubelaClient, AkubelaTokens, TokenSlot
from api.akubela_models import TokenSet
from api.errors import AuthError
from api.redaction import secrets_filter
from bot.crypto import TokenCipher
from bot.storage.accounts import Accounts, LockedTokens, StoredTokens
from bot.storage.models import ResidentLink
from conversations.i18n import N_

logger = logging.getLogger(__name__)

MSG_LINK_AGAIN = N_(
    "Akubela no longer accepts the bot's access to your account, so I cannot show your "
    "repairs and bookings or tell you about them for now. Please link your Akubela account "
    "again: send /start."
)

OnLost = Callable[[int], Awaitable[None]]


def stored_tokens(cipher: TokenCipher, tokens: TokenSet) -> StoredTokens:
    """Tokens as kept at rest: encrypted."""
    refresh = tokens.refresh_token
    return StoredTokens(
        access_token_encrypted=cipher.encrypt(tokens.access_token.get_secret_value()),
        refresh_token_encrypted=(
            cipher.encrypt(refresh.get_secret_value()) if refresh is not None else None
        ),
        expires_at=tokens.expires_at,
    )


def token_set(cipher: TokenCipher, stored: StoredTokens | None) -> TokenSet | None:
    """Tokens as used, from what is kept at rest."""
    if stored is None:
        return None
    refresh = stored.refresh_token_encrypted
    return TokenSet.model_validate(
        {
            "access_token": cipher.decrypt(stored.access_token_encrypted),
            "refresh_token": cipher.decrypt(refresh) if refresh else None,
            "expires_at": stored.expires_at,
        }
    )


class _RowSlot:
    """A `TokenSlot` over the resident's locked row."""

    def __init__(
        self, locked: LockedTokens, cipher: TokenCipher, clock: Callable[[], datetime]
    ) -> None:
        self._locked = locked
        self._cipher = cipher
        self._clock = clock
        self.tokens = token_set(cipher, locked.stored)
        self.newly_lost = False

    async def save(self, tokens: TokenSet) -> None:
        self._locked.save(stored_tokens(self._cipher, tokens))

    async def lose(self, error: AuthError) -> None:
        logger.warning("an Akubela login can no longer be renewed: %s", error)
        self.newly_lost = self._locked.require_relink(self._clock())


class _AccountStore:
    """The `TokenStore` of one resident: their row in `resident_links`."""

    def __init__(self, registry: TokenHolders, telegram_id: int) -> None:
        self._registry = registry
        self._telegram_id = telegram_id

    @asynccontextmanager
    async def renewing(self) -> AsyncIterator[TokenSlot]:
        registry = self._registry
        slot: _RowSlot | None = None
        try:
            async with registry.accounts.locked_tokens(self._telegram_id) as locked:
                if locked is None:
                    raise AuthError("the Akubela account is no longer linked", vendor="akubela")
                if locked.relink_required:
                    raise AuthError(
                        "Akubela lost this login; the account must be linked again",
                        vendor="akubela",
                    )
                slot = _RowSlot(locked, registry.cipher, registry.clock)
                yield slot
        finally:
            # After the row is written and unlocked: the mark is kept before anyone is told.
            if slot is not None and slot.newly_lost:
                await registry.lost(self._telegram_id)


@dataclass(frozen=True, slots=True)
class _Held:
    holder: AkubelaTokens
    account_id: str


class TokenHolders:
    """The registry: the token holder of each linked resident account, made on first use."""

    def __init__(
        self,
        *,
        accounts: Accounts,
        akubela: AkubelaClient,
        cipher: TokenCipher,
        clock: Callable[[], datetime],
    ) -> None:
        self.accounts = accounts
        self.cipher = cipher
        self.clock = clock
        self._akubela = akubela
        self._held: dict[int, _Held] = {}
        self._on_lost: OnLost | None = None

    def __len__(self) -> int:
        return len(self._held)

    def on_lost(self, hook: OnLost) -> None:
        """Sets how a resident whose login was lost is asked to link again (a message)."""
        self._on_lost = hook

    def holder(self, link: ResidentLink) -> AkubelaTokens | None:
        """The account's one holder; None when the link has no tokens or its login was lost."""
        telegram_id = link.telegram_id
        held = self._held.get(telegram_id)
        if link.relink_required_at is not None or link.access_token_encrypted is None:
            self.forget(telegram_id)
            return None
        # Same account: the same holder, even if another process renewed or relinked (the
        # holder reads the row before renewing). Another account: a new holder.
        if held is not None and held.account_id == link.akubela_account_id:
            return held.holder
        tokens = token_set(
            self.cipher,
            StoredTokens(
                access_token_encrypted=link.access_token_encrypted,
                refresh_token_encrypted=link.refresh_token_encrypted,
                expires_at=link.token_expires_at or self.clock(),
            ),
        )
        holder = AkubelaTokens(
            self._akubela, tokens, store=_AccountStore(self, telegram_id), clock=self.clock
        )
        self._held[telegram_id] = _Held(holder, link.akubela_account_id)
        return holder

    def forget(self, telegram_id: int) -> None:
        """Drops the account's holder (unlinked, linked anew, or its login lost)."""
        held = self._held.pop(telegram_id, None)
        tokens = held.holder.tokens if held is not None else None
        if tokens is not None and tokens.refresh_token is not None:
            # No longer ours to keep out of the logs: the bot holds it no more.
            secrets_filter.discard(tokens.refresh_token.get_secret_value())

    async def lost(self, telegram_id: int) -> None:
        """The account's login was lost just now: its holder goes, and the resident is asked
        to link again (this runs once per loss, under the row's mark)."""
        self.forget(telegram_id)
        if self._on_lost is None:
            return
        try:
            await self._on_lost(telegram_id)
        except Exception:
            # The mark is kept whatever happens here; /start still offers the login.
            logger.exception("could not ask user %s to link again", telegram_id)
