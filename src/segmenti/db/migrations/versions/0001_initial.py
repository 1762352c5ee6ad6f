"""Initial schema: users, API keys, contacts with their parameter index, segments.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("segments_version", sa.String(32), nullable=False, server_default=""),
        sa.Column("datetime", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_api_keys_user_id_users"),
            nullable=False,
        ),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("datetime", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_contacts_user_id_users"),
            nullable=False,
        ),
        sa.Column("name", sa.String(256), nullable=False, server_default=""),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("custom_parameters", Json, nullable=False),
        sa.Column("continent_code", sa.String(2), nullable=True),
        sa.Column("country_code", sa.String(2), nullable=True),
        sa.Column("has_opted_out", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_datetime", sa.DateTime, nullable=True),
        sa.Column("datetime", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.UniqueConstraint("user_id", "phone_number", name="uq_contacts_user_id_phone_number"),
    )
    op.create_index("ix_contacts_user_id_id", "contacts", ["user_id", "id"])
    op.create_index("ix_contacts_user_id_country_code", "contacts", ["user_id", "country_code"])
    op.create_table(
        "contact_parameters",
        sa.Column(
            "contact_id",
            sa.Integer,
            sa.ForeignKey(
                "contacts.id",
                ondelete="CASCADE",
                name="fk_contact_parameters_contact_id_contacts",
            ),
            nullable=False,
        ),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("value_folded", sa.Text, nullable=False),
        sa.Column("value_number", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("contact_id", "key", name="pk_contact_parameters"),
    )
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
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_segments_user_id_users"),
            nullable=False,
        ),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("total_contacts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_datetime", sa.DateTime, nullable=True),
        sa.Column("datetime", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
    )
    op.create_index("ix_segments_user_id_id", "segments", ["user_id", "id"])
    op.create_table(
        "segment_members",
        sa.Column(
            "segment_id",
            sa.Integer,
            sa.ForeignKey(
                "segments.id", ondelete="CASCADE", name="fk_segment_members_segment_id_segments"
            ),
            nullable=False,
        ),
        sa.Column(
            "contact_id",
            sa.Integer,
            sa.ForeignKey(
                "contacts.id", ondelete="CASCADE", name="fk_segment_members_contact_id_contacts"
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "contact_id", name="pk_segment_members"),
    )
    op.create_index("ix_segment_members_contact_id", "segment_members", ["contact_id"])


def downgrade() -> None:
    for table in ("segment_members", "segments", "contact_parameters", "contacts", "api_keys"):
        op.drop_table(table)
    op.drop_table("users")
