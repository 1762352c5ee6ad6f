"""Recounting every segment of a user from scratch, at once (`segmenti segments recount`).

One SQL COUNT per filter segment costs a walk over a large part of the user's contacts
each: about a second per segment at a million contacts. Recounting a thousand segments
reads the user's parameters once instead, into dictionary-encoded columns, and answers
every filter from them:

  * a column is one byte per contact id (`bytes`, indexed by contact id): the code of
    the contact's value for one key, 0 when it has no such key. A key with more than
    255 distinct values takes two byte columns (high and low byte of the code);
  * a condition becomes a 256-byte table saying which codes satisfy it (its Python
    test from the conditions' registry, `membership/conditions.py`, evaluated once per
    distinct value, not per contact), and its mask its `member_mask`;
    `bytes.translate` maps a column through the table to a 0/1 byte per contact, at C
    speed;
  * 0/1 bytes read as one big integer AND together bytewise, so a filter is the AND
    of its conditions' masks, its country and continent masks, and the mask of the
    contacts that have not opted out; `int.bit_count()` is then the count.
Every step is a C loop over a megabyte per million contacts. Keys with more than
65,535 distinct values fall back to one SQL query per condition.

On SQLite a user's segments are counted in a read snapshot and only the corrected
totals are written under the write lock (`recount_tenant`), so a recount holds up no
other user's writes for the seconds it counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts, segments
from segmenti.db.tenant import Tenant, across_tenants
from segmenti.membership import counts, filters

_MAX_TWO_BYTE_CODES = 65_535
# Snapshots counted before a user whose writes keep overtaking them is recounted inside
# the write lock after all (an administrator's command, finishing beats retrying).
RECOUNT_ATTEMPTS = 3


@dataclass
class _Column:
    """The values of one key, dictionary-encoded by contact id."""

    values: list[tuple[str, float | None]]  # code - 1 -> (folded, number)
    high: bytes  # code >> 8 per contact id (all zero for keys under 256 values)
    low: bytes  # code & 0xFF per contact id


class UserColumns:
    """One user's contacts, as columns to count filters from (see the module doc)."""

    def __init__(self, session: Session, *, user_id: int) -> None:
        self.user_id = user_id
        self.tenant = tenant = Tenant(user_id)
        self.session = session
        top = session.execute(tenant.select(func.max(contacts.c.id))).scalar()
        self.size = (top or 0) + 1
        self.ones = int.from_bytes(b"\x01" * self.size, "little")
        counted = bytearray(self.size)
        countries: dict[str | None, int] = {None: 0}
        continents: dict[str | None, int] = {None: 0}
        country = bytearray(self.size)
        continent = bytearray(self.size)
        rows = session.execute(
            tenant.select(
                contacts.c.id,
                contacts.c.has_opted_out,
                contacts.c.country_code,
                contacts.c.continent_code,
            )
        )
        for contact_id, has_opted_out, country_code, continent_code in rows:
            counted[contact_id] = not has_opted_out
            country[contact_id] = countries.setdefault(country_code, len(countries))
            continent[contact_id] = continents.setdefault(continent_code, len(continents))
        self.counted = int.from_bytes(counted, "little")
        self._places = {
            "country": (bytes(country), countries),
            "continent": (bytes(continent), continents),
        }
        self._columns: dict[str, _Column | None] = {}

    def count(self, spec: filters.Filter) -> int:
        return (self.counted & self._node_mask(spec.compiled_root, self.counted)).bit_count()

    def _node_mask(self, node: filters.Node, within: int) -> int:
        """The contacts satisfying `node`, among `within` at least (an `all` stops
        early once nothing is left): AND, OR and complement of its children's masks."""
        if isinstance(node, filters.Condition):
            return self._condition_mask(node)
        if isinstance(node, filters.Places):
            return self._place_mask(node.field, node.codes)
        if isinstance(node, filters.Not):
            return self.ones ^ self._node_mask(node.child, self.ones)
        if isinstance(node, filters.AnyOf):
            mask = 0
            for child in node.children:
                mask |= self._node_mask(child, within)
            return mask
        mask = within
        for child in node.children:
            if not mask:
                break
            mask &= self._node_mask(child, mask)
        return mask

    def _place_mask(self, kind: str, allowed: tuple[str, ...]) -> int:
        column, codes = self._places[kind]
        table = bytearray(256)
        for code in allowed:
            if code in codes:
                table[codes[code]] = 1
        return int.from_bytes(column.translate(table), "little")

    def _condition_mask(self, condition: filters.Condition) -> int:
        column = self._column(condition.key)
        if column is None:
            held = self._sql_mask(condition)
        else:
            held = _column_mask(column, condition.kind.value_test(condition.operand))
        # A contact without the key holds no positive condition and every negated one.
        return condition.kind.member_mask(held, self.ones)

    def _column(self, key: str) -> _Column | None:
        if key not in self._columns:
            self._columns[key] = self._load_column(key)
        return self._columns[key]

    def _load_column(self, key: str) -> _Column | None:
        # The covering (user_id, key, value_folded, contact_id) index yields the rows in
        # value order: a new code starts wherever the value changes. A value's number is
        # a function of its folded text (folding never touches digits, signs, dots or
        # spaces), so it is parsed once per distinct value, not read per row.
        where = (self.tenant.owns(contact_parameters), contact_parameters.c.key == key)
        distinct = self.session.execute(
            select(func.count(func.distinct(contact_parameters.c.value_folded))).where(*where)
        ).scalar_one()
        if distinct > _MAX_TWO_BYTE_CODES:
            return None
        values: list[tuple[str, float | None]] = []
        high = bytearray(self.size)
        low = bytearray(self.size)
        rows = self.session.execute(
            select(contact_parameters.c.value_folded, contact_parameters.c.contact_id)
            .where(*where)
            .order_by(contact_parameters.c.value_folded)
        )
        current: str | None = None
        code_high = code_low = 0
        for folded, contact_id in rows:
            if folded != current:
                current = folded
                values.append((folded, filters.parse_number(folded)))
                code_high, code_low = len(values) >> 8, len(values) & 0xFF
            high[contact_id] = code_high
            low[contact_id] = code_low
        return _Column(values, bytes(high), bytes(low))

    def _sql_mask(self, condition: filters.Condition) -> int:
        """The contacts holding a condition's positive twin, for keys too varied for
        columns."""
        holders = bytearray(self.size)
        rows = self.session.execute(filters.holders_sql(condition, user_id=self.user_id)).scalars()
        for contact_id in rows:
            holders[contact_id] = 1
        return int.from_bytes(holders, "little")


