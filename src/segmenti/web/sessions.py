"""Who is signed in to the dashboard, and the form token that guards every POST.

A session is a row of `dashboard_sessions`, named by the SHA-256 of a random token. The
token travels in starlette's signed cookie (itsdangerous, HttpOnly, SameSite=Lax), with
the user's id and a random CSRF token. Each page looks the row up by (user id, token
hash), its primary key, and checks that it has not expired and that the key used to
sign in is still live. Signing out deletes the row, so a copy of the cookie taken
before is worthless after; revoking a key deletes its sessions (auth.revoke_key).
A signed-in page also counts against its user's rate limit bucket (ratelimit.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import select

from segmenti import auth, errors, ratelimit
from segmenti.db.engine import Database
from segmenti.db.tables import api_keys, dashboard_sessions, users
from segmenti.db.tenant import Tenant
from segmenti.http import database
from segmenti.keyfile import persisted_key
from segmenti.settings import Settings
from segmenti.timeutil import utcnow

log = logging.getLogger("segmenti")

MIN_SECRET_LENGTH = 32
CSRF_FIELD = "csrf_token"
SECRET_FILE_NAME = "secret_key"  # noqa: S105 - a file name, not a secret

SESSION_DAYS = 14
"""A session's lifetime from sign-in: it then ends even if it was in use (and the cookie
that carries it lasts as long)."""
MAX_SESSIONS_PER_USER = 20
"""Signing in more often keeps the most recently seen sessions: a user's sessions are
bounded, whoever keeps signing in with the user's key."""
SEEN_EVERY = timedelta(minutes=10)
"""How stale last_seen_at may get: a page writes it at most this often per session, not
on every page view."""


class SignInRequired(Exception):
    """A dashboard page was asked for without a live session: answered by a redirect."""


class FormExpired(errors.SegmentiError):
    status = 403
    title = "Forbidden"


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a dashboard request."""

    user_id: int
    name: str


# -- the signing key ----------------------------------------------------------------


def secret_key(settings: Settings) -> str:
    """The configured key, or the one kept beside the database (made on first use)."""
    if settings.secret_key:
        if len(settings.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(f"SEGMENTI_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
        return settings.secret_key
    sqlite_file = settings.sqlite_path()
    folder = sqlite_file.parent if sqlite_file is not None else Path("var")
    if not settings.is_sqlite:
        log.warning(
            "SEGMENTI_SECRET_KEY is not set: using %s; set it when several hosts serve "
            "the dashboard",
            folder / SECRET_FILE_NAME,
        )
    return _persisted_secret(folder / SECRET_FILE_NAME)


def _persisted_secret(path: Path) -> str:
    persisted_key(path, lambda: secrets.token_urlsafe(48))
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds a key shorter than {MIN_SECRET_LENGTH} characters")
    return key


# -- signing in and out -------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _cookie_session(request: Request) -> tuple[int, str] | None:
    """The (user id, token hash) the cookie names, if it names one."""
    user_id, token = request.session.get("user_id"), request.session.get("session")
    if not isinstance(user_id, int) or not isinstance(token, str) or not token:
        return None
    return user_id, _token_hash(token)


def sign_in(request: Request, db: Database, api_key: str) -> None:
    """Checks the key as the API does (raises Unauthorized) and starts a new session,
    ending the one this browser had."""
    with db.read() as session:
        owner = auth.identify_key(session, f"Bearer {api_key}")
    token = secrets.token_urlsafe(32)
    id_hash, now = _token_hash(token), utcnow()
    previous = _cookie_session(request)
    rows, tenant = dashboard_sessions.c, Tenant(owner.user_id)
    with db.write() as session:
        if previous is not None:
            session.execute(
                Tenant(previous[0]).delete(dashboard_sessions).where(rows.id_hash == previous[1])
            )
        session.execute(tenant.delete(dashboard_sessions).where(rows.expires_at <= now))
        session.execute(
            tenant.insert(dashboard_sessions).values(
                id_hash=id_hash,
                api_key_id=owner.key_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(days=SESSION_DAYS),
            )
        )
        beyond_bound = (
            tenant.select(rows.id_hash)
            .where(rows.id_hash != id_hash)
            .order_by(rows.last_seen_at.desc(), rows.created_at.desc())
            .offset(MAX_SESSIONS_PER_USER - 1)
        )
        session.execute(
            tenant.delete(dashboard_sessions).where(
                rows.id_hash.in_(beyond_bound.scalar_subquery())
            )
        )
    # A fresh cookie: nothing of the signed-out one (its form token included) carries over.
    request.session.clear()
    request.session.update(
        {"user_id": owner.user_id, "session": token, "csrf": secrets.token_urlsafe(32)}
    )


def sign_out(request: Request) -> None:
    named = _cookie_session(request)
    if named is not None:
        with database(request).write() as session:
            session.execute(
                Tenant(named[0])
                .delete(dashboard_sessions)
                .where(dashboard_sessions.c.id_hash == named[1])
            )
    request.session.clear()


def viewer(request: Request) -> Viewer:
    """Dependency of every signed-in page: the user, or a redirect to the sign-in page;
    429 once the user's rate limit bucket is empty."""
    named = _cookie_session(request)
    if named is None:
        raise SignInRequired
    user_id, id_hash = named
    rows, now, tenant = dashboard_sessions.c, utcnow(), Tenant(user_id)
    with database(request).read() as session:
        row = session.execute(
            tenant.scope(
                select(users.c.name, rows.last_seen_at)
                .select_from(
                    tenant.join(dashboard_sessions, users).join(
                        api_keys, api_keys.c.id == rows.api_key_id
                    )
                )
                .where(
                    rows.id_hash == id_hash,
                    rows.expires_at > now,
                    api_keys.c.revoked_at.is_(None),
                )
            )
        ).first()
    if row is None:  # signed out, expired, or its key revoked since signing in
        request.session.clear()
        raise SignInRequired
    ratelimit.charge_user(request, user_id)
    if now - row.last_seen_at >= SEEN_EVERY:
        with database(request).write() as session:
            session.execute(
                tenant.update(dashboard_sessions)
                .where(rows.id_hash == id_hash)
                .values(last_seen_at=now)
            )
    return Viewer(user_id=user_id, name=row.name)


# -- the form token -----------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The session's form token, made on first use (the sign-in form needs one too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def form_pairs(request: Request) -> list[tuple[str, str]]:
    """Dependency of every dashboard POST: the form's fields, once its token is checked."""
    try:
        form = await request.form(max_files=0, max_fields=5_000)
    except (ValueError, KeyError, AssertionError) as exc:
        raise errors.Invalid(f"the form body could not be read: {exc}") from None
    pairs = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    check_form_token(request, dict(pairs).get(CSRF_FIELD, ""))
    return [(name, value) for name, value in pairs if name != CSRF_FIELD]


def check_form_token(request: Request, sent: str) -> None:
    """Refuses a form whose token is not this session's (cross-site or expired)."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise FormExpired(
            "this form has expired or did not come from this site: reload the page and "
            "send it again"
        )


def flash(request: Request, message: str) -> None:
    """A one-line notice shown on the next page (\"Segment saved\")."""
    request.session["flash"] = message


def pop_flash(request: Request) -> Any:
    return request.session.pop("flash", None)
