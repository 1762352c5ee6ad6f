"""segment_members without foreign keys on PostgreSQL.

A bulk segment of 100,000 numbers inserts 100,000 membership rows; on PostgreSQL each
row's two foreign key checks (a trigger per row and key, each a look-up and a row lock
of the parent) cost more than the insert itself: at 100k contacts, 1.48 s for the key
to segments and 1.37 s for the key to contacts, against 1.26 s for the insert. The rows
have one writer (membership/counts.py), which inserts ids it has just read under the
user's exclusive lock, and the deletes of a segment and of a contact delete their
member rows themselves in the same transaction (segments/service.py,
contacts/service.py), so nothing is left for the cascades to do. SQLite keeps both keys
(its checks cost little, and `PRAGMA foreign_keys` is on).

Revision ID: 0014_writes_members_no_fks
Revises: 0013_import_search_hashsize
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0014_writes_members_no_fks"
down_revision = "0013_import_search_hashsize"
branch_labels = None
depends_on = None

_KEYS = {
    "fk_segment_members_user_id_segments": ("segments", ["user_id", "segment_id"]),
    "fk_segment_members_user_id_contacts": ("contacts", ["user_id", "contact_id"]),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _KEYS:
        op.execute(f'ALTER TABLE segment_members DROP CONSTRAINT IF EXISTS "{name}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Rows left without their segment or contact would make the keys fail: none can be.
    for name, (parent, columns) in _KEYS.items():
        op.create_foreign_key(
            name,
            "segment_members",
            parent,
            columns,
            ["user_id", "id"],
            ondelete="CASCADE",
        )
