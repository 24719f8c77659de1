"""Installation records (bot and user tokens, refresh tokens) are encrypted at rest with Fernet
(https://cryptography.io/en/latest/fernet/): AES-128-CBC with an HMAC-SHA256, a timestamp and a version byte.

TOKEN_ENCRYPTION_KEY holds one or more keys, comma-separated: the first encrypts, every one decrypts (MultiFernet),
so a key is rotated by putting a new one first and dropping the old one once every record was rewritten.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Every Fernet token starts with version byte 0x80, "gAAAAA" in URL-safe base64; a stored JSON record with "{".
_FERNET_PREFIX = "gAAAAA"


class UndecryptableRecord(Exception):
    """A stored record none of the configured keys opens: a key was dropped too soon, or the record was altered."""


class TokenCipher:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("needs at least one Fernet key")
        self._fernets = [Fernet(key) for key in keys]
        self._all = MultiFernet(self._fernets)

    @classmethod
    def from_setting(cls, value: str) -> TokenCipher:
        """Comma-separated keys, as `Fernet.generate_key()` makes them; the error message never repeats a key."""
        keys = [part.strip().encode() for part in value.split(",") if part.strip()]
        try:
            return cls(keys)
        except ValueError:
            raise ValueError(
                "must be one or more comma-separated Fernet keys (32 url-safe base64-encoded bytes each)"
            ) from None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plain: str) -> str:
        return self._fernets[0].encrypt(plain.encode()).decode()

    def decrypt(self, stored: str) -> tuple[str, bool]:
        """(the plain record, whether it should be rewritten): a legacy plain-JSON record, or one sealed with an
        older key, is returned as is and flagged, so the store re-encrypts it with the current key."""
        if not stored.startswith(_FERNET_PREFIX):
            return stored, True
        token = stored.encode()
        try:
            return self._fernets[0].decrypt(token).decode(), False
        except InvalidToken:
            pass
        try:
            return self._all.decrypt(token).decode(), True
        except InvalidToken:
            raise UndecryptableRecord("no configured TOKEN_ENCRYPTION_KEY opens this record") from None
