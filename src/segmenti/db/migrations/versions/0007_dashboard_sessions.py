"""Dashboard sessions kept on the server, so that signing out ends them (issue 17).

Keyed (user_id, id_hash) like every tenant table, so it can be distributed by user_id
on Citus; id_hash is the SHA-256 of the random token in the session cookie.

Revision ID: 0007_dashboard_sessions
Revises: 0004_parameters_without_rowid
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_dashboard_sessions"
down_revision = "0004_parameters_without_rowid"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey(
                "users.id", ondelete="CASCADE", name="fk_dashboard_sessions_user_id_users"
            ),
            nullable=False,
        ),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "id_hash", name="pk_dashboard_sessions"),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
