"""Fresh counts to check maintained `total_contacts` against."""

from __future__ import annotations

from sqlalchemy import func, select

from segmenti.db.engine import Database
from segmenti.db.tables import contacts, segments
from segmenti.segments.members import members_where


def stale_counts(db: Database, user_id: int) -> dict[int, tuple[int, int]]:
    """{segment id: (maintained total, fresh COUNT)} for every segment whose maintained
    total differs from a COUNT of its members; empty when every count is exact."""
    stale: dict[int, tuple[int, int]] = {}
    with db.read() as session:
        rows = session.execute(
            select(segments.c.id, segments.c.type, segments.c.settings, segments.c.total_contacts)
            .where(segments.c.user_id == user_id)
            .order_by(segments.c.id)
        ).all()
        for row in rows:
            where = members_where(
                user_id=user_id, segment_id=row.id, type=row.type, settings=row.settings
            )
            fresh = session.execute(
                select(func.count()).select_from(contacts).where(where)
            ).scalar_one()
            if fresh != row.total_contacts:
                stale[row.id] = (row.total_contacts, fresh)
    return stale
