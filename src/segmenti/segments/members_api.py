"""Segment membership API: who is in a segment, why, and before saving it.

Included in the app before `segments.api`, so `POST /api/segments/preview` is not
taken for an update of a segment with id "preview"."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from segmenti import schemas
from segmenti.db.tables import MAX_ID
from segmenti.forms import Params, parse_positive_int
from segmenti.http import (
    ResourceId,
    body_params,
    current_user,
    cursor_envelope,
    database,
    page_of,
)
from segmenti.segments import members, service
from segmenti.segments.forms import opt_outs, segment_input

router = APIRouter(prefix="/api/segments", tags=["segments"])

_MEMBER_LIST_PARAMETERS = [
    *schemas.page_parameters(),
    schemas.query_parameter(
        "after_id",
        {"type": "integer", "minimum": 1},
        "Keyset cursor: the members after this contact id. Then `page` only labels the "
        "page in `meta` and links; the `next` link carries the cursor, so following it "
        "costs the same on every page. Without it `page` skips (page - 1) * "
        "results_per_page members, which costs more the deeper the page.",
    ),
    *schemas.OPT_OUT_PARAMETERS,
    schemas.SEARCH_PARAMETER,
]

_CHECK = {
    "type": "object",
    "properties": {
        "allowed": {"type": "array", "items": {"type": "string"}},
        "contact_value": {"type": ["string", "null"]},
        "held": {"type": "boolean"},
    },
}
MEMBERSHIP = {
    "type": "object",
    "required": ["segment_id", "contact_id", "type", "member", "counted", "has_opted_out"],
    "properties": {
        "segment_id": {"type": "integer"},
        "contact_id": {"type": "integer"},
        "type": {"type": "string", "enum": ["bulk", "custom", "filter"]},
        "member": {
            "type": "boolean",
            "description": "In the member list with include_opted_out=1.",
        },
        "counted": {
            "type": "boolean",
            "description": "A member that has not opted out: in the default member list "
            "and in total_contacts.",
        },
        "has_opted_out": {"type": "boolean"},
        "reason": {"type": "string"},
        "listed": {
            "type": "boolean",
            "description": "bulk and custom: the contact is one of the segment's contacts.",
        },
        "conditions": {
            "type": "array",
            "description": "filter: each custom-parameter condition, the contact's value "
            "(null when it has not the key) and whether the condition held.",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "node": {"type": "string"},
                    "key": {"type": "string"},
                    "condition": {"type": "string"},
                    "value": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                    "contact_value": {"type": ["string", "null"]},
                    "held": {"type": "boolean"},
                },
            },
        },
        "countries": {**_CHECK, "type": ["object", "null"]},
        "continents": {**_CHECK, "type": ["object", "null"]},
        "tree": {
            "$ref": "#/components/schemas/NodeVerdict",
            "description": "filter trees: every node's verdict, from the root.",
        },
    },
}
PREVIEW = {
    "type": "object",
    "required": ["total_contacts", "new_contacts", "contacts"],
    "properties": {
        "total_contacts": {"type": "integer"},
        "new_contacts": {
            "type": "integer",
            "description": "bulk: numbers that are not contacts yet (saving would create "
            "them); they follow the existing members in `contacts` with a null id.",
        },
        "contacts": {"type": "array", "items": schemas.CONTACT, "maxItems": 10},
    },
}
_PREVIEW_BODY = schemas.request_body(
    schemas.SEGMENT_FORM_FIELDS, schemas.FILTER_PATTERN_FIELDS, schemas.SEGMENT_JSON_FIELDS
)


@router.post(
    "/preview",
    summary="Preview a segment without saving it",
    description="The parameters of creating a segment (all three types, the same "
    "validation and errors; `name` is optional). Nothing is written: a bulk preview "
    "creates no contact. Answers the total_contacts the segment would have and its "
    "first 10 members in contact id order.",
    responses=schemas.responses(200, schemas.one(PREVIEW), 400, 401, 413, 415),
    openapi_extra=_PREVIEW_BODY,
)
def preview_segment(
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> JSONResponse:
    data = segment_input(params, request.app.state.settings)
    with database(request).read_only() as session:
        preview = service.preview_segment(session, user_id=user_id, data=data)
    return JSONResponse({"data": preview})


@router.get(
    "/{segment_id}/contacts",
    summary="List a segment's members",
    description="The segment's members as contacts, in contact id order, with the "
    "paging, envelope and links of every list. Members that have opted out are left "
    "out unless include_opted_out=1 (or has_opted_out=1) is given.",
    responses=schemas.responses(200, schemas.listing(schemas.CONTACT), 400, 401, 404),
    openapi_extra={"parameters": _MEMBER_LIST_PARAMETERS},
)
def list_members(
    segment_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    page = page_of(request)
    raw_after = request.query_params.get("after_id")
    after_id = None if raw_after in (None, "") else parse_positive_int("after_id", raw_after)
    if after_id is not None:
        after_id = min(after_id, MAX_ID)  # nothing lies past MAX_ID; the driver cannot bind it
    choice = opt_outs(Params.from_pairs(request.query_params.multi_items()))
    service.dates_current(database(request), user_id=user_id)
    with database(request).read() as session:
        listed = members.list_members(
            session,
            user_id=user_id,
            segment_id=segment_id,
            page=page,
            after_id=after_id,
            include_opted_out=choice.include_opted_out,
            has_opted_out=choice.has_opted_out,
            search=request.query_params.get("search"),
        )
    return JSONResponse(
        cursor_envelope(
            request, listed.rows, total=listed.total, has_more=listed.has_more, page=page
        )
    )


@router.get(
    "/{segment_id}/contacts/{contact_id}",
    summary="Whether a contact is a member, and why",
    description="filter: each condition with the contact's value and whether it held, "
    "and the country and continent checks; bulk and custom: whether the contact is "
    "listed. `member` agrees with the member list with include_opted_out=1, `counted` "
    "with the default list and total_contacts.",
    responses=schemas.responses(200, schemas.one(MEMBERSHIP), 401, 404),
)
def explain_membership(
    segment_id: ResourceId,
    contact_id: ResourceId,
    request: Request,
    user_id: int = Depends(current_user),
) -> JSONResponse:
    with database(request).read() as session:
        explanation = members.explain_membership(
            session, user_id=user_id, segment_id=segment_id, contact_id=contact_id
        )
    return JSONResponse({"data": explanation})
