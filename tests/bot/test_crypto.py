"""Tokens are encrypted at rest and readable only with the same SECRET_KEY."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.crypto import TokenCipher, TokenDecryptError
from bot.storage.models import ResidentLink, TelegramUser

KEY = "a-private-secret-key-of-more-than-32-chars"
ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.plain-access-token-0123456789"
REFRESH_TOKEN = "plain-refresh-token-9876543210"


def test_a_token_round_trips() -> None:
    cipher = TokenCipher(KEY)

    stored = cipher.encrypt(ACCESS_TOKEN)

    assert ACCESS_TOKEN not in stored
    assert stored.isascii()
    assert cipher.decrypt(stored) == ACCESS_TOKEN
    # The same key, given as the setting's SecretStr, reads it too.
    assert TokenCipher(SecretStr(KEY)).decrypt(stored) == ACCESS_TOKEN


def test_encrypting_twice_gives_different_text() -> None:
    cipher = TokenCipher(KEY)

    assert cipher.encrypt(ACCESS_TOKEN) != cipher.encrypt(ACCESS_TOKEN)


def test_another_key_cannot_read_it_and_says_why() -> None:
    stored = TokenCipher(KEY).encrypt(ACCESS_TOKEN)

    with pytest.raises(TokenDecryptError, match="SECRET_KEY changed") as caught:
        TokenCipher(KEY + "-rotated").decrypt(stored)
    assert stored not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("damaged", ["", "not-a-token", "ünïcode"])
def test_damaged_values_are_refused(damaged: str) -> None:
    with pytest.raises(TokenDecryptError):
        TokenCipher(KEY).decrypt(damaged)


def test_the_key_never_shows() -> None:
    cipher = TokenCipher(KEY)

    assert KEY not in repr(cipher)
    with pytest.raises(ValueError, match="empty"):
        TokenCipher("")


async def test_the_database_row_holds_no_plain_token(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cipher = TokenCipher(KEY)
    async with sessions() as session:
        session.add(TelegramUser(telegram_id=7))
        await session.flush()
        session.add(
            ResidentLink(
                telegram_id=7,
                akubela_account_id="acc-1",
                residences=[{"id": "f-1", "name": "Tower A 1201"}],
                access_token_encrypted=cipher.encrypt(ACCESS_TOKEN),
                refresh_token_encrypted=cipher.encrypt(REFRESH_TOKEN),
            )
        )
        await session.commit()

    async with sessions() as session:
        raw = (await session.execute(text("SELECT * FROM resident_links"))).one()
        link = await session.get_one(ResidentLink, 7)
    row_text = " ".join(str(value) for value in raw)
    assert ACCESS_TOKEN not in row_text
    assert REFRESH_TOKEN not in row_text
    assert link.access_token_encrypted is not None
    assert cipher.decrypt(link.access_token_encrypted) == ACCESS_TOKEN
