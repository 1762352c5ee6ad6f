"""The one owner of segment membership: the only writer of `segments.total_contacts`
and of `segment_members`. Every write path hands it a change set, in the write's own
transaction, so a count is never behind an answered write (docs/counts.md):

  * `ContactChanges` (`contacts_written`): contacts created, changed or deleted: one
    through the API, a batch of an import, the new numbers of a bulk segment. Each
    filter segment of the user is evaluated in Python against each contact before and
    after (compiled predicates, cached per process and invalidated by the user's
    `segments_version`); the list segments that hold a contact move when its opt-out or
    existence changes. An import batch that changes a large share of the user's
    contacts asks for its filter segments to be counted from scratch instead
    (`recount_filters`); new contacts created alike (`Created`) are evaluated once.
  * `ListMembers` / `FilterCount` (`segment_defined`): a segment created or redefined:
    a bulk or custom segment's members stored and counted, a filter segment counted
    from scratch (or with the count taken before the write transaction, on SQLite).
  * `totals_recounted`: the totals `segmenti segments recount` corrected.
  * `days_shifted`: a new UTC day for the filters with dates relative to today. Such a
    segment's total is the count for its `counted_day`, and every change to it above
    is worked out on that day (`pinned`); before counts are read on a later day, the
    day's shift recounts them for today, under the user's exclusive lock (which makes
    one process do it), and reports who entered and left at midnight
    (docs/counts.md, "Dates relative to today").

Which contacts entered or left a segment is worked out only for the segments a
`Watcher` asks for (`watching`); every other segment gets plain count deltas, so
contact writes cost what they did before anyone watched. Each write returns and hands
to the watchers its `Moves`: per watched segment, the contacts that entered and left.

Writers of one user are serialized against segment definitions by `lock_tenant`, so a
segment being counted and a contact being written never miss each other.

Counting from scratch can take seconds (a million contacts, or a filter made to be
slow), and SQLite has one write lock for every user. There a segment is counted before
its write transaction, in a read snapshot (`snapshot`), and the write transaction only
checks that no contact of the user was written since (`Snapshot.check`): every contact
writer moves the user's `contacts_version` on in `lock_tenant`. PostgreSQL counts
inside the write transaction, under the user's exclusive row lock: it holds up that
user's own writers only, and moving a counter on every contact write would queue them.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol

from sqlalchemy import Date, Integer, Select, bindparam, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from segmenti import metrics, timeutil
from segmenti.db.bulk import listed
from segmenti.db.tables import contacts, segment_history, segment_members, segments, users
from segmenti.db.tenant import Tenant, bound_tenant
from segmenti.membership import filters
from segmenti.membership.filters import ContactState
from segmenti.timeutil import utcnow

# Contacts per statement when looking up the list segments that hold them.
CHUNK = 10_000

# -- serializing writers --------------------------------------------------------------


def lock_tenant(
    session: Session, *, user_id: int, exclusive: bool, writes_contacts: bool = True
) -> str:
    """Serializes segment definitions (exclusive) against contact writes (shared) of one
    user on PostgreSQL; SQLite already runs one writer at a time. Returns the user's
    segments_version.

    `writes_contacts`: the transaction may create, change or delete contacts of the
    user (False only for writers of segments and counts). On SQLite it then moves the
    user's contacts_version on, which tells counts taken in an earlier snapshot that
    they may be stale (`Snapshot`).

    Call it first in the transaction, before any other row lock: every writer then
    queues here, in one place, and cannot deadlock another one over later locks. It
    relies on READ COMMITTED (db/engine.py): once the lock is granted, each following
    statement sees what the writer before it committed. It is one row of the user's
    own shard on Citus (docs/scaling-out.md)."""
    tenant = Tenant(user_id)
    if session.get_bind().dialect.name == "sqlite" and writes_contacts:
        # One statement, where a write and a read would be two (every contact write).
        moved = (
            tenant.update(users)
            .values(contacts_version=users.c.contacts_version + 1)
            .returning(users.c.segments_version)
        )
        return str(session.execute(moved).scalar_one())
    query = tenant.select(users.c.segments_version)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update(read=not exclusive)
    return str(session.execute(query).scalar_one())


class StaleCount(Exception):
    """A count taken in a snapshot that writes of the user have overtaken since."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What counts taken in one read transaction depended on (SQLite): the user's
    contacts_version, and its segments_version for counts of stored segments."""

    contacts_version: int
    segments_version: str

    def check(self, session: Session, *, user_id: int, segments_too: bool = False) -> None:
        """Raises `StaleCount` unless the counts taken in the snapshot still hold.

        Call in the write transaction, on SQLite after its BEGIN IMMEDIATE took the
        write lock: from there to the commit nothing else can be written, so an
        unchanged version means the counts hold when the transaction commits. With
        `segments_too`, a segment written meanwhile makes the snapshot stale as well
        (a recount of every segment)."""
        now = snapshot(session, user_id=user_id)
        if now.contacts_version != self.contacts_version or (
            segments_too and now.segments_version != self.segments_version
        ):
            raise StaleCount(f"user {user_id} was written to since the count")


def snapshot(session: Session, *, user_id: int) -> Snapshot:
    """The user's versions as `session`'s transaction sees them. In a read transaction
    on SQLite (WAL), the first statement fixes what every later one sees: read this
    first, then count, in the same transaction."""
    row = session.execute(
        Tenant(user_id).select(users.c.contacts_version, users.c.segments_version)
    ).one()
    return Snapshot(int(row.contacts_version), str(row.segments_version))


def segments_changed(session: Session, *, user_id: int) -> None:
    """Marks the user's compiled filter segments stale (call after any segment write)."""
    session.execute(Tenant(user_id).update(users).values(segments_version=secrets.token_hex(16)))


