"""Segments: named sets of a user's contacts, of three types.

  * bulk: a list of phone numbers; numbers that are not yet contacts become contacts;
  * custom: a list of the user's contact ids;
  * filter: a live filter (`filters.py`) over the user's contacts.
Members of bulk and custom segments are stored in `segment_members`; filter members
are computed. `total_contacts` is maintained exactly by `membership/counts.py`, which
stores members and counts from what this module hands it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import (
    Integer,
    String,
    and_,
    false,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from segmenti import errors, phones, timeutil
from segmenti.contacts.service import CONTACT_COLUMNS, render_contact
from segmenti.db import bulk
from segmenti.db.bulk import BulkWriter
from segmenti.db.engine import Database
from segmenti.db.tables import MAX_ID, contacts, segment_members, segments
from segmenti.db.tenant import Tenant, across_tenants
from segmenti.errors import SHOWN_INVALID
from segmenti.membership import counts, filters
from segmenti.membership.filters import ContactState
from segmenti.paging import Page
from segmenti.segments import recount
from segmenti.timeutil import render, utcnow

TYPES = ("bulk", "custom", "filter")
ORDER_BY = ("id", "name", "datetime", "last_datetime", "total_contacts")
ORDER_TYPES = ("asc", "desc")
# How many invalid entries an error lists.

_PHONE_SEPARATORS = re.compile(r"\r\n|[\n\r,;]")


@dataclass(frozen=True)
class BulkNumbers:
    """Normalized, de-duplicated numbers of a bulk segment, in first-seen order."""

    numbers: tuple[phones.PhoneInfo, ...]


@dataclass(frozen=True)
class SegmentInput:
    """A validated create or update; None means "not given"."""

    name: str | None = None
    type: str | None = None
    bulk: BulkNumbers | None = None
    contacts_ids: tuple[int, ...] | None = None
    filter: filters.Filter | None = None
    # What the input calls its first filter parameter, for errors (segments/forms.py
    # gives the API's field): the domain knows no request's field names.
    filter_parameter: str = "filter"

    def given_types(self) -> list[str]:
        given = []
        if self.bulk is not None:
            given.append("bulk")
        if self.contacts_ids is not None:
            given.append("custom")
        if self.filter is not None:
            given.append("filter")
        return given

    def parameter_of(self, kind: str) -> str:
        """The request parameter that makes this input of the given type."""
        if kind == "filter":
            return self.filter_parameter
        return "phone_numbers" if kind == "bulk" else "contacts_ids"


def split_phone_numbers(raw: Sequence[str]) -> list[tuple[int, str]]:
    """(1-based position, entry) of every non-empty entry, splitting each string on
    newlines, commas and semicolons."""
    entries: list[tuple[int, str]] = []
    position = 0
    for chunk in raw:
        for entry in _PHONE_SEPARATORS.split(chunk):
            position += 1
            if entry.strip():
                entries.append((position, entry))
    return entries


def normalize_bulk(raw: Sequence[str], *, limit: int) -> BulkNumbers:
    entries = split_phone_numbers(raw)
    if not entries:
        raise errors.Invalid(
            "phone_numbers must list at least one number", parameter="phone_numbers"
        )
    seen: dict[str, phones.PhoneInfo] = {}
    invalid: list[dict[str, Any]] = []
    invalid_count = 0
    for position, entry in entries:
        try:
            info = phones.normalize_phone(entry)
        except phones.InvalidPhone as exc:
            invalid_count += 1
            if len(invalid) < SHOWN_INVALID:
                invalid.append({"position": position, "value": entry[:64], "reason": exc.reason})
            continue
        seen.setdefault(info.e164, info)
    if invalid:
        listed = "; ".join(f"#{i['position']} {i['value']!r}: {i['reason']}" for i in invalid)
        raise errors.Invalid(
            f"{invalid_count} invalid phone number(s), nothing was saved. First: {listed}",
            parameter="phone_numbers",
            meta={"invalid_count": invalid_count, "invalid": invalid},
        )
    if len(seen) > limit:
        raise errors.Invalid(
            f"a bulk segment takes at most {limit} distinct phone numbers, got {len(seen)}",
            parameter="phone_numbers",
        )
    return BulkNumbers(tuple(seen.values()))


def parse_contacts_ids(raw: Sequence[str], *, parameter: str = "contacts_ids") -> tuple[int, ...]:
    """Positive ids, comma-separated or repeated, duplicates dropped in first-seen order
    (also a webhook's `segments_ids`, named by `parameter`)."""
    ids: dict[int, None] = {}
    for chunk in raw:
        for part in chunk.split(","):
            text = part.strip()
            if not text:
                continue
            if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
                raise errors.Invalid(
                    f"{parameter} must be positive integers, got {text[:40]!r}",
                    parameter=parameter,
                )
            ids.setdefault(int(text), None)
    if not ids:
        raise errors.Invalid(f"{parameter} must list at least one id", parameter=parameter)
    return tuple(ids)


# -- reading --------------------------------------------------------------------------

SEGMENT_COLUMNS = (
    segments.c.id,
    segments.c.user_id,
    segments.c.name,
    segments.c.settings,
    segments.c.type,
    segments.c.total_contacts,
    segments.c.last_datetime,
    segments.c.datetime,
)


def render_segment(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "name": row.name,
        "settings": row.settings,
        "type": row.type,
        "total_contacts": row.total_contacts,
        "last_datetime": render(row.last_datetime),
        "datetime": render(row.datetime),
    }


def get_segment(session: Session, *, user_id: int, segment_id: int) -> dict[str, Any]:
    return render_segment(_load(session, user_id=user_id, segment_id=segment_id))


def _load(session: Session, *, user_id: int, segment_id: int) -> Any:
    row = session.execute(
        Tenant(user_id).select(*SEGMENT_COLUMNS).where(segments.c.id == segment_id)
    ).first()
    if row is None:
        raise errors.NotFound(f"segment {segment_id} does not exist")
    return row


def list_segments(
    session: Session,
    *,
    user_id: int,
    page: Page,
    order_by: str = "datetime",
    order_type: str = "desc",
    type: str | None = None,
    search: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    where = [Tenant(user_id).owns(segments)]
    if type is not None:
        where.append(segments.c.type == type)
    if search:
        where.append(func.lower(segments.c.name).contains(search.lower(), autoescape=True))
    column = segments.c[order_by]
    # Ties (same second, same name, same count) are broken by id in the same direction,
    # so pages never overlap or skip rows.
    # A null last_datetime (never updated) sorts as the oldest on every backend; left to
    # themselves SQLite and PostgreSQL put nulls at opposite ends.
    if order_type == "asc":
        ordering = (column.asc().nulls_first(), segments.c.id.asc())
    else:
        ordering = (column.desc().nulls_last(), segments.c.id.desc())
    total = session.execute(select(func.count()).select_from(segments).where(*where)).scalar_one()
    rows = session.execute(
        select(*SEGMENT_COLUMNS)
        .where(*where)
        .order_by(*ordering)
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [render_segment(row) for row in rows], int(total)


# -- writing --------------------------------------------------------------------------


def _resolve_type(data: SegmentInput, *, current: str | None) -> str:
    given = data.given_types()
    if data.type is not None:
        for other in given:
            if other != data.type:
                raise errors.Invalid(
                    f"{data.parameter_of(other)} is not a parameter of a {data.type} segment",
                    parameter=data.parameter_of(other),
                )
        return data.type
    if len(given) > 1:
        names = " and ".join(data.parameter_of(t) for t in given)
        raise errors.Invalid(
            f"{names} belong to different segment types: send one of them, or set type",
            parameter=data.parameter_of(given[1]),
        )
    if given:
        return given[0]
    return current or "filter"


def create_segment(
    session: Session, *, user_id: int, data: SegmentInput, counted: Precounted | None = None
) -> int:
    """Creates the segment. `counted`: its filter counted beforehand (`counting_first`);
    without it a filter is counted here, inside the write transaction."""
    if data.name is None:
        raise errors.Invalid("name is required", parameter="name")
    kind = _resolve_type(data, current=None)
    _require_parameters(kind, data)
    counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
    settings, definition = _define(session, user_id=user_id, kind=kind, data=data, counted=counted)
    segment_id = session.execute(
        Tenant(user_id)
        .insert(segments)
        .values(name=data.name, type=kind, settings=settings, datetime=utcnow())
        .returning(segments.c.id)
    ).scalar_one()
    counts.segment_defined(
        session, user_id=user_id, segment_id=segment_id, definition=definition, replaces=False
    )
    counts.segments_changed(session, user_id=user_id)
    return int(segment_id)


def update_segment(
    session: Session,
    *,
    user_id: int,
    segment_id: int,
    data: SegmentInput,
    counted: Precounted | None = None,
) -> int:
    """Updates the segment; `counted` as for `create_segment`."""
    counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
    current = _load(session, user_id=user_id, segment_id=segment_id)
    kind = _resolve_type(data, current=current.type)
    values: dict[str, Any] = {"last_datetime": utcnow()}
    if data.name is not None:
        values["name"] = data.name
    if kind != current.type:
        values["type"] = kind
        _require_parameters(kind, data)
    redefine = kind != current.type or kind in data.given_types()
    if redefine:
        values["settings"], definition = _define(
            session, user_id=user_id, kind=kind, data=data, counted=counted
        )
        # Before the new type and settings are written: the old members are read from
        # them when someone watches the segment.
        counts.segment_defined(
            session, user_id=user_id, segment_id=segment_id, definition=definition, replaces=True
        )
    session.execute(
        Tenant(user_id).update(segments).where(segments.c.id == segment_id).values(**values)
    )
    if redefine:
        counts.segments_changed(session, user_id=user_id)
    return segment_id


def delete_segment(session: Session, *, user_id: int, segment_id: int) -> None:
    counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
    _load(session, user_id=user_id, segment_id=segment_id)
    # Its members first: no foreign key deletes them on PostgreSQL (tables.py).
    tenant = Tenant(user_id)
    session.execute(
        tenant.delete(segment_members).where(segment_members.c.segment_id == segment_id)
    )
    session.execute(tenant.delete(segments).where(segments.c.id == segment_id))
    counts.segments_changed(session, user_id=user_id)


def _require_parameters(kind: str, data: SegmentInput) -> None:
    if kind == "bulk" and data.bulk is None:
        raise errors.Invalid(
            "phone_numbers is required for a bulk segment", parameter="phone_numbers"
        )
    if kind == "custom" and data.contacts_ids is None:
        raise errors.Invalid(
            "contacts_ids is required for a custom segment", parameter="contacts_ids"
        )


def _define(
    session: Session, *, user_id: int, kind: str, data: SegmentInput, counted: Precounted | None
) -> tuple[dict[str, Any], counts.ListMembers | counts.FilterCount]:
    """The segment's settings, and what defines its membership for `counts` to store:
    a list segment's members (a bulk segment's new numbers become contacts here), or a
    filter with the count `counted` made before the transaction, if it still holds."""
    if kind == "bulk":
        assert data.bulk is not None
        members = _contacts_for_numbers(session, user_id=user_id, numbers=data.bulk.numbers)
        settings: dict[str, Any] = {
            "phone_numbers": [info.e164 for info in data.bulk.numbers],
            "contacts_ids": [contact_id for contact_id, _ in members],
        }
        return settings, counts.ListMembers(members)
    if kind == "custom":
        assert data.contacts_ids is not None
        members = _owned_contacts(session, user_id=user_id, contact_ids=data.contacts_ids)
        return {"contacts_ids": list(data.contacts_ids)}, counts.ListMembers(members)
    spec = data.filter or filters.Filter()
    if counted is not None and counted.spec == spec:
        counted.snapshot.check(session, user_id=user_id)  # or StaleCount
        return spec.as_settings(), counts.FilterCount(spec, counted.total, counted.day)
    return spec.as_settings(), counts.FilterCount(spec)


# -- the day's shift --------------------------------------------------------------------


def dates_current(db: Database, *, user_id: int) -> None:
    """Makes every count of the user exact for the current UTC day before a read answers
    with it: the segments whose filter has dates relative to today and was counted for
    an earlier day are recounted for today (`counts.days_shifted`). Nearly always one
    index probe that finds nothing to do. A server that was down at midnight catches up
    on its first read; of several processes reading at once, the first to take the
    user's exclusive lock shifts and the others find nothing left.

    SQLite counts in a read snapshot and writes the totals in a short write
    transaction that checks no contact or segment of the user was written since, like
    `counting_first`; PostgreSQL counts under the user's exclusive row lock."""
    today = timeutil.today()
    with db.read() as session:
        if not counts.has_stale_days(session, user_id=user_id, today=today):
            return
    if db.is_sqlite:
        for _attempt in range(PRECOUNT_ATTEMPTS):
            with db.read() as session:
                snapshot = counts.snapshot(session, user_id=user_id)
                totals = _counted_for(session, user_id=user_id, today=today)
            try:
                with db.write() as session:
                    counts.lock_tenant(
                        session, user_id=user_id, exclusive=True, writes_contacts=False
                    )
                    snapshot.check(session, user_id=user_id, segments_too=True)
                    counts.days_shifted(session, user_id=user_id, today=today, totals=totals)
                return
            except counts.StaleCount:
                continue
    with db.write() as session:
        counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
        totals = _counted_for(session, user_id=user_id, today=today)
        counts.days_shifted(session, user_id=user_id, today=today, totals=totals)


# From this many segments to shift, the user's parameters are read once into the
# recount's columns and every segment counted from them (a few milliseconds each, after
# a read of the keys they use), rather than one COUNT each.
SHIFT_FROM_COLUMNS = 3


def _counted_for(session: Session, *, user_id: int, today: date) -> dict[int, int]:
    """Today's count of each dated segment of the user counted for an earlier day."""
    specs = {
        segment_id: filters.Filter.from_settings(settings).on(today)
        for segment_id, settings, _day in counts.stale_days(session, user_id=user_id, today=today)
    }
    if len(specs) < SHIFT_FROM_COLUMNS:
        return {
            segment_id: counts.count_filter(session, user_id=user_id, spec=spec)
            for segment_id, spec in specs.items()
        }
    columns = recount.UserColumns(session, user_id=user_id)
    return {segment_id: columns.count(spec) for segment_id, spec in specs.items()}


# -- counting before the write lock ------------------------------------------------------

# How many times a filter is counted in a snapshot before giving up on one that the
# user's own contact writes keep overtaking.
PRECOUNT_ATTEMPTS = 3
# After that, a count that took at most this long is taken once more inside the write
# transaction (it holds up every other writer for about as long); a longer one answers
# 503 with Retry-After.
COUNT_UNDER_LOCK_SECONDS = 0.2

_Written = TypeVar("_Written")


@dataclass(frozen=True, slots=True)
class Precounted:
    """A filter counted before the write transaction, in a read snapshot (SQLite)."""

    spec: filters.Filter
    total: int
    snapshot: counts.Snapshot
    seconds: float
    day: date  # the UTC day its relative dates were resolved against


def filter_to_count(data: SegmentInput) -> filters.Filter | None:
    """The filter a create or update with `data` counts from scratch, if any: a filter
    given, or the type set to filter (every contact)."""
    if data.filter is not None or data.type == "filter":
        return data.filter or filters.Filter()
    return None


def precount(db: Database, *, user_id: int, spec: filters.Filter) -> Precounted:
    """Counts the filter in a read transaction: on SQLite (WAL) it holds no lock that a
    writer waits for, and sees one snapshot from its first statement on."""
    day = timeutil.today()
    with db.read() as session:
        snapshot = counts.snapshot(session, user_id=user_id)
        start = time.perf_counter()
        total = counts.count_filter(session, user_id=user_id, spec=spec.on(day))
        seconds = time.perf_counter() - start
    return Precounted(spec, total, snapshot, seconds, day)


def counting_first(
    db: Database,
    *,
    user_id: int,
    data: SegmentInput,
    write: Callable[[Precounted | None], _Written],
) -> _Written:
    """Runs `write(counted)`, one write transaction that creates or updates a segment
    with `data`, with its filter counted beforehand outside the write lock (SQLite).

    SQLite has one write lock for the whole database: a count inside it (seconds for a
    large or hostile filter) would stop every other user's writes. The count is taken
    in a snapshot, and `write` raises `counts.StaleCount` if a contact of the user was
    written since; it is then counted again, up to PRECOUNT_ATTEMPTS times. A user
    whose own writes keep overtaking its count gets the count inside the write lock if
    it is cheap (COUNT_UNDER_LOCK_SECONDS), or else a 503 with Retry-After.

    PostgreSQL counts inside `write`: there the user's exclusive row lock
    (`counts.lock_tenant`) holds up only that user's writers."""
    spec = filter_to_count(data)
    if spec is None or not db.is_sqlite:
        return write(None)
    seconds = 0.0
    for _attempt in range(PRECOUNT_ATTEMPTS):
        counted = precount(db, user_id=user_id, spec=spec)
        seconds = counted.seconds
        try:
            return write(counted)
        except counts.StaleCount:
            continue
    if seconds <= COUNT_UNDER_LOCK_SECONDS:
        return write(None)
    raise errors.ServiceUnavailable(
        f"the segment's count ({seconds:.1f} s) was overtaken by writes to your contacts "
        f"{PRECOUNT_ATTEMPTS} times; nothing was saved, retry the request",
        retry_after=max(1, math.ceil(seconds)),
    )


def _owned_contacts(
    session: Session, *, user_id: int, contact_ids: Sequence[int]
) -> list[tuple[int, bool]]:
    """(id, has_opted_out) of the given ids, in their order; 400 if any is not the user's."""
    # Larger ids cannot be bound on every backend, and no contact has one.
    storable = [contact_id for contact_id in contact_ids if contact_id <= MAX_ID]
    listed = bulk.listed(session, storable, type_=Integer)
    rows = session.execute(
        Tenant(user_id)
        .select(contacts.c.id, contacts.c.has_opted_out)
        .where(contacts.c.id.in_(select(listed.c.value)))
    ).all()
    found = {row.id: bool(row.has_opted_out) for row in rows}
    missing = [contact_id for contact_id in contact_ids if contact_id not in found]
    if missing:
        shown = ", ".join(map(str, missing[:SHOWN_INVALID]))
        raise errors.Invalid(
            f"{len(missing)} of contacts_ids are not your contacts: {shown}",
            parameter="contacts_ids",
            meta={"missing": missing[:SHOWN_INVALID], "missing_count": len(missing)},
        )
    return [(contact_id, found[contact_id]) for contact_id in contact_ids]


def _contacts_for_numbers(
    session: Session, *, user_id: int, numbers: Sequence[phones.PhoneInfo]
) -> list[tuple[int, bool]]:
    """(id, has_opted_out) for every number, creating the contacts that do not exist."""
    e164s = [info.e164 for info in numbers]
    found = _lookup_numbers(session, user_id=user_id, e164s=e164s)
    missing = [info for info in numbers if info.e164 not in found]
    if missing:
        version = counts.lock_tenant(session, user_id=user_id, exclusive=False)
        newest = _newest_contact_id(session)
        created = _insert_new_contacts(session, user_id=user_id, numbers=missing)
        if created is None:
            created = _created_since(session, user_id=user_id, newest=newest)
        if len(created) != len(missing):
            created = _lookup_numbers(session, user_id=user_id, e164s=[i.e164 for i in missing])
        found.update(created)
        _count_new_contacts(session, user_id=user_id, version=version, new=missing, found=found)
    return [found[e164] for e164 in e164s]


def _newest_contact_id(session: Session) -> int | None:
    """On SQLite, the largest contact id before an insert (None elsewhere).

    A write transaction on SQLite holds the database's only write lock from its BEGIN
    IMMEDIATE, and new rows take ids above the largest one: the contacts above this id
    after the insert are exactly the ones it created. Reading them by id range skips a
    second look-up of every new number through the phone index (50,000 numbers: about
    0.3 s). PostgreSQL has concurrent writers and looks the numbers up again."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    with across_tenants("SQLite numbers every user's contacts from one rowid"):
        return int(session.execute(select(func.max(contacts.c.id))).scalar() or 0)


def _created_since(
    session: Session, *, user_id: int, newest: int | None
) -> dict[str, tuple[int, bool]]:
    if newest is None:
        return {}
    rows = session.execute(
        select(contacts.c.phone_number, contacts.c.id).where(
            contacts.c.id > newest, Tenant(user_id).owns(contacts)
        )
    ).all()
    return {phone_number: (id_, False) for phone_number, id_ in rows}


# In the table's column order, which is the compiled statement's.
_NEW_CONTACT_COLUMNS = (
    "user_id",
    "name",
    "phone_number",
    "custom_parameters",
    "continent_code",
    "country_code",
    "has_opted_out",
    "datetime",
)


def _insert_new_contacts(
    session: Session, *, user_id: int, numbers: Sequence[phones.PhoneInfo]
) -> dict[str, tuple[int, bool]] | None:
    """Inserts a contact, with no name or parameters, for each number. On PostgreSQL,
    returns the ones it created (`_insert_returning`); on SQLite, None: they are found
    by id range (`_created_since`).

    Every row shares its user, name, parameters and timestamp, converted once; the rows
    go to the driver as tuples on SQLite (`BulkWriter`): SQLAlchemy's
    per-row parameter handling would cost more than the inserts (50,000 rows: about
    0.6 s of 1)."""
    if session.get_bind().dialect.name == "postgresql":
        return _insert_returning(session, user_id=user_id, numbers=numbers)
    writer = BulkWriter(session)
    no_parameters = writer.json({})
    created = writer.timestamp(utcnow())
    writer.executemany(
        _insert_ignoring_duplicates(session),
        _NEW_CONTACT_COLUMNS,
        [
            (
                user_id,
                "",
                info.e164,
                no_parameters,
                info.continent_code,
                info.country_code,
                False,
                created,
            )
            for info in numbers
        ],
    )
    return None


def _insert_returning(
    session: Session, *, user_id: int, numbers: Sequence[phones.PhoneInfo]
) -> dict[str, tuple[int, bool]]:
    """PostgreSQL: one INSERT ... SELECT from three arrays (number, continent, country;
    each bound as one text, `bulk.text_array`), returning each created contact's id.
    executemany sent a statement per thousand rows with eight parameters a row, each
    bound by SQLAlchemy in Python, then the new numbers were looked up again; a number
    a concurrent writer created first is not returned, and the caller looks it up."""

    def array(values: list[str | None]) -> Any:
        return func.unnest(bulk.text_array(values))

    given = select(
        array([info.e164 for info in numbers]).label("phone_number"),
        array([info.continent_code for info in numbers]).label("continent_code"),
        array([info.country_code for info in numbers]).label("country_code"),
    ).subquery()
    rows = select(
        literal(user_id, Integer),
        literal(""),
        given.c.phone_number,
        literal({}, contacts.c.custom_parameters.type),
        given.c.continent_code,
        given.c.country_code,
        false(),
        literal(utcnow(), contacts.c.datetime.type),
    )
    statement = (
        _insert_ignoring_duplicates(session)
        .from_select(_NEW_CONTACT_COLUMNS, rows)
        .returning(contacts.c.phone_number, contacts.c.id)
    )
    return {phone_number: (id_, False) for phone_number, id_ in session.execute(statement)}


def _insert_ignoring_duplicates(session: Session) -> Any:
    # A concurrent bulk create (PostgreSQL) may insert the same number first; the
    # unique (user_id, phone_number) constraint then keeps one contact.
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(contacts).on_conflict_do_nothing()
    return sqlite.insert(contacts).on_conflict_do_nothing()


def _lookup_numbers(
    session: Session, *, user_id: int, e164s: Sequence[str]
) -> dict[str, tuple[int, bool]]:
    listed = bulk.listed(session, e164s, type_=String)
    rows = session.execute(
        Tenant(user_id)
        .select(contacts.c.phone_number, contacts.c.id, contacts.c.has_opted_out)
        .where(contacts.c.phone_number.in_(select(listed.c.value)))
    ).all()  # fetchall: iterating fetches row by row
    return {phone_number: (id_, bool(opted_out)) for phone_number, id_, opted_out in rows}


def _count_new_contacts(
    session: Session,
    *,
    user_id: int,
    version: str,
    new: Sequence[phones.PhoneInfo],
    found: dict[str, tuple[int, bool]],
) -> None:
    """Hands the contacts a bulk segment created to `counts`, for the filter segments
    they match.

    They all have no parameters, so they differ only by country and continent: they
    go as one group per (country, continent), each evaluated once."""
    by_place: dict[tuple[str | None, str | None], list[int]] = {}
    for info in new:
        by_place.setdefault((info.country_code, info.continent_code), []).append(
            found[info.e164][0]
        )
    changes = [
        counts.Created(contact_ids, ContactState(country, continent, False, {}))
        for (country, continent), contact_ids in by_place.items()
    ]
    counts.contacts_written(
        session, user_id=user_id, version=version, written=counts.ContactChanges(changes)
    )


# -- previewing -----------------------------------------------------------------------

PREVIEW_CONTACTS = 10
# From this many members on, a preview's first members are found by walking the contacts
# (as member lists do from `members.DENSE_MEMBERS`).
DENSE_PREVIEW = 10_000


def preview_segment(session: Session, *, user_id: int, data: SegmentInput) -> dict[str, Any]:
    """What creating the segment would give, writing nothing: `total_contacts` as it
    would be stored, and the first members in contact id order (those that have not
    opted out, as the default member list shows them).

    The same type rules and errors as `create_segment`, except that `name` is optional.
    A bulk preview creates no contact: numbers that are not contacts yet count as the
    members they would become (not opted out) and, since new contacts would get ids
    above every existing one, follow the existing members in `contacts` with a null
    `id` and `datetime`. `new_contacts` says how many there are (0 for other types)."""
    kind = _resolve_type(data, current=None)
    _require_parameters(kind, data)
    new_numbers: list[phones.PhoneInfo] = []
    if kind == "filter":
        spec = (data.filter or filters.Filter()).on(timeutil.today())
        total = counts.count_filter(session, user_id=user_id, spec=spec)
        # Many members: walk the contacts in id order probing each (the correlated
        # shape), which stops at the tenth member; building every condition's holders
        # first (the other shape) costs as much as the count again. Few members: the
        # walk would read most contacts to find them, and the holders are the cheaper.
        where = and_(
            filters.to_sql(spec, user_id=user_id, correlated=total >= DENSE_PREVIEW),
            contacts.c.has_opted_out.is_(False),
        )
        first = session.execute(
            select(*CONTACT_COLUMNS).where(where).order_by(contacts.c.id).limit(PREVIEW_CONTACTS)
        ).all()
    else:
        if kind == "custom":
            assert data.contacts_ids is not None
            members = _owned_contacts(session, user_id=user_id, contact_ids=data.contacts_ids)
        else:
            assert data.bulk is not None
            found = _lookup_numbers(
                session, user_id=user_id, e164s=[info.e164 for info in data.bulk.numbers]
            )
            members = list(found.values())
            new_numbers = [info for info in data.bulk.numbers if info.e164 not in found]
        counted = sorted(contact_id for contact_id, opted_out in members if not opted_out)
        total = len(counted) + len(new_numbers)
        first = session.execute(
            Tenant(user_id)
            .select(*CONTACT_COLUMNS)
            .where(contacts.c.id.in_(counted[:PREVIEW_CONTACTS]))
            .order_by(contacts.c.id)
        ).all()
    shown = [render_contact(row) for row in first]
    shown += [
        _new_contact(user_id=user_id, info=info)
        for info in new_numbers[: PREVIEW_CONTACTS - len(shown)]
    ]
    return {"total_contacts": total, "new_contacts": len(new_numbers), "contacts": shown}


def _new_contact(*, user_id: int, info: phones.PhoneInfo) -> dict[str, Any]:
    """A contact a bulk segment would create, as it would be rendered once created."""
    return {
        "id": None,
        "user_id": user_id,
        "name": "",
        "phone_number": info.e164,
        "custom_parameters": {},
        "continent_code": info.continent_code,
        "country_code": info.country_code,
        "has_opted_out": False,
        "last_datetime": None,
        "datetime": None,
    }
