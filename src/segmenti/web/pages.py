"""Rendering dashboard pages: the template environment, what every page is given, paging
links, and HTML error pages for every path outside /api/."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from babel.messages import extract
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from segmenti import phones
from segmenti.membership import conditions
from segmenti.paging import Page
from segmenti.settings import Settings
from segmenti.web import i18n, messages, sessions
from segmenti.web.i18n import N_

HERE = Path(__file__).parent
STATIC_VERSION = "3"  # bumped with the static files, so browsers fetch the new ones

TYPE_LABELS = {"filter": N_("Filter"), "custom": N_("Contacts"), "bulk": N_("Phone numbers")}
# What each condition's value is in the tree builder: text, a list, a date, or none.
TREE_CONDITION_VALUES = {name: conditions.named(name).takes for name in conditions.TREE_NAMES}

# The language of the page being rendered (`render` sets it around the rendering): the
# templates' gettext and formatting filters read it, in macros too.
_current: ContextVar[i18n.Language | None] = ContextVar("segmenti_page_language", default=None)


def current_language() -> i18n.Language:
    language = _current.get()
    if language is None:
        raise RuntimeError("a dashboard template is rendered outside pages.render")
    return language


def countries_by_continent(language: i18n.Language) -> list[tuple[str, list[tuple[str, str]]]]:
    """The country picker: countries by continent, continents and each group's countries
    in the language's alphabetical order."""
    return _countries_by_continent(language.code, language.zone.key)


@functools.cache
def _countries_by_continent(code: str, zone: str) -> list[tuple[str, list[tuple[str, str]]]]:
    language = i18n.language(code, zone)
    groups = []
    for continent in phones.CONTINENTS:
        codes = [c for c, where in phones.CONTINENT_BY_COUNTRY.items() if where == continent]
        groups.append((language.continent(continent), language.countries_sorted(codes)))
    return sorted(groups, key=lambda group: i18n.sort_key(group[0]))


def continents(language: i18n.Language) -> list[tuple[str, str]]:
    """(code, name) of every continent, in the language's alphabetical order."""
    names = [(code, language.continent(code)) for code in phones.CONTINENTS]
    return sorted(names, key=lambda item: i18n.sort_key(item[1]))


def local_path(target: str | None, default: str = "/segments") -> str:
    """`target` if it is a path of this site, else `default`. Browsers read `//host`,
    `/\\host` and `https:...` as other sites, and drop tabs and newlines before they do
    (`/<TAB>/host` is `//host`), so a path must start with one `/`, and no backslash,
    control character or space may appear anywhere in it."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if any(char == "\\" or ord(char) < 0x21 or ord(char) == 0x7F for char in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _script_message_ids() -> tuple[str, ...]:
    """The messages the dashboard's scripts (static/*.js) ask `gettext` for, read from
    the scripts with Babel's extractor (the one `make messages` runs), so the words a
    page hands them and the words they use cannot drift apart."""
    found: dict[str, None] = {}
    for path in sorted((HERE / "static").rglob("*.js")):
        with path.open("rb") as script:
            for _line, message, _comments, _context in extract.extract(
                "javascript", script, keywords={"gettext": None}
            ):
                found.setdefault(str(message), None)
    return tuple(found)


SCRIPT_MESSAGE_IDS = _script_message_ids()


def script_messages(language: i18n.Language) -> dict[str, str]:
    """The scripts' words in `language`: base.html renders them as a JSON block
    (`tojson`) that the scripts read, never into script text."""
    return {message: language.gettext(message) for message in SCRIPT_MESSAGE_IDS}


def _gettext(message: str) -> str:
    return current_language().gettext(message)


def _ngettext(singular: str, plural: str, count: int) -> str:
    return current_language().ngettext(singular, plural, count)


def _error_text(error: Any) -> str:
    """An error's detail (or title) in the page's language; English when the catalog
    cannot say it (`error_is_english` marks it)."""
    english = error.detail or error.title
    return messages.translate(current_language(), english) or english


def _error_is_english(error: Any) -> bool:
    language = current_language()
    return (
        language.code != "en" and messages.translate(language, error.detail or error.title) is None
    )


def _message(english: str) -> str:
    return messages.translate(current_language(), english) or english


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
        extensions=["jinja2.ext.i18n"],
    )
    # newstyle: `_("%(n)s rows", n=n)` formats after translating, and autoescapes.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["field_id"] = field_id
    env.filters["country"] = lambda code: current_language().country(code)
    env.filters["number"] = lambda value: current_language().number(value)
    env.filters["moment"] = lambda value: current_language().moment(value)
    env.filters["error_text"] = _error_text
    env.filters["error_is_english"] = _error_is_english
    env.filters["message"] = _message
    env.filters["continent"] = lambda code: current_language().continent(code)
    env.filters["country_with_code"] = lambda code: f"{current_language().country(code)} ({code})"
    env.globals.update(
        CONDITION_WORDS=messages.CONDITION_WORDS,
        FLAT_CONDITIONS=conditions.NAMES,
        TREE_CONDITIONS=conditions.TREE_NAMES,
        TREE_CONDITION_VALUES=TREE_CONDITION_VALUES,
        TYPE_LABELS=TYPE_LABELS,
        STATIC_VERSION=STATIC_VERSION,
        script_messages=script_messages,
    )
    return env


templates = Jinja2Templates(env=_environment())


def page_language(request: Request) -> i18n.Language:
    """The language a page of this request is shown in (cookie, else Accept-Language)."""
    settings: Settings = request.app.state.settings
    code = i18n.request_language(
        request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
    )
    return i18n.language(code, settings.display_timezone)


def _switch_links(request: Request, language: i18n.Language) -> list[dict[str, str]]:
    """The language switcher's links: each language but the page's, back to this page."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    here = local_path(here, "/")
    return [
        {"code": code, "name": name, "url": f"/language/{code}?{urlencode({'next': here})}"}
        for code, name in i18n.NAMES.items()
        if code != language.code
    ]


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    viewer: sessions.Viewer | None = None,
) -> HTMLResponse:
    has_session = "session" in request.scope
    language = page_language(request)
    page_context = {
        "viewer": viewer,
        "csrf_token": sessions.csrf_token(request) if has_session else "",
        "flash": sessions.pop_flash(request) if has_session else None,
        "error": None,
        "lang": language,
        "switch_links": _switch_links(request, language),
        "countries_by_continent": functools.partial(countries_by_continent, language),
        "continents": functools.partial(continents, language),
        **(context or {}),
    }
    token = _current.set(language)
    try:
        response = templates.TemplateResponse(request, name, page_context, status_code=status_code)
    finally:
        _current.reset(token)
    # Pages show one user's data: never kept by shared caches, nor shown from the
    # browser's cache after signing out.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = language.code
    response.headers["Vary"] = "Accept-Language, Cookie"
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
