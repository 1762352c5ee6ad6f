"""The migrations build exactly the schema of tables.py, on SQLite and on PostgreSQL;
tenant tables are keyed by user_id (ready for Citus); upgrading an existing database
keeps its rows and its cascades."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from segmenti.db import migrate, parameter_cascade
from segmenti.db.distribution import RULES
from segmenti.db.engine import Database
from segmenti.db.tables import metadata
from segmenti.db.tenant import across_tenants
from segmenti.settings import Settings
from tests.conftest import CITUS_URL

# Every table but these is owned by one tenant: `users` is the tenant itself, and
# `api_keys` is looked up across tenants by key hash (a reference table on Citus, see
# docs/scaling-out.md). A new table is checked as a tenant table.
NOT_TENANT_TABLES = ("users", "api_keys")
# On SQLite these keep `id`, the rowid, as their primary key (tables.py).
ROWID_KEYED = (
    "contacts",
    "segments",
    "events",
    "webhooks",
    "webhook_deliveries",
    "webhook_attempts",
    "snapshots",
)


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, *_: migrate.exists_on(obj, engine.dialect.name),
            },
        )
        return list(compare_metadata(context, metadata))


def test_migrated_schema_is_the_schema_of_tables_py(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        differences = _differences(engine)
        if CITUS_URL:  # distributing drops the foreign keys Citus cannot keep
            dropped = {name for rule in RULES.values() for name in rule.drop_foreign_keys}
            differences = [
                d for d in differences if not (d[0] == "add_fk" and d[1].name in dropped)
            ]
            # and keeps the one plain PostgreSQL replaces by a trigger (0012).
            differences = [
                d
                for d in differences
                if not (d[0] == "remove_fk" and d[1].name == parameter_cascade.FOREIGN_KEY)
            ]
        assert differences == []
        # Autogenerate does not compare primary keys: check them here.
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            expected = [column.name for column in table.primary_key.columns]
            if engine.dialect.name == "sqlite" and table.name in ROWID_KEYED:
                expected = ["id"]
            assert inspector.get_pk_constraint(table.name)["constrained_columns"] == expected
        if engine.dialect.name == "postgresql":  # nor collations
            folded = next(
                column
                for column in inspector.get_columns("contact_parameters")
                if column["name"] == "value_folded"
            )
            assert folded["type"].collation == "C"
        # Nor partial indexes, nor WITHOUT ROWID (0004_parameters_without_rowid).
        assert _parameters_ddl(engine) == _PARAMETERS_DDL[engine.dialect.name]
    finally:
        engine.dispose()


# What autogenerate does not compare: contact_parameters is WITHOUT ROWID on SQLite,
# and its number index is partial on both backends.
_NUMBER_INDEX = "ix_contact_parameters_user_key_number"
_PARAMETERS_DDL = {
    "sqlite": {"without_rowid": True, "number_index_where": "WHERE value_number IS NOT NULL"},
    "postgresql": {
        "without_rowid": False,
        "number_index_where": "WHERE (value_number IS NOT NULL)",
    },
}


def _parameters_ddl(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'contact_parameters'"
            )
        else:
            rows = connection.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'contact_parameters'"
            )
        definitions = {name: " ".join((sql or "").split()) for name, sql in rows}
    number_index = definitions[_NUMBER_INDEX]
    return {
        "without_rowid": definitions.get("contact_parameters", "").endswith("WITHOUT ROWID"),
        "number_index_where": number_index[number_index.find("WHERE") :]
        if "WHERE" in number_index
        else None,
    }


def test_parameters_table_and_number_index_downgrade_and_upgrade(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        migrate.upgrade(engine)
        migrate.downgrade(engine, "0003_folded_byte_order")
        assert _parameters_ddl(engine) == {"without_rowid": False, "number_index_where": None}
        migrate.upgrade(engine)
        assert _parameters_ddl(engine) == _PARAMETERS_DDL[engine.dialect.name]
    finally:
        engine.dispose()


def test_every_key_of_a_tenant_table_includes_user_id() -> None:
    # What Citus requires of a table distributed by user_id, as PostgreSQL builds it.
    tenant_tables = [t for t in metadata.sorted_tables if t.name not in NOT_TENANT_TABLES]
    assert {t.name for t in tenant_tables} >= {"contacts", "contact_parameters", "segments"}
    for table in tenant_tables:
        name = table.name
        assert "user_id" in table.primary_key.columns, name
        for constraint in table.constraints:
            columns = {column.name for column in getattr(constraint, "columns", ())}
            if columns and type(constraint).__name__ != "CheckConstraint":
                assert "user_id" in columns, (name, constraint.name)
        for index in table.indexes:
            if index.unique and migrate.exists_on(index, "postgresql"):
                assert "user_id" in {column.name for column in index.columns}, index.name
        for foreign_key in table.foreign_key_constraints:
            assert "user_id" in foreign_key.column_keys, foreign_key.name


def _seed_0001(engine: Engine) -> None:
    """Two users' rows in the revision-0001 schema, with explicit ids."""
    now = datetime(2026, 1, 1)
    statements: list[tuple[str, list[dict[str, Any]]]] = [
        (
            "INSERT INTO users (id, name, segments_version, datetime)"
            " VALUES (:id, 'user', '', :now)",
            [{"id": 1, "now": now}, {"id": 2, "now": now}],
        ),
        (
            "INSERT INTO contacts (id, user_id, name, phone_number, custom_parameters,"
            " has_opted_out, datetime) VALUES (:id, :user_id, '', :phone, '{}', false, :now)",
            [
                {"id": contact_id, "user_id": user_id, "phone": f"+{contact_id}", "now": now}
                for contact_id, user_id in ((1, 1), (2, 1), (3, 2))
            ],
        ),
        (
            "INSERT INTO contact_parameters (contact_id, key, user_id, value_folded)"
            " VALUES (:contact_id, 'plan', :user_id, 'pro')",
            [{"contact_id": c, "user_id": u} for c, u in ((1, 1), (2, 1), (3, 2))],
        ),
        (
            "INSERT INTO segments (id, user_id, name, type, settings, total_contacts,"
            " datetime) VALUES (1, 1, 'list', 'custom', '{}', 2, :now)",
            [{"now": now}],
        ),
        (
            "INSERT INTO segment_members (segment_id, contact_id, user_id)"
            " VALUES (1, :contact_id, 1)",
            [{"contact_id": 1}, {"contact_id": 2}],
        ),
    ]
    with engine.begin() as connection, across_tenants("the test fills an old schema"):
        for sql, rows in statements:
            connection.execute(text(sql), rows)
        if engine.dialect.name == "postgresql":  # rows were given ids: move the sequences on
            for table in ("users", "contacts", "segments"):
                connection.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, 'id'), 10)"),
                    {"table": table},
                )


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection, across_tenants("the test counts every user's rows"):
        return int(connection.execute(text(sql)).scalar_one())


