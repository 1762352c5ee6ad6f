"""One typed settings object, read from SEGMENTI_* environment variables.

Every field carries a docstring: `tests/unit/test_settings.py` fails when one does not,
and the settings table of docs/settings-and-operations.md is checked against these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///var/segmenti.db"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's names


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

    max_filter_leaves: int = 100
    """Most leaves (conditions, country and continent lists) one filter tree may hold."""

    secret_key: str = ""
    """Key that signs the dashboard's session cookies; at least 32 characters. Unset, a
    random key is made once and kept in the file `secret_key` beside the SQLite database
    (`./var/` by default, and for PostgreSQL). Set it when several hosts serve one
    database, or sessions signed on one host are refused by the others."""

    display_timezone: str = "Europe/Rome"
    """Time zone the dashboard shows times in (an IANA name: `Europe/Rome`, `UTC`,
    `America/New_York`), with the zone's abbreviation beside each time. The API and the
    CLI keep UTC."""

    session_cookie_secure: bool = False
    """Mark the dashboard's session cookie Secure (sent over HTTPS only). Set it when the
    dashboard is served over HTTPS."""

    sqlite_busy_timeout_ms: int = 30_000
    """How long a SQLite writer waits for the write lock before giving up."""

    db_pool_size: int = 10
    """PostgreSQL connections kept open per server process."""

    db_max_overflow: int = 10
    """PostgreSQL connections opened beyond db_pool_size under load."""

    statement_timeout_seconds: float = 30.0
    """Longest a database statement of the server (API, dashboard) may run; it is then
    cancelled and the request answers 503 "Query took too long". PostgreSQL cancels it
    itself (`statement_timeout`), which frees its backend at once; on SQLite a watchdog
    interrupts it, which rolls its write back and releases the write lock. Fractions
    allowed; 0 turns the limit off."""

    cli_statement_timeout_seconds: float = 0.0
    """Longest a database statement of a `segmenti` command (imports, recounts,
    exports) may run; 0 (the default): no limit, as a command is run by an operator
    who can stop it."""

    log_json: bool = False
    """Write one JSON object per log line instead of plain text."""

    log_level: str = "info"
    """Level of the HTTP server's own log lines (uvicorn's start-up, shutdown and error
    lines): critical, error, warning, info, debug or trace. The request lines of the
    `segmenti` logger are written whatever it says."""

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

    # -- the HTTP server: proxies, public address, connection bounds --------------------

    forwarded_allow_ips: str = ""
    """Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` headers are
    believed: comma-separated addresses or networks (`10.0.0.5`, `10.0.0.0/8`), `*` for
    any. Empty (the default) trusts none: the client is the connection's peer. Behind a
    reverse proxy set it to the proxy's address, or every client shares the proxy's
    address (in the log and in the per-address rate limit)."""

    public_base_url: str = ""
    """The address clients reach the service at (`https://segments.example.com`); the
    `links` of list answers are built on it. Empty (the default): on the request's own
    scheme and `Host` header, which a client chooses, so set it on a public server."""

    max_header_bytes: int = 16_384
    """Largest request head (request line and headers together); a larger one is
    answered 431 and the connection is closed."""

    request_head_timeout_seconds: int = 10
    """How long a connection may take to send a complete request head, counted from
    when the connection opens or its previous answer was sent; then it is closed. Also
    closes a connection that never sends anything."""

    keep_alive_timeout_seconds: int = 5
    """How long an idle connection is kept open after an answer, waiting for the next
    request."""

    min_transfer_bytes_per_second: int = 1024
    """Slowest average rate a request body may arrive at, and an answer be read at, past
    min_transfer_grace_seconds: the request is cut (408 when no answer has started,
    else the connection is dropped). Only time spent waiting on the client counts,
    never the server's own work, so a large upload or export on a slow link passes.
    0 turns the check off."""

    min_transfer_grace_seconds: int = 30
    """Seconds of waiting on a client allowed before min_transfer_bytes_per_second
    applies (each direction has its own), and the longest a single wait may last: a
    client that sends or reads nothing for this long is cut."""

    # -- membership events, webhooks, snapshots (docs/events-and-webhooks.md) -------------

    webhook_encryption_key: str = ""
    """Key that encrypts webhook signing secrets in the database: a Fernet key (32
    url-safe base64-encoded bytes, `python -c "from cryptography.fernet import Fernet;
    print(Fernet.generate_key().decode())"`). Unset, a random key is made once and kept
    in the file `webhook_key` (mode 0600) beside the SQLite database (`./var/` by
    default, and for PostgreSQL). Set it when several hosts deliver from one database.
    Losing it makes every stored secret unreadable: rotate each webhook's secret then."""

    webhooks_allow_private: bool = False
    """Allow webhook URLs on loopback, private, link-local and other internal addresses
    (tests, and a receiver on the same private network). Off, such URLs are refused at
    creation and at every delivery."""

    webhook_retry_delays: str = "5,300,1800,7200,18000,36000,36000"
    """Seconds to wait before each retry of a failed delivery, comma-separated (the
    Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). Past the last
    one the webhook is disabled, saying why."""

    webhook_connect_timeout_seconds: float = 5.0
    """Longest a delivery waits to connect to the receiver."""

    webhook_timeout_seconds: float = 15.0
    """Longest one delivery attempt may take, connecting and reading included."""

    webhook_concurrency: int = 8
    """Deliveries a deliverer process sends at once (each to another webhook: a
    webhook's deliveries go one at a time, in order)."""

    deliverer_in_serve: bool = True
    """Run the webhook deliverer inside `segmenti serve` (one per serve command, beside
    its workers). Off, run `segmenti deliver` as a process of its own."""

    deliverer_poll_seconds: float = 0.5
    """How often the deliverer looks for new events and due deliveries."""

    deliverer_lease_seconds: int = 60
    """How long a deliverer's claim on a delivery lasts: a deliverer that died while
    sending leaves it to another after this long. Longer than webhook_timeout_seconds."""

    events_retention_days: int = 30
    """Days membership events are kept (GET /api/events, replays)."""

    snapshots_per_user: int = 100
    """Most snapshots one user may keep; one more answers 400."""

    snapshots_retention_days: int = 90
    """Days a snapshot is kept; it is then deleted."""

    def __post_init__(self) -> None:
        for name in ("statement_timeout_seconds", "cli_statement_timeout_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"SEGMENTI_{name.upper()} must be 0 (no limit) or more")
        try:
            ZoneInfo(self.display_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "SEGMENTI_DISPLAY_TIMEZONE must be an IANA time zone (Europe/Rome, UTC), "
                f"got {self.display_timezone[:64]!r}"
            ) from None
        self.retry_delays()
        if self.webhook_concurrency < 1:
            raise ValueError("SEGMENTI_WEBHOOK_CONCURRENCY must be 1 or more")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(
                f"SEGMENTI_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )

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

    def retry_delays(self) -> tuple[float, ...]:
        """webhook_retry_delays as seconds."""
        try:
            delays = tuple(float(p) for p in self.webhook_retry_delays.split(",") if p.strip())
        except ValueError:
            delays = (-1.0,)
        if any(delay < 0 for delay in delays):
            raise ValueError(
                "SEGMENTI_WEBHOOK_RETRY_DELAYS must be comma-separated seconds, got "
                f"{self.webhook_retry_delays!r}"
            )
        return delays

    def data_folder(self) -> Path:
        """Where key files are kept: beside the SQLite database, else ./var/."""
        sqlite_file = self.sqlite_path()
        return sqlite_file.parent if sqlite_file is not None else Path("var")

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
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"SEGMENTI_{name.upper()} must be a number, got {raw!r}") from None
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"SEGMENTI_{name.upper()} must be an integer, got {raw!r}") from None
    return raw
