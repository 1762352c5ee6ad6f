"""Segments API: thin routes over `segments.service`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from segmenti import idempotency, schemas
from segmenti.forms import Params, parse_choice
from segmenti.http import (
    ResourceId,
    body_params,
    current_user,
    database,
    list_envelope,
    page_of,
)
from segmenti.segments import service
from segmenti.segments.forms import segment_input

router = APIRouter(prefix="/api/segments", tags=["segments"])

_WRITE_BODY = schemas.request_body(
    schemas.SEGMENT_FORM_FIELDS, schemas.FILTER_PATTERN_FIELDS, schemas.SEGMENT_JSON_FIELDS
)
_CREATE_BODY = schemas.request_body(
    schemas.SEGMENT_FORM_FIELDS,
    schemas.FILTER_PATTERN_FIELDS,
    schemas.SEGMENT_JSON_FIELDS,
    required=["name"],
    idempotent=True,
)
_LIST_PARAMETERS = [
    *schemas.page_parameters(),
    schemas.query_parameter(
        "order_by",
        {"type": "string", "enum": list(service.ORDER_BY), "default": "datetime"},
        "Sort key; newest first by default.",
    ),
    schemas.query_parameter(
        "order_type", {"type": "string", "enum": list(service.ORDER_TYPES), "default": "desc"}, ""
    ),
    schemas.query_parameter(
        "type", {"type": "string", "enum": list(service.TYPES)}, "Only segments of this type."
    ),
    schemas.query_parameter(
        "search", {"type": "string"}, "Case-insensitive part of the segment's name."
    ),
]


def list_segments(request: Request, user_id: int = Depends(current_user)) -> JSONResponse:
    page = page_of(request)
    query = request.query_params
    service.dates_current(database(request), user_id=user_id)
    with database(request).read() as session:
        rows, total = service.list_segments(
            session,
            user_id=user_id,
            page=page,
            order_by=parse_choice("order_by", query.get("order_by"), service.ORDER_BY, "datetime"),
            order_type=parse_choice(
                "order_type", query.get("order_type"), service.ORDER_TYPES, "desc"
            ),
            type=parse_choice("type", query.get("type"), service.TYPES, None),
            search=request.query_params.get("search") or None,
        )
    return JSONResponse(list_envelope(request, rows, total=total, page=page))


def create_segment(
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> Response:
    data = segment_input(params, request.app.state.settings)
    db = database(request)

    def create_counted(counted: service.Precounted | None) -> Response:
        def create(session: Session) -> JSONResponse:
            segment_id = service.create_segment(
                session, user_id=user_id, data=data, counted=counted
            )
            return JSONResponse({"data": {"id": segment_id}}, status_code=201)

        return idempotency.create_once(request, db, user_id=user_id, params=params, create=create)

    return service.counting_first(db, user_id=user_id, data=data, write=create_counted)


router.add_api_route(
    "",
    list_segments,
    methods=["GET"],
    summary="List segments",
    responses=schemas.responses(200, schemas.listing(schemas.SEGMENT), 400, 401),
    openapi_extra={"parameters": _LIST_PARAMETERS},
    name="list_segments",
)
router.add_api_route(
    "",
    create_segment,
    methods=["POST"],
    summary="Create a segment",
    status_code=201,
    responses=schemas.responses(201, schemas.ID_ONLY, 400, 401, 413, 415, 422),
    openapi_extra=_CREATE_BODY,
    name="create_segment",
)


@router.get(
    "/{segment_id}",
    summary="Get a segment",
    responses=schemas.responses(200, schemas.one(schemas.SEGMENT), 401, 404),
)
def get_segment(
    segment_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    service.dates_current(database(request), user_id=user_id)
    with database(request).read() as session:
        return JSONResponse(
            {"data": service.get_segment(session, user_id=user_id, segment_id=segment_id)}
        )


@router.post(
    "/{segment_id}",
    summary="Update a segment",
    responses=schemas.responses(200, schemas.ID_ONLY, 400, 401, 404, 413, 415),
    openapi_extra=_WRITE_BODY,
)
def update_segment(
    segment_id: ResourceId,
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> JSONResponse:
    data = segment_input(params, request.app.state.settings)
    db = database(request)

    def update(counted: service.Precounted | None) -> None:
        with db.write() as session:
            service.update_segment(
                session, user_id=user_id, segment_id=segment_id, data=data, counted=counted
            )

    service.counting_first(db, user_id=user_id, data=data, write=update)
    return JSONResponse({"data": {"id": segment_id}})


@router.delete(
    "/{segment_id}",
    summary="Delete a segment",
    status_code=204,
    responses=schemas.responses(204, None, 401, 404),
)
def delete_segment(
    segment_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> Response:
    with database(request).write() as session:
        service.delete_segment(session, user_id=user_id, segment_id=segment_id)
    return Response(status_code=204)
