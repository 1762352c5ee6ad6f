"""Rendering dashboard pages: the template environment, what every page is given, paging
links, and HTML error pages for every path outside /api/."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from segmenti import phones
from segmenti.membership import conditions
from segmenti.paging import Page
from segmenti.web import sessions

HERE = Path(__file__).parent
STATIC_VERSION = "2"  # bumped with the static files, so browsers fetch the new ones

# The reference's conditions (the form's rows); every registered one (the tree builder).
CONDITION_LABELS = {name: conditions.named(name).label for name in conditions.NAMES}
TREE_CONDITION_LABELS = {name: conditions.named(name).label for name in conditions.TREE_NAMES}
# What each condition's value is in the builder: text, a list, a date, or none.
TREE_CONDITION_VALUES = {name: conditions.named(name).takes for name in conditions.TREE_NAMES}

CONTINENT_NAMES = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}
assert set(CONTINENT_NAMES) == set(phones.CONTINENTS)

# The country picker: countries by continent, each group sorted by name.
COUNTRIES_BY_CONTINENT: list[tuple[str, list[tuple[str, str]]]] = [
    (
        name,
        sorted(
            (
                (code, phones.country_name(code))
                for code, where in phones.CONTINENT_BY_COUNTRY.items()
                if where == continent
            ),
            key=lambda item: item[1],
        ),
    )
    for continent, name in sorted(CONTINENT_NAMES.items(), key=lambda item: item[1])
]

TYPE_LABELS = {"filter": "Filter", "custom": "Contacts", "bulk": "Phone numbers"}


def field_id(parameter: str) -> str:
    """The HTML id of a form field named by an error's parameter (`filters_x[2]` ->
    `f-filters_x-2`); static/app.js makes the same ids."""
    return "f-" + re.sub(r"[^A-Za-z0-9_]+", "-", parameter.removesuffix("[]")).strip("-")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["field_id"] = field_id
    env.filters["country"] = lambda code: phones.country_name(code) if code else "—"
    env.globals.update(
        CONDITION_LABELS=CONDITION_LABELS,
        TREE_CONDITION_LABELS=TREE_CONDITION_LABELS,
        TREE_CONDITION_VALUES=TREE_CONDITION_VALUES,
        CONTINENT_NAMES=CONTINENT_NAMES,
        COUNTRIES_BY_CONTINENT=COUNTRIES_BY_CONTINENT,
        TYPE_LABELS=TYPE_LABELS,
        STATIC_VERSION=STATIC_VERSION,
    )
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    viewer: sessions.Viewer | None = None,
) -> HTMLResponse:
    has_session = "session" in request.scope
    page_context = {
        "viewer": viewer,
        "csrf_token": sessions.csrf_token(request) if has_session else "",
        "flash": sessions.pop_flash(request) if has_session else None,
        "error": None,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, page_context, status_code=status_code)
    # Pages show one user's data: never kept by shared caches, nor shown from the
    # browser's cache after signing out.
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str) -> RedirectResponse:
    """After a POST: 303, so the browser follows with a GET."""
    return RedirectResponse(url, status_code=303)


@dataclass(frozen=True)
class Pager:
    """Paging links of a list page; they keep the page's other query parameters."""

    page: Page
    total: int
    base_path: str
    query: dict[str, str]

    @property
    def total_pages(self) -> int:
        return self.page.total_pages(self.total)

    @property
    def first_row(self) -> int:
        return min(self.page.offset + 1, self.total)

    @property
    def last_row(self) -> int:
        return min(self.page.offset + self.page.size, self.total)

    def url(self, number: int) -> str:
        query = {**self.query, "page": str(number)}
        return f"{self.base_path}?{urlencode(query)}"

    @property
    def previous_url(self) -> str | None:
        return (
            self.url(min(self.page.number - 1, self.total_pages)) if self.page.number > 1 else None
        )

    @property
    def next_url(self) -> str | None:
        return self.url(self.page.number + 1) if self.page.number < self.total_pages else None


def pager(request: Request, page: Page, total: int) -> Pager:
    query = {k: v for k, v in request.query_params.items() if k != "page" and v != ""}
    return Pager(page, total, request.url.path, query)


# -- errors -------------------------------------------------------------------------


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def wants_html(request: Request) -> bool:
    """A browser asking for a page outside /api/. SPEC makes every error JSON; only a
    client that says it takes HTML (browsers do, curl and API clients do not) gets the
    dashboard's error page instead."""
    return not is_api_path(request.url.path) and "text/html" in request.headers.get("accept", "")


ErrorHandler = Callable[[Request, Any], Response | Awaitable[Response]]


def html_outside_api(handler: ErrorHandler) -> Callable[[Request, Any], Awaitable[Response]]:
    """Wraps one of the JSON error handlers: a browser's request outside /api/ gets the
    same status and words as an HTML page (`wants_html`); everything else keeps JSON."""

    async def handle(request: Request, exc: Any) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        if not wants_html(request) or not isinstance(response, JSONResponse):
            return response
        error = json.loads(bytes(response.body))["errors"][0]
        page = render(
            request,
            "error.html",
            {
                "status": response.status_code,
                "title": error["title"],
                "detail": error.get("detail"),
            },
            status_code=response.status_code,
        )
        for name, value in response.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                page.headers.setdefault(name, value)
        return page

    return handle


async def sign_in_first(request: Request, _exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/sign-in?{urlencode({'next': target})}")
