"""The deliverer: turns events into batches, claims due batches, sends them.

It runs in `segmenti serve` (a thread beside the server) and as `segmenti deliver`;
several may run against one database. Its statements cross tenants (it serves every
user's webhooks): each such statement runs inside `across_tenants`, listed in
docs/security.md. Everything it writes for one webhook is scoped to that user.

  * Batching: a webhook with events past its cursor and no pending delivery gets one
    delivery of up to 1,000 of them, in event order; the cursor moves past them in the
    same transaction, guarded by its old value, so two deliverers never batch the same
    events. A backlog therefore goes out in full batches, one at a time.
  * Claiming: a delivery is sent only when it is its webhook's oldest pending one and
    due; a deliverer claims it with a lease (`claimed_until`), by an UPDATE that only
    succeeds while no live lease is held (on PostgreSQL after SELECT ... FOR UPDATE
    SKIP LOCKED), so no two deliverers send one delivery at once, and a deliverer that
    dies leaves it to another when the lease ends.
  * Sending: on a bounded pool of threads, one delivery per webhook at a time; a slow
    receiver holds one thread for at most webhook_timeout_seconds, never the others.
  * Outcome: 2xx delivers; 410 disables the webhook; anything else retries on the
    schedule (webhook_retry_delays), and past its end disables the webhook, saying so.
  * Retention: events and snapshots past their retention are deleted, a bounded number
    per pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, aliased

from segmenti import errors
from segmenti.db import distribution
from segmenti.db.engine import Database
from segmenti.db.tables import (
    events,
    snapshots,
    webhook_attempts,
    webhook_deliveries,
    webhooks,
)
from segmenti.db.tenant import Tenant, across_tenants, same_user
from segmenti.segments.snapshots import delete_snapshot
from segmenti.settings import Settings
from segmenti.timeutil import render
from segmenti.webhooks import sender, signing
from segmenti.webhooks.service import EVENT_COLUMNS, render_event, secrets_of

log = logging.getLogger("segmenti.deliverer")

BATCH = 1000
# Rows deleted per retention statement, and statements per pass: no pass holds SQLite's
# write lock for long, and a large backlog drains over a few passes.
PURGE_CHUNK = 5000
PURGE_ROUNDS = 4
PURGE_EVERY_SECONDS = 60.0


def _now() -> datetime:
    """Naive UTC with microseconds (retry delays of tests are fractions of a second)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Claimed:
    user_id: int
    webhook_id: int
    delivery_id: int
    attempts: int


