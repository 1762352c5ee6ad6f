"""CSV import and export over HTTP: thin routes over `upload`, `export` and
`segments.export`.

Included before the contacts router, so `POST /api/contacts/import` is not taken for a
contact id."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Receive, Scope, Send

from segmenti import errors, schemas
from segmenti.contacts import export
from segmenti.contacts.upload import import_upload
from segmenti.db.engine import Database
from segmenti.forms import Params, parse_bool
from segmenti.http import current_user, database
from segmenti.segments import export as segment_export
from segmenti.segments.forms import opt_outs
from segmenti.segments.members import OptOuts

router = APIRouter(tags=["contacts"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

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


class CsvStream(StreamingResponse):
    """A streamed export that closes its page generator when the response ends, however
    it ends: finished, failed, or cut short by the client going away (Starlette then
    just stops iterating). Pages hold no connection between them, so this is tidiness,
    not the leak guard; the close is deterministic rather than left to the garbage
    collector."""

    def __init__(self, pages: AsyncGenerator[str, None], *, filename: str) -> None:
        super().__init__(
            pages,
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
        self._pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._pages.aclose()


async def stream_csv(db: Database, started: export.Export) -> AsyncGenerator[str, None]:
    """The CSV text, a page at a time: each page is read in a worker thread, and nothing
    is held between pages while the client is sent one."""
    yield started.header()
    after_id = 0
    while True:
        text, last_id = await run_in_threadpool(export.read_page, db, started, after_id=after_id)
        if last_id is None:
            return
        yield text
        after_id = last_id


def _csv_response(
    request: Request, *, user_id: int, segment_id: int | None, name: str, selection: OptOuts
) -> CsvStream:
    db = database(request)
    with db.read() as session:
        if segment_id is None:
            started = export.start_export(session, user_id=user_id)
        else:
            started = segment_export.start_export(
                session, user_id=user_id, segment_id=segment_id, opt_outs=selection
            )
    return CsvStream(stream_csv(db, started), filename=name)


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "CSV in the columns an import reads, streamed.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/api/contacts.csv",
    summary="Export contacts as CSV",
    responses={**schemas.responses(200, None, 401), **_CSV_RESPONSE},
    response_class=StreamingResponse,
)
def export_contacts(request: Request, user_id: int = Depends(current_user)) -> Any:
    return _csv_response(
        request, user_id=user_id, segment_id=None, name="contacts.csv", selection=OptOuts()
    )


@router.get(
    "/api/segments/{segment_id}/contacts.csv",
    summary="Export a segment's contacts as CSV",
    description="The segment's members, chosen as the member list "
    "(`GET /api/segments/{id}/contacts`) chooses them: members that have opted out are "
    "left out unless include_opted_out=1 (or has_opted_out=1) is given. The "
    "has_opted_out column says which members have.",
    responses={**schemas.responses(200, None, 400, 401, 404), **_CSV_RESPONSE},
    response_class=StreamingResponse,
    openapi_extra={"parameters": schemas.OPT_OUT_PARAMETERS},
)
def export_segment_contacts(
    segment_id: int, request: Request, user_id: int = Depends(current_user)
) -> Any:
    return _csv_response(
        request,
        user_id=user_id,
        segment_id=segment_id,
        name=f"segment-{segment_id}.csv",
        selection=opt_outs(Params.from_pairs(request.query_params.multi_items())),
    )
