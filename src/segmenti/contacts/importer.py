"""Bulk import of contacts: upsert by E.164 number, in batches that commit atomically.

A row is the contact as the file shows it (the same rule as `POST /api/contacts/{id}`):
  * a number the user does not have becomes a contact; one it has is updated;
  * custom parameters are **replaced**, not merged: when the file has parameter columns,
    the contact ends with exactly the row's non-empty cells. Merging could never remove a
    key, so a corrected spreadsheet could not clear a stale value and re-importing an
    export would not restore it. A file without parameter columns leaves them untouched;
  * `name` likewise replaces (when the column exists); `has_opted_out` changes only when
    its cell says so, so no import silently resubscribes anyone;
  * a number repeated in the file is applied in file order (the last row wins).

Rows are staged a batch at a time (`staging.py`: repeats folded, parameters folded and
parsed, one small SQLite file per batch), and each staged batch is written with a fixed
handful of set-based statements (`_write_batch`): no Python touches a row on the way in.

Each batch is one transaction, so a crash leaves whole batches and nothing of the one in
flight; re-running the same file is safe (it upserts). Every committed batch leaves
every segment's `total_contacts` exact: the batch hands each changed contact's before
and after state to `membership/counts.py`, which writes the counts, by one of two
means chosen here per batch:
  * deltas: each change is evaluated against every filter segment in Python,
    O(changed contacts x filter segments), about 0.6 us per pair;
  * recount: when the batch changes a large share of the user's contacts (the first
    batches of an import into a small account), each filter segment is counted from
    scratch with one SQL COUNT, O(filter segments x contacts), which is then cheaper.
Either way, opt-out changes adjust the list segments that hold the contact. A user
without segments pays nothing for either.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql
from sqlalchemy import (
    Float,
    String,
    Table,
    Text,
    and_,
    case,
    column,
    false,
    func,
    insert,
    literal,
    select,
    true,
    values,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, FromClause

from segmenti import auth, errors
from segmenti.contacts import staging
from segmenti.contacts.csv_io import BadRow, Row
from segmenti.contacts.staging import StagedBatch, StageTables
from segmenti.db.engine import Database, timed_out
from segmenti.db.tables import MAX_ID, contact_parameters, contacts
from segmenti.db.tenant import Tenant, across_tenants
from segmenti.errors import SHOWN_INVALID
from segmenti.membership import counts, filters
from segmenti.membership.filters import ContactState
from segmenti.timeutil import utcnow

log = logging.getLogger("segmenti")

BATCH_SIZE = 100_000
# Recount the filter segments instead of evaluating deltas when a batch changes more than
# this share of the user's contacts: a COUNT visits every contact once per segment at
# roughly the cost of one Python evaluation, so past one half the COUNT is cheaper.
RECOUNT_SHARE = 0.5


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    invalid: int = 0
    batches: int = 0
    # The last line of the file that the committed batches cover.
    committed_through_line: int = 0
    first_invalid: list[BadRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "invalid": self.invalid,
            "batches": self.batches,
            "committed_through_line": self.committed_through_line,
            "invalid_rows": [bad.as_dict() for bad in self.first_invalid],
        }


class ImportStopped(errors.SegmentiError):
    """The import failed part-way; `report` says what the committed batches hold."""

    status = 500
    title = "Import stopped"

    def __init__(self, report: ImportReport, cause: str, *, status: int = 500) -> None:
        if report.batches:
            done = (
                f"{report.batches} batch(es) were committed, covering lines 2 to "
                f"{report.committed_through_line}; the rest was not written"
            )
        else:
            done = "nothing was written"
        super().__init__(f"{cause}: {done}", parameter="file", meta=report.as_dict())
        self.report = report
        if status == 400:
            self.status, self.title = 400, "Invalid file"
        elif status == 503:  # a statement ran past the statement timeout
            self.status, self.title = 503, errors.QueryTooLong.title


def import_contacts(
    db: Database,
    *,
    user_id: int,
    open_rows: Callable[[], Iterable[Row]],
    open_batches: Callable[[Path, int], Iterable[StagedBatch]] | None = None,
    strict: bool = False,
    batch_size: int = BATCH_SIZE,
    on_invalid: Callable[[BadRow], None] | None = None,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Imports the rows `open_rows()` yields, staged (`staging.py`) in this process, or
    the batches `open_batches(directory, batch_size)` stages elsewhere (the CLI's reader
    process) into that directory. With `strict`, the rows are first read once to find bad rows
    (any: `errors.Invalid`, nothing written)."""
    with db.read() as session:
        if not auth.user_exists(session, user_id=user_id):
            raise errors.NotFound(f"user {user_id} does not exist")
    if strict:
        _check_all(open_rows(), on_invalid=on_invalid)
    report = ImportReport()
    with db.read() as session:
        known = _count_contacts(session, user_id=user_id)
    guess_new = known == 0
    try:
        with contextlib.ExitStack() as stack:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="segmenti-import-"))
            stack.enter_context(db.background_checkpoints())
            # Analyzed between batches when far off, vacuumed at the end (statistics.py).
            stack.enter_context(db.statistics.importing())
            directory = Path(scratch)
            if open_batches is not None:
                batches = iter(open_batches(directory, batch_size))
            else:
                batches = staging.stage_batches(open_rows(), directory, batch_size=batch_size)
            # Closed first, whatever happens: a reader process still staging into the
            # directory is stopped before the directory is removed.
            if hasattr(batches, "close"):
                stack.callback(batches.close)
            for batch in batches:
                _note_invalid(report, batch.invalid, on_invalid)
                if batch.path is None:
                    continue
                report.rows += batch.rows
                try:
                    ids = _write_staged(
                        db, user_id=user_id, batch=batch, known=known, guess_new=guess_new
                    )
                finally:
                    batch.path.unlink(missing_ok=True)
                created = ids.created
                # New numbers tend to come in runs: a first import, a file of sign-ups.
                guess_new = created == ids.rows
                known += created
                report.created += created
                report.updated += batch.rows - created
                report.batches += 1
                report.committed_through_line = batch.last_line
                if on_batch is not None:
                    on_batch(report)
    except errors.Invalid as exc:  # the file broke down part-way (not UTF-8, bad CSV)
        raise ImportStopped(report, exc.detail or exc.title, status=400) from exc
    except Exception as exc:
        log.error("import for user %s stopped after %s batches", user_id, report.batches,
                  exc_info=exc)  # fmt: skip
        if timed_out(exc):
            cause = "a database statement ran past the statement timeout"
            raise ImportStopped(report, cause, status=503) from exc
        raise ImportStopped(report, f"the import failed ({type(exc).__name__})") from exc
    return report


