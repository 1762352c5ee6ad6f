"""Operability: a request id and one structured log line per request, Prometheus
metrics by route template, and the `GET /metrics` endpoint.

`RequestContext` is the outermost middleware, so its line and its metrics see every
answer, rate-limit refusals and 413s included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmenti import metrics
from segmenti.settings import Settings

access_log = logging.getLogger("segmenti.access")

REQUEST_ID_HEADER = "x-request-id"
# An incoming id is kept when it is short and plain (it is echoed and logged, so it must
# not carry newlines, quotes or anything a log reader would misread); else a new one.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}$")
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class RequestContext:
    """Gives every HTTP request an id (echoed in `X-Request-Id`), counts and times it by
    route template and status, and writes one `segmenti.access` log line for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        metrics.IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.IN_PROGRESS.dec()
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = str(scope.get("method", ""))
            metrics.REQUESTS.labels(method, route, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(method, route, str(status)).observe(elapsed)
            _log_request(scope, request_id, method, route, status, elapsed)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.match(text) else None
    return None


def _route_template(scope: Scope) -> str:
    """`/api/segments/{segment_id}`, never the raw path: ids would make one time series
    per segment. Unknown paths share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path is not None else "<unmatched>"


def _log_request(
    scope: Scope, request_id: str, method: str, route: str, status: int, elapsed: float
) -> None:
    client = scope.get("client")
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": scope.get("path", ""),
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "user_id": scope.get("state", {}).get("user_id"),
        "client": client[0] if client else None,
    }
    access_log.info(
        "%s %s %s %.1fms id=%s",
        method,
        fields["path"],
        status,
        fields["duration_ms"],
        request_id,
        extra={"fields": fields},
    )


# -- logging ----------------------------------------------------------------------------

# Characters that end or rewrite a line for some log reader: C0 controls (CR, LF, ESC,
# ...), DEL, C1 controls (NEL, U+0085, among them), and the Unicode line and paragraph
# separators. A logged request path, method or error message can carry any of them.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_UNESCAPED = re.compile("[\x7f-\x9f\u2028\u2029]")  # json.dumps escapes C0 itself


def escape_controls(text: str) -> str:
    """`text` on one line: each control character written as its escape (`\\x0a`)."""
    return _CONTROL_CHARACTERS.sub(lambda match: _escape(match.group()), text)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class TextFormatter(logging.Formatter):
    """Plain text, one line per record whatever its fields hold: control characters in
    any field (message, logger name, ...) are escaped here, for every call site at once.
    A traceback keeps its lines, each indented, so that only a record's first line
    starts at the margin (and no text in an exception message can pass for a record)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        lines = [escape_controls(self.formatMessage(record))]
        # Not record.exc_text: another handler may have cached it unindented.
        if record.exc_info:
            lines.append(_indented(self.formatException(record.exc_info)))
        elif record.exc_text:
            lines.append(_indented(record.exc_text))
        if record.stack_info:
            lines.append(_indented(self.formatStack(record.stack_info)))
        return "\n".join(lines)


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        text = json.dumps(document, default=str, ensure_ascii=False)
        # json.dumps leaves DEL, C1 and U+2028/9 raw: some readers break lines on them.
        return _JSON_UNESCAPED.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def configure_logging(settings: Settings) -> None:
    """Sends the `segmenti` and `uvicorn` loggers to stderr, as JSON lines when
    SEGMENTI_LOG_JSON is true (`serve` passes uvicorn no logging config of its own, so
    its start-up and shutdown lines take the same form). Idempotent: a second call
    replaces the handler of the first."""
    handler = logging.StreamHandler(sys.stderr)
    handler.segmenti_handler = True  # type: ignore[attr-defined]
    if settings.log_json:
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    for name in ("segmenti", "uvicorn"):
        logger = logging.getLogger(name)
        for previous in list(logger.handlers):
            if getattr(previous, "segmenti_handler", False):
                logger.removeHandler(previous)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


# -- metrics ------------------------------------------------------------------------------


def prepare_multiprocess(workers: int, port: int) -> str | None:
    """With several worker processes, points prometheus-client at a directory shared by
    them, so `/metrics` answers for all processes, not for whichever took the scrape.
    Workers are spawned, so they import prometheus-client after this is set.

    An operator's PROMETHEUS_MULTIPROC_DIR is used as it is. Otherwise the directory is
    one per port under the temporary directory, emptied here: values of a previous run
    must not be summed into this one, and a server stopped by a signal (uvicorn exits
    by re-raising it, running no clean-up) leaves one directory per port, not one per
    run."""
    if workers <= 1:
        return None
    if os.environ.get(_MULTIPROC_ENV):
        return os.environ[_MULTIPROC_ENV]
    directory = Path(tempfile.gettempdir()) / f"segmenti-metrics-{os.getuid()}-{port}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    os.environ[_MULTIPROC_ENV] = str(directory)
    return str(directory)


class _PoolCollector(Collector):
    """The database connection pool of this process, read when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool: Any = self.engine.pool
        gauge = GaugeMetricFamily(
            "segmenti_db_pool_connections",
            "Database connections of this process's pool, by state.",
            labels=["state", "pid"],
        )
        pid = str(os.getpid())
        for state, method in (
            ("size", "size"),
            ("checked_out", "checkedout"),
            ("idle", "checkedin"),
            ("overflow", "overflow"),
        ):
            reader = getattr(pool, method, None)
            if reader is not None:
                # QueuePool counts overflow from -size up; report connections beyond size.
                gauge.add_metric([state, pid], float(max(reader(), 0)))
        yield gauge


def add_metrics_route(app: FastAPI, engine: Engine) -> None:
    pool_registry = CollectorRegistry(auto_describe=True)
    pool_registry.register(_PoolCollector(engine))

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
    )
    def metrics_endpoint() -> Response:
        if os.environ.get(_MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            process_metrics = generate_latest(registry)
        else:
            process_metrics = generate_latest(REGISTRY)
        body = process_metrics + generate_latest(pool_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
