"""Signing secrets: made random, shown once, stored encrypted (Fernet: AES-128-CBC with
HMAC-SHA256, from the `cryptography` package) with a key that is not in the database."""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from segmenti.keyfile import persisted_key
from segmenti.settings import Settings

PREFIX = "whsec_"
KEY_FILE_NAME = "webhook_key"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key a secret stands for (its base64 part, decoded)."""
    return base64.b64decode(secret.removeprefix(PREFIX))


class Box:
    """Encrypts and decrypts secrets with the settings' key."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise ValueError(
                "SEGMENTI_WEBHOOK_ENCRYPTION_KEY must be a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a webhook secret cannot be decrypted with this key (was "
                "SEGMENTI_WEBHOOK_ENCRYPTION_KEY or the webhook_key file changed?)"
            ) from None


def box(settings: Settings) -> Box:
    """The settings' key, or the one kept beside the database (made on first use)."""
    if settings.webhook_encryption_key:
        return _box(settings.webhook_encryption_key)
    path = settings.data_folder() / KEY_FILE_NAME
    return _box(persisted_key(path, lambda: Fernet.generate_key().decode()))


@lru_cache(maxsize=8)
def _box(key: str) -> Box:
    return Box(key)
