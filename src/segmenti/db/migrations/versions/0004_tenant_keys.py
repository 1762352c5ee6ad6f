"""Tenant keys: user_id leads every key of a tenant-owned table, ready for Citus.

On PostgreSQL the primary keys of contacts, segments, contact_parameters and
segment_members become (user_id, ...), and the foreign keys between them become
composite, (user_id, contact_id) -> contacts (user_id, id) and so on, still ON DELETE
CASCADE. A distributed database (Citus) requires exactly this: every key and unique
constraint of a table distributed by user_id includes user_id. The composite foreign
keys also make it impossible for a row to point at another user's contact or segment.

On SQLite, contacts and segments keep `id` alone as their primary key (the rowid, so
ids keep numbering themselves) and get a unique (user_id, id) index for the composite
foreign keys to refer to; the two child tables are rebuilt with their new keys.

The file is named by its place in the chain; the revision id keeps the name that
databases already store.

Revision ID: 0002_tenant_keys
Revises: 0003_count_and_listing_indexes
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002_tenant_keys"
down_revision = "0003_count_and_listing_indexes"
branch_labels = None
depends_on = None

PARENTS = ("contacts", "segments")
# child table: (old primary key, new primary key)
CHILD_KEYS = {
    "contact_parameters": (["contact_id", "key"], ["user_id", "contact_id", "key"]),
    "segment_members": (["segment_id", "contact_id"], ["user_id", "segment_id", "contact_id"]),
}
# (child, old single-column foreign key, new composite one, child columns, parent)
FOREIGN_KEYS = (
    (
        "contact_parameters",
        "fk_contact_parameters_contact_id_contacts",
        "fk_contact_parameters_user_id_contacts",
        ["user_id", "contact_id"],
        "contacts",
    ),
    (
        "segment_members",
        "fk_segment_members_segment_id_segments",
        "fk_segment_members_user_id_segments",
        ["user_id", "segment_id"],
        "segments",
    ),
    (
        "segment_members",
        "fk_segment_members_contact_id_contacts",
        "fk_segment_members_user_id_contacts",
        ["user_id", "contact_id"],
        "contacts",
    ),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def _upgrade_postgresql() -> None:
    # Foreign keys depend on the parents' primary keys: drop them first.
    for child, old_fk, _new_fk, _columns, _parent in FOREIGN_KEYS:
        op.drop_constraint(old_fk, child, type_="foreignkey")
    for parent in PARENTS:
        op.drop_constraint(f"pk_{parent}", parent, type_="primary")
        op.create_primary_key(f"pk_{parent}", parent, ["user_id", "id"])
        # The new primary key is this index.
        op.drop_index(f"ix_{parent}_user_id_id", table_name=parent)
    for child, (_old, new) in CHILD_KEYS.items():
        op.drop_constraint(f"pk_{child}", child, type_="primary")
        op.create_primary_key(f"pk_{child}", child, new)
    for child, _old_fk, new_fk, columns, parent in FOREIGN_KEYS:
        op.create_foreign_key(new_fk, child, parent, columns, ["user_id", "id"], ondelete="CASCADE")
    _replace_member_contact_index()


def _upgrade_sqlite() -> None:
    # Parents first: SQLite checks a composite foreign key's parent index when the
    # children's rows are copied into their rebuilt tables.
    for parent in PARENTS:
        op.drop_index(f"ix_{parent}_user_id_id", table_name=parent)
        op.create_index(f"ix_{parent}_user_id_id", parent, ["user_id", "id"], unique=True)
    for child, (_old, new) in CHILD_KEYS.items():
        with op.batch_alter_table(child, recreate="always") as batch:
            for fk_child, old_fk, new_fk, columns, parent in FOREIGN_KEYS:
                if fk_child != child:
                    continue
                batch.drop_constraint(old_fk, type_="foreignkey")
                batch.create_foreign_key(
                    new_fk, parent, columns, ["user_id", "id"], ondelete="CASCADE"
                )
            batch.drop_constraint(f"pk_{child}", type_="primary")
            batch.create_primary_key(f"pk_{child}", new)
    _replace_member_contact_index()


def _replace_member_contact_index() -> None:
    op.drop_index("ix_segment_members_contact_id", table_name="segment_members")
    op.create_index(
        "ix_segment_members_user_id_contact_id", "segment_members", ["user_id", "contact_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_segment_members_user_id_contact_id", table_name="segment_members")
    op.create_index("ix_segment_members_contact_id", "segment_members", ["contact_id"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for child, (old, _new) in CHILD_KEYS.items():
            with op.batch_alter_table(child, recreate="always") as batch:
                for fk_child, old_fk, new_fk, _columns, parent in FOREIGN_KEYS:
                    if fk_child != child:
                        continue
                    column = old_fk.removeprefix(f"fk_{child}_").removesuffix(f"_{parent}")
                    batch.drop_constraint(new_fk, type_="foreignkey")
                    batch.create_foreign_key(old_fk, parent, [column], ["id"], ondelete="CASCADE")
                batch.drop_constraint(f"pk_{child}", type_="primary")
                batch.create_primary_key(f"pk_{child}", old)
        for parent in PARENTS:
            op.drop_index(f"ix_{parent}_user_id_id", table_name=parent)
            op.create_index(f"ix_{parent}_user_id_id", parent, ["user_id", "id"])
        return
    for child, _old_fk, new_fk, _columns, _parent in FOREIGN_KEYS:
        op.drop_constraint(new_fk, child, type_="foreignkey")
    for child, (old, _new) in CHILD_KEYS.items():
        op.drop_constraint(f"pk_{child}", child, type_="primary")
        op.create_primary_key(f"pk_{child}", child, old)
    for parent in PARENTS:
        op.create_index(f"ix_{parent}_user_id_id", parent, ["user_id", "id"])
        op.drop_constraint(f"pk_{parent}", parent, type_="primary")
        op.create_primary_key(f"pk_{parent}", parent, ["id"])
    for child, old_fk, _new_fk, _columns, parent in FOREIGN_KEYS:
        column = old_fk.removeprefix(f"fk_{child}_").removesuffix(f"_{parent}")
        op.create_foreign_key(old_fk, child, parent, [column], ["id"], ondelete="CASCADE")
