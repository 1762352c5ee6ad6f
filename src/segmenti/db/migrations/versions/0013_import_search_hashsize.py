"""SQLite: the contact search index buffers 16 MiB of new entries before it writes a
segment, instead of 1 MiB, so an import no longer pays for dozens of flushes and
merges per batch (db/search_index.py, SQLITE_HASHSIZE; docs/search.md has the
figures). PostgreSQL: nothing.

Revision ID: 0013_import_search_hashsize
Revises: 0012_import_parameters_cascade
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from segmenti.db import search_index

revision = "0013_import_search_hashsize"
down_revision = "0012_import_parameters_cascade"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(search_index.sqlite_set_hashsize(search_index.SQLITE_HASHSIZE))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(search_index.sqlite_set_hashsize(search_index.SQLITE_DEFAULT_HASHSIZE))