def _note_invalid(
    report: ImportReport, invalid: list[BadRow], on_invalid: Callable[[BadRow], None] | None
) -> None:
    for bad in invalid:
        report.invalid += 1
        if len(report.first_invalid) < SHOWN_INVALID:
            report.first_invalid.append(bad)
        if on_invalid is not None:
            on_invalid(bad)


def _check_all(rows: Iterable[Row], *, on_invalid: Callable[[BadRow], None] | None) -> None:
    invalid: list[BadRow] = []
    count = 0
    for row in rows:
        if isinstance(row, BadRow):
            count += 1
            if len(invalid) < SHOWN_INVALID:
                invalid.append(row)
            if on_invalid is not None:
                on_invalid(row)
    if count:
        listed = "; ".join(f"line {bad.line}: {bad.reason}" for bad in invalid)
        raise errors.Invalid(
            f"{count} invalid row(s), nothing was imported. First: {listed}",
            parameter="file",
            meta={"invalid": count, "invalid_rows": [bad.as_dict() for bad in invalid]},
        )


# -- one batch, one transaction --------------------------------------------------------


def _write_staged(
    db: Database, *, user_id: int, batch: StagedBatch, known: int, guess_new: bool
) -> _Ids:
    assert batch.path is not None
    if db.is_sqlite:
        # The batch's file is read in place, attached to the writing connection. Bulk:
        # the foreign keys of the rows written (a contact's user, a parameter's contact)
        # hold by construction, as every contact id comes from batch_map, which holds
        # the user's contacts found by number and the new ones written in this
        # transaction for this user; checking them again would cost a look-up per
        # parameter (~10% of the write). The commit leaves checkpoints to the thread
        # `import_contacts` runs.
        attached = db.write_attached(schema=staging.STAGE_SCHEMA, path=batch.path, bulk=True)
        with attached as session:
            keys = staging.stage_tables("sqlite").keys
            names = session.execute(select(keys.c.key).order_by(keys.c.position)).scalars()
            stage = staging.stage_tables("sqlite", list(names))
            return _write_batch(session, stage, user_id=user_id, known=known, guess_new=guess_new)
    with db.write() as session:
        stage = _copy_stage(session, batch.path)
        return _write_batch(session, stage, user_id=user_id, known=known, guess_new=guess_new)


