"""Encryption at rest for vendor tokens: Fernet with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

# Fixed labels: changing either changes the key and makes every stored token unreadable.
_SALT = b"concierge/token-cipher/v1"
_INFO = b"fernet key for vendor tokens at rest"


def derive_fernet(secret: str, *, salt: bytes, info: bytes) -> Fernet:
    """A Fernet keyed by HKDF-SHA256 of `secret`, separated by purpose through salt and info."""
    if not secret:
        raise ValueError("an empty SECRET_KEY cannot protect anything")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class TokenDecryptError(Exception):
    """A stored token cannot be read: another SECRET_KEY encrypted it, or it is damaged."""


class TokenCipher:
    """Encrypts and decrypts vendor tokens for the database."""

    __slots__ = ("_fernet",)

    def __init__(self, secret_key: str | SecretStr) -> None:
        secret = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
        self._fernet = derive_fernet(secret, salt=_SALT, info=_INFO)

    def __repr__(self) -> str:
        return "TokenCipher(<key hidden>)"

    def encrypt(self, plain: str) -> str:
        """The token encrypted and authenticated, as ASCII text for a database column."""
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The plain token back; raises TokenDecryptError when it cannot be read."""
        try:
            return self._fernet.decrypt(stored.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            # `from None`: nothing of the stored value rides along into a traceback or log.
            raise TokenDecryptError(
                "stored token cannot be decrypted: SECRET_KEY changed or the value is damaged"
            ) from None