# -- compiled filter segments ---------------------------------------------------------


@dataclass(frozen=True)
class _CompiledSegments:
    version: str
    predicates: tuple[tuple[int, filters.Predicate], ...]


_cache: dict[tuple[str, int], _CompiledSegments] = {}
_cache_lock = threading.Lock()


def _filter_predicates(
    session: Session, *, user_id: int, version: str
) -> tuple[tuple[int, filters.Predicate], ...]:
    """(segment id, compiled predicate) of every filter segment of the user, in id
    order, cached until the user's segments change (`version`)."""
    key = (str(session.get_bind().engine.url), user_id)
    cached = _cache.get(key)
    if cached is not None and cached.version == version:
        return cached.predicates
    predicates = tuple(
        (segment_id, filters.to_python(spec))
        for segment_id, spec in _filter_segments(session, user_id=user_id)
    )
    with _cache_lock:
        _cache[key] = _CompiledSegments(version, predicates)
    return predicates


def has_segments(session: Session, *, user_id: int, version: str) -> bool:
    """Whether contact writes of the user can change any count: it has a segment. A
    writer that spends time describing its changes (an import) can skip that without."""
    if _filter_predicates(session, user_id=user_id, version=version):
        return True
    listed_segment = session.execute(Tenant(user_id).select(segments.c.id).limit(1)).first()
    return listed_segment is not None


def _filter_segments(session: Session, *, user_id: int) -> list[tuple[int, filters.Filter]]:
    """(segment id, filter) of every filter segment of the user, in id order, each
    pinned to the day its total was counted for (`pinned`)."""
    rows = session.execute(
        Tenant(user_id)
        .select(segments.c.id, segments.c.settings, segments.c.counted_day)
        .where(segments.c.type == "filter")
        .order_by(segments.c.id)
    ).all()
    return [(row.id, pinned(row.settings, row.counted_day)) for row in rows]


def pinned(settings: Mapping[str, Any], counted_day: date | None) -> filters.Filter:
    """A stored filter as its total_contacts counts it: with dates relative to today
    resolved against the day it was counted for. Every change to that total (a contact
    write's delta, a recount) is worked out on the same day, so the total stays that
    day's exact count until the day's shift (`days_shifted`) moves it on."""
    spec = filters.Filter.from_settings(settings)
    return spec.on(counted_day) if counted_day is not None else spec


# -- counting from scratch ------------------------------------------------------------


# `count_filter`'s default: choose the driver itself.
CHOOSE: Literal["choose"] = "choose"


