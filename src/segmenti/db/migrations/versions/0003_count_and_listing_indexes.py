"""Covering indexes for counting filters from scratch (docs/counts.md), and an index
for the default order of the segment list.

The parameter indexes gain contact_id, so a condition's range of the index yields its
contacts without reading contact_parameters rows; contacts gain an index on
(user_id, has_opted_out, country_code, continent_code), which answers "every contact
of the user that has not opted out" (filters without a positive condition) by itself.
Segments gain (user_id, datetime): a page of the newest segments reads its 25 rows
instead of sorting every segment of the user, whose settings (a bulk segment lists up
to 100,000 numbers) would all be read for the sort.

Revision ID: 0003_count_and_listing_indexes
Revises: 0002_idempotency_keys
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0003_count_and_listing_indexes"
down_revision = "0002_idempotency_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_contact_parameters_user_key_folded", "contact_parameters")
    op.drop_index("ix_contact_parameters_user_key_number", "contact_parameters")
    op.create_index(
        "ix_contact_parameters_user_key_folded",
        "contact_parameters",
        ["user_id", "key", "value_folded", "contact_id"],
    )
    op.create_index(
        "ix_contact_parameters_user_key_number",
        "contact_parameters",
        ["user_id", "key", "value_number", "contact_id"],
    )
    op.create_index(
        "ix_contacts_user_id_has_opted_out",
        "contacts",
        ["user_id", "has_opted_out", "country_code", "continent_code"],
    )

    op.create_index("ix_segments_user_id_datetime", "segments", ["user_id", "datetime"])


def downgrade() -> None:
    op.drop_index("ix_segments_user_id_datetime", "segments")
    op.drop_index("ix_contacts_user_id_has_opted_out", "contacts")
    op.drop_index("ix_contact_parameters_user_key_number", "contact_parameters")
    op.drop_index("ix_contact_parameters_user_key_folded", "contact_parameters")
    op.create_index(
        "ix_contact_parameters_user_key_folded",
        "contact_parameters",
        ["user_id", "key", "value_folded"],
    )
    op.create_index(
        "ix_contact_parameters_user_key_number",
        "contact_parameters",
        ["user_id", "key", "value_number"],
    )
