"""CSV import and export of contacts over HTTP: thin routes over `upload` and `export`
(a segment's export is `segments/export_api.py`).

Included before the contacts router, so `POST /api/contacts/import` is not taken for a
contact id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from segmenti import errors, schemas
from segmenti.contacts import csv_http, export
from segmenti.contacts.upload import import_upload
from segmenti.forms import parse_bool
from segmenti.http import current_user, database

router = APIRouter(tags=["contacts"])

_IMPORT_REPORT = {
    "type": "object",
    "properties": {
        "data": {
            "type": "object",
            "properties": {
                "rows": {"type": "integer", "description": "Valid rows read."},
                "created": {"type": "integer"},
                "updated": {"type": "integer"},
                "invalid": {"type": "integer", "description": "Bad rows, not imported."},
                "batches": {"type": "integer", "description": "Batches committed."},
                "committed_through_line": {"type": "integer"},
                "invalid_rows": {
                    "type": "array",
                    "description": "The first 10 bad rows.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "line": {"type": "integer"},
                            "reason": {"type": "string"},
                            "value": {"type": "string", "description": "The row's first field."},
                        },
                    },
                },
            },
        }
    },
}

_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV with a header row: phone_number (required), "
                            "name, has_opted_out, and one column per custom parameter "
                            "(`param:<key>` also names one). UTF-8, with or without BOM; "
                            "delimiter , ; or tab.",
                        },
                        "strict": {
                            "type": "string",
                            "enum": ["0", "1"],
                            "description": "1: any bad row aborts the import, nothing written.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/api/contacts/import",
    summary="Import contacts from CSV",
    responses=schemas.responses(200, _IMPORT_REPORT, 400, 401, 413, 415),
    openapi_extra=_IMPORT_BODY,
)
async def import_contacts(request: Request, user_id: int = Depends(current_user)) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "multipart/form-data":
        raise errors.UnsupportedMediaType(
            "upload the CSV as multipart/form-data, in a field named file"
        )
    try:
        form = await request.form(max_files=1, max_fields=20)
    except (ValueError, KeyError, AssertionError) as exc:
        raise errors.Invalid(f"the form body could not be read: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise errors.Invalid(
                "file is required: the CSV as a multipart file field", parameter="file"
            )
        raw_strict = form.get("strict") or request.query_params.get("strict") or "0"
        strict = parse_bool("strict", raw_strict if isinstance(raw_strict, str) else "0")
        report = await run_in_threadpool(
            import_upload,
            database(request),
            user_id=user_id,
            upload=upload.file,
            strict=strict,
        )
    finally:
        await form.close()
    return JSONResponse({"data": report.as_dict()})


@router.get(
    "/api/contacts.csv",
    summary="Export contacts as CSV",
    responses={**schemas.responses(200, None, 401), **csv_http.CSV_RESPONSE},
    response_class=StreamingResponse,
)
def export_contacts(request: Request, user_id: int = Depends(current_user)) -> Any:
    return csv_http.csv_response(
        request,
        start=lambda session: export.start_export(session, user_id=user_id),
        filename="contacts.csv",
    )
