"""Secrets at rest (provider credentials): Fernet (AES-128-CBC + HMAC-SHA256) under FIELD_ENCRYPTION_KEY.

Without FIELD_ENCRYPTION_KEY the key is derived from SECRET_KEY, so rotating SECRET_KEY makes stored credentials
unreadable: production sets FIELD_ENCRYPTION_KEY on its own (see docs/operations.md).
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_key_bytes(key)) for key in keys])


def _key_bytes(secret: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(secret.encode())
        if len(raw) == 32:
            return secret.encode()
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(f"kiwiwhale-fields:{secret}".encode()).digest())


def _keys() -> tuple[str, ...]:
    # The first key encrypts; all of them decrypt, so a key can be rotated by putting the new one first.
    configured = [key for key in settings.FIELD_ENCRYPTION_KEYS if key]
    return tuple(configured or [settings.SECRET_KEY])


def encrypt(plain: str) -> str:
    return _fernet(_keys()).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(_keys()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("A stored secret cannot be decrypted with the configured keys.") from exc
