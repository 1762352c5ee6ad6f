"""Tenant isolation, proven generically: every route of the app (enumerated from
`app.routes`, so a new route is covered the day it is added) is called by Alice with
Bob's ids and keys, in the path, the query string and the body: the API with her key,
the dashboard signed in as her. Nothing of Bob's may show in an answer, and nothing of
Bob's may change."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import routing
from sqlalchemy import select, text

from segmenti.db.tables import MAX_ID, contacts, metadata, segments
from segmenti.db.tenant import across_tenants
from tests.conftest import CITUS_URL, User

# Every path parameter the app uses, and which of Bob's resources fills it. A route with
# a parameter missing here fails the walk: add it, so the new route is walked too.
PATH_IDS = {
    "segment_id": "segment",
    "contact_id": "contact",
    "webhook_id": "webhook",
    "snapshot_id": "snapshot",
}

# Text only Bob ever sent: it may appear in no answer to Alice. (His parameter key is
# not among them: Alice names it herself, in filters and import columns.)
SECRETS = ("BOB-SECRET-NAME", "bob-secret-value", "BOB-SECRET-SEGMENT")
BOB_PHONE = "+393339876543"


@pytest.fixture
def bobs(bob: User) -> dict[str, Any]:
    contact = bob.make_contact(
        BOB_PHONE, name="BOB-SECRET-NAME", custom_parameters={"bob_secret_key": "bob-secret-value"}
    )
    segment = bob.make_segment(name="BOB-SECRET-SEGMENT", contacts_ids=str(contact))
    bob.make_segment(
        name="BOB-SECRET-SEGMENT",
        filters_custom_parameter_key=["bob_secret_key"],
        filters_custom_parameter_value=["bob-secret-value"],
    )
    # A public address literal: nothing is sent (no deliverer runs in this test).
    webhook = bob.post(
        "/api/webhooks",
        json={"url": "http://93.184.216.34/BOB-SECRET-NAME", "events": ["segment.contact_exited"]},
    )
    assert webhook.status_code == 201, webhook.text
    snapshot = bob.post(f"/api/segments/{segment}/snapshots")
    assert snapshot.status_code == 201, snapshot.text
    return {
        "contact": contact,
        "segment": segment,
        "webhook": webhook.json()["data"]["id"],
        "snapshot": snapshot.json()["data"]["id"],
    }


def api_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every /api/ route, through included routers."""
    found = []
    for route in routing.iter_route_contexts(app.routes):
        if route.path and route.path.startswith("/api/"):
            found.extend(
                (method, route.path) for method in sorted((route.methods or set()) - {"HEAD"})
            )
    assert len(found) >= 10, found  # the enumeration itself works
    return found


