"""users.contacts_version: a per-user counter of contact writes (SQLite).

A segment is now counted before its write transaction, in a read snapshot, instead of
inside it (issue 17: one tenant's count held SQLite's only write lock for 36 s). The
write transaction then compares the counter with the snapshot's: unchanged, no contact
of the user was written in between and the count stands (membership/counts.py).

Revision ID: 0008_contacts_version
Revises: 0007_dashboard_sessions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_contacts_version"
down_revision = "0007_dashboard_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("contacts_version", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    # In place on SQLite (3.35+ drops columns): a batch rebuild would drop and recreate
    # users, and with foreign keys on, the drop cascades to every contact.
    op.execute("ALTER TABLE users DROP COLUMN contacts_version")
