"""contact_parameters is WITHOUT ROWID on SQLite; its number index is partial.

Import speed (issue 4). Every parameter row was written into four b-trees on SQLite:
the table (keyed by rowid), its primary key index (user_id, contact_id, key) and the
two covering filter indexes. WITHOUT ROWID makes the primary key the table itself, one
b-tree less per row. The (user_id, key, value_number, contact_id) index only ever
answers bigger_than / lower_than, whose `value_number > ?` excludes NULL, so it now
holds only the rows whose value is a number (WHERE value_number IS NOT NULL): most
parameter values (plans, cities, languages, dates) are not, and no longer cost an
index entry. A number condition implies IS NOT NULL, so both backends answer it from
the partial index (SQLite's EXPLAIN QUERY PLAN of the counts is unchanged).

The file is named by its place in the chain; the revision id keeps the name that
databases already store.

Revision ID: 0004_parameters_without_rowid
Revises: 0003_folded_byte_order
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_parameters_without_rowid"
down_revision = "0003_folded_byte_order"
branch_labels = None
depends_on = None

TABLE = "contact_parameters"
NUMBER_INDEX = "ix_contact_parameters_user_key_number"
NUMBER_COLUMNS = ["user_id", "key", "value_number", "contact_id"]
IS_NUMBER = sa.text("value_number IS NOT NULL")


def upgrade() -> None:
    op.drop_index(NUMBER_INDEX, table_name=TABLE)
    if op.get_bind().dialect.name == "sqlite":
        # Rebuilt (copied) into a WITHOUT ROWID table with the same columns, keys and
        # folded-value index.
        with op.batch_alter_table(
            TABLE, recreate="always", table_kwargs={"sqlite_with_rowid": False}
        ):
            pass
    op.create_index(
        NUMBER_INDEX,
        TABLE,
        NUMBER_COLUMNS,
        sqlite_where=IS_NUMBER,
        postgresql_where=IS_NUMBER,
    )


def downgrade() -> None:
    op.drop_index(NUMBER_INDEX, table_name=TABLE)
    if op.get_bind().dialect.name == "sqlite":
        # Explicitly: the reflected table would keep WITHOUT ROWID.
        with op.batch_alter_table(
            TABLE, recreate="always", table_kwargs={"sqlite_with_rowid": True}
        ):
            pass
    op.create_index(NUMBER_INDEX, TABLE, NUMBER_COLUMNS)