def fill(path: str, ids: dict[str, int]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        assert name in PATH_IDS, f"path parameter {name!r} of {path}: add it to PATH_IDS"
        return str(ids[PATH_IDS[name]])

    return re.sub(r"\{([^}]+)\}", substitute, path)


def bodies(theirs: dict[str, Any]) -> list[dict[str, Any]]:
    """Bodies that name Bob's things: his contact id, his number, his parameter key."""
    contact = theirs["contact"]
    return [
        {"name": "stolen"},
        {"name": "stolen", "contacts_ids": str(contact)},
        {"name": "stolen", "type": "custom", "contacts_ids": [contact]},
        {"name": "stolen", "segment_id": theirs["segment"], "segments_ids": [theirs["segment"]]},
        {
            "name": "stolen",
            # Would count Bob's contact if filters were not scoped (checked at the end).
            "filters_custom_parameter_key": ["bob_secret_key"],
            "filters_custom_parameter_condition": ["contains"],
            "filters_custom_parameter_value": ["secret"],
        },
        {"phone_number": BOB_PHONE, "name": "stolen", "custom_parameters": {"k": "v"}},
        {"name": "stolen", "phone_numbers": BOB_PHONE, "contact_id": contact},
    ]


UPLOAD: dict[str, Any] = {"upload": "a CSV file naming Bob's number, contact and key"}


def upload_csv(theirs: dict[str, Any]) -> bytes:
    """Import rows that name Bob's things: his number (rows are upserted by number, so
    this must become Alice's own contact), his contact id, his parameter key."""
    return (
        f"phone_number,name,id,bob_secret_key\n{BOB_PHONE},stolen,{theirs['contact']},overwritten\n"
    ).encode()


def query(theirs: dict[str, Any]) -> dict[str, Any]:
    return {
        "contact_id": theirs["contact"],
        "segment_id": theirs["segment"],
        "contacts_ids": str(theirs["contact"]),
        "search": "BOB",
    }


def rows_of(db: Any, user_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the user, in every table that carries user_id."""
    snapshot = {}
    with db.read() as session:
        for table in metadata.sorted_tables:
            if "user_id" in table.c:
                rows = session.execute(select(table).where(table.c.user_id == user_id)).all()
                snapshot[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return snapshot


def cross_tenant_references(db: Any) -> list[str]:
    """Rows of one user pointing at another user's contact or segment."""
    found = []
    with db.read() as session, across_tenants("the test looks for references across tenants"):
        if CITUS_URL:  # the join is across shards, by design: the product never makes one
            session.execute(text("SET LOCAL citus.enable_repartition_joins = on"))
        for table in metadata.sorted_tables:
            for column, parent in (("contact_id", contacts), ("segment_id", segments)):
                if "user_id" not in table.c or column not in table.c or table is parent:
                    continue
                rows = session.execute(
                    select(table.c.user_id, parent.c.user_id)
                    .join(parent, parent.c.id == table.c[column])
                    .where(parent.c.user_id != table.c.user_id)
                ).all()
                found += [f"{table.name}.{column}: {row}" for row in rows]
    return found


def test_every_route_with_another_users_ids_shows_and_changes_nothing(
    app: Any, alice: User, bob: User, bobs: dict[str, Any], db: Any
) -> None:
    alice.make_contact("+393331234501", name="alice's")
    bob_before = rows_of(db, bob.id)
    missing = {"contact": MAX_ID, "segment": MAX_ID, "webhook": MAX_ID, "snapshot": MAX_ID}
    for method, template in api_routes(app):
        targets_bob = "{" in template
        writes = method in ("POST", "PUT", "PATCH")
        for body in [*bodies(bobs), UPLOAD] if writes else [None]:
            # Writes read the query string too (the body wins): Bob's ids go in the body
            # there, else every write would stop at `contacts_ids` and create nothing.
            kwargs: dict[str, Any] = {"params": {} if writes else query(bobs)}
            if body is UPLOAD:
                kwargs["files"] = {"file": ("contacts.csv", upload_csv(bobs), "text/csv")}
            elif body is not None:
                kwargs["json"] = body
            answer = alice.request(method, fill(template, bobs), **kwargs)
            where = f"{method} {template} {body}"
            assert answer.status_code < 500, f"{where}: {answer.text[:300]}"
            for secret in SECRETS:
                assert secret not in answer.text, f"{where} showed {secret}"
            if targets_bob:
                # Another user's id answers exactly like an id that does not exist.
                absent = alice.request(method, fill(template, missing), **kwargs)
                assert answer.status_code == absent.status_code == 404, where
                theirs_text = answer.text
                for kind, their_id in bobs.items():
                    theirs_text = theirs_text.replace(f" {their_id} ", f" {missing[kind]} ")
                assert theirs_text == absent.text, where
            assert rows_of(db, bob.id) == bob_before, f"{where} changed Bob's data"
    assert cross_tenant_references(db) == []
    probes = [
        segment
        for segment in alice.get("/api/segments?results_per_page=1000").json()["data"]
        if "bob_secret_key" in str(segment["settings"])
    ]
    assert probes and all(segment["total_contacts"] == 0 for segment in probes), probes
    # Bob still sees all of his own, unchanged.
    assert bob.get(f"/api/contacts/{bobs['contact']}").json()["data"]["name"] == "BOB-SECRET-NAME"
    assert bob.total(bobs["segment"]) == 1


def test_every_api_route_refuses_a_missing_or_revoked_key(
    app: Any, alice: User, bobs: dict[str, Any], db: Any
) -> None:
    from segmenti import auth

    with db.write() as session:
        key_id, revoked = auth.create_key(session, user_id=alice.id)
        auth.revoke_key(session, key_id=key_id)
    for method, template in api_routes(app):
        if template == "/api/openapi.json":
            continue
        path = fill(template, bobs)
        for headers in ({}, {"Authorization": f"Bearer {revoked}"}, {"Authorization": "Basic x"}):
            answer = alice.client.request(method, path, headers=headers, json={"name": "x"})
            assert answer.status_code == 401, f"{method} {template} {headers}"
            assert answer.json()["errors"][0]["status"] == "401"


# Dashboard routes that are not about a user's data (or change the session itself, or
# the language cookie).
NOT_TENANT_DATA = (
    "/health",
    "/ready",
    "/metrics",
    "/docs",
    "/sign-in",
    "/sign-out",
    "/static",
    "/language",
)
FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def dashboard_routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for route in routing.iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith("/api/") or path.startswith(NOT_TENANT_DATA) or path == "/":
            continue
        found.extend((method, path) for method in sorted((route.methods or set()) - {"HEAD"}))
    return found


def test_every_dashboard_route_with_another_users_ids_shows_and_changes_nothing(
    app: Any, alice: User, bob: User, bobs: dict[str, Any], db: Any
) -> None:
    routes = dashboard_routes(app)
    if not routes:  # no dashboard in this build: the API walk above is the whole app
        assert not any(
            (r.path or "").startswith("/segments") for r in routing.iter_route_contexts(app.routes)
        )
        return
    browser = {"Accept": "text/html"}
    client = alice.client
    token = FORM_TOKEN.search(client.get("/sign-in", headers=browser).text)
    assert token, "no form token on the sign-in page"
    signed_in = client.post(
        "/sign-in",
        data={"csrf_token": token[1], "api_key": alice.api_key},
        headers=browser,
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text[:300]
    token = FORM_TOKEN.search(client.get("/segments/new", headers=browser).text)
    assert token, "no form token on /segments/new"
    bob_before = rows_of(db, bob.id)
    missing = {"contact": MAX_ID, "segment": MAX_ID, "webhook": MAX_ID, "snapshot": MAX_ID}
    for method, template in routes:
        forms: list[dict[str, Any] | None] = [None]
        if method == "POST":
            forms = [{"csrf_token": token[1], **body} for body in bodies(bobs)]
        for form in forms:
            kwargs: dict[str, Any] = {"params": query(bobs), "headers": browser}
            if form is not None:
                kwargs["data"] = {k: v if isinstance(v, str) else str(v) for k, v in form.items()}
            answer = client.request(method, fill(template, bobs), follow_redirects=False, **kwargs)
            where = f"{method} {template} {form}"
            assert answer.status_code < 500, f"{where}: {answer.text[:300]}"
            for secret in SECRETS:
                assert secret not in answer.text, f"{where} showed {secret}"
            if "{" in template:
                absent = client.request(
                    method, fill(template, missing), follow_redirects=False, **kwargs
                )
                assert answer.status_code == absent.status_code, where
                assert answer.status_code in (303, 404), where
            assert rows_of(db, bob.id) == bob_before, f"{where} changed Bob's data"
    assert cross_tenant_references(db) == []
