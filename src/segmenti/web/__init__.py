"""The dashboard: server-rendered pages at `/` over the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from segmenti.settings import Settings
from segmenti.web import pages, sessions
from segmenti.web.events_views import router as events_router
from segmenti.web.views import router

SESSION_COOKIE = "segmenti_session"
SESSION_DAYS = sessions.SESSION_DAYS


def mount(app: FastAPI, settings: Settings) -> None:
    """Adds the dashboard's routes, static files, session cookie and sign-in redirect, and
    wraps the app's error handlers (registered before) so that a dashboard path gets an
    HTML page where /api/ keeps its JSON:API body."""
    for kind, handler in list(app.exception_handlers.items()):
        app.exception_handlers[kind] = pages.html_outside_api(handler)
    app.include_router(router)
    app.include_router(events_router)
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.add_exception_handler(sessions.SignInRequired, pages.sign_in_first)
    app.add_middleware(
        SessionMiddleware,
        secret_key=sessions.secret_key(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_DAYS * 24 * 3600,
        same_site="lax",
        https_only=settings.session_cookie_secure,
    )
