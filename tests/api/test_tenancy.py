"""One user never sees or changes another's data: another user's id answers exactly
like an id that does not exist, on every endpoint."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from itsdangerous import TimestampSigner

from segmenti import auth
from segmenti.app import create_app
from segmenti.settings import Settings
from segmenti.web import SESSION_COOKIE, sessions
from tests.conftest import User
from tests.served import StalledDownload, make_large_export, serving


@pytest.fixture
def bobs_data(bob: User) -> dict[str, int]:
    contact = bob.make_contact("+393331234501", name="Bob's", custom_parameters={"plan": "pro"})
    return {
        "contact": contact,
        "segment": bob.make_segment(name="Bob's", contacts_ids=str(contact)),
    }


def routes(data: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    segment, contact = data["segment"], data["contact"]
    return [
        ("GET", f"/api/segments/{segment}", {}),
        ("POST", f"/api/segments/{segment}", {"data": {"name": "stolen"}}),
        ("DELETE", f"/api/segments/{segment}", {}),
        ("GET", f"/api/contacts/{contact}", {}),
        ("POST", f"/api/contacts/{contact}", {"data": {"name": "stolen"}}),
        ("DELETE", f"/api/contacts/{contact}", {}),
    ]


def test_another_users_ids_answer_like_missing_ids(
    alice: User, bob: User, bobs_data: dict[str, int]
) -> None:
    for method, path, kwargs in routes(bobs_data):
        theirs = alice.request(method, path, **kwargs)
        missing = alice.request(method, path.rsplit("/", 1)[0] + "/999999", **kwargs)
        assert theirs.status_code == missing.status_code == 404, (method, path)
        assert theirs.json()["errors"][0]["title"] == missing.json()["errors"][0]["title"]
    # Nothing of Bob's changed.
    assert bob.segment(bobs_data["segment"])["name"] == "Bob's"
    assert bob.total(bobs_data["segment"]) == 1
    contact = bob.get(f"/api/contacts/{bobs_data['contact']}").json()["data"]
    assert contact["name"] == "Bob's"


def test_lists_show_only_your_own_rows(alice: User, bob: User, bobs_data: dict[str, int]) -> None:
    alice.make_contact("+393331234599")
    assert alice.get("/api/segments").json()["meta"]["total"] == 0
    contacts = alice.get("/api/contacts").json()["data"]
    assert [c["phone_number"] for c in contacts] == ["+393331234599"]
    assert alice.get("/api/contacts?search=Bob").json()["data"] == []


def test_ids_inside_bodies_are_scoped(alice: User, bobs_data: dict[str, int]) -> None:
    response = alice.post(
        "/api/segments", data={"name": "x", "contacts_ids": str(bobs_data["contact"])}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["missing"] == [bobs_data["contact"]]


def test_filters_and_bulk_never_reach_another_user(
    alice: User, bob: User, bobs_data: dict[str, int]
) -> None:
    everyone = alice.make_segment()
    pro = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    assert alice.total(everyone) == 0 and alice.total(pro) == 0
    # Alice's bulk segment with Bob's number makes her own contact; Bob's stays his.
    bulk = alice.make_segment(phone_numbers="+393331234501")
    alice_contact = alice.segment(bulk)["settings"]["contacts_ids"][0]
    assert alice_contact != bobs_data["contact"]
    assert alice.total(everyone) == 1
    bob.post(f"/api/contacts/{bobs_data['contact']}", json={"custom_parameters": {"plan": "free"}})
    assert alice.total(pro) == 0
    assert bob.get(f"/api/contacts/{bobs_data['contact']}").json()["data"]["name"] == "Bob's"


def test_a_revoked_key_is_401(alice: User, db: Any) -> None:
    from segmenti import auth

    with db.write() as session:
        key_id, second_key = auth.create_key(session, user_id=alice.id)
    second = {"Authorization": f"Bearer {second_key}"}
    assert alice.client.get("/api/segments", headers=second).status_code == 200
    with db.write() as session:
        auth.revoke_key(session, key_id=key_id)
    assert alice.client.get("/api/segments", headers=second).status_code == 401
    assert alice.get("/api/segments").status_code == 200


# -- dashboard sessions (issue 17) ------------------------------------------------


def test_a_session_token_signs_in_only_its_own_user(app: Any, alice: User, bob: User) -> None:
    """Even with the cookie-signing key in hand, one user's session token cannot be
    presented as another user's: a session is looked up by (user id, token hash)."""
    client = alice.client
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/sign-in").text)
    assert token
    client.post("/sign-in", data={"csrf_token": token[1], "api_key": alice.api_key})
    signer = TimestampSigner(sessions.secret_key(app.state.settings))
    payload = json.loads(base64.b64decode(signer.unsign(client.cookies[SESSION_COOKIE])))

    def cookie_for(user_id: int) -> str:
        forged = {**payload, "user_id": user_id}
        return signer.sign(base64.b64encode(json.dumps(forged).encode())).decode()

    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie_for(bob.id))
    response = client.get("/segments", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie_for(alice.id))  # the same forgery, her own id
    assert client.get("/segments", follow_redirects=False).status_code == 200


# -- issue 17: stalled CSV downloads hold no connection ------------------------------


@pytest.fixture
def small_pool_app(database_url: str) -> Iterator[Any]:
    """On PostgreSQL a pool of 3 + 2, so that a few stalled downloads would fill it;
    SQLite keeps SQLAlchemy's own pool of 5 + 10 (the pool the review filled)."""
    application = create_app(Settings(database_url=database_url, db_pool_size=3, db_max_overflow=2))
    yield application
    application.state.db.dispose()


def test_stalled_downloads_of_one_tenant_leave_the_others_served(small_pool_app: Any) -> None:
    db = small_pool_app.state.db
    with db.write() as session:
        hoarder, hoarder_key = auth.create_user(session, name="hoarder")
        _, other_key = auth.create_user(session, name="other")
    size = make_large_export(db, user_id=hoarder)
    pool = db.engine.pool
    capacity = pool.size() + pool._max_overflow
    with serving(small_pool_app) as base:
        stalled = [
            StalledDownload(base, "/api/contacts.csv", hoarder_key) for _ in range(capacity + 1)
        ]
        try:
            # Every download has begun and none can end: each has more left to send than
            # the socket buffers hold. Once the pages in hand are read, none of them
            # holds a connection.
            deadline = time.monotonic() + 10
            while pool.checkedout():
                assert time.monotonic() < deadline, f"{pool.checkedout()} held by the stall"
                time.sleep(0.05)
            with httpx.Client(base_url=base, timeout=3) as client:
                answer = client.get(
                    "/api/contacts", headers={"Authorization": f"Bearer {other_key}"}
                )
                assert answer.status_code == 200, answer.text
                assert client.get("/ready").status_code == 200
                made = client.post(
                    "/api/contacts",
                    headers={"Authorization": f"Bearer {other_key}"},
                    json={"phone_number": "+14155552671"},
                )
                assert made.status_code == 201, made.text
            # A stalled download that reads again gets the whole export.
            body = stalled[0].read_to_end()
            assert body.count(b"\r\n") == 20_001
            assert len(body) > size  # CRLF line ends, the has_opted_out column
        finally:
            for download in stalled:
                download.close()
