"""Snapshots and history API: thin routes over `segments.snapshots` and
`segments.history`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from segmenti import errors, schemas
from segmenti.contacts import csv_http
from segmenti.forms import parse_bool, parse_positive_int
from segmenti.http import (
    ResourceId,
    current_user,
    cursor_envelope,
    database,
    list_envelope,
    page_of,
)
from segmenti.segments import history, snapshots

router = APIRouter(tags=["snapshots"])

SNAPSHOT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "segment_id": {"type": "integer"},
        "total_contacts": {"type": "integer"},
        "datetime": {"type": "string"},
        "expires_at": {"type": "string"},
    },
}
SNAPSHOT_MEMBER = {
    "type": "object",
    "properties": {
        "contact_id": {"type": "integer"},
        "phone_number": {"type": "string"},
        "name": {"type": "string"},
        "country_code": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["active", "opted_out", "deleted"]},
    },
}
HISTORY_ROW = {
    "type": "object",
    "properties": {
        "date": {"type": "string", "format": "date"},
        "total_contacts": {"type": "integer"},
        "entered": {"type": "integer"},
        "exited": {"type": "integer"},
    },
}
_AFTER_ID = schemas.query_parameter(
    "after_id",
    {"type": "integer", "minimum": 1},
    "Keyset cursor: the members after this contact id (as in a segment's member list).",
)


@router.post(
    "/api/segments/{segment_id}/snapshots",
    summary="Freeze the segment's members now",
    status_code=201,
    responses=schemas.responses(201, schemas.ID_ONLY, 400, 401, 404),
)
def create_snapshot(
    segment_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    snapshot_id = snapshots.create_snapshot(
        database(request),
        user_id=user_id,
        segment_id=segment_id,
        settings=request.app.state.settings,
    )
    return JSONResponse({"data": {"id": snapshot_id}}, status_code=201)


@router.get(
    "/api/segments/{segment_id}/snapshots",
    summary="List a segment's snapshots, newest first",
    responses=schemas.responses(200, schemas.listing(SNAPSHOT), 400, 401, 404),
    openapi_extra={"parameters": schemas.page_parameters()},
)
def list_snapshots(
    segment_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    page = page_of(request)
    with database(request).read() as session:
        rows, total = snapshots.list_snapshots(
            session, user_id=user_id, segment_id=segment_id, page=page
        )
    return JSONResponse(list_envelope(request, rows, total=total, page=page))


@router.get(
    "/api/snapshots/{snapshot_id}",
    summary="Get a snapshot",
    responses=schemas.responses(200, schemas.one(SNAPSHOT), 401, 404),
)
def get_snapshot(
    snapshot_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    with database(request).read() as session:
        found = snapshots.get_snapshot(session, user_id=user_id, snapshot_id=snapshot_id)
    return JSONResponse({"data": found})


@router.get(
    "/api/snapshots/{snapshot_id}/contacts",
    summary="List a snapshot's members as frozen, with each one's status now",
    responses=schemas.responses(200, schemas.listing(SNAPSHOT_MEMBER), 400, 401, 404),
    openapi_extra={"parameters": [*schemas.page_parameters(), _AFTER_ID]},
)
def list_snapshot_members(
    snapshot_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    page = page_of(request)
    raw_after = request.query_params.get("after_id")
    after_id = None if raw_after in (None, "") else parse_positive_int("after_id", raw_after)
    if after_id is not None:
        after_id = min(after_id, 2**31 - 1)
    with database(request).read() as session:
        listed = snapshots.list_members(
            session, user_id=user_id, snapshot_id=snapshot_id, page=page, after_id=after_id
        )
    return JSONResponse(
        cursor_envelope(
            request,
            listed.rows,
            total=listed.total,
            has_more=listed.has_more,
            page=page,
            id_key="contact_id",
        )
    )


@router.get(
    "/api/snapshots/{snapshot_id}/contacts.csv",
    summary="Export a snapshot as CSV",
    description="phone_number, name and status of each member as frozen; contacts no "
    "longer active (opted out or deleted since) are left out unless include_inactive=1.",
    responses={**schemas.responses(200, None, 400, 401, 404), **csv_http.CSV_RESPONSE},
    response_class=StreamingResponse,
    openapi_extra={
        "parameters": [
            schemas.query_parameter(
                "include_inactive",
                {"type": "string", "enum": ["0", "1", "true", "false"]},
                "1: also the members that opted out or were deleted since.",
            )
        ]
    },
)
def export_snapshot(
    snapshot_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> Any:
    raw = request.query_params.get("include_inactive")
    include_inactive = raw is not None and parse_bool("include_inactive", raw)
    db = database(request)
    with db.read() as session:
        snapshots.check_exists(session, user_id=user_id, snapshot_id=snapshot_id)
    pages = snapshots.csv_pages(
        db, user_id=user_id, snapshot_id=snapshot_id, include_inactive=include_inactive
    )
    return csv_http.CsvStream(_in_threadpool(pages), filename=f"snapshot-{snapshot_id}.csv")


async def _in_threadpool(pages: Iterator[str]) -> AsyncGenerator[str, None]:
    """Each page read in a worker thread, nothing held while the client is sent one."""
    async for page in iterate_in_threadpool(pages):
        yield page


@router.delete(
    "/api/snapshots/{snapshot_id}",
    summary="Delete a snapshot",
    status_code=204,
    responses=schemas.responses(204, None, 401, 404),
)
def delete_snapshot(
    snapshot_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> Response:
    snapshots.delete_snapshot(database(request), user_id=user_id, snapshot_id=snapshot_id)
    return Response(status_code=204)


@router.get(
    "/api/segments/{segment_id}/history",
    summary="A segment's size a day, with how many entered and exited",
    responses=schemas.responses(
        200, schemas.one({"type": "array", "items": HISTORY_ROW}), 400, 401, 404
    ),
    openapi_extra={
        "parameters": [
            schemas.query_parameter(
                "days",
                {"type": "integer", "minimum": 1, "maximum": history.MAX_DAYS, "default": 90},
                "How many days back, today included.",
            )
        ]
    },
)
def segment_history(
    segment_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    raw = request.query_params.get("days")
    days = 90 if raw in (None, "") else parse_positive_int("days", raw)
    if days > history.MAX_DAYS:
        raise errors.Invalid(f"days must be at most {history.MAX_DAYS}", parameter="days")
    with database(request).read() as session:
        rows = history.history(session, user_id=user_id, segment_id=segment_id, days=days)
    return JSONResponse({"data": rows})
