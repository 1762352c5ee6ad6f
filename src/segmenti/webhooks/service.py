"""Webhooks of a user, their deliveries' attempts, and the user's events.

Every function takes the user and builds its statements through `Tenant(user_id)`.
A webhook starts past the user's newest event: it receives what happens after it was
made (a replay sends older events)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import func
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from segmenti import errors
from segmenti.db.tables import events, segments, webhook_attempts, webhooks
from segmenti.db.tenant import Tenant
from segmenti.membership import counts
from segmenti.membership.events import TYPES, latest_event_id
from segmenti.paging import Page
from segmenti.settings import Settings
from segmenti.timeutil import render, utcnow
from segmenti.webhooks import addresses, sender, signing
from segmenti.webhooks.secrets import box, new_secret

ROTATION_OVERLAP = timedelta(hours=24)
MAX_WEBHOOKS_PER_USER = 100


@dataclass(frozen=True)
class WebhookInput:
    """A webhook's fields as given (None: not given, on an update)."""

    url: str | None = None
    event_types: tuple[str, ...] | None = None
    segments_ids: tuple[int, ...] | None = None
    # An update may set segments_ids back to "every segment".
    all_segments: bool = False


# -- rendering ------------------------------------------------------------------------


def render_event(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "segment_id": row.segment_id,
        "contact_id": row.contact_id,
        "phone_number": row.phone_number,
        "datetime": render(row.datetime),
    }


EVENT_COLUMNS = (
    events.c.id,
    events.c.type,
    events.c.segment_id,
    events.c.contact_id,
    events.c.phone_number,
    events.c.datetime,
)

_WEBHOOK_COLUMNS = (
    webhooks.c.id,
    webhooks.c.url,
    webhooks.c.events,
    webhooks.c.segments_ids,
    webhooks.c.enabled,
    webhooks.c.disabled_reason,
    webhooks.c.last_event_id,
    webhooks.c.previous_secret_until,
    webhooks.c.last_datetime,
    webhooks.c.datetime,
)


def _render(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "segments_ids": None if row.segments_ids is None else list(row.segments_ids),
        "enabled": bool(row.enabled),
        "disabled_reason": row.disabled_reason,
        "last_event_id": int(row.last_event_id),
        "previous_secret_until": render(row.previous_secret_until),
        "last_datetime": render(row.last_datetime),
        "datetime": render(row.datetime),
    }


# -- reading --------------------------------------------------------------------------


def _load(session: Session, *, user_id: int, webhook_id: int) -> Any:
    row = session.execute(
        Tenant(user_id).select(*_WEBHOOK_COLUMNS).where(webhooks.c.id == webhook_id)
    ).first()
    if row is None:
        raise errors.NotFound(f"webhook {webhook_id} does not exist")
    return row


def get_webhook(session: Session, *, user_id: int, webhook_id: int) -> dict[str, Any]:
    return _render(_load(session, user_id=user_id, webhook_id=webhook_id))


