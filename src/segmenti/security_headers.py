"""Headers every answer carries: no framing, no MIME sniffing, no referrer to other
sites, a Content Security Policy, and no caching of anything but static files.

The dashboard loads only its own files (`/static/app.css`, `/static/app.js`, the
favicon) and its script fetches only its own origin; no template has an inline script,
style or event handler, so its policy needs no 'unsafe-inline'. `/docs` sets its own
policy (`api_docs.py`). A header the route set itself is kept.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""For HTML pages (the dashboard, its error pages)."""

OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""For everything else (JSON, CSV): nothing to load, nothing to frame."""

STATIC_PREFIXES = ("/static/", "/docs/static/")
"""Public files, the same for everyone: cacheable. Every other answer may hold a
tenant's data (API, CSV exports, dashboard pages) and is marked no-store."""

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(STATIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _value in headers}
                added = [(name, value) for name, value in _ALWAYS if name not in present]
                if b"content-security-policy" not in present:
                    html = any(
                        name.lower() == b"content-type" and value.startswith(b"text/html")
                        for name, value in headers
                    )
                    policy = PAGE_POLICY if html else OTHER_POLICY
                    added.append((b"content-security-policy", policy.encode()))
                if not cacheable and b"cache-control" not in present:
                    added.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)
