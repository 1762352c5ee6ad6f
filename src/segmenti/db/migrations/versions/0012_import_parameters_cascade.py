"""PostgreSQL: a statement-level trigger deletes a deleted contact's parameter rows,
in place of the foreign key contact_parameters -> contacts, whose per-row check was
the largest single cost of a CSV import (db/parameter_cascade.py has the figures and
the reasons). SQLite, and Citus, keep the foreign key.

Revision ID: 0012_import_parameters_cascade
Revises: 0011_counted_day
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from segmenti.db import distribution, parameter_cascade

revision = "0012_import_parameters_cascade"
down_revision = "0011_counted_day"
branch_labels = None
depends_on = None


def _plain_postgresql() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and not distribution.has_citus(bind)


def upgrade() -> None:
    if _plain_postgresql():
        for statement in parameter_cascade.PG_CREATE:
            op.execute(statement)


def downgrade() -> None:
    if _plain_postgresql():
        for statement in parameter_cascade.TO_FOREIGN_KEY:
            op.execute(statement)
