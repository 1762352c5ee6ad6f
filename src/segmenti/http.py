"""The HTTP layer's shared pieces: request parameters, auth, envelopes, errors."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmenti import auth, errors
from segmenti.db.engine import Database, timed_out
from segmenti.db.tables import MAX_ID
from segmenti.forms import Params, parse_json_body, parse_urlencoded
from segmenti.paging import Page

log = logging.getLogger("segmenti")

JSON_MEDIA_TYPE = "application/json"
MAX_FORM_FIELDS = 200_000

ResourceId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A segment or contact id in a path; anything else answers 404 (`handle_validation_error`)."""


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@dataclass(frozen=True)
class Credentials:
    """What a request's Authorization header resolved to: its key's owner, or why not."""

    owner: auth.KeyOwner | None
    refusal: errors.Unauthorized | None


def credentials(request: Request) -> Credentials:
    """The request's key, looked up once: the rate limiter, which must know who a request
    is before it runs, and `current_user` share the answer through the request's state."""
    found: Credentials | None = getattr(request.state, "credentials", None)
    if found is None:
        try:
            with database(request).look_up() as session:
                owner = auth.identify_key(session, request.headers.get("authorization"))
            found = Credentials(owner=owner, refusal=None)
        except errors.Unauthorized as refusal:
            found = Credentials(owner=None, refusal=refusal)
        request.state.credentials = found
    return found


def current_user(request: Request) -> int:
    """The id of the user owning the request's API key (401 otherwise).

    Also guards, for every API route at once, what no route can take (see `_guard`)."""
    _guard(request)
    found = credentials(request)
    if found.owner is None:
        assert found.refusal is not None
        raise found.refusal
    request.state.user_id = found.owner.user_id  # for the request's log line
    return found.owner.user_id


def _guard(request: Request) -> None:
    """Refuses, before any query runs, what would otherwise reach the driver and fail
    there (a 500): NUL characters in the query string (PostgreSQL cannot even compare
    text containing one), and ids beyond the id columns (PostgreSQL's `integer out of
    range`, SQLite's overflow). A path id out of range answers 404 like any id that
    does not exist, also on a route whose parameter is a plain `int` (routes should use
    `ResourceId`, which documents the range; this is the net under them)."""
    for name, raw in request.path_params.items():
        if isinstance(raw, str) and _SIGNED_INTEGER.match(raw) and not _is_id(raw):
            raise errors.NotFound(f"no such resource: {name} {raw[:20]}")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            parameter = name.replace("\x00", "")[:64]
            raise errors.Invalid(
                f"{parameter or 'a query parameter'} must not contain NUL characters",
                parameter=parameter or None,
            )


_SIGNED_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _is_id(integer: str) -> bool:
    """Whether a signed integer's text is in 1..MAX_ID (without converting a huge one)."""
    digits = integer.lstrip("+")
    if digits.startswith("-") or len(digits.lstrip("0")) > len(str(MAX_ID)):
        return False
    return 1 <= int(digits) <= MAX_ID


async def body_params(request: Request) -> Params:
    """The request's parameters: query string, then the body (which wins)."""
    params = Params.from_pairs(request.query_params.multi_items())
    if request.method not in ("POST", "PUT", "PATCH"):
        return params
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        body = parse_urlencoded(await request.body(), max_fields=MAX_FORM_FIELDS)
    elif content_type == "multipart/form-data":
        # A part may be as large as the body: a bulk of 100,000 numbers is over 1 MB
        # (Starlette's default part limit). Parts that are not UTF-8 are read as
        # Latin-1 by Starlette: no byte is lost, the text is what was sent.
        max_part = request.app.state.settings.max_body_bytes
        try:
            form = await request.form(
                max_files=10, max_fields=MAX_FORM_FIELDS, max_part_size=max_part
            )
        except StarletteHTTPException as exc:  # malformed multipart, too many parts
            raise errors.Invalid(f"the form body could not be read: {exc.detail}") from None
        except (ValueError, KeyError, AssertionError) as exc:
            raise errors.Invalid(f"the form body could not be read: {exc}") from None
        body = Params.from_pairs(form.multi_items())
    elif content_type == JSON_MEDIA_TYPE or content_type.endswith("+json"):
        body = parse_json_body(await request.body())
    elif not content_type and not await request.body():
        return params
    else:
        raise errors.UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}: send multipart/form-data, "
            "application/x-www-form-urlencoded or application/json"
        )
    return params.merged_with(body)


def page_of(request: Request) -> Page:
    query = request.query_params
    return Page.parse(query.get("page"), query.get("results_per_page"))


def public_url(request: Request) -> URL:
    """The request's URL for links in answers: on `public_base_url` when it is set, else
    on the request's own scheme and Host header (which the client chooses)."""
    base = request.app.state.settings.public_base_url.rstrip("/")
    url = request.url
    if not base:
        return url
    return URL(base + url.path + (f"?{url.query}" if url.query else ""))