def test_upgrading_a_populated_database_keeps_rows_and_cascades(empty_url: str) -> None:
    # The application's engine: foreign keys enforced on SQLite too.
    db = Database(Settings(database_url=empty_url))
    engine = db.engine
    try:
        migrate.upgrade(engine, "0001")
        _seed_0001(engine)
        migrate.upgrade(engine)
        assert _differences(engine) == []
        assert _count(engine, "SELECT count(*) FROM contact_parameters") == 3
        assert _count(engine, "SELECT count(*) FROM segment_members") == 2

        with engine.begin() as connection:  # ids still number themselves
            new_id = connection.execute(
                text(
                    "INSERT INTO contacts (user_id, name, phone_number, custom_parameters,"
                    " has_opted_out, datetime) VALUES (1, '', '+9', '{}', false, :now)"
                    " RETURNING id"
                ),
                {"now": datetime(2026, 1, 2)},
            ).scalar_one()
        assert new_id > 3

        # On PostgreSQL segment_members has no foreign keys (0014_writes_members_no_fks):
        # the services delete member rows themselves (tests/api/test_member_rows.py).
        keyed = engine.dialect.name == "sqlite"
        with engine.begin() as connection:  # a contact takes its rows with it
            connection.execute(text("DELETE FROM contacts WHERE user_id = 1 AND id = 1"))
        assert _count(engine, "SELECT count(*) FROM contact_parameters WHERE contact_id = 1") == 0
        assert _count(engine, "SELECT count(*) FROM segment_members") == (1 if keyed else 2)

        if keyed:  # a membership cannot point at another user's contact
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO segment_members (segment_id, contact_id, user_id)"
                        " VALUES (1, 3, 1)"
                    )
                )

        with engine.begin() as connection:  # a segment takes its members with it
            if not keyed:
                connection.execute(
                    text("DELETE FROM segment_members WHERE user_id = 1 AND segment_id = 1")
                )
            connection.execute(text("DELETE FROM segments WHERE user_id = 1 AND id = 1"))
        assert _count(engine, "SELECT count(*) FROM segment_members") == 0

        migrate.downgrade(engine, "0001")
        migrate.upgrade(engine)
        assert _differences(engine) == []
        assert _count(engine, "SELECT count(*) FROM contact_parameters") == 2
    finally:
        db.dispose()


def test_dashboard_sessions_downgrade_and_upgrade(empty_url: str) -> None:
    # The application's engine: foreign keys enforced on SQLite too.
    db = Database(Settings(database_url=empty_url))
    engine = db.engine
    now = datetime(2026, 1, 1)
    try:
        migrate.upgrade(engine)
        with engine.begin() as connection, across_tenants("the test makes users"):
            connection.execute(
                text(
                    "INSERT INTO users (id, name, segments_version, datetime)"
                    " VALUES (1, 'a', '', :now), (2, 'b', '', :now)"
                ),
                {"now": now},
            )
            connection.execute(
                text(
                    "INSERT INTO dashboard_sessions (user_id, id_hash, api_key_id, created_at,"
                    " last_seen_at, expires_at) VALUES (:user_id, :id_hash, 1, :now, :now, :now)"
                ),
                [
                    {"user_id": 1, "id_hash": "a" * 64, "now": now},
                    {"user_id": 2, "id_hash": "a" * 64, "now": now},
                ],
            )
        # The same token hash under two users is two rows: the key is (user_id, id_hash).
        assert _count(engine, "SELECT count(*) FROM dashboard_sessions") == 2
        with engine.begin() as connection:  # a user takes its sessions with it
            connection.execute(text("DELETE FROM users WHERE id = 2"))
        assert _count(engine, "SELECT count(*) FROM dashboard_sessions") == 1

        migrate.downgrade(engine, "0004_parameters_without_rowid")
        assert "dashboard_sessions" not in inspect(engine).get_table_names()
        migrate.upgrade(engine)
        assert _differences(engine) == []
        assert inspect(engine).get_pk_constraint("dashboard_sessions")["constrained_columns"] == [
            "user_id",
            "id_hash",
        ]
        assert _count(engine, "SELECT count(*) FROM dashboard_sessions") == 0
    finally:
        db.dispose()