@metrics.segment_evaluation("count_filter")
def count_filter(
    session: Session,
    *,
    user_id: int,
    spec: filters.Filter,
    driver: filters.Condition | None | Literal["choose"] = CHOOSE,
) -> int:
    """Members of a filter that have not opted out, counted from scratch (reads only):
    walked from `driver` (`selective_driver`'s answer, which it asks unless given) when
    there is one, else by `filters.count_sql`."""
    if driver == CHOOSE:
        driver = selective_driver(session, user_id=user_id, spec=spec)
    if isinstance(driver, filters.Condition):
        query = filters.walk_count_sql(spec, driver, user_id=user_id)
    else:
        query = filters.count_sql(spec, user_id=user_id)
    return int(session.execute(query).scalar_one())


def selective_driver(
    session: Session, *, user_id: int, spec: filters.Filter
) -> filters.Condition | None:
    """The condition to walk a tree's members from (`filters.walk_sql`), or None to
    count it as `filters.count_sql` does: of the candidates (`driver_candidates`), the
    one held by the fewest contacts, when they are fewer than `filters.SELECTIVE`, or,
    on SQLite, at most a `filters.SHARE`th of the user's contacts and fewer than
    `filters.DRIVING`.

    The kind of condition does not say it: `plan = enterprise` may hold for 5% of the
    contacts and `plan in (free, pro)` for 85%. So each candidate's holders are counted
    up to SELECTIVE, in one statement; then, on SQLite, up to DRIVING, and the user's
    contacts up to SHARE times the fewest. Walking a dense condition instead, and
    probing the rest of the tree per holder, costs more than gathering every
    condition's holders (the plan `count_sql` keeps for such trees). PostgreSQL gathers
    holders into hash tables several times faster than SQLite builds its lists, so
    there a driver of a tenth of the contacts does not pay, and counting to DRIVING
    (tens of milliseconds) would cost more than it saves."""
    candidates = filters.driver_candidates(spec)
    if not candidates:
        return None
    fewest, driver = _fewest_holders(
        session, user_id=user_id, candidates=candidates, cap=filters.SELECTIVE
    )
    if fewest < filters.SELECTIVE:
        return driver
    if session.get_bind().dialect.name != "sqlite":
        return None
    fewest, driver = _fewest_holders(
        session, user_id=user_id, candidates=candidates, cap=filters.DRIVING
    )
    if fewest >= filters.DRIVING:
        return None
    wanted = fewest * filters.SHARE
    everyone = session.execute(filters.contacts_up_to_sql(user_id=user_id, cap=wanted))
    return driver if everyone.scalar_one() >= wanted else None


def _fewest_holders(
    session: Session, *, user_id: int, candidates: Sequence[filters.Condition], cap: int
) -> tuple[int, filters.Condition]:
    """The candidate held by the fewest contacts, and how many (counted up to `cap`)."""
    held = session.execute(filters.capped_counts_sql(candidates, user_id=user_id, cap=cap)).one()
    return min(zip(held, candidates, strict=True), key=lambda pair: pair[0])


def count_members(session: Session, *, user_id: int, segment_id: int) -> int:
    """Members of a bulk or custom segment that still exist and have not opted out,
    counted from scratch (reads only)."""
    query = _listed_members(select(func.count()), user_id=user_id, segment_id=segment_id)
    return int(session.execute(query).scalar_one())


def _listed_members(query: Select[Any], *, user_id: int, segment_id: int) -> Select[Any]:
    """`query` over the members of a bulk or custom segment that still exist and have
    not opted out (what its total counts)."""
    tenant = Tenant(user_id)
    return query.select_from(
        tenant.join(segment_members, contacts, contacts.c.id == segment_members.c.contact_id)
    ).where(
        tenant.owns(segment_members),
        segment_members.c.segment_id == segment_id,
        contacts.c.has_opted_out.is_(False),
    )


# -- who is watching ------------------------------------------------------------------


