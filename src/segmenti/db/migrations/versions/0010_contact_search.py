"""The contact search index (issue 19): `search` answered from an index, not a scan.

SQLite: the FTS5 trigram table `contact_search`, filled from every existing contact,
and the triggers on `contacts` that keep it in step (db/search_index.py). PostgreSQL:
the pg_trgm and btree_gin extensions (trusted: the database's owner may create them) and
a GIN index built CONCURRENTLY, so contact writes go on while it is built; a few
seconds per million contacts on either backend.

Revision ID: 0010_contact_search
Revises: 0009_events_webhooks_snapshots
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from segmenti.db import search_index

revision = "0010_contact_search"
down_revision = "0009_events_webhooks_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # CREATE INDEX CONCURRENTLY cannot run inside a transaction: the migrations
        # before this one are committed first.
        with op.get_context().autocommit_block():
            for statement in search_index.PG_CREATE:
                op.execute(statement)
    else:
        for statement in search_index.SQLITE_CREATE:
            op.execute(statement)


def downgrade() -> None:
    # The extensions stay: other objects of the database may use them.
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for statement in search_index.PG_DROP:
                op.execute(statement)
    else:
        for statement in search_index.SQLITE_DROP:
            op.execute(statement)
