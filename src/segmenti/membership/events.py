"""Membership events: who entered and who left a watched segment, recorded in the
transaction of the write that moved them (docs/events-and-webhooks.md).

`counts.py`, the one owner of membership, works out the moves of the segments that a
`Watcher` asks for and hands them over in the write's own transaction; `EventRecorder`
is that watcher. It watches the segments some webhook of the user names (or all of the
user's segments, for a webhook without `segments_ids`); the segments of a user without
webhooks are watched by nobody, so their writes cost nothing more. Which segments are
watched is cached per user on the user's segments_version (`watched_segments`).

Events are written set-based: one INSERT ... SELECT per segment and direction (per
10,000 contacts), which copies each contact's number from `contacts`.

On PostgreSQL the user's event writers queue on an advisory lock held to their commit,
so a user's events are committed in id order: the deliverer reads past a webhook's
cursor and would otherwise skip an event whose id was taken before a concurrent
writer's but committed after it. SQLite has one writer at a time already.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import Integer, String, bindparam, func, insert, literal, select, text
from sqlalchemy.orm import Session

from segmenti.db.bulk import listed
from segmenti.db.tables import contacts, events, segments, webhooks
from segmenti.db.tenant import Tenant, bound_tenant
from segmenti.membership import counts
from segmenti.timeutil import utcnow

ENTERED = "segment.contact_entered"
EXITED = "segment.contact_exited"
TYPES = (ENTERED, EXITED)

# The first key of the PostgreSQL advisory lock that orders a user's event writers.
_EVENTS_LOCK = 15
_CHUNK = 10_000


_BOUND = bound_tenant()
_WEBHOOK_SEGMENTS = _BOUND.select(webhooks.c.segments_ids)
_EVERY_SEGMENT = _BOUND.select(segments.c.id)


def watched_segments(
    session: Session, *, user_id: int, version: str | None = None
) -> Collection[int]:
    """The user's segments some webhook watches (every segment when one watches all).

    With `version` (the user's segments_version, read under `counts.lock_tenant`), the
    answer is cached per process until it moves: every contact write asks, and webhook
    writes as well as segment writes move it (webhooks/service.py)."""
    if version is None:
        return _watched_now(session, user_id=user_id)
    key = (str(session.get_bind().engine.url), user_id)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == version:
            _cache.move_to_end(key)
            return cached[1]
    found = frozenset(_watched_now(session, user_id=user_id))
    with _cache_lock:
        _cache[key] = (version, found)
        _cache.move_to_end(key)
        while len(_cache) > CACHED_USERS:
            _cache.popitem(last=False)
    return found


# Users whose watched segments are cached, the least recently written to dropped first.
CACHED_USERS = 4096
_cache: OrderedDict[tuple[str, int], tuple[str, frozenset[int]]] = OrderedDict()
_cache_lock = threading.Lock()


def _watched_now(session: Session, *, user_id: int) -> Collection[int]:
    user = {"user_id": user_id}
    named: set[int] = set()
    for (segment_ids,) in session.execute(_WEBHOOK_SEGMENTS, user):
        if segment_ids is None:
            return frozenset(session.execute(_EVERY_SEGMENT, user).scalars())
        named.update(int(s) for s in segment_ids)
    return named


class EventRecorder:
    """The `counts.Watcher` that records membership events."""

    def watched(
        self, session: Session, *, user_id: int, version: str | None = None
    ) -> Collection[int]:
        return watched_segments(session, user_id=user_id, version=version)

    def moved(self, session: Session, moves: counts.Moves) -> None:
        record(session, moves)


# One event of one contact: built once, executed for every small move (a contact write
# moves it in or out of a few segments); statements cost more to build than to run.
_ONE_EVENT = insert(events).from_select(
    ["user_id", "type", "segment_id", "contact_id", "phone_number", "datetime"],
    _BOUND.select(
        bindparam("user_id", type_=Integer),
        bindparam("type", type_=String),
        bindparam("segment_id", type_=Integer),
        contacts.c.id,
        contacts.c.phone_number,
        bindparam("now", type_=events.c.datetime.type),
    ).where(contacts.c.id == bindparam("contact_id", type_=Integer)),
)
# Moves of one segment and direction above this many are written set-based.
_SET_BASED = 200


def record(session: Session, moves: counts.Moves) -> None:
    """Writes one event per contact and segment moved, per segment exits first, in
    contact order: a small move one prepared statement for all its rows, a large one
    an INSERT ... SELECT per 10,000 contacts."""
    user_id = moves.user_id
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:kind, :user_id)"),
            {"kind": _EVENTS_LOCK, "user_id": user_id},
        )
    now = utcnow()
    for segment_id in sorted(set(moves.left) | set(moves.entered)):
        small: list[dict[str, object]] = []
        for kind, moved in ((EXITED, moves.left), (ENTERED, moves.entered)):
            ids = sorted(moved.get(segment_id, ()))
            if len(ids) <= _SET_BASED:
                small.extend(
                    {
                        "user_id": user_id,
                        "type": kind,
                        "segment_id": segment_id,
                        "contact_id": contact_id,
                        "now": now,
                    }
                    for contact_id in ids
                )
                continue
            if small:  # keep the order: what came before goes first
                session.execute(_ONE_EVENT, small)
                small = []
            for start in range(0, len(ids), _CHUNK):
                _insert(
                    session,
                    user_id=user_id,
                    kind=kind,
                    segment_id=segment_id,
                    contact_ids=ids[start : start + _CHUNK],
                    now=now,
                )
        if small:
            session.execute(_ONE_EVENT, small)


def _insert(
    session: Session,
    *,
    user_id: int,
    kind: str,
    segment_id: int,
    contact_ids: Iterable[int],
    now: datetime,
) -> None:
    ids = listed(session, list(contact_ids), type_=Integer)
    rows = (
        Tenant(user_id)
        .select(
            literal(user_id, Integer),
            literal(kind, String),
            literal(segment_id, Integer),
            contacts.c.id,
            contacts.c.phone_number,
            literal(now, events.c.datetime.type),
        )
        .where(contacts.c.id.in_(select(ids.c.value)))
        .order_by(contacts.c.id)
    )
    session.execute(
        insert(events).from_select(
            ["user_id", "type", "segment_id", "contact_id", "phone_number", "datetime"], rows
        )
    )


def latest_event_id(session: Session, *, user_id: int) -> int:
    """The user's newest event id (0 without events): a new webhook starts past it."""
    newest = session.execute(Tenant(user_id).select(func.max(events.c.id))).scalar_one()
    return int(newest or 0)


RECORDER = EventRecorder()
counts.watch_always(RECORDER)