@dataclass(frozen=True)
class Moves:
    """What one write did to the membership of the watched segments: per segment id,
    the contacts that entered (became counted members) and those that left (stopped
    being members, opted out or were deleted). Segments nobody watches are left out."""

    user_id: int
    entered: Mapping[int, frozenset[int]] = field(default_factory=dict)
    left: Mapping[int, frozenset[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.entered or self.left)


class Watcher(Protocol):
    """Wants to know which contacts enter and leave some segments (a later issue's
    membership events)."""

    def watched(
        self, session: Session, *, user_id: int, version: str | None = None
    ) -> Collection[int]:
        """The user's segments whose moves it wants; asked once per write. `version`:
        the user's segments_version under the write's `lock_tenant` (None when not
        known), which an answer cached per user may be checked against."""
        ...

    def moved(self, session: Session, moves: Moves) -> None:
        """Called in the write's transaction, after the counts are written, with the
        moves of its segments (never empty): what it writes there commits or rolls
        back with the write."""
        ...


_watchers: list[Watcher] = []
# Registered for the life of the process (the membership events of membership/events.py,
# registered when the membership package is imported).
_permanent: list[Watcher] = []


def watch_always(watcher: Watcher) -> None:
    """Registers `watcher` for good, in this process."""
    _permanent.append(watcher)


@contextmanager
def watching(watcher: Watcher) -> Iterator[Watcher]:
    """Registers `watcher` for as long as the block runs, in this process."""
    _watchers.append(watcher)
    try:
        yield watcher
    finally:
        _watchers.remove(watcher)


class _Watch:
    """The watched segments of one write, and the moves found in them."""

    def __init__(self, session: Session, *, user_id: int, version: str | None) -> None:
        self.user_id = user_id
        self.by_watcher = [
            (watcher, frozenset(watcher.watched(session, user_id=user_id, version=version)))
            for watcher in [*_permanent, *_watchers]
        ]
        self.segments: frozenset[int] = frozenset().union(*(s for _, s in self.by_watcher))
        self.entered: dict[int, set[int]] = {}
        self.left: dict[int, set[int]] = {}

    def add(self, segment_id: int, direction: int, contact_ids: Collection[int]) -> None:
        moved = self.entered if direction > 0 else self.left
        moved.setdefault(segment_id, set()).update(contact_ids)

    def tell(self, session: Session) -> Moves:
        moves = Moves(
            self.user_id,
            {s: frozenset(ids) for s, ids in self.entered.items() if ids},
            {s: frozenset(ids) for s, ids in self.left.items() if ids},
        )
        for watcher, watched in self.by_watcher:
            theirs = Moves(
                self.user_id,
                {s: ids for s, ids in moves.entered.items() if s in watched},
                {s: ids for s, ids in moves.left.items() if s in watched},
            )
            if theirs:
                watcher.moved(session, theirs)
        return moves


def _watch(session: Session, *, user_id: int, version: str | None = None) -> _Watch | None:
    # Nobody watching (the usual case): no moves are worked out at all.
    if not _watchers and not _permanent:
        return None
    watch = _Watch(session, user_id=user_id, version=version)
    return watch if watch.segments else None


def _tell(session: Session, watch: _Watch | None, *, user_id: int) -> Moves:
    return Moves(user_id) if watch is None else watch.tell(session)


# -- contacts written -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One contact that went from `before` to `after` (None: absent)."""

    contact_id: int
    before: ContactState | None
    after: ContactState | None


@dataclass(frozen=True, slots=True)
class Created:
    """New contacts in one and the same state (a bulk segment's new numbers of one
    country and continent, which have no parameters): evaluated once against each
    filter, counted once per contact."""

    contact_ids: Sequence[int]
    after: ContactState


@dataclass(frozen=True, slots=True)
class ContactChanges:
    """Contacts of one user written in one transaction.

    `recount_filters`: the changes are a large share of the user's contacts (the first
    batches of an import into a small account), so each filter segment is counted from
    scratch with one SQL COUNT rather than evaluated against every change; the caller
    chooses, knowing the share. Watched filter segments are still evaluated per change,
    which is what says who entered and left."""

    changes: Sequence[Change | Created]
    recount_filters: bool = False


@metrics.segment_evaluation("contacts_changed")
def contacts_written(
    session: Session, *, user_id: int, version: str, written: ContactChanges
) -> Moves:
    """Adjusts the counts that the changes touch.

    Call after `lock_tenant` returned `version`, and before a deleted contact's
    segment_members rows are gone."""
    watch = _watch(session, user_id=user_id, version=version)
    watched = watch.segments if watch is not None else frozenset()
    predicates = _filter_predicates(session, user_id=user_id, version=version)
    deltas: Counter[int] = Counter()
    totals: dict[int, int] = {}
    if written.recount_filters and predicates:
        totals = _count_filters(session, user_id=user_id, unless=watched)
        predicates = tuple((s, p) for s, p in predicates if s in watched)
    if predicates:
        _evaluate(written.changes, predicates, deltas=deltas, watch=watch)
    _list_changes(session, user_id=user_id, changes=written.changes, deltas=deltas, watch=watch)
    _write(session, user_id=user_id, totals=totals, deltas=deltas)
    return _tell(session, watch, user_id=user_id)


def _evaluate(
    changes: Sequence[Change | Created],
    predicates: Sequence[tuple[int, filters.Predicate]],
    *,
    deltas: Counter[int],
    watch: _Watch | None,
) -> None:
    """Each change against each filter segment: O(changes x filter segments), about a
    third of a microsecond per pair; the watched segments also note who moved."""
    before: ContactState | None
    after: ContactState | None
    for change in changes:
        if isinstance(change, Created):
            before, after, ids = None, change.after, change.contact_ids
        else:
            before, after, ids = change.before, change.after, (change.contact_id,)
        # `_counted`, inlined: this loop runs for every filter segment of the user on
        # every contact write, and two calls a pair cost as much as the predicates.
        counted_after = after if after is not None and not after.has_opted_out else None
        counted_before = before if before is not None and not before.has_opted_out else None
        if counted_after is None and counted_before is None:
            continue  # opted out before and after (or neither exists): in no count
        for segment_id, predicate in predicates:
            delta = (counted_after is not None and predicate(counted_after)) - (
                counted_before is not None and predicate(counted_before)
            )
            if delta:
                deltas[segment_id] += delta * len(ids)
                if watch is not None and segment_id in watch.segments:
                    watch.add(segment_id, delta, ids)


def _list_changes(
    session: Session,
    *,
    user_id: int,
    changes: Sequence[Change | Created],
    deltas: Counter[int],
    watch: _Watch | None,
) -> None:
    """Bulk and custom segments count the members that exist and have not opted out: a
    contact that opted out, back in, or was deleted moves the count of every list
    segment holding it. New contacts are in none yet."""
    by_direction: dict[int, list[int]] = {1: [], -1: []}
    for change in changes:
        if isinstance(change, Created) or change.before is None:
            continue
        was = not change.before.has_opted_out
        now = change.after is not None and not change.after.has_opted_out
        if was != now:
            by_direction[now - was].append(change.contact_id)
    held = (Tenant(user_id).owns(segment_members),)
    for direction, contact_ids in by_direction.items():
        for start in range(0, len(contact_ids), CHUNK):
            chunk = contact_ids[start : start + CHUNK]
            result = session.execute(
                select(segment_members.c.segment_id, func.count())
                .where(*held, segment_members.c.contact_id.in_(chunk))
                .group_by(segment_members.c.segment_id)
            )
            for segment_id, how_many in result:
                deltas[segment_id] += direction * how_many
            if watch is not None:
                pairs = session.execute(
                    select(segment_members.c.segment_id, segment_members.c.contact_id).where(
                        *held,
                        segment_members.c.contact_id.in_(chunk),
                        segment_members.c.segment_id.in_(sorted(watch.segments)),
                    )
                )
                for segment_id, contact_id in pairs:
                    watch.add(segment_id, direction, (contact_id,))


def _count_filters(session: Session, *, user_id: int, unless: Collection[int]) -> dict[int, int]:
    """Every filter segment of the user but `unless`, counted from scratch."""
    return {
        segment_id: count_filter(session, user_id=user_id, spec=spec)
        for segment_id, spec in _filter_segments(session, user_id=user_id)
        if segment_id not in unless
    }


# -- segments defined -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListMembers:
    """A bulk or custom segment's members: (contact id, has opted out) of each."""

    members: Sequence[tuple[int, bool]]


@dataclass(frozen=True, slots=True)
class FilterCount:
    """A filter segment's filter, and its count from scratch when the caller took it
    before the write transaction (and checked it still holds); None counts it here.
    `day`: the UTC day the count is for (today when None), which a filter with dates
    relative to today is stored as counted for."""

    spec: filters.Filter
    total: int | None = None
    day: date | None = None


def segment_defined(
    session: Session,
    *,
    user_id: int,
    segment_id: int,
    definition: ListMembers | FilterCount,
    replaces: bool,
) -> Moves:
    """Stores a segment's members (list segments) and its count, created (`replaces`
    False) or redefined (True: its old members go).

    Call under `lock_tenant(exclusive=True)`, and before the segment's new type and
    settings are written: a watched segment's old members are read from them."""
    # A new segment moves nobody: its members were never out of it (no events).
    watch = _watch(session, user_id=user_id) if replaces else None
    if watch is not None and segment_id not in watch.segments:
        watch = None
    before = set()
    if watch is not None and replaces:
        before = _members(session, user_id=user_id, segment_id=segment_id)
    if replaces:
        session.execute(
            Tenant(user_id)
            .delete(segment_members)
            .where(segment_members.c.segment_id == segment_id)
        )
    day: date | None = None
    if isinstance(definition, ListMembers):
        _store_members(session, user_id=user_id, segment_id=segment_id, members=definition.members)
        total = sum(1 for _, opted_out in definition.members if not opted_out)
    else:
        counted_day = definition.day or timeutil.today()
        day = counted_day if definition.spec.dated else None
        if definition.total is not None:
            total = definition.total
        else:
            total = count_filter(session, user_id=user_id, spec=definition.spec.on(counted_day))
    _write(session, user_id=user_id, totals={segment_id: total}, days={segment_id: day})
    if watch is not None:
        if isinstance(definition, ListMembers):
            after = {contact_id for contact_id, opted_out in definition.members if not opted_out}
        else:
            spec = definition.spec if day is None else definition.spec.on(day)
            after = _filter_members(session, user_id=user_id, spec=spec)
        watch.add(segment_id, 1, after - before)
        watch.add(segment_id, -1, before - after)
    return _tell(session, watch, user_id=user_id)


def _store_members(
    session: Session, *, user_id: int, segment_id: int, members: Sequence[tuple[int, bool]]
) -> None:
    if not members:
        return
    ids = listed(session, [contact_id for contact_id, _ in members], type_=Integer)
    session.execute(
        insert(segment_members).from_select(
            ["segment_id", "contact_id", "user_id"],
            # In key order: the new segment's rows then fill the primary key at its
            # right edge, and the foreign key looks the contacts up in id order,
            # instead of splitting pages and reading the contacts at random.
            select(literal(segment_id, Integer), ids.c.value, literal(user_id, Integer)).order_by(
                ids.c.value
            ),
        )
    )


def _members(session: Session, *, user_id: int, segment_id: int) -> set[int]:
    """The counted members of a stored segment (watched segments only: a full read)."""
    tenant = Tenant(user_id)
    row = session.execute(
        tenant.select(segments.c.type, segments.c.settings, segments.c.counted_day).where(
            segments.c.id == segment_id
        )
    ).one()
    if row.type == "filter":
        return _filter_members(session, user_id=user_id, spec=pinned(row.settings, row.counted_day))
    query = _listed_members(
        select(segment_members.c.contact_id), user_id=user_id, segment_id=segment_id
    )
    return set(session.execute(query).scalars())


def _filter_members(session: Session, *, user_id: int, spec: filters.Filter) -> set[int]:
    query = select(contacts.c.id).where(
        filters.to_sql(spec, user_id=user_id), contacts.c.has_opted_out.is_(False)
    )
    return set(session.execute(query).scalars())


# -- recounted ------------------------------------------------------------------------


def totals_recounted(session: Session, *, user_id: int, totals: Mapping[int, int]) -> None:
    """Stores totals counted from scratch (`segmenti segments recount`): corrections of
    counts, not membership changes, so no moves."""
    _write(session, user_id=user_id, totals=totals)


# -- the day's shift -------------------------------------------------------------------


def stale_days(session: Session, *, user_id: int, today: date) -> list[tuple[int, Any, date]]:
    """(segment id, settings, counted day) of the user's segments with dates relative to
    today whose total is an earlier day's count: what `days_shifted` moves on. With
    none (nearly always), one probe of the (user_id, counted_day) index."""
    rows = session.execute(
        Tenant(user_id)
        .select(segments.c.id, segments.c.settings, segments.c.counted_day)
        .where(segments.c.counted_day < today)
        .order_by(segments.c.id)
    ).all()
    return [(row.id, row.settings, row.counted_day) for row in rows]


def has_stale_days(session: Session, *, user_id: int, today: date) -> bool:
    found = session.execute(
        Tenant(user_id).select(segments.c.id).where(segments.c.counted_day < today).limit(1)
    ).first()
    return found is not None


def days_shifted(
    session: Session, *, user_id: int, today: date, totals: Mapping[int, int] | None = None
) -> Moves:
    """Moves every dated segment counted for an earlier day on to `today`: its total
    becomes today's count (`totals`, counted before the write transaction, or counted
    here) and its counted_day today. Members enter and leave at midnight without any
    write; watched segments say who.

    Call under `lock_tenant(exclusive=True)`: it is the claim. The stale segments are
    read again under it, so of several processes asking at once the first shifts and
    the others find nothing left to do. Returns the moves (empty when nothing moved)."""
    stale = stale_days(session, user_id=user_id, today=today)
    if not stale:
        return Moves(user_id)
    watch = _watch(session, user_id=user_id)
    new_totals: dict[int, int] = {}
    for segment_id, settings, counted_day in stale:
        spec = filters.Filter.from_settings(settings)
        known = (totals or {}).get(segment_id)
        new_totals[segment_id] = (
            known
            if known is not None
            else count_filter(session, user_id=user_id, spec=spec.on(today))
        )
        if watch is not None and segment_id in watch.segments:
            before = _filter_members(session, user_id=user_id, spec=spec.on(counted_day))
            after = _filter_members(session, user_id=user_id, spec=spec.on(today))
            watch.add(segment_id, 1, after - before)
            watch.add(segment_id, -1, before - after)
    _write(
        session,
        user_id=user_id,
        totals=new_totals,
        days=dict.fromkeys(new_totals, today),
    )
    # The compiled predicates of contact writes are pinned to the old day.
    segments_changed(session, user_id=user_id)
    return _tell(session, watch, user_id=user_id)


# -- the one writer of total_contacts -------------------------------------------------


def _write(
    session: Session,
    *,
    user_id: int,
    totals: Mapping[int, int] | None = None,
    deltas: Mapping[int, int] | None = None,
    days: Mapping[int, date | None] | None = None,
) -> None:
    """Sets `totals` (counted from scratch) and adds `deltas` to `segments.total_contacts`:
    the only statements that write it.

    One statement per segment in ascending id order: concurrent contact writers (which
    only add deltas) then lock segment rows in the same order and cannot deadlock each
    other; `total_contacts + delta` loses no concurrent update. Totals are set only
    under the user's exclusive lock."""
    one_segment = Tenant(user_id).update(segments).where(segments.c.id == bindparam("segment_id"))
    moved: Counter[int] = Counter({s: d for s, d in (deltas or {}).items() if d})
    if days:
        session.execute(
            one_segment.values(counted_day=bindparam("day")),
            [{"segment_id": s, "day": day} for s, day in sorted(days.items())],
        )
    if totals:
        before = {
            row.id: row.total_contacts
            for row in session.execute(
                Tenant(user_id)
                .select(segments.c.id, segments.c.total_contacts)
                .where(segments.c.id.in_(sorted(totals)))
            )
        }
        moved.update({s: total - before.get(s, 0) for s, total in totals.items()})
    if session.get_bind().dialect.name == "postgresql":
        _write_together(session, user_id=user_id, values=sorted((totals or {}).items()), add=False)
        changed = sorted((s, delta) for s, delta in (deltas or {}).items() if delta)
        _write_together(session, user_id=user_id, values=changed, add=True)
    else:
        if totals:
            session.execute(
                one_segment.values(total_contacts=bindparam("total")),
                [{"segment_id": s, "total": total} for s, total in sorted(totals.items())],
            )
        rows = [
            {"segment_id": s, "delta": delta}
            for s, delta in sorted((deltas or {}).items())
            if delta
        ]
        if rows:
            session.execute(
                one_segment.values(total_contacts=segments.c.total_contacts + bindparam("delta")),
                rows,
            )
    _history(session, user_id=user_id, moved=moved, touched=set(totals or ()) | set(moved))


def _history_upsert(dialect: str) -> Any:
    """Today's row of one segment: its total now, entries and exits added (a statement
    per backend, built once: it runs on every write that changes a count)."""
    upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(segment_history)
    statement = upsert.from_select(
        ["user_id", "segment_id", "date", "total_contacts", "entered", "exited"],
        bound_tenant()
        .select(
            segments.c.user_id,
            segments.c.id,
            bindparam("day", type_=Date),
            segments.c.total_contacts,
            bindparam("entered", type_=Integer),
            bindparam("exited", type_=Integer),
        )
        .where(segments.c.id == bindparam("segment_id")),
    )
    return statement.on_conflict_do_update(
        index_elements=["user_id", "segment_id", "date"],
        set_={
            "total_contacts": statement.excluded.total_contacts,
            "entered": segment_history.c.entered + statement.excluded.entered,
            "exited": segment_history.c.exited + statement.excluded.exited,
        },
    )


_HISTORY_UPSERT = {name: _history_upsert(name) for name in ("sqlite", "postgresql")}


def _history(
    session: Session, *, user_id: int, moved: Mapping[int, int], touched: Collection[int]
) -> None:
    """Today's row of each segment written: its total now, and how many entered and
    left (net per write). One upsert per segment, in the write's transaction."""
    if not touched:
        return
    day = utcnow().date()
    if session.get_bind().dialect.name == "postgresql":
        _history_together(session, user_id=user_id, moved=moved, touched=touched, day=day)
        return
    session.execute(
        _HISTORY_UPSERT[session.get_bind().dialect.name],
        [
            {
                "user_id": user_id,
                "segment_id": s,
                "day": day,
                "entered": max(moved.get(s, 0), 0),
                "exited": max(-moved.get(s, 0), 0),
            }
            for s in sorted(touched)
        ],
    )


def _history_together(
    session: Session,
    *,
    user_id: int,
    moved: Mapping[int, int],
    touched: Collection[int],
    day: date,
) -> None:
    """PostgreSQL: `_history`'s upserts as one statement, the segments' ids and moves
    given as arrays. An executemany is a statement per segment for the server to run
    (a contact in 200 filter segments paid 200 of them); here it joins them once."""
    ids = sorted(touched)
    given = select(
        func.unnest(literal(ids, ARRAY(Integer))).label("id"),
        func.unnest(literal([max(moved.get(s, 0), 0) for s in ids], ARRAY(Integer))).label(
            "entered"
        ),
        func.unnest(literal([max(-moved.get(s, 0), 0) for s in ids], ARRAY(Integer))).label(
            "exited"
        ),
    ).subquery()
    upsert = postgresql_insert(segment_history).from_select(
        ["user_id", "segment_id", "date", "total_contacts", "entered", "exited"],
        Tenant(user_id)
        .select(
            segments.c.user_id,
            segments.c.id,
            literal(day, Date),
            segments.c.total_contacts,
            given.c.entered,
            given.c.exited,
        )
        .where(segments.c.id == given.c.id)
        # In key order, as the executemany did: concurrent writers of the same
        # segments then take the history rows' locks in the same order.
        .order_by(segments.c.id),
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["user_id", "segment_id", "date"],
            set_={
                "total_contacts": upsert.excluded.total_contacts,
                "entered": segment_history.c.entered + upsert.excluded.entered,
                "exited": segment_history.c.exited + upsert.excluded.exited,
            },
        )
    )


def _write_together(
    session: Session, *, user_id: int, values: Sequence[tuple[int, int]], add: bool
) -> None:
    """PostgreSQL: `_write`'s statements for many segments as one. executemany sends
    one statement per segment, each a round trip to the server: a contact in 200 filter
    segments paid 200 of them, most of its write. Here the rows are locked in id order
    by a materialized CTE (the same order as the one-by-one updates, so concurrent
    writers still cannot deadlock each other: a CTE scan pulls its rows, and so takes
    its locks, in the CTE's own order, whatever the join above it), then updated from
    the two arrays in the same statement."""
    if not values:
        return
    tenant = Tenant(user_id)
    given = select(
        func.unnest(literal([s for s, _ in values], ARRAY(Integer))).label("id"),
        func.unnest(literal([v for _, v in values], ARRAY(Integer))).label("value"),
    ).subquery()
    locked = (
        tenant.select(segments.c.id)
        .where(segments.c.id.in_(select(given.c.id)))
        .order_by(segments.c.id)
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    value = segments.c.total_contacts + given.c.value if add else given.c.value
    session.execute(
        tenant.update(segments)
        .where(segments.c.id == locked.c.id, given.c.id == locked.c.id)
        .values(total_contacts=value)
    )