def list_webhooks(
    session: Session, *, user_id: int, page: Page
) -> tuple[list[dict[str, Any]], int]:
    tenant = Tenant(user_id)
    total = session.execute(tenant.select(func.count(webhooks.c.id))).scalar_one()
    rows = session.execute(
        tenant.select(*_WEBHOOK_COLUMNS)
        .order_by(webhooks.c.id.desc())
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [_render(row) for row in rows], int(total)


def list_attempts(
    session: Session, *, user_id: int, webhook_id: int, page: Page
) -> tuple[list[dict[str, Any]], int]:
    """Each attempt to deliver to the webhook, newest first."""
    _load(session, user_id=user_id, webhook_id=webhook_id)
    tenant = Tenant(user_id)
    mine = webhook_attempts.c.webhook_id == webhook_id
    total = session.execute(tenant.select(func.count(webhook_attempts.c.id)).where(mine))
    rows = session.execute(
        tenant.select(
            webhook_attempts.c.id,
            webhook_attempts.c.delivery_id,
            webhook_attempts.c.status_code,
            webhook_attempts.c.duration_ms,
            webhook_attempts.c.error,
            webhook_attempts.c.datetime,
        )
        .where(mine)
        .order_by(webhook_attempts.c.id.desc())
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [
        {
            "id": row.id,
            "delivery_id": row.delivery_id,
            "datetime": render(row.datetime),
            "status_code": row.status_code,
            "duration_ms": row.duration_ms,
            "error": row.error,
        }
        for row in rows
    ], int(total.scalar_one())


def list_events(
    session: Session,
    *,
    user_id: int,
    page: Page,
    after_id: int = 0,
    segment_id: int | None = None,
    type: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The user's events past `after_id`, oldest first."""
    tenant = Tenant(user_id)
    where = [events.c.id > after_id]
    if segment_id is not None:
        where.append(events.c.segment_id == segment_id)
    if type is not None:
        where.append(events.c.type == type)
    total = session.execute(tenant.select(func.count(events.c.id)).where(*where)).scalar_one()
    rows = session.execute(
        tenant.select(*EVENT_COLUMNS)
        .where(*where)
        .order_by(events.c.id)
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [render_event(row) for row in rows], int(total)


# -- writing --------------------------------------------------------------------------


def _check_segments(session: Session, *, user_id: int, segment_ids: Sequence[int]) -> None:
    found = set(
        session.execute(
            Tenant(user_id).select(segments.c.id).where(segments.c.id.in_(sorted(segment_ids)))
        ).scalars()
    )
    missing = [s for s in segment_ids if s not in found]
    if missing:
        shown = ", ".join(map(str, missing[: errors.SHOWN_INVALID]))
        raise errors.Invalid(
            f"segments_ids names segments that do not exist: {shown}", parameter="segments_ids"
        )


def _check_url(url: str, settings: Settings) -> None:
    try:
        addresses.check(url, allow_private=settings.webhooks_allow_private)
    except addresses.Refused as exc:
        raise errors.Invalid(f"url is refused: {exc}", parameter="url") from None


def check_input(data: WebhookInput, settings: Settings) -> None:
    """What can be checked without the database (before a write transaction: the URL's
    host is resolved, which may take a while)."""
    if data.url is not None:
        _check_url(data.url, settings)


def create_webhook(
    session: Session, *, user_id: int, data: WebhookInput, settings: Settings
) -> tuple[int, str]:
    """Creates the webhook; returns its id and its secret (shown this once)."""
    if data.url is None:
        raise errors.Invalid("url is required", parameter="url")
    if not data.event_types:
        raise errors.Invalid(f"events must list one of {', '.join(TYPES)}", parameter="events")
    # A segment write moves the user's segments_version: serialize with segment writers,
    # so a webhook and a segment it names are never written past each other.
    counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
    tenant = Tenant(user_id)
    how_many = session.execute(tenant.select(func.count(webhooks.c.id))).scalar_one()
    if how_many >= MAX_WEBHOOKS_PER_USER:
        raise errors.Invalid(
            f"a user may have at most {MAX_WEBHOOKS_PER_USER} webhooks", parameter="url"
        )
    if data.segments_ids is not None:
        _check_segments(session, user_id=user_id, segment_ids=data.segments_ids)
    secret = new_secret()
    webhook_id = session.execute(
        tenant.insert(webhooks)
        .values(
            url=data.url,
            events=list(data.event_types),
            segments_ids=None if data.segments_ids is None else list(data.segments_ids),
            secret_encrypted=box(settings).seal(secret),
            enabled=True,
            last_event_id=latest_event_id(session, user_id=user_id),
            datetime=utcnow(),
        )
        .returning(webhooks.c.id)
    ).scalar_one()
    _watched_changed(session, user_id=user_id)
    return int(webhook_id), secret


def update_webhook(session: Session, *, user_id: int, webhook_id: int, data: WebhookInput) -> None:
    """Changes what is given; an update also enables a disabled webhook again."""
    counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
    _load(session, user_id=user_id, webhook_id=webhook_id)
    values: dict[str, Any] = {
        "enabled": True,
        "disabled_reason": None,
        "last_datetime": utcnow(),
    }
    if data.url is not None:
        values["url"] = data.url
    if data.event_types is not None:
        if not data.event_types:
            raise errors.Invalid(f"events must list one of {', '.join(TYPES)}", parameter="events")
        values["events"] = list(data.event_types)
    if data.all_segments:
        values["segments_ids"] = None
    elif data.segments_ids is not None:
        _check_segments(session, user_id=user_id, segment_ids=data.segments_ids)
        values["segments_ids"] = list(data.segments_ids)
    session.execute(
        Tenant(user_id).update(webhooks).where(webhooks.c.id == webhook_id).values(**values)
    )
    if "segments_ids" in values:
        _watched_changed(session, user_id=user_id)


def delete_webhook(session: Session, *, user_id: int, webhook_id: int) -> None:
    counts.lock_tenant(session, user_id=user_id, exclusive=True, writes_contacts=False)
    deleted = cast(
        CursorResult[Any],
        session.execute(Tenant(user_id).delete(webhooks).where(webhooks.c.id == webhook_id)),
    ).rowcount
    if not deleted:
        raise errors.NotFound(f"webhook {webhook_id} does not exist")
    _watched_changed(session, user_id=user_id)


def _watched_changed(session: Session, *, user_id: int) -> None:
    """The segments the user's webhooks watch changed: contact writes cache them per
    segments_version (membership/events.py), so it moves on."""
    counts.segments_changed(session, user_id=user_id)


def rotate_secret(session: Session, *, user_id: int, webhook_id: int, settings: Settings) -> str:
    """A new secret; deliveries are signed with the old one too for 24 hours."""
    tenant = Tenant(user_id)
    current = session.execute(
        tenant.select(webhooks.c.secret_encrypted).where(webhooks.c.id == webhook_id)
    ).scalar_one_or_none()
    if current is None:
        raise errors.NotFound(f"webhook {webhook_id} does not exist")
    secret = new_secret()
    now = utcnow()
    session.execute(
        tenant.update(webhooks)
        .where(webhooks.c.id == webhook_id)
        .values(
            secret_encrypted=box(settings).seal(secret),
            previous_secret_encrypted=current,
            previous_secret_until=now + ROTATION_OVERLAP,
            last_datetime=now,
        )
    )
    return secret


def replay(session: Session, *, user_id: int, webhook_id: int, after_event_id: int) -> None:
    """Sends the events past `after_event_id` again (those still kept), after the
    deliveries already pending; enables the webhook."""
    _load(session, user_id=user_id, webhook_id=webhook_id)
    session.execute(
        Tenant(user_id)
        .update(webhooks)
        .where(webhooks.c.id == webhook_id)
        .values(
            last_event_id=min(after_event_id, MAX_EVENT_ID),
            enabled=True,
            disabled_reason=None,
            last_datetime=utcnow(),
        )
    )


MAX_EVENT_ID = 2**63 - 1


def secrets_of(session: Session, *, user_id: int, webhook_id: int, settings: Settings) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one
    within a day of a rotation."""
    row = session.execute(
        Tenant(user_id)
        .select(
            webhooks.c.secret_encrypted,
            webhooks.c.previous_secret_encrypted,
            webhooks.c.previous_secret_until,
        )
        .where(webhooks.c.id == webhook_id)
    ).one()
    sealed = [row.secret_encrypted]
    if row.previous_secret_encrypted and row.previous_secret_until > utcnow():
        sealed.append(row.previous_secret_encrypted)
    opener = box(settings)
    return [opener.open(s) for s in sealed]


def send_test(db_read: Any, *, user_id: int, webhook_id: int, settings: Settings) -> dict[str, Any]:
    """Sends one signed `webhook.test` event now and says how the receiver answered.
    Nothing is recorded; the database is not held while the request is out."""
    with db_read() as session:
        row = _load(session, user_id=user_id, webhook_id=webhook_id)
        secrets = secrets_of(session, user_id=user_id, webhook_id=webhook_id, settings=settings)
    now = utcnow()
    timestamp = int(time.time())
    event = {
        "id": 0,
        "type": "webhook.test",
        "segment_id": None,
        "contact_id": None,
        "phone_number": None,
        "datetime": render(now),
    }
    body = json.dumps({"events": [event]}, separators=(",", ":")).encode()
    message_id = f"msg_test_{webhook_id}_{timestamp}"
    headers = signing.headers(secrets, message_id=message_id, timestamp=timestamp, body=body)
    outcome = sender.post(
        row.url,
        body,
        headers,
        allow_private=settings.webhooks_allow_private,
        connect_timeout=settings.webhook_connect_timeout_seconds,
        total_timeout=settings.webhook_timeout_seconds,
    )
    return {
        "status_code": outcome.status_code,
        "duration_ms": outcome.duration_ms,
        "error": outcome.error,
        "ok": outcome.ok,
    }
