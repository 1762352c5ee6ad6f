"""segments.counted_day: the UTC day a filter with relative dates was counted for.

Filter trees may hold dates relative to today (`date_after -30d`), whose members change
at UTC midnight without any write. Such a segment's total_contacts is the count for
its counted_day; the day's shift recounts it for the new day before any read answers
(membership/counts.py, docs/counts.md). The index answers "is any segment of this user
counted for an earlier day?" with one probe.

Revision ID: 0011_counted_day
Revises: 0010_contact_search
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_counted_day"
down_revision = "0010_contact_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("segments", sa.Column("counted_day", sa.Date(), nullable=True))
    op.create_index("ix_segments_user_id_counted_day", "segments", ["user_id", "counted_day"])


def downgrade() -> None:
    op.drop_index("ix_segments_user_id_counted_day", table_name="segments")
    # In place on SQLite (3.35+ drops columns), as 0008 does.
    op.execute("ALTER TABLE segments DROP COLUMN counted_day")
