"""Fresh counts to check maintained `total_contacts` against: the one place the tests
count a segment's members from scratch, in every form the code counts them."""

from __future__ import annotations

from sqlalchemy import func, select

from segmenti.db.engine import Database
from segmenti.db.tables import contacts, segments
from segmenti.membership.counts import count_filter, count_members, pinned
from segmenti.segments.members import members_where
from segmenti.segments.recount import UserColumns


def count_forms(db: Database, user_id: int) -> dict[int, dict[str, int]]:
    """{segment id: {form: total}} for each of the user's segments: the maintained
    `total_contacts`, a COUNT of the rows the member list selects, and the from-scratch
    count a write takes (a filter's index-driven count and its recount form, or a bulk or
    custom segment's member count)."""
    forms: dict[int, dict[str, int]] = {}
    with db.read() as session:
        rows = session.execute(
            select(
                segments.c.id,
                segments.c.type,
                segments.c.settings,
                segments.c.total_contacts,
                segments.c.counted_day,
            )
            .where(segments.c.user_id == user_id)
            .order_by(segments.c.id)
        ).all()
        columns = UserColumns(session, user_id=user_id)
        for row in rows:
            where = members_where(
                user_id=user_id, segment_id=row.id, type=row.type, settings=row.settings
            )
            listed = session.execute(select(func.count()).select_from(contacts).where(where))
            totals = {"maintained": row.total_contacts, "listed": int(listed.scalar_one())}
            if row.type == "filter":
                # A filter with relative dates, on the day its total is counted for.
                spec = pinned(row.settings, row.counted_day)
                totals["counted"] = count_filter(session, user_id=user_id, spec=spec)
                totals["recounted"] = columns.count(spec)
            else:
                totals["counted"] = count_members(session, user_id=user_id, segment_id=row.id)
            forms[row.id] = totals
    return forms


def stale_counts(db: Database, user_id: int) -> dict[int, dict[str, int]]:
    """The entries of `count_forms` whose forms disagree: empty when every maintained
    total is exact."""
    return {
        segment_id: totals
        for segment_id, totals in count_forms(db, user_id).items()
        if len(set(totals.values())) > 1
    }
