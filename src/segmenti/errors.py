"""Domain errors. Services raise these; one handler in `app.py` renders them as
JSON:API error objects, so no service code knows about HTTP."""

from __future__ import annotations

from typing import Any

# How many of the bad entries an error or a report lists (invalid phone numbers of a bulk
# segment, missing contact ids, an import's invalid rows); its counts say how many in all,
# and the CLI's --errors file gets every bad row.
SHOWN_INVALID = 10


class SegmentiError(Exception):
    status: int = 500
    title: str = "Internal server error"
    # HTTP headers the answer carries besides the error body (Retry-After).
    headers: dict[str, str] | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        parameter: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.parameter = parameter
        self.meta = meta

    def as_error_object(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": str(self.status), "title": self.title}
        if self.detail:
            body["detail"] = self.detail
        if self.parameter:
            body["source"] = {"parameter": self.parameter}
        if self.meta:
            body["meta"] = self.meta
        return body


class Invalid(SegmentiError):
    status = 400
    title = "Invalid parameter"


class Unauthorized(SegmentiError):
    status = 401
    title = "Unauthorized"


class NotFound(SegmentiError):
    status = 404
    title = "Not found"


class MethodNotAllowed(SegmentiError):
    status = 405
    title = "Method not allowed"


class Conflict(SegmentiError):
    status = 409
    title = "Conflict"


class IdempotencyKeyReused(SegmentiError):
    status = 422
    title = "Idempotency key reused"


class RequestTimeout(SegmentiError):
    status = 408
    title = "Request timeout"


class PayloadTooLarge(SegmentiError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(SegmentiError):
    status = 415
    title = "Unsupported media type"


class _Retryable(SegmentiError):
    """An error worth retrying later: `retry_after` seconds, when known, become the
    answer's Retry-After header."""

    def __init__(
        self, detail: str | None = None, *, retry_after: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)
        if retry_after is not None:
            self.headers = {"Retry-After": str(retry_after)}


class TooManyRequests(_Retryable):
    status = 429
    title = "Too many requests"


class ServiceUnavailable(_Retryable):
    status = 503
    title = "Service unavailable"


class QueryTooLong(ServiceUnavailable):
    """A database statement ran past the statement timeout and was cancelled."""

    title = "Query took too long"
