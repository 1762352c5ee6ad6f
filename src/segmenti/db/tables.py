"""The schema, as SQLAlchemy Core tables. Migrations under `migrations/` create it.

Every tenant-owned table carries `user_id`, so every query can be scoped by it, and on
PostgreSQL its primary key, unique constraints and foreign keys all include `user_id`:
the schema can be distributed by tenant on Citus as it is (docs/scaling-out.md).

SQLite keeps `id` alone as the primary key of contacts and segments, because only an
INTEGER PRIMARY KEY (the rowid) numbers new rows by itself; a unique (user_id, id)
index, created on SQLite only (`ddl_if`), is what its composite foreign keys refer to.
The migrations build exactly this (`db/migrate.py`); `metadata.create_all` does too,
through the two SQLite compilation hooks below.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
FoldedText = Text().with_variant(Text(collation="C"), "postgresql")

MAX_ID = 2**31 - 1
"""The largest id a row can have: ids are Integer columns, 32-bit on PostgreSQL. A larger
id names nothing and must be refused before it reaches the driver, which fails on it
("integer out of range" on PostgreSQL, OverflowError past 2^63 on SQLite)."""

# Tables keyed (user_id, id) whose SQLite primary key is `id` alone, the rowid.
_SQLITE_ROWID_KEY = "segmenti_sqlite_rowid_key"


@compiles(CreateColumn, "sqlite")
def _sqlite_column(create: CreateColumn, compiler: Any, **kw: Any) -> Any:
    column = create.element
    if column.table.info.get(_SQLITE_ROWID_KEY) == column.name:
        # Not "AUTOINCREMENT": a plain rowid, as the migrations create it.
        return f"{compiler.preparer.format_column(column)} INTEGER NOT NULL"
    return compiler.visit_create_column(create, **kw)


@compiles(PrimaryKeyConstraint, "sqlite")
def _sqlite_primary_key(constraint: PrimaryKeyConstraint, compiler: Any, **kw: Any) -> Any:
    rowid = constraint.table.info.get(_SQLITE_ROWID_KEY)
    if rowid:
        name = compiler.preparer.format_constraint(constraint)
        return f"CONSTRAINT {name} PRIMARY KEY ({compiler.preparer.quote(rowid)})"
    return compiler.visit_primary_key_constraint(constraint, **kw)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(256), nullable=False),
    # A random token replaced by every segment write of the user: contact writes compare
    # it with the token of their cached, compiled copy of the user's filter segments. A
    # random token (not a counter) cannot repeat across a database that was recreated.
    Column("segments_version", String(32), nullable=False, server_default=""),
    # SQLite: moved on by every transaction that writes the user's contacts, so that a
    # count taken in an earlier read snapshot knows whether it still holds
    # (membership/counts.py, `Snapshot`). PostgreSQL leaves it at 0: its contact writers
    # run concurrently under a shared row lock that an update here would turn into a
    # queue, and it counts under the user's own lock instead, which blocks no other user.
    Column("contacts_version", Integer, nullable=False, server_default="0"),
    Column("datetime", DateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The first characters of the key, kept to tell keys apart in listings.
    Column("prefix", String(16), nullable=False),
    # SHA-256 of the whole key; the key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("datetime", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
    Index("ix_api_keys_user_id", "user_id"),
)

contacts = Table(
    "contacts",
    metadata,
    # Numbered by the database: SERIAL on PostgreSQL, the rowid on SQLite.
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False, server_default=""),
    Column("phone_number", String(32), nullable=False),
    # The parameters as given, for rendering; filters read contact_parameters instead.
    Column("custom_parameters", Json, nullable=False),
    Column("continent_code", String(2), nullable=True),
    Column("country_code", String(2), nullable=True),
    Column("has_opted_out", Boolean, nullable=False, server_default="0"),
    Column("last_datetime", DateTime, nullable=True),
    Column("datetime", DateTime, nullable=False),
    # Serves the per-user uniqueness rule and every look-up by number (bulk segments).
    UniqueConstraint("user_id", "phone_number", name="uq_contacts_user_id_phone_number"),
    # The primary key (user_id, id) serves listing a user's contacts by id, counting
    # "every contact of the user" and every look-up of one contact. On SQLite this
    # unique index plays that part (and is what the composite foreign keys refer to).
    PrimaryKeyConstraint("user_id", "id", name="pk_contacts"),
    Index("ix_contacts_user_id_id", "user_id", "id", unique=True).ddl_if(dialect="sqlite"),
    # Serves filters on country (and the country_code list parameter).
    Index("ix_contacts_user_id_country_code", "user_id", "country_code"),
    # Counts filters without a positive condition from the index alone (docs/counts.md).
    Index(
        "ix_contacts_user_id_has_opted_out",
        "user_id",
        "has_opted_out",
        "country_code",
        "continent_code",
    ),
    # PostgreSQL's contact search index (db/search_index.py; SQLite has an FTS5 table
    # instead): trigrams of the name and number, keyed by user first (btree_gin).
    Index(
        "ix_contacts_search",
        "user_id",
        "name",
        "phone_number",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops", "phone_number": "gin_trgm_ops"},
    ).ddl_if(dialect="postgresql"),
    info={_SQLITE_ROWID_KEY: "id"},
)

# One row per (contact, custom parameter): the index that filters are answered from.
# Values are stored case-folded (Python's str.casefold, so the fold is the same on every
# backend) and, when they are numbers in the SPEC's sense, as a float too.
contact_parameters = Table(
    "contact_parameters",
    metadata,
    Column("contact_id", Integer, nullable=False),
    Column("key", String(64), nullable=False),
    Column("user_id", Integer, nullable=False),
    # Byte order ("C") on PostgreSQL whatever the database's collation, as on SQLite:
    # starts_with is a range over this column (filters.py), which only an index in
    # byte order answers, and only byte order makes the range mean "starts with".
    Column("value_folded", FoldedText, nullable=False),
    Column("value_number", Float, nullable=True),
    # Serves rewriting one contact's parameters, and the cascade when it is deleted.
    PrimaryKeyConstraint("user_id", "contact_id", "key", name="pk_contact_parameters"),
    # SQLite only: on PostgreSQL a statement-level trigger does the cascade, because
    # checking this key per row inserted was the largest cost of an import (Citus keeps
    # it: db/parameter_cascade.py).
    ForeignKeyConstraint(
        ["user_id", "contact_id"],
        ["contacts.user_id", "contacts.id"],
        ondelete="CASCADE",
        name="fk_contact_parameters_user_id_contacts",
    ).ddl_if(dialect="sqlite"),
    # Serve string conditions (exact, starts_with: range scans) and numeric ones
    # (bigger_than, lower_than). contact_id makes them covering: a count walks the index
    # alone, never the table (docs/counts.md). contains and ends_with read the user's
    # values of the key (docs/postgresql.md, "Indexes and query plans").
    Index("ix_contact_parameters_user_key_folded", "user_id", "key", "value_folded", "contact_id"),
    # Partial: only number values can meet bigger_than / lower_than, and most are not.
    Index(
        "ix_contact_parameters_user_key_number",
        "user_id",
        "key",
        "value_number",
        "contact_id",
        sqlite_where=text("value_number IS NOT NULL"),
        postgresql_where=text("value_number IS NOT NULL"),
    ),
    # On SQLite the primary key is the table: one b-tree less per row than a rowid
    # table plus its primary key index (import speed).
    sqlite_with_rowid=False,
)

segments = Table(
    "segments",
    metadata,
    # Numbered by the database: SERIAL on PostgreSQL, the rowid on SQLite.
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("type", String(8), nullable=False),
    Column("settings", Json, nullable=False),
    # Maintained in the same transaction as every write that changes membership, so
    # it is exact whenever it is read (docs/counts.md).
    Column("total_contacts", Integer, nullable=False, server_default="0"),
    Column("last_datetime", DateTime, nullable=True),
    Column("datetime", DateTime, nullable=False),
    # The UTC day a filter with dates relative to today was counted for (NULL for every
    # other segment): total_contacts is that day's count until the day's shift moves it
    # on, before anyone reads it (membership/counts.py, docs/counts.md).
    Column("counted_day", Date, nullable=True),
    # Serves listing a user's segments and every look-up and count update of one
    # segment; on SQLite the unique index does (see contacts).
    PrimaryKeyConstraint("user_id", "id", name="pk_segments"),
    Index("ix_segments_user_id_id", "user_id", "id", unique=True).ddl_if(dialect="sqlite"),
    # The default order of the list (newest first): 25 rows read, not every segment.
    Index("ix_segments_user_id_datetime", "user_id", "datetime"),
    # "Has this user a dated segment counted for an earlier day?", asked before every
    # read of counts: one index probe.
    Index("ix_segments_user_id_counted_day", "user_id", "counted_day"),
    info={_SQLITE_ROWID_KEY: "id"},
)

# Members of bulk and custom segments (filter segments have none stored: their members
# are whoever satisfies the filter now).
segment_members = Table(
    "segment_members",
    metadata,
    Column("segment_id", Integer, nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    # Serves a list segment's members, and their delete when the segment is deleted.
    PrimaryKeyConstraint("user_id", "segment_id", "contact_id", name="pk_segment_members"),
    # SQLite only (migration 0014_writes_members_no_fks): on PostgreSQL the checks
    # of a bulk segment's 100,000 rows cost more than their insert, twice over. Their
    # one writer (membership/counts.py) inserts ids it has just read under the user's
    # exclusive lock, and the two deletes (segments/service.py, contacts/service.py)
    # delete the rows themselves, in the same transaction, on every backend.
    ForeignKeyConstraint(
        ["user_id", "segment_id"],
        ["segments.user_id", "segments.id"],
        ondelete="CASCADE",
        name="fk_segment_members_user_id_segments",
    ).ddl_if(dialect="sqlite"),
    ForeignKeyConstraint(
        ["user_id", "contact_id"],
        ["contacts.user_id", "contacts.id"],
        ondelete="CASCADE",
        name="fk_segment_members_user_id_contacts",
    ).ddl_if(dialect="sqlite"),
    # Serves "which list segments hold this contact" on contact delete and opt-out, and
    # the delete of its rows when a contact is deleted.
    Index("ix_segment_members_user_id_contact_id", "user_id", "contact_id"),
)

# The stored result of a create made with an `Idempotency-Key` header (idempotency.py),
# written in the create's own transaction: a retry finds either both or neither.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    # SHA-256 of the request's method, path and parameters: the same key with another
    # request is refused instead of answered with the first request's result.
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("datetime", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    # Serves purging a user's expired keys.
    Index("ix_idempotency_keys_user_id_expires_at", "user_id", "expires_at"),
)

# A signed-in dashboard session (web/sessions.py). The session cookie carries a random
# token; only its SHA-256 is kept here, so a copy of this table signs no one in. Signing
# out deletes the row, which is what makes a copy of the cookie worthless afterwards.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("id_hash", String(64), nullable=False),
    # The key the user signed in with: the session lives only while the key does. No
    # foreign key: on PostgreSQL every key of a tenant table includes user_id, and
    # api_keys is keyed by id alone; revoking a key deletes its sessions (auth.py), and
    # each look-up checks the key is live all the same.
    Column("api_key_id", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    # Serves the look-up of each dashboard request (the cookie's user id and token hash),
    # and every per-user clean-up (expired rows, the per-user bound, a revoked key's rows).
    PrimaryKeyConstraint("user_id", "id_hash", name="pk_dashboard_sessions"),
)

# -- membership events, webhooks, snapshots, history (issue 15; docs/events-and-webhooks.md)

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids (event ids). On SQLite INTEGER is already 64-bit, and only an INTEGER
PRIMARY KEY numbers rows by itself."""

