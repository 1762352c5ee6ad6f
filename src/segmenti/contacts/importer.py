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

Each batch is one transaction, so a crash leaves whole batches and nothing of the one in
flight; re-running the same file is safe (it upserts). Every committed batch leaves
every segment's `total_contacts` exact, by one of two means chosen per batch:
  * deltas: each changed contact's before and after state is evaluated against every
    filter segment in Python, O(changed contacts x filter segments), about 0.6 us per
    pair; opt-out changes adjust the list segments that hold the contact;
  * recount: when the batch changes a large share of the user's contacts (the first
    batches of an import into a small account), each filter segment is counted from
    scratch with one SQL COUNT, O(filter segments x contacts), which is then cheaper.
A user without segments pays nothing for either.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, any_, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from segmenti import auth, errors
from segmenti.contacts.csv_io import BadRow, ContactRow, Row
from segmenti.db.bulk import BulkWriter
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts, segment_members, segments
from segmenti.segments import counts, filters
from segmenti.segments.filters import ContactState
from segmenti.segments.service import count_filter
from segmenti.timeutil import utcnow

log = logging.getLogger("segmenti")

BATCH_SIZE = 10_000
# Rows per look-up or delete statement.
CHUNK = 10_000
# How many invalid rows a report keeps (the CLI's --errors file gets all of them).
SHOWN_INVALID = 10
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


