"""What the dashboard reads beyond the API's own listings: the live preview of the
segment being edited.

The preview is `segments.service.preview_segment`, the service behind
`POST /api/segments/preview`: the same count and first members, writing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segmenti import errors
from segmenti.db.engine import Database
from segmenti.segments import service
from segmenti.settings import Settings
from segmenti.web.forms import SegmentForm
from segmenti.web.i18n import N_

_WAITING_FOR = {
    "bulk": N_("Enter phone numbers to see who would be in it."),
    "custom": N_("Enter contact ids to see who would be in it."),
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
    try:
        data = form.to_input(settings, named=False)  # a name is not needed to count
        with db.read_only() as session:
            found = service.preview_segment(session, user_id=user_id, data=data)
    except errors.Invalid as exc:
        return Preview(error=exc)
    return Preview(
        total=found["total_contacts"], new_contacts=found["new_contacts"], members=found["contacts"]
    )
