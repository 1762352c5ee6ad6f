"""Rate limit per API key: a token bucket in the server process.

Each key (each distinct `Authorization` header; requests without one share a bucket per
client address) holds up to `rate_limit_requests` tokens, refilled evenly over
`rate_limit_window_seconds`; a request takes one. An empty bucket answers 429 with
`Retry-After`, and every `/api/` answer carries `RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).

The buckets live in the process: with `segmenti serve --workers N` each worker has its
own, so a key may make up to N times the limit in total. Off by default (0): the
embedded, single-tenant setup needs none.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmenti import errors, metrics
from segmenti.http import error_response

# Buckets kept at most; beyond it full (idle) buckets are dropped first: a full bucket
# is the same as no bucket, so dropping it forgets nothing.
MAX_BUCKETS = 50_000


def _now() -> float:
    return time.monotonic()


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimit:
    def __init__(self, app: ASGIApp, *, requests: int, window_seconds: int) -> None:
        self.app = app
        self.capacity = float(requests)
        self.rate = requests / max(window_seconds, 1)  # tokens per second
        self.policy = f"{requests};w={max(window_seconds, 1)}"
        self.buckets: dict[str, _Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith("/api/") or path == "/api/openapi.json":
            await self.app(scope, receive, send)
            return
        # One event loop runs this: no other request touches the bucket in between.
        bucket = self._refilled(_bucket_id(scope))
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        headers = self._headers(bucket)
        if not allowed:
            metrics.RATE_LIMITED.inc()
            wait = math.ceil((1 - bucket.tokens) / self.rate)
            refusal = error_response(
                errors.TooManyRequests(
                    f"rate limit of {int(self.capacity)} requests per "
                    f"{self.policy.split('=')[1]} s exceeded for this API key; "
                    f"retry in {wait} s"
                ),
                headers={**headers, "Retry-After": str(wait)},
            )
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refilled(self, bucket_id: str) -> _Bucket:
        now = _now()
        bucket = self.buckets.get(bucket_id)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self.buckets[bucket_id] = _Bucket(self.capacity, now)
        else:
            elapsed = max(now - bucket.updated, 0.0)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        full_after = self.capacity / self.rate
        idle = [key for key, b in self.buckets.items() if now - b.updated >= full_after]
        for key in idle:
            del self.buckets[key]
        if len(self.buckets) >= MAX_BUCKETS:  # a flood of distinct keys: oldest half out
            by_age = sorted(self.buckets, key=lambda key: self.buckets[key].updated)
            for key in by_age[: len(by_age) // 2]:
                del self.buckets[key]

    def _headers(self, bucket: _Bucket) -> dict[str, str]:
        until_full = (self.capacity - bucket.tokens) / self.rate
        return {
            "RateLimit-Limit": str(int(self.capacity)),
            "RateLimit-Remaining": str(max(int(bucket.tokens), 0)),
            "RateLimit-Reset": str(math.ceil(until_full)),
            "RateLimit-Policy": self.policy,
        }


def _bucket_id(scope: Scope) -> str:
    """A digest of the Authorization header (the key itself is not kept in memory), or
    the client's address for requests without one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return "key:" + hashlib.sha256(value).hexdigest()
    client = scope.get("client")
    return f"addr:{client[0] if client else '-'}"
