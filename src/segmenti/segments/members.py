"""Who is in a segment: one WHERE clause over `contacts` per segment, shared by every
reader of membership (member lists, previews, CSV export)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, select

from segmenti.db.tables import contacts, segment_members
from segmenti.segments import filters


def members_where(
    *,
    user_id: int,
    segment_id: int,
    type: str,
    settings: Mapping[str, Any],
    include_opted_out: bool = False,
) -> ColumnElement[bool]:
    """Contacts of the user that are members of the segment now.

    Bulk and custom: the listed contacts that still exist (segment_members). Filter:
    the contacts that satisfy the filter now. Opted-out contacts only when asked."""
    if type == "filter":
        where = filters.to_sql(filters.Filter.from_settings(settings), user_id=user_id)
    else:
        listed = select(segment_members.c.contact_id).where(
            segment_members.c.segment_id == segment_id, segment_members.c.user_id == user_id
        )
        where = and_(contacts.c.user_id == user_id, contacts.c.id.in_(listed))
    if include_opted_out:
        return where
    return and_(where, contacts.c.has_opted_out.is_(False))