def import_contacts(
    db: Database,
    *,
    user_id: int,
    open_rows: Callable[[], Iterable[Row]],
    strict: bool = False,
    batch_size: int = BATCH_SIZE,
    on_invalid: Callable[[BadRow], None] | None = None,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Imports the rows `open_rows()` yields. With `strict`, the rows are read twice: once
    to find bad rows (any: `errors.Invalid`, nothing written), once to write."""
    with db.read() as session:
        if not auth.user_exists(session, user_id=user_id):
            raise errors.NotFound(f"user {user_id} does not exist")
    if strict:
        _check_all(open_rows(), on_invalid=on_invalid)
    report = ImportReport()
    with db.read() as session:
        known = _count_contacts(session, user_id=user_id)
    try:
        for batch in _batches(open_rows(), report, batch_size=batch_size, on_invalid=on_invalid):
            with db.write() as session:
                created = _write_batch(session, user_id=user_id, batch=batch, known=known)
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
        raise ImportStopped(report, f"the import failed ({type(exc).__name__})") from exc
    return report


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


@dataclass
class _Batch:
    """Rows to write, one per number (repeats folded in file order)."""

    contacts: dict[str, ContactRow]
    rows: int
    last_line: int


def _batches(
    rows: Iterable[Row],
    report: ImportReport,
    *,
    batch_size: int,
    on_invalid: Callable[[BadRow], None] | None,
) -> Iterator[_Batch]:
    pending: dict[str, ContactRow] = {}
    count = 0
    last_line = 0
    for row in rows:
        last_line = row.line
        if isinstance(row, BadRow):
            report.invalid += 1
            if len(report.first_invalid) < SHOWN_INVALID:
                report.first_invalid.append(row)
            if on_invalid is not None:
                on_invalid(row)
            continue
        report.rows += 1
        count += 1
        e164 = row.phone.e164
        earlier = pending.get(e164)
        pending[e164] = row if earlier is None else _later(earlier, row)
        if count >= batch_size:
            yield _Batch(pending, count, last_line)
            pending, count = {}, 0
    if count:
        yield _Batch(pending, count, last_line)


def _later(earlier: ContactRow, row: ContactRow) -> ContactRow:
    """Row `row` applied after `earlier` to the same number: the given fields win."""
    return ContactRow(
        row.line,
        row.phone,
        earlier.name if row.name is None else row.name,
        earlier.has_opted_out if row.has_opted_out is None else row.has_opted_out,
        earlier.custom_parameters if row.custom_parameters is None else row.custom_parameters,
    )


# -- one batch, one transaction --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Existing:
    id: int
    name: str
    custom_parameters: dict[str, str]
    state: ContactState


# In table order, which is the order SQLAlchemy compiles an INSERT's columns in.
_CONTACT_COLUMNS = (
    "user_id",
    "name",
    "phone_number",
    "custom_parameters",
    "continent_code",
    "country_code",
    "has_opted_out",
    "last_datetime",
    "datetime",
)
_PARAMETER_COLUMNS = ("contact_id", "key", "user_id", "value_folded", "value_number")


def _write_batch(session: Session, *, user_id: int, batch: _Batch, known: int) -> int:
    """Writes one batch and keeps the counts exact; returns how many contacts it created."""
    # Exclusive: no other writer of this user's contacts or segments runs until the batch
    # commits, so the numbers looked up below are still (not) there at the upsert.
    version = counts.lock_tenant(session, user_id=user_id, exclusive=True)
    predicates = counts.filter_predicates(session, user_id=user_id, version=version)
    track = bool(predicates) or _has_list_segments(session, user_id=user_id)
    rows = batch.contacts
    existing = _existing(session, user_id=user_id, e164s=list(rows))
    writer = BulkWriter(session)
    now = writer.timestamp(utcnow())
    # value -> (folded, number): parameter values repeat a lot (plans, cities, ages).
    indexed: dict[str, tuple[str, float | None]] = {}
    fold, parse_number = filters.fold, filters.parse_number
    values: list[tuple[Any, ...]] = []
    changes: list[counts.Change] = []
    # (e164, key, folded, number) of every parameter of the contacts whose parameters the
    # file gives: their contact_parameters rows are replaced.
    replaced: list[tuple[str, str, str, float | None]] = []
    replaced_existing: list[int] = []
    for e164, row in rows.items():
        old = existing.get(e164)
        custom = row.custom_parameters
        parameters: Mapping[str, tuple[str, float | None]] | None = None
        if custom is not None:
            given: dict[str, tuple[str, float | None]] = {}
            for key, value in custom.items():
                derived = indexed.get(value)
                if derived is None:
                    derived = indexed[value] = (fold(value), parse_number(value))
                given[key] = derived
                replaced.append((e164, key, *derived))
            parameters = given
            if old is not None:
                replaced_existing.append(old.id)
        elif old is not None:
            custom = old.custom_parameters
        else:
            custom = {}
        if row.has_opted_out is not None:
            opted_out = row.has_opted_out
        else:
            opted_out = old is not None and old.state.has_opted_out
        phone = row.phone
        values.append(
            (
                user_id,
                row.name if row.name is not None else (old.name if old else ""),
                e164,
                writer.json(custom),
                phone.continent_code,
                phone.country_code,
                opted_out,
                None if old is None else now,
                now,
            )
        )
        if not track:
            continue
        if parameters is None:
            parameters = old.state.parameters if old is not None else {}
        after = ContactState(phone.country_code, phone.continent_code, opted_out, parameters)
        if old is None:
            changes.append(counts.Change(0, None, after))
        elif after != old.state:
            changes.append(counts.Change(old.id, old.state, after))
    writer.executemany(_upsert(session), _CONTACT_COLUMNS, values)
    created = [e164 for e164 in rows if e164 not in existing]
    ids = {e164: old.id for e164, old in existing.items()}
    ids.update(_ids(session, user_id=user_id, e164s=created))
    for chunk in _chunks(replaced_existing):
        session.execute(
            delete(contact_parameters).where(
                contact_parameters.c.user_id == user_id,
                contact_parameters.c.contact_id.in_(chunk),
            )
        )
    writer.executemany(
        insert(contact_parameters),
        _PARAMETER_COLUMNS,
        [(ids[e164], key, user_id, folded, number) for e164, key, folded, number in replaced],
    )
    if track:
        _update_counts(
            session,
            user_id=user_id,
            predicates=predicates,
            changes=changes,
            contacts_after=known + len(created),
        )
    return len(created)


def _has_list_segments(session: Session, *, user_id: int) -> bool:
    return (
        session.execute(
            select(segments.c.id)
            .where(segments.c.user_id == user_id, segments.c.type != "filter")
            .limit(1)
        ).first()
        is not None
    )


def _upsert(session: Session) -> Any:
    # The exclusive tenant lock means a conflict cannot come from a concurrent writer; the
    # upsert lets new and existing numbers go in one executemany all the same.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(contacts)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[contacts.c.user_id, contacts.c.phone_number],
        set_={
            "name": excluded.name,
            "custom_parameters": excluded.custom_parameters,
            "country_code": excluded.country_code,
            "continent_code": excluded.continent_code,
            "has_opted_out": excluded.has_opted_out,
            "last_datetime": excluded.last_datetime,
        },
    )


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _one_of(session: Session, column: Any, values: Sequence[str]) -> Any:
    """`column IN (values)` with the whole list as one bound parameter: a JSON array that
    SQLite's json_each unpacks, or a PostgreSQL array. Thousands of `IN (?, ?, ...)`
    parameters would cost more to compile and bind than the look-up itself."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(values), ARRAY(String)))
    each = func.json_each(literal(json.dumps(list(values)), String)).table_valued("value")
    return column.in_(select(each.c.value))


def _existing(session: Session, *, user_id: int, e164s: Sequence[str]) -> dict[str, _Existing]:
    found: dict[str, _Existing] = {}
    for chunk in _chunks(e164s):
        result = session.execute(
            select(
                contacts.c.id,
                contacts.c.phone_number,
                contacts.c.name,
                contacts.c.custom_parameters,
                contacts.c.country_code,
                contacts.c.continent_code,
                contacts.c.has_opted_out,
            ).where(contacts.c.user_id == user_id, _one_of(session, contacts.c.phone_number, chunk))
        )
        for row in result:
            custom = dict(row.custom_parameters or {})
            found[row.phone_number] = _Existing(
                row.id,
                row.name,
                custom,
                ContactState(
                    row.country_code,
                    row.continent_code,
                    bool(row.has_opted_out),
                    filters.indexed_parameters(custom),
                ),
            )
    return found


def _ids(session: Session, *, user_id: int, e164s: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for chunk in _chunks(e164s):
        result = session.execute(
            select(contacts.c.phone_number, contacts.c.id).where(
                contacts.c.user_id == user_id, _one_of(session, contacts.c.phone_number, chunk)
            )
        )
        ids.update((number, contact_id) for number, contact_id in result)
    return ids


# -- counts ----------------------------------------------------------------------------


def _update_counts(
    session: Session,
    *,
    user_id: int,
    predicates: tuple[tuple[int, filters.Predicate], ...],
    changes: list[counts.Change],
    contacts_after: int,
) -> None:
    if not changes:
        return
    deltas: Counter[int] = Counter()
    if predicates:
        if len(changes) > RECOUNT_SHARE * contacts_after:
            _recount_filters(session, user_id=user_id)
        else:
            for change in changes:
                for segment_id, predicate in predicates:
                    delta = _counted(change.after, predicate) - _counted(change.before, predicate)
                    if delta:
                        deltas[segment_id] += delta
    _list_deltas(session, user_id=user_id, changes=changes, deltas=deltas)
    counts.apply_deltas(session, deltas, user_id=user_id)


def _counted(state: ContactState | None, predicate: filters.Predicate) -> bool:
    return state is not None and not state.has_opted_out and predicate(state)


def _recount_filters(session: Session, *, user_id: int) -> None:
    rows = session.execute(
        select(segments.c.id, segments.c.settings)
        .where(segments.c.user_id == user_id, segments.c.type == "filter")
        .order_by(segments.c.id)
    ).all()
    for row in rows:
        total = count_filter(
            session, user_id=user_id, spec=filters.Filter.from_settings(row.settings)
        )
        session.execute(
            update(segments)
            .where(segments.c.user_id == user_id, segments.c.id == row.id)
            .values(total_contacts=total)
        )


def _list_deltas(
    session: Session, *, user_id: int, changes: list[counts.Change], deltas: Counter[int]
) -> None:
    """Bulk and custom segments hold existing contacts only; an opt-out change moves
    their counts by one for every segment that lists the contact."""
    by_direction: dict[int, list[int]] = {1: [], -1: []}
    for change in changes:
        before, after = change.before, change.after
        if before is not None and after is not None and before.has_opted_out != after.has_opted_out:
            by_direction[-1 if after.has_opted_out else 1].append(change.contact_id)
    for direction, contact_ids in by_direction.items():
        for chunk in _chunks(contact_ids):
            result = session.execute(
                select(segment_members.c.segment_id, func.count())
                .where(
                    segment_members.c.user_id == user_id,
                    segment_members.c.contact_id.in_(chunk),
                )
                .group_by(segment_members.c.segment_id)
            )
            for segment_id, how_many in result:
                deltas[segment_id] += direction * how_many


def _count_contacts(session: Session, *, user_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(contacts).where(contacts.c.user_id == user_id)
        ).scalar_one()
    )
