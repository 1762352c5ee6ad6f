"""Dashboard sessions live on the server (issue 17, item 4): the cookie carries a random
token whose SHA-256 names a row of `dashboard_sessions`; signing out deletes the row, so
a copy of the cookie taken before signing out is worth nothing after it, and revoking
the key behind a session ends it too."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import func, select, update

from segmenti import auth
from segmenti.db.engine import Database
from segmenti.db.tables import api_keys, dashboard_sessions
from segmenti.timeutil import utcnow
from segmenti.web import SESSION_COOKIE, sessions
from tests.conftest import User
from tests.web.test_pages import form_token, sign_in

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def session_rows(db: Database, user: User) -> list[Any]:
    with db.read() as session:
        return list(
            session.execute(
                select(dashboard_sessions).where(dashboard_sessions.c.user_id == user.id)
            ).all()
        )


def cookie_payload(app: Any, cookie: str) -> dict[str, Any]:
    signer = TimestampSigner(sessions.secret_key(app.state.settings))
    payload: dict[str, Any] = json.loads(base64.b64decode(signer.unsign(cookie)))
    return payload


def browser(app: Any, cookie: str | None = None) -> TestClient:
    """Another browser, with no cookie or with a copy of one."""
    other = TestClient(app, raise_server_exceptions=False, headers=BROWSER)
    if cookie is not None:
        other.cookies.set(SESSION_COOKIE, cookie)
    return other


def sign_in_with(client: TestClient, api_key: str) -> None:
    response = client.post(
        "/sign-in",
        data={"csrf_token": form_token(client), "api_key": api_key},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def test_a_cookie_copied_before_sign_out_is_worth_nothing_after_it(app: Any, alice: User) -> None:
    token = sign_in(alice)
    copied = alice.client.cookies[SESSION_COOKIE]
    with browser(app, copied) as thief:
        assert thief.get("/segments").status_code == 200  # the copy works while signed in
        out = alice.client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
        assert out.status_code == 303
        page = thief.get("/segments", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/sign-in")
        created = thief.post(
            "/segments/new",
            data={"csrf_token": token, "name": "after sign-out", "type": "filter"},
            follow_redirects=False,
        )
        assert created.status_code == 303
        assert created.headers["location"].startswith("/sign-in")
        preview = thief.post(
            "/segments/preview", data={"csrf_token": token}, follow_redirects=False
        )
        assert preview.status_code == 303
    # The browser that signed out, sending the old form token with its new cookie.
    refused = alice.client.post(
        "/segments/new",
        data={"csrf_token": token, "name": "after sign-out", "type": "filter"},
        follow_redirects=False,
    )
    assert refused.status_code == 303 and refused.headers["location"].startswith("/sign-in")
    assert alice.get("/api/segments").json()["data"] == []
    assert session_rows(app.state.db, alice) == []


def test_the_database_holds_the_tokens_hash_never_the_token(app: Any, alice: User) -> None:
    sign_in(alice)
    payload = cookie_payload(app, alice.client.cookies[SESSION_COOKIE])
    token = payload["session"]
    assert len(token) >= 40
    (row,) = session_rows(app.state.db, alice)
    assert row.id_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(row)
    with app.state.db.read() as session:
        (key,) = auth.list_keys(session, user_id=alice.id)
    assert row.api_key_id == key.id
    assert row.created_at <= row.last_seen_at < row.expires_at
    assert row.expires_at - row.created_at == timedelta(days=sessions.SESSION_DAYS)


def test_revoking_the_key_ends_its_sessions_and_deletes_them(app: Any, alice: User) -> None:
    db = app.state.db
    with db.write() as session:
        _second_id, second = auth.create_key(session, user_id=alice.id)
    sign_in(alice)
    copied = alice.client.cookies[SESSION_COOKIE]
    with browser(app) as other:  # the same user signed in with the second key
        sign_in_with(other, second)
        assert other.get("/segments").status_code == 200
        assert len(session_rows(db, alice)) == 2
        with db.write() as session:
            first = auth.list_keys(session, user_id=alice.id)[0]
            auth.revoke_key(session, key_id=first.id)
        assert [row.api_key_id for row in session_rows(db, alice)] == [_second_id]
        with browser(app, copied) as thief:
            assert thief.get("/segments", follow_redirects=False).status_code == 303
        assert alice.client.get("/segments", follow_redirects=False).status_code == 303
        assert other.get("/segments").status_code == 200  # the other key's session lives


def test_a_session_whose_key_was_revoked_is_ignored_even_if_its_row_remains(
    app: Any, alice: User
) -> None:
    sign_in(alice)
    with app.state.db.write() as session:  # revoked behind the service's back
        session.execute(
            update(api_keys).where(api_keys.c.user_id == alice.id).values(revoked_at=utcnow())
        )
    assert alice.client.get("/segments", follow_redirects=False).status_code == 303


def test_an_expired_session_signs_out_and_is_cleaned_up_at_sign_in(
    app: Any, alice: User, bob: User
) -> None:
    db = app.state.db
    sign_in(alice)
    with db.write() as session:
        session.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.user_id == alice.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert alice.client.get("/segments", follow_redirects=False).status_code == 303
    assert len(session_rows(db, alice)) == 1  # kept until the user next signs in
    sign_in(alice)
    (row,) = session_rows(db, alice)
    assert row.expires_at > utcnow()


def test_sessions_per_user_are_bounded_the_least_recently_seen_going_first(
    app: Any, alice: User
) -> None:
    db = app.state.db
    sign_in(alice)
    first = alice.client.cookies[SESSION_COOKIE]
    with db.write() as session:  # the first session was seen most recently
        session.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.user_id == alice.id)
            .values(last_seen_at=utcnow() + timedelta(1))
        )
    for _ in range(sessions.MAX_SESSIONS_PER_USER + 3):
        with browser(app) as other:
            sign_in_with(other, alice.api_key)
    with db.read() as session:
        total = session.execute(
            select(func.count())
            .select_from(dashboard_sessions)
            .where(dashboard_sessions.c.user_id == alice.id)
        ).scalar_one()
    assert total == sessions.MAX_SESSIONS_PER_USER
    with browser(app, first) as kept:
        assert kept.get("/segments").status_code == 200


def test_signing_in_again_replaces_the_browsers_session(app: Any, alice: User) -> None:
    sign_in(alice)
    before = alice.client.cookies[SESSION_COOKIE]
    sign_in(alice)
    assert len(session_rows(app.state.db, alice)) == 1
    with browser(app, before) as old:
        assert old.get("/segments", follow_redirects=False).status_code == 303
