"""Membership events, webhooks and their deliveries, snapshots, segment history
(issue 15, docs/events-and-webhooks.md).

Every table is keyed by user_id first (Citus); events, webhooks, deliveries, attempts
and snapshots are numbered by the rowid on SQLite, like contacts and segments. The
tables are created from tables.py's definitions as they stand at this revision, with
its SQLite compilation hooks (rowid keys, WITHOUT ROWID), so the two cannot differ.

Revision ID: 0009_events_webhooks_snapshots
Revises: 0008_contacts_version
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from segmenti.db import tables

revision = "0009_events_webhooks_snapshots"
down_revision = "0008_contacts_version"
branch_labels = None
depends_on = None

_TABLES = (
    tables.events,
    tables.webhooks,
    tables.webhook_deliveries,
    tables.webhook_attempts,
    tables.snapshots,
    tables.snapshot_members,
    tables.segment_history,
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind)
