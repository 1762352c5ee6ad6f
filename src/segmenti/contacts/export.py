"""Contacts out as CSV, in the columns an import reads, so an export re-imports to the
same contacts.

Streamed a page at a time by contact id (a keyset cursor), each page read in its own
short session: the connection goes back to the pool before the page is handed on, so a
client that reads slowly, or stops reading, holds no connection and no snapshot (on
SQLite, a snapshot held open would also keep the write-ahead log from being
checkpointed). Memory stays flat: one page of rows and its text.

What a write made during an export does to it: the columns (parameter keys) and a
segment's definition are read when the export starts; each page then sees the contacts
as committed when that page is read. A contact created meanwhile is exported if its id
lies past the page being read (new ids grow); one deleted before its page is read is
left out; one changed after its page was sent is exported as it was, and one changed
before as it is then (a value under a key added after the start is not written, as no
column holds it). Every contact unchanged during the export is exported exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from segmenti.contacts import csv_io
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts
from segmenti.db.tenant import Tenant

PAGE = 5_000
# A page of a user with many keys is shorter, so that a page (its rows, then its text)
# stays a few megabytes at most: 64 keys of 512-character values make 35 KB rows.
PAGE_CELLS = 100_000


@dataclass(frozen=True)
class Export:
    """What an export holds, decided when it starts: which contacts, which columns."""

    where: ColumnElement[bool]
    keys: list[str]

    @property
    def page_size(self) -> int:
        return max(100, min(PAGE, PAGE_CELLS // (len(self.keys) + 3)))

    def header(self) -> str:
        return csv_io.csv_text([csv_io.export_header(self.keys)])


def start_export(
    session: Session, *, user_id: int, where: ColumnElement[bool] | None = None
) -> Export:
    """All of the user's contacts, or those `where` picks (a WHERE clause over contacts,
    scoped to the user: a segment's members, `segments.export`)."""
    if where is None:
        where = Tenant(user_id).owns(contacts)
    return Export(where=where, keys=parameter_keys(session, user_id=user_id))


def parameter_keys(session: Session, *, user_id: int, limit: int | None = None) -> list[str]:
    """Every custom parameter key the user's contacts have (the first `limit` of them),
    sorted: one export column each (a segment's export may then carry columns its
    members leave empty, which read back as unset), and the dashboard's key suggestions.
    One index seek per key rather than a scan of every parameter row."""
    keys: list[str] = []
    while limit is None or len(keys) < limit:
        query = Tenant(user_id).select(func.min(contact_parameters.c.key))
        if keys:
            query = query.where(contact_parameters.c.key > keys[-1])
        key = session.execute(query).scalar_one()
        if key is None:
            break
        keys.append(key)
    # Sorted here, not by the database, so every backend's collation gives the same
    # column order.
    return sorted(keys)


def read_page(db: Database, export: Export, *, after_id: int) -> tuple[str, int | None]:
    """The CSV text of the page of contacts after `after_id`, and the last id on it (None
    when no contact is left). Its own session, closed before the text is made."""
    with db.read() as session:
        rows = session.execute(
            select(
                contacts.c.id,
                contacts.c.phone_number,
                contacts.c.name,
                contacts.c.has_opted_out,
                contacts.c.custom_parameters,
            )
            .where(export.where, contacts.c.id > after_id)
            .order_by(contacts.c.id)
            .limit(export.page_size)
        ).all()
    if not rows:
        return "", None
    keys = export.keys
    text = csv_io.csv_text([csv_io.export_row(row._mapping, keys) for row in rows])
    return text, int(rows[-1].id)


def export_csv(db: Database, export: Export) -> Iterator[str]:
    """The CSV text, a page at a time (the CLI's export)."""
    yield export.header()
    after_id = 0
    while True:
        text, last_id = read_page(db, export, after_id=after_id)
        if last_id is None:
            return
        yield text
        after_id = last_id
