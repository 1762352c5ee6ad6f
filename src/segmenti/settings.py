"""One typed settings object, read from SEGMENTI_* environment variables.

Every field carries a docstring: `tests/unit/test_settings.py` fails when one does not,
and the settings table of docs/settings-and-operations.md is checked against these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///var/segmenti.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy URL of the database. SQLite (the default, a file under ./var/) or
    PostgreSQL (`postgresql+psycopg://user@host:port/db`)."""

    max_body_bytes: int = 20 * 1024 * 1024
    """Largest request body accepted; a larger one answers 413."""

    max_bulk_phone_numbers: int = 100_000
    """Most distinct phone numbers one bulk segment may hold."""

    max_filter_conditions: int = 50
    """Most custom-parameter conditions one filter segment may hold."""

    secret_key: str = ""
    """Key that signs the dashboard's session cookies; at least 32 characters. Unset, a
    random key is made once and kept in the file `secret_key` beside the SQLite database
    (`./var/` by default, and for PostgreSQL). Set it when several hosts serve one
    database, or sessions signed on one host are refused by the others."""

    session_cookie_secure: bool = False
    """Mark the dashboard's session cookie Secure (sent over HTTPS only). Set it when the
    dashboard is served over HTTPS."""

    sqlite_busy_timeout_ms: int = 30_000
    """How long a SQLite writer waits for the write lock before giving up."""

    db_pool_size: int = 10
    """PostgreSQL connections kept open per server process."""

    db_max_overflow: int = 10
    """PostgreSQL connections opened beyond db_pool_size under load."""

    log_json: bool = False
    """Write one JSON object per log line instead of plain text."""

    rate_limit_requests: int = 0
    """Requests one user (through any of its API keys or dashboard sessions) may make
    per rate_limit_window_seconds (a token bucket, so short bursts up to this number
    pass); more answer 429. Failed authentications (wrong keys at the API or at the
    dashboard's sign-in) are limited to as many per client address, in a bucket of
    their own. 0 turns rate limiting off, the default for the embedded setup. Counted
    per server process."""

    rate_limit_window_seconds: int = 60
    """The window of rate_limit_requests: the bucket refills evenly over it."""

    idempotency_ttl_seconds: int = 86_400
    """How long the result of a create sent with an Idempotency-Key header is kept and
    replayed to a retry with the same key; after that the key may be used again."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Builds settings from SEGMENTI_<FIELD> variables; overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(f"SEGMENTI_{spec.name.upper()}")
            if raw is None:
                continue
            values[spec.name] = _coerce(spec.name, raw, type(getattr(cls(), spec.name)))
        values.update(overrides)
        return cls(**values)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The file behind a SQLite URL (None for memory databases and other backends)."""
        if not self.is_sqlite:
            return None
        # SQLAlchemy's own parsing: the URL may carry a query (`?timeout=20`).
        path = make_url(self.database_url).database
        if not path or path == ":memory:":
            return None
        return Path(path)


def _coerce(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"SEGMENTI_{name.upper()} must be a boolean, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"SEGMENTI_{name.upper()} must be an integer, got {raw!r}") from None
    return raw
