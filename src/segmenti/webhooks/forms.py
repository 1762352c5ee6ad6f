"""Request parameters of webhooks and events -> validated values (the wire names)."""

from __future__ import annotations

from segmenti import errors
from segmenti.forms import Params
from segmenti.membership.events import TYPES
from segmenti.segments.service import parse_contacts_ids
from segmenti.webhooks.service import MAX_EVENT_ID, WebhookInput

MAX_SEGMENTS_IDS = 1000


def webhook_input(params: Params, *, creating: bool) -> WebhookInput:
    url = params.text("url")
    if url is not None:
        url = url.strip()
    if creating and not url:
        raise errors.Invalid("url is required", parameter="url")
    event_types = None
    raw_events = params.many("events")
    if raw_events is not None:
        chosen: dict[str, None] = {}
        for raw in raw_events:
            for part in raw.split(","):
                name = part.strip()
                if not name:
                    continue
                if name not in TYPES:
                    raise errors.Invalid(
                        f"events must be among {', '.join(TYPES)}, got {name[:60]!r}",
                        parameter="events",
                    )
                chosen.setdefault(name, None)
        event_types = tuple(chosen)
        if not event_types:
            raise errors.Invalid(f"events must list one of {', '.join(TYPES)}", parameter="events")
    elif creating:
        raise errors.Invalid(f"events is required: {', '.join(TYPES)}", parameter="events")
    segments_ids, all_segments = _segments_ids(params)
    return WebhookInput(url or None, event_types, segments_ids, all_segments)


def _segments_ids(params: Params) -> tuple[tuple[int, ...] | None, bool]:
    """The watched segments: None when absent; an empty value means every segment."""
    raw = params.many("segments_ids")
    if raw is None:
        return None, False
    if not any(part.strip() for chunk in raw for part in chunk.split(",")):
        return None, True
    ids = parse_contacts_ids(raw, parameter="segments_ids")
    if len(ids) > MAX_SEGMENTS_IDS:
        raise errors.Invalid(
            f"segments_ids may name at most {MAX_SEGMENTS_IDS} segments", parameter="segments_ids"
        )
    return ids, False


def event_id(name: str, raw: str | None) -> int:
    """A 64-bit event id parameter (`after_id`, `after_event_id`); absent: 0."""
    if raw is None or not raw.strip():
        return 0
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_EVENT_ID:
        raise errors.Invalid(
            f"{name} must be an event id (an integer from 0 to {MAX_EVENT_ID}), got {raw[:40]!r}",
            parameter=name,
        )
    return int(text)


def segment_id(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 1 <= int(text) < 2**31:
        raise errors.Invalid(
            f"segment_id must be a segment id, got {raw[:40]!r}", parameter="segment_id"
        )
    return int(text)
