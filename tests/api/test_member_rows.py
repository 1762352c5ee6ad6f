"""No membership row outlives its segment or its contact: on PostgreSQL no foreign key
deletes them (0014_writes_members_no_fks), so every delete path does."""

from __future__ import annotations

from sqlalchemy import func, inspect, select

from segmenti.db.engine import Database
from segmenti.db.tables import contacts, segment_members, segments
from segmenti.db.tenant import across_tenants
from tests.conftest import User


def _orphans(db: Database) -> int:
    """Member rows whose segment or contact is gone, of every user."""
    with db.read() as session, across_tenants("tests look for orphans of every user"):
        segment_gone = (
            ~select(segments.c.id)
            .where(
                segments.c.user_id == segment_members.c.user_id,
                segments.c.id == segment_members.c.segment_id,
            )
            .exists()
        )
        contact_gone = (
            ~select(contacts.c.id)
            .where(
                contacts.c.user_id == segment_members.c.user_id,
                contacts.c.id == segment_members.c.contact_id,
            )
            .exists()
        )
        query = select(func.count()).select_from(segment_members).where(segment_gone | contact_gone)
        return int(session.execute(query).scalar_one())


def _rows(db: Database) -> int:
    with db.read() as session, across_tenants("tests count the rows of every user"):
        return int(session.execute(select(func.count()).select_from(segment_members)).scalar_one())


def test_deleting_segments_and_contacts_leaves_no_member_rows(
    alice: User, bob: User, db: Database
) -> None:
    ids = [alice.make_contact(f"+39333123{n:04d}") for n in range(4)]
    custom = alice.make_segment(contacts_ids=",".join(map(str, ids[:3])))
    bulk = alice.make_segment(phone_numbers="+393331230001\n+393331230003\n+393331239999")
    kept = bob.make_segment(phone_numbers="+393331230001")  # bob's own contact and row
    assert _rows(db) == 3 + 3 + 1

    assert alice.delete(f"/api/contacts/{ids[1]}").status_code == 204
    assert alice.delete(f"/api/contacts/{ids[3]}?erase=1").status_code == 204
    assert _rows(db) == 2 + 1 + 1 and _orphans(db) == 0
    assert alice.total(custom) == 2 and alice.total(bulk) == 1

    assert alice.delete(f"/api/segments/{custom}").status_code == 204
    assert _rows(db) == 1 + 1 and _orphans(db) == 0
    # A redefinition replaces the rows.
    response = alice.post(f"/api/segments/{bulk}", json={"phone_numbers": "+393331230002"})
    assert response.status_code == 200, response.text
    assert _rows(db) == 1 + 1 and _orphans(db) == 0
    assert alice.delete(f"/api/segments/{bulk}").status_code == 204
    assert _rows(db) == 1 and _orphans(db) == 0
    assert bob.total(kept) == 1


def test_member_rows_have_foreign_keys_on_sqlite_only(db: Database) -> None:
    keys = {key["name"] for key in inspect(db.engine).get_foreign_keys("segment_members")}
    expected = {"fk_segment_members_user_id_segments", "fk_segment_members_user_id_contacts"}
    assert keys == (expected if db.is_sqlite else set())