class Deliverer:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.delays = settings.retry_delays()
        self._last_purge = 0.0
        self._row_locks: bool | None = None

    # -- one pass -------------------------------------------------------------------

    def run_once(self) -> int:
        """Batches, then sends every due delivery one after another (tests, and the
        command's --once); returns how many attempts were made."""
        self.purge_if_due()
        self.batch()
        sent = 0
        while True:
            claimed = self.claim(limit=self.settings.webhook_concurrency, busy=set())
            if not claimed:
                return sent
            for one in claimed:
                self.send(one)
                sent += 1
            self.batch()

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: batch, claim what free threads can take, send."""
        poll = self.settings.deliverer_poll_seconds
        with ThreadPoolExecutor(
            max_workers=self.settings.webhook_concurrency, thread_name_prefix="deliver"
        ) as pool:
            running: dict[tuple[int, int], Future[None]] = {}
            woken = threading.Event()
            while not stop.is_set():
                try:
                    self.purge_if_due()
                    self.batch()
                    for key in [k for k, f in running.items() if f.done()]:
                        running.pop(key)
                    free = self.settings.webhook_concurrency - len(running)
                    if free > 0:
                        for one in self.claim(limit=free, busy=set(running)):
                            future = pool.submit(self.send, one)
                            future.add_done_callback(lambda _f: woken.set())
                            running[(one.user_id, one.webhook_id)] = future
                except Exception:  # noqa: BLE001 - the loop must outlive a bad pass
                    log.exception("deliverer pass failed")
                woken.wait(poll)
                woken.clear()

    # -- batching -------------------------------------------------------------------

    def batch(self) -> int:
        """Makes a delivery for each webhook with new events and none pending."""
        pending = aliased(webhook_deliveries)
        with self.db.read() as session, across_tenants("the deliverer serves every user"):
            candidates = session.execute(
                select(webhooks.c.user_id, webhooks.c.id).where(
                    webhooks.c.enabled.is_(True),
                    exists().where(
                        same_user(events, webhooks),
                        events.c.id > webhooks.c.last_event_id,
                    ),
                    ~exists().where(
                        same_user(pending, webhooks),
                        pending.c.webhook_id == webhooks.c.id,
                        pending.c.status == "pending",
                    ),
                )
            ).all()
        made = 0
        for user_id, webhook_id in candidates:
            with self.db.write() as session:
                made += self._batch_one(session, user_id=user_id, webhook_id=webhook_id)
        return made

    def _batch_one(self, session: Session, *, user_id: int, webhook_id: int) -> int:
        tenant = Tenant(user_id)
        row = session.execute(
            tenant.select(
                webhooks.c.last_event_id, webhooks.c.events, webhooks.c.segments_ids
            ).where(webhooks.c.id == webhook_id, webhooks.c.enabled.is_(True))
        ).first()
        if row is None:
            return 0
        cursor = int(row.last_event_id)
        newest = session.execute(tenant.select(func.max(events.c.id))).scalar_one() or 0
        if newest <= cursor:
            return 0
        wanted = [events.c.id > cursor, events.c.id <= newest, events.c.type.in_(row.events)]
        if row.segments_ids is not None:
            wanted.append(events.c.segment_id.in_([int(s) for s in row.segments_ids]))
        ids = list(
            session.execute(
                tenant.select(events.c.id).where(*wanted).order_by(events.c.id).limit(BATCH)
            ).scalars()
        )
        moved_to = ids[-1] if len(ids) == BATCH else newest
        advanced = cast(
            CursorResult[Any],
            session.execute(
                tenant.update(webhooks)
                .where(webhooks.c.id == webhook_id, webhooks.c.last_event_id == cursor)
                .values(last_event_id=moved_to)
            ),
        ).rowcount
        if not advanced:  # another deliverer batched these events
            session.rollback()
            return 0
        if not ids:
            return 0
        now = _now()
        session.execute(
            tenant.insert(webhook_deliveries).values(
                webhook_id=webhook_id,
                event_ids=[int(i) for i in ids],
                status="pending",
                attempts=0,
                next_attempt_at=now,
                datetime=now.replace(microsecond=0),
            )
        )
        return 1

    # -- claiming -------------------------------------------------------------------

    def claim(self, *, limit: int, busy: set[tuple[int, int]]) -> list[Claimed]:
        """Claims up to `limit` due deliveries, each its webhook's oldest pending one,
        none of a webhook in `busy` (being sent by this process)."""
        now = _now()
        earlier = aliased(webhook_deliveries)
        d = webhook_deliveries
        due = (
            select(d.c.user_id, d.c.webhook_id, d.c.id, d.c.attempts)
            .where(
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
                ~exists().where(
                    same_user(earlier, d),
                    earlier.c.webhook_id == d.c.webhook_id,
                    earlier.c.status == "pending",
                    earlier.c.id < d.c.id,
                ),
                exists().where(
                    same_user(webhooks, d),
                    webhooks.c.id == d.c.webhook_id,
                    webhooks.c.enabled.is_(True),
                ),
            )
            .order_by(d.c.next_attempt_at)
            .limit(limit + len(busy))
        )
        claimed: list[Claimed] = []
        lease = now + timedelta(seconds=self.settings.deliverer_lease_seconds)
        with self.db.write() as session, across_tenants("the deliverer serves every user"):
            if self._skips_locked(session):
                due = due.with_for_update(of=d, skip_locked=True)
            for row in session.execute(due).all():
                if (row.user_id, row.webhook_id) in busy or len(claimed) >= limit:
                    continue
                # The claim itself: only while no live lease is held (SQLite has no
                # SKIP LOCKED; this UPDATE is what keeps two deliverers apart there).
                taken = cast(
                    CursorResult[Any],
                    session.execute(
                        update(d)
                        .where(
                            Tenant(row.user_id).owns(d),
                            d.c.id == row.id,
                            d.c.status == "pending",
                            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
                        )
                        .values(claimed_until=lease)
                    ),
                ).rowcount
                if taken:
                    claimed.append(Claimed(row.user_id, row.webhook_id, row.id, row.attempts))
        return claimed

    def _skips_locked(self, session: Session) -> bool:
        """PostgreSQL skips deliveries another deliverer holds (SKIP LOCKED). Not on
        Citus, which refuses FOR UPDATE on a read across shards, nor on SQLite: there
        the conditional UPDATE of the lease alone keeps two deliverers apart."""
        if self._row_locks is None:
            connection = session.connection()
            self._row_locks = connection.dialect.name == "postgresql" and not (
                distribution.has_citus(connection)
            )
        return self._row_locks

    # -- sending --------------------------------------------------------------------

    def send(self, claimed: Claimed) -> None:
        user_id, webhook_id = claimed.user_id, claimed.webhook_id
        tenant = Tenant(user_id)
        with self.db.read() as session:
            url = session.execute(
                tenant.select(webhooks.c.url).where(webhooks.c.id == webhook_id)
            ).scalar_one_or_none()
            event_ids = session.execute(
                tenant.select(webhook_deliveries.c.event_ids).where(
                    webhook_deliveries.c.id == claimed.delivery_id
                )
            ).scalar_one_or_none()
            if url is None or event_ids is None:  # deleted meanwhile
                return
            rows = session.execute(
                tenant.select(*EVENT_COLUMNS)
                .where(events.c.id.in_([int(i) for i in event_ids]))
                .order_by(events.c.id)
            ).all()
            secrets = secrets_of(
                session, user_id=user_id, webhook_id=webhook_id, settings=self.settings
            )
        if not rows:  # every event erased or expired since: nothing left to say
            self._record(claimed, sender.Outcome(None, 0, None), delivered=True)
            return
        body = json.dumps(
            {"events": [render_event(row) for row in rows]}, separators=(",", ":")
        ).encode()
        headers = signing.headers(
            secrets,
            message_id=f"msg_{claimed.delivery_id}",
            timestamp=int(time.time()),
            body=body,
        )
        outcome = sender.post(
            url,
            body,
            headers,
            allow_private=self.settings.webhooks_allow_private,
            connect_timeout=self.settings.webhook_connect_timeout_seconds,
            total_timeout=self.settings.webhook_timeout_seconds,
        )
        self._record(claimed, outcome, delivered=outcome.ok, attempted=True)

    def _record(
        self,
        claimed: Claimed,
        outcome: sender.Outcome,
        *,
        delivered: bool,
        attempted: bool = False,
    ) -> None:
        tenant = Tenant(claimed.user_id)
        now = _now()
        attempts = claimed.attempts + (1 if attempted else 0)
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        disabled: str | None = None
        if delivered:
            values["status"] = "delivered"
        elif outcome.status_code == 410:
            values["status"] = "failed"
            disabled = f"the receiver answered 410 Gone on {render(now)}"
        elif attempts > len(self.delays):
            values["status"] = "failed"
            disabled = (
                f"delivery {claimed.delivery_id} failed {attempts} times, the last on "
                f"{render(now)} ({_said(outcome)}); retries exhausted"
            )
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self.delays[attempts - 1])
        with self.db.write() as session:
            if attempted:
                session.execute(
                    tenant.insert(webhook_attempts).values(
                        webhook_id=claimed.webhook_id,
                        delivery_id=claimed.delivery_id,
                        status_code=outcome.status_code,
                        duration_ms=outcome.duration_ms,
                        error=outcome.error,
                        datetime=now.replace(microsecond=0),
                    )
                )
            session.execute(
                tenant.update(webhook_deliveries)
                .where(webhook_deliveries.c.id == claimed.delivery_id)
                .values(**values)
            )
            if disabled is not None:
                session.execute(
                    tenant.update(webhooks)
                    .where(webhooks.c.id == claimed.webhook_id)
                    .values(enabled=False, disabled_reason=disabled)
                )

    # -- retention ------------------------------------------------------------------

    def purge_if_due(self) -> None:
        if time.monotonic() - self._last_purge >= PURGE_EVERY_SECONDS:
            self._last_purge = time.monotonic()
            self.purge()

    def purge(self) -> int:
        """Deletes events past their retention, and expired snapshots (and any left
        incomplete by a writer that died), in bounded chunks."""
        now = _now()
        removed = 0
        # Events, and the deliveries and attempts that are done with, as old as that.
        oldest = now - timedelta(days=self.settings.events_retention_days)
        for table, old in (
            (events, events.c.datetime < oldest),
            (webhook_attempts, webhook_attempts.c.datetime < oldest),
            (
                webhook_deliveries,
                (webhook_deliveries.c.datetime < oldest)
                & (webhook_deliveries.c.status != "pending"),
            ),
        ):
            removed += self._purge_rows(table, old)
        abandoned = now - timedelta(hours=1)
        with self.db.read() as session, across_tenants("retention spans every user"):
            expired = session.execute(
                select(snapshots.c.user_id, snapshots.c.id)
                .where(
                    or_(
                        snapshots.c.expires_at < now,
                        (snapshots.c.complete.is_(False)) & (snapshots.c.datetime < abandoned),
                    )
                )
                .limit(PURGE_ROUNDS)
            ).all()
        for owner, snapshot_id in expired:
            with contextlib.suppress(errors.NotFound):  # deleted meanwhile
                delete_snapshot(
                    self.db, user_id=owner, snapshot_id=snapshot_id, incomplete_too=True
                )
            removed += 1
        return removed

    def _purge_rows(self, table: Any, expired: Any) -> int:
        """Deletes `table`'s `expired` rows, PURGE_CHUNK a transaction, at most
        PURGE_ROUNDS transactions a pass."""
        removed = 0
        for _ in range(PURGE_ROUNDS):
            with self.db.write() as session, across_tenants("retention spans every user"):
                found = session.execute(
                    select(table.c.user_id, table.c.id).where(expired).limit(PURGE_CHUNK)
                ).all()
                by_user: dict[int, list[int]] = {}
                for owner, row_id in found:
                    by_user.setdefault(owner, []).append(row_id)
                for owner, ids in by_user.items():
                    session.execute(Tenant(owner).delete(table).where(table.c.id.in_(ids)))
            removed += len(found)
            if len(found) < PURGE_CHUNK:
                break
        return removed


def _said(outcome: sender.Outcome) -> str:
    if outcome.status_code is not None:
        return f"status {outcome.status_code}"
    return outcome.error or "no answer"


def start_in_background(settings: Settings) -> threading.Event:
    """Runs a deliverer in a daemon thread of this process (`segmenti serve`); set the
    returned event to stop it."""
    stop = threading.Event()

    def run() -> None:
        db = Database(settings)
        try:
            Deliverer(db, settings).run(stop)
        finally:
            db.dispose()

    threading.Thread(target=run, name="deliverer", daemon=True).start()
    return stop
