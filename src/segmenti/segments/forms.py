"""Request parameters -> a validated `SegmentInput` (no database needed)."""

from __future__ import annotations

from segmenti import errors
from segmenti.checks import check_text
from segmenti.forms import Params, parse_bool
from segmenti.membership import filters
from segmenti.segments.members import OptOuts
from segmenti.segments.service import TYPES, SegmentInput, normalize_bulk, parse_contacts_ids
from segmenti.settings import Settings


def segment_name(raw: str) -> str:
    """`name`, without surrounding spaces (the API's field and the dashboard's)."""
    return check_text("name", raw.strip(), min_length=1, max_length=256)


def segment_input(params: Params, settings: Settings) -> SegmentInput:
    name = params.text("name")
    if name is not None:
        name = segment_name(name)
    kind = params.text("type")
    if kind is not None:
        kind = kind.strip().lower()
        if kind not in TYPES:
            raise errors.Invalid(
                f"type must be one of {', '.join(TYPES)}, got {kind[:40]!r}", parameter="type"
            )
    phone_numbers = params.many("phone_numbers")
    contacts_ids = params.many("contacts_ids")
    return SegmentInput(
        name=name,
        type=kind,
        bulk=None
        if phone_numbers is None
        else normalize_bulk(phone_numbers, limit=settings.max_bulk_phone_numbers),
        contacts_ids=None if contacts_ids is None else parse_contacts_ids(contacts_ids),
        filter=filters.parse(params, max_conditions=settings.max_filter_conditions)
        if filters.given(params)
        else None,
        filter_parameter=next(
            (name for name in filters.FILTER_FIELDS if params.has(name)), filters.KEY_FIELD
        ),
    )


def opt_outs(params: Params) -> OptOuts:
    """`include_opted_out` and `has_opted_out` of a member list or a segment's export;
    an empty value is as good as absent."""

    def flag(name: str) -> bool | None:
        raw = params.text(name)
        return None if raw is None or raw.strip() == "" else parse_bool(name, raw)

    return OptOuts(
        include_opted_out=bool(flag("include_opted_out")), has_opted_out=flag("has_opted_out")
    )
