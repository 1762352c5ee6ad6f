"""Users and their API keys.

A key is 32 random bytes (256 bits) in URL-safe base64 behind a recognisable prefix.
Only its SHA-256 is stored. A slow password hash would add nothing: the key is random,
not chosen by a person, so it cannot be guessed from a dictionary, and a fast hash
keeps authentication to one indexed look-up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime as DateTime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from segmenti import errors
from segmenti.db.tables import api_keys, dashboard_sessions, users
from segmenti.db.tenant import Tenant, across_tenants
from segmenti.timeutil import utcnow

KEY_PREFIX = "sgk_"


@dataclass(frozen=True)
class ApiKeyInfo:
    id: int
    user_id: int
    prefix: str
    datetime: DateTime
    revoked_at: DateTime | None


@dataclass(frozen=True)
class KeyOwner:
    """Who a live key belongs to: what a request authenticated by it acts as."""

    user_id: int
    key_id: int


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_user(session: Session, *, name: str) -> tuple[int, str]:
    """Creates a user and its first API key; returns (user_id, api_key)."""
    name = name.strip()
    if not name or len(name) > 256:
        raise errors.Invalid("name must be 1 to 256 characters", parameter="name")
    with across_tenants("creating a user: its id is not known before the insert"):
        user_id = session.execute(
            insert(users).values(name=name, datetime=utcnow()).returning(users.c.id)
        ).scalar_one()
    _key_id, api_key = create_key(session, user_id=user_id)
    return user_id, api_key


def user_exists(session: Session, *, user_id: int) -> bool:
    return session.execute(Tenant(user_id).select(users.c.id)).first() is not None


def has_users(session: Session) -> bool:
    with across_tenants("start-up: whether any user exists yet"):
        return session.execute(select(users.c.id).limit(1)).first() is not None


def create_key(session: Session, *, user_id: int) -> tuple[int, str]:
    """Makes a new key for the user; the key is returned once and never stored."""
    if not user_exists(session, user_id=user_id):
        raise errors.NotFound(f"user {user_id} does not exist", parameter="user_id")
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = session.execute(
        Tenant(user_id)
        .insert(api_keys)
        .values(
            prefix=api_key[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(api_key),
            datetime=utcnow(),
        )
        .returning(api_keys.c.id)
    ).scalar_one()
    return key_id, api_key


def list_keys(session: Session, *, user_id: int) -> list[ApiKeyInfo]:
    rows = session.execute(
        Tenant(user_id)
        .select(
            api_keys.c.id,
            api_keys.c.user_id,
            api_keys.c.prefix,
            api_keys.c.datetime,
            api_keys.c.revoked_at,
        )
        .order_by(api_keys.c.id)
    ).all()
    return [ApiKeyInfo(*row) for row in rows]


def revoke_key(session: Session, *, key_id: int) -> None:
    """Revokes the key and ends the dashboard sessions signed in with it."""
    with across_tenants("an operator revokes a key by its id, whoever's it is"):
        user_id = session.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .returning(api_keys.c.user_id)
        ).scalar_one_or_none()
        if user_id is None:
            exists = session.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
            if exists is None:
                raise errors.NotFound(f"API key {key_id} does not exist", parameter="key_id")
            return
    session.execute(
        Tenant(user_id).delete(dashboard_sessions).where(dashboard_sessions.c.api_key_id == key_id)
    )


def authenticate(session: Session, authorization: str | None) -> int:
    """Resolves an `Authorization: Bearer <key>` header to its user's id, or raises."""
    return identify_key(session, authorization).user_id


def identify_key(session: Session, authorization: str | None) -> KeyOwner:
    """Resolves an `Authorization: Bearer <key>` header to its live key and user, or
    raises Unauthorized. The scheme is matched in any case and spaces around the scheme
    and the key are ignored: every such spelling is the same key."""
    if not authorization:
        raise errors.Unauthorized("missing Authorization header: use 'Bearer <api_key>'")
    scheme, _, api_key = authorization.strip().partition(" ")
    api_key = api_key.strip()
    if scheme.lower() != "bearer" or not api_key:
        raise errors.Unauthorized("malformed Authorization header: use 'Bearer <api_key>'")
    digest = hash_key(api_key)
    with across_tenants("a request's key is what says which user it is: found by its hash"):
        row = session.execute(
            select(
                api_keys.c.id, api_keys.c.user_id, api_keys.c.key_hash, api_keys.c.revoked_at
            ).where(api_keys.c.key_hash == digest)
        ).first()
    # The look-up is by hash, so its timing says nothing about the key; the comparison
    # is constant-time all the same, so no code path compares secrets byte by byte.
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at:
        raise errors.Unauthorized("unknown or revoked API key")
    return KeyOwner(user_id=int(row.user_id), key_id=int(row.id))
