"""CSV exports over HTTP: the streamed answer of `GET /api/contacts.csv` and of a
segment's `GET /api/segments/{id}/contacts.csv`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from segmenti.contacts import export
from segmenti.db.engine import Database
from segmenti.http import database

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "CSV in the columns an import reads, streamed.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


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


def csv_response(
    request: Request, *, start: Callable[[Session], export.Export], filename: str
) -> CsvStream:
    """The export `start` begins (in a short read session: a NotFound is raised before
    anything is sent), streamed as the file `filename`."""
    db = database(request)
    with db.read() as session:
        started = start(session)
    return CsvStream(stream_csv(db, started), filename=filename)