def _column_mask(column: _Column, test: Callable[[str, float | None], bool]) -> int:
    """0/1 per contact id: has the key with a value that passes `test`."""
    passing = [code for code, value in enumerate(column.values, start=1) if test(*value)]
    if not passing:
        return 0
    by_high: dict[int, bytearray] = {}
    for code in passing:
        by_high.setdefault(code >> 8, bytearray(256))[code & 0xFF] = 1
    mask = 0
    for high, low_table in by_high.items():
        low_mask = int.from_bytes(column.low.translate(low_table), "little")
        if len(column.values) < 256:
            mask |= low_mask  # one byte of codes: the high column is all zero
            continue
        high_table = bytearray(256)
        high_table[high] = 1
        mask |= low_mask & int.from_bytes(column.high.translate(high_table), "little")
    return mask


@dataclass(frozen=True)
class Recounted:
    segment_id: int
    before: int
    after: int


def segments_per_user(session: Session, *, user_id: int | None = None) -> dict[int, int]:
    """How many segments each user has (only `user_id`'s when given)."""
    query = select(segments.c.user_id, func.count()).group_by(segments.c.user_id)
    if user_id is not None:
        query = Tenant(user_id).scope(query)
        return {row[0]: int(row[1]) for row in session.execute(query)}
    with across_tenants("`segmenti segments recount` without --user serves every user"):
        return {row[0]: int(row[1]) for row in session.execute(query)}


def count_user(session: Session, *, user_id: int) -> Iterator[Recounted]:
    """Every segment of the user counted from scratch, in id order; writes nothing."""
    rows = session.execute(
        Tenant(user_id)
        .select(
            segments.c.id,
            segments.c.type,
            segments.c.settings,
            segments.c.total_contacts,
            segments.c.counted_day,
        )
        .order_by(segments.c.id)
    ).all()
    columns: UserColumns | None = None
    for row in rows:
        if row.type == "filter":
            columns = columns or UserColumns(session, user_id=user_id)
            # On the day its total is counted for (the day's shift moves it on).
            total = columns.count(counts.pinned(row.settings, row.counted_day))
        else:
            total = counts.count_members(session, user_id=user_id, segment_id=row.id)
        yield Recounted(row.id, int(row.total_contacts), total)


def store(session: Session, *, user_id: int, recounted: Recounted) -> None:
    """Hands a recounted total to `counts`, if it differs from the one stored."""
    if recounted.after != recounted.before:
        counts.totals_recounted(
            session, user_id=user_id, totals={recounted.segment_id: recounted.after}
        )


def recount_user(session: Session, *, user_id: int) -> Iterator[Recounted]:
    """Recomputes every total_contacts of the user from scratch, storing the ones that
    differ; yields each segment as it is done.

    Run it in one write transaction that holds the user's exclusive lock
    (`counts.lock_tenant`): the columns are a snapshot, and no contact write may land
    between reading it and storing the totals."""
    for recounted in count_user(session, user_id=user_id):
        store(session, user_id=user_id, recounted=recounted)
        yield recounted


def recount_tenant(
    db: Database, *, user_id: int, on_counted: Callable[[int], None] | None = None
) -> list[Recounted]:
    """Recounts the user's segments, storing the totals that were wrong; `on_counted`
    is called with how many are counted so far (progress).

    SQLite: counted in a read snapshot, which holds no lock; a short write transaction
    then stores the corrected totals, if no contact or segment of the user was written
    since (`counts.Snapshot`), or else the user is counted again (RECOUNT_ATTEMPTS
    times, then inside the write lock). PostgreSQL: in one write transaction under the
    user's exclusive row lock, which holds up that user's writers only."""

    def counted(items: Iterator[Recounted]) -> list[Recounted]:
        done = []
        for item in items:
            done.append(item)
            if on_counted is not None:
                on_counted(len(done))
        return done

    if db.is_sqlite:
        for _attempt in range(RECOUNT_ATTEMPTS):
            with db.read() as session:
                snapshot = counts.snapshot(session, user_id=user_id)
                recounted = counted(count_user(session, user_id=user_id))
            try:
                with db.write() as session:
                    counts.lock_tenant(
                        session, user_id=user_id, exclusive=True, writes_contacts=False
                    )
                    snapshot.check(session, user_id=user_id, segments_too=True)
                    for item in recounted:
                        store(session, user_id=user_id, recounted=item)
                return recounted
            except counts.StaleCount:
                continue
    with db.write() as session:
        counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
        return counted(recount_user(session, user_id=user_id))
