"""`Idempotency-Key` on create endpoints: a retried create returns the first result.

A client that lost the answer to a create (timeout, dropped connection) resends it
with the same key; the stored status and body of the first success are answered again
and nothing is created. The key's row is inserted in the create's own transaction,
before the create runs, and completed after it, so a crash or an error leaves neither
the row nor the created data; a concurrent request with the same key waits on the row
(PostgreSQL) or on the write lock (SQLite) and then replays the committed result.

The same key with a different request (method, path or parameters) is refused with 422:
answering it with another request's result would hide the client's bug. Only successes
are stored; a failed create writes nothing, so its retry runs again. Keys are per user
and expire after `idempotency_ttl_seconds`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmenti import errors, metrics
from segmenti.db.engine import Database
from segmenti.db.tables import idempotency_keys
from segmenti.db.tenant import Tenant
from segmenti.forms import Params
from segmenti.timeutil import utcnow

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII without spaces: a UUID, a ULID, a hash, anything a client generates.
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def key_of(request: Request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise errors.Invalid(
            f"{HEADER} must be 1 to 255 printable ASCII characters without spaces",
            parameter=HEADER,
        )
    return raw


def request_hash(request: Request, params: Params) -> str:
    path = request.url.path.rstrip("/")
    text = f"{request.method}\n{path}\n{params.canonical()}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def create_once(
    request: Request,
    db: Database,
    *,
    user_id: int,
    params: Params,
    create: Callable[[Session], JSONResponse],
) -> Response:
    """Runs `create` in one write transaction, or replays the result stored under the
    request's Idempotency-Key."""
    key = key_of(request)
    if key is None:
        with db.write() as session:
            return create(session)
    digest = request_hash(request, params)
    ttl = timedelta(seconds=request.app.state.settings.idempotency_ttl_seconds)
    try:
        with db.write() as session:
            stored = _claim(session, user_id=user_id, key=key, digest=digest, ttl=ttl)
            if stored is not None:
                return _replay(stored, key=key, digest=digest)
            response = create(session)
            session.execute(
                Tenant(user_id)
                .update(idempotency_keys)
                .where(idempotency_keys.c.key == key)
                .values(status=response.status_code, body=bytes(response.body).decode("utf-8"))
            )
            return response
    except IntegrityError:
        # PostgreSQL: a concurrent request with the same key committed its row first.
        with db.read() as session:
            stored = _stored(session, user_id=user_id, key=key)
        if stored is None:
            raise
        return _replay(stored, key=key, digest=digest)


def _stored(session: Session, *, user_id: int, key: str) -> tuple[str, int, str] | None:
    row = session.execute(
        Tenant(user_id)
        .select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.status,
            idempotency_keys.c.body,
            idempotency_keys.c.expires_at,
        )
        .where(idempotency_keys.c.key == key)
    ).first()
    if row is None or row.expires_at <= utcnow():
        return None
    return row.request_hash, row.status, row.body


def _claim(
    session: Session, *, user_id: int, key: str, digest: str, ttl: timedelta
) -> tuple[str, int, str] | None:
    """The stored result of the key, or None after inserting the key's row (completed
    by the caller in the same transaction). Expired keys of the user are purged."""
    stored = _stored(session, user_id=user_id, key=key)
    if stored is not None:
        return stored
    now, tenant = utcnow(), Tenant(user_id)
    session.execute(tenant.delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
    session.execute(
        tenant.insert(idempotency_keys).values(
            key=key,
            request_hash=digest,
            status=0,  # completed before commit; never seen by another transaction
            body="",
            datetime=now,
            expires_at=now + ttl,
        )
    )
    return None


def _replay(stored: tuple[str, int, str], *, key: str, digest: str) -> Response:
    stored_hash, status, body = stored
    if stored_hash != digest:
        raise errors.IdempotencyKeyReused(
            f"{HEADER} {key[:64]!r} was already used for a different request; "
            "use a new key for a new request",
            parameter=HEADER,
        )
    metrics.IDEMPOTENT_REPLAYS.inc()
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )
