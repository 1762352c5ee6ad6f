"""Idempotency-Key on creates: a retry answers the first result and creates nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select, update

from segmenti.db.tables import contacts, idempotency_keys, segments
from segmenti.db.tenant import across_tenants
from tests.conftest import User


def count(db: Any, table: Any, user: User) -> int:
    with db.read() as session:
        return int(
            session.execute(
                select(func.count()).select_from(table).where(table.c.user_id == user.id)
            ).scalar_one()
        )


CREATES = [
    ("/api/segments", {"name": "Pro", "filters_countries": ["IT"]}, segments),
    ("/api/contacts", {"phone_number": "+393331234501", "name": "Ada"}, contacts),
]


@pytest.mark.parametrize(("path", "body", "table"), CREATES)
def test_a_retried_create_answers_the_first_result(
    alice: User, db: Any, path: str, body: dict[str, Any], table: Any
) -> None:
    key = {"Idempotency-Key": "7f0c2a58-5d4e-4d8e-9a55-2f1d4c3b2a10"}
    first = alice.post(path, json=body, headers=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        retry = alice.post(path, json=body, headers=key)
        assert retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
    assert count(db, table, alice) == 1
    # Without the key, the same request is a new create (or, for a contact, a conflict).
    again = alice.post(path, json=body)
    assert again.status_code in (201, 409)


def test_the_same_request_as_a_form_is_a_retry_too(alice: User, db: Any) -> None:
    key = {"Idempotency-Key": "form-or-json"}
    first = alice.post(
        "/api/segments", json={"name": "x", "filters_countries": ["IT"]}, headers=key
    )
    retry = alice.post(
        "/api/segments/", data={"name": "x", "filters_countries[]": "IT"}, headers=key
    )
    assert retry.status_code == 201 and retry.json() == first.json()
    assert count(db, segments, alice) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/segments", {"name": "Other", "filters_countries": ["IT"]}),
        ("/api/segments", {"name": "Pro", "filters_countries": ["FR"]}),
        ("/api/contacts", {"phone_number": "+393331234501"}),
    ],
)
def test_the_same_key_for_another_request_is_refused(
    alice: User, db: Any, path: str, body: dict[str, Any]
) -> None:
    key = {"Idempotency-Key": "k-1"}
    assert (
        alice.post(
            "/api/segments", json={"name": "Pro", "filters_countries": ["IT"]}, headers=key
        ).status_code
        == 201
    )
    refused = alice.post(path, json=body, headers=key)
    assert refused.status_code == 422
    error = refused.json()["errors"][0]
    assert error["title"] == "Idempotency key reused"
    assert error["source"] == {"parameter": "Idempotency-Key"}
    assert count(db, segments, alice) == 1
    assert count(db, contacts, alice) == 0


def test_keys_belong_to_their_user(alice: User, bob: User, db: Any) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = alice.post("/api/segments", json={"name": "A"}, headers=key)
    theirs = bob.post("/api/segments", json={"name": "A"}, headers=key)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json() != theirs.json()
    assert "idempotent-replayed" not in theirs.headers
    assert count(db, segments, alice) == count(db, segments, bob) == 1


def test_a_failed_create_stores_nothing_and_may_be_retried(alice: User, db: Any) -> None:
    alice.make_contact("+393331234501")
    key = {"Idempotency-Key": "retry-after-fixing"}
    conflict = alice.post("/api/contacts", json={"phone_number": "+393331234501"}, headers=key)
    assert conflict.status_code == 409
    with db.read() as session, across_tenants("the test counts every user's keys"):
        assert session.execute(select(func.count()).select_from(idempotency_keys)).scalar() == 0
    fixed = alice.post("/api/contacts", json={"phone_number": "+393331234502"}, headers=key)
    assert fixed.status_code == 201
    assert count(db, contacts, alice) == 2


def test_an_expired_key_may_be_used_again(alice: User, db: Any) -> None:
    key = {"Idempotency-Key": "old"}
    first = alice.post("/api/segments", json={"name": "A"}, headers=key)
    with db.write() as session:
        session.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.user_id == alice.id)
            .values(expires_at=idempotency_keys.c.datetime)
        )
    second = alice.post("/api/segments", json={"name": "B"}, headers=key)
    assert second.status_code == 201
    assert second.json() != first.json()
    with db.read() as session, across_tenants("the test counts every user's keys"):
        stored = session.execute(select(func.count()).select_from(idempotency_keys)).scalar()
    assert stored == 1  # the expired row was replaced, not kept beside the new one


@pytest.mark.parametrize("bad", [b"", b"with space", b"x" * 256, "caf\u00e9".encode()])
def test_a_malformed_key_is_a_400(alice: User, db: Any, bad: bytes) -> None:
    response = alice.post("/api/segments", json={"name": "A"}, headers={"Idempotency-Key": bad})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"parameter": "Idempotency-Key"}
    assert count(db, segments, alice) == 0


def test_concurrent_retries_create_once(alice: User, db: Any) -> None:
    body = {"name": "bulk", "phone_numbers": [f"+39333{1000000 + n}" for n in range(200)]}

    def send(_: int) -> tuple[int, Any]:
        response = alice.post("/api/segments", json=body, headers={"Idempotency-Key": "race"})
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, range(8)))
    assert {status for status, _ in answers} == {201}
    assert len({str(document) for _, document in answers}) == 1
    assert count(db, segments, alice) == 1
    assert count(db, contacts, alice) == 200


def test_the_openapi_document_describes_the_header(client: Any) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/segments", "/api/contacts"):
        create = paths[path]["post"]
        assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]
        assert "422" in create["responses"] and "429" in create["responses"]
    assert "parameters" not in paths["/api/segments/{segment_id}"]["post"] or all(
        p["name"] != "Idempotency-Key"
        for p in paths["/api/segments/{segment_id}"]["post"]["parameters"]
    )
