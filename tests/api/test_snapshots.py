"""Snapshots freeze a segment's members; the history keeps a row a day."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from segmenti.contacts import service as contacts_service
from segmenti.db.engine import Database
from segmenti.db.tables import snapshots
from segmenti.db.tenant import Tenant
from segmenti.segments import snapshots as snapshots_service
from segmenti.settings import Settings
from segmenti.webhooks.deliverer import Deliverer
from tests.conftest import User

ITALY = {"filters_countries": ["IT"]}


def snapshot_of(user: User, segment_id: int) -> int:
    response = user.post(f"/api/segments/{segment_id}/snapshots")
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


def members_of(user: User, snapshot_id: int, **query: Any) -> list[dict[str, Any]]:
    response = user.get(f"/api/snapshots/{snapshot_id}/contacts", params=query)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_a_snapshot_never_changes_and_shows_each_members_status_now(alice: User) -> None:
    ids = [alice.make_contact(f"+39333123{n:04d}", name=f"n{n}") for n in range(4)]
    alice.make_contact("+447400100001")
    segment = alice.make_segment(**ITALY)
    snapshot = snapshot_of(alice, segment)
    found = alice.get(f"/api/snapshots/{snapshot}").json()["data"]
    assert found["segment_id"] == segment and found["total_contacts"] == 4
    alice.post(f"/api/contacts/{ids[0]}", json={"has_opted_out": "1"})
    alice.post(f"/api/contacts/{ids[1]}", json={"name": "renamed"})
    assert alice.delete(f"/api/contacts/{ids[2]}").status_code == 204
    alice.make_contact("+393339999999")  # a new member of the segment, not of the snapshot
    listed = members_of(alice, snapshot)
    assert [m["contact_id"] for m in listed] == ids
    assert [m["status"] for m in listed] == ["opted_out", "active", "deleted", "active"]
    assert listed[1]["name"] == "n1"  # as frozen
    assert alice.get(f"/api/snapshots/{snapshot}").json()["data"]["total_contacts"] == 4
    csv_text = alice.get(f"/api/snapshots/{snapshot}/contacts.csv").text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["phone_number"] for r in rows] == ["+393331230001", "+393331230003"]
    every = alice.get(f"/api/snapshots/{snapshot}/contacts.csv?include_inactive=1").text
    assert len(list(csv.DictReader(io.StringIO(every)))) == 4


def test_snapshot_member_pages_follow_the_cursor(alice: User) -> None:
    ids = [alice.make_contact(f"+39333123{n:04d}") for n in range(25)]
    snapshot = snapshot_of(alice, alice.make_segment(**ITALY))
    first = alice.get(f"/api/snapshots/{snapshot}/contacts?results_per_page=10").json()
    assert first["meta"]["total"] == 25 and first["meta"]["total_pages"] == 3
    second = alice.get(first["links"]["next"]).json()
    assert [m["contact_id"] for m in second["data"]] == ids[10:20]


def test_erase_removes_the_contact_from_snapshots(alice: User) -> None:
    kept = alice.make_contact("+393331230001")
    erased = alice.make_contact("+393331230002")
    snapshot = snapshot_of(alice, alice.make_segment(**ITALY))
    assert alice.delete(f"/api/contacts/{erased}?erase=1").status_code == 204
    every = members_of(alice, snapshot)
    assert [m["contact_id"] for m in every] == [kept]
    assert (
        "+393331230002"
        not in alice.get(f"/api/snapshots/{snapshot}/contacts.csv?include_inactive=1").text
    )


def test_snapshots_are_listed_deleted_and_limited(alice: User, bob: User) -> None:
    segment = alice.make_segment(**ITALY)
    first, second = snapshot_of(alice, segment), snapshot_of(alice, segment)
    listed = alice.get(f"/api/segments/{segment}/snapshots").json()["data"]
    assert [s["id"] for s in listed] == [second, first]
    assert bob.get(f"/api/snapshots/{first}").status_code == 404
    assert bob.delete(f"/api/snapshots/{first}").status_code == 404
    assert alice.delete(f"/api/snapshots/{first}").status_code == 204
    assert alice.get(f"/api/snapshots/{first}").status_code == 404
    assert alice.get(f"/api/snapshots/{first}/contacts.csv").status_code == 404
    assert alice.post("/api/segments/999999/snapshots").status_code == 404


def test_the_per_user_limit_answers_400(make_user: Any, client: Any, settings: Settings) -> None:
    client.app.state.settings = Settings(database_url=settings.database_url, snapshots_per_user=1)
    user = make_user("limited")
    segment = user.make_segment(**ITALY)
    snapshot_of(user, segment)
    refused = user.post(f"/api/segments/{segment}/snapshots")
    assert refused.status_code == 400
    assert "at most 1" in refused.json()["errors"][0]["detail"]


def test_expired_snapshots_are_purged(alice: User, db: Database, settings: Settings) -> None:
    alice.make_contact("+393331230001")
    segment = alice.make_segment(**ITALY)
    snapshot = snapshot_of(alice, segment)
    expired = Settings(database_url=settings.database_url, snapshots_retention_days=-1)
    kept = snapshot_of(alice, segment)
    with db.write() as session:
        session.execute(
            Tenant(alice.id)
            .update(snapshots)
            .where(snapshots.c.id == snapshot)
            .values(expires_at=date(2000, 1, 1))
        )
    assert Deliverer(db, expired).purge() >= 1
    assert alice.get(f"/api/snapshots/{snapshot}").status_code == 404
    assert alice.get(f"/api/snapshots/{kept}").status_code == 200


def test_history_has_a_row_a_day_with_entries_and_exits(alice: User) -> None:
    ids = [alice.make_contact(f"+39333123{n:04d}") for n in range(3)]
    segment = alice.make_segment(**ITALY)
    alice.make_contact("+393331239999")
    alice.post(f"/api/contacts/{ids[0]}", json={"has_opted_out": "1"})
    response = alice.get(f"/api/segments/{segment}/history?days=7")
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert len(rows) == 1  # the segment was made today
    today = rows[0]
    assert today["total_contacts"] == 3 == alice.total(segment)
    assert (today["entered"], today["exited"]) == (4, 1)
    assert alice.get(f"/api/segments/{segment}/history?days=0").status_code == 400
    assert alice.get("/api/segments/999999/history").status_code == 404


def test_a_chunked_snapshot_overtaken_by_a_write_starts_again_consistent(
    alice: User, db: Database, settings: Settings, monkeypatch: Any
) -> None:
    """SQLite copies in chunks; a write between two chunks makes it start again, so the
    snapshot is still the members at one moment."""
    if db.engine.dialect.name != "sqlite":
        return  # PostgreSQL copies in one statement
    ids = [alice.make_contact(f"+39333123{n:04d}") for n in range(7)]
    segment = alice.make_segment(**ITALY)
    monkeypatch.setattr(snapshots_service, "CHUNK", 3)
    real = snapshots_service._copy_chunk
    calls: list[int] = []

    def overtaken(*args: Any, **kwargs: Any) -> Any:
        copied = real(*args, **kwargs)
        calls.append(copied[0])
        if len(calls) == 1:  # after the first chunk: a write moves a member out
            with db.write() as session:
                contacts_service.delete_contact(session, user_id=alice.id, contact_id=ids[6])
        return copied

    monkeypatch.setattr(snapshots_service, "_copy_chunk", overtaken)
    snapshot = snapshot_of(alice, segment)
    assert [m["contact_id"] for m in members_of(alice, snapshot)] == ids[:6]
    assert alice.get(f"/api/snapshots/{snapshot}").json()["data"]["total_contacts"] == 6
    assert calls[:2] == [3, 3] and len(calls) >= 4  # started again after the write


def test_one_write_moving_several_segments_adds_to_each_one_s_row_of_the_day(
    alice: User,
) -> None:
    # The upsert of every segment a write moved is one statement on PostgreSQL.
    italy = alice.make_segment(**ITALY)
    pro = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    one = alice.make_contact("+393331230001", custom_parameters={"plan": "pro"})
    alice.make_contact("+393331230002")
    alice.post(f"/api/contacts/{one}", json={"has_opted_out": "1"})

    def today(segment: int) -> tuple[int, int, int]:
        rows = alice.get(f"/api/segments/{segment}/history?days=1").json()["data"]
        assert len(rows) == 1
        return rows[0]["total_contacts"], rows[0]["entered"], rows[0]["exited"]

    assert today(italy) == (1, 2, 1)
    assert today(pro) == (0, 1, 1)
