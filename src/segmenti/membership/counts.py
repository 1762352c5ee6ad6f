"""Keeps `segments.total_contacts` exact as contacts change.

Every write that can change a segment's membership adjusts the counts it touches in
its own transaction, so a count is never behind an answered write:
  * a contact created, changed or deleted: each filter segment of its user is
    evaluated in Python against the contact before and after the write (compiled
    predicates, cached per process and invalidated by the user's `segments_version`),
    and the list segments that hold it are adjusted when its opt-out or existence
    changes;
  * a segment created or redefined: counted from scratch with one SQL COUNT.
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
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from segmenti import metrics
from segmenti.db.tables import segment_members, segments, users
from segmenti.membership import filters
from segmenti.membership.filters import ContactState


@dataclass(frozen=True)
class _CompiledSegments:
    version: str
    predicates: tuple[tuple[int, filters.Predicate], ...]


_cache: dict[tuple[str, int], _CompiledSegments] = {}
_cache_lock = threading.Lock()


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
    query = select(users.c.segments_version).where(users.c.id == user_id)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update(read=not exclusive)
    elif writes_contacts:
        session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(contacts_version=users.c.contacts_version + 1)
        )
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
        select(users.c.contacts_version, users.c.segments_version).where(users.c.id == user_id)
    ).one()
    return Snapshot(int(row.contacts_version), str(row.segments_version))


def segments_changed(session: Session, *, user_id: int) -> None:
    """Marks the user's compiled filter segments stale (call after any segment write)."""
    session.execute(
        update(users).where(users.c.id == user_id).values(segments_version=secrets.token_hex(16))
    )


def _filter_predicates(
    session: Session, *, user_id: int, version: str
) -> tuple[tuple[int, filters.Predicate], ...]:
    key = (str(session.get_bind().engine.url), user_id)
    cached = _cache.get(key)
    if cached is not None and cached.version == version:
        return cached.predicates
    rows = session.execute(
        select(segments.c.id, segments.c.settings).where(
            segments.c.user_id == user_id, segments.c.type == "filter"
        )
    ).all()
    predicates = tuple(
        (row.id, filters.to_python(filters.Filter.from_settings(row.settings))) for row in rows
    )
    with _cache_lock:
        _cache[key] = _CompiledSegments(version, predicates)
    return predicates


def filter_predicates(
    session: Session, *, user_id: int, version: str
) -> tuple[tuple[int, filters.Predicate], ...]:
    """(segment id, compiled predicate) of every filter segment of the user, cached until
    the user's segments change. For writers that batch their own deltas (CSV import)."""
    return _filter_predicates(session, user_id=user_id, version=version)


def _counted(state: ContactState | None, predicate: filters.Predicate) -> bool:
    return state is not None and not state.has_opted_out and predicate(state)


@dataclass(frozen=True, slots=True)
class Change:
    """A contact that went from `before` to `after` (None: absent). `weight` counts
    identical new contacts at once (a bulk segment's new numbers)."""

    contact_id: int
    before: ContactState | None
    after: ContactState | None
    weight: int = 1


@metrics.segment_evaluation("contacts_changed")
def contacts_changed(
    session: Session, *, user_id: int, version: str, changes: Iterable[Change]
) -> None:
    """Adjusts the counts that the changes touch.

    Call after `lock_tenant(exclusive=False)` returned `version`, and before a deleted
    contact's segment_members rows are gone."""
    predicates = _filter_predicates(session, user_id=user_id, version=version)
    deltas: Counter[int] = Counter()
    listed: list[tuple[int, int]] = []  # (contact_id, delta) for list segments
    for change in changes:
        before, after = change.before, change.after
        for segment_id, predicate in predicates:
            delta = _counted(after, predicate) - _counted(before, predicate)
            if delta:
                deltas[segment_id] += delta * change.weight
        was = before is not None and not before.has_opted_out
        now = after is not None and not after.has_opted_out
        # A contact that did not exist before is in no list segment yet.
        if was != now and before is not None:
            listed.append((change.contact_id, now - was))
    for contact_id, delta in listed:
        holders = session.execute(
            select(segment_members.c.segment_id).where(
                segment_members.c.user_id == user_id, segment_members.c.contact_id == contact_id
            )
        ).scalars()
        for segment_id in holders:
            deltas[segment_id] += delta
    apply_deltas(session, deltas, user_id=user_id)


def apply_deltas(session: Session, deltas: Counter[int], *, user_id: int) -> None:
    # One statement per segment in ascending id order: concurrent writers then lock
    # segment rows in the same order and cannot deadlock each other.
    rows = [
        {"segment_id": segment_id, "delta": delta}
        for segment_id, delta in sorted(deltas.items())
        if delta
    ]
    if rows:
        session.execute(
            update(segments)
            .where(segments.c.user_id == user_id, segments.c.id == bindparam("segment_id"))
            .values(total_contacts=segments.c.total_contacts + bindparam("delta")),
            rows,
        )
