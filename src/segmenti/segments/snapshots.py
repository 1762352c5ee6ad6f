"""Snapshots: a segment's counted members frozen at one moment, for a campaign.

One consistent read: on PostgreSQL one INSERT ... SELECT (a statement sees one
snapshot of the database); on SQLite a read transaction (WAL: its first statement fixes
what the rest sees) streams the members while short write transactions store them, a
chunk each, so SQLite's one write lock is never held for long and another user's write
waits at most one chunk. Memory stays flat: one chunk of rows.

A snapshot never changes afterwards: its rows keep each member's number, name and
country as they were. Its member list says what became of each contact since
(`active`, `opted_out`, `deleted`), and its CSV leaves out who is no longer active
unless asked, so a campaign sent from it reaches no one who opted out since.
`DELETE /api/contacts/{id}?erase=1` removes a contact from every snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, insert, literal, select
from sqlalchemy.orm import Session

from segmenti import errors
from segmenti.contacts import csv_io
from segmenti.db.engine import Database
from segmenti.db.tables import contacts, snapshot_members, snapshots
from segmenti.db.tenant import Tenant
from segmenti.membership import counts
from segmenti.paging import Page
from segmenti.segments.members import load_segment, members_where
from segmenti.settings import Settings
from segmenti.timeutil import render, utcnow

# Members written per write transaction on SQLite (a few tenths of a second each).
CHUNK = 100_000
# Restarts of a chunked copy that writes overtook, before the copy takes one transaction.
ATTEMPTS = 2
# Members deleted per write transaction when a snapshot goes (SQLite and PostgreSQL).
DELETE_CHUNK = 50_000
# CSV rows per page (each page read in its own short session).
CSV_PAGE = 5_000


def render_snapshot(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "segment_id": row.segment_id,
        "total_contacts": row.members_count,
        "datetime": render(row.datetime),
        "expires_at": render(row.expires_at),
    }


_COLUMNS = (
    snapshots.c.id,
    snapshots.c.segment_id,
    snapshots.c.members_count,
    snapshots.c.datetime,
    snapshots.c.expires_at,
)


# -- creating -------------------------------------------------------------------------


def create_snapshot(db: Database, *, user_id: int, segment_id: int, settings: Settings) -> int:
    """Freezes the segment's counted members; returns the snapshot's id."""
    tenant = Tenant(user_id)
    with db.write() as session:
        load_segment(session, user_id=user_id, segment_id=segment_id)  # NotFound
        kept = session.execute(tenant.select(func.count(snapshots.c.id))).scalar_one()
        if kept >= settings.snapshots_per_user:
            raise errors.Invalid(
                f"a user may keep at most {settings.snapshots_per_user} snapshots: delete "
                "one first",
                parameter="segment_id",
            )
        now = utcnow()
        snapshot_id = int(
            session.execute(
                tenant.insert(snapshots)
                .values(
                    segment_id=segment_id,
                    members_count=0,
                    complete=False,
                    datetime=now,
                    expires_at=now + timedelta(days=settings.snapshots_retention_days),
                )
                .returning(snapshots.c.id)
            ).scalar_one()
        )
    try:
        if db.engine.dialect.name == "postgresql":
            total = _copy_in_one_statement(
                db, user_id=user_id, segment_id=segment_id, to=snapshot_id
            )
        else:
            total = _copy_in_chunks(db, user_id=user_id, segment_id=segment_id, to=snapshot_id)
    except BaseException:
        delete_snapshot(db, user_id=user_id, snapshot_id=snapshot_id, incomplete_too=True)
        raise
    with db.write() as session:
        session.execute(
            tenant.update(snapshots)
            .where(snapshots.c.id == snapshot_id)
            .values(members_count=total, complete=True)
        )
    return snapshot_id


def _members(session: Session, *, user_id: int, segment_id: int) -> Any:
    segment = load_segment(session, user_id=user_id, segment_id=segment_id)
    where = members_where(
        user_id=user_id,
        segment_id=segment_id,
        type=segment["type"],
        settings=segment["settings"],
        correlated=True,
    )
    return (
        select(contacts.c.id, contacts.c.phone_number, contacts.c.name, contacts.c.country_code)
        .where(where)
        .order_by(contacts.c.id)
    )


def _copy_in_one_statement(db: Database, *, user_id: int, segment_id: int, to: int) -> int:
    with db.write() as session:
        members = _members(session, user_id=user_id, segment_id=segment_id).subquery()
        copied = select(
            literal(to),
            members.c.id,
            literal(user_id),
            members.c.phone_number,
            members.c.name,
            members.c.country_code,
        )
        session.execute(
            insert(snapshot_members).from_select(
                ["snapshot_id", "contact_id", "user_id", "phone_number", "name", "country_code"],
                copied,
            )
        )
        # (The driver reports no row count for INSERT ... SELECT here.)
        return int(
            session.execute(
                Tenant(user_id)
                .select(func.count(snapshot_members.c.contact_id))
                .where(snapshot_members.c.snapshot_id == to)
            ).scalar_one()
        )


def _copy_in_chunks(db: Database, *, user_id: int, segment_id: int, to: int) -> int:
    """SQLite: an INSERT ... SELECT per chunk of members in contact id order, each its
    own short write transaction. Consistent as one read: every chunk checks, under the
    write lock, that no contact of the user and no segment was written since the first
    (the user's versions, `counts.Snapshot`); if one was, the copy starts again, and
    after `ATTEMPTS` such restarts the rest is copied in one transaction."""
    for attempt in range(ATTEMPTS + 1):
        with db.read() as session:
            versions = counts.snapshot(session, user_id=user_id)
        copied, after = 0, 0
        try:
            last_attempt = attempt == ATTEMPTS
            while True:
                added, after = _copy_chunk(
                    db,
                    versions,
                    user_id=user_id,
                    segment_id=segment_id,
                    to=to,
                    after=after,
                    limit=None if last_attempt else CHUNK,
                )
                copied += added
                if last_attempt or added < CHUNK:
                    return copied
        except counts.StaleCount:
            delete_members_in_chunks(db, user_id=user_id, snapshot_id=to)
    raise AssertionError("unreachable: the last attempt copies in one transaction")


def _copy_chunk(
    db: Database,
    versions: counts.Snapshot,
    *,
    user_id: int,
    segment_id: int,
    to: int,
    after: int,
    limit: int | None,
) -> tuple[int, int]:
    """Copies the members past contact `after` (at most `limit`) in one write
    transaction, if `versions` still hold; returns how many, and the last contact id
    copied (`after` when none)."""
    with db.write() as session:
        versions.check(session, user_id=user_id, segments_too=True)
        return _copy_rows(
            session, user_id=user_id, segment_id=segment_id, to=to, after=after, limit=limit
        )


def _copy_rows(
    session: Session, *, user_id: int, segment_id: int, to: int, after: int, limit: int | None
) -> tuple[int, int]:
    members = _members(session, user_id=user_id, segment_id=segment_id).where(contacts.c.id > after)
    if limit is not None:
        members = members.limit(limit)
    rows = members.subquery()
    session.execute(
        insert(snapshot_members).from_select(
            ["snapshot_id", "contact_id", "user_id", "phone_number", "name", "country_code"],
            select(
                literal(to),
                rows.c.id,
                literal(user_id),
                rows.c.phone_number,
                rows.c.name,
                rows.c.country_code,
            ),
        )
    )
    last = session.execute(
        Tenant(user_id)
        .select(func.max(snapshot_members.c.contact_id))
        .where(snapshot_members.c.snapshot_id == to)
    ).scalar_one()
    if last is None or last <= after:
        return 0, after
    added = session.execute(
        Tenant(user_id)
        .select(func.count(snapshot_members.c.contact_id))
        .where(snapshot_members.c.snapshot_id == to, snapshot_members.c.contact_id > after)
    ).scalar_one()
    return int(added), int(last)


# -- reading --------------------------------------------------------------------------


def _load(session: Session, *, user_id: int, snapshot_id: int) -> Any:
    row = session.execute(
        Tenant(user_id)
        .select(*_COLUMNS)
        .where(snapshots.c.id == snapshot_id, snapshots.c.complete.is_(True))
    ).first()
    if row is None:
        raise errors.NotFound(f"snapshot {snapshot_id} does not exist")
    return row


def get_snapshot(session: Session, *, user_id: int, snapshot_id: int) -> dict[str, Any]:
    return render_snapshot(_load(session, user_id=user_id, snapshot_id=snapshot_id))


def list_snapshots(
    session: Session, *, user_id: int, segment_id: int, page: Page
) -> tuple[list[dict[str, Any]], int]:
    load_segment(session, user_id=user_id, segment_id=segment_id)
    tenant = Tenant(user_id)
    where = (snapshots.c.segment_id == segment_id, snapshots.c.complete.is_(True))
    total = session.execute(tenant.select(func.count(snapshots.c.id)).where(*where)).scalar_one()
    rows = session.execute(
        tenant.select(*_COLUMNS)
        .where(*where)
        .order_by(snapshots.c.id.desc())
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [render_snapshot(row) for row in rows], int(total)


def _status() -> Any:
    return case(
        (contacts.c.id.is_(None), "deleted"),
        (contacts.c.has_opted_out.is_(True), "opted_out"),
        else_="active",
    ).label("status")


def _frozen_with_status(user_id: int, snapshot_id: int) -> Any:
    tenant = Tenant(user_id)
    return (
        select(
            snapshot_members.c.contact_id,
            snapshot_members.c.phone_number,
            snapshot_members.c.name,
            snapshot_members.c.country_code,
            _status(),
        )
        .select_from(
            tenant.join(
                snapshot_members,
                contacts,
                contacts.c.id == snapshot_members.c.contact_id,
                isouter=True,
            )
        )
        .where(tenant.owns(snapshot_members), snapshot_members.c.snapshot_id == snapshot_id)
        .order_by(snapshot_members.c.contact_id)
    )


@dataclass(frozen=True)
class MemberPage:
    rows: list[dict[str, Any]]
    total: int
    has_more: bool


def list_members(
    session: Session,
    *,
    user_id: int,
    snapshot_id: int,
    page: Page,
    after_id: int | None = None,
) -> MemberPage:
    """The snapshot's members as frozen, each with its status now, in contact id order;
    `after_id` is a keyset cursor as in a segment's member list."""
    snapshot = _load(session, user_id=user_id, snapshot_id=snapshot_id)
    query = _frozen_with_status(user_id, snapshot_id)
    if after_id is not None:
        query = query.where(snapshot_members.c.contact_id > after_id)
    else:
        query = query.offset(page.offset)
    rows = session.execute(query.limit(page.size + 1)).all()
    return MemberPage(
        rows=[dict(row._mapping) for row in rows[: page.size]],
        total=int(snapshot.members_count),
        has_more=len(rows) > page.size,
    )


def csv_pages(
    db: Database, *, user_id: int, snapshot_id: int, include_inactive: bool
) -> Iterator[str]:
    """The snapshot as CSV (phone_number, name, status, the columns of frozen values), a
    page at a time, each read in its own short session. Contacts no longer active are
    left out unless `include_inactive`."""
    yield csv_io.csv_text([["phone_number", "name", "status"]])
    after_id = 0
    while True:
        with db.read() as session:
            query = _frozen_with_status(user_id, snapshot_id).where(
                snapshot_members.c.contact_id > after_id
            )
            rows = session.execute(query.limit(CSV_PAGE)).all()
        if not rows:
            return
        after_id = rows[-1].contact_id
        chosen = [r for r in rows if include_inactive or r.status == "active"]
        yield csv_io.csv_text(
            [[r.phone_number, csv_io.escape(r.name or ""), r.status] for r in chosen]
        )


def check_exists(session: Session, *, user_id: int, snapshot_id: int) -> None:
    _load(session, user_id=user_id, snapshot_id=snapshot_id)


# -- deleting -------------------------------------------------------------------------


def delete_snapshot(
    db: Database, *, user_id: int, snapshot_id: int, incomplete_too: bool = False
) -> None:
    """Deletes the snapshot: its members a chunk per transaction (a million rows would
    hold SQLite's write lock for seconds), then the snapshot itself."""
    tenant = Tenant(user_id)
    with db.read() as session:
        where = [snapshots.c.id == snapshot_id]
        if not incomplete_too:
            where.append(snapshots.c.complete.is_(True))
        if session.execute(tenant.select(snapshots.c.id).where(*where)).first() is None:
            raise errors.NotFound(f"snapshot {snapshot_id} does not exist")
    delete_members_in_chunks(db, user_id=user_id, snapshot_id=snapshot_id)
    with db.write() as session:
        session.execute(tenant.delete(snapshots).where(snapshots.c.id == snapshot_id))


def delete_members_in_chunks(db: Database, *, user_id: int, snapshot_id: int) -> None:
    tenant = Tenant(user_id)
    mine = snapshot_members.c.snapshot_id == snapshot_id
    while True:
        with db.write() as session:
            last = session.execute(
                tenant.select(snapshot_members.c.contact_id)
                .where(mine)
                .order_by(snapshot_members.c.contact_id)
                .offset(DELETE_CHUNK - 1)
                .limit(1)
            ).scalar_one_or_none()
            statement = tenant.delete(snapshot_members).where(mine)
            if last is not None:
                statement = statement.where(snapshot_members.c.contact_id <= last)
            session.execute(statement)
        if last is None:
            return
