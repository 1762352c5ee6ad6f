"""The ASGI application: routers, the one error handler chain, the body size limit."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from segmenti import (
    api_docs,
    errors,
    http,
    observability,
    ratelimit,
    schemas,
    security_headers,
    slow_clients,
)
from segmenti.contacts.api import router as contacts_router
from segmenti.contacts.transfer_api import router as transfer_router
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.segments.api import router as segments_router
from segmenti.segments.export_api import router as segment_export_router
from segmenti.segments.members_api import router as members_router
from segmenti.segments.snapshots_api import router as snapshots_router
from segmenti.settings import Settings
from segmenti.web import mount as mount_dashboard
from segmenti.webhooks.api import router as webhooks_router

log = logging.getLogger("segmenti")

DESCRIPTION = """\
Contacts and segments for SMS and notification platforms, compatible with the
Segments API reference. Authenticate with `Authorization: Bearer <api_key>`.
Bodies may be multipart/form-data or urlencoded (PHP-style bracketed field names,
`filters_countries[]`, `filters_custom_parameter_key[0]`) or JSON (the same names
with arrays). Errors are JSON:API error objects: `{"errors": [{"status", "title",
"detail", "source": {"parameter"}}]}`.
"""


def create_app(settings: Settings | None = None, *, migrate_database: bool = True) -> FastAPI:
    settings = settings or Settings.from_env()
    db = Database(settings)
    if migrate_database:
        migrate.upgrade(db.engine)
    app = FastAPI(
        title="Segmenti",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url=None,  # api_docs: Swagger UI from a pinned package, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.include_router(members_router)  # first: /api/segments/preview is no segment id
    app.include_router(transfer_router)  # before contacts: /api/contacts/import
    app.include_router(segment_export_router)
    app.include_router(segments_router)
    app.include_router(contacts_router)
    app.include_router(webhooks_router)
    app.include_router(snapshots_router)
    _add_operational_routes(app, db)
    observability.add_metrics_route(app, db.engine)
    api_docs.mount(app)

    app.add_exception_handler(errors.SegmentiError, http.handle_domain_error)
    app.add_exception_handler(StarletteHTTPException, http.handle_http_error)
    app.add_exception_handler(RequestValidationError, http.handle_validation_error)
    app.add_exception_handler(DBAPIError, http.handle_database_error)
    app.add_exception_handler(Exception, http.handle_unexpected)
    # After the error handlers: outside /api/ the dashboard renders them as HTML pages.
    mount_dashboard(app, settings)
    app.add_middleware(http.BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.rate_limiter = None  # the dashboard charges it too (web/sessions.py)
    if settings.rate_limit_requests > 0:
        app.state.rate_limiter = ratelimit.Limiter(
            requests=settings.rate_limit_requests,
            window_seconds=settings.rate_limit_window_seconds,
        )
        app.add_middleware(ratelimit.RateLimit, limiter=app.state.rate_limiter)
    app.add_middleware(
        slow_clients.MinimumTransferRate,
        bytes_per_second=settings.min_transfer_bytes_per_second,
        grace_seconds=settings.min_transfer_grace_seconds,
    )
    app.add_middleware(security_headers.SecurityHeaders)
    # Sees every answer, 413s and 429s included; inside TrailingSlash, so it sees the route.
    app.add_middleware(observability.RequestContext)
    app.add_middleware(http.TrailingSlash)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app).
    `segmenti serve` has already migrated the database."""
    settings = Settings.from_env()
    observability.configure_logging(settings)
    return create_app(settings, migrate_database=False)


def _add_operational_routes(app: FastAPI, db: Database) -> None:
    @app.get("/health", tags=["operations"], summary="Liveness")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/ready", tags=["operations"], summary="Database reachable, migrations current")
    def ready() -> JSONResponse:
        try:
            with db.read() as session:
                session.execute(text("SELECT 1"))
            current = migrate.is_current(db.engine)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            log.warning("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    # Path parameters that are not integers answer 404, never FastAPI's 422 (a 422 that
    # a route documents itself, the Idempotency-Key reuse, stays).
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "Idempotency" not in responses.get("422", {}).get("description", ""):
                responses.pop("422", None)
            if not path.startswith("/api/"):
                operation["security"] = []  # /health, /ready, /metrics: no key needed
            else:
                responses.update(schemas.API_WIDE_RESPONSES)
    schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    schema["components"] = {
        **schema.get("components", {}),
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    }
    # Recursive schemas (filter trees) can only be written as references.
    schema["components"]["schemas"] = {
        **schema["components"].get("schemas", {}),
        **schemas.FILTER_COMPONENTS,
        **schemas.VERDICT_COMPONENTS,
    }
    schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema
