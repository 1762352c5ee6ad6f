"""Webhooks and events API: thin routes over `webhooks.service`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from segmenti import schemas
from segmenti.forms import Params, parse_choice
from segmenti.http import (
    ResourceId,
    body_params,
    current_user,
    database,
    list_envelope,
    page_of,
)
from segmenti.membership.events import TYPES
from segmenti.webhooks import forms, service

router = APIRouter(tags=["webhooks"])

_STRING = {"type": "string"}
_EVENTS_FIELD = {
    "type": "array",
    "items": {"type": "string", "enum": list(TYPES)},
    "description": "The event types to send.",
}
_SEGMENTS_FIELD = {
    "type": "string",
    "description": "Comma-separated segment ids to watch; absent or empty: every segment.",
}
_FORM_FIELDS = {"url": _STRING, "events[]": _EVENTS_FIELD, "segments_ids": _SEGMENTS_FIELD}
_JSON_FIELDS = {"url": _STRING, "events": _EVENTS_FIELD, "segments_ids": _SEGMENTS_FIELD}

WEBHOOK = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "url": _STRING,
        "events": {"type": "array", "items": _STRING},
        "segments_ids": {"type": ["array", "null"], "items": {"type": "integer"}},
        "enabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"]},
        "last_event_id": {"type": "integer"},
        "previous_secret_until": {"type": ["string", "null"]},
        "last_datetime": {"type": ["string", "null"]},
        "datetime": _STRING,
    },
}
EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "format": "int64"},
        "type": {"type": "string", "enum": list(TYPES)},
        "segment_id": {"type": "integer"},
        "contact_id": {"type": "integer"},
        "phone_number": _STRING,
        "datetime": _STRING,
    },
}
ATTEMPT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "delivery_id": {"type": "integer"},
        "datetime": _STRING,
        "status_code": {"type": ["integer", "null"]},
        "duration_ms": {"type": "integer"},
        "error": {"type": ["string", "null"]},
    },
}
SECRET = schemas.one(
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "secret": {"type": "string"}},
    }
)
TEST_RESULT = schemas.one(
    {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "status_code": {"type": ["integer", "null"]},
            "duration_ms": {"type": "integer"},
            "error": {"type": ["string", "null"]},
        },
    }
)


def _body(required: list[str] | None = None) -> dict[str, Any]:
    return schemas.request_body(_FORM_FIELDS, {}, _JSON_FIELDS, required=required)


@router.get(
    "/api/events",
    summary="List membership events",
    responses=schemas.responses(200, schemas.listing(EVENT), 400, 401),
    openapi_extra={
        "parameters": [
            *schemas.page_parameters(),
            schemas.query_parameter(
                "after_id",
                {"type": "integer", "format": "int64", "minimum": 0},
                "Only events with a larger id (a cursor: the last id seen).",
            ),
            schemas.query_parameter("segment_id", {"type": "integer"}, "Only this segment's."),
            schemas.query_parameter(
                "type", {"type": "string", "enum": list(TYPES)}, "Only events of this type."
            ),
        ]
    },
)
def list_events(request: Request, user_id: int = Depends(current_user)) -> JSONResponse:
    page = page_of(request)
    query = request.query_params
    after_id = forms.event_id("after_id", query.get("after_id"))
    segment_id = forms.segment_id(query.get("segment_id"))
    kind = parse_choice("type", query.get("type"), TYPES, None)
    with database(request).read() as session:
        rows, total = service.list_events(
            session,
            user_id=user_id,
            page=page,
            after_id=after_id,
            segment_id=segment_id,
            type=kind,
        )
    return JSONResponse(list_envelope(request, rows, total=total, page=page))


@router.get(
    "/api/webhooks",
    summary="List webhooks",
    responses=schemas.responses(200, schemas.listing(WEBHOOK), 400, 401),
    openapi_extra={"parameters": schemas.page_parameters()},
)
def list_webhooks(request: Request, user_id: int = Depends(current_user)) -> JSONResponse:
    page = page_of(request)
    with database(request).read() as session:
        rows, total = service.list_webhooks(session, user_id=user_id, page=page)
    return JSONResponse(list_envelope(request, rows, total=total, page=page))


@router.post(
    "/api/webhooks",
    summary="Create a webhook (its secret is shown only in this answer)",
    status_code=201,
    responses=schemas.responses(201, SECRET, 400, 401, 413, 415),
    openapi_extra=_body(["url", "events"]),
)
def create_webhook(
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> JSONResponse:
    settings = request.app.state.settings
    data = forms.webhook_input(params, creating=True)
    service.check_input(data, settings)  # resolves the host: before the transaction
    with database(request).write() as session:
        webhook_id, secret = service.create_webhook(
            session, user_id=user_id, data=data, settings=settings
        )
    return JSONResponse({"data": {"id": webhook_id, "secret": secret}}, status_code=201)


@router.get(
    "/api/webhooks/{webhook_id}",
    summary="Get a webhook",
    responses=schemas.responses(200, schemas.one(WEBHOOK), 401, 404),
)
def get_webhook(
    webhook_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    with database(request).read() as session:
        return JSONResponse(
            {"data": service.get_webhook(session, user_id=user_id, webhook_id=webhook_id)}
        )


@router.post(
    "/api/webhooks/{webhook_id}",
    summary="Update a webhook (and enable it again)",
    responses=schemas.responses(200, schemas.ID_ONLY, 400, 401, 404, 413, 415),
    openapi_extra=_body(),
)
def update_webhook(
    webhook_id: ResourceId,
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> JSONResponse:
    data = forms.webhook_input(params, creating=False)
    service.check_input(data, request.app.state.settings)
    with database(request).write() as session:
        service.update_webhook(session, user_id=user_id, webhook_id=webhook_id, data=data)
    return JSONResponse({"data": {"id": webhook_id}})


@router.delete(
    "/api/webhooks/{webhook_id}",
    summary="Delete a webhook",
    status_code=204,
    responses=schemas.responses(204, None, 401, 404),
)
def delete_webhook(
    webhook_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> Response:
    with database(request).write() as session:
        service.delete_webhook(session, user_id=user_id, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get(
    "/api/webhooks/{webhook_id}/deliveries",
    summary="List a webhook's delivery attempts, newest first",
    responses=schemas.responses(200, schemas.listing(ATTEMPT), 400, 401, 404),
    openapi_extra={"parameters": schemas.page_parameters()},
)
def list_deliveries(
    webhook_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    page = page_of(request)
    with database(request).read() as session:
        rows, total = service.list_attempts(
            session, user_id=user_id, webhook_id=webhook_id, page=page
        )
    return JSONResponse(list_envelope(request, rows, total=total, page=page))


@router.post(
    "/api/webhooks/{webhook_id}/replay",
    summary="Send the kept events past after_event_id (default 0: all) again",
    responses=schemas.responses(200, schemas.ID_ONLY, 400, 401, 404),
    openapi_extra=schemas.request_body(
        {"after_event_id": {"type": "integer", "format": "int64"}},
        {},
        {"after_event_id": {"type": "integer", "format": "int64"}},
    ),
)
def replay(
    webhook_id: ResourceId,
    request: Request,
    user_id: int = Depends(current_user),
    params: Params = Depends(body_params),
) -> JSONResponse:
    after = forms.event_id("after_event_id", params.text("after_event_id"))
    with database(request).write() as session:
        service.replay(session, user_id=user_id, webhook_id=webhook_id, after_event_id=after)
    return JSONResponse({"data": {"id": webhook_id}})


@router.post(
    "/api/webhooks/{webhook_id}/test",
    summary="Send a signed test event now and say how the receiver answered",
    responses=schemas.responses(200, TEST_RESULT, 401, 404),
)
def test_webhook(
    webhook_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    result = service.send_test(
        database(request).read,
        user_id=user_id,
        webhook_id=webhook_id,
        settings=request.app.state.settings,
    )
    return JSONResponse({"data": result})


@router.post(
    "/api/webhooks/{webhook_id}/rotate-secret",
    summary="Issue a new secret; deliveries are signed with both for 24 hours",
    responses=schemas.responses(200, SECRET, 401, 404),
)
def rotate_secret(
    webhook_id: ResourceId, request: Request, user_id: int = Depends(current_user)
) -> JSONResponse:
    with database(request).write() as session:
        secret = service.rotate_secret(
            session, user_id=user_id, webhook_id=webhook_id, settings=request.app.state.settings
        )
    return JSONResponse({"data": {"id": webhook_id, "secret": secret}})
