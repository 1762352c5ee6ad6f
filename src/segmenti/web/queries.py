"""The few reads only the dashboard makes: member pages, the live preview of a filter
being edited, and the parameter keys a user already has (for suggestions).

Membership always comes from `segments.members.members_where`, the one WHERE clause
that every reader of membership shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from segmenti import errors
from segmenti.contacts.service import CONTACT_COLUMNS, render_contact
from segmenti.db.tables import contact_parameters, contacts
from segmenti.forms import Params
from segmenti.paging import Page
from segmenti.segments import filters, service
from segmenti.segments.members import members_where

PREVIEW_MEMBERS = 10
SUGGESTED_KEYS = 500


def segment_members(
    session: Session, *, user_id: int, segment: dict[str, Any], page: Page
) -> list[dict[str, Any]]:
    """One page of the segment's members (opted-out contacts excluded), by contact id."""
    where = members_where(
        user_id=user_id,
        segment_id=segment["id"],
        type=segment["type"],
        settings=segment["settings"],
    )
    rows = session.execute(
        select(*CONTACT_COLUMNS)
        .where(where)
        .order_by(contacts.c.id)
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [render_contact(row) for row in rows]


@dataclass
class Preview:
    """What a filter would select now: its count and first members, or why it is invalid."""

    total: int | None = None
    members: list[dict[str, Any]] = field(default_factory=list)
    error: errors.SegmentiError | None = None


def preview_filter(
    session: Session, *, user_id: int, pairs: list[tuple[str, str]], max_conditions: int
) -> Preview:
    try:
        spec = filters.parse(Params.from_pairs(pairs), max_conditions=max_conditions)
    except errors.Invalid as exc:
        return Preview(error=exc)
    total = service.count_filter(session, user_id=user_id, spec=spec)
    where = members_where(user_id=user_id, segment_id=0, type="filter", settings=spec.as_settings())
    rows = session.execute(
        select(*CONTACT_COLUMNS).where(where).order_by(contacts.c.id).limit(PREVIEW_MEMBERS)
    ).all()
    return Preview(total=total, members=[render_contact(row) for row in rows])


def parameter_keys(session: Session, *, user_id: int) -> list[str]:
    """The custom parameter keys the user's contacts have, for the key suggestions.
    Answered from the (user_id, key, value_folded) index."""
    return list(
        session.execute(
            select(contact_parameters.c.key)
            .where(contact_parameters.c.user_id == user_id)
            .distinct()
            .order_by(contact_parameters.c.key)
            .limit(SUGGESTED_KEYS)
        ).scalars()
    )
