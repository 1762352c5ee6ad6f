"""A segment's members as CSV over HTTP: `GET /api/segments/{id}/contacts.csv`, the
member list's choice of contacts in the columns an import reads. Its own router so the
route keeps the contacts tag it has always had in the API's documentation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from segmenti import schemas
from segmenti.contacts import csv_http
from segmenti.forms import Params
from segmenti.http import current_user
from segmenti.segments import export
from segmenti.segments.forms import opt_outs

router = APIRouter(tags=["contacts"])


@router.get(
    "/api/segments/{segment_id}/contacts.csv",
    summary="Export a segment's contacts as CSV",
    description="The segment's members, chosen as the member list "
    "(`GET /api/segments/{id}/contacts`) chooses them: members that have opted out are "
    "left out unless include_opted_out=1 (or has_opted_out=1) is given. The "
    "has_opted_out column says which members have.",
    responses={**schemas.responses(200, None, 400, 401, 404), **csv_http.CSV_RESPONSE},
    response_class=StreamingResponse,
    openapi_extra={"parameters": schemas.OPT_OUT_PARAMETERS},
)
def export_segment_contacts(
    segment_id: int, request: Request, user_id: int = Depends(current_user)
) -> Any:
    selection = opt_outs(Params.from_pairs(request.query_params.multi_items()))
    return csv_http.csv_response(
        request,
        start=lambda session: export.start_export(
            session, user_id=user_id, segment_id=segment_id, opt_outs=selection
        ),
        filename=f"segment-{segment_id}.csv",
    )