def _copy_stage(session: Session, path: Path) -> StageTables:
    """PostgreSQL: the batch's staged tables, copied into temporary tables."""
    dialect = session.get_bind().dialect.name
    keys = staging.stage_tables(dialect).keys
    stage = staging.stage_tables(dialect, [key for _, key in staging.read_stage(path, keys)])
    connection = session.connection()
    driver = connection.connection.driver_connection
    assert driver is not None
    for table in (stage.rows, stage.keys, stage.parameters):
        table.create(connection)
        name = sql.Identifier(table.name)
        columns = sql.SQL(", ").join(sql.Identifier(column.name) for column in table.columns)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(name, columns)
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in staging.read_stage(path, table):
                copy.write_row(row)
        _analyze(session, table)
    return stage


def _analyze(session: Session, table: Table) -> None:
    """PostgreSQL never analyzes temporary tables by itself; the joins want their sizes.
    Only the columns statements join or look up on: statistics of every staged value
    column (up to 64) cost a batch of 100,000 rows about half a second, and no plan
    reads them."""
    preparer = session.get_bind().dialect.identifier_preparer
    joined = [c for c in table.columns if c.name in _JOINED_COLUMNS] or list(table.columns)
    columns = ", ".join(preparer.format_column(c) for c in joined)
    session.connection().exec_driver_sql(f"ANALYZE {preparer.format_table(table)} ({columns})")


# What the batch's statements join staged tables on, or look contacts up by.
_JOINED_COLUMNS = frozenset({"seq", "position", "phone_number", "id", "is_new"})


def _write_batch(
    session: Session, stage: StageTables, *, user_id: int, known: int, guess_new: bool
) -> _Ids:
    """Writes the staged batch and keeps the counts exact. Set-based: a fixed number of
    statements whatever the batch's size. With `guess_new`, first tries the batch as
    new contacts only (`_insert_all_new`)."""
    # Exclusive: no other writer of this user's contacts or segments runs until the batch
    # commits, so the numbers looked up below are still (not) there at the writes.
    version = counts.lock_tenant(session, user_id=user_id, exclusive=True)
    track = counts.has_segments(session, user_id=user_id, version=version)
    now = utcnow()
    guessed = _insert_all_new(session, stage, user_id=user_id, now=now) if guess_new else None
    ids = guessed or _map_numbers(session, stage, user_id=user_id)
    changes = _changes(session, stage, ids, user_id=user_id) if track else []
    if guessed is None:
        if ids.created < ids.rows:
            _update_existing(session, stage, user_id=user_id, now=now)
            _delete_replaced_parameters(session, stage, user_id=user_id)
        _insert_new(session, stage, ids, user_id=user_id, now=now)
    _insert_parameters(session, stage, ids, user_id=user_id)
    if changes:
        # The share decides how counts are kept (module doc); `counts` writes them.
        recount = len(changes) > RECOUNT_SHARE * (known + ids.created)
        counts.contacts_written(
            session,
            user_id=user_id,
            version=version,
            written=counts.ContactChanges(changes, recount_filters=recount),
        )
    if ids.mapped and session.get_bind().dialect.name == "sqlite":
        stage.batch_map.drop(session.connection())  # (PostgreSQL drops it at commit)
    return ids