# One membership move of a watched segment (membership/events.py writes them, in the
# write's own transaction). phone_number is copied: an exit caused by a delete still
# names the number.
events = Table(
    "events",
    metadata,
    Column("id", BigId, nullable=False, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("phone_number", String(32), nullable=False),
    Column("datetime", DateTime, nullable=False),
    # Serves the `after_id` cursor of a user's events and the deliverer's reads past a
    # webhook's cursor.
    PrimaryKeyConstraint("user_id", "id", name="pk_events"),
    Index("ix_events_user_id_id", "user_id", "id", unique=True).ddl_if(dialect="sqlite"),
    # Serves erasing one contact's events.
    Index("ix_events_user_id_contact_id", "user_id", "contact_id"),
    # Serves the retention purge (oldest first, across users).
    Index("ix_events_datetime", "datetime"),
    info={_SQLITE_ROWID_KEY: "id"},
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    # The event types sent (a JSON list) and the segments watched (a JSON list of ids;
    # null: every segment of the user).
    Column("events", Json, nullable=False),
    Column("segments_ids", Json, nullable=True),
    # The signing secret, encrypted (webhooks/secrets.py); the previous one for a day
    # after a rotation, so receivers can switch without losing a delivery.
    Column("secret_encrypted", Text, nullable=False),
    Column("previous_secret_encrypted", Text, nullable=True),
    Column("previous_secret_until", DateTime, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("disabled_reason", Text, nullable=True),
    # The last event id already put into a delivery: the next batch starts past it.
    Column("last_event_id", BigInteger, nullable=False, server_default="0"),
    Column("last_datetime", DateTime, nullable=True),
    Column("datetime", DateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "id", name="pk_webhooks"),
    Index("ix_webhooks_user_id_id", "user_id", "id", unique=True).ddl_if(dialect="sqlite"),
    info={_SQLITE_ROWID_KEY: "id"},
)

# One batch of 1 to 1,000 events of one webhook, sent until a 2xx or until the retry
# schedule runs out; `claimed_until` is the lease of the deliverer sending it.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("webhook_id", Integer, nullable=False),
    # The event ids of the batch (a JSON list, in order); the body is built from them
    # at every attempt, so an erased contact leaves pending batches too.
    Column("event_ids", Json, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_until", DateTime, nullable=True),
    Column("datetime", DateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "id", name="pk_webhook_deliveries"),
    Index("ix_webhook_deliveries_user_id_id", "user_id", "id", unique=True).ddl_if(
        dialect="sqlite"
    ),
    ForeignKeyConstraint(
        ["user_id", "webhook_id"],
        ["webhooks.user_id", "webhooks.id"],
        ondelete="CASCADE",
        name="fk_webhook_deliveries_user_id_webhooks",
    ),
    # Serves the deliverer's look-up of due batches (across users, a partial index of
    # the pending few) and a webhook's oldest pending batch.
    Index(
        "ix_webhook_deliveries_pending",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_webhook_deliveries_user_id_webhook_id", "user_id", "webhook_id", "id"),
    info={_SQLITE_ROWID_KEY: "id"},
)

# Each attempt to send a delivery: what GET /api/webhooks/{id}/deliveries lists.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("webhook_id", Integer, nullable=False),
    Column("delivery_id", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("datetime", DateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "id", name="pk_webhook_attempts"),
    Index("ix_webhook_attempts_user_id_id", "user_id", "id", unique=True).ddl_if(dialect="sqlite"),
    ForeignKeyConstraint(
        ["user_id", "webhook_id"],
        ["webhooks.user_id", "webhooks.id"],
        ondelete="CASCADE",
        name="fk_webhook_attempts_user_id_webhooks",
    ),
    Index("ix_webhook_attempts_user_id_webhook_id", "user_id", "webhook_id", "id"),
    info={_SQLITE_ROWID_KEY: "id"},
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # No foreign key: a snapshot outlives its segment.
    Column("segment_id", Integer, nullable=False),
    # How many members it froze (its `total_contacts` in the API; named apart from the
    # segments' count, which only membership/counts.py writes).
    Column("members_count", Integer, nullable=False),
    # False while its members are being written (on SQLite, in chunks): not shown, and
    # deleted by the retention pass if its writer died.
    Column("complete", Boolean, nullable=False, server_default="0"),
    Column("datetime", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "id", name="pk_snapshots"),
    Index("ix_snapshots_user_id_id", "user_id", "id", unique=True).ddl_if(dialect="sqlite"),
    Index("ix_snapshots_user_id_segment_id", "user_id", "segment_id"),
    Index("ix_snapshots_expires_at", "expires_at"),
    info={_SQLITE_ROWID_KEY: "id"},
)

# A snapshot's members as they were: the contact's number and name are frozen here.
snapshot_members = Table(
    "snapshot_members",
    metadata,
    Column("snapshot_id", Integer, nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("phone_number", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("country_code", String(2), nullable=True),
    PrimaryKeyConstraint("user_id", "snapshot_id", "contact_id", name="pk_snapshot_members"),
    ForeignKeyConstraint(
        ["user_id", "snapshot_id"],
        ["snapshots.user_id", "snapshots.id"],
        ondelete="CASCADE",
        name="fk_snapshot_members_user_id_snapshots",
    ),
    # Serves erasing one contact from every snapshot.
    Index("ix_snapshot_members_user_id_contact_id", "user_id", "contact_id"),
    sqlite_with_rowid=False,
)

# A row a segment a day: its count at the end of the day (so far) and how many
# entered and left, written by membership/counts.py with the counts.
segment_history = Table(
    "segment_history",
    metadata,
    Column("user_id", Integer, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("date", Date, nullable=False),
    Column("total_contacts", Integer, nullable=False),
    Column("entered", Integer, nullable=False, server_default="0"),
    Column("exited", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("user_id", "segment_id", "date", name="pk_segment_history"),
    ForeignKeyConstraint(
        ["user_id", "segment_id"],
        ["segments.user_id", "segments.id"],
        ondelete="CASCADE",
        name="fk_segment_history_user_id_segments",
    ),
    sqlite_with_rowid=False,
)
