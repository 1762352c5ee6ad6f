"""Who is signed in to the dashboard, and the form token that guards every POST.

The session is starlette's signed cookie (itsdangerous, HttpOnly, SameSite=Lax). It holds
the user's id, the id of the API key used to sign in, and a random CSRF token. Each page
checks that the key is still live, so revoking a key signs its dashboard sessions out.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from segmenti import auth, errors
from segmenti.db.tables import api_keys, users
from segmenti.http import database
from segmenti.settings import Settings

log = logging.getLogger("segmenti")

MIN_SECRET_LENGTH = 32
CSRF_FIELD = "csrf_token"
SECRET_FILE_NAME = "secret_key"  # noqa: S105 - a file name, not a secret


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
    if path.exists():
        return _read_secret(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole to a private temporary file, then linked into place: of several
    # worker processes starting at once, one link wins and every process reads its key.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        with contextlib.suppress(FileExistsError):  # another process got there first
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds a key shorter than {MIN_SECRET_LENGTH} characters")
    return key


# -- signing in and out -------------------------------------------------------------


def sign_in(request: Request, db_session: Session, api_key: str) -> None:
    """Checks the key as the API does (raises Unauthorized) and starts a new session."""
    user_id = auth.authenticate(db_session, f"Bearer {api_key}")
    key_id = db_session.execute(
        select(api_keys.c.id).where(api_keys.c.key_hash == auth.hash_key(api_key.strip()))
    ).scalar_one()
    # A fresh session: nothing of the signed-out one (its form token included) carries over.
    request.session.clear()
    request.session.update(
        {"user_id": user_id, "key_id": int(key_id), "csrf": secrets.token_urlsafe(32)}
    )


def sign_out(request: Request) -> None:
    request.session.clear()


def viewer(request: Request) -> Viewer:
    """Dependency of every signed-in page: the user, or a redirect to the sign-in page."""
    user_id, key_id = request.session.get("user_id"), request.session.get("key_id")
    if not isinstance(user_id, int) or not isinstance(key_id, int):
        raise SignInRequired
    with database(request).read() as session:
        row = session.execute(
            select(users.c.name)
            .select_from(users.join(api_keys, api_keys.c.user_id == users.c.id))
            .where(users.c.id == user_id, api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        ).first()
    if row is None:  # the key was revoked or the user removed since signing in
        request.session.clear()
        raise SignInRequired
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