def list_envelope(
    request: Request, rows: list[dict[str, Any]], *, total: int, page: Page
) -> dict[str, Any]:
    """The list envelope of SPEC: data, meta, and absolute links keeping the query."""
    total_pages = page.total_pages(total)

    url = public_url(request)

    def link(number: int | None) -> str | None:
        if number is None:
            return None
        return str(url.include_query_params(page=number))

    return {
        "data": rows,
        "meta": {
            "page": page.number,
            "results_per_page": page.size,
            "total": total,
            "total_pages": total_pages,
        },
        "links": {
            "first": link(1),
            "last": link(total_pages) if total_pages else None,
            "next": link(page.number + 1) if page.number < total_pages else None,
            "prev": link(min(page.number - 1, max(total_pages, 1))) if page.number > 1 else None,
            "self": link(page.number),
        },
    }


def cursor_envelope(
    request: Request,
    rows: list[dict[str, Any]],
    *,
    total: int,
    has_more: bool,
    page: Page,
    id_key: str = "id",
) -> dict[str, Any]:
    """The list envelope of a list with an `after_id` keyset cursor (members of a
    segment or a snapshot): links by page number leave the cursor out; `next` follows
    the cursor (the last row's `id_key`)."""
    body = list_envelope(request, rows, total=total, page=page)
    url = public_url(request)
    by_number = url.remove_query_params("after_id")
    total_pages = body["meta"]["total_pages"]

    def link(number: int) -> str:
        return str(by_number.include_query_params(page=number))

    links = body["links"]
    links["first"] = link(1)
    links["last"] = link(total_pages) if total_pages else None
    links["prev"] = link(min(page.number - 1, max(total_pages, 1))) if page.number > 1 else None
    links["next"] = (
        str(url.include_query_params(page=page.number + 1, after_id=rows[-1][id_key]))
        if has_more
        else None
    )
    return body


def error_response(
    error: errors.SegmentiError, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"errors": [error.as_error_object()]}, status_code=error.status, headers=headers
    )


async def handle_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.SegmentiError)
    return error_response(exc, headers=exc.headers)


_HTTP_ERRORS: dict[int, type[errors.SegmentiError]] = {
    400: errors.Invalid,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
}


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_ERRORS.get(exc.status_code)
    if exc.status_code == 404:
        error: errors.SegmentiError = errors.NotFound(f"no such path: {request.url.path}")
    elif kind is not None:
        error = kind(str(exc.detail))
    else:
        error = errors.SegmentiError(str(exc.detail))
        error.status, error.title = exc.status_code, str(exc.detail)
    return error_response(error, headers=getattr(exc, "headers", None))


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ())]
    if location and location[0] == "path":
        return error_response(errors.NotFound("no such resource"))
    parameter = location[-1] if location else None
    return error_response(
        errors.Invalid(str(first.get("msg", "invalid request")), parameter=parameter)
    )


# Seconds a client is asked to wait before retrying a write that found the database busy.
BUSY_RETRY_AFTER = 1


def is_busy(exc: BaseException) -> bool:
    """A write that waited out SQLite's busy timeout, or lost a PostgreSQL deadlock or
    serialization conflict: nothing was written, and the same request may succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01") or "database is locked" in str(exc.orig)


def query_too_long(request: Request) -> errors.QueryTooLong:
    """The answer to a statement cancelled by the statement timeout. Retry-After asks
    for as long a pause as the limit: retried at once, the same query would most likely
    hold a connection for as long again."""
    limit = request.app.state.db.statement_timeout_seconds
    return errors.QueryTooLong(
        f"a database query of this request ran longer than the limit of {limit:g} s "
        "and was cancelled; nothing was saved",
        retry_after=max(1, math.ceil(limit)),
    )


async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    if timed_out(exc):
        log.warning("statement timeout on %s %s", request.method, request.url.path)
        error = query_too_long(request)
        return error_response(error, headers=error.headers)
    if not is_busy(exc):
        return await handle_unexpected(request, exc)
    assert isinstance(exc, DBAPIError)
    log.warning("database busy on %s %s: %s", request.method, request.url.path, exc.orig)
    return error_response(
        errors.ServiceUnavailable(
            "the database is busy with other writes; nothing was saved, retry the request"
        ),
        headers={"Retry-After": str(BUSY_RETRY_AFTER)},
    )


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error on %s %s id=%s",
        request.method,
        request.url.path,
        getattr(request.state, "request_id", "-"),
        exc_info=exc,
    )
    return error_response(errors.SegmentiError("an unexpected error occurred; it has been logged"))


class TrailingSlash:
    """Serves `/api/.../` as `/api/...`. The reference writes `/api/segments/` as well as
    `/api/segments`; every API path works both ways, without a redirect, and links are
    built from the path without the slash, as the reference shows them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/api/") and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            raw_path = scope.get("raw_path")
            if isinstance(raw_path, bytes):
                scope["raw_path"] = raw_path.rstrip(b"/")
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Answers 413 to a body over the limit, by Content-Length or by counting the bytes
    of a chunked body, before the application reads more of it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = errors.PayloadTooLarge(f"the body is over the limit of {self.max_bytes} bytes")
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _send_error(send, too_large)
                    return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _send_error(send, too_large)


class _BodyTooLarge(Exception):
    pass


async def _send_error(send: Send, error: errors.SegmentiError) -> None:
    response = error_response(error)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})
