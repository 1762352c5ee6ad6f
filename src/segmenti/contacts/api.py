"""Contacts API: thin routes over `contacts.service`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from segmenti import idempotency, schemas
from segmenti.contacts import service
from segmenti.contacts.forms import contact_input
from segmenti.forms import Params, parse_bool
from segmenti.http import (
    ResourceId,
    body_params,
    current_user,
    database,
    list_envelope,
    page_of,
)

router = APIRouter(prefix="/api/contacts", tags=["contacts"])

_WRITE_BODY = schemas.request_body(
    schemas.CONTACT_FORM_FIELDS, schemas.CONTACT_PATTERN_FIELDS, schemas.CONTACT_JSON_FIELDS
)
_CREATE_BODY = schemas.request_body(
    schemas.CONTACT_FORM_FIELDS,
    schemas.CONTACT_PATTERN_FIELDS,
    schemas.CONTACT_JSON_FIELDS,
    required=["phone_number"],
    idempotent=True,
)
_LIST_PARAMETERS = [
    *schemas.page_parameters(),
    schemas.SEARCH_PARAMETER,
    schemas.query_parameter("country_code", {"type": "string"}, "ISO 3166-1 alpha-2 code."),
    schemas.query_parameter("has_opted_out", {"type": "string", "enum": ["0", "1"]}, ""),
]


def list_contacts(request: Request, user_id: int = Depends(current_user)) -> JSONResponse:
    page = page_of(request)
    query = request.query_params
    opted_out = query.get("has_opted_out")
    with database(request).read() as session:
        rows, total = service.list_contacts(
            session,
            user_id=user_id,
            page=page,
            search=query.get("search") or None,
            country_code=query.get("country_code") or None,
            has_opted_out=None
            if opted_out in (None, "")
            else parse_bool("has_opted_out", opted_out),
        )
    return JSONResponse(list_envelope(request, rows, total=total, page=page))


def create_contact(
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> Response:
    data = contact_input(params)

    def create(session: Session) -> JSONResponse:
        contact_id = service.create_contact(session, user_id=user_id, data=data)
        return JSONResponse({"data": {"id": contact_id}}, status_code=201)

    return idempotency.create_once(
        request, database(request), user_id=user_id, params=params, create=create
    )


router.add_api_route(
    "",
    list_contacts,
    methods=["GET"],
    summary="List contacts",
    responses=schemas.responses(200, schemas.listing(schemas.CONTACT), 400, 401),
    openapi_extra={"parameters": _LIST_PARAMETERS},
    name="list_contacts",
)
router.add_api_route(
    "",
    create_contact,
    methods=["POST"],
    summary="Create a contact",
    status_code=201,
    responses=schemas.responses(201, schemas.ID_ONLY, 400, 401, 409, 413, 415, 422),
    openapi_extra=_CREATE_BODY,
    name="create_contact",
)


@router.get(
    "/{contact_id}",
    summary="Get a contact",
    responses=schemas.responses(200, schemas.one(schemas.CONTACT), 401, 404),
)
def get_contact(
    contact_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    with database(request).read() as session:
        return JSONResponse(
            {"data": service.get_contact(session, user_id=user_id, contact_id=contact_id)}
        )


@router.post(
    "/{contact_id}",
    summary="Update a contact",
    responses=schemas.responses(200, schemas.ID_ONLY, 400, 401, 404, 409, 413, 415),
    openapi_extra=_WRITE_BODY,
)
def update_contact(
    contact_id: ResourceId,
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> JSONResponse:
    data = contact_input(params)
    with database(request).write() as session:
        service.update_contact(session, user_id=user_id, contact_id=contact_id, data=data)
    return JSONResponse({"data": {"id": contact_id}})


@router.delete(
    "/{contact_id}",
    summary="Delete a contact",
    status_code=204,
    responses=schemas.responses(204, None, 400, 401, 404),
    openapi_extra={
        "parameters": [
            schemas.query_parameter(
                "erase",
                {"type": "string", "enum": ["0", "1", "true", "false"]},
                "1: erase the contact from snapshots and membership events too (the "
                "right to erasure).",
            )
        ]
    },
)
def delete_contact(
    contact_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> Response:
    raw = request.query_params.get("erase")
    erase = raw is not None and parse_bool("erase", raw)
    with database(request).write() as session:
        service.delete_contact(session, user_id=user_id, contact_id=contact_id, erase=erase)
    return Response(status_code=204)