@dataclass(frozen=True)
class _Ids:
    """Which contact each staged row (`seq`) is, once batch_map is written.

    Through batch_map, in general. When every row of the batch is a new contact (every
    batch of a first import) and the ids were given in file order (SQLite), the id of
    row `seq` is simply `first + seq`: no join, which spares a look-up per parameter."""

    batch_map: Table
    rows: int
    created: int
    first: int | None
    # Whether batch_map was written.
    mapped: bool = True

    def of(self, table: Table) -> tuple[ColumnElement[Any], FromClause]:
        """The contact id of each row of a staged table, and what to select it from."""
        if self.first is not None:
            return literal(self.first) + table.c.seq, table
        batch_map = self.batch_map
        return batch_map.c.id, table.join(batch_map, batch_map.c.seq == table.c.seq)


def _insert_all_new(
    session: Session, stage: StageTables, *, user_id: int, now: datetime
) -> _Ids | None:
    """SQLite: writes the batch's contacts on the guess that every number is new (each
    batch of a first import), with ids following seq: no number is looked up first,
    and no batch_map is needed. A number the user has fails the insert on the unique
    key; the insert is then undone (a savepoint) and None returned, for the general way."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    with across_tenants("SQLite numbers every user's contacts from one rowid"):
        last = session.execute(select(func.coalesce(func.max(contacts.c.id), 0))).scalar_one()
    total = session.execute(select(func.count()).select_from(stage.rows)).scalar_one()
    _check_ids_left(last + total, total)
    ids = _Ids(stage.batch_map, total, total, last + 1, mapped=False)
    try:
        with session.begin_nested():
            _insert_new(session, stage, ids, user_id=user_id, now=now)
    except IntegrityError:
        return None
    return ids


def _check_ids_left(top: int, created: int) -> None:
    if created and top > MAX_ID:
        raise errors.Invalid(
            f"the database has no ids left for {created} new contacts", parameter="file"
        )


def _map_numbers(session: Session, stage: StageTables, *, user_id: int) -> _Ids:
    """batch_map: each staged row's contact, found by number, or the id the new contact
    will have (given now, so that its parameters can be written set-based too)."""
    rows, batch_map = stage.rows, stage.batch_map
    batch_map.create(session.connection())
    is_new = contacts.c.id.is_(None)
    contact_id: ColumnElement[Any]
    last = None
    if session.get_bind().dialect.name == "postgresql":
        # (COALESCE evaluates nextval only for the rows that need it.)
        sequence = func.pg_get_serial_sequence(contacts.name, contacts.c.id.name)
        contact_id = func.coalesce(contacts.c.id, func.nextval(sequence))
    else:
        # The ids the rowid would give, max(id) + 1 onwards, in file order; BEGIN
        # IMMEDIATE made this the only writer, so nobody else takes them first.
        with across_tenants("SQLite numbers every user's contacts from one rowid"):
            last = session.execute(select(func.coalesce(func.max(contacts.c.id), 0))).scalar_one()
        rank = func.row_number().over(partition_by=is_new, order_by=rows.c.seq)
        contact_id = case((is_new, last + rank), else_=contacts.c.id)
    found = select(rows.c.seq, contact_id, is_new).outerjoin_from(
        rows,
        contacts,
        and_(Tenant(user_id).owns(contacts), contacts.c.phone_number == rows.c.phone_number),
    )
    session.execute(insert(batch_map).from_select(["seq", "id", "is_new"], found))
    if session.get_bind().dialect.name == "postgresql":
        _analyze(session, batch_map)
    total, created, top = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((batch_map.c.is_new, 1), else_=0)), 0),
            func.max(batch_map.c.id),
        )
    ).one()
    _check_ids_left(top or 0, created)
    first = last + 1 if last is not None and created == total else None
    return _Ids(batch_map, int(total), int(created), first)


def _changes(
    session: Session, stage: StageTables, ids: _Ids, *, user_id: int
) -> list[counts.Change]:
    """Each staged contact's state before and after the batch, for the counts. Read
    before the batch's writes, unless every contact is new (nothing before)."""
    rows, batch_map = stage.rows, stage.batch_map
    indexed = filters.indexed_parameters
    if not ids.mapped:
        assert ids.first is not None
        result = session.execute(
            select(
                rows.c.seq,
                rows.c.country_code,
                rows.c.continent_code,
                rows.c.has_opted_out,
                rows.c.custom_parameters,
            )  # fmt: skip
        )
        first = ids.first
        return [
            counts.Change(
                first + seq,
                None,
                ContactState(country, continent, bool(opted_out), indexed(custom or {})),
            )
            for seq, country, continent, opted_out, custom in result
        ]
    old = contacts
    result = session.execute(
        select(
            batch_map.c.id,
            batch_map.c.is_new,
            rows.c.country_code,
            rows.c.continent_code,
            rows.c.has_opted_out,
            rows.c.custom_parameters,
            old.c.country_code.label("old_country_code"),
            old.c.continent_code.label("old_continent_code"),
            old.c.has_opted_out.label("old_has_opted_out"),
            old.c.custom_parameters.label("old_custom_parameters"),
        )
        .join_from(batch_map, rows, rows.c.seq == batch_map.c.seq)
        .outerjoin(old, and_(Tenant(user_id).owns(old), old.c.id == batch_map.c.id))
    )
    changes: list[counts.Change] = []
    for row in result:
        custom = row.custom_parameters
        if row.is_new:
            after = ContactState(
                row.country_code,
                row.continent_code,
                bool(row.has_opted_out),
                indexed(custom or {}),
            )
            changes.append(counts.Change(row.id, None, after))
            continue
        old_parameters = indexed(row.old_custom_parameters or {})
        before = ContactState(
            row.old_country_code,
            row.old_continent_code,
            bool(row.old_has_opted_out),
            old_parameters,
        )
        after = ContactState(
            row.country_code,
            row.continent_code,
            before.has_opted_out if row.has_opted_out is None else bool(row.has_opted_out),
            old_parameters if custom is None else indexed(custom),
        )
        if after != before:
            changes.append(counts.Change(row.id, before, after))
    return changes


