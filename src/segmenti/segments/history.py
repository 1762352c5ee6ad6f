"""A segment's history: a row a day with its total and how many entered and left, read
from the rows the count owner (membership/counts.py) writes with every count change."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from segmenti.db.tables import segment_history
from segmenti.db.tenant import Tenant
from segmenti.segments.members import load_segment
from segmenti.timeutil import utcnow

MAX_DAYS = 366


def history(session: Session, *, user_id: int, segment_id: int, days: int) -> list[dict[str, Any]]:
    """The last `days` days (today included) from the first day with a row, oldest
    first, one row a day: a day without writes carries the total over, with none
    entered or exited."""
    load_segment(session, user_id=user_id, segment_id=segment_id)  # NotFound
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    tenant = Tenant(user_id)
    stored = {
        row.date: row
        for row in session.execute(
            tenant.select(
                segment_history.c.date,
                segment_history.c.total_contacts,
                segment_history.c.entered,
                segment_history.c.exited,
            ).where(segment_history.c.segment_id == segment_id, segment_history.c.date >= first)
        )
    }
    # The total at the start of the window: the last row before it.
    before = session.execute(
        tenant.select(segment_history.c.total_contacts)
        .where(segment_history.c.segment_id == segment_id, segment_history.c.date < first)
        .order_by(segment_history.c.date.desc())
        .limit(1)
    ).scalar_one_or_none()
    rows: list[dict[str, Any]] = []
    total = before
    day: date = first
    while day <= today:
        row = stored.get(day)
        if row is not None:
            total = row.total_contacts
            rows.append(_row(day, total, row.entered, row.exited))
        elif total is not None:
            rows.append(_row(day, total, 0, 0))
        day += timedelta(days=1)
    return rows


def _row(day: date, total: int, entered: int, exited: int) -> dict[str, Any]:
    return {"date": day.isoformat(), "total_contacts": total, "entered": entered, "exited": exited}
