"""A segment's members as CSV: the contacts export (`contacts.export`) of the contacts
the segment's member list would show. Here, not in `contacts`, which knows nothing of
segments."""

from __future__ import annotations

from sqlalchemy.orm import Session

from segmenti.contacts import export
from segmenti.segments import service
from segmenti.segments.members import OptOuts, selected_members_where


def start_export(
    session: Session, *, user_id: int, segment_id: int, opt_outs: OptOuts | None = None
) -> export.Export:
    """The segment's members chosen by `opt_outs` as the member list chooses them (by
    default without the opted-out ones, as total_contacts counts them; the
    has_opted_out column says which are). NotFound for another user's or a missing
    segment, raised before anything is sent."""
    segment = service.get_segment(session, user_id=user_id, segment_id=segment_id)
    where = selected_members_where(
        user_id=user_id,
        segment_id=segment_id,
        type=segment["type"],
        settings=segment["settings"],
        opt_outs=opt_outs or OptOuts(),
    )
    return export.start_export(session, user_id=user_id, where=where)