def _update_existing(session: Session, stage: StageTables, *, user_id: int, now: datetime) -> None:
    """The file's fields replace the contact's; the ones it does not give (NULL) stay."""
    rows, batch_map = stage.rows, stage.batch_map
    session.execute(
        Tenant(user_id)
        .update(contacts)
        .where(
            contacts.c.id == batch_map.c.id,
            ~batch_map.c.is_new,
            rows.c.seq == batch_map.c.seq,
        )
        .values(
            name=func.coalesce(rows.c.name, contacts.c.name),
            custom_parameters=func.coalesce(rows.c.custom_parameters, contacts.c.custom_parameters),
            country_code=rows.c.country_code,
            continent_code=rows.c.continent_code,
            has_opted_out=func.coalesce(rows.c.has_opted_out, contacts.c.has_opted_out),
            last_datetime=now,
        )
    )


def _insert_new(
    session: Session, stage: StageTables, ids: _Ids, *, user_id: int, now: datetime
) -> None:
    if not ids.created:
        return
    rows = stage.rows
    contact_id, source = ids.of(rows)
    new = select(
        contact_id,
        literal(user_id),
        func.coalesce(rows.c.name, ""),
        rows.c.phone_number,
        func.coalesce(rows.c.custom_parameters, literal({}, contacts.c.custom_parameters.type)),
        rows.c.continent_code,
        rows.c.country_code,
        func.coalesce(rows.c.has_opted_out, false()),
        literal(now, contacts.c.datetime.type),
    ).select_from(source)
    if ids.first is None:
        new = new.where(stage.batch_map.c.is_new)
    columns = ["id", "user_id", "name", "phone_number", "custom_parameters",
               "continent_code", "country_code", "has_opted_out", "datetime"]  # fmt: skip
    session.execute(insert(contacts).from_select(columns, new.order_by(rows.c.seq)))


