"""What the dashboard reads beyond the API's own listings: the live preview of the
segment being edited, and the parameter keys a user already has (for suggestions).

The preview is `segments.service.preview_segment`, the service behind
`POST /api/segments/preview`: the same count and first members, writing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from segmenti import errors
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters
from segmenti.db.tenant import Tenant
from segmenti.forms import Params
from segmenti.segments import service
from segmenti.segments.forms import segment_input
from segmenti.settings import Settings
from segmenti.web.forms import SegmentForm

SUGGESTED_KEYS = 500

_WAITING_FOR = {
    "bulk": "Enter phone numbers to see who would be in it.",
    "custom": "Enter contact ids to see who would be in it.",
}


@dataclass
class Preview:
    """What saving the form would give now: the count and first members, why the form
    is invalid, or what it still needs before there is anything to count."""

    total: int | None = None
    new_contacts: int = 0
    members: list[dict[str, Any]] = field(default_factory=list)
    error: errors.SegmentiError | None = None
    note: str | None = None


def preview(db: Database, settings: Settings, *, user_id: int, form: SegmentForm) -> Preview:
    waiting = _WAITING_FOR.get(form.type)
    if waiting and not (form.phone_numbers if form.type == "bulk" else form.contacts_ids).strip():
        return Preview(note=waiting)
    # The name is not needed to count: leave it out, so an empty one is no error yet.
    pairs = [(name, value) for name, value in form.to_pairs() if name != "name"]
    try:
        data = segment_input(Params.from_pairs(pairs), settings)
        with db.read_only() as session:
            found = service.preview_segment(session, user_id=user_id, data=data)
    except errors.Invalid as exc:
        return Preview(error=exc)
    return Preview(
        total=found["total_contacts"], new_contacts=found["new_contacts"], members=found["contacts"]
    )


def parameter_keys(session: Session, *, user_id: int) -> list[str]:
    """The custom parameter keys the user's contacts have, for the key suggestions.
    Answered from the (user_id, key, value_folded) index."""
    return list(
        session.execute(
            Tenant(user_id)
            .select(contact_parameters.c.key)
            .distinct()
            .order_by(contact_parameters.c.key)
            .limit(SUGGESTED_KEYS)
        ).scalars()
    )
