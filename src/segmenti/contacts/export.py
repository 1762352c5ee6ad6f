"""Contacts out as CSV, in the columns an import reads, so an export re-imports to the
same contacts. Streamed: contacts are read a page at a time by id, so memory stays flat
whatever the number of contacts."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from segmenti.contacts import csv_io
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts
from segmenti.segments import service as segments_service
from segmenti.segments.members import members_where

PAGE = 5_000


def contacts_where(
    session: Session, *, user_id: int, segment_id: int | None
) -> ColumnElement[bool]:
    """Which contacts an export holds: all of the user's, or a segment's members (opted-out
    members included: the has_opted_out column says so). NotFound for another user's or
    a missing segment, raised before anything is streamed."""
    if segment_id is None:
        return contacts.c.user_id == user_id
    segment = segments_service.get_segment(session, user_id=user_id, segment_id=segment_id)
    return members_where(
        user_id=user_id,
        segment_id=segment_id,
        type=segment["type"],
        settings=segment["settings"],
        include_opted_out=True,
    )


def export_csv(db: Database, *, user_id: int, segment_id: int | None = None) -> Iterator[str]:
    """The CSV text in chunks. Call `contacts_where` first when a missing segment must be
    an error rather than a stream that stops."""
    with db.read() as session:
        where = contacts_where(session, user_id=user_id, segment_id=segment_id)
        keys = parameter_keys(session, user_id=user_id)
        yield from csv_io.csv_chunks(
            csv_io.export_header(keys), _rows(session, where=where, keys=keys)
        )


def parameter_keys(session: Session, *, user_id: int) -> list[str]:
    """Every custom parameter key the user's contacts have, sorted: one column each (a
    segment's export may then carry columns its members leave empty, which read back as
    unset). One index seek per key rather than a scan of every parameter row."""
    keys: list[str] = []
    while True:
        query = select(func.min(contact_parameters.c.key)).where(
            contact_parameters.c.user_id == user_id
        )
        if keys:
            query = query.where(contact_parameters.c.key > keys[-1])
        key = session.execute(query).scalar_one()
        if key is None:
            # Sorted here, not by the database, so every backend's collation gives the
            # same column order.
            return sorted(keys)
        keys.append(key)


def _rows(session: Session, *, where: ColumnElement[bool], keys: list[str]) -> Iterator[list[str]]:
    last_id = 0
    while True:
        page = session.execute(
            select(
                contacts.c.id,
                contacts.c.phone_number,
                contacts.c.name,
                contacts.c.has_opted_out,
                contacts.c.custom_parameters,
            )
            .where(where, contacts.c.id > last_id)
            .order_by(contacts.c.id)
            .limit(PAGE)
        ).all()
        if not page:
            return
        for row in page:
            yield csv_io.export_row(row._mapping, keys)
        last_id = page[-1].id