def _delete_replaced_parameters(session: Session, stage: StageTables, *, user_id: int) -> None:
    """The old parameter index rows of the existing contacts whose parameters the file
    gives (`_insert_parameters` writes their new ones)."""
    rows, batch_map = stage.rows, stage.batch_map
    given = (
        select(batch_map.c.id)
        .join_from(batch_map, rows, rows.c.seq == batch_map.c.seq)
        .where(~batch_map.c.is_new, rows.c.custom_parameters.is_not(None))
    )
    session.execute(
        Tenant(user_id).delete(contact_parameters).where(contact_parameters.c.contact_id.in_(given))
    )


def _insert_parameters(session: Session, stage: StageTables, ids: _Ids, *, user_id: int) -> None:
    """The parameter index rows of every staged contact whose parameters the file gives:
    those of the keys with columns of their own (one statement per key on SQLite, one
    for all on PostgreSQL), then one statement for the keys past them."""
    if session.get_bind().dialect.name == "postgresql":
        _insert_wide_parameters_together(session, stage, ids, user_id=user_id)
    else:
        _insert_wide_parameters(session, stage, ids, user_id=user_id)
    if stage.narrow:
        parameters, keys = stage.parameters, stage.keys
        contact_id, source = ids.of(parameters)
        staged = select(
            contact_id,
            keys.c.key,
            literal(user_id),
            parameters.c.value_folded,
            parameters.c.value_number,
        ).select_from(source.join(keys, keys.c.position == parameters.c.position))
        session.execute(insert(contact_parameters).from_select(_PARAMETER_COLUMNS, staged))


_PARAMETER_COLUMNS = ["contact_id", "key", "user_id", "value_folded", "value_number"]


def _insert_wide_parameters(
    session: Session, stage: StageTables, ids: _Ids, *, user_id: int
) -> None:
    """SQLite: one statement per key, each a pass over the staged rows in C."""
    for key, value, number in stage.wide():
        contact_id, source = ids.of(stage.rows)
        staged = (
            select(contact_id, literal(key), literal(user_id), value, number)
            .select_from(source)
            .where(value != staging.ABSENT)
        )
        session.execute(insert(contact_parameters).from_select(_PARAMETER_COLUMNS, staged))


def _insert_wide_parameters_together(
    session: Session, stage: StageTables, ids: _Ids, *, user_id: int
) -> None:
    """PostgreSQL: every key's rows in one statement, in the order of the primary key
    (contact, key). One pass per key, as on SQLite, would insert each key's rows
    between the previous passes' rows, splitting primary key pages all over the index;
    in key order the index grows at its right edge for new contacts, and the foreign
    key's look-up of each row's contact finds the page the previous row read."""
    if not stage.key_names:
        return
    contact_id, source = ids.of(stage.rows)
    given = (
        values(column("key", String), column("value", Text), column("number", Float), name="given")
        .data([(literal(key), value, number) for key, value, number in stage.wide()])
        .lateral()
    )
    staged = (
        select(contact_id, given.c.key, literal(user_id), given.c.value, given.c.number)
        .select_from(source.join(given, true()))
        .where(given.c.value != staging.ABSENT)
        .order_by(contact_id, given.c.key)
    )
    session.execute(insert(contact_parameters).from_select(_PARAMETER_COLUMNS, staged))


def _count_contacts(session: Session, *, user_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(contacts).where(Tenant(user_id).owns(contacts))
        ).scalar_one()
    )
