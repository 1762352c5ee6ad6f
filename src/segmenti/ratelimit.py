"""Rate limits: token buckets in the server process, per user and per failing address.

Two kinds of bucket, each holding up to `rate_limit_requests` tokens refilled evenly over
`rate_limit_window_seconds`; a request takes one, and an empty bucket answers 429 with
`Retry-After`:

- **per user**: every request that authenticated, with any of the user's API keys
  (however the `Authorization` header spells the scheme and spaces) or a dashboard
  session, draws from its user's bucket;
- **per client address, for failures**: a request to /api/ without a valid key, and a
  dashboard sign-in with a wrong key, draws from its address's failure bucket.

A valid key only ever consults its user's bucket, so nobody's failed attempts, from any
address, can get a valid key refused. Every `/api/` answer carries `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`
(draft-ietf-httpapi-ratelimit-headers) of the bucket it drew from.

Who a request is, is only known once its key is looked up: the middleware looks it up
(`http.credentials`, one indexed query) and leaves the answer in the request's scope,
where the route's `current_user` finds it instead of looking it up again. The dashboard
charges its buckets itself (`web/sessions.py`, `web/views.py`), once it knows the user.

The buckets live in the process: with `segmenti serve --workers N` each worker has its
own, so a user may make up to N times the limit in total. Off by default (0): the
embedded, single-tenant setup needs none.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmenti import errors, metrics
from segmenti.http import credentials, error_response

# Buckets kept at most; beyond it full (idle) buckets are dropped first: a full bucket
# is the same as no bucket, so dropping it forgets nothing.
MAX_BUCKETS = 50_000

# Paths under /api/ that need no key and are never limited.
UNLIMITED_API_PATHS = frozenset({"/api/openapi.json"})


def _now() -> float:
    return time.monotonic()


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Taken:
    """The outcome of taking a token: allowed or not, the bucket's headers, and how many
    seconds until one more request would be allowed (0 when allowed)."""

    allowed: bool
    headers: dict[str, str]
    wait: int


def user_bucket(user_id: int) -> str:
    return f"user:{user_id}"


def failure_bucket(address: str) -> str:
    return f"failed:{address}"


class Limiter:
    """The buckets. Taken from the event loop (the API middleware) and from worker threads
    (dashboard routes run in the thread pool), hence the lock."""

    def __init__(self, *, requests: int, window_seconds: int) -> None:
        self.capacity = float(requests)
        self.window = max(window_seconds, 1)
        self.rate = requests / self.window  # tokens per second
        self.policy = f"{requests};w={self.window}"
        self.buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, bucket_id: str) -> Taken:
        with self._lock:
            bucket = self._refilled(bucket_id)
            allowed = bucket.tokens >= 1
            if allowed:
                bucket.tokens -= 1
            headers = self._headers(bucket)
            wait = 0 if allowed else math.ceil((1 - bucket.tokens) / self.rate)
        if not allowed:
            metrics.RATE_LIMITED.inc()
        return Taken(allowed, headers, wait)

    def refusal(self, bucket_id: str, taken: Taken) -> errors.TooManyRequests:
        if bucket_id.startswith("failed:"):
            what = (
                f"too many failed authentications from this address (at most "
                f"{int(self.capacity)} per {self.window} s)"
            )
        else:
            what = (
                f"rate limit of {int(self.capacity)} requests per {self.window} s exceeded "
                "for this user"
            )
        return errors.TooManyRequests(f"{what}; retry in {taken.wait} s", retry_after=taken.wait)

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


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


# -- the dashboard's side -----------------------------------------------------------


def _limiter(request: Request) -> Limiter | None:
    limiter: Limiter | None = getattr(request.app.state, "rate_limiter", None)
    return limiter


def charge_user(request: Request, user_id: int) -> None:
    """Takes a token from the user's bucket for a dashboard request, or raises 429."""
    _charge(request, user_bucket(user_id))


def charge_failure(request: Request) -> None:
    """Takes a token from the address's failure bucket for a failed sign-in, or raises
    429. Called only once the key is known to be wrong: a valid key never gets here."""
    _charge(request, failure_bucket(client_address(request.scope)))


def _charge(request: Request, bucket_id: str) -> None:
    limiter = _limiter(request)
    if limiter is None:
        return
    taken = limiter.take(bucket_id)
    if not taken.allowed:
        raise limiter.refusal(bucket_id, taken)


# -- the API's side -----------------------------------------------------------------


class RateLimit:
    """Limits every /api/ request (but UNLIMITED_API_PATHS) and adds the RateLimit-*
    headers to its answer."""

    def __init__(self, app: ASGIApp, *, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith("/api/") or path in UNLIMITED_API_PATHS:
            await self.app(scope, receive, send)
            return
        bucket_id = await self._bucket_id(scope)
        taken = self.limiter.take(bucket_id)
        if not taken.allowed:
            refusal = error_response(
                self.limiter.refusal(bucket_id, taken),
                headers={**taken.headers, "Retry-After": str(taken.wait)},
            )
            await refusal(scope, receive, send)
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in taken.headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _bucket_id(self, scope: Scope) -> str:
        try:
            found = await run_in_threadpool(credentials, Request(scope))
        except Exception:  # noqa: BLE001 - the route meets the same error and answers it
            found = None
        if found is not None and found.owner is not None:
            return user_bucket(found.owner.user_id)
        return failure_bucket(client_address(scope))
